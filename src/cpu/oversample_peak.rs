//! Oversample by K with the polyphase table and reduce to the required attenuation per frame:
//! a[n] = max(0, 20*log10(max over channels and sub-samples |u|) - ceiling_db).
//!
//! Causal: the output for frame n comes out `table.latency` frames later (the interpolator needs
//! T/2 samples past n), the signal is zero before the first call, and the last T-1 input samples of
//! every channel are carried into the next call. The frames before the start (causal outputs
//! 0..latency) read the interpolated signal's pre-ringing, which is zero unless the program starts
//! loud; keeping them (rather than forcing a = 0 there) costs nothing and covers the inter-sample
//! overshoot a meter reads just before a program that starts at full scale.
use rayon::prelude::*;

use crate::dsp::oversampling::OversamplingTable;

/// Frames per register tile of the polyphase sum: 32 f32 accumulators stay in registers (eight
/// SSE or four AVX vectors), so each multiply-add costs one load of x and no load/store of the sum.
const TILE: usize = 32;

/// Channels from which `process` runs the channels in parallel. Measured with the G solve on a
/// loaded 2-core machine (render's spill, 4x, 8192-frame blocks): 7.1 ran in 0.83-1.47 s instead of
/// 1.48-1.73 s per 150 s of program, for about 15 % more CPU time; stereo took 20-40 % more CPU
/// time in parallel for no measurable gain in wall time (rayon's hand-off costs about what half of
/// two channels' work saves, and the meter's thread has the other core).
const PARALLEL_FROM: usize = 3;

pub struct OversamplePeak {
    factor: usize,
    taps: usize,
    /// Phase-major, as `OversamplingTable::coeffs`.
    coeffs: Vec<f32>,
    latency: usize,
    channels: usize,
    block: usize,
    /// Per channel: the last T-1 input samples, then room for one block.
    hist: Vec<Vec<f32>>,
    /// max over channels and sub-samples of |u| for the frames of the current call.
    peak: Vec<f32>,
    /// The same per channel, computed in parallel, for buses of `PARALLEL_FROM` channels or more.
    rows: Vec<Vec<f32>>,
}

impl OversamplePeak {
    pub fn new(table: &OversamplingTable, channels: usize, block: usize) -> Self {
        let taps = table.taps_per_phase;
        assert!(taps >= 1 && table.coeffs.len() == table.factor * taps);
        assert!(table.latency < taps.max(1) || (taps == 1 && table.latency == 0));
        OversamplePeak {
            factor: table.factor,
            taps,
            coeffs: table.coeffs.clone(),
            latency: table.latency,
            channels,
            block,
            hist: vec![vec![0.0; taps - 1 + block]; channels],
            peak: vec![0.0; block],
            rows: if channels >= PARALLEL_FROM { vec![vec![0.0; block]; channels] } else { Vec::new() },
        }
    }

    /// Frames by which `atten_db` lags the input.
    pub fn latency(&self) -> usize {
        self.latency
    }

    /// `x[ch]` holds `block` frames; writes `atten_db[..block]`, lagging the input by `table.latency`.
    /// (Any length up to `block` is accepted, the same for every channel and `atten_db`.)
    pub fn process(&mut self, x: &[&[f32]], ceiling_db: f32, atten_db: &mut [f32]) {
        let len = atten_db.len();
        assert!(len <= self.block && x.len() == self.channels, "OversamplePeak::process: shape");
        let (t, latency, coeffs) = (self.taps, self.latency, &self.coeffs);
        let channel = |buf: &mut Vec<f32>, xc: &[f32], peak: &mut [f32]| {
            assert_eq!(xc.len(), len, "OversamplePeak::process: channel length");
            buf[t - 1..t - 1 + len].copy_from_slice(xc);
            // Phase 0 is the unit impulse at m = latency: the input sample itself.
            let x0 = &buf[t - 1 - latency..t - 1 - latency + len];
            for (p, &v) in peak.iter_mut().zip(x0) {
                *p = p.max(v.abs());
            }
            for cj in coeffs.chunks_exact(t).skip(1) {
                phase_peak(cj, &buf[..t - 1 + len], peak);
            }
            buf.copy_within(len..len + t - 1, 0);
        };
        let peak = &mut self.peak[..len];
        peak.fill(0.0);
        if self.rows.is_empty() {
            for (buf, xc) in self.hist.iter_mut().zip(x) {
                channel(buf, xc, peak);
            }
        } else {
            // Channels in parallel, each into its own row, then the max across rows: max is exact,
            // so the result is the same bits as one shared row in any order.
            self.rows.par_iter_mut().zip(self.hist.par_iter_mut()).zip(x.par_iter()).for_each(|((row, buf), xc)| {
                let row = &mut row[..len];
                row.fill(0.0);
                channel(buf, xc, row);
            });
            for row in &self.rows {
                for (p, &r) in peak.iter_mut().zip(&row[..len]) {
                    *p = p.max(r);
                }
            }
        }
        // a = max(0, 20 log10 p - ceiling) in f64, rounded UP to f32: with a never below the exact
        // attenuation, S >= a holds exactly downstream and a sample parked on the ceiling lands on
        // it to within the final product's rounding. Frames at or under the ceiling skip the log.
        attenuations(peak, ceiling_db as f64, atten_db);
        let _ = self.factor;
    }

