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
    hash_frame(hash_channel(seed, channel), frame as u32, (frame >> 32) as u32)
}

/// The first two steps of `hash`, which a block of one channel shares.
#[inline(always)]
pub fn hash_channel(seed: u32, channel: u32) -> u32 {
    lowbias32(lowbias32(seed ^ 0x9e37_79b9) ^ channel)
}

/// The last two steps of `hash`, from `hash_channel`'s state.
#[inline(always)]
pub fn hash_frame(channel_state: u32, frame_lo: u32, frame_hi: u32) -> u32 {
    lowbias32(lowbias32(channel_state ^ frame_lo) ^ frame_hi)
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
    tpdf_of_hash(hash(seed, channel, frame))
}

/// `tpdf` from its first hash h1.
#[inline(always)]
fn tpdf_of_hash(h1: u32) -> f32 {
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
    quantize_sample_with(x, d, scale, lo, hi, round_ties_even_f32)
}

/// `quantize_sample` with the rounding given: `round_ties_even_f32` on the x86-64 baseline, or
/// `f32::round_ties_even` where the target has ROUNDPS (SSE4.1); the two agree on every value the
/// quantiser sees (`round_tests`), so the integers are the same.
#[inline(always)]
fn quantize_sample_with(x: f32, d: f32, scale: f32, lo: f32, hi: f32, round: impl Fn(f32) -> f32) -> i32 {
    let v = x * scale;
    let v = v + d;
    let r = round(v);
    // max then min, in that order (as WGSL's clamp). `f32::max`/`min` return the other operand
    // for a NaN, so r is never NaN here (readers refuse NaN and the engines produce none anyway).
    let r = r.max(lo).min(hi);
    // SAFETY: r is an integer-valued f32 in [lo, hi], inside i32's range (`clamp_bounds`), so the
    // conversion is exact. The unchecked form compiles to one vector CVTTPS2DQ; `as` must also
    // handle NaN and out-of-range values, which kept the loop scalar (one CVTTSS2SI per sample).
    unsafe { r.to_int_unchecked::<i32>() }
}

/// Quantise one channel's block: `out[i]` = the `bits`-bit integer of `input[i]`, frame
/// `first_frame + i`. With `dither_seed`, TPDF dither `tpdf(seed, channel, frame)` LSB is added
/// before rounding; the dither is thus a pure function of (seed, channel, absolute frame), and
/// any block split gives the same integers. `bits` is 16, 24 or 32.
///
/// On x86-64 CPUs with AVX2 (checked at run time) the same loop is compiled for AVX2: 8 samples
/// per instruction through the hash's 32-bit multiplies and a ROUNDPS rounding, several times
/// faster than the baseline target's SSE2 code (BENCHMARKS.md, stage throughput). The operations
/// are the same IEEE ones in the same order (no FMA is enabled), so the integers are identical.
pub fn quantize_block(
    input: &[f32],
    bits: u32,
    dither_seed: Option<u32>,
    channel: u32,
    first_frame: u64,
    out: &mut [i32],
) {
    assert!(matches!(bits, 16 | 24 | 32), "dither_quantize: {bits}-bit output (16, 24 or 32)");
    assert!(out.len() >= input.len(), "dither_quantize: {} outputs for {} inputs", out.len(), input.len());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (detected just above), the only requirement of the call.
        unsafe { quantize_block_avx2(input, bits, dither_seed, channel, first_frame, out) };
        return;
    }
    quantize_block_portable(input, bits, dither_seed, channel, first_frame, out);
}

/// `quantize_block` for the build's baseline target.
fn quantize_block_portable(
    input: &[f32],
    bits: u32,
    dither_seed: Option<u32>,
    channel: u32,
    first_frame: u64,
    out: &mut [i32],
) {
    quantize_run(input, bits, dither_seed, channel, first_frame, out, round_ties_even_f32);
}

