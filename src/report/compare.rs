//! `stemforge compare`'s report: the residual of A − B against a tolerance, and its text and JSON.
use std::path::PathBuf;

use serde::Serialize;

use super::fmt_db;
use super::{path_string, seconds};
use crate::meter::{LoudnessStats, finite_or_null};

/// Pass/fail limits on the residual, dBFS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerance {
    pub max_peak_dbfs: f64,
    pub max_rms_dbfs: f64,
}

impl Default for Tolerance {
    /// The whole-render parity contract: peak ≤ −100 dBFS, RMS ≤ −120 dBFS.
    fn default() -> Self {
        Tolerance { max_peak_dbfs: -100.0, max_rms_dbfs: -120.0 }
    }
}

/// Where the residual first went over the peak tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FirstOver {
    /// 0-based frame index.
    pub frame: u64,
    /// 0-based channel index.
    pub channel: usize,
    pub a: f32,
    pub b: f32,
    /// |a − b| in dBFS.
    pub delta_dbfs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    #[serde(serialize_with = "path_string")]
    pub a: PathBuf,
    #[serde(serialize_with = "path_string")]
    pub b: PathBuf,
    pub channels: usize,
    pub sample_rate: u32,
    pub frames: u64,
    pub tolerance: Tolerance,
    /// max |a − b| over every channel and frame, dBFS (-inf/null when identical).
    #[serde(serialize_with = "finite_or_null")]
    pub residual_peak_dbfs: f64,
    /// sqrt(mean (a − b)²) over every channel and frame, dBFS (-inf/null when identical).
    #[serde(serialize_with = "finite_or_null")]
    pub residual_rms_dbfs: f64,
    /// max |a − b| in LSBs of 16-bit PCM (1 LSB = 2^-15 of full scale).
    pub max_delta_lsb_16: f64,
    /// max |a − b| in LSBs of 24-bit PCM (1 LSB = 2^-23 of full scale).
    pub max_delta_lsb_24: f64,
    /// The first sample (frame order, then channel order) where |a − b| exceeds the peak tolerance.
    pub first_over: Option<FirstOver>,
    pub loudness_a: LoudnessStats,
    pub loudness_b: LoudnessStats,
    /// Integrated loudness of B minus that of A, LU (0 when both are silent).
    #[serde(serialize_with = "finite_or_null")]
    pub integrated_diff_lu: f64,
    /// True peak of B minus that of A, dB (0 when both are silent).
    #[serde(serialize_with = "finite_or_null")]
    pub true_peak_diff_db: f64,
    /// residual peak ≤ max_peak_dbfs and residual RMS ≤ max_rms_dbfs.
    pub passed: bool,
}

impl CompareReport {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("CompareReport serializes to JSON")
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("A: {}\nB: {}\n", self.a.display(), self.b.display()));
        out.push_str(&format!(
            "  {} ch, {} Hz, {} frames ({})\n",
            self.channels,
            self.sample_rate,
            self.frames,
            seconds(self.frames, self.sample_rate)
        ));
        let verdict = |v: f64, max: f64| if v <= max { "ok" } else { "OVER" };
        out.push_str(&format!(
            "  Residual peak        {:>9} dBFS  (max {:.1}: {})\n",
            fmt_db(self.residual_peak_dbfs, 1),
            self.tolerance.max_peak_dbfs,
            verdict(self.residual_peak_dbfs, self.tolerance.max_peak_dbfs)
        ));
        out.push_str(&format!(
            "  Residual RMS         {:>9} dBFS  (max {:.1}: {})\n",
            fmt_db(self.residual_rms_dbfs, 1),
            self.tolerance.max_rms_dbfs,
            verdict(self.residual_rms_dbfs, self.tolerance.max_rms_dbfs)
        ));
        out.push_str(&format!(
            "  Max |A-B|            {:>9.2} LSB at 16 bit, {:.2} LSB at 24 bit\n",
            self.max_delta_lsb_16, self.max_delta_lsb_24
        ));
        match &self.first_over {
            Some(f) => out.push_str(&format!(
                "  First over tolerance frame {} ({}), channel {}: A = {:.9}, B = {:.9}, |A-B| = {} dBFS\n",
                f.frame,
                seconds(f.frame, self.sample_rate),
                f.channel + 1,
                f.a,
                f.b,
                fmt_db(f.delta_dbfs, 1)
            )),
            None => out.push_str("  No sample over the peak tolerance\n"),
        }
        out.push_str(&format!(
            "  Integrated           A {} LUFS, B {} LUFS, B-A {} LU\n",
            fmt_db(self.loudness_a.integrated_lufs, 2),
            fmt_db(self.loudness_b.integrated_lufs, 2),
            fmt_db(self.integrated_diff_lu, 3)
        ));
        out.push_str(&format!(
            "  True peak            A {} dBTP, B {} dBTP, B-A {} dB\n",
            fmt_db(self.loudness_a.true_peak_dbtp, 2),
            fmt_db(self.loudness_b.true_peak_dbtp, 2),
            fmt_db(self.true_peak_diff_db, 3)
        ));
        out.push_str(if self.passed { "PASS\n" } else { "FAIL: residual over tolerance\n" });
        out
    }
}
