//! `render --cache DIR` (design/proof.md, issue 15 item 2): a gain revision reads every stem back
//! and its outputs are those of an uncached render to the bit (SHA-256); a changed stem file, a
//! changed EQ, a truncated entry and a flipped byte are each recomputed, said so in the report and
//! never give a wrong output; the folder stays under --cache-max-gb, least recently used out first;
//! entries written by one engine are read by the other; with --proof, the proof page's measures of
//! the stem files are kept and read back too; bad flags exit 2.
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

/// A master-only session whose stems are all linear (EQ only: the case an uncached CPU render once
/// summed in the frequency domain), with a bus compressor (whose figures once depended on the plan
/// the GPU engine's analysis pass ran, and with them G): "vocals +1 dB" from the cache equals an
/// uncached render of the revised session to the bit, on each engine.
#[test]
fn a_master_only_revision_matches_an_uncached_render() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let frames = 4 * FS as usize;
        let session = |vocals_gain_db: f64| {
            let mut toml = String::from("name = \"mo\"\nlayout = \"stereo\"\n");
            for (i, (n, ch)) in [("drums", 2), ("bass", 1), ("vocals", 2)].iter().enumerate() {
                let p = dir.path().join(format!("{n}.wav"));
                if !p.exists() {
                    let mut s = music(170 + i as u64, frames, *ch, -9.0 - i as f64);
                    quantise(&mut s, 24);
                    write_wav(&p, &s, FS, 24);
                }
                let gain = if *n == "vocals" { vocals_gain_db } else { 0.0 };
                toml += &format!("[[stems]]\nname = \"{n}\"\npath = \"{n}.wav\"\ngain_db = {gain:?}\n");
                toml +=
                    &format!("eq = [ {{ type = \"peak\", freq_hz = {}.0, gain_db = 2.0, q = 1.0 }} ]\n", 400 * (i + 1));
            }
            toml += "[bus]\neq = [ { type = \"low_shelf\", freq_hz = 150.0, gain_db = 1.0, q = 0.707 } ]\n";
            toml += "process = [ { type = \"compressor\", threshold_db = -20.0, ratio = 2.0, release_ms = 100.0 } ]\n";
            toml += "[eq_design]\ntaps = 2047\n[master]\ntarget_lufs = -8.0\nceiling_dbtp = -1.0\n";
            toml += "[[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n";
            let p = dir.path().join("session.toml");
            std::fs::write(&p, toml).unwrap();
            p
        };
        cached(&session(0.0), &dir.path().join("first"), engine, &cache, &[]);
        let revised = session(1.0);
        let plain = run(&revised, &dir.path().join("plain"), engine, &[]);
        let warm = cached(&revised, &dir.path().join("warm"), engine, &cache, &[]);
        assert!(actions(&warm).values().all(|(a, _)| a == "reused"), "{engine}: {:?}", actions(&warm));
        let bus = &plain["process_stages"][0]["gain_reduction"]["mean_db"];
        assert!(bus.as_f64().unwrap() > 0.5, "{engine}: the bus compressor must work: {}", plain["process_stages"]);
        let reduction = plain["gain_reduction"]["max_db"].as_f64().unwrap();
        assert!(reduction > 0.5, "{engine}: the limiter must work, so that its envelope is compared: {reduction} dB");
        assert_eq!(outputs(&warm, &dir.path().join("warm")), outputs(&plain, &dir.path().join("plain")), "{engine}");
        // The same solve, step by step: a G that moved by 1e-9 dB would seldom flip an output bit.
        let gains = |r: &serde_json::Value| -> Vec<f64> {
            r["passes"].as_array().unwrap().iter().filter_map(|p| p["gain_db"].as_f64()).collect()
        };
        let warm_gains = gains(&warm).split_off(gains(&warm).len() - gains(&plain).len());
        assert_eq!(warm_gains, gains(&plain), "{engine}: the passes' G, cached and uncached");
        assert_eq!(warm["gain_db"], plain["gain_db"], "{engine}");
    }
}

