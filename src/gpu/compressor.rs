//! Host side of `shaders/compressor.wgsl`: the `compressor` stage of a stem's process chain, in
//! place on the stem's channels of a block buffer, in four dispatches per block (levels per channel,
//! gains per frame, ballistics per channel, apply per sample). Twin of `src/cpu/compressor.rs`.
use bytemuck::{Pod, Zeroable};

use crate::cpu::compressor::{Consts, reduction_of};
use crate::engine::StageReduction;
use crate::error::Result;
use crate::gpu::context::{Bind, GpuContext, Kernel, Precision, Stage, groups};
use crate::gpu::{Dispatch, ProcessStage};
use crate::model::{Detector, Layout};

/// Keep in sync with `CompressorConfig` in shaders/compressor.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct CompressorConfig {
    pub block: u32,
    pub channels: u32,
    pub first: u32,
    pub lfe: u32,
    pub rms: u32,
    pub history: u32,
    pub lookahead: u32,
    pub hpf: u32,
    /// `share`: the stem contributions it applies the bus's gains to.
    pub parts: u32,
    pub side_first: u32,
    pub side_channels: u32,
    pub keyed: u32,
}

/// Reals of state per channel in the shader: s1, s2, z, the largest −z, Σ −z.
const STATE: usize = 5;

pub struct Compressor {
    precision: Precision,
    levels: wgpu::ComputePipeline,
    gains: wgpu::ComputePipeline,
    ballistics: wgpu::ComputePipeline,
    apply: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    kernel: Kernel,
    cfg: CompressorConfig,
    consts: wgpu::Buffer,
    /// z per channel and frame after `ballistics`: what `envelope` shares out.
    gz: wgpu::Buffer,
    /// Carried across blocks: cleared by `reset`.
    audio: wgpu::Buffer,
    squares: wgpu::Buffer,
    state: wgpu::Buffer,
    channels: usize,
    block: usize,
}

impl Compressor {
    /// On the `channels` channels of `block` frames whose channel c starts at element
    /// `first + c·block` of `x`, in the device's precision (`Precision::for_context`).
    pub fn new(
        ctx: &GpuContext,
        p: &crate::model::Compressor,
        channels: usize,
        block: usize,
        sample_rate: u32,
        x: &wgpu::Buffer,
        first: usize,
    ) -> Result<Compressor> {
        Compressor::with_precision(ctx, Precision::for_context(ctx), p, channels, block, sample_rate, x, first, None)
    }

