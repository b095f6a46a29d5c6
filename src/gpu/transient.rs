//! Host side of `shaders/transient.wgsl`: the `transient` stage of a stem's process chain, in place
//! on the stem's channels of a block buffer. One invocation per stem runs the followers serially over
//! the block; their state (F, S) is carried across blocks in a device buffer. Twin of
//! `src/cpu/transient.rs`.
use bytemuck::{Pod, Zeroable};

use crate::cpu::transient::Coefficients;
use crate::error::Result;
use crate::gpu::ProcessStage;
use crate::gpu::context::{Bind, GpuContext, Kernel, Precision, Stage};

/// Keep in sync with `TransientConfig` in shaders/transient.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct TransientConfig {
    pub block: u32,
    pub channels: u32,
    pub first: u32,
    pub _pad: u32,
    pub fast_attack: f32,
    pub fast_release: f32,
    pub slow_attack: f32,
    pub slow_release: f32,
    pub attack_db: f32,
    pub sustain_db: f32,
    pub db_to_nepers: f32,
    pub _pad1: u32,
}

pub struct Transient {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    state: wgpu::Buffer,
}

impl Transient {
    /// On the `channels` channels of `block` frames whose first starts at element `first` of `x`.
    pub fn new(
        ctx: &GpuContext,
        p: &crate::model::Transient,
        sample_rate: u32,
        channels: usize,
        block: usize,
        x: &wgpu::Buffer,
        first: usize,
    ) -> Result<Transient> {
        let c = Coefficients::new(p, sample_rate);
        let cfg = TransientConfig {
            block: block as u32,
            channels: channels as u32,
            first: first as u32,
            _pad: 0,
            fast_attack: c.fast_attack,
            fast_release: c.fast_release,
            slow_attack: c.slow_attack,
            slow_release: c.slow_release,
            attack_db: p.attack_db as f32,
            sustain_db: p.sustain_db as f32,
            db_to_nepers: c.db_to_nepers,
            _pad1: 0,
        };
        let kernel =
            Kernel::new(ctx, Stage::Transient, Precision::F32, &[Bind::Read, Bind::ReadWrite, Bind::ReadWrite], 0)?;
        let cfg = ctx.storage_init("transient config", std::slice::from_ref(&cfg));
        let state = ctx.storage("transient followers", 8);
        let bind = kernel.bind(ctx, &[&cfg, x, &state]);
        let pipeline = kernel.pipeline(ctx, "main", &[])?;
        ctx.check()?;
        Ok(Transient { pipeline, bind, state })
    }
}

impl ProcessStage for Transient {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, _block_index: u64) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }

    fn reset(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.clear_buffer(&self.state, 0, None);
    }
}