/// The report's process stages, each with its gain reduction; the stems' compressors and the bus's
/// must have reduced gain, so that equal figures say something (the bass's transient shaper only
/// boosts: its cuts are 0).
fn stages(r: &serde_json::Value) -> Vec<serde_json::Value> {
    let all = r["process_stages"].as_array().unwrap_or_else(|| panic!("no process_stages: {r}")).clone();
    for (stem, index) in [(serde_json::json!("bass"), 0), (serde_json::json!("music"), 0), (serde_json::Value::Null, 0)]
    {
        let st = all.iter().find(|s| s["stem"] == stem && s["index"] == index);
        let max = st.and_then(|s| s["gain_reduction"]["max_db"].as_f64());
        assert!(max.is_some_and(|m| m > 0.1), "{stem} process[{index}] reduced no gain: {all:?}");
    }
    all
}

/// A cached render reports its stems' process stages (their chains ran in the capture pass, or in
/// an earlier render) with the figures of an uncached render, to the bit: the first render, the
/// revision "vocals +1 dB", and a revision whose longer limiter look-ahead makes its passes a
/// block longer. A stage's figures cover the programme's blocks plus the lag up to its chain, not
/// its pass, so the look-ahead does not move them (the bus compressor's neither), nor does
/// `--spill none` (whose writing pass runs the chains where the default's replays a spill). On the
/// GPU engine the capture pass takes the figures from the device, as its uncached render does, and
/// both engines report the same figures.
#[test]
fn a_cached_render_reports_the_stems_stages_as_an_uncached_render() {
    // Blocks of 2048 frames, so that 50 ms more look-ahead is a block more.
    const B: &[&str] = &["--block", "2048"];
    let mut by_engine = Vec::new();
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let session = song(dir.path(), 0.0, 2.0);
        let plain = stages(&run(&session, &dir.path().join("plain"), engine, B));
        by_engine.push((engine, plain.clone()));
        let first = cached(&session, &dir.path().join("first"), engine, &cache, B);
        assert!(actions(&first).values().all(|(a, _)| a == "stored"), "{engine}: {:?}", actions(&first));
        assert_eq!(stages(&first), plain, "{engine}: the first render");

        let session = song(dir.path(), 1.0, 2.0);
        let plain = stages(&run(&session, &dir.path().join("plain"), engine, B));
        let warm = cached(&session, &dir.path().join("warm"), engine, &cache, B);
        assert!(actions(&warm).values().all(|(a, _)| a == "reused"), "{engine}: {:?}", actions(&warm));
        assert_eq!(stages(&warm), plain, "{engine}: vocals +1 dB");

        let text = std::fs::read_to_string(&session).unwrap();
        std::fs::write(&session, text.replace("ceiling_dbtp = -1.0", "ceiling_dbtp = -1.0\nlookahead_ms = 50.0"))
            .unwrap();
        let r = run(&session, &dir.path().join("plain"), engine, B);
        let longer = stages(&r);
        assert_eq!(longer, plain, "{engine}: the look-ahead moved the stages' figures");
        let spill_none = [B, &["--spill", "none"]].concat();
        assert_eq!(stages(&run(&session, &dir.path().join("plain"), engine, &spill_none)), longer, "{engine}");
        let warm = cached(&session, &dir.path().join("longer"), engine, &cache, B);
        assert!(actions(&warm).values().all(|(a, _)| a == "reused"), "{engine}: {:?}", actions(&warm));
        assert_eq!(stages(&warm), longer, "{engine}: a longer look-ahead");
    }
    for (engine, figures) in &by_engine[1..] {
        assert_eq!(figures, &by_engine[0].1, "{engine} against {}", by_engine[0].0);
    }
}

