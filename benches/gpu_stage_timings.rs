//! Per-stage device time of the GPU chain for one block, and a whole GPU engine pass, on the
//! adapter `GpuContext::new(None)` picks (warm-up first; best of the repetitions; for the FIR also
//! the process's CPU time per block, the steadier figure for a software adapter on a shared
//! machine). A profiling aid, not a benchmark of record (BENCHMARKS.md is that).
//! Run: WGPU_BACKEND=vulkan cargo bench --bench gpu_stage_timings -- [block] [stereo stems]
use std::time::Instant;

use stemforge::dsp::eq_design::{design_eq, eq_latency};
use stemforge::dsp::oversampling::design_oversampling;
use stemforge::engine::{
    Engine, FirPlan, LimiterPlan, PassBlock, PassParams, PassSink, RenderPlan, StemPlan, StemSource,
};
use stemforge::gpu::context::Precision;
use stemforge::gpu::fir_convolve::{FftStrategy, FirConvolve, FirLane, FirPipelines};
use stemforge::gpu::limiter_hold::LimiterHold;
use stemforge::gpu::limiter_release::LimiterRelease;
use stemforge::gpu::limiter_smooth::LimiterSmooth;
use stemforge::gpu::oversample_peak::OversamplePeak;
use stemforge::gpu::{GpuContext, GpuEngine};
use stemforge::model::{EqBand, Layout, Phase};

/// CPU time of every thread of this process (ns): on a software adapter (lavapipe) the device's
/// work runs on its worker threads here, and CPU time is what a shared machine's neighbours do not
/// inflate, where the wall clock is mostly theirs.
fn process_cpu_ns() -> f64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum()
}

