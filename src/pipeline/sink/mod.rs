//! Where a pass's aligned blocks go: the loudness meter, the output writers, the progress
//! display, and a thread that runs them beside the engine.
mod threaded;
mod writers;

pub use threaded::{ProgressSink, ThreadedSink};
use writers::StemsVariant;
pub use writers::{SealedOutputs, VariantPass, VariantWriters, Writers};

use rayon::prelude::*;

use crate::cpu::limiter_apply::gain_stats;
use crate::cpu::pcm_unpack;
use crate::dsp::resample::Resampler;
use crate::engine::{Delivery, GainStats, PackRequest, PassBlock, PassSink, Signal};
use crate::error::{Error, Result};
use crate::io::wav_writer::WavWriter;
use crate::meter::{EnergyMeter, LoudnessMeter, LoudnessStats};
use crate::model::SampleFormat;
use crate::model::SourceEncoding;
use crate::report::render::{GainReduction, StemResidual};

/// Meters the master; writes it and the stems when writers are given.
pub struct OutputSink {
    meter: LoudnessMeter,
    /// The engine meters the master on its device (`device_meter`): blocks come with
    /// `PassBlock::meter`, gated here by this twin of `meter`.
    device_meter: bool,
    energy: Option<EnergyMeter>,
    masters: Vec<WavWriter>,
    /// `stems[output][file]`, and the stem (plan order) each file carries: `stem_of[output][file]`.
    stems: Vec<Vec<WavWriter>>,
    stem_of: Vec<Vec<usize>>,
    max_reduction_db: f64,
    sum_reduction_db: f64,
    frames: u64,
    /// The integer writers, as packing requests (`Delivery::packed`), and for each writer the
    /// index of its request: `master_packed[i]`, `stem_packed[output][stem]`.
    requests: Vec<PackRequest>,
    master_packed: Vec<Option<usize>>,
    stem_packed: Vec<Vec<Option<usize>>>,
    /// The request the meter reads, unpacked, when the f32 master is not delivered: the deepest
    /// integer master output; used only when `limited` (see `limited_master`).
    meter_request: Option<usize>,
    limited: bool,
    /// The unpacked master for the meter, `[channel][frame]`.
    unpacked: Vec<Vec<f32>>,
    /// Measured when the stems are not meant to sum to the master exactly (a residual bus stage,
    /// design/mastering.md): the stem sum against the master.
    residual: Option<Residual>,
    /// The stems' rate, and per writer its resampler when it delivers at another rate
    /// (`master_rates[i]`, `stem_rates[output][stem]`), run here on the host for both engines.
    session_rate: u32,
    master_rates: Vec<Option<RateConverter>>,
    stem_rates: Vec<Vec<Option<RateConverter>>>,
    /// The programme's frames: when they are all in, the resamplers flush their tails.
    programme_frames: Option<u64>,
    /// The `mode = "stems"` variants this pass makes from its stems.
    variants: Vec<StemsVariant>,
    /// For the proof page (design/proof.md): the limiter's largest gain reduction in each 100 ms
    /// step, gathered from the per-frame gain as the blocks stream.
    reduction_steps: Option<ReductionSteps>,
    /// Keep the master's 400 ms block energies (`keep_blocks`), for dialogue gating.
    keep_blocks: bool,
    /// The dialogue stems' sum, metered for dialogue gating (`dialogue_tap`).
    dialogue: Option<DialogueTap>,
}

/// The dialogue stems' contribution to the bus, summed and metered block by block (its 400 ms
/// block energies line up with the master's: both meters start at program frame 0).
struct DialogueTap {
    /// Plan-order indices of the dialogue stems.
    stems: Vec<usize>,
    meter: LoudnessMeter,
    sum: Vec<Vec<f32>>,
}

