//! One writing pass: the analysis pass spills its bus to an anonymous temporary file, G is solved on
//! that spill (gain, the CPU limiter as the engines run it, the integrated meter, and the reference
//! meter's true peak, from which the limiter's aim is solved with G: `passes::Aim`), and only then
//! are the outputs written, once. An engine that replays the spill (the CPU engine,
//! `Engine::replays_spill`) also spills what the writing pass would otherwise recompute: the bus
//! itself for a master-only render, each stem's linked contribution (after every FIR) when stems
//! are delivered. Its writing pass then reads them back (`SpillSource`) through a plan without
//! FIRs (`plan::replay_plan`), so every FIR runs once per render.
//!
//! Why this is the same function as a limiter pass (DESIGN.md DSP 6): the limiter gain is linked
//! and depends only on the bus x = 10^(G/20)·bus, and the analysis pass's master *is* that bus
//! before G (stem EQ, gain, routing, sum, bus EQ; zero outside [0, N)). `solve_gain` multiplies it
//! by G in f32 as the engines do and runs the limiter on the engines' block grid with their
//! alignment scheme (pre-delay M·B − latency, a FIFO of M blocks, M zero blocks at the end), so a
//! master-only render on the CPU engine limits to the very same samples as the solve (the readings
//! differ by ~1e-14 LU only because the solve meters integrated loudness alone, whose shorter
//! ring of energies sums them in another order; with every mode on, they are equal). Renders that
//! differ (linked stem outputs sum G·contributions after a folded FIR; the GPU's f32-fallback
//! limiter) differ by rounding; the writing pass's own meter confirms, and `target::reach_target`
//! brackets writing passes when it misses.
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use super::normalise::DialogueGate;
use super::spill::{Spill, SpillSource};
use crate::cpu::limiter::LimiterFifo;
use crate::cpu::limiter_apply;
use crate::dsp::resample::Resampler;
use crate::engine::{LimiterPlan, StemSource};
use crate::error::{Error, Result};
use crate::meter::{LoudnessMeter, MeterScope, TruePeakMeter};
use crate::model::Layout;

/// Blocks read from the spill ahead of the limiter, and limited blocks queued for the meter.
const AHEAD: usize = 3;

/// What the chain would deliver at one G and one aim (`LimiterPlan::ceiling_db`).
#[derive(Debug, Clone, Copy)]
pub struct Solved {
    /// Integrated loudness of the limited bus, LUFS; its dialogue-gated loudness when the solve
    /// gates on dialogue (`pipeline::normalise`).
    pub lufs: f64,
    /// Its true peak by the reference meter, dBTP, the highest of the bus at its own rate and of
    /// it resampled to every rate a master is delivered at: the limiter's aim is solved from it.
    pub true_peak_dbtp: f64,
    /// Whether the limiter took anything off (if not, its aim does not shape the peak).
    pub limited: bool,
}

