//! Peak memory does not grow with program length (DESIGN.md "Streaming"): a 15-minute render
//! peaks within 1.25x of a 1.5-minute one. Memory is a property, measured here from /proc;
//! speed is measured in benches/, never in tests.
mod support;

use std::path::Path;

use support::*;

const FS: u32 = 48_000;

/// Write a long stem without holding it in memory.
fn long_stem(path: &Path, seconds: usize, channels: u16, seed: u64) {
    let spec = hound::WavSpec { channels, sample_rate: FS, bits_per_sample: 24, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let chunk = music(seed, FS as usize, channels as usize, -8.0);
    for s in 0..seconds {
        // Vary the level per second so the program has dynamics (and the limiter works).
        let g = 0.5 + 0.5 * ((s * 7) % 5) as f32 / 4.0;
        for i in 0..FS as usize {
            for ch in &chunk {
                w.write_sample((ch[i] * g * 8_388_607.0) as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

/// Peak RSS (KiB) of one render: the child's own VmHWM, polled until it exits. (wait4's
/// ru_maxrss would not do: Linux carries the forking test process's peak across exec.)
fn render_peak_kib(session: &Path, out: &Path) -> u64 {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("stemforge"))
        .arg("render")
        .arg(session)
        .args(["--engine", "cpu", "--progress", "none", "--out-dir"])
        .arg(out)
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        // VmHWM only grows, so the last reading before exit is the peak to within one poll.
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "render failed: {status}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(peak > 0, "no VmHWM reading of the render");
    peak
}

#[test]
fn peak_memory_does_not_grow_with_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut peaks = Vec::new();
    for (name, seconds) in [("short", 90usize), ("long", 900)] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        long_stem(&d.join("music.wav"), seconds, 2, 1);
        long_stem(&d.join("vox.wav"), seconds, 1, 2);
        std::fs::write(
            d.join("session.toml"),
            r#"name = "memory"
layout = "stereo"
[[stems]]
name = "music"
path = "music.wav"
eq = [{ type = "peak", freq_hz = 500.0, gain_db = -2.0, q = 1.0 }]
[[stems]]
name = "vox"
path = "vox.wav"
[eq_design]
taps = 2047
[master]
target_lufs = -16.0
[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
[[outputs]]
path = "stems"
kind = "stems"
format = "pcm24"
"#,
        )
        .unwrap();
        let kib = render_peak_kib(&d.join("session.toml"), &d.join("out"));
        let bytes = std::fs::metadata(d.join("out/master.wav")).unwrap().len();
        assert!(bytes > (seconds as u64) * FS as u64 * 6, "{name}: master is complete ({bytes} bytes)");
        peaks.push(kib);
        // Free the disk before the next, larger case.
        std::fs::remove_dir_all(d.join("out")).unwrap();
    }
    let ratio = peaks[1] as f64 / peaks[0] as f64;
    eprintln!("peak RSS: 1.5 min {} KiB, 15 min {} KiB, ratio {ratio:.3}", peaks[0], peaks[1]);
    assert!(ratio <= 1.25, "peak memory grew with length: {} KiB -> {} KiB ({ratio:.2}x)", peaks[0], peaks[1]);
}