/// The programme is as long as its longest stem, and a stem stage's figures cover the programme's
/// blocks. When that stem grows by a block, a chained stem's entry (which holds two spare blocks)
/// is read with its figures for the longer programme; when it shrinks below what the entry was
/// stored for, the entry is recomputed (said so), never reported with another length's figures.
/// Each time the stages and the outputs equal an uncached render's.
#[test]
fn a_longer_programme_reads_a_chained_stem_a_shorter_one_recomputes_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let wav = |name: &str, seconds: f64, seed: u64| {
        let mut s = music(seed, (seconds * FS as f64) as usize, 2, -6.0);
        quantise(&mut s, 24);
        write_wav(&dir.path().join(name), &s, FS, 24);
    };
    wav("keys.wav", 2.0, 91);
    wav("pad.wav", 3.0, 92);
    let session = dir.path().join("session.toml");
    std::fs::write(
        &session,
        r#"name = "short"
layout = "stereo"
[[stems]]
name = "keys"
path = "keys.wav"
process = [ { type = "compressor", threshold_db = -24.0, ratio = 3.0 } ]
[[stems]]
name = "pad"
path = "pad.wav"
[master]
target_lufs = -14.0
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
    let keys = |r: &serde_json::Value| r["process_stages"][0]["gain_reduction"].clone();
    let first = cached(&session, &dir.path().join("first"), "cpu", &cache, &[]);
    assert!(keys(&first)["max_db"].as_f64().is_some_and(|m| m > 0.1), "{first}");

    wav("pad.wav", 3.1, 93);
    let plain = run(&session, &dir.path().join("plain"), "cpu", &[]);
    let r = cached(&session, &dir.path().join("longer"), "cpu", &cache, &[]);
    assert_eq!(actions(&r)["keys"].0, "reused", "{:?}", actions(&r));
    assert_ne!(keys(&plain), keys(&first), "the programme did not get a block longer");
    assert_eq!(keys(&r), keys(&plain));
    assert_eq!(outputs(&r, &dir.path().join("longer")), outputs(&plain, &dir.path().join("plain")));

    wav("pad.wav", 1.0, 94);
    let plain = run(&session, &dir.path().join("plain"), "cpu", &[]);
    let r = cached(&session, &dir.path().join("shorter"), "cpu", &cache, &[]);
    let a = actions(&r);
    assert_eq!(a["keys"].0, "recomputed", "{a:?}");
    assert!(a["keys"].1.contains("stage figures begin at") && a["keys"].1.contains("(a shorter programme)"), "{a:?}");
    assert_ne!(keys(&plain), keys(&first), "the programme did not get shorter");
    assert_eq!(keys(&r), keys(&plain));
    assert_eq!(outputs(&r, &dir.path().join("shorter")), outputs(&plain, &dir.path().join("plain")));
}

/// The entry of `stem` named in a cached render's report.
fn entry_of(r: &serde_json::Value, cache: &Path, stem: &str) -> PathBuf {
    let s = r["cache"]["stems"].as_array().unwrap().iter().find(|s| s["stem"] == stem).unwrap();
    cache.join(format!("{}.sfstem", s["key"].as_str().unwrap()))
}

/// A changed stem file (same length, other samples) and a changed EQ are new keys: recomputed, the
/// report saying what changed (the music stem, keyed by the vocals, too), and the outputs those of
/// an uncached render.
#[test]
fn a_changed_stem_file_or_eq_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let session = song(dir.path(), 0.0, 2.0);
    cached(&session, &dir.path().join("first"), "cpu", &cache, &[]);

    let mut s = music(99, 2 * FS as usize, 2, -11.0);
    quantise(&mut s, 24);
    let before = std::fs::metadata(dir.path().join("vocals.wav")).unwrap().len();
    write_wav(&dir.path().join("vocals.wav"), &s, FS, 24);
    assert_eq!(std::fs::metadata(dir.path().join("vocals.wav")).unwrap().len(), before, "same size");
    let r = cached(&session, &dir.path().join("new-file"), "cpu", &cache, &[]);
    let a = actions(&r);
    assert_eq!(a["vocals"].0, "recomputed", "{a:?}");
    assert!(a["vocals"].1.contains("the stem file changed"), "{a:?}");
    assert_eq!(a["music"].0, "recomputed", "{a:?}");
    assert!(a["music"].1.contains("keying its compressor"), "{a:?}");
    assert_eq!((a["drums"].0.as_str(), a["bass"].0.as_str()), ("reused", "reused"), "{a:?}");
    let plain = run(&session, &dir.path().join("plain"), "cpu", &[]);
    assert_eq!(outputs(&r, &dir.path().join("new-file")), outputs(&plain, &dir.path().join("plain")));

    let session = song(dir.path(), 0.0, 3.0);
    let r = cached(&session, &dir.path().join("new-eq"), "cpu", &cache, &[]);
    let a = actions(&r);
    assert_eq!(a["vocals"].0, "recomputed", "{a:?}");
    assert!(a["vocals"].1.contains("its EQ changed"), "{a:?}");
    assert!(!a["vocals"].1.contains("stem file"), "{a:?}");
    let plain = run(&session, &dir.path().join("plain"), "cpu", &[]);
    assert_eq!(outputs(&r, &dir.path().join("new-eq")), outputs(&plain, &dir.path().join("plain")));
}

