//! Generated test signals, every one drawn from the seeded `Rng` (so every run on every machine sees
//! the same samples): music-like noise (one generator; `Noise` picks its colour and scale), a
//! song-like multichannel programme, white noise, sines, sweeps, impulses and a test FIR.
use std::f64::consts::PI;

use stemforge::model::EqBand;

pub use super::rng::Rng;

/// dB to amplitude.
pub fn db_to_amp(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Scale to a peak of `peak`.
pub fn normalise(x: &mut [f32], peak: f32) {
    let m = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if m > 0.0 {
        x.iter_mut().for_each(|v| *v *= peak / m);
    }
}

/// The colour and scale of `music_noise`. Each kind is a fixed sample sequence that tests rely on.
#[derive(Clone, Copy, Debug)]
pub enum Noise {
    /// Pink (Kellet's refined filter), high-passed at about 40 Hz (no DC, as real stems), with a
    /// slow level envelope that varies with the seed (so loudness varies over time the way
    /// programme does), at sample rate `.0`, scaled to RMS `.1`. The analysis tests' signal.
    Programme(u32, f64),
    /// Pink (Kellet's refined filter) of Gaussian white noise with a bass lift, scaled to RMS `.0`.
    /// The limiter tests' signal.
    BassLift(f64),
    /// Pink-ish (Kellet's economy filter), with a slow amplitude envelope (9000-frame period) so a
    /// limiter sees loud and quiet passages, peak 1.0. The GPU stage tests' signal.
    FullScale,
}

/// Paul Kellet's refined pink filter (-3 dB/octave).
#[derive(Default)]
struct KelletPink {
    b: [f64; 7],
}

impl KelletPink {
    fn next(&mut self, w: f64) -> f64 {
        let b = &mut self.b;
        b[0] = 0.99886 * b[0] + w * 0.0555179;
        b[1] = 0.99332 * b[1] + w * 0.0750759;
        b[2] = 0.96900 * b[2] + w * 0.1538520;
        b[3] = 0.86650 * b[3] + w * 0.3104856;
        b[4] = 0.55000 * b[4] + w * 0.5329522;
        b[5] = -0.7616 * b[5] - w * 0.0168980;
        let pink = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
        b[6] = w * 0.115926;
        pink
    }
}

fn scale_to_rms(mut y: Vec<f64>, rms: f64) -> Vec<f32> {
    let cur = (y.iter().map(|v| v * v).sum::<f64>() / y.len().max(1) as f64).sqrt();
    for v in &mut y {
        *v *= rms / cur;
    }
    y.into_iter().map(|v| v as f32).collect()
}

/// Seeded noise with a music-like spectrum, never zeros; see `Noise` for the kinds.
pub fn music_noise(seed: u64, frames: usize, kind: Noise) -> Vec<f32> {
    match kind {
        Noise::Programme(sample_rate, rms) => {
            let mut rng = Rng::new(seed);
            let mut pink = KelletPink::default();
            let hp_a = (-2.0 * PI * 40.0 / sample_rate as f64).exp();
            let (mut hp_x, mut hp_y) = (0.0f64, 0.0f64);
            let env_hz = 0.6 + (seed % 7) as f64 * 0.13;
            let phase = (seed % 11) as f64;
            let y = (0..frames)
                .map(|n| {
                    let p = pink.next(rng.uniform());
                    let hp = hp_a * (hp_y + p - hp_x);
                    hp_x = p;
                    hp_y = hp;
                    let t = n as f64 / sample_rate as f64;
                    hp * (0.35 + 0.65 * (2.0 * PI * env_hz * t + phase).sin().abs())
                })
                .collect();
            scale_to_rms(y, rms)
        }
        Noise::BassLift(rms) => {
            let mut rng = Rng(seed);
            let mut pink = KelletPink::default();
            let mut lp = 0.0;
            let y = (0..frames)
                .map(|_| {
                    let p = pink.next(rng.gauss());
                    lp += 0.01 * (p - lp);
                    p + 2.0 * lp
                })
                .collect();
            scale_to_rms(y, rms)
        }
        Noise::FullScale => {
            let mut rng = Rng::new(seed);
            let (mut b0, mut b1, mut b2) = (0.0f64, 0.0f64, 0.0f64);
            let mut x: Vec<f32> = (0..frames)
                .map(|n| {
                    let w = rng.uniform();
                    b0 = 0.99765 * b0 + w * 0.0990460;
                    b1 = 0.96300 * b1 + w * 0.2965164;
                    b2 = 0.57000 * b2 + w * 1.0526913;
                    let env = 0.55 + 0.45 * (2.0 * PI * n as f64 / 9000.0).sin();
                    ((b0 + b1 + b2 + w * 0.1848) * env) as f32
                })
                .collect();
            normalise(&mut x, 1.0);
            x
        }
    }
}

/// A song-like programme at 48 kHz, `channels` channels: pink-ish noise (Voss-style sum of one-pole
/// filtered noises) with a beat envelope and a tonal component, each channel peak-normalised to
/// `peak_dbfs`. Never zeros. The CLI, render and file tests' signal.
pub fn music(seed: u64, frames: usize, channels: usize, peak_dbfs: f64) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(channels);
    for c in 0..channels {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(c as u64 * 7919 + 1));
        let mut poles = [0.0f64; 4];
        let coefs = [0.999, 0.99, 0.9, 0.5];
        let f0 = 110.0 * (1.0 + (seed % 5) as f64) * (1.0 + c as f64 * 0.01);
        let mut ch: Vec<f64> = (0..frames)
            .map(|i| {
                let w = rng.uniform();
                let mut s = 0.0;
                for (p, a) in poles.iter_mut().zip(coefs) {
                    *p = a * *p + (1.0 - a) * w * 4.0;
                    s += *p;
                }
                let t = i as f64 / 48_000.0;
                let beat = 0.55 + 0.45 * (-((t * 2.0).fract()) * 6.0).exp();
                beat * (s + 0.3 * (2.0 * PI * f0 * t).sin() + 0.05 * w)
            })
            .collect();
        let peak = ch.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let g = 10f64.powf(peak_dbfs / 20.0) / peak;
        ch.iter_mut().for_each(|v| *v *= g);
        out.push(ch.into_iter().map(|v| v as f32).collect());
    }
    out
}

