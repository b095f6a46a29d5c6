//! Outputs at their own sample rate (design/deliverables.md "Output formats", `sample_rate`): the
//! resampler's passband, images, aliases and THD+N; frame counts and alignment; the ceiling and the
//! loudness of every delivered file by ffmpeg and the reference meter, with and without the aim's
//! answer to the resampled peak; stems summing to their rate's master; both engines; bad rates.
mod common;

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use common::*;
use stemforge::dsp::resample::{Resampler, output_frames};

const FS: u32 = 48_000;

/// Resample one channel whole, through blocks of 4096 as a render feeds it.
fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    let mut r = Resampler::new(1, from, to);
    let mut out = vec![Vec::new()];
    let mut y = Vec::new();
    for c in x.chunks(4096) {
        r.push(&[c], c.len(), &mut out);
        y.extend_from_slice(&out[0]);
    }
    r.finish(from, to, &mut out);
    y.extend_from_slice(&out[0]);
    y
}

/// Least-squares fit of a·cos + b·sin + c at `freq` (Hz, rate `fs`) over `y[range]`: the amplitude
/// and the residual's RMS.
fn sine_fit(y: &[f32], fs: f64, freq: f64, range: std::ops::Range<usize>) -> (f64, f64) {
    let w = 2.0 * PI * freq / fs;
    let mut m = [[0.0f64; 3]; 3];
    let mut v = [0.0f64; 3];
    for n in range.clone() {
        let b = [(w * n as f64).cos(), (w * n as f64).sin(), 1.0];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += b[i] * b[j];
            }
            v[i] += b[i] * y[n] as f64;
        }
    }
    // Gauss-Jordan on the 3×3 normal equations (well conditioned: the basis is near orthogonal).
    for i in 0..3 {
        let p = m[i][i];
        m[i].iter_mut().for_each(|x| *x /= p);
        v[i] /= p;
        let row = m[i];
        for k in (0..3).filter(|&k| k != i) {
            let f = m[k][i];
            m[k].iter_mut().zip(row).for_each(|(a, b)| *a -= f * b);
            v[k] -= f * v[i];
        }
    }
    let mut sq = 0.0;
    for n in range.clone() {
        let fit = v[0] * (w * n as f64).cos() + v[1] * (w * n as f64).sin() + v[2];
        sq += (y[n] as f64 - fit).powi(2);
    }
    ((v[0] * v[0] + v[1] * v[1]).sqrt(), (sq / range.len() as f64).sqrt())
}

fn tone(freq: f64, amp: f64, frames: usize) -> Vec<f32> {
    sine(freq, amp, 0.3, frames, FS)
}

/// The middle of an output: the filter's ringing at the programme's abrupt edges left out.
fn middle(len: usize) -> std::ops::Range<usize> {
    len / 5..len - len / 5
}

/// A 1 kHz sine at −1 dBFS through 48 → 44.1 kHz: THD+N ≤ −110 dB (the design's figure), the
/// fundamental fitted by least squares and everything else counted as distortion and noise.
#[test]
fn thd_n_of_a_1khz_sine_48_to_44k1() {
    let amp = db_to_amp(-1.0);
    let y = resample(&tone(1000.0, amp, 2 * FS as usize), FS, 44_100);
    let (a, resid) = sine_fit(&y, 44_100.0, 1000.0, middle(y.len()));
    let thd_n = 20.0 * (resid / (a / 2f64.sqrt())).log10();
    println!("48 -> 44.1 kHz, 1 kHz at -1 dBFS: THD+N {thd_n:.1} dB, fundamental {:+.4} dB", 20.0 * (a / amp).log10());
    assert!(thd_n <= -110.0, "THD+N {thd_n:.1} dB");
    assert!((20.0 * (a / amp).log10()).abs() <= 0.01);
}

