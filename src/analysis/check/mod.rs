//! `stemforge check SESSION`: validate the stems (rate, layout, length, content) and null their sum
//! against the reference mix, naming the stem at fault when the null fails.
//!
//! Three streamed passes, memory bounded whatever the program length:
//! 1. each file (stems and mix, in parallel) is scanned block by block: peak, mean, RMS, clipping
//!    runs, first active frame;
//! 2. the null test streams the mix and every usable unmuted stem together and accumulates the
//!    residual energy, keeping one bounded window of the residual (at most `WINDOW_SECONDS`);
//! 3. only when the null fails: each stem's window is re-read and cross-correlated (FFT) with
//!    "mix minus the other stems" to estimate its offset, polarity and gain.
//!
//! Input problems in the stems are findings, not errors, so that one report lists them all.
//!
//! This file is the driver (`check`: the per-file findings, which stems the null sums); the passes
//! are `scan` (1), `null` (2, and the findings of 3) and `align` (3). The report they fill is
//! `report::check`'s.
mod align;
mod null;
mod scan;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::seconds;
use crate::error::Result;
use crate::meter::amplitude_db;
use crate::model::{Filter, Layout};
use crate::report::check::{CheckReport, FileSummary, Finding, FindingKind};
use crate::session::Session;
pub use align::{MAX_LAG_SECONDS, MIN_FOUND_GAIN, MIN_PEAK_SIGNIFICANCE};
use null::null_test_run;
pub use null::{GAIN_TOLERANCE_DB, WINDOW_MAX_FRAMES, WINDOW_SECONDS};
pub use scan::{CLIP_LEVEL, CLIP_RUN, DC_OFFSET_DBFS, SILENCE_DBFS};
use scan::{Scan, classify, content_findings, scan_file};

/// (source channel, bus channel, weight) for a stem of `channels` channels into `layout`, with the
/// stem's gain: the render's own routing (`plan::routes`, DESIGN.md DSP 3), in f64 for the null
/// test's sums. Empty when the stem cannot be routed (a layout mismatch).
pub fn routes(channels: usize, layout: Layout, gain_db: f64) -> Vec<(usize, usize, f64)> {
    crate::pipeline::plan::routes(layout, channels, gain_db)
        .unwrap_or_default()
        .into_iter()
        .map(|(s, d, w)| (s, d, w as f64))
        .collect()
}

/// One stem as the null test sees it.
struct NullStem {
    name: String,
    path: PathBuf,
    frames: u64,
    routes: Vec<(usize, usize, f64)>,
    has_eq: bool,
}