impl DialogueTap {
    fn block(&mut self, stems: &[Vec<Vec<f32>>], n: usize) -> Result<()> {
        if stems.is_empty() {
            return Err(Error::Internal("dialogue gating without the pass's stems".into()));
        }
        self.sum.resize_with(stems[0].len(), Vec::new);
        for (c, out) in self.sum.iter_mut().enumerate() {
            out.clear();
            out.resize(n, 0.0);
            for &i in &self.stems {
                out.iter_mut().zip(&stems[i][c][..n]).for_each(|(o, &x)| *o += x);
            }
        }
        self.meter.add_planar(&self.sum.iter().map(|c| &c[..n]).collect::<Vec<_>>());
        Ok(())
    }
}

/// The largest limiter gain reduction (dB) of each 100 ms step of the master.
#[derive(Debug, Default)]
struct ReductionSteps {
    step: usize,
    done: Vec<f32>,
    open: f64,
    in_step: usize,
}

impl ReductionSteps {
    fn add(&mut self, gain: &[f32]) {
        for &g in gain {
            // -20·log10 of the gain, as the report's maximum (`GainStats::least`) is taken.
            self.open = self.open.max(-20.0 * (g as f64).log10());
            self.in_step += 1;
            if self.in_step == self.step {
                self.done.push(std::mem::take(&mut self.open) as f32);
                self.in_step = 0;
            }
        }
    }
}

/// The master's curves a writing pass gathered for the proof page, one value per 100 ms step.
#[derive(Debug, Clone, Default)]
pub struct MasterCurves {
    /// Frames per step.
    pub step: usize,
    pub loudness: crate::meter::StepCurves,
    /// Largest limiter gain reduction per step, dB (empty without a limiter).
    pub gain_reduction: Vec<f32>,
}

/// An output delivered at another rate than the stems': its resampler and, for a master, the meter
/// of the file as delivered (after resampling, dither and quantisation).
struct RateConverter {
    resampler: Resampler,
    rate: u32,
    out: Vec<Vec<f32>>,
    delivered: Vec<Vec<f32>>,
    meter: Option<LoudnessMeter>,
}

impl RateConverter {
    /// Resample `planes[..n]` (or, with `tail`, flush the end) and write what comes out.
    fn write(&mut self, w: &mut WavWriter, planes: Option<&[&[f32]]>, n: usize, from: u32) -> Result<()> {
        let frames = match planes {
            Some(p) => self.resampler.push(p, n, &mut self.out),
            None => self.resampler.finish(from, self.rate, &mut self.out),
        };
        let views: Vec<&[f32]> = self.out.iter().map(|c| &c[..frames]).collect();
        match &mut self.meter {
            Some(meter) => {
                w.write_planar_delivered(&views, frames, &mut self.delivered)?;
                let d: Vec<&[f32]> = self.delivered.iter().map(|c| &c[..frames]).collect();
                meter.add_planar(&d);
                Ok(())
            }
            None => w.write_planar(&views, frames),
        }
    }
}

/// The stem outputs' sum against the master, sample by sample over every channel.
#[derive(Debug, Default, Clone, Copy)]
struct Residual {
    peak: f64,
    sum_sq: f64,
    samples: u64,
}

/// The packing request of a writer, if its format is an integer one and it delivers at the stems'
/// rate (a resampled output is quantised here, after its resampler).
fn request(w: &WavWriter, signal: Signal, session_rate: u32) -> Option<PackRequest> {
    let spec = w.spec();
    (spec.sample_rate == session_rate).then_some(()).and(spec.format.int_bits()).map(|_| PackRequest {
        signal,
        format: spec.format,
        dither_seed: spec.dither_seed,
    })
}

/// A writer's resampler, when it delivers at another rate than `session_rate`; with a meter of
/// the delivered file for a master (`metered`).
fn converter(w: &WavWriter, session_rate: u32, metered: bool) -> Result<Option<RateConverter>> {
    let spec = w.spec();
    if spec.sample_rate == session_rate {
        return Ok(None);
    }
    let meter = match metered {
        true => Some(LoudnessMeter::new(spec.channels, spec.sample_rate, spec.layout)?),
        false => None,
    };
    Ok(Some(RateConverter {
        resampler: Resampler::new(spec.channels, session_rate, spec.sample_rate),
        rate: spec.sample_rate,
        out: vec![Vec::new(); spec.channels],
        delivered: vec![Vec::new(); spec.channels],
        meter,
    }))
}

