//! Parity of `fir_convolve`: the partitioned FIR on both engines, both FFT strategies and every precision; in f64 also against the exact convolution.
use crate::common::exact_fir::{assert_f32_rounding_of, direct, residual_db};
use crate::common::gpu_harness::{gpu, read, run_encoder, run_pass, upload};
use crate::common::gpu_parity::{STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_parity};
use crate::common::{Noise, impulses, music_noise, sine, sweep, test_fir};
use crate::{FS, block_of, flat, precisions};
use stemforge::gpu::GpuContext;
use stemforge::gpu::context::Precision;
use stemforge::gpu::fir_convolve::FftStrategy;

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
