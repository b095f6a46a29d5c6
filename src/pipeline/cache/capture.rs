//! The capture pass: the stems a render needs and the cache lacks, run through their EQ and
//! process chains on the render's engine, each stream written to its entry as it leaves the chain.
//!
//! Any engine can run it through the ordinary pass interface: the capture plan keeps each stem's
//! FIR and chain, routes its channels one to one at weight 1 (exact in f32: 0 + 1·x = x) onto an
//! otherwise empty bus (no bus EQ, no bus chain, no limiter), and delivers the stems. Two things
//! make the delivered blocks the very blocks the render's stems leave their chains with:
//! - the lag: the stems' pre-delay `lag · B − latency` is the render's, forced where the captured
//!   stems alone would align to a smaller lag by a silent stand-in of latency `lag · B`
//!   (`StemPlan::replayed_latency`, no routes), so each lane and chain is built exactly as in the
//!   render (the CPU engine folds a short pre-delay into the FIR's taps: same taps, same bits);
//! - the pre-roll: a pass delivers block k at iteration k + lag, but the render's bus EQ and bus
//!   chain also see the stems' first `lag` blocks (the EQs' pre-ringing before frame 0). The
//!   source therefore puts `lag` blocks of silence before the stems, so that delivered block k is
//!   the render's iteration k. Every stage at rest stays at rest on silence (a FIR's partitions
//!   of zeros; a compressor's gain computer reads −180 dB, below its knee, target gain 0 dB;
//!   the transient shaper's followers stay at 0; width and saturation are filters and tanh(0) = 0),
//!   so the extra silence changes no bit of what follows. A compressor whose knee reaches
//!   −180 dB would not rest: `super::prepare` refuses it (exit 2), to be rendered without --cache.
use crate::engine::{Delivery, Engine, PassBlock, PassParams, PassSink, RenderPlan, StemPlan, StemSource};
use crate::error::Result;
use crate::pipeline::proof::{StemMeasures, StemProbe};
use crate::pipeline::source::FileStemSource;
use crate::session::Session;

use super::entry::EntryWriter;

/// The render's stems at plan indices `group` (those to store and the key stems their compressors
/// read) through `engine`, `blocks` blocks of each stream from the render's first iteration;
/// `writers[j]` takes `group[j]`'s stream (None: a key stem computed only to be read). With a
/// `probe` (of the group's stems, as read), also the proof page's measures of them.
#[allow(clippy::too_many_arguments)]
pub fn capture(
    engine: &mut dyn Engine,
    session: &Session,
    plan: &RenderPlan,
    lag_blocks: usize,
    group: &[usize],
    writers: &mut [Option<EntryWriter>],
    blocks: u64,
    probe: Option<StemProbe>,
) -> Result<Option<StemMeasures>> {
    let b = plan.block;
    let mut stems: Vec<StemPlan> = group
        .iter()
        .map(|&i| {
            let s = &plan.stems[i];
            StemPlan { routes: (0..s.channels).map(|c| (c, c, 1.0)).collect(), ..s.clone() }
        })
        .collect();
    let own_lag = stems.iter().map(|s| s.latency(plan.sample_rate).div_ceil(b)).max().unwrap_or(0);
    if own_lag < lag_blocks {
        stems.push(StemPlan {
            index: usize::MAX,
            name: "\u{0}lag".into(),
            channels: 1,
            fir: None,
            process: Vec::new(),
            routes: Vec::new(),
            replayed_latency: Some(lag_blocks * b),
            replayed_stages: None,
        });
    }
    let capture_plan = RenderPlan {
        frames: blocks * b as u64,
        stems,
        bus_fir: None,
        bus_process: Vec::new(),
        limiter: None,
        ..plan.clone()
    };
    let readers =
        group.iter().map(|&i| crate::io::open(&session.stems[plan.stems[i].index].path)).collect::<Result<Vec<_>>>()?;
    let inner = match probe {
        Some(p) => FileStemSource::start_probed(readers, b, plan.frames, false, p),
        None => FileStemSource::start(readers, b, plan.frames, false),
    };
    let mut source = Preroll { inner, silent: lag_blocks as u64, done: 0, real: group.len() };
    let mut sink = CaptureSink { writers };
    let params = PassParams { gain_db: 0.0, limit: false, stems: true };
    engine.run_pass(&capture_plan, &params, &mut source, &mut sink)?;
    source.inner.measures()
}

/// The stems after `silent` blocks of silence; a stand-in stem past the first `real` gets silence.
struct Preroll {
    inner: FileStemSource,
    silent: u64,
    done: u64,
    real: usize,
}

impl StemSource for Preroll {
    fn next_block(&mut self, out: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        out[self.real..].iter_mut().flatten().for_each(|c| c.fill(0.0));
        if self.done < self.silent {
            self.done += 1;
            out.iter_mut().flatten().for_each(|c| c.fill(0.0));
            return Ok(out[0][0].len());
        }
        self.inner.next_block(&mut out[..self.real])
    }
}

struct CaptureSink<'w> {
    writers: &'w mut [Option<EntryWriter>],
}

impl PassSink for CaptureSink<'_> {
    fn delivery(&self) -> Delivery {
        Delivery { packed: Vec::new(), master: false, stems: true, device_meter: false, gain: false }
    }

    fn block(&mut self, block: PassBlock<'_>) -> Result<()> {
        for (w, stem) in self.writers.iter_mut().zip(block.stems) {
            if let Some(w) = w {
                w.write_block(stem);
            }
        }
        Ok(())
    }
}
