//! Peak memory does not grow with program length (DESIGN.md "Streaming"): a 15-minute render
//! peaks within 1.25x of a 1.5-minute one, on the CPU engine and on the GPU engine (lavapipe
//! here), and on the GPU engine also with `--spill none`, whose writing pass repeats; a segmented
//! render's phase-3 task peaks alike for a 1- and an 8-minute programme. Memory is a property,
//! measured here from /proc; speed is measured in benches/, never in tests.
mod common;

use std::path::Path;

use common::*;

const FS: u32 = 48_000;

/// Write a long stem without holding it in memory.
fn long_stem(path: &Path, seconds: usize, channels: u16, seed: u64) {
    let spec =
        hound::WavSpec { channels, sample_rate: FS, bits_per_sample: 24, sample_format: hound::SampleFormat::Int };
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
fn render_peak_kib(session: &Path, out: &Path, engine: &str, extra: &[&str]) -> u64 {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("stemforge"));
    cmd.arg("render")
        .arg(session)
        .args(["--engine", engine, "--progress", "none", "--out-dir"])
        .arg(out)
        .args(extra)
        .env("WGPU_BACKEND", std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "vulkan".into()))
        .env("XDG_RUNTIME_DIR", xdg_dir());
    peak_kib(cmd)
}

/// Peak RSS (KiB) of the command `cmd`, which must succeed: its VmHWM, polled until it exits.
fn peak_kib(mut cmd: std::process::Command) -> u64 {
    let mut child = cmd.spawn().unwrap();
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
            assert!(status.success(), "{cmd:?} failed: {status}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(peak > 0, "no VmHWM reading of {cmd:?}");
    peak
}

/// Bounded per node (issue 14, design/farm.md): a phase-3 task of a segmented render (segment 1
/// of 2, CPU engine) peaks alike whether the programme is 1 or 8 minutes long, so its segment 4
/// or 30 times longer: within 1.25x.
#[test]
fn a_segment_write_task_peaks_alike_whatever_the_programme_length() {
    let mut kib = Vec::new();
    for seconds in [60usize, 480] {
        let dir = tempfile::tempdir().unwrap();
        long_stem(&dir.path().join("a.wav"), seconds, 2, 41);
        long_stem(&dir.path().join("b.wav"), seconds, 1, 42);
        let session = dir.path().join("session.toml");
        std::fs::write(
            &session,
            r#"name = "segment-memory"
layout = "stereo"
[[stems]]
name = "a"
path = "a.wav"
eq = [{ type = "peak", freq_hz = 1000.0, gain_db = 3.0, q = 1.0 }]
[[stems]]
name = "b"
path = "b.wav"
process = [{ type = "compressor", threshold_db = -24.0, ratio = 3.0, release_ms = 50.0 }]
[master]
target_lufs = -14.0
ceiling_dbtp = -1.0
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
        let state = dir.path().join("state");
        let phase = |args: &[&str]| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("stemforge"));
            cmd.arg("render").arg(&session).args(["--engine", "cpu", "--progress", "none", "--state-dir"]).arg(&state);
            cmd.args(args).stdout(std::process::Stdio::null());
            cmd
        };
        for i in ["0", "1"] {
            assert!(phase(&["--segments", "2", "--segment", i]).status().unwrap().success());
        }
        assert!(phase(&["--solve"]).status().unwrap().success());
        let peak = peak_kib(phase(&["--segments", "2", "--segment", "1", "--write"]));
        println!("phase-3 task, segment 1 of 2 of a {seconds} s programme: peak {peak} KiB");
        kib.push(peak);
    }
    assert!(
        kib[1] as f64 <= 1.25 * kib[0] as f64,
        "a phase-3 task peaked at {} KiB for 8 minutes against {} KiB for 1 minute",
        kib[1],
        kib[0]
    );
}

/// Peak RSS of a 1.5-minute and a 15-minute render of the session `session_toml` (stems made by
/// `make_stems(folder, seconds)`), each checked complete; returns (short, long) in KiB and the
/// long render's count of writing passes.
fn peaks(
    session_toml: &str,
    make_stems: impl Fn(&Path, usize),
    channels: u64,
    engine: &str,
    extra: &[&str],
) -> ((u64, u64), usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut peaks = Vec::new();
    let mut writing_passes = 0;
    for (name, seconds) in [("short", 90usize), ("long", 900)] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        make_stems(&d, seconds);
        std::fs::write(d.join("session.toml"), session_toml).unwrap();
        let report = d.join("report.json");
        let args: Vec<&str> = extra.iter().copied().chain(["--report", report.to_str().unwrap()]).collect();
        let kib = render_peak_kib(&d.join("session.toml"), &d.join("out"), engine, &args);
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        writing_passes = report["passes"].as_array().unwrap().iter().filter(|p| p["kind"] == "limiter").count();
        let bytes = std::fs::metadata(d.join("out/master.wav")).unwrap().len();
        let pcm = seconds as u64 * FS as u64 * 3 * channels;
        assert!(bytes > pcm, "{name}: master is complete ({bytes} bytes of {pcm} PCM)");
        peaks.push(kib);
        // Free the disk before the next, larger case.
        std::fs::remove_dir_all(&d).unwrap();
    }
    ((peaks[0], peaks[1]), writing_passes)
}

fn assert_flat(what: &str, (short, long): (u64, u64)) {
    let ratio = long as f64 / short as f64;
    eprintln!("{what}: peak RSS 1.5 min {short} KiB, 15 min {long} KiB, ratio {ratio:.3}");
    assert!(ratio <= 1.25, "{what}: peak memory grew with length: {short} KiB -> {long} KiB ({ratio:.2}x)");
}

#[test]
fn peak_memory_does_not_grow_with_length() {
    let session = r#"name = "memory"
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
"#;
    let stems = |d: &Path, seconds: usize| {
        long_stem(&d.join("music.wav"), seconds, 2, 1);
        long_stem(&d.join("vox.wav"), seconds, 1, 2);
    };
    assert_flat("cpu engine", peaks(session, stems, 2, "cpu", &[]).0);
}

/// The GPU engine (issue 17: it grew by ~0.5 MB per block on lavapipe, 3.9 GB for 10 minutes,
/// until the stages' configs moved out of uniform buffers; see `gpu::context::Bind`). A mono
/// master-only session keeps lavapipe's share of the suite's time small; the 4x true-peak limiter,
/// the stage that grew, runs on every block. `--spill none` repeats the writing pass until the
/// target is met, so memory must also stay flat across passes: at -12 LUFS the limiter takes
/// enough that the first writing pass misses and G is corrected (asserted).
#[test]
fn gpu_engine_peak_memory_does_not_grow_with_length_or_passes() {
    if !engines().contains(&"gpu") {
        return; // STEMFORGE_SKIP_GPU_TESTS=1: engines() has said so
    }
    let session = r#"name = "memory-gpu"
layout = "mono"
[[stems]]
name = "music"
path = "music.wav"
[master]
target_lufs = -12.0
ceiling_dbtp = -1.0
oversampling = 4
[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
"#;
    let stems = |d: &Path, seconds: usize| long_stem(&d.join("music.wav"), seconds, 1, 3);
    assert_flat("gpu engine", peaks(session, stems, 1, "gpu", &[]).0);
    let (peak, writing_passes) = peaks(session, stems, 1, "gpu", &["--spill", "none"]);
    assert!(writing_passes >= 2, "--spill none: {writing_passes} writing pass(es); the case needs several");
    assert_flat(&format!("gpu engine, --spill none ({writing_passes} writing passes)"), peak);
}
