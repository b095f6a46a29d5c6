//! Writes reference-renders/demo/: five synthesised stems (3 s, 48 kHz, 24-bit) and their exact sum
//! as the reference mix. Deterministic: the same files on every machine. See its README.
//! A project tool, not part of the installed program (the `tools` feature builds it):
//! `cargo run --release --features tools --bin make_demo [output folder]`, where the folder
//! defaults to reference-renders/demo (another folder, to compare a fresh run with the committed
//! files).
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

const FS: f64 = 48_000.0;
const SECONDS: f64 = 3.0;
const BPM: f64 = 120.0;
/// Mono stems go to L and R at -3 dB (DESIGN.md DSP 3), as the render routes them.
const MONO_GAIN: f64 = 0.707_945_784_384_137_9;
/// Every stem's level trim, so the mix bounce peaks below full scale as a real one would.
const TRIM: f64 = 0.5;

mod synth;
use synth::{Biquad, Rng};

fn frames() -> usize {
    (FS * SECONDS) as usize
}

fn beat_len() -> usize {
    (FS * 60.0 / BPM) as usize
}

fn drums() -> [Vec<f64>; 2] {
    let n = frames();
    let mut l = vec![0.0; n];
    let mut r = vec![0.0; n];
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let beat = beat_len();
    let mut snare_bp = Biquad::bandpass(1800.0, 0.8);
    let mut hat_hp = Biquad::highpass(7000.0, 0.7);
    for i in 0..n {
        let b = i / beat;
        let t = (i % beat) as f64 / FS;
        // Kick on every beat: a falling sine (120 -> 45 Hz: the phase integrates 45 + 75 e^(-30t)) with a fast decay.
        let phase = 2.0 * PI * (45.0 * t + 75.0 / 30.0 * (1.0 - (-t * 30.0).exp()));
        let kick = 0.55 * (-t * 9.0).exp() * phase.sin();
        // Snare on beats 2 and 4: band-passed noise plus a 190 Hz body.
        let noise = rng.next();
        let sn = snare_bp.run(noise);
        let snare = if b % 2 == 1 { (0.5 * sn + 0.25 * (2.0 * PI * 190.0 * t).sin()) * (-t * 18.0).exp() } else { 0.0 };
        // Hats on eighths, panned right.
        let te = (i % (beat / 2)) as f64 / FS;
        let hat = 0.25 * hat_hp.run(rng.next()) * (-te * 60.0).exp();
        l[i] = kick + snare + 0.6 * hat;
        r[i] = kick + snare * 0.9 + hat;
    }
    [l, r]
}

/// Chord roots (Hz): A minor, F, C, G — one per beat pair.
const ROOTS: [f64; 4] = [55.0, 43.65, 65.41, 49.0];

fn bass() -> Vec<f64> {
    let n = frames();
    let beat = beat_len();
    let mut out = vec![0.0; n];
    let mut lp = 0.0;
    let mut phase = 0.0;
    for (i, o) in out.iter_mut().enumerate() {
        let f = ROOTS[(i / (2 * beat)) % 4] * if (i / (beat / 2)) % 4 == 3 { 2.0 } else { 1.0 };
        phase = (phase + f / FS) % 1.0;
        let saw = 2.0 * phase - 1.0;
        // One-pole low-pass at ~400 Hz: a round synth bass.
        lp += (1.0 - (-2.0 * PI * 400.0 / FS).exp()) * (saw - lp);
        let t = (i % (beat / 2)) as f64 / FS;
        *o = 0.45 * lp * (1.0 - (-t * 200.0).exp()) * (0.6 + 0.4 * (-t * 6.0).exp());
    }
    out
}

fn music() -> [Vec<f64>; 2] {
    let n = frames();
    let beat = beat_len();
    let mut l = vec![0.0; n];
    let mut r = vec![0.0; n];
    let mut phases = [0.0f64; 12];
    for i in 0..n {
        let root = ROOTS[(i / (2 * beat)) % 4] * 4.0;
        // Minor/major triad voices, each as two detuned saws spread left and right.
        let chord = [1.0, if (i / (2 * beat)).is_multiple_of(4) { 1.189 } else { 1.26 }, 1.498];
        let t_in = (i % (2 * beat)) as f64 / FS;
        let env = (1.0 - (-t_in * 8.0).exp()) * 0.09;
        for (v, ratio) in chord.iter().enumerate() {
            for (k, detune) in [0.997, 1.003].iter().enumerate() {
                let p = &mut phases[v * 2 + k];
                *p = (*p + root * ratio * detune / FS) % 1.0;
                let s = (2.0 * PI * *p).sin() + 0.3 * (4.0 * PI * *p).sin();
                if k == 0 {
                    l[i] += env * s;
                    r[i] += 0.6 * env * s;
                } else {
                    r[i] += env * s;
                    l[i] += 0.6 * env * s;
                }
            }
        }
    }
    [l, r]
}

