//! Parity of `delay_line`: the engine's alignment delay; its CPU twin is the CPU engine's `cpu::engine::DelayLine`.
use crate::common::gpu_harness::{gpu, read, run_encoder, run_pass, upload};
use crate::common::{Noise, music_noise};
use crate::{assert_bit_identical, block_of, flat};

#[test]
fn delay_line() {
    use stemforge::cpu::delay_line::DelayLine as CpuDelayLine;
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
    // The CPU twin, block by block as the CPU engine runs it; it must be the definition too.
    let cpu: Vec<Vec<f32>> = x
        .iter()
        .zip(delays)
        .map(|(c, d)| {
            let mut line = CpuDelayLine::new(d, block);
            let mut y = c.clone();
            y.chunks_mut(block).for_each(|b| line.process(b));
            y
        })
        .collect();
    assert_bit_identical("delay_line (cpu twin against x[n - d])", &want, &cpu);
    assert_bit_identical("delay_line", &cpu, &got);
}