/// What a pass measured, with its writers still open (files under temporary names).
pub struct PassResult {
    pub loudness: LoudnessStats,
    /// Which meter read `loudness`: "device" (the engine's readings, `EnergyMeter`) or "cpu".
    pub meter: &'static str,
    pub reduction: GainReduction,
    /// When asked for (`stem_residual`): the stems' sum against the master.
    pub residual: Option<StemResidual>,
    /// Per master writer delivered at another rate than the stems': the loudness and true peak of
    /// the file as delivered, at its own rate and bit depth (None for one at the stems' rate).
    pub delivered: Vec<Option<LoudnessStats>>,
    /// When asked for (`OutputSink::proof_curves`): the master's curves for the proof page.
    pub curves: Option<MasterCurves>,
    /// When asked for (`OutputSink::keep_blocks`): the master's every 400 ms block energy.
    pub blocks: Option<Vec<f64>>,
    /// When asked for (`OutputSink::dialogue_tap`): the dialogue stems' 400 ms block energies.
    pub dialogue: Option<Vec<f64>>,
    pub writers: Writers,
    /// The `mode = "stems"` variants made in this pass.
    pub variants: Vec<VariantPass>,
}

impl PassResult {
    /// The highest true peak of the masters as delivered: the pass's master, and every resampled
    /// master file (dBTP).
    pub fn delivered_true_peak_dbtp(&self) -> f64 {
        self.delivered.iter().flatten().map(|l| l.true_peak_dbtp).fold(self.loudness.true_peak_dbtp, f64::max)
    }
}

