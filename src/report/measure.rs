//! `stemforge measure`'s report: one file's loudness reading, and the text and JSON it prints as.
use std::path::PathBuf;

use serde::Serialize;

use super::fmt_db;
use super::{path_string, seconds};
use crate::meter::LoudnessStats;
use crate::model::Layout;

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
            seconds(r.frames, r.sample_rate),
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
