//! Farm mode (design/farm.md, issue 14): `batch` renders past a broken session, resumes by
//! fingerprint without decoding, survives SIGKILL without rendering anything twice; the Slurm
//! script on a real local cluster and the OpenJD template under `openjd run` render the same bytes.
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::slurm::{Cluster, field, may_run_slurm};
use common::*;
use sha2::{Digest, Sha256};

const FS: u32 = 48_000;
const SESSIONS: usize = 6;
/// The session whose second stem does not exist.
const BROKEN: usize = 3;

/// One small session in `dir`: two stems (stereo and mono, `seconds` of seeded music), a light EQ, a
/// -16 LUFS target and a pcm24 master plus pcm24 stems.
fn session(dir: &Path, name: &str, seed: u64, second_stem: &str, seconds: f64) {
    let frames = (seconds * FS as f64) as usize;
    let mut a = music(seed, frames, 2, -6.0);
    quantise(&mut a, 24);
    write_wav(&dir.join("stems/a.wav"), &a, FS, 24);
    let mut b = music(seed + 100, frames, 1, -9.0);
    quantise(&mut b, 24);
    write_wav(&dir.join("stems/b.wav"), &b, FS, 24);
    let body = format!(
        r#"name = "{name}"
layout = "stereo"
[[stems]]
name = "a"
path = "stems/a.wav"
eq = [{{ type = "peak", freq_hz = 1000.0, gain_db = 2.0, q = 1.0 }}]
[[stems]]
name = "b"
path = "{second_stem}"
gain_db = -1.0
[eq_design]
taps = 255
[master]
target_lufs = -16.0
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
    std::fs::write(dir.join("session.toml"), body).unwrap();
}

/// Six sessions under `dir` (`sN/session.toml`, named `song-N`), session BROKEN naming a stem
/// that is not there, and `dir/batch.toml` rendering into `dir/out`.
fn make_batch(dir: &Path, seconds: f64) -> PathBuf {
    let mut toml = String::from("name = \"farm-test\"\nout_root = \"out\"\n");
    for i in 0..SESSIONS {
        let b = if i == BROKEN { "stems/missing.wav" } else { "stems/b.wav" };
        session(&dir.join(format!("s{i}")), &format!("song-{i}"), 10 + i as u64, b, seconds);
        toml.push_str(&format!("[[sessions]]\npath = \"s{i}/session.toml\"\n"));
    }
    let p = dir.join("batch.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every audio output under `out` (relative path -> SHA-256).
fn outputs(out: &Path) -> BTreeMap<PathBuf, String> {
    files_under(out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .map(|p| (p.strip_prefix(out).unwrap().to_path_buf(), sha256(&p)))
        .collect()
}

/// Every final file under `out` (audio, reports, records) -> its inode: a render publishes by
/// renaming new files into place, so an unchanged inode is a file no render replaced.
fn inodes(out: &Path) -> BTreeMap<PathBuf, u64> {
    files_under(out)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".stemforge-tmp"))
        .map(|p| {
            let ino = std::fs::metadata(&p).unwrap().ino();
            (p, ino)
        })
        .collect()
}

fn temps(out: &Path) -> Vec<PathBuf> {
    files_under(out).into_iter().filter(|p| p.to_string_lossy().ends_with(".stemforge-tmp")).collect()
}

/// `stemforge batch BATCH --engine cpu ARGS`, expecting `code`; returns the summary JSON
/// (written to a file beside the batch) and stderr.
fn batch(batch: &Path, args: &[&str], code: i32) -> (serde_json::Value, String) {
    let summary = batch.with_file_name("summary-run.json");
    let out = stemforge()
        .arg("batch")
        .arg(batch)
        .args(["--engine", "cpu", "--summary"])
        .arg(&summary)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "batch {args:?}:\n{err}\n{}", String::from_utf8_lossy(&out.stdout));
    (serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap(), err)
}

/// Each session's status in a summary, in batch order.
fn statuses(summary: &serde_json::Value) -> Vec<String> {
    summary["sessions"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap().to_string()).collect()
}

fn expect_statuses(summary: &serde_json::Value, good: &str) {
    let want: Vec<String> =
        (0..SESSIONS).map(|i| if i == BROKEN { "failed".to_string() } else { good.to_string() }).collect();
    assert_eq!(statuses(summary), want, "{summary:#}");
}

/// The broken session: exit 2, its message naming the missing stem, and the batch exit 2.
fn expect_broken_reported(summary: &serde_json::Value) {
    let s = &summary["sessions"][BROKEN];
    assert_eq!(s["exit_code"], 2, "{s:#}");
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains("missing.wav") && msg.contains("no such file"), "{msg}");
    assert_eq!(summary["exit_code"], 2);
    assert_eq!(summary["sessions"].as_array().unwrap().len(), SESSIONS);
}