impl OutputSink {
    pub fn new(meter: LoudnessMeter, writers: Writers) -> Result<Self> {
        let session_rate = meter.sample_rate();
        // One request per distinct (signal, format, dither): the files of a split output, and
        // outputs of one kind and format (which share a dither seed), take the same packed block.
        let mut requests: Vec<PackRequest> = Vec::new();
        let variants = writers
            .variants
            .into_iter()
            .map(|v| StemsVariant {
                variant: v.variant,
                keep: v.keep,
                writers: v.writers,
                meter: v.meter,
                sum: Vec::new(),
            })
            .collect();
        let mut index = |r: Option<PackRequest>| {
            r.map(|r| match requests.iter().position(|q| *q == r) {
                Some(i) => i,
                None => {
                    requests.push(r);
                    requests.len() - 1
                }
            })
        };
        let master_packed: Vec<Option<usize>> =
            writers.masters.iter().map(|w| index(request(w, Signal::Master, session_rate))).collect();
        let stem_packed: Vec<Vec<Option<usize>>> = writers
            .stems
            .iter()
            .zip(&writers.stem_of)
            .map(|(ws, of)| ws.iter().zip(of).map(|(w, &i)| index(request(w, Signal::Stem(i), session_rate))).collect())
            .collect();
        let master_rates =
            writers.masters.iter().map(|w| converter(w, session_rate, true)).collect::<Result<Vec<_>>>()?;
        let stem_rates = writers
            .stems
            .iter()
            .map(|ws| ws.iter().map(|w| converter(w, session_rate, false)).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let meter_request = master_packed
            .iter()
            .flatten()
            .copied()
            .max_by_key(|&r| (requests[r].format.int_bits(), std::cmp::Reverse(r)));
        Ok(OutputSink {
            session_rate,
            master_rates,
            stem_rates,
            programme_frames: None,
            device_meter: false,
            energy: None,
            meter,
            masters: writers.masters,
            stems: writers.stems,
            stem_of: writers.stem_of,
            max_reduction_db: 0.0,
            sum_reduction_db: 0.0,
            frames: 0,
            requests,
            master_packed,
            stem_packed,
            meter_request,
            limited: false,
            unpacked: Vec::new(),
            residual: None,
            variants,
            reduction_steps: None,
            keep_blocks: false,
            dialogue: None,
        })
    }

    /// Keep the master's 400 ms block energies (`PassResult::blocks`), for dialogue gating.
    pub fn keep_blocks(mut self, on: bool) -> Result<Self> {
        if on {
            self.meter.keep_blocks()?;
            self.keep_blocks = true;
        }
        Ok(self)
    }

    /// Sum the stems `stems` (plan order: the dialogue stems) of every block and meter them
    /// (`PassResult::dialogue`); the engine then delivers the f32 stems.
    pub fn dialogue_tap(mut self, stems: Option<Vec<usize>>, layout: crate::model::Layout) -> Result<Self> {
        if let Some(stems) = stems {
            let m = &self.meter;
            let mut meter = LoudnessMeter::with_scope(
                m.channels(),
                m.sample_rate(),
                Some(layout),
                crate::meter::MeterScope::Integrated,
            )?;
            meter.keep_blocks()?;
            self.dialogue = Some(DialogueTap { stems, meter, sum: Vec::new() });
        }
        Ok(self)
    }

    /// The programme's length in frames: once that many are in, resampled outputs get their
    /// tails (`Resampler::finish`). Needed when any output is resampled.
    pub fn programme_frames(mut self, frames: u64) -> Self {
        self.programme_frames = Some(frames);
        self
    }

    /// Gather the proof page's curves (`PassResult::curves`): the meter's momentary, short-term
    /// and true peak per 100 ms step and the limiter's gain reduction per step. The master is
    /// then metered on the host (never `device_meter`), from the samples the engine reads back,
    /// and the gain comes per frame (`Delivery::gain`), so both engines supply the same curves.
    pub fn proof_curves(mut self, on: bool) -> Self {
        if on {
            self.meter.record_curves();
            self.reduction_steps = Some(ReductionSteps { step: self.meter.step_frames(), ..Default::default() });
            self.device_meter = false;
        }
        self
    }

    /// Whether the pass limits the master (to a ceiling of at most 0 dBTP, so its integer PCM is
    /// never clamped). Then an engine that packs on its device need not send the f32 master back
    /// for the meter: the meter reads the deepest integer master output, unpacked, which differs
    /// from the f32 master by its dither and rounding only (well within DESIGN.md's 0.01 LU/dB
    /// even at 16 bits: `tests/gpu_engine.rs::loudness_from_packed_pcm_matches_the_cpu_engine`),
    /// and saves the f32 master's 4 bytes a sample on the bus. Without a limiter the master can
    /// clamp, and the meter must see the unclamped f32 master, as the CPU engine's does.
    pub fn limited_master(mut self, limited: bool) -> Self {
        self.limited = limited;
        self
    }

    /// Whether the engine meters the master on its device (`Engine::meter_on_device`): then the
    /// sink asks for its readings (`Delivery::device_meter`) and no f32 master for the meter.
    pub fn device_meter(mut self, on: bool) -> Self {
        self.device_meter = on && self.reduction_steps.is_none();
        self
    }

    /// Measure the stem outputs' sum against the master (`PassResult::residual`); the f32
    /// master and stems are then delivered.
    pub fn stem_residual(mut self, on: bool) -> Self {
        self.residual = on.then(Residual::default);
        self
    }

    /// The measurements, and the writers left open for the caller to commit or drop.
    pub fn finish(mut self) -> PassResult {
        let curves = self.reduction_steps.take().map(|r| MasterCurves {
            step: r.step,
            loudness: self.meter.take_curves(),
            gain_reduction: r.done,
        });
        let mean = if self.frames > 0 { self.sum_reduction_db / self.frames as f64 } else { 0.0 };
        let blocks = match &self.energy {
            Some(e) => e.blocks(),
            None => self.meter.block_energies(),
        };
        PassResult {
            blocks: blocks.filter(|_| self.keep_blocks).map(<[f64]>::to_vec),
            dialogue: self.dialogue.as_ref().and_then(|d| d.meter.block_energies()).map(<[f64]>::to_vec),
            meter: if self.energy.is_some() { "device" } else { "cpu" },
            loudness: match &self.energy {
                Some(e) => e.result(),
                None => self.meter.result(),
            },
            reduction: GainReduction { max_db: self.max_reduction_db, mean_db: mean },
            delivered: self
                .master_rates
                .iter()
                .map(|r| r.as_ref().and_then(|r| r.meter.as_ref()).map(|m| m.result()))
                .collect(),
            residual: self.residual.map(|r| StemResidual {
                peak_dbfs: 20.0 * r.peak.log10(),
                rms_dbfs: 10.0 * (r.sum_sq / r.samples.max(1) as f64).log10(),
            }),
            curves,
            writers: Writers { masters: self.masters, stems: self.stems, stem_of: self.stem_of, variants: Vec::new() },
            variants: self
                .variants
                .into_iter()
                .map(|v| VariantPass { variant: v.variant, loudness: v.meter.result(), writers: v.writers })
                .collect(),
        }
    }
}

impl PassSink for OutputSink {
    fn delivery(&self) -> Delivery {
        let f32_master = self.masters.iter().any(|w| w.spec().format == SampleFormat::F32);
        let meter_reads_pcm = self.limited && self.meter_request.is_some();
        // A resampled output takes the f32 signal: it is resampled, then quantised, here.
        let resampled_master = self.master_rates.iter().any(Option::is_some);
        let resampled_stem = self.stem_rates.iter().flatten().any(Option::is_some);
        Delivery {
            packed: self.requests.clone(),
            master: f32_master
                || resampled_master
                || (!self.device_meter && !meter_reads_pcm)
                || self.residual.is_some(),
            // The stems variants are summed and written here, from the f32 stems.
            stems: self.stems.iter().flatten().any(|w| w.spec().format == SampleFormat::F32)
                || resampled_stem
                || self.residual.is_some()
                || !self.variants.is_empty()
                || self.dialogue.is_some(),
            device_meter: self.device_meter,
            // The report needs only each block's least gain and Σ log10 (`PassBlock::gain_stats`);
            // the proof page's gain-reduction curve needs the gain per frame.
            gain: self.reduction_steps.is_some(),
        }
    }

