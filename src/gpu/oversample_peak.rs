//! Host side of `shaders/oversample_peak.wgsl`: the limiter's true-peak detector, K-times
//! polyphase oversampling of every channel reduced to the attenuation each frame needs. Carries
//! T - 1 input frames of history across blocks. Twin of `src/cpu/oversample_peak.rs`.
use bytemuck::{Pod, Zeroable};

use crate::dsp::oversampling::OversamplingTable;
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};

/// Keep in sync with `OversampleConfig` in shaders/oversample_peak.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct OversampleConfig {
    pub block: u32,
    pub channels: u32,
    pub hist_len: u32,
    pub input: u32,
    pub ceiling_db: f32,
    pub _pad: [u32; 3],
}

/// Longest phase the shader's window holds (`MAX_TAPS`).
const MAX_TAPS: usize = 64;

/// Keep in sync with `OversampleImmediates` in shaders/oversample_peak.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct OversampleImmediates {
    pub block_index: u32,
}

pub struct OversamplePeak {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    hist: wgpu::Buffer,
    block: usize,
    /// Frames by which `atten_db` lags the input.
    pub latency: usize,
}

impl OversamplePeak {
    /// Reads `channels` blocks of `block` frames from `input` starting at element `input_base`,
    /// writes `block` attenuations (dB) to `atten_db`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        precision: Precision,
        table: &OversamplingTable,
        channels: usize,
        block: usize,
        ceiling_db: f32,
        input: &wgpu::Buffer,
        input_base: usize,
        atten_db: &wgpu::Buffer,
    ) -> Result<OversamplePeak> {
        use Bind::*;
        let kernel = Kernel::new(
            ctx,
            Stage::OversamplePeak,
            precision,
            &[Read, Read, Read, ReadWrite, ReadWrite],
            std::mem::size_of::<OversampleImmediates>() as u32,
        )?;
        let taps = table.taps_per_phase.max(1);
        if taps > MAX_TAPS || table.coeffs.len() != table.factor * taps || table.latency >= taps {
            return Err(Error::Internal(format!(
                "oversample_peak: a table of {} phases x {taps} taps (latency {}) is outside the shader's \
                 {MAX_TAPS} taps",
                table.factor, table.latency
            )));
        }
        // Phase 0 is the unit impulse at the latency tap for every designed table; checked, not assumed.
        let skip_phase0 =
            table.coeffs[..taps].iter().enumerate().all(|(m, c)| *c == if m == table.latency { 1.0 } else { 0.0 });
        let pipeline = kernel.pipeline(
            ctx,
            "main",
            &[
                ("FACTOR", table.factor as f64),
                ("TAPS", taps as f64),
                ("LATENCY", table.latency as f64),
                ("SKIP_PHASE0", skip_phase0 as u32 as f64),
            ],
        )?;
        let hist_len = taps - 1;
        let cfg = OversampleConfig {
            block: block as u32,
            channels: channels as u32,
            hist_len: hist_len as u32,
            input: input_base as u32,
            ceiling_db,
            _pad: [0; 3],
        };
        let cfg_buf = ctx.storage_init("oversample_peak config", std::slice::from_ref(&cfg));
        let coeffs = ctx.storage_init("oversample_peak coefficients", &table.coeffs);
        let hist = ctx.storage("oversample_peak history", (2 * channels * hist_len.max(1) * 4) as u64);
        let bind = kernel.bind(ctx, &[&cfg_buf, &coeffs, input, &hist, atten_db]);
        ctx.check()?;
        Ok(OversamplePeak { pipeline, bind, hist, block, latency: table.latency })
    }

    pub fn reset(&self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(&self.hist, 0, None);
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, block_index: u64) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        let imm = OversampleImmediates { block_index: block_index as u32 };
        pass.set_immediates(0, bytemuck::bytes_of(&imm));
        pass.dispatch_workgroups(groups(self.block, 64), 1, 1);
    }
}
