//! Host side of `shaders/width.wgsl`: the `width` stage of a stereo stem's process chain, in place
//! on the stem's two channels of a block buffer. Twin of `src/cpu/width.rs`.
use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::ProcessStage;
use crate::gpu::context::{Bind, GpuContext, Kernel, Precision, Stage, groups};

/// Keep in sync with `WidthConfig` in shaders/width.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct WidthConfig {
    pub block: u32,
    pub left: u32,
    pub right: u32,
    pub width: f32,
}

pub struct Width {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    block: usize,
}

impl Width {
    /// On the stereo signal whose left channel starts at element `first` of `x` (right after it).
    pub fn new(
        ctx: &GpuContext,
        p: &crate::model::Width,
        block: usize,
        x: &wgpu::Buffer,
        first: usize,
    ) -> Result<Width> {
        let kernel = Kernel::new(ctx, Stage::Width, Precision::F32, &[Bind::Read, Bind::ReadWrite], 0)?;
        let cfg = WidthConfig {
            block: block as u32,
            left: first as u32,
            right: (first + block) as u32,
            width: p.width as f32,
        };
        let cfg = ctx.storage_init("width config", std::slice::from_ref(&cfg));
        Ok(Width { pipeline: kernel.pipeline(ctx, "main", &[])?, bind: kernel.bind(ctx, &[&cfg, x]), block })
    }
}

impl ProcessStage for Width {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(groups(self.block, 64), 1, 1);
    }
}
