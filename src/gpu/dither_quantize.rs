//! Host side of `shaders/dither_quantize.wgsl`: planar f32 blocks to interleaved PCM bytes on the
//! device (TPDF dither from integer hashing, round half to even, clamp), so only the delivery
//! format crosses back to the host, with the count of samples beyond full scale that the CPU
//! writer keeps (`WavWriter::write_planar`). Twin of `src/cpu/dither_quantize.rs`.
use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};
use crate::model::SampleFormat;

/// Keep in sync with `DitherConfig` in shaders/dither_quantize.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct DitherConfig {
    pub format: u32,
    pub channels: u32,
    pub block: u32,
    pub input: u32,
    pub seed: u32,
    pub dither: u32,
    pub _pad: [u32; 2],
}

/// Keep in sync with `DitherImmediates` in shaders/dither_quantize.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct DitherImmediates {
    pub frame_lo: u32,
    pub frame_hi: u32,
    pub frames: u32,
    pub _pad: u32,
}

/// The compiled stage, shared by every output's `DitherQuantize` of a chain (one compilation).
pub struct DitherPipeline {
    kernel: Kernel,
    pipeline: wgpu::ComputePipeline,
}

impl DitherPipeline {
    pub fn new(ctx: &GpuContext) -> Result<DitherPipeline> {
        use Bind::*;
        let kernel = Kernel::new(
            ctx,
            Stage::DitherQuantize,
            Precision::F32,
            &[Read, Read, ReadWrite, ReadWrite],
            std::mem::size_of::<DitherImmediates>() as u32,
        )?;
        Ok(DitherPipeline { pipeline: kernel.pipeline(ctx, "main", &[])?, kernel })
    }
}

pub struct DitherQuantize {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    /// The packed bytes of the last encoded block, `packed_len(frames)` of them.
    pub packed: wgpu::Buffer,
    /// One u32: samples beyond full scale, added to by every `encode` (clear it per block).
    pub over_full_scale: wgpu::Buffer,
    channels: usize,
    bytes_per_sample: usize,
}

impl DitherQuantize {
    /// Quantise `channels` channels of `block` frames read from `planar` (channel c at element
    /// `input_base + c * block`) to `format`; `seed = None` for no dither.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        pipe: &DitherPipeline,
        format: SampleFormat,
        seed: Option<u32>,
        channels: usize,
        block: usize,
        planar: &wgpu::Buffer,
        input_base: usize,
    ) -> Result<DitherQuantize> {
        let code = match format {
            SampleFormat::Pcm16 => 0,
            SampleFormat::Pcm24 => 1,
            SampleFormat::Pcm32 => 2,
            SampleFormat::F32 => 3,
        };
        if channels == 0 {
            return Err(Error::Internal("dither_quantize: no channels".into()));
        }
        let cfg = DitherConfig {
            format: code,
            channels: channels as u32,
            block: block as u32,
            input: input_base as u32,
            seed: seed.unwrap_or(0),
            dither: (seed.is_some() && format != SampleFormat::F32) as u32,
            _pad: [0; 2],
        };
        let cfg_buf = ctx.storage_init("dither_quantize config", std::slice::from_ref(&cfg));
        let bps = format.bytes_per_sample();
        let packed = ctx.storage("dither_quantize packed", (block * channels * bps) as u64);
        let over_full_scale = ctx.storage("dither_quantize over full scale", 4);
        let bind = pipe.kernel.bind(ctx, &[&cfg_buf, planar, &packed, &over_full_scale]);
        Ok(DitherQuantize {
            pipeline: pipe.pipeline.clone(),
            bind,
            packed,
            over_full_scale,
            channels,
            bytes_per_sample: bps,
        })
    }

    /// Bytes of a packed block of `frames` frames.
    pub fn packed_len(&self, frames: usize) -> usize {
        frames * self.channels * self.bytes_per_sample
    }

    /// Pack `frames` frames whose first is program frame `first_frame` (the dither's frame index),
    /// adding the samples among them beyond full scale to `over_full_scale`.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, first_frame: u64, frames: usize) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        let imm = DitherImmediates {
            frame_lo: first_frame as u32,
            frame_hi: (first_frame >> 32) as u32,
            frames: frames as u32,
            _pad: 0,
        };
        pass.set_immediates(0, bytemuck::bytes_of(&imm));
        let words = self.packed_len(frames).div_ceil(4);
        // At most 65535 workgroups per dimension: fold the rest into y (the shader unfolds it).
        let g = groups(words, 64);
        pass.dispatch_workgroups(g.min(65535), g.div_ceil(65535), 1);
    }
}
