//! Writes reference-renders/film/stems: a 12-second 5.1 DME scene (dialogue, music, effects) at
//! 48 kHz, 16-bit FLAC, synthesised and deterministic. See reference-renders/README.md.
//! A project tool (the `tools` feature builds it; ffmpeg encodes the FLAC):
//! `cargo run --release --features tools --bin make_film [output folder]`, the folder defaulting
//! to reference-renders/film.
// Synthesis writes several channels of one frame at a time: indexing by frame reads plainest.
#![allow(clippy::needless_range_loop)]
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

mod synth;
use synth::{Biquad, Rng};

const FS: f64 = 48_000.0;
const SECONDS: f64 = 12.0;
/// Where the dialogue speaks, seconds: about 70 % of the scene.
const LINES: [(f64, f64); 3] = [(0.8, 3.6), (4.6, 7.8), (9.0, 11.4)];
/// 5.1 channel order of the files: L R C LFE Ls Rs.
const L: usize = 0;
const R: usize = 1;
const C: usize = 2;
const LFE: usize = 3;
const LS: usize = 4;
const RS: usize = 5;

fn frames() -> usize {
    (SECONDS * FS) as usize
}

/// Speech-like dialogue (mono, routed to the centre by the render): a glottal pulse train whose
/// pitch falls through each phrase, through three formants that move from vowel to vowel at a
/// syllable rate near 5 Hz, with a breath of noise at each syllable's onset.
fn dialogue() -> Vec<f64> {
    let n = frames();
    // F1, F2, F3 of a, e, i, o, u.
    let vowels = [
        [730.0, 1090.0, 2440.0],
        [530.0, 1840.0, 2480.0],
        [270.0, 2290.0, 3010.0],
        [570.0, 840.0, 2410.0],
        [300.0, 870.0, 2240.0],
    ];
    let mut rng = Rng(0x5EED_D1A1_0600_0001);
    let mut out = vec![0.0; n];
    let mut phase = 0.0;
    let mut hiss = Biquad::highpass(3000.0, 0.7);
    for (line, &(a, b)) in LINES.iter().enumerate() {
        let (start, end) = ((a * FS) as usize, (b * FS) as usize);
        let syllable = (FS / (4.6 + 0.4 * line as f64)) as usize;
        let mut formants: Vec<Biquad> = Vec::new();
        for i in start..end {
            let k = (i - start) / syllable;
            if (i - start) % syllable == 0 {
                let v = vowels[(k * 3 + line) % vowels.len()];
                formants = vec![Biquad::bandpass(v[0], 5.0), Biquad::bandpass(v[1], 8.0), Biquad::bandpass(v[2], 11.0)];
            }
            let pos = (i - start) as f64 / (end - start) as f64;
            let pitch = 150.0 - 40.0 * pos + 10.0 * (2.0 * PI * 0.7 * i as f64 / FS).sin();
            phase = (phase + pitch / FS) % 1.0;
            let glottal = 1.0 - 2.0 * phase;
            let voice: f64 = formants.iter_mut().zip([1.0, 0.5, 0.25]).map(|(f, g)| g * f.run(glottal)).sum();
            let ts = ((i - start) % syllable) as f64 / syllable as f64;
            // Each syllable swells and fades; the phrase fades in and out over 50 ms.
            let env = (PI * ts).sin().powf(0.6);
            let edge = ((i - start).min(end - i) as f64 / (0.05 * FS)).min(1.0);
            let breath = if ts < 0.12 { 0.15 * hiss.run(rng.next()) } else { 0.0 };
            out[i] = 0.1 * (voice * env + breath) * edge;
        }
    }
    out
}

/// A music bed: a slow pad of four detuned voices in the front and surround pairs (the centre
/// left to dialogue) and a 45 Hz sub in the LFE, changing chord every 3 s.
fn music() -> Vec<Vec<f64>> {
    let n = frames();
    let chords = [
        [110.0, 164.81, 220.0, 277.18],
        [98.0, 146.83, 196.0, 246.94],
        [87.31, 130.81, 174.61, 220.0],
        [98.0, 146.83, 196.0, 261.63],
    ];
    let mut out = vec![vec![0.0; n]; 6];
    for i in 0..n {
        let t = i as f64 / FS;
        let chord = chords[((t / 3.0) as usize).min(chords.len() - 1)];
        let fade = (t / 1.5).min(1.0) * ((SECONDS - t) / 1.0).clamp(0.0, 1.0);
        let voice = |f: f64, detune: f64| (2.0 * PI * f * detune * t).sin() + 0.3 * (4.0 * PI * f * detune * t).sin();
        let front = 0.02 * (voice(chord[0], 1.0) + voice(chord[2], 1.002));
        let front_r = 0.02 * (voice(chord[1], 0.998) + voice(chord[3], 1.0));
        out[L][i] = fade * front;
        out[R][i] = fade * front_r;
        out[LS][i] = fade * 0.6 * 0.02 * (voice(chord[1], 1.003) + voice(chord[2], 0.997));
        out[RS][i] = fade * 0.6 * 0.02 * (voice(chord[0], 0.997) + voice(chord[3], 1.003));
        out[LFE][i] = fade * 0.05 * (2.0 * PI * 45.0 * t).sin();
    }
    out
}

