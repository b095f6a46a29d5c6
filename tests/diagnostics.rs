//! Honest diagnostics (issue 10 items 9, 10, 12): each message names the real problem and the
//! file, stem or flag at fault, with the exit code DESIGN.md gives it.
mod common;

use std::path::{Path, PathBuf};

use common::*;

const FS: u32 = 48_000;

/// A session of the given stems (name, file) mastered to -14 LUFS, one master `output`.
fn session(dir: &Path, stems: &[(&str, &str)], layout: &str, output: &str, extra: &str) -> PathBuf {
    let mut body = format!("name = \"diag\"\nlayout = \"{layout}\"\n{extra}\n");
    for (name, path) in stems {
        body += &format!("[[stems]]\nname = {name:?}\npath = {path:?}\n");
    }
    body += &format!(
        "[master]\ntarget_lufs = -14.0\n[[outputs]]\npath = {output:?}\nkind = \"master\"\nformat = \"pcm24\"\n"
    );
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn stem(dir: &Path, name: &str, seconds: f64, channels: usize) {
    let mut s = music(3, (seconds * FS as f64) as usize, channels, -6.0);
    quantise(&mut s, 24);
    write_wav(&dir.join(name), &s, FS, 24);
}

/// Run a command; assert its exit code and that stderr says each of `says`; return stderr.
fn expect(cmd: &mut assert_cmd::Command, code: i32, says: &[&str]) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "expected exit {code}:\n{err}");
    for s in says {
        assert!(err.contains(s), "stderr should say `{s}`:\n{err}");
    }
    err
}

fn render_cmd(session: &Path, out: &Path) -> assert_cmd::Command {
    let mut c = stemforge();
    c.arg("render").arg(session).args(["--engine", "cpu", "--progress", "none", "--out-dir"]).arg(out);
    c
}

/// Exit 2 from render, and nothing written.
fn rejected(session: &Path, says: &[&str]) -> String {
    let out = session.parent().unwrap().join("rendered");
    let err = expect(&mut render_cmd(session, &out), 2, says);
    assert!(files_under(&out).is_empty(), "something was written: {:?}", files_under(&out));
    err
}

/// Item 9: a programme shorter than one 400 ms gating block is that, with its length and its
/// longest stem, not "silent".
#[test]
fn a_program_under_400_ms_says_so() {
    let dir = tempfile::tempdir().unwrap();
    stem(dir.path(), "hit.wav", 0.3, 2);
    stem(dir.path(), "tick.wav", 0.1, 2);
    let s = session(dir.path(), &[("tick", "tick.wav"), ("hit", "hit.wav")], "stereo", "m.wav", "");
    let err = rejected(&s, &["hit.wav", "300.0 ms", "`hit`", "shorter than one 400 ms", "gating block"]);
    assert!(!err.contains("silent"), "{err}");
}

/// Item 9: devices and FIFOs are not regular files (they used to read as "empty: 0 bytes").
#[test]
fn devices_and_fifos_are_not_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    stem(dir.path(), "a.wav", 1.0, 2);
    let fifo = dir.path().join("pipe.wav");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for (path, what) in
        [("/dev/zero", "character device"), ("/dev/urandom", "character device"), (fifo.to_str().unwrap(), "FIFO")]
    {
        let s = session(dir.path(), &[("a", "a.wav"), ("b", path)], "stereo", "m.wav", "");
        let err = rejected(&s, &[path, "not a regular file", what]);
        assert!(!err.contains("0 bytes"), "{err}");
        expect(stemforge().arg("measure").arg(path), 2, &[path, "not a regular file"]);
    }
}

/// Item 9: a file at 1 Hz is a sample rate the meter does not take, not a channel count.
#[test]
fn a_sample_rate_the_meter_cannot_take_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("slow.wav");
    let mut s = music(4, 64, 2, -6.0);
    quantise(&mut s, 16);
    write_wav(&p, &s, 1, 16);
    let err = expect(stemforge().arg("measure").arg(&p), 2, &["slow.wav", "sample rate 1 Hz is not supported"]);
    assert!(!err.contains("channels"), "{err}");
}

/// A PCM WAV header of `bits` per sample (rounded up to whole bytes) and `frames` frames of ramp.
fn odd_bit_wav(path: &Path, bits: u16, channels: u16, frames: u32) {
    let bps = bits.div_ceil(8);
    let align = bps * channels;
    let data = frames * align as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&FS.to_le_bytes());
    b.extend_from_slice(&(FS * align as u32).to_le_bytes());
    b.extend_from_slice(&align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    b.extend((0..data).map(|i| (i * 37 % 251) as u8));
    std::fs::write(path, b).unwrap();
}

/// Item 9: the 12-bit error lists every integer depth that is read, 8 included.
#[test]
fn an_unread_bit_depth_lists_those_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("twelve.wav");
    odd_bit_wav(&p, 12, 2, 4800);
    expect(stemforge().arg("measure").arg(&p), 2, &["twelve.wav", "12-bit", "8, 16, 24 or 32 bits"]);
}

