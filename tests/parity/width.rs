//! Parity of `width` (design/mastering.md): the CPU twin and the GPU stage on a stereo stem, with
//! and without `mono_below_hz`; its defining properties (width 0 is mono, 1 leaves the signal, M is
//! kept, the side's lows are removed); and the stage in whole renders on both engines, aligned to
//! the sample.
use std::path::Path;

use crate::common::gpu_harness::gpu;
use crate::common::gpu_parity::{STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_parity};
use crate::common::{Noise, music_noise, read_audio, render, write_wav};

const BLOCK: usize = 4096;
const FS: u32 = 48_000;
/// A short high-pass keeps the tests quick; its latency (1023 frames) is under one block.
const TAPS: usize = 2047;

fn params(width: f64, mono_below_hz: f64) -> stemforge::model::Width {
    stemforge::model::Width { width, mono_below_hz, taps: TAPS }
}

fn stereo(seed: u64, frames: usize) -> Vec<Vec<f32>> {
    vec![music_noise(seed, frames, Noise::FullScale), music_noise(seed + 1, frames, Noise::FullScale)]
}

/// The CPU twin over `x` in blocks.
fn cpu_width(width: f64, x: &[Vec<f32>]) -> Vec<Vec<f32>> {
    cpu_stage(&params(width, 0.0), x)
}

fn cpu_stage(p: &stemforge::model::Width, x: &[Vec<f32>]) -> Vec<Vec<f32>> {
    crate::cpu_process(&mut stemforge::cpu::width::Width::new(p, BLOCK, FS), x, BLOCK)
}

#[test]
fn width() {
    let Some(ctx) = gpu("width") else {
        return;
    };
    let frames = 3 * BLOCK;
    let x = stereo(301, frames);
    let cases = [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (1.7, 0.0), (4.0, 0.0), (1.0, 120.0), (1.6, 300.0), (0.0, 80.0)];
    for (w, mono_below) in cases {
        let p = params(w, mono_below);
        let gpu_out = crate::gpu_process(&ctx, &x, BLOCK, &format!("{p:?}"), |buf, first| {
            Box::new(stemforge::gpu::width::Width::new(&ctx, &p, BLOCK, FS, buf, first).expect("width"))
        });
        let cpu_out = cpu_stage(&p, &x);
        let label = format!("width {w}, mono below {mono_below} Hz");
        let r = assert_parity(&label, &cpu_out, &gpu_out, STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
        println!("{label}: residual peak {:.1} dBFS, rms {:.1} dBFS", r.peak_dbfs, r.rms_dbfs);
    }
}

#[test]
fn width_zero_is_mono_one_leaves_the_signal_and_the_mid_is_kept() {
    let x = stereo(311, 2 * BLOCK + 100);
    let mono = cpu_width(0.0, &x);
    assert!(mono[0].iter().zip(&mono[1]).all(|(l, r)| l == r), "width 0: L and R must be equal");
    // Within f32 rounding of (L+R)/2 ± (L-R)/2: a few ulp of full scale.
    let same = cpu_width(1.0, &x);
    for (c, (a, b)) in same.iter().zip(&x).enumerate() {
        let worst = a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 4.0 * f32::EPSILON, "width 1, channel {c}: moved by {worst:e}");
    }
    // M = (L + R)/2 is kept at every width; S scales by it.
    let wide = cpu_width(2.5, &x);
    for t in (0..x[0].len()).step_by(97) {
        let (m, s) = ((x[0][t] + x[1][t]) / 2.0, (x[0][t] - x[1][t]) / 2.0);
        let (m2, s2) = ((wide[0][t] + wide[1][t]) / 2.0, (wide[0][t] - wide[1][t]) / 2.0);
        assert!((m2 - m).abs() <= 1e-6 && (s2 - 2.5 * s).abs() <= 1e-6, "frame {t}: M {m} -> {m2}, S {s} -> {s2}");
    }
}

