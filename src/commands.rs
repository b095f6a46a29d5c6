//! One function per command: run it through the library, print for people or machines, and
//! return the exit code for a completed run (0 pass, 1 quality failure). Errors go back to main.
use crate::analysis::{check, compare, measure};
use crate::cli::Command;
use crate::error::Result;
use crate::progress::ProgressMode;
use crate::publish::{Publication, sweep_stale};
use crate::render::{RenderOptions, RenderReport, ReportFile, check_writes, render};
use crate::session::Session;

pub fn run(command: Command) -> Result<u8> {
    match command {
        Command::Render { session, engine, adapter, out_dir, report, progress, force, block, spill_dir, spill } => {
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
            };
            let json = opts.progress == ProgressMode::Json;
            let r = render(&session, &opts)?;
            print_render(&r, json);
            Ok(if r.spec_met { 0 } else { 1 })
        }
        Command::Measure { files, json } => {
            let results = measure::measure(&files)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&measure::to_json(&results)).expect("json"));
            } else {
                print!("{}", measure::to_text(&results));
            }
            Ok(0)
        }
        Command::Compare { a, b, json, max_peak_dbfs, max_rms_dbfs } => {
            let r = compare::compare(&a, &b, compare::Tolerance { max_peak_dbfs, max_rms_dbfs })?;
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
        Command::Devices { json } => {
            let adapters = crate::gpu::list_adapters(None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&adapters).expect("json"));
            } else if adapters.is_empty() {
                println!("no GPU adapter found: {}", crate::gpu::context::NO_GPU_HELP);
            } else {
                for a in &adapters {
                    let mark = if a.selected { "*" } else { " " };
                    println!("{mark} {}; FIR in {}", a.describe(), a.fir_precision);
                }
                println!(
                    "(* = the adapter `--engine gpu` uses; `--engine auto` uses it only when it is a hardware GPU)"
                );
                if adapters.iter().any(|a| a.fir_precision == "f32") {
                    println!(
                        "(FIR in f32: no 64-bit floats on that adapter; its integer outputs may differ from the CPU engine's by more than 1 LSB)"
                    );
                }
            }
            Ok(0)
        }
    }
}

/// The end of a render on stderr: a summary, each output, each warning, each spec problem; with
/// `--progress json`, one JSON object per line (`rendered`, `wrote` or `not_published`,
/// `warning`, `spec_not_met`), as every other stderr line of that mode.
fn print_render(r: &RenderReport, json: bool) {
    let writing = r.passes.iter().filter(|p| p.kind == "limiter" || p.kind == "sum").count();
    let finite = |v: f64| v.is_finite().then_some(v);
    if json {
        let line = |v: serde_json::Value| eprintln!("{v}");
        line(serde_json::json!({
            "event": "rendered", "session": r.session, "duration_s": r.duration_s,
            "realtime_factor": r.realtime_factor, "engine": r.engine.engine,
            "integrated_lufs": finite(r.loudness_after.integrated_lufs),
            "true_peak_dbtp": finite(r.loudness_after.true_peak_dbtp), "gain_db": r.gain_db,
            "iterations": r.iterations, "writing_passes": writing, "spec_met": r.spec_met,
        }));
        for o in &r.outputs {
            let event = if o.published { "wrote" } else { "not_published" };
            line(serde_json::json!({"event": event, "path": o.path, "frames": o.frames, "sha256": o.sha256}));
        }
        for w in &r.warnings {
            line(serde_json::json!({"event": "warning", "message": w}));
        }
        for p in &r.spec_problems {
            line(serde_json::json!({"event": "spec_not_met", "message": p, "exit_code": 1}));
        }
        return;
    }
    eprintln!(
        "stemforge: rendered `{}` ({:.1} s of program, {:.0}x realtime) on {}: {:.2} LUFS, {:.2} dBTP, gain {:+.2} dB ({} value(s) tried), {} writing pass(es)",
        r.session,
        r.duration_s,
        r.realtime_factor,
        r.engine.engine,
        r.loudness_after.integrated_lufs,
        r.loudness_after.true_peak_dbtp,
        r.gain_db,
        r.iterations,
        writing
    );
    for o in &r.outputs {
        if o.published {
            eprintln!("  wrote {} ({} frames, sha256 {})", o.path.display(), o.frames, o.sha256);
        } else {
            eprintln!("  not published: {} (would be {} frames, sha256 {})", o.path.display(), o.frames, o.sha256);
        }
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    for p in &r.spec_problems {
        eprintln!("Error: spec not met: {p}");
    }
    if !r.spec_met && !r.outputs.is_empty() {
        eprintln!("Error: nothing was published: a render that misses its spec leaves every output as it was");
    }
}
