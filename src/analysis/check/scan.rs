//! `check`'s pass 1: each file scanned on its own (peak, mean, RMS, clipping runs, first active
//! frame), and the content findings that scan gives (unreadable, empty, clipping, silence, DC).
use std::path::Path;

use crate::analysis::{BLOCK, seconds};
use crate::error::{Error, Result};
use crate::meter::amplitude_db;
use crate::report::check::{Finding, FindingKind};
use crate::report::fmt_db;

pub use crate::model::content::{CLIP_LEVEL, CLIP_RUN, DC_OFFSET_DBFS, SILENCE_DBFS};
/// A file has "signal" from the first sample above this (for the analysis window's start).
const ACTIVE_LEVEL: f32 = 0.001; // −60 dBFS

/// Pass 1 result for one file.
#[derive(Debug, Clone)]
pub(super) struct Scan {
    pub(super) channels: usize,
    pub(super) sample_rate: u32,
    pub(super) frames: u64,
    /// Set when reading stopped on an error (NaN sample, truncation): the file's finding.
    pub(super) read_error: Option<(FindingKind, String)>,
    pub(super) peak: f32,
    pub(super) mean: Vec<f64>,
    pub(super) rms: f64,
    pub(super) clip_runs: u64,
    pub(super) clip_samples: u64,
    /// (frame, channel) where the first clipping run starts.
    pub(super) first_clip: Option<(u64, usize)>,
    pub(super) first_active: Option<u64>,
}

/// How an open error reads to the user: the reader's message says which (io's contract is "an
/// `Error::Input` naming the file"; the kind is told apart by its wording).
pub(super) fn classify(err: &Error) -> FindingKind {
    let msg = err.to_string();
    if msg.contains("0 frames") || msg.contains("0 bytes") {
        FindingKind::Empty
    } else if msg.contains("NaN") || msg.contains("Inf") {
        FindingKind::NonFinite
    } else {
        FindingKind::Unreadable
    }
}

/// Pass 1: stream one file and collect its statistics. Err only when it cannot be opened.
pub(super) fn scan_file(path: &Path) -> Result<Scan> {
    let mut reader = crate::io::open(path)?;
    let info = reader.info().clone();
    let ch = info.channels;
    let mut buf = vec![vec![0.0f32; BLOCK]; ch];
    let mut scan = Scan {
        channels: ch,
        sample_rate: info.sample_rate,
        frames: 0,
        read_error: None,
        peak: 0.0,
        mean: vec![0.0; ch],
        rms: 0.0,
        clip_runs: 0,
        clip_samples: 0,
        first_clip: None,
        first_active: None,
    };
    let mut sum = vec![0.0f64; ch];
    let mut sum_sq = 0.0f64;
    // Clipping runs carry across blocks: (current run length, frame it started) per channel.
    let mut run = vec![(0usize, 0u64); ch];
    loop {
        let n = match reader.read_planar(&mut buf, BLOCK) {
            Ok(n) => n,
            Err(e) => {
                scan.read_error = Some((classify(&e), e.to_string()));
                break;
            }
        };
        if n == 0 {
            break;
        }
        let f0 = scan.frames;
        for c in 0..ch {
            let x = &buf[c][..n];
            let (mut s, mut sq) = (0.0f64, 0.0f64);
            for (i, &v) in x.iter().enumerate() {
                let a = v.abs();
                s += v as f64;
                sq += v as f64 * v as f64;
                if a > scan.peak {
                    scan.peak = a;
                }
                if a > ACTIVE_LEVEL && scan.first_active.is_none_or(|f| f0 + (i as u64) < f) {
                    scan.first_active = Some(f0 + i as u64);
                }
                let r = &mut run[c];
                if a >= CLIP_LEVEL {
                    if r.0 == 0 {
                        r.1 = f0 + i as u64;
                    }
                    r.0 += 1;
                    if r.0 == CLIP_RUN {
                        scan.clip_runs += 1;
                        scan.clip_samples += CLIP_RUN as u64;
                        if scan.first_clip.is_none_or(|(f, cc)| r.1 < f || (r.1 == f && c < cc)) {
                            scan.first_clip = Some((r.1, c));
                        }
                    } else if r.0 > CLIP_RUN {
                        scan.clip_samples += 1;
                    }
                } else {
                    r.0 = 0;
                }
            }
            sum[c] += s;
            sum_sq += sq;
        }
        scan.frames += n as u64;
    }
    if scan.frames > 0 {
        let n = scan.frames as f64;
        for (m, s) in scan.mean.iter_mut().zip(&sum) {
            *m = s / n;
        }
        scan.rms = (sum_sq / (n * ch as f64)).sqrt();
    }
    Ok(scan)
}

/// Per-file findings from pass 1 (content: non-finite, empty, clipping, DC, silence).
pub(super) fn content_findings(stem: Option<&str>, path: &Path, scan: &Scan, findings: &mut Vec<Finding>) {
    let who = match stem {
        Some(s) => format!("stem `{s}` ({})", path.display()),
        None => format!("reference mix {}", path.display()),
    };
    if let Some((kind, e)) = &scan.read_error {
        findings.push(Finding::new(stem, Some(path), *kind, format!("{who}: {e}")));
    }
    if scan.frames == 0 {
        if scan.read_error.is_none() {
            findings.push(Finding::new(
                stem,
                Some(path),
                FindingKind::Empty,
                format!("{who} contains no audio (0 frames)"),
            ));
        }
        return;
    }
    let rate = scan.sample_rate;
    if scan.clip_runs > 0 {
        let (frame, channel) = scan.first_clip.unwrap_or((0, 0));
        let mut f = Finding::new(
            stem,
            Some(path),
            FindingKind::Clipping,
            format!(
                "{who} clips: {} run(s) of {CLIP_RUN} or more consecutive samples at or above {CLIP_LEVEL} of full scale \
                 ({} samples), the first at frame {frame} ({}), channel {}",
                scan.clip_runs,
                scan.clip_samples,
                seconds(frame, rate),
                channel + 1
            ),
        );
        f.count = Some(scan.clip_runs);
        f.frame = Some(frame);
        f.channel = Some(channel);
        findings.push(f);
    }
    let peak_db = amplitude_db(scan.peak as f64);
    if peak_db < SILENCE_DBFS {
        let what =
            if scan.peak == 0.0 { "is all zeros".to_string() } else { format!("peaks at {} dBFS", fmt_db(peak_db, 1)) };
        let mut f = Finding::new(
            stem,
            Some(path),
            FindingKind::Silence,
            format!("{who} is silent: it {what} (below {SILENCE_DBFS} dBFS)"),
        );
        f.level_db = Some(peak_db);
        findings.push(f);
        return;
    }
    if let Some((c, m)) = scan.mean.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        && amplitude_db(m.abs()) > DC_OFFSET_DBFS
    {
        let db = amplitude_db(m.abs());
        let mut f = Finding::new(
            stem,
            Some(path),
            FindingKind::DcOffset,
            format!(
                "{who} has a DC offset: channel {} averages {m:+.6} ({} dBFS, above the {DC_OFFSET_DBFS} dBFS threshold)",
                c + 1,
                fmt_db(db, 1)
            ),
        );
        f.channel = Some(c);
        f.level_db = Some(db);
        findings.push(f);
    }
}
