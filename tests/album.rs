//! `stemforge album` (design/deliverables.md "Albums and EPs", issue 12): three sessions mastered
//! as one EP. Album normalisation: the loudest track reads the target and the others keep their
//! relative loudness; track normalisation: every track on target. The sequence file equals the
//! tracks and gaps concatenated, sample for sample, and the CUE sheet's INDEX points land on the
//! track starts. Bad input is exit 2 naming it, with nothing written.
mod common;

use std::path::{Path, PathBuf};

use common::*;
use stemforge::meter::measure_file;

const FS: u32 = 48_000;

/// A song folder with two stereo stems of `seconds` and a session whose master has `target` (none:
/// its bus loudness is its relative level).
fn song(root: &Path, name: &str, seed: u64, level_dbfs: f64, seconds: f64, target: Option<f64>) {
    let dir = root.join(name);
    let frames = (seconds * FS as f64) as usize;
    write_wav(&dir.join("stems/drums.wav"), &music(seed, frames, 2, level_dbfs), FS, 24);
    write_wav(&dir.join("stems/keys.wav"), &music(seed + 1, frames, 2, level_dbfs - 4.0), FS, 24);
    let master = match target {
        Some(t) => format!("[master]\ntarget_lufs = {t}\nceiling_dbtp = -1.0\n"),
        None => String::new(),
    };
    std::fs::write(
        dir.join("session.toml"),
        format!(
            r#"name = "{name}"
layout = "stereo"
[[stems]]
name = "drums"
path = "stems/drums.wav"
[[stems]]
name = "keys"
path = "stems/keys.wav"
eq = [{{ type = "high_shelf", freq_hz = 6000.0, gain_db = 2.0, q = 0.707 }}]
{master}
[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
"#
        ),
    )
    .unwrap();
}

/// The EP: a single at -14, a ballad at -16, and an interlude with no target (its bus loudness).
fn ep(root: &Path, normalization: &str) -> PathBuf {
    song(root, "single", 11, -3.0, 12.0, Some(-14.0));
    song(root, "ballad", 21, -8.0, 10.5, Some(-16.0));
    song(root, "interlude", 31, -18.0, 7.3, None);
    let album = root.join("ep.toml");
    std::fs::write(
        &album,
        format!(
            r#"name = "ep-one"
normalization = "{normalization}"
target_lufs = -14.0
ceiling_dbtp = -1.0
[[tracks]]
session = "single/session.toml"
[[tracks]]
session = "ballad/session.toml"
gap_s = 2.0
[[tracks]]
session = "interlude/session.toml"
[[outputs]]
path = "album/{{index:02}}-{{name}}.wav"
kind = "tracks"
format = "pcm16"
[[outputs]]
path = "album/ep-one.wav"
kind = "sequence"
format = "pcm16"
"#
        ),
    )
    .unwrap();
    album
}

fn run_album(album: &Path, out: &Path, code: i32) -> (serde_json::Value, String) {
    let o = stemforge().arg("album").arg(album).args(["--engine", "cpu", "--out-dir"]).arg(out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(code), "{err}");
    (serde_json::from_slice(&o.stdout).unwrap_or_default(), err)
}

fn lufs(p: &Path) -> f64 {
    measure_file(p).unwrap().integrated_lufs
}

#[test]
fn album_normalisation_keeps_relative_levels_and_the_sequence_is_the_tracks_and_gaps() {
    let d = tempfile::tempdir().unwrap();
    let album = ep(d.path(), "album");
    let out = d.path().join("out");
    let (r, text) = run_album(&album, &out, 0);
    println!("{text}");
    let tracks = r["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 3);
    let files: Vec<PathBuf> =
        ["01-single", "02-ballad", "03-interlude"].iter().map(|n| out.join(format!("album/{n}.wav"))).collect();
    let measured: Vec<f64> = files.iter().map(|f| lufs(f)).collect();
    let relative: Vec<f64> = tracks.iter().map(|t| t["relative_lufs"].as_f64().unwrap()).collect();
    let loudest = (0..3).max_by(|&a, &b| relative[a].total_cmp(&relative[b])).unwrap();
    println!("relative levels {relative:?}, delivered {measured:?}");
    assert!((measured[loudest] + 14.0).abs() <= 0.1, "the loudest track reads {}", measured[loudest]);
    for i in 0..3 {
        let want = relative[i] - relative[loudest];
        let got = measured[i] - measured[loudest];
        assert!((got - want).abs() <= 0.1, "track {i}: {got:+.3} LU from the loudest, its session says {want:+.3}");
    }
    // The interlude has no target: its relative level is its bus loudness, well under the others.
    assert!(relative[2] < -18.0, "{relative:?}");

    // The sequence: gaps of silence and the tracks, sample for sample.
    let (fs, seq) = read_audio(&out.join("album/ep-one.wav"));
    assert_eq!(fs, FS);
    let mut at = 0usize;
    for (i, t) in tracks.iter().enumerate() {
        let gap = t["gap_frames"].as_u64().unwrap() as usize;
        let start = t["start_frame"].as_u64().unwrap() as usize;
        assert_eq!(start, at + gap, "track {i}'s start");
        assert!(seq.iter().all(|c| c[at..start].iter().all(|&v| v == 0.0)), "track {i}'s gap is not silence");
        let (_, track) = read_audio(&files[i]);
        for (c, tc) in seq.iter().zip(&track) {
            assert!(c[start..start + tc.len()] == tc[..], "track {i} differs in the sequence");
        }
        at = start + track[0].len();
    }
    assert_eq!(at, seq[0].len(), "the sequence ends with the last track");
    // The 2 s gap before the ballad: at least 2 s, lengthened to land the ballad on a CD frame.
    let gap = tracks[1]["gap_frames"].as_u64().unwrap();
    assert!((96_000..96_000 + 640).contains(&gap), "gap {gap}");
    assert_eq!(tracks[1]["start_frame"].as_u64().unwrap() % 640, 0);

    // The CUE sheet: INDEX 01 of each track at its start (in CD frames of 640 samples at 48 kHz;
    // the gapless interlude's start rounded down to its frame).
    let cue = std::fs::read_to_string(out.join("album/ep-one.cue")).unwrap();
    let indexes: Vec<u64> = cue
        .lines()
        .filter_map(|l| l.trim().strip_prefix("INDEX 01 "))
        .map(|t| {
            let v: Vec<u64> = t.split(':').map(|x| x.parse().unwrap()).collect();
            (v[0] * 60 + v[1]) * 75 + v[2]
        })
        .collect();
    assert_eq!(indexes.len(), 3, "{cue}");
    for (t, cd) in tracks.iter().zip(&indexes) {
        let start = t["start_frame"].as_u64().unwrap();
        assert!(
            cd * 640 <= start && start < (cd + 1) * 640,
            "INDEX 01 at CD frame {cd}, track starts at {start}\n{cue}"
        );
    }
    assert!(cue.contains("FILE \"ep-one.wav\" WAVE") && cue.contains("INDEX 00"), "{cue}");
    let album_lufs = r["album_loudness"]["integrated_lufs"].as_f64().unwrap();
    assert!((album_lufs - lufs(&out.join("album/ep-one.wav"))).abs() < 0.01, "album loudness {album_lufs}");
    // Nothing staged is left behind.
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("album")], "{left:?}");
}