/// Passband: sines from 20 Hz to 0.9 of the lower rate's Nyquist frequency come out within 0.01 dB;
/// images (upsampling) and aliases (downsampling) of sines anywhere are below −120 dB.
#[test]
fn passband_images_and_aliases() {
    let frames = FS as usize;
    let amp = 0.5;
    let mut worst_pass = 0.0f64;
    for to in [44_100u32, 88_200, 96_000, 192_000, 32_000] {
        let nyq = FS.min(to) as f64 / 2.0;
        for k in 0..=24 {
            let f = 20.0 + (0.9 * nyq - 20.0) * k as f64 / 24.0;
            let y = resample(&tone(f, amp, frames), FS, to);
            let (a, _) = sine_fit(&y, to as f64, f, middle(y.len()));
            let dev = 20.0 * (a / amp).log10();
            worst_pass = worst_pass.max(dev.abs());
            assert!(dev.abs() <= 0.01, "48 -> {to} Hz: {f:.0} Hz comes out {dev:+.4} dB");
        }
    }
    println!("passband to 0.9 Nyquist: worst deviation {worst_pass:.2e} dB");
    // Aliases: a sine between the output's Nyquist and the input's folds to `to − f`.
    let mut worst_alias = f64::NEG_INFINITY;
    for (to, freqs) in
        [(44_100u32, &[22_060.0, 22_500.0, 23_000.0, 23_900.0][..]), (32_000, &[16_000.0, 20_000.0, 23_000.0][..])]
    {
        for &f in freqs {
            let y = resample(&tone(f, amp, frames), FS, to);
            let (a, _) = sine_fit(&y, to as f64, to as f64 - f, middle(y.len()));
            let db = 20.0 * (a / amp).log10();
            worst_alias = worst_alias.max(db);
            assert!(db <= -120.0, "48 -> {to} Hz: {f:.0} Hz aliases to {:.0} Hz at {db:.1} dB", to as f64 - f);
        }
    }
    // Images: upsampling a sine at f puts its image at FS − f.
    let mut worst_image = f64::NEG_INFINITY;
    for to in [88_200u32, 96_000, 192_000] {
        for f in [1000.0, 10_000.0, 21_600.0] {
            let y = resample(&tone(f, amp, frames), FS, to);
            let (a, _) = sine_fit(&y, to as f64, FS as f64 - f, middle(y.len()));
            let db = 20.0 * (a / amp).log10();
            worst_image = worst_image.max(db);
            assert!(db <= -120.0, "48 -> {to} Hz: {f:.0} Hz images at {:.0} Hz, {db:.1} dB", FS as f64 - f);
        }
    }
    println!("worst alias {worst_alias:.1} dB, worst image {worst_image:.1} dB");
}

/// Energy centroid of `y` (frames): where a band-limited pulse sits, to a small fraction of a frame.
fn centroid(y: &[f32]) -> f64 {
    let (mut s, mut w) = (0.0f64, 0.0f64);
    for (n, v) in y.iter().enumerate() {
        let e = (*v as f64).powi(2);
        s += n as f64 * e;
        w += e;
    }
    s / w
}

/// A Gaussian pulse (σ = 6 frames, band-limited far below every Nyquist) centred on `at`.
fn pulse(frames: usize, at: f64) -> Vec<f32> {
    (0..frames).map(|n| (0.8 * (-((n as f64 - at) / 6.0).powi(2) / 2.0).exp()) as f32).collect()
}

fn session_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

/// Through a render: each output holds round(N·rate/48000) frames, and a pulse at input frame t
/// lands at t·rate/48000 (within 0.01 frame), on both engines.
#[test]
fn frame_count_and_alignment_through_a_render() {
    let dir = tempfile::tempdir().unwrap();
    let n = 100_003; // no rate divides it evenly
    let at = 40_000.5;
    let p = pulse(n, at);
    write_wav(&dir.path().join("pulse.wav"), &[p.clone(), p], FS, 0);
    let rates = [44_100u32, 88_200, 96_000, 192_000, 32_000];
    let mut body = String::from(
        "name = \"align\"\nlayout = \"stereo\"\n[[stems]]\nname = \"pulse\"\npath = \"pulse.wav\"\n[[outputs]]\npath = \"m48.wav\"\nkind = \"master\"\nformat = \"f32\"\n",
    );
    for r in rates {
        body += &format!("[[outputs]]\npath = \"m{r}.wav\"\nkind = \"master\"\nformat = \"f32\"\nsample_rate = {r}\n");
    }
    let session = session_file(dir.path(), &body);
    for engine in engines() {
        let out = dir.path().join(engine);
        render(&session, &out, engine, &[], 0);
        let (_, m48) = read_audio(&out.join("m48.wav"));
        assert_eq!(m48[0].len(), n);
        assert!((centroid(&m48[0]) - at).abs() < 0.01);
        for r in rates {
            let (fs, y) = read_audio(&out.join(format!("m{r}.wav")));
            assert_eq!(fs, r);
            let want_frames = ((n as f64) * r as f64 / FS as f64).round() as usize;
            assert_eq!(y[0].len(), want_frames, "{engine} {r} Hz: frames");
            assert_eq!(output_frames(n as u64, FS, r), want_frames as u64);
            let want = at * r as f64 / FS as f64;
            let got = centroid(&y[0]);
            println!("{engine} {r} Hz: {} frames, pulse at {got:.5} (want {want:.5})", y[0].len());
            assert!((got - want).abs() < 0.01, "{engine} {r} Hz: pulse at {got:.4}, want {want:.4}");
        }
    }
}

