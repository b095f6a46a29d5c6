//! `KWeighting`: the reference meter's K-weighted 100 ms window loudness, the same bits as the
//! `ebur128` crate's `loudness_window(100)` read at every 100 ms step, all channels at once.
//!
//! Why not the crate itself: its K-weighting filter runs one channel after another, each sample
//! waiting on the last (a chain of five dependent f64 operations), and it was the largest cost of
//! metering once the true peak was fast (BENCHMARKS.md, "Revisions"). Here the channels are the
//! lanes of one vector, so the chain is paid once per frame, not once per channel; every lane
//! performs the crate's operations in the crate's order, so the bits are the crate's (`tests`
//! below compare every step of random programmes, a decay into digital silence included):
//! - the coefficients: the crate's `filter_coefficients` (`dsp::kweighting`, as the device meter);
//! - each frame, under flush-to-zero as the crate's filter runs: `s0 = x − a1·s1 − a2·s2 − a3·s3 −
//!   a4·s4` and `y = b0·s0 + b1·s1 + b2·s2 + b3·s3 + b4·s4`, left to right, no FMA;
//! - each step, without flush-to-zero as the crate sums: per channel 0.0 then `+= y·y` in frame
//!   order, times 1.41 for the surround channels (2.0 dual mono), summed over channels in order
//!   from 0.0, divided by the step's frames; then `10·log10(e) − 0.691` (−inf for e ≤ 0).
use ebur128::Channel;

use super::with_ftz;
use crate::dsp::kweighting::k_weighting;

/// Channels per vector: eight f64 lanes (one AVX-512 register); fewer channels leave lanes idle,
/// more take several groups.
const LANES: usize = 8;

/// One programme's K-weighting, read in whole 100 ms steps.
#[derive(Debug, Clone)]
pub struct KWeighting {
    b: [f64; 5],
    a: [f64; 5],
    /// Per group of `LANES` channels, the filter state `[s1, s2, s3, s4]` lane by lane.
    state: Vec<[[f64; LANES]; 4]>,
    map: Vec<Channel>,
    /// Frames per step (the crate's 100 ms window: rate / 10, a whole number here).
    step: usize,
    /// Per channel, the step's sum of squares so far.
    sums: Vec<f64>,
    /// This part's filtered frames of one group, lane by lane.
    y: Vec<[f64; LANES]>,
}

impl KWeighting {
    /// For `map` (the crate's channel map) at `sample_rate`, where the crate's 100 ms block
    /// (rate / 10 rounded) and window (rate / 10 truncated) are the same frames: the meter's step mode.
    pub fn new(sample_rate: u32, map: &[Channel]) -> KWeighting {
        assert_eq!(sample_rate / 10, (sample_rate + 5) / 10, "KWeighting: {sample_rate} Hz has no whole 100 ms step");
        let (b, a) = k_weighting(sample_rate as f64);
        KWeighting {
            b,
            a,
            state: vec![[[0.0; LANES]; 4]; map.len().div_ceil(LANES)],
            map: map.to_vec(),
            step: sample_rate as usize / 10,
            sums: vec![0.0; map.len()],
            y: Vec::new(),
        }
    }

    /// Filter `part` (`part[ch][frame]`, no longer than what is left of the current step) and add
    /// it to the step's sums.
    pub fn add(&mut self, part: &[&[f32]]) {
        assert_eq!(part.len(), self.map.len(), "KWeighting::add: wrong channel count");
        let len = part.first().map_or(0, |c| c.len());
        if len == 0 {
            return;
        }
        for (g, state) in self.state.iter_mut().enumerate() {
            let first = g * LANES;
            let group = &part[first..(first + LANES).min(part.len())];
            let map = &self.map[first..first + group.len()];
            self.y.resize(len, [0.0; LANES]);
            with_ftz(|| filter_dispatch((&self.b, &self.a, state, group, map), &mut self.y[..len]));
            #[cfg(not(target_arch = "x86_64"))]
            flush_subnormal_state(state);
            // Every lane at once, each in frame order (an unused channel's lane sums zeros).
            let sums = &mut self.sums[first..first + group.len()];
            let mut s: [f64; LANES] = std::array::from_fn(|c| sums.get(c).copied().unwrap_or(0.0));
            sum_squares(&mut s, &self.y[..len]);
            sums.copy_from_slice(&s[..sums.len()]);
        }
    }

    /// The step just completed, as the crate's `loudness_window(100)` reads it (LUFS, −inf for
    /// silence); the sums start again.
    pub fn step_loudness(&mut self) -> f64 {
        self.step_loudness_of(0..self.map.len())
    }

    /// As `step_loudness`, of the programme whose channels are `channels` of these (a
    /// `MeterBank` K-weights several files' channels together): only their sums are read and
    /// start again, summed in channel order from 0.0 as the crate sums a programme of its own.
    pub fn step_loudness_of(&mut self, channels: std::ops::Range<usize>) -> f64 {
        let mut sum = 0.0;
        for (channel, s) in self.map[channels.clone()].iter().zip(&mut self.sums[channels]) {
            let mut channel_sum = std::mem::take(s);
            if *channel == Channel::Unused {
                continue;
            }
            match channel {
                Channel::LeftSurround
                | Channel::RightSurround
                | Channel::Mp060
                | Channel::Mm060
                | Channel::Mp090
                | Channel::Mm090 => channel_sum *= 1.41,
                Channel::DualMono => channel_sum *= 2.0,
                _ => {}
            }
            sum += channel_sum;
        }
        let energy = sum / self.step as f64;
        if energy <= 0.0 { f64::NEG_INFINITY } else { 10.0 * f64::log10(energy) - 0.691 }
    }
}

