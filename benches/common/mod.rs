//! Shared by the harness-less benches: deterministic music-like stem synthesis streamed to disk,
//! the cached bench-data folder, child processes timed with their peak RSS (wait4), and tables.
#![allow(dead_code)]

pub mod five_stems;

use std::f64::consts::PI;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stemforge::io::WriterSpec;
use stemforge::io::wav_writer::WavWriter;
use stemforge::model::{EqBand, Layout, SampleFormat};

pub const FS: u32 = 48_000;
const FSF: f64 = FS as f64;
/// Frames synthesised and written per step: the generators stream, nothing holds a whole stem.
pub const GEN_BLOCK: usize = 8192;

// ---------------------------------------------------------------------------------------------
// Environment and folders

/// `target/` of this package (or `$CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// `target/bench-data/<name>`: generated inputs are cached here across bench runs.
pub fn bench_data(name: &str) -> PathBuf {
    target_dir().join("bench-data").join(name)
}

/// A positive number from the environment, or `default`; a malformed value stops the bench.
pub fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => x,
            _ => panic!("{name}={v:?}: expected a positive number"),
        },
        Err(_) => default,
    }
}

pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(x) if x > 0 => x,
            _ => panic!("{name}={v:?}: expected a whole number of at least 1"),
        },
        Err(_) => default,
    }
}

/// The current 1-minute load average: these machines are shared, so every table states it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `Model name` and CPU count from /proc/cpuinfo, total memory from /proc/meminfo.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    format!("{model}, {cpus} CPUs available, {:.1} GiB memory", mem_kib as f64 / 1048576.0)
}

// ---------------------------------------------------------------------------------------------
// Synthesis: deterministic, music-like, block-streamed

#[path = "../../tests/common/rng.rs"]
mod rng;
pub use rng::Rng;

