//! `stemforge measure FILE...`: BS.1770-4 / EBU R128 loudness of each file, as text or JSON.
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::cpu::loudness::{LoudnessStats, fmt_db, meter_reader};
use crate::error::Result;
use crate::session::Layout;

/// One file's reading. JSON keys: path, channels, sample_rate, frames, then the `LoudnessStats`
/// keys flattened (integrated_lufs, lra_lu, max_momentary_lufs, max_short_term_lufs,
/// sample_peak_dbfs, true_peak_dbtp), -inf/undefined as null.
#[derive(Debug, Clone, Serialize)]
pub struct FileLoudness {
    #[serde(serialize_with = "path_string")]
    pub path: PathBuf,
    pub channels: usize,
    pub sample_rate: u32,
    pub frames: u64,
    #[serde(flatten)]
    pub stats: LoudnessStats,
}

impl FileLoudness {
    /// The layout the channel weights came from; None = every channel weighted 1.0.
    pub fn layout(&self) -> Option<Layout> {
        Layout::for_channels(self.channels)
    }
}

/// Paths as text (lossy for non-UTF-8 names rather than a serialization error).
pub fn path_string<S: Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// Measure one file, streamed. Files of 1, 2, 6 and 8 channels are weighted as mono, stereo, 5.1
/// (L R C LFE Ls Rs) and 7.1 (L R C LFE Lrs Rrs Lss Rss); other counts weight every channel 1.0.
pub fn measure_one(path: &Path) -> Result<FileLoudness> {
    let mut reader = crate::io::open(path)?;
    let info = reader.info().clone();
    let (stats, frames) = meter_reader(reader.as_mut())?;
    Ok(FileLoudness { path: path.to_path_buf(), channels: info.channels, sample_rate: info.sample_rate, frames, stats })
}

/// Measure every file in order; the first file that cannot be read stops the command with its
/// error (a measurement with a file missing would be silently incomplete).
pub fn measure(paths: &[PathBuf]) -> Result<Vec<FileLoudness>> {
    paths.iter().map(|p| measure_one(p)).collect()
}

/// JSON output: one object for one file, an array for several.
pub fn to_json(results: &[FileLoudness]) -> serde_json::Value {
    let values: Vec<serde_json::Value> =
        results.iter().map(|r| serde_json::to_value(r).expect("FileLoudness serializes to JSON")).collect();
    if values.len() == 1 { values.into_iter().next().expect("one value") } else { serde_json::Value::Array(values) }
}

/// Text output: a block per file.
pub fn to_text(results: &[FileLoudness]) -> String {
    let mut out = String::new();
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let layout = match r.layout() {
            Some(l) => format!("{} weighting", l.name()),
            None => format!("no standard layout for {} channels: every channel weighted 1.0", r.channels),
        };
        let s = &r.stats;
        out.push_str(&format!(
            "{}\n  {} ch, {} Hz, {} frames ({}), {layout}\n",
            r.path.display(),
            r.channels,
            r.sample_rate,
            r.frames,
            super::seconds(r.frames, r.sample_rate),
        ));
        let rows = [
            ("Integrated loudness", fmt_db(s.integrated_lufs, 1), "LUFS"),
            ("Loudness range", fmt_db(s.lra_lu, 1), "LU"),
            ("Max momentary", fmt_db(s.max_momentary_lufs, 1), "LUFS"),
            ("Max short-term", fmt_db(s.max_short_term_lufs, 1), "LUFS"),
            ("Sample peak", fmt_db(s.sample_peak_dbfs, 2), "dBFS"),
            ("True peak", fmt_db(s.true_peak_dbtp, 2), "dBTP"),
        ];
        for (name, value, unit) in rows {
            out.push_str(&format!("  {name:<20} {value:>8} {unit}\n"));
        }
    }
    out
}
