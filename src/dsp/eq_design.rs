//! EQ bands (RBJ Audio-EQ-Cookbook) -> one linear- or minimum-phase FIR; user impulse-response files.
//!
//! SKELETON: signatures are the contract; the DSP work fills in the bodies.
use std::path::Path;

use crate::error::Result;
use crate::session::{EqBand, Phase};

/// Magnitude (linear) of one band's cookbook response at `freq_hz`, for sample rate `fs`.
pub fn band_magnitude(band: &EqBand, fs: f64, freq_hz: f64) -> f64 {
    let _ = (band, fs, freq_hz);
    unimplemented!("eq_design::band_magnitude")
}

/// Design one FIR of `taps` (odd) whose magnitude is the product of the bands' magnitudes.
pub fn design_eq(bands: &[EqBand], fs: f64, taps: usize, phase: Phase) -> Vec<f32> {
    let _ = (bands, fs, taps, phase);
    unimplemented!("eq_design::design_eq")
}

/// Frames of delay the designed FIR adds: (taps-1)/2 for linear phase, 0 for minimum phase.
pub fn eq_latency(taps: usize, phase: Phase) -> usize {
    match phase {
        Phase::Linear => (taps - 1) / 2,
        Phase::Minimum => 0,
    }
}

/// Load a user impulse response: one FIR per channel of a `channels`-channel signal (a mono IR is
/// shared by all channels). Its sample rate must equal `fs`. Used as given (latency 0).
pub fn load_fir_file(path: &Path, channels: usize, fs: u32) -> Result<Vec<Vec<f32>>> {
    let _ = (path, channels, fs);
    unimplemented!("eq_design::load_fir_file")
}
