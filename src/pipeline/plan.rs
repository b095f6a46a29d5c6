//! Session + opened stems -> the `RenderPlan` both engines execute: routes, designed FIRs, limiter.
use realfft::RealFftPlanner;

use crate::dsp::eq_design::{design_eq, eq_latency};
use crate::dsp::oversampling::design_oversampling;
use crate::engine::{FirPlan, LimiterPlan, RenderPlan, StemPlan};
use crate::error::{Error, Result};
use crate::io::AudioInfo;
use crate::io::fir_file::load_fir_file;
use crate::model::{Filter, Layout};
use crate::session::Session;

/// Frames per block: also the FIR partition. 8192 keeps an 8191-tap EQ in one partition.
pub const DEFAULT_BLOCK: usize = 8192;

/// Mono into stereo: each side at -3 dB exactly, 10^(-3/20) (DESIGN.md DSP 3). One constant for
/// the render and for `check`'s null test, so a stem routed by either nulls against the other.
pub const MONO_TO_STEREO: f32 = 0.707_945_8;

/// (stem channel, bus channel, weight) for a stem of `channels` channels at `gain_db` on `layout`
/// (DESIGN.md DSP 3). `None` when the channel count cannot be routed.
pub fn routes(layout: Layout, channels: usize, gain_db: f64) -> Option<Vec<(usize, usize, f32)>> {
    let g = 10f64.powf(gain_db / 20.0) as f32;
    let bus = layout.channels();
    if channels == bus {
        return Some((0..bus).map(|c| (c, c, g)).collect());
    }
    if channels != 1 {
        return None;
    }
    Some(match layout {
        Layout::Mono => vec![(0, 0, g)],
        Layout::Stereo => vec![(0, 0, g * MONO_TO_STEREO), (0, 1, g * MONO_TO_STEREO)],
        Layout::Surround51 | Layout::Surround71 => vec![(0, 2, g)],
    })
}

fn filter_plan(filter: &Filter, session: &Session, channels: usize, fs: u32) -> Result<Option<FirPlan>> {
    Ok(match filter {
        Filter::None => None,
        Filter::Bands(bands) if bands.is_empty() => None,
        Filter::Bands(bands) => {
            let h = design_eq(bands, fs as f64, session.eq_design.taps, session.eq_design.phase);
            Some(FirPlan {
                taps: vec![h; channels],
                latency: eq_latency(session.eq_design.taps, session.eq_design.phase),
            })
        }
        Filter::File(path) => Some(FirPlan { taps: load_fir_file(path, channels, fs)?, latency: 0 }),
    })
}

/// Exact linear convolution of two FIRs, in f64 through one real FFT.
fn convolve_firs(a: &[f32], b: &[f32]) -> Vec<f32> {
    let len = a.len() + b.len() - 1;
    let n = len.next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let spectrum = |x: &[f32]| {
        let mut buf = vec![0.0f64; n];
        buf.iter_mut().zip(x).for_each(|(d, s)| *d = *s as f64);
        let mut out = fwd.make_output_vec();
        fwd.process(&mut buf, &mut out).expect("fft sizes");
        out
    };
    let (sa, sb) = (spectrum(a), spectrum(b));
    let mut prod: Vec<_> = sa.iter().zip(&sb).map(|(x, y)| x * y).collect();
    let mut out = vec![0.0f64; n];
    inv.process(&mut prod, &mut out).expect("fft sizes");
    out[..len].iter().map(|v| (*v / n as f64) as f32).collect()
}

/// What to build the plan for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// Stem EQ and bus EQ as written: each stem's own EQ, as the proof page draws it.
    Bus,
    /// Stem outputs are delivered: the bus EQ is folded into each stem's FIR (exact convolution
    /// of the two tables, latencies added), so each stem leaves the chain already bus-EQ'd and
    /// the stems sum to the master. One FFT convolution per stem channel instead of two. When a
    /// stem's path is not linear (`stem_path_is_linear`) the plan stays as `Bus` would build it,
    /// and the engines apply the bus EQ to each stem's contribution instead.
    StemsLinked,
}

/// Build the plan. `infos[i]` describes `session.stems[i]` (already opened and validated).
pub fn build_plan(session: &Session, infos: &[AudioInfo], kind: PlanKind, block: usize) -> Result<RenderPlan> {
    let [plan] = build_plans(session, infos, [kind], block)?;
    Ok(plan)
}

