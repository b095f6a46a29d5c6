//! The process stages (design/mastering.md) on their own: the CPU stage (`cpu::Stage`) against the
//! device stage (`gpu::ProcessStage`) on the adapter `GpuContext::new(None)` picks, per stereo stem,
//! 200 blocks of 8192 frames of full-scale noise (34.1 s). The device blocks go in one submission,
//! timed to the queue's end, after a warm-up block. BENCHMARKS.md "Process stages on the device".
//!
//! `WGPU_BACKEND=vulkan cargo bench --bench process_timings [-- BLOCKS]`
#[path = "../tests/common/rng.rs"]
mod rng;

use std::time::Instant;

use stemforge::gpu::{GpuContext, process_stage};
use stemforge::model::{Compressor, Detector, Process, Saturation, Transient, Width};

const FS: u32 = 48_000;
const BLOCK: usize = 8192;

fn main() {
    // `cargo bench` appends --bench to the arguments.
    let blocks: usize = std::env::args().skip(1).find(|a| a != "--bench").map_or(200, |a| a.parse().expect("blocks"));
    let ctx = GpuContext::new(None).expect("GPU adapter");
    let mut rng = rng::Rng::new(7);
    let x: Vec<Vec<f32>> = (0..2).map(|_| (0..BLOCK).map(|_| (0.5 * rng.uniform()) as f32).collect()).collect();
    let comp = Compressor::new(-18.0);
    let stages = [
        ("compressor, peak", Process::Compressor(comp.clone())),
        (
            "compressor, rms 10 ms + HPF + look-ahead 5 ms",
            Process::Compressor(Compressor {
                detector: Detector::Rms,
                sidechain_hpf_hz: 80.0,
                lookahead_ms: 5.0,
                ..comp
            }),
        ),
        ("width", Process::Width(Width { width: 1.5, mono_below_hz: 0.0, taps: 8191 })),
        ("width, mono below 120 Hz", Process::Width(Width { width: 1.5, mono_below_hz: 120.0, taps: 8191 })),
        ("saturation, 4x", Process::Saturation(Saturation { drive_db: 12.0, mix: 1.0, oversampling: 4 })),
        (
            "transient",
            Process::Transient(Transient {
                attack_db: 6.0,
                sustain_db: -3.0,
                fast_ms: 1.0,
                slow_ms: 20.0,
                release_ms: 150.0,
            }),
        ),
    ];
    let audio = (blocks * BLOCK) as f64 / FS as f64;
    println!("{blocks} blocks x {BLOCK} stereo frames ({audio:.1} s), device: {}", ctx.adapter_info.name);
    println!("{:<48} {:>10} {:>10} {:>10}", "stage", "CPU ms", "device ms", "dev/CPU");
    for (name, p) in stages {
        let mut st = stemforge::cpu::stage(&p, 2, BLOCK, FS);
        let mut b = x.clone();
        let t = Instant::now();
        for _ in 0..blocks {
            b.clone_from(&x);
            st.process(&mut b);
            std::hint::black_box(&mut b);
        }
        let cpu = t.elapsed().as_secs_f64();
        let buf = ctx.storage("stems", (2 * BLOCK * 4) as u64);
        let flat: Vec<f32> = x.iter().flatten().copied().collect();
        ctx.queue.write_buffer(&buf, 0, bytemuck::cast_slice(&flat));
        let st = process_stage(&ctx, &p, 2, BLOCK, FS, &buf, 0).expect("device stage");
        let run = |from: u64, n: usize| {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            for k in 0..n {
                let mut pass = enc.begin_compute_pass(&Default::default());
                st.encode(&mut pass, from + k as u64);
            }
            ctx.queue.submit([enc.finish()]);
            ctx.wait_idle().expect("device");
        };
        run(0, 1);
        let t = Instant::now();
        run(1, blocks);
        let gpu = t.elapsed().as_secs_f64();
        println!("{name:<48} {:>10.1} {:>10.1} {:>9.1}x", cpu * 1e3, gpu * 1e3, gpu / cpu);
    }
}
