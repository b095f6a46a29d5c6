//! One function per command: run it through the library, print for people or machines, and
//! return the exit code for a completed run (0 pass, 1 quality failure). Errors go back to main.
use crate::analysis::{check, compare, measure};
use crate::cli::{Command, FarmCommand, SegmentSplit};
use crate::error::{Error, Result};
use crate::farm::Batch;
use crate::farm::batch::{BatchOptions, check_unique_names, run_all, run_task, summarize, write_json};
use crate::pipeline::outputs::check_writes;
use crate::pipeline::render::{RenderOptions, render};
use crate::progress::ProgressMode;
use crate::publish::{Publication, sweep_stale};
use crate::report::{self, ReportFile};
use crate::session::Session;

pub fn run(command: Command) -> Result<u8> {
    match command {
        Command::Render {
            session,
            engine,
            adapter,
            out_dir,
            report,
            progress,
            force,
            block,
            spill_dir,
            spill,
            segments,
            segment,
            state_dir,
            solve,
            write,
            join,
            warmup_s,
            proof,
            cache,
            cache_max_gb,
        } => {
            if let Some(state_dir) = state_dir {
                use crate::pipeline::segments::{Phase, SegmentOptions};
                let phase = match (solve, write, join) {
                    (true, _, _) => Phase::Solve,
                    (_, true, _) => Phase::Write,
                    (_, _, true) => Phase::Join,
                    _ => Phase::Analyse,
                };
                if phase == Phase::Analyse && segments.is_none() {
                    return Err(Error::Usage(
                        "--state-dir: give --segments N --segment I (phase 1), --solve (phase 2), \
                         --segments N --segment I --write (phase 3) or --join (phase 4)"
                            .into(),
                    ));
                }
                let opts = SegmentOptions {
                    phase,
                    segments,
                    segment,
                    state_dir,
                    engine,
                    adapter: adapter.clone(),
                    block,
                    out_dir,
                    report,
                    force,
                    warmup_s,
                    test_warmup_frames: std::env::var("STEMFORGE_TEST_WARMUP_FRAMES").ok().and_then(|v| v.parse().ok()),
                };
                let r = crate::pipeline::segments::run(&session, &opts)?;
                println!("{}", serde_json::to_string_pretty(&r).expect("json"));
                return Ok(0);
            }
            // A hidden test hook (tests/reliability.rs), read here once like every option.
            let hold_before_publish = std::env::var_os("STEMFORGE_TEST_HOLD_BEFORE_PUBLISH").map(Into::into);
            let opts = RenderOptions {
                engine,
                adapter,
                out_dir,
                report,
                progress,
                force,
                block,
                spill_dir,
                spill,
                hold_before_publish,
                fingerprint: None,
                proof,
                cache: cache_options(cache, cache_max_gb)?,
            };
            let json = opts.progress == ProgressMode::Json;
            let r = render(&session, &opts)?;
            crate::report::render::print(&r, json);
            Ok(if r.spec_met { 0 } else { 1 })
        }
        Command::Proof { report, out, force } => {
            proof_from_report(&report, &out, force)?;
            eprintln!("stemforge: wrote {}", out.display());
            Ok(0)
        }
        Command::Measure { files, json, dialogue: Some(stem) } => {
            let [programme] = &files[..] else {
                return Err(Error::Usage(format!(
                    "measure --dialogue STEM PROGRAMME takes one programme file, not {}",
                    files.len()
                )));
            };
            let r = measure::measure_dialogue(&stem, programme)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).expect("json"));
            } else {
                print!("{}", r.to_text());
            }
            Ok(0)
        }
        Command::Measure { files, json, dialogue: None } => {
            let results = measure::measure(&files)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report::measure::to_json(&results)).expect("json"));
            } else {
                print!("{}", report::measure::to_text(&results));
            }
            Ok(0)
        }
        Command::Album { album, engine, adapter, out_dir, report, force, cache, cache_max_gb } => {
            // The report's folder is checked by making its temporary file, before any work.
            let report_file = report.as_deref().map(ReportFile::create).transpose()?;
            let cache = cache_options(cache, cache_max_gb)?;
            let render = RenderOptions { engine, adapter, out_dir, force, cache, ..RenderOptions::default() };
            let (r, code) = crate::album::run(&album, &crate::album::AlbumOptions { render })?;
            eprint!("{}", r.to_text());
            match report_file {
                Some(f) => {
                    f.write(&r)?;
                    let mut publication = crate::publish::Publication::new(force);
                    f.publish(&mut publication)?;
                    publication.keep();
                }
                None => println!("{}", serde_json::to_string_pretty(&r).expect("json")),
            }
            Ok(code)
        }
        Command::Compare { a, b, json, max_peak_dbfs, max_rms_dbfs } => {
            let r = compare::compare(&a, &b, crate::report::compare::Tolerance { max_peak_dbfs, max_rms_dbfs })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r.to_json()).expect("json"));
            } else {
                print!("{}", r.to_text());
            }
            Ok(if r.passed { 0 } else { 1 })
        }
        Command::Check { session, report, force } => {
            let session = Session::load(&session)?;
            // The report is an output like a render's: never over an input, not over an existing
            // file without --force, its folder checked (by making its temporary file) first.
            let report_file = match &report {
                Some(path) => {
                    check_writes(&session, Vec::new(), Some(path), force)?;
                    for gone in sweep_stale(path) {
                        eprintln!(
                            "stemforge: removed the stale temporary file {} (left by a run that was killed)",
                            gone.display()
                        );
                    }
                    Some(ReportFile::create(path)?)
                }
                None => None,
            };
            let r = check::check(&session)?;
            print!("{}", r.to_text());
            if let Some(f) = report_file {
                let mut publication = Publication::new(force);
                f.write(&r.to_json())?;
                f.publish(&mut publication)?;
                publication.keep();
            }
            Ok(if r.passed() { 0 } else { 1 })
        }
        Command::Batch { batch, jobs, task, summarize: only_summarize, summary, engine, record_only } => {
            let batch = Batch::load(&batch)?;
            let opts = BatchOptions { engine, jobs: jobs as usize };
            let result = match task {
                Some(i) => {
                    let record = run_task(&batch, i, &opts)?;
                    crate::report::batch::Summary::new(batch.name.clone(), batch.file.clone(), vec![record])
                }
                None if only_summarize => summarize(&batch),
                None => run_all(&batch, &opts)?,
            };
            print!("{}", result.to_text());
            if let Some(path) = &summary {
                write_json(path, &result)?;
            }
            Ok(if record_only { 0 } else { result.exit_code })
        }
        Command::Farm { scheduler } => {
            let exe = |given: Option<std::path::PathBuf>| -> Result<std::path::PathBuf> {
                match given {
                    Some(p) => Ok(p),
                    None => std::env::current_exe().map_err(|e| {
                        Error::Usage(format!("cannot find this executable's path ({e}): give --stemforge"))
                    }),
                }
            };
            match scheduler {
                FarmCommand::Slurm {
                    batch: session,
                    partition,
                    engine,
                    stemforge,
                    split: SegmentSplit { segments: Some(n), state_dir, out_dir },
                    ..
                } => {
                    let (s, opts) = segment_jobs(&session, n, state_dir, out_dir, partition, engine)?;
                    print!("{}", crate::farm::slurm::segment_script(&s, &exe(stemforge)?, &opts));
                }
                FarmCommand::Openjd {
                    batch: session,
                    engine,
                    stemforge,
                    split: SegmentSplit { segments: Some(n), state_dir, out_dir },
                } => {
                    let (s, opts) = segment_jobs(&session, n, state_dir, out_dir, None, engine)?;
                    let t = crate::farm::openjd::segment_template(&s, &exe(stemforge)?, &opts);
                    println!("{}", serde_json::to_string_pretty(&t).expect("json"));
                }
                FarmCommand::Slurm { batch, partition, max_parallel, cpus_per_task, engine, stemforge, .. } => {
                    let batch = Batch::load(&batch)?;
                    check_unique_names(&batch)?;
                    let opts = crate::farm::slurm::SlurmOptions { partition, max_parallel, cpus_per_task, engine };
                    // Slurm opens the tasks' log files before they run: their folder must exist.
                    std::fs::create_dir_all(batch.state_dir())
                        .map_err(|e| Error::output_from(batch.state_dir(), "cannot create the log folder", e))?;
                    print!("{}", crate::farm::slurm::script(&batch, &exe(stemforge)?, &opts));
                }
                FarmCommand::Openjd { batch, engine, stemforge, .. } => {
                    let batch = Batch::load(&batch)?;
                    check_unique_names(&batch)?;
                    let t = crate::farm::openjd::template(&batch, &exe(stemforge)?, engine);
                    println!("{}", serde_json::to_string_pretty(&t).expect("json"));
                }
            }
            Ok(0)
        }
        Command::Devices { json } => {
            let adapters = crate::gpu::list_adapters(None)?;
            if json {
                println!("{}", report::devices::to_json(&adapters));
            } else {
                print!("{}", report::devices::to_text(&adapters));
            }
            Ok(0)
        }
    }
}

