//! Parity of `saturation` (design/mastering.md): the CPU twin and the GPU stage over several
//! blocks at full scale; its defining properties (its latency is the resampling filters', small
//! signals pass at unity gain delayed by exactly that latency, the contract's aliasing figure at 4x
//! and the aliasing it prevents at 1x, its tanh); and the stage in whole renders on both engines.
use crate::common::gpu_harness::gpu;
use crate::common::gpu_parity::{STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_parity};
use crate::common::{Noise, music_noise, read_audio, render, sine, write_wav};
use stemforge::cpu::Stage;
use stemforge::model::{Process, Saturation};

const BLOCK: usize = 4096;
const FS: u32 = 48_000;

fn params(drive_db: f64, mix: f64, oversampling: usize) -> Saturation {
    Saturation { drive_db, mix, oversampling }
}

/// The CPU twin over `x` in blocks of `block`.
fn cpu_saturation(p: &Saturation, x: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
    crate::cpu_process(&mut stemforge::cpu::saturation::Saturation::new(p, block), x, block)
}

#[test]
fn saturation() {
    let Some(ctx) = gpu("saturation") else {
        return;
    };
    let blocks = 4;
    let frames = blocks * BLOCK;
    let cases = [
        (2, params(6.0, 1.0, 4)),
        (2, params(0.0, 1.0, 4)),
        (2, params(12.0, 1.0, 1)),
        (2, params(12.0, 0.5, 2)),
        (2, params(24.0, 1.0, 8)),
        (1, params(48.0, 0.7, 4)),
        (3, params(18.0, 0.25, 8)),
    ];
    for (channels, p) in cases {
        let x: Vec<Vec<f32>> = (0..channels).map(|c| music_noise(401 + c as u64, frames, Noise::FullScale)).collect();
        let gpu_out = crate::gpu_process(&ctx, &x, BLOCK, &format!("{p:?}"), |buf, first| {
            Box::new(
                stemforge::gpu::saturation::Saturation::new(&ctx, &p, channels, BLOCK, buf, first).expect("saturation"),
            )
        });
        let cpu_out = cpu_saturation(&p, &x, BLOCK);
        let what = format!("saturation drive {} dB, mix {}, {}x, {channels} ch", p.drive_db, p.mix, p.oversampling);
        let r = assert_parity(&what, &cpu_out, &gpu_out, STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
        println!("{what}: residual peak {:.1} dBFS, rms {:.1} dBFS", r.peak_dbfs, r.rms_dbfs);
    }
}

#[test]
fn saturation_latency_is_the_resampling_filters() {
    for k in [1, 2, 4, 8] {
        let p = params(6.0, 1.0, k);
        let table = stemforge::dsp::oversampling::design_oversampling(k);
        // Interpolator T/2 + transposed decimator T/2 - 1 = T - 1 (23 for 24 taps per phase).
        let want = if k == 1 { 0 } else { table.taps_per_phase - 1 };
        assert_eq!(stemforge::dsp::oversampling::resampling_latency(&table), want);
        assert_eq!(stemforge::dsp::process_latency(&Process::Saturation(p), 48_000), want, "{k}x");
        assert_eq!(stemforge::cpu::saturation::Saturation::new(&p, BLOCK).latency(), want, "{k}x");
        println!("saturation {k}x: latency {want} frames");
    }
    // The small-signal impulse response is symmetric about the latency (linear phase) and sums to 1:
    // the latency is where its centre is, not a guess.
    for k in [2, 4, 8] {
        let p = params(6.0, 1.0, k);
        let lat = stemforge::dsp::process_latency(&Process::Saturation(p), 48_000);
        let (at, amp) = (1000, 1e-5f32);
        let mut x = vec![0.0f32; 3000];
        x[at] = amp;
        let y = &cpu_saturation(&p, &[x], 512)[0];
        let h: Vec<f64> = y.iter().map(|&v| v as f64 / amp as f64).collect();
        let peak = (0..h.len()).max_by(|&a, &b| h[a].abs().total_cmp(&h[b].abs())).unwrap();
        assert_eq!(peak, at + lat, "{k}x: the impulse response peaks at {peak}, not at {}", at + lat);
        let sum: f64 = h.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{k}x: DC gain {sum}");
        for d in 1..=lat {
            let (a, b) = (h[at + lat - d], h[at + lat + d]);
            assert!((a - b).abs() < 1e-5, "{k}x: h[L-{d}] = {a}, h[L+{d}] = {b}: not symmetric about L");
        }
        assert!(h[..at].iter().chain(&h[at + 2 * lat + 1..]).all(|v| v.abs() < 1e-6), "{k}x: support");
    }
}

#[test]
fn saturation_passes_small_signals_at_unity_gain_delayed_by_its_latency() {
    let frames = 3 * BLOCK + 777;
    let amp = 10f64.powf(-60.0 / 20.0);
    for (k, mix, freq) in [(1, 1.0, 1000.0), (2, 1.0, 1000.0), (4, 1.0, 1000.0), (8, 1.0, 1000.0), (4, 0.5, 5000.0)] {
        let p = params(6.0, mix, k);
        let lat = stemforge::dsp::process_latency(&Process::Saturation(p), 48_000);
        let x = sine(freq, amp, 0.3, frames, FS);
        let y = &cpu_saturation(&p, std::slice::from_ref(&x), BLOCK)[0];
        // Compare y[n] with x[n - L] past the start-up.
        let (from, to) = (2000, frames);
        let rms = |v: &mut dyn Iterator<Item = f64>| {
            let (s, n) = v.fold((0.0, 0usize), |(s, n), a| (s + a * a, n + 1));
            (s / n as f64).sqrt()
        };
        let y_rms = rms(&mut y[from..to].iter().map(|&v| v as f64));
        let x_rms = rms(&mut x[from - lat..to - lat].iter().map(|&v| v as f64));
        let gain_db = 20.0 * (y_rms / x_rms).log10();
        let res_db = 20.0
            * (rms(&mut y[from..to].iter().zip(&x[from - lat..to - lat]).map(|(&a, &b)| a as f64 - b as f64)) / x_rms)
                .log10();
        println!(
            "saturation {k}x mix {mix}, -60 dBFS {freq} Hz: gain {gain_db:+.5} dB, residual against x[n - {lat}] \
             {res_db:.1} dB"
        );
        assert!(gain_db.abs() <= 0.01, "{k}x: small-signal gain {gain_db} dB");
        // One frame of misalignment at 1 kHz would leave a residual near -18 dB.
        assert!(res_db <= -60.0, "{k}x: y is not x delayed by {lat} frames (residual {res_db:.1} dB)");
    }
}

#[test]
fn saturation_tanh_is_within_rounding_of_the_exact_one() {
    let mut worst = (0.0f64, 0.0f32);
    let mut worst_rel = (0.0f64, 0.0f32);
    for i in -400_000..=400_000 {
        let z = i as f32 * 5e-5;
        for z in [z, z * 1e-3, z * 1e-6] {
            let got = stemforge::cpu::saturation::tanh(z) as f64;
            let want = (z as f64).tanh();
            let err = (got - want).abs();
            if err > worst.0 {
                worst = (err, z);
            }
            if want != 0.0 && err / want.abs() > worst_rel.0 {
                worst_rel = (err / want.abs(), z);
            }
        }
    }
    println!(
        "saturation tanh: worst error {:.2e} at {}, worst relative {:.2e} at {}",
        worst.0, worst.1, worst_rel.0, worst_rel.1
    );
    assert!(worst.0 <= 2e-7, "tanh error {:e} at {}", worst.0, worst.1);
    assert!(worst_rel.0 <= 1e-6, "tanh relative error {:e} at {}", worst_rel.0, worst_rel.1);
    assert_eq!(stemforge::cpu::saturation::tanh(100.0), 1.0);
    assert_eq!(stemforge::cpu::saturation::tanh(-100.0), -1.0);
}

/// The worst aliased product of a 15 kHz sine at -6 dBFS through saturation at 12 dB drive, in dB
/// below the fundamental, and its frequency. Aliased: every component not at an odd harmonic of
/// 15 kHz below 24 kHz (only 15 kHz itself is). 15 kHz is 5/16 of 48 kHz, so the steady-state
/// output repeats every 16 frames and a 65536-point FFT (rectangular window) holds every component
/// in its own bin without leakage: all products land on multiples of 3 kHz.
fn worst_alias(oversampling: usize) -> (f64, f64) {
    let n = 65536;
    let (f0, skip) = (15_000.0, 4096);
    let p = params(12.0, 1.0, oversampling);
    let x = sine(f0, 10f64.powf(-6.0 / 20.0), 0.0, skip + n, FS);
    let y = &cpu_saturation(&p, &[x], BLOCK)[0];
    let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let mut input: Vec<f64> = y[skip..skip + n].iter().map(|&v| v as f64).collect();
    let mut spec = fft.make_output_vec();
    fft.process(&mut input, &mut spec).unwrap();
    let power: Vec<f64> = spec.iter().map(|c| c.norm_sqr()).collect();
    let bin_hz = FS as f64 / n as f64;
    let fund = (f0 / bin_hz).round() as usize;
    let harmonics: Vec<usize> = (1..)
        .step_by(2)
        .map(|k| k as f64 * f0)
        .take_while(|&f| f < FS as f64 / 2.0)
        .map(|f| (f / bin_hz).round() as usize)
        .collect();
    let (worst_bin, worst) = power
        .iter()
        .enumerate()
        .filter(|(b, _)| !harmonics.contains(b))
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(b, &p)| (b, p))
        .unwrap();
    (10.0 * (power[fund] / worst.max(1e-300)).log10(), worst_bin as f64 * bin_hz)
}

