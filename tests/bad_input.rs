//! Bad input to `render`: exit 2, a message naming the file and the problem, nothing written.
mod common;

use std::path::Path;

use common::*;

const FS: u32 = 48_000;

/// A good two-stem session in `dir`; `tweak` breaks one thing.
fn session(dir: &Path, extra_top: &str, second_path: &str) -> std::path::PathBuf {
    let mut a = music(1, FS as usize, 2, -6.0);
    quantise(&mut a, 24);
    write_wav(&dir.join("a.wav"), &a, FS, 24);
    let body = format!(
        r#"name = "bad"
layout = "stereo"
{extra_top}
[[stems]]
name = "a"
path = "a.wav"
[[stems]]
name = "b"
path = "{second_path}"
[master]
target_lufs = -16.0
[[outputs]]
path = "out/master.wav"
kind = "master"
format = "pcm24"
"#
    );
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

/// Render must fail with exit 2, name `names` in its message, and write nothing in `out`.
fn expect_rejected(session: &Path, names: &[&str], problem: &str) {
    let dir = session.parent().unwrap();
    let before = files_under(dir);
    let out = dir.join("rendered");
    let assert = stemforge()
        .arg("render")
        .arg(session)
        .args(["--engine", "cpu", "--progress", "none", "--out-dir"])
        .arg(&out)
        .assert();
    let output = assert.get_output();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "expected exit 2, got {:?}:\n{err}", output.status.code());
    for n in names {
        assert!(err.contains(n), "message should name `{n}`:\n{err}");
    }
    assert!(err.to_lowercase().contains(problem), "message should say `{problem}`:\n{err}");
    assert!(!out.exists() || files_under(&out).is_empty(), "something was written: {:?}", files_under(&out));
    assert_eq!(files_under(dir), before, "files changed beside the session");
}

#[test]
fn unknown_session_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = music(2, FS as usize, 2, -6.0);
    quantise(&mut b, 24);
    write_wav(&dir.path().join("b.wav"), &b, FS, 24);
    let s = session(dir.path(), "referense_mix = \"mix.wav\"", "b.wav");
    expect_rejected(&s, &["session.toml", "referense_mix"], "unknown");
}

#[test]
fn missing_stem() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path(), "", "nowhere.wav");
    expect_rejected(&s, &["nowhere.wav"], "no such file");
}

#[test]
fn truncated_wav() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = music(2, FS as usize, 2, -6.0);
    quantise(&mut b, 24);
    let p = dir.path().join("b.wav");
    write_wav(&p, &b, FS, 24);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let s = session(dir.path(), "", "b.wav");
    expect_rejected(&s, &["b.wav"], "truncated");
}

#[test]
fn non_audio_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.wav"), b"This is a text file pretending to be a WAV.\n".repeat(100)).unwrap();
    let s = session(dir.path(), "", "b.wav");
    expect_rejected(&s, &["b.wav"], "not an audio file");
}

#[test]
fn wrong_sample_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = music(2, 44_100, 2, -6.0);
    quantise(&mut b, 24);
    write_wav(&dir.path().join("b.wav"), &b, 44_100, 24);
    let s = session(dir.path(), "", "b.wav");
    expect_rejected(&s, &["b.wav", "44100", "48000"], "sample rate");
}

#[test]
fn nan_sample() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = music(2, FS as usize, 2, -6.0);
    b[1][30_000] = f32::NAN;
    write_wav(&dir.path().join("b.wav"), &b, FS, 0);
    let s = session(dir.path(), "", "b.wav");
    expect_rejected(&s, &["b.wav", "30000"], "nan");
}

#[test]
fn zero_length_stem() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(&dir.path().join("b.wav"), &[vec![], vec![]], FS, 24);
    let s = session(dir.path(), "", "b.wav");
    expect_rejected(&s, &["b.wav"], "no audio");
}

#[test]
fn unwritable_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = music(2, FS as usize, 2, -6.0);
    quantise(&mut b, 24);
    write_wav(&dir.path().join("b.wav"), &b, FS, 24);
    let s = session(dir.path(), "", "b.wav");
    // A file where the output folder should be: nothing can be created under it.
    let blocker = dir.path().join("blocked");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let out = stemforge()
        .arg("render")
        .arg(&s)
        .args(["--engine", "cpu", "--progress", "none", "--out-dir"])
        .arg(&blocker)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("blocked"), "message names the output path:\n{err}");
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a folder");
}