/// A settled stem file's hash is kept beside the entries (`<path hash>.stat`) and trusted only
/// while the file's size, times, inode and device are unchanged: a rewrite at the same size with
/// its modification time set back is still seen (its ctime moved), recomputed, and the outputs are
/// an uncached render's.
#[test]
fn a_stem_rewritten_with_its_old_mtime_is_still_seen() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let session = song(dir.path(), 0.0, 2.0);
    // Past the 2 s a file must have settled for its hash to be recorded.
    std::thread::sleep(std::time::Duration::from_millis(2300));
    cached(&session, &dir.path().join("first"), "cpu", &cache, &[]);
    let stats = std::fs::read_dir(&cache)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".stat"))
        .count();
    assert_eq!(stats, 4, "one record per stem file");
    let again = cached(&session, &dir.path().join("again"), "cpu", &cache, &[]);
    assert!(actions(&again).values().all(|(a, _)| a == "reused"), "{:?}", actions(&again));

    let path = dir.path().join("vocals.wav");
    let before = std::fs::metadata(&path).unwrap();
    let mut s = music(99, 2 * FS as usize, 2, -11.0);
    quantise(&mut s, 24);
    write_wav(&path, &s, FS, 24);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(before.modified().unwrap()).unwrap();
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (before.len(), before.modified().unwrap()),
        "same size and mtime"
    );
    let r = cached(&session, &dir.path().join("rewritten"), "cpu", &cache, &[]);
    let a = actions(&r);
    assert_eq!(a["vocals"].0, "recomputed", "{a:?}");
    assert!(a["vocals"].1.contains("the stem file changed"), "{a:?}");
    let plain = run(&session, &dir.path().join("plain"), "cpu", &[]);
    assert_eq!(outputs(&r, &dir.path().join("rewritten")), outputs(&plain, &dir.path().join("plain")));
}

/// A truncated entry and an entry with one flipped byte are found before use, recomputed and
/// replaced; the outputs are those of an uncached render.
#[test]
fn a_truncated_or_corrupt_entry_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let session = song(dir.path(), 0.0, 2.0);
    let first = cached(&session, &dir.path().join("first"), "cpu", &cache, &[]);
    let plain = run(&session, &dir.path().join("plain"), "cpu", &[]);
    let want = outputs(&plain, &dir.path().join("plain"));

    let drums = entry_of(&first, &cache, "drums");
    let len = std::fs::metadata(&drums).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&drums).unwrap().set_len(len - 1000).unwrap();
    let bass = entry_of(&first, &cache, "bass");
    let mut bytes = std::fs::read(&bass).unwrap();
    let at = bytes.len() / 2 + 3;
    bytes[at] ^= 0x10;
    std::fs::write(&bass, &bytes).unwrap();

    let r = cached(&session, &dir.path().join("again"), "cpu", &cache, &[]);
    let a = actions(&r);
    assert_eq!(a["drums"].0, "recomputed", "{a:?}");
    assert!(a["drums"].1.contains("truncated"), "{a:?}");
    assert_eq!(a["bass"].0, "recomputed", "{a:?}");
    assert!(a["bass"].1.contains("corrupt"), "{a:?}");
    assert_eq!((a["music"].0.as_str(), a["vocals"].0.as_str()), ("reused", "reused"), "{a:?}");
    assert_eq!(outputs(&r, &dir.path().join("again")), want);
    assert_eq!(std::fs::metadata(&drums).unwrap().len(), len, "replaced whole");

    // Replaced: the next render reuses all four.
    let r = cached(&session, &dir.path().join("third"), "cpu", &cache, &[]);
    assert!(actions(&r).values().all(|(a, _)| a == "reused"), "{:?}", actions(&r));
    assert_eq!(outputs(&r, &dir.path().join("third")), want);
}

fn folder_bytes(dir: &Path) -> u64 {
    files_under(dir).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum()
}

