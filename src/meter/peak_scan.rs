//! `PeakScan`: the reference meter's sample and true peak of one channel, the same bits as a
//! one-channel `ebur128` crate instance in `Mode::TRUE_PEAK`, eight or sixteen output frames at a time.
//!
//! Why not the crate itself: its interpolator runs one frame at a time (48 dependent f32
//! multiply-adds per frame at 4x), and the true peak was the largest cost of a render on the host
//! (BENCHMARKS.md, "Revisions"): every delivered file's `bext` reads it. The crate's arithmetic is
//! reproduced exactly, so every reading stays the crate's, to the bit (`tests` below compare them
//! on every block of random programmes, denormals included):
//! - the table: its 48-tap Hann-windowed sinc (`dsp::kweighting::true_peak_interpolator`, as the
//!   device meter has it), phase `p` of tap `j` at `j·factor + p`; factor 4 below 96 kHz, 2 below
//!   192 kHz, no true peak above (the crate then reads the sample peak);
//! - each upsampled sample: 0.0, then `+= x[n−j]·h[j·factor+p]` for j = 0, 1, …, as separate f32
//!   multiplies and adds (no FMA), under the crate's flush-to-zero;
//! - the peaks: max |x| as f64, max |y| in f32, each per call (`prev`) and overall; the true peak
//!   read is the larger of the two, as the crate reads it.
//!
//! Lanes are output frames, not channels: each lane performs one frame's operations in the crate's
//! order, so the vector width changes nothing but the speed.
use super::with_ftz;
use crate::dsp::kweighting::true_peak_interpolator;

/// The crate's interpolation filter length (`ebur128::interp::TAPS`).
const TAPS: usize = 48;

/// One channel's sample and true peak, streamed block by block.
#[derive(Debug, Clone)]
pub struct PeakScan {
    /// 4, 2, or 0 where the crate measures no true peak (192 kHz and up).
    factor: usize,
    /// `h[j·factor + p]`, f32 as the crate rounds it.
    table: Vec<f32>,
    /// The last `TAPS/factor − 1` input frames (oldest first), then this block: the interpolator's
    /// input, zeros before the first frame as the crate's buffer starts.
    input: Vec<f32>,
    sample_peak: f64,
    true_peak: f64,
    prev_sample_peak: f64,
    prev_true_peak: f64,
}

impl PeakScan {
    pub fn new(sample_rate: u32) -> PeakScan {
        let (factor, taps, table) = true_peak_interpolator(sample_rate).unwrap_or((0, 1, Vec::new()));
        PeakScan {
            factor,
            table,
            input: vec![0.0; taps - 1],
            sample_peak: 0.0,
            true_peak: 0.0,
            prev_sample_peak: 0.0,
            prev_true_peak: 0.0,
        }
    }

    /// Feed one block of the channel. An empty block changes nothing (the crate returns early).
    pub fn add(&mut self, x: &[f32]) {
        if x.is_empty() {
            return;
        }
        // The crate's max of |x| as f64: the same as the max of |x| in f32, widened (exact and
        // monotonic), which vectorises.
        let sample = sample_peak(x) as f64;
        self.prev_sample_peak = sample;
        if sample > self.sample_peak {
            self.sample_peak = sample;
        }
        if self.factor == 0 {
            return;
        }
        let history = self.input.len();
        self.input.extend_from_slice(x);
        let peak = with_ftz(|| scan(self.factor, &self.table, &self.input, x.len()));
        self.input.drain(..x.len());
        self.prev_true_peak = peak as f64;
        if self.prev_true_peak > self.true_peak {
            self.true_peak = self.prev_true_peak;
        }
        debug_assert_eq!(self.input.len(), history);
    }

    /// `EbuR128::true_peak`: the larger of the true and the sample peak, linear.
    pub fn true_peak(&self) -> f64 {
        if self.sample_peak > self.true_peak { self.sample_peak } else { self.true_peak }
    }

