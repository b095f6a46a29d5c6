//! `check`'s pass 2: the stems' sum streamed against the reference mix (the residual's energy and
//! one bounded window of it); when it fails, the lengths, or else the alignment search's causes,
//! as findings.
use std::path::Path;

use super::NullStem;
use super::align::align_stems;
use super::scan::Scan;
use crate::analysis::{BLOCK, read_full, seconds};
use crate::error::Result;
use crate::meter::amplitude_db;
use crate::report::check::{Finding, FindingKind, NullResult};
use crate::report::fmt_db;
use crate::session::Session;

/// The culprit search correlates at most this much audio, from where the mix first has signal.
pub const WINDOW_SECONDS: f64 = 30.0;
/// ... and at most this many frames (30 s above 69.9 kHz would otherwise grow the FFT past 2^22).
pub const WINDOW_MAX_FRAMES: usize = 1 << 21;
/// A stem whose estimated gain in the mix differs from its session gain by more than this (dB) is
/// a gain mismatch. 0.5 dB is a deliberate move, far above estimation noise on seconds of audio.
pub const GAIN_TOLERANCE_DB: f64 = 0.5;
/// Lengths of the mix and the stems that differ by more than this are a length problem first
/// (`null_test_run`): a few frames of bounce padding are not, a mix cut off seconds early is;
/// 100 ms sits between. (An offset stem is not a length problem: its file keeps its length.)
const LENGTH_SLACK_SECONDS: f64 = 0.1;

/// Passes 2 and 3: the null test and, when it fails, the per-stem alignment search.
pub(super) fn null_test_run(
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
