//! `compare`: null residual of two files against the parity tolerance, the first sample over it,
//! and clear errors for files that cannot be nulled.
mod common;

use common::{Noise, db_to_amp, music_noise, write_wav};
use stemforge::analysis::compare::compare;
use stemforge::report::compare::Tolerance;

const FS: u32 = 48_000;

fn stereo(seed: u64, frames: usize) -> Vec<Vec<f32>> {
    vec![
        music_noise(seed, frames, Noise::Programme(FS, 0.1)),
        music_noise(seed + 1, frames, Noise::Programme(FS, 0.08)),
    ]
}

#[test]
fn identical_files_pass_with_no_residual() {
    let dir = tempfile::tempdir().unwrap();
    let sig = stereo(1, 2 * FS as usize);
    let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    write_wav(&a, &sig, FS, 0);
    write_wav(&b, &sig, FS, 0);
    let r = compare(&a, &b, Tolerance::default()).unwrap();
    assert!(r.passed);
    assert_eq!(r.residual_peak_dbfs, f64::NEG_INFINITY);
    assert_eq!(r.residual_rms_dbfs, f64::NEG_INFINITY);
    assert_eq!(r.max_delta_lsb_16, 0.0);
    assert_eq!(r.max_delta_lsb_24, 0.0);
    assert!(r.first_over.is_none());
    assert_eq!(r.integrated_diff_lu, 0.0);
    assert_eq!(r.true_peak_diff_db, 0.0);
    assert_eq!(r.frames, 2 * FS as u64);
    let j = r.to_json();
    assert!(j["residual_peak_dbfs"].is_null() && j["residual_rms_dbfs"].is_null());
    assert_eq!(j["passed"], true);
    assert!(r.to_text().contains("PASS"));
}

/// B = A at −0.1 dB. The residual is A·(1 − g), g = 10^(−0.1/20): about −38.8 dB under A, far over
/// −100 dBFS, so it fails, and the first sample over the tolerance is the first where
/// |A|·(1 − g) > 10^(−100/20) — computed here independently, frame and channel.
#[test]
fn files_a_tenth_of_a_db_apart_fail_and_name_the_first_frame() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 2 * FS as usize;
    let mut sig = stereo(5, frames);
    // A quiet lead-in (−120 dBFS) so the first sample over the tolerance is not frame 0.
    for c in &mut sig {
        for x in &mut c[..1000] {
            *x *= 1e-6;
        }
    }
    let g = db_to_amp(-0.1) as f32;
    let quieter: Vec<Vec<f32>> = sig.iter().map(|c| c.iter().map(|&x| x * g).collect()).collect();
    let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    write_wav(&a, &sig, FS, 0);
    write_wav(&b, &quieter, FS, 0);
    let r = compare(&a, &b, Tolerance::default()).unwrap();
    assert!(!r.passed, "0.1 dB apart must fail the parity tolerance");

    let limit = db_to_amp(-100.0);
    let mut want = None;
    'outer: for n in 0..frames {
        for c in 0..2 {
            if (sig[c][n] as f64 - quieter[c][n] as f64).abs() > limit {
                want = Some((n as u64, c));
                break 'outer;
            }
        }
    }
    let (frame, channel) = want.unwrap();
    let first = r.first_over.expect("a first frame over the tolerance");
    assert_eq!((first.frame, first.channel), (frame, channel));
    assert!(frame >= 1000, "the lead-in is under the tolerance");
    assert_eq!(first.a, sig[channel][frame as usize]);

    // RMS of the residual: the signal's RMS times (1 − g), to f32 rounding (well under 0.01 dB).
    let n = (2 * frames) as f64;
    let sig_rms = (sig.iter().flatten().map(|&x| (x as f64).powi(2)).sum::<f64>() / n).sqrt();
    let want_rms = 20.0 * (sig_rms * (1.0 - g as f64)).log10();
    assert!((r.residual_rms_dbfs - want_rms).abs() < 0.01, "rms {} vs {want_rms}", r.residual_rms_dbfs);
    // The loudness difference is the gain: −0.1 LU (ebur128 is linear in level to far better than
    // 0.001 LU).
    assert!((r.integrated_diff_lu - -0.1).abs() < 0.001, "ΔI = {}", r.integrated_diff_lu);
    assert!((r.true_peak_diff_db - -0.1).abs() < 0.001, "ΔTP = {}", r.true_peak_diff_db);
    let text = r.to_text();
    assert!(text.contains(&format!("frame {frame}")) && text.contains("FAIL"), "{text}");
    assert_eq!(r.to_json()["first_over"]["frame"], frame);
}

