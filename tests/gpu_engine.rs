//! The GPU device and engine: adapter choice and error reporting, and whole passes of `GpuEngine`
//! against an offline reference of DESIGN.md's DSP (f64 direct convolutions on the whole
//! timeline, the CPU limiter run causally and aligned afterwards), which checks the engine's
//! latency alignment, zeroing outside the program, stem/bus order and block delivery.
//!
//! GPU tests never skip silently: with no adapter they fail and say how to get one, unless
//! STEMFORGE_SKIP_GPU_TESTS=1 (then each prints that it skipped, with the count).

mod common;

use common::gpu_harness::gpu;
use common::gpu_parity::{RENDER_PEAK_DBFS, RENDER_RMS_DBFS, assert_parity};
use common::{Noise, impulses, music_noise, sweep};
use stemforge::cpu::limiter::Limiter;
use stemforge::cpu::pcm_unpack::{bytes_per_sample, unpack};
use stemforge::dsp::eq_design::{design_eq, eq_latency};
use stemforge::dsp::oversampling::design_oversampling;
use stemforge::engine::{
    Delivery, Engine, FirPlan, GainStats, LimiterPlan, PackRequest, PassBlock, PassParams, PassSink, RenderPlan,
    Signal, StemPlan, StemSource,
};
use stemforge::error::{Error, Result};
use stemforge::gpu::limiter_apply::STATS_SPAN;
use stemforge::gpu::{GpuContext, GpuEngine, list_adapters};
use stemforge::io::WriterSpec;
use stemforge::io::wav_writer::WavWriter;
use stemforge::model::{EqBand, Layout, Phase, SampleFormat, SourceEncoding};
use stemforge::pipeline::render::{EngineChoice, RenderOptions, render};
use stemforge::report::render::RenderReport;

const FS: f64 = 48000.0;

/// DESIGN.md "Parity contract", a whole render with float output. The reference here is f64
/// where the engines are f32, so this is the engine's own error against the exact function.

#[test]
fn adapters_are_listed_and_one_is_selected() {
    let Some(ctx) = gpu("adapters_are_listed_and_one_is_selected") else {
        return;
    };
    let adapters = list_adapters(None).expect("knobs");
    assert!(!adapters.is_empty(), "an adapter was opened, so the list cannot be empty");
    assert_eq!(adapters.iter().filter(|a| a.selected).count(), 1, "exactly one selected: {adapters:#?}");
    let chosen = adapters.iter().find(|a| a.selected).expect("selected");
    assert_eq!(chosen.name, ctx.adapter_info.name);
    assert!(chosen.describe().contains(&chosen.name));
}

#[test]
fn an_unknown_adapter_name_is_no_gpu_with_help() {
    // Needs no GPU: with or without adapters, a name nobody has is Error::NoGpu (exit 3).
    match GpuContext::new(Some("no-such-adapter-7f3a")) {
        Err(Error::NoGpu(msg)) => {
            assert!(msg.contains("no-such-adapter-7f3a"), "names what was asked for: {msg}");
            assert!(msg.contains("mesa-vulkan-drivers"), "says how to get an adapter: {msg}");
        }
        Err(e) => panic!("expected NoGpu, got {e}"),
        Ok(_) => panic!("an adapter named no-such-adapter-7f3a exists?"),
    }
}

#[test]
fn device_errors_are_errors_not_panics() {
    let Some(ctx) = gpu("device_errors_are_errors_not_panics") else {
        return;
    };
    let _module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("broken"),
        source: wgpu::ShaderSource::Wgsl("@compute @workgroup_size(1) fn main() { let x: u32 = nope; }".into()),
    });
    match ctx.check() {
        Err(Error::Gpu(msg)) => {
            assert!(msg.contains("nope"), "the driver's message is kept: {msg}")
        }
        other => panic!("expected Error::Gpu, got {other:?}"),
    }
    ctx.check().expect("reported once, then cleared");
}

// ---------------------------------------------------------------------------------------------
// Offline reference

/// A signal on the whole timeline: sample i is time i - ORIGIN.
const ORIGIN: usize = 8192;

fn on_timeline(x: &[f32], len: usize) -> Vec<f64> {
    let mut v = vec![0.0f64; len];
    v[ORIGIN..ORIGIN + x.len()].iter_mut().zip(x).for_each(|(d, s)| *d = *s as f64);
    v
}

/// y[n] = sum_k h[k] x[n + latency - k]: the FIR with its latency compensated.
fn fir_aligned(h: &[f32], latency: usize, x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let mut acc = 0.0;
            for (k, hk) in h.iter().enumerate() {
                let j = i as i64 + latency as i64 - k as i64;
                if j >= 0 && (j as usize) < x.len() {
                    acc += *hk as f64 * x[j as usize];
                }
            }
            acc
        })
        .collect()
}

struct Reference {
    master: Vec<Vec<f32>>,
    stems: Vec<Vec<Vec<f32>>>,
    gain: Option<Vec<f32>>,
}

