//! Host side of `shaders/limiter_apply.wgsl`: y = x * g on consecutive channels of a block (the
//! master and every stem output), and the block's gain statistics for the report (`stats`).
//! Twin of `src/cpu/limiter_apply.rs`.
use bytemuck::{Pod, Zeroable};

use crate::engine::GainStats;
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};

/// Keep in sync with `ApplyImmediates` in shaders/limiter_apply.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ApplyImmediates {
    pub block: u32,
    pub channels: u32,
    pub x_base: u32,
    pub out_base: u32,
    pub len: u32,
}

/// Invocations of a `stats` workgroup. Keep in sync with STATS_GROUP in the shader.
const STATS_GROUP: usize = 256;
/// Frames one `stats` workgroup reduces: STATS_GROUP * STATS_PER_THREAD in the shader.
pub const STATS_SPAN: usize = STATS_GROUP * 16;

pub struct LimiterApply {
    pipeline: wgpu::ComputePipeline,
    stats: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    /// Per `stats` workgroup: (least gain, Σ log2 gain), f32 each.
    pub partials: wgpu::Buffer,
    block: usize,
}

impl LimiterApply {
    /// Gains from `gain` (block frames), signals from `x` into `y`.
    pub fn new(
        ctx: &GpuContext,
        block: usize,
        gain: &wgpu::Buffer,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<LimiterApply> {
        use Bind::*;
        let kernel = Kernel::new(
            ctx,
            Stage::LimiterApply,
            Precision::F32,
            &[Read, Read, ReadWrite, ReadWrite],
            std::mem::size_of::<ApplyImmediates>() as u32,
        )?;
        let partials = ctx.storage("limiter gain stats", (2 * 4 * groups(block, STATS_SPAN)) as u64);
        let bind = kernel.bind(ctx, &[gain, x, y, &partials]);
        Ok(LimiterApply {
            pipeline: kernel.pipeline(ctx, "main", &[])?,
            stats: kernel.pipeline(ctx, "stats", &[])?,
            bind,
            partials,
            block,
        })
    }

    fn immediates(&self, channels: usize, x_base: usize, out_base: usize, len: usize) -> ApplyImmediates {
        ApplyImmediates {
            block: self.block as u32,
            channels: channels as u32,
            x_base: x_base as u32,
            out_base: out_base as u32,
            len: len as u32,
        }
    }

    /// `channels` consecutive channels from element `x_base` of `x` to element `out_base` of `y`.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, channels: usize, x_base: usize, out_base: usize) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        let imm = self.immediates(channels, x_base, out_base, self.block);
        pass.set_immediates(0, bytemuck::bytes_of(&imm));
        pass.dispatch_workgroups(groups(self.block, 64), channels as u32, 1);
    }

    /// The statistics of the first `len` gains of the block into `partials`.
    pub fn encode_stats(&self, pass: &mut wgpu::ComputePass<'_>, len: usize) {
        pass.set_pipeline(&self.stats);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.set_immediates(0, bytemuck::bytes_of(&self.immediates(0, 0, 0, len)));
        pass.dispatch_workgroups(groups(self.block, STATS_SPAN), 1, 1);
    }

    /// Bytes of `partials` a block's statistics fill.
    pub fn stats_bytes(&self) -> u64 {
        (2 * 4 * groups(self.block, STATS_SPAN)) as u64
    }

    /// Finish `partials` (as read back, `stats_bytes` long) of a block of `len` frames: the least
    /// of the workgroups' least gains, and their log2 sums added in f64 and scaled to log10.
    pub fn decode_stats(bytes: &[u8], len: usize) -> GainStats {
        let partials: &[f32] = bytemuck::cast_slice(bytes);
        let (mut least, mut sum_log2) = (1.0f32, 0.0f64);
        for p in partials.chunks_exact(2) {
            least = least.min(p[0]);
            sum_log2 += p[1] as f64;
        }
        GainStats { least, sum_log10: sum_log2 * std::f64::consts::LOG10_2, frames: len }
    }
}
