//! Host side of `shaders/limiter_apply.wgsl`: y = x * g on consecutive channels of a block (the
//! master and every stem output). Twin of `src/cpu/limiter_apply.rs`.
use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::kernel::{Bind, Kernel, groups};

/// Keep in sync with `ApplyImmediates` in shaders/limiter_apply.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ApplyImmediates {
    pub block: u32,
    pub channels: u32,
    pub x_base: u32,
    pub out_base: u32,
}

pub struct LimiterApply {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
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
            "limiter_apply",
            &[Read, Read, ReadWrite],
            std::mem::size_of::<ApplyImmediates>() as u32,
        )?;
        let bind = kernel.bind(ctx, &[gain, x, y]);
        Ok(LimiterApply {
            pipeline: kernel.pipeline(ctx, "main", &[])?,
            bind,
            block,
        })
    }

    /// `channels` consecutive channels from element `x_base` of `x` to element `out_base` of `y`.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        channels: usize,
        x_base: usize,
        out_base: usize,
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        let imm = ApplyImmediates {
            block: self.block as u32,
            channels: channels as u32,
            x_base: x_base as u32,
            out_base: out_base as u32,
        };
        pass.set_immediates(0, bytemuck::bytes_of(&imm));
        pass.dispatch_workgroups(groups(self.block, 64), channels as u32, 1);
    }
}
