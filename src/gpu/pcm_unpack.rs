//! Host side of `shaders/pcm_unpack.wgsl`: raw interleaved little-endian PCM bytes uploaded as they
//! are read from the file (2-4x less than f32 for integer PCM at 16/24 bits) and converted to
//! planar f32 on the device. Twin of `src/cpu/pcm_unpack.rs`.
use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};
use crate::model::SourceEncoding;

/// Keep in sync with `UnpackConfig` in shaders/pcm_unpack.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct UnpackConfig {
    pub format: u32,
    pub channels: u32,
    pub block: u32,
    pub output: u32,
}

/// Keep in sync with `UnpackImmediates` in shaders/pcm_unpack.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct UnpackImmediates {
    pub frames: u32,
}

/// The shader's format code and the bytes per sample of an encoding it can unpack.
pub fn format_code(encoding: SourceEncoding) -> Option<(u32, usize)> {
    match encoding {
        SourceEncoding::Int16 => Some((0, 2)),
        SourceEncoding::Int24 => Some((1, 3)),
        SourceEncoding::Int32 => Some((2, 4)),
        SourceEncoding::Float32 => Some((3, 4)),
        SourceEncoding::Float64 => Some((4, 8)),
        SourceEncoding::Coded { .. } => None,
    }
}

/// The compiled stage, shared by every stem's `PcmUnpack` of a chain (one compilation).
pub struct PcmUnpackPipeline {
    kernel: Kernel,
    pipeline: wgpu::ComputePipeline,
}

impl PcmUnpackPipeline {
    pub fn new(ctx: &GpuContext) -> Result<PcmUnpackPipeline> {
        use Bind::*;
        let kernel = Kernel::new(
            ctx,
            Stage::PcmUnpack,
            Precision::F32,
            &[Read, Read, ReadWrite],
            std::mem::size_of::<UnpackImmediates>() as u32,
        )?;
        Ok(PcmUnpackPipeline { pipeline: kernel.pipeline(ctx, "main", &[])?, kernel })
    }
}

pub struct PcmUnpack {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    bytes: wgpu::Buffer,
    block: usize,
    channels: usize,
    bytes_per_frame: usize,
    frames: usize,
}

impl PcmUnpack {
    /// Unpack blocks of up to `block` frames of `channels` channels into `planar`, channel c at
    /// element `output_base + c * block`.
    pub fn new(
        ctx: &GpuContext,
        pipe: &PcmUnpackPipeline,
        encoding: SourceEncoding,
        channels: usize,
        block: usize,
        planar: &wgpu::Buffer,
        output_base: usize,
    ) -> Result<PcmUnpack> {
        let (format, bps) =
            format_code(encoding).ok_or_else(|| Error::Internal(format!("pcm_unpack: {encoding:?} is not raw PCM")))?;
        let cfg = UnpackConfig { format, channels: channels as u32, block: block as u32, output: output_base as u32 };
        let cfg_buf = ctx.storage_init("pcm_unpack config", std::slice::from_ref(&cfg));
        let bytes = ctx.storage("pcm_unpack bytes", (block * channels * bps) as u64);
        let bind = pipe.kernel.bind(ctx, &[&cfg_buf, &bytes, planar]);
        Ok(PcmUnpack {
            pipeline: pipe.pipeline.clone(),
            bind,
            bytes,
            block,
            channels,
            bytes_per_frame: channels * bps,
            frames: 0,
        })
    }

    /// Queue the raw bytes of the next block (whole frames, at most `block`); fewer frames than
    /// `block` leave zeros after them. Returns the bytes queued: `raw`, its tail padded to a word.
    pub fn upload(&mut self, queue: &wgpu::Queue, raw: &[u8]) -> Result<usize> {
        let frames = raw.len() / self.bytes_per_frame;
        if frames > self.block || !raw.len().is_multiple_of(self.bytes_per_frame) {
            return Err(Error::Internal(format!(
                "pcm_unpack: {} bytes is not a whole number of frames of {} bytes, at most {}",
                raw.len(),
                self.bytes_per_frame,
                self.block
            )));
        }
        let whole = raw.len() / 4 * 4;
        if whole > 0 {
            queue.write_buffer(&self.bytes, 0, &raw[..whole]);
        }
        if whole < raw.len() {
            let mut tail = [0u8; 4];
            tail[..raw.len() - whole].copy_from_slice(&raw[whole..]);
            queue.write_buffer(&self.bytes, whole as u64, &tail);
        }
        self.frames = frames;
        Ok(raw.len().next_multiple_of(4))
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        let imm = UnpackImmediates { frames: self.frames as u32 };
        pass.set_immediates(0, bytemuck::bytes_of(&imm));
        pass.dispatch_workgroups(groups(self.block, 64), self.channels as u32, 1);
    }
}
