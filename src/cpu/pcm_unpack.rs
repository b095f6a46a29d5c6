//! Raw little-endian PCM bytes (16/24/32-bit integer, 32/64-bit float, interleaved) -> planar f32.
//!
//! `shaders/pcm_unpack.wgsl` mirrors this file: the GPU gets the raw bytes of a block packed into
//! `array<u32>` words (byte i = (word[i >> 2] >> ((i & 3) * 8)) & 0xFF, little-endian), so every
//! step below is written with u32 integer operations and f32 multiplies that WGSL has, one sample
//! at a time (`unpack_sample`), and the loop in `unpack` is the shader's dispatch.
//!
//! Scales (DESIGN.md "Conventions": integer PCM reads as x / 2^(bits-1)):
//! - Int16: (x as f32) * 2^-15, Int24: (x as f32) * 2^-23 — both exact (|x| < 2^24).
//! - Int32: (x as f32) * 2^-31 — x rounded to the nearest f32 (ties to even), computed as
//!   f32(x >> 16) * 2^16 + f32(x & 0xFFFF) so that only one correctly rounded addition rounds;
//!   the power-of-two scale is then exact.
//! - Float32: the bits as they are. Float64: rounded to nearest f32 (`as f32`); `f64_bits_to_f32`
//!   does the same rounding with u32 operations only, for the shader (WGSL has no f64).
use crate::model::SourceEncoding;

/// Bytes one sample of `encoding` takes in a file (None for `Coded`, which has no raw form).
pub const fn bytes_per_sample(encoding: SourceEncoding) -> Option<usize> {
    match encoding {
        SourceEncoding::Int16 => Some(2),
        SourceEncoding::Int24 => Some(3),
        SourceEncoding::Int32 | SourceEncoding::Float32 => Some(4),
        SourceEncoding::Float64 => Some(8),
        SourceEncoding::Coded { .. } => None,
    }
}

/// 2^-15, 2^-23, 2^-31 as f32 bit patterns (exponent field 127 - k), so the constants are exact.
const SCALE_16: f32 = f32::from_bits((127 - 15) << 23);
const SCALE_24: f32 = f32::from_bits((127 - 23) << 23);
const SCALE_32: f32 = f32::from_bits((127 - 31) << 23);

/// Byte `i` of the block, as the shader reads it out of its u32 words.
#[inline(always)]
fn byte_at(bytes: &[u8], i: usize) -> u32 {
    bytes[i] as u32
}

/// The 32-bit little-endian word starting at byte `i` (any alignment).
#[inline(always)]
fn word_at(bytes: &[u8], i: usize) -> u32 {
    byte_at(bytes, i) | (byte_at(bytes, i + 1) << 8) | (byte_at(bytes, i + 2) << 16) | (byte_at(bytes, i + 3) << 24)
}

/// Sample number `index` (interleaved order: frame * channels + channel) of a raw block.
#[inline(always)]
pub fn unpack_sample(bytes: &[u8], index: usize, encoding: SourceEncoding) -> f32 {
    match encoding {
        SourceEncoding::Int16 => {
            let i = index * 2;
            // Put the 16 bits at the top of a word, then an arithmetic shift sign-extends.
            let u = (byte_at(bytes, i) << 16) | (byte_at(bytes, i + 1) << 24);
            ((u as i32) >> 16) as f32 * SCALE_16
        }
        SourceEncoding::Int24 => {
            let i = index * 3;
            let u = (byte_at(bytes, i) << 8) | (byte_at(bytes, i + 1) << 16) | (byte_at(bytes, i + 2) << 24);
            ((u as i32) >> 8) as f32 * SCALE_24
        }
        SourceEncoding::Int32 => {
            // x = hi * 2^16 + lo with both parts exact in f32: one correctly rounded (nearest
            // even) f32 addition gives the nearest f32 to x. Same as `x as f32`, but it needs no
            // i32 -> f32 conversion of a value above 2^24, whose rounding WGSL leaves open.
            let x = word_at(bytes, index * 4) as i32;
            let hi = (x >> 16) as f32 * 65536.0;
            let lo = (x & 0xFFFF) as f32;
            (hi + lo) * SCALE_32
        }
        SourceEncoding::Float32 => f32::from_bits(word_at(bytes, index * 4)),
        SourceEncoding::Float64 => {
            let i = index * 8;
            f64_bits_to_f32(word_at(bytes, i + 4), word_at(bytes, i))
        }
        SourceEncoding::Coded { bits } => {
            panic!("pcm_unpack: a codec-decoded source ({bits}-bit) has no raw PCM form")
        }
    }
}