/// Item 9: `check` against a mix cut to half length says the lengths differ, first, and blames
/// no stem's gain or offset.
#[test]
fn check_on_a_half_length_mix_says_the_lengths_differ() {
    let dir = tempfile::tempdir().unwrap();
    let a = music(5, 4 * FS as usize, 2, -9.0);
    let b = music(6, 4 * FS as usize, 2, -9.0);
    let mut qa = a.clone();
    let mut qb = b.clone();
    quantise(&mut qa, 24);
    quantise(&mut qb, 24);
    write_wav(&dir.path().join("a.wav"), &qa, FS, 24);
    write_wav(&dir.path().join("b.wav"), &qb, FS, 24);
    let half = 2 * FS as usize;
    let mix: Vec<Vec<f32>> = (0..2).map(|c| (0..half).map(|n| qa[c][n] + qb[c][n]).collect()).collect();
    write_wav(&dir.path().join("mix.wav"), &mix, FS, 0);
    let s = session(dir.path(), &[("a", "a.wav"), ("b", "b.wav")], "stereo", "m.wav", "reference_mix = \"mix.wav\"");
    let out = stemforge().arg("check").arg(&s).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("the lengths differ"), "{text}");
    assert!(text.contains("96000 frames") && text.contains("192000 frames"), "{text}");
    for blame in ["louder in the mix", "quieter in the mix", "late relative", "early relative", "polarity"] {
        assert!(!text.contains(blame), "made-up cause `{blame}`:\n{text}");
    }
}

/// Item 10: a NaN or infinite tolerance is a usage error (exit 2), not a failed comparison.
#[test]
fn compare_tolerances_must_be_finite() {
    let dir = tempfile::tempdir().unwrap();
    stem(dir.path(), "a.wav", 0.5, 2);
    let a = dir.path().join("a.wav");
    for flag in ["--max-peak-dbfs", "--max-rms-dbfs"] {
        for v in ["nan", "NaN", "inf", "-inf"] {
            // `=` form: clap reads a bare "-inf" as a flag of its own.
            expect(stemforge().arg("compare").arg(&a).arg(&a).arg(format!("{flag}={v}")), 2, &[flag, "finite"]);
        }
    }
    // The same files with a finite tolerance pass.
    expect(stemforge().arg("compare").arg(&a).arg(&a).args(["--max-peak-dbfs", "-120"]), 0, &[]);
}

/// A 24-bit WAVE_FORMAT_EXTENSIBLE file with the given channel mask.
fn extensible_wav(path: &Path, chans: &[Vec<f32>], mask: u32) {
    write_wav_mask(path, chans, FS, mask);
}

/// Item 12: a 5.1 stem whose mask labels the surrounds "back" instead of "side" renders with a
/// warning on stderr and in the report; one whose six channels are not 5.1 in WAV order (no LFE,
/// a back centre) is refused, naming the file, the mask and the layout.
#[test]
fn a_channel_mask_that_disagrees_with_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let six = music(8, 2 * FS as usize, 6, -8.0);
    extensible_wav(&dir.path().join("back.wav"), &six, 0x3F);
    let s = session(dir.path(), &[("dme", "back.wav")], "5.1", "m.wav", "");
    let rp = dir.path().join("r.json");
    let err = render(&s, &dir.path().join("ok"), "cpu", &["--report", rp.to_str().unwrap()], 0);
    assert!(err.contains("warning:") && err.contains("back.wav") && err.contains("0x3f"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&rp).unwrap()).unwrap();
    let warned = r["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("0x3f"));
    assert!(warned, "{}", r["warnings"]);

    extensible_wav(&dir.path().join("odd.wav"), &six, 0x137);
    let s = session(dir.path(), &[("dme", "odd.wav")], "5.1", "m.wav", "");
    rejected(&s, &["odd.wav", "0x137", "FL FR FC BL BR BC", "5.1", "routed"]);
    // Stereo labelled as the side pair: its channels would be weighted as surrounds.
    let two = music(9, FS as usize, 2, -8.0);
    extensible_wav(&dir.path().join("sides.wav"), &two, 0x600);
    let s = session(dir.path(), &[("pair", "sides.wav")], "stereo", "m.wav", "");
    rejected(&s, &["sides.wav", "0x600", "stereo"]);
}

/// Item 12: a master named for another format is refused, naming the output and its extension.
#[test]
fn an_output_extension_that_is_not_wav_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    stem(dir.path(), "a.wav", 1.0, 2);
    for (name, ext) in [("master.mp3", "\".mp3\""), ("master.flac", "\".flac\""), ("master", "no extension")] {
        let s = session(dir.path(), &[("a", "a.wav")], "stereo", name, "");
        rejected(&s, &["outputs[0].path", name, ext, ".wav, .bwf or .rf64"]);
    }
    // .bwf too: every output is a Broadcast Wave (a bext chunk, design/deliverables.md).
    for name in ["master.WAV", "master.rf64", "master.bwf"] {
        let s = session(dir.path(), &[("a", "a.wav")], "stereo", name, "");
        let out = dir.path().join(format!("ok-{name}"));
        render(&s, &out, "cpu", &[], 0);
        assert!(out.join(name).exists());
    }
}

/// Item 12: a blank stem name (empty or only whitespace) or one with a path separator is refused,
/// naming the stem's index.
#[test]
fn a_blank_or_pathlike_stem_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    stem(dir.path(), "a.wav", 1.0, 2);
    for (name, says) in [("  ", "blank"), ("", "blank"), ("\t", "blank"), ("dr/ums", "file name"), ("..", "file name")]
    {
        let s = session(dir.path(), &[("a", "a.wav"), (name, "a.wav")], "stereo", "m.wav", "");
        rejected(&s, &["stems[1].name", says]);
    }
}
