//! Render farms (design/farm.md): the batch file, `batch` (resumable, one machine or one task of
//! a scheduler), and the Slurm and Open Job Description front ends that run it.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pipeline::cache::CacheOptions;
use crate::pipeline::render::EngineChoice;

pub mod batch;
pub mod fingerprint;
pub mod openjd;
pub mod slurm;

/// The folder under `out_root` where `batch` keeps one record per session (`session-<i>.json`)
/// and the schedulers their logs.
pub const STATE_DIR: &str = ".stemforge-batch";

/// A session's render report, in its output folder.
pub const REPORT_NAME: &str = "stemforge-report.json";

/// The batch file as written (unknown keys are errors, as in a session file).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    name: String,
    out_root: PathBuf,
    /// Every session's `render --cache` folder (shared by the nodes), and its limit.
    cache: Option<PathBuf>,
    cache_max_gb: Option<f64>,
    #[serde(default)]
    sessions: Vec<RawEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: PathBuf,
    engine: Option<EngineChoice>,
    adapter: Option<String>,
    block: Option<usize>,
}

/// One session of a batch, its path resolved against the batch file's folder, with the render
/// flags it overrides.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub engine: Option<EngineChoice>,
    pub adapter: Option<String>,
    pub block: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Batch {
    /// The batch file, absolute.
    pub file: PathBuf,
    pub name: String,
    /// Absolute: each session renders into `out_root/<session name>/`.
    pub out_root: PathBuf,
    pub sessions: Vec<Entry>,
    /// `cache` and `cache_max_gb`: every render's `--cache` (`pipeline::cache`), so that a
    /// batch of revisions reads the stems the last batch kept.
    pub cache: Option<CacheOptions>,
}

impl Batch {
    /// Read and check a batch file. Its paths resolve against its folder and are made absolute, so
    /// that a scheduler's task may start anywhere.
    pub fn load(path: &Path) -> Result<Batch> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::input_from(path, "cannot read batch file", e))?;
        let raw: RawBatch = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(0, |r| text[..r.start.min(text.len())].matches('\n').count() + 1);
            Error::input(path, format!("line {line}: {}", e.message()))
        })?;
        let file = std::path::absolute(path).map_err(|e| Error::input_from(path, "cannot resolve", e))?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
        if raw.name.trim().is_empty() {
            return Err(Error::input(path, "`name` is blank"));
        }
        if raw.sessions.is_empty() {
            return Err(Error::input(path, "no [[sessions]]: nothing to render"));
        }
        let mut sessions = Vec::with_capacity(raw.sessions.len());
        for (i, s) in raw.sessions.into_iter().enumerate() {
            if let Some(b) = s.block
                && (!(1024..=65536).contains(&b) || !b.is_power_of_two())
            {
                return Err(Error::input(
                    path,
                    format!("sessions[{i}].block = {b} is not a power of two between 1024 and 65536"),
                ));
            }
            sessions.push(Entry { path: dir.join(&s.path), engine: s.engine, adapter: s.adapter, block: s.block });
        }
        let cache = match (raw.cache, raw.cache_max_gb) {
            (None, None) => None,
            (None, Some(_)) => return Err(Error::input(path, "cache_max_gb without cache (the folder it limits)")),
            (Some(c), gb) => Some(
                CacheOptions::new(dir.join(c), gb.unwrap_or(crate::pipeline::cache::DEFAULT_MAX_GB))
                    .map_err(|e| Error::input(path, format!("cache_max_gb = {e}")))?,
            ),
        };
        Ok(Batch { file, name: raw.name, out_root: dir.join(raw.out_root), sessions, cache })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.out_root.join(STATE_DIR)
    }

    /// Where session `index` keeps its record.
    pub fn record_path(&self, index: usize) -> PathBuf {
        self.state_dir().join(format!("session-{index}.json"))
    }
}

/// `s` quoted for a POSIX shell: one word, whatever it holds.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_quoting_keeps_one_word() {
        assert_eq!(super::sh_quote("/a/b.toml"), "/a/b.toml");
        assert_eq!(super::sh_quote("it's here"), r"'it'\''s here'");
        assert_eq!(super::sh_quote(""), "''");
    }
}