/// `album --cache` (README "Revisions"): the EP's first render stores every track's stems; the
/// revision "the ballad's keys up 1 dB" reads every one back (each track's report says `reused`,
/// nothing new is stored) and delivers what an uncached album render of the revised EP does, to
/// the bit (album tracks are master-only renders: cached or not, they sum the same f32 stems).
#[test]
fn an_ep_revision_reads_every_stem_from_the_cache() {
    let d = tempfile::tempdir().unwrap();
    let album = ep(d.path(), "album");
    let cache = d.path().join("cache");
    let with_cache = |out: &Path| {
        let o = stemforge()
            .arg("album")
            .arg(&album)
            .args(["--engine", "cpu", "--out-dir"])
            .arg(out)
            .arg("--cache")
            .arg(&cache)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let entries = || {
        std::fs::read_dir(&cache)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".sfstem"))
            .count()
    };
    let actions = |r: &serde_json::Value| -> Vec<String> {
        r["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["cache"]["stems"].as_array().unwrap().clone())
            .map(|s| s["action"].as_str().unwrap().to_string())
            .collect()
    };
    let first = with_cache(&d.path().join("first"));
    // The interlude (no target) has its bus loudness measured first, by a render of the same
    // stems and alignment: its track render already reads them back.
    assert_eq!(actions(&first), ["stored", "stored", "stored", "stored", "reused", "reused"]);
    let stored = entries();
    assert_eq!(stored, 6, "two stems a track");

    let ballad = d.path().join("ballad/session.toml");
    let text = std::fs::read_to_string(&ballad).unwrap();
    std::fs::write(&ballad, text.replace("name = \"keys\"\n", "name = \"keys\"\ngain_db = 1.0\n")).unwrap();
    let revised = with_cache(&d.path().join("revised"));
    assert_eq!(actions(&revised).len(), 6, "{:?}", actions(&revised));
    assert!(actions(&revised).iter().all(|a| a == "reused"), "{:?}", actions(&revised));
    assert_eq!(entries(), stored, "the revision stored nothing");

    let plain = d.path().join("plain");
    let (plain_report, _) = run_album(&album, &plain, 0);
    for (a, b) in revised["tracks"].as_array().unwrap().iter().zip(plain_report["tracks"].as_array().unwrap()) {
        let (ga, gb) = (a["gain_db"].as_f64().unwrap(), b["gain_db"].as_f64().unwrap());
        assert!((ga - gb).abs() < 1e-6, "{}: G {ga} dB cached, {gb} dB uncached", a["name"]);
    }
    for name in ["01-single", "02-ballad", "03-interlude", "ep-one"] {
        let file = |dir: &Path| std::fs::read(dir.join("album").join(format!("{name}.wav"))).unwrap();
        assert_eq!(file(&d.path().join("revised")), file(&plain), "{name}: cached and uncached renders");
    }
    // Only the ballad changed: the other tracks are the first render's to the bit.
    let bytes =
        |dir: &str, name: &str| std::fs::read(d.path().join(dir).join("album").join(format!("{name}.wav"))).unwrap();
    assert_eq!(bytes("first", "01-single"), bytes("revised", "01-single"));
    assert_eq!(bytes("first", "03-interlude"), bytes("revised", "03-interlude"));
    assert_ne!(bytes("first", "02-ballad"), bytes("revised", "02-ballad"));
}

