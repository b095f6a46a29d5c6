//! Parity of `compressor` (design/mastering.md): the CPU twin and the GPU stage over several blocks
//! (peak and rms detectors, knee, link 0 and 1, a 5.1 stem whose LFE is left out of the link,
//! look-ahead longer than a block, side-chain high-pass, mix < 1); the properties a user can measure
//! on the CPU stage (static curve, attack and release times); the stage against an offline
//! computation of steps 1-6 (the look-ahead's alignment); and the stage in renders on both engines.
use std::f64::consts::PI;

use crate::common::gpu_harness::gpu;
use crate::common::gpu_parity::{RENDER_PEAK_DBFS, RENDER_RMS_DBFS, STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_parity};
use crate::common::{Noise, music_noise, read_audio, render, write_wav};
use stemforge::gpu::context::Precision;
use stemforge::model::{Compressor, Detector};

const FS: u32 = 48_000;
/// The f32 variant (adapters without 64-bit floats) against the f64 CPU twin. Measured on lavapipe:
/// -89 dBFS peak / -115 dBFS RMS at worst (a 60 Hz side-chain high-pass and 0.5 ms attack on 5.1),
/// -110 / -124 otherwise; outside the stage contract, as the f32 FIR is.
const F32_PEAK_DBFS: f64 = -80.0;
const F32_RMS_DBFS: f64 = -100.0;

fn params(threshold_db: f64) -> Compressor {
    Compressor::new(threshold_db)
}

/// A keyed compressor (`key`, ducking): the side-chain is another stem's block, here `key`, laid
/// out in the device buffer before the stem as the engine lays out stems. The stage over `x` in
/// blocks of `block` frames on the device, reset first; the key is never written.
fn gpu_keyed(
    ctx: &stemforge::gpu::GpuContext,
    precision: Precision,
    p: &Compressor,
    x: &[Vec<f32>],
    key: &[Vec<f32>],
    block: usize,
) -> Vec<Vec<f32>> {
    use stemforge::gpu::ProcessStage;
    let (kc, sc) = (key.len(), x.len());
    let total = (kc + sc) * block;
    let buf = ctx.storage("stems", (total * 4) as u64);
    let st = stemforge::gpu::compressor::Compressor::with_precision(
        ctx,
        precision,
        p,
        sc,
        block,
        FS,
        &buf,
        kc * block,
        Some((0, kc)),
    )
    .expect("keyed compressor");
    crate::common::gpu_harness::run_encoder(ctx, |e| st.reset(e));
    let mut out = vec![Vec::new(); sc];
    for j in 0..x[0].len() / block {
        let mut whole = crate::flat(&crate::block_of(key, j, block));
        whole.extend(crate::flat(&crate::block_of(x, j, block)));
        crate::upload(ctx, &buf, &whole);
        crate::run_pass(ctx, |pass| st.encode(pass, j as u64));
        let y = crate::read(ctx, &buf, 0, total);
        assert_eq!(y[..kc * block], whole[..kc * block], "keyed compressor wrote into its key");
        for (c, o) in out.iter_mut().enumerate() {
            o.extend_from_slice(&y[(kc + c) * block..(kc + c + 1) * block]);
        }
    }
    out
}

/// The CPU twin of `gpu_keyed`: `Stage::process_keyed` block by block.
fn cpu_keyed(p: &Compressor, x: &[Vec<f32>], key: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
    use stemforge::cpu::Stage;
    let mut st = stemforge::cpu::compressor::Compressor::new(p, x.len(), block, FS);
    let mut out = vec![Vec::new(); x.len()];
    for j in 0..x[0].len() / block {
        let mut b = crate::block_of(x, j, block);
        st.process_keyed(&mut b, &crate::block_of(key, j, block));
        out.iter_mut().zip(b).for_each(|(o, b)| o.extend(b));
    }
    out
}

