//! Reliability of `render` and `check` as a farm runs them (issue 10): no write lands on an input,
//! whatever the flags; a report is an output; racing renders never overwrite each other; signals,
//! errors and killed renders leave no temporary file and no empty folder behind.
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use sha2::{Digest, Sha256};

const FS: u32 = 48_000;

/// A two-stem song in `dir`: `stems/drums.wav` (stereo), `stems/bass.wav` (mono, filtered by the
/// user FIR `ir/bass.wav`), the reference mix `mix.wav`, and `session.toml` with `outputs`.
fn song(dir: &Path, seconds: f64, outputs: &str) -> PathBuf {
    let frames = (seconds * FS as f64) as usize;
    let mut drums = music(11, frames, 2, -6.0);
    quantise(&mut drums, 24);
    write_wav(&dir.join("stems/drums.wav"), &drums, FS, 24);
    let mut bass = music(12, frames, 1, -8.0);
    quantise(&mut bass, 24);
    write_wav(&dir.join("stems/bass.wav"), &bass, FS, 24);
    let mut mix = music(13, frames, 2, -3.0);
    quantise(&mut mix, 24);
    write_wav(&dir.join("mix.wav"), &mix, FS, 24);
    // A short decaying impulse response: a plausible user EQ, not a unit impulse.
    let ir: Vec<f32> = (0..32).map(|k| if k == 0 { 0.8 } else { 0.1 * (-(k as f32) / 6.0).exp() }).collect();
    write_wav(&dir.join("ir/bass.wav"), &[ir], FS, 0);
    let body = format!(
        r#"name = "reliability"
layout = "stereo"
reference_mix = "mix.wav"
[[stems]]
name = "drums"
path = "stems/drums.wav"
eq = [{{ type = "peak", freq_hz = 1000.0, gain_db = 2.0, q = 1.0 }}]
[[stems]]
name = "bass"
path = "stems/bass.wav"
fir = "ir/bass.wav"
[master]
target_lufs = -16.0
ceiling_dbtp = -1.0
{outputs}
"#
    );
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn master_at(path: &str) -> String {
    format!("[[outputs]]\npath = \"{path}\"\nkind = \"master\"\nformat = \"pcm24\"\n")
}

fn stems_at(path: &str) -> String {
    format!("[[outputs]]\npath = \"{path}\"\nkind = \"stems\"\nformat = \"pcm24\"\n")
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir` (symlinked folders followed) with its SHA-256.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    files_under(dir).into_iter().map(|p| (p.clone(), sha256(&p))).collect()
}

/// `snapshot` without stemforge's temporary files: what is under final names.
fn finals(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut m = snapshot(dir);
    m.retain(|p, _| !p.file_name().unwrap().to_string_lossy().ends_with(".stemforge-tmp"));
    m
}

/// Temporary files of stemforge anywhere under `dir`.
fn temps_under(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(".stemforge-tmp"))
        .collect()
}

/// Run `stemforge render` with `args` (no implicit --out-dir); returns (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = stemforge().arg("render").args(args).args(["--engine", "cpu", "--progress", "none"]).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One data-loss case of issue 10: the render must exit 2 with and without --force, name the
/// output and the input, write nothing and leave every input byte-identical.
fn refused(dir: &Path, session: &Path, args: &[&str], output: &Path, input: &Path) {
    let before = snapshot(dir);
    assert!(before.contains_key(input) || input.exists(), "the input {} must exist", input.display());
    for force in [false, true] {
        let mut a: Vec<&str> = vec![s(session)];
        a.extend_from_slice(args);
        if force {
            a.push("--force");
        }
        let (code, err) = run(&a);
        assert_eq!(code, Some(2), "force={force}: expected exit 2 for an output at {}:\n{err}", output.display());
        assert!(err.contains(s(output)), "force={force}: the message names the output {}:\n{err}", output.display());
        assert!(err.contains(s(input)), "force={force}: the message names the input {}:\n{err}", input.display());
        assert!(err.contains("input") && err.contains("never modified"), "force={force}: says why:\n{err}");
        assert_eq!(snapshot(dir), before, "force={force}: files changed (an input modified, or something written)");
    }
}

#[test]
fn an_output_at_a_stem_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("stems/drums.wav"));
    refused(d, &session, &["--out-dir", s(d)], &d.join("stems/drums.wav"), &d.join("stems/drums.wav"));
}

#[test]
fn an_output_at_the_reference_mix_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("mix.wav"));
    refused(d, &session, &["--out-dir", s(d)], &d.join("mix.wav"), &d.join("mix.wav"));
}

/// The session file as a write: as the report (no extension rule applies to it), the collision is
/// named; as a master, whose path must end in .wav or .rf64, the extension is refused first. Both
/// exit 2 with the session byte-identical, with and without --force.
#[test]
fn an_output_at_the_session_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("out/master.wav"));
    refused(d, &session, &["--out-dir", s(d), "--report", s(&session)], &session, &session);

    let session = song(d, 1.0, &master_at("session.toml"));
    let before = snapshot(d);
    for force in [&[][..], &["--force"][..]] {
        let mut a = vec![s(&session), "--out-dir", s(d)];
        a.extend_from_slice(force);
        let (code, err) = run(&a);
        assert_eq!(code, Some(2), "{force:?}: a master at the session file:\n{err}");
        assert!(err.contains("session.toml"), "{force:?}: names the path:\n{err}");
        assert_eq!(snapshot(d), before, "{force:?}: files changed");
    }
}

#[test]
fn an_output_at_a_fir_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("ir/bass.wav"));
    refused(d, &session, &["--out-dir", s(d)], &d.join("ir/bass.wav"), &d.join("ir/bass.wav"));
}

/// `kind = "stems"` into the stems' own folder: `stems/drums.wav` is the drums stem.
#[test]
fn a_stems_output_in_the_stems_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &(master_at("out/master.wav") + &stems_at("stems")));
    refused(d, &session, &["--out-dir", s(d)], &d.join("stems/drums.wav"), &d.join("stems/drums.wav"));
}

#[test]
fn out_dir_the_stems_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("bass.wav"));
    let out = d.join("stems");
    refused(d, &session, &["--out-dir", s(&out)], &out.join("bass.wav"), &d.join("stems/bass.wav"));
}

#[test]
fn out_dir_a_symlink_to_the_stems_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("drums.wav"));
    let link = d.join("deliver");
    std::os::unix::fs::symlink(d.join("stems"), &link).unwrap();
    refused(d, &session, &["--out-dir", s(&link)], &link.join("drums.wav"), &d.join("stems/drums.wav"));
}

#[test]
fn a_report_at_a_stem_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("out/master.wav"));
    let report = d.join("stems/drums.wav");
    refused(d, &session, &["--out-dir", s(d), "--report", s(&report)], &report, &report);
}

/// `check --report` makes the same comparison.
#[test]
fn a_check_report_at_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("out/master.wav"));
    let before = snapshot(d);
    for target in [d.join("mix.wav"), d.join("stems/bass.wav"), session.clone()] {
        for force in [false, true] {
            let mut c = stemforge();
            c.arg("check").arg(&session).arg("--report").arg(&target);
            if force {
                c.arg("--force");
            }
            let out = c.output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "check --report {} force={force}:\n{err}", target.display());
            assert!(err.contains(s(&target)) && err.contains("never modified"), "{err}");
            assert_eq!(snapshot(d), before, "check --report {} force={force} changed files", target.display());
        }
    }
}

/// `check --report` is an output too: an existing report needs --force, and a missing folder
/// fails before the check runs, with nothing written.
#[test]
fn a_check_report_follows_the_output_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("out/master.wav"));
    let check = |report: &Path, force: bool| {
        let mut c = stemforge();
        c.arg("check").arg(&session).arg("--report").arg(report);
        if force {
            c.arg("--force");
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let before = snapshot(d);
    let (code, stdout, err) = check(&d.join("nowhere/c.json"), true);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nowhere/c.json") && stdout.is_empty(), "fails before the check runs:\n{stdout}{err}");
    assert_eq!(snapshot(d), before);
    let report = d.join("c.json");
    std::fs::write(&report, b"an earlier report").unwrap();
    let (code, _, err) = check(&report, false);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("c.json") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&report).unwrap(), b"an earlier report");
    let (code, _, err) = check(&report, true);
    assert!(code == Some(0) || code == Some(1), "a completed check:\n{err}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(r.is_object());
    assert!(temps_under(d).is_empty());
}

/// A symlink at an output's name that points at an input is replaced, not followed: the input
/// stays as it was (the rename replaces the link), so it is allowed.
#[test]
fn a_symlink_at_the_output_name_is_replaced_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("out/master.wav"));
    std::fs::create_dir(d.join("out")).unwrap();
    std::os::unix::fs::symlink(d.join("stems/drums.wav"), d.join("out/master.wav")).unwrap();
    let drums = sha256(&d.join("stems/drums.wav"));
    let (code, err) = run(&[s(&session), "--out-dir", s(d), "--force"]);
    assert_eq!(code, Some(0), "{err}");
    let meta = std::fs::symlink_metadata(d.join("out/master.wav")).unwrap();
    assert!(meta.file_type().is_file(), "the link was replaced by the master");
    assert_eq!(sha256(&d.join("stems/drums.wav")), drums, "the stem the link pointed at is unchanged");
}

#[test]
fn a_report_at_an_output_is_refused_with_and_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("out/master.wav"));
    let master = d.join("out/master.wav");
    // No master yet, and then an existing one (a precious earlier render).
    for existing in [false, true] {
        if existing {
            std::fs::create_dir_all(d.join("out")).unwrap();
            std::fs::write(&master, b"an earlier master").unwrap();
        }
        for force in [false, true] {
            let before = snapshot(d);
            let mut a = vec![s(&session), "--out-dir", s(d), "--report", s(&master)];
            if force {
                a.push("--force");
            }
            let (code, err) = run(&a);
            assert_eq!(code, Some(2), "existing={existing} force={force}:\n{err}");
            assert!(err.contains("--report") && err.contains("same file") && err.contains(s(&master)), "{err}");
            assert_eq!(snapshot(d), before, "existing={existing} force={force}: files changed");
        }
    }
    assert_eq!(std::fs::read(&master).unwrap(), b"an earlier master");
}

/// The report follows the outputs' existence rule, and its folder is checked before any work.
#[test]
fn a_report_is_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 1.0, &master_at("out/master.wav"));
    let report = d.join("r.json");
    std::fs::write(&report, b"{\"an\": \"earlier report\"}").unwrap();
    let before = snapshot(d);
    let (code, err) = run(&[s(&session), "--out-dir", s(d), "--report", s(&report)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(s(&report)) && err.contains("--force"), "{err}");
    assert_eq!(snapshot(d), before, "an existing report without --force changed files");

    // A missing folder, and a file where the folder should be: exit 2 before any work, nothing
    // written (no output folder, no master).
    std::fs::write(d.join("plain"), b"x").unwrap();
    for bad in [d.join("nowhere/r.json"), d.join("plain/r.json")] {
        let before = snapshot(d);
        for force in [false, true] {
            let mut a = vec![s(&session), "--out-dir", s(d), "--report", s(&bad)];
            if force {
                a.push("--force");
            }
            let (code, err) = run(&a);
            assert_eq!(code, Some(2), "--report {}:\n{err}", bad.display());
            assert!(err.contains(s(&bad)), "names the report:\n{err}");
            assert!(!err.contains("rendered"), "the render ran before the report was checked:\n{err}");
            assert_eq!(snapshot(d), before, "--report {}: files changed", bad.display());
            assert!(!d.join("out").exists(), "--report {}: the output folder was created", bad.display());
        }
    }
    let (code, err) = run(&[s(&session), "--out-dir", s(d), "--report", s(&report), "--force"]);
    assert_eq!(code, Some(0), "{err}");
    report_matches_disk(&report);
    // A report in a folder the render makes for its outputs is fine.
    let beside = d.join("fresh/report.json");
    let (code, err) = run(&[s(&session), "--out-dir", s(&d.join("fresh")), "--report", s(&beside)]);
    assert_eq!(code, Some(0), "{err}");
    report_matches_disk(&beside);
}

/// A spawned render with JSON progress, its stderr read line by line.
struct Live {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Live {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Live {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("stemforge"))
            .arg("render")
            .args(args)
            .args(["--engine", "cpu", "--progress", "json"])
            .envs(env.iter().copied())
            .env("XDG_RUNTIME_DIR", xdg_dir())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        Live { child, lines, seen: Vec::new() }
    }

    /// Read events until `want` says yes; returns it. Panics at the end of stderr.
    fn until(&mut self, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            self.seen.push(line.clone());
            if let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line)
                && want(&ev)
            {
                return ev;
            }
        }
        panic!("stderr ended before the awaited event:\n{}", self.seen.join("\n"));
    }

    /// Wait for the exit; returns the code and all of stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        for line in self.lines.by_ref() {
            self.seen.push(line.unwrap());
        }
        let status = self.child.wait().unwrap();
        (status.code(), self.seen.join("\n"))
    }
}

fn report_matches_disk(report: &Path) {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let outputs = r["outputs"].as_array().unwrap();
    assert!(!outputs.is_empty());
    for o in outputs {
        let p = Path::new(o["path"].as_str().unwrap());
        assert_eq!(
            o["sha256"].as_str().unwrap(),
            sha256(p),
            "{} in {} is not the file on disk",
            p.display(),
            report.display()
        );
    }
}

/// Two renders into one folder without --force, both past their existence checks: the one that
/// publishes first wins, the other exits 2 naming the file and leaves nothing of its own.
/// Deterministic: render A holds before publishing (a hidden test hook) while B runs to the end.
#[test]
fn racing_renders_never_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 2.0, &(master_at("out/master.wav") + &stems_at("out/stems")));
    let go = d.join("go");
    let (ra, rb) = (d.join("a.json"), d.join("b.json"));
    let mut a = Live::start(
        &[s(&session), "--out-dir", s(d), "--report", s(&ra)],
        &[("STEMFORGE_TEST_HOLD_BEFORE_PUBLISH", s(&go))],
    );
    a.until(|e| e["event"] == "test_hold");
    assert!(!d.join("out/master.wav").exists());
    // B's session differs in its EQ, so the two renders' files differ.
    let text = std::fs::read_to_string(&session).unwrap().replace("gain_db = 2.0", "gain_db = 3.0");
    let session_b = d.join("session-b.toml");
    std::fs::write(&session_b, text).unwrap();
    let (code, err) = run(&[s(&session_b), "--out-dir", s(d), "--report", s(&rb)]);
    assert_eq!(code, Some(0), "B:\n{err}");
    let published = finals(&d.join("out"));
    assert_eq!(published.len(), 3, "B published its master and two stems: {published:?}");
    std::fs::write(&go, b"").unwrap();
    let (code, err) = a.finish();
    assert_eq!(code, Some(2), "A must fail: B published first:\n{err}");
    assert!(err.contains("master.wav") && err.contains("appeared"), "A names the file:\n{err}");
    assert_eq!(snapshot(&d.join("out")), published, "A changed B's outputs or left files");
    assert!(!ra.exists(), "A's report was published");
    report_matches_disk(&rb);
    assert!(temps_under(d).is_empty(), "temporary files left: {:?}", temps_under(d));
}

/// A name that appears under one of a render's later files (here its report) while it publishes:
/// the render takes back the outputs it already renamed, and the folders it created.
#[test]
fn a_failed_publish_takes_back_what_it_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 2.0, &(master_at("out/master.wav") + &stems_at("out/stems")));
    let go = d.join("go");
    let report = d.join("r.json");
    let inputs = snapshot(d);
    let mut a = Live::start(
        &[s(&session), "--out-dir", s(d), "--report", s(&report)],
        &[("STEMFORGE_TEST_HOLD_BEFORE_PUBLISH", s(&go))],
    );
    a.until(|e| e["event"] == "test_hold");
    assert!(d.join("out/stems").is_dir(), "the render made its folders");
    std::fs::write(&report, b"someone else's report").unwrap();
    std::fs::write(&go, b"").unwrap();
    let (code, err) = a.finish();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(s(&report)) && err.contains("appeared"), "{err}");
    assert_eq!(std::fs::read(&report).unwrap(), b"someone else's report");
    assert!(!d.join("out").exists(), "the outputs and folders of the failed render remain: {:?}", files_under(d));
    let mut after = snapshot(d);
    after.remove(&report);
    after.remove(&go);
    assert_eq!(after, inputs, "inputs changed or files left behind");
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        _ => "SIGTERM",
    }
}

/// SIGTERM, SIGINT and SIGHUP in each pass (analysis, a solve on the spill, the writing pass):
/// exit 128+n; no temporary file (outputs', report's), no folder the render created, nothing
/// under a final name. Each signal goes at the pass's start event, and the pass must not have
/// finished (no `pass_done` for it), so it interrupted that very pass.
#[test]
fn signals_in_every_pass_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 120 s: each pass takes long enough to be interrupted in; the shortest, a solve on the spill,
    // took 0.2 s here (2 cores), against a few milliseconds from the start event to the signal.
    let session = song(d, 120.0, &(master_at("deliver/master.wav") + &stems_at("deliver/stems")));
    let inputs = snapshot(d);
    let report = d.join("reports/r.json");
    std::fs::create_dir(d.join("reports")).unwrap();
    for pass in ["analysis", "solve", "limiter"] {
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            let what = format!("{} in the {pass} pass", signal_name(sig));
            let mut r = Live::start(&[s(&session), "--out-dir", s(d), "--report", s(&report)], &[]);
            let start = r.until(|e| e["event"] == "pass_start" && e["what"] == pass);
            let n = start["pass"].clone();
            // What is there to clean up: the report's temporary (made before the first pass), the
            // output folder, and in the writing pass the outputs' temporaries.
            let temps = temps_under(d);
            assert!(d.join("deliver").is_dir(), "{what}: the output folder exists");
            let want = if pass == "limiter" { 1 + 3 } else { 1 };
            assert_eq!(temps.len(), want, "{what}: temporary files at the signal: {temps:?}");
            // SAFETY: sends a signal to our own child process.
            assert_eq!(unsafe { libc::kill(r.child.id() as i32, sig) }, 0);
            let (code, err) = r.finish();
            assert_eq!(code, Some(128 + sig), "{what}: exit code\n{err}");
            let done_after = err
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|e| e["event"] == "pass_done" && e["pass"] == n);
            assert!(!done_after, "{what}: the pass finished before the signal arrived:\n{err}");
            let said = err
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|e| e["event"] == "error")
                .unwrap_or_else(|| panic!("{what}: no error event:\n{err}"));
            assert_eq!(said["exit_code"], 128 + sig, "{what}");
            assert!(said["message"].as_str().unwrap().contains(signal_name(sig)), "{what}: {said}");
            assert!(temps_under(d).is_empty(), "{what}: temporary files left: {:?}", temps_under(d));
            assert!(
                !d.join("deliver").exists(),
                "{what}: the output folder is left: {:?}",
                files_under(&d.join("deliver"))
            );
            assert!(!report.exists(), "{what}: the report was published");
            assert_eq!(snapshot(d), inputs, "{what}: files changed");
        }
    }
}

/// An error in the writing pass (a stem cut short while `--spill bus` makes that pass read the
/// stems again): exit 2 naming the stem, and the same nothing left behind as for a signal.
#[test]
fn an_error_in_the_writing_pass_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 60.0, &(master_at("deliver/master.wav") + &stems_at("deliver/stems")));
    let report = d.join("r.json");
    let mut r = Live::start(&[s(&session), "--out-dir", s(d), "--report", s(&report), "--spill", "bus"], &[]);
    r.until(|e| e["event"] == "pass_start" && e["what"] == "limiter");
    assert_eq!(temps_under(d).len(), 4, "the report's and the outputs' temporary files exist");
    let drums = d.join("stems/drums.wav");
    let len = std::fs::metadata(&drums).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&drums).unwrap().set_len(len / 3).unwrap();
    let (code, err) = r.finish();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("drums.wav"), "names the stem:\n{err}");
    assert!(temps_under(d).is_empty(), "temporary files left: {:?}", temps_under(d));
    assert!(!d.join("deliver").exists(), "the output folder is left: {:?}", files_under(&d.join("deliver")));
    assert!(!report.exists());
}

/// SIGKILL leaves the temporary files (no process is left to remove them); the next render of
/// the same outputs removes them, while a temporary file a live process holds (locked) and one of
/// another output name stay.
#[test]
fn stale_temporaries_of_a_killed_render_are_removed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = song(d, 60.0, &master_at("out/master.wav"));
    let report = d.join("r.json");
    let mut r = Live::start(&[s(&session), "--out-dir", s(d), "--report", s(&report)], &[]);
    r.until(|e| e["event"] == "pass_start" && e["what"] == "limiter");
    r.child.kill().unwrap(); // SIGKILL
    let _ = r.finish();
    let stale = temps_under(d);
    assert_eq!(stale.len(), 2, "SIGKILL leaves the master's and the report's temporary files: {stale:?}");
    assert!(!d.join("out/master.wav").exists() && !report.exists());

    // A live writer's temporary file of the same output (held: locked by this test process), and
    // an unlocked one of another name.
    let held_path = d.join("out/.master.wav.Live01.stemforge-tmp");
    let held = std::fs::File::create(&held_path).unwrap();
    held.lock().unwrap();
    let other = d.join("out/.other.wav.Stale1.stemforge-tmp");
    std::fs::write(&other, b"not ours").unwrap();

    let (code, err) = run(&[s(&session), "--out-dir", s(d), "--report", s(&report)]);
    assert_eq!(code, Some(0), "{err}");
    for p in &stale {
        assert!(!p.exists(), "the stale {} is still there", p.display());
        assert!(err.contains(s(p)), "the render says it removed {}:\n{err}", p.display());
    }
    assert!(held_path.exists(), "a temporary file held by a live process was removed");
    assert!(other.exists(), "another output's temporary file was removed");
    report_matches_disk(&report);
    drop(held);
}