/// `mono_below_hz`: the side below it is removed (a 40 Hz side 2 octaves under 160 Hz is 72 dB
/// down with the 6th-order slope), the side above it passes times `width`, and M passes untouched,
/// every part delayed by the high-pass's latency (1023 frames here).
#[test]
fn mono_below_removes_the_side_lows_and_keeps_the_rest_aligned() {
    let n = 6 * BLOCK;
    let sine =
        |f: f64, a: f64| (0..n).map(move |t| (a * (std::f64::consts::TAU * f * t as f64 / FS as f64).sin()) as f32);
    // M: 40 Hz + 2 kHz; S: 40 Hz (its low) and 3 kHz (its high).
    let m: Vec<f32> = sine(40.0, 0.3).zip(sine(2000.0, 0.2)).map(|(a, b)| a + b).collect();
    let s_low: Vec<f32> = sine(40.0, 0.2).collect();
    let s_high: Vec<f32> = sine(3000.0, 0.1).collect();
    let x = vec![
        (0..n).map(|t| m[t] + s_low[t] + s_high[t]).collect::<Vec<f32>>(),
        (0..n).map(|t| m[t] - s_low[t] - s_high[t]).collect::<Vec<f32>>(),
    ];
    let p = params(1.5, 160.0);
    let y = cpu_stage(&p, &x);
    let lat = (TAPS - 1) / 2;
    assert_eq!(stemforge::dsp::process_latency(&stemforge::model::Process::Width(p), FS), lat);
    // Past the filter's start-up, compare against the delayed ideal: M + 1.5 * S_high.
    let (mut worst_mid, mut worst_side) = (0.0f32, 0.0f32);
    for t in 2 * BLOCK..n {
        let (ym, ys) = ((y[0][t] + y[1][t]) / 2.0, (y[0][t] - y[1][t]) / 2.0);
        worst_mid = worst_mid.max((ym - m[t - lat]).abs());
        worst_side = worst_side.max((ys - 1.5 * s_high[t - lat]).abs());
    }
    println!("mono below 160 Hz: mid off by {worst_mid:e}, side off the ideal by {worst_side:e}");
    assert!(worst_mid <= 1e-6, "M moved by {worst_mid}");
    // The 40 Hz side (0.2 * 1.5 = 0.3 before the filter) at least 40 dB down, and the 3 kHz side
    // within 0.1 dB of 1.5 times itself: their sum is off the ideal by at most 0.003 + 0.0017.
    assert!(worst_side <= 0.003 + 0.0018, "the side is off the ideal by {worst_side}");
}

/// A session with a width stage on two stereo stems, rendered by both engines: the masters agree
/// within the whole-render contract, and the stem narrowed to mono has equal channels.
#[test]
fn width_in_a_render() {
    let Some(_gpu) = gpu("width_in_a_render") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let frames = 48_000 * 2 + 333;
    write_wav(&dir.path().join("wide.wav"), &stereo(321, frames), 48_000, 0);
    write_wav(&dir.path().join("narrow.wav"), &stereo(323, frames), 48_000, 0);
    write_wav(&dir.path().join("mono.wav"), &[music_noise(325, frames, Noise::FullScale)], 48_000, 0);
    let session = |stems: &str| {
        format!(
            "name = \"w\"\nlayout = \"stereo\"\n{stems}\n[master]\ntarget_lufs = -16.0\nceiling_dbtp = -1.0\n\
             [[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"f32\"\n\
             [[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n"
        )
    };
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        session(
            "[[stems]]\nname = \"wide\"\npath = \"wide.wav\"\n\
             eq = [{ type = \"peak\", freq_hz = 2000.0, gain_db = 3.0, q = 1.0 }]\n\
             process = [{ type = \"width\", width = 1.6, mono_below_hz = 150.0 }]\n\
             [[stems]]\nname = \"narrow\"\npath = \"narrow.wav\"\nprocess = [{ type = \"width\", width = 0.0 }]\n",
        ),
    )
    .unwrap();
    let out = |e: &str| dir.path().join(e);
    for o in crate::engines_agree(&good, dir.path(), "width in a render") {
        let (_, narrow) = read_audio(&o.join("stems/narrow.wav"));
        assert!(
            narrow[0].iter().zip(&narrow[1]).all(|(l, r)| l == r),
            "{}: the narrowed stem is not mono",
            o.display()
        );
    }

    // Width on a mono stem: exit 2, naming the stem and the stage; nothing written.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        session("[[stems]]\nname = \"vox\"\npath = \"mono.wav\"\nprocess = [{ type = \"width\", width = 1.2 }]\n"),
    )
    .unwrap();
    for e in ["cpu", "gpu"] {
        let err = render(&bad, &out(&format!("bad-{e}")), e, &[], 2);
        assert!(
            err.contains("bad.toml") && err.contains("vox") && err.contains("width") && err.contains("stereo"),
            "{err}"
        );
        assert!(!Path::new(&out(&format!("bad-{e}"))).join("master.wav").exists());
    }
}

