//! `LoudnessMeter`: the `ebur128` crate's readings, fed block by block, read at 100 ms steps (see `meter`).
use ebur128::{Channel, EbuR128, Mode};
use rayon::prelude::*;

use super::{
    EnergyMeter, KWeighting, LoudnessStats, MAX_CHANNELS, MAX_RATE, MIN_RATE, MeterScope, PeakScan, StepMaxima,
    amplitude_db, channel_map, channel_weight,
};
use crate::error::{Error, Result};
use crate::model::Layout;

/// Frames of the meter's 100 ms step at `sample_rate`: rates that are not a multiple of 10 Hz
/// step at the nearest frame, as the crate rounds its 100 ms block.
pub fn step_frames_at(sample_rate: u32) -> usize {
    ((sample_rate as usize + 5) / 10).max(1)
}

/// A streaming loudness meter for one program.
pub struct LoudnessMeter {
    /// The K-weighting and what it is read through.
    weighting: Weighting,
    sample_rate: u32,
    map: Vec<Channel>,
    /// `MeterScope::Full`: the crate's sample and true peak of each channel (`PeakScan`).
    peaks: Vec<PeakScan>,
    scope: MeterScope,
    channels: usize,
    /// Frames per 100 ms step (EBU Tech 3341: momentary/short-term are read every 100 ms).
    step: usize,
    /// Frames fed since the last step boundary.
    in_step: usize,
    /// Max momentary/short-term read from the crate at every step, where `steps` is None.
    maxima: StepMaxima,
    /// Where `loudness_window(100)` covers exactly one step: the gating, LRA and max
    /// momentary/short-term, computed from the crate's 100 ms window energies, as the device
    /// meter's host half computes them from its own (`EnergyMeter`, the crate's gating step for
    /// step). The crate's own integrated and LRA modes re-sum the K-weighted buffer over 400 ms at
    /// every step and over 3 s every second, 7 passes over the signal where the steps take one
    /// (about a sixth of a solve's CPU time, BENCHMARKS.md); and the window energies themselves
    /// come from `KWeighting`, the crate's K-weighting and window sum to the bit, all channels at once.
    ///
    /// None where the crate rounds its 100 ms step to the nearest frame but truncates a window's
    /// length, which differ at rates whose tenth is not a whole number of frames (11025 Hz):
    /// there the crate gates in its own modes and the meter reads its momentary and short-term
    /// loudness at every step instead (slower, same figures).
    steps: Option<EnergyMeter>,
    /// When recording curves (`record_curves`): the true peak of each 100 ms step.
    peak_steps: Option<PeakSteps>,
}

/// How a `LoudnessMeter` K-weights.
enum Weighting {
    /// Step mode: the 100 ms window energies, read at every step.
    Steps(KWeighting),
    /// Step mode, K-weighted elsewhere (`MeterBank`): each step's window loudness is handed in
    /// (`external_step`) after the block that completes it.
    External { pending: usize },
    /// Rates whose tenth is not a whole number of frames: the crate in its own modes.
    Crate(Box<EbuR128>),
}

/// The highest true peak over the channels in each 100 ms step, as the step-aligned pieces of
/// each block come out of the per-channel peak scans (`PeakScan::prev_true_peak`).
#[derive(Debug, Default)]
struct PeakSteps {
    /// Linear true peak of each complete step.
    done: Vec<f32>,
    /// The step still open at the end of the last block.
    open: f64,
}

impl LoudnessMeter {
    /// A meter for `channels` channels at `sample_rate`, weighted for `layout` (see `channel_map`;
    /// `None` weights every channel 1.0). A layout whose channel count differs from `channels`, or
    /// a channel count/rate the crate cannot meter (1..=64 channels, 16 Hz..2.8 MHz), is an
    /// `Error::Usage` naming the values; callers that have a file name rewrap it.
    pub fn new(channels: usize, sample_rate: u32, layout: Option<Layout>) -> Result<Self> {
        Self::with_scope(channels, sample_rate, layout, MeterScope::Full)
    }

