//! CPU/GPU parity of every stage on its own (DESIGN.md "Parity contract"): the CPU twin in
//! `src/cpu/<stage>.rs` and the GPU stage `src/gpu/<stage>.rs` + `shaders/<stage>.wgsl` run on the
//! same generated full-scale signals, over several blocks so that every carry across blocks (FIR
//! history and delay line, oversampler history, hold and smoothing halos, release state) is
//! exercised. Float stages: residual peak <= -110 dBFS and RMS <= -130 dBFS; stages whose
//! arithmetic is exact on both sides (max, one multiply, integer hashing) must be identical.
//!
//! GPU tests never skip silently: with no adapter they fail and say how to get one, unless
//! STEMFORGE_SKIP_GPU_TESTS=1 (then each prints that it skipped, with the count).

mod common;

use common::exact_fir::{assert_f32_rounding_of, direct, residual_db};
use common::gpu_harness::{gpu, read, run_encoder, run_pass, upload};
use common::gpu_parity::{STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_identical_bytes, assert_parity};
use common::{Noise, Rng, impulses, music_noise, normalise, sine, sweep, test_fir};
use stemforge::gpu::GpuContext;
use stemforge::gpu::fir_convolve::FftStrategy;
use stemforge::gpu::kernel::Precision;

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

// ---------------------------------------------------------------------------------------------
// pcm_unpack

fn pcm_bytes(encoding: stemforge::io::SourceEncoding, samples: usize, seed: u64) -> Vec<u8> {
    use stemforge::io::SourceEncoding::*;
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for i in 0..samples {
        let r = rng.next_u64();
        match encoding {
            Int16 => out.extend_from_slice(
                &[[0x00, 0x80], [0xff, 0x7f], [0, 0], [0xff, 0xff]].get(i).copied().unwrap_or((r as u16).to_le_bytes()),
            ),
            Int24 => out.extend_from_slice(&(r as u32).to_le_bytes()[..3]),
            Int32 => {
                // Edge values first: the extremes and values whose f32 rounding is a tie.
                let edge = [i32::MIN, i32::MAX, 0x7fff_ffc0, (1 << 24) + 1, -(1 << 24) - 3, 0x0100_0080];
                out.extend_from_slice(&edge.get(i).copied().unwrap_or(r as i32).to_le_bytes())
            }
            Float32 => out.extend_from_slice(&((rng.uniform() * 1.2) as f32).to_le_bytes()),
            Float64 => {
                // Full-scale values, and tiny ones whose f32 is subnormal or a rounding tie.
                let v = match i % 7 {
                    0 => rng.uniform() * 1e-39,
                    1 => rng.uniform() * 1e-44,
                    2 => 1.0 + (2.0 * (i % 3) as f64 + 1.0) * 2f64.powi(-24),
                    _ => rng.uniform() * 1.1,
                };
                out.extend_from_slice(&v.to_le_bytes())
            }
            Coded { .. } => unreachable!(),
        }
    }
    out
}

#[test]
fn pcm_unpack() {
    use stemforge::cpu::pcm_unpack::{bytes_per_sample, unpack};
    use stemforge::gpu::pcm_unpack::{PcmUnpack, PcmUnpackPipeline};
    use stemforge::io::SourceEncoding::*;
    let Some(ctx) = gpu("pcm_unpack") else { return };
    let (block, channels) = (256usize, 3usize);
    let pipe = PcmUnpackPipeline::new(&ctx).expect("pcm_unpack pipeline");
    // Three full blocks and a partial one (the end of a stem): zeros must follow its last frame.
    let frames = 3 * block + 101;
    for encoding in [Int16, Int24, Int32, Float32, Float64] {
        let bps = bytes_per_sample(encoding).expect("raw encoding");
        let raw = pcm_bytes(encoding, frames * channels, 7);
        let planar = ctx.storage("planar", (channels * block * 4) as u64);
        let mut gpu_stage = PcmUnpack::new(&ctx, &pipe, encoding, channels, block, &planar, 0).expect("pcm_unpack");
        let (mut cpu_out, mut gpu_out) = (vec![Vec::new(); channels], vec![Vec::new(); channels]);
        for j in 0..frames.div_ceil(block) {
            let n = block.min(frames - j * block);
            let bytes = &raw[j * block * channels * bps..(j * block + n) * channels * bps];
            let mut cpu_block = vec![vec![0.0f32; block]; channels];
            unpack(bytes, encoding, channels, &mut cpu_block, n);
            gpu_stage.upload(&ctx.queue, bytes).expect("upload");
            run_pass(&ctx, |p| gpu_stage.encode(p));
            let g = read(&ctx, &planar, 0, channels * block);
            for c in 0..channels {
                cpu_out[c].extend_from_slice(&cpu_block[c]);
                gpu_out[c].extend_from_slice(&g[c * block..(c + 1) * block]);
            }
        }
        assert_bit_identical(&format!("pcm_unpack {encoding:?}"), &cpu_out, &gpu_out);
    }
}

// ---------------------------------------------------------------------------------------------
// fir_convolve

