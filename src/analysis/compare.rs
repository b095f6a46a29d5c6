//! `stemforge compare A B`: the null residual of two files (A − B), streamed, against a tolerance.
//!
//! This is the render parity contract's meter (DESIGN.md "Parity contract": a whole render,
//! residual peak ≤ −100 dBFS and RMS ≤ −120 dBFS), so the defaults are those figures. A failed
//! comparison is a report with `passed == false`, not an error: the CLI maps it to exit 1.
use std::path::Path;

use super::{BLOCK, read_full, seconds};
use crate::error::{Error, Result};
use crate::meter::{LoudnessMeter, amplitude_db};
use crate::model::Layout;
use crate::report::compare::{CompareReport, FirstOver, Tolerance};

/// A meter that cannot take a file's format is that file's input error.
fn rewrap(e: Error, path: &Path) -> Error {
    match e {
        Error::Usage(msg) => Error::input(path, msg),
        other => other,
    }
}

/// b − a for two levels that may both be -inf (identical silence reads 0, not NaN).
fn level_diff(a: f64, b: f64) -> f64 {
    if a == b { 0.0 } else { b - a }
}

/// Compare two files sample by sample, streamed in blocks (memory does not grow with length).
/// Different frame counts, channel counts or sample rates are an `Error::Input` naming both files
/// and both values: such files cannot be nulled, whatever the tolerance.
pub fn compare(a: &Path, b: &Path, tol: Tolerance) -> Result<CompareReport> {
    let mut ra = crate::io::open(a)?;
    let mut rb = crate::io::open(b)?;
    let ia = ra.info().clone();
    let ib = rb.info().clone();
    let an = a.display();
    if ia.sample_rate != ib.sample_rate {
        return Err(Error::input(
            b,
            format!(
                "sample rate {} Hz, but {an} is {} Hz: compare needs files of the same rate",
                ib.sample_rate, ia.sample_rate
            ),
        ));
    }
    if ia.channels != ib.channels {
        return Err(Error::input(
            b,
            format!(
                "{} channels, but {an} has {}: compare needs files of the same channel count",
                ib.channels, ia.channels
            ),
        ));
    }
    if ia.frames != ib.frames {
        return Err(Error::input(
            b,
            format!(
                "{} frames ({}), but {an} has {} frames ({}): compare needs files of the same length",
                ib.frames,
                seconds(ib.frames, ib.sample_rate),
                ia.frames,
                seconds(ia.frames, ia.sample_rate)
            ),
        ));
    }
    let channels = ia.channels;
    let layout = Layout::for_channels(channels);
    let mut meter_a = LoudnessMeter::new(channels, ia.sample_rate, layout).map_err(|e| rewrap(e, a))?;
    let mut meter_b = LoudnessMeter::new(channels, ib.sample_rate, layout).map_err(|e| rewrap(e, b))?;

    let limit = 10f64.powf(tol.max_peak_dbfs / 20.0);
    let mut buf_a = vec![vec![0.0f32; BLOCK]; channels];
    let mut buf_b = vec![vec![0.0f32; BLOCK]; channels];
    let mut scratch = vec![vec![0.0f32; BLOCK]; channels];
    let mut peak = 0.0f64;
    let mut sum_sq = 0.0f64;
    let mut first_over: Option<FirstOver> = None;
    let mut frame0 = 0u64;
    loop {
        let na = read_full(ra.as_mut(), &mut buf_a, &mut scratch, BLOCK)?;
        let nb = read_full(rb.as_mut(), &mut buf_b, &mut scratch, BLOCK)?;
        if na != nb {
            // Both headers agreed on the length, so one file ended early (or ran long).
            let (short, long) = if na < nb { (a, b) } else { (b, a) };
            return Err(Error::input(
                short,
                format!(
                    "ended at frame {}, while {} goes on: the files differ in length",
                    frame0 + na.min(nb) as u64,
                    long.display()
                ),
            ));
        }
        if na == 0 {
            break;
        }
        for ch in 0..channels {
            let (xa, xb) = (&buf_a[ch][..na], &buf_b[ch][..na]);
            let mut block_sq = 0.0f64;
            for (i, (&va, &vb)) in xa.iter().zip(xb).enumerate() {
                let d = (va as f64 - vb as f64).abs();
                block_sq += d * d;
                if d > peak {
                    peak = d;
                }
                if d > limit {
                    let candidate = frame0 + i as u64;
                    let earlier = match first_over {
                        None => true,
                        Some(f) => candidate < f.frame || (candidate == f.frame && ch < f.channel),
                    };
                    if earlier {
                        first_over = Some(FirstOver {
                            frame: candidate,
                            channel: ch,
                            a: va,
                            b: vb,
                            delta_dbfs: amplitude_db(d),
                        });
                    }
                }
            }
            sum_sq += block_sq;
        }
        let pa: Vec<&[f32]> = buf_a.iter().map(|c| &c[..na]).collect();
        let pb: Vec<&[f32]> = buf_b.iter().map(|c| &c[..na]).collect();
        meter_a.add_planar(&pa);
        meter_b.add_planar(&pb);
        frame0 += na as u64;
    }
    let samples = frame0 as f64 * channels as f64;
    let rms = if samples > 0.0 { (sum_sq / samples).sqrt() } else { 0.0 };
    let residual_peak_dbfs = amplitude_db(peak);
    let residual_rms_dbfs = amplitude_db(rms);
    let (la, lb) = (meter_a.result(), meter_b.result());
    Ok(CompareReport {
        a: a.to_path_buf(),
        b: b.to_path_buf(),
        channels,
        sample_rate: ia.sample_rate,
        frames: frame0,
        tolerance: tol,
        residual_peak_dbfs,
        residual_rms_dbfs,
        max_delta_lsb_16: peak * 32768.0,
        max_delta_lsb_24: peak * 8388608.0,
        first_over,
        integrated_diff_lu: level_diff(la.integrated_lufs, lb.integrated_lufs),
        true_peak_diff_db: level_diff(la.true_peak_dbtp, lb.true_peak_dbtp),
        loudness_a: la,
        loudness_b: lb,
        passed: residual_peak_dbfs <= tol.max_peak_dbfs && residual_rms_dbfs <= tol.max_rms_dbfs,
    })
}
