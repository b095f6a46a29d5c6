//! `stemforge farm openjd`: an Open Job Description job template (`jobtemplate-2023-09`) for a
//! batch: a step whose task parameter is the session index, and a summary step that depends on it;
//! or, with `--segments N`, for one session split across workers: the four phases of
//! design/farm.md as four steps, each depending on the one before.
use std::path::Path;

use super::Batch;
use super::slurm::{SegmentJobs, engine_name};
use crate::pipeline::render::EngineChoice;

/// OpenJD names: letters, digits, spaces and a few marks, at most 64 characters.
fn job_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || " -_.".contains(c) { c } else { '_' }).take(64).collect()
}

/// The template, as JSON (a JSON document is a valid template file, as YAML is).
///
/// OpenJD runs a dependent step only when every task of the step it depends on succeeded, where
/// Slurm has `afterany`; so each render task runs `batch --task I --record-only`, which records
/// the session's exit code and exits 0, and the summary step exits with the batch's code.
pub fn template(batch: &Batch, stemforge: &Path, engine: Option<EngineChoice>) -> serde_json::Value {
    let n = batch.sessions.len();
    let exe = stemforge.to_string_lossy().into_owned();
    let file = batch.file.to_string_lossy().into_owned();
    let mut task_args = vec!["batch".to_string(), file.clone(), "--task".into(), "{{Task.Param.Session}}".into()];
    task_args.push("--record-only".into());
    if let Some(e) = engine {
        task_args.extend(["--engine".to_string(), engine_name(e).to_string()]);
    }
    let summary = batch.out_root.join("summary.json").to_string_lossy().into_owned();
    let name = job_name(&format!("stemforge {}", batch.name));
    serde_json::json!({
        "specificationVersion": "jobtemplate-2023-09",
        "name": name,
        "description": format!("stemforge batch {file}: {n} session(s), then the summary (exit code = the batch's)"),
        "steps": [
            {
                "name": "Render",
                "parameterSpace": {
                    "taskParameterDefinitions": [
                        { "name": "Session", "type": "INT", "range": format!("0-{}", n - 1) }
                    ]
                },
                "script": { "actions": { "onRun": { "command": exe, "args": task_args } } }
            },
            {
                "name": "Summary",
                "dependencies": [ { "dependsOn": "Render" } ],
                "script": {
                    "actions": {
                        "onRun": {
                            "command": exe,
                            "args": ["batch", file, "--summarize", "--summary", summary]
                        }
                    }
                }
            }
        ]
    })
}

/// `farm openjd SESSION --segments N`: steps Analyse (one task per segment), Solve, Write (one task
/// per segment) and Join, each after every task of the one before succeeded (OpenJD's step
/// dependencies); the phases' own checks refuse a state folder of another session or split.
pub fn segment_template(session: &crate::session::Session, stemforge: &Path, opts: &SegmentJobs) -> serde_json::Value {
    let exe = stemforge.to_string_lossy().into_owned();
    let file = std::fs::canonicalize(&session.file).unwrap_or_else(|_| session.file.clone());
    let file = file.to_string_lossy().into_owned();
    let mut common = vec![
        "--engine".to_string(),
        engine_name(opts.engine.unwrap_or(EngineChoice::Cpu)).to_string(),
        "--state-dir".into(),
        opts.state_dir.to_string_lossy().into_owned(),
    ];
    if let Some(d) = &opts.out_dir {
        let d = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
        common.extend(["--out-dir".to_string(), d.to_string_lossy().into_owned()]);
    }
    let n = opts.segments;
    let args = |phase: &[&str]| -> Vec<String> {
        let mut a = vec!["render".to_string(), file.clone()];
        a.extend(phase.iter().map(|s| s.to_string()));
        a.extend(common.iter().cloned());
        a
    };
    let per_segment = |name: &str, phase: &[&str], after: Option<&str>| {
        let mut step = serde_json::json!({
            "name": name,
            "parameterSpace": {
                "taskParameterDefinitions": [ { "name": "Segment", "type": "INT", "range": format!("0-{}", n - 1) } ]
            },
            "script": { "actions": { "onRun": { "command": exe, "args": args(phase) } } }
        });
        if let Some(a) = after {
            step["dependencies"] = serde_json::json!([{ "dependsOn": a }]);
        }
        step
    };
    let n_s = n.to_string();
    let name = job_name(&format!("stemforge {} in {n} segments", session.name));
    serde_json::json!({
        "specificationVersion": "jobtemplate-2023-09",
        "name": name,
        "description": format!("stemforge render {file} split into {n} segments: analyse, solve, write, join (design/farm.md)"),
        "steps": [
            per_segment("Analyse", &["--segments", &n_s, "--segment", "{{Task.Param.Segment}}"], None),
            {
                "name": "Solve",
                "dependencies": [ { "dependsOn": "Analyse" } ],
                "script": { "actions": { "onRun": { "command": exe, "args": args(&["--solve"]) } } }
            },
            per_segment("Write", &["--segments", &n_s, "--segment", "{{Task.Param.Segment}}", "--write"], Some("Solve")),
            {
                "name": "Join",
                "dependencies": [ { "dependsOn": "Write" } ],
                "script": { "actions": { "onRun": { "command": exe, "args": args(&["--join", "--force"]) } } }
            }
        ]
    })
}