#[test]
fn track_normalisation_puts_every_track_on_target() {
    let d = tempfile::tempdir().unwrap();
    let album = ep(d.path(), "track");
    let out = d.path().join("out");
    run_album(&album, &out, 0);
    for n in ["01-single", "02-ballad", "03-interlude"] {
        let l = lufs(&out.join(format!("album/{n}.wav")));
        assert!((l + 14.0).abs() <= 0.1, "{n} reads {l}");
    }
}

#[test]
fn bad_albums_are_exit_2_naming_the_problem_with_nothing_written() {
    let d = tempfile::tempdir().unwrap();
    let album = ep(d.path(), "album");
    let out = d.path().join("out");
    // A track whose session fails (a stem is missing).
    std::fs::remove_file(d.path().join("ballad/stems/keys.wav")).unwrap();
    let (_, e) = run_album(&album, &out, 2);
    assert!(e.contains("tracks[1]") && e.contains("keys.wav"), "{e}");
    assert!(!out.exists(), "a refused album wrote {out:?}");
    song(d.path(), "ballad", 21, -8.0, 10.5, Some(-16.0));
    // An unknown placeholder.
    let text = std::fs::read_to_string(&album).unwrap();
    std::fs::write(&album, text.replace("{index:02}-{name}", "{index:02}-{title}")).unwrap();
    let (_, e) = run_album(&album, &out, 2);
    assert!(e.contains("outputs[0]") && e.contains("{title}"), "{e}");
    assert!(!out.exists());
    // An unknown normalisation.
    std::fs::write(&album, text.replace("normalization = \"album\"", "normalization = \"loudest\"")).unwrap();
    let (_, e) = run_album(&album, &out, 2);
    assert!(e.contains("normalization") && e.contains("loudest"), "{e}");
    assert!(!out.exists());
}

/// A CD master from 48 kHz sessions: tracks and sequence at 44.1 kHz, the tracks resampled as
/// delivered (round(N·44100/48000) frames, true peak under the ceiling at 44.1 kHz), the sequence
/// still the tracks and gaps, the ballad on a CD frame (588 samples).
#[test]
fn a_cd_sequence_at_44k1_from_48k_sessions() {
    let d = tempfile::tempdir().unwrap();
    let album = ep(d.path(), "album");
    let text = std::fs::read_to_string(&album)
        .unwrap()
        .replace("format = \"pcm16\"\n", "format = \"pcm16\"\nsample_rate = 44100\n");
    std::fs::write(&album, text).unwrap();
    // Music rolls off above 18 kHz; the test's full-band noise does not, and the 0.2 LU it carries
    // above 22.05 kHz would leave the 44.1 kHz files under their target (one G serves every rate).
    for song in ["single", "ballad", "interlude"] {
        let p = d.path().join(song).join("session.toml");
        let text = std::fs::read_to_string(&p).unwrap()
            + "[bus]\neq = [{ type = \"lowpass\", freq_hz = 18000.0, order = 4 }]\n";
        std::fs::write(&p, text).unwrap();
    }
    let out = d.path().join("out");
    let (r, _) = run_album(&album, &out, 0);
    assert_eq!(r["sample_rate"], 44_100);
    let (fs, seq) = read_audio(&out.join("album/ep-one.wav"));
    assert_eq!(fs, 44_100);
    let mut at = 0usize;
    for (i, (t, seconds)) in r["tracks"].as_array().unwrap().iter().zip([12.0, 10.5, 7.3]).enumerate() {
        let name = t["name"].as_str().unwrap();
        let file = out.join(format!("album/{:02}-{name}.wav", i + 1));
        let (rate, track) = read_audio(&file);
        assert_eq!(rate, 44_100);
        let n48 = (seconds * 48_000.0) as u64;
        assert_eq!(track[0].len() as u64, (n48 * 44_100 + 24_000) / 48_000, "{name}: frames at 44.1 kHz");
        let stats = measure_file(&file).unwrap();
        assert!(stats.true_peak_dbtp <= -1.0, "{name} at 44.1 kHz: {} dBTP", stats.true_peak_dbtp);
        let start = t["start_frame"].as_u64().unwrap() as usize;
        assert!(seq.iter().all(|c| c[at..start].iter().all(|&v| v == 0.0)));
        for (c, tc) in seq.iter().zip(&track) {
            assert!(c[start..start + tc.len()] == tc[..], "{name} differs in the sequence");
        }
        at = start + track[0].len();
    }
    assert_eq!(at, seq[0].len());
    assert_eq!(r["tracks"][1]["start_frame"].as_u64().unwrap() % 588, 0, "the ballad on a CD frame");
}