/// What the chain would deliver at `gain_db`: the integrated loudness and true peak of the limited
/// bus. Three threads: the spill is read ahead on one, the limiter runs on the caller's (a surround
/// bus's oversampler channels in parallel), the meters on a third (loudness beside the per-channel
/// true peaks). `progress` gets the frames metered. `delivered_rates`: the other rates masters are
/// delivered at; the limited bus is resampled to each (`dsp::resample`, as the writing sink does)
/// and its true peak metered there too, since resampling after the limiter can pass the ceiling.
/// `dialogue`: read the limited bus's loudness gated on the dialogue instead.
#[allow(clippy::too_many_arguments)]
pub fn solve_gain(
    spill: &Spill,
    limiter: &LimiterPlan,
    layout: Layout,
    sample_rate: u32,
    delivered_rates: &[u32],
    gain_db: f64,
    dialogue: Option<&DialogueGate>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Solved> {
    let (ch, b) = (spill.channels, spill.block);
    let total = spill.blocks();
    let mut meter = LoudnessMeter::with_scope(ch, sample_rate, Some(layout), MeterScope::Integrated)?;
    if dialogue.is_some() {
        meter.keep_blocks()?;
    }
    let mut peaks = TruePeakMeter::new(ch, sample_rate)?;
    let mut resampled = delivered_rates
        .iter()
        .map(|&r| Ok((Resampler::new(ch, sample_rate, r), TruePeakMeter::new(ch, r)?, r, vec![Vec::new(); ch])))
        .collect::<Result<Vec<_>>>()?;
    let mut source = SpillSource::new(spill)?;

    let (read_tx, read_rx) = sync_channel::<Result<Vec<Vec<f32>>>>(AHEAD);
    let (read_back, read_free) = sync_channel::<Vec<Vec<f32>>>(AHEAD + 2);
    let (meter_tx, meter_rx) = sync_channel::<(usize, Vec<Vec<f32>>)>(AHEAD);
    let (meter_back, meter_free) = sync_channel::<Vec<Vec<f32>>>(AHEAD + 2);

    std::thread::scope(|scope| {
        scope.spawn(move || {
            for _ in 0..total {
                let mut x = read_free.try_recv().unwrap_or_else(|_| vec![vec![0.0f32; b]; ch]);
                // Zero-padded past the program: there the engines' bus is zero (DESIGN.md DSP 6:
                // a[k] = 0 outside).
                let read = source.next_block(std::slice::from_mut(&mut x));
                let failed = read.is_err();
                if read_tx.send(read.map(|_| x)).is_err() || failed {
                    return;
                }
            }
        });
        let metering = scope.spawn(move || {
            let mut done = 0u64;
            for (len, y) in meter_rx {
                let planes: Vec<&[f32]> = y.iter().map(|c| &c[..len]).collect();
                rayon::join(
                    || meter.add_planar(&planes),
                    || {
                        peaks.add_planar(&planes);
                        for (r, p, _, out) in resampled.iter_mut() {
                            let n = r.push(&planes, len, out);
                            p.add_planar(&out.iter().map(|c| &c[..n]).collect::<Vec<_>>());
                        }
                    },
                );
                done += len as u64;
                progress(done);
                let _ = meter_back.try_send(y);
            }
            let mut true_peak = peaks.true_peak_dbtp();
            for (r, p, rate, out) in resampled.iter_mut() {
                let n = r.finish(sample_rate, *rate, out);
                p.add_planar(&out.iter().map(|c| &c[..n]).collect::<Vec<_>>());
                true_peak = true_peak.max(p.true_peak_dbtp());
            }
            let lufs = match (dialogue, meter.block_energies()) {
                (Some(gate), Some(blocks)) => {
                    gate.read(blocks, gain_db).dialogue_gated_lufs.unwrap_or(f64::NEG_INFINITY)
                }
                _ => meter.result().integrated_lufs,
            };
            (lufs, true_peak)
        });

        let limited = limit_blocks(limiter, ch, b, total, gain_db, read_rx, read_back, |k, y| {
            let len = spill.len_of(k);
            meter_tx.send((len, y)).map_err(|_| Error::Internal("solve meter thread stopped".into()))?;
            Ok(meter_free.try_recv().unwrap_or_else(|_| vec![vec![0.0f32; b]; ch]))
        });
        drop(meter_tx);
        let (lufs, true_peak_dbtp) =
            metering.join().map_err(|_| Error::Internal("solve meter thread panicked".into()))?;
        limited.map(|limited| Solved { lufs, true_peak_dbtp, limited })
    })
}

/// The engines' limiter step (CpuEngine::run_pass, step 5) on bus blocks 0..total: each block
/// times the f32 gain, through the same `LimiterFifo`, with its lag's zero blocks to flush.
/// `deliver(k, y)` gets aligned block k and hands back a free buffer. Returns whether any gain
/// was under 1 (the limiter took something off).
#[allow(clippy::too_many_arguments)]
fn limit_blocks(
    plan: &LimiterPlan,
    ch: usize,
    b: usize,
    total: u64,
    gain_db: f64,
    input: Receiver<Result<Vec<Vec<f32>>>>,
    recycle: SyncSender<Vec<Vec<f32>>>,
    mut deliver: impl FnMut(u64, Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>>,
) -> Result<bool> {
    let mut limited = false;
    let mut lim = LimiterFifo::<Vec<Vec<f32>>>::new(plan, ch, b);
    let m_lim = lim.lag().blocks;
    // The same f32 factor the engines multiply the bus by.
    let gain = 10f64.powf(gain_db / 20.0) as f32;
    let mut spare: Vec<Vec<Vec<f32>>> = Vec::new();
    for t in 0..total + m_lim as u64 {
        let x = if t < total {
            let mut x = input.recv().map_err(|_| Error::Internal("solve reader thread stopped".into()))??;
            if gain != 1.0 {
                x.iter_mut().flatten().for_each(|v| *v *= gain);
            }
            x
        } else {
            let mut z = spare.pop().unwrap_or_else(|| vec![vec![0.0f32; b]; ch]);
            z.iter_mut().for_each(|c| c.fill(0.0));
            z
        };
        if let Some((mut y, gains)) = lim.push(x) {
            limited |= gains.iter().any(|g| *g < 1.0);
            y.iter_mut().for_each(|c| limiter_apply::apply(c, gains));
            let free = deliver(t - m_lim as u64, y)?;
            if let Err(TrySendError::Full(free) | TrySendError::Disconnected(free)) = recycle.try_send(free) {
                // The reader has buffers enough; keep this one for the flush's zero blocks.
                if spare.len() <= m_lim {
                    spare.push(free);
                }
            }
        }
    }
    Ok(limited)
}