/// Alignment to the sample through a chain's latency: a centred stem (L = R) through width 2 with
/// mono below 100 Hz (latency 4095 frames at the default 8191 taps) beside a stem with a
/// minimum-phase EQ (latency 0), rendered without a master stage: the centred stem's output is its
/// input, to the bit, at the same frames, on both engines.
#[test]
fn a_chain_with_latency_is_aligned_to_the_sample() {
    let Some(_gpu) = gpu("a_chain_with_latency_is_aligned_to_the_sample") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let frames = 48_000 + 4321;
    let centre = music_noise(331, frames, Noise::FullScale);
    write_wav(&dir.path().join("centre.wav"), &[centre.clone(), centre.clone()], 48_000, 0);
    write_wav(&dir.path().join("other.wav"), &stereo(333, frames), 48_000, 0);
    let session = dir.path().join("s.toml");
    std::fs::write(
        &session,
        "name = \"a\"\nlayout = \"stereo\"\n\
         [[stems]]\nname = \"centre\"\npath = \"centre.wav\"\n\
         process = [{ type = \"width\", width = 2.0, mono_below_hz = 100.0 }]\n\
         [[stems]]\nname = \"other\"\npath = \"other.wav\"\n\
         eq = [{ type = \"peak\", freq_hz = 500.0, gain_db = -4.0, q = 2.0 }]\n\
         [eq_design]\nphase = \"minimum\"\n\
         [[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n",
    )
    .unwrap();
    for e in ["cpu", "gpu"] {
        let out = dir.path().join(e);
        render(&session, &out, e, &[], 0);
        let (_, y) = read_audio(&out.join("stems/centre.wav"));
        for (c, ch) in y.iter().enumerate() {
            assert_eq!(ch.len(), frames, "{e}: channel {c} length");
            if let Some(t) = ch.iter().zip(&centre).position(|(a, b)| a != b) {
                panic!("{e}: channel {c} differs first at frame {t}: {} vs {}", ch[t], centre[t]);
            }
        }
    }
}

/// Issue 11's figures, at the session's default 8191 taps: width 2 raises a pure side signal by
/// 6.02 dB and leaves a pure mid signal unchanged; `mono_below_hz = 120` takes the side below 60 Hz
/// down by at least 30 dB and leaves it from 500 Hz up within 0.1 dB.
#[test]
fn width_figures() {
    let n = 8 * BLOCK;
    let tone = |f: f64| -> Vec<f32> {
        (0..n).map(|t| (0.25 * (std::f64::consts::TAU * f * t as f64 / FS as f64).sin()) as f32).collect()
    };
    let rms = |v: &[f32]| (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    // Gain (dB) of the side (or the mid) of a pure side (mid) tone, after the stage's start-up.
    let gain = |p: &stemforge::model::Width, f: f64, side: bool| -> f64 {
        let s = tone(f);
        let x = if side { vec![s.clone(), s.iter().map(|v| -v).collect()] } else { vec![s.clone(), s.clone()] };
        let y = cpu_stage(p, &x);
        let part: Vec<f32> =
            y[0].iter().zip(&y[1]).map(|(l, r)| if side { (l - r) / 2.0 } else { (l + r) / 2.0 }).collect();
        // Against the input as far back as the stage's latency, so that both windows hold the
        // same stretch of the tone.
        let lat = stemforge::dsp::process_latency(&stemforge::model::Process::Width(*p), FS);
        let from = 4 * BLOCK;
        20.0 * (rms(&part[from..]) / rms(&s[from - lat..n - lat])).log10()
    };
    let wide = stemforge::model::Width { width: 2.0, mono_below_hz: 0.0, taps: 8191 };
    let side = gain(&wide, 1000.0, true);
    let mid = gain(&wide, 1000.0, false);
    println!("width 2: side {side:+.4} dB, mid {mid:+.6} dB");
    assert!((side - 6.0206).abs() < 0.001, "width 2: a pure side moved {side} dB");
    assert!(mid.abs() < 1e-5, "width 2: a pure mid moved {mid} dB");
    let mono = stemforge::model::Width { width: 1.0, mono_below_hz: 120.0, taps: 8191 };
    for f in [20.0, 40.0, 55.0, 59.0] {
        let g = gain(&mono, f, true);
        println!("mono below 120 Hz: side at {f} Hz {g:+.1} dB");
        assert!(g <= -30.0, "side at {f} Hz only {g} dB down");
    }
    for f in [500.0, 1000.0, 5000.0, 15000.0] {
        let g = gain(&mono, f, true);
        println!("mono below 120 Hz: side at {f} Hz {g:+.3} dB");
        assert!(g.abs() <= 0.1, "side at {f} Hz moved {g} dB");
    }
    let m = gain(&mono, 40.0, false);
    assert!(m.abs() < 1e-5, "mono below: a 40 Hz mid moved {m} dB");
}
