//! `stemforge check`'s report: the files, the findings, the null test and the stems' alignment,
//! and the text and JSON it prints as (`analysis::check` fills it).
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fmt_db;
use super::path_string;
use crate::meter::{finite_or_null, opt_finite_or_null};

/// What was found. JSON: the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Missing, not audio, corrupt, truncated, unsupported.
    Unreadable,
    /// 0 frames.
    Empty,
    /// A NaN or ±Inf sample.
    NonFinite,
    SampleRateMismatch,
    /// Channel count neither 1 nor the bus layout's (for the mix: not the layout's).
    LayoutMismatch,
    LengthMismatch,
    Clipping,
    DcOffset,
    Silence,
    /// The stem sum does not null against the reference mix.
    NullFailed,
    /// A stem is shifted in time against the mix.
    Offset,
    PolarityInverted,
    /// A stem sits at another level in the mix than its session gain.
    GainMismatch,
    /// A stem does not correlate with the mix minus the other stems.
    Uncorrelated,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Unreadable => "unreadable",
            FindingKind::Empty => "empty",
            FindingKind::NonFinite => "non_finite",
            FindingKind::SampleRateMismatch => "sample_rate_mismatch",
            FindingKind::LayoutMismatch => "layout_mismatch",
            FindingKind::LengthMismatch => "length_mismatch",
            FindingKind::Clipping => "clipping",
            FindingKind::DcOffset => "dc_offset",
            FindingKind::Silence => "silence",
            FindingKind::NullFailed => "null_failed",
            FindingKind::Offset => "offset",
            FindingKind::PolarityInverted => "polarity_inverted",
            FindingKind::GainMismatch => "gain_mismatch",
            FindingKind::Uncorrelated => "uncorrelated",
        }
    }
}

/// One problem. `stem` is None for the reference mix and the null test as a whole; `file` names
/// the file concerned. Detail fields are present only where they apply.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub stem: Option<String>,
    #[serde(serialize_with = "opt_path_string", skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    pub kind: FindingKind,
    pub message: String,
    /// Offset against the mix, samples; positive = the stem is late.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_samples: Option<i64>,
    /// The file's frame count (length findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    /// The frame count it should have (length findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_frames: Option<u64>,
    /// The file's sample rate (rate findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// The file's channel count (layout findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// First frame concerned (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// Channel concerned (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<usize>,
    /// How many (clipping runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// A level, dB: DC offset dBFS, peak dBFS (silence), residual dB (null), gain dB (gain).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_finite_or_null")]
    pub level_db: Option<f64>,
    /// Normalised correlation with the mix minus the other stems (culprit findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<f64>,
}

fn opt_path_string<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match p {
        Some(p) => path_string(p, s),
        None => s.serialize_none(),
    }
}

impl Finding {
    /// A finding with no detail fields; the caller sets those that apply.
    pub fn new(stem: Option<&str>, file: Option<&Path>, kind: FindingKind, message: String) -> Self {
        Finding {
            stem: stem.map(str::to_string),
            file: file.map(Path::to_path_buf),
            kind,
            message,
            offset_samples: None,
            frames: None,
            expected_frames: None,
            sample_rate: None,
            channels: None,
            frame: None,
            channel: None,
            count: None,
            level_db: None,
            correlation: None,
        }
    }
}

/// What one file held (stems and the mix).
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    /// The stem's name; None for the reference mix.
    pub stem: Option<String>,
    #[serde(serialize_with = "path_string")]
    pub path: PathBuf,
    pub muted: bool,
    /// None where the file could not be opened.
    pub channels: Option<usize>,
    pub sample_rate: Option<u32>,
    pub frames: Option<u64>,
    #[serde(serialize_with = "opt_finite_or_null")]
    pub peak_dbfs: Option<f64>,
    #[serde(serialize_with = "opt_finite_or_null")]
    pub rms_dbfs: Option<f64>,
}