/// An uninterrupted single-machine batch of the standard six sessions: its outputs' hashes.
fn reference_outputs(seconds: f64) -> BTreeMap<PathBuf, String> {
    let d = tempfile::tempdir().unwrap();
    let b = make_batch(d.path(), seconds);
    batch(&b, &["--jobs", "2"], 2);
    outputs(&d.path().join("out"))
}

#[test]
fn batch_renders_past_a_broken_session_and_resumes_by_fingerprint() {
    let t0 = Instant::now();
    let d = tempfile::tempdir().unwrap();
    let b = make_batch(d.path(), 1.2);
    let out = d.path().join("out");

    let (summary, _) = batch(&b, &["--jobs", "2"], 2);
    expect_statuses(&summary, "rendered");
    expect_broken_reported(&summary);
    let first = outputs(&out);
    // 5 sessions x (master + 2 stems).
    assert_eq!(first.len(), 15, "{first:#?}");
    assert!(first.keys().all(|p| !p.starts_with(format!("song-{BROKEN}"))));
    let before = inodes(&out);

    // Again: nothing changed, so the five are skipped. No render ran: a render replaces its
    // outputs and its report by renaming new files into place, and every one of them is still
    // the same file (inode), with the same bytes.
    let t = Instant::now();
    let (summary, _) = batch(&b, &[], 2);
    let skip_time = t.elapsed();
    expect_statuses(&summary, "skipped");
    expect_broken_reported(&summary);
    let after = inodes(&out);
    for (p, ino) in &before {
        if !p.starts_with(out.join(".stemforge-batch")) {
            assert_eq!(after.get(p), Some(ino), "{} was replaced by a skipped session", p.display());
        }
    }
    assert_eq!(outputs(&out), first);

    // One stem of session 1 changes (same length, other samples): only session 1 renders.
    let frames = (1.2 * FS as f64) as usize;
    let mut b1 = music(999, frames, 1, -9.0);
    quantise(&mut b1, 24);
    write_wav(&d.path().join("s1/stems/b.wav"), &b1, FS, 24);
    let (summary, _) = batch(&b, &["--jobs", "2"], 2);
    let mut want = vec!["skipped"; SESSIONS];
    want[1] = "rendered";
    want[BROKEN] = "failed";
    assert_eq!(statuses(&summary), want, "{summary:#}");
    let third = outputs(&out);
    let after2 = inodes(&out);
    for (p, sha) in &first {
        // Every output of session 1 moves (the master's gain and limiter act on each stem too).
        let in_1 = p.starts_with("song-1");
        assert_eq!(third[p] != *sha, in_1, "{}", p.display());
        if !in_1 {
            assert_eq!(after2[&out.join(p)], after[&out.join(p)], "{} re-rendered", p.display());
        }
    }
    eprintln!("batch test: {:.2} s (the skipping run {:.2} s)", t0.elapsed().as_secs_f64(), skip_time.as_secs_f64());
}

const KILL_SECONDS: f64 = 4.0;

