//! CPU/GPU parity of every stage on its own (DESIGN.md "Parity contract"): the CPU twin in
//! `src/cpu/<stage>.rs` and the GPU stage `src/gpu/<stage>.rs` + `shaders/<stage>.wgsl` run on the
//! same generated full-scale signals, over several blocks so that every carry across blocks (FIR
//! history and delay line, oversampler history, hold and smoothing halos, release state) is
//! exercised. Float stages: residual peak <= -110 dBFS and RMS <= -130 dBFS; stages whose
//! arithmetic is exact on both sides (max, one multiply, integer hashing) must be identical.
//!
//! GPU tests never skip silently: with no adapter they fail and say how to get one, unless
//! STEMFORGE_SKIP_GPU_TESTS=1 (then each prints that it skipped, with the count).
//!
//! One test binary, one module per stage, each named as the stage in `stemforge::stages::Stage`
//! (`tests/shaders_valid.rs` checks that every stage has its file here). Shared below: blocks,
//! the bit-identity check, the precisions to test, and the limiter's test program and runners.
// The shared test helpers (tests/common), one folder up from this binary's main.rs.
#[path = "../common/mod.rs"]
mod common;

mod compressor;
mod delay_line;
mod dither_quantize;
mod fir_convolve;
mod gain_sum;
mod limiter_apply;
mod limiter_hold;
mod limiter_release;
mod limiter_smooth;
mod meter;
mod oversample_peak;
mod pcm_unpack;
mod saturation;
mod transient;
mod width;

use common::gpu_harness::{read, run_pass, upload};
use common::gpu_parity::{STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_parity};
use common::{Noise, music_noise};
use stemforge::gpu::GpuContext;
use stemforge::gpu::context::Precision;

const FS: f64 = 48000.0;

/// Split `[channel][frame]` into blocks of `block` frames (the last one zero-padded).
fn block_of(x: &[Vec<f32>], j: usize, block: usize) -> Vec<Vec<f32>> {
    x.iter()
        .map(|c| {
            let mut b = vec![0.0f32; block];
            let end = ((j + 1) * block).min(c.len());
            if j * block < end {
                b[..end - j * block].copy_from_slice(&c[j * block..end]);
            }
            b
        })
        .collect()
}

fn flat(x: &[Vec<f32>]) -> Vec<f32> {
    x.iter().flatten().copied().collect()
}

/// Bits of every value equal (NaN-free inputs), reported with the parity figures on failure.
fn assert_bit_identical(stage: &str, cpu: &[Vec<f32>], gpu: &[Vec<f32>]) {
    for (c, (a, b)) in cpu.iter().zip(gpu).enumerate() {
        if let Some(n) = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits()) {
            // Reports the figures (and keeps both renders) if the difference is also over tolerance.
            assert_parity(stage, cpu, gpu, STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
            panic!("{stage}: channel {c}, frame {n}: cpu {:e}, gpu {:e}: must be identical", a[n], b[n]);
        }
    }
    println!("{stage}: identical ({} channel(s) x {} frames)", cpu.len(), cpu.first().map_or(0, Vec::len));
}

/// A program pushed 4 dB over full scale with a -1 dB ceiling, so the attenuation ranges 0..~7 dB.
fn loud_program(channels: usize, frames: usize, seed: u64) -> Vec<Vec<f32>> {
    (0..channels)
        .map(|c| music_noise(seed + c as u64, frames, Noise::FullScale).iter().map(|v| v * 1.58).collect())
        .collect()
}

/// The CPU oversample_peak's attenuation for `x`, block by block.
fn cpu_atten(x: &[Vec<f32>], factor: usize, block: usize, ceiling: f32) -> Vec<f32> {
    use stemforge::cpu::oversample_peak::OversamplePeak;
    use stemforge::dsp::oversampling::design_oversampling;
    let table = design_oversampling(factor);
    let mut st = OversamplePeak::new(&table, x.len(), block);
    let mut out = Vec::new();
    for j in 0..x[0].len() / block {
        let xb = block_of(x, j, block);
        let views: Vec<&[f32]> = xb.iter().map(|v| v.as_slice()).collect();
        let mut a = vec![0.0f32; block];
        st.process(&views, ceiling, &mut a);
        out.extend(a);
    }
    out
}

