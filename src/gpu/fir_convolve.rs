//! Host side of `shaders/fir_convolve.wgsl`: uniformly partitioned overlap-save FIR convolution of
//! many channels at once (partition = block, FFT size N = the power of two >= 2 * block). The
//! filter spectra and twiddles are computed once here in f64 and uploaded in the shader's
//! precision (f64, or its f32 variant); the input history and the
//! frequency-domain delay lines live on the device. Twin of `src/cpu/fir_convolve.rs`.
use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};
use realfft::RealFftPlanner;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};

/// Keep in sync with `FirConfig` in shaders/fir_convolve.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct FirConfig {
    pub block: u32,
    pub fft_size: u32,
    pub half: u32,
    pub hist_len: u32,
    pub m1: u32,
    pub log2_m1: u32,
    pub m2: u32,
    pub log2_m2: u32,
    pub channels: u32,
    pub log2_half: u32,
    pub _pad: [u32; 2],
}

/// Keep in sync with `FirChannel` in shaders/fir_convolve.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct FirChannel {
    pub input: u32,
    pub output: u32,
    pub spectra: u32,
    pub partitions: u32,
    pub fdl: u32,
    pub _pad: [u32; 3],
}

/// Keep in sync with `FirImmediates` in shaders/fir_convolve.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct FirImmediates {
    pub block_index: u32,
    pub log2_ns: u32,
    pub flags: u32,
    pub halves: u32,
}

const FLAG_INVERSE: u32 = 1;
const FLAG_FIRST: u32 = 2;
const FLAG_LAST: u32 = 4;
const FLAG_RADIX2: u32 = 8;

/// How the FFTs run (the shader's header has the measurement behind the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FftStrategy {
    /// M = M1 x M2, two dispatches per transform, sub-FFTs in workgroup memory: the default.
    FourStep,
    /// log4(M) radix-4 passes (and one radix-2) in global memory, one dispatch each, no barriers.
    GlobalPasses,
}

impl FftStrategy {
    /// The strategy the engine uses on `ctx`: the four-step, unless `STEMFORGE_GPU_FFT`
    /// (`gpu::knobs`) asks for the other to measure it on new hardware.
    pub fn for_context(ctx: &GpuContext) -> FftStrategy {
        ctx.knobs.fft
    }
}

/// Complex values one workgroup transforms (`SPAN` in the shader): sub-FFTs are at most this long.
const SPAN: usize = 1024;

impl Precision {
    /// Bytes of one complex value (`vec2<real>`) in the shader.
    fn complex_bytes(self) -> usize {
        match self {
            Precision::F64 => 16,
            Precision::F32 => 8,
        }
    }
}

/// FFT size for a block: the power of two >= 2 * block (overlap-save needs N >= 2B - 1).
pub fn fft_size(block: usize) -> usize {
    (2 * block).next_power_of_two().max(32)
}

/// Compiled pipelines of the stage, shared by every instance in a render.
pub struct FirPipelines {
    precision: Precision,
    kernel: Kernel,
    fwd_columns: wgpu::ComputePipeline,
    fwd_rows: wgpu::ComputePipeline,
    spectrum_mac: wgpu::ComputePipeline,
    inv_columns: wgpu::ComputePipeline,
    inv_rows: wgpu::ComputePipeline,
    global_pass: wgpu::ComputePipeline,
}

impl FirPipelines {
    /// The stage in `precision` (`Precision::for_context` in the engine; F64 needs SHADER_F64).
    pub fn new(ctx: &GpuContext, precision: Precision) -> Result<FirPipelines> {
        use Bind::*;
        // The workgroup FFTs' buffer: 16 KiB in f64, what WebGPU guarantees, but say so clearly
        // on an adapter that offers less rather than fail validation.
        let workgroup = ctx.limits.max_compute_workgroup_storage_size as usize;
        if SPAN * precision.complex_bytes() > workgroup {
            return Err(Error::Gpu(format!(
                "fir_convolve: its {} FFTs need {} KiB of workgroup memory; {} offers {} KiB",
                precision.name(),
                SPAN * precision.complex_bytes() / 1024,
                ctx.adapter_info.name,
                workgroup / 1024
            )));
        }
        let kernel = Kernel::new(
            ctx,
            Stage::FirConvolve,
            precision,
            &[Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite],
            std::mem::size_of::<FirImmediates>() as u32,
        )?;
        Ok(FirPipelines {
            fwd_columns: kernel.pipeline(ctx, "fwd_columns", &[])?,
            fwd_rows: kernel.pipeline(ctx, "fwd_rows", &[])?,
            spectrum_mac: kernel.pipeline(ctx, "spectrum_mac", &[])?,
            inv_columns: kernel.pipeline(ctx, "inv_columns", &[])?,
            inv_rows: kernel.pipeline(ctx, "inv_rows", &[])?,
            global_pass: kernel.pipeline(ctx, "global_pass", &[])?,
            kernel,
            precision,
        })
    }

