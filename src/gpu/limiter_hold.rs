//! Host side of `shaders/limiter_hold.wgsl`: the look-ahead hold, a sliding-window maximum of L
//! frames (van Herk / Gil-Werman) with the L - 1 frames of halo carried across blocks.
//! Twin of `src/cpu/limiter_hold.rs`.
use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};

/// Keep in sync with `HoldConfig` in shaders/limiter_hold.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct HoldConfig {
    pub block: u32,
    pub lookahead: u32,
    pub segments: u32,
    pub _pad: u32,
}

/// Keep in sync with `HoldImmediates` in shaders/limiter_hold.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct HoldImmediates {
    pub block_index: u32,
}

pub struct LimiterHold {
    scan: wgpu::ComputePipeline,
    combine: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    halo: wgpu::Buffer,
    block: usize,
    segments: usize,
}

impl LimiterHold {
    /// `held_db[t] = max(atten_db[t - L + 1 ..= t])` per block of `block` frames.
    pub fn new(
        ctx: &GpuContext,
        lookahead: usize,
        block: usize,
        atten_db: &wgpu::Buffer,
        held_db: &wgpu::Buffer,
    ) -> Result<LimiterHold> {
        use Bind::*;
        let lookahead = lookahead.max(1);
        let kernel = Kernel::new(
            ctx,
            Stage::LimiterHold,
            Precision::F32,
            &[Read, Read, ReadWrite, ReadWrite, ReadWrite],
            std::mem::size_of::<HoldImmediates>() as u32,
        )?;
        let segments = (block + lookahead - 1).div_ceil(lookahead);
        let cfg = HoldConfig { block: block as u32, lookahead: lookahead as u32, segments: segments as u32, _pad: 0 };
        let cfg_buf = ctx.storage_init("limiter_hold config", std::slice::from_ref(&cfg));
        let halo = ctx.storage("limiter_hold halo", (2 * (lookahead - 1).max(1) * 4) as u64);
        let scratch = ctx.storage("limiter_hold scratch", (2 * segments * lookahead * 4) as u64);
        let bind = kernel.bind(ctx, &[&cfg_buf, atten_db, held_db, &halo, &scratch]);
        Ok(LimiterHold {
            scan: kernel.pipeline(ctx, "scan", &[])?,
            combine: kernel.pipeline(ctx, "combine", &[])?,
            bind,
            halo,
            block,
            segments,
        })
    }

    pub fn reset(&self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(&self.halo, 0, None);
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, block_index: u64) {
        let imm = HoldImmediates { block_index: block_index as u32 };
        for (pipeline, n) in [(&self.scan, 2 * self.segments), (&self.combine, self.block)] {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &self.bind, &[]);
            pass.set_immediates(0, bytemuck::bytes_of(&imm));
            pass.dispatch_workgroups(groups(n, 64), 1, 1);
        }
    }
}
