//! `stemforge batch`'s records and summary: one record per session (what became of it), and the
//! summary of a batch as JSON and as a text table.
use std::path::PathBuf;

/// What became of one session of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Rendered now, spec met, outputs published.
    Rendered,
    /// Its outputs exist and its recorded fingerprint matched: not rendered again (no stem decoded).
    Skipped,
    /// Rendered, but it missed its loudness or true-peak spec: nothing published (exit 1).
    SpecNotMet,
    /// Stopped with an error (exit 2 bad input, 3 no GPU, others bugs).
    Failed,
    /// Started and not finished: the process was killed (or is still running).
    Running,
    /// No record: the session has not run (its scheduler task never started, or `--summarize`
    /// ran before it).
    Missing,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Rendered => "rendered",
            Status::Skipped => "skipped",
            Status::SpecNotMet => "spec_not_met",
            Status::Failed => "failed",
            Status::Running => "running",
            Status::Missing => "missing",
        }
    }
}

/// The exit code a session without a result counts as in the batch's: DESIGN.md's "anything else
/// is a bug", since a task that never reported is not the input's fault nor a quality verdict.
pub const NO_RESULT_EXIT: u8 = 70;

/// One session's record (`out_root/.stemforge-batch/session-<i>.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    pub index: usize,
    pub session_file: PathBuf,
    /// The session's `name`, when its file could be read.
    pub name: Option<String>,
    pub status: Status,
    pub exit_code: u8,
    /// The error or the missed spec, for a session that did not succeed.
    pub message: Option<String>,
    pub integrated_lufs: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    /// The published outputs (from the render's report; for a skipped session, the earlier one's).
    pub outputs: Vec<PathBuf>,
    /// The render report, when there is one.
    pub report: Option<PathBuf>,
    /// This attempt's wall time (for a skip: the time to check the fingerprint).
    pub wall_time_s: f64,
    /// The node that ran it (the host name, or Slurm's node name).
    pub node: Option<String>,
}

impl SessionRecord {
    pub fn missing(index: usize, session_file: PathBuf) -> SessionRecord {
        SessionRecord {
            index,
            session_file,
            name: None,
            status: Status::Missing,
            exit_code: NO_RESULT_EXIT,
            message: Some("no result: the session has not run, or its task died before it wrote one".into()),
            integrated_lufs: None,
            true_peak_dbtp: None,
            outputs: Vec::new(),
            report: None,
            wall_time_s: 0.0,
            node: None,
        }
    }
}

/// A batch's summary (`--summary FILE.json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub batch: String,
    pub batch_file: PathBuf,
    /// The worst (highest) exit code among the sessions: the batch's.
    pub exit_code: u8,
    pub sessions: Vec<SessionRecord>,
    /// How many sessions ended in each status.
    pub counts: std::collections::BTreeMap<&'static str, usize>,
}

impl Summary {
    pub fn new(batch: String, batch_file: PathBuf, sessions: Vec<SessionRecord>) -> Summary {
        let exit_code = sessions.iter().map(|s| s.exit_code).max().unwrap_or(0);
        let mut counts = std::collections::BTreeMap::new();
        for s in &sessions {
            *counts.entry(s.status.name()).or_insert(0) += 1;
        }
        Summary { batch, batch_file, exit_code, sessions, counts }
    }

    /// The table: session, status, exit code, loudness, true peak, outputs, time; then each
    /// failure's message.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| super::fmt_db(x, 2));
        let mut t = String::new();
        let _ = writeln!(t, "batch `{}`: {} session(s), exit code {}", self.batch, self.sessions.len(), self.exit_code);
        let _ = writeln!(
            t,
            "{:>4}  {:<24} {:<12} {:>4} {:>9} {:>9} {:>7} {:>8}",
            "#", "session", "status", "exit", "LUFS", "dBTP", "outputs", "time s"
        );
        for s in &self.sessions {
            let name = s.name.clone().unwrap_or_else(|| s.session_file.display().to_string());
            let _ = writeln!(
                t,
                "{:>4}  {:<24} {:<12} {:>4} {:>9} {:>9} {:>7} {:>8.2}",
                s.index,
                name,
                s.status.name(),
                s.exit_code,
                opt(s.integrated_lufs),
                opt(s.true_peak_dbtp),
                s.outputs.len(),
                s.wall_time_s
            );
        }
        for s in self.sessions.iter().filter(|s| s.message.is_some()) {
            let _ = writeln!(t, "session {} ({}): {}", s.index, s.status.name(), s.message.as_deref().unwrap_or(""));
        }
        t
    }
}