/// Best wall time of one block and the process's mean CPU time per block, in µs.
fn best_us(ctx: &GpuContext, reps: usize, mut encode: impl FnMut(&mut wgpu::ComputePass<'_>, u64)) -> (f64, f64) {
    let mut run = |j: u64| {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            encode(&mut pass, j);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.wait_idle().expect("device");
    };
    for j in 0..3 {
        run(j);
    }
    let cpu0 = process_cpu_ns();
    let mut t: Vec<f64> = (0..reps)
        .map(|j| {
            let s = Instant::now();
            run(j as u64);
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    let cpu = (process_cpu_ns() - cpu0) / 1e3 / reps as f64;
    t.sort_by(f64::total_cmp);
    (t[0], cpu)
}

struct Noise {
    stems: usize,
    block: usize,
    left: u64,
    state: u32,
}

impl StemSource for Noise {
    fn next_block(&mut self, out: &mut [Vec<Vec<f32>>]) -> stemforge::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        self.left -= 1;
        for v in out.iter_mut().take(self.stems).flatten().flat_map(|c| c.iter_mut()) {
            self.state = self.state.wrapping_mul(1664525).wrapping_add(1013904223);
            *v = (self.state >> 8) as f32 / 16777216.0 - 0.5;
        }
        Ok(self.block)
    }
}

struct Discard;
impl PassSink for Discard {
    fn block(&mut self, _: PassBlock<'_>) -> stemforge::Result<()> {
        Ok(())
    }
}

fn main() {
    // `cargo bench` appends --bench to the arguments.
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let block: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(8192);
    let stems: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(8);
    let fs = 48000.0;
    let ctx = GpuContext::new(None).expect("GPU adapter");
    println!("device: {}", ctx.summary().describe());
    println!(
        "block {block}, {stems} stereo stems with 8191-tap EQs; device time per block (best of the repetitions: the machine may be shared, µs):"
    );
    let eq = design_eq(&[EqBand::Peak { freq_hz: 2000.0, gain_db: 3.0, q: 1.0 }], fs, 8191, Phase::Linear);
    let reps = 10;

    let ch = 2 * stems;
    let (a, b) = (ctx.storage("a", (ch * block * 4) as u64), ctx.storage("b", (ch * block * 4) as u64));
    let lanes: Vec<FirLane> = (0..ch).map(|c| FirLane { taps: &eq, input: c * block, output: c * block }).collect();
    // Every precision this device has (f64 needs SHADER_F64), both FFT strategies.
    let fir_precisions: &[Precision] =
        if ctx.has_f64() { &[Precision::F64, Precision::F32] } else { &[Precision::F32] };
    for &precision in fir_precisions {
        let fir_p = FirPipelines::new(&ctx, precision).expect("fir");
        for fft in [FftStrategy::FourStep, FftStrategy::GlobalPasses] {
            let fir = FirConvolve::new(&ctx, &fir_p, fft, block, &lanes, &a, &b).expect("fir");
            let (wall, cpu) = best_us(&ctx, reps, |p, j| fir.encode(p, j));
            println!("  fir_convolve {precision:?} ({ch} channels, {fft:?}) {wall:9.0} (CPU {cpu:.0} per block)");
            let bus = FirConvolve::new(&ctx, &fir_p, fft, block, &lanes[..2], &a, &b).expect("fir");
            let (wall, cpu) = best_us(&ctx, reps, |p, j| bus.encode(p, j));
            println!("  fir_convolve {precision:?} (2 channels, {fft:?})  {wall:9.0} (CPU {cpu:.0} per block)");
        }
    }
    println!(
        "  (the engine uses {:?} in {:?} on this adapter)",
        FftStrategy::for_context(&ctx),
        Precision::for_context(&ctx)
    );

    let table = design_oversampling(4);
    let precision = Precision::for_context(&ctx);
    println!("  (limiter dB stages in {precision:?})");
    let (atten, held, rel, gain) = (
        ctx.storage("a", (block * 4) as u64),
        ctx.storage("h", (block * 4) as u64),
        ctx.storage("r", (block * 4) as u64),
        ctx.storage("g", (block * 4) as u64),
    );
    let peak = OversamplePeak::new(&ctx, precision, &table, 2, block, -1.2, &a, 0, &atten).expect("peak");
    println!("  oversample_peak (4x, 2 ch)   {:9.0}", best_us(&ctx, reps, |p, j| peak.encode(p, j)).0);
    let hold = LimiterHold::new(&ctx, 96, block, &atten, &held).expect("hold");
    println!("  limiter_hold (L 96)          {:9.0}", best_us(&ctx, reps, |p, j| hold.encode(p, j)).0);
    let release = LimiterRelease::new(&ctx, precision, 0.99965, block, &held, &rel).expect("release");
    println!("  limiter_release              {:9.0}", best_us(&ctx, reps, |p, _| release.encode(p)).0);
    let smooth = LimiterSmooth::new(&ctx, precision, 96, block, &rel, &gain).expect("smooth");
    println!("  limiter_smooth (L 96)        {:9.0}", best_us(&ctx, reps, |p, j| smooth.encode(p, j)).0);

    // A whole limited pass with stem outputs: 30 s of program.
    let frames = (30.0 * fs) as u64;
    let plan = RenderPlan {
        sample_rate: fs as u32,
        frames,
        block,
        layout: Layout::Stereo,
        stems: (0..stems)
            .map(|i| StemPlan {
                index: i,
                name: format!("stem{i}"),
                channels: 2,
                fir: Some(FirPlan { taps: vec![eq.clone(), eq.clone()], latency: eq_latency(8191, Phase::Linear) }),
                process: Vec::new(),
                routes: vec![(0, 0, 0.5), (1, 1, 0.5)],
                replayed_latency: None,
                replayed_stages: None,
            })
            .collect(),
        bus_fir: Some(FirPlan { taps: vec![eq.clone(), eq.clone()], latency: eq_latency(8191, Phase::Linear) }),
        bus_process: Vec::new(),
        limiter: Some(LimiterPlan { ceiling_db: -1.2, lookahead: 96, rho: 0.99965, oversampling: table }),
    };
    let mut engine = GpuEngine::new(None).expect("engine");
    for stems_out in [false, true] {
        let pass = PassParams { gain_db: 0.0, limit: true, stems: stems_out };
        let run = |engine: &mut GpuEngine| {
            let mut src = Noise { stems, block, left: plan.blocks(), state: 1 };
            let t = Instant::now();
            engine.run_pass(&plan, &pass, &mut src, &mut Discard).expect("pass");
            t.elapsed().as_secs_f64()
        };
        run(&mut engine);
        let secs = run(&mut engine);
        println!(
            "whole pass, limiter, stems out {stems_out}: 30 s of program in {secs:.2} s = {:.1}x realtime",
            30.0 / secs
        );
    }
}
