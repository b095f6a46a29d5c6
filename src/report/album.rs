//! `stemforge album`'s report: each track's levels, place in the sequence and files, and the
//! album's loudness; the text it prints on stderr.
use std::path::PathBuf;

use serde::Serialize;

use super::{fmt_db, path_string, seconds};
use crate::meter::LoudnessStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// One offset for every track: the loudest reads the target, relative levels stay.
    Album,
    /// Every track to the target.
    Track,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackRecord {
    /// 1-based, as `{index}` in paths and TRACK in the CUE sheet.
    pub index: usize,
    pub name: String,
    #[serde(serialize_with = "path_string")]
    pub session: PathBuf,
    /// The level the track keeps relative to the others: its session's target, else its bus
    /// loudness.
    pub relative_lufs: f64,
    /// What the album asked this track's render for.
    pub target_lufs: f64,
    /// The gain G its render applied before the limiter (dB), and the limiter's aim (dBTP) where
    /// the render moved it from measurement.
    pub gain_db: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aim_dbtp: Option<f64>,
    /// Measured on the track as rendered.
    pub integrated_lufs: f64,
    pub true_peak_dbtp: f64,
    pub frames: u64,
    /// Silence before the track in the sequence, and where the track starts there.
    pub gap_frames: u64,
    pub start_frame: u64,
    /// The CUE sheet's INDEX 01 (mm:ss:ff, 75 frames a second).
    pub cue_index: String,
    pub spec_met: bool,
    pub spec_problems: Vec<String>,
    /// The per-track files: (path, SHA-256).
    pub outputs: Vec<(PathBuf, String)>,
    /// With `--cache`: what the track's render made of the stem cache, as a render's report has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<super::render::CacheReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SequenceRecord {
    #[serde(serialize_with = "path_string")]
    pub path: PathBuf,
    #[serde(serialize_with = "path_string")]
    pub cue: PathBuf,
    pub frames: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlbumReport {
    pub album: String,
    #[serde(serialize_with = "path_string")]
    pub album_file: PathBuf,
    pub normalization: Normalization,
    pub target_lufs: f64,
    pub ceiling_dbtp: f64,
    /// Album normalisation: the one offset added to every track's relative level (dB).
    pub offset_db: f64,
    pub sample_rate: u32,
    pub tracks: Vec<TrackRecord>,
    pub sequences: Vec<SequenceRecord>,
    /// The whole album, tracks and gaps in order, through one meter (None when a track missed
    /// its spec and nothing was delivered).
    pub album_loudness: Option<LoudnessStats>,
    pub spec_met: bool,
}

impl AlbumReport {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "album {}: {} tracks, {} normalisation to {:.1} LUFS (offset {:+.2} dB), ceiling {:.1} dBTP\n",
            self.album,
            self.tracks.len(),
            match self.normalization {
                Normalization::Album => "album",
                Normalization::Track => "track",
            },
            self.target_lufs,
            self.offset_db,
            self.ceiling_dbtp
        );
        for t in &self.tracks {
            s += &format!(
                "  {:02} {:<24} {:>8} LUFS  {:>7} dBTP  starts {} ({}, +{} gap)  {}\n",
                t.index,
                t.name,
                fmt_db(t.integrated_lufs, 2),
                fmt_db(t.true_peak_dbtp, 2),
                t.cue_index,
                seconds(t.frames, self.sample_rate),
                seconds(t.gap_frames, self.sample_rate),
                if t.spec_met { "ok".to_string() } else { t.spec_problems.join("; ") }
            );
        }
        if let Some(l) = &self.album_loudness {
            s += &format!(
                "  album: {} LUFS integrated, {} LU range, {} dBTP\n",
                fmt_db(l.integrated_lufs, 2),
                fmt_db(l.lra_lu, 1),
                fmt_db(l.true_peak_dbtp, 2)
            );
        }
        if !self.spec_met {
            s += "  a track missed its spec: nothing was delivered\n";
        }
        s
    }
}
