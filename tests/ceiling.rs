//! The limiter uses its ceiling (design/mastering.md): on music (the bundled demo) and on film
//! programme (a generated 5.1 scene: dialogue, music, effects with impacts and LFE thumps), the
//! delivered master's true peak by the reference meter (the `ebur128` crate, on the pcm24 file as
//! written, dither and all) lies in [ceiling - 0.3, ceiling], ffmpeg's meter never reads it over
//! the ceiling, and the report says the aim the limiter used and the margin it found.
mod common;

use std::f64::consts::PI;
use std::path::Path;

use common::*;

const FS: u32 = 48_000;

/// design/mastering.md: "between ceiling_dbtp - 0.3 and ceiling_dbtp".
const BAND_DB: f64 = 0.3;

/// Two-pole resonator (a formant): y[n] = x[n] + 2r·cos(w)·y[n-1] - r²·y[n-2], gain-normalised at
/// its centre so each formant keeps its level whatever its bandwidth.
fn formant(x: &[f64], hz: f64, bw_hz: f64) -> Vec<f64> {
    let r = (-PI * bw_hz / FS as f64).exp();
    let w = 2.0 * PI * hz / FS as f64;
    let (a1, a2) = (2.0 * r * w.cos(), -r * r);
    let g = (1.0 - r) * (1.0 - 2.0 * r * (2.0 * w).cos() + r * r).sqrt();
    let (mut y1, mut y2) = (0.0, 0.0);
    x.iter()
        .map(|v| {
            let y = g * v + a1 * y1 + a2 * y2;
            y2 = y1;
            y1 = y;
            y
        })
        .collect()
}

/// Dialogue-like mono: voiced syllables (a glottal saw at 95-170 Hz with a glide, through three
/// vowel formants that change per syllable) of 120-300 ms with 40-140 ms gaps, a sibilant (high
/// noise) now and then, and a sentence pause every 5-8 syllables. Peak `peak_dbfs`.
fn dialogue(seed: u64, frames: usize, peak_dbfs: f64) -> Vec<f32> {
    let mut r = Rng(seed);
    let ms = |v: f64| (v * FS as f64 / 1000.0) as usize;
    let vowels = [[730.0, 1090.0, 2440.0], [530.0, 1840.0, 2480.0], [270.0, 2290.0, 3010.0], [570.0, 840.0, 2410.0]];
    let mut out = vec![0.0f64; frames];
    let (mut at, mut in_sentence, mut sentence) = (ms(150.0), 0, r.range(5, 8));
    while at < frames {
        let len = ms(120.0 + 180.0 * r.unit()).min(frames - at);
        let f0 = 95.0 + 75.0 * r.unit();
        let glide = 0.85 + 0.3 * r.unit();
        let mut phase = 0.0f64;
        let src: Vec<f64> = (0..len)
            .map(|i| {
                let t = i as f64 / len as f64;
                phase = (phase + f0 * (1.0 + (glide - 1.0) * t) / FS as f64).fract();
                // A glottal pulse: a saw with a soft return, plus a little breath.
                (1.0 - 2.0 * phase) * (1.0 - (-phase * 40.0).exp()) + 0.03 * r.gauss()
            })
            .collect();
        let v = vowels[r.range(0, vowels.len() - 1)];
        let voiced: Vec<f64> = formant(&src, v[0], 90.0)
            .iter()
            .zip(formant(&src, v[1], 110.0))
            .zip(formant(&src, v[2], 160.0))
            .map(|((a, b), c)| a + 0.5 * b + 0.25 * c)
            .collect();
        let level = 0.5 + 0.5 * r.unit();
        for (i, s) in voiced.iter().enumerate() {
            let t = i as f64 / len as f64;
            let env = (t * 12.0).min(1.0) * (1.0 - t).powf(0.6);
            out[at + i] += level * env * s;
        }
        at += len;
        if r.unit() < 0.3 && at < frames {
            // A sibilant: differentiated noise, 40-90 ms.
            let n = ms(40.0 + 50.0 * r.unit()).min(frames - at);
            let mut prev = 0.0;
            for i in 0..n {
                let w = r.gauss();
                let env = (PI * i as f64 / n as f64).sin();
                out[at + i] += 0.15 * level * env * (w - prev);
                prev = w;
            }
            at += n;
        }
        in_sentence += 1;
        at += if in_sentence == sentence {
            in_sentence = 0;
            sentence = r.range(5, 8);
            ms(400.0 + 300.0 * r.unit())
        } else {
            ms(40.0 + 100.0 * r.unit())
        };
    }
    let mut y: Vec<f32> = out.into_iter().map(|v| v as f32).collect();
    normalise(&mut y, db_to_amp(peak_dbfs) as f32);
    y
}

