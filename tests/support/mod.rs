//! Shared test helpers: generated signals, WAV files, the stemforge binary, ffmpeg as the
//! independent meter, and residual measurement.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../common/rng.rs"]
mod rng;
pub use rng::Rng;

/// Music-like test signal: pink-ish noise (Voss-style sum of one-pole filtered noises) with a
/// beat envelope and a tonal component, peak-normalised to `peak_dbfs`. Never zeros.
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
                beat * (s + 0.3 * (2.0 * std::f64::consts::PI * f0 * t).sin() + 0.05 * w)
            })
            .collect();
        let peak = ch.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let g = 10f64.powf(peak_dbfs / 20.0) / peak;
        ch.iter_mut().for_each(|v| *v *= g);
        out.push(ch.into_iter().map(|v| v as f32).collect());
    }
    out
}

/// Round to the `bits` integer grid (what a WAV of that depth holds).
pub fn quantise(chans: &mut [Vec<f32>], bits: u32) {
    let scale = (1u64 << (bits - 1)) as f64;
    for ch in chans.iter_mut() {
        for v in ch.iter_mut() {
            *v = ((*v as f64 * scale).round().clamp(-scale, scale - 1.0) / scale) as f32;
        }
    }
}

/// Write planar samples: `bits` 16/24/32 for integer PCM (values must already be on the grid for
/// exact round trips), 0 for 32-bit float.
pub fn write_wav(path: &Path, chans: &[Vec<f32>], fs: u32, bits: u16) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let float = bits == 0;
    let spec = hound::WavSpec {
        channels: chans.len() as u16,
        sample_rate: fs,
        bits_per_sample: if float { 32 } else { bits },
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let scale = if float { 1.0 } else { (1u64 << (bits - 1)) as f64 };
    for i in 0..chans[0].len() {
        for ch in chans {
            if float {
                w.write_sample(ch[i]).unwrap();
            } else {
                let q = (ch[i] as f64 * scale).round().clamp(-scale, scale - 1.0) as i32;
                w.write_sample(q).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

/// Read any file through stemforge's own reader.
pub fn read_audio(path: &Path) -> (u32, Vec<Vec<f32>>) {
    let mut r = stemforge::io::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let info = r.info().clone();
    let mut out = vec![Vec::with_capacity(info.frames as usize); info.channels];
    let mut buf = vec![vec![0.0f32; 4096]; info.channels];
    loop {
        let n = r.read_planar(&mut buf, 4096).unwrap();
        if n == 0 {
            break;
        }
        for (o, b) in out.iter_mut().zip(&buf) {
            o.extend_from_slice(&b[..n]);
        }
    }
    (info.sample_rate, out)
}

/// (integrated LUFS, true peak dBTP, sample peak dBFS) by ffmpeg's ebur128 filter: the
/// independent BS.1770-4 meter.
pub fn ffmpeg_loudness(path: &Path) -> (f64, f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-hide_banner", "-i"])
        .arg(path)
        .args(["-af", "ebur128=peak=true+sample", "-f", "null", "-"])
        .output()
        .expect("ffmpeg is needed as the reference meter (apt-get install ffmpeg)");
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = text.rsplit("Summary:").next().expect("ebur128 summary");
    let grab = |section: &str, key: &str| -> f64 {
        let s = summary.split(section).nth(1).unwrap_or_else(|| panic!("no {section} in ffmpeg output:\n{summary}"));
        let line = s.lines().find(|l| l.trim_start().starts_with(key)).expect("key line");
        let v = line.split(':').nth(1).unwrap().split_whitespace().next().unwrap();
        if v == "-inf" { f64::NEG_INFINITY } else { v.parse().unwrap() }
    };
    (grab("Integrated loudness:", "I:"), grab("True peak:", "Peak:"), grab("Sample peak:", "Peak:"))
}

/// One field (or several, comma-separated) of ffprobe's view of the first audio stream.
pub fn ffprobe_stream(path: &Path, entries: &str) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            &format!("stream={entries}"),
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// ffprobe's channel count and layout name of the first audio stream.
pub fn ffprobe_layout(path: &Path) -> (usize, String) {
    let s = ffprobe_stream(path, "channels,channel_layout");
    let mut it = s.split(',');
    (it.next().unwrap().parse().unwrap(), it.next().unwrap_or("").to_string())
}

/// Residual of two planar signals: (peak dBFS, RMS dBFS).
pub fn residual(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "channel count");
    let mut peak = 0.0f64;
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len(), "frame count");
        for (p, q) in x.iter().zip(y) {
            let d = *p as f64 - *q as f64;
            peak = peak.max(d.abs());
            sum += d * d;
            n += 1;
        }
    }
    (20.0 * peak.log10(), 10.0 * (sum / n as f64).log10())
}

pub fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

/// The stemforge binary, with the environment the GPU tests need.
pub fn stemforge() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("stemforge").unwrap();
    c.env("WGPU_BACKEND", "vulkan");
    c.env("XDG_RUNTIME_DIR", xdg_dir());
    c
}

pub fn xdg_dir() -> PathBuf {
    let d = std::env::temp_dir().join("stemforge-xdg");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Engines every render test runs on. The GPU engine runs on Mesa's lavapipe where there is no
/// GPU; STEMFORGE_SKIP_GPU_TESTS=1 drops it explicitly (and says so).
pub fn engines() -> Vec<&'static str> {
    if std::env::var("STEMFORGE_SKIP_GPU_TESTS").as_deref() == Ok("1") {
        eprintln!("STEMFORGE_SKIP_GPU_TESTS=1: the GPU engine is skipped in this test");
        vec!["cpu"]
    } else {
        vec!["cpu", "gpu"]
    }
}

/// Run `stemforge render` and panic with its stderr unless it exits with `code`.
pub fn render(session: &Path, out_dir: &Path, engine: &str, extra: &[&str], code: i32) -> String {
    render_with_env(session, out_dir, engine, extra, &[], code)
}

/// `render` with environment variables set for the run.
pub fn render_with_env(
    session: &Path,
    out_dir: &Path,
    engine: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    code: i32,
) -> String {
    let out = stemforge()
        .envs(env.iter().copied())
        .arg("render")
        .arg(session)
        .args(["--engine", engine, "--progress", "none", "--out-dir"])
        .arg(out_dir)
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "render {} on {engine}:\n{err}", session.display());
    err
}

/// Files in a folder tree (to check that nothing was written).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