fn vocals() -> Vec<f64> {
    let n = frames();
    let beat = beat_len();
    let melody = [220.0, 246.94, 261.63, 246.94, 220.0, 196.0];
    // Formants of an "ah" (F1..F3) with their bandwidth Qs.
    let mut formants = [Biquad::bandpass(730.0, 6.0), Biquad::bandpass(1090.0, 9.0), Biquad::bandpass(2440.0, 12.0)];
    let gains = [1.0, 0.6, 0.3];
    let mut phase = 0.0;
    let mut out = vec![0.0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let t = i as f64 / FS;
        let note = melody[(i / beat) % melody.len()];
        let vibrato = 1.0 + 0.012 * (2.0 * PI * 5.5 * t).sin() * (t * 2.0).min(1.0);
        phase = (phase + note * vibrato / FS) % 1.0;
        // Glottal pulse train: a sharp saw, rich in harmonics for the formants to shape.
        let glottal = 1.0 - 2.0 * phase;
        let voice: f64 = formants.iter_mut().zip(gains).map(|(f, g)| g * f.run(glottal)).sum();
        let tn = (i % beat) as f64 / FS;
        let env = (1.0 - (-tn * 25.0).exp()) * (if tn > 0.4 { (-(tn - 0.4) * 20.0).exp() } else { 1.0 });
        *o = 0.6 * voice * env;
    }
    out
}

fn fx() -> [Vec<f64>; 2] {
    let n = frames();
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let mut l = vec![0.0; n];
    let mut r = vec![0.0; n];
    for i in 0..n {
        let pos = i as f64 / n as f64;
        // A riser: noise through a band-pass sweeping 300 Hz -> 6 kHz, panning left to right.
        let mut bp = Biquad::bandpass(300.0 * (20.0f64).powf(pos), 3.0);
        // Re-designing per sample keeps the state fresh: take a short burst through it.
        let mut s = 0.0;
        for _ in 0..4 {
            s = bp.run(rng.next());
        }
        let amp = 0.18 * pos * pos;
        l[i] = amp * s * (1.0 - pos).sqrt();
        r[i] = amp * s * pos.sqrt();
    }
    [l, r]
}

fn write(path: &Path, chans: &[&[f64]], trim: f64) -> Vec<Vec<f64>> {
    let spec = hound::WavSpec {
        channels: chans.len() as u16,
        sample_rate: FS as u32,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create stem");
    let mut quantised = vec![Vec::with_capacity(chans[0].len()); chans.len()];
    for i in 0..chans[0].len() {
        for (c, ch) in chans.iter().enumerate() {
            let q = (ch[i] * trim * 8_388_608.0).round().clamp(-8_388_608.0, 8_388_607.0);
            w.write_sample(q as i32).expect("write");
            quantised[c].push(q / 8_388_608.0);
        }
    }
    w.finalize().expect("finalize");
    quantised
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("reference-renders/demo"), PathBuf::from);
    std::fs::create_dir_all(dir.join("stems")).expect("mkdir");
    let d = drums();
    let b = bass();
    let m = music();
    let v = vocals();
    let f = fx();
    let stems: Vec<(&str, Vec<Vec<f64>>)> = vec![
        ("drums", write(&dir.join("stems/drums.wav"), &[&d[0], &d[1]], TRIM)),
        ("bass", write(&dir.join("stems/bass.wav"), &[&b], TRIM)),
        ("music", write(&dir.join("stems/music.wav"), &[&m[0], &m[1]], TRIM)),
        ("vocals", write(&dir.join("stems/vocals.wav"), &[&v], TRIM)),
        ("fx", write(&dir.join("stems/fx.wav"), &[&f[0], &f[1]], TRIM)),
    ];
    // The reference mix: the exact sum of the stems as written (mono at -3 dB to each side),
    // as the mix engineer's bounce would be.
    let n = frames();
    let mut mix = [vec![0.0; n], vec![0.0; n]];
    for (_, s) in &stems {
        for i in 0..n {
            if s.len() == 1 {
                mix[0][i] += s[0][i] * MONO_GAIN;
                mix[1][i] += s[0][i] * MONO_GAIN;
            } else {
                mix[0][i] += s[0][i];
                mix[1][i] += s[1][i];
            }
        }
    }
    write(&dir.join("mix.wav"), &[&mix[0], &mix[1]], 1.0);
    let peak = mix.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
    println!("wrote {} ({} frames); mix sample peak {:.2} dBFS", dir.display(), n, 20.0 * peak.log10());
}
