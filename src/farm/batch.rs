//! `stemforge batch`: render a batch's sessions in this process (N at a time, or the one of a
//! scheduler's task), skip those whose recorded fingerprint still matches, record each result.
//!
//! Each render is the `render` command's own function, so its outputs and its report are
//! published atomically (the report last, carrying the fingerprint): a batch killed at any point
//! leaves, per session, either a complete published render with its report or nothing under a
//! final name. A resumed batch skips the first kind by the report and renders the rest.
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::fingerprint::{Flags, fingerprint};
use super::{Batch, REPORT_NAME, STATE_DIR};
use crate::error::{Error, Result};
use crate::pipeline::plan::DEFAULT_BLOCK;
use crate::pipeline::render::{EngineChoice, RenderOptions, render};
use crate::pipeline::spill::SpillMode;
use crate::progress::ProgressMode;
use crate::publish::{Publication, sweep_stale};
use crate::report::ReportFile;
use crate::report::batch::{NO_RESULT_EXIT, SessionRecord, Status, Summary};
use crate::session::Session;

#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// The engine of sessions that do not name one.
    pub engine: EngineChoice,
    /// Sessions rendered at once (`--jobs`).
    pub jobs: usize,
}

/// Render every session, `opts.jobs` at a time, past failures; the summary's exit code is the
/// worst. Errors are only those that stop the batch itself (its records cannot be written).
pub fn run_all(batch: &Batch, opts: &BatchOptions) -> Result<Summary> {
    let names = session_names(batch);
    let n = batch.sessions.len();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<SessionRecord>>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.clamp(1, n) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let r = run_one(batch, i, &names, opts);
                    let stop = r.is_err();
                    results.lock().expect("results")[i] = Some(r);
                    if stop {
                        // The records cannot be written: no point in starting more.
                        next.store(n, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let mut records = Vec::with_capacity(n);
    for (i, r) in results.into_inner().expect("results").into_iter().enumerate() {
        match r {
            Some(r) => records.push(r?),
            None => records.push(SessionRecord::missing(i, batch.sessions[i].path.clone())),
        }
    }
    Ok(Summary::new(batch.name.clone(), batch.file.clone(), records))
}

/// Render session `index` only (a scheduler's task).
pub fn run_task(batch: &Batch, index: usize, opts: &BatchOptions) -> Result<SessionRecord> {
    if index >= batch.sessions.len() {
        return Err(Error::Usage(format!(
            "--task {index}: {} has {} session(s), numbered 0 to {}",
            batch.file.display(),
            batch.sessions.len(),
            batch.sessions.len() - 1
        )));
    }
    // Only this session's name: reading every session file in every task would cost a batch of
    // n sessions n² reads. Two sessions of one name are refused when the whole batch is seen (a
    // batch on one machine, and `farm slurm` / `farm openjd` before they write the job).
    let mut names = vec![None; batch.sessions.len()];
    names[index] = Session::load(&batch.sessions[index].path).ok().map(|s| s.name);
    run_one(batch, index, &names, opts)
}

/// Gather the sessions' records into a summary, rendering nothing. A session without a record,
/// or whose record is for another session file (the batch was edited), counts as missing.
pub fn summarize(batch: &Batch) -> Summary {
    let records = batch
        .sessions
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let path = batch.record_path(i);
            let read = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<SessionRecord>(&b).ok());
            match read {
                Some(r) if r.index == i && r.session_file == entry.path => r,
                Some(_) => SessionRecord {
                    message: Some(format!("{}: a record of another session (the batch file changed)", path.display())),
                    ..SessionRecord::missing(i, entry.path.clone())
                },
                None => SessionRecord::missing(i, entry.path.clone()),
            }
        })
        .collect();
    Summary::new(batch.name.clone(), batch.file.clone(), records)
}

/// Write a JSON file atomically (a temporary file renamed over the name).
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut publication = Publication::new(true);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        publication.create_dir_all(dir)?;
    }
    // A batch killed while writing this record left its locked temporary file: its lock is free now.
    sweep_stale(path);
    let f = ReportFile::create(path)?;
    f.write(value)?;
    f.publish(&mut publication)?;
    publication.keep();
    Ok(())
}

/// Each session's `name` where its file reads (for the output folders and their clashes).
pub fn session_names(batch: &Batch) -> Vec<Option<String>> {
    batch.sessions.iter().map(|e| Session::load(&e.path).ok().map(|s| s.name)).collect()
}

/// Refuse a batch in which two sessions have one name (both would render into one folder): what
/// the scheduler front ends check before they write a job whose tasks each see one session.
pub fn check_unique_names(batch: &Batch) -> Result<()> {
    let names = session_names(batch);
    for (i, name) in names.iter().enumerate() {
        let Some(name) = name else { continue };
        if let Some(j) = names[..i].iter().position(|n| n.as_deref() == Some(name)) {
            return Err(Error::input(
                &batch.file,
                format!(
                    "sessions[{j}] ({}) and sessions[{i}] ({}) are both named {name:?}: both would render into {}",
                    batch.sessions[j].path.display(),
                    batch.sessions[i].path.display(),
                    batch.out_root.join(name).display()
                ),
            ));
        }
    }
    Ok(())
}

/// The node this runs on: Slurm's name for it, else the host name.
fn node_name() -> Option<String> {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
}

