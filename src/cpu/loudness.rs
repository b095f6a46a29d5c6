//! BS.1770-4 / EBU R128 metering through the `ebur128` crate, with the layout's channel weights.
//!
//! The `ebur128` crate is the project's reference meter (DESIGN.md DSP 5). This wrapper fixes the
//! channel map from the bus layout (never the crate's default map, which weights a 7.1 file's side
//! pair as unused), tracks the maximum momentary and short-term loudness at the 100 ms steps EBU
//! Tech 3341 specifies, and reports everything in dB with silence as -inf.
//!
//! Cost (BENCHMARKS.md, stage throughput): the crate's `loudness_momentary()` and
//! `loudness_shortterm()` re-sum their whole 400 ms / 3 s window of K-weighted samples on every
//! call, so reading them every 100 ms costs 34 passes over the signal, more than the rest of the
//! meter. The crate exposes no block energies (its filter and histories are private in 0.1), but
//! `loudness_window(100)` sums only the last 100 ms of its own K-weighted buffer: one pass. The
//! momentary and short-term energies are then the means of the last 4 and 30 of those 100 ms
//! energies, which is the crate's own window sum regrouped (f64 rounding apart). The true peak,
//! the crate's most expensive reading, comes from one crate instance per channel (its 4x
//! interpolator runs each channel on its own, so a one-channel instance reads exactly what the
//! multichannel one does), fed in parallel beside the loudness instance.
use std::path::Path;

use ebur128::{Channel, EbuR128, Mode, energy_to_loudness};
use rayon::prelude::*;
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::session::Layout;

/// What one meter read over a whole program. Levels in dB; -inf where there is nothing to measure
/// (silence, or a program shorter than one gating block), serialized as JSON `null`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoudnessStats {
    /// Gated integrated loudness, LUFS (BS.1770-4 2.1).
    #[serde(serialize_with = "finite_or_null")]
    pub integrated_lufs: f64,
    /// Loudness range, LU (EBU Tech 3342).
    #[serde(serialize_with = "finite_or_null")]
    pub lra_lu: f64,
    /// Highest momentary (400 ms) loudness at any 100 ms step, LUFS (EBU Tech 3341).
    #[serde(serialize_with = "finite_or_null")]
    pub max_momentary_lufs: f64,
    /// Highest short-term (3 s) loudness at any 100 ms step, LUFS (EBU Tech 3341).
    #[serde(serialize_with = "finite_or_null")]
    pub max_short_term_lufs: f64,
    /// Highest |sample| over all channels (LFE included: peaks are physical), dBFS.
    #[serde(serialize_with = "finite_or_null")]
    pub sample_peak_dbfs: f64,
    /// Highest true peak over all channels (BS.1770-4 Annex 2, the crate's 4x interpolator below
    /// 96 kHz), dBTP. Never below the sample peak.
    #[serde(serialize_with = "finite_or_null")]
    pub true_peak_dbtp: f64,
}

/// JSON has no -inf: a level that is not a finite number is written as `null`.
pub fn finite_or_null<S: Serializer>(value: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    if value.is_finite() { s.serialize_f64(*value) } else { s.serialize_none() }
}

/// As `finite_or_null`, for optional levels.
pub fn opt_finite_or_null<S: Serializer>(value: &Option<f64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(v) if v.is_finite() => s.serialize_f64(*v),
        _ => s.serialize_none(),
    }
}

/// Linear amplitude to dB; 0 gives -inf.
pub fn amplitude_db(x: f64) -> f64 {
    if x > 0.0 { 20.0 * x.log10() } else { f64::NEG_INFINITY }
}

/// Text form of a level: one decimal, "-inf" for silence.
pub fn fmt_db(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else if x.is_nan() {
        "n/a".to_string()
    } else if x > 0.0 {
        "+inf".to_string()
    } else {
        "-inf".to_string()
    }
}