/// The plans of several kinds for one session, its FIRs designed once, in parallel (each design
/// is a dense-grid response and an FFT of thousands of taps: a render builds two plans).
pub fn build_plans<const N: usize>(
    session: &Session,
    infos: &[AudioInfo],
    kinds: [PlanKind; N],
    block: usize,
) -> Result<[RenderPlan; N]> {
    use rayon::prelude::*;
    let fs = infos.first().map(|i| i.sample_rate).ok_or_else(|| Error::input(&session.file, "no stems"))?;
    // The bus filter first, then each stem's (a muted stem's is not designed).
    let mut filters: Vec<(&Filter, usize)> = vec![(&session.bus_filter, session.layout.channels())];
    filters.extend(
        session
            .stems
            .iter()
            .zip(infos)
            .map(|(stem, info)| (if stem.mute { &Filter::None } else { &stem.filter }, info.channels)),
    );
    let designs: Vec<Option<FirPlan>> =
        filters.par_iter().map(|&(f, channels)| filter_plan(f, session, channels, fs)).collect::<Result<_>>()?;
    let mut plans = Vec::with_capacity(N);
    for kind in kinds {
        plans.push(plan_of_kind(session, infos, kind, block, &designs)?);
    }
    Ok(plans.try_into().unwrap_or_else(|_| unreachable!("one plan per kind")))
}

/// `build_plan` of `kind`, with `designs` = the bus FIR, then each stem's.
fn plan_of_kind(
    session: &Session,
    infos: &[AudioInfo],
    kind: PlanKind,
    block: usize,
    designs: &[Option<FirPlan>],
) -> Result<RenderPlan> {
    let fs = infos[0].sample_rate;
    let frames = infos.iter().map(|i| i.frames).max().unwrap_or(0);
    let layout = session.layout;
    let bus_channels = layout.channels();
    let mut bus_fir = designs[0].clone();
    // The bus EQ folds into the stems' FIRs only where filtering commutes with summing.
    let link = kind == PlanKind::StemsLinked && session.stems.iter().filter(|s| !s.mute).all(stem_path_is_linear);

    let mut stems = Vec::new();
    for (index, (stem, info)) in session.stems.iter().zip(infos).enumerate() {
        if stem.mute {
            continue;
        }
        let routes = routes(layout, info.channels, stem.gain_db).ok_or_else(|| {
            Error::input(
                &stem.path,
                format!(
                    "{} channels, but the session layout is {} ({} channels): a stem must be mono or match the bus",
                    info.channels,
                    layout.name(),
                    bus_channels
                ),
            )
        })?;
        let mut fir = designs[1 + index].clone();
        if link && let Some(bus) = &bus_fir {
            fir = Some(link_bus_fir(stem_fir_or_unit(fir, info.channels), bus, &routes, &stem.path)?);
        }
        for (j, stage) in stem.process.iter().enumerate() {
            stage.takes(info.channels).map_err(|why| {
                Error::input(&session.file, format!("stem `{}`: process[{j}] ({}): {why}", stem.name, stage.name()))
            })?;
            // A keyed compressor reads the key stem's processed block of the same block index.
            // Every stem's output is aligned (`engine::Alignment`), and the input of a stage
            // holds program frames r ahead of the stem's output, r the latency of that stage and
            // every later one of the chain; so key and keyed input share program frames only
            // when r = 0 (no look-ahead on the keyed compressor, no latency after it).
            if let crate::model::Process::Compressor(c) = stage
                && let Some(key) = &c.key
            {
                let r: usize = stem.process[j..].iter().map(|p| crate::dsp::process_latency(p, fs)).sum();
                if r > 0 {
                    return Err(Error::input(
                        &session.file,
                        format!(
                            "stem `{}`: process[{j}] (compressor): key = {key:?} (ducking) with {r} frames of latency \
                             from this compressor on (its lookahead_ms, or a later width with mono_below_hz or \
                             saturation): the key would reach it {r} frames late; set lookahead_ms = 0 and move \
                             latent stages before the keyed compressor",
                            stem.name
                        ),
                    ));
                }
            }
        }
        let process = stem.process.clone();
        stems.push(StemPlan {
            index,
            name: stem.name.clone(),
            channels: info.channels,
            fir,
            process,
            routes,
            replayed_latency: None,
            replayed_stages: None,
        });
    }
    if link {
        bus_fir = None;
    }

    let limiter = match &session.master {
        None => None,
        Some(m) => {
            let lookahead = ((m.lookahead_ms * fs as f64 / 1000.0).round() as usize).max(1);
            Some(LimiterPlan {
                // The first aim; the render moves it from measurement (`passes`). K = 1 sees
                // only samples: it bounds the sample peak, and the render's final true-peak
                // check reports whatever the meter reads (see `render`).
                ceiling_db: aim_db(
                    m.ceiling_dbtp,
                    crate::cpu::limiter::aim_bounds(m.oversampling as usize).map_or(0.0, |b| b.first_db),
                ),
                lookahead,
                rho: (-1000.0 / (m.release_ms * fs as f64)).exp() as f32,
                oversampling: design_oversampling(m.oversampling as usize),
            })
        }
    };
    let bus_process = session.bus_process.clone();
    Ok(RenderPlan { sample_rate: fs, frames, block, layout, stems, bus_fir, bus_process, limiter })
}

/// The limiter's aim (`LimiterPlan::ceiling_db`) `margin_db` under `ceiling_dbtp`, as the f32 both
/// engines compare against.
pub fn aim_db(ceiling_dbtp: f64, margin_db: f64) -> f32 {
    (ceiling_dbtp - margin_db) as f32
}

