//! One long programme across nodes (design/farm.md, issue 14 item 3): a session rendered in 3
//! segments through the four phases equals one machine's render byte for byte (every output's
//! SHA-256), each segment task reads only its frames and warm-up (the stems are NaN outside),
//! bad use is exit 2 naming the file, and the Slurm jobs on a local 3-node cluster do the same.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::slurm::{Cluster, may_run_slurm};
use common::*;
use sha2::{Digest, Sha256};

const FS: u32 = 48_000;
const SECONDS: f64 = 15.0;
const SEGMENTS: u32 = 3;

/// The session: a stereo stem with a linear-phase EQ and a mono stem with a compressor, a -16
/// LUFS target through the limiter (10 ms release, so the warm-up stays under a segment), a
/// pcm24 master and pcm24 stems. Stems are f32 WAVs so that a test can put NaN where no task may
/// read.
fn make_session(dir: &Path) -> PathBuf {
    make_session_with(dir, true, true)
}

/// `make_session` with or without the compressor (without it every stem is linear, and one
/// machine's writing pass replays the spilled stems instead of filtering them again) and the stem
/// outputs.
fn make_session_with(dir: &Path, compressor: bool, stems: bool) -> PathBuf {
    let frames = (SECONDS * FS as f64) as usize;
    write_wav(&dir.join("stems/a.wav"), &music(7, frames, 2, -6.0), FS, 0);
    write_wav(&dir.join("stems/b.wav"), &music(8, frames, 1, -4.0), FS, 0);
    let body = r#"name = "long-programme"
layout = "stereo"
[[stems]]
name = "a"
path = "stems/a.wav"
eq = [{ type = "peak", freq_hz = 1000.0, gain_db = 3.0, q = 1.0 }, { type = "highpass", freq_hz = 60.0, order = 2 }]
[[stems]]
name = "b"
path = "stems/b.wav"
gain_db = -1.0
process = [
  { type = "compressor", threshold_db = -24.0, ratio = 4.0, knee_db = 6.0, attack_ms = 5.0, release_ms = 20.0 },
]
[eq_design]
phase = "linear"
taps = 4095
[master]
target_lufs = -12.0
ceiling_dbtp = -1.0
lookahead_ms = 2.0
release_ms = 10.0
[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
[[outputs]]
path = "stems"
kind = "stems"
format = "pcm24"
"#;
    let mut body = body.to_string();
    if !compressor {
        let at = body.find("process = [").unwrap();
        let end = at + body[at..].find("]\n").unwrap() + 2;
        body.replace_range(at..end, "");
    }
    if !stems {
        // Master only, with a bus EQ: every writing pass folds it into the stems' FIRs and sums
        // them in time, one machine's render as each segment's (README "What the render does").
        let at = body.rfind("[[outputs]]").unwrap();
        body.truncate(at);
        let at = body.find("[eq_design]").unwrap();
        body.insert_str(at, "[bus]\neq = [{ type = \"low_shelf\", freq_hz = 150.0, gain_db = 1.5, q = 0.707 }]\n");
    }
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every WAV under `out` (relative path -> SHA-256).
fn outputs(out: &Path) -> BTreeMap<PathBuf, String> {
    let mut m = BTreeMap::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "wav") {
                m.insert(p.strip_prefix(out).unwrap().to_path_buf(), sha256(&p));
            }
        }
    }
    m
}

/// `stemforge render SESSION ARGS --engine cpu`, expecting `code`; stdout and stderr.
fn phase(session: &Path, args: &[&str], code: i32) -> (String, String) {
    phase_on("cpu", session, args, code)
}

