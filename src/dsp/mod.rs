//! Coefficient design shared by both engines: computed once on the CPU in f64, handed out as f32
//! tables so that the engines differ only in the order of arithmetic (DESIGN.md "DSP").
pub mod eq_design;
pub mod kweighting;
pub mod oversampling;
pub mod resample;

use crate::model::Process;

/// Frames by which a `process` stage delays its signal at `sample_rate`: the one latency the plan
/// and both engines align it by (`engine::StemPlan::latency`, `engine::Alignment`). Here, not in
/// `model`, because some depend on designed filters.
pub fn process_latency(process: &Process, sample_rate: u32) -> usize {
    match process {
        Process::Compressor(c) => c.lookahead(sample_rate),
        // The high-pass on S is linear phase, `taps` long; M waits as long.
        Process::Width(w) if w.mono_below_hz > 0.0 => (w.taps - 1) / 2,
        Process::Width(_) | Process::Transient(_) => 0,
        // The interpolator's latency plus the decimator's, 0 without oversampling.
        Process::Saturation(p) => oversampling::resampling_latency(&oversampling::design_oversampling(p.oversampling)),
    }
}
