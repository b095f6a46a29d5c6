//! `stemforge measure FILE...`: BS.1770-4 / EBU R128 loudness of each file (its report, text and
//! JSON, is `report::measure`).
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::meter::meter_reader;
use crate::report::measure::FileLoudness;

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