    /// As `new`, in the variant of `precision` (f32: the same arithmetic in f32, for adapters
    /// without 64-bit floats; further from the CPU twin, see tests/parity/compressor.rs). `key`
    /// (ducking): (first element, channels) of the key stem's processed block in `x`, which must
    /// be encoded before this stage; the CPU twin is `Stage::process_keyed`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_precision(
        ctx: &GpuContext,
        precision: Precision,
        p: &crate::model::Compressor,
        channels: usize,
        block: usize,
        sample_rate: u32,
        x: &wgpu::Buffer,
        first: usize,
        key: Option<(usize, usize)>,
    ) -> Result<Compressor> {
        let (side_first, side_channels) = key.unwrap_or((first, channels));
        if channels > 8 || side_channels > 8 {
            return Err(crate::error::Error::Internal(format!(
                "compressor: {channels} channels, keyed by {side_channels}, at most 8"
            )));
        }
        // Side-chain state (squares, biquad, levels) per side-chain channel; z per stem channel.
        let lanes = channels.max(side_channels);
        let binds = [
            Bind::Read,
            Bind::Read,
            Bind::ReadWrite,
            Bind::ReadWrite,
            Bind::ReadWrite,
            Bind::ReadWrite,
            Bind::ReadWrite,
        ];
        let kernel = Kernel::new(ctx, Stage::Compressor, precision, &binds, 0)?;
        let rms = p.detector == Detector::Rms;
        let lookahead = p.lookahead(sample_rate);
        let history = if rms { p.rms_frames(sample_rate) - 1 } else { 0 };
        let cfg = CompressorConfig {
            block: block as u32,
            channels: channels as u32,
            first: first as u32,
            lfe: Layout::for_channels(channels).and_then(|l| l.lfe_channel()).map_or(u32::MAX, |c| c as u32),
            rms: rms as u32,
            history: history as u32,
            lookahead: lookahead as u32,
            hpf: (p.sidechain_hpf_hz > 0.0) as u32,
            parts: 0,
            side_first: side_first as u32,
            side_channels: side_channels as u32,
            keyed: key.is_some() as u32,
        };
        let cfg_buf = ctx.storage_init("compressor config", std::slice::from_ref(&cfg));
        let k = Consts::new(p, sample_rate).to_array();
        let real = precision.real_bytes() as u64;
        let consts = match precision {
            Precision::F64 => ctx.storage_init("compressor consts", &k),
            Precision::F32 => ctx.storage_init("compressor consts", &k.map(|v| v as f32)),
        };
        let audio = ctx.storage("compressor audio", (channels * (lookahead + block) * 4) as u64);
        let squares =
            ctx.storage("compressor squares", if rms { (lanes * (history + block)) as u64 * real } else { real });
        let gz = ctx.storage("compressor gains", (lanes * block) as u64 * real);
        // Per lane: s1, s2, z, the largest −z, Σ −z.
        let state = ctx.storage("compressor state", (lanes * STATE) as u64 * real);
        let bind = kernel.bind(ctx, &[&cfg_buf, &consts, x, &audio, &squares, &gz, &state]);
        Ok(Compressor {
            precision,
            levels: kernel.pipeline(ctx, "levels", &[])?,
            gains: kernel.pipeline(ctx, "gains", &[])?,
            ballistics: kernel.pipeline(ctx, "ballistics", &[])?,
            apply: kernel.pipeline(ctx, "apply", &[])?,
            bind,
            kernel,
            cfg,
            consts,
            gz,
            audio,
            squares,
            state,
            channels,
            block,
        })
    }
}

impl ProcessStage for Compressor {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, _block_index: u64) {
        pass.set_bind_group(0, &self.bind, &[]);
        pass.set_pipeline(&self.levels);
        pass.dispatch_workgroups(1, 1, 1);
        pass.set_pipeline(&self.gains);
        pass.dispatch_workgroups(groups(self.block, 64), 1, 1);
        pass.set_pipeline(&self.ballistics);
        pass.dispatch_workgroups(1, 1, 1);
        pass.set_pipeline(&self.apply);
        pass.dispatch_workgroups(groups(self.channels * self.block, 64), 1, 1);
    }

    fn reduction(&self, ctx: &GpuContext, frames: u64) -> Result<Option<StageReduction>> {
        let n = self.channels * STATE;
        let state: Vec<f64> = match self.precision {
            Precision::F64 => ctx.read_back::<f64>(&self.state, 0, n)?,
            Precision::F32 => ctx.read_back::<f32>(&self.state, 0, n)?.into_iter().map(f64::from).collect(),
        };
        let per_channel: Vec<[f64; 2]> = state.chunks(STATE).map(|c| [c[3], c[4]]).collect();
        Ok(Some(reduction_of(&per_channel, frames)))
    }

    fn envelope(&self, ctx: &GpuContext, parts: usize, delayed: &wgpu::Buffer, x: &wgpu::Buffer) -> Result<Dispatch> {
        let cfg = CompressorConfig { first: 0, parts: parts as u32, ..self.cfg };
        let cfg = ctx.storage_init("compressor share config", std::slice::from_ref(&cfg));
        let bind = self.kernel.bind(ctx, &[&cfg, &self.consts, x, delayed, &self.squares, &self.gz, &self.state]);
        Ok(Dispatch {
            pipeline: self.kernel.pipeline(ctx, "share", &[])?,
            bind,
            groups: groups(parts * self.channels * self.block, 64),
        })
    }

    fn reset(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.clear_buffer(&self.audio, 0, None);
        encoder.clear_buffer(&self.squares, 0, None);
        encoder.clear_buffer(&self.state, 0, None);
    }
}