/// IEEE 754 binary64 (given as its high and low 32-bit words) -> the nearest binary32, ties to
/// even, exactly as Rust's `as f32` (and C's default rounding): overflow to ±Inf, NaN stays NaN,
/// subnormal results rounded correctly. Only u32 operations, so WGSL can mirror it line by line.
#[inline(always)]
pub fn f64_bits_to_f32(hi: u32, lo: u32) -> f32 {
    let sign = hi & 0x8000_0000;
    let exp64 = (hi >> 20) & 0x7FF;
    let man_hi = hi & 0x000F_FFFF; // top 20 of the 52 mantissa bits
    if exp64 == 0x7FF {
        // Inf or NaN (keep a quiet NaN).
        let nan = man_hi != 0 || lo != 0;
        return f32::from_bits(sign | 0x7F80_0000 | if nan { 0x0040_0000 } else { 0 });
    }
    // Unbiased exponent e; f32's exponent field is e + 127.
    let e = exp64 as i32 - 1023;
    if e > 127 {
        return f32::from_bits(sign | 0x7F80_0000);
    }
    if exp64 == 0 || e < -150 {
        // f64 zero/subnormal (< 2^-1022) or below half the smallest f32 subnormal (2^-150):
        // rounds to a signed zero. (e == -150 with a non-zero mantissa is above half, handled below.)
        return f32::from_bits(sign);
    }
    // The 53-bit significand 1.m as (top: 1 + 20 bits in a u32, low: 32 bits).
    let top = man_hi | 0x0010_0000;
    // An f32 normal keeps 24 significant bits: shift the 53-bit significand right by 29.
    // A subnormal result (e < -126) keeps fewer: shift right by 29 + (-126 - e) more.
    let shift = if e < -126 { 29 + (-126 - e) as u32 } else { 29 }; // 29..=53
    // kept = significand >> shift; rest = the shifted-out bits, compared against half.
    let (kept, round_bit, sticky) = shift_right_53(top, lo, shift);
    // Round half to even.
    let mut m = kept;
    if round_bit && (sticky || (m & 1) == 1) {
        m += 1;
    }
    if e < -126 {
        // Subnormal: exponent field 0; a carry into bit 23 yields the smallest normal, correctly.
        f32::from_bits(sign | m)
    } else {
        // Normal: m is 24 bits with the hidden bit at 23 (or 2^24 after a carry, which bumps the
        // exponent: adding m to the field via `+` handles it, and overflow of e=127 gives Inf).
        let field = ((e + 127) as u32) << 23;
        f32::from_bits(sign | (field + (m - 0x0080_0000)))
    }
}

/// (significand >> shift, the highest shifted-out bit, whether any lower shifted-out bit is set)
/// for the 53-bit significand (top: 21 bits, lo: 32 bits) and 29 <= shift <= 53.
#[inline(always)]
fn shift_right_53(top: u32, lo: u32, shift: u32) -> (u32, bool, bool) {
    if shift < 32 {
        // top's bits land above lo's surviving top (32 - shift) bits.
        let kept = (top << (32 - shift)) | (lo >> shift);
        let round_bit = (lo >> (shift - 1)) & 1 == 1;
        let sticky = lo & ((1u32 << (shift - 1)) - 1) != 0;
        (kept, round_bit, sticky)
    } else {
        let s = shift - 32; // 0..=21
        let kept = top >> s;
        let round_bit = if s == 0 { lo >> 31 == 1 } else { (top >> (s - 1)) & 1 == 1 };
        let sticky = if s == 0 { lo & 0x7FFF_FFFF != 0 } else { (top & ((1u32 << (s - 1)) - 1)) != 0 || lo != 0 };
        (kept, round_bit, sticky)
    }
}

/// Convert `frames` interleaved frames of `channels` channels in `bytes` to planar f32:
/// `out[ch][f] = unpack_sample(bytes, f * channels + ch)`. `out.len() >= channels`, each at least
/// `frames` long; `bytes` holds at least `frames * channels * bytes_per_sample`.
pub fn unpack(bytes: &[u8], encoding: SourceEncoding, channels: usize, out: &mut [Vec<f32>], frames: usize) {
    let bps = bytes_per_sample(encoding).expect("pcm_unpack: a codec-decoded source has no raw PCM form");
    assert!(bytes.len() >= frames * channels * bps, "pcm_unpack: {} bytes for {frames} frames", bytes.len());
    assert!(out.len() >= channels, "pcm_unpack: {} output planes for {channels} channels", out.len());
    for (ch, plane) in out.iter_mut().take(channels).enumerate() {
        let plane = &mut plane[..frames];
        // One match per plane, not per sample: the compiler specialises each loop.
        match encoding {
            SourceEncoding::Int16 => unpack_plane(bytes, SourceEncoding::Int16, channels, ch, plane),
            SourceEncoding::Int24 => unpack_plane(bytes, SourceEncoding::Int24, channels, ch, plane),
            SourceEncoding::Int32 => unpack_plane(bytes, SourceEncoding::Int32, channels, ch, plane),
            SourceEncoding::Float32 => unpack_plane(bytes, SourceEncoding::Float32, channels, ch, plane),
            SourceEncoding::Float64 => unpack_plane(bytes, SourceEncoding::Float64, channels, ch, plane),
            SourceEncoding::Coded { .. } => unreachable!(),
        }
    }
}

