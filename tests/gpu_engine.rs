//! The GPU device and engine: adapter choice and error reporting, and whole passes of `GpuEngine`
//! against an offline reference of DESIGN.md's DSP (f64 direct convolutions on the whole
//! timeline, the CPU limiter run causally and aligned afterwards), which checks the engine's
//! latency alignment, zeroing outside the program, stem/bus order and block delivery.
//!
//! GPU tests never skip silently: with no adapter they fail and say how to get one, unless
//! STEMFORGE_SKIP_GPU_TESTS=1 (then each prints that it skipped, with the count).
#[path = "common/gpu_harness.rs"]
mod gpu_harness;
#[path = "common/gpu_parity.rs"]
mod gpu_parity;
#[path = "common/gpu_signals.rs"]
mod gpu_signals;

use gpu_harness::gpu;
use gpu_parity::assert_parity;
use gpu_signals::{impulses, music_noise, sweep};
use stemforge::cpu::limiter::Limiter;
use stemforge::dsp::eq_design::{design_eq, eq_latency};
use stemforge::dsp::oversampling::design_oversampling;
use stemforge::engine::{
    Engine, FirPlan, LimiterPlan, PassBlock, PassParams, PassSink, RenderPlan, StemPlan, StemSource,
};
use stemforge::error::{Error, Result};
use stemforge::gpu::{GpuContext, GpuEngine, list_adapters};
use stemforge::session::{EqBand, Layout, Phase};

const FS: f64 = 48000.0;

/// DESIGN.md "Parity contract", a whole render with float output. The reference here is f64
/// where the engines are f32, so this is the engine's own error against the exact function.
const RENDER_PEAK_DBFS: f64 = -100.0;
const RENDER_RMS_DBFS: f64 = -120.0;

#[test]
fn adapters_are_listed_and_one_is_selected() {
    let Some(ctx) = gpu("adapters_are_listed_and_one_is_selected") else {
        return;
    };
    let adapters = list_adapters(None);
    assert!(
        !adapters.is_empty(),
        "an adapter was opened, so the list cannot be empty"
    );
    assert_eq!(
        adapters.iter().filter(|a| a.selected).count(),
        1,
        "exactly one selected: {adapters:#?}"
    );
    let chosen = adapters.iter().find(|a| a.selected).expect("selected");
    assert_eq!(chosen.name, ctx.adapter_info.name);
    assert!(chosen.describe().contains(&chosen.name));
}

#[test]
fn an_unknown_adapter_name_is_no_gpu_with_help() {
    // Needs no GPU: with or without adapters, a name nobody has is Error::NoGpu (exit 3).
    match GpuContext::new(Some("no-such-adapter-7f3a")) {
        Err(Error::NoGpu(msg)) => {
            assert!(
                msg.contains("no-such-adapter-7f3a"),
                "names what was asked for: {msg}"
            );
            assert!(
                msg.contains("mesa-vulkan-drivers"),
                "says how to get an adapter: {msg}"
            );
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
    let _module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("broken"),
            source: wgpu::ShaderSource::Wgsl(
                "@compute @workgroup_size(1) fn main() { let x: u32 = nope; }".into(),
            ),
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
    v[ORIGIN..ORIGIN + x.len()]
        .iter_mut()
        .zip(x)
        .for_each(|(d, s)| *d = *s as f64);
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
                out[dst]
                    .iter_mut()
                    .zip(&eq[src])
                    .for_each(|(d, v)| *d += w as f64 * v);
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
                    y[ORIGIN..ORIGIN + n]
                        .iter()
                        .map(|v| (k * v) as f32)
                        .collect()
                })
                .collect()
        })
        .collect();
    let bus: Vec<Vec<f32>> = (0..bus_ch)
        .map(|c| {
            (0..n)
                .map(|i| processed.iter().map(|s| s[c][i] as f64).sum::<f64>() as f32)
                .collect()
        })
        .collect();
    if !pass.limit {
        return Reference {
            master: bus,
            stems: if pass.stems { processed } else { Vec::new() },
            gain: None,
        };
    }
    // The CPU limiter, causal from time 0, flushed with silence, then aligned by its latency.
    let lp = plan.limiter.as_ref().expect("limiter plan");
    let b = plan.block;
    let mut lim = Limiter::new(lp, bus_ch, b);
    let lat = lim.latency();
    let mut g_causal = Vec::new();
    let total = (n + lat).div_ceil(b) * b;
    for j in 0..total / b {
        let xb: Vec<Vec<f32>> = bus
            .iter()
            .map(|c| {
                (j * b..(j + 1) * b)
                    .map(|i| c.get(i).copied().unwrap_or(0.0))
                    .collect()
            })
            .collect();
        let views: Vec<&[f32]> = xb.iter().map(|v| v.as_slice()).collect();
        let mut g = vec![0.0f32; b];
        lim.process(&views, &mut g);
        g_causal.extend(g);
    }
    let gain: Vec<f32> = g_causal[lat..lat + n].to_vec();
    let apply = |x: &Vec<f32>| -> Vec<f32> { x.iter().zip(&gain).map(|(v, g)| v * g).collect() };
    Reference {
        master: bus.iter().map(apply).collect(),
        stems: if pass.stems {
            processed
                .iter()
                .map(|s| s.iter().map(apply).collect())
                .collect()
        } else {
            Vec::new()
        },
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
            EqBand::Highpass {
                freq_hz: 60.0,
                order: 2,
            },
            EqBand::Peak {
                freq_hz: 2500.0,
                gain_db: g,
                q: 1.2,
            },
            EqBand::HighShelf {
                freq_hz: 9000.0,
                gain_db: -2.0,
                q: 0.707,
            },
        ]
    };
    let lin_taps = 2 * block + 1;
    let lin = design_eq(&bands(4.0), FS, lin_taps, Phase::Linear);
    let min = design_eq(&bands(-3.0), FS, 301, Phase::Minimum);
    let bus = design_eq(
        &[EqBand::LowShelf {
            freq_hz: 120.0,
            gain_db: 2.0,
            q: 0.707,
        }],
        FS,
        201,
        Phase::Linear,
    );
    let g = |db: f64| 10f64.powf(db / 20.0) as f32;
    let m = std::f32::consts::FRAC_1_SQRT_2;
    let stems = vec![
        StemPlan {
            index: 0,
            name: "drums".into(),
            channels: 2,
            fir: Some(FirPlan {
                taps: vec![lin.clone(), lin],
                latency: eq_latency(lin_taps, Phase::Linear),
            }),
            routes: vec![(0, 0, g(1.5)), (1, 1, g(1.5))],
        },
        StemPlan {
            index: 1,
            name: "bass".into(),
            channels: 1,
            fir: None,
            routes: vec![(0, 0, m * g(-1.0)), (0, 1, m * g(-1.0))],
        },
        StemPlan {
            index: 3,
            name: "vocals".into(),
            channels: 2,
            fir: Some(FirPlan {
                taps: vec![min.clone(), min],
                latency: 0,
            }),
            routes: vec![(0, 0, g(-2.0)), (1, 1, g(-2.0))],
        },
    ];
    let plan = RenderPlan {
        sample_rate: FS as u32,
        frames: frames as u64,
        block,
        layout: Layout::Stereo,
        stems,
        bus_fir: Some(FirPlan {
            taps: vec![bus.clone(), bus],
            latency: eq_latency(201, Phase::Linear),
        }),
        limiter: Some(LimiterPlan {
            ceiling_db: -1.2,
            lookahead: 96,
            rho: (-1000.0 / (60.0 * FS)).exp() as f32,
            oversampling: design_oversampling(4),
        }),
    };
    let signals = vec![
        vec![music_noise(frames, 1), music_noise(frames, 2)],
        vec![sweep(frames, FS, 30.0, 300.0, 0.9)],
        // Shorter than the program: the source pads it with silence.
        vec![
            music_noise(frames - frames / 3, 3),
            impulses(frames - frames / 3, 11, 333),
        ],
    ];
    (plan, signals)
}

