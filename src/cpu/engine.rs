//! The CPU engine: runs one render pass block by block with the stages of this folder, stems and
//! channels in parallel (rayon), every latency compensated so output frame n is input frame n.
//!
//! Alignment scheme (the GPU engine follows the same one): a stage of latency l gets a pre-delay
//! of P = M*B - l frames, M = ceil(l / B), so its output block j is exactly aligned block j - M.
//! Stems share one M (the largest), so the bus sums aligned blocks; the limiter's M blocks are
//! covered by a FIFO of the bus and stem blocks it has not yet produced a gain for. After the
//! source ends, zero blocks are pushed until every aligned block has reached the sink. The bus is
//! zeroed outside [0, N) before the limiter, so EQ pre-ringing never reaches the limiter's state.
use rayon::prelude::*;

use crate::cpu::bus_chain::BusChain;
use crate::cpu::delay_line::DelayLine;
use crate::cpu::fir_convolve::FirConvolve;
use crate::cpu::gain_sum::gain_sum;
use crate::cpu::limiter::LimiterFifo;
use crate::cpu::limiter_apply;
use crate::cpu::{self, Stage};
use crate::engine::{
    Alignment, Engine, EngineInfo, FirPlan, PassBlock, PassParams, PassSink, RenderPlan, StageActivity, StageSnapshot,
    StemFigures, StemSource, bus_stages_at, chain_levels, has_stages, stage_activity, stem_stages_at,
};
use crate::error::{Error, Result};
use crate::model::Process;

/// One channel of a filtered signal: pre-delay then (optionally) the FIR, in place.
struct Lane {
    delay: DelayLine,
    fir: Option<FirConvolve>,
}

impl Lane {
    /// `pre`: the pre-delay that aligns the lane's whole path (`Lag::pre_delay`).
    fn new(fir: Option<(&FirPlan, usize)>, pre: usize, block: usize) -> Lane {
        match fir {
            // A pre-delay of `pre` frames then h is the FIR [0; pre] ++ h. When that fits the same
            // number of partitions (a linked 16381-tap EQ: pre = 2) the delay rides in the taps
            // for free, and the lane copies nothing; else (an 8191-tap EQ: pre = 4097 would add
            // a partition, a complex multiply-add over every bin) a delay line is cheaper.
            Some((plan, ch)) if (plan.taps[ch].len() + pre).div_ceil(block) <= plan.taps[ch].len().div_ceil(block) => {
                let mut taps = vec![0.0f32; pre];
                taps.extend_from_slice(&plan.taps[ch]);
                Lane { delay: DelayLine::new(0, block), fir: Some(FirConvolve::new(&taps, block)) }
            }
            Some((plan, ch)) => {
                Lane { delay: DelayLine::new(pre, block), fir: Some(FirConvolve::new(&plan.taps[ch], block)) }
            }
            None => Lane { delay: DelayLine::new(pre, block), fir: None },
        }
    }
    fn process(&mut self, signal: &mut [f32]) {
        self.delay.process(signal);
        if let Some(fir) = &mut self.fir {
            fir.process_in_place(signal);
        }
    }
}

pub struct CpuEngine {
    threads: usize,
    /// The process stages of the last pass that ran any.
    activity: Vec<StageActivity>,
    /// Iterations (input blocks of the pass) at whose start the stems' process chains' state is
    /// taken (`snapshot_chains_at`), and what was taken.
    snap_at: Vec<u64>,
    snaps: Vec<(u64, Option<Vec<u8>>)>,
    /// The stem stage figures to take in the next pass (`Engine::snapshot_stages_at`), and taken.
    stage_snap_at: Vec<StageSnapshot>,
    stage_snaps: Vec<(u64, StemFigures)>,
}

impl CpuEngine {
    pub fn new() -> Self {
        CpuEngine {
            threads: rayon::current_num_threads(),
            activity: Vec::new(),
            snap_at: Vec::new(),
            snaps: Vec::new(),
            stage_snap_at: Vec::new(),
            stage_snaps: Vec::new(),
        }
    }

    /// Before the next pass: take the state of every stem's process chain (`Stage::state_bytes`,
    /// stems in plan order), then the bus chain's, at the start of each iteration in `at`, when every block before it
    /// has gone through the chains (a segmented render's proof, design/farm.md).
    pub fn snapshot_chains_at(&mut self, at: Vec<u64>) {
        self.snap_at = at;
        self.snaps.clear();
    }

    /// What `snapshot_chains_at` took: (iteration, state; None when a stage has no state_bytes).
    pub fn take_snapshots(&mut self) -> Vec<(u64, Option<Vec<u8>>)> {
        std::mem::take(&mut self.snaps)
    }
}