/// 5.1 effects (FL FR FC LFE SL SR): a room tone on the five full-range channels, and impacts
/// (a sharp noise burst decaying over 100-400 ms, panned around the room) each with an LFE thump
/// (a 35-60 Hz sine decaying over 300 ms); the loudest impacts at about full scale.
fn effects(seed: u64, frames: usize) -> Vec<Vec<f32>> {
    let mut r = Rng(seed);
    let mut ch: Vec<Vec<f64>> = (0..6)
        .map(|c| {
            if c == 3 {
                vec![0.0; frames]
            } else {
                music_noise(seed + 10 + c as u64, frames, Noise::BassLift(0.01)).iter().map(|v| *v as f64).collect()
            }
        })
        .collect();
    let mut at = FS as usize / 2;
    while at < frames {
        let tau = 0.02 + 0.06 * r.unit();
        let level = 0.3 + 0.7 * r.unit();
        let pan: Vec<f64> = (0..6).map(|c| if c == 3 { 0.0 } else { r.unit() }).collect();
        let thump_hz = 35.0 + 25.0 * r.unit();
        let mut lp = 0.0;
        for i in 0..(frames - at).min(FS as usize) {
            let t = i as f64 / FS as f64;
            let env = (-t / tau).exp() * (t * 500.0).min(1.0);
            // Noise darkening as it decays (a one-pole low-pass whose corner falls).
            let w = r.gauss();
            lp += (0.25 * (-t / tau).exp() + 0.03) * (w - lp);
            for (c, p) in pan.iter().enumerate() {
                if c != 3 {
                    ch[c][at + i] += level * env * p * lp;
                }
            }
            ch[3][at + i] += level * (-t / 0.3).exp() * (t * 500.0).min(1.0) * (2.0 * PI * thump_hz * t).sin();
        }
        at += (FS as f64 * (1.0 + 1.5 * r.unit())) as usize;
    }
    let peak = ch.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    ch.into_iter().map(|c| c.into_iter().map(|v| (0.97 * v / peak) as f32).collect()).collect()
}