fn run(
    engine: &mut dyn Engine,
    plan: &RenderPlan,
    pass: &PassParams,
    stems: &[Vec<Vec<f32>>],
) -> Collect {
    let mut source = Source {
        stems: stems.to_vec(),
        block: plan.block,
        next: 0,
        frames: plan.frames as usize,
    };
    let mut sink = Collect::default();
    engine
        .run_pass(plan, pass, &mut source, &mut sink)
        .unwrap_or_else(|e| panic!("{} pass failed: {e}", engine.info().engine));
    sink
}

fn check_pass(label: &str, plan: &RenderPlan, pass: &PassParams, got: &Collect, want: &Reference) {
    let blocks = plan.blocks();
    assert_eq!(
        got.indices,
        (0..blocks).collect::<Vec<_>>(),
        "{label}: blocks delivered in order, each once"
    );
    assert!(
        got.gain_given.iter().all(|g| *g == pass.limit),
        "{label}: gain given exactly when limiting"
    );
    assert_parity(
        &format!("{label} master"),
        &want.master,
        &got.master,
        RENDER_PEAK_DBFS,
        RENDER_RMS_DBFS,
    );
    assert_eq!(got.stems.len(), want.stems.len(), "{label}: stem outputs");
    for (i, (w, g)) in want.stems.iter().zip(&got.stems).enumerate() {
        assert_parity(
            &format!("{label} stem {i}"),
            w,
            g,
            RENDER_PEAK_DBFS,
            RENDER_RMS_DBFS,
        );
    }
    if let Some(wg) = &want.gain {
        assert!(
            wg.iter().any(|g| *g < 0.8),
            "{label}: the limiter must be working in this test"
        );
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
        (
            "analysis",
            PassParams {
                gain_db: 0.0,
                limit: false,
                stems: false,
            },
        ),
        (
            "limited master",
            PassParams {
                gain_db: 6.0,
                limit: true,
                stems: false,
            },
        ),
        (
            "limited with stems",
            PassParams {
                gain_db: 7.5,
                limit: true,
                stems: true,
            },
        ),
        (
            "stems, no limiter",
            PassParams {
                gain_db: -3.0,
                limit: false,
                stems: true,
            },
        ),
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
    let pass = PassParams {
        gain_db: 0.0,
        limit: false,
        stems: false,
    };
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
    let limit = PassParams {
        gain_db: 0.0,
        limit: true,
        stems: false,
    };
    let mut source = Source {
        stems: stems.clone(),
        block,
        next: 0,
        frames,
    };
    match engine.run_pass(&plan, &limit, &mut source, &mut Collect::default()) {
        Err(Error::Internal(msg)) => assert!(msg.contains("limiter"), "{msg}"),
        other => panic!(
            "a limiter pass without a limiter plan must be refused, got {:?}",
            other.err()
        ),
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
        (
            "analysis",
            PassParams {
                gain_db: 0.0,
                limit: false,
                stems: false,
            },
        ),
        (
            "limited with stems",
            PassParams {
                gain_db: 8.0,
                limit: true,
                stems: true,
            },
        ),
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
            assert_parity(
                &format!("cpu vs gpu engine, {label}, stem {i}"),
                cs,
                gs,
                RENDER_PEAK_DBFS,
                RENDER_RMS_DBFS,
            );
        }
        if pass.limit {
            assert!(
                c.gain.iter().any(|v| *v < 0.8),
                "{label}: the limiter must be working in this test"
            );
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
