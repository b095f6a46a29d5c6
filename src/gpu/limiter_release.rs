//! Host side of `shaders/limiter_release.wgsl`: the release recursion D[t] = max(A[t], rho D[t-1])
//! as a chunked scan in one workgroup, bit-identical to the sequential recursion, with D carried
//! across blocks on the device. Twin of `src/cpu/limiter_release.rs`.
use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage};

/// Keep in sync with `ReleaseConfig` in shaders/limiter_release.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ReleaseConfig {
    pub block: u32,
    pub chunk: u32,
    pub rho: f32,
    pub _pad: u32,
}

/// Invocations of the one workgroup (`WG` in the shader).
const WG: usize = 256;

pub struct LimiterRelease {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    state: wgpu::Buffer,
}

impl LimiterRelease {
    pub fn new(
        ctx: &GpuContext,
        precision: Precision,
        rho: f32,
        block: usize,
        held_db: &wgpu::Buffer,
        released_db: &wgpu::Buffer,
    ) -> Result<LimiterRelease> {
        use Bind::*;
        let kernel = Kernel::new(ctx, Stage::LimiterRelease, precision, &[Read, Read, ReadWrite, ReadWrite], 0)?;
        let cfg = ReleaseConfig { block: block as u32, chunk: block.div_ceil(WG) as u32, rho, _pad: 0 };
        let cfg_buf = ctx.storage_init("limiter_release config", std::slice::from_ref(&cfg));
        // f64: D carried over, then the block's chunk-local D0; f32: D carried over.
        let state = match precision {
            Precision::F64 => ctx.storage("limiter_release state", ((1 + block) * 8) as u64),
            Precision::F32 => ctx.storage("limiter_release state", 4),
        };
        let bind = kernel.bind(ctx, &[&cfg_buf, held_db, released_db, &state]);
        Ok(LimiterRelease { pipeline: kernel.pipeline(ctx, "main", &[])?, bind, state })
    }

    pub fn reset(&self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(&self.state, 0, None);
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
}