/// One session: record it as running, skip it or render it, record the result. Err only when
/// the record cannot be written.
fn run_one(batch: &Batch, index: usize, names: &[Option<String>], opts: &BatchOptions) -> Result<SessionRecord> {
    let t0 = Instant::now();
    let entry = &batch.sessions[index];
    let label = names[index].clone().unwrap_or_else(|| entry.path.display().to_string());
    let mut record = SessionRecord {
        name: names[index].clone(),
        status: Status::Running,
        message: Some(format!("started on {}; not finished", node_name().unwrap_or_default())),
        node: node_name(),
        ..SessionRecord::missing(index, entry.path.clone())
    };
    write_json(&batch.record_path(index), &record)?;
    eprintln!("stemforge batch: [{index}] {label}: started");

    let (status, code, message, report) = match attempt(batch, index, names, opts) {
        Ok(Attempt::Skipped(report)) => (Status::Skipped, 0, None, Some(report)),
        Ok(Attempt::Rendered(report)) => {
            let met = report["spec_met"].as_bool() == Some(true);
            let problems = report["spec_problems"]
                .as_array()
                .map(|p| p.iter().filter_map(|m| m.as_str()).collect::<Vec<_>>().join("; "));
            if met {
                (Status::Rendered, 0, None, Some(report))
            } else {
                (Status::SpecNotMet, 1, problems, Some(report))
            }
        }
        Err(e) => (Status::Failed, exit_byte(e.exit_code()), Some(e.to_string()), None),
    };
    record.status = status;
    record.exit_code = code;
    record.message = message;
    record.wall_time_s = t0.elapsed().as_secs_f64();
    if let Some(r) = &report {
        let after = &r["loudness_after"];
        record.integrated_lufs = after["integrated_lufs"].as_f64();
        record.true_peak_dbtp = after["true_peak_dbtp"].as_f64();
        record.outputs = published_outputs(r);
        record.report = names[index].as_ref().map(|n| batch.out_root.join(n).join(REPORT_NAME));
    }
    write_json(&batch.record_path(index), &record)?;
    match &record.message {
        Some(m) => eprintln!(
            "stemforge batch: [{index}] {label}: {} (exit {code}) in {:.2} s: {m}",
            status.name(),
            record.wall_time_s
        ),
        None => {
            eprintln!("stemforge batch: [{index}] {label}: {} (exit 0) in {:.2} s", status.name(), record.wall_time_s)
        }
    }
    Ok(record)
}

fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(NO_RESULT_EXIT)
}

enum Attempt {
    /// The earlier render's report (its fingerprint matched and its outputs are there).
    Skipped(serde_json::Value),
    /// This render's report.
    Rendered(serde_json::Value),
}

fn attempt(batch: &Batch, index: usize, names: &[Option<String>], opts: &BatchOptions) -> Result<Attempt> {
    let entry = &batch.sessions[index];
    let session = Session::load(&entry.path)?;
    let name = &session.name;
    let plain = matches!(Path::new(name).components().collect::<Vec<_>>().as_slice(), [Component::Normal(_)]);
    if !plain || name.contains(['/', '\\']) || name == STATE_DIR {
        return Err(Error::input(
            &entry.path,
            format!(
                "name = {name:?} cannot name a folder under out_root ({}): a batch renders each session into \
                 out_root/<name>/",
                batch.out_root.display()
            ),
        ));
    }
    if let Some(j) = names.iter().enumerate().position(|(j, n)| j != index && n.as_deref() == Some(name)) {
        return Err(Error::input(
            &entry.path,
            format!(
                "name = {name:?} is also the name of sessions[{j}] ({}): both would render into {}",
                batch.sessions[j].path.display(),
                batch.out_root.join(name).display()
            ),
        ));
    }
    let flags = Flags {
        engine: entry.engine.unwrap_or(opts.engine),
        adapter: entry.adapter.clone(),
        block: entry.block.unwrap_or(DEFAULT_BLOCK),
    };
    let out_dir = batch.out_root.join(name);
    let report_path = out_dir.join(REPORT_NAME);
    // An input that cannot be read has no fingerprint: the render below says what is wrong with it.
    let fp = fingerprint(&session, flags.clone()).ok().map(|f| serde_json::to_value(f).expect("fingerprint json"));
    if let Some(fp) = &fp
        && let Some(report) = finished(&report_path, fp)
    {
        return Ok(Attempt::Skipped(report));
    }
    let opts = RenderOptions {
        engine: flags.engine,
        adapter: flags.adapter,
        out_dir: Some(out_dir),
        report: Some(report_path),
        progress: ProgressMode::None,
        // The batch owns out_root/<name>/: what is there without a matching fingerprint is stale.
        force: true,
        block: flags.block,
        spill_dir: None,
        spill: SpillMode::All,
        hold_before_publish: None,
        fingerprint: fp,
        proof: None,
        cache: batch.cache.clone(),
    };
    let report = catch_unwind(AssertUnwindSafe(|| render(&entry.path, &opts))).map_err(|p| {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Error::Internal(format!("the render panicked: {why}"))
    })??;
    Ok(Attempt::Rendered(serde_json::to_value(&report).expect("report json")))
}

/// The published report at `path` when it records `fp`, met its spec, and every output it lists
/// is in place with its recorded size (the outputs are not read: that is what the fingerprint
/// and the atomic publish are for).
fn finished(path: &Path, fp: &serde_json::Value) -> Option<serde_json::Value> {
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if report.get("fingerprint") != Some(fp) || report["spec_met"].as_bool() != Some(true) {
        return None;
    }
    let outputs = report["outputs"].as_array()?;
    let all_there = outputs.iter().all(|o| {
        let bytes = o["bytes"].as_u64();
        o["published"].as_bool() == Some(true)
            && o["path"].as_str().and_then(|p| std::fs::metadata(p).ok()).is_some_and(|m| Some(m.len()) == bytes)
    });
    all_there.then_some(report)
}

fn published_outputs(report: &serde_json::Value) -> Vec<PathBuf> {
    report["outputs"]
        .as_array()
        .map(|o| {
            o.iter()
                .filter(|o| o["published"].as_bool() == Some(true))
                .filter_map(|o| o["path"].as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default()
}