/// `key` (ducking) on both engines' stage within the per-stage contract: a stereo stem keyed by a
/// mono key, by a stereo one and by a 5.1 one (more key channels than the stem has), peak and rms
/// with the side-chain high-pass; the key speaks in bursts, so the gain moves both ways.
#[test]
fn compressor_keyed() {
    let Some(ctx) = gpu("compressor_keyed") else {
        return;
    };
    let (block, blocks) = (2048, 6);
    let frames = block * blocks;
    let x = program(2, 421, frames);
    let key = |channels: usize| -> Vec<Vec<f32>> {
        program(channels, 433, frames)
            .into_iter()
            .map(|c| c.iter().enumerate().map(|(n, v)| if (n / 3000) % 2 == 0 { v * 0.8 } else { v * 0.01 }).collect())
            .collect()
    };
    let base = Compressor { attack_ms: 2.0, release_ms: 40.0, key: Some("key".into()), ..params(-20.0) };
    let cases = [
        ("peak, mono key", 1, base.clone()),
        ("peak, knee 6, stereo key, link 0 (no effect)", 2, Compressor { knee_db: 6.0, link: 0.0, ..base.clone() }),
        (
            "rms 5 ms, HPF 150 Hz, 5.1 key",
            6,
            Compressor { detector: Detector::Rms, rms_ms: 5.0, sidechain_hpf_hz: 150.0, ..base.clone() },
        ),
    ];
    for ((name, kc, p), precision) in
        cases.into_iter().flat_map(|c| crate::precisions(&ctx).into_iter().map(move |pr| (c.clone(), pr)))
    {
        let k = key(kc);
        let cpu_out = cpu_keyed(&p, &x, &k, block);
        // It ducks: the stem moved well away from its input, and by the key's doing (the stem
        // alone, compressed by itself, would come out otherwise).
        let moved = cpu_out[0].iter().zip(&x[0]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(moved > 0.05, "{name}: the keyed compressor did nothing (max change {moved})");
        let own = cpu_compress(&Compressor { key: None, ..p.clone() }, &x, block);
        assert_ne!(own, cpu_out, "{name}: the key made no difference");
        let gpu_out = gpu_keyed(&ctx, precision, &p, &x, &k, block);
        let (peak, rms) = match precision {
            Precision::F64 => (STAGE_PEAK_DBFS, STAGE_RMS_DBFS),
            Precision::F32 => (F32_PEAK_DBFS, F32_RMS_DBFS),
        };
        let what = format!("keyed compressor {name} ({})", precision.name());
        let r = assert_parity(&what, &cpu_out, &gpu_out, peak, rms);
        println!("{what}: residual peak {:.1} dBFS, rms {:.1} dBFS", r.peak_dbfs, r.rms_dbfs);
    }
}

/// Full-scale program, `channels` channels, each with its own seed.
fn program(channels: usize, seed: u64, frames: usize) -> Vec<Vec<f32>> {
    (0..channels).map(|c| music_noise(seed + c as u64, frames, Noise::FullScale)).collect()
}

/// The CPU stage over `x` in blocks of `block` frames.
fn cpu_compress(p: &Compressor, x: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
    crate::cpu_process(&mut stemforge::cpu::compressor::Compressor::new(p, x.len(), block, FS), x, block)
}

#[test]
fn compressor() {
    let Some(ctx) = gpu("compressor") else {
        return;
    };
    let base = params(-12.0);
    let cases: Vec<(&str, usize, usize, Compressor)> = vec![
        ("peak, hard knee, linked", 2, 4096, base.clone()),
        (
            "peak, knee 6, unlinked, makeup",
            2,
            4096,
            Compressor { knee_db: 6.0, link: 0.0, makeup_db: 4.0, ..base.clone() },
        ),
        (
            "rms 10 ms, knee 10, link 0.5",
            2,
            4096,
            Compressor { detector: Detector::Rms, knee_db: 10.0, link: 0.5, threshold_db: -20.0, ..base.clone() },
        ),
        (
            "rms 30 ms, lookahead 20 ms, blocks of 512",
            2,
            512,
            Compressor { detector: Detector::Rms, rms_ms: 30.0, lookahead_ms: 20.0, ratio: 8.0, ..base.clone() },
        ),
        (
            "peak, side-chain HPF 150 Hz, lookahead 5 ms, mix 0.6",
            2,
            4096,
            Compressor { sidechain_hpf_hz: 150.0, lookahead_ms: 5.0, mix: 0.6, attack_ms: 1.0, ..base.clone() },
        ),
        (
            "5.1, rms, HPF, knee, fast",
            6,
            2048,
            Compressor {
                detector: Detector::Rms,
                rms_ms: 3.0,
                sidechain_hpf_hz: 60.0,
                knee_db: 4.0,
                attack_ms: 0.5,
                release_ms: 40.0,
                ratio: 20.0,
                ..base.clone()
            },
        ),
    ];
    for ((name, channels, block, p), precision) in
        cases.into_iter().flat_map(|c| crate::precisions(&ctx).into_iter().map(move |pr| (c.clone(), pr)))
    {
        let blocks = 5;
        let x = program(channels, 401, blocks * block);
        // Stale state from a previous life must not leak: `gpu_process` resets it first.
        let gpu_out = crate::gpu_process(&ctx, &x, block, name, |buf, first| {
            Box::new(
                stemforge::gpu::compressor::Compressor::with_precision(
                    &ctx, precision, &p, channels, block, FS, buf, first, None,
                )
                .expect("compressor"),
            )
        });
        let cpu_out = cpu_compress(&p, &x, block);
        // It compresses: the output moved well away from the (delayed) input.
        let moved = cpu_out[0].iter().zip(&x[0]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(moved > 0.05, "{name}: the compressor did nothing (max change {moved})");
        // The f64 variant computes as the CPU twin does; the f32 one (adapters without 64-bit
        // floats) rounds its levels, biquad, RMS sums and ballistics to f32.
        let (peak, rms) = match precision {
            Precision::F64 => (STAGE_PEAK_DBFS, STAGE_RMS_DBFS),
            Precision::F32 => (F32_PEAK_DBFS, F32_RMS_DBFS),
        };
        let what = format!("compressor {name} ({})", precision.name());
        let r = assert_parity(&what, &cpu_out, &gpu_out, peak, rms);
        println!("{what}: residual peak {:.1} dBFS, rms {:.1} dBFS", r.peak_dbfs, r.rms_dbfs);
    }
}

/// Step 4, written out independently: the static curve's gain (dB) at level x.
fn curve_gain(p: &Compressor, x: f64) -> f64 {
    let (t, w, r) = (p.threshold_db, p.knee_db, p.ratio);
    let y = if 2.0 * (x - t) < -w {
        x
    } else if w > 0.0 && 2.0 * (x - t).abs() <= w {
        // (With W = 0 the knee is the point x = T, where the formula is 0/0 and both sides give y = x.)
        x + (1.0 / r - 1.0) * (x - t + w / 2.0).powi(2) / (2.0 * w)
    } else {
        t + (x - t) / r
    };
    y - x
}

/// A 1 kHz square wave of amplitude `amp` at 48 kHz (24 frames up, 24 down).
fn square(amp: f64, frames: usize) -> Vec<f32> {
    (0..frames).map(|n| if (n / 24) % 2 == 0 { amp as f32 } else { -amp as f32 }).collect()
}

/// Gain of the last frame, in dB.
fn last_gain_db(out: &[f32], x: &[f32]) -> f64 {
    let n = x.len() - 1;
    20.0 * (out[n] as f64 / x[n] as f64).abs().log10()
}

/// Link: with `link = 1` every channel takes the same gain (the loudest channel's), frame by
/// frame; with `link = 0` each channel its own (a channel under the threshold is left alone).
#[test]
fn compressor_link_one_gives_every_channel_the_same_gain() {
    let frames = FS as usize / 2;
    // L at -6 dBFS (14 dB over T = -20), R at -26 dBFS (under it), 1 kHz squares.
    let x = vec![square(0.5, frames), square(0.05, frames)];
    let gain_db = |y: &[Vec<f32>], c: usize, n: usize| 20.0 * (y[c][n] as f64 / x[c][n] as f64).log10();
    let linked = cpu_compress(&Compressor { link: 1.0, ..params(-20.0) }, &x, 4096);
    for n in 0..frames {
        let (l, r) = (gain_db(&linked, 0, n), gain_db(&linked, 1, n));
        // out = f32(d·g): the two channels' ratios agree to f32 rounding.
        assert!((l - r).abs() < 1e-5, "link 1, frame {n}: L {l:.6} dB, R {r:.6} dB");
    }
    let want = curve_gain(&params(-20.0), -6.0);
    let unlinked = cpu_compress(&Compressor { link: 0.0, ..params(-20.0) }, &x, 4096);
    let n = frames - 1;
    let (l, r) = (gain_db(&linked, 1, n), (gain_db(&unlinked, 0, n), gain_db(&unlinked, 1, n)));
    println!("link 1: both channels {l:.3} dB (step 4 for L: {want:.3}); link 0: L {:.3} dB, R {:.3} dB", r.0, r.1);
    assert!((l - want).abs() < 0.1, "link 1: R takes L's gain {want:.3} dB, got {l:.3}");
    assert!((r.0 - want).abs() < 0.1 && r.1.abs() < 0.01, "link 0: L {:.3} dB, R {:.3} dB", r.0, r.1);
}

#[test]
fn compressor_static_curve_is_step_4() {
    let frames = FS as usize; // 1 s: the ballistics settle many times over
    // The grid: −40 to 0 dBFS in 1 dB steps, T = −20, R = 4, hard and 6 dB knees; plus
    // a 3:1 ratio.
    let cases = [(0.0, 4.0), (6.0, 4.0), (6.0, 3.0)];
    for (detector, (knee_db, ratio)) in [Detector::Peak, Detector::Rms].into_iter().flat_map(|d| cases.map(|c| (d, c)))
    {
        let p = Compressor { knee_db, ratio, detector, ..params(-20.0) };
        for level in (0..=40).map(|i| -40.0 + i as f64) {
            // Peak: a square wave of amplitude A has |s| = A; rms: a 1 kHz sine whose RMS window
            // (10 ms) holds 10 periods has mean square A²/2.
            let x = match detector {
                Detector::Peak => square(10f64.powf(level / 20.0), frames),
                Detector::Rms => {
                    let amp = 10f64.powf(level / 20.0) * 2f64.sqrt();
                    (0..frames).map(|n| (amp * (2.0 * PI * 1000.0 * n as f64 / FS as f64 + 0.3).sin()) as f32).collect()
                }
            };
            let out = cpu_compress(&p, std::slice::from_ref(&x), 4096);
            // The last frame of the sine may sit near a zero crossing: the gain over the last
            // period, by the ratio of peaks.
            let got = match detector {
                Detector::Peak => last_gain_db(&out[0], &x),
                Detector::Rms => {
                    let tail = frames - 48..frames;
                    let peak = |v: &[f32]| v[tail.clone()].iter().fold(0.0f32, |m, s| m.max(s.abs())) as f64;
                    20.0 * (peak(&out[0]) / peak(&x)).log10()
                }
            };
            let want = curve_gain(&p, level);
            assert!(
                (got - want).abs() <= 0.1,
                "{detector:?} at {level} dB: gain {got:.3} dB, step 4 gives {want:.3} dB"
            );
            println!(
                "static curve {detector:?} knee {knee_db} ratio {ratio} {level:>6.1} dB: gain {got:>8.3} dB \
                 (step 4: {want:>8.3})"
            );
        }
    }
}

#[test]
fn compressor_attack_and_release_times() {
    let (attack_ms, release_ms) = (5.0, 50.0);
    let p = Compressor { attack_ms, release_ms, ..params(-20.0) };
    let (quiet, loud) = (10f64.powf(-40.0 / 20.0), 10f64.powf(-10.0 / 20.0));
    let (on, off, frames) = (4800, 4800 + 24_000, 4800 + 48_000);
    let x: Vec<f32> = square(1.0, frames)
        .iter()
        .enumerate()
        .map(|(n, s)| s * if (on..off).contains(&n) { loud as f32 } else { quiet as f32 })
        .collect();
    let out = cpu_compress(&p, std::slice::from_ref(&x), 4096);
    let gain = |n: usize| 20.0 * (out[0][n] as f64 / x[n] as f64).abs().log10();
    let full = curve_gain(&p, -10.0); // -7.5 dB
    assert!((gain(off - 1) - full).abs() < 0.01, "not settled at {}", gain(off - 1));
    let attack = (on..off).find(|&n| gain(n) <= 0.632 * full).unwrap() - on;
    let release = (off..frames).find(|&n| gain(n) >= (1.0 - 0.632) * full).unwrap() - off;
    let (attack_got, release_got) = (attack as f64 * 1000.0 / FS as f64, release as f64 * 1000.0 / FS as f64);
    println!(
        "attack: 63.2 % in {attack_got:.3} ms (attack_ms {attack_ms}); release: {release_got:.3} ms ({release_ms})"
    );
    assert!((attack_got / attack_ms - 1.0).abs() <= 0.1, "attack {attack_got} ms for attack_ms {attack_ms}");
    assert!((release_got / release_ms - 1.0).abs() <= 0.1, "release {release_got} ms for release_ms {release_ms}");
}

/// Steps 1-6 offline, from the formulas, per sample, in f64 with the standard library's log and
/// power: output frame n is the input frame n - L times the gain from the side-chain at frame n.
fn offline(p: &Compressor, x: &[Vec<f32>], lfe: Option<usize>) -> Vec<Vec<f32>> {
    let fs = FS as f64;
    let (chans, frames) = (x.len(), x[0].len());
    // 1. Side-chain (high-pass, RBJ, Q = 1/√2, direct form I).
    let s: Vec<Vec<f64>> = x
        .iter()
        .map(|c| {
            if p.sidechain_hpf_hz <= 0.0 {
                return c.iter().map(|&v| v as f64).collect();
            }
            let w0 = 2.0 * PI * p.sidechain_hpf_hz / fs;
            let alpha = w0.sin() / (2.0 / 2f64.sqrt());
            let (b0, b1, b2) = ((1.0 + w0.cos()) / 2.0, -(1.0 + w0.cos()), (1.0 + w0.cos()) / 2.0);
            let (a0, a1, a2) = (1.0 + alpha, -2.0 * w0.cos(), 1.0 - alpha);
            let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
            c.iter()
                .map(|&v| {
                    let v = v as f64;
                    let y = (b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2) / a0;
                    (x2, x1, y2, y1) = (x1, v, y1, y);
                    y
                })
                .collect()
        })
        .collect();
    // 2. Levels.
    let n_rms = ((p.rms_ms * fs / 1000.0).round() as usize).max(1);
    let level: Vec<Vec<f64>> = s
        .iter()
        .map(|c| {
            (0..frames)
                .map(|n| match p.detector {
                    Detector::Peak => 20.0 * c[n].abs().max(1e-9).log10(),
                    Detector::Rms => {
                        let from = (n + 1).saturating_sub(n_rms);
                        let ms = c[from..=n].iter().map(|v| v * v).sum::<f64>() / n_rms as f64;
                        10.0 * ms.max(1e-18).log10()
                    }
                })
                .collect()
        })
        .collect();
    let l = (p.lookahead_ms * fs / 1000.0).round() as usize;
    let (aa, ar) = ((-1.0 / (p.attack_ms / 1000.0 * fs)).exp(), (-1.0 / (p.release_ms / 1000.0 * fs)).exp());
    let mut z = vec![0.0f64; chans];
    let mut out = vec![vec![0.0f32; frames]; chans];
    for n in 0..frames {
        // 3. Link.
        let m = (0..chans).filter(|&c| Some(c) != lfe).map(|c| level[c][n]).fold(f64::NEG_INFINITY, f64::max);
        for c in 0..chans {
            let xl = (1.0 - p.link) * level[c][n] + p.link * m;
            // 4. Gain computer, 5. ballistics.
            let g = curve_gain(p, xl);
            let a = if g < z[c] { aa } else { ar };
            z[c] = a * z[c] + (1.0 - a) * g;
            // 6. Delayed audio, gain, mix.
            let d = if n >= l { x[c][n - l] as f64 } else { 0.0 };
            let wet = d * 10f64.powf((z[c] + p.makeup_db) / 20.0);
            out[c][n] = (p.mix * wet + (1.0 - p.mix) * d) as f32;
        }
    }
    out
}

#[test]
fn compressor_matches_steps_1_to_6_offline() {
    let base = params(-14.0);
    for (name, chans, lfe, p) in [
        ("peak, lookahead 10 ms", 2, None, Compressor { lookahead_ms: 10.0, knee_db: 3.0, ..base.clone() }),
        (
            "rms, HPF 120 Hz, link 0.3, lookahead 2.5 ms, makeup, mix 0.5",
            2,
            None,
            Compressor {
                detector: Detector::Rms,
                sidechain_hpf_hz: 120.0,
                link: 0.3,
                lookahead_ms: 2.5,
                makeup_db: 6.0,
                mix: 0.5,
                ..base.clone()
            },
        ),
        ("5.1, LFE out of the link", 6, Some(3), Compressor { lookahead_ms: 1.0, ..base.clone() }),
    ] {
        let mut x = program(chans, 431, 3 * 4096 + 1000);
        if let Some(c) = lfe {
            // A loud LFE that would dominate the link if it were counted.
            x[c].iter_mut().for_each(|v| *v *= 4.0);
        }
        let got = cpu_compress(&p, &x, 4096);
        let want = offline(&p, &x, lfe);
        let got: Vec<Vec<f32>> = got.into_iter().map(|c| c[..x[0].len()].to_vec()).collect();
        let r =
            assert_parity(&format!("compressor vs offline, {name}"), &want, &got, RENDER_PEAK_DBFS, RENDER_RMS_DBFS);
        println!("compressor vs offline, {name}: peak {:.1} dBFS, rms {:.1} dBFS", r.peak_dbfs, r.rms_dbfs);
    }
}

/// A session with compressors on two stems (one with look-ahead), rendered by both engines: the
/// masters agree within the whole-render contract; and with mix = 0 the look-ahead is compensated,
/// so a render with it equals the render without it.
#[test]
fn compressor_in_a_render() {
    let Some(_gpu) = gpu("compressor_in_a_render") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let frames = 48_000 * 2 + 333;
    write_wav(&dir.path().join("drums.wav"), &program(2, 441, frames), 48_000, 0);
    write_wav(&dir.path().join("bass.wav"), &[music_noise(445, frames, Noise::FullScale)], 48_000, 0);
    let session = |drums: &str, bass: &str| {
        format!(
            "name = \"c\"\nlayout = \"stereo\"\n\
             [[stems]]\nname = \"drums\"\npath = \"drums.wav\"\nprocess = [{drums}]\n\
             [[stems]]\nname = \"bass\"\npath = \"bass.wav\"\nprocess = [{bass}]\n\
             [master]\ntarget_lufs = -16.0\nceiling_dbtp = -1.0\n\
             [[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"f32\"\n"
        )
    };
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let out = |e: &str| dir.path().join(e);
    let good = write(
        "good.toml",
        session(
            "{ type = \"compressor\", threshold_db = -18.0, ratio = 3.0, knee_db = 6.0, lookahead_ms = 5.0, \
             sidechain_hpf_hz = 80.0, makeup_db = 2.0 }",
            "{ type = \"compressor\", threshold_db = -20.0, detector = \"rms\", attack_ms = 20.0, mix = 0.7 }",
        ),
    );
    crate::engines_agree(&good, dir.path(), "compressor in a render");

    // mix = 0: the stage is the look-ahead delay alone, which the render compensates.
    let dry = |lookahead: f64| {
        format!(
            "{{ type = \"compressor\", threshold_db = -30.0, ratio = 10.0, mix = 0.0, lookahead_ms = {lookahead} }}"
        )
    };
    let delayed = write("delayed.toml", session(&dry(7.5), &dry(0.0)));
    let plain = write("plain.toml", session(&dry(0.0), &dry(0.0)));
    for e in ["cpu", "gpu"] {
        render(&delayed, &out(&format!("delayed-{e}")), e, &[], 0);
        render(&plain, &out(&format!("plain-{e}")), e, &[], 0);
        let (_, a) = read_audio(&out(&format!("delayed-{e}")).join("master.wav"));
        let (_, b) = read_audio(&out(&format!("plain-{e}")).join("master.wav"));
        let r = assert_parity(&format!("{e}: look-ahead compensated"), &b, &a, RENDER_PEAK_DBFS, RENDER_RMS_DBFS);
        println!("{e}: 7.5 ms look-ahead at mix 0 vs none: peak {:.1} dBFS, rms {:.1} dBFS", r.peak_dbfs, r.rms_dbfs);
    }
}