/// A loud programme, limited hard: clicks whose spectrum reaches 24 kHz, under the bus's low-pass
/// at 17 kHz (8th order) as a mastered song's top end falls off; `bright` leaves the low-pass out,
/// so that about 4 % of the K-weighted energy lies above 19.8 kHz, where 44.1 kHz cannot carry it.
fn loud_session(dir: &Path, outputs: &str, bus: &str) -> PathBuf {
    let frames = 6 * FS as usize;
    for (i, name) in ["drums", "music"].iter().enumerate() {
        let mut s = music(31 + i as u64, frames, 2, -6.0);
        // Bright transients: clicks every 50 ms, whose spectrum reaches 24 kHz.
        for (c, ch) in s.iter_mut().enumerate() {
            for k in (i * 1200..frames).step_by(2400) {
                ch[k] += if c == 0 { 0.45 } else { -0.45 };
            }
        }
        quantise(&mut s, 24);
        write_wav(&dir.join(format!("{name}.wav")), &s, FS, 24);
    }
    session_file(
        dir,
        &format!(
            r#"name = "loud"
layout = "stereo"
[[stems]]
name = "drums"
path = "drums.wav"
[[stems]]
name = "music"
path = "music.wav"
{bus}
[master]
target_lufs = -9.0
ceiling_dbtp = -1.0
{outputs}
"#,
        ),
    )
}

const MASTERED: &str = "[bus]\neq = [{ type = \"lowpass\", freq_hz = 17000.0, order = 8 }]";
const TARGET: f64 = -9.0;
const CEILING: f64 = -1.0;

fn output(path: &str, kind: &str, format: &str, rate: Option<u32>) -> String {
    let rate = rate.map_or(String::new(), |r| format!("sample_rate = {r}\n"));
    format!("[[outputs]]\npath = \"{path}\"\nkind = \"{kind}\"\nformat = \"{format}\"\n{rate}")
}

fn true_peak_of(chans: &[Vec<f32>], fs: u32) -> f64 {
    let mut m = stemforge::meter::TruePeakMeter::new(chans.len(), fs).unwrap();
    let planes: Vec<&[f32]> = chans.iter().map(Vec::as_slice).collect();
    m.add_planar(&planes);
    m.true_peak_dbtp()
}

/// Resample `chans` afterwards, as a tool that resamples a limited master does, write it (f32) and
/// read its true peak by the reference meter and by ffmpeg.
fn resampled_afterwards(chans: &[Vec<f32>], rate: u32, path: &Path) -> (f64, f64) {
    let resampled: Vec<Vec<f32>> = chans.iter().map(|c| resample(c, FS, rate)).collect();
    write_wav(path, &resampled, rate, 0);
    let (_, ffmpeg, _) = ffmpeg_loudness(path);
    (true_peak_of(&resampled, rate), ffmpeg)
}