fn chains_state(chains: &[Vec<Box<dyn Stage>>], bus_chain: &BusChain) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for stage in chains.iter().flatten() {
        out.extend(stage.state_bytes()?);
    }
    out.extend(bus_chain.state_bytes()?);
    Some(out)
}

impl Default for CpuEngine {
    fn default() -> Self {
        Self::new()
    }
}

/// A block waiting in the limiter's FIFO: the bus `[ch][frame]` it reads and the stem
/// contributions `[stem][ch][frame]` that take the same gain.
struct Waiting {
    bus: Vec<Vec<f32>>,
    stems: Vec<Vec<Vec<f32>>>,
}

impl AsRef<[Vec<f32>]> for Waiting {
    fn as_ref(&self) -> &[Vec<f32>] {
        &self.bus
    }
}

/// Every channel times `gain` (skipped at unity, as the engines' G).
fn scale<'a>(channels: impl Iterator<Item = &'a mut Vec<f32>>, gain: f32) {
    if gain != 1.0 {
        channels.for_each(|c| c.iter_mut().for_each(|v| *v *= gain));
    }
}

/// A stem's process chain and its block `[ch][frame]`, taken out to run beside others (step 2b).
type Chain = Vec<Box<dyn Stage>>;
type Block = Vec<Vec<f32>>;

fn zeroed(channels: usize, block: usize) -> Vec<Vec<f32>> {
    vec![vec![0.0; block]; channels]
}