fn reference(plan: &RenderPlan, pass: &PassParams, stems: &[Vec<Vec<f32>>]) -> Reference {
    let n = plan.frames as usize;
    let len = n + 2 * ORIGIN;
    let bus_ch = plan.bus_channels();
    // Stem EQ (aligned), routes into one signal per stem.
    let contrib: Vec<Vec<Vec<f64>>> = plan
        .stems
        .iter()
        .zip(stems)
        .map(|(s, x)| {
            let eq: Vec<Vec<f64>> = x
                .iter()
                .enumerate()
                .map(|(c, xc)| {
                    let t = on_timeline(xc, len);
                    match &s.fir {
                        Some(f) => fir_aligned(&f.taps[c], f.latency, &t),
                        None => t,
                    }
                })
                .collect();
            let mut out = vec![vec![0.0f64; len]; bus_ch];
            for &(src, dst, w) in &s.routes {
                out[dst].iter_mut().zip(&eq[src]).for_each(|(d, v)| *d += w as f64 * v);
            }
            out
        })
        .collect();
    // Bus EQ on each contribution, the gain G, zero outside [0, N).
    let k = 10f64.powf(pass.gain_db / 20.0);
    let processed: Vec<Vec<Vec<f32>>> = contrib
        .iter()
        .map(|sig| {
            sig.iter()
                .enumerate()
                .map(|(c, v)| {
                    let y = match &plan.bus_fir {
                        Some(f) => fir_aligned(&f.taps[c], f.latency, v),
                        None => v.clone(),
                    };
                    y[ORIGIN..ORIGIN + n].iter().map(|v| (k * v) as f32).collect()
                })
                .collect()
        })
        .collect();
    let bus: Vec<Vec<f32>> = (0..bus_ch)
        .map(|c| (0..n).map(|i| processed.iter().map(|s| s[c][i] as f64).sum::<f64>() as f32).collect())
        .collect();
    if !pass.limit {
        return Reference { master: bus, stems: if pass.stems { processed } else { Vec::new() }, gain: None };
    }
    // The CPU limiter, causal from time 0, flushed with silence, then aligned by its latency.
    let lp = plan.limiter.as_ref().expect("limiter plan");
    let b = plan.block;
    let mut lim = Limiter::new(lp, bus_ch, b);
    let lat = lim.latency();
    let mut g_causal = Vec::new();
    let total = (n + lat).div_ceil(b) * b;
    for j in 0..total / b {
        let xb: Vec<Vec<f32>> =
            bus.iter().map(|c| (j * b..(j + 1) * b).map(|i| c.get(i).copied().unwrap_or(0.0)).collect()).collect();
        let views: Vec<&[f32]> = xb.iter().map(|v| v.as_slice()).collect();
        let mut g = vec![0.0f32; b];
        lim.process(&views, &mut g);
        g_causal.extend(g);
    }
    let gain: Vec<f32> = g_causal[lat..lat + n].to_vec();
    let apply = |x: &Vec<f32>| -> Vec<f32> { x.iter().zip(&gain).map(|(v, g)| v * g).collect() };
    Reference {
        master: bus.iter().map(apply).collect(),
        stems: if pass.stems { processed.iter().map(|s| s.iter().map(apply).collect()).collect() } else { Vec::new() },
        gain: Some(gain),
    }
}

// ---------------------------------------------------------------------------------------------
// Engine passes

struct Source {
    stems: Vec<Vec<Vec<f32>>>,
    block: usize,
    next: usize,
    frames: usize,
}

impl StemSource for Source {
    fn next_block(&mut self, out: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        let start = self.next * self.block;
        self.next += 1;
        for (dst, src) in out.iter_mut().zip(&self.stems) {
            for (d, s) in dst.iter_mut().zip(src) {
                for (i, v) in d[..self.block].iter_mut().enumerate() {
                    *v = s.get(start + i).copied().unwrap_or(0.0);
                }
            }
        }
        Ok(self.frames.saturating_sub(start).min(self.block))
    }
}

#[derive(Default)]
struct Collect {
    master: Vec<Vec<f32>>,
    stems: Vec<Vec<Vec<f32>>>,
    gain: Vec<f32>,
    indices: Vec<u64>,
    gain_given: Vec<bool>,
}

impl PassSink for Collect {
    fn block(&mut self, b: PassBlock<'_>) -> Result<()> {
        self.indices.push(b.index);
        self.gain_given.push(b.gain.is_some());
        if self.master.is_empty() {
            self.master = vec![Vec::new(); b.master.len()];
            self.stems = b.stems.iter().map(|s| vec![Vec::new(); s.len()]).collect();
        }
        for (d, s) in self.master.iter_mut().zip(b.master) {
            d.extend_from_slice(&s[..b.len]);
        }
        for (ds, ss) in self.stems.iter_mut().zip(b.stems) {
            for (d, s) in ds.iter_mut().zip(ss) {
                d.extend_from_slice(&s[..b.len]);
            }
        }
        if let Some(g) = b.gain {
            self.gain.extend_from_slice(&g[..b.len]);
        }
        Ok(())
    }
}

/// Stereo bus: a stereo stem with a linear-phase EQ (latency 1 block + a bit), a mono stem
/// without EQ (routed at -3 dB to L and R), a shorter stereo stem with a minimum-phase EQ; a
/// linear-phase bus EQ; a 4x oversampled limiter with 2 ms look-ahead.
fn test_plan(block: usize, frames: usize) -> (RenderPlan, Vec<Vec<Vec<f32>>>) {
    let bands = |g: f64| {
        vec![
            EqBand::Highpass { freq_hz: 60.0, order: 2 },
            EqBand::Peak { freq_hz: 2500.0, gain_db: g, q: 1.2 },
            EqBand::HighShelf { freq_hz: 9000.0, gain_db: -2.0, q: 0.707 },
        ]
    };
    let lin_taps = 2 * block + 1;
    let lin = design_eq(&bands(4.0), FS, lin_taps, Phase::Linear);
    let min = design_eq(&bands(-3.0), FS, 301, Phase::Minimum);
    let bus = design_eq(&[EqBand::LowShelf { freq_hz: 120.0, gain_db: 2.0, q: 0.707 }], FS, 201, Phase::Linear);
    let g = |db: f64| 10f64.powf(db / 20.0) as f32;
    let m = std::f32::consts::FRAC_1_SQRT_2;
    let stems = vec![
        StemPlan {
            index: 0,
            name: "drums".into(),
            channels: 2,
            fir: Some(FirPlan { taps: vec![lin.clone(), lin], latency: eq_latency(lin_taps, Phase::Linear) }),
            process: Vec::new(),
            routes: vec![(0, 0, g(1.5)), (1, 1, g(1.5))],
            replayed_latency: None,
            replayed_stages: None,
        },
        StemPlan {
            index: 1,
            name: "bass".into(),
            channels: 1,
            fir: None,
            process: Vec::new(),
            routes: vec![(0, 0, m * g(-1.0)), (0, 1, m * g(-1.0))],
            replayed_latency: None,
            replayed_stages: None,
        },
        StemPlan {
            index: 3,
            name: "vocals".into(),
            channels: 2,
            fir: Some(FirPlan { taps: vec![min.clone(), min], latency: 0 }),
            process: Vec::new(),
            routes: vec![(0, 0, g(-2.0)), (1, 1, g(-2.0))],
            replayed_latency: None,
            replayed_stages: None,
        },
    ];
    let plan = RenderPlan {
        sample_rate: FS as u32,
        frames: frames as u64,
        block,
        layout: Layout::Stereo,
        stems,
        bus_fir: Some(FirPlan { taps: vec![bus.clone(), bus], latency: eq_latency(201, Phase::Linear) }),
        bus_process: Vec::new(),
        limiter: Some(LimiterPlan {
            ceiling_db: -1.2,
            lookahead: 96,
            rho: (-1000.0 / (60.0 * FS)).exp() as f32,
            oversampling: design_oversampling(4),
        }),
    };
    let signals = vec![
        vec![music_noise(1, frames, Noise::FullScale), music_noise(2, frames, Noise::FullScale)],
        vec![sweep(frames, FS, 30.0, 300.0, 0.9)],
        // Shorter than the program: the source pads it with silence.
        vec![music_noise(3, frames - frames / 3, Noise::FullScale), impulses(frames - frames / 3, 11, 333)],
    ];
    (plan, signals)
}

