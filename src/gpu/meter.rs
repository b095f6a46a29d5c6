//! Host side of `shaders/meter.wgsl`, the device meter: per block, per channel, the K-weighted
//! sums of squares per 100 ms step and the sample/true peaks, read back for `EnergyMeter`
//! (src/meter/), which gates them into the same `LoudnessStats` as the CPU meter.
//! Carries the filter state and the interpolator's history across blocks.
use bytemuck::{Pod, Zeroable};

use crate::dsp::kweighting::{k_transition_differences, k_weighting, mat_mul, mat_pow, true_peak_interpolator};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};

/// Keep in sync with `LoudnessConfig` in shaders/meter.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LoudnessConfig {
    pub block: u32,
    pub channels: u32,
    pub chunk: u32,
    pub chunks: u32,
    pub step: u32,
    pub steps: u32,
    pub levels: u32,
    pub tp_base: u32,
    pub _pad: [u32; 4],
}

/// Keep in sync with `LoudnessImmediates` in shaders/meter.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LoudnessImmediates {
    pub phase: u32,
    pub len: u32,
    pub parity: u32,
    pub input: u32,
}

/// Most chunks per block: the scan's workgroup (256) holds them and the carry.
const MAX_CHUNKS: usize = 128;
/// Fewest frames per chunk: below this, a chunk's serial run is too short to pay for the scan.
const MIN_CHUNK: usize = 64;

/// The device meter of one signal: `channels` blocks of `block` frames read from `input`.
pub struct DeviceMeter {
    chunk_states: wgpu::ComputePipeline,
    scan: wgpu::ComputePipeline,
    chunk_energy: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    scratch: wgpu::Buffer,
    tp_hist: wgpu::Buffer,
    /// The block's readings: `[channel][steps]` energies (`real`), `[channel][2]` peaks (f32).
    pub energy: wgpu::Buffer,
    pub peaks: wgpu::Buffer,
    precision: Precision,
    channels: usize,
    chunks: usize,
    step: usize,
    steps: usize,
}

impl DeviceMeter {
    /// Whether the device meter runs for this precision, rate and block (`new` succeeds): f64
    /// only, and a block that cuts into chunks of at most one 100 ms step (all the render's
    /// power-of-two blocks from about 5 kHz up).
    ///
    /// In the f32 variant (which validates and runs) the readings were measured
    /// 0.007 to 0.022 LU off the CPU meter (parity test cases, lavapipe): the K-weighting's
    /// double pole near z = 1 leaves f32 too few bits for the states' differences, outside
    /// DESIGN.md's 0.01 LU. Without SHADER_F64 the engine keeps the CPU meter.
    pub fn supports(precision: Precision, sample_rate: u32, block: usize) -> std::result::Result<(), String> {
        let (step, chunk) = Self::shape(sample_rate, block);
        if precision != Precision::F64 {
            return Err("the device meter needs 64-bit floats (SHADER_F64); in f32 it reads up to 0.022 LU off".into());
        }
        if block == 0 || !block.is_multiple_of(chunk) || chunk > step {
            return Err(format!(
                "a block of {block} frames does not cut into chunks of {chunk} frames within a 100 ms step of {step} frames"
            ));
        }
        Ok(())
    }

    /// The crate's 100 ms step (rounded to the nearest frame) and the chunk length.
    fn shape(sample_rate: u32, block: usize) -> (usize, usize) {
        (((sample_rate as usize + 5) / 10).max(1), MIN_CHUNK.max(block / MAX_CHUNKS))
    }

