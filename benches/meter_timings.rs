//! CPU meter against device meter, per 8192-frame block of 5.1 at 48 kHz (BENCHMARKS.md "Loudness
//! on the device"): the numbers behind the GPU engine's meter choice (`STEMFORGE_GPU_METER`).
//! Each side gets what it would get in a render: the CPU meter the f32 master block on the host
//! (`LoudnessMeter::add_planar`, everything `MeterScope::Full` reads); the device meter the block
//! already on the device (`gpu::meter`: K-weighting scan, step energies, sample and true peak),
//! then its readings read back and fed to `EnergyMeter`. Medians of `reps` runs over `blocks`
//! blocks, wall clock and this process's CPU time (on lavapipe the device's work runs on this
//! process's threads). A profiling aid like `gpu_stage_timings`, not part of the test suite.
//! Run: WGPU_BACKEND=vulkan cargo bench --bench meter_timings -- [blocks] [reps]
use std::time::Instant;

use stemforge::gpu::GpuContext;
use stemforge::gpu::context::Precision;
use stemforge::gpu::meter::DeviceMeter;
use stemforge::meter::{EnergyMeter, LoudnessMeter, MeterScope};
use stemforge::model::Layout;

const FS: u32 = 48000;
const BLOCK: usize = 8192;
const CHANNELS: usize = 6;

/// CPU time of every thread of this process (ns), from /proc (see gpu_stage_timings).
fn process_cpu_ns() -> f64 {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum()
}

/// A music-like 5.1 program (seeded noise through one-pole filters, tones, level changes).
fn program(frames: usize) -> Vec<Vec<f32>> {
    (0..CHANNELS)
        .map(|c| {
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1);
            let mut lp = 0.0f64;
            (0..frames)
                .map(|n| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let w = (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                    lp = 0.97 * lp + 0.03 * w;
                    let t = n as f64 / FS as f64;
                    let level = [0.5, 0.1, 0.3, 0.05][(t / 2.0) as usize % 4];
                    (level
                        * (4.0 * lp
                            + 0.2 * w
                            + 0.3 * (2.0 * std::f64::consts::PI * (220.0 + 50.0 * c as f64) * t).sin()))
                        as f32
                })
                .collect()
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (wall µs per block, CPU µs per block), medians over `reps`.
fn time(reps: usize, blocks: usize, mut run: impl FnMut()) -> (f64, f64) {
    run(); // warm-up (the device compiles its pipelines on first use)
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (c0, t0) = (process_cpu_ns(), Instant::now());
        run();
        wall.push(t0.elapsed().as_secs_f64() * 1e6 / blocks as f64);
        cpu.push((process_cpu_ns() - c0) / 1e3 / blocks as f64);
    }
    (median(wall), median(cpu))
}

fn main() {
    // `cargo bench` appends --bench to the arguments.
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let blocks: usize = args.next().map_or(60, |s| s.parse().expect("blocks"));
    let reps: usize = args.next().map_or(5, |s| s.parse().expect("reps"));
    let x = program(blocks * BLOCK);
    let ctx = GpuContext::new(None).expect("a GPU adapter (WGPU_BACKEND=vulkan for lavapipe)");
    let precision = Precision::for_context(&ctx);
    println!("adapter: {}", ctx.summary().describe());
    println!(
        "{blocks} blocks of {BLOCK} frames, 5.1 at {FS} Hz ({:.1} s), median of {reps}",
        (blocks * BLOCK) as f64 / FS as f64
    );
    let block_s = BLOCK as f64 / FS as f64;
    let report = |what: &str, (wall, cpu): (f64, f64)| {
        println!(
            "{what:<58} {wall:>9.1} µs wall {cpu:>9.1} µs CPU per block  ({:>6.0}x realtime wall)",
            block_s * 1e6 / wall
        );
    };

    let cpu_meter = || {
        let mut m = LoudnessMeter::new(CHANNELS, FS, Some(Layout::Surround51)).expect("meter");
        for j in 0..blocks {
            let views: Vec<&[f32]> = x.iter().map(|c| &c[j * BLOCK..(j + 1) * BLOCK]).collect();
            m.add_planar(&views);
        }
        m.result()
    };
    report(
        "cpu meter (LoudnessMeter, full scope)",
        time(reps, blocks, || {
            std::hint::black_box(cpu_meter());
        }),
    );
    // The crate's true peak alone, as the CPU meter runs it (one instance per channel).
    report(
        "  of which: true peak alone (crate, per-channel instances)",
        time(reps, blocks, || {
            let mut peaks: Vec<ebur128::EbuR128> =
                (0..CHANNELS).map(|_| ebur128::EbuR128::new(1, FS, ebur128::Mode::TRUE_PEAK).expect("crate")).collect();
            for j in 0..blocks {
                for (m, c) in peaks.iter_mut().zip(&x) {
                    m.add_frames_planar_f32(&[&c[j * BLOCK..(j + 1) * BLOCK]]).expect("feed");
                }
            }
            std::hint::black_box(peaks.iter().map(|m| m.true_peak(0).unwrap_or(0.0)).fold(0.0, f64::max));
        }),
    );

    // The whole program on the device at once (the engine's blocks are already there), metered
    // block by block with one submission per block and a read-back of its readings, as the
    // engine's staging copies do.
    let flat: Vec<f32> =
        (0..blocks).flat_map(|j| x.iter().flat_map(move |c| c[j * BLOCK..(j + 1) * BLOCK].iter().copied())).collect();
    let input = ctx.storage_init("program", &flat);
    let st = DeviceMeter::new(&ctx, precision, FS, CHANNELS, BLOCK, &input).expect("device meter");
    let device_meter = |read_back: bool| {
        let mut m = EnergyMeter::new(CHANNELS, FS, Some(Layout::Surround51), MeterScope::Full).expect("meter");
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        st.reset(&mut enc);
        ctx.queue.submit([enc.finish()]);
        let (mut e, mut p) = (Vec::new(), Vec::new());
        for j in 0..blocks {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                st.encode(&mut pass, j as u64, (j * BLOCK) as u64, BLOCK, j * CHANNELS * BLOCK);
            }
            ctx.queue.submit([enc.finish()]);
            if read_back {
                let eb: Vec<u8> = ctx.read_back(&st.energy, 0, st.energy_bytes() as usize).expect("energies");
                let pb: Vec<u8> = ctx.read_back(&st.peaks, 0, st.peaks_bytes() as usize).expect("peaks");
                st.decode(&eb, &pb, &mut e, &mut p);
                m.add_block((j * BLOCK) as u64, BLOCK, st.steps(), &e, &p);
            }
        }
        ctx.wait_idle().expect("device");
        m.result()
    };
    report(
        "device meter, compute only (one submission per block)",
        time(reps, blocks, || {
            std::hint::black_box(device_meter(false));
        }),
    );
    report(
        "device meter + synchronous read-back + EnergyMeter",
        time(reps, blocks, || {
            std::hint::black_box(device_meter(true));
        }),
    );
    let (a, b) = (cpu_meter(), device_meter(true));
    println!(
        "readings: cpu I {:.4} LRA {:.4} M {:.4} S {:.4} TP {:.4}; device I {:.4} LRA {:.4} M {:.4} S {:.4} TP {:.4}",
        a.integrated_lufs,
        a.lra_lu,
        a.max_momentary_lufs,
        a.max_short_term_lufs,
        a.true_peak_dbtp,
        b.integrated_lufs,
        b.lra_lu,
        b.max_momentary_lufs,
        b.max_short_term_lufs,
        b.true_peak_dbtp
    );
}