#[test]
fn saturation_aliasing_at_4x_is_60_db_down_and_strong_without_oversampling() {
    let mut figures = Vec::new();
    for k in [1, 2, 4, 8] {
        let (below, at) = worst_alias(k);
        println!(
            "saturation aliasing, 15 kHz at -6 dBFS, drive 12 dB, {k}x: worst aliased product {below:.1} dB below \
             the fundamental (at {at:.0} Hz)"
        );
        figures.push((k, below));
    }
    let at = |k| figures.iter().find(|f| f.0 == k).unwrap().1;
    assert!(at(4) >= 60.0, "4x: aliased products only {:.1} dB below the fundamental", at(4));
    assert!(at(8) >= 60.0, "8x: aliased products only {:.1} dB below the fundamental", at(8));
    // Without oversampling the third harmonic (45 kHz) folds to 3 kHz: the measure sees it.
    assert!(at(1) < 30.0, "1x: aliasing should be strong, measured {:.1} dB below the fundamental", at(1));
}

fn stereo(seed: u64, frames: usize, scale: f32) -> Vec<Vec<f32>> {
    (0..2).map(|c| music_noise(seed + c, frames, Noise::FullScale).iter().map(|v| v * scale).collect()).collect()
}

fn session(stems: &str, target: &str) -> String {
    format!(
        "name = \"s\"\nlayout = \"stereo\"\n{stems}\n[master]\n{target}ceiling_dbtp = -1.0\n\
         [[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"f32\"\n\
         [[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n"
    )
}