    /// A meter at `sample_rate` over `channels` blocks of `block` frames in `input` (where each
    /// block is is given to `encode`). Errors where `supports` says no.
    pub fn new(
        ctx: &GpuContext,
        precision: Precision,
        sample_rate: u32,
        channels: usize,
        block: usize,
        input: &wgpu::Buffer,
    ) -> Result<DeviceMeter> {
        Self::supports(precision, sample_rate, block).map_err(|e| Error::Internal(format!("loudness: {e}")))?;
        let (step, chunk) = Self::shape(sample_rate, block);
        if channels == 0 {
            return Err(Error::Internal("loudness: no channels".into()));
        }
        let chunks = block / chunk;
        let steps = block / step + 2;
        let levels = (usize::BITS - chunks.leading_zeros()) as usize; // 2^levels > chunks
        let (b, a) = k_weighting(sample_rate as f64);
        let mut table: Vec<f64> = b.iter().chain(a.iter()).copied().collect();
        // A^(L 2^d) in the difference basis (`kweighting::DIFFERENCES`, where the scan runs):
        // the scan's level-d step, squared up from A^L in f64.
        let mut m = mat_pow(&k_transition_differences(&a), chunk);
        for _ in 0..levels {
            table.extend(m.iter().flatten());
            m = mat_mul(&m, &m);
        }
        let tp_base = table.len();
        let (factor, taps) = match true_peak_interpolator(sample_rate) {
            Some((factor, taps, c)) => {
                table.extend(c.iter().map(|&v| v as f64));
                (factor, taps)
            }
            None => (0, 1),
        };
        let kernel = Kernel::new(
            ctx,
            Stage::Meter,
            precision,
            &[Bind::Read, Bind::Read, Bind::Read, Bind::ReadWrite, Bind::ReadWrite, Bind::ReadWrite, Bind::ReadWrite],
            std::mem::size_of::<LoudnessImmediates>() as u32,
        )?;
        let constants = [("FACTOR", factor as f64), ("TP_TAPS", taps as f64)];
        let pipeline = |entry: &str| kernel.pipeline(ctx, entry, &constants);
        let cfg = LoudnessConfig {
            block: block as u32,
            channels: channels as u32,
            chunk: chunk as u32,
            chunks: chunks as u32,
            step: step as u32,
            steps: steps as u32,
            levels: levels as u32,
            tp_base: tp_base as u32,
            _pad: [0; 4],
        };
        let real = precision.real_bytes();
        let cfg_buf = ctx.storage_init("loudness config", std::slice::from_ref(&cfg));
        let coeffs = match precision {
            Precision::F64 => ctx.storage_init("loudness coefficients", &table),
            Precision::F32 => {
                ctx.storage_init("loudness coefficients", &table.iter().map(|&v| v as f32).collect::<Vec<f32>>())
            }
        };
        let scratch_len = channels * 4 + channels * (chunks + 1) * 4 + channels * chunks * 4;
        let scratch = ctx.storage("loudness scratch", (scratch_len * real) as u64);
        let energy = ctx.storage("loudness energies", (channels * steps * real) as u64);
        let peaks = ctx.storage("loudness peaks", (channels * 2 * 4) as u64);
        let tp_hist = ctx.storage("loudness true-peak history", (2 * channels * (taps - 1).max(1) * 4) as u64);
        let bind = kernel.bind(ctx, &[&cfg_buf, &coeffs, input, &scratch, &energy, &peaks, &tp_hist]);
        let meter = DeviceMeter {
            chunk_states: pipeline("chunk_states")?,
            scan: pipeline("scan")?,
            chunk_energy: pipeline("chunk_energy")?,
            reduce: pipeline("reduce")?,
            bind,
            scratch,
            tp_hist,
            energy,
            peaks,
            precision,
            channels,
            chunks,
            step,
            steps,
        };
        ctx.check()?;
        Ok(meter)
    }

    /// Clear the carried filter state and interpolator history (the start of a pass).
    pub fn reset(&self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(&self.scratch, 0, None);
        enc.clear_buffer(&self.tp_hist, 0, None);
    }

    /// Meter block `index`: `len` program frames starting at program frame `first_frame`, its
    /// channel 0 at element `input_base` of the input buffer.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        index: u64,
        first_frame: u64,
        len: usize,
        input_base: usize,
    ) {
        let imm = LoudnessImmediates {
            phase: (first_frame % self.step as u64) as u32,
            len: len as u32,
            parity: (index & 1) as u32,
            input: input_base as u32,
        };
        let lanes = groups(self.channels * self.chunks, 64);
        let dispatches = [
            (&self.chunk_states, lanes),
            (&self.scan, self.channels as u32),
            (&self.chunk_energy, lanes),
            (&self.reduce, groups(self.channels * self.steps, 64)),
        ];
        for (pipeline, workgroups) in dispatches {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &self.bind, &[]);
            pass.set_immediates(0, bytemuck::bytes_of(&imm));
            pass.dispatch_workgroups(workgroups, 1, 1);
        }
    }

    /// Step slots per channel in `energy`.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Bytes of `energy` and of `peaks`.
    pub fn energy_bytes(&self) -> u64 {
        (self.channels * self.steps * self.precision.real_bytes()) as u64
    }
    pub fn peaks_bytes(&self) -> u64 {
        (self.channels * 2 * 4) as u64
    }

    /// Decode read-back bytes of `energy` and `peaks` into `energies` (f64, `[channel][steps]`)
    /// and `peaks` (`[channel]` (sample, true)).
    pub fn decode(&self, energy: &[u8], peak_bytes: &[u8], energies: &mut Vec<f64>, peaks: &mut Vec<[f32; 2]>) {
        energies.clear();
        // Byte-wise: a mapped view need not be aligned for f64.
        match self.precision {
            Precision::F64 => {
                energies.extend(energy.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))))
            }
            Precision::F32 => energies
                .extend(energy.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64)),
        }
        let f32_at = |b: &[u8]| f32::from_le_bytes(b.try_into().expect("4 bytes"));
        peaks.clear();
        peaks.extend(peak_bytes.chunks_exact(8).map(|p| [f32_at(&p[..4]), f32_at(&p[4..])]));
    }
}
