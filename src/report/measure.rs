//! `stemforge measure`'s report: one file's loudness reading, and the text and JSON it prints as.
use std::path::PathBuf;

use serde::Serialize;

use super::fmt_db;
use super::{path_string, seconds};
use crate::meter::{DialogueLoudness, LoudnessStats};
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

/// `measure --dialogue`'s reading: the programme's, and its loudness gated on its dialogue stem.
/// JSON: the programme's `FileLoudness` keys, then `dialogue_stem` and `dialogue` (the
/// `DialogueLoudness` keys).
#[derive(Debug, Clone, Serialize)]
pub struct DialogueReading {
    #[serde(flatten)]
    pub programme: FileLoudness,
    #[serde(serialize_with = "path_string")]
    pub dialogue_stem: PathBuf,
    pub dialogue: DialogueLoudness,
}

impl DialogueReading {
    pub fn to_text(&self) -> String {
        let d = &self.dialogue;
        let mut out = to_text(std::slice::from_ref(&self.programme));
        let gated = d.dialogue_gated_lufs.map_or("-".to_string(), |v| fmt_db(v, 1));
        out.push_str(&format!(
            "  {:<20} {gated:>8} LUFS   gated on the dialogue stem {} (stem gating, not a speech classifier)\n",
            "Dialogue-gated",
            self.dialogue_stem.display()
        ));
        out.push_str(&format!(
            "  {:<20} {:>8.1} %      {} of {} blocks over -70 LUFS; the stem reads {} LUFS\n",
            "Dialogue",
            d.dialogue_percent,
            d.dialogue_blocks,
            d.programme_blocks,
            fmt_db(d.dialogue_stem_lufs, 1)
        ));
        out
    }
}