#[test]
fn a_killed_batch_resumes_and_renders_nothing_twice() {
    let t0 = Instant::now();
    // Longer sessions than the other tests' (each render some tens of ms), so that the kill
    // lands while the batch is still at work.
    let reference = reference_outputs(KILL_SECONDS);
    let d = tempfile::tempdir().unwrap();
    let b = make_batch(d.path(), KILL_SECONDS);
    let out = d.path().join("out");

    // One at a time; SIGKILL once two sessions have finished, while the third renders.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("stemforge"))
        .arg("batch")
        .arg(&b)
        .args(["--engine", "cpu", "--jobs", "1"])
        .env("XDG_RUNTIME_DIR", xdg_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut done = 0;
    while done < 2 {
        let line = lines.next().expect("the batch ended before two sessions finished").unwrap();
        if line.contains(": rendered (exit 0)") {
            done += 1;
        }
    }
    // Into the third session's render: once its temporary files exist (or 2 s at most).
    let t = Instant::now();
    let rendering = || temps(&out).iter().any(|p| !p.starts_with(out.join(".stemforge-batch")));
    while !rendering() && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let in_flight = temps(&out).len();
    // What was finished at the kill: each finished session's report is published last.
    let finished: BTreeMap<PathBuf, u64> =
        inodes(&out).into_iter().filter(|(p, _)| p.ends_with("stemforge-report.json")).collect();
    assert!(finished.len() >= 2, "{finished:#?}");
    assert!(finished.len() < SESSIONS - 1, "the kill came after the last session: {finished:#?}");

    let (summary, _) = batch(&b, &["--jobs", "2"], 2);
    for (i, s) in summary["sessions"].as_array().unwrap().iter().enumerate() {
        let report = out.join(format!("song-{i}/stemforge-report.json"));
        let want = match () {
            _ if i == BROKEN => "failed",
            _ if finished.contains_key(&report) => "skipped",
            _ => "rendered",
        };
        assert_eq!(s["status"], want, "session {i}: {s:#}");
    }
    // Nothing finished was rendered again (its files are the very same), every output is
    // complete and byte-identical to an uninterrupted batch, and no temporary file is left.
    let now = inodes(&out);
    for (p, ino) in &finished {
        assert_eq!(now[p], *ino, "{} was rendered twice", p.display());
    }
    assert_eq!(outputs(&out), reference);
    assert_eq!(temps(&out), Vec::<PathBuf>::new());
    eprintln!(
        "kill test: {} session(s) finished before the kill, {in_flight} temporary file(s) of the one in flight; {:.2} s",
        finished.len(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn slurm_job_array_on_a_local_cluster_renders_what_one_machine_does() {
    if !may_run_slurm("slurm_job_array_on_a_local_cluster_renders_what_one_machine_does") {
        return;
    }
    let t0 = Instant::now();
    let cluster = Cluster::start();
    let reference = reference_outputs(1.2);
    let d = tempfile::tempdir().unwrap();
    let b = make_batch(d.path(), 1.2);
    let out = d.path().join("out");

    let script = stemforge().args(["farm", "slurm"]).arg(&b).args(["--engine", "cpu"]).output().unwrap();
    assert!(script.status.success(), "{}", String::from_utf8_lossy(&script.stderr));
    let job = d.path().join("job.sh");
    std::fs::write(&job, &script.stdout).unwrap();
    let submit = cluster.cmd("sbatch").arg("--parsable").arg(&job).current_dir(d.path()).output().unwrap();
    assert!(submit.status.success(), "sbatch: {}", String::from_utf8_lossy(&submit.stderr));
    let array = String::from_utf8_lossy(&submit.stdout).trim().split(';').next().unwrap().to_string();

    // Until the summary job (submitted by task 0) has completed.
    let id_file = out.join(".stemforge-batch/slurm-summary.jobid");
    let summary_line = loop {
        let summary_id = std::fs::read_to_string(&id_file).map(|s| s.trim().to_string()).unwrap_or_default();
        if !summary_id.is_empty()
            && let Some(l) = cluster.completed().lines().find(|l| field(l, "JobId") == summary_id)
        {
            break l.to_string();
        }
        if t0.elapsed() > Duration::from_secs(180) {
            let q = cluster.cmd("squeue").output().unwrap();
            panic!(
                "the batch did not finish in 180 s\nsqueue:\n{}\njobcomp:\n{}\n{}",
                String::from_utf8_lossy(&q.stdout),
                cluster.completed(),
                cluster.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let completed = cluster.completed();
    let tasks: Vec<&str> = completed.lines().filter(|l| field(l, "ArrayJobId") == array).collect();
    assert_eq!(tasks.len(), SESSIONS, "one task per session:\n{completed}");
    for t in &tasks {
        let want = if field(t, "ArrayTaskId") == BROKEN.to_string() { "2:0" } else { "0:0" };
        assert_eq!(field(t, "ExitCode"), want, "{t}");
    }
    let nodes: std::collections::BTreeSet<&str> = tasks.iter().map(|t| field(t, "NodeList")).collect();
    assert!(nodes.len() >= 2, "the tasks all ran on {nodes:?}:\n{completed}");
    // The summary job's exit code is the batch's.
    assert_eq!(field(&summary_line, "ExitCode"), "2:0", "{summary_line}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    expect_statuses(&summary, "rendered");
    expect_broken_reported(&summary);
    let ran_on: std::collections::BTreeSet<&str> =
        summary["sessions"].as_array().unwrap().iter().filter_map(|s| s["node"].as_str()).collect();
    assert!(ran_on.len() >= 2, "the records name {ran_on:?}");
    // The same bytes as one machine's batch.
    assert_eq!(outputs(&out), reference);
    eprintln!("slurm test: tasks on {nodes:?}; {:.2} s with the cluster's start", t0.elapsed().as_secs_f64());
}

#[test]
fn openjd_template_passes_check_and_renders_the_batch_under_openjd_run() {
    let t0 = Instant::now();
    let Some(openjd) = openjd("openjd_template_passes_check_and_renders_the_batch_under_openjd_run") else {
        return;
    };
    let reference = reference_outputs(1.2);
    let d = tempfile::tempdir().unwrap();
    let b = make_batch(d.path(), 1.2);
    let out = d.path().join("out");
    let t = stemforge().args(["farm", "openjd"]).arg(&b).args(["--engine", "cpu"]).output().unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let (ok, log) = openjd_check_and_run(&openjd, &t.stdout, d.path(), "job.json");
    // Every render task succeeds (its session's code is recorded); the summary step exits with the
    // batch's code, 2, so the job fails, as the broken session should make it.
    assert!(!ok, "openjd run should fail on the summary's exit 2:\n{log}");
    assert!(log.contains("exited with code: 2"), "{log}");
    assert_eq!(log.matches("exited with code: 0").count(), SESSIONS, "{log}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    expect_statuses(&summary, "rendered");
    expect_broken_reported(&summary);
    assert_eq!(outputs(&out), reference);
    eprintln!("openjd test: {:.2} s", t0.elapsed().as_secs_f64());
}

#[test]
fn a_bad_batch_file_and_two_sessions_of_one_name_are_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("batch.toml");
    std::fs::write(&b, "name = \"x\"\nout_root = \"out\"\n[[sessions]]\npath = \"s0/session.toml\"\nengin = \"cpu\"\n")
        .unwrap();
    let out = stemforge().arg("batch").arg(&b).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("batch.toml: line 5: unknown field `engin`"), "{err}");

    // Two sessions named alike would render into one folder.
    for i in 0..2 {
        session(&d.path().join(format!("s{i}")), "same", 10 + i, "stems/b.wav", 1.0);
    }
    std::fs::write(
        &b,
        "name = \"x\"\nout_root = \"out\"\n[[sessions]]\npath = \"s0/session.toml\"\n[[sessions]]\npath = \"s1/session.toml\"\n",
    )
    .unwrap();
    for scheduler in ["slurm", "openjd"] {
        let out = stemforge().args(["farm", scheduler]).arg(&b).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{scheduler}: {err}");
        assert!(err.contains("are both named \"same\""), "{err}");
    }
    let (summary, _) = batch(&b, &[], 2);
    assert_eq!(statuses(&summary), ["failed", "failed"]);
    assert!(summary["sessions"][0]["message"].as_str().unwrap().contains("is also the name of sessions[1]"));
    assert!(!d.path().join("out/same").exists());
}

/// The stem actions of a batch render's report: stem name -> "reused" / "stored" / ...
fn cache_actions(report: &Path) -> BTreeMap<String, String> {
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    r["cache"]["stems"]
        .as_array()
        .unwrap_or_else(|| panic!("no cache section in {}", report.display()))
        .iter()
        .map(|s| (s["stem"].as_str().unwrap().to_string(), s["action"].as_str().unwrap().to_string()))
        .collect()
}

/// A batch file's `cache` (with `cache_max_gb`): every render keeps its stems there, so a batch of
/// revisions (a stem's gain changed in one session) renders that session from the kept stems,
/// skips the rest by fingerprint, and gives an uncached render's outputs to the bit. A limit that
/// is not a positive number, or a limit without a folder, is exit 2 naming the batch file.
#[test]
fn a_batch_of_revisions_reads_the_stems_its_last_run_kept() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..2 {
        session(&d.path().join(format!("s{i}")), &format!("song-{i}"), 40 + i as u64, "stems/b.wav", 2.0);
    }
    let b = d.path().join("batch.toml");
    let sessions = "[[sessions]]\npath = \"s0/session.toml\"\n[[sessions]]\npath = \"s1/session.toml\"\n";
    std::fs::write(
        &b,
        format!("name = \"rev\"\nout_root = \"out\"\ncache = \"stem-cache\"\ncache_max_gb = 1\n{sessions}"),
    )
    .unwrap();
    let (summary, _) = batch(&b, &["--jobs", "2"], 0);
    assert_eq!(statuses(&summary), ["rendered", "rendered"]);
    let report = |i: usize| d.path().join(format!("out/song-{i}/stemforge-report.json"));
    for i in 0..2 {
        assert!(cache_actions(&report(i)).values().all(|a| a == "stored"), "{:?}", cache_actions(&report(i)));
    }

    // The revision: stem b of song-0 up 1 dB.
    let s0 = d.path().join("s0/session.toml");
    let toml = std::fs::read_to_string(&s0).unwrap();
    std::fs::write(&s0, toml.replace("gain_db = -1.0", "gain_db = 0.0")).unwrap();
    let (summary, _) = batch(&b, &["--jobs", "2"], 0);
    assert_eq!(statuses(&summary), ["rendered", "skipped"]);
    let actions = cache_actions(&report(0));
    assert_eq!(actions.len(), 2);
    assert!(actions.values().all(|a| a == "reused"), "{actions:?}");
    let plain = d.path().join("plain");
    render(&s0, &plain, "cpu", &[], 0);
    let got = outputs(&d.path().join("out/song-0"));
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got, outputs(&plain), "the revision from the cache against an uncached render");

    for (extra, says) in [
        ("cache = \"c\"\ncache_max_gb = 0\n", "cache_max_gb = 0 GB: the cache's limit must be a positive number"),
        ("cache_max_gb = 1\n", "cache_max_gb without cache"),
    ] {
        std::fs::write(&b, format!("name = \"rev\"\nout_root = \"out\"\n{extra}{sessions}")).unwrap();
        let out = stemforge().arg("batch").arg(&b).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {err}");
        assert!(err.contains("batch.toml") && err.contains(says), "{extra}: {err}");
    }
}
