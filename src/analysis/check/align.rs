//! `check`'s pass 3, run only when the null fails: each stem's window cross-correlated (FFT) with
//! the mix minus the other stems, for its offset, polarity and gain in the mix.
use std::path::Path;

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

use super::NullStem;
use crate::analysis::{BLOCK, read_full};
use crate::error::{Error, Result};
use crate::meter::amplitude_db;
use crate::model::Filter;
use crate::report::check::StemAlignment;
use crate::session::Session;

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

/// Pass 3: for each stem, cross-correlate its routed contribution c with the mix minus the other
/// stems, t = residual + c, over the analysis window; xcorr[k] = Σ_n t[n]·c[n+k] (summed over the
/// bus channels the stem feeds) peaks at k = d when the stem file is the mix's copy delayed by d
/// frames, so a positive lag means the stem is late. Computed as IFFT(conj(T)·C), zero-padded to at
/// least window + max lag so the searched lags do not wrap.
pub(super) fn align_stems(
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