/// What `farm slurm|openjd SESSION --segments N` share: the session, and the absolute state
/// folder (made now: every node reads and writes it) and options of its phases.
fn segment_jobs(
    session: &std::path::Path,
    segments: u32,
    state_dir: Option<std::path::PathBuf>,
    out_dir: Option<std::path::PathBuf>,
    partition: Option<String>,
    engine: Option<crate::pipeline::render::EngineChoice>,
) -> Result<(Session, crate::farm::slurm::SegmentJobs)> {
    let s = Session::load(session)?;
    let state = state_dir.unwrap_or_else(|| s.dir.join(".stemforge-segments").join(&s.name));
    std::fs::create_dir_all(&state).map_err(|e| Error::output_from(&state, "cannot create the state folder", e))?;
    let state = std::fs::canonicalize(&state).map_err(|e| Error::output_from(&state, "cannot resolve", e))?;
    Ok((s, crate::farm::slurm::SegmentJobs { segments, state_dir: state, out_dir, partition, engine }))
}

/// `stemforge proof REPORT.json --out FILE.html`: the page from a saved render report, written
/// atomically; the report is only read.
fn proof_from_report(report: &std::path::Path, out: &std::path::Path, force: bool) -> Result<()> {
    let same = std::fs::canonicalize(report).ok().zip(out.parent().and_then(|d| {
        let d = if d.as_os_str().is_empty() { std::path::Path::new(".") } else { d };
        std::fs::canonicalize(d).ok().map(|d| d.join(out.file_name().unwrap_or_default()))
    }));
    if same.is_some_and(|(a, b)| a == b) {
        return Err(Error::input(out, "--out is the report itself: the report is an input and is never overwritten"));
    }
    let text = std::fs::read_to_string(report).map_err(|e| Error::input(report, format!("cannot read: {e}")))?;
    let fields: crate::report::proof::ProofReport =
        serde_json::from_str(&text).map_err(|e| Error::input(report, format!("not a stemforge render report: {e}")))?;
    let page = crate::report::proof::page(&fields).map_err(|e| Error::input(report, e))?;
    if !force && std::fs::symlink_metadata(out).is_ok() {
        return Err(Error::output(out, "already exists; pass --force to overwrite it"));
    }
    let file = ReportFile::create(out)?;
    file.write_text(&page)?;
    let mut publication = Publication::new(force);
    file.publish(&mut publication)?;
    publication.keep();
    Ok(())
}

/// `--cache DIR --cache-max-gb GB` as the renders take them.
fn cache_options(dir: Option<std::path::PathBuf>, max_gb: f64) -> Result<Option<crate::pipeline::cache::CacheOptions>> {
    dir.map(|d| {
        crate::pipeline::cache::CacheOptions::new(d, max_gb).map_err(|e| Error::Usage(format!("--cache-max-gb: {e}")))
    })
    .transpose()
}
