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
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

use super::{BLOCK, read_full, seconds};
use crate::cpu::loudness::{amplitude_db, fmt_db};
use crate::error::{Error, Result};
pub use crate::report::check::{CheckReport, FileSummary, Finding, FindingKind, NullResult, StemAlignment};
use crate::session::{Filter, Layout, Session};

/// A sample at or above this |x| counts toward a clipping run: 0.999 (−0.009 dBFS) rather than 1.0
/// so that clipping which was later scaled by a hair, or quantised to the top integer code
/// (32767/32768 = 0.99997), is still caught.
pub const CLIP_LEVEL: f32 = 0.999;
/// Consecutive samples at `CLIP_LEVEL` that make a clipping run. One or two full-scale samples
/// happen in legitimately peak-normalised material; three in a row do not (the usual rule of QC
/// tools and of ffmpeg's `astats` "flat factor").
pub const CLIP_RUN: usize = 3;
/// DC offset threshold on |mean| per channel, dBFS. −50 dBFS is 0.3 % of full scale: a real
/// converter or processing offset shows up above it, while an honest signal stays below it — the
/// mean of a file is not a high-pass, and a partial cycle of bass biases it by up to A/(π·f·T),
/// e.g. −49 dBFS for a full-scale 30 Hz tone cut off after 3 s, so a −60 dBFS threshold would
/// flag short bass stems that have no offset at all.
pub const DC_OFFSET_DBFS: f64 = -50.0;
/// A file whose sample peak stays below this is reported as silent (−90 dBFS is below 16-bit
/// dither: nothing audible is there).
pub const SILENCE_DBFS: f64 = -90.0;
/// The culprit search correlates at most this much audio, from where the mix first has signal.
pub const WINDOW_SECONDS: f64 = 30.0;
/// ... and at most this many frames (30 s above 69.9 kHz would otherwise grow the FFT past 2^22).
pub const WINDOW_MAX_FRAMES: usize = 1 << 21;
/// Largest offset searched, seconds (also at most half the window, so a peak has overlap to
/// stand on).
pub const MAX_LAG_SECONDS: f64 = 5.0;
/// A stem is "found" in the mix minus the other stems when its correlation peak stands this far
/// above the median |xcorr| over the searched lags. The normalised correlation itself is not a
/// good test: when another stem is also wrong, its error sits in every other stem's target and
/// pulls their correlation down (to 0.3 in the tests' two-fault case) although they are in place.
/// For a stem that is absent, |xcorr| is noise-like and its maximum over ~10^5 lags sits about
/// 4.5σ, i.e. ~7x the median (0.67σ); a present stem peaks at ~sqrt(N)·ρ times the noise (hundreds
/// on seconds of audio). 10 separates the two; strongly tonal material, whose correlation has no
/// single peak, reads as not found rather than as a wrong offset.
pub const MIN_PEAK_SIGNIFICANCE: f64 = 10.0;
/// ... and when its estimated gain in the mix is at least this (−20 dB): a stem found only at a
/// fraction of its level is as good as missing.
pub const MIN_FOUND_GAIN: f64 = 0.1;
/// A stem whose estimated gain in the mix differs from its session gain by more than this (dB) is
/// a gain mismatch. 0.5 dB is a deliberate move, far above estimation noise on seconds of audio.
pub const GAIN_TOLERANCE_DB: f64 = 0.5;
/// A file has "signal" from the first sample above this (for the analysis window's start).
const ACTIVE_LEVEL: f32 = 0.001; // −60 dBFS

/// Pass 1 result for one file.
#[derive(Debug, Clone)]
struct Scan {
    channels: usize,
    sample_rate: u32,
    frames: u64,
    /// Set when reading stopped on an error (NaN sample, truncation): the file's finding.
    read_error: Option<(FindingKind, String)>,
    peak: f32,
    mean: Vec<f64>,
    rms: f64,
    clip_runs: u64,
    clip_samples: u64,
    /// (frame, channel) where the first clipping run starts.
    first_clip: Option<(u64, usize)>,
    first_active: Option<u64>,
}