/// A direct-form-II-transposed biquad whose coefficients can change while it keeps its state
/// (sweeps and vowel changes without clicks). RBJ Audio-EQ-Cookbook band-pass / high-pass / low-pass.
#[derive(Clone)]
pub struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    z: [f64; 2],
}
impl Biquad {
    fn new() -> Biquad {
        Biquad { b: [1.0, 0.0, 0.0], a: [0.0, 0.0], z: [0.0; 2] }
    }
    fn set(&mut self, b: [f64; 3], a0: f64, a: [f64; 2]) {
        self.b = [b[0] / a0, b[1] / a0, b[2] / a0];
        self.a = [a[0] / a0, a[1] / a0];
    }
    /// RBJ BPF, constant 0 dB peak gain.
    pub fn bandpass(mut self, f: f64, q: f64) -> Biquad {
        let w = 2.0 * PI * f / FSF;
        let alpha = w.sin() / (2.0 * q);
        self.set([alpha, 0.0, -alpha], 1.0 + alpha, [-2.0 * w.cos(), 1.0 - alpha]);
        self
    }
    pub fn highpass(mut self, f: f64, q: f64) -> Biquad {
        let w = 2.0 * PI * f / FSF;
        let (c, alpha) = (w.cos(), w.sin() / (2.0 * q));
        self.set([(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0], 1.0 + alpha, [-2.0 * c, 1.0 - alpha]);
        self
    }
    pub fn lowpass(mut self, f: f64, q: f64) -> Biquad {
        let w = 2.0 * PI * f / FSF;
        let (c, alpha) = (w.cos(), w.sin() / (2.0 * q));
        self.set([(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0], 1.0 + alpha, [-2.0 * c, 1.0 - alpha]);
        self
    }
    fn retune_bandpass(&mut self, f: f64, q: f64) {
        let z = self.z;
        *self = Biquad::new().bandpass(f, q);
        self.z = z;
    }
    #[inline]
    pub fn run(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

const BPM: f64 = 120.0;
/// Frames per beat at 120 BPM.
const BEAT: u64 = (FSF * 60.0 / BPM) as u64;
/// Chord roots (Hz), one per bar (4 beats): A minor, F, C, G.
const ROOTS: [f64; 4] = [55.0, 43.65, 65.41, 49.0];
/// Section intensity, one per 16 bars (32 s): verse, build, chorus, break. Gives the program
/// loudness range and gives the limiter louder and quieter passages to work on.
const SECTIONS: [f64; 4] = [0.55, 0.75, 1.0, 0.4];

fn section_gain(i: u64) -> f64 {
    SECTIONS[((i / (BEAT * 64)) % 4) as usize]
}

fn root(i: u64) -> f64 {
    ROOTS[((i / (BEAT * 4)) % 4) as usize]
}

/// The kinds of stem the benches use: a band's five (stereo) and a film's DME (mono dialogue,
/// 5.1 music, 5.1 effects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StemKind {
    Drums,
    Bass,
    Music,
    Vocals,
    Fx,
    Dialogue,
    Music51,
    Effects51,
}

impl StemKind {
    pub fn name(self) -> &'static str {
        match self {
            StemKind::Drums => "drums",
            StemKind::Bass => "bass",
            StemKind::Music => "music",
            StemKind::Vocals => "vocals",
            StemKind::Fx => "fx",
            StemKind::Dialogue => "dialogue",
            StemKind::Music51 => "music",
            StemKind::Effects51 => "effects",
        }
    }
    /// Output level of each kind, so that a stem sits where a mix engineer would print it (peaks
    /// below full scale) and the 5-stem bus lands a few dB under -14 LUFS with peaks above the
    /// ceiling: normalisation then pushes into the limiter, as in a real master.
    fn trim(self) -> f64 {
        match self {
            StemKind::Drums => 0.7,
            StemKind::Bass => 0.32,
            StemKind::Music => 0.42,
            StemKind::Vocals => 0.25,
            StemKind::Fx => 0.7,
            StemKind::Dialogue => 0.3,
            StemKind::Music51 => 0.3,
            StemKind::Effects51 => 0.5,
        }
    }
    pub fn channels(self) -> usize {
        match self {
            StemKind::Dialogue => 1,
            StemKind::Music51 | StemKind::Effects51 => 6,
            _ => 2,
        }
    }
}

/// One stem's generator: `fill` writes the next frames of every channel, carrying all state.
pub struct Synth {
    kind: StemKind,
    i: u64,
    rng: Rng,
    bp: Vec<Biquad>,
    phases: [f64; 16],
    lp: [f64; 8],
    /// Short delay line (vocal doubling, surround decorrelation).
    delay: Vec<f64>,
    at: usize,
}

impl Synth {
    pub fn new(kind: StemKind, seed: u64) -> Synth {
        let bp = match kind {
            // snare body, hats
            StemKind::Drums => vec![Biquad::new().bandpass(1800.0, 0.8), Biquad::new().highpass(7000.0, 0.7)],
            // formants F1..F3 of an "ah"
            StemKind::Vocals | StemKind::Dialogue => vec![
                Biquad::new().bandpass(730.0, 6.0),
                Biquad::new().bandpass(1090.0, 9.0),
                Biquad::new().bandpass(2440.0, 12.0),
            ],
            // riser band-pass (L, R), impact low-pass
            StemKind::Fx => vec![
                Biquad::new().bandpass(300.0, 3.0),
                Biquad::new().bandpass(300.0, 3.0),
                Biquad::new().lowpass(150.0, 0.7),
            ],
            // LFE low-pass
            StemKind::Music51 => vec![Biquad::new().lowpass(100.0, 0.707)],
            // whoosh band-pass, impact low-pass, ambience low-pass x2
            StemKind::Effects51 => vec![
                Biquad::new().bandpass(500.0, 2.0),
                Biquad::new().lowpass(120.0, 0.7),
                Biquad::new().lowpass(900.0, 0.5),
                Biquad::new().lowpass(900.0, 0.5),
            ],
            _ => Vec::new(),
        };
        Synth {
            kind,
            i: 0,
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            bp,
            phases: [0.0; 16],
            lp: [0.0; 8],
            delay: vec![0.0; 2048],
            at: 0,
        }
    }

    /// Write the next `frames` frames into `out[ch][..frames]` (full scale 1.0).
    pub fn fill(&mut self, out: &mut [Vec<f32>], frames: usize) {
        assert_eq!(out.len(), self.kind.channels());
        let mut frame = [0.0f64; 8];
        let trim = self.kind.trim();
        for f in 0..frames {
            self.sample(&mut frame);
            for (c, o) in out.iter_mut().enumerate() {
                o[f] = (trim * frame[c]).clamp(-1.0, 1.0) as f32;
            }
            self.i += 1;
        }
    }

    fn sample(&mut self, y: &mut [f64; 8]) {
        let i = self.i;
        let t_abs = i as f64 / FSF;
        let sec = section_gain(i);
        match self.kind {
            StemKind::Drums => {
                let b = i / BEAT;
                let t = (i % BEAT) as f64 / FSF;
                // Kick: a sine falling 120 -> 45 Hz with a fast decay, on every beat.
                let ph = 2.0 * PI * (45.0 * t + 75.0 / 30.0 * (1.0 - (-t * 30.0).exp()));
                let kick = 0.6 * (-t * 9.0).exp() * ph.sin();
                // Snare on beats 2 and 4: band-passed noise and a 190 Hz body.
                let n = self.rng.uniform();
                let sn = self.bp[0].run(n);
                let snare =
                    if b % 2 == 1 { (0.6 * sn + 0.25 * (2.0 * PI * 190.0 * t).sin()) * (-t * 18.0).exp() } else { 0.0 };
                // Hats on eighths (sixteenths in the loud sections).
                let div = if sec > 0.9 { BEAT / 4 } else { BEAT / 2 };
                let te = (i % div) as f64 / FSF;
                let hat = 0.3 * self.bp[1].run(self.rng.uniform()) * (-te * 60.0).exp();
                let g = 0.5 + 0.5 * sec;
                y[0] = g * (kick + snare + 0.6 * hat);
                y[1] = g * (kick + 0.9 * snare + hat);
            }
            StemKind::Bass => {
                let f = root(i) * if (i / (BEAT / 2)) % 4 == 3 { 2.0 } else { 1.0 };
                self.phases[0] = (self.phases[0] + f / FSF) % 1.0;
                self.phases[1] = (self.phases[1] + f * 1.004 / FSF) % 1.0;
                let saw = 2.0 * self.phases[0] - 1.0;
                let saw2 = 2.0 * self.phases[1] - 1.0;
                // One-pole low-pass at ~400 Hz: a round synth bass.
                let k = 1.0 - (-2.0 * PI * 400.0 / FSF).exp();
                self.lp[0] += k * (saw - self.lp[0]);
                self.lp[1] += k * (saw2 - self.lp[1]);
                let t = (i % (BEAT / 2)) as f64 / FSF;
                let env = (1.0 - (-t * 200.0).exp()) * (0.6 + 0.4 * (-t * 6.0).exp()) * (0.6 + 0.4 * sec);
                y[0] = 0.8 * env * (0.8 * self.lp[0] + 0.2 * self.lp[1]);
                y[1] = 0.8 * env * (0.2 * self.lp[0] + 0.8 * self.lp[1]);
            }
            StemKind::Music | StemKind::Music51 => {
                let bar = (i / (BEAT * 4)) % 4;
                let r = root(i) * 4.0;
                let chord = [1.0, if bar == 0 { 1.189 } else { 1.26 }, 1.498];
                let t_in = (i % (BEAT * 4)) as f64 / FSF;
                let env = (1.0 - (-t_in * 8.0).exp()) * 0.12 * (0.5 + 0.5 * sec);
                let (mut l, mut rr) = (0.0, 0.0);
                for (v, ratio) in chord.iter().enumerate() {
                    for (k, detune) in [0.997, 1.003].iter().enumerate() {
                        let p = &mut self.phases[v * 2 + k];
                        *p = (*p + r * ratio * detune / FSF) % 1.0;
                        let s = (2.0 * PI * *p).sin() + 0.3 * (4.0 * PI * *p).sin() + 0.1 * (6.0 * PI * *p).sin();
                        if k == 0 {
                            l += env * s;
                            rr += 0.6 * env * s;
                        } else {
                            rr += env * s;
                            l += 0.6 * env * s;
                        }
                    }
                }
                // A breathy pad: two decorrelated noises through one-pole low-passes.
                let k = 1.0 - (-2.0 * PI * 2500.0 / FSF).exp();
                let (n0, n1) = (self.rng.uniform(), self.rng.uniform());
                self.lp[0] += k * (n0 - self.lp[0]);
                self.lp[1] += k * (n1 - self.lp[1]);
                let pad = 0.05 * (0.4 + 0.6 * sec);
                y[0] = l + pad * self.lp[0];
                y[1] = rr + pad * self.lp[1];
                if self.kind == StemKind::Music51 {
                    // C: the chord's centre; LFE: the low end; Ls/Rs: the pad, delayed for width.
                    let (l0, r0) = (y[0], y[1]);
                    y[2] = 0.35 * (l0 + r0);
                    self.phases[8] = (self.phases[8] + root(i) / FSF) % 1.0;
                    y[3] = 0.5 * self.bp[0].run((2.0 * PI * self.phases[8]).sin() * (0.5 + 0.5 * sec));
                    let d = &mut self.delay;
                    let n = d.len();
                    d[self.at] = self.lp[0] - self.lp[1];
                    let back = d[(self.at + n - 1103) % n];
                    self.at = (self.at + 1) % n;
                    y[4] = 0.6 * pad * self.lp[1] + 0.3 * l0;
                    y[5] = 0.6 * pad * back + 0.3 * r0;
                }
            }
            StemKind::Vocals | StemKind::Dialogue => {
                let speech = self.kind == StemKind::Dialogue;
                // Vocals: a melody on the beat; dialogue: syllables at ~4.5/s in phrases with pauses.
                let (f0, env, vowel) = if speech {
                    let syl = FSF as u64 * 2 / 9;
                    let s = i / syl;
                    let phrase = (i / (FSF as u64 * 3)) % 5;
                    let ts = (i % syl) as f64 / FSF;
                    let talking = phrase != 4 && (s % 7) != 6;
                    let inton =
                        1.0 + 0.15 * ((s % 5) as f64 / 4.0 - 0.5) - 0.1 * ((i % (FSF as u64 * 3)) as f64 / (FSF * 3.0));
                    let env = if talking { (ts * 40.0).min(1.0) * (-(ts * 9.0)).exp() * 2.2 } else { 0.0 };
                    (120.0 * inton, env, (s % 5) as usize)
                } else {
                    let melody = [220.0, 246.94, 261.63, 246.94, 220.0, 196.0, 293.66, 261.63];
                    let note = melody[((i / BEAT) % 8) as usize];
                    let tn = (i % BEAT) as f64 / FSF;
                    let env = (1.0 - (-tn * 25.0).exp()) * if tn > 0.4 { (-(tn - 0.4) * 20.0).exp() } else { 1.0 };
                    let vib = 1.0 + 0.012 * (2.0 * PI * 5.5 * t_abs).sin();
                    (note * vib, env * (0.6 + 0.4 * sec), ((i / (BEAT * 2)) % 5) as usize)
                };
                // Vowel formants (F1, F2, F3), re-tuned at each vowel change with state kept.
                const VOWELS: [[f64; 3]; 5] = [
                    [730.0, 1090.0, 2440.0],
                    [530.0, 1840.0, 2480.0],
                    [270.0, 2290.0, 3010.0],
                    [570.0, 840.0, 2410.0],
                    [300.0, 870.0, 2240.0],
                ];
                if i.is_multiple_of(2400) {
                    for (k, q) in [6.0, 9.0, 12.0].iter().enumerate() {
                        self.bp[k].retune_bandpass(VOWELS[vowel][k], *q);
                    }
                }
                self.phases[0] = (self.phases[0] + f0 / FSF) % 1.0;
                // Glottal pulse train (a sharp saw) plus breath noise, rich for the formants to shape.
                let glottal = 1.0 - 2.0 * self.phases[0] + 0.05 * self.rng.uniform();
                let g = [1.0, 0.6, 0.3];
                let voice: f64 = self.bp.iter_mut().zip(g).map(|(b, g)| g * b.run(glottal)).sum();
                let v = 1.4 * voice * env;
                if speech {
                    y[0] = v;
                } else {
                    // A short doubling on the right for width.
                    let d = &mut self.delay;
                    let n = d.len();
                    d[self.at] = v;
                    let back = d[(self.at + n - 576) % n];
                    self.at = (self.at + 1) % n;
                    y[0] = v + 0.2 * back;
                    y[1] = 0.8 * v + 0.35 * back;
                }
            }
            StemKind::Fx => {
                // A riser every 8 bars (16 s): noise through a band-pass sweeping 300 Hz -> 6 kHz,
                // panning left to right; an impact at each phrase start.
                let phrase = BEAT * 32;
                let pos = (i % phrase) as f64 / phrase as f64;
                if i.is_multiple_of(32) {
                    let f = 300.0 * 20f64.powf(pos);
                    self.bp[0].retune_bandpass(f, 3.0);
                    self.bp[1].retune_bandpass(f * 1.02, 3.0);
                }
                let amp = 0.5 * pos * pos * (0.5 + 0.5 * sec);
                let sl = self.bp[0].run(self.rng.uniform());
                let sr = self.bp[1].run(self.rng.uniform());
                let ti = (i % phrase) as f64 / FSF;
                let impact = 1.2 * self.bp[2].run(self.rng.uniform()) * (-ti * 4.0).exp();
                y[0] = amp * sl * (1.0 - pos).sqrt() + impact;
                y[1] = amp * sr * pos.sqrt() + impact;
            }
            StemKind::Effects51 => {
                // Ambience on every channel (low-passed noise), whooshes panned around the room
                // every 5 s, an impact every 11 s (mostly LFE and front).
                let k = 1.0 - (-2.0 * PI * 700.0 / FSF).exp();
                for c in 0..6 {
                    let n = self.rng.uniform();
                    self.lp[c] += k * (n - self.lp[c]);
                }
                let amb = 0.08 * (0.5 + 0.5 * sec);
                let w_len = FS as u64 * 5;
                let wpos = (i % w_len) as f64 / w_len as f64;
                if i.is_multiple_of(32) {
                    self.bp[0].retune_bandpass(400.0 * 8f64.powf((PI * wpos).sin()), 2.0);
                }
                let whoosh = self.bp[0].run(self.rng.uniform()) * (PI * wpos).sin().powi(2) * 0.7;
                // Pan angle around L, R, Rs, Ls.
                let ang = 2.0 * PI * ((i / w_len) as f64 * 0.37 + wpos * 0.5);
                let (front, side) = (ang.cos(), ang.sin());
                let ti = (i % (FS as u64 * 11)) as f64 / FSF;
                let boom = 1.1 * self.bp[1].run(self.rng.uniform()) * (-ti * 3.0).exp();
                y[0] = amb * self.lp[0] + whoosh * (0.5 + 0.5 * front).max(0.0) * (0.5 + 0.5 * side) + 0.4 * boom;
                y[1] = amb * self.lp[1] + whoosh * (0.5 + 0.5 * front).max(0.0) * (0.5 - 0.5 * side) + 0.4 * boom;
                y[2] = amb * self.lp[2] * 0.5 + 0.2 * boom;
                y[3] = boom;
                y[4] = amb * self.lp[4] + whoosh * (0.5 - 0.5 * front).max(0.0) * (0.5 + 0.5 * side);
                y[5] = amb * self.lp[5] + whoosh * (0.5 - 0.5 * front).max(0.0) * (0.5 - 0.5 * side);
            }
        }
    }
}

/// Write `frames` frames of `kind` as a 24-bit WAV (RF64 past 4 GiB) through stemforge's own
/// writer, streamed block by block (no dither: the synthesis is the signal). Written under a
/// temporary name and renamed when complete, so an interrupted generation leaves no stem behind.
pub fn write_stem(path: &Path, kind: StemKind, frames: u64, seed: u64) {
    let ch = kind.channels();
    let spec = WriterSpec {
        sample_rate: FS,
        channels: ch,
        layout: Layout::for_channels(ch),
        format: SampleFormat::Pcm24,
        dither_seed: None,
    };
    let mut w = WavWriter::create(path, &spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut synth = Synth::new(kind, seed);
    let mut buf = vec![vec![0.0f32; GEN_BLOCK]; ch];
    let mut done = 0u64;
    while done < frames {
        let n = (frames - done).min(GEN_BLOCK as u64) as usize;
        synth.fill(&mut buf, n);
        let planes: Vec<&[f32]> = buf.iter().map(|c| &c[..n]).collect();
        w.write_planar(&planes, n).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        done += n as u64;
    }
    w.finish().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A mono 32-bit float WAV of `taps` (an impulse response for ffmpeg's afir).
pub fn write_ir(path: &Path, taps: &[f32]) {
    let spec = WriterSpec { sample_rate: FS, channels: 1, layout: None, format: SampleFormat::F32, dither_seed: None };
    let mut w = WavWriter::create(path, &spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    w.write_planar(&[taps], taps.len()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    w.finish().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Read every file once, so the first timed run does not pay for a cold page cache. Streamed in
/// 1 MiB reads, to keep this process small.
pub fn warm_cache(paths: &[PathBuf]) {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    for p in paths {
        if let Ok(mut f) = std::fs::File::open(p) {
            while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
    std::hint::black_box(&buf);
}

// ---------------------------------------------------------------------------------------------
// Session files

/// One band as a TOML inline table in the session file's syntax.
pub fn band_toml(b: &EqBand) -> String {
    match b {
        EqBand::Peak { freq_hz, gain_db, q } => {
            format!("{{ type = \"peak\", freq_hz = {freq_hz:?}, gain_db = {gain_db:?}, q = {q:?} }}")
        }
        EqBand::LowShelf { freq_hz, gain_db, q } => {
            format!("{{ type = \"low_shelf\", freq_hz = {freq_hz:?}, gain_db = {gain_db:?}, q = {q:?} }}")
        }
        EqBand::HighShelf { freq_hz, gain_db, q } => {
            format!("{{ type = \"high_shelf\", freq_hz = {freq_hz:?}, gain_db = {gain_db:?}, q = {q:?} }}")
        }
        EqBand::Highpass { freq_hz, order } => {
            format!("{{ type = \"highpass\", freq_hz = {freq_hz:?}, order = {order} }}")
        }
        EqBand::Lowpass { freq_hz, order } => {
            format!("{{ type = \"lowpass\", freq_hz = {freq_hz:?}, order = {order} }}")
        }
        EqBand::Notch { freq_hz, q } => format!("{{ type = \"notch\", freq_hz = {freq_hz:?}, q = {q:?} }}"),
        EqBand::Bandpass { freq_hz, q } => format!("{{ type = \"bandpass\", freq_hz = {freq_hz:?}, q = {q:?} }}"),
        EqBand::Tilt { freq_hz, gain_db } => {
            format!("{{ type = \"tilt\", freq_hz = {freq_hz:?}, gain_db = {gain_db:?} }}")
        }
    }
}

pub fn eq_toml(bands: &[EqBand]) -> String {
    let items: Vec<String> = bands.iter().map(|b| format!("  {},\n", band_toml(b))).collect();
    format!("eq = [\n{}]\n", items.concat())
}

// ---------------------------------------------------------------------------------------------
// Child processes: wall time and peak RSS

/// What one child cost.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    /// The child's own peak RSS (KiB): the largest VmHWM of /proc/<pid>/status seen while it ran
    /// (polled every few ms). Not wait4's ru_maxrss: Command spawns with vfork semantics
    /// (posix_spawn, CLONE_VM) and exec records the outgoing memory's high-water mark, which is
    /// this bench's, in the child's maxrss; so ru_maxrss reads at least the bench's own peak
    /// (checked: after touching 200 MB in the parent, `/bin/true` reads 206 MB).
    /// CPU times: user and system seconds.
    pub max_rss_kib: i64,
    pub user_s: f64,
    pub sys_s: f64,
}

impl Measured {
    /// CPU time over wall time: how many cores the child kept busy on average.
    pub fn cores_busy(&self) -> f64 {
        (self.user_s + self.sys_s) / self.wall.as_secs_f64()
    }
}

/// This process's reaped children's CPU time so far (cutime, cstime of /proc/self/stat), seconds.
/// A child's times are added when it is waited for, so the difference across one child's wait is
/// that child's CPU time (at the kernel's USER_HZ resolution, 10 ms: fine for runs of seconds).
fn children_cpu_s() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the parenthesised command name (which may hold spaces): state is field 3, so
    // cutime and cstime (fields 16, 17) are at 13 and 14 after it.
    let rest = &s[s.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // USER_HZ: /proc reports clock ticks of 1/100 s on Linux whatever the kernel's HZ.
    let ticks = |k: usize| f[k].parse::<f64>().expect("stat field") / 100.0;
    (ticks(13), ticks(14))
}

/// VmHWM of a running process (KiB), if readable.
fn vm_hwm_kib(pid: u32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Run `cmd` to completion with stdout/stderr to `log` (appended), timing it, polling its peak
/// RSS, and taking its CPU times from this process's children's times across its reaping. Call
/// from one thread with no other child running. A non-zero exit stops the bench, showing the
/// log's tail.
pub fn run_measured(mut cmd: Command, log: &Path) -> Measured {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open log");
    let err = out.try_clone().expect("clone log");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let shown = format!("{cmd:?}");
    let (u0, s0) = children_cpu_s();
    let t0 = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let pid = child.id();
    let mut hwm = 0i64;
    let (wall, status) = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break (t0.elapsed(), status);
        }
        if let Some(k) = vm_hwm_kib(pid) {
            hwm = hwm.max(k);
        }
        // 2 ms: well under the timing resolution of interest, and a render's memory plateaus
        // within its first blocks, so the polled high-water mark is the peak.
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: String = text.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("{shown} failed ({status}); log {}:\n{tail}", log.display());
    }
    let (u1, s1) = children_cpu_s();
    Measured { wall, max_rss_kib: hwm, user_s: u1 - u0, sys_s: s1 - s0 }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// A plain-text table with right-aligned numeric columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (c, cell) in r.iter().enumerate().take(cols) {
            w[c] = w[c].max(cell.len());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, cells: &[String]| {
        for (c, cell) in cells.iter().enumerate() {
            if c == 0 {
                let _ = write!(s, "{:<width$}", cell, width = w[c]);
            } else {
                let _ = write!(s, "  {:>width$}", cell, width = w[c]);
            }
        }
        s.push('\n');
    };
    line(&mut s, &header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let total: usize = w.iter().sum::<usize>() + 2 * (cols - 1);
    s.push_str(&"-".repeat(total));
    s.push('\n');
    for r in rows {
        line(&mut s, r);
    }
    s
}

/// KiB as MiB.
pub fn mib(kib: i64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// The largest peak RSS of some runs.
pub fn peak_rss(runs: &[Measured]) -> String {
    mib(runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0))
}

/// Median wall time of `runs`, seconds.
pub fn median_wall(runs: &[Measured]) -> f64 {
    median(runs.iter().map(|m| m.wall.as_secs_f64()).collect())
}

/// Median CPU time (user + system) of `runs`, seconds.
pub fn median_cpu(runs: &[Measured]) -> f64 {
    median(runs.iter().map(|m| m.user_s + m.sys_s).collect())
}

/// The medians table of timed renders of a `program_s`-second programme, one row per labelled set
/// of runs: wall, realtime factor, CPU, cores busy, peak RSS. `first` heads the label column.
pub fn medians_table(first: &str, program_s: f64, sets: &[(&str, &[Measured])]) -> String {
    let rows: Vec<Vec<String>> = sets
        .iter()
        .map(|(label, v)| {
            let (wall, cpu) = (median_wall(v), median_cpu(v));
            vec![
                label.to_string(),
                format!("{wall:.2}"),
                format!("{:.1}", program_s / wall),
                format!("{cpu:.2}"),
                format!("{:.2}", cpu / wall),
                peak_rss(v),
            ]
        })
        .collect();
    table(&[first, "wall s (median)", "realtime x", "CPU s (median)", "cores busy", "peak RSS"], &rows)
}