/// One group's filter: coefficients b and a, its state, its channels' samples and map.
type Group<'a> = (&'a [f64; 5], &'a [f64; 5], &'a mut [[f64; LANES]; 4], &'a [&'a [f32]], &'a [Channel]);

/// `filter` in the widest vectors the CPU has (the lanes do the same operations either way).
fn filter_dispatch(g: Group, y: &mut [[f64; LANES]]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { filter_avx512(g, y) };
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX (checked just above).
            return unsafe { filter_avx(g, y) };
        }
    }
    filter(g, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn filter_avx512(g: Group, y: &mut [[f64; LANES]]) {
    filter(g, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn filter_avx(g: Group, y: &mut [[f64; LANES]]) {
    filter(g, y)
}

/// The filter over one group of channels, lane c = `group[c]`; idle lanes (and unused channels,
/// which the crate does not filter) compute on zeros, never read.
#[inline(always)]
fn filter((b, a, state, group, map): Group, y: &mut [[f64; LANES]]) {
    let live: [bool; LANES] = std::array::from_fn(|c| c < group.len() && map[c] != Channel::Unused);
    let [mut s1, mut s2, mut s3, mut s4] = *state;
    for (n, out) in y.iter_mut().enumerate() {
        let x: [f64; LANES] = std::array::from_fn(|c| if live[c] { group[c][n] as f64 } else { 0.0 });
        let mut s0 = [0.0; LANES];
        for c in 0..LANES {
            s0[c] = x[c] - a[1] * s1[c] - a[2] * s2[c] - a[3] * s3[c] - a[4] * s4[c];
            out[c] = b[0] * s0[c] + b[1] * s1[c] + b[2] * s2[c] + b[3] * s3[c] + b[4] * s4[c];
        }
        s4 = s3;
        s3 = s2;
        s2 = s1;
        s1 = s0;
    }
    *state = [s1, s2, s3, s4];
}

/// `s[c] += y·y` for each frame's lane c, in frame order (outside flush-to-zero, as the crate
/// sums), in the widest vectors the CPU has.
fn sum_squares(s: &mut [f64; LANES], y: &[[f64; LANES]]) {
    #[inline(always)]
    fn lanes(s: &mut [f64; LANES], y: &[[f64; LANES]]) {
        for f in y {
            for c in 0..LANES {
                s[c] += f[c] * f[c];
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(s: &mut [f64; LANES], y: &[[f64; LANES]]) {
            lanes(s, y)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { avx512(s, y) };
        }
    }
    lanes(s, y)
}

/// Where the crate runs without flush-to-zero (not x86), it zeroes subnormal state at the end of
/// each part instead.
#[cfg(not(target_arch = "x86_64"))]
fn flush_subnormal_state(state: &mut [[f64; LANES]; 4]) {
    for v in state.iter_mut().flatten() {
        if v.abs() < f64::MIN_POSITIVE {
            *v = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebur128::{EbuR128, Mode};

    /// A test programme per channel: tones and noise at different levels, then a decay into the
    /// subnormal range and digital silence (the filter's state decays through subnormals there).
    fn programme(channels: usize, frames: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        (0..channels)
            .map(|c| {
                (0..frames)
                    .map(|n| {
                        let t = n as f32 / frames as f32;
                        let x = 0.5 * (n as f32 * 0.01 * (c + 1) as f32).sin() + 0.2 * noise();
                        if t < 0.5 {
                            x * (0.1 + t)
                        } else if t < 0.7 {
                            x * 1e-36
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn compare(rate: u32, map: &[Channel], seed: u64) {
        let channels = map.len();
        let x = programme(channels, rate as usize * 3, seed);
        let mut ours = KWeighting::new(rate, map);
        let mut theirs = EbuR128::new(channels as u32, rate, Mode::M).expect("crate meter");
        theirs.set_channel_map(map).expect("map");
        let step = rate as usize / 10;
        let (mut at, mut in_step, mut steps) = (0, 0, 0);
        let mut sizes = [100usize, 1, 4096, 37, 2000].iter().cycle();
        let mut audible = 0;
        while at < x[0].len() {
            let n = (*sizes.next().expect("cycle")).min(step - in_step).min(x[0].len() - at);
            let part: Vec<&[f32]> = x.iter().map(|c| &c[at..at + n]).collect();
            ours.add(&part);
            theirs.add_frames_planar_f32(&part).expect("crate add");
            at += n;
            in_step += n;
            if in_step == step {
                in_step = 0;
                let (o, t) = (ours.step_loudness(), theirs.loudness_window(100).expect("window"));
                assert_eq!(o.to_bits(), t.to_bits(), "{rate} Hz, {channels} ch, step {steps}: {o} vs {t}");
                steps += 1;
                audible += (o > -70.0) as usize;
            }
        }
        assert_eq!(steps, 30);
        assert!(audible >= 14, "{audible} audible steps");
    }

    #[test]
    fn the_same_bits_as_the_crate_at_every_step() {
        use Channel::*;
        compare(48_000, &[Left, Right], 1);
        compare(44_100, &[Center], 2);
        compare(48_000, &[Left, Right, Center, Unused, LeftSurround, RightSurround], 3);
        compare(96_000, &[Left, Right, Center, Unused, LeftSurround, RightSurround, Mp090, Mm090], 4);
        compare(48_000, &[Left, Right, Center, Unused, LeftSurround, RightSurround, Mp090, Mm090, Mp060, Left], 5);
        compare(48_000, &[DualMono], 6);
    }
}