/// Without the delivered files' peaks in the aim, the overshoot happens: a 48 kHz master rendered
/// alone and resampled afterwards passes the ceiling, at 44.1 kHz for the bright programme (both
/// meters), at 96 kHz for the mastered one (the reference meter; ffmpeg reads it under). With a
/// `sample_rate` output the aim answers the delivered file's peak: the bright programme's 44.1 kHz
/// master holds the ceiling, and is then refused (exit 1) for its loudness, 0.1 LU or more under
/// the target because 44.1 kHz cannot carry what it has above 19.8 kHz.
#[test]
fn resampling_after_the_limiter_overshoots_the_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    for (what, bus, rate) in [("bright", "", 44_100), ("mastered", MASTERED, 96_000)] {
        let sub = dir.path().join(what);
        std::fs::create_dir_all(&sub).unwrap();
        let session = loud_session(&sub, &output("m48.wav", "master", "f32", None), bus);
        let out = sub.join("out");
        render(&session, &out, "cpu", &[], 0);
        let (_, m48) = read_audio(&out.join("m48.wav"));
        let at48 = true_peak_of(&m48, FS);
        let (reference, ffmpeg) = resampled_afterwards(&m48, rate, &sub.join("after.wav"));
        println!(
            "{what}: 48 kHz master alone {at48:.3} dBTP; resampled afterwards to {rate} Hz {reference:.3} dBTP \
             (reference meter), {ffmpeg:.2} dBTP (ffmpeg)"
        );
        assert!(at48 <= CEILING, "{what}: {at48:.3} dBTP at 48 kHz");
        assert!(reference > CEILING + 0.15, "{what}: resampled afterwards {reference:.3} dBTP: no overshoot shown");
        if what == "bright" {
            // ffmpeg prints 0.1 dB steps.
            assert!(ffmpeg > CEILING + 0.15, "{what}: resampled afterwards {ffmpeg:.2} dBTP by ffmpeg");
        }
    }
    // The bright programme with a 44.1 kHz master output: the aim holds the delivered file's peak.
    let sub = dir.path().join("bright-delivered");
    std::fs::create_dir_all(&sub).unwrap();
    let session = loud_session(
        &sub,
        &[output("m48.wav", "master", "pcm24", None), output("m441.wav", "master", "pcm24", Some(44_100))].concat(),
        "",
    );
    let report = sub.join("report.json");
    let err = render(&session, &sub.join("out"), "cpu", &["--report", report.to_str().unwrap()], 1);
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let m441 = &r["outputs"][1];
    let (tp, lufs) =
        (m441["delivered"]["true_peak_dbtp"].as_f64().unwrap(), m441["delivered"]["integrated_lufs"].as_f64().unwrap());
    println!("bright, delivered at 44.1 kHz: {tp:.3} dBTP, {lufs:.3} LUFS; limiter {}", r["limiter"]);
    assert!(tp <= CEILING, "delivered 44.1 kHz: {tp:.3} dBTP");
    assert!(r["limiter"]["aim_moves"].as_u64().unwrap() >= 1);
    assert!(lufs < TARGET - 0.1 && err.contains("m441.wav (at 44100 Hz): integrated loudness"), "{err}");
    assert!(!err.contains("true peak"), "{err}");
    assert!(files_under(&sub.join("out")).is_empty());
}

