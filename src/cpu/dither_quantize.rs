//! TPDF dither (a pure function of seed, channel, frame via 32-bit integer hashing), round half to
//! even, clamp to the integer range.
//!
//! `shaders/dither_quantize.wgsl` mirrors this file line by line: only u32 wrapping integer ops
//! (xor, shifts, wrapping multiply — WGSL's u32 `*` wraps) and f32 arithmetic, each f32 operation
//! rounded on its own (no fused multiply-add), so the CPU and the GPU produce identical integers.
//! DESIGN.md "DSP" 7.

/// lowbias32 (Chris Wellons, "Prospecting for Hash Functions", 2018): a 32-bit integer finaliser
/// with a low avalanche bias. x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b;
/// x ^= x >> 16.
#[inline(always)]
pub fn lowbias32(x: u32) -> u32 {
    let mut x = x;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The 32-bit dither hash of (seed, channel, frame): the inputs folded in one after another, each
/// step a lowbias32 of (state ^ input), so that every input bit reaches every output bit:
///   h = lowbias32(seed ^ 0x9e3779b9)
///   h = lowbias32(h ^ channel)
///   h = lowbias32(h ^ frame_lo)        frame_lo = frame & 0xffffffff
///   h = lowbias32(h ^ frame_hi)        frame_hi = frame >> 32
/// (The golden-ratio constant keeps seed 0 from starting at the hash's fixed point 0.)
#[inline(always)]
pub fn hash(seed: u32, channel: u32, frame: u64) -> u32 {
    let frame_lo = frame as u32;
    let frame_hi = (frame >> 32) as u32;
    let mut h = lowbias32(seed ^ 0x9e37_79b9);
    h = lowbias32(h ^ channel);
    h = lowbias32(h ^ frame_lo);
    h = lowbias32(h ^ frame_hi);
    h
}

/// 2^-24 as an exact f32 bit pattern.
const TWO_POW_M24: f32 = f32::from_bits((127 - 24) << 23);

/// A uniform in [0, 1) from the top 24 bits of a hash: (h >> 8) as f32 * 2^-24, exact (24 bits fit
/// an f32 significand, the scale is a power of two).
#[inline(always)]
pub fn uniform(h: u32) -> f32 {
    (h >> 8) as f32 * TWO_POW_M24
}

/// TPDF dither in LSB for (seed, channel, frame): u1 - u2 with
///   h1 = hash(seed, channel, frame), u1 = uniform(h1),
///   h2 = lowbias32(h1 ^ 0x68e31da4),  u2 = uniform(h2).
/// Both uniforms are multiples of 2^-24 in [0, 1), so the difference is exact in f32 and lies in
/// (-1, 1): the triangular density of two independent uniforms, variance 1/6 LSB^2.
#[inline(always)]
pub fn tpdf(seed: u32, channel: u32, frame: u64) -> f32 {
    let h1 = hash(seed, channel, frame);
    let h2 = lowbias32(h1 ^ 0x68e3_1da4);
    uniform(h1) - uniform(h2)
}

/// 2^(bits-1) as an exact f32 (bits in 2..=32).
#[inline(always)]
pub fn full_scale(bits: u32) -> f32 {
    f32::from_bits((127 + bits - 1) << 23)
}

/// The integer range [lo, hi] of a `bits`-bit sample, as f32 clamp bounds:
/// lo = -2^(bits-1); hi = 2^(bits-1) - 1, exact in f32 for bits <= 24. For bits = 32,
/// 2^31 - 1 is not an f32; hi = 2147483520.0 (0x4EFFFFFF, the largest f32 below 2^31), so the
/// i32 cast never overflows. (For 25..=31 bits the same care would be needed; only 16/24/32 are
/// written, and those are asserted.)
#[inline(always)]
pub fn clamp_bounds(bits: u32) -> (f32, f32) {
    let lo = -full_scale(bits);
    let hi = if bits == 32 { f32::from_bits(0x4EFF_FFFF) } else { full_scale(bits) - 1.0 };
    (lo, hi)
}

/// 1.5 * 2^52: adding and subtracting it leaves a double rounded to an integer by the FPU's
/// round-to-nearest-even, since the sum's ulp is 1.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// `v.round_ties_even()` for any f32 of magnitude below 2^51 (equal as a value; a -0.0 comes out +0.0): the f32 -> f64
/// conversion is exact and so is the subtraction. `round_ties_even` itself compiles to a libm
/// `rintf` call per sample on baseline x86-64 (no SSE4.1 `roundss`), which made quantising a
/// third of the writer's cost; this form vectorises.
#[inline(always)]
pub fn round_ties_even_f32(v: f32) -> f32 {
    ((v as f64 + ROUND_MAGIC) - ROUND_MAGIC) as f32
}

/// One sample: x (full scale 1.0) -> a `bits`-bit integer, dither `d` in LSB (0 for none).
///   v = x * 2^(bits-1)     exact: a power-of-two scale (no overflow: |x| is finite and small)
///   v = v + d              one f32 addition, rounded to nearest even (a separate op: no FMA)
///   r = round_ties_even(v) WGSL: round() — also ties to even
///   r = clamp(r, lo, hi)   in f32: WGSL clamp(r, lo, hi) (= min(max(r, lo), hi))
///   q = r as i32           exact: r is an integer within i32's range
/// Because v + d is an f32, it is itself rounded to v's ulp: at most 2^-9 LSB for 16-bit output,
/// but up to 0.25 LSB for 24-bit samples above half scale (ulp 0.5 LSB there) and coarser still at
/// 32 bits, so |q - v| < 1.5 + ulp/2 LSB. Accepted: the GPU has no wider type, and an f32 input
/// carries no more precision than that anyway.
#[inline(always)]
pub fn quantize_sample(x: f32, d: f32, scale: f32, lo: f32, hi: f32) -> i32 {
    let v = x * scale;
    let v = v + d;
    let r = round_ties_even_f32(v);
    // max then min, in that order (as WGSL's clamp); a NaN input never reaches here (readers
    // refuse NaN, the engines produce none), and Rust's `as` would give 0 for one anyway.
    let r = r.max(lo).min(hi);
    r as i32
}

/// Quantise one channel's block: `out[i]` = the `bits`-bit integer of `input[i]`, frame
/// `first_frame + i`. With `dither_seed`, TPDF dither `tpdf(seed, channel, frame)` LSB is added
/// before rounding; the dither is thus a pure function of (seed, channel, absolute frame), and
/// any block split gives the same integers. `bits` is 16, 24 or 32.
pub fn quantize_block(input: &[f32], bits: u32, dither_seed: Option<u32>, channel: u32, first_frame: u64, out: &mut [i32]) {
    assert!(matches!(bits, 16 | 24 | 32), "dither_quantize: {bits}-bit output (16, 24 or 32)");
    assert!(out.len() >= input.len(), "dither_quantize: {} outputs for {} inputs", out.len(), input.len());
    let scale = full_scale(bits);
    let (lo, hi) = clamp_bounds(bits);
    match dither_seed {
        Some(seed) => {
            for (i, (x, q)) in input.iter().zip(out.iter_mut()).enumerate() {
                let d = tpdf(seed, channel, first_frame + i as u64);
                *q = quantize_sample(*x, d, scale, lo, hi);
            }
        }
        None => {
            for (x, q) in input.iter().zip(out.iter_mut()) {
                *q = quantize_sample(*x, 0.0, scale, lo, hi);
            }
        }
    }
}

#[cfg(test)]
mod round_tests {
    use super::round_ties_even_f32;

    #[test]
    fn magic_rounding_equals_round_ties_even() {
        // Ties, near-ties, both signs, every magnitude the quantiser sees (|v| <= 2^31) and beyond.
        let mut cases = vec![0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 8_388_607.5, 8_388_608.5, 2_147_483_520.0];
        let mut x = 0x1234_5678u32;
        for _ in 0..1_000_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = f32::from_bits(x);
            if v.is_finite() && v.abs() < 2f32.powi(40) {
                cases.push(v);
            }
            cases.push((x as i32 as f32) / 256.0 + 0.5);
        }
        for v in cases {
            // Equal as values (the quantiser casts to an integer, so -0.0 and +0.0 are both 0).
            assert_eq!(round_ties_even_f32(v), v.round_ties_even(), "v = {v:e}");
        }
    }
}
