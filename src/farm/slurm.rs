//! `stemforge farm slurm`: an `sbatch` script for a batch, a job array with one task per session
//! and a summary job after it (`--dependency=afterany`) whose exit code is the batch's.
use std::path::Path;

use super::{Batch, sh_quote};
use crate::pipeline::render::EngineChoice;

#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// At most this many tasks at once (`--array=0-N%K`).
    pub max_parallel: Option<usize>,
    pub cpus_per_task: Option<usize>,
    /// The engine of sessions that do not name one (passed to each task's `batch`).
    pub engine: Option<EngineChoice>,
}

/// A job name Slurm and a shell take as it is.
fn job_name(batch: &str) -> String {
    let n: String =
        batch.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    format!("stemforge-{n}")
}

/// The script. Submitted with `sbatch SCRIPT`, it runs as the array's tasks; task 0 first submits
/// the summary job, which depends on the whole array (`afterany`: it runs however the tasks end)
/// and exits with the batch's code. The summary job's id is written to
/// `out_root/.stemforge-batch/slurm-summary.jobid`; logs go to that folder.
pub fn script(batch: &Batch, stemforge: &Path, opts: &SlurmOptions) -> String {
    let n = batch.sessions.len();
    let state = batch.state_dir();
    let name = job_name(&batch.name);
    let q = |p: &Path| sh_quote(&p.to_string_lossy());
    let engine = opts.engine.map(|e| format!(" --engine {}", engine_name(e))).unwrap_or_default();
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!(
        "# stemforge farm slurm: batch `{}`, {n} session(s), from {}\n",
        batch.name,
        batch.file.display()
    ));
    s.push_str("# Submit with `sbatch THIS_FILE`: one array task per session runs `stemforge batch --task I`;\n");
    s.push_str("# task 0 also submits the summary job (afterany on the array), whose exit code is the batch's.\n");
    s.push_str(&format!("#SBATCH --job-name={name}\n"));
    match opts.max_parallel {
        Some(k) => s.push_str(&format!("#SBATCH --array=0-{}%{k}\n", n - 1)),
        None => s.push_str(&format!("#SBATCH --array=0-{}\n", n - 1)),
    }
    if let Some(c) = opts.cpus_per_task {
        s.push_str(&format!("#SBATCH --cpus-per-task={c}\n"));
    }
    if let Some(p) = &opts.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    // #SBATCH lines are not shell words: a path with spaces cannot be quoted there.
    s.push_str(&format!("#SBATCH --output={}/slurm-%A_%a.out\n", state.display()));
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("STEMFORGE={}\n", q(stemforge)));
    s.push_str(&format!("BATCH={}\n", q(&batch.file)));
    s.push_str(&format!("STATE={}\n", q(&state)));
    s.push_str(
        "if [ -z \"${SLURM_ARRAY_TASK_ID:-}\" ]; then\n  echo \"submit this script with sbatch\" >&2\n  exit 2\nfi\n",
    );
    s.push_str(
        "echo \"stemforge: task $SLURM_ARRAY_TASK_ID of array job $SLURM_ARRAY_JOB_ID on node ${SLURMD_NODENAME:-$(hostname)}\"\n",
    );
    let summary_cmd = format!(
        "exec {} batch {} --summarize --summary {}",
        q(stemforge),
        q(&batch.file),
        q(&batch.out_root.join("summary.json"))
    );
    let partition = opts.partition.as_ref().map(|p| format!(" --partition={}", sh_quote(p))).unwrap_or_default();
    s.push_str("# Once per array (not again when task 0 is requeued).\n");
    s.push_str("if [ \"$SLURM_ARRAY_TASK_ID\" = 0 ] && [ \"${SLURM_RESTART_COUNT:-0}\" = 0 ]; then\n");
    // A failed submission does not stop this task's render: the log says how to summarize by hand.
    s.push_str(&format!(
        "  if summary=$(sbatch --parsable --job-name={name}-summary{partition} --dependency=afterany:\"$SLURM_ARRAY_JOB_ID\" \\\n      --output=\"$STATE/slurm-summary-%j.out\" --wrap={}); then\n",
        sh_quote(&summary_cmd)
    ));
    s.push_str("    echo \"${summary%%;*}\" > \"$STATE/slurm-summary.jobid\"\n");
    s.push_str("    echo \"stemforge: summary job ${summary%%;*} runs after array job $SLURM_ARRAY_JOB_ID\"\n");
    s.push_str("  else\n");
    s.push_str(
        "    echo \"stemforge: error: the summary job was not submitted; after the array, run: $STEMFORGE batch $BATCH --summarize\" >&2\n",
    );
    s.push_str("  fi\n");
    s.push_str("fi\n");
    s.push_str(&format!("exec \"$STEMFORGE\" batch \"$BATCH\" --task \"$SLURM_ARRAY_TASK_ID\"{engine}\n"));
    s
}

pub fn engine_name(e: EngineChoice) -> &'static str {
    match e {
        EngineChoice::Auto => "auto",
        EngineChoice::Cpu => "cpu",
        EngineChoice::Gpu => "gpu",
    }
}