    /// Forget all history (as if newly built).
    pub fn reset(&mut self) {
        for h in &mut self.hist {
            h.fill(0.0);
        }
    }
}

/// a = max(0, 20 log10 p - ceiling) rounded up to f32, for every frame of the call.
fn attenuations(peak: &[f32], ceiling: f64, atten_db: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { attenuations_avx2(peak, ceiling, atten_db) };
        return;
    }
    attenuations_loop(peak, ceiling, atten_db);
}

/// The same loop compiled for AVX2 (4 f64 lanes, 64-bit integer lanes for the exponent): the same
/// operations in the same order, no FMA, so the same bits as the SSE2 build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn attenuations_avx2(peak: &[f32], ceiling: f64, atten_db: &mut [f32]) {
    attenuations_loop(peak, ceiling, atten_db);
}

#[inline(always)]
fn attenuations_loop(peak: &[f32], ceiling: f64, atten_db: &mut [f32]) {
    for (a, &p) in atten_db.iter_mut().zip(peak) {
        // p = 0 (silence) would be log(0): evaluate at the smallest normal instead, far under
        // any ceiling, so the branch-free select below keeps a = 0.
        let p = (p as f64).max(f64::MIN_POSITIVE);
        let v = amplitude_db(p) + DB_BIAS - ceiling;
        *a = if v > 0.0 { f32_at_least(v) } else { 0.0 };
    }
}

/// The smallest f32 not below `v` (0 < v < 2^128), branch-free.
#[inline(always)]
fn f32_at_least(v: f64) -> f32 {
    let f = v as f32;
    let above = f32::from_bits(f.to_bits() + 1);
    if (f as f64) < v { above } else { f }
}

/// Covers `amplitude_db`'s error (< 1e-12 dB) so that a is never below the exact attenuation;
/// 1e-10 dB is a gain error of 1e-11, far below anything f32 can hold.
const DB_BIAS: f64 = 1e-10;

/// 20 log10(p) for a positive, finite, normal p, in plain f64 arithmetic: no libm, so the same bits
/// on every platform (render farms mix glibc, musl and macOS), and no call in the frame loop.
/// p = 2^e m with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...) with
/// s = (m-1)/(m+1), |s| <= 0.172: the series to s^17 leaves a truncation of s^19/19 < 1e-15
/// relative, so the result is within a few f64 ulps (< 1e-12 dB; tests/limiter.rs measures it).
#[inline(always)]
pub fn amplitude_db(p: f64) -> f64 {
    const SQRT2: f64 = std::f64::consts::SQRT_2;
    // 2^52 + 1023: the biased exponent field, OR-ed into the mantissa of 2^52, reads back as an
    // integer-valued f64 without an int-to-float conversion (which SSE2/AVX2 lack for 64 bits).
    const EXP_MAGIC: f64 = 4503599627370496.0 + 1023.0; // 2^52 + 1023
    let bits = p.to_bits();
    let e_field = f64::from_bits(0x4330_0000_0000_0000 | ((bits >> 52) & 0x7ff));
    let m1 = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m1 >= SQRT2;
    let m = if big { m1 * 0.5 } else { m1 };
    let e = (e_field - EXP_MAGIC) + if big { 1.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0 + s2 * (1.0 / 17.0))))))));
    let ln_p = e * std::f64::consts::LN_2 + 2.0 * s * series;
    ln_p * (20.0 / std::f64::consts::LN_10)
}

/// peak[n] = max(peak[n], |sum_m c[m] * xs[T-1+n-m]|) for n in 0..peak.len(), where
/// xs.len() == T-1 + peak.len(). The sum over m runs in the same order (m = 0, 1, ...) with a
/// separate multiply and add for every frame, tiled or not, SSE or AVX (no FMA: it would round
/// differently), so the result does not depend on the code path or the machine.
#[inline]
fn phase_peak(c: &[f32], xs: &[f32], peak: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        unsafe { phase_peak_avx(c, xs, peak) };
        return;
    }
    phase_peak_tiled::<TILE>(c, xs, peak);
}

/// The same loops compiled for AVX: 8-wide vectors, 64-frame tiles (eight ymm accumulators, enough
/// independent additions in flight to hide the adder's latency).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn phase_peak_avx(c: &[f32], xs: &[f32], peak: &mut [f32]) {
    phase_peak_tiled::<{ 2 * TILE }>(c, xs, peak);
}

#[inline(always)]
fn phase_peak_tiled<const N: usize>(c: &[f32], xs: &[f32], peak: &mut [f32]) {
    let t = c.len();
    let len = peak.len();
    let full = len / N * N;
    let (head, tail) = peak.split_at_mut(full);
    for (k, pk) in head.chunks_exact_mut(N).enumerate() {
        let n0 = k * N;
        let mut acc = [0.0f32; N];
        for (m, &cm) in c.iter().enumerate() {
            let w: &[f32; N] = xs[n0 + t - 1 - m..n0 + t - 1 - m + N].try_into().unwrap();
            for (a, &v) in acc.iter_mut().zip(w) {
                *a += cm * v;
            }
        }
        for (p, a) in pk.iter_mut().zip(acc) {
            *p = p.max(a.abs());
        }
    }
    for (i, p) in tail.iter_mut().enumerate() {
        let n = full + i;
        let mut a = 0.0f32;
        for (m, &cm) in c.iter().enumerate() {
            a += cm * xs[n + t - 1 - m];
        }
        *p = p.max(a.abs());
    }
}