/// `quantize_block` compiled for AVX2 (which implies SSE4.1's ROUNDPS for `round_ties_even`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_block_avx2(
    input: &[f32],
    bits: u32,
    dither_seed: Option<u32>,
    channel: u32,
    first_frame: u64,
    out: &mut [i32],
) {
    quantize_run(input, bits, dither_seed, channel, first_frame, out, f32::round_ties_even);
}

/// The loop of `quantize_block`, inlined into each target's copy. The frame's high word is
/// constant over runs of 2^32 frames, so a block is cut where it changes (at most once) and each
/// run hashes a 32-bit counter: loops over u32 lanes vectorise, a u64 frame index would not.
#[inline(always)]
fn quantize_run(
    input: &[f32],
    bits: u32,
    dither_seed: Option<u32>,
    channel: u32,
    first_frame: u64,
    out: &mut [i32],
    round: impl Fn(f32) -> f32 + Copy,
) {
    let scale = full_scale(bits);
    let (lo, hi) = clamp_bounds(bits);
    let out = &mut out[..input.len()];
    match dither_seed {
        Some(seed) => {
            let state = hash_channel(seed, channel);
            let mut done = 0;
            while done < input.len() {
                let frame = first_frame + done as u64;
                let (frame_lo, frame_hi) = (frame as u32, (frame >> 32) as u32);
                let run = ((1u64 << 32) - frame_lo as u64).min((input.len() - done) as u64) as usize;
                let (x, q) = (&input[done..done + run], &mut out[done..done + run]);
                for (i, (x, q)) in x.iter().zip(q.iter_mut()).enumerate() {
                    let d = tpdf_of_hash(hash_frame(state, frame_lo.wrapping_add(i as u32), frame_hi));
                    *q = quantize_sample_with(*x, d, scale, lo, hi, round);
                }
                done += run;
            }
        }
        None => {
            for (x, q) in input.iter().zip(out.iter_mut()) {
                *q = quantize_sample_with(*x, 0.0, scale, lo, hi, round);
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

#[cfg(test)]
mod path_tests {
    use super::*;

    /// Every copy of the loop (baseline, AVX2 when the CPU has it) gives, sample for sample, the
    /// integers of the one-sample definition `quantize_sample(x, tpdf(seed, channel, frame))`:
    /// ties, clamped overs, every format, with and without dither, and blocks crossing the 2^32
    /// frame boundary where the hash's high word changes.
    #[test]
    fn every_path_equals_the_per_sample_definition() {
        let mut x = 0x9e37_79b9u32;
        let mut sig: Vec<f32> = (0..20_011)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as i32 as f32) * 2f32.powi(-31) * 1.2
            })
            .collect();
        // Exact ties at 16 and 24 bits, and full-scale edges.
        for (k, v) in
            [0.5f32 * 2f32.powi(-15), 2.5 * 2f32.powi(-23), 1.0, -1.0, 1.0 - 2f32.powi(-24)].iter().enumerate()
        {
            sig[k * 3] = *v;
        }
        for bits in [16u32, 24, 32] {
            let scale = full_scale(bits);
            let (lo, hi) = clamp_bounds(bits);
            for seed in [None, Some(7u32)] {
                for first in [0u64, 48_000, (1u64 << 32) - 5_000, 3 << 32] {
                    let want: Vec<i32> = sig
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| {
                            let d = seed.map_or(0.0, |s| tpdf(s, 5, first + i as u64));
                            quantize_sample(v, d, scale, lo, hi)
                        })
                        .collect();
                    let mut got = vec![0i32; sig.len()];
                    quantize_block_portable(&sig, bits, seed, 5, first, &mut got);
                    assert_eq!(got, want, "portable, {bits} bits, seed {seed:?}, first frame {first}");
                    #[cfg(target_arch = "x86_64")]
                    if std::is_x86_feature_detected!("avx2") {
                        got.fill(0);
                        // SAFETY: AVX2 detected.
                        unsafe { quantize_block_avx2(&sig, bits, seed, 5, first, &mut got) };
                        assert_eq!(got, want, "avx2, {bits} bits, seed {seed:?}, first frame {first}");
                    }
                }
            }
        }
    }
}
