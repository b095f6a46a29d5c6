//! Host side of `shaders/limiter_smooth.wgsl`: the attack smoothing (an L-frame box over the
//! released attenuation, summed per output) and the conversion to a linear gain, with L - 1
//! frames of halo carried across blocks. Twin of `src/cpu/limiter_smooth.rs`.
use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};

/// Keep in sync with `SmoothConfig` in shaders/limiter_smooth.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SmoothConfig {
    pub block: u32,
    pub lookahead: u32,
    pub _pad: [u32; 2],
}

/// Keep in sync with `SmoothImmediates` in shaders/limiter_smooth.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SmoothImmediates {
    pub block_index: u32,
}

/// Outputs per invocation (`RUN` in the shader).
const RUN: usize = 16;

pub struct LimiterSmooth {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    halo: wgpu::Buffer,
    block: usize,
}

impl LimiterSmooth {
    pub fn new(
        ctx: &GpuContext,
        precision: Precision,
        lookahead: usize,
        block: usize,
        released_db: &wgpu::Buffer,
        gain: &wgpu::Buffer,
    ) -> Result<LimiterSmooth> {
        use Bind::*;
        let lookahead = lookahead.max(1);
        let kernel = Kernel::new(
            ctx,
            Stage::LimiterSmooth,
            precision,
            &[Read, Read, ReadWrite, ReadWrite],
            std::mem::size_of::<SmoothImmediates>() as u32,
        )?;
        let cfg = SmoothConfig { block: block as u32, lookahead: lookahead as u32, _pad: [0; 2] };
        let cfg_buf = ctx.storage_init("limiter_smooth config", std::slice::from_ref(&cfg));
        let halo = ctx.storage("limiter_smooth halo", (2 * (lookahead - 1).max(1) * 4) as u64);
        let bind = kernel.bind(ctx, &[&cfg_buf, released_db, gain, &halo]);
        Ok(LimiterSmooth { pipeline: kernel.pipeline(ctx, "main", &[])?, bind, halo, block })
    }

    pub fn reset(&self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(&self.halo, 0, None);
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, block_index: u64) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        let imm = SmoothImmediates { block_index: block_index as u32 };
        pass.set_immediates(0, bytemuck::bytes_of(&imm));
        pass.dispatch_workgroups(groups(self.block.div_ceil(RUN), 64), 1, 1);
    }
}