fn run(engine: &mut dyn Engine, plan: &RenderPlan, pass: &PassParams, stems: &[Vec<Vec<f32>>]) -> Collect {
    let mut source = Source { stems: stems.to_vec(), block: plan.block, next: 0, frames: plan.frames as usize };
    let mut sink = Collect::default();
    engine
        .run_pass(plan, pass, &mut source, &mut sink)
        .unwrap_or_else(|e| panic!("{} pass failed: {e}", engine.info().engine));
    sink
}

fn check_pass(label: &str, plan: &RenderPlan, pass: &PassParams, got: &Collect, want: &Reference) {
    let blocks = plan.blocks();
    assert_eq!(got.indices, (0..blocks).collect::<Vec<_>>(), "{label}: blocks delivered in order, each once");
    assert!(got.gain_given.iter().all(|g| *g == pass.limit), "{label}: gain given exactly when limiting");
    assert_parity(&format!("{label} master"), &want.master, &got.master, RENDER_PEAK_DBFS, RENDER_RMS_DBFS);
    assert_eq!(got.stems.len(), want.stems.len(), "{label}: stem outputs");
    for (i, (w, g)) in want.stems.iter().zip(&got.stems).enumerate() {
        assert_parity(&format!("{label} stem {i}"), w, g, RENDER_PEAK_DBFS, RENDER_RMS_DBFS);
    }
    if let Some(wg) = &want.gain {
        assert!(wg.iter().any(|g| *g < 0.8), "{label}: the limiter must be working in this test");
        assert_parity(
            &format!("{label} gain"),
            std::slice::from_ref(wg),
            std::slice::from_ref(&got.gain),
            RENDER_PEAK_DBFS,
            RENDER_RMS_DBFS,
        );
    }
}

#[test]
fn engine_passes_match_the_offline_reference() {
    // The engine opens its own device; holding the test device serialises the GPU tests.
    let Some(_gpu) = gpu("engine_passes_match_the_offline_reference") else {
        return;
    };
    let mut engine = GpuEngine::new(None).expect("GPU engine");
    let block = 256;
    // Not a whole number of blocks: the last delivered block is partial.
    let frames = 7 * block + 77;
    let (plan, stems) = test_plan(block, frames);
    let passes = [
        ("analysis", PassParams { gain_db: 0.0, limit: false, stems: false }),
        ("limited master", PassParams { gain_db: 6.0, limit: true, stems: false }),
        ("limited with stems", PassParams { gain_db: 7.5, limit: true, stems: true }),
        ("stems, no limiter", PassParams { gain_db: -3.0, limit: false, stems: true }),
    ];
    for (label, pass) in passes {
        let got = run(&mut engine, &plan, &pass, &stems);
        check_pass(label, &plan, &pass, &got, &reference(&plan, &pass, &stems));
    }
    // The same pass again on the same engine: every carried state was reset, same output.
    let pass = passes[2].1;
    let a = run(&mut engine, &plan, &pass, &stems);
    let b = run(&mut engine, &plan, &pass, &stems);
    assert_eq!(a.master, b.master, "a repeated pass must be identical");
    assert_eq!(a.stems, b.stems, "a repeated pass must be identical");
}

/// What a sink that asks for the limiter gain or not (`Delivery::gain`) is given per block.
struct GainCollect {
    gain: bool,
    per_frame: Vec<Vec<f32>>,
    stats: Vec<Option<GainStats>>,
}

impl PassSink for GainCollect {
    fn delivery(&self) -> Delivery {
        Delivery { gain: self.gain, ..Delivery::f32_only() }
    }
    fn block(&mut self, b: PassBlock<'_>) -> Result<()> {
        self.per_frame.push(b.gain.map(|g| g[..b.len].to_vec()).unwrap_or_default());
        self.stats.push(b.gain_stats);
        Ok(())
    }
}