fn fir_case(
    ctx: &GpuContext,
    pipes: &stemforge::gpu::fir_convolve::FirPipelines,
    fft: FftStrategy,
    block: usize,
    taps: &[usize],
    blocks: usize,
) {
    use stemforge::cpu::fir_convolve::FirConvolve as CpuFir;
    use stemforge::gpu::fir_convolve::{FirConvolve, FirLane};
    let frames = block * blocks;
    let hs: Vec<Vec<f32>> = taps.iter().enumerate().map(|(i, &t)| test_fir(t, 0.35, 100 + i as u64)).collect();
    // One signal kind per lane, cycling: music-like noise, a sweep, impulses, a sine.
    let xs: Vec<Vec<f32>> = (0..taps.len())
        .map(|i| match i % 4 {
            0 => music_noise(11 + i as u64, frames, Noise::FullScale),
            1 => sweep(frames, FS, 20.0, 20000.0, 1.0),
            2 => impulses(frames, 3, block / 2 + 7),
            _ => sine(997.0, 1.0, 0.0, frames, FS as u32),
        })
        .collect();
    let ch = taps.len();
    let input = ctx.storage("fir in", (ch * block * 4) as u64);
    let output = ctx.storage("fir out", (ch * block * 4) as u64);
    let lanes: Vec<FirLane> =
        hs.iter().enumerate().map(|(i, h)| FirLane { taps: h, input: i * block, output: i * block }).collect();
    let fir = FirConvolve::new(ctx, pipes, fft, block, &lanes, &input, &output).expect("fir");
    run_encoder(ctx, |e| fir.reset(e));
    let mut cpu: Vec<CpuFir> = hs.iter().map(|h| CpuFir::new(h, block)).collect();
    let (mut cpu_out, mut gpu_out) = (vec![Vec::new(); ch], vec![Vec::new(); ch]);
    for j in 0..blocks {
        let xb = block_of(&xs, j, block);
        upload(ctx, &input, &flat(&xb));
        run_pass(ctx, |p| fir.encode(p, j as u64));
        let g = read(ctx, &output, 0, ch * block);
        for c in 0..ch {
            let mut y = vec![0.0f32; block];
            cpu[c].process(&xb[c], &mut y);
            cpu_out[c].extend_from_slice(&y);
            gpu_out[c].extend_from_slice(&g[c * block..(c + 1) * block]);
        }
    }
    let precision = pipes.precision();
    let label = format!("fir_convolve {precision:?} {fft:?} B={block} taps={taps:?}");
    assert_parity(&label, &cpu_out, &gpu_out, STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
    if precision == Precision::F64 {
        // Both engines in f64: each output is the exact convolution rounded once to f32, so a
        // silent fall back to f32 arithmetic on either side (~-135 dBFS peak) fails here.
        let exact: Vec<Vec<f64>> = xs.iter().zip(&hs).map(|(x, h)| direct(x, h)).collect();
        for (engine, out) in [("cpu", &cpu_out), ("gpu", &gpu_out)] {
            let (mut peak, mut rms) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
            for (c, (y, want)) in out.iter().zip(&exact).enumerate() {
                assert_f32_rounding_of(y, want, &format!("{label}: {engine} channel {c}"));
                let (p, r, _) = residual_db(y, want);
                (peak, rms) = (peak.max(p), rms.max(r));
            }
            println!(
                "{label}: {engine} vs exact direct convolution: peak {peak:.1} dBFS, RMS {rms:.1} dBFS (worst channel)"
            );
            assert!(
                peak <= EXACT_PEAK_DBFS && rms <= EXACT_RMS_DBFS,
                "{label}: {engine} is {peak:.1} dBFS peak, {rms:.1} dBFS RMS off the exact convolution \
                 (limits {EXACT_PEAK_DBFS}, {EXACT_RMS_DBFS})"
            );
        }
    }
}

/// An f64 FIR's distance from the exact convolution on these full-scale signals: its f32 output
/// rounding, half an ulp of outputs below 2.0 (-144.5 dBFS peak); an f32 FFT is ~-135 dBFS.
const EXACT_PEAK_DBFS: f64 = -140.0;
const EXACT_RMS_DBFS: f64 = -150.0;

#[test]
fn fir_convolve() {
    use stemforge::gpu::fir_convolve::FirPipelines;
    let Some(ctx) = gpu("fir_convolve") else {
        return;
    };
    for precision in precisions(&ctx) {
        let pipes = FirPipelines::new(&ctx, precision).expect("fir pipelines");
        // Both FFT strategies, whichever this adapter would pick.
        for fft in [FftStrategy::FourStep, FftStrategy::GlobalPasses] {
            // Partition edge cases at a small block: 1 tap, part of a partition, exactly one, one
            // more, several (the frequency-domain delay line), over 6 blocks; a block whose FFT
            // size has an odd log2 (radix-2 pass) and one that is not a power of two (N = 1024 >
            // 2B).
            fir_case(&ctx, &pipes, fft, 256, &[1, 37, 256, 257, 3 * 256 + 5], 6);
            fir_case(&ctx, &pipes, fft, 512, &[600], 4);
            fir_case(&ctx, &pipes, fft, 300, &[301, 77], 4);
            // A block far below the smallest FFT (N = 32 > 2B): the history spans several blocks.
            fir_case(&ctx, &pipes, fft, 5, &[3, 12, 40], 12);
            // The render's default block with an 8191-tap EQ (one partition, FFT 16384 = 64 x 128
            // x 2), and a 3-partition filter, over 3 blocks.
            fir_case(&ctx, &pipes, fft, 8192, &[8191, 20000], 3);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// gain_sum

/// The CPU twin's loop (`cpu::gain_sum::gain_sum` on the main branch): bus[dst] += w * stem[src].
fn cpu_gain_sum(routes: &[(usize, usize, f32)], stem: &[Vec<f32>], bus: &mut [Vec<f32>], frames: usize) {
    for &(src, dst, w) in routes {
        for (b, s) in bus[dst][..frames].iter_mut().zip(&stem[src][..frames]) {
            *b += w * *s;
        }
    }
}

#[test]
fn gain_sum() {
    use stemforge::gpu::gain_sum::{GainSum, Route};
    let Some(ctx) = gpu("gain_sum") else { return };
    let block = 512usize;
    let bus_ch = 2usize;
    let g = |db: f64| 10f64.powf(db / 20.0) as f32;
    let m = std::f32::consts::FRAC_1_SQRT_2;
    // Stereo at +0.5 dB, mono to L and R at -3 dB and -2 dB of gain, stereo at -6 dB.
    type Stem = (usize, Vec<(usize, usize, f32)>);
    let stems: Vec<Stem> = vec![
        (2, vec![(0, 0, g(0.5)), (1, 1, g(0.5))]),
        (1, vec![(0, 0, g(-2.0) * m), (0, 1, g(-2.0) * m)]),
        (2, vec![(0, 0, g(-6.0)), (1, 1, g(-6.0))]),
    ];
    let stem_ch: usize = stems.iter().map(|s| s.0).sum();
    let signals: Vec<Vec<f32>> =
        (0..stem_ch).map(|i| music_noise(40 + i as u64, block * 3, Noise::FullScale)).collect();
    let stem_buf = ctx.storage("stems", (stem_ch * block * 4) as u64);
    for stems_out in [false, true] {
        let mut per_stem = Vec::new();
        let mut first = 0;
        for (ch, routes) in &stems {
            per_stem.push(
                routes
                    .iter()
                    .map(|&(s, d, w)| Route { src: ((first + s) * block) as u32, dst: d as u32, weight: w, _pad: 0 })
                    .collect::<Vec<_>>(),
            );
            first += ch;
        }
        let sig: Vec<Vec<Route>> = if stems_out { per_stem } else { vec![per_stem.concat()] };
        let n_sig = sig.len();
        let summed = ctx.storage("summed", (n_sig * bus_ch * block * 4) as u64);
        let ring = ctx.storage("ring", (2 * (1 + if stems_out { 3 } else { 0 }) * bus_ch * block * 4) as u64);
        let mut stage = GainSum::new(&ctx, block, bus_ch, &sig, stems_out, &stem_buf, &summed, Some((&summed, &ring)))
            .expect("gain_sum");
        let gain = g(-4.3);
        stage.set_gain(&ctx.queue, gain);
        let slot_len = (1 + if stems_out { 3 } else { 0 }) * bus_ch * block;
        let (mut cpu_route, mut gpu_route) = (vec![Vec::new(); n_sig * bus_ch], vec![Vec::new(); n_sig * bus_ch]);
        let (mut cpu_mix, mut gpu_mix) = (vec![Vec::new(); slot_len / block], vec![Vec::new(); slot_len / block]);
        for j in 0..3 {
            let xb = block_of(&signals, j, block);
            upload(&ctx, &stem_buf, &flat(&xb));
            // Block 1 keeps only frames [0, 300): the end of the program, zeroed after it.
            let (from, to) = if j == 1 { (0, 300) } else { (0, block) };
            run_pass(&ctx, |p| {
                stage.encode_route(p);
                stage.encode_mix(p, (j % 2) * slot_len, from, to);
            });
            let r = read(&ctx, &summed, 0, n_sig * bus_ch * block);
            let x = read(&ctx, &ring, (j % 2) * slot_len, slot_len);
            // CPU: the engine's steps 3-4 with the twin's loop.
            let mut contrib = vec![vec![vec![0.0f32; block]; bus_ch]; n_sig];
            let mut first = 0;
            for (i, (ch, routes)) in stems.iter().enumerate() {
                let target = if stems_out { &mut contrib[i] } else { &mut contrib[0] };
                cpu_gain_sum(routes, &xb[first..first + ch], target, block);
                first += ch;
            }
            for (i, c) in contrib.iter().flatten().enumerate() {
                cpu_route[i].extend_from_slice(c);
                gpu_route[i].extend_from_slice(&r[i * block..(i + 1) * block]);
            }
            contrib.iter_mut().flatten().for_each(|c| {
                c.iter_mut().for_each(|v| *v *= gain);
                c[to..].fill(0.0);
            });
            let mut bus = vec![vec![0.0f32; block]; bus_ch];
            for c in &contrib {
                for (d, s) in bus.iter_mut().zip(c) {
                    d.iter_mut().zip(s).for_each(|(d, s)| *d += *s);
                }
            }
            let slot: Vec<&Vec<f32>> =
                if stems_out { bus.iter().chain(contrib.iter().flatten()).collect() } else { bus.iter().collect() };
            for (i, c) in slot.iter().enumerate() {
                cpu_mix[i].extend_from_slice(c);
                gpu_mix[i].extend_from_slice(&x[i * block..(i + 1) * block]);
            }
        }
        let mode = if stems_out { "per stem" } else { "one bus" };
        assert_parity(&format!("gain_sum route ({mode})"), &cpu_route, &gpu_route, STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
        assert_parity(&format!("gain_sum mix ({mode})"), &cpu_mix, &gpu_mix, STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
    }
}

// ---------------------------------------------------------------------------------------------
// limiter stages

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

/// The f32 variants' margins (`#ifndef F64` in shaders/<stage>.wgsl): oversample_peak adds 1e-5 dB, so its residual
/// in dB is at most that plus f32 log2's error (~4e-6 dB): 2e-5 dB is -94 dBFS. limiter_smooth
/// scales g by 1 - 2^-19 (1.9e-6) plus exp2's error: 4e-6 is -108 dBFS. Their RMS is about the
/// margin itself, hence the same bounds.
const F32_PEAK_ATTEN_DBFS: f64 = -94.0;
const F32_SMOOTH_GAIN_DBFS: f64 = -108.0;

#[test]
fn oversample_peak() {
    use stemforge::dsp::oversampling::design_oversampling;
    use stemforge::gpu::oversample_peak::OversamplePeak;
    let Some(ctx) = gpu("oversample_peak") else {
        return;
    };
    let (block, blocks, ceiling) = (512usize, 4usize, -1.0f32);
    for precision in precisions(&ctx) {
        for (factor, channels) in [(1usize, 2usize), (2, 2), (4, 2), (4, 6), (8, 2)] {
            let x = loud_program(channels, block * blocks, 60);
            let table = design_oversampling(factor);
            let input = ctx.storage("x", (channels * block * 4) as u64);
            let atten = ctx.storage("a", (block * 4) as u64);
            let st = OversamplePeak::new(&ctx, precision, &table, channels, block, ceiling, &input, 0, &atten)
                .expect("peak");
            run_encoder(&ctx, |e| st.reset(e));
            let mut got = Vec::new();
            for j in 0..blocks {
                upload(&ctx, &input, &flat(&block_of(&x, j, block)));
                run_pass(&ctx, |p| st.encode(p, j as u64));
                got.extend(read(&ctx, &atten, 0, block));
            }
            let want = cpu_atten(&x, factor, block, ceiling);
            assert!(want.iter().any(|a| *a > 1.0), "the test signal must need attenuation");
            let label = format!("oversample_peak {precision:?} K={factor} channels={channels}");
            match precision {
                // The polyphase sums run in the same order on both sides and a by the same f64
                // series: only FMA contraction by the GPU compiler can separate them.
                Precision::F64 => {
                    assert_parity(&label, &[want], &[got], STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
                }
                Precision::F32 => {
                    // Conservative like the CPU twin: never below its attenuation.
                    let under = want.iter().zip(&got).position(|(w, g)| g < w);
                    assert!(under.is_none(), "{label}: attenuation below the CPU's at frame {under:?}");
                    assert_parity(&label, &[want], &[got], F32_PEAK_ATTEN_DBFS, F32_PEAK_ATTEN_DBFS);
                }
            }
        }
    }
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

#[test]
fn limiter_hold() {
    use stemforge::cpu::limiter_hold::LimiterHold as Cpu;
    use stemforge::gpu::limiter_hold::LimiterHold;
    let Some(ctx) = gpu("limiter_hold") else {
        return;
    };
    let block = 512usize;
    let a = cpu_atten(&loud_program(2, block * 5, 70), 4, block, -1.0);
    // L = 1 (no hold), short, 2 ms at 48 kHz, and longer than a block (the halo spans blocks).
    for l in [1usize, 7, 96, 700] {
        let input = ctx.storage("a", (block * 4) as u64);
        let output = ctx.storage("A", (block * 4) as u64);
        let st = LimiterHold::new(&ctx, l, block, &input, &output).expect("hold");
        run_encoder(&ctx, |e| st.reset(e));
        let got = gpu_blocks(&ctx, &a, block, &input, &output, |p, j| st.encode(p, j));
        let mut cpu = Cpu::new(l, block);
        let want = cpu_blocks(&a, block, |i, o| cpu.process(i, o));
        // A maximum is exact: identical.
        assert_bit_identical(&format!("limiter_hold L={l}"), &[want], &[got]);
    }
}

#[test]
fn limiter_release() {
    use stemforge::cpu::limiter_hold::LimiterHold as CpuHold;
    use stemforge::cpu::limiter_release::LimiterRelease as Cpu;
    use stemforge::gpu::limiter_release::LimiterRelease;
    let Some(ctx) = gpu("limiter_release") else {
        return;
    };
    let a = cpu_atten(&loud_program(2, 4096 * 4, 80), 4, 4096, -1.0);
    for precision in precisions(&ctx) {
        for (block, release_ms) in [(4096usize, 60.0f64), (512, 5.0), (300, 500.0)] {
            let mut hold = CpuHold::new(96, block);
            let held = cpu_blocks(&a[..a.len() / block * block], block, |i, o| hold.process(i, o));
            let rho = (-1000.0 / (release_ms * FS)).exp() as f32;
            let input = ctx.storage("A", (block * 4) as u64);
            let output = ctx.storage("D", (block * 4) as u64);
            let st = LimiterRelease::new(&ctx, precision, rho, block, &input, &output).expect("release");
            run_encoder(&ctx, |e| st.reset(e));
            let got = gpu_blocks(&ctx, &held, block, &input, &output, |p, _| st.encode(p));
            let label = format!("limiter_release {precision:?} B={block} release={release_ms} ms");
            let want = match precision {
                // The scan keeps the f64 recursion's exact rounding (see the shader): identical.
                Precision::F64 => {
                    let mut cpu = Cpu::new(rho);
                    cpu_blocks(&held, block, |i, o| cpu.process(i, o))
                }
                // The fallback is exactly an f32 sequential recursion.
                Precision::F32 => {
                    let mut d = 0.0f32;
                    held.iter()
                        .map(|a| {
                            d = a.max(rho * d);
                            d
                        })
                        .collect()
                }
            };
            assert_bit_identical(&label, &[want], &[got]);
        }
    }
}

#[test]
fn limiter_smooth() {
    use stemforge::cpu::limiter_release::LimiterRelease as CpuRelease;
    use stemforge::cpu::limiter_smooth::LimiterSmooth as Cpu;
    use stemforge::gpu::limiter_smooth::LimiterSmooth;
    let Some(ctx) = gpu("limiter_smooth") else {
        return;
    };
    let block = 512usize;
    let a = cpu_atten(&loud_program(2, block * 5, 90), 4, block, -1.0);
    let mut release = CpuRelease::new((-1000.0 / (60.0 * FS)).exp() as f32);
    let d = cpu_blocks(&a, block, |i, o| release.process(i, o));
    for precision in precisions(&ctx) {
        for l in [1usize, 96, 700] {
            let input = ctx.storage("D", (block * 4) as u64);
            let output = ctx.storage("g", (block * 4) as u64);
            let st = LimiterSmooth::new(&ctx, precision, l, block, &input, &output).expect("smooth");
            run_encoder(&ctx, |e| st.reset(e));
            let got = gpu_blocks(&ctx, &d, block, &input, &output, |p, j| st.encode(p, j));
            let mut cpu = Cpu::new(l, block);
            let want = cpu_blocks(&d, block, |i, o| cpu.process(i, o));
            assert!(want.iter().any(|g| *g < 0.9), "the test must reach real gain reduction");
            let label = format!("limiter_smooth {precision:?} L={l}");
            match precision {
                Precision::F64 => {
                    assert_parity(&label, &[want], &[got], STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
                }
                Precision::F32 => {
                    // Conservative like the CPU twin: never above its gain.
                    let over = want.iter().zip(&got).position(|(w, g)| g > w);
                    assert!(over.is_none(), "{label}: gain above the CPU's at frame {over:?}");
                    assert_parity(&label, &[want], &[got], F32_SMOOTH_GAIN_DBFS, F32_SMOOTH_GAIN_DBFS);
                }
            }
        }
    }
}

#[test]
fn limiter_apply() {
    use stemforge::cpu::limiter_apply::apply;
    use stemforge::gpu::limiter_apply::LimiterApply;
    let Some(ctx) = gpu("limiter_apply") else {
        return;
    };
    let (block, channels) = (512usize, 3usize);
    let x = loud_program(channels, block * 3, 95);
    let g: Vec<f32> = music_noise(96, block * 3, Noise::FullScale).iter().map(|v| 0.5 + 0.5 * v.abs()).collect();
    let (gain, xb, yb) = (
        ctx.storage("g", (block * 4) as u64),
        ctx.storage("x", ((channels + 1) * block * 4) as u64),
        ctx.storage("y", ((channels + 2) * block * 4) as u64),
    );
    let st = LimiterApply::new(&ctx, block, &gain, &xb, &yb).expect("apply");
    let (mut cpu_out, mut gpu_out) = (vec![Vec::new(); channels], vec![Vec::new(); channels]);
    for j in 0..3 {
        let xj = block_of(&x, j, block);
        let gj = &g[j * block..(j + 1) * block];
        upload(&ctx, &gain, gj);
        // Offsets as the engine uses them: a ring slot in, an output region out.
        ctx.queue.write_buffer(&xb, (block * 4) as u64, bytemuck::cast_slice(&flat(&xj)));
        run_pass(&ctx, |p| st.encode(p, channels, block, 2 * block));
        let y = read(&ctx, &yb, 2 * block, channels * block);
        for c in 0..channels {
            let mut v = xj[c].clone();
            apply(&mut v, gj);
            cpu_out[c].extend(v);
            gpu_out[c].extend_from_slice(&y[c * block..(c + 1) * block]);
        }
    }
    // One f32 multiply each side: identical.
    assert_bit_identical("limiter_apply", &cpu_out, &gpu_out);
}

/// The `stats` entry point of limiter_apply: a block's least gain and Σ log10 gain, reduced on the
/// device per 4096-frame workgroup and finished on the host, against the CPU twin on the same
/// gains. The least gain is a min of the same f32 values: identical. The sum is of f32 log2 (the
/// Vulkan bound for GLSL.std.450 Log2 is 3 ulp, or 2^-21 absolute for x in [0.5, 2]) added in f32
/// within a workgroup, at most 24 roundings of 2^-24 deep (16 serial terms, a tree of 8 levels;
/// every term has one sign, so nothing cancels): `bound` below is those two, per block. The test
/// prints the error measured against it.
#[test]
fn limiter_apply_stats() {
    use stemforge::cpu::limiter_apply::gain_stats;
    use stemforge::gpu::limiter_apply::{LimiterApply, STATS_SPAN};
    let Some(ctx) = gpu("limiter_apply_stats") else {
        return;
    };
    // Three workgroups a block, the last of them partial.
    let block = 2 * STATS_SPAN + 1500;
    let blocks = 6;
    // A limiter's gain working hard: a reduction envelope of up to 18 dB that follows a loud
    // program's level, stretches of exact unity (the limiter idle), and stretches just under unity
    // (hundredths of a dB), where log2 is near 0 and its absolute error counts most.
    let level = music_noise(97, block * blocks, Noise::FullScale);
    let mut env = 0.0f64;
    let g: Vec<f32> = level
        .iter()
        .enumerate()
        .map(|(i, v)| {
            env = env.max(v.abs() as f64) * 0.9995;
            match (i / 3000) % 5 {
                0 => 1.0,
                1 => 10f64.powf(-0.02 * env / 20.0) as f32,
                _ => 10f64.powf(-18.0 * env / 20.0) as f32,
            }
        })
        .collect();
    assert!(g.iter().all(|&v| v > 0.0 && v <= 1.0));
    let (gain, x, y) = (ctx.storage("g", (block * 4) as u64), ctx.storage("x", 4), ctx.storage("y", 4));
    let st = LimiterApply::new(&ctx, block, &gain, &x, &y).expect("apply");
    let n_partials = st.stats_bytes() as usize / 4;
    assert_eq!(n_partials, 6, "three workgroups a block");
    let mut worst_rel = 0.0f64;
    for j in 0..blocks {
        let gj = &g[j * block..(j + 1) * block];
        // Valid frames: whole blocks, then partial ones that leave the last workgroup empty, end
        // mid-workgroup, and hold a single frame.
        let len = [block, block, block - 1, 2 * STATS_SPAN, STATS_SPAN + 17, 1][j];
        // Beyond `len` the buffer holds gains far below the block's: any read past it would show.
        let mut held = gj.to_vec();
        held[len..].iter_mut().for_each(|v| *v = 1e-3);
        upload(&ctx, &gain, &held);
        run_pass(&ctx, |p| st.encode_stats(p, len));
        let partials: Vec<f32> = read(&ctx, &st.partials, 0, n_partials);
        let got = LimiterApply::decode_stats(bytemuck::cast_slice(&partials), len);
        let want = gain_stats(&gj[..len]);
        assert_eq!(got.frames, len);
        assert_eq!(
            got.least.to_bits(),
            want.least.to_bits(),
            "block {j}: least gain {} vs cpu {}",
            got.least,
            want.least
        );
        let err = (got.sum_log10 - want.sum_log10).abs();
        let log10_2 = std::f64::consts::LOG10_2;
        let log2_err: f64 = gj[..len]
            .iter()
            .map(|&v| {
                if (0.5..=2.0).contains(&v) {
                    2f64.powi(-21)
                } else {
                    3.0 * f32::EPSILON as f64 * (v as f64).log2().abs()
                }
            })
            .sum();
        let bound = log10_2 * log2_err + 24.0 * 2f64.powi(-24) * want.sum_log10.abs();
        let rel = if want.sum_log10 != 0.0 { err / want.sum_log10.abs() } else { err };
        worst_rel = worst_rel.max(rel);
        println!(
            "limiter_apply_stats block {j} ({len} frames): sum log10 cpu {:.9e}, gpu {:.9e}, |diff| {err:.3e} \
             ({rel:.3e} relative; bound {bound:.3e}), mean reduction diff {:.3e} dB",
            want.sum_log10,
            got.sum_log10,
            20.0 * err / len as f64
        );
        assert!(
            err <= bound,
            "block {j}: sum of log10 {} vs cpu {}: |diff| {err:e} over the bound {bound:e}",
            got.sum_log10,
            want.sum_log10
        );
    }
    println!("limiter_apply_stats: worst relative error of the sum of log10: {worst_rel:.3e}");
}

// ---------------------------------------------------------------------------------------------
// dither_quantize

#[test]
fn dither_quantize() {
    use stemforge::cpu::dither_quantize::quantize_block;
    use stemforge::gpu::dither_quantize::{DitherPipeline, DitherQuantize};
    use stemforge::session::SampleFormat;
    let Some(ctx) = gpu("dither_quantize") else {
        return;
    };
    let (block, channels, blocks) = (512usize, 3usize, 3usize);
    // Full scale and a little over (the clamp), plus exact rounding ties at 16 bits.
    let mut x: Vec<Vec<f32>> = (0..channels)
        .map(|c| music_noise(120 + c as u64, block * blocks, Noise::FullScale).iter().map(|v| v * 1.02).collect())
        .collect();
    for (i, v) in x[1].iter_mut().take(64).enumerate() {
        *v = (i as f32 - 32.0 + 0.5) / 32768.0;
    }
    let planar = ctx.storage("planar", (channels * block * 4) as u64);
    let pipe = DitherPipeline::new(&ctx).expect("dither_quantize pipeline");
    let dir = tempfile::tempdir().expect("temp dir");
    for format in [SampleFormat::Pcm16, SampleFormat::Pcm24, SampleFormat::Pcm32, SampleFormat::F32] {
        for seed in [None, Some(0x1234_5678u32)] {
            // A first frame just below 2^32: the hash's 64-bit frame index carries mid-block.
            for first in [0u64, (1u64 << 32) - 700] {
                let st = DitherQuantize::new(&ctx, &pipe, format, seed, channels, block, &planar, 0).expect("dither");
                let bps = format.bytes_per_sample();
                let (mut cpu_bytes, mut gpu_bytes) = (Vec::new(), Vec::new());
                // The CPU side of the clamped-sample count is the writer's (`write_planar`).
                let spec =
                    stemforge::io::WriterSpec { sample_rate: 48000, channels, layout: None, format, dither_seed: seed };
                let mut writer =
                    stemforge::io::wav_writer::WavWriter::create(&dir.path().join("w.wav"), &spec).expect("writer");
                let mut gpu_over = 0u64;
                for j in 0..blocks {
                    // The last block is partial: 333 frames.
                    let frames = if j + 1 == blocks { 333 } else { block };
                    let xb = block_of(&x, j, block);
                    upload(&ctx, &planar, &flat(&xb));
                    let f0 = first + (j * block) as u64;
                    run_pass(&ctx, |p| st.encode(p, f0, frames));
                    gpu_over += ctx.read_back::<u32>(&st.over_full_scale, 0, 1).expect("read")[0] as u64;
                    run_encoder(&ctx, |e| e.clear_buffer(&st.over_full_scale, 0, None));
                    let planes: Vec<&[f32]> = xb.iter().map(|c| &c[..frames]).collect();
                    writer.write_planar(&planes, frames).expect("write");
                    let words = st.packed_len(frames).div_ceil(4);
                    let w: Vec<u32> = ctx.read_back(&st.packed, 0, words).expect("read");
                    gpu_bytes.extend_from_slice(&bytemuck::cast_slice::<u32, u8>(&w)[..st.packed_len(frames)]);
                    let ints: Vec<Vec<i32>> = (0..channels)
                        .map(|c| {
                            let mut q = vec![0i32; frames];
                            if let Some(bits) = format.int_bits() {
                                quantize_block(&xb[c][..frames], bits, seed, c as u32, f0, &mut q);
                            }
                            q
                        })
                        .collect();
                    for n in 0..frames {
                        for c in 0..channels {
                            match format {
                                SampleFormat::F32 => cpu_bytes.extend_from_slice(&xb[c][n].to_le_bytes()),
                                _ => cpu_bytes.extend_from_slice(&ints[c][n].to_le_bytes()[..bps]),
                            }
                        }
                    }
                }
                let label = format!("dither_quantize {format:?} seed={seed:?} first_frame={first}");
                assert_identical_bytes(&label, &cpu_bytes, &gpu_bytes, bps, channels);
                let cpu_over = writer.finish().expect("finish").over_full_scale;
                // The signal peaks at 1.02: a test of the count only if some samples are over.
                assert!(cpu_over > 0, "{label}: no sample beyond full scale in the test signal");
                assert_eq!(gpu_over, cpu_over, "{label}: samples beyond full scale");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// delay_line (the engine's alignment; its CPU twin is the CPU engine's DelayLine)

#[test]
fn delay_line() {
    use stemforge::gpu::delay_line::{DelayLine, DelayPipelines};
    let Some(ctx) = gpu("delay_line") else { return };
    let (block, blocks) = (64usize, 8usize);
    // No delay, sub-block, one short of a block, exactly one, more than one, several blocks.
    let delays = [0usize, 5, 63, 64, 67, 200];
    let x: Vec<Vec<f32>> =
        (0..delays.len()).map(|c| music_noise(150 + c as u64, block * blocks, Noise::FullScale)).collect();
    let pipes = DelayPipelines::new(&ctx).expect("delay pipelines");
    let (input, output) =
        (ctx.storage("in", (delays.len() * block * 4) as u64), ctx.storage("out", (delays.len() * block * 4) as u64));
    let lanes: Vec<(usize, usize, usize)> =
        delays.iter().enumerate().map(|(c, &d)| (c * block, c * block, d)).collect();
    let st = DelayLine::new(&ctx, &pipes, block, &lanes, &input, &output).expect("delay");
    run_encoder(&ctx, |e| st.reset(e));
    let mut got = vec![Vec::new(); delays.len()];
    for j in 0..blocks {
        upload(&ctx, &input, &flat(&block_of(&x, j, block)));
        run_pass(&ctx, |p| st.encode(p, j as u64));
        let y = read(&ctx, &output, 0, delays.len() * block);
        for c in 0..delays.len() {
            got[c].extend_from_slice(&y[c * block..(c + 1) * block]);
        }
    }
    let want: Vec<Vec<f32>> = x
        .iter()
        .zip(delays)
        .map(|(c, d)| (0..c.len()).map(|n| if n >= d { c[n - d] } else { 0.0 }).collect())
        .collect();
    assert_bit_identical("delay_line", &want, &got);
}

/// A program for the meter: per channel three tones and seeded noise bursts, in 1.7 s sections
/// whose levels jump by up to 35 dB (so that both gates and the LRA percentiles have work), peak
/// near full scale; channel 3 of a 5.1 program is an LFE-like 45 Hz tone (excluded from loudness
/// but in the peaks). Never zeros.
fn meter_program(channels: usize, frames: usize, fs: f64, seed: u64) -> Vec<Vec<f32>> {
    let levels_db = [-6.0, -24.0, -12.0, -38.0, -3.0, -18.0, -30.0, -9.0];
    (0..channels)
        .map(|c| {
            let mut rng = Rng::new(seed * 31 + c as u64);
            let tones = [97.0 * (1.0 + c as f64 * 0.13), 1000.0 + 170.0 * c as f64, 6300.0 - 400.0 * c as f64];
            let mut x: Vec<f32> = (0..frames)
                .map(|n| {
                    let t = n as f64 / fs;
                    let section = (t / 1.7) as usize;
                    let gain = 10f64.powf(levels_db[(section + c) % levels_db.len()] / 20.0);
                    let noise = if (t * 3.0).fract() < 0.4 { rng.uniform() } else { 0.05 * rng.uniform() };
                    let v = if channels == 6 && c == 3 {
                        (2.0 * std::f64::consts::PI * 45.0 * t).sin()
                    } else {
                        tones.iter().map(|f| (2.0 * std::f64::consts::PI * f * t).sin()).sum::<f64>() / 3.0 + noise
                    };
                    (gain * v) as f32
                })
                .collect();
            normalise(&mut x, 0.97);
            x
        })
        .collect()
}

/// The device meter over `x` in blocks: the `EnergyMeter` readings and, per complete 100 ms step,
/// its weighted mean-square energy (what the crate's `loudness_window(100)` reads at that step).
fn device_meter(
    ctx: &GpuContext,
    precision: Precision,
    x: &[Vec<f32>],
    fs: u32,
    block: usize,
    layout: stemforge::session::Layout,
) -> (stemforge::cpu::loudness::LoudnessStats, Vec<f64>) {
    use stemforge::cpu::loudness::{EnergyMeter, MeterScope, channel_map, channel_weight};
    use stemforge::gpu::loudness::Loudness;
    let (channels, frames) = (x.len(), x[0].len());
    let input = ctx.storage("x", (channels * block * 4) as u64);
    let st = Loudness::new(ctx, precision, fs, channels, block, &input).expect("loudness stage");
    let mut meter = EnergyMeter::new(channels, fs, Some(layout), MeterScope::Full).expect("meter");
    let weights: Vec<f64> = channel_map(channels, Some(layout)).into_iter().map(channel_weight).collect();
    let step = meter.step();
    let mut step_energy = Vec::new();
    let mut open = 0.0;
    run_encoder(ctx, |e| st.reset(e));
    let (mut energies, mut peaks) = (Vec::new(), Vec::new());
    for j in 0..frames.div_ceil(block) {
        let first = j * block;
        let len = (frames - first).min(block);
        upload(ctx, &input, &flat(&block_of(x, j, block)));
        run_pass(ctx, |p| st.encode(p, j as u64, first as u64, len, 0));
        let e: Vec<u8> = ctx.read_back(&st.energy, 0, st.energy_bytes() as usize).expect("energies");
        let p: Vec<u8> = ctx.read_back(&st.peaks, 0, st.peaks_bytes() as usize).expect("peaks");
        st.decode(&e, &p, &mut energies, &mut peaks);
        meter.add_block(first as u64, len, st.steps(), &energies, &peaks);
        for s in 0..st.steps() {
            let abs = first / step + s;
            if abs * step >= first + len {
                break;
            }
            open += (0..channels).map(|c| weights[c] * energies[c * st.steps() + s]).sum::<f64>();
            if (abs + 1) * step <= first + len {
                step_energy.push(open / step as f64);
                open = 0.0;
            }
        }
    }
    (meter.result(), step_energy)
}

/// The CPU meter (the `ebur128` crate) over `x` in blocks, and per 100 ms step the crate's own
/// `loudness_window(100)` energy (a `Mode::M` instance with the same channel map, fed by step).
fn cpu_meter(
    x: &[Vec<f32>],
    fs: u32,
    block: usize,
    layout: stemforge::session::Layout,
) -> (stemforge::cpu::loudness::LoudnessStats, Vec<f64>) {
    use stemforge::cpu::loudness::{LoudnessMeter, channel_map};
    let (channels, frames) = (x.len(), x[0].len());
    let mut meter = LoudnessMeter::new(channels, fs, Some(layout)).expect("meter");
    for j in 0..frames.div_ceil(block) {
        let end = ((j + 1) * block).min(frames);
        let views: Vec<&[f32]> = x.iter().map(|c| &c[j * block..end]).collect();
        meter.add_planar(&views);
    }
    let mut window = ebur128::EbuR128::new(channels as u32, fs, ebur128::Mode::M).expect("crate meter");
    window.set_channel_map(&channel_map(channels, Some(layout))).expect("map");
    let step = (fs as usize + 5) / 10;
    let mut steps = Vec::new();
    for k in 0..frames / step {
        let views: Vec<&[f32]> = x.iter().map(|c| &c[k * step..(k + 1) * step]).collect();
        window.add_frames_planar_f32(&views).expect("feed");
        let l = window.loudness_window(100).expect("window");
        steps.push(if l.is_finite() { 10f64.powf((l + 0.691) / 10.0) } else { 0.0 });
    }
    (meter.result(), steps)
}

/// DESIGN.md "Parity contract": loudness and true-peak readings within 0.01 LU/dB.
const READING_TOLERANCE: f64 = 0.01;

/// Each reading of the device meter against the CPU meter, within `READING_TOLERANCE`; returns the
/// largest difference.
fn assert_readings(
    label: &str,
    cpu: &stemforge::cpu::loudness::LoudnessStats,
    gpu: &stemforge::cpu::loudness::LoudnessStats,
) -> f64 {
    let pairs = [
        ("integrated LUFS", cpu.integrated_lufs, gpu.integrated_lufs),
        ("LRA LU", cpu.lra_lu, gpu.lra_lu),
        ("max momentary LUFS", cpu.max_momentary_lufs, gpu.max_momentary_lufs),
        ("max short-term LUFS", cpu.max_short_term_lufs, gpu.max_short_term_lufs),
        ("sample peak dBFS", cpu.sample_peak_dbfs, gpu.sample_peak_dbfs),
        ("true peak dBTP", cpu.true_peak_dbtp, gpu.true_peak_dbtp),
    ];
    let mut worst = 0.0f64;
    for (what, a, b) in pairs {
        assert!(
            a.is_finite() && b.is_finite(),
            "{label}: {what}: cpu {a}, gpu {b}: the test program must give every reading"
        );
        let d = (a - b).abs();
        assert!(
            d <= READING_TOLERANCE,
            "{label}: {what}: cpu {a:.6}, gpu {b:.6}, |diff| {d:.2e} > {READING_TOLERANCE}"
        );
        println!("{label}: {what}: cpu {a:.6}, gpu {b:.6}, |diff| {d:.2e}");
        worst = worst.max(d);
    }
    worst
}

/// The cases: (layout, rate, block, frames); frames never a multiple of the block, and at
/// 44.1 kHz the 100 ms step (4410) is not a multiple of a chunk, so chunks straddle step
/// boundaries. 96 kHz runs the crate's 2x interpolator.
fn loudness_cases() -> Vec<(stemforge::session::Layout, u32, usize, usize)> {
    use stemforge::session::Layout;
    vec![
        (Layout::Stereo, 48000, 8192, 48000 * 12 + 777),
        (Layout::Surround51, 44100, 4096, 44100 * 11 + 1234),
        (Layout::Surround51, 48000, 16384, 48000 * 7 + 5),
        (Layout::Stereo, 96000, 8192, 96000 * 4 + 4097),
    ]
}

#[test]
fn loudness() {
    use stemforge::gpu::loudness::Loudness;
    let Some(ctx) = gpu("loudness") else {
        return;
    };
    // The device meter runs in f64 only: its f32 fallback read up to 0.022 LU off (see
    // `Loudness::supports`), and the engine keeps the CPU meter there, which this checks.
    assert!(Loudness::supports(Precision::F32, 48000, 8192).is_err(), "the f32 device meter must be refused");
    if !ctx.has_f64() {
        let x = ctx.storage("x", 4 * 8192);
        assert!(Loudness::new(&ctx, Precision::F32, 48000, 2, 8192, &x).is_err());
        println!("loudness: no SHADER_F64 on this adapter, so the engine keeps the CPU meter (checked)");
        return;
    }
    for (layout, fs, block, frames) in loudness_cases() {
        let x = meter_program(layout.channels(), frames, fs as f64, fs as u64 + block as u64);
        let (want, _) = cpu_meter(&x, fs, block, layout);
        let (got, _) = device_meter(&ctx, Precision::F64, &x, fs, block, layout);
        let label = format!("loudness {} {fs} Hz block {block}", layout.name());
        let worst = assert_readings(&label, &want, &got);
        println!("{label}: largest reading difference {worst:.2e}");
    }
}

/// The device's K-weighted energy of every 100 ms step against the crate's own
/// `loudness_window(100)` at that step. Both run the same f64 recursion; the device's scan
/// reassociates it (chunk states through matrix powers), so they agree to rounding: 1e-9
/// relative is 4e-9 dB, a million times finer than the readings' 0.01 LU and far above f64's
/// rounding over these lengths (the filter's poles sit within 0.5 % of the unit circle, which
/// amplifies rounding by about 1e4: 1e-12).
#[test]
fn loudness_step_energies_match_the_crate() {
    let Some(ctx) = gpu("loudness_step_energies_match_the_crate") else {
        return;
    };
    if !ctx.has_f64() {
        panic!("this test checks the f64 device meter, and the adapter has no SHADER_F64");
    }
    for (layout, fs, block, frames) in loudness_cases() {
        let x = meter_program(layout.channels(), frames, fs as f64, fs as u64 + block as u64);
        let (_, want) = cpu_meter(&x, fs, block, layout);
        let (_, got) = device_meter(&ctx, Precision::F64, &x, fs, block, layout);
        assert_eq!(want.len(), got.len(), "{}: step counts", layout.name());
        let mut worst = (0.0f64, 0usize);
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            assert!(*w > 0.0, "step {k}: the test program must not be silent");
            let rel = ((g - w) / w).abs();
            if rel > worst.0 {
                worst = (rel, k);
            }
            assert!(
                rel <= 1e-9,
                "loudness {} {fs} Hz block {block}: step {k} (frames {}..): crate {w:e}, device {g:e}, relative {rel:.2e}",
                layout.name(),
                k * ((fs as usize + 5) / 10)
            );
        }
        println!(
            "loudness steps {} {fs} Hz block {block}: {} steps, largest relative difference {:.2e} at step {}",
            layout.name(),
            want.len(),
            worst.0,
            worst.1
        );
    }
}
