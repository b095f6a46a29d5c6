//! A real local Slurm cluster for the farm tests (scripts/slurm-local: munged, one slurmctld and
//! three `slurmd -N nodeN` under a temporary folder), stopped on drop, and the root check those
//! tests share.
use std::path::PathBuf;
use std::process::Command;

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
