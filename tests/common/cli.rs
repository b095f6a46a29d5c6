//! The stemforge binary and the outside tools the tests check it with: ffmpeg as the independent
//! BS.1770 meter, ffprobe, and folder listings.
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The `openjd` command (pip package openjd-cli): on PATH, or where `.ci/run` installs it. Missing,
/// it fails `test` in CI (`CI` set) and skips it loudly elsewhere.
pub fn openjd(test: &str) -> Option<PathBuf> {
    if Command::new("openjd").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some("openjd".into());
    }
    let venv = PathBuf::from("/opt/stemforge-openjd/bin/openjd");
    if venv.exists() {
        return Some(venv);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: openjd (pip package openjd-cli) is not installed; .ci/run installs it");
    }
    eprintln!("\n*** SKIPPED {test}: no `openjd` (pip install openjd-cli; .ci/run installs it) ***\n");
    None
}

/// A job template (`farm openjd`'s stdout) written to `dir/name`, `openjd check`ed (which must
/// pass), then `openjd run` in `dir`: whether the run succeeded, and its log.
pub fn openjd_check_and_run(openjd: &Path, template: &[u8], dir: &Path, name: &str) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, template).unwrap();
    let check = Command::new(openjd).arg("check").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "openjd check:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let run = Command::new(openjd).arg("run").arg(&path).current_dir(dir).output().unwrap();
    (run.status.success(), format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr)))
}
