//! The crate's channel map and gating (BS.1770-4, EBU Tech 3341/3342), step for step, for meters
//! that sum 100 ms step energies themselves.
use ebur128::{Channel, energy_to_loudness};

use super::{MOMENTARY_STEPS, SHORT_TERM_STEPS};
use crate::model::Layout;

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
    /// When recording (`StepMaxima::record`): the momentary and short-term loudness at every step,
    /// LUFS (the proof page's loudness curves, design/proof.md).
    pub curves: Option<LoudnessCurves>,
}

/// The momentary (400 ms) and short-term (3 s) loudness read at every 100 ms step, LUFS; -inf
/// where the window holds silence. Step k is read at the end of program frames [k·step, (k+1)·step).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoudnessCurves {
    pub momentary: Vec<f32>,
    pub short_term: Vec<f32>,
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
            curves: None,
        }
    }

    /// Keep every step's readings too (`curves`).
    pub fn record(&mut self) {
        self.curves.get_or_insert_with(LoudnessCurves::default);
    }

    /// One step's readings, LUFS, from wherever they were read.
    pub fn read(&mut self, momentary: f64, short_term: f64) {
        self.max_momentary = self.max_momentary.max(momentary);
        self.max_short_term = self.max_short_term.max(short_term);
        if let Some(c) = &mut self.curves {
            c.momentary.push(momentary as f32);
            c.short_term.push(short_term as f32);
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
        self.read(
            energy_to_loudness(momentary / MOMENTARY_STEPS as f64),
            energy_to_loudness(short / SHORT_TERM_STEPS as f64),
        );
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
pub(crate) const ABSOLUTE_GATE_ENERGY: f64 = 0.000000117246530458229809506033624374;

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