/// One 24-bit file against a copy with one sample 3 LSB off: the LSB figures are exact, and with
/// a tolerance under 3 LSB (−130 dBFS; 3 LSB at 24 bit = −128.9 dBFS) that sample is the first over.
#[test]
fn lsb_counts_and_a_custom_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let sig = stereo(9, FS as usize);
    let q: Vec<Vec<f32>> =
        sig.iter().map(|c| c.iter().map(|&x| ((x as f64 * 8388608.0).round() / 8388608.0) as f32).collect()).collect();
    let mut off = q.clone();
    off[1][12345] += (3.0 / 8388608.0) as f32;
    let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    write_wav(&a, &q, FS, 24);
    write_wav(&b, &off, FS, 24);
    let r = compare(&a, &b, Tolerance::default()).unwrap();
    assert!((r.max_delta_lsb_24 - 3.0).abs() < 1e-9, "{}", r.max_delta_lsb_24);
    assert!((r.max_delta_lsb_16 - 3.0 / 256.0).abs() < 1e-9);
    // −128.9 dBFS peak passes −100; the RMS of one 3-LSB sample over 96000 is far under −120.
    assert!(r.passed && r.first_over.is_none());
    let strict = Tolerance { max_peak_dbfs: -130.0, max_rms_dbfs: -120.0 };
    let r = compare(&a, &b, strict).unwrap();
    assert!(!r.passed);
    let f = r.first_over.unwrap();
    assert_eq!((f.frame, f.channel), (12345, 1));
}

#[test]
fn mismatched_files_are_clear_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.wav");
    write_wav(&base, &stereo(2, FS as usize), FS, 0);

    let shorter = dir.path().join("shorter.wav");
    write_wav(&shorter, &stereo(2, FS as usize - 10), FS, 0);
    let e = compare(&base, &shorter, Tolerance::default()).unwrap_err();
    let m = e.to_string();
    assert_eq!(e.exit_code(), 2);
    assert!(m.contains("base.wav") && m.contains("shorter.wav") && m.contains("48000") && m.contains("47990"), "{m}");

    let mono = dir.path().join("mono.wav");
    write_wav(&mono, &[music_noise(3, FS as usize, Noise::Programme(FS, 0.1))], FS, 0);
    let e = compare(&base, &mono, Tolerance::default()).unwrap_err();
    let m = e.to_string();
    assert_eq!(e.exit_code(), 2);
    assert!(m.contains("base.wav") && m.contains("mono.wav") && m.contains("1 channels") && m.contains("has 2"), "{m}");

    let other_rate = dir.path().join("rate.wav");
    write_wav(&other_rate, &stereo(2, FS as usize), 44_100, 0);
    let e = compare(&base, &other_rate, Tolerance::default()).unwrap_err();
    let m = e.to_string();
    assert_eq!(e.exit_code(), 2);
    assert!(
        m.contains("base.wav") && m.contains("rate.wav") && m.contains("44100 Hz") && m.contains("48000 Hz"),
        "{m}"
    );

    let missing = dir.path().join("missing.wav");
    let e = compare(&base, &missing, Tolerance::default()).unwrap_err();
    assert!(e.to_string().contains("missing.wav"));
}

/// Blocks larger than one read: a file longer than the streaming block (64 Ki frames), with the
/// difference past the first block, is found at its absolute frame.
#[test]
fn difference_past_the_first_block_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 150_000;
    let sig = stereo(11, frames);
    let mut other = sig.clone();
    other[0][140_001] += 0.25;
    let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    write_wav(&a, &sig, FS, 0);
    write_wav(&b, &other, FS, 0);
    let r = compare(&a, &b, Tolerance::default()).unwrap();
    assert!(!r.passed);
    let f = r.first_over.unwrap();
    assert_eq!((f.frame, f.channel), (140_001, 0));
    // 0.25 = −12.04 dBFS (f32 addition rounding is ~1e-8 relative).
    assert!((r.residual_peak_dbfs - 20.0 * 0.25f64.log10()).abs() < 1e-4);
}
