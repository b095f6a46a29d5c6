//! Parity of `oversample_peak`: the oversampled peak detector's attenuation.
use crate::common::gpu_harness::{gpu, read, run_encoder, run_pass, upload};
use crate::common::gpu_parity::{STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_parity};
use crate::{block_of, cpu_atten, flat, loud_program, precisions};
use stemforge::gpu::context::Precision;

/// The f32 variant's margin (`#ifndef F64` in shaders/oversample_peak.wgsl): it adds 1e-5 dB, so its
/// residual in dB is at most that plus f32 log2's error (~4e-6 dB): 2e-5 dB is -94 dBFS. Its RMS is
/// about the margin itself, hence the same bound.
const F32_PEAK_ATTEN_DBFS: f64 = -94.0;

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
