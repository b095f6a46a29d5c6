//! Every command's report, text and JSON, in one room: the commands hand over data, this module
//! formats it (after hyperfine's `export/`).
//!
//! One file per command: `render`, `check`, `compare`, `measure`, `devices`, and the proof page
//! (`proof`, its charts in `plots`). Here: what they share,
//! the path serializer, the seconds a message shows, and `ReportFile`, the one way a JSON report
//! reaches disk (render's `--report` and check's), made up front and published with the outputs.
//!
//! Nothing here imports `analysis` or `render`: the data structs these files format live here (or
//! lower: `engine`, `sink`, `session`, `meter`), and those modules import them.
pub mod album;
pub mod batch;
pub mod check;
pub mod compare;
pub mod devices;
pub mod measure;
pub mod plots;
pub mod proof;
pub mod render;

use std::path::Path;

use serde::Serializer;

use crate::error::{Error, Result};
use crate::io::wav_writer::sync_folder;
use crate::publish::{OutputTemp, Publication};

/// Paths as text (lossy for non-UTF-8 names rather than a serialization error).
pub fn path_string<S: Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// "1.000 s" for a frame count at a rate (for messages).
pub fn seconds(frames: u64, sample_rate: u32) -> String {
    if sample_rate == 0 {
        return "? s".to_string();
    }
    format!("{:.3} s", frames as f64 / sample_rate as f64)
}

/// A JSON report: its temporary file is made up front, so that a missing or unwritable folder
/// fails the command before any work (and before any output is published); it is filled and
/// renamed into place with the outputs at the end.
pub struct ReportFile {
    temp: OutputTemp,
}

impl ReportFile {
    pub fn create(path: &Path) -> Result<ReportFile> {
        Ok(ReportFile { temp: OutputTemp::create(path)? })
    }

    /// Write the report (pretty JSON and a newline) and make it durable, still under its
    /// temporary name.
    pub fn write(&self, report: &impl serde::Serialize) -> Result<()> {
        use std::io::Write;
        let path = self.temp.final_path();
        let err = |e: String| Error::output(path, format!("cannot write report: {e}"));
        let mut out = std::io::BufWriter::new(self.temp.file());
        serde_json::to_writer_pretty(&mut out, report).map_err(|e| err(e.to_string()))?;
        out.write_all(b"\n").map_err(|e| err(e.to_string()))?;
        out.flush().map_err(|e| err(e.to_string()))?;
        drop(out);
        self.temp.file().sync_all().map_err(|e| err(e.to_string()))
    }

    /// Write a text file (the proof page) and make it durable, still under its temporary name.
    pub fn write_text(&self, text: &str) -> Result<()> {
        use std::io::Write;
        let path = self.temp.final_path();
        let err = |e: std::io::Error| Error::output(path, format!("cannot write: {e}"));
        let mut file = self.temp.file();
        file.write_all(text.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)
    }

    /// Rename it into place as `publication` allows (`Publication::publish`).
    pub fn publish(self, publication: &mut Publication) -> Result<()> {
        let folder = self.temp.folder();
        publication.publish(self.temp)?;
        sync_folder(&folder);
        Ok(())
    }
}

/// Text form of a level: one decimal, "-inf" for silence.
pub fn fmt_db(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else if x.is_nan() {
        "n/a".to_string()
    } else if x > 0.0 {
        "+inf".to_string()
    } else {
        "-inf".to_string()
    }
}