/// A session with saturation on two stems (one after an EQ, one without oversampling), rendered by
/// both engines: the masters agree within the whole-render contract.
#[test]
fn saturation_in_a_render() {
    let Some(_gpu) = gpu("saturation_in_a_render") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let frames = 48_000 * 2 + 333;
    write_wav(&dir.path().join("drums.wav"), &stereo(421, frames, 1.0), FS, 0);
    write_wav(&dir.path().join("bass.wav"), &stereo(423, frames, 0.8), FS, 0);
    write_wav(&dir.path().join("keys.wav"), &stereo(425, frames, 0.5), FS, 0);
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        session(
            "[[stems]]\nname = \"drums\"\npath = \"drums.wav\"\n\
             eq = [{ type = \"peak\", freq_hz = 2000.0, gain_db = 3.0, q = 1.0 }]\n\
             process = [{ type = \"saturation\", drive_db = 12.0, mix = 0.8 }]\n\
             [[stems]]\nname = \"bass\"\npath = \"bass.wav\"\n\
             process = [{ type = \"saturation\", drive_db = 9.0, oversampling = 1 }]\n\
             [[stems]]\nname = \"keys\"\npath = \"keys.wav\"\n",
            "target_lufs = -16.0\n",
        ),
    )
    .unwrap();
    crate::engines_agree(&good, dir.path(), "saturation in a render");
}