/// A 6-second 5.1 film scene to ATSC A/85 (-24 LUFS, -2 dBTP): dialogue (mono, to the centre),
/// music (5.1, quiet LFE) and effects, each a 24-bit stem; a pcm24 printmaster with TPDF dither.
fn film_scene(dir: &Path) -> std::path::PathBuf {
    let frames = 6 * FS as usize;
    let mut dia = vec![dialogue(41, frames, -14.0)];
    quantise(&mut dia, 24);
    write_wav(&dir.join("dialogue.wav"), &dia, FS, 24);
    let mut mus = music(42, frames, 6, -22.0);
    mus[3].iter_mut().for_each(|v| *v *= 0.3);
    quantise(&mut mus, 24);
    write_wav(&dir.join("music.wav"), &mus, FS, 24);
    let mut fx = effects(43, frames);
    quantise(&mut fx, 24);
    write_wav(&dir.join("effects.wav"), &fx, FS, 24);
    let body = r#"name = "scene-12"
layout = "5.1"
[[stems]]
name = "dialogue"
path = "dialogue.wav"
eq = [{ type = "highpass", freq_hz = 80.0, order = 2 }, { type = "peak", freq_hz = 3000.0, gain_db = 1.5, q = 1.0 }]
[[stems]]
name = "music"
path = "music.wav"
gain_db = -4.0
[[stems]]
name = "effects"
path = "effects.wav"
[eq_design]
taps = 2047
[master]
target_lufs = -24.0
ceiling_dbtp = -2.0
[[outputs]]
path = "printmaster.wav"
kind = "master"
format = "pcm24"
"#;
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

/// Render `session` on `engine` (with `extra` arguments), and hold its pcm24 master `master` to
/// the band by the reference meter and to the ceiling by ffmpeg's; the report's `limiter` says the
/// aim and the margin. Returns the report.
fn assert_uses_its_ceiling(
    session: &Path,
    out: &Path,
    (engine, extra): (&str, &[&str]),
    master: &str,
    ceiling: f64,
    what: &str,
) -> serde_json::Value {
    let rp = out.with_extension("json");
    render(session, out, engine, &[&["--report", rp.to_str().unwrap()], extra].concat(), 0);
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rp).unwrap()).unwrap();
    let path = out.join(master);
    // The reference meter on the file as delivered (24-bit, dithered).
    let reference = stemforge::meter::measure_file(&path).unwrap().true_peak_dbtp;
    let (_, ffmpeg, _) = ffmpeg_loudness(&path);
    let limiter = &r["limiter"];
    let passes: Vec<&str> = r["passes"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap()).collect();
    println!(
        "{what} on {engine}: true peak {reference:.3} dBTP by the ebur128 crate, {ffmpeg:.2} by ffmpeg \
         (ceiling {ceiling}); aim {} dBTP, margin {} dB; passes {passes:?}; {} aim moves; gain reduction max {} dB",
        limiter["aim_dbtp"], limiter["margin_db"], limiter["aim_moves"], r["gain_reduction"]["max_db"]
    );
    assert!(
        reference <= ceiling && reference >= ceiling - BAND_DB,
        "{what} on {engine}: true peak {reference:.3} dBTP by the reference meter, not in [{}, {ceiling}]",
        ceiling - BAND_DB
    );
    // ffmpeg prints two decimals: a reading of the ceiling itself is at most 0.005 dB over it.
    assert!(ffmpeg <= ceiling, "{what} on {engine}: true peak {ffmpeg:.2} dBTP by ffmpeg over the ceiling {ceiling}");
    let aim = limiter["aim_dbtp"].as_f64().unwrap_or_else(|| panic!("{what}: report limiter.aim_dbtp: {limiter}"));
    let margin = limiter["margin_db"].as_f64().unwrap_or_else(|| panic!("{what}: report limiter.margin_db: {limiter}"));
    assert!((ceiling - aim - margin).abs() < 1e-6, "{what}: margin is ceiling - aim: {limiter}");
    assert!(aim <= ceiling, "{what}: the aim {aim} is above the ceiling");
    assert_eq!(r["spec_met"], true, "{what} on {engine}: {}", r["spec_problems"]);
    r
}

#[test]
fn demo_master_uses_its_ceiling() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference-renders/demo");
    let dir = tempfile::tempdir().unwrap();
    for engine in engines() {
        let out = dir.path().join(engine);
        assert_uses_its_ceiling(&root.join("session.toml"), &out, (engine, &[]), "out/master.wav", -1.0, "demo");
    }
}

#[test]
fn film_scene_printmaster_uses_its_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let session = film_scene(dir.path());
    for engine in engines() {
        let out = dir.path().join(engine);
        assert_uses_its_ceiling(&session, &out, (engine, &[]), "printmaster.wav", -2.0, "5.1 film scene");
    }
}

/// Where no solve predicts the peak, the writing pass's own meter verifies it: the film scene
/// with `--spill none` (G found by writing passes) and without a loudness target (one writing
/// pass at G = 0, the limiter taking the effects' impacts down to the aim).
#[test]
fn film_scene_uses_its_ceiling_without_a_solve() {
    let dir = tempfile::tempdir().unwrap();
    let session = film_scene(dir.path());
    let untargeted = dir.path().join("untargeted.toml");
    let body = std::fs::read_to_string(&session).unwrap();
    std::fs::write(&untargeted, body.replace("target_lufs = -24.0\n", "")).unwrap();
    for engine in engines() {
        let out = dir.path().join(format!("{engine}-no-spill"));
        let what = "5.1 film scene, --spill none";
        let r = assert_uses_its_ceiling(&session, &out, (engine, &["--spill", "none"]), "printmaster.wav", -2.0, what);
        assert!(r["passes"].as_array().unwrap().iter().all(|p| p["kind"] != "solve"), "{engine}: no solve");
        let out = dir.path().join(format!("{engine}-no-target"));
        let what = "5.1 film scene, no target";
        let r = assert_uses_its_ceiling(&untargeted, &out, (engine, &[]), "printmaster.wav", -2.0, what);
        assert_eq!(r["target_lufs"], serde_json::Value::Null);
        assert!(r["gain_reduction"]["max_db"].as_f64().unwrap() > 1.0, "{engine}: the limiter works at G = 0");
    }
}