/// Short mono stems at 1024-frame blocks, entries of about 37 kB: a 0.0001 GB (100 kB) cache holds
/// two. Renders of `a` and `b`, then `b` alone (a muted: b used last), then `c`: the cache makes
/// room by deleting a's entry, the least recently used, and keeps b's; after every render the
/// folder is under its limit. A stereo stem of 5 s (about 2 MB) is never stored, and its render is
/// still right.
#[test]
fn the_cache_stays_under_its_limit_least_recently_used_out_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let limit = 0.0001f64;
    let frames = FS as usize / 10;
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        let mut s = music(120 + i as u64, frames, 1, -10.0);
        quantise(&mut s, 24);
        write_wav(&dir.path().join(format!("{n}.wav")), &s, FS, 24);
    }
    let session = |name: &str, stems: &[(&str, bool)]| {
        let mut t = format!("name = \"{name}\"\nlayout = \"mono\"\n");
        for (n, mute) in stems {
            t += &format!("[[stems]]\nname = \"{n}\"\npath = \"{n}.wav\"\nmute = {mute}\n");
            t += "eq = [ { type = \"peak\", freq_hz = 1000.0, gain_db = 1.0, q = 1.0 } ]\n";
        }
        t += "[eq_design]\ntaps = 255\n[master]\nceiling_dbtp = -1.0\n";
        t += "[[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"f32\"\n";
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(&p, t).unwrap();
        p
    };
    let flags = ["--block", "1024", "--cache-max-gb", "0.0001"];
    let under = |what: &str| {
        let bytes = folder_bytes(&cache);
        assert!(bytes as f64 <= limit * 1e9, "after {what}: the cache holds {bytes} bytes");
    };
    let ab = cached(&session("ab", &[("a", false), ("b", false)]), &dir.path().join("o1"), "cpu", &cache, &flags);
    let (ea, eb) = (entry_of(&ab, &cache, "a"), entry_of(&ab, &cache, "b"));
    let size = std::fs::metadata(&ea).unwrap().len();
    assert!(size as f64 * 2.0 < limit * 1e9 && size as f64 * 3.0 > limit * 1e9, "entries of {size} bytes");
    under("a and b");
    // Modification times order the entries; make sure they differ on a coarse clock.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let b = cached(&session("ab", &[("a", true), ("b", false)]), &dir.path().join("o2"), "cpu", &cache, &flags);
    assert_eq!(actions(&b)["b"].0, "reused");
    assert!(!actions(&b).contains_key("a"), "a muted stem is not needed");
    under("b alone");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let c = cached(&session("c", &[("c", false)]), &dir.path().join("o3"), "cpu", &cache, &flags);
    assert_eq!(actions(&c)["c"].0, "stored");
    let evicted: Vec<&str> = c["cache"]["evicted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    assert!(evicted.contains(&name(&ea).as_str()), "a's entry went first: {evicted:?}");
    assert!(!ea.exists() && eb.exists() && entry_of(&c, &cache, "c").exists());
    under("c");
    // With --proof, its records (a spectrum and a level curve, about 45 kB here) count too.
    let page = dir.path().join("o3p").join("proof.html");
    let with_proof = [&flags[..], &["--proof", page.to_str().unwrap()]].concat();
    let c = cached(&session("c", &[("c", false)]), &dir.path().join("o3p"), "cpu", &cache, &with_proof);
    assert_eq!(actions(&c)["c"].0, "reused");
    assert!(files_under(&cache).iter().any(|p| p.extension().is_some_and(|x| x == "proof")), "c's proof record");
    under("c with its proof record");

    // Bigger than the whole cache: computed, used, not kept.
    let mut s = music(130, 5 * FS as usize, 2, -10.0);
    quantise(&mut s, 24);
    write_wav(&dir.path().join("big.wav"), &s, FS, 24);
    let t = "name = \"big\"\nlayout = \"stereo\"\n[[stems]]\nname = \"big\"\npath = \"big.wav\"\n\
             [master]\nceiling_dbtp = -1.0\n[[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"f32\"\n";
    std::fs::write(dir.path().join("big.toml"), t).unwrap();
    let big = cached(&dir.path().join("big.toml"), &dir.path().join("o4"), "cpu", &cache, &flags);
    let a = actions(&big);
    assert_eq!(a["big"].0, "uncached", "{a:?}");
    assert!(a["big"].1.contains("larger than --cache-max-gb"), "{a:?}");
    under("a stem bigger than the cache");
    let plain = run(&dir.path().join("big.toml"), &dir.path().join("o5"), "cpu", &["--block", "1024"]);
    let got = cached(&dir.path().join("big.toml"), &dir.path().join("o4"), "cpu", &cache, &flags);
    assert_eq!(outputs(&got, &dir.path().join("o4")), outputs(&plain, &dir.path().join("o5")));
}