/// How one stem lines up with the mix (computed only when the null fails).
#[derive(Debug, Clone, Serialize)]
pub struct StemAlignment {
    pub stem: String,
    /// False when the stem had no signal in the analysis window (nothing to correlate).
    pub analysed: bool,
    /// Lag of the correlation peak, samples; positive = the stem is late against the mix.
    pub offset_samples: i64,
    pub polarity_inverted: bool,
    /// Normalised correlation at the peak, in [−1, 1] (lowered by any other stem's error, which
    /// is part of this stem's target; informative, not the test).
    pub correlation: f64,
    /// Correlation peak over the median |xcorr| of the searched lags.
    pub peak_significance: f64,
    /// The peak is significant (`analysis::check::MIN_PEAK_SIGNIFICANCE`) and the gain at least
    /// `MIN_FOUND_GAIN`: offset, polarity and gain are trustworthy.
    pub found: bool,
    /// The stem's level in the mix relative to its session gain and routing, dB (at the peak lag).
    #[serde(serialize_with = "finite_or_null")]
    pub gain_db: f64,
    /// Frames the stem is shorter than the mix (negative: longer).
    pub frames_short: i64,
    pub has_eq: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NullResult {
    /// 10·log10(Σ residual² / Σ mix²) over all bus channels and frames, dB.
    #[serde(serialize_with = "finite_or_null")]
    pub residual_db_rel_mix: f64,
    /// Largest |residual| sample, dBFS.
    #[serde(serialize_with = "finite_or_null")]
    pub residual_peak_dbfs: f64,
    pub threshold_db: f64,
    pub passed: bool,
    /// Stems in the sum (unmuted, readable, matching rate and layout).
    pub stems_summed: Vec<String>,
    /// Unmuted stems left out of the sum, with why.
    pub stems_excluded: Vec<String>,
    /// What the sum does (and does not) model.
    pub method: String,
    /// Per-stem alignment against the mix, when the null failed.
    pub alignment: Vec<StemAlignment>,
    /// Analysis window of the alignment search: first frame and length.
    pub window_start_frame: u64,
    pub window_frames: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub session: String,
    pub layout: String,
    /// The program's sample rate (the stems' majority), when any stem could be read.
    pub sample_rate: Option<u32>,
    /// The longest stem's length.
    pub frames: u64,
    pub files: Vec<FileSummary>,
    pub findings: Vec<Finding>,
    pub null_test: Option<NullResult>,
    /// Why something was not checked (no reference mix, null not possible, ...).
    pub notes: Vec<String>,
    /// No findings.
    pub passed: bool,
}

impl CheckReport {
    /// True when nothing was found.
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

impl CheckReport {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("CheckReport serializes to JSON")
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "check: {} ({}, {}, {} frames)\n",
            self.session,
            self.layout,
            self.sample_rate.map_or("no readable stem".to_string(), |r| format!("{r} Hz")),
            self.frames
        ));
        out.push_str(&format!(
            "  {:<16} {:>3} {:>7} {:>11} {:>10} {:>10}\n",
            "file", "ch", "rate", "frames", "peak dBFS", "rms dBFS"
        ));
        for f in &self.files {
            let name = match &f.stem {
                Some(s) if f.muted => format!("{s} (muted)"),
                Some(s) => s.clone(),
                None => "reference mix".to_string(),
            };
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
            out.push_str(&format!(
                "  {:<16} {:>3} {:>7} {:>11} {:>10} {:>10}\n",
                name,
                opt(f.channels.map(|c| c.to_string())),
                opt(f.sample_rate.map(|c| c.to_string())),
                opt(f.frames.map(|c| c.to_string())),
                opt(f.peak_dbfs.map(|c| fmt_db(c, 1))),
                opt(f.rms_dbfs.map(|c| fmt_db(c, 1))),
            ));
        }
        if let Some(n) = &self.null_test {
            out.push_str(&format!(
                "null test: residual {} dB relative to the mix (threshold {:.1} dB), residual peak {} dBFS: {}\n  {}\n",
                fmt_db(n.residual_db_rel_mix, 1),
                n.threshold_db,
                fmt_db(n.residual_peak_dbfs, 1),
                if n.passed { "PASS" } else { "FAIL" },
                n.method
            ));
            if !n.stems_excluded.is_empty() {
                out.push_str(&format!("  left out of the sum: {}\n", n.stems_excluded.join(", ")));
            }
            for a in &n.alignment {
                if a.analysed && !a.found {
                    out.push_str(&format!(
                        "  {:<16} not found (peak {:.1}x the background, gain {} dB), {} frames short\n",
                        a.stem,
                        a.peak_significance,
                        fmt_db(a.gain_db, 2),
                        a.frames_short
                    ));
                } else if a.analysed {
                    out.push_str(&format!(
                        "  {:<16} offset {:+} samples, correlation {:+.3} (peak {:.0}x the background), gain {} dB, {} frames short\n",
                        a.stem,
                        a.offset_samples,
                        a.correlation,
                        a.peak_significance,
                        fmt_db(a.gain_db, 2),
                        a.frames_short
                    ));
                } else {
                    out.push_str(&format!("  {:<16} no signal in the analysis window\n", a.stem));
                }
            }
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if self.findings.is_empty() {
            out.push_str("no findings: PASS\n");
        } else {
            out.push_str(&format!("{} finding(s):\n", self.findings.len()));
            for f in &self.findings {
                out.push_str(&format!("  [{}] {}\n", f.kind.as_str(), f.message));
            }
            out.push_str("FAIL\n");
        }
        out
    }
}