#[inline(always)]
fn unpack_plane(bytes: &[u8], encoding: SourceEncoding, channels: usize, ch: usize, plane: &mut [f32]) {
    for (f, y) in plane.iter_mut().enumerate() {
        *y = unpack_sample(bytes, f * channels + ch, encoding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check64(x: f64) {
        let b = x.to_bits();
        let got = f64_bits_to_f32((b >> 32) as u32, b as u32);
        let want = x as f32;
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{x:e} ({b:#018x}): got {got:e} ({:#010x}), want {want:e} ({:#010x})",
            got.to_bits(),
            want.to_bits()
        );
    }

    #[test]
    fn f64_to_f32_matches_as_cast() {
        // Edge cases: zeros, ties, subnormal boundaries, overflow, specials.
        let specials = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f32::MAX as f64,
            f32::MAX as f64 * (1.0 + 2f64.powi(-25)),
            f32::MAX as f64 * (1.0 + 2f64.powi(-24)),
            f32::MIN_POSITIVE as f64,
            f32::MIN_POSITIVE as f64 * (1.0 - 2f64.powi(-30)),
            2f64.powi(-149),
            2f64.powi(-150),
            2f64.powi(-150) * (1.0 + 2f64.powi(-40)),
            2f64.powi(-151),
            3.0 * 2f64.powi(-150),
            1.0 + 2f64.powi(-24),
            1.0 + 3.0 * 2f64.powi(-24),
            1.0 + 2f64.powi(-24) + 2f64.powi(-52),
        ];
        for x in specials {
            check64(x);
            check64(-x);
        }
        // Many random bit patterns over the whole f64 range, and many in the f32 range.
        let mut s = 0x1234_5678_9abc_def0u64;
        for i in 0..2_000_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = if i % 2 == 0 {
                f64::from_bits(s)
            } else {
                // exponent within [-160, 130]
                let e = (s >> 52) % 291;
                f64::from_bits((s & 0x800F_FFFF_FFFF_FFFF) | ((1023 - 160 + e) << 52))
            };
            check64(x);
        }
    }

    #[test]
    fn int32_split_matches_as_cast() {
        let mut s = 0x9e37_79b9u32;
        let edge =
            [0, 1, -1, i32::MAX, i32::MIN, (1 << 24) + 1, (1 << 24) + 3, -(1 << 24) - 1, 0x7FFF_FF80, 0x7FFF_FFC0];
        for i in 0..2_000_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let x = if i < edge.len() { edge[i] } else { s as i32 };
            let got = unpack_sample(&x.to_le_bytes(), 0, SourceEncoding::Int32);
            assert_eq!(got.to_bits(), ((x as f32) * SCALE_32).to_bits(), "x = {x}");
        }
    }

    #[test]
    fn integer_scales() {
        let b16 = [0x00, 0x80, 0xFF, 0x7F, 0x01, 0x00];
        let mut out = vec![vec![0.0f32; 3]];
        unpack(&b16, SourceEncoding::Int16, 1, &mut out, 3);
        assert_eq!(out[0], [-1.0, 32767.0 / 32768.0, 1.0 / 32768.0]);
        let b24 = [0x00, 0x00, 0x80, 0xFF, 0xFF, 0xFF];
        unpack(&b24, SourceEncoding::Int24, 1, &mut out, 2);
        assert_eq!(&out[0][..2], [-1.0, -1.0 / 8_388_608.0]);
        let b32 = [0x00, 0x00, 0x00, 0x80, 0xFF, 0xFF, 0xFF, 0x7F];
        unpack(&b32, SourceEncoding::Int32, 1, &mut out, 2);
        assert_eq!(&out[0][..2], [-1.0, 1.0]); // 2^31 - 1 rounds to 2^31 in f32
    }
}
