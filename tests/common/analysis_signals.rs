//! Generated test signals and WAV writing for the analysis tests (measure, compare, check).
#![allow(dead_code)]
use std::f64::consts::PI;
use std::path::Path;

#[path = "rng.rs"]
mod rng;
pub use rng::Rng;

/// Seeded noise with a music-like spectrum: pink (Paul Kellet's filter, -3 dB/octave), a one-pole
/// high-pass at about 40 Hz (no DC, as real stems), and a slow level envelope (so loudness varies
/// over time the way programme does), scaled to RMS `rms`.
pub fn music_noise(seed: u64, frames: usize, sample_rate: u32, rms: f64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut b = [0.0f64; 7];
    let hp_a = (-2.0 * PI * 40.0 / sample_rate as f64).exp();
    let (mut hp_x, mut hp_y) = (0.0f64, 0.0f64);
    let env_hz = 0.6 + (seed % 7) as f64 * 0.13;
    let phase = (seed % 11) as f64;
    let mut y: Vec<f64> = (0..frames)
        .map(|n| {
            let w = rng.uniform();
            b[0] = 0.99886 * b[0] + w * 0.0555179;
            b[1] = 0.99332 * b[1] + w * 0.0750759;
            b[2] = 0.96900 * b[2] + w * 0.1538520;
            b[3] = 0.86650 * b[3] + w * 0.3104856;
            b[4] = 0.55000 * b[4] + w * 0.5329522;
            b[5] = -0.7616 * b[5] - w * 0.0168980;
            let pink = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
            b[6] = w * 0.115926;
            let hp = hp_a * (hp_y + pink - hp_x);
            hp_x = pink;
            hp_y = hp;
            let t = n as f64 / sample_rate as f64;
            hp * (0.35 + 0.65 * (2.0 * PI * env_hz * t + phase).sin().abs())
        })
        .collect();
    let cur = (y.iter().map(|v| v * v).sum::<f64>() / frames.max(1) as f64).sqrt();
    for v in &mut y {
        *v *= rms / cur;
    }
    y.into_iter().map(|v| v as f32).collect()
}

/// amp·sin(2π·f·n/fs + phase).
pub fn sine(freq: f64, amp: f64, phase: f64, frames: usize, sample_rate: u32) -> Vec<f32> {
    (0..frames).map(|n| (amp * (2.0 * PI * freq * n as f64 / sample_rate as f64 + phase).sin()) as f32).collect()
}

pub fn db_to_amp(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

#[derive(Clone, Copy, Debug)]
pub enum Fmt {
    I16,
    I24,
    F32,
}

/// Write planar `[ch][frame]` as a WAV through hound (WAVE_FORMAT_EXTENSIBLE with the first
/// `channels` mask bits for more than 2 channels: 5.1 = FL FR FC LFE BL BR).
pub fn write_wav(path: &Path, planar: &[Vec<f32>], sample_rate: u32, fmt: Fmt) {
    let channels = planar.len();
    let frames = planar.first().map_or(0, |c| c.len());
    assert!(planar.iter().all(|c| c.len() == frames), "ragged test signal");
    let (bits, sample_format) = match fmt {
        Fmt::I16 => (16, hound::SampleFormat::Int),
        Fmt::I24 => (24, hound::SampleFormat::Int),
        Fmt::F32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec { channels: channels as u16, sample_rate, bits_per_sample: bits, sample_format };
    let mut w = hound::WavWriter::create(path, spec).expect("create test WAV");
    for n in 0..frames {
        for c in planar {
            let x = c[n];
            match fmt {
                Fmt::F32 => w.write_sample(x).unwrap(),
                Fmt::I16 => w.write_sample((x as f64 * 32768.0).round().clamp(-32768.0, 32767.0) as i16).unwrap(),
                Fmt::I24 => w.write_sample((x as f64 * 8388608.0).round().clamp(-8388608.0, 8388607.0) as i32).unwrap(),
            }
        }
    }
    w.finalize().expect("finalize test WAV");
}