/// Full-scale white noise, uniform in [-1, 1): the worst case for FFT rounding (flat spectrum,
/// peaks at 0 dBFS). Drawn from `Rng(seed)` unmixed.
pub fn white(seed: u64, frames: usize) -> Vec<f32> {
    let mut r = Rng(seed);
    (0..frames).map(|_| r.uniform() as f32).collect()
}

/// amp·sin(2π·f·n/fs + phase).
pub fn sine(freq: f64, amp: f64, phase: f64, frames: usize, sample_rate: u32) -> Vec<f32> {
    (0..frames).map(|n| (amp * (2.0 * PI * freq * n as f64 / sample_rate as f64 + phase).sin()) as f32).collect()
}

/// Logarithmic sine sweep from f0 to f1 Hz at sample rate fs, amplitude `amp`.
pub fn sweep(frames: usize, fs: f64, f0: f64, f1: f64, amp: f64) -> Vec<f32> {
    let t_end = frames as f64 / fs;
    let k = (f1 / f0).ln() / t_end;
    (0..frames)
        .map(|n| {
            let t = n as f64 / fs;
            let phase = 2.0 * PI * f0 * ((k * t).exp() - 1.0) / k;
            (amp * phase.sin()) as f32
        })
        .collect()
}

/// Unit impulses every `period` frames starting at `first`, alternating sign.
pub fn impulses(frames: usize, first: usize, period: usize) -> Vec<f32> {
    let mut x = vec![0.0f32; frames];
    let mut sign = 1.0;
    let mut n = first;
    while n < frames {
        x[n] = sign;
        sign = -sign;
        n += period;
    }
    x
}

/// A FIR of `taps` taps: a windowed-sinc low-pass at `cut` (fraction of Nyquist) plus a little
/// seeded noise, so every tap matters; sum of |h| about 1-2.
pub fn test_fir(taps: usize, cut: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let c = (taps - 1) as f64 / 2.0;
    (0..taps)
        .map(|k| {
            let t = k as f64 - c;
            let sinc = if t == 0.0 { cut } else { (PI * cut * t).sin() / (PI * t) };
            let w = 0.5 - 0.5 * (2.0 * PI * (k as f64 + 0.5) / taps as f64).cos();
            (sinc * w + 0.002 * rng.uniform()) as f32
        })
        .collect()
}

/// A realistic mastering EQ: high-pass, low shelf, two peaks, high shelf, low-pass (the FIR and EQ
/// tests' filter).
pub fn realistic_eq() -> Vec<EqBand> {
    vec![
        EqBand::Highpass { freq_hz: 80.0, order: 2 },
        EqBand::LowShelf { freq_hz: 120.0, gain_db: -1.0, q: 0.707 },
        EqBand::Peak { freq_hz: 250.0, gain_db: -3.0, q: 1.4 },
        EqBand::Peak { freq_hz: 3000.0, gain_db: 2.0, q: 1.0 },
        EqBand::HighShelf { freq_hz: 10000.0, gain_db: 1.5, q: 0.707 },
        EqBand::Lowpass { freq_hz: 19000.0, order: 2 },
    ]
}
