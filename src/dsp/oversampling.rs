//! The polyphase windowed-sinc oversampling table used by the limiter's true-peak detection.
//!
//! SKELETON: signatures are the contract; the DSP work fills in the bodies.

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

/// Design the table for factor 1, 2, 4 or 8 (factor 1: a single unit tap, latency 0).
pub fn design_oversampling(factor: usize) -> OversamplingTable {
    let _ = factor;
    unimplemented!("oversampling::design_oversampling")
}
