//! Generated test signals for the GPU tests (never zeros): seeded noise with a music-like (pink)
//! spectrum, sweeps, sines and impulses, scaled to full scale.
#![allow(dead_code)]

#[path = "rng.rs"]
mod rng;
pub use rng::Rng;

/// Scale to a peak of `peak`.
pub fn normalise(x: &mut [f32], peak: f32) {
    let m = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if m > 0.0 {
        x.iter_mut().for_each(|v| *v *= peak / m);
    }
}

/// Pink-ish noise (Paul Kellet's economy filter, about -3 dB/octave like a music spectrum), with
/// a slow amplitude envelope so a limiter sees loud and quiet passages; peak 1.0.
pub fn music_noise(frames: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let (mut b0, mut b1, mut b2) = (0.0f64, 0.0f64, 0.0f64);
    let mut x: Vec<f32> = (0..frames)
        .map(|n| {
            let w = rng.uniform();
            b0 = 0.99765 * b0 + w * 0.0990460;
            b1 = 0.96300 * b1 + w * 0.2965164;
            b2 = 0.57000 * b2 + w * 1.0526913;
            let env = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * n as f64 / 9000.0).sin();
            ((b0 + b1 + b2 + w * 0.1848) * env) as f32
        })
        .collect();
    normalise(&mut x, 1.0);
    x
}

/// Logarithmic sine sweep from f0 to f1 Hz at sample rate fs, amplitude `amp`.
pub fn sweep(frames: usize, fs: f64, f0: f64, f1: f64, amp: f64) -> Vec<f32> {
    let t_end = frames as f64 / fs;
    let k = (f1 / f0).ln() / t_end;
    (0..frames)
        .map(|n| {
            let t = n as f64 / fs;
            let phase = 2.0 * std::f64::consts::PI * f0 * ((k * t).exp() - 1.0) / k;
            (amp * phase.sin()) as f32
        })
        .collect()
}

pub fn sine(frames: usize, fs: f64, f: f64, amp: f64) -> Vec<f32> {
    (0..frames).map(|n| (amp * (2.0 * std::f64::consts::PI * f * n as f64 / fs).sin()) as f32).collect()
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
            let sinc = if t == 0.0 { cut } else { (std::f64::consts::PI * cut * t).sin() / (std::f64::consts::PI * t) };
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * (k as f64 + 0.5) / taps as f64).cos();
            (sinc * w + 0.002 * rng.uniform()) as f32
        })
        .collect()
}
