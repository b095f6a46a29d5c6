//! The polyphase windowed-sinc oversampling table used by the limiter's true-peak detection.
//!
//! One Kaiser-windowed sinc with its cutoff at the input Nyquist frequency, sampled at the K
//! sub-sample offsets j/K (DESIGN.md "DSP" 6). Designed in f64, handed to both engines in f32.
use std::f64::consts::PI;

/// K phases of `taps_per_phase` coefficients, phase-major: `coeffs[j * taps_per_phase + m]`.
/// Sub-sample j of frame n (time n + j/K) is `sum_m coeffs[j*T + m] * x[n + latency_offset - m]`,
/// evaluated causally; phase 0 is a unit impulse so it reproduces the input sample exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct OversamplingTable {
    pub factor: usize,
    pub taps_per_phase: usize,
    pub coeffs: Vec<f32>,
    /// Frames by which the causal peak output lags the input.
    pub latency: usize,
}

/// Taps per phase for K > 1 (so (K-1)*24 multiply-adds per sample and channel: phase 0 is free).
/// MEASURED with `design_oversampling_kaiser` as the worst error vector |H_j(f) - e^{i w j/K}| over
/// every phase j and 0..20 kHz at 48 kHz, in dB of amplitude (tests/limiter.rs checks the result):
///   T = 16: 0.12 dB (beta 4), T = 20: 0.04 dB (beta 5), T = 24: 0.015 dB (beta 6),
///   T = 32: 0.009 dB (beta 6), 0.06 dB (beta 4).
/// 24 taps meet the 0.1 dB asked for a sine anywhere below 20 kHz with a wide margin; the transition
/// band (20..28 kHz for content below 20 kHz) is what costs taps. Longer or sharper tables did not
/// lower the true-peak margin the independent meters need (see cpu::limiter::TRUE_PEAK_MARGIN_DB):
/// that margin is set by the meters' own interpolators, not by ours.
pub const OVERSAMPLING_TAPS_PER_PHASE: usize = 24;

/// Kaiser beta of the prototype: trades passband ripple (lower beta: more) against transition
/// width (higher beta: the 20 kHz edge sinks); the best for 24 taps by the measurement above.
pub const OVERSAMPLING_KAISER_BETA: f64 = 6.0;

/// Design the table for factor 1, 2, 4 or 8 (factor 1: a single unit tap, latency 0).
pub fn design_oversampling(factor: usize) -> OversamplingTable {
    if factor <= 1 {
        return OversamplingTable { factor: 1, taps_per_phase: 1, coeffs: vec![1.0], latency: 0 };
    }
    design_oversampling_kaiser(factor, OVERSAMPLING_TAPS_PER_PHASE, OVERSAMPLING_KAISER_BETA)
}

/// Frames by which a signal interpolated by `table` and decimated again by its transpose lags the
/// input (the `saturation` stage, `cpu::saturation`): the interpolator's `latency` (T/2, the causal
/// output of frame n comes at n + T/2) plus the decimator's, T − 1 − latency = T/2 − 1 (the
/// transposed filter reaches T/2 − 1 frames past the output frame, sub-sample K − 1 of frame n + T/2 − 1
/// being the last one with a non-zero tap): T − 1 in all, 23 frames for the designed tables. 0 for
/// factor 1 (no filters).
pub fn resampling_latency(table: &OversamplingTable) -> usize {
    if table.factor <= 1 { 0 } else { table.latency + (table.taps_per_phase - 1 - table.latency) }
}

/// `design_oversampling` with explicit taps per phase (even) and Kaiser beta, for measurement.
///
/// Sub-sample j of frame n sits at time t = n + j/K and is interpolated from x[n + T/2 - m],
/// m = 0..T, i.e. T/2 samples on either side of [n, n+1): the weight of x[i] is
/// sinc(t - i) * w(t - i) with t - i = m - T/2 + j/K, the window spanning |t - i| < T/2. The causal
/// output at frame n + T/2 therefore belongs to frame n: latency = T/2. Phase 0 lands on the
/// integer offsets, where the sinc is exactly the unit impulse at m = T/2. Each phase is scaled to
/// unit DC gain so that a constant reads the same at every sub-sample.
pub fn design_oversampling_kaiser(factor: usize, taps_per_phase: usize, beta: f64) -> OversamplingTable {
    assert!(factor >= 2 && taps_per_phase >= 2 && taps_per_phase.is_multiple_of(2));
    let t = taps_per_phase;
    let half = (t / 2) as f64;
    let mut coeffs = vec![0.0f32; factor * t];
    for (j, phase) in coeffs.chunks_exact_mut(t).enumerate() {
        if j == 0 {
            phase[t / 2] = 1.0;
            continue;
        }
        let frac = j as f64 / factor as f64;
        let w: Vec<f64> = (0..t)
            .map(|m| {
                let tau = m as f64 - half + frac;
                let sinc = (PI * tau).sin() / (PI * tau);
                sinc * kaiser(tau / half, beta)
            })
            .collect();
        let dc: f64 = w.iter().sum();
        for (c, v) in phase.iter_mut().zip(&w) {
            *c = (v / dc) as f32;
        }
    }
    OversamplingTable { factor, taps_per_phase: t, coeffs, latency: t / 2 }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the betas
/// used here).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    let mut k = 1.0;
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// Kaiser window value at position r in [-1, 1] (0 = centre).
pub fn kaiser(r: f64, beta: f64) -> f64 {
    if r.abs() >= 1.0 {
        return if r.abs() == 1.0 { 1.0 / bessel_i0(beta) } else { 0.0 };
    }
    bessel_i0(beta * (1.0 - r * r).sqrt()) / bessel_i0(beta)
}
