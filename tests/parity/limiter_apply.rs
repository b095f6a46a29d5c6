//! Parity of `limiter_apply`: the gain applied to the programme, and the block statistics of the gain.
use crate::common::gpu_harness::{gpu, read, run_pass, upload};
use crate::common::gpu_parity::sum_log10_bound;
use crate::common::{Noise, music_noise};
use crate::{assert_bit_identical, block_of, flat, loud_program};

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
        let bound = sum_log10_bound(&gj[..len], want.sum_log10);
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