    /// As `new`, measuring only what `scope` asks for.
    pub fn with_scope(channels: usize, sample_rate: u32, layout: Option<Layout>, scope: MeterScope) -> Result<Self> {
        if let Some(l) = layout
            && l.channels() != channels
        {
            return Err(Error::Usage(format!(
                "loudness meter: layout {} has {} channels, but the signal has {channels}",
                l.name(),
                l.channels()
            )));
        }
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(Error::Usage(format!(
                "loudness meter: cannot meter {channels} channels; BS.1770 metering here takes 1 to {MAX_CHANNELS}"
            )));
        }
        // The crate's range (ebur128: 16 Hz to 2.8224 MHz); said here, since its own error reads
        // as if the channel count were at fault.
        if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
            return Err(Error::Usage(format!(
                "loudness meter: sample rate {sample_rate} Hz is not supported (BS.1770 metering here takes {MIN_RATE} Hz to {MAX_RATE} Hz)"
            )));
        }
        let crate_meter = |channels: usize, mode: Mode| {
            EbuR128::new(channels as u32, sample_rate, mode).map_err(|e| {
                Error::Usage(format!("loudness meter: cannot meter {channels} channels at {sample_rate} Hz ({e})"))
            })
        };
        let step = step_frames_at(sample_rate);
        let step_energies = sample_rate as usize / 10 == step;
        let (mode, peaks) = match scope {
            MeterScope::Integrated if step_energies => (Mode::M, Vec::new()),
            MeterScope::Integrated => (Mode::I, Vec::new()),
            MeterScope::Full => (
                if step_energies { Mode::M } else { Mode::I | Mode::LRA | Mode::M | Mode::S },
                vec![PeakScan::new(sample_rate); channels],
            ),
        };
        let map = channel_map(channels, layout);
        let weighting = if step_energies {
            Weighting::Steps(KWeighting::new(sample_rate, &map))
        } else {
            let mut meter = crate_meter(channels, mode)?;
            meter.set_channel_map(&map).map_err(|e| Error::Internal(format!("loudness meter channel map: {e}")))?;
            Weighting::Crate(Box::new(meter))
        };
        let weights = map.iter().map(|&c| channel_weight(c)).collect();
        Ok(LoudnessMeter {
            weighting,
            sample_rate,
            map,
            peaks,
            scope,
            channels,
            step,
            in_step: 0,
            maxima: StepMaxima::new(),
            steps: step_energies.then(|| EnergyMeter::with_weights(scope, step, weights)),
            peak_steps: None,
        })
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Keep every 400 ms block energy (`block_energies`), for dialogue gating. Only where the
    /// meter gates from 100 ms steps (every rate whose tenth is a whole number of frames: 8 kHz to
    /// 192 kHz and 44.1 kHz's family; not 11025 Hz).
    pub fn keep_blocks(&mut self) -> Result<()> {
        match &mut self.steps {
            Some(s) => {
                s.keep_blocks();
                Ok(())
            }
            None => Err(Error::Usage(format!(
                "dialogue gating needs a sample rate whose 100 ms step is a whole number of frames, not {} frames",
                self.sample_rate as f64 / 10.0
            ))),
        }
    }

    /// Every 400 ms block energy since `keep_blocks` (None without it).
    pub fn block_energies(&self) -> Option<&[f64]> {
        self.steps.as_ref().and_then(|s| s.blocks())
    }

    /// Feed one block, `planar[ch][frame]`, every channel the same length. Panics when the
    /// channel count differs from the meter's (a caller bug, not an input problem).
    pub fn add_planar(&mut self, planar: &[&[f32]]) {
        assert_eq!(planar.len(), self.channels, "LoudnessMeter::add_planar: wrong channel count");
        let len = planar.first().map_or(0, |c| c.len());
        assert!(planar.iter().all(|c| c.len() == len), "LoudnessMeter::add_planar: ragged block");
        if self.peaks.is_empty() {
            self.add_loudness(planar);
            return;
        }
        // The peak instances take the whole block at once (they need no 100 ms steps), beside the
        // loudness instance: the meter's two halves cost about the same.
        let mut peak_meters = std::mem::take(&mut self.peaks);
        // Where the block's first step ends: pieces of the block cut at step boundaries.
        let (step, first) = (self.step, self.step - self.in_step);
        let mut peak_steps = self.peak_steps.take();
        let recording = peak_steps.is_some();
        rayon::join(
            || self.add_loudness(planar),
            || {
                let per_channel: Vec<Vec<f64>> = peak_meters
                    .par_iter_mut()
                    .zip(planar.par_iter())
                    .map(|(m, c)| {
                        if !recording {
                            m.add(c);
                            return Vec::new();
                        }
                        let mut pieces = Vec::with_capacity(c.len() / step + 2);
                        let mut at = 0;
                        while at < c.len() {
                            let end = if at == 0 { first.min(c.len()) } else { (at + step).min(c.len()) };
                            m.add(&c[at..end]);
                            pieces.push(m.prev_true_peak());
                            at = end;
                        }
                        pieces
                    })
                    .collect();
                if let Some(p) = &mut peak_steps {
                    p.add(&per_channel, first, len, step);
                }
            },
        );
        self.peaks = peak_meters;
        self.peak_steps = peak_steps;
    }

    /// Feed the loudness instance in 100 ms steps, reading at each step boundary.
    fn add_loudness(&mut self, planar: &[&[f32]]) {
        let len = planar.first().map_or(0, |c| c.len());
        // Sub-block views live on the stack: feeding the meter allocates nothing.
        let mut part: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
        let mut at = 0;
        while at < len {
            let n = (self.step - self.in_step).min(len - at);
            for (p, c) in part.iter_mut().zip(planar) {
                *p = &c[at..at + n];
            }
            match &mut self.weighting {
                Weighting::Steps(k) => k.add(&part[..self.channels]),
                Weighting::External { .. } => {}
                Weighting::Crate(m) => {
                    m.add_frames_planar_f32(&part[..self.channels])
                        .expect("ebur128 accepts a block with the meter's channel count");
                }
            }
            at += n;
            self.in_step += n;
            if self.in_step == self.step {
                self.in_step = 0;
                if let Weighting::External { pending } = &mut self.weighting {
                    *pending += 1;
                } else if self.steps.is_some() || self.scope == MeterScope::Full {
                    self.read_step();
                }
            }
        }
    }

    /// Leave the K-weighting to a `MeterBank`, which filters this meter's channels with other
    /// meters' in shared vector lanes (the filter is a chain of dependent operations: lanes are
    /// free, frames are not) and hands in each step's loudness (`external_step`). Returns the
    /// channel map to weight with; None (and nothing changes) outside step mode.
    pub fn weighted_externally(&mut self) -> Option<Vec<Channel>> {
        if !matches!(self.weighting, Weighting::Steps(_)) || self.steps.is_none() {
            return None;
        }
        self.weighting = Weighting::External { pending: 0 };
        Some(self.map.clone())
    }

    /// The window loudness of the oldest step completed and not yet read (`weighted_externally`),
    /// as `KWeighting::step_loudness` reads it.
    pub fn external_step(&mut self, loudness: f64) {
        let (Weighting::External { pending }, Some(steps)) = (&mut self.weighting, &mut self.steps) else {
            panic!("LoudnessMeter::external_step on a meter that weights its own steps");
        };
        assert!(*pending > 0, "LoudnessMeter::external_step: no step completed");
        *pending -= 1;
        steps.add_step(10f64.powf((loudness + 0.691) / 10.0));
    }

    /// At each 100 ms boundary, the momentary and short-term readings are candidates for the max.
    /// Before 400 ms (3 s) of audio the window holds leading zeros and reads low, never high, so
    /// the early steps can only under-read (as in ffmpeg's filter).
    fn read_step(&mut self) {
        let (Some(steps), Weighting::Steps(k)) = (&mut self.steps, &mut self.weighting) else {
            let Weighting::Crate(meter) = &self.weighting else { unreachable!("step mode has its steps") };
            let m = meter.loudness_momentary().unwrap_or(f64::NEG_INFINITY);
            let s = meter.loudness_shortterm().unwrap_or(f64::NEG_INFINITY);
            self.maxima.read(m, s);
            return;
        };
        // The crate reports a window's energy z as 10·log10(z) - 0.691 (-inf for z = 0); undo it.
        let last = k.step_loudness();
        steps.add_step(10f64.powf((last + 0.691) / 10.0));
    }

    /// Keep every 100 ms step's momentary and short-term loudness and (`MeterScope::Full`) true
    /// peak, for `take_curves`: the proof page's curves (design/proof.md), gathered as the
    /// programme streams.
    pub fn record_curves(&mut self) {
        match &mut self.steps {
            Some(s) => s.record_curves(),
            None => self.maxima.record(),
        }
        if self.scope == MeterScope::Full {
            self.peak_steps = Some(PeakSteps::default());
        }
    }

    /// The curves recorded so far: one value per complete 100 ms step (a trailing partial step
    /// is not a step, as for the maxima); `true_peak` in dBTP, empty without `MeterScope::Full`.
    pub fn take_curves(&mut self) -> StepCurves {
        let loudness = match &mut self.steps {
            Some(s) => s.take_curves(),
            None => self.maxima.curves.take().unwrap_or_default(),
        };
        let steps = loudness.momentary.len();
        let true_peak = self
            .peak_steps
            .take()
            .map_or_else(Vec::new, |p| p.done.iter().take(steps).map(|&x| amplitude_db(x as f64) as f32).collect());
        StepCurves { momentary: loudness.momentary, short_term: loudness.short_term, true_peak }
    }

    /// Frames per 100 ms step, as the crate rounds it.
    pub fn step_frames(&self) -> usize {
        self.step
    }

    /// What this meter measures.
    pub fn scope(&self) -> MeterScope {
        self.scope
    }

    /// The crate's instance, outside step mode (where `steps` is None).
    fn crate_meter(&self) -> &EbuR128 {
        match &self.weighting {
            Weighting::Crate(m) => m,
            Weighting::Steps(_) | Weighting::External { .. } => unreachable!("a meter in step mode reads its steps"),
        }
    }

    /// The sample rate the meter was made for.
    /// Frames per 100 ms step, rounded as the crate rounds it.
    pub(super) fn step(&self) -> usize {
        self.step
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The weighting map the meter was made with.
    pub fn channel_map(&self) -> &[Channel] {
        &self.map
    }

    /// The readings so far. Can be called at any time; a trailing partial 100 ms step is not a
    /// momentary/short-term step (Tech 3341) but does count for the peaks and the gating blocks the
    /// crate completes.
    pub fn result(&self) -> LoudnessStats {
        if let Weighting::External { pending } = self.weighting {
            assert_eq!(pending, 0, "LoudnessMeter::result: {pending} step(s) not handed in by its MeterBank");
        }
        let from_steps = self.steps.as_ref().map(|s| s.result());
        let integrated = match &from_steps {
            Some(r) => r.integrated_lufs,
            None => self.crate_meter().loudness_global().unwrap_or(f64::NEG_INFINITY),
        };
        let lra = match &from_steps {
            Some(r) => r.lra_lu,
            None => self.crate_meter().loudness_range().unwrap_or(f64::NAN),
        };
        let maxima = match &from_steps {
            Some(r) => (r.max_momentary_lufs, r.max_short_term_lufs),
            None => (self.maxima.max_momentary, self.maxima.max_short_term),
        };
        let (mut sample_peak, mut true_peak) = match self.scope {
            MeterScope::Integrated => (f64::NAN, f64::NAN),
            MeterScope::Full => (0.0f64, 0.0f64),
        };
        for m in &self.peaks {
            sample_peak = sample_peak.max(m.sample_peak());
            true_peak = true_peak.max(m.true_peak());
        }
        LoudnessStats {
            integrated_lufs: integrated,
            // A silent program has no loudness distribution: LRA is undefined, not 0.
            lra_lu: if integrated.is_finite() { lra } else { f64::NAN },
            max_momentary_lufs: maxima.0,
            max_short_term_lufs: maxima.1,
            sample_peak_dbfs: amplitude_db(sample_peak),
            true_peak_dbtp: amplitude_db(true_peak),
        }
    }
}

/// A meter's per-step curves (`LoudnessMeter::take_curves`): LUFS, LUFS and dBTP, -inf for silence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepCurves {
    pub momentary: Vec<f32>,
    pub short_term: Vec<f32>,
    pub true_peak: Vec<f32>,
}

impl PeakSteps {
    /// One block's pieces per channel: the first piece ends `first` frames in (the open step's
    /// end), each later one a step on; the last may end the block inside a step.
    fn add(&mut self, per_channel: &[Vec<f64>], first: usize, len: usize, step: usize) {
        let pieces = per_channel.first().map_or(0, Vec::len);
        for i in 0..pieces {
            let peak = per_channel.iter().map(|c| c[i]).fold(0.0f64, f64::max);
            self.open = self.open.max(peak);
            // Piece i ends at frame first + i·step of the block, or at its end inside a step.
            if first + i * step <= len {
                self.done.push(std::mem::take(&mut self.open) as f32);
            }
        }
    }
}