/// Issue 4: a sink that does not need the limiter gain per frame gets each block's statistics,
/// reduced on the device, and no gain; one that needs it gets the gain and no statistics. The
/// statistics are those of the gain the other pass delivered (the same device, the same pass):
/// the least gain identical, the sum of log10 within the bound of the parity test
/// `limiter_apply_stats` (f32 log2 error plus 24 roundings of the f32 sums). 8192-frame blocks
/// are two `stats` workgroups; the last block, partial, leaves its second one empty.
#[test]
fn engine_reduces_the_limiter_gain_on_the_device() {
    use stemforge::cpu::limiter_apply::gain_stats;
    let Some(_gpu) = gpu("engine_reduces_the_limiter_gain_on_the_device") else {
        return;
    };
    let mut engine = GpuEngine::new(None).expect("GPU engine");
    let block = 2 * STATS_SPAN;
    let frames = 3 * block + 777;
    let (plan, stems) = test_plan(block, frames);
    let pass = PassParams { gain_db: 9.0, limit: true, stems: false };
    let mut pass_with = |gain: bool| {
        let mut sink = GainCollect { gain, per_frame: Vec::new(), stats: Vec::new() };
        let mut source = Source { stems: stems.clone(), block, next: 0, frames };
        engine.run_pass(&plan, &pass, &mut source, &mut sink).expect("pass");
        (sink, engine.bus_bytes().expect("counted").down)
    };
    let (per_frame, down_with) = pass_with(true);
    let (reduced, down_without) = pass_with(false);
    let blocks = plan.blocks() as usize;
    assert_eq!(down_with - down_without, (blocks * (4 * block - 4 * 4)) as u64, "gain per frame vs 4 f32s a block");
    assert!(per_frame.stats.iter().all(Option::is_none), "no statistics where the gain came down");
    assert!(reduced.per_frame.iter().all(Vec::is_empty), "no gain where the statistics came down");
    assert!(per_frame.per_frame.iter().flatten().any(|&g| g < 0.5), "the limiter must work hard here");
    for (k, (g, got)) in per_frame.per_frame.iter().zip(&reduced.stats).enumerate() {
        let got = got.unwrap_or_else(|| panic!("block {k}: no gain statistics"));
        let want = gain_stats(g);
        assert_eq!(got.frames, want.frames, "block {k}: frames");
        assert_eq!(got.least.to_bits(), want.least.to_bits(), "block {k}: least gain {} vs {}", got.least, want.least);
        let bound = common::gpu_parity::sum_log10_bound(g, want.sum_log10);
        let err = (got.sum_log10 - want.sum_log10).abs();
        println!(
            "block {k}: sum log10 {:.9e} vs {:.9e}: |diff| {err:.3e}, bound {bound:.3e}",
            got.sum_log10, want.sum_log10
        );
        assert!(
            err <= bound,
            "block {k}: sum of log10 {} vs {}: |diff| {err:e} > {bound:e}",
            got.sum_log10,
            want.sum_log10
        );
    }
}

/// The CPU engine (no GPU needed) against the same offline reference, on the same mixed plan: a
/// stem without a FIR, a mono stem, a FIR whose pre-delay rides in its taps and one that keeps a
/// delay line. A pass without stem outputs sums the same f32 stems in the same order as one with
/// them: with the bus EQ folded into the stems (the linked plan, the only one a stem cache
/// replays), the master is the same bits either way, so a render from the cache, which sums the
/// stems' stored signals, gives an uncached render's bits (design/proof.md).
#[test]
fn cpu_engine_passes_match_the_offline_reference() {
    use stemforge::cpu::engine::CpuEngine;
    let mut engine = CpuEngine::new();
    let block = 256;
    let frames = 7 * block + 77;
    let (plan, stems) = test_plan(block, frames);
    let pass = |gain_db: f64, limit: bool, stems: bool| PassParams { gain_db, limit, stems };
    for (label, p) in [
        ("cpu analysis", pass(0.0, false, false)),
        ("cpu limited master", pass(6.0, true, false)),
        ("cpu limited with stems", pass(7.5, true, true)),
        ("cpu stems, no limiter", pass(-3.0, false, true)),
    ] {
        let got = run(&mut engine, &plan, &p, &stems);
        check_pass(label, &plan, &p, &got, &reference(&plan, &p, &stems));
    }
    let linked = RenderPlan { bus_fir: None, ..plan };
    for limit in [false, true] {
        let master_only = run(&mut engine, &linked, &pass(0.0, limit, false), &stems);
        let with_stems = run(&mut engine, &linked, &pass(0.0, limit, true), &stems);
        assert!(master_only.master.iter().flatten().any(|&v| v.abs() > 0.01), "a signal to compare");
        assert_eq!(master_only.master, with_stems.master, "limit {limit}: the master with and without stem outputs");
    }
}

#[test]
fn engine_without_eq_or_limiter_is_exact_routing() {
    let Some(_gpu) = gpu("engine_without_eq_or_limiter_is_exact_routing") else {
        return;
    };
    let mut engine = GpuEngine::new(None).expect("GPU engine");
    let block = 128;
    let frames = 3 * block;
    let (mut plan, stems) = test_plan(block, frames);
    plan.stems.iter_mut().for_each(|s| s.fir = None);
    plan.bus_fir = None;
    plan.limiter = None;
    let pass = PassParams { gain_db: 0.0, limit: false, stems: false };
    let got = run(&mut engine, &plan, &pass, &stems);
    // No latency at all: the master is the routed sum, sample for sample (f32, same order).
    for c in 0..2 {
        for n in 0..frames {
            let mut want = 0.0f32;
            for (s, x) in plan.stems.iter().zip(&stems) {
                for &(src, dst, w) in &s.routes {
                    if dst == c {
                        want += w * x[src].get(n).copied().unwrap_or(0.0);
                    }
                }
            }
            assert_eq!(got.master[c][n], want, "channel {c}, frame {n}");
        }
    }
    let limit = PassParams { gain_db: 0.0, limit: true, stems: false };
    let mut source = Source { stems: stems.clone(), block, next: 0, frames };
    match engine.run_pass(&plan, &limit, &mut source, &mut Collect::default()) {
        Err(Error::Internal(msg)) => assert!(msg.contains("limiter"), "{msg}"),
        other => panic!("a limiter pass without a limiter plan must be refused, got {:?}", other.err()),
    }
}

