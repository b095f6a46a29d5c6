//! One writing pass: G is solved on the analysis pass's spilled bus, so a render whose first G
//! lands short still writes its outputs once, on both engines; without a spill it falls back to
//! repeating the writing pass.
mod support;

use std::path::{Path, PathBuf};

use support::*;

const FS: u32 = 48_000;
const TARGET: f64 = -9.0;
const CEILING: f64 = -1.0;

/// Loud, dense material: three full-band stems summed hot and pushed to -9 LUFS, so the limiter
/// works all the time and takes well over 0.05 LU from the first G (target - L(bus)).
fn loud_session(dir: &Path, outputs: &str) -> PathBuf {
    for (i, (name, channels)) in [("drums", 2), ("bass", 1), ("music", 2)].iter().enumerate() {
        let mut s = music(40 + i as u64, 4 * FS as usize, *channels, -3.0);
        quantise(&mut s, 24);
        write_wav(&dir.join(format!("{name}.wav")), &s, FS, 24);
    }
    let body = format!(
        r#"name = "loud"
layout = "stereo"
[[stems]]
name = "drums"
path = "drums.wav"
eq = [{{ type = "low_shelf", freq_hz = 90.0, gain_db = 3.0, q = 0.707 }}]
[[stems]]
name = "bass"
path = "bass.wav"
[[stems]]
name = "music"
path = "music.wav"
gain_db = -1.0
eq = [{{ type = "high_shelf", freq_hz = 6000.0, gain_db = 3.0, q = 0.707 }}]
[bus]
eq = [{{ type = "peak", freq_hz = 2500.0, gain_db = 1.0, q = 0.8 }}]
[eq_design]
taps = 2047
[master]
target_lufs = {TARGET}
ceiling_dbtp = {CEILING}
[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
{outputs}
"#
    );
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

const STEMS_OUT: &str = "[[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"pcm24\"\n";

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn kinds(r: &serde_json::Value) -> Vec<String> {
    r["passes"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap().to_string()).collect()
}

fn lufs(p: &serde_json::Value) -> f64 {
    p["integrated_lufs"].as_f64().unwrap()
}

/// The benchmark's situation (the first limiter pass lands short) on a small session, with linked
/// stems (the writing pass's bus is sum of G·contributions through folded FIRs, not G·spill): the
/// solve corrects G on the spill and the outputs are written exactly once, on both engines, within
/// 0.05 LU by the render's meter and 0.1 LU by ffmpeg's.
#[test]
fn a_short_first_pass_is_solved_on_the_spill_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let session = loud_session(dir.path(), STEMS_OUT);
    for engine in engines() {
        let out = dir.path().join(engine);
        let rp = dir.path().join(format!("{engine}.json"));
        render(&session, &out, engine, &["--report", rp.to_str().unwrap()], 0);
        let r = report(&rp);
        let kinds = kinds(&r);
        let passes = r["passes"].as_array().unwrap();
        let solves: Vec<_> = passes.iter().filter(|p| p["kind"] == "solve").collect();
        for p in passes {
            eprintln!("{engine}: {} G {:+.3} dB: {} LUFS", p["kind"].as_str().unwrap(), p["gain_db"].as_f64().unwrap(), p["integrated_lufs"]);
        }
        assert_eq!(kinds[0], "analysis", "{engine}: {kinds:?}");
        assert_eq!(kinds.last().unwrap(), "limiter", "{engine}: {kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "limiter").count(), 1, "{engine}: one writing pass: {kinds:?}");
        assert_eq!(kinds.len(), solves.len() + 2, "{engine}: {kinds:?}");
        // What makes this session the case in point: the first G lands short by more than the
        // tolerance, so today's loop would have written everything twice.
        let first = lufs(solves[0]);
        assert!(TARGET - first > 0.05, "{engine}: the first G landed at {first:.3} LUFS: not short enough to test");
        assert!(solves.len() >= 2, "{engine}: the solve corrected G");
        assert_eq!(r["iterations"].as_u64().unwrap() as usize, solves.len(), "{engine}: G values tried");
        let written = passes.last().unwrap();
        assert_eq!(written["gain_db"], solves.last().unwrap()["gain_db"], "{engine}: written at the solved G");
        assert_eq!(r["gain_db"], written["gain_db"]);
        let after = r["loudness_after"]["integrated_lufs"].as_f64().unwrap();
        assert!((after - TARGET).abs() <= 0.05, "{engine}: {after:.3} LUFS by the render's meter");
        assert_eq!(r["spec_met"], true, "{engine}: {}", r["spec_problems"]);
        // ffmpeg, the independent meter: 0.1 LU is the issue's acceptance figure.
        let master = out.join("master.wav");
        let (i, tp, _) = ffmpeg_loudness(&master);
        assert!((i - TARGET).abs() <= 0.1, "{engine}: {i:.2} LUFS by ffmpeg");
        assert!(tp <= CEILING, "{engine}: {tp:.2} dBTP by ffmpeg");
        let (_, m) = read_audio(&master);
        assert_eq!(m[0].len(), 4 * FS as usize);
        for stem in ["drums", "bass", "music"] {
            assert!(out.join(format!("stems/{stem}.wav")).exists(), "{engine}: stems/{stem}.wav");
        }
        // Only the final outputs are left: no spill, no temporary of a discarded pass.
        assert_eq!(files_under(&out).len(), 4, "{engine}: {:?}", files_under(&out));
    }
}

/// With master output only, the writing pass's bus on the CPU engine is the spill times the same
/// f32 G through the same limiter code on the same block grid: the solve predicts its loudness
/// exactly, but for the meters' own summation order (the writing pass meters with every mode on,
/// which keeps a longer ring of energies than integrated-only metering: ~1e-14 LU apart; a
/// difference in the limited samples, even one f32 ulp of G, moves the reading by far more).
#[test]
fn the_solve_predicts_a_master_only_cpu_pass() {
    let dir = tempfile::tempdir().unwrap();
    let session = loud_session(dir.path(), "");
    let rp = dir.path().join("r.json");
    render(&session, &dir.path().join("out"), "cpu", &["--report", rp.to_str().unwrap()], 0);
    let r = report(&rp);
    let passes = r["passes"].as_array().unwrap();
    let n = passes.len();
    assert_eq!(kinds(&r)[n - 2..], ["solve", "limiter"]);
    let (solved, written) = (lufs(&passes[n - 2]), lufs(&passes[n - 1]));
    assert!((solved - written).abs() < 1e-9, "solve {solved} LUFS, writing pass {written} LUFS");
}

/// No spill (its folder does not exist): the render says so and finds G the old way, repeating
/// the writing pass, and still lands.
#[test]
fn without_a_spill_the_writing_pass_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let session = loud_session(dir.path(), "");
    let rp = dir.path().join("r.json");
    let missing = dir.path().join("no-such-folder");
    let err = render(
        &session,
        &dir.path().join("out"),
        "cpu",
        &["--report", rp.to_str().unwrap(), "--spill-dir", missing.to_str().unwrap()],
        0,
    );
    assert!(err.contains("cannot spill the bus") && err.contains("no-such-folder"), "{err}");
    let r = report(&rp);
    let kinds = kinds(&r);
    assert!(!kinds.contains(&"solve".to_string()), "{kinds:?}");
    let writes = kinds.iter().filter(|k| *k == "limiter").count();
    assert!(writes >= 2, "the first G lands short, so the writing pass repeats: {kinds:?}");
    assert_eq!(r["iterations"].as_u64().unwrap() as usize, writes);
    let after = r["loudness_after"]["integrated_lufs"].as_f64().unwrap();
    assert!((after - TARGET).abs() <= 0.05, "{after:.3} LUFS");
    assert_eq!(files_under(&dir.path().join("out")).len(), 1, "one master; the discarded pass left nothing");
}