impl Engine for CpuEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            engine: "cpu".into(),
            device: format!("{} threads", self.threads),
            fir_precision: "f64",
            meter: "cpu",
        }
    }

    fn replays_spill(&self) -> bool {
        true
    }

    fn stage_activity(&self) -> Vec<StageActivity> {
        self.activity.clone()
    }

    fn snapshot_stages_at(&mut self, at: Vec<StageSnapshot>) {
        self.stage_snap_at = at;
        self.stage_snaps.clear();
    }

    fn take_stage_snapshots(&mut self) -> Vec<(u64, StemFigures)> {
        std::mem::take(&mut self.stage_snaps)
    }

    fn run_pass(
        &mut self,
        plan: &RenderPlan,
        pass: &PassParams,
        source: &mut dyn StemSource,
        sink: &mut dyn PassSink,
    ) -> Result<()> {
        let b = plan.block;
        let bus_ch = plan.bus_channels();
        let n_stems = plan.stems.len();
        if pass.limit && plan.limiter.is_none() {
            return Err(Error::Internal("limiter pass without a limiter plan".into()));
        }

        // Stage look-ahead in blocks.
        let align = Alignment::of(plan, pass.limit);
        let mut limiter = match (&plan.limiter, pass.limit) {
            (Some(lp), true) => Some(LimiterFifo::<Waiting>::new(lp, bus_ch, b)),
            _ => None,
        };
        debug_assert_eq!(limiter.as_ref().map_or(align.limiter, |l| l.lag()), align.limiter);
        let m_lim = align.limiter.blocks;
        let m_total = align.total() as u64;

        // Stem lanes, flattened (stem, channel) so rayon spreads them over cores.
        let mut stem_lanes: Vec<Vec<Lane>> = plan
            .stems
            .iter()
            .map(|s| {
                let pre = align.stems.pre_delay(s.latency(plan.sample_rate));
                (0..s.channels).map(|c| Lane::new(s.fir.as_ref().map(|f| (f, c)), pre, b)).collect()
            })
            .collect();
        // Each stem's process chain, after its EQ (design/mastering.md).
        let mut chains: Vec<Vec<Box<dyn Stage>>> = plan
            .stems
            .iter()
            .map(|s| s.process.iter().map(|p| cpu::stage(p, s.channels, b, plan.sample_rate)).collect())
            .collect();
        // Per stem, per stage: the plan index of a compressor's key stem (ducking).
        let keys: Vec<Vec<Option<usize>>> = plan
            .stems
            .iter()
            .map(|s| {
                s.process
                    .iter()
                    .map(|p| match p {
                        Process::Compressor(c) => {
                            c.key.as_deref().and_then(|k| plan.stems.iter().position(|o| o.name == k))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let levels = chain_levels(&plan.stems).ok_or_else(|| Error::Internal("compressor keys make a cycle".into()))?;
        let mut taken: Vec<(usize, Chain, Block)> = Vec::with_capacity(n_stems);
        // Bus EQ lanes: one per bus channel, per stem contribution too when stems are delivered.
        let bus_signals = if pass.stems { n_stems } else { 1 };
        let mut bus_lanes: Vec<Vec<Lane>> = (0..bus_signals)
            .map(|_| {
                // The pre-delay aligns the whole bus path: its EQ and its process chain.
                let pre = align.bus.pre_delay(plan.bus_latency());
                (0..bus_ch).map(|c| Lane::new(plan.bus_fir.as_ref().map(|f| (f, c)), pre, b)).collect()
            })
            .collect();
        // The bus's process chain, shared out among the stem contributions when they are delivered.
        let mut bus_chain =
            BusChain::new(&plan.bus_process, bus_ch, if pass.stems { n_stems } else { 0 }, b, plan.sample_rate);
        let gain = 10f64.powf(pass.gain_db / 20.0) as f32;
        let mut inputs: Vec<Vec<Vec<f32>>> = plan.stems.iter().map(|s| zeroed(s.channels, b)).collect();
        let mut contrib: Vec<Vec<Vec<f32>>> = (0..bus_signals).map(|_| zeroed(bus_ch, b)).collect();
        let mut bus = zeroed(bus_ch, b);
        let mut gains = vec![1.0f32; b];
        // Buffers for the blocks waiting for their limiter gain.
        let mut spare: Vec<Waiting> = (0..=m_lim)
            .map(|_| Waiting {
                bus: zeroed(bus_ch, b),
                stems: (0..if pass.stems { n_stems } else { 0 }).map(|_| zeroed(bus_ch, b)).collect(),
            })
            .collect();

        let total_blocks = plan.blocks();
        let stems_at = stem_stages_at(plan);
        let mut stem_figures = StemFigures::new();
        let bus_at = bus_stages_at(plan);
        let mut bus_figures = None;
        let mut source_done = false;
        let mut t: u64 = 0;
        loop {
            if self.snap_at.contains(&t) {
                self.snaps.push((t, chains_state(&chains, &bus_chain)));
            }
            // 1. Input (zeros once the source is exhausted).
            if !source_done && source.next_block(&mut inputs)? == 0 {
                source_done = true;
            }
            if source_done {
                inputs.iter_mut().flatten().for_each(|c| c.fill(0.0));
            }
            contrib.iter_mut().flatten().for_each(|c| c.fill(0.0));
            // 2. Stem EQ, every (stem, channel) in parallel, each rounded to f32 as it leaves its
            // FIR. The stems are summed in the time domain whatever the pass delivers, so that a
            // render from the stem cache, which holds each stem's f32 signal, gives an uncached
            // render's bits (design/proof.md). A bus summed in the frequency domain (one inverse
            // FFT per bus channel instead of one per stem channel) was a little faster on
            // master-only renders but rounded otherwise (BENCHMARKS.md, "The time-domain sum").
            stem_lanes
                .par_iter_mut()
                .zip(inputs.par_iter_mut())
                .flat_map(|(lanes, chans)| lanes.par_iter_mut().zip(chans.par_iter_mut()))
                .for_each(|(lane, sig)| lane.process(sig));
            // 2b. Each stem's process chain, level by level of the key graph (`chain_levels`), the
            // stems of one level in parallel. A keyed compressor (ducking) reads its key stem's
            // block of this same index after that stem's EQ and whole chain (an earlier level).
            // Alignment: each stem's path (EQ and chain, latency l) is pre-delayed by M·B − l
            // (`Alignment::stems`, M shared), so frame i of block t leaving any stem's chain is
            // program frame (t − M)·B + i, whatever the key stem's own latency; the input of a
            // stage is r frames ahead of that, r the latency of the stage and of every later one
            // in its chain. So a keyed compressor's input and its key's block t hold the same
            // program frames exactly when r = 0, which is what the plan admits (`pipeline::plan`
            // refuses a look-ahead on a keyed compressor or latency after it): key and keyed stem
            // see frames of the same program index.
            for level in &levels {
                // The level's stems (chain and block) are taken out of `chains` and `inputs` so
                // that they run in parallel while their keys' blocks are read in place.
                taken.extend(
                    level
                        .iter()
                        .filter(|&&i| !keys[i].is_empty())
                        .map(|&i| (i, std::mem::take(&mut chains[i]), std::mem::take(&mut inputs[i]))),
                );
                let done = &inputs;
                taken.par_iter_mut().for_each(|(i, chain, sig)| {
                    for (stage, key) in chain.iter_mut().zip(&keys[*i]) {
                        match key {
                            Some(k) => stage.process_keyed(sig, &done[*k]),
                            None => stage.process(sig),
                        }
                    }
                });
                for (i, chain, sig) in taken.drain(..) {
                    chains[i] = chain;
                    inputs[i] = sig;
                }
            }
            let figures = |n: u64| -> StemFigures {
                chains.iter().map(|c| c.iter().map(|s| s.reduction(n * b as u64)).collect()).collect()
            };
            if t + 1 == stems_at {
                stem_figures = figures(stems_at);
            }
            for snap in self.stage_snap_at.iter().filter(|s| s.at == t) {
                self.stage_snaps.push((snap.as_iterations, figures(snap.as_iterations)));
            }
            // 3. Gain, routing, sum (per stem contribution when stems are delivered).
            for (i, s) in plan.stems.iter().enumerate() {
                let target = if pass.stems { &mut contrib[i] } else { &mut contrib[0] };
                gain_sum(&s.routes, &inputs[i], target, b);
            }
            // 4. Bus EQ on each contribution, then G; with a bus chain, G comes after it (4b).
            let chained = !bus_chain.is_empty();
            bus_lanes
                .par_iter_mut()
                .zip(contrib.par_iter_mut())
                .flat_map(|(lanes, chans)| lanes.par_iter_mut().zip(chans.par_iter_mut()))
                .for_each(|(lane, sig)| {
                    lane.process(sig);
                    if gain != 1.0 && !chained {
                        sig.iter_mut().for_each(|v| *v *= gain);
                    }
                });
            // 4b. The bus: the contributions' sum in stem order (which carry G unless there is a
            // bus chain). A bus chain runs on it, the stem contributions following it
            // (`BusChain::process`), and G comes after it, on every signal.
            if pass.stems {
                bus.iter_mut().for_each(|c| c.fill(0.0));
                for c in &contrib {
                    for (dst, src) in bus.iter_mut().zip(c) {
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += *s);
                    }
                }
                if chained {
                    bus_chain.process(&mut bus, &mut contrib);
                    scale(bus.iter_mut().chain(contrib.iter_mut().flatten()), gain);
                }
            } else {
                if chained {
                    bus_chain.process(&mut contrib[0], &mut []);
                    scale(contrib[0].iter_mut(), gain);
                }
                for (dst, src) in bus.iter_mut().zip(&contrib[0]) {
                    dst.copy_from_slice(src);
                }
            }

            if t + 1 == bus_at {
                let frames = bus_at * b as u64;
                bus_figures = Some((0..plan.bus_process.len()).map(|j| bus_chain.reduction(j, frames)).collect());
            }
            // The program is x[n] for n in [0, N) and zero elsewhere (DESIGN.md DSP 6: a[k] = 0 for
            // k < 0): the EQs' pre-ringing before frame 0 and ring-out past N are not program.
            let aligned = t as i64 - align.before_limiter() as i64;
            let valid = (plan.frames as i64 - aligned * b as i64).clamp(0, b as i64) as usize;
            if aligned < 0 || valid < b {
                let from = if aligned < 0 { 0 } else { valid };
                bus.iter_mut().chain(contrib.iter_mut().flatten()).for_each(|c| c[from..].fill(0.0));
            }

            // 5. Limiter: gain for the block m_lim blocks back. The block joins the FIFO by swapping
            // buffers with a spare, not by copying: `bus` and `contrib` are rewritten every block.
            let out_gain = if let Some(lim) = &mut limiter {
                let mut entry = spare.pop().expect("fifo spare");
                std::mem::swap(&mut entry.bus, &mut bus);
                if pass.stems {
                    std::mem::swap(&mut entry.stems, &mut contrib);
                }
                lim.push(entry).map(|(mut out, g)| {
                    out.bus
                        .par_iter_mut()
                        .chain(out.stems.par_iter_mut().flatten())
                        .for_each(|c| limiter_apply::apply(c, g));
                    gains.copy_from_slice(g);
                    out
                })
            } else {
                None
            };

            // 6. Deliver aligned block k = t - m_total.
            if t >= m_total {
                let k = t - m_total;
                let len = (plan.frames - k * b as u64).min(b as u64) as usize;
                match out_gain {
                    Some(out) => {
                        sink.block(PassBlock {
                            index: k,
                            len,
                            master: &out.bus,
                            stems: &out.stems,
                            gain: Some(&gains),
                            gain_stats: None,
                            packed: &[],
                            over_full_scale: &[],
                            meter: None,
                        })?;
                        spare.push(out);
                    }
                    None => {
                        let stems: &[Vec<Vec<f32>>] = if pass.stems { &contrib } else { &[] };
                        sink.block(PassBlock {
                            index: k,
                            len,
                            master: &bus,
                            stems,
                            gain: None,
                            gain_stats: None,
                            packed: &[],
                            over_full_scale: &[],
                            meter: None,
                        })?;
                    }
                }
                if k + 1 == total_blocks {
                    if has_stages(plan) {
                        let bus: &Vec<_> = bus_figures.as_ref().ok_or_else(|| {
                            Error::Internal(format!("the bus stages' figures were not taken after {bus_at} blocks"))
                        })?;
                        self.activity = stage_activity(plan, &stem_figures, stems_at, |j| bus[j])?;
                    }
                    if self.snap_at.contains(&(t + 1)) {
                        self.snaps.push((t + 1, chains_state(&chains, &bus_chain)));
                    }
                    break;
                }
            } else if let Some(out) = out_gain {
                spare.push(out);
            }
            t += 1;
        }
        Ok(())
    }
}