/// Validate the session's stems and null their sum against the reference mix.
pub fn check(session: &Session) -> Result<CheckReport> {
    let layout = session.layout;
    let bus = layout.channels();
    let mut findings = Vec::new();
    let mut notes = Vec::new();

    // Pass 1: every file on its own, in parallel (each streams its own blocks).
    let mut paths: Vec<&Path> = session.stems.iter().map(|s| s.path.as_path()).collect();
    if let Some(mix) = &session.reference_mix {
        paths.push(mix);
    }
    let scans: Vec<Result<Scan>> = paths.par_iter().map(|p| scan_file(p)).collect();
    let (stem_scans, mix_scan) = scans.split_at(session.stems.len());
    let mix_scan = mix_scan.first();

    // Program sample rate: the stems' majority; a tie goes to the rate seen first.
    let mut rates: Vec<(u32, usize)> = Vec::new();
    for s in stem_scans.iter().flatten() {
        match rates.iter_mut().find(|(r, _)| *r == s.sample_rate) {
            Some((_, n)) => *n += 1,
            None => rates.push((s.sample_rate, 1)),
        }
    }
    let program_rate = rates.iter().fold(None::<(u32, usize)>, |best, &(r, n)| match best {
        Some((_, bn)) if bn >= n => best,
        _ => Some((r, n)),
    });
    let program_rate = program_rate.map(|(r, _)| r);
    let at_rate = |s: &Scan| program_rate.is_none_or(|r| r == s.sample_rate);
    let longest = stem_scans.iter().flatten().filter(|s| at_rate(s)).map(|s| s.frames).max().unwrap_or(0);
    let longest_name = session
        .stems
        .iter()
        .zip(stem_scans)
        .find(|(_, s)| s.as_ref().is_ok_and(|s| at_rate(s) && s.frames == longest))
        .map(|(st, _)| st.name.clone());

    let mut files = Vec::new();
    let summary = |stem: Option<&str>, path: &Path, muted: bool, scan: &Result<Scan>| match scan {
        Ok(s) => FileSummary {
            stem: stem.map(str::to_string),
            path: path.to_path_buf(),
            muted,
            channels: Some(s.channels),
            sample_rate: Some(s.sample_rate),
            frames: Some(s.frames),
            peak_dbfs: Some(amplitude_db(s.peak as f64)),
            rms_dbfs: Some(amplitude_db(s.rms)),
        },
        Err(_) => FileSummary {
            stem: stem.map(str::to_string),
            path: path.to_path_buf(),
            muted,
            channels: None,
            sample_rate: None,
            frames: None,
            peak_dbfs: None,
            rms_dbfs: None,
        },
    };

    // The reference length: the mix when it can be read (the stems must cover it), else the
    // longest stem (DESIGN.md DSP 1: the program is the longest stem, shorter ones are padded).
    // Frame counts at another rate are not comparable: a mix or stem at the wrong rate gets a rate
    // finding, not a length finding.
    let mix_frames = mix_scan.and_then(|s| s.as_ref().ok()).filter(|s| s.frames > 0 && at_rate(s)).map(|s| s.frames);
    let (ref_frames, ref_what) = match mix_frames {
        Some(f) => (f, "the reference mix".to_string()),
        None => (
            longest,
            match &longest_name {
                Some(n) => format!("the longest stem `{n}`"),
                None => "the longest stem".to_string(),
            },
        ),
    };

    let mut null_stems = Vec::new();
    let mut excluded = Vec::new();
    for (stem, scan) in session.stems.iter().zip(stem_scans) {
        files.push(summary(Some(&stem.name), &stem.path, stem.mute, scan));
        let name = stem.name.as_str();
        let path = stem.path.as_path();
        let scan = match scan {
            Ok(s) => s,
            Err(e) => {
                let kind = classify(e);
                findings.push(Finding::new(Some(name), Some(path), kind, format!("stem `{name}`: {e}")));
                if !stem.mute {
                    excluded.push(format!("`{name}` (cannot be read)"));
                }
                continue;
            }
        };
        let mut usable = scan.read_error.is_none() && scan.frames > 0;
        content_findings(Some(name), path, scan, &mut findings);
        if let Some(rate) = program_rate
            && scan.sample_rate != rate
        {
            let mut f = Finding::new(
                Some(name),
                Some(path),
                FindingKind::SampleRateMismatch,
                format!(
                    "stem `{name}` ({}): sample rate {} Hz, but the session's other stems are {rate} Hz",
                    path.display(),
                    scan.sample_rate
                ),
            );
            f.sample_rate = Some(scan.sample_rate);
            findings.push(f);
            usable = false;
        }
        if scan.channels != 1 && scan.channels != bus {
            let mut f = Finding::new(
                Some(name),
                Some(path),
                FindingKind::LayoutMismatch,
                format!(
                    "stem `{name}` ({}): {} channels, but the bus is {} ({bus} channels): a stem must be mono or match the bus",
                    path.display(),
                    scan.channels,
                    layout.name()
                ),
            );
            f.channels = Some(scan.channels);
            findings.push(f);
            usable = false;
        }
        if scan.frames > 0 && scan.frames != ref_frames && scan.read_error.is_none() && at_rate(scan) {
            let (d, how) = if scan.frames < ref_frames {
                (ref_frames - scan.frames, "shorter")
            } else {
                (scan.frames - ref_frames, "longer")
            };
            let rate = scan.sample_rate;
            let mut f = Finding::new(
                Some(name),
                Some(path),
                FindingKind::LengthMismatch,
                format!(
                    "stem `{name}` is {d} frames ({}) {how} than {ref_what}: {} frames against {ref_frames}",
                    seconds(d, rate),
                    scan.frames
                ),
            );
            f.frames = Some(scan.frames);
            f.expected_frames = Some(ref_frames);
            findings.push(f);
        }
        if stem.mute {
            continue;
        }
        if usable {
            null_stems.push(NullStem {
                name: name.to_string(),
                path: path.to_path_buf(),
                frames: scan.frames,
                // The approved mix is the sum of the stems as delivered: gain_db and EQ are mastering
                // moves made after it, so the null uses routing (and mute) only.
                routes: routes(scan.channels, layout, 0.0),
                has_eq: stem.filter != Filter::None,
            });
        } else {
            excluded.push(format!("`{name}` (see its findings)"));
        }
    }

    // The reference mix on its own.
    let mut mix_ok = None;
    match (&session.reference_mix, mix_scan) {
        (Some(mix), Some(scan)) => {
            files.push(summary(None, mix, false, scan));
            match scan {
                Err(e) => {
                    let kind = classify(e);
                    findings.push(Finding::new(None, Some(mix), kind, format!("reference mix: {e}")));
                }
                Ok(s) => {
                    content_findings(None, mix, s, &mut findings);
                    let mut ok = s.read_error.is_none() && s.frames > 0;
                    if let Some(rate) = program_rate
                        && s.sample_rate != rate
                    {
                        let mut f = Finding::new(
                            None,
                            Some(mix),
                            FindingKind::SampleRateMismatch,
                            format!(
                                "reference mix {}: sample rate {} Hz, but the stems are {rate} Hz",
                                mix.display(),
                                s.sample_rate
                            ),
                        );
                        f.sample_rate = Some(s.sample_rate);
                        findings.push(f);
                        ok = false;
                    }
                    if s.channels != bus {
                        let mut f = Finding::new(
                            None,
                            Some(mix),
                            FindingKind::LayoutMismatch,
                            format!(
                                "reference mix {}: {} channels, but the session's layout is {} ({bus} channels)",
                                mix.display(),
                                s.channels,
                                layout.name()
                            ),
                        );
                        f.channels = Some(s.channels);
                        findings.push(f);
                        ok = false;
                    }
                    if ok {
                        mix_ok = Some((mix.clone(), s.clone()));
                    }
                }
            }
        }
        _ => notes.push("no reference_mix in the session: null test not run".to_string()),
    }

    let mut null_test = None;
    match (mix_ok, program_rate) {
        (Some((mix, mix_scan)), Some(rate)) if !null_stems.is_empty() => {
            let nr = null_test_run(session, &mix, &mix_scan, rate, &null_stems, excluded, &mut findings)?;
            null_test = Some(nr);
        }
        (Some(_), _) => notes.push("null test not run: no unmuted stem could be summed".to_string()),
        (None, _) if session.reference_mix.is_some() => {
            notes.push("null test not run: the reference mix cannot be used (see its findings)".to_string())
        }
        _ => {}
    }

    let passed = findings.is_empty();
    Ok(CheckReport {
        session: session.name.clone(),
        layout: layout.name().to_string(),
        sample_rate: program_rate,
        frames: longest,
        files,
        findings,
        null_test,
        notes,
        passed,
    })
}