/// `plan` with its limiter aiming at `aim` (dBTP): the plan of a pass whose aim was moved. Both
/// engines take the aim from the plan, so the move is the same on both.
pub fn with_aim(plan: &RenderPlan, aim: f32) -> RenderPlan {
    let mut p = plan.clone();
    if let Some(l) = &mut p.limiter {
        l.ceiling_db = aim;
    }
    p
}

/// The plan of a writing pass that replays a spill (`solve::SpillSource`): `plan` with every FIR
/// and the bus chain already applied. Its "stems" are what the analysis pass spilled, bus-wide and routed channel to
/// channel at weight 1 (exact in f32): `plan`'s stem contributions when `stems` (so the stem
/// outputs and their sum are the very samples the writing pass of `plan` computes), else one
/// signal, the bus. Limiter, length and block are `plan`'s.
pub fn replay_plan(plan: &RenderPlan, stems: bool) -> RenderPlan {
    let ch = plan.bus_channels();
    let identity: Vec<(usize, usize, f32)> = (0..ch).map(|c| (c, c, 1.0)).collect();
    let replayed = |index: usize, name: &str| StemPlan {
        index,
        name: name.to_string(),
        channels: ch,
        fir: None,
        process: Vec::new(),
        routes: identity.clone(),
        replayed_latency: None,
        replayed_stages: None,
    };
    let spilled = if stems {
        plan.stems.iter().map(|s| replayed(s.index, &s.name)).collect()
    } else {
        vec![replayed(usize::MAX, "bus")]
    };
    // The spill was taken after the bus chain too (it runs before G): replayed, it is a copy.
    RenderPlan { stems: spilled, bus_fir: None, bus_process: Vec::new(), ..plan.clone() }
}

/// Whether a stem's path is linear, time-invariant and per channel, so that the bus EQ can be
/// folded into its FIR (`PlanKind::StemsLinked`): gain,
/// routing and an EQ or FIR file are; a `process` chain is not (a compressor is not linear, and a
/// `width` stage, linear as it is, mixes the stem's channels before the bus EQ that the linked
/// plan would fold per channel into its FIR).
fn stem_path_is_linear(stem: &crate::session::Stem) -> bool {
    stem.process.is_empty()
}

fn stem_fir_or_unit(fir: Option<FirPlan>, channels: usize) -> FirPlan {
    fir.unwrap_or_else(|| FirPlan { taps: vec![vec![1.0]; channels], latency: 0 })
}

/// Fold the bus FIR into a stem's FIR. Routing happens after the stem FIR, so this is exact when
/// every route from a stem channel lands on bus channels sharing one bus filter.
fn link_bus_fir(
    stem: FirPlan,
    bus: &FirPlan,
    routes: &[(usize, usize, f32)],
    path: &std::path::Path,
) -> Result<FirPlan> {
    let mut taps = Vec::with_capacity(stem.taps.len());
    for (c, h) in stem.taps.iter().enumerate() {
        let dsts: Vec<usize> = routes.iter().filter(|r| r.0 == c).map(|r| r.1).collect();
        let first = dsts.first().copied().unwrap_or(0);
        if dsts.iter().any(|d| bus.taps[*d] != bus.taps[first]) {
            return Err(Error::input(
                path,
                "this mono stem is routed to several bus channels whose bus filters differ (a per-channel bus `fir`); \
                 linked stem outputs need one bus filter per route: give the stem the bus layout instead",
            ));
        }
        taps.push(convolve_firs(h, &bus.taps[first]));
    }
    Ok(FirPlan { taps, latency: stem.latency + bus.latency })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convolve_firs_matches_direct() {
        let a: Vec<f32> = (0..37).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect();
        let b: Vec<f32> = (0..20).map(|i| ((i * 104729) % 11) as f32 / 11.0 - 0.5).collect();
        let c = convolve_firs(&a, &b);
        assert_eq!(c.len(), 56);
        for n in 0..56 {
            let direct: f64 =
                (0..b.len()).filter(|k| n >= *k && n - k < a.len()).map(|k| a[n - k] as f64 * b[k] as f64).sum();
            // f64 FFT rounding is ~1e-15; the output is rounded to f32 (~6e-8 relative).
            assert!((c[n] as f64 - direct).abs() < 1e-6, "frame {n}: {} vs {direct}", c[n]);
        }
    }

    #[test]
    fn mono_routes() {
        let r = routes(Layout::Stereo, 1, 0.0).unwrap();
        assert_eq!(r.len(), 2);
        assert!((20.0 * (r[0].2 as f64).log10() + 3.0).abs() < 1e-6);
        assert_eq!(routes(Layout::Surround51, 1, 0.0).unwrap(), vec![(0, 2, 1.0)]);
        assert!(routes(Layout::Stereo, 6, 0.0).is_none());
    }
}