/// Effects: a door slam front left (2.0 s), a whoosh that flies around the room (5.2 s), an
/// impact with an LFE boom (8.3 s) and a glass tinkle front right (10.4 s); silence between.
fn effects() -> Vec<Vec<f64>> {
    let n = frames();
    let mut out = vec![vec![0.0; n]; 6];
    let mut rng = Rng(0xEFFE_C750_0000_0002);
    let at = |s: f64| (s * FS) as usize;
    // Door slam: low-passed noise with a fast decay.
    let mut lp = Biquad::lowpass(400.0, 0.9);
    for i in at(2.0)..at(2.5) {
        let t = (i - at(2.0)) as f64 / FS;
        let s = 0.9 * lp.run(rng.next()) * (-t * 18.0).exp();
        out[L][i] += s;
        out[C][i] += 0.4 * s;
    }
    // Whoosh: band-passed noise swelling over 1.2 s, panned L -> Ls -> Rs -> R.
    let mut bp = Biquad::bandpass(900.0, 1.5);
    let (a, b) = (at(5.2), at(6.4));
    for i in a..b {
        let pos = (i - a) as f64 / (b - a) as f64;
        let s = 0.5 * bp.run(rng.next()) * (PI * pos).sin().powi(2);
        let angle = pos * 3.0;
        let seg = (angle as usize).min(2);
        let frac = angle - seg as f64;
        let path = [L, LS, RS, R];
        out[path[seg]][i] += s * (1.0 - frac).sqrt();
        out[path[seg + 1]][i] += s * frac.sqrt();
    }
    // Impact: a falling sine and a noise crack in the fronts, a boom in the LFE.
    let mut crack = Biquad::lowpass(2500.0, 0.7);
    for i in at(8.3)..at(9.3) {
        let t = (i - at(8.3)) as f64 / FS;
        let thump = (2.0 * PI * (60.0 * t - 15.0 * t * t)).sin() * (-t * 5.0).exp();
        let noise = crack.run(rng.next()) * (-t * 30.0).exp();
        for ch in [L, R, C] {
            out[ch][i] += 0.8 * thump + 0.5 * noise;
        }
        out[LFE][i] += 0.5 * thump;
    }
    // Glass: a few high partials with their own decays, front right.
    for i in at(10.4)..at(11.4) {
        let t = (i - at(10.4)) as f64 / FS;
        let s: f64 = [(3150.0, 6.0), (4720.0, 9.0), (6300.0, 12.0)]
            .iter()
            .map(|&(f, d)| (2.0 * PI * f * t).sin() * (-t * d).exp())
            .sum();
        out[R][i] += 0.08 * s;
    }
    out
}

/// 16-bit WAV beside `flac`, then FLAC through ffmpeg; the WAV is removed.
fn write(flac: &Path, chans: &[Vec<f64>]) {
    let wav = flac.with_extension("wav");
    let spec = hound::WavSpec {
        channels: chans.len() as u16,
        sample_rate: FS as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).expect("create stem");
    for i in 0..chans[0].len() {
        for ch in chans {
            w.write_sample((ch[i] * 32768.0).round().clamp(-32768.0, 32767.0) as i16).expect("write");
        }
    }
    w.finalize().expect("finalize");
    let status = std::process::Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-i"])
        .arg(&wav)
        .args([
            "-c:a",
            "flac",
            "-compression_level",
            "12",
            "-fflags",
            "+bitexact",
            "-flags",
            "+bitexact",
            "-map_metadata",
            "-1",
        ])
        .arg(flac)
        .status()
        .expect("ffmpeg (to encode FLAC)");
    assert!(status.success(), "ffmpeg failed on {}", wav.display());
    std::fs::remove_file(&wav).expect("remove the WAV");
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("reference-renders/film"), PathBuf::from);
    std::fs::create_dir_all(dir.join("stems")).expect("mkdir");
    write(&dir.join("stems/dialogue.flac"), &[dialogue()]);
    write(&dir.join("stems/music.flac"), &music());
    write(&dir.join("stems/effects.flac"), &effects());
    println!("wrote {}", dir.join("stems").display());
}
