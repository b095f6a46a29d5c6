//! Parity of `limiter_hold`: the hold (a running maximum): identical.
use crate::common::gpu_harness::{gpu, run_encoder};
use crate::{assert_bit_identical, cpu_atten, cpu_blocks, gpu_blocks, loud_program};

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