/// An entry stored by one engine is read by the other, and the outputs are an uncached CPU
/// render's to the bit (the engines are bit-identical: the parity contract at its tightest).
#[test]
fn entries_cross_between_the_engines() {
    if !engines().contains(&"gpu") {
        return; // engines() has said that the GPU engine is skipped, and why
    }
    let dir = tempfile::tempdir().unwrap();
    let session = song(dir.path(), 0.0, 2.0);
    let plain = run(&session, &dir.path().join("plain"), "cpu", &[]);
    let want = outputs(&plain, &dir.path().join("plain"));
    for (first, second) in [("gpu", "cpu"), ("cpu", "gpu")] {
        let cache = dir.path().join(format!("cache-{first}"));
        let out = dir.path().join(format!("{first}-stores"));
        let r = cached(&session, &out, first, &cache, &[]);
        assert_eq!(r["cache"]["stems_engine"], first);
        assert_eq!(r["engine"]["engine"], first);
        assert_eq!(outputs(&r, &out), want, "stored on {first}");
        let out = dir.path().join(format!("{second}-reads"));
        let r = cached(&session, &out, second, &cache, &[]);
        assert!(actions(&r).values().all(|(a, _)| a == "reused"), "{second} reads {first}'s: {:?}", actions(&r));
        assert_eq!(outputs(&r, &out), want, "{first}'s entries read on {second}");
    }
}

/// Bad values and combinations exit 2 with a message naming the flag, and write nothing.
#[test]
fn bad_cache_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let session = song(dir.path(), 0.0, 2.0);
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    for (args, says) in [
        (vec!["--cache", c, "--cache-max-gb", "0"], "positive number of GB"),
        (vec!["--cache", c, "--cache-max-gb", "-1"], "--cache-max-gb"),
        (vec!["--cache", c, "--cache-max-gb", "lots"], "not a number"),
        (vec!["--cache", c, "--cache-max-gb", "inf"], "positive number of GB"),
        (vec!["--cache-max-gb", "1"], "--cache"),
        (vec!["--cache", c, "--state-dir", "st", "--segments", "2", "--segment", "0"], "--state-dir"),
    ] {
        let out = dir.path().join("out");
        let err = render(&session, &out, "cpu", &args, 2);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(files_under(&out).is_empty(), "{args:?} wrote {:?}", files_under(&out));
        assert!(files_under(&cache).is_empty(), "{args:?} wrote to the cache");
    }
}

