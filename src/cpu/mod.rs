//! The CPU reference engine: one file per stage, named as its shader (`shaders/<stage>.wgsl`) and its
//! GPU host code (`src/gpu/<stage>.rs`). Each stage: `new(...)` allocates, `process(...)` does not.
pub mod bus_chain;
pub mod compressor;
pub mod delay_line;
pub mod dither_quantize;
pub mod engine;
pub mod fir_convolve;
pub mod gain_sum;
pub mod limiter;
pub mod limiter_apply;
pub mod limiter_hold;
pub mod limiter_release;
pub mod limiter_smooth;
pub mod oversample_peak;
pub mod pcm_unpack;
pub mod saturation;
pub mod transient;
pub mod width;

use crate::model::Process;

/// A stage of a stem's `process` chain on the CPU: it works in place on one block of the stem's
/// channels, `[channel][frame]`, carrying its state from block to block.
pub trait Stage: Send + Sync {
    /// Frames by which its output lags its input: `dsp::process_latency`, which the engines'
    /// alignment (`engine::Alignment`) compensates with every other latency.
    fn latency(&self) -> usize;
    /// One block, every channel the same length, in place.
    fn process(&mut self, block: &mut [Vec<f32>]);
    /// One block with a key stem's processed block of the same frames as its side-chain (a
    /// compressor's `key`, ducking). The key is per block, so it comes with the block, not at
    /// construction; stages without a side-chain keep this default, which ignores it.
    fn process_keyed(&mut self, block: &mut [Vec<f32>], key: &[Vec<f32>]) {
        let _ = key;
        self.process(block);
    }
    /// Forget all history (as if newly built).
    fn reset(&mut self);
    /// For a stage that reduces gain (`compressor`): its reduction since it was built or reset,
    /// the mean over `frames` frames (the blocks it ran on: the engine's count, which the stem
    /// cache's capture pass also gives for passes other than its own).
    fn reduction(&self, frames: u64) -> Option<crate::engine::StageReduction> {
        let _ = frames;
        None
    }
    /// A bus stage whose `Process::share` is `Envelope`, with stem outputs: apply the gains the
    /// last `process` call applied to the bus to `part`, a stem's contribution already delayed by
    /// `latency()` frames, with the same arithmetic, so that the parts sum to the processed bus.
    fn apply_envelope(&self, _part: &mut [Vec<f32>]) {
        unreachable!("apply_envelope on a stage that is not a gain envelope")
    }
    /// Every bit of the state that shapes its future output, for a segmented render to prove that
    /// a segment's warm-up reached the state one machine has there (design/farm.md); None for a
    /// stage that does not expose it (segmented renders refuse it).
    fn state_bytes(&self) -> Option<Vec<u8>> {
        None
    }
}

/// The CPU stage that computes `process` on `channels` channels, in blocks of `block` frames at
/// `sample_rate`.
pub fn stage(process: &Process, channels: usize, block: usize, sample_rate: u32) -> Box<dyn Stage> {
    match process {
        Process::Compressor(p) => Box::new(compressor::Compressor::new(p, channels, block, sample_rate)),
        Process::Width(p) => Box::new(width::Width::new(p, block, sample_rate)),
        Process::Saturation(p) => Box::new(saturation::Saturation::new(p, block)),
        Process::Transient(p) => Box::new(transient::Transient::new(p, block, sample_rate)),
    }
}