    fn block(&mut self, block: PassBlock<'_>) -> Result<()> {
        let n = block.len;
        let packed = !block.packed.is_empty();
        if packed && block.packed.len() != self.requests.len() {
            return Err(Error::Internal(format!(
                "{} packed blocks for {} packing requests",
                block.packed.len(),
                self.requests.len()
            )));
        }
        if let Some(r) = block.meter {
            // Metered on the device: gate its readings (cheap; no samples needed).
            let first = self.frames;
            let (meter, keep) = (&self.meter, self.keep_blocks);
            self.energy
                .get_or_insert_with(|| {
                    let mut e = EnergyMeter::like_meter(meter);
                    if keep {
                        e.keep_blocks();
                    }
                    e
                })
                .add_block(first, n, r.steps, &r.energies, &r.peaks);
        } else if self.energy.is_some() {
            return Err(Error::Internal(format!(
                "block {}: no device meter readings after earlier blocks had them",
                block.index
            )));
        }
        let metered = block.meter.is_some();
        if block.master.is_empty() && !metered {
            // The engine packed and kept the f32 master on its device: meter the written PCM.
            let r = self
                .meter_request
                .ok_or_else(|| Error::Internal("no f32 master and no integer master output".into()))?;
            let encoding = match self.requests[r].format {
                SampleFormat::Pcm16 => SourceEncoding::Int16,
                SampleFormat::Pcm24 => SourceEncoding::Int24,
                _ => SourceEncoding::Int32,
            };
            let channels = self.meter.channels();
            self.unpacked.resize_with(channels, Vec::new);
            self.unpacked.iter_mut().for_each(|c| c.resize(n, 0.0));
            pcm_unpack::unpack(&block.packed[r], encoding, channels, &mut self.unpacked, n);
        }
        let master: Vec<&[f32]> = if block.master.is_empty() {
            self.unpacked.iter().map(|c| &c[..n]).collect()
        } else {
            block.master.iter().map(|c| &c[..n]).collect()
        };
        let stats = match (block.gain_stats, block.gain) {
            (Some(s), _) => Some(s),
            (None, Some(g)) => Some(gain_stats(&g[..n])),
            (None, None) => None,
        };
        if let (Some(r), Some(g)) = (&mut self.reduction_steps, block.gain) {
            r.add(&g[..n]);
        }
        if let Some(GainStats { least, sum_log10, frames }) = stats {
            if frames != n {
                return Err(Error::Internal(format!("block {}: gain stats of {frames} frames, not {n}", block.index)));
            }
            // -20·log10 falls as the gain rises: the largest reduction is that of the least gain.
            self.max_reduction_db = self.max_reduction_db.max(-20.0 * (least as f64).log10());
            self.sum_reduction_db -= 20.0 * sum_log10;
        }
        if let Some(r) = &mut self.residual
            && !block.stems.is_empty()
        {
            for (c, m) in master.iter().enumerate() {
                for (t, &m) in m.iter().enumerate() {
                    let sum: f64 = block.stems.iter().map(|s| s[c][t] as f64).sum();
                    let d = sum - m as f64;
                    r.peak = r.peak.max(d.abs());
                    r.sum_sq += d * d;
                }
            }
            r.samples += (n * master.len()) as u64;
        }
        self.frames += n as u64;
        let last = self.programme_frames == Some(self.frames);
        let from = self.session_rate;
        let meter = &mut self.meter;
        let masters = &mut self.masters;
        let stems = &mut self.stems;
        let variants = &mut self.variants;
        if let Some(d) = &mut self.dialogue {
            d.block(block.stems, n)?;
        }
        let (master_packed, stem_packed, stem_of) = (&self.master_packed, &self.stem_packed, &self.stem_of);
        let (master_rates, stem_rates) = (&mut self.master_rates, &mut self.stem_rates);
        // A resampled writer: this block through its resampler, and on the last one, its tail.
        let resample = |rc: &mut RateConverter, w: &mut WavWriter, planes: &[&[f32]]| {
            rc.write(w, Some(planes), n, from)?;
            if last { rc.write(w, None, 0, from) } else { Ok(()) }
        };
        // The request of a writer when the engine packed them all.
        let packed_as = |r: Option<usize>| r.filter(|_| packed).map(|r| (&block.packed[r], block.over_full_scale[r]));
        let (a, b) = rayon::join(
            || {
                let (a, b) = rayon::join(
                    || {
                        if !metered {
                            meter.add_planar(&master);
                        }
                    },
                    || variants.par_iter_mut().try_for_each(|v| v.block(block.stems, n)),
                );
                let () = a;
                b
            },
            || {
                masters.par_iter_mut().zip(master_packed.par_iter()).zip(master_rates.par_iter_mut()).try_for_each(
                    |((w, r), rc)| match (rc, packed_as(*r)) {
                        (Some(rc), _) => resample(rc, w, &master),
                        (None, Some((bytes, over))) => w.write_packed(bytes, n, over),
                        (None, None) => w.write_planar(&master, n),
                    },
                )?;
                stems
                    .par_iter_mut()
                    .zip(stem_packed.par_iter())
                    .zip(stem_rates.par_iter_mut())
                    .zip(stem_of.par_iter())
                    .try_for_each(|(((ws, rs), rcs), of)| {
                        ws.par_iter_mut().zip(rs.par_iter()).zip(rcs.par_iter_mut()).zip(of.par_iter()).try_for_each(
                            |(((w, r), rc), &i)| {
                                let planes = || block.stems[i].iter().map(|c| &c[..n]).collect::<Vec<&[f32]>>();
                                match (rc, packed_as(*r)) {
                                    (Some(rc), _) => resample(rc, w, &planes()),
                                    (None, Some((bytes, over))) => w.write_packed(bytes, n, over),
                                    (None, None) => w.write_planar(&planes(), n),
                                }
                            },
                        )
                    })
            },
        );
        a?;
        b
    }
}
