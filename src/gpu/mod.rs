//! The GPU engine: wgpu context, one host file per stage (named as its shader and CPU twin), and
//! the engine that keeps the per-block chain on the device.
pub mod context;
pub mod knobs;

pub mod compressor;
pub mod delay_line;
pub mod dither_quantize;
pub mod fir_convolve;
pub mod gain_sum;
pub mod limiter_apply;
pub mod limiter_hold;
pub mod limiter_release;
pub mod limiter_smooth;
pub mod meter;
pub mod oversample_peak;
pub mod pcm_unpack;
pub mod saturation;
pub mod transient;
pub mod width;

mod chain;
pub mod engine;

pub use context::{AdapterSummary, GpuContext, list_adapters};
pub use engine::GpuEngine;

use crate::error::Result;
use crate::model::Process;

/// A stage of a stem's `process` chain on the device: it works in place on the stem's channels of
/// the block buffer it was built on. The chain encodes it after the stem's EQ, before the sum.
pub trait ProcessStage {
    /// Block `block_index` of the pass (stages with a ring of blocks on the device index it).
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, block_index: u64);
    /// Clear the state it carries across blocks (the start of a pass); none by default.
    fn reset(&self, _encoder: &mut wgpu::CommandEncoder) {}
}

/// The device stage that computes `process` at `sample_rate` on the `channels` channels of `block`
/// frames that start at element `first` of `x` (channel c at `first + c·block`).
pub fn process_stage(
    ctx: &GpuContext,
    process: &Process,
    channels: usize,
    block: usize,
    sample_rate: u32,
    x: &wgpu::Buffer,
    first: usize,
) -> Result<Box<dyn ProcessStage>> {
    Ok(match process {
        Process::Compressor(p) => {
            Box::new(compressor::Compressor::new(ctx, p, channels, block, sample_rate, x, first)?)
        }
        Process::Width(p) => Box::new(width::Width::new(ctx, p, block, sample_rate, x, first)?),
        Process::Saturation(p) => Box::new(saturation::Saturation::new(ctx, p, channels, block, x, first)?),
        Process::Transient(p) => Box::new(transient::Transient::new(ctx, p, sample_rate, channels, block, x, first)?),
    })
}