/// Variants (a remaster on its own G, a stems variant) give an uncached render's outputs to the bit,
/// cold and warm; so does a render without spills (`--spill none`: every writing pass and the
/// remaster read the stems again, here from the cache). The remaster is a master-only pass: the
/// uncached one sums the stems in the time domain, as a cached one does.
#[test]
fn variants_and_renders_without_spills_read_the_cache_too() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 2 * FS as usize;
    let mut toml = String::from("name = \"v\"\nlayout = \"stereo\"\n");
    for (i, n) in ["drums", "keys", "vocals"].iter().enumerate() {
        let mut s = music(150 + i as u64, frames, 2, -8.0 - i as f64);
        quantise(&mut s, 24);
        write_wav(&dir.path().join(format!("{n}.wav")), &s, FS, 24);
        toml += &format!("[[stems]]\nname = \"{n}\"\npath = \"{n}.wav\"\n");
        toml += &format!("eq = [ {{ type = \"peak\", freq_hz = {}.0, gain_db = 1.5, q = 1.0 }} ]\n", 500 * (i + 1));
    }
    toml += "[bus]\neq = [ { type = \"high_shelf\", freq_hz = 9000.0, gain_db = 1.0, q = 0.707 } ]\n";
    toml += "[eq_design]\ntaps = 511\n[master]\ntarget_lufs = -12.0\nceiling_dbtp = -1.0\n";
    toml += "[[outputs]]\npath = \"{name}_{variant}.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n";
    toml += "[[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n";
    let outs = "outputs = [ { path = \"{name}_{variant}.wav\", kind = \"master\", format = \"pcm24\" } ]\n";
    toml += &format!("[[variants]]\nname = \"vocal-up\"\ngain_db = {{ vocals = 2.0 }}\nloudness = \"own\"\n{outs}");
    toml += &format!("[[variants]]\nname = \"instrumental\"\nmute = [\"vocals\"]\nmode = \"stems\"\n{outs}");
    let session = dir.path().join("v.toml");
    std::fs::write(&session, toml).unwrap();
    for spill in ["all", "none"] {
        let cache = dir.path().join(format!("cache-{spill}"));
        let plain = run(&session, &dir.path().join("plain"), "cpu", &["--spill", spill]);
        let want = outputs(&plain, &dir.path().join("plain"));
        for round in ["cold", "warm"] {
            let out = dir.path().join(round);
            let r = cached(&session, &out, "cpu", &cache, &["--spill", spill]);
            let want_action = if round == "cold" { "stored" } else { "reused" };
            assert!(actions(&r).values().all(|(a, _)| a == want_action), "{spill} {round}: {:?}", actions(&r));
            let got = outputs(&r, &out);
            assert_eq!(got, want, "--spill {spill}, {round} cache");
            // The report's outputs are the main's and every variant's.
            assert!(want.keys().any(|k| k.contains("vocal-up")) && want.keys().any(|k| k.contains("instrumental")));
        }
    }
}

/// `song` with a reference mix: the stems' sum at 0 dB (the bass, mono, routed to both sides),
/// rounded to f32 once, with a little of its own noise so that the null has something to read.
fn song_with_mix(dir: &Path, vocals_gain_db: f64) -> PathBuf {
    let session = song(dir, vocals_gain_db, 2.0);
    let mix = dir.join("mix.wav");
    if !mix.exists() {
        let frames = 2 * FS as usize;
        let mut sum = music(99, frames, 2, -40.0);
        for name in ["drums", "bass", "music", "vocals"] {
            let (_, s) = read_audio(&dir.join(format!("{name}.wav")));
            for (c, acc) in sum.iter_mut().enumerate() {
                let (src, w) = if s.len() == 1 { (0, stemforge::pipeline::plan::MONO_TO_STEREO) } else { (c, 1.0) };
                for (a, &x) in acc.iter_mut().zip(&s[src]) {
                    *a += w * x;
                }
            }
        }
        write_wav(&mix, &sum, FS, 0);
    }
    let toml = std::fs::read_to_string(&session).unwrap();
    std::fs::write(
        &session,
        toml.replacen("layout = \"stereo\"\n", "layout = \"stereo\"\nreference_mix = \"mix.wav\"\n", 1),
    )
    .unwrap();
    session
}

/// The fields (`proof.master.momentary_lufs`, `proof.stems[2].spectrum`, ...) where two proof
/// data differ; empty when they are equal.
fn proof_differences(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Vec<String> {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) if x.len() == y.len() => {
            x.iter().flat_map(|(k, v)| proof_differences(v, &y[k], &format!("{at}.{k}"))).collect()
        }
        (serde_json::Value::Array(x), serde_json::Value::Array(y))
            if x.len() == y.len() && x.iter().any(|v| v.is_object()) =>
        {
            x.iter().zip(y).enumerate().flat_map(|(i, (v, w))| proof_differences(v, w, &format!("{at}[{i}]"))).collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![at.to_string()],
    }
}

