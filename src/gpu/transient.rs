//! Host side of `shaders/transient.wgsl`: the `transient` stage of a stem's process chain, in place
//! on the stem's channels of a block buffer. One invocation per stem runs the followers serially over
//! the block; their state (F, S) is carried across blocks in a device buffer. Twin of
//! `src/cpu/transient.rs`.
use bytemuck::{Pod, Zeroable};

use crate::cpu::transient::{Coefficients, cut_reduction};
use crate::engine::StageReduction;
use crate::error::Result;
use crate::gpu::context::{Bind, GpuContext, Kernel, Precision, Stage, groups};
use crate::gpu::{Dispatch, ProcessStage};

/// Keep in sync with `TransientConfig` in shaders/transient.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct TransientConfig {
    pub block: u32,
    pub channels: u32,
    pub first: u32,
    /// `share`: the stem contributions it applies the bus's gains to.
    pub parts: u32,
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
    kernel: Kernel,
    cfg: TransientConfig,
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
            parts: 0,
            fast_attack: c.fast_attack,
            fast_release: c.fast_release,
            slow_attack: c.slow_attack,
            slow_release: c.slow_release,
            attack_db: p.attack_db as f32,
            sustain_db: p.sustain_db as f32,
            db_to_nepers: c.db_to_nepers,
            _pad1: 0,
        };
        let kernel = Kernel::new(
            ctx,
            Stage::Transient,
            Precision::F32,
            &[Bind::Read, Bind::ReadWrite, Bind::ReadWrite, Bind::Read],
            0,
        )?;
        let cfg_buf = ctx.storage_init("transient config", std::slice::from_ref(&cfg));
        // F, S, the block's gains, the largest cut and the sum of cuts.
        let state = ctx.storage("transient followers", (4 + block) as u64 * 4);
        // `input` (binding 3) is read by `share` only: here it repeats the config.
        let bind = kernel.bind(ctx, &[&cfg_buf, x, &state, &cfg_buf]);
        let pipeline = kernel.pipeline(ctx, "main", &[])?;
        ctx.check()?;
        Ok(Transient { pipeline, bind, state, kernel, cfg })
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

    fn reduction(&self, ctx: &GpuContext, frames: u64) -> Result<Option<StageReduction>> {
        let cut: Vec<f32> = ctx.read_back(&self.state, 2 + self.cfg.block as usize, 2)?;
        Ok(Some(cut_reduction(cut[0], cut[1], frames)))
    }

    fn envelope(&self, ctx: &GpuContext, parts: usize, delayed: &wgpu::Buffer, x: &wgpu::Buffer) -> Result<Dispatch> {
        let cfg = TransientConfig { first: 0, parts: parts as u32, ..self.cfg };
        let cfg = ctx.storage_init("transient share config", std::slice::from_ref(&cfg));
        let bind = self.kernel.bind(ctx, &[&cfg, x, &self.state, delayed]);
        let n = parts * (self.cfg.channels * self.cfg.block) as usize;
        Ok(Dispatch { pipeline: self.kernel.pipeline(ctx, "share", &[])?, bind, groups: groups(n, 64) })
    }
}