/// The ebur128 channel map for a layout (weights per BS.1770-4 Table 3, as DESIGN.md DSP 5 states
/// them): L, R, C weight 1.0, LFE excluded, every surround 1.41 (+1.5 dB).
///
/// 7.1 in WAV order is L R C LFE Lrs Rrs Lss Rss. Strict BS.1770-4 gives 1.41 only to loudspeakers
/// at 60..120 degrees azimuth, which would leave the rear pair (135..150) at 1.0; the contract (and
/// ffmpeg's ebur128 filter, the independent meter our tests compare with) weights all four
/// surrounds 1.41. In the crate, `LeftSurround`/`RightSurround` and `Mp090`/`Mm090` carry 1.41
/// (`Mp135`/`Mm135` would carry 1.0), so the rear pair is mapped to the former and the side pair
/// to the latter.
///
/// `None` (a file of a channel count with no layout) weights every channel 1.0.
pub fn channel_map(channels: usize, layout: Option<Layout>) -> Vec<Channel> {
    match layout {
        Some(Layout::Mono) => vec![Channel::Center],
        Some(Layout::Stereo) => vec![Channel::Left, Channel::Right],
        Some(Layout::Surround51) => vec![
            Channel::Left,
            Channel::Right,
            Channel::Center,
            Channel::Unused,
            Channel::LeftSurround,
            Channel::RightSurround,
        ],
        Some(Layout::Surround71) => vec![
            Channel::Left,
            Channel::Right,
            Channel::Center,
            Channel::Unused,
            Channel::LeftSurround,
            Channel::RightSurround,
            Channel::Mp090,
            Channel::Mm090,
        ],
        // `Left` is a plain weight-1.0 channel in the crate (not `DualMono`, which counts twice).
        None => vec![Channel::Left; channels],
    }
}

/// The most channels the `ebur128` crate meters.
pub const MAX_CHANNELS: usize = 64;
/// Sample rates the `ebur128` crate meters (its `EbuR128::new` refuses others).
pub const MIN_RATE: u32 = 16;
pub const MAX_RATE: u32 = 2_822_400;

/// What a meter measures. The render's analysis pass needs only the integrated loudness, and
/// reading momentary/short-term loudness every 100 ms costs more than the rest of the meter
/// together (BENCHMARKS.md, stage throughput).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterScope {
    /// Integrated loudness only; the other readings are NaN/-inf (null in JSON).
    Integrated,
    /// Everything in `LoudnessStats`.
    Full,
}

/// 100 ms sub-blocks in a short-term (3 s) window.
const SHORT_TERM_STEPS: usize = 30;
/// 100 ms sub-blocks in a momentary (400 ms) window.
const MOMENTARY_STEPS: usize = 4;

