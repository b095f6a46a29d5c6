//! `MeterBank`: the reference meters of several files written side by side (a pass's master and
//! stem files, each metered for its `bext` loudness), their K-weighting done together, every
//! file's channels in the lanes of the same vectors.
//!
//! Why: `KWeighting` is a chain of dependent operations per frame, so its cost is per frame and
//! per group of eight channels, not per channel: a stereo file leaves six of eight lanes idle, and
//! six stereo files cost six chains where two would do (BENCHMARKS.md, "Revisions"). Each lane
//! performs the same operations whichever lanes its neighbours hold, and each file's step loudness
//! sums its own channels in order from 0.0 (`KWeighting::step_loudness_of`), so every file reads
//! what its own meter would, to the bit (`tests` below).
//!
//! How it is fed: each file hands its block to `add` from its writer (the writers run in
//! parallel). Its meter takes the block's peaks and counts its steps at once; the samples wait in
//! the bank until every file has handed in the same block, and the file that completes it filters
//! them all and hands each meter its steps' loudness (`LoudnessMeter::external_step`). Every
//! file of a bank must therefore be given every block, of the same length: the files of one
//! writing pass at its own rate.
use std::ops::Range;
use std::sync::Mutex;

use ebur128::Channel;

use super::{KWeighting, LoudnessMeter, LoudnessStats};

/// The meters of several files at one sample rate, K-weighted together.
pub struct MeterBank {
    meters: Vec<Mutex<LoudnessMeter>>,
    shared: Mutex<Shared>,
}

/// The K-weighting of every file's channels, and the block being gathered.
struct Shared {
    weighting: KWeighting,
    /// Each file's channels among the bank's.
    ranges: Vec<Range<usize>>,
    /// The block being gathered, per bank channel, and which files have handed it in.
    block: Vec<Vec<f32>>,
    handed: Vec<bool>,
    len: Option<usize>,
    step: usize,
    in_step: usize,
}

impl MeterBank {
    /// A bank of `meters` (each turned to `LoudnessMeter::weighted_externally` by the caller, with
    /// the channel map it returned), all at `sample_rate`.
    pub fn new(sample_rate: u32, meters: Vec<(LoudnessMeter, Vec<Channel>)>) -> MeterBank {
        let mut map = Vec::new();
        let mut ranges = Vec::new();
        for (_, m) in &meters {
            ranges.push(map.len()..map.len() + m.len());
            map.extend_from_slice(m);
        }
        let step = meters.first().map_or(1, |(m, _)| m.step());
        MeterBank {
            shared: Mutex::new(Shared {
                weighting: KWeighting::new(sample_rate, &map),
                block: vec![Vec::new(); map.len()],
                handed: vec![false; ranges.len()],
                ranges,
                len: None,
                step,
                in_step: 0,
            }),
            meters: meters.into_iter().map(|(m, _)| Mutex::new(m)).collect(),
        }
    }

    /// File `file`'s next block, `planar[ch][frame]`.
    pub fn add(&self, file: usize, planar: &[&[f32]]) {
        self.meters[file].lock().expect("meter lock").add_planar(planar);
        let mut shared = self.shared.lock().expect("bank lock");
        let len = planar.first().map_or(0, |c| c.len());
        assert!(!shared.handed[file], "MeterBank::add: file {file} handed in a block twice");
        assert!(shared.len.is_none_or(|l| l == len), "MeterBank::add: blocks of unequal length");
        shared.len = Some(len);
        shared.handed[file] = true;
        let range = shared.ranges[file].clone();
        for (dst, src) in shared.block[range].iter_mut().zip(planar) {
            dst.clear();
            dst.extend_from_slice(src);
        }
        if shared.handed.iter().all(|&h| h) {
            shared.weigh(&self.meters);
        }
    }

    /// File `file`'s readings (every block handed in by every file).
    pub fn result(&self, file: usize) -> LoudnessStats {
        assert!(
            self.shared.lock().expect("bank lock").handed.iter().all(|&h| !h),
            "MeterBank::result: a block not handed in by every file"
        );
        self.meters[file].lock().expect("meter lock").result()
    }
}

impl Shared {
    /// K-weight the gathered block in 100 ms steps; at each step's end hand every meter its
    /// loudness.
    fn weigh(&mut self, meters: &[Mutex<LoudnessMeter>]) {
        let len = self.len.take().unwrap_or(0);
        let mut at = 0;
        while at < len {
            let n = (self.step - self.in_step).min(len - at);
            let part: Vec<&[f32]> = self.block.iter().map(|c| &c[at..at + n]).collect();
            self.weighting.add(&part);
            at += n;
            self.in_step += n;
            if self.in_step == self.step {
                self.in_step = 0;
                for (range, meter) in self.ranges.iter().zip(meters) {
                    let loudness = self.weighting.step_loudness_of(range.clone());
                    meter.lock().expect("meter lock").external_step(loudness);
                }
            }
        }
        self.handed.iter_mut().for_each(|h| *h = false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Layout;

    fn programme(seed: u64, channels: usize, frames: usize) -> Vec<Vec<f32>> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..channels)
            .map(|c| {
                (0..frames)
                    .map(|t| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let noise = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                        // A level that moves over seconds, so that the gating and the LRA have work.
                        let level = 0.2 + 0.15 * ((t as f32 / 48_000.0 + c as f32) * 1.3).sin();
                        noise * level
                    })
                    .collect()
            })
            .collect()
    }

    /// Files of 2, 6 (5.1), 1 and 2 channels in one bank, fed in odd blocks: each reads exactly
    /// what its own meter reads (every field, to the bit).
    #[test]
    fn a_bank_reads_what_each_meter_reads() {
        let fs = 48_000;
        let frames = 7 * fs as usize + 1234;
        let files: Vec<(usize, Option<Layout>)> =
            vec![(2, Some(Layout::Stereo)), (6, Some(Layout::Surround51)), (1, None), (2, Some(Layout::Stereo))];
        let signals: Vec<Vec<Vec<f32>>> =
            files.iter().enumerate().map(|(i, &(ch, _))| programme(i as u64 + 1, ch, frames)).collect();
        let mut own: Vec<LoudnessMeter> =
            files.iter().map(|&(ch, l)| LoudnessMeter::new(ch, fs, l).expect("meter")).collect();
        let bank = MeterBank::new(
            fs,
            files
                .iter()
                .map(|&(ch, l)| {
                    let mut m = LoudnessMeter::new(ch, fs, l).expect("meter");
                    let map = m.weighted_externally().expect("step mode at 48 kHz");
                    (m, map)
                })
                .collect(),
        );
        let mut at = 0;
        for block in [1000, 4800, 17, 65536, 9600, 333].iter().cycle() {
            if at >= frames {
                break;
            }
            let n = (*block).min(frames - at);
            for (f, s) in signals.iter().enumerate() {
                let planes: Vec<&[f32]> = s.iter().map(|c| &c[at..at + n]).collect();
                own[f].add_planar(&planes);
                bank.add(f, &planes);
            }
            at += n;
        }
        for (f, m) in own.iter().enumerate() {
            let (want, got) = (m.result(), bank.result(f));
            assert!(want.integrated_lufs.is_finite() && want.lra_lu > 0.0, "file {f}: {want:?}");
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "file {f}");
        }
    }
}
