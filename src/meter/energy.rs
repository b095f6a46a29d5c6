//! `EnergyMeter`: the device meter's host half, gating what `gpu::meter` sends back.
use super::gating::ABSOLUTE_GATE_ENERGY;
use super::{
    LoudnessMeter, LoudnessStats, MOMENTARY_STEPS, MeterScope, SHORT_TERM_STEPS, StepMaxima, amplitude_db,
    channel_weight, gated_loudness, loudness_range,
};
use crate::error::Result;
use crate::model::Layout;

/// The host half of the device meter (`shaders/meter.wgsl`, `src/gpu/meter.rs`): the same
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
    /// Every 400 ms block energy in order, the absolute gate not applied, when asked for
    /// (`keep_blocks`: dialogue gating lines a stem's blocks up with the programme's).
    all_blocks: Option<Vec<f64>>,
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
        Self::with_weights(scope, meter.step(), meter.channel_map().iter().map(|&c| channel_weight(c)).collect())
    }

    pub(super) fn with_weights(scope: MeterScope, step: usize, weights: Vec<f64>) -> Self {
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
            all_blocks: None,
            sample_peak: vec![0.0; channels],
            true_peak: vec![0.0; channels],
            frames: 0,
        }
    }

    /// From now on, keep every 400 ms block energy (`blocks`): 8 bytes per 100 ms.
    pub fn keep_blocks(&mut self) {
        self.all_blocks.get_or_insert_with(Vec::new);
    }

    /// Every 400 ms block energy since `keep_blocks`, in order (block j covers steps j..j+4).
    pub fn blocks(&self) -> Option<&[f64]> {
        self.all_blocks.as_deref()
    }

    /// Keep the momentary and short-term loudness of every step (`take_curves`).
    pub fn record_curves(&mut self) {
        self.maxima.record();
    }

    /// The curves recorded since `record_curves` (empty when not recording).
    pub fn take_curves(&mut self) -> super::LoudnessCurves {
        self.maxima.curves.take().unwrap_or_default()
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
    pub(super) fn add_step(&mut self, mean: f64) {
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
            if let Some(all) = &mut self.all_blocks {
                all.push(block);
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