    /// The arithmetic between the f32 input and output.
    pub fn precision(&self) -> Precision {
        self.precision
    }
}

/// One channel to convolve: its filter and where its block lives in the input and output buffers
/// (index of frame 0, in f32 elements).
#[derive(Debug, Clone, Copy)]
pub struct FirLane<'a> {
    pub taps: &'a [f32],
    pub input: usize,
    pub output: usize,
}

/// The FIR of a set of channels over one input and one output buffer.
pub struct FirConvolve {
    pipelines: FirPipelinesRef,
    bind: wgpu::BindGroup,
    hist: wgpu::Buffer,
    fdl: wgpu::Buffer,
    column_groups: u32,
    row_groups: u32,
    mac_groups: (u32, u32),
    strategy: FftStrategy,
    pub fft_size: usize,
    pub channels: usize,
}

/// Clones of the pipeline handles (cheap reference-counted handles in wgpu).
struct FirPipelinesRef {
    fwd_columns: wgpu::ComputePipeline,
    fwd_rows: wgpu::ComputePipeline,
    spectrum_mac: wgpu::ComputePipeline,
    inv_columns: wgpu::ComputePipeline,
    inv_rows: wgpu::ComputePipeline,
    global_pass: wgpu::ComputePipeline,
}

/// The four-step split M = M1 * M2 with M1 <= M2 <= SPAN, both powers of two >= 4.
fn split(half: usize) -> Result<(u32, u32)> {
    let e = half.trailing_zeros();
    let e1 = e / 2;
    let e2 = e - e1;
    if !half.is_power_of_two() || e1 < 2 || (1usize << e2) > SPAN {
        return Err(Error::Internal(format!(
            "fir_convolve: FFT of {} complex points is outside 16..={}",
            half,
            SPAN * SPAN
        )));
    }
    Ok((e1, e2))
}

/// Twiddles W_M^j and W_N^j (j < M), computed in f64.
fn twiddles(n: usize) -> Vec<[f64; 2]> {
    let m = n / 2;
    let w = |j: usize, len: usize| {
        let a = -2.0 * std::f64::consts::PI * j as f64 / len as f64;
        [a.cos(), a.sin()]
    };
    (0..m).map(|j| w(j, m)).chain((0..m).map(|j| w(j, n))).collect()
}

/// Spectra of the partitions of `taps` (block frames each, zero-padded to N), scaled by 1/N, bin
/// 0 packed as (H[0], H[M]). Computed in f64.
fn partition_spectra(taps: &[f32], block: usize, n: usize) -> Vec<[f64; 2]> {
    let m = n / 2;
    let parts = taps.len().div_ceil(block).max(1);
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let mut buf = fft.make_input_vec();
    let mut spec = fft.make_output_vec();
    let mut out = Vec::with_capacity(parts * m);
    let scale = 1.0 / n as f64;
    for p in 0..parts {
        buf.iter_mut().for_each(|v| *v = 0.0);
        let part = &taps[(p * block).min(taps.len())..((p + 1) * block).min(taps.len())];
        buf.iter_mut().zip(part).for_each(|(d, s)| *d = *s as f64);
        fft.process(&mut buf, &mut spec).expect("fft sizes match their plan");
        out.push([spec[0].re * scale, spec[m].re * scale]);
        for s in &spec[1..m] {
            out.push([s.re * scale, s.im * scale]);
        }
    }
    out
}