/// The precisions to test on this device: f64 (the CPU twins' arithmetic) where it exists, and
/// always the f32 fallback.
fn precisions(ctx: &GpuContext) -> Vec<Precision> {
    if ctx.has_f64() { vec![Precision::F64, Precision::F32] } else { vec![Precision::F32] }
}

/// Run a one-in one-out limiter stage on the GPU over `x` in blocks.
fn gpu_blocks(
    ctx: &GpuContext,
    x: &[f32],
    block: usize,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
    mut encode: impl FnMut(&mut wgpu::ComputePass<'_>, u64),
) -> Vec<f32> {
    let mut got = Vec::new();
    for j in 0..x.len() / block {
        upload(ctx, input, &x[j * block..(j + 1) * block]);
        run_pass(ctx, |p| encode(p, j as u64));
        got.extend(read(ctx, output, 0, block));
    }
    got
}

fn cpu_blocks(x: &[f32], block: usize, mut process: impl FnMut(&[f32], &mut [f32])) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for (i, o) in x.chunks(block).zip(out.chunks_mut(block)) {
        process(i, o);
    }
    out
}

/// A process stage's CPU twin (`cpu::Stage`) over `x` in blocks of `block` frames, its output cut to
/// `x`'s length.
fn cpu_process(st: &mut dyn stemforge::cpu::Stage, x: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
    let mut out = vec![Vec::new(); x.len()];
    for j in 0..x[0].len().div_ceil(block) {
        let mut b = block_of(x, j, block);
        st.process(&mut b);
        out.iter_mut().zip(b).for_each(|(o, b)| o.extend(b));
    }
    out.iter_mut().for_each(|o| o.truncate(x[0].len()));
    out
}

/// A process stage on the device (`gpu::ProcessStage`), built by `make(buffer, first)` on a stem
/// whose channels start at element `first` of a larger buffer (as in the engine's stem buffer),
/// reset, then run over `x` in blocks of `block` frames. Every block checks that nothing outside
/// the stem moved. Returns the stem's output, cut to `x`'s length.
fn gpu_process(
    ctx: &GpuContext,
    x: &[Vec<f32>],
    block: usize,
    label: &str,
    make: impl FnOnce(&wgpu::Buffer, usize) -> Box<dyn stemforge::gpu::ProcessStage>,
) -> Vec<Vec<f32>> {
    let channels = x.len();
    let (before, total) = (2 * block, (channels + 3) * block);
    let buf = ctx.storage("stems", (total * 4) as u64);
    let st = make(&buf, before);
    common::gpu_harness::run_encoder(ctx, |e| st.reset(e));
    let mut out = vec![Vec::new(); channels];
    for j in 0..x[0].len().div_ceil(block) {
        let mut whole = vec![0.5f32; total];
        whole[before..before + channels * block].copy_from_slice(&flat(&block_of(x, j, block)));
        upload(ctx, &buf, &whole);
        run_pass(ctx, |pass| st.encode(pass, j as u64));
        let y = read(ctx, &buf, 0, total);
        assert!(
            y[..before].iter().chain(&y[before + channels * block..]).all(|&v| v == 0.5),
            "{label}: wrote outside its stem"
        );
        for (c, o) in out.iter_mut().enumerate() {
            o.extend_from_slice(&y[before + c * block..before + (c + 1) * block]);
        }
    }
    out.iter_mut().for_each(|o| o.truncate(x[0].len()));
    out
}

/// Renders `session` (through the CLI) on both engines into `dir/cpu` and `dir/gpu`, and checks
/// that their `master.wav` (f32) agree within the whole-render contract. Returns the two folders.
fn engines_agree(session: &std::path::Path, dir: &std::path::Path, label: &str) -> [std::path::PathBuf; 2] {
    use common::gpu_parity::{RENDER_PEAK_DBFS, RENDER_RMS_DBFS};
    let out = ["cpu", "gpu"].map(|e| dir.join(e));
    for (e, o) in ["cpu", "gpu"].iter().zip(&out) {
        common::render(session, o, e, &[], 0);
    }
    let [(_, cpu), (_, gpu)] = [0, 1].map(|i| common::read_audio(&out[i].join("master.wav")));
    let r = assert_parity(label, &cpu, &gpu, RENDER_PEAK_DBFS, RENDER_RMS_DBFS);
    println!("{label}: master residual peak {:.1} dBFS, rms {:.1} dBFS", r.peak_dbfs, r.rms_dbfs);
    out
}