/// How an open error reads to the user: the reader's message says which (io's contract is "an
/// `Error::Input` naming the file"; the kind is told apart by its wording).
fn classify(err: &Error) -> FindingKind {
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
fn scan_file(path: &Path) -> Result<Scan> {
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

/// (source channel, bus channel, weight) for a stem of `channels` channels into `layout`, with the
/// stem's gain: the render's own routing (`plan::routes`, DESIGN.md DSP 3), in f64 for the null
/// test's sums. Empty when the stem cannot be routed (a layout mismatch).
pub fn routes(channels: usize, layout: Layout, gain_db: f64) -> Vec<(usize, usize, f64)> {
    crate::plan::routes(layout, channels, gain_db)
        .unwrap_or_default()
        .into_iter()
        .map(|(s, d, w)| (s, d, w as f64))
        .collect()
}

/// Per-file findings from pass 1 (content: non-finite, empty, clipping, DC, silence).
fn content_findings(stem: Option<&str>, path: &Path, scan: &Scan, findings: &mut Vec<Finding>) {
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

/// Passes 2 and 3: the null test and, when it fails, the per-stem alignment search.
/// Lengths of the mix and the stems that differ by more than this are a length problem first
/// (`null_test_run`): a few frames of bounce padding are not, a mix cut off seconds early is;
/// 100 ms sits between. (An offset stem is not a length problem: its file keeps its length.)
const LENGTH_SLACK_SECONDS: f64 = 0.1;

fn null_test_run(
    session: &Session,
    mix: &Path,
    mix_scan: &Scan,
    rate: u32,
    stems: &[NullStem],
    excluded: Vec<String>,
    findings: &mut Vec<Finding>,
) -> Result<NullResult> {
    let layout = session.layout;
    let bus = layout.channels();
    let threshold = session.check.null_threshold_db;

    // The residual window kept for pass 3: from where the mix first has signal (leaders, count-ins
    // and 2-pops of silence carry no alignment information).
    let total = stems.iter().map(|s| s.frames).max().unwrap_or(0).max(mix_scan.frames);
    let window_start = mix_scan.first_active.unwrap_or(0);
    let window_len = ((WINDOW_SECONDS * rate as f64) as u64)
        .min(WINDOW_MAX_FRAMES as u64)
        .min(total.saturating_sub(window_start)) as usize;
    let mut window = vec![vec![0.0f32; window_len]; bus];

    let mut mix_reader = crate::io::open(mix)?;
    let mut readers = Vec::with_capacity(stems.len());
    for s in stems {
        readers.push(crate::io::open(&s.path)?);
    }
    let max_ch = readers.iter().map(|r| r.info().channels).max().unwrap_or(0).max(bus);
    let mut mix_buf = vec![vec![0.0f32; BLOCK]; bus];
    let mut scratch = vec![vec![0.0f32; BLOCK]; max_ch];
    let mut stem_bufs: Vec<Vec<Vec<f32>>> =
        readers.iter().map(|r| vec![vec![0.0f32; BLOCK]; r.info().channels]).collect();
    let mut sum = vec![vec![0.0f64; BLOCK]; bus];
    let (mut res_energy, mut mix_energy, mut res_peak) = (0.0f64, 0.0f64, 0.0f64);
    let mut frame0 = 0u64;
    while frame0 < total {
        let want = BLOCK.min((total - frame0) as usize);
        let nm = read_full(mix_reader.as_mut(), &mut mix_buf, &mut scratch[..bus], want)?;
        for c in &mut mix_buf {
            c[nm..want].fill(0.0);
        }
        for c in &mut sum {
            c[..want].fill(0.0);
        }
        for ((stem, reader), buf) in stems.iter().zip(readers.iter_mut()).zip(stem_bufs.iter_mut()) {
            let nch = buf.len();
            let ns = read_full(reader.as_mut(), buf, &mut scratch[..nch], want)?;
            for &(src, dst, w) in &stem.routes {
                for (acc, &x) in sum[dst][..ns].iter_mut().zip(&buf[src][..ns]) {
                    *acc += w * x as f64;
                }
            }
        }
        for ch in 0..bus {
            for i in 0..want {
                let m = mix_buf[ch][i] as f64;
                let r = m - sum[ch][i];
                res_energy += r * r;
                mix_energy += m * m;
                res_peak = res_peak.max(r.abs());
            }
            // Keep the part of this block that falls in the analysis window.
            let (b0, b1) = (frame0, frame0 + want as u64);
            let (w0, w1) = (window_start, window_start + window_len as u64);
            let (lo, hi) = (b0.max(w0), b1.min(w1));
            for f in lo..hi {
                let i = (f - b0) as usize;
                window[ch][(f - w0) as usize] = (mix_buf[ch][i] as f64 - sum[ch][i]) as f32;
            }
        }
        frame0 += want as u64;
    }
    let rel_db = if res_energy == 0.0 {
        f64::NEG_INFINITY
    } else if mix_energy == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (res_energy / mix_energy).log10()
    };
    let passed = rel_db <= threshold;

    let method = "sum of the stems as delivered, with mute and mono routing (mono to L/R at -3 dB on \
                  stereo, to C on 5.1/7.1); gain_db and EQ are mastering moves and are not applied"
        .to_string();

    let mut alignment = Vec::new();
    // A mix whose length differs from the stems' by more than a little (a truncated bounce, the
    // wrong file) nulls against silence where one of them has ended: that residual is no stem's
    // gain or offset, and the alignment search would only invent some. Say the lengths first.
    let stems_frames = stems.iter().map(|s| s.frames).max().unwrap_or(0);
    let length_gap = stems_frames.abs_diff(mix_scan.frames);
    let lengths_differ = length_gap as f64 > LENGTH_SLACK_SECONDS * rate as f64;
    if !passed && lengths_differ {
        let (longer, shorter) = if mix_scan.frames < stems_frames { ("stems", "mix") } else { ("mix", "stems") };
        let mut f = Finding::new(
            None,
            Some(mix),
            FindingKind::NullFailed,
            format!(
                "null test failed: the lengths differ: the reference mix is {} frames ({}) and the longest stem {} \
                 frames ({}), so the {longer} run {length_gap} frames ({}) past the {shorter}; the residual {} dB \
                 relative to the mix (threshold {threshold:.1} dB) is that difference, not a stem's gain or offset \
                 (a truncated or wrong reference mix?)",
                mix_scan.frames,
                seconds(mix_scan.frames, rate),
                stems_frames,
                seconds(stems_frames, rate),
                seconds(length_gap, rate),
                fmt_db(rel_db, 1)
            ),
        );
        f.level_db = Some(rel_db);
        f.frames = Some(stems_frames);
        f.expected_frames = Some(mix_scan.frames);
        findings.push(f);
    } else if !passed {
        alignment = align_stems(session, stems, &window, window_start, rate, mix_scan.frames)?;
        let mut causes = Vec::new();
        for a in &alignment {
            let stem = stems.iter().find(|s| s.name == a.stem).expect("aligned stems come from the null set");
            let name = &a.stem;
            let eq = if a.has_eq { " (it has EQ, which the null test does not apply)" } else { "" };
            if a.frames_short != 0 {
                let (d, how) =
                    if a.frames_short > 0 { (a.frames_short, "shorter") } else { (-a.frames_short, "longer") };
                causes.push(format!("stem `{name}` is {d} frames {how} than the mix"));
            }
            if !a.analysed {
                continue;
            }
            if !a.found {
                let mut f = Finding::new(
                    Some(name),
                    Some(&stem.path),
                    FindingKind::Uncorrelated,
                    format!(
                        "stem `{name}` is not found in the mix minus the other stems (correlation peak {:.1}x the \
                         background, gain {} dB, in the analysis window): it may be missing from the mix, a \
                         different take, heavily processed, or too tonal to align{eq}",
                        a.peak_significance,
                        fmt_db(a.gain_db, 1)
                    ),
                );
                f.correlation = Some(a.correlation);
                causes.push(format!("stem `{name}` is not found in the mix"));
                findings.push(f);
                continue;
            }
            if a.offset_samples != 0 {
                let (d, how) =
                    if a.offset_samples > 0 { (a.offset_samples, "late") } else { (-a.offset_samples, "early") };
                let msg = format!(
                    "stem `{name}` is {d} samples ({:.3} ms) {how} relative to the mix{eq}",
                    d as f64 * 1000.0 / rate as f64
                );
                let mut f = Finding::new(Some(name), Some(&stem.path), FindingKind::Offset, msg.clone());
                f.offset_samples = Some(a.offset_samples);
                f.correlation = Some(a.correlation);
                causes.push(msg);
                findings.push(f);
            }
            if a.polarity_inverted {
                let msg = format!("stem `{name}` is polarity-inverted relative to the mix{eq}");
                let mut f = Finding::new(Some(name), Some(&stem.path), FindingKind::PolarityInverted, msg.clone());
                f.correlation = Some(a.correlation);
                causes.push(msg);
                findings.push(f);
            }
            if a.gain_db.is_finite() && a.gain_db.abs() > GAIN_TOLERANCE_DB {
                let msg = format!(
                    "stem `{name}` sits {:.2} dB {} in the mix than as delivered",
                    a.gain_db.abs(),
                    if a.gain_db > 0.0 { "louder" } else { "quieter" }
                );
                let mut f = Finding::new(Some(name), Some(&stem.path), FindingKind::GainMismatch, msg.clone());
                f.level_db = Some(a.gain_db);
                f.correlation = Some(a.correlation);
                causes.push(msg);
                findings.push(f);
            }
        }
        if !excluded.is_empty() {
            causes.push(format!("stems left out of the sum: {}", excluded.join(", ")));
        }
        let causes = if causes.is_empty() {
            "no single stem explains it".to_string()
        } else {
            format!("likely cause: {}", causes.join("; "))
        };
        let mut f = Finding::new(
            None,
            Some(mix),
            FindingKind::NullFailed,
            format!(
                "null test failed: the stem sum leaves a residual {} dB relative to the reference mix \
                 (threshold {threshold:.1} dB); {causes}",
                fmt_db(rel_db, 1)
            ),
        );
        f.level_db = Some(rel_db);
        findings.push(f);
    }

    Ok(NullResult {
        residual_db_rel_mix: rel_db,
        residual_peak_dbfs: amplitude_db(res_peak),
        threshold_db: threshold,
        passed,
        stems_summed: stems.iter().map(|s| s.name.clone()).collect(),
        stems_excluded: excluded,
        method,
        alignment,
        window_start_frame: window_start,
        window_frames: window_len as u64,
    })
}

/// Pass 3: for each stem, cross-correlate its routed contribution c with the mix minus the other
/// stems, t = residual + c, over the analysis window; xcorr[k] = Σ_n t[n]·c[n+k] (summed over the
/// bus channels the stem feeds) peaks at k = d when the stem file is the mix's copy delayed by d
/// frames, so a positive lag means the stem is late. Computed as IFFT(conj(T)·C), zero-padded to at
/// least window + max lag so the searched lags do not wrap.
fn align_stems(
    session: &Session,
    stems: &[NullStem],
    residual: &[Vec<f32>],
    start: u64,
    rate: u32,
    mix_frames: u64,
) -> Result<Vec<StemAlignment>> {
    let w = residual.first().map_or(0, |c| c.len());
    let max_lag = ((MAX_LAG_SECONDS * rate as f64) as usize).min(w / 2);
    let fft_len = (w + max_lag + 1).next_power_of_two().max(2);
    let mut planner = RealFftPlanner::<f32>::new();
    let fwd = planner.plan_fft_forward(fft_len);
    let inv = planner.plan_fft_inverse(fft_len);
    let mut tbuf = fwd.make_input_vec();
    let mut cbuf = fwd.make_input_vec();
    let mut tspec = fwd.make_output_vec();
    let mut cspec = fwd.make_output_vec();
    let mut acc = fwd.make_output_vec();
    let mut xcorr = inv.make_output_vec();
    let mut scratch_f = fwd.make_scratch_vec();
    let mut scratch_i = inv.make_scratch_vec();
    let mut magnitudes = Vec::with_capacity(2 * max_lag + 1);

    let mut out = Vec::new();
    for stem in stems {
        let frames_short = mix_frames as i64 - stem.frames as i64;
        let has_eq = stem.has_eq || session.bus_filter != Filter::None;
        let samples = read_window(&stem.path, start, w)?;
        // Where the stem has signal in the window: a lag that slides it (mostly) off the window
        // compares it with nothing, and FFT rounding there is not background.
        let routed = |n: usize| stem.routes.iter().any(|&(src, _, _)| samples[src][n] != 0.0);
        let first_nz = (0..w).find(|&n| routed(n)).unwrap_or(0) as i64;
        let last_nz = (0..w).rev().find(|&n| routed(n)).unwrap_or(0) as i64;
        let span = last_nz - first_nz + 1;
        acc.iter_mut().for_each(|z| *z = Complex::new(0.0, 0.0));
        let (mut et, mut ec) = (0.0f64, 0.0f64);
        let mut dsts: Vec<usize> = stem.routes.iter().map(|r| r.1).collect();
        dsts.dedup();
        for &dst in &dsts {
            cbuf.fill(0.0);
            for &(src, d, g) in &stem.routes {
                if d == dst {
                    for (o, &x) in cbuf[..w].iter_mut().zip(&samples[src]) {
                        *o += (g * x as f64) as f32;
                    }
                }
            }
            tbuf.fill(0.0);
            for ((t, &r), &c) in tbuf[..w].iter_mut().zip(&residual[dst]).zip(&cbuf[..w]) {
                *t = r + c;
            }
            et += tbuf[..w].iter().map(|&x| x as f64 * x as f64).sum::<f64>();
            ec += cbuf[..w].iter().map(|&x| x as f64 * x as f64).sum::<f64>();
            fwd.process_with_scratch(&mut tbuf, &mut tspec, &mut scratch_f)
                .map_err(|e| Error::Internal(format!("alignment FFT: {e}")))?;
            fwd.process_with_scratch(&mut cbuf, &mut cspec, &mut scratch_f)
                .map_err(|e| Error::Internal(format!("alignment FFT: {e}")))?;
            for ((a, t), c) in acc.iter_mut().zip(&tspec).zip(&cspec) {
                *a += t.conj() * c;
            }
        }
        if et == 0.0 || ec == 0.0 {
            out.push(StemAlignment {
                stem: stem.name.clone(),
                analysed: false,
                offset_samples: 0,
                polarity_inverted: false,
                correlation: 0.0,
                peak_significance: 0.0,
                found: false,
                gain_db: f64::NAN,
                frames_short,
                has_eq,
            });
            continue;
        }
        // DC and Nyquist bins of a real signal's spectrum are real; rounding must not say otherwise.
        if let Some(z) = acc.first_mut() {
            z.im = 0.0;
        }
        if let Some(z) = acc.last_mut() {
            z.im = 0.0;
        }
        inv.process_with_scratch(&mut acc, &mut xcorr, &mut scratch_i)
            .map_err(|e| Error::Internal(format!("alignment IFFT: {e}")))?;
        let mut best = (0i64, 0.0f32);
        magnitudes.clear();
        for k in -(max_lag as i64)..=(max_lag as i64) {
            let idx = if k >= 0 { k as usize } else { fft_len - (-k) as usize };
            // xcorr[k] pairs target frame n with stem frame n + k: the stem's active frames
            // [first_nz, last_nz] meet the window's [k, w + k) over this many frames. Only lags
            // with at least half the active span in the window count (for a full-length stem that
            // is every lag up to w/2 = the largest searched).
            let overlap = (last_nz + 1).min(w as i64 + k) - first_nz.max(k);
            if 2 * overlap < span {
                continue;
            }
            let v = xcorr[idx];
            magnitudes.push(v.abs());
            if v.abs() > best.1.abs() {
                best = (k, v);
            }
        }
        let median = if magnitudes.is_empty() {
            0.0
        } else {
            let mid = magnitudes.len() / 2;
            *magnitudes.select_nth_unstable_by(mid, f32::total_cmp).1 as f64
        };
        let peak_significance = if median > 0.0 { best.1.abs() as f64 / median } else { f64::INFINITY };
        // The unnormalised inverse FFT scales by fft_len.
        let peak = best.1 as f64 / fft_len as f64;
        let correlation = peak / (et * ec).sqrt();
        let gain = peak.abs() / ec;
        out.push(StemAlignment {
            stem: stem.name.clone(),
            analysed: true,
            offset_samples: best.0,
            polarity_inverted: peak < 0.0,
            correlation,
            peak_significance,
            found: peak_significance >= MIN_PEAK_SIGNIFICANCE && gain >= MIN_FOUND_GAIN,
            gain_db: amplitude_db(gain),
            frames_short,
            has_eq,
        });
    }
    Ok(out)
}

/// Frames [start, start + len) of a file, zero-padded past its end; the frames before are read and
/// dropped (the readers stream, they do not seek).
fn read_window(path: &Path, start: u64, len: usize) -> Result<Vec<Vec<f32>>> {
    let mut reader = crate::io::open(path)?;
    let ch = reader.info().channels;
    let mut buf = vec![vec![0.0f32; BLOCK]; ch];
    let mut scratch = vec![vec![0.0f32; BLOCK]; ch];
    let mut skip = start;
    while skip > 0 {
        let n = read_full(reader.as_mut(), &mut buf, &mut scratch, BLOCK.min(skip as usize))?;
        if n == 0 {
            break;
        }
        skip -= n as u64;
    }
    let mut out = vec![vec![0.0f32; len]; ch];
    let mut at = 0;
    while at < len {
        let n = read_full(reader.as_mut(), &mut buf, &mut scratch, BLOCK.min(len - at))?;
        if n == 0 {
            break;
        }
        for (o, b) in out.iter_mut().zip(&buf) {
            o[at..at + n].copy_from_slice(&b[..n]);
        }
        at += n;
    }
    Ok(out)
}