/// `phase` on `engine`.
fn phase_on(engine: &str, session: &Path, args: &[&str], code: i32) -> (String, String) {
    let out = stemforge().arg("render").arg(session).args(["--engine", engine]).args(args).output().unwrap();
    let (o, e) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert_eq!(out.status.code(), Some(code), "render {args:?}:\n{o}\n{e}");
    (o, e)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The four phases; `session_for(i)` is the session file segment i's tasks read.
fn four_phases(session: &Path, session_for: &dyn Fn(u32) -> PathBuf, state: &Path, out: &Path) {
    four_phases_in("cpu", SEGMENTS, session, session_for, state, out)
}

/// `four_phases` on `engine` with `segments` segments.
fn four_phases_in(
    engine: &str,
    segments: u32,
    session: &Path,
    session_for: &dyn Fn(u32) -> PathBuf,
    state: &Path,
    out: &Path,
) {
    let n = segments.to_string();
    for i in 0..segments {
        let i_s = i.to_string();
        phase_on(engine, &session_for(i), &["--segments", &n, "--segment", &i_s, "--state-dir", s(state)], 0);
    }
    phase_on(engine, session, &["--state-dir", s(state), "--solve"], 0);
    for i in 0..segments {
        let i_s = i.to_string();
        let args = ["--segments", &n, "--segment", &i_s, "--state-dir", s(state), "--write"];
        phase_on(engine, &session_for(i), &args, 0);
    }
    phase_on(engine, session, &["--state-dir", s(state), "--join", "--out-dir", s(out)], 0);
}

fn single_render(session: &Path, out: &Path) -> BTreeMap<PathBuf, String> {
    render(session, out, "cpu", &[], 0);
    outputs(out)
}

fn record(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn three_segments_through_four_phases_equal_one_render() {
    let t0 = Instant::now();
    let d = tempfile::tempdir().unwrap();
    let session = make_session(d.path());
    let reference = single_render(&session, &d.path().join("one"));
    let t1 = Instant::now();
    let state = d.path().join("state");
    let out = d.path().join("segmented");
    four_phases(&session, &|_| session.clone(), &state, &out);
    assert_eq!(outputs(&out), reference, "segmented render against one machine's");
    // The middle segment decoded its frames and a warm-up, not the programme.
    let a = record(&state.join("analysis-1.json"));
    let (from, to) = (a["decoded"][0].as_u64().unwrap(), a["decoded"][1].as_u64().unwrap());
    let (first, end) = (a["frames"][0].as_u64().unwrap(), a["frames"][1].as_u64().unwrap());
    let warmup = a["warmup"]["total"].as_u64().unwrap();
    assert_eq!(from, first - warmup, "{a}");
    assert!(from > 0 && to < (SECONDS * FS as f64) as u64, "segment 1 decoded [{from}, {to}): {a}");
    eprintln!(
        "segments test: one render {:.2} s, four phases {:.2} s; warm-up {warmup} frames ({:.2} s), segment 1 is \
         [{first}, {end}) and decoded [{from}, {to})",
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64(),
        warmup as f64 / FS as f64
    );
}

/// A copy of the session whose stems are NaN outside [from, to): a task that decodes a frame
/// there fails (a NaN sample is an input error naming the frame).
fn garbled_copy(session_dir: &Path, to_dir: &Path, from: u64, to: u64) -> PathBuf {
    std::fs::create_dir_all(to_dir.join("stems")).unwrap();
    std::fs::copy(session_dir.join("session.toml"), to_dir.join("session.toml")).unwrap();
    for stem in ["a", "b"] {
        let (fs, mut chans) = read_audio(&session_dir.join(format!("stems/{stem}.wav")));
        for c in chans.iter_mut() {
            for (n, v) in c.iter_mut().enumerate() {
                if (n as u64) < from || n as u64 >= to {
                    *v = f32::NAN;
                }
            }
        }
        write_wav(&to_dir.join(format!("stems/{stem}.wav")), &chans, fs, 0);
    }
    to_dir.join("session.toml")
}

#[test]
fn linear_and_master_only_sessions_in_segments_equal_one_render() {
    for (compressor, stems) in [(false, true), (false, false), (true, false)] {
        let d = tempfile::tempdir().unwrap();
        let session = make_session_with(d.path(), compressor, stems);
        let reference = single_render(&session, &d.path().join("one"));
        assert_eq!(reference.len(), if stems { 3 } else { 1 });
        let out = d.path().join("segmented");
        four_phases(&session, &|_| session.clone(), &d.path().join("state"), &out);
        assert_eq!(outputs(&out), reference, "compressor {compressor}, stems {stems}");
    }
}

#[test]
fn segment_tasks_read_only_their_frames_and_warm_up() {
    let t0 = Instant::now();
    let d = tempfile::tempdir().unwrap();
    let session = make_session(d.path());
    let reference = single_render(&session, &d.path().join("one"));
    // A first segmented run says what each task decodes...
    let first = d.path().join("state-first");
    four_phases(&session, &|_| session.clone(), &first, &d.path().join("first"));
    // ...then every task runs again on stems that are NaN everywhere else.
    let mut copies = Vec::new();
    for i in 0..SEGMENTS {
        let a = record(&first.join(format!("analysis-{i}.json")));
        let w = record(&first.join(format!("write-{i}.json")));
        let from = a["decoded"][0].as_u64().unwrap().min(w["decoded"][0].as_u64().unwrap());
        let to = a["decoded"][1].as_u64().unwrap().max(w["decoded"][1].as_u64().unwrap());
        if i > 0 {
            assert!(from > 0, "segment {i} decodes from frame 0");
        }
        copies.push(garbled_copy(d.path(), &d.path().join(format!("garbled-{i}")), from, to));
    }
    // The garbling bites: a whole render of a garbled copy fails on a NaN.
    let err = render(&copies[1], &d.path().join("nan"), "cpu", &[], 2);
    assert!(err.contains("NaN") || err.contains("non-finite") || err.contains("not finite"), "{err}");
    let out = d.path().join("segmented");
    four_phases(&session, &|i| copies[i as usize].clone(), &d.path().join("state"), &out);
    assert_eq!(outputs(&out), reference, "segmented render from garbled stems against one machine's");
    eprintln!("garbled segments test: {:.2} s", t0.elapsed().as_secs_f64());
}

#[test]
fn bad_use_of_the_phases_is_exit_2_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let session = make_session(d.path());
    let state = d.path().join("state");
    // Phase 2 before phase 1.
    let (_, e) = phase(&session, &["--state-dir", s(&state), "--solve"], 2);
    assert!(e.contains("segments.json"), "{e}");
    phase(&session, &["--segments", "3", "--segment", "0", "--state-dir", s(&state)], 0);
    // Another split into the same folder.
    let (_, e) = phase(&session, &["--segments", "2", "--segment", "1", "--state-dir", s(&state)], 2);
    assert!(e.contains("segments.json") && e.contains("3 segments"), "{e}");
    // A segment beyond the split.
    phase(&session, &["--segments", "3", "--segment", "3", "--state-dir", s(&state)], 2);
    // Phase 2 with segments 1 and 2 missing.
    let (_, e) = phase(&session, &["--state-dir", s(&state), "--solve"], 2);
    assert!(e.contains("analysis-1.json"), "{e}");
    for i in ["1", "2"] {
        phase(&session, &["--segments", "3", "--segment", i, "--state-dir", s(&state)], 0);
    }
    phase(&session, &["--state-dir", s(&state), "--solve"], 0);
    // Phase 4 before phase 3.
    let (_, e) = phase(&session, &["--state-dir", s(&state), "--join"], 2);
    assert!(e.contains("write-0.json"), "{e}");
    // The session changed between phases.
    let text = std::fs::read_to_string(&session).unwrap().replace("target_lufs = -12.0", "target_lufs = -13.0");
    std::fs::write(&session, text).unwrap();
    let (_, e) = phase(&session, &["--segments", "3", "--segment", "0", "--state-dir", s(&state), "--write"], 2);
    assert!(e.contains("solve.json") && e.contains("another version"), "{e}");
    // The GPU engine is refused clearly.
    let out = stemforge()
        .arg("render")
        .arg(&session)
        .args(["--engine", "gpu", "--segments", "3", "--segment", "0", "--state-dir", s(&state)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("GPU engine") && e.contains("without process chains"), "{e}");
}

#[test]
fn a_warm_up_too_short_for_the_compressor_is_refused_by_phase_2() {
    let d = tempfile::tempdir().unwrap();
    let session = make_session(d.path());
    let state = d.path().join("state");
    // One block (170 ms): 8.5 time constants of the compressor's 20 ms release, far from its state.
    for i in ["0", "1", "2"] {
        let out = stemforge()
            .env("STEMFORGE_TEST_WARMUP_FRAMES", "8192")
            .arg("render")
            .arg(&session)
            .args(["--engine", "cpu", "--segments", "3", "--segment", i, "--state-dir", s(&state)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let (_, e) = phase(&session, &["--state-dir", s(&state), "--solve"], 2);
    assert!(e.contains("analysis-1.json") && e.contains("did not bring its compressors"), "{e}");
}

#[test]
fn slurm_segments_on_a_local_cluster_equal_one_render() {
    if !may_run_slurm("slurm_segments_on_a_local_cluster_equal_one_render") {
        return;
    }
    let t0 = Instant::now();
    let cluster = Cluster::start();
    let d = tempfile::tempdir().unwrap();
    let session = make_session(d.path());
    let reference = single_render(&session, &d.path().join("one"));
    let state = d.path().join("state");
    let out = d.path().join("segmented");
    std::fs::create_dir_all(&out).unwrap();
    let script = stemforge()
        .args(["farm", "slurm"])
        .arg(&session)
        .args(["--segments", "3", "--engine", "cpu", "--state-dir", s(&state), "--out-dir", s(&out)])
        .output()
        .unwrap();
    assert!(script.status.success(), "{}", String::from_utf8_lossy(&script.stderr));
    let job = d.path().join("phases.sh");
    std::fs::write(&job, &script.stdout).unwrap();
    let (_, nodes) = cluster.run_phases(&job, &state, Duration::from_secs(240));
    assert!(nodes.len() >= 2, "every job ran on {nodes:?}:\n{}", cluster.completed());
    assert_eq!(outputs(&out), reference, "the Slurm jobs' outputs against one machine's");
    eprintln!("slurm segments test: jobs on {nodes:?}; {:.2} s with the cluster's start", t0.elapsed().as_secs_f64());
}

/// `farm openjd SESSION --segments 3`: `openjd check` accepts the template, and `openjd run` runs
/// its four steps (analyse and write one task per segment) to the same bytes as one machine.
#[test]
fn openjd_segment_template_runs_the_four_phases_to_one_render() {
    let Some(openjd) = openjd("openjd_segment_template_runs_the_four_phases_to_one_render") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let session = make_session(d.path());
    let reference = single_render(&session, &d.path().join("one"));
    let (state, out) = (d.path().join("state"), d.path().join("segmented"));
    std::fs::create_dir_all(&out).unwrap();
    let t = stemforge()
        .args(["farm", "openjd"])
        .arg(&session)
        .args(["--segments", "3", "--engine", "cpu", "--state-dir", s(&state), "--out-dir", s(&out)])
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let (ok, log) = openjd_check_and_run(&openjd, &t.stdout, d.path(), "segments.template.json");
    assert!(ok, "openjd run:\n{log}");
    for i in 0..3 {
        assert!(state.join(format!("write-{i}.json")).exists(), "segment {i} was not written:\n{log}");
    }
    assert_eq!(outputs(&out), reference, "the OpenJD steps' outputs against one machine's");
}

/// A limiter-heavy programme whose segment boundary falls inside a long release, in 7 segments
/// that do not divide it evenly: 90 s of quiet music (-30 dBFS) with a full-scale burst ending
/// just before segment 6's first block (6·528/7, rounded down), a 500 ms limiter release (its warm-up alone is
/// 110.9 time constants: 55 s) and a -10 LUFS target, so the limiter works hard on the burst and
/// is still releasing when the next segment starts. The four phases equal one render byte for byte,
/// and the warm-up the records state covers 110.9 release time constants. Then a phase-3 task is
/// killed (SIGKILL) mid-way: the join refuses (exit 2) and no final output exists; that task rerun
/// alone, the join completes, byte-identical.
#[test]
fn a_boundary_inside_a_long_release_in_7_uneven_segments_and_a_killed_task() {
    let d = tempfile::tempdir().unwrap();
    let frames = 90 * FS as usize;
    let block = 8192usize;
    let blocks = frames.div_ceil(block);
    let n = 7u32;
    // Segment k starts at block floor(k·blocks/n) (checked below against its record): the burst
    // ends just before segment 6, which starts after more than its 56 s warm-up.
    let boundary = (6 * blocks / n as usize) * block;
    let mut quiet = music(21, frames, 2, -30.0);
    let burst = music(22, frames, 2, 0.0);
    for c in 0..2 {
        for t in boundary - FS as usize / 2..boundary - 200 {
            quiet[c][t] = burst[c][t];
        }
    }
    write_wav(&d.path().join("stems/m.wav"), &quiet, FS, 0);
    let session = d.path().join("session.toml");
    std::fs::write(
        &session,
        r#"name = "long-release"
layout = "stereo"
[[stems]]
name = "m"
path = "stems/m.wav"
eq = [{ type = "high_shelf", freq_hz = 8000.0, gain_db = 2.0, q = 0.707 }]
[eq_design]
phase = "linear"
taps = 2047
[master]
target_lufs = -10.0
ceiling_dbtp = -1.0
lookahead_ms = 2.0
release_ms = 500.0
[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
[[outputs]]
path = "master-f32.wav"
kind = "master"
format = "f32"
[[outputs]]
path = "stems"
kind = "stems"
format = "f32"
"#,
    )
    .unwrap();
    let reference = single_render(&session, &d.path().join("one"));
    let state = d.path().join("state");
    let out = d.path().join("segmented");
    four_phases_in("cpu", n, &session, &|_| session.clone(), &state, &out);
    assert_eq!(outputs(&out), reference, "7 segments against one machine");
    let a = record(&state.join("analysis-6.json"));
    let first = a["frames"][0].as_u64().unwrap();
    let warmup = a["warmup"]["total"].as_u64().unwrap();
    let release_tc = 0.5 * FS as f64;
    println!(
        "long release: segment 6 starts at frame {first} (burst ends at {}), warm-up {warmup} frames = {:.1} release \
         time constants",
        boundary - 200,
        warmup as f64 / release_tc
    );
    assert!(
        first >= (boundary - 200) as u64 && first < (boundary - 200 + 2 * block) as u64,
        "segment 6 starts at {first}, not just after the burst (ends {})",
        boundary - 200
    );
    assert!(warmup as f64 >= 110.9 * release_tc && warmup < first, "warm-up {warmup} frames for segment at {first}");
    // The lengths differ: 7 does not divide the blocks.
    let lengths: Vec<u64> = (0..n)
        .map(|i| {
            let r = record(&state.join(format!("analysis-{i}.json")));
            r["frames"][1].as_u64().unwrap() - r["frames"][0].as_u64().unwrap()
        })
        .collect();
    assert!(lengths.iter().any(|l| *l != lengths[0]), "segments of equal length: {lengths:?}");

    // A phase-3 task killed mid-way: no record, the join refuses, nothing final is written.
    for f in std::fs::read_dir(&state).unwrap().flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        if name.starts_with("write-") || name.starts_with("out-") || name.starts_with("master-") {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    let n_s = n.to_string();
    let args = |i: &'static str| -> Vec<String> {
        ["--engine", "cpu", "--segments", &n_s, "--segment", i, "--state-dir", s(&state), "--write"]
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    for i in ["0", "1", "2", "3", "4", "5"] {
        let a = args(i);
        phase(&session, &a[2..].iter().map(String::as_str).collect::<Vec<_>>(), 0);
    }
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_stemforge")).arg("render").arg(&session).args(args("6")).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the phase-3 task finished before it was killed: {status}");
    assert!(!state.join("write-6.json").exists(), "a killed task left its record");
    let out2 = d.path().join("after-kill");
    let (_, e) = phase(&session, &["--state-dir", s(&state), "--join", "--out-dir", s(&out2)], 2);
    assert!(e.contains("write-6.json"), "{e}");
    assert!(!out2.join("master.wav").exists() && !out2.join("master-f32.wav").exists(), "a refused join wrote outputs");
    let a = args("6");
    phase(&session, &a[2..].iter().map(String::as_str).collect::<Vec<_>>(), 0);
    phase(&session, &["--state-dir", s(&state), "--join", "--out-dir", s(&out2)], 0);
    assert_eq!(outputs(&out2), reference, "after the killed task was rerun");
}

/// Every process stage of design/mastering.md in a segmented render (CPU engine): the stems carry
/// a compressor and a transient shaper, a width with mono lows and saturation, and the bus a glue
/// compressor, a transient shaper and a width, shared out among the stem outputs. In 3 segments,
/// byte-identical to one machine's render; the warm-up counts every stage (60 time constants of the
/// bus compressor's 300 ms release alone is 18 s); the GPU engine refuses the bus chain clearly.
#[test]
fn every_process_stage_and_a_bus_chain_in_segments_equal_one_render() {
    let d = tempfile::tempdir().unwrap();
    let frames = 75 * FS as usize;
    write_wav(&d.path().join("stems/a.wav"), &music(31, frames, 2, -6.0), FS, 0);
    write_wav(&d.path().join("stems/b.wav"), &music(32, frames, 2, -5.0), FS, 0);
    let session = d.path().join("session.toml");
    std::fs::write(
        &session,
        r#"name = "every-stage"
layout = "stereo"
[[stems]]
name = "a"
path = "stems/a.wav"
eq = [{ type = "peak", freq_hz = 1000.0, gain_db = 3.0, q = 1.0 }]
process = [
  { type = "compressor", threshold_db = -24.0, ratio = 4.0, knee_db = 6.0, attack_ms = 5.0, release_ms = 40.0, lookahead_ms = 2.0 },
  { type = "transient", attack_db = 3.0, sustain_db = -2.0 },
]
[[stems]]
name = "b"
path = "stems/b.wav"
process = [{ type = "width", width = 1.3, mono_below_hz = 120.0 }, { type = "saturation", drive_db = 6.0 }]
[bus]
process = [
  { type = "compressor", threshold_db = -20.0, ratio = 2.0, attack_ms = 10.0, release_ms = 300.0 },
  { type = "transient", attack_db = 2.0, sustain_db = -1.0 },
  { type = "width", width = 1.1 },
]
[eq_design]
phase = "linear"
taps = 2047
[master]
target_lufs = -12.0
ceiling_dbtp = -1.0
lookahead_ms = 2.0
release_ms = 10.0
[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
[[outputs]]
path = "stems"
kind = "stems"
format = "f32"
"#,
    )
    .unwrap();
    let reference = single_render(&session, &d.path().join("one"));
    assert_eq!(reference.len(), 3, "{reference:?}");
    let state = d.path().join("state");
    let out = d.path().join("segmented");
    four_phases(&session, &|_| session.clone(), &state, &out);
    assert_eq!(outputs(&out), reference, "segmented render with every process stage against one machine's");
    let w = &record(&state.join("analysis-1.json"))["warmup"];
    let process = w["process"].as_u64().unwrap();
    assert!(process as f64 >= 60.0 * 0.3 * FS as f64, "the process chains' warm-up {process} frames: {w}");
    let out = stemforge()
        .arg("render")
        .arg(&session)
        .args(["--engine", "gpu", "--segments", "3", "--segment", "0", "--state-dir"])
        .arg(d.path().join("state-gpu"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("GPU engine") && e.contains("use --engine cpu"), "{e}");
}

/// Segmented rendering on the GPU engine (a session without process chains: EQ, limiter, pcm24
/// master and stems; then master only, with a bus EQ), in 4 segments: byte-identical to the GPU
/// engine's own single render, and to the CPU engine's (the engines agree to the bit on this
/// adapter).
#[test]
fn gpu_engine_segments_equal_one_render() {
    for stems in [true, false] {
        let d = tempfile::tempdir().unwrap();
        let session = make_session_with(d.path(), false, stems);
        for engine in engines().into_iter().filter(|e| *e == "gpu") {
            render(&session, &d.path().join("one-gpu"), engine, &[], 0);
            let reference = outputs(&d.path().join("one-gpu"));
            assert_eq!(reference.len(), if stems { 3 } else { 1 });
            let state = d.path().join("state-gpu");
            let out = d.path().join("segmented-gpu");
            four_phases_in(engine, 4, &session, &|_| session.clone(), &state, &out);
            assert_eq!(outputs(&out), reference, "stems {stems}: GPU segments against the GPU engine's single render");
            let cpu = single_render(&session, &d.path().join("one-cpu"));
            assert_eq!(reference, cpu, "stems {stems}: the GPU render against the CPU's");
        }
    }
}
