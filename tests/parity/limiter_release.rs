//! Parity of `limiter_release`: the release recursion: identical to the CPU twin in f64, to an f32 recursion in f32.
use crate::common::gpu_harness::{gpu, run_encoder};
use crate::{FS, assert_bit_identical, cpu_atten, cpu_blocks, gpu_blocks, loud_program, precisions};
use stemforge::gpu::context::Precision;

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
