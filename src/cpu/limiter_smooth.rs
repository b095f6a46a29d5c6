//! Attack smoothing and conversion to a linear gain: S[n] = (1/L) sum_{j<L} D[n-j] as a window sum
//! per block (never a running prefix sum over the program), g[n] = 10^(-S[n]/20).
//!
//! At the start of each call the window sum is re-summed directly from the L-1 carried values, then
//! slid across the call in f64 (add the entering value, subtract the leaving one). Its rounding is
//! thus bounded by one call's worth of f64 steps (~1e-13 dB), never growing with the program's
//! length, unlike an f32 prefix sum whose error reaches tenths of a dB after an hour.

pub struct LimiterSmooth {
    lookahead: usize,
    block: usize,
    /// The last L-1 values of D from the previous call, then this call's values.
    ext: Vec<f32>,
    /// S of this call's frames.
    s: Vec<f64>,
}

impl LimiterSmooth {
    pub fn new(lookahead: usize, block: usize) -> Self {
        assert!(lookahead >= 1, "LimiterSmooth: lookahead must be at least 1 frame");
        LimiterSmooth { lookahead, block, ext: vec![0.0; lookahead - 1 + block], s: vec![0.0; block] }
    }

    /// `gain[n]` = 10^(-S[n]/20) for the frames of `released_db` (any length up to `block`).
    pub fn process(&mut self, released_db: &[f32], gain: &mut [f32]) {
        let len = released_db.len();
        assert!(len <= self.block && gain.len() == len, "LimiterSmooth::process: shape");
        let l = self.lookahead;
        let m = l - 1 + len;
        self.ext[l - 1..m].copy_from_slice(released_db);
        let mut sum: f64 = self.ext[..l - 1].iter().map(|&v| v as f64).sum();
        let inv_l = 1.0 / l as f64;
        // Window of frame n: ext[n..n+L]; entering value ext[n+L-1], leaving value ext[n]. The
        // serial sum and the (vectorisable) conversion to gain run as two passes.
        for ((s, &enter), &leave) in self.s[..len].iter_mut().zip(&self.ext[l - 1..m]).zip(&self.ext[..len]) {
            sum += enter as f64;
            *s = sum * inv_l;
            sum -= leave as f64;
        }
        gains(&self.s[..len], gain);
        self.ext.copy_within(len..m, 0);
    }

    /// Forget all history (as if newly built).
    pub fn reset(&mut self) {
        self.ext.fill(0.0);
    }
}

/// Covers `db_to_gain`'s error (< 1e-14 relative) so that g is never above the exact gain; a
/// 1e-13 change of gain is far below f32 resolution.
const GAIN_BIAS: f64 = 1.0 - 1e-13;

/// 1.5 * 2^52: adding and subtracting it rounds an f64 of magnitude < 2^51 to the nearest integer
/// (ties to even) with plain additions, and leaves that integer in the low mantissa bits.
const ROUND_MAGIC: f64 = 6755399441055744.0;

/// 10^(-att_db/20) for att_db >= 0, in plain f64 arithmetic: no libm, so the same bits on every
/// platform, and branch-free so the loop vectorises. 10^(-att/20) = 2^y, y = -att log2(10)/20,
/// y = k + f with k = round(y), |f| <= 1/2; 2^f = e^t, t = f ln 2, |t| <= 0.347, by its Taylor
/// series to t^13 (truncation t^14/14! < 3e-18); 2^k goes straight into the exponent bits. Within
/// a few f64 ulps of the exact value (tests/limiter.rs measures it). Attenuations beyond ~6000 dB
/// (y < -1000) give 2^-1000, which is 0 in f32.
#[inline(always)]
pub fn db_to_gain(att_db: f64) -> f64 {
    let y = (att_db * (-std::f64::consts::LOG2_10 / 20.0)).max(-1000.0);
    let r = y + ROUND_MAGIC;
    let k = r - ROUND_MAGIC;
    let k_int = r.to_bits() as i64 - ROUND_MAGIC.to_bits() as i64;
    let t = (y - k) * std::f64::consts::LN_2;
    let mut p = 1.0 / 6227020800.0; // 1/13!
    for c in [
        1.0 / 479001600.0,
        1.0 / 39916800.0,
        1.0 / 3628800.0,
        1.0 / 362880.0,
        1.0 / 40320.0,
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * t + c;
    }
    p * f64::from_bits(((k_int + 1023) as u64) << 52)
}

/// g = 10^(-S/20) rounded down to f32 (1 exactly where S = 0), for every frame of the call.
fn gains(s: &[f64], gain: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { gains_avx2(s, gain) };
        return;
    }
    gains_loop(s, gain);
}

/// The same loop compiled for AVX2 (4 f64 lanes, 64-bit integer lanes for the exponent): the same
/// operations in the same order, no FMA, so the same bits as the SSE2 build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gains_avx2(s: &[f64], gain: &mut [f32]) {
    gains_loop(s, gain);
}

#[inline(always)]
fn gains_loop(s: &[f64], gain: &mut [f32]) {
    for (g, &s) in gain.iter_mut().zip(s) {
        let v = f32_at_most(db_to_gain(s) * GAIN_BIAS);
        *g = if s > 0.0 { v } else { 1.0 };
    }
}

/// The largest f32 not above `v` (0 <= v < 2^128), branch-free: the gain is rounded down so that
/// rounding never lifts a sample the limiter parked on the ceiling above it.
#[inline(always)]
fn f32_at_most(v: f64) -> f32 {
    let f = v as f32;
    let below = f32::from_bits(f.to_bits().wrapping_sub(1));
    if (f as f64) > v { below } else { f }
}
