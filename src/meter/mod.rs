//! The BS.1770-4 / EBU R128 meter, in one room: the `ebur128` crate with the layout's channel
//! weights (`LoudnessMeter`), the crate's gating regrouped from 100 ms step energies (`gating`), the
//! host half of the device meter (`EnergyMeter`), and whole files (`measure_file`). Both engines'
//! hosts, the solve, `check` and `measure` read loudness through it.
//!
//! The `ebur128` crate is the project's reference meter (DESIGN.md DSP 5). This wrapper fixes the
//! channel map from the bus layout (never the crate's default map, which weights a 7.1 file's side
//! pair as unused), tracks the maximum momentary and short-term loudness at the 100 ms steps EBU
//! Tech 3341 specifies, and reports everything in dB with silence as -inf.
//!
//! Cost (BENCHMARKS.md, stage throughput): the crate's `loudness_momentary()` and
//! `loudness_shortterm()` re-sum their whole 400 ms / 3 s window of K-weighted samples on every
//! call, so reading them every 100 ms costs 34 passes over the signal, more than the rest of the
//! meter. The crate exposes no block energies (its filter and histories are private in 0.1), but
//! `loudness_window(100)` sums only the last 100 ms of its own K-weighted buffer: one pass. The
//! momentary and short-term energies are then the means of the last 4 and 30 of those 100 ms
//! energies, which is the crate's own window sum regrouped (f64 rounding apart). The true peak,
//! the crate's most expensive reading, comes from `PeakScan`, one per channel: the crate's own 4x
//! interpolator, reproduced to the bit but run several output frames at a time (the crate's runs
//! each channel on its own, so a one-channel reading is exactly what the multichannel one reads),
//! fed in parallel beside the loudness instance.
mod bank;
mod dialogue;
mod energy;
mod file;
mod gating;
mod k_weighting;
mod loudness_meter;
mod peak_scan;
mod true_peak;

pub use bank::MeterBank;
pub use dialogue::{DialogueLoudness, dialogue_gated};
pub use energy::EnergyMeter;
pub use file::{METER_BLOCK, measure_file, meter_reader, meter_reader_blocks};
pub use gating::{LoudnessCurves, StepMaxima, channel_map, channel_weight, gated_loudness, loudness_range};
pub use k_weighting::KWeighting;
pub use loudness_meter::{LoudnessMeter, StepCurves, step_frames_at};
pub use peak_scan::PeakScan;
pub use true_peak::TruePeakMeter;

use serde::{Serialize, Serializer};

/// What one meter read over a whole program. Levels in dB; -inf where there is nothing to measure
/// (silence, or a program shorter than one gating block), serialized as JSON `null`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoudnessStats {
    /// Gated integrated loudness, LUFS (BS.1770-4 2.1).
    #[serde(serialize_with = "finite_or_null")]
    pub integrated_lufs: f64,
    /// Loudness range, LU (EBU Tech 3342).
    #[serde(serialize_with = "finite_or_null")]
    pub lra_lu: f64,
    /// Highest momentary (400 ms) loudness at any 100 ms step, LUFS (EBU Tech 3341).
    #[serde(serialize_with = "finite_or_null")]
    pub max_momentary_lufs: f64,
    /// Highest short-term (3 s) loudness at any 100 ms step, LUFS (EBU Tech 3341).
    #[serde(serialize_with = "finite_or_null")]
    pub max_short_term_lufs: f64,
    /// Highest |sample| over all channels (LFE included: peaks are physical), dBFS.
    #[serde(serialize_with = "finite_or_null")]
    pub sample_peak_dbfs: f64,
    /// Highest true peak over all channels (BS.1770-4 Annex 2, the crate's 4x interpolator below
    /// 96 kHz), dBTP. Never below the sample peak.
    #[serde(serialize_with = "finite_or_null")]
    pub true_peak_dbtp: f64,
}

/// JSON has no -inf: a level that is not a finite number is written as `null`.
pub fn finite_or_null<S: Serializer>(value: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    if value.is_finite() { s.serialize_f64(*value) } else { s.serialize_none() }
}

/// As `finite_or_null`, for optional levels.
pub fn opt_finite_or_null<S: Serializer>(value: &Option<f64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(v) if v.is_finite() => s.serialize_f64(*v),
        _ => s.serialize_none(),
    }
}

/// Linear amplitude to dB; 0 gives -inf.
pub fn amplitude_db(x: f64) -> f64 {
    if x > 0.0 { 20.0 * x.log10() } else { f64::NEG_INFINITY }
}

/// The most channels the `ebur128` crate meters.
pub const MAX_CHANNELS: usize = 64;
/// Sample rates the `ebur128` crate meters (its `EbuR128::new` refuses others).
pub const MIN_RATE: u32 = 16;
pub const MAX_RATE: u32 = 2_822_400;

/// What a meter measures. The render's analysis pass needs only the integrated loudness, and
/// reading momentary/short-term loudness every 100 ms costs more than the rest of the meter
/// together (BENCHMARKS.md, stage throughput).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterScope {
    /// Integrated loudness only; the other readings are NaN/-inf (null in JSON).
    Integrated,
    /// Everything in `LoudnessStats`.
    Full,
}

/// 100 ms sub-blocks in a short-term (3 s) window.
pub(crate) const SHORT_TERM_STEPS: usize = 30;
/// 100 ms sub-blocks in a momentary (400 ms) window.
pub(crate) const MOMENTARY_STEPS: usize = 4;

/// Run `f` with the x86 flush-to-zero bit set, as the crate's filter runs its K-weighting and
/// interpolator (`ebur128::filter::ftz`): a result that would be subnormal is 0.0 in both
/// (`PeakScan`, `KWeighting`). Elsewhere the crate sets nothing, and neither does this.
#[cfg(target_arch = "x86_64")]
#[allow(deprecated)]
fn with_ftz<T>(f: impl FnOnce() -> T) -> T {
    use std::arch::x86_64::{_MM_FLUSH_ZERO_ON, _mm_getcsr, _mm_setcsr};
    // SAFETY: only the flush-to-zero bit changes, and the saved register is restored below before
    // anything else runs on this thread.
    let csr = unsafe { _mm_getcsr() };
    unsafe { _mm_setcsr(csr | _MM_FLUSH_ZERO_ON) };
    let r = f();
    unsafe { _mm_setcsr(csr) };
    r
}

#[cfg(not(target_arch = "x86_64"))]
fn with_ftz<T>(f: impl FnOnce() -> T) -> T {
    f()
}