/// A 48 kHz session delivered at 48, 44.1 and 96 kHz (pcm24) and 44.1 kHz stems, on both engines:
/// every master file's true peak ≤ the ceiling and its loudness on target ± 0.1 LU by ffmpeg and by
/// the reference meter; the 44.1 kHz stems sum to the 44.1 kHz master; the engines agree.
#[test]
fn delivered_at_44k1_and_96k_every_file_meets_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = [
        output("m48.wav", "master", "pcm24", None),
        output("m441.wav", "master", "pcm24", Some(44_100)),
        output("m96.wav", "master", "pcm24", Some(96_000)),
        output("m441f.wav", "master", "f32", Some(44_100)),
        output("stems441", "stems", "f32", Some(44_100)),
    ]
    .concat();
    let session = loud_session(dir.path(), &outputs, MASTERED);
    for engine in engines() {
        let out = dir.path().join(engine);
        let report = dir.path().join(format!("{engine}.json"));
        render(&session, &out, engine, &["--report", report.to_str().unwrap()], 0);
        for (file, rate) in [("m48.wav", FS), ("m441.wav", 44_100), ("m96.wav", 96_000), ("m441f.wav", 44_100)] {
            let path = out.join(file);
            let (fs, _) = read_audio(&path);
            assert_eq!(fs, rate);
            let reference = stemforge::meter::measure_file(&path).unwrap();
            let (i, tp, _) = ffmpeg_loudness(&path);
            println!(
                "{engine} {file}: reference {:.3} LUFS {:.3} dBTP; ffmpeg {i:.1} LUFS {tp:.1} dBTP",
                reference.integrated_lufs, reference.true_peak_dbtp
            );
            assert!(reference.true_peak_dbtp <= CEILING, "{engine} {file}: {:.3} dBTP", reference.true_peak_dbtp);
            assert!(
                (reference.integrated_lufs - TARGET).abs() <= 0.1,
                "{engine} {file}: {:.3} LUFS",
                reference.integrated_lufs
            );
            assert!(tp <= CEILING, "{engine} {file}: {tp:.1} dBTP by ffmpeg");
            assert!((i - TARGET).abs() <= 0.1, "{engine} {file}: {i:.1} LUFS by ffmpeg");
        }
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        println!("{engine}: limiter {}", r["limiter"]);
        // Stems at 44.1 kHz sum to the 44.1 kHz f32 master: the resampler is linear and the same
        // filter runs on each; what is left is f32 rounding of two sums of 2·J + 1 products.
        let stems: Vec<Vec<Vec<f32>>> =
            ["drums", "music"].iter().map(|s| read_audio(&out.join(format!("stems441/{s}.wav"))).1).collect();
        let sum: Vec<Vec<f32>> =
            (0..2).map(|c| (0..stems[0][c].len()).map(|n| stems.iter().map(|s| s[c][n]).sum()).collect()).collect();
        let (_, master) = read_audio(&out.join("m441f.wav"));
        let (peak, rms) = residual(&sum, &master);
        println!("{engine}: 44.1 kHz stems vs master {peak:.1} dBFS peak, {rms:.1} rms");
        assert!(peak <= -110.0, "{engine}: 44.1 kHz stems vs master {peak:.1} dBFS");
    }
    if engines().len() == 2 {
        for file in ["m48.wav", "m441.wav", "m96.wav"] {
            let (_, a) = read_audio(&dir.path().join("cpu").join(file));
            let (_, b) = read_audio(&dir.path().join("gpu").join(file));
            let lsb = a
                .iter()
                .zip(&b)
                .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| ((*p as f64 - *q as f64) * 8_388_608.0).abs()))
                .fold(0.0, f64::max);
            println!("cpu vs gpu {file}: at most {lsb} LSB");
            assert!(lsb <= 1.0, "cpu vs gpu {file}: {lsb} LSB");
        }
        for file in ["m441f.wav", "stems441/drums.wav", "stems441/music.wav"] {
            let (_, a) = read_audio(&dir.path().join("cpu").join(file));
            let (_, b) = read_audio(&dir.path().join("gpu").join(file));
            let (peak, rms) = residual(&a, &b);
            println!("cpu vs gpu {file}: {peak:.1} dBFS peak, {rms:.1} rms");
            assert!(peak <= gpu_parity::RENDER_PEAK_DBFS && rms <= gpu_parity::RENDER_RMS_DBFS, "cpu vs gpu {file}");
        }
    }
}

/// `sample_rate = 0` or a rate stemforge does not deliver: exit 2 naming the output and the key,
/// nothing written.
#[test]
fn a_bad_sample_rate_is_refused() {
    for (rate, word) in [("0", "sample_rate = 0"), ("44000", "sample_rate = 44000"), ("-44100", "sample_rate = -44100")]
    {
        let dir = tempfile::tempdir().unwrap();
        let p = pulse(48_000, 100.0);
        write_wav(&dir.path().join("a.wav"), &[p.clone(), p], FS, 24);
        let session = session_file(
            dir.path(),
            &format!(
                "name = \"bad\"\nlayout = \"stereo\"\n[[stems]]\nname = \"a\"\npath = \"a.wav\"\n{}{}",
                output("ok.wav", "master", "pcm24", None),
                output("bad.wav", "master", "pcm24", None).replace("format", &format!("sample_rate = {rate}\nformat")),
            ),
        );
        let out = dir.path().join("out");
        let err = render(&session, &out, "cpu", &[], 2);
        assert!(err.contains("outputs[1].sample_rate") && err.contains(word), "{err}");
        assert!(err.contains("session.toml"), "{err}");
        assert!(files_under(&out).is_empty(), "written: {:?}", files_under(&out));
    }
}

/// A segmented render delivers at the stems' rate only: a `sample_rate` output is exit 2 naming
/// it, with nothing written.
#[test]
fn a_segmented_render_refuses_a_resampled_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = pulse(96_000, 100.0);
    write_wav(&dir.path().join("a.wav"), &[p.clone(), p], FS, 24);
    let session = session_file(
        dir.path(),
        &format!(
            "name = \"seg\"\nlayout = \"stereo\"\n[[stems]]\nname = \"a\"\npath = \"a.wav\"\n{}",
            output("m441.wav", "master", "pcm24", Some(44_100)),
        ),
    );
    let state = dir.path().join("state");
    let out = stemforge()
        .arg("render")
        .arg(&session)
        .args(["--segments", "2", "--segment", "0", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("outputs[0].sample_rate") && err.contains("segmented"), "{err}");
    assert!(files_under(&state).is_empty(), "written: {:?}", files_under(&state));
}
