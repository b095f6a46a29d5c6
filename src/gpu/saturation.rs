//! Host side of `shaders/saturation.wgsl`: the `saturation` stage of a stem's process chain, in
//! place on the stem's channels of a block buffer. Carries T − 1 frames of input and of each
//! saturated phase across blocks. Twin of `src/cpu/saturation.rs`.
use bytemuck::{Pod, Zeroable};

use crate::cpu::saturation::{check_table, constants};
use crate::dsp::oversampling::design_oversampling;
use crate::error::{Error, Result};
use crate::gpu::ProcessStage;
use crate::gpu::context::{Bind, GpuContext, Kernel, Precision, Stage, groups};

/// Keep in sync with `SaturationConfig` in shaders/saturation.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SaturationConfig {
    pub block: u32,
    pub channels: u32,
    pub first: u32,
    pub factor: u32,
    pub taps: u32,
    pub half: u32,
    pub drive: f32,
    pub inv_drive: f32,
    pub mix: f32,
    pub dry: f32,
    pub inv_k: f32,
    pub _pad: u32,
}

pub struct Saturation {
    /// `direct` alone without oversampling; else copy_in, upsample, downsample, shift.
    pipelines: Vec<wgpu::ComputePipeline>,
    bind: wgpu::BindGroup,
    /// The carried state (empty without oversampling).
    state: Vec<wgpu::Buffer>,
    block: usize,
    hist: usize,
}

impl Saturation {
    /// On the `channels` channels of `block` frames whose first starts at element `first` of `x`.
    pub fn new(
        ctx: &GpuContext,
        p: &crate::model::Saturation,
        channels: usize,
        block: usize,
        x: &wgpu::Buffer,
        first: usize,
    ) -> Result<Saturation> {
        use Bind::*;
        let table = design_oversampling(p.oversampling);
        check_table(&table);
        let (k, t) = (table.factor, table.taps_per_phase);
        let hist = t - 1;
        if k > 1 && block < hist {
            return Err(Error::Internal(format!("saturation: blocks of {block} frames, at least {hist} needed")));
        }
        let (drive, inv_drive, mix, dry, inv_k) = constants(p);
        let cfg = SaturationConfig {
            block: block as u32,
            channels: channels as u32,
            first: first as u32,
            factor: k as u32,
            taps: t as u32,
            half: table.latency as u32,
            drive,
            inv_drive,
            mix,
            dry,
            inv_k,
            _pad: 0,
        };
        let kernel =
            Kernel::new(ctx, Stage::Saturation, Precision::F32, &[Read, Read, ReadWrite, ReadWrite, ReadWrite], 0)?;
        let cfg = ctx.storage_init("saturation config", std::slice::from_ref(&cfg));
        let coeffs = ctx.storage_init("saturation coefficients", &table.coeffs);
        let row = (hist + block) * 4;
        let (e, w) = if k > 1 {
            (
                ctx.storage("saturation input history", (channels * row) as u64),
                ctx.storage("saturation phases", (channels * k * row) as u64),
            )
        } else {
            (ctx.storage("saturation (unused)", 4), ctx.storage("saturation (unused)", 4))
        };
        let entries: &[&str] = if k > 1 { &["copy_in", "upsample", "downsample", "shift"] } else { &["direct"] };
        let pipelines = entries.iter().map(|e| kernel.pipeline(ctx, e, &[])).collect::<Result<Vec<_>>>()?;
        let bind = kernel.bind(ctx, &[&cfg, &coeffs, x, &e, &w]);
        ctx.check()?;
        let state = if k > 1 { vec![e, w] } else { Vec::new() };
        Ok(Saturation { pipelines, bind, state, block, hist })
    }
}

impl ProcessStage for Saturation {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, _block_index: u64) {
        pass.set_bind_group(0, &self.bind, &[]);
        for (i, p) in self.pipelines.iter().enumerate() {
            pass.set_pipeline(p);
            // `shift` (the fourth) moves T − 1 frames; the others run over the block.
            let n = if i == 3 { self.hist } else { self.block };
            pass.dispatch_workgroups(groups(n, 64), 1, 1);
        }
    }

    fn reset(&self, encoder: &mut wgpu::CommandEncoder) {
        for b in &self.state {
            encoder.clear_buffer(b, 0, None);
        }
    }
}
