//! Parity of `limiter_smooth`: the smoothing box.
use crate::common::gpu_harness::{gpu, run_encoder};
use crate::common::gpu_parity::{STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_parity};
use crate::{FS, cpu_atten, cpu_blocks, gpu_blocks, loud_program, precisions};
use stemforge::gpu::context::Precision;

/// The f32 variant's margin (`#ifndef F64` in shaders/limiter_smooth.wgsl): it scales g by
/// 1 - 2^-19 (1.9e-6) plus exp2's error: 4e-6 is -108 dBFS. Its RMS is about the margin itself,
/// hence the same bound.
const F32_SMOOTH_GAIN_DBFS: f64 = -108.0;

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