/// The engines compensate the stage's latency: a quiet stem through saturation at 0 dB drive, 8x,
/// comes out as the same stem rendered without it, sample for sample (within the tanh's rounding
/// off of unity and the filters' passband ripple), on both engines.
#[test]
fn saturation_latency_is_compensated_in_a_render() {
    let Some(_gpu) = gpu("saturation_latency_is_compensated_in_a_render") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let frames = 48_000 + 4321;
    // -40 dBFS music-like noise, its content below 16 kHz (the filters' passband).
    let x: Vec<Vec<f32>> = (0..2)
        .map(|c| {
            let s = sine(440.0 + 300.0 * c as f64, 0.007, 0.1, frames, FS);
            let t = sine(3100.0, 0.003, 0.7, frames, FS);
            s.iter().zip(&t).map(|(a, b)| a + b).collect()
        })
        .collect();
    write_wav(&dir.path().join("x.wav"), &x, FS, 0);
    write_wav(&dir.path().join("y.wav"), &stereo(431, frames, 0.01), FS, 0);
    let with = |process: &str| {
        session(
            &format!(
                "[[stems]]\nname = \"x\"\npath = \"x.wav\"\n{process}\n[[stems]]\nname = \"y\"\npath = \"y.wav\"\n"
            ),
            "",
        )
    };
    let plain = dir.path().join("plain.toml");
    let sat = dir.path().join("sat.toml");
    std::fs::write(&plain, with("")).unwrap();
    std::fs::write(&sat, with("process = [{ type = \"saturation\", drive_db = 0.0, oversampling = 8 }]")).unwrap();
    for e in ["cpu", "gpu"] {
        let (a, b) = (dir.path().join(format!("plain-{e}")), dir.path().join(format!("sat-{e}")));
        render(&plain, &a, e, &[], 0);
        render(&sat, &b, e, &[], 0);
        let (_, ya) = read_audio(&a.join("stems/x.wav"));
        let (_, yb) = read_audio(&b.join("stems/x.wav"));
        assert_eq!(ya[0].len(), frames, "{e}: length");
        // Away from the stem's abrupt start and end (the filters ring there, as any band limit does).
        let mut worst = (0.0f32, 0usize);
        for (ca, cb) in ya.iter().zip(&yb) {
            for (n, (p, q)) in ca.iter().zip(cb).enumerate().take(frames - 100).skip(100) {
                if (p - q).abs() > worst.0 {
                    worst = ((p - q).abs(), n);
                }
            }
        }
        let rel_db = 20.0 * (worst.0 as f64 / 0.01).log10();
        println!(
            "saturation latency in a render ({e}): worst difference {rel_db:.1} dB below the stem's peak (frame {})",
            worst.1
        );
        assert!(rel_db <= -60.0, "{e}: the saturated stem is not aligned with the plain one ({rel_db:.1} dB)");
    }
}