#[test]
fn engine_matches_the_cpu_engine() {
    use stemforge::cpu::engine::CpuEngine;
    let Some(_gpu) = gpu("engine_matches_the_cpu_engine") else {
        return;
    };
    let mut gpu_engine = GpuEngine::new(None).expect("GPU engine");
    let mut cpu_engine = CpuEngine::new();
    let block = 512;
    let frames = 6 * block + 301;
    let (plan, stems) = test_plan(block, frames);
    for (label, pass) in [
        ("analysis", PassParams { gain_db: 0.0, limit: false, stems: false }),
        ("limited with stems", PassParams { gain_db: 8.0, limit: true, stems: true }),
    ] {
        let g = run(&mut gpu_engine, &plan, &pass, &stems);
        let c = run(&mut cpu_engine, &plan, &pass, &stems);
        assert_eq!(g.indices, c.indices, "{label}: the same blocks");
        // DESIGN.md "Parity contract": a whole render, float output.
        assert_parity(
            &format!("cpu vs gpu engine, {label}, master"),
            &c.master,
            &g.master,
            RENDER_PEAK_DBFS,
            RENDER_RMS_DBFS,
        );
        for (i, (cs, gs)) in c.stems.iter().zip(&g.stems).enumerate() {
            assert_parity(&format!("cpu vs gpu engine, {label}, stem {i}"), cs, gs, RENDER_PEAK_DBFS, RENDER_RMS_DBFS);
        }
        if pass.limit {
            assert!(c.gain.iter().any(|v| *v < 0.8), "{label}: the limiter must be working in this test");
            assert_parity(
                &format!("cpu vs gpu engine, {label}, gain"),
                std::slice::from_ref(&c.gain),
                std::slice::from_ref(&g.gain),
                RENDER_PEAK_DBFS,
                RENDER_RMS_DBFS,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Only PCM crosses the bus: raw stems up, packed outputs down

/// Collects f32 blocks as `Collect` does, and the packed blocks the engine delivers for the
/// `delivery` it is given.
struct PackCollect {
    delivery: Delivery,
    f32: Collect,
    packed: Vec<Vec<u8>>,
    over: Vec<u64>,
    master_given: Vec<bool>,
}

impl PackCollect {
    fn new(delivery: Delivery) -> PackCollect {
        let n = delivery.packed.len();
        PackCollect {
            delivery,
            f32: Collect::default(),
            packed: vec![Vec::new(); n],
            over: vec![0; n],
            master_given: Vec::new(),
        }
    }
}

impl PassSink for PackCollect {
    fn delivery(&self) -> Delivery {
        self.delivery.clone()
    }
    fn block(&mut self, b: PassBlock<'_>) -> Result<()> {
        assert_eq!(b.packed.len(), self.packed.len(), "one packed block per request");
        for (i, (p, o)) in b.packed.iter().zip(b.over_full_scale).enumerate() {
            self.packed[i].extend_from_slice(p);
            self.over[i] += o;
        }
        self.master_given.push(!b.master.is_empty());
        if !b.master.is_empty() {
            self.f32.block(b)?;
        }
        Ok(())
    }
}

fn writer_spec(format: SampleFormat, seed: Option<u32>) -> WriterSpec {
    WriterSpec { sample_rate: FS as u32, channels: 2, layout: Some(Layout::Stereo), format, dither_seed: seed }
}

/// The file the CPU writer makes of `x` (quantised, dithered and counted on the CPU), and the
/// one made of the engine's packed bytes and count: both must be the same file.
fn assert_packed_as_cpu_writer(
    label: &str,
    r: &PackRequest,
    x: &[Vec<f32>],
    packed: &[u8],
    over: u64,
    block: usize,
) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = writer_spec(r.format, r.dither_seed);
    let mut cpu = WavWriter::create(&dir.path().join("cpu.wav"), &spec).expect("writer");
    let frames = x[0].len();
    for at in (0..frames).step_by(block) {
        let n = block.min(frames - at);
        let planes: Vec<&[f32]> = x.iter().map(|c| &c[at..at + n]).collect();
        cpu.write_planar(&planes, n).expect("write");
    }
    let mut gpu = WavWriter::create(&dir.path().join("gpu.wav"), &spec).expect("writer");
    gpu.write_packed(packed, frames, over).expect("write packed");
    let (c, g) = (cpu.finish().expect("finish"), gpu.finish().expect("finish"));
    assert_eq!(g.over_full_scale, c.over_full_scale, "{label}: samples beyond full scale");
    assert_eq!((g.bytes, &g.sha256), (c.bytes, &c.sha256), "{label}: the packed file differs from the CPU writer's");
    c.over_full_scale
}

/// A pass whose sink asks for `requests` packed, and for the f32 master and stems when `f32`.
fn run_packing(
    engine: &mut GpuEngine,
    plan: &RenderPlan,
    pass: &PassParams,
    stems: &[Vec<Vec<f32>>],
    requests: &[PackRequest],
    f32: bool,
) -> PackCollect {
    let mut sink = PackCollect::new(Delivery {
        packed: requests.to_vec(),
        master: f32,
        stems: f32,
        device_meter: false,
        gain: true,
    });
    let mut source = Source { stems: stems.to_vec(), block: plan.block, next: 0, frames: plan.frames as usize };
    engine.run_pass(plan, pass, &mut source, &mut sink).expect("pass");
    sink
}

#[test]
fn engine_packs_integer_outputs_as_the_cpu_writer_does() {
    let Some(_gpu) = gpu("engine_packs_integer_outputs_as_the_cpu_writer_does") else {
        return;
    };
    let mut engine = GpuEngine::new(None).expect("GPU engine");
    let block = 256;
    // A partial last block: its packed length is not a whole number of words.
    let frames = 7 * block + 77;
    let (plan, stems) = test_plan(block, frames);
    let requests = vec![
        PackRequest { signal: Signal::Master, format: SampleFormat::Pcm24, dither_seed: Some(7) },
        PackRequest { signal: Signal::Master, format: SampleFormat::Pcm16, dither_seed: None },
        PackRequest { signal: Signal::Stem(0), format: SampleFormat::Pcm16, dither_seed: Some(9) },
        PackRequest { signal: Signal::Stem(2), format: SampleFormat::Pcm32, dither_seed: Some(3) },
    ];
    // +14 dB without the limiter clamps master and stems; with it only the stems can clamp.
    for (label, pass) in [
        ("unlimited", PassParams { gain_db: 14.0, limit: false, stems: true }),
        ("limited", PassParams { gain_db: 8.0, limit: true, stems: true }),
    ] {
        let sink = run_packing(&mut engine, &plan, &pass, &stems, &requests, true);
        let mut clamped = 0;
        for (i, r) in requests.iter().enumerate() {
            let x = match r.signal {
                Signal::Master => &sink.f32.master,
                Signal::Stem(s) => &sink.f32.stems[s],
            };
            let label = format!("{label}, request {i} ({:?} {:?})", r.signal, r.format);
            clamped += assert_packed_as_cpu_writer(&label, r, x, &sink.packed[i], sink.over[i], block);
        }
        if !pass.limit {
            assert!(sink.over[0] > 0 && clamped > sink.over[0], "unlimited: master and stems must clamp");
            continue;
        }
        assert_eq!(sink.over[0], 0, "limited: the master stays under its ceiling");

        // The same pass with no f32 coming back: the same bytes, and the bus carries only the
        // packed blocks, their counts and the limiter gain (the report's gain reduction).
        let lean = run_packing(&mut engine, &plan, &pass, &stems, &requests, false);
        assert!(lean.master_given.iter().all(|g| !g), "no f32 master was asked for");
        assert_eq!(lean.packed, sink.packed, "packed bytes do not depend on what else comes back");
        assert_eq!(lean.over, sink.over);
        let blocks = plan.blocks() as usize;
        let packed_words: usize = lean.packed.iter().map(|p| p.len()).sum::<usize>()
            // Copies are whole 4-byte words: the partial last block of each request rounds up.
            + requests
                .iter()
                .map(|r| (77 * 2 * r.format.bytes_per_sample()).next_multiple_of(4) - 77 * 2 * r.format.bytes_per_sample())
                .sum::<usize>();
        let down = packed_words + blocks * (4 * requests.len() + 4 * block);
        let bus = engine.bus_bytes().expect("counted");
        assert_eq!(bus.down as usize, down, "bytes down: packed blocks + counts + gain");
        // The source gives f32 (no raw form): f32 up, the stems' blocks once and zeros once.
        let stem_channels: usize = plan.stems.iter().map(|s| s.channels).sum();
        assert_eq!(bus.up as usize, (frames.div_ceil(block) + 1) * stem_channels * block * 4);
    }
}

/// Interleaved little-endian PCM of planar f32 (integer formats: rounded, clamped).
fn to_pcm(x: &[Vec<f32>], encoding: SourceEncoding) -> Vec<u8> {
    let mut out = Vec::new();
    for n in 0..x[0].len() {
        for c in x {
            let v = c[n] as f64;
            let int = |bits: i32| {
                (v * 2f64.powi(bits - 1)).round().clamp(-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0) as i32
            };
            match encoding {
                SourceEncoding::Int16 => out.extend_from_slice(&(int(16) as i16).to_le_bytes()),
                SourceEncoding::Int24 => out.extend_from_slice(&int(24).to_le_bytes()[..3]),
                SourceEncoding::Int32 => out.extend_from_slice(&int(32).to_le_bytes()),
                SourceEncoding::Float32 => out.extend_from_slice(&c[n].to_le_bytes()),
                other => panic!("{other:?}"),
            }
        }
    }
    out
}

/// Stems as raw PCM bytes, as the file source hands WAV stems to the GPU engine.
struct RawSource {
    bytes: Vec<Vec<u8>>,
    encodings: Vec<SourceEncoding>,
    channels: Vec<usize>,
    block: usize,
    next: usize,
    frames: usize,
}

impl RawSource {
    fn frame_bytes(&self, s: usize) -> usize {
        self.channels[s] * bytes_per_sample(self.encodings[s]).expect("raw")
    }
}

impl StemSource for RawSource {
    fn next_block(&mut self, _out: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        panic!("the GPU engine asks for raw blocks when the source has them");
    }
    fn raw_encoding(&self, stem: usize) -> Option<SourceEncoding> {
        Some(self.encodings[stem])
    }
    fn next_raw_block(&mut self, raw: &mut [Vec<u8>], _planar: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        let start = self.next * self.block;
        self.next += 1;
        for (s, out) in raw.iter_mut().enumerate().take(self.bytes.len()) {
            let fb = self.frame_bytes(s);
            let have = self.bytes[s].len() / fb;
            let (a, b) = (start.min(have), (start + self.block).min(have));
            out.clear();
            out.extend_from_slice(&self.bytes[s][a * fb..b * fb]);
        }
        Ok(self.frames.saturating_sub(start).min(self.block))
    }
}

#[test]
fn engine_unpacks_raw_stems_on_the_device() {
    let Some(_gpu) = gpu("engine_unpacks_raw_stems_on_the_device") else {
        return;
    };
    let mut engine = GpuEngine::new(None).expect("GPU engine");
    let block = 256;
    let frames = 7 * block + 77;
    let (plan, signals) = test_plan(block, frames);
    // Stereo 16-bit, mono 24-bit (77 frames of it end mid-word), a shorter stereo float stem.
    let encodings = vec![SourceEncoding::Int16, SourceEncoding::Int24, SourceEncoding::Float32];
    let bytes: Vec<Vec<u8>> = signals.iter().zip(&encodings).map(|(x, e)| to_pcm(x, *e)).collect();
    // What the engine gets from the same files through the CPU decoder (`pcm_unpack`, the same
    // function the shader computes bit for bit).
    let decoded: Vec<Vec<Vec<f32>>> = signals
        .iter()
        .zip(&bytes)
        .zip(&encodings)
        .map(|((x, b), e)| {
            let mut out = vec![vec![0.0f32; x[0].len()]; x.len()];
            unpack(b, *e, x.len(), &mut out, x[0].len());
            out
        })
        .collect();
    let pass = PassParams { gain_db: 7.0, limit: true, stems: true };
    let want = run(&mut engine, &plan, &pass, &decoded);
    let mut source = RawSource {
        bytes: bytes.clone(),
        encodings: encodings.clone(),
        channels: signals.iter().map(|x| x.len()).collect(),
        block,
        next: 0,
        frames,
    };
    let mut got = Collect::default();
    engine.run_pass(&plan, &pass, &mut source, &mut got).expect("raw pass");
    assert!(want.gain.iter().any(|g| *g < 0.8), "the limiter must be working in this test");
    assert_eq!(got.indices, want.indices);
    // Same input values on the device, same chain: the same output, bit for bit.
    assert!(got.master == want.master, "master from raw stems differs from master from decoded stems");
    assert!(got.stems == want.stems, "stems from raw stems differ");
    assert!(got.gain == want.gain, "gain from raw stems differs");
    // Up: each stem's bytes per block, the tail of a block padded to a word; nothing once the
    // stems have ended (the shader writes the zeros).
    let up: usize = (0..bytes.len())
        .map(|s| {
            let fb = source.frame_bytes(s);
            bytes[s].chunks(block * fb).map(|c| c.len().next_multiple_of(4)).sum::<usize>()
        })
        .sum();
    assert_eq!(engine.bus_bytes().expect("counted").up as usize, up, "bytes up: the raw stems");
}

// ---------------------------------------------------------------------------------------------
// Whole renders: what crosses the bus, and the meter on packed PCM

/// Write `x` as a WAV of `format` (values on its grid, no dither: written exactly).
fn write_stem(path: &std::path::Path, x: &[Vec<f32>], format: SampleFormat) {
    let spec = WriterSpec { sample_rate: FS as u32, channels: x.len(), layout: None, format, dither_seed: None };
    let mut w = WavWriter::create(path, &spec).expect("stem writer");
    let planes: Vec<&[f32]> = x.iter().map(|c| c.as_slice()).collect();
    w.write_planar(&planes, x[0].len()).expect("write stem");
    w.finish().expect("finish stem");
}

/// A mono WAV of 64-bit float samples (WAVE_FORMAT_IEEE_FLOAT), which stemforge's writer does not
/// make.
fn write_f64_stem(path: &std::path::Path, x: &[f64]) {
    let data = (x.len() * 8) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&(FS as u32).to_le_bytes());
    b.extend_from_slice(&(FS as u32 * 8).to_le_bytes());
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(&64u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    x.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
    std::fs::write(path, b).expect("write f64 stem");
}

/// A stereo song of a 24-bit stereo stem, a 16-bit mono one and a 64-bit float mono one (which
/// the source decodes to f32: half the bytes of its raw form), mastered with a limiter, with only
/// integer outputs (`outputs` TOML): the meter has no f32 master output to read.
fn integer_session(dir: &std::path::Path, frames: usize, outputs: &str) -> std::path::PathBuf {
    let on_grid = |x: Vec<f32>, bits: i32| -> Vec<f32> {
        let s = 2f32.powi(bits - 1);
        x.iter().map(|v| (v * 0.5 * s).round() / s).collect()
    };
    let drums = vec![
        on_grid(music_noise(41, frames, Noise::FullScale), 24),
        on_grid(music_noise(42, frames, Noise::FullScale), 24),
    ];
    let bass = vec![on_grid(sweep(frames, FS, 40.0, 400.0, 0.9), 16)];
    write_stem(&dir.join("drums.wav"), &drums, SampleFormat::Pcm24);
    write_stem(&dir.join("bass.wav"), &bass, SampleFormat::Pcm16);
    let pad: Vec<f64> = music_noise(43, frames, Noise::FullScale).iter().map(|v| *v as f64 * 0.3).collect();
    write_f64_stem(&dir.join("pad.wav"), &pad);
    let session = dir.join("session.toml");
    std::fs::write(
        &session,
        format!(
            "name = \"integer\"\nlayout = \"stereo\"\n\
             [[stems]]\nname = \"drums\"\npath = \"drums.wav\"\neq = [{{ type = \"low_shelf\", freq_hz = 100.0, gain_db = 2.0, q = 0.707 }}]\n\
             [[stems]]\nname = \"bass\"\npath = \"bass.wav\"\n\
             [[stems]]\nname = \"pad\"\npath = \"pad.wav\"\n\
             [eq_design]\ntaps = 511\n\
             [master]\ntarget_lufs = -10.0\nceiling_dbtp = -1.0\n{outputs}"
        ),
    )
    .expect("session");
    session
}

fn render_on(engine: EngineChoice, session: &std::path::Path, out: &std::path::Path, block: usize) -> RenderReport {
    let opts = RenderOptions { engine, out_dir: Some(out.to_path_buf()), block, ..RenderOptions::default() };
    render(session, &opts).unwrap_or_else(|e| panic!("render on {engine:?}: {e}"))
}

#[test]
fn only_pcm_crosses_the_bus_in_an_integer_render() {
    let Some(_gpu) = gpu("only_pcm_crosses_the_bus_in_an_integer_render") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // Whole blocks of 1024 frames: no block's bytes need padding to a word, so the counts are
    // exactly the files' sample bytes.
    // 48 blocks: a second, long enough for the gated loudness (400 ms blocks) to measure.
    let (block, blocks) = (1024usize, 48usize);
    let frames = block * blocks;
    let session = integer_session(
        dir.path(),
        frames,
        "[[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n\
         [[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"pcm16\"\n",
    );
    let report = render_on(EngineChoice::Gpu, &session, &dir.path().join("out"), block);
    // Up, every pass: the PCM stems' sample bytes as stored (24-bit stereo, 16-bit mono), and
    // the 64-bit stem as f32, its blocks and then one block of zeros once it has ended.
    let stems_up = (frames * (2 * 3 + 2) + (blocks + 1) * block * 4) as u64;
    // Down, limiter passes: the output files' sample bytes (pcm24 master, three pcm16 stereo
    // stems), plus per block one u32 count of clamped samples per output, plus the limiter gain's
    // statistics for the report's gain reduction: per block one `stats` workgroup (1024 frames
    // of its 4096), whose least gain and log2 sum are two f32s. Not the gain per frame (4 bytes a
    // frame, 196 KB here), which would make the count differ.
    let outputs: u64 = report.outputs.iter().map(|o| o.frames * 2 * o.format.bytes_per_sample() as u64).sum();
    assert_eq!(outputs, (frames * (2 * 3 + 3 * 2 * 2)) as u64);
    assert_eq!(STATS_SPAN, 4096);
    let limiter_down = outputs + (blocks * 4 * 4) as u64 + (blocks * 2 * 4) as u64;
    // The analysis pass meters the f32 bus.
    let analysis_down = (frames * 2 * 4) as u64;
    assert!(report.passes.len() >= 2, "an analysis pass and a limiter pass: {:?}", report.passes);
    for p in &report.passes {
        if p.kind == "solve" {
            // G tried on the spilled bus, on the CPU: nothing crosses, nothing is counted.
            assert!(p.bus_bytes.is_none(), "pass {} (solve): {:?}", p.pass, p.bus_bytes);
            continue;
        }
        let bus = p.bus_bytes.expect("the GPU engine counts its bytes");
        assert_eq!(bus.up, stems_up, "pass {} ({}): bytes up", p.pass, p.kind);
        let down = if p.kind == "analysis" { analysis_down } else { limiter_down };
        assert_eq!(bus.down, down, "pass {} ({}): bytes down", p.pass, p.kind);
    }
}

/// DESIGN.md "Parity contract": loudness and true-peak readings within 0.01 LU/dB of the CPU
/// engine's, here where the GPU engine's meter reads the packed 16-bit master (the coarsest
/// format, so the most dither and rounding noise), unpacked, and the CPU's the f32 master.
#[test]
fn loudness_from_packed_pcm_matches_the_cpu_engine() {
    let Some(_gpu) = gpu("loudness_from_packed_pcm_matches_the_cpu_engine") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let session = integer_session(
        dir.path(),
        5 * FS as usize,
        "[[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"pcm16\"\n",
    );
    let block = 4096;
    let cpu = render_on(EngineChoice::Cpu, &session, &dir.path().join("cpu"), block);
    let gpu = render_on(EngineChoice::Gpu, &session, &dir.path().join("gpu"), block);
    // The writing pass brought back the packed master, its clamp count and the limiter gain's
    // statistics (one `stats` workgroup per 4096-frame block: two f32s), and no f32 master.
    let last = gpu.passes.last().expect("passes");
    let blocks = gpu.frames.div_ceil(block as u64);
    let down = gpu.frames * 2 * 2 + blocks * (4 + 2 * 4);
    assert_eq!(last.bus_bytes.expect("counted").down, down, "{last:?}");
    let (a, b) = (&cpu.loudness_after, &gpu.loudness_after);
    for (what, x, y) in [
        ("integrated", a.integrated_lufs, b.integrated_lufs),
        ("loudness range", a.lra_lu, b.lra_lu),
        ("max momentary", a.max_momentary_lufs, b.max_momentary_lufs),
        ("max short-term", a.max_short_term_lufs, b.max_short_term_lufs),
        ("sample peak", a.sample_peak_dbfs, b.sample_peak_dbfs),
        ("true peak", a.true_peak_dbtp, b.true_peak_dbtp),
    ] {
        assert!(x.is_finite() && (x - y).abs() <= 0.01, "{what}: cpu {x}, gpu {y}");
    }
    assert_eq!(cpu.passes.len(), gpu.passes.len(), "the same number of limiter passes");
}

/// A FLAC stem has no raw PCM form (symphonia decodes it): it goes up as f32 beside a WAV stem
/// that goes up raw, and the render is the CPU engine's.
#[test]
fn codec_stems_go_up_decoded_beside_raw_ones() {
    let Some(_gpu) = gpu("codec_stems_go_up_decoded_beside_raw_ones") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (block, blocks) = (1024usize, 20usize);
    let frames = block * blocks;
    let on_grid = |x: Vec<f32>, bits: i32| -> Vec<f32> {
        let s = 2f32.powi(bits - 1);
        x.iter().map(|v| (v * 0.5 * s).round() / s).collect()
    };
    let keys = vec![
        on_grid(music_noise(51, frames, Noise::FullScale), 24),
        on_grid(music_noise(52, frames, Noise::FullScale), 24),
    ];
    write_stem(&dir.path().join("keys.wav"), &keys, SampleFormat::Pcm24);
    let vox = vec![on_grid(sweep(frames, FS, 200.0, 2000.0, 0.8), 16)];
    let vox_wav = dir.path().join("vox-src.wav");
    write_stem(&vox_wav, &vox, SampleFormat::Pcm16);
    let flac = dir.path().join("vox.flac");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&vox_wav)
        .args(["-c:a", "flac"])
        .arg(&flac)
        .status()
        .expect("ffmpeg (apt-get install ffmpeg) encodes the FLAC stem");
    assert!(ok.success(), "ffmpeg failed to encode {}", flac.display());
    let session = dir.path().join("session.toml");
    std::fs::write(
        &session,
        "name = \"codec\"\nlayout = \"stereo\"\n\
         [[stems]]\nname = \"keys\"\npath = \"keys.wav\"\n\
         [[stems]]\nname = \"vox\"\npath = \"vox.flac\"\ngain_db = -2.0\n\
         [[outputs]]\npath = \"sum.wav\"\nkind = \"master\"\nformat = \"f32\"\n",
    )
    .expect("session");
    let cpu = render_on(EngineChoice::Cpu, &session, &dir.path().join("cpu"), block);
    let gpu = render_on(EngineChoice::Gpu, &session, &dir.path().join("gpu"), block);
    assert_eq!(cpu.outputs[0].sha256, gpu.outputs[0].sha256, "no EQ, no limiter: the same sums in the same order");
    let bus = gpu.passes[0].bus_bytes.expect("counted");
    // The WAV's 24-bit stereo bytes; the FLAC as f32 blocks (no latency to flush with zeros).
    assert_eq!(bus.up, (frames * 6 + blocks * block * 4) as u64);
}