/// With --proof, a render with --cache keeps the proof page's measures of the stem files and the
/// reference mix's null (measured as the stems are computed, on either engine); the revision
/// "vocals +1 dB" reads them back without reading a stem file, and its whole proof data (master
/// curves, each stem's level, EQ and spectra, findings, the null) equals an uncached CPU --proof
/// render's. A cache filled without --proof gets them by one more read of the stem files; a
/// corrupt record is measured again, never trusted.
#[test]
fn a_revision_with_proof_reads_the_proof_data_from_the_cache() {
    let proof_of = |r: &serde_json::Value| {
        let p = r["proof"].clone();
        assert!(p["stems"].as_array().is_some_and(|s| s.len() == 4), "no stems in the proof: {p}");
        assert!(p["reference"]["residual_dbfs"].as_array().is_some_and(|c| c.len() >= 19), "no null: {p}");
        p
    };
    let same = |a: &serde_json::Value, b: &serde_json::Value, what: &str| {
        let d = proof_differences(&proof_of(a), &proof_of(b), "proof");
        assert!(d.is_empty(), "{what}: the proof data differ at {d:?}");
    };
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let out = |n: &str| dir.path().join(n);
        let session = song_with_mix(dir.path(), 0.0);
        let page = |n: &str| out(n).join("proof.html").to_string_lossy().into_owned();
        // The reference is an uncached CPU render: a cached render mixes, limits and meters on the
        // CPU engine whatever engine computed its stems (an uncached GPU render meters its master
        // on the device, within the parity contract but not to the bit).
        let plain = run(&session, &out("plain"), "cpu", &["--proof", &page("plain")]);
        let first = cached(&session, &out("first"), engine, &cache, &["--proof", &page("first")]);
        assert!(actions(&first).values().all(|(a, _)| a == "stored"), "{engine}: {:?}", actions(&first));
        assert_eq!(first["cache"]["proof"], "measured as the stems were computed", "{engine}");
        same(&first, &plain, &format!("{engine}: first render's proof data"));
        assert_eq!(outputs(&first, &out("first")), outputs(&plain, &out("plain")), "{engine}");

        let session = song_with_mix(dir.path(), 1.0);
        let plain = run(&session, &out("plain"), "cpu", &["--proof", &page("plain")]);
        let warm = cached(&session, &out("warm"), engine, &cache, &["--proof", &page("warm")]);
        assert!(actions(&warm).values().all(|(a, _)| a == "reused"), "{engine}: {:?}", actions(&warm));
        assert_eq!(warm["cache"]["proof"], "reused", "{engine}");
        assert!(warm["passes"].as_array().unwrap().iter().all(|p| p["input"] != "stems"), "{engine}: no stem read");
        same(&warm, &plain, &format!("{engine}: the revision's proof data"));
        assert_eq!(outputs(&warm, &out("warm")), outputs(&plain, &out("plain")), "{engine}");
        let html = std::fs::read_to_string(page("warm")).unwrap();
        assert!(html.contains("The master against the approved reference mix"), "{engine}: the page's null section");
    }

    // A cache filled without --proof: the first --proof render reads the stem files once more.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let session = song_with_mix(dir.path(), 1.0);
    let page = |n: &str| dir.path().join(n).join("proof.html").to_string_lossy().into_owned();
    let plain = run(&session, &dir.path().join("plain"), "cpu", &["--proof", &page("plain")]);
    cached(&session, &dir.path().join("o1"), "cpu", &cache, &[]);
    let r = cached(&session, &dir.path().join("o2"), "cpu", &cache, &["--proof", &page("o2")]);
    assert!(actions(&r).values().all(|(a, _)| a == "reused"), "{:?}", actions(&r));
    let how = r["cache"]["proof"].as_str().unwrap();
    assert!(how.starts_with("measured: the stem files read once more"), "{how}");
    same(&r, &plain, "after one more read");
    let r = cached(&session, &dir.path().join("o3"), "cpu", &cache, &["--proof", &page("o3")]);
    assert_eq!(r["cache"]["proof"], "reused");
    same(&r, &plain, "read back");

    // Each record with one byte flipped (in its data, past the checksum line): measured again.
    let records: Vec<PathBuf> =
        files_under(&cache).into_iter().filter(|p| p.extension().is_some_and(|x| x == "proof")).collect();
    assert_eq!(records.len(), 5, "four stems' records and the null's: {records:?}");
    for record in &records {
        let mut bytes = std::fs::read(record).unwrap();
        let at = bytes.len() - 10;
        bytes[at] ^= 0x01;
        std::fs::write(record, &bytes).unwrap();
        let r = cached(&session, &dir.path().join("o4"), "cpu", &cache, &["--proof", &page("o4")]);
        let how = r["cache"]["proof"].as_str().unwrap();
        assert!(how.starts_with("measured"), "{} flipped: {how}", record.display());
        same(&r, &plain, &format!("{} flipped", record.display()));
    }
}
