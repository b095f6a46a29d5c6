//! `stemforge farm openjd`: an Open Job Description job template (`jobtemplate-2023-09`) for a
//! batch: a step whose task parameter is the session index, and a summary step that depends on it.
use std::path::Path;

use super::Batch;
use super::slurm::engine_name;
use crate::pipeline::render::EngineChoice;

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
    // OpenJD names: letters, digits, spaces and a few marks, at most 64 characters.
    let name: String = format!("stemforge {}", batch.name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || " -_.".contains(c) { c } else { '_' })
        .take(64)
        .collect();
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
