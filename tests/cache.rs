//! `render --cache DIR` (design/proof.md, issue 15 item 2): a gain revision reads every stem back
//! and its outputs are those of an uncached render to the bit (SHA-256); a changed stem file, a
//! changed EQ, a truncated entry and a flipped byte are each recomputed, said so in the report and
//! never give a wrong output; the folder stays under --cache-max-gb, least recently used out first;
//! entries written by one engine are read by the other; bad flags exit 2.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

const FS: u32 = 48_000;

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every output of a render: its path relative to the output folder -> SHA-256, from the report.
fn outputs(r: &serde_json::Value, out: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for o in r["outputs"].as_array().unwrap() {
        let p = PathBuf::from(o["path"].as_str().unwrap());
        let rel = p.strip_prefix(out).unwrap_or(&p).to_string_lossy().into_owned();
        m.insert(rel, o["sha256"].as_str().unwrap().to_string());
    }
    assert!(!m.is_empty(), "no outputs in the report");
    m
}

/// stem name -> (action, reason) of the report's cache section.
fn actions(r: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    r["cache"]["stems"]
        .as_array()
        .unwrap_or_else(|| panic!("no cache section: {r}"))
        .iter()
        .map(|s| {
            let reason = s["reason"].as_str().unwrap_or("").to_string();
            (s["stem"].as_str().unwrap().to_string(), (s["action"].as_str().unwrap().to_string(), reason))
        })
        .collect()
}

/// A render into `out` (fresh), with `extra` flags; its report.
fn run(session: &Path, out: &Path, engine: &str, extra: &[&str]) -> serde_json::Value {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let rep = out.join("report.json");
    let mut args: Vec<&str> = vec!["--report", rep.to_str().unwrap()];
    args.extend_from_slice(extra);
    render(session, out, engine, &args, 0);
    report(&rep)
}

/// A render with `--cache cache` (and `extra`).
fn cached(session: &Path, out: &Path, engine: &str, cache: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--cache", cache.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(session, out, engine, &args)
}

/// Four stems: drums (EQ), bass (mono, EQ then a compressor and a transient shaper: a level-
/// dependent chain), music (no EQ, a compressor keyed by the vocals: ducking), vocals (EQ); a bus EQ
/// and a bus compressor; a loudness target; a pcm24 master and pcm24 stems.
fn song(dir: &Path, vocals_gain_db: f64, vocals_eq_gain_db: f64) -> PathBuf {
    let frames = 2 * FS as usize;
    for (i, (n, ch)) in [("drums", 2), ("bass", 1), ("music", 2), ("vocals", 2)].iter().enumerate() {
        let p = dir.join(format!("{n}.wav"));
        if !p.exists() {
            let mut s = music(70 + i as u64, frames, *ch, -8.0 - i as f64);
            quantise(&mut s, 24);
            write_wav(&p, &s, FS, 24);
        }
    }
    let toml = format!(
        r#"name = "song"
layout = "stereo"
[[stems]]
name = "drums"
path = "drums.wav"
eq = [ {{ type = "peak", freq_hz = 3000.0, gain_db = 2.0, q = 1.0 }} ]
[[stems]]
name = "bass"
path = "bass.wav"
gain_db = -1.0
eq = [ {{ type = "highpass", freq_hz = 40.0, order = 2 }} ]
process = [
  {{ type = "compressor", threshold_db = -24.0, ratio = 3.0, attack_ms = 5.0, release_ms = 80.0 }},
  {{ type = "transient", attack_db = 3.0 }},
]
[[stems]]
name = "music"
path = "music.wav"
process = [ {{ type = "compressor", threshold_db = -30.0, ratio = 2.0, key = "vocals" }} ]
[[stems]]
name = "vocals"
path = "vocals.wav"
gain_db = {vocals_gain_db}
eq = [ {{ type = "peak", freq_hz = 2500.0, gain_db = {vocals_eq_gain_db}, q = 1.0 }} ]
[bus]
eq = [ {{ type = "low_shelf", freq_hz = 120.0, gain_db = -1.0, q = 0.707 }} ]
process = [ {{ type = "compressor", threshold_db = -16.0, ratio = 1.5, attack_ms = 20.0, release_ms = 200.0 }} ]
[eq_design]
taps = 1023
[master]
target_lufs = -12.0
ceiling_dbtp = -1.0
[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
[[outputs]]
path = "stems"
kind = "stems"
format = "pcm24"
"#
    );
    let p = dir.join("session.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

/// The revision workflow on each engine: a first render with --cache stores every stem and equals
/// an uncached render; "vocals +1 dB" reads every stem back and equals an uncached render of the
/// revised session, every output to the bit.
#[test]
fn a_gain_revision_reuses_every_stem_and_matches_an_uncached_render() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let session = song(dir.path(), 0.0, 2.0);
        let plain = run(&session, &dir.path().join("plain"), engine, &[]);
        let first = cached(&session, &dir.path().join("first"), engine, &cache, &[]);
        assert!(actions(&first).values().all(|(a, _)| a == "stored"), "{engine}: {:?}", actions(&first));
        assert_eq!(first["passes"][0]["kind"], "stems", "{engine}: the capture pass first");
        assert_eq!(first["cache"]["stems_engine"], engine);
        assert_eq!(first["cache"]["mix_engine"], "cpu");
        assert_eq!(outputs(&first, &dir.path().join("first")), outputs(&plain, &dir.path().join("plain")), "{engine}");

        let session = song(dir.path(), 1.0, 2.0);
        let plain = run(&session, &dir.path().join("plain"), engine, &[]);
        let warm = cached(&session, &dir.path().join("warm"), engine, &cache, &[]);
        assert!(actions(&warm).values().all(|(a, _)| a == "reused"), "{engine}: {:?}", actions(&warm));
        assert!(warm["cache"]["stems_engine"].is_null());
        assert!(warm["cache"]["bytes_read"].as_u64().unwrap() > 0);
        assert_eq!(warm["cache"]["bytes_written"], 0);
        assert!(warm["passes"].as_array().unwrap().iter().all(|p| p["input"] != "stems"), "{engine}: no stem read");
        assert_eq!(outputs(&warm, &dir.path().join("warm")), outputs(&plain, &dir.path().join("plain")), "{engine}");
    }
}
