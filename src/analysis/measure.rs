//! `stemforge measure FILE...`: BS.1770-4 / EBU R128 loudness of each file (its report, text and
//! JSON, is `report::measure`).
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::meter::{dialogue_gated, meter_reader, meter_reader_blocks};
use crate::report::measure::{DialogueReading, FileLoudness};

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

/// `measure --dialogue STEM PROGRAMME`: the programme's loudness, and its loudness gated on its
/// dialogue stem (`meter::dialogue_gated`). The stem must have the programme's rate and length (it
/// is one of the stems the programme was mixed from); each file is streamed once.
pub fn measure_dialogue(stem: &Path, programme: &Path) -> Result<DialogueReading> {
    let read = |path: &Path| -> Result<(FileLoudness, Vec<f64>)> {
        let mut reader = crate::io::open(path)?;
        let info = reader.info().clone();
        let (stats, frames, blocks) = meter_reader_blocks(reader.as_mut())?;
        let file = FileLoudness {
            path: path.to_path_buf(),
            channels: info.channels,
            sample_rate: info.sample_rate,
            frames,
            stats,
        };
        Ok((file, blocks))
    };
    let (d, d_blocks) = read(stem)?;
    let (p, p_blocks) = read(programme)?;
    if d.sample_rate != p.sample_rate || d.frames != p.frames {
        return Err(Error::input(
            stem,
            format!(
                "the dialogue stem is {} frames at {} Hz, the programme {} ({} frames at {} Hz): give the programme's own \
                 dialogue stem",
                d.frames,
                d.sample_rate,
                programme.display(),
                p.frames,
                p.sample_rate
            ),
        ));
    }
    Ok(DialogueReading {
        programme: p,
        dialogue_stem: stem.to_path_buf(),
        dialogue: dialogue_gated(&d_blocks, &p_blocks),
    })
}
