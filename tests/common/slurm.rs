//! A real local Slurm cluster for the farm tests (scripts/slurm-local: munged, one slurmctld and
//! three `slurmd -N nodeN` under a temporary folder), stopped on drop, and the root check those
//! tests share.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether this machine may run a test that starts the cluster (it needs root). In CI (`CI` set)
/// it must: not being root fails the test. Elsewhere, not being root skips it, loudly.
pub fn may_run_slurm(test: &str) -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root to start slurmctld, slurmd and munged (CI is set, so this does not skip)");
    }
    eprintln!(
        "\n*** SKIPPED {test}: not root, so it cannot start a Slurm cluster; run the tests as root to include it ***\n"
    );
    false
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local")
}

pub struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new().prefix("stemforge-slurm").tempdir().unwrap();
        let out = Command::new(script()).arg("start").arg(dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "scripts/slurm-local start failed (apt-get install slurm-wlm munge; .ci/run does):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Cluster { dir }
    }

    /// `program` pointed at this cluster (`SLURM_CONF`).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.dir.path().join("slurm.conf"));
        c
    }

    /// The job-completion log: one line per finished job (`JobId=… JobState=… NodeList=… ExitCode=…`).
    pub fn completed(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("jobcomp.log")).unwrap_or_default()
    }

    /// Submits the four phases of a segmented render (`farm slurm SESSION --segments N`'s script,
    /// run with bash) and waits up to `limit` for the join job: its jobcomp line and the nodes every
    /// job of the cluster ran on. A failed job panics with the jobs' logs from `state`.
    pub fn run_phases(&self, script: &Path, state: &Path, limit: Duration) -> (String, BTreeSet<String>) {
        let t0 = Instant::now();
        let submit = self.cmd("bash").arg(script).output().unwrap();
        assert!(submit.status.success(), "submitting: {}", String::from_utf8_lossy(&submit.stderr));
        let join = String::from_utf8_lossy(&submit.stdout).trim().to_string();
        let line = loop {
            let completed = self.completed();
            if let Some(l) = completed.lines().find(|l| field(l, "JobId") == join) {
                break l.to_string();
            }
            if let Some(l) = completed.lines().find(|l| field(l, "ExitCode") != "0:0") {
                let logs: Vec<String> = std::fs::read_dir(state)
                    .unwrap()
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("slurm-"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect();
                panic!("a job failed: {l}\n{}", logs.join("\n"));
            }
            assert!(t0.elapsed() < limit, "the phases did not finish in {limit:?}:\n{completed}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(field(&line, "ExitCode"), "0:0", "{line}\n{}", self.completed());
        let nodes = self.completed().lines().map(|l| field(l, "NodeList").to_string()).collect();
        (line, nodes)
    }

    /// The last lines of every daemon's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["slurmctld.log", "slurmd-node1.log", "slurmd-node2.log", "slurmd-node3.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            s += &format!("--- {f}\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(self.dir.path()).status();
    }
}

/// `key=value` of a jobcomp line.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('='))).unwrap_or("")
}