impl FirConvolve {
    /// Convolve `lanes` (block frames each) from `input` into `output`. Channels with equal taps
    /// share one set of spectra.
    pub fn new(
        ctx: &GpuContext,
        pipelines: &FirPipelines,
        strategy: FftStrategy,
        block: usize,
        lanes: &[FirLane<'_>],
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<FirConvolve> {
        if lanes.is_empty() {
            return Err(Error::Internal("fir_convolve: no channels".into()));
        }
        let n = fft_size(block);
        let m = n / 2;
        let (e1, e2) = split(m)?;
        let hist_len = n - block;

        let mut consts = twiddles(n);
        let mut by_taps: HashMap<Vec<u32>, (u32, u32)> = HashMap::new();
        let mut chans = Vec::with_capacity(lanes.len());
        let mut fdl_len = 0usize;
        for lane in lanes {
            let key: Vec<u32> = lane.taps.iter().map(|v| v.to_bits()).collect();
            let (spectra, partitions) = match by_taps.get(&key) {
                Some(v) => *v,
                None => {
                    let at = consts.len() as u32;
                    let s = partition_spectra(lane.taps, block, n);
                    let parts = (s.len() / m) as u32;
                    consts.extend(s);
                    by_taps.insert(key, (at, parts));
                    (at, parts)
                }
            };
            chans.push(FirChannel {
                input: lane.input as u32,
                output: lane.output as u32,
                spectra,
                partitions,
                fdl: fdl_len as u32,
                _pad: [0; 3],
            });
            fdl_len += partitions as usize * m;
        }
        let channels = lanes.len();
        let cfg = FirConfig {
            block: block as u32,
            fft_size: n as u32,
            half: m as u32,
            hist_len: hist_len as u32,
            m1: 1 << e1,
            log2_m1: e1,
            m2: 1 << e2,
            log2_m2: e2,
            channels: channels as u32,
            log2_half: m.trailing_zeros(),
            _pad: [0; 2],
        };
        let cb = pipelines.precision.complex_bytes();
        // What this adapter must hold and dispatch: a clear error rather than a validation failure.
        let (m1, m2) = (1usize << e1, 1usize << e2);
        let biggest = [consts.len() * cb, fdl_len * cb, channels * m * cb, 2 * channels * hist_len * 4];
        let max_binding = ctx.limits.max_storage_buffer_binding_size as usize;
        if let Some(b) = biggest.iter().find(|b| **b > max_binding) {
            return Err(Error::Gpu(format!(
                "fir_convolve: {channels} channels of {} taps at most need a {:.0} MiB buffer; {} allows {:.0} MiB \
                 per binding (use fewer or shorter filters, or a smaller block)",
                lanes.iter().map(|l| l.taps.len()).max().unwrap_or(0),
                *b as f64 / (1 << 20) as f64,
                ctx.adapter_info.name,
                max_binding as f64 / (1 << 20) as f64
            )));
        }
        let max_groups = ctx.limits.max_compute_workgroups_per_dimension as usize;
        let widest = [(channels * m2).div_ceil(SPAN / m1), (m / 2 + 1).div_ceil(64), m / 4 / 64, channels];
        if widest.iter().any(|g| *g > max_groups) {
            return Err(Error::Gpu(format!(
                "fir_convolve: {channels} channels with {block}-frame blocks need more than {max_groups} workgroups \
                 per dispatch on {} (use a smaller block)",
                ctx.adapter_info.name
            )));
        }
        let cfg_buf = ctx.storage_init("fir_convolve config", std::slice::from_ref(&cfg));
        let chan_buf = ctx.storage_init("fir_convolve channels", &chans);
        let const_buf = match pipelines.precision {
            Precision::F64 => ctx.storage_init("fir_convolve twiddles and spectra", &consts),
            Precision::F32 => {
                let rounded: Vec<[f32; 2]> = consts.iter().map(|&[re, im]| [re as f32, im as f32]).collect();
                ctx.storage_init("fir_convolve twiddles and spectra", &rounded)
            }
        };
        let hist = ctx.storage("fir_convolve history", (2 * channels * hist_len * 4) as u64);
        let spec = ctx.storage("fir_convolve spectra", (channels * m * cb) as u64);
        let scratch = ctx.storage("fir_convolve scratch", (channels * m * cb) as u64);
        let fdl = ctx.storage("fir_convolve delay line", (fdl_len * cb) as u64);
        let bind =
            pipelines.kernel.bind(ctx, &[&cfg_buf, &chan_buf, &const_buf, input, output, &hist, &spec, &scratch, &fdl]);
        ctx.check()?;
        Ok(FirConvolve {
            pipelines: FirPipelinesRef {
                fwd_columns: pipelines.fwd_columns.clone(),
                fwd_rows: pipelines.fwd_rows.clone(),
                spectrum_mac: pipelines.spectrum_mac.clone(),
                inv_columns: pipelines.inv_columns.clone(),
                inv_rows: pipelines.inv_rows.clone(),
                global_pass: pipelines.global_pass.clone(),
            },
            bind,
            hist,
            fdl,
            column_groups: groups(channels * m2, SPAN / m1),
            row_groups: groups(channels * m1, SPAN / m2),
            mac_groups: (groups(m / 2 + 1, 64), channels as u32),
            strategy,
            fft_size: n,
            channels,
        })
    }

    /// Forget the input history and the delay line (the start of a pass).
    pub fn reset(&self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(&self.hist, 0, None);
        enc.clear_buffer(&self.fdl, 0, None);
    }

    /// Convolve block `block_index` (counted from the last reset).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, block_index: u64) {
        let p = &self.pipelines;
        let imm = FirImmediates { block_index: block_index as u32, log2_ns: 0, flags: 0, halves: 0 };
        let mut step = |pipeline: &wgpu::ComputePipeline, imm: FirImmediates, (x, y): (u32, u32)| {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &self.bind, &[]);
            pass.set_immediates(0, bytemuck::bytes_of(&imm));
            pass.dispatch_workgroups(x, y, 1);
        };
        match self.strategy {
            FftStrategy::FourStep => {
                step(&p.fwd_columns, imm, (self.column_groups, 1));
                step(&p.fwd_rows, imm, (self.row_groups, 1));
                step(&p.spectrum_mac, imm, self.mac_groups);
                step(&p.inv_columns, imm, (self.column_groups, 1));
                step(&p.inv_rows, imm, (self.row_groups, 1));
            }
            FftStrategy::GlobalPasses => {
                let m = self.fft_size / 2;
                let log2m = m.trailing_zeros();
                // (log2 Ns, radix 2) of every pass: radix 4 while it divides, a last radix 2 if odd.
                let passes: Vec<(u32, bool)> = (0..log2m / 2)
                    .map(|i| (2 * i, false))
                    .chain((log2m % 2 == 1).then_some((log2m - 1, true)))
                    .collect();
                let n = passes.len();
                let groups_of = |radix2: bool| (groups(if radix2 { m / 2 } else { m / 4 }, 64), self.channels as u32);
                // Forward: frame -> ... -> `spec` (which MAC reads), alternating with `scratch`
                // backwards from the last pass (halves bit set = scratch).
                for (i, &(log2_ns, radix2)) in passes.iter().enumerate() {
                    let dst = ((n - 1 - i) % 2) as u32;
                    let src = dst ^ 1;
                    let flags = if i == 0 { FLAG_FIRST } else { 0 } | if radix2 { FLAG_RADIX2 } else { 0 };
                    step(
                        &p.global_pass,
                        FirImmediates { log2_ns, flags, halves: src | (dst << 1), ..imm },
                        groups_of(radix2),
                    );
                }
                step(&p.spectrum_mac, imm, self.mac_groups);
                // Inverse: `spec` -> ... -> the output block.
                for (i, &(log2_ns, radix2)) in passes.iter().enumerate() {
                    let src = (i % 2) as u32;
                    let dst = src ^ 1;
                    let flags =
                        FLAG_INVERSE | if i + 1 == n { FLAG_LAST } else { 0 } | if radix2 { FLAG_RADIX2 } else { 0 };
                    step(
                        &p.global_pass,
                        FirImmediates { log2_ns, flags, halves: src | (dst << 1), ..imm },
                        groups_of(radix2),
                    );
                }
            }
        }
    }
}