    /// `EbuR128::sample_peak`, linear.
    pub fn sample_peak(&self) -> f64 {
        self.sample_peak
    }

    /// `EbuR128::prev_true_peak`: `true_peak` of the last non-empty block alone.
    pub fn prev_true_peak(&self) -> f64 {
        if self.prev_sample_peak > self.prev_true_peak { self.prev_sample_peak } else { self.prev_true_peak }
    }
}

/// max |x| (0 for none; a NaN is passed over, as the crate's `>` passes it), sixteen lanes at a time.
fn sample_peak(x: &[f32]) -> f32 {
    let keep = |m: f32, v: f32| if v.abs() > m { v.abs() } else { m };
    let mut lanes = [0.0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..16 {
            lanes[k] = keep(lanes[k], c[k]);
        }
    }
    tail.iter().fold(lanes.iter().fold(0.0, |m, &v| keep(m, v)), |m, &v| keep(m, v))
}

/// The highest |upsampled sample| of the last `frames` frames of `input` (the taps' history
/// before them), f32.
fn scan(factor: usize, table: &[f32], input: &[f32], frames: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { scan_avx512(factor, table, input, frames) };
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX (checked just above).
            return unsafe { scan_avx(factor, table, input, frames) };
        }
    }
    scan_lanes::<4>(factor, table, input, frames)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scan_avx512(factor: usize, table: &[f32], input: &[f32], frames: usize) -> f32 {
    scan_lanes::<16>(factor, table, input, frames)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn scan_avx(factor: usize, table: &[f32], input: &[f32], frames: usize) -> f32 {
    scan_lanes::<8>(factor, table, input, frames)
}

#[inline(always)]
fn scan_lanes<const L: usize>(factor: usize, table: &[f32], input: &[f32], frames: usize) -> f32 {
    match factor {
        4 => scan_factor::<L, 4, 12>(table, input, frames),
        2 => scan_factor::<L, 2, 24>(table, input, frames),
        _ => unreachable!("PeakScan: factor {factor}"),
    }
}

/// `L` output frames per step, each lane one frame: for each phase, 0.0 then `+= x·h` over the
/// taps, newest input first, exactly as the crate's `InterpF::interpolate` and `scale_add`.
#[inline(always)]
fn scan_factor<const L: usize, const F: usize, const N: usize>(table: &[f32], input: &[f32], frames: usize) -> f32 {
    let h: &[f32; TAPS] = table.try_into().expect("a 48-tap table");
    let first = input.len() - frames;
    debug_assert_eq!(first, N - 1);
    let mut peak = [0.0f32; L];
    let mut n = 0;
    while n + L <= frames {
        let mut acc = [[0.0f32; L]; F];
        for j in 0..N {
            let x: &[f32; L] = input[first + n - j..][..L].try_into().expect("L frames");
            for (p, a) in acc.iter_mut().enumerate() {
                let c = h[j * F + p];
                for k in 0..L {
                    a[k] += x[k] * c;
                }
            }
        }
        for a in &acc {
            for k in 0..L {
                let v = a[k].abs();
                peak[k] = if v > peak[k] { v } else { peak[k] };
            }
        }
        n += L;
    }
    let mut max = peak.iter().fold(0.0f32, |m, &v| if v > m { v } else { m });
    for n in n..frames {
        for p in 0..F {
            let mut y = 0.0f32;
            for j in 0..N {
                y += input[first + n - j] * h[j * F + p];
            }
            let v = y.abs();
            if v > max {
                max = v;
            }
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebur128::{EbuR128, Mode};

    /// A deterministic test programme: a tone sweep with noise and clipped bursts, then a decay
    /// to subnormal levels and digital silence, which the flush-to-zero must treat as the crate does.
    fn programme(frames: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut noise = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        (0..frames)
            .map(|n| {
                let t = n as f32 / frames as f32;
                let tone = (n as f32 * (0.05 + 2.5 * t * t)).sin();
                let x = 0.7 * tone + 0.3 * noise();
                if t < 0.4 {
                    if (n / 997) % 5 == 0 { (1.4 * x).clamp(-1.0, 1.0) } else { x }
                } else if t < 0.8 {
                    x * 10f32.powf(-40.0 * (t - 0.4) / 0.4 * 1.0) * 1e-30
                } else {
                    0.0
                }
            })
            .collect()
    }

    fn crate_instance(rate: u32) -> EbuR128 {
        EbuR128::new(1, rate, Mode::TRUE_PEAK).expect("crate meter")
    }

    #[test]
    fn the_same_bits_as_the_crate_on_every_block() {
        for (rate, seed) in [(48_000, 1u64), (44_100, 2), (96_000, 3), (88_200, 4), (192_000, 5)] {
            let x = programme(60_000, seed);
            let mut ours = PeakScan::new(rate);
            let mut theirs = crate_instance(rate);
            let mut at = 0;
            let mut sizes = [1usize, 7, 16, 17, 4096, 0, 33, 1000, 15].iter().cycle();
            let mut blocks = 0;
            while at < x.len() {
                let n = (*sizes.next().expect("cycle")).min(x.len() - at);
                let block = &x[at..at + n];
                ours.add(block);
                theirs.add_frames_planar_f32(&[block]).expect("crate add");
                if n > 0 {
                    assert_eq!(
                        ours.prev_true_peak().to_bits(),
                        theirs.prev_true_peak(0).expect("prev").to_bits(),
                        "{rate} Hz, block at {at} of {n}"
                    );
                }
                assert_eq!(ours.true_peak().to_bits(), theirs.true_peak(0).expect("tp").to_bits(), "{rate} Hz at {at}");
                assert_eq!(ours.sample_peak().to_bits(), theirs.sample_peak(0).expect("sp").to_bits());
                at += n;
                blocks += 1;
            }
            assert!(blocks > 100);
            // The programme's peaks are real: clipped bursts read over full scale between samples.
            if rate < 192_000 {
                assert!(ours.true_peak() > 1.0, "{rate} Hz: true peak {}", ours.true_peak());
            }
            assert_eq!(ours.sample_peak(), 1.0);
        }
    }

    #[test]
    fn every_lane_width_reads_the_same_bits() {
        let x = programme(20_000, 9);
        let mut input = vec![0.0f32; 11];
        input.extend_from_slice(&x);
        let table = true_peak_interpolator(48_000).expect("4x at 48 kHz").2;
        let widths = with_ftz(|| {
            [
                scan_lanes::<1>(4, &table, &input, x.len()),
                scan_lanes::<4>(4, &table, &input, x.len()),
                scan_lanes::<8>(4, &table, &input, x.len()),
                scan_lanes::<16>(4, &table, &input, x.len()),
            ]
        });
        let mut theirs = crate_instance(48_000);
        theirs.add_frames_planar_f32(&[&x]).expect("crate add");
        for w in widths {
            assert_eq!(w as f64, theirs.prev_true_peak(0).expect("prev"));
        }
    }

    #[test]
    fn subnormal_upsampled_samples_flush_as_in_the_crate() {
        // Every input a tiny normal number: products and sums land among the subnormals.
        let x: Vec<f32> = (0..5000).map(|n| f32::MIN_POSITIVE * (1.0 + (n % 13) as f32) * 3.0).collect();
        let mut ours = PeakScan::new(48_000);
        let mut theirs = crate_instance(48_000);
        for block in x.chunks(250) {
            ours.add(block);
            theirs.add_frames_planar_f32(&[block]).expect("crate add");
            assert_eq!(ours.prev_true_peak().to_bits(), theirs.prev_true_peak(0).expect("prev").to_bits());
        }
        assert!(ours.true_peak() > 0.0);
    }
}
