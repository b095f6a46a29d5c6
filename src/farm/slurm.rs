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

/// `farm slurm SESSION --segments N`: what the four phases of a segmented render need.
#[derive(Debug, Clone)]
pub struct SegmentJobs {
    pub segments: u32,
    /// Absolute: every node reads and writes it (a shared file system).
    pub state_dir: std::path::PathBuf,
    pub out_dir: Option<std::path::PathBuf>,
    pub partition: Option<String>,
    pub engine: Option<EngineChoice>,
}

/// A bash script that submits the four phases of design/farm.md as dependent jobs: an array of
/// N analysis tasks, the solve after all of them (`afterok`), an array of N writing tasks after
/// it, the join after them; a failed job cancels those after it (`--kill-on-invalid-dep`). It prints the join job's id and writes it to
/// `STATE/slurm-join.jobid`; each job's log is `STATE/slurm-<phase>-%A_%a.out`.
pub fn segment_script(session: &crate::session::Session, stemforge: &Path, opts: &SegmentJobs) -> String {
    let n = opts.segments;
    let q = |p: &Path| sh_quote(&p.to_string_lossy());
    let name = job_name(&session.name);
    let engine = engine_name(opts.engine.unwrap_or(EngineChoice::Cpu));
    let file = std::fs::canonicalize(&session.file).unwrap_or_else(|_| session.file.clone());
    let out = opts.out_dir.as_ref().map(|d| {
        let d = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
        format!(" --out-dir {}", q(&d))
    });
    let out = out.unwrap_or_default();
    let partition = opts.partition.as_ref().map(|p| format!(" --partition={}", sh_quote(p))).unwrap_or_default();
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!(
        "# stemforge farm slurm --segments {n}: session `{}` ({}) split across nodes.\n",
        session.name,
        file.display()
    ));
    s.push_str(
        "# Run with bash (not sbatch): it submits phase 1 (array), 2, 3 (array) and 4, each after the one before.\n",
    );
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("STEMFORGE={}\n", q(stemforge)));
    s.push_str(&format!("SESSION={}\n", q(&file)));
    s.push_str(&format!("STATE={}\n", q(&opts.state_dir)));
    s.push_str("mkdir -p \"$STATE\"\n");
    // Each --wrap is single-quoted here so that $SLURM_ARRAY_TASK_ID expands in the task.
    let common = format!("--engine {engine} --state-dir {}", q(&opts.state_dir));
    let wrap = |phase: &str, args: &str| {
        let cmd = format!("exec {} render {} {args} {common}{out}", q(stemforge), q(&file));
        format!(
            "sbatch --parsable --kill-on-invalid-dep=yes --job-name={name}-{phase}{partition} --output=\"$STATE/slurm-{phase}-%A_%a.out\" \\\n    "
        ) + &format!("--wrap={}", sh_quote(&cmd))
    };
    let last = n - 1;
    s.push_str(&format!(
        "analyse=$({} --array=0-{last})\n",
        wrap("analyse", &format!("--segments {n} --segment \"$SLURM_ARRAY_TASK_ID\""))
    ));
    s.push_str(&format!("solve=$({} --dependency=afterok:\"${{analyse%%;*}}\")\n", wrap("solve", "--solve")));
    s.push_str(&format!(
        "write=$({} --array=0-{last} --dependency=afterok:\"${{solve%%;*}}\")\n",
        wrap("write", &format!("--segments {n} --segment \"$SLURM_ARRAY_TASK_ID\" --write"))
    ));
    s.push_str(&format!("join=$({} --dependency=afterok:\"${{write%%;*}}\")\n", wrap("join", "--join --force")));
    s.push_str("echo \"${join%%;*}\" > \"$STATE/slurm-join.jobid\"\n");
    s.push_str("echo \"stemforge: phases submitted: analyse ${analyse%%;*}, solve ${solve%%;*}, write ${write%%;*}, join ${join%%;*}\" >&2\n");
    s.push_str("echo \"${join%%;*}\"\n");
    s
}