/// A streaming loudness meter for one program.
pub struct LoudnessMeter {
    /// Integrated loudness, LRA and the K-weighted buffer the momentary/short-term readings use.
    meter: EbuR128,
    /// `MeterScope::Full`: one sample- and true-peak-only instance per channel.
    peaks: Vec<EbuR128>,
    scope: MeterScope,
    channels: usize,
    /// Frames per 100 ms step (EBU Tech 3341: momentary/short-term are read every 100 ms).
    step: usize,
    /// Frames fed since the last step boundary.
    in_step: usize,
    /// Max momentary/short-term read from the crate at every step, where `steps` is None.
    maxima: StepMaxima,
    /// Where `loudness_window(100)` covers exactly one step: the gating, LRA and max
    /// momentary/short-term, computed from the crate's 100 ms window energies, as the device meter's host half computes them from its own
    /// (`EnergyMeter`, the crate's gating step for step). The crate then only K-weights and keeps
    /// its 400 ms buffer (`Mode::M`): its own integrated and LRA modes re-sum the K-weighted
    /// buffer over 400 ms at every step and over 3 s every second, 7 passes over the signal where
    /// the steps take one (about a sixth of a solve's CPU time, BENCHMARKS.md).
    ///
    /// None where the crate rounds its 100 ms step to the nearest frame but truncates a window's
    /// length, which differ at rates whose tenth is not a whole number of frames (11025 Hz):
    /// there the crate gates in its own modes and the meter reads its momentary and short-term
    /// loudness at every step instead (slower, same figures).
    steps: Option<EnergyMeter>,
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
        // Rates that are not a multiple of 10 Hz step at the nearest frame, as the crate rounds
        // its 100 ms block.
        let step = ((sample_rate as usize + 5) / 10).max(1);
        let step_energies = sample_rate as usize / 10 == step;
        let (mode, peaks) = match scope {
            MeterScope::Integrated if step_energies => (Mode::M, Vec::new()),
            MeterScope::Integrated => (Mode::I, Vec::new()),
            // `Mode::TRUE_PEAK` includes the sample peak; without a loudness mode the peak
            // instances run no K-weighting filter and keep no buffer.
            MeterScope::Full => (
                if step_energies { Mode::M } else { Mode::I | Mode::LRA | Mode::M | Mode::S },
                (0..channels).map(|_| crate_meter(1, Mode::TRUE_PEAK)).collect::<Result<Vec<_>>>()?,
            ),
        };
        let map = channel_map(channels, layout);
        let mut meter = crate_meter(channels, mode)?;
        meter.set_channel_map(&map).map_err(|e| Error::Internal(format!("loudness meter channel map: {e}")))?;
        let weights = map.iter().map(|&c| channel_weight(c)).collect();
        Ok(LoudnessMeter {
            meter,
            peaks,
            scope,
            channels,
            step,
            in_step: 0,
            maxima: StepMaxima::new(),
            steps: step_energies.then(|| EnergyMeter::with_weights(scope, step, weights)),
        })
    }

    pub fn channels(&self) -> usize {
        self.channels
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
        rayon::join(
            || self.add_loudness(planar),
            || {
                peak_meters.par_iter_mut().zip(planar.par_iter()).for_each(|(m, c)| {
                    m.add_frames_planar_f32(&[c]).expect("ebur128 accepts a one-channel block");
                })
            },
        );
        self.peaks = peak_meters;
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
            self.meter
                .add_frames_planar_f32(&part[..self.channels])
                .expect("ebur128 accepts a block with the meter's channel count");
            at += n;
            self.in_step += n;
            if self.in_step == self.step {
                self.in_step = 0;
                if self.steps.is_some() || self.scope == MeterScope::Full {
                    self.read_step();
                }
            }
        }
    }

    /// At each 100 ms boundary, the momentary and short-term readings are candidates for the max.
    /// Before 400 ms (3 s) of audio the window holds leading zeros and reads low, never high, so
    /// the early steps can only under-read (as in ffmpeg's filter).
    fn read_step(&mut self) {
        let Some(steps) = &mut self.steps else {
            if let Ok(m) = self.meter.loudness_momentary() {
                self.maxima.max_momentary = self.maxima.max_momentary.max(m);
            }
            if let Ok(s) = self.meter.loudness_shortterm() {
                self.maxima.max_short_term = self.maxima.max_short_term.max(s);
            }
            return;
        };
        // The crate reports a window's energy z as 10·log10(z) - 0.691 (-inf for z = 0); undo it.
        let last = self.meter.loudness_window(100).expect("a 100 ms window fits the crate's 400 ms buffer");
        steps.add_step(10f64.powf((last + 0.691) / 10.0));
    }

    /// What this meter measures.
    pub fn scope(&self) -> MeterScope {
        self.scope
    }

    /// The sample rate the meter was made for.
    pub fn sample_rate(&self) -> u32 {
        self.meter.rate()
    }

    /// The weighting map the meter was made with.
    pub fn channel_map(&self) -> &[Channel] {
        self.meter.channel_map()
    }

    /// The readings so far. Can be called at any time; a trailing partial 100 ms step is not a
    /// momentary/short-term step (Tech 3341) but does count for the peaks and the gating blocks the
    /// crate completes.
    pub fn result(&self) -> LoudnessStats {
        let from_steps = self.steps.as_ref().map(|s| s.result());
        let integrated = match &from_steps {
            Some(r) => r.integrated_lufs,
            None => self.meter.loudness_global().unwrap_or(f64::NEG_INFINITY),
        };
        let lra = match &from_steps {
            Some(r) => r.lra_lu,
            None => self.meter.loudness_range().unwrap_or(f64::NAN),
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
            sample_peak = sample_peak.max(m.sample_peak(0).unwrap_or(0.0));
            true_peak = true_peak.max(m.true_peak(0).unwrap_or(0.0));
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

/// Max momentary (400 ms) and short-term (3 s) loudness read at every 100 ms step (EBU Tech
/// 3341) from the steps' mean-square energies: the momentary and short-term energies are the means
/// of the last 4 and 30 of them (the crate's window sums regrouped). Shared by the CPU meter (fed
/// by the crate's `loudness_window(100)`) and the device meter's host half (`EnergyMeter`).
#[derive(Debug, Clone)]
pub struct StepMaxima {
    /// Energies of the last `SHORT_TERM_STEPS` steps (a ring; zero before the program, as the
    /// crate's buffer is).
    energies: [f64; SHORT_TERM_STEPS],
    /// Steps read so far: `energies[steps % SHORT_TERM_STEPS]` is the next slot.
    steps: usize,
    pub max_momentary: f64,
    pub max_short_term: f64,
}

impl Default for StepMaxima {
    fn default() -> Self {
        Self::new()
    }
}

impl StepMaxima {
    pub fn new() -> Self {
        StepMaxima {
            energies: [0.0; SHORT_TERM_STEPS],
            steps: 0,
            max_momentary: f64::NEG_INFINITY,
            max_short_term: f64::NEG_INFINITY,
        }
    }

    /// One more complete step: `z` is its weighted mean-square energy (channel-weighted sum of
    /// squares over its frames, divided by the frames).
    pub fn push(&mut self, z: f64) {
        self.energies[self.steps % SHORT_TERM_STEPS] = z;
        self.steps += 1;
        // Summed afresh each step (34 additions per 100 ms): no running sum to drift over hours.
        let short: f64 = self.energies.iter().sum();
        let momentary: f64 =
            (1..=MOMENTARY_STEPS).map(|k| self.energies[(self.steps + SHORT_TERM_STEPS - k) % SHORT_TERM_STEPS]).sum();
        // The crate's own conversion; a zero energy reads -inf, as the crate's readings do.
        self.max_momentary = self.max_momentary.max(energy_to_loudness(momentary / MOMENTARY_STEPS as f64));
        self.max_short_term = self.max_short_term.max(energy_to_loudness(short / SHORT_TERM_STEPS as f64));
    }
}

/// The weight the crate gives a channel in its block energies (`Filter::calc_gating_block`):
/// 1.41 for the surrounds, 2 for dual mono, 0 for an unused (LFE) channel.
pub fn channel_weight(c: Channel) -> f64 {
    match c {
        Channel::Unused => 0.0,
        Channel::LeftSurround
        | Channel::RightSurround
        | Channel::Mp060
        | Channel::Mm060
        | Channel::Mp090
        | Channel::Mm090 => 1.41,
        Channel::DualMono => 2.0,
        _ => 1.0,
    }
}

/// The crate's absolute gate as an energy: its histogram's lowest boundary (`BOUNDARIES[0]`,
/// -70 LUFS), below which it drops a block before any gating.
const ABSOLUTE_GATE_ENERGY: f64 = 0.000000117246530458229809506033624374;

/// Gated integrated loudness of 400 ms block energies that passed the absolute gate: the crate's
/// `History::gated_loudness` (queue mode), step for step.
pub fn gated_loudness(blocks: &[f64]) -> f64 {
    if blocks.is_empty() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = blocks.iter().sum();
    if sum.is_nan() {
        return f64::NAN;
    }
    // BS.1770-4: the relative gate sits 10 LU under the absolutely gated mean.
    let relative = (sum / blocks.len() as f64) * f64::powf(10.0, -10.0 / 10.0);
    let (count, total) = blocks.iter().filter(|&&e| e >= relative).fold((0u64, 0.0f64), |(n, t), &e| (n + 1, t + e));
    if count == 0 { f64::NEG_INFINITY } else { energy_to_loudness(total / count as f64) }
}

/// Loudness range of 3 s block energies that passed the absolute gate: the crate's
/// `History::loudness_range` (queue mode; EBU Tech 3342: relative gate -20 LU, 10th to 95th
/// percentile), step for step.
pub fn loudness_range(blocks: &[f64]) -> f64 {
    if blocks.iter().any(|e| e.is_nan()) {
        return f64::NAN;
    }
    let mut q = blocks.to_vec();
    q.sort_unstable_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    if q.is_empty() {
        return 0.0;
    }
    let power = q.iter().sum::<f64>() / q.len() as f64;
    let integrated = f64::powf(10.0, -20.0 / 10.0) * power;
    let relgated = q.iter().take_while(|&v| *v < integrated).count();
    match (q.len() - relgated).checked_sub(1) {
        Some(n) => {
            let n = n as f64;
            let high = q[relgated + (n * 0.95 + 0.5) as usize];
            let low = q[relgated + (n * 0.1 + 0.5) as usize];
            energy_to_loudness(high) - energy_to_loudness(low)
        }
        None => 0.0,
    }
}

/// The host half of the device meter (`shaders/loudness.wgsl`, `src/gpu/loudness.rs`): the same
/// `LoudnessStats` as `LoudnessMeter`, from what the device sends back per block instead of the
/// samples: per channel, the K-weighted sum of squares of the block's frames in each 100 ms step
/// (steps aligned to program frame 0, as the crate's blocks are), and the sample and true peak.
///
/// The crate's blocks are sums of those steps: a 400 ms gating block completes at every step from
/// the 4th (frames [k-3, k] steps), a 3 s LRA block at step 30 and every 10th after; the crate
/// weights each channel's sum and divides by the block's frames. Gating is the crate's
/// (`gated_loudness`, `loudness_range`) and max M/S are `StepMaxima`, as in `LoudnessMeter`.
#[derive(Debug, Clone)]
pub struct EnergyMeter {
    scope: MeterScope,
    /// Frames per 100 ms step, rounded as the crate rounds it.
    step: usize,
    weights: Vec<f64>,
    /// The step that is being summed, and its weighted sum so far.
    open_step: u64,
    open: f64,
    /// Weighted sums of the last `SHORT_TERM_STEPS` complete steps (ring; zeros before frame 0).
    recent: [f64; SHORT_TERM_STEPS],
    done: u64,
    maxima: StepMaxima,
    /// 400 ms and 3 s block energies over the absolute gate, in the crate's order.
    gating_blocks: Vec<f64>,
    short_term_blocks: Vec<f64>,
    /// Per channel: highest |sample| and highest interpolated |sample|.
    sample_peak: Vec<f64>,
    true_peak: Vec<f64>,
    /// Frames seen: blocks must come in order, without gaps.
    frames: u64,
}

impl EnergyMeter {
    /// A meter with `LoudnessMeter::with_scope`'s channel map, step and checks.
    pub fn new(channels: usize, sample_rate: u32, layout: Option<Layout>, scope: MeterScope) -> Result<Self> {
        // The same validation (and error messages) as the CPU meter.
        let twin = LoudnessMeter::with_scope(channels, sample_rate, layout, MeterScope::Integrated)?;
        Ok(Self::like(&twin, scope))
    }

    /// A meter measuring what `meter` measures, for the same program.
    pub fn like_meter(meter: &LoudnessMeter) -> Self {
        Self::like(meter, meter.scope())
    }

    fn like(meter: &LoudnessMeter, scope: MeterScope) -> Self {
        Self::with_weights(scope, meter.step, meter.channel_map().iter().map(|&c| channel_weight(c)).collect())
    }

    fn with_weights(scope: MeterScope, step: usize, weights: Vec<f64>) -> Self {
        let channels = weights.len();
        EnergyMeter {
            scope,
            step,
            weights,
            open_step: 0,
            open: 0.0,
            recent: [0.0; SHORT_TERM_STEPS],
            done: 0,
            maxima: StepMaxima::new(),
            gating_blocks: Vec::new(),
            short_term_blocks: Vec::new(),
            sample_peak: vec![0.0; channels],
            true_peak: vec![0.0; channels],
            frames: 0,
        }
    }

    /// Frames per 100 ms step.
    pub fn step(&self) -> usize {
        self.step
    }

    pub fn channels(&self) -> usize {
        self.weights.len()
    }

    /// One block of `len` frames starting at program frame `first_frame`: `energies[c * steps + s]`
    /// is channel c's K-weighted sum of squares over the block's frames in step
    /// `first_frame / step + s` (zero for steps the block does not reach); `peaks[c]` is channel
    /// c's (sample peak, true peak) over the block.
    pub fn add_block(&mut self, first_frame: u64, len: usize, steps: usize, energies: &[f64], peaks: &[[f32; 2]]) {
        let channels = self.weights.len();
        assert_eq!(first_frame, self.frames, "EnergyMeter::add_block: blocks out of order");
        assert_eq!(energies.len(), channels * steps, "EnergyMeter::add_block: energies per channel and step");
        assert_eq!(peaks.len(), channels, "EnergyMeter::add_block: peaks per channel");
        let step = self.step as u64;
        let end = first_frame + len as u64;
        let s0 = first_frame / step;
        for s in 0..steps {
            let abs = s0 + s as u64;
            if abs * step >= end {
                break;
            }
            debug_assert_eq!(abs, self.open_step);
            self.open += (0..channels).map(|c| self.weights[c] * energies[c * steps + s]).sum::<f64>();
            if (abs + 1) * step <= end {
                self.complete_step();
            }
        }
        for (c, p) in peaks.iter().enumerate() {
            self.sample_peak[c] = self.sample_peak[c].max(p[0] as f64);
            self.true_peak[c] = self.true_peak[c].max(p[1] as f64);
        }
        self.frames = end;
    }

    /// One whole 100 ms step, given as its channel-weighted mean-square energy (what the crate's
    /// `loudness_window(100)` reads); peaks are not tracked this way.
    fn add_step(&mut self, mean: f64) {
        self.open = mean * self.step as f64;
        self.complete_step();
        self.frames += self.step as u64;
    }

    fn complete_step(&mut self) {
        let e = std::mem::take(&mut self.open);
        self.recent[(self.done % SHORT_TERM_STEPS as u64) as usize] = e;
        self.done += 1;
        self.open_step += 1;
        let last = |n: usize| -> f64 {
            (1..=n as u64).map(|k| self.recent[((self.done - k) % SHORT_TERM_STEPS as u64) as usize]).sum()
        };
        let step = self.step as f64;
        if self.done >= MOMENTARY_STEPS as u64 {
            let block = last(MOMENTARY_STEPS) / (MOMENTARY_STEPS as f64 * step);
            if block >= ABSOLUTE_GATE_ENERGY {
                self.gating_blocks.push(block);
            }
        }
        if self.scope == MeterScope::Full {
            if self.done >= SHORT_TERM_STEPS as u64 && (self.done - SHORT_TERM_STEPS as u64).is_multiple_of(10) {
                let block = last(SHORT_TERM_STEPS) / (SHORT_TERM_STEPS as f64 * step);
                if block >= ABSOLUTE_GATE_ENERGY {
                    self.short_term_blocks.push(block);
                }
            }
            self.maxima.push(e / step);
        }
    }

    /// The readings so far, as `LoudnessMeter::result` gives them.
    pub fn result(&self) -> LoudnessStats {
        let integrated = gated_loudness(&self.gating_blocks);
        let full = self.scope == MeterScope::Full;
        let peak = |v: &[f64]| if full { amplitude_db(v.iter().fold(0.0f64, |a, &b| a.max(b))) } else { f64::NAN };
        // The crate never reads a true peak under the sample peak (`EbuR128::true_peak`).
        let true_peaks: Vec<f64> = self.true_peak.iter().zip(&self.sample_peak).map(|(t, s)| t.max(*s)).collect();
        LoudnessStats {
            integrated_lufs: integrated,
            lra_lu: if full && integrated.is_finite() { loudness_range(&self.short_term_blocks) } else { f64::NAN },
            max_momentary_lufs: self.maxima.max_momentary,
            max_short_term_lufs: self.maxima.max_short_term,
            sample_peak_dbfs: peak(&self.sample_peak),
            true_peak_dbtp: peak(&true_peaks),
        }
    }
}

/// Frames per block when a file is streamed through a meter: 64 Ki frames keeps an 8-channel
/// block at 2 MiB while amortising the per-call overhead.
pub const METER_BLOCK: usize = 1 << 16;

/// Meter one file, streamed in blocks; the layout follows the channel count
/// (`Layout::for_channels`: 1, 2, 6, 8), any other count weights every channel 1.0.
pub fn measure_file(path: &Path) -> Result<LoudnessStats> {
    let mut reader = crate::io::open(path)?;
    Ok(meter_reader(reader.as_mut())?.0)
}

/// Stream a whole reader through a meter laid out for its channel count; returns the stats and the
/// number of frames read.
pub fn meter_reader(reader: &mut dyn crate::io::BlockReader) -> Result<(LoudnessStats, u64)> {
    let info = reader.info().clone();
    let layout = Layout::for_channels(info.channels);
    let mut meter = LoudnessMeter::new(info.channels, info.sample_rate, layout).map_err(|e| match e {
        Error::Usage(msg) => Error::input(&info.path, msg),
        other => other,
    })?;
    let mut buf = vec![vec![0.0f32; METER_BLOCK]; info.channels];
    let mut frames = 0u64;
    loop {
        let n = reader.read_planar(&mut buf, METER_BLOCK)?;
        if n == 0 {
            break;
        }
        let planar: Vec<&[f32]> = buf.iter().map(|c| &c[..n]).collect();
        meter.add_planar(&planar);
        frames += n as u64;
    }
    Ok((meter.result(), frames))
}
