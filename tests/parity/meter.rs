//! Parity of `loudness`: the device meter against the CPU meter (the `ebur128` crate): readings and per-step energies.
use crate::common::gpu_harness::{gpu, run_encoder, run_pass, upload};
use crate::common::{Rng, normalise};
use crate::{block_of, flat};
use stemforge::gpu::GpuContext;
use stemforge::gpu::context::Precision;

/// A program for the meter: per channel three tones and seeded noise bursts, in 1.7 s sections
/// whose levels jump by up to 35 dB (so that both gates and the LRA percentiles have work), peak
/// near full scale; channel 3 of a 5.1 program is an LFE-like 45 Hz tone (excluded from loudness
/// but in the peaks). Never zeros.
fn meter_program(channels: usize, frames: usize, fs: f64, seed: u64) -> Vec<Vec<f32>> {
    let levels_db = [-6.0, -24.0, -12.0, -38.0, -3.0, -18.0, -30.0, -9.0];
    (0..channels)
        .map(|c| {
            let mut rng = Rng::new(seed * 31 + c as u64);
            let tones = [97.0 * (1.0 + c as f64 * 0.13), 1000.0 + 170.0 * c as f64, 6300.0 - 400.0 * c as f64];
            let mut x: Vec<f32> = (0..frames)
                .map(|n| {
                    let t = n as f64 / fs;
                    let section = (t / 1.7) as usize;
                    let gain = 10f64.powf(levels_db[(section + c) % levels_db.len()] / 20.0);
                    let noise = if (t * 3.0).fract() < 0.4 { rng.uniform() } else { 0.05 * rng.uniform() };
                    let v = if channels == 6 && c == 3 {
                        (2.0 * std::f64::consts::PI * 45.0 * t).sin()
                    } else {
                        tones.iter().map(|f| (2.0 * std::f64::consts::PI * f * t).sin()).sum::<f64>() / 3.0 + noise
                    };
                    (gain * v) as f32
                })
                .collect();
            normalise(&mut x, 0.97);
            x
        })
        .collect()
}

/// The device meter over `x` in blocks: the `EnergyMeter` readings and, per complete 100 ms step,
/// its weighted mean-square energy (what the crate's `loudness_window(100)` reads at that step).
fn device_meter(
    ctx: &GpuContext,
    precision: Precision,
    x: &[Vec<f32>],
    fs: u32,
    block: usize,
    layout: stemforge::model::Layout,
) -> (stemforge::meter::LoudnessStats, Vec<f64>) {
    use stemforge::gpu::meter::DeviceMeter;
    use stemforge::meter::{EnergyMeter, MeterScope, channel_map, channel_weight};
    let (channels, frames) = (x.len(), x[0].len());
    let input = ctx.storage("x", (channels * block * 4) as u64);
    let st = DeviceMeter::new(ctx, precision, fs, channels, block, &input).expect("loudness stage");
    let mut meter = EnergyMeter::new(channels, fs, Some(layout), MeterScope::Full).expect("meter");
    let weights: Vec<f64> = channel_map(channels, Some(layout)).into_iter().map(channel_weight).collect();
    let step = meter.step();
    let mut step_energy = Vec::new();
    let mut open = 0.0;
    run_encoder(ctx, |e| st.reset(e));
    let (mut energies, mut peaks) = (Vec::new(), Vec::new());
    for j in 0..frames.div_ceil(block) {
        let first = j * block;
        let len = (frames - first).min(block);
        upload(ctx, &input, &flat(&block_of(x, j, block)));
        run_pass(ctx, |p| st.encode(p, j as u64, first as u64, len, 0));
        let e: Vec<u8> = ctx.read_back(&st.energy, 0, st.energy_bytes() as usize).expect("energies");
        let p: Vec<u8> = ctx.read_back(&st.peaks, 0, st.peaks_bytes() as usize).expect("peaks");
        st.decode(&e, &p, &mut energies, &mut peaks);
        meter.add_block(first as u64, len, st.steps(), &energies, &peaks);
        for s in 0..st.steps() {
            let abs = first / step + s;
            if abs * step >= first + len {
                break;
            }
            open += (0..channels).map(|c| weights[c] * energies[c * st.steps() + s]).sum::<f64>();
            if (abs + 1) * step <= first + len {
                step_energy.push(open / step as f64);
                open = 0.0;
            }
        }
    }
    (meter.result(), step_energy)
}

/// The CPU meter (the `ebur128` crate) over `x` in blocks, and per 100 ms step the crate's own
/// `loudness_window(100)` energy (a `Mode::M` instance with the same channel map, fed by step).
fn cpu_meter(
    x: &[Vec<f32>],
    fs: u32,
    block: usize,
    layout: stemforge::model::Layout,
) -> (stemforge::meter::LoudnessStats, Vec<f64>) {
    use stemforge::meter::{LoudnessMeter, channel_map};
    let (channels, frames) = (x.len(), x[0].len());
    let mut meter = LoudnessMeter::new(channels, fs, Some(layout)).expect("meter");
    for j in 0..frames.div_ceil(block) {
        let end = ((j + 1) * block).min(frames);
        let views: Vec<&[f32]> = x.iter().map(|c| &c[j * block..end]).collect();
        meter.add_planar(&views);
    }
    let mut window = ebur128::EbuR128::new(channels as u32, fs, ebur128::Mode::M).expect("crate meter");
    window.set_channel_map(&channel_map(channels, Some(layout))).expect("map");
    let step = (fs as usize + 5) / 10;
    let mut steps = Vec::new();
    for k in 0..frames / step {
        let views: Vec<&[f32]> = x.iter().map(|c| &c[k * step..(k + 1) * step]).collect();
        window.add_frames_planar_f32(&views).expect("feed");
        let l = window.loudness_window(100).expect("window");
        steps.push(if l.is_finite() { 10f64.powf((l + 0.691) / 10.0) } else { 0.0 });
    }
    (meter.result(), steps)
}

/// DESIGN.md "Parity contract": loudness and true-peak readings within 0.01 LU/dB.
const READING_TOLERANCE: f64 = 0.01;

/// Each reading of the device meter against the CPU meter, within `READING_TOLERANCE`; returns the
/// largest difference.
fn assert_readings(label: &str, cpu: &stemforge::meter::LoudnessStats, gpu: &stemforge::meter::LoudnessStats) -> f64 {
    let pairs = [
        ("integrated LUFS", cpu.integrated_lufs, gpu.integrated_lufs),
        ("LRA LU", cpu.lra_lu, gpu.lra_lu),
        ("max momentary LUFS", cpu.max_momentary_lufs, gpu.max_momentary_lufs),
        ("max short-term LUFS", cpu.max_short_term_lufs, gpu.max_short_term_lufs),
        ("sample peak dBFS", cpu.sample_peak_dbfs, gpu.sample_peak_dbfs),
        ("true peak dBTP", cpu.true_peak_dbtp, gpu.true_peak_dbtp),
    ];
    let mut worst = 0.0f64;
    for (what, a, b) in pairs {
        assert!(
            a.is_finite() && b.is_finite(),
            "{label}: {what}: cpu {a}, gpu {b}: the test program must give every reading"
        );
        let d = (a - b).abs();
        assert!(
            d <= READING_TOLERANCE,
            "{label}: {what}: cpu {a:.6}, gpu {b:.6}, |diff| {d:.2e} > {READING_TOLERANCE}"
        );
        println!("{label}: {what}: cpu {a:.6}, gpu {b:.6}, |diff| {d:.2e}");
        worst = worst.max(d);
    }
    worst
}

/// The cases: (layout, rate, block, frames); frames never a multiple of the block, and at
/// 44.1 kHz the 100 ms step (4410) is not a multiple of a chunk, so chunks straddle step
/// boundaries. 96 kHz runs the crate's 2x interpolator.
fn loudness_cases() -> Vec<(stemforge::model::Layout, u32, usize, usize)> {
    use stemforge::model::Layout;
    vec![
        (Layout::Stereo, 48000, 8192, 48000 * 12 + 777),
        (Layout::Surround51, 44100, 4096, 44100 * 11 + 1234),
        (Layout::Surround51, 48000, 16384, 48000 * 7 + 5),
        (Layout::Stereo, 96000, 8192, 96000 * 4 + 4097),
    ]
}

#[test]
fn meter() {
    use stemforge::gpu::meter::DeviceMeter;
    let Some(ctx) = gpu("meter") else {
        return;
    };
    // The device meter runs in f64 only: its f32 fallback read up to 0.022 LU off (see
    // `DeviceMeter::supports`), and the engine keeps the CPU meter there, which this checks.
    assert!(DeviceMeter::supports(Precision::F32, 48000, 8192).is_err(), "the f32 device meter must be refused");
    if !ctx.has_f64() {
        let x = ctx.storage("x", 4 * 8192);
        assert!(DeviceMeter::new(&ctx, Precision::F32, 48000, 2, 8192, &x).is_err());
        println!("loudness: no SHADER_F64 on this adapter, so the engine keeps the CPU meter (checked)");
        return;
    }
    for (layout, fs, block, frames) in loudness_cases() {
        let x = meter_program(layout.channels(), frames, fs as f64, fs as u64 + block as u64);
        let (want, _) = cpu_meter(&x, fs, block, layout);
        let (got, _) = device_meter(&ctx, Precision::F64, &x, fs, block, layout);
        let label = format!("loudness {} {fs} Hz block {block}", layout.name());
        let worst = assert_readings(&label, &want, &got);
        println!("{label}: largest reading difference {worst:.2e}");
    }
}

/// The device's K-weighted energy of every 100 ms step against the crate's own
/// `loudness_window(100)` at that step. Both run the same f64 recursion; the device's scan
/// reassociates it (chunk states through matrix powers), so they agree to rounding: 1e-9
/// relative is 4e-9 dB, a million times finer than the readings' 0.01 LU and far above f64's
/// rounding over these lengths (the filter's poles sit within 0.5 % of the unit circle, which
/// amplifies rounding by about 1e4: 1e-12).
#[test]
fn loudness_step_energies_match_the_crate() {
    let Some(ctx) = gpu("loudness_step_energies_match_the_crate") else {
        return;
    };
    if !ctx.has_f64() {
        panic!("this test checks the f64 device meter, and the adapter has no SHADER_F64");
    }
    for (layout, fs, block, frames) in loudness_cases() {
        let x = meter_program(layout.channels(), frames, fs as f64, fs as u64 + block as u64);
        let (_, want) = cpu_meter(&x, fs, block, layout);
        let (_, got) = device_meter(&ctx, Precision::F64, &x, fs, block, layout);
        assert_eq!(want.len(), got.len(), "{}: step counts", layout.name());
        let mut worst = (0.0f64, 0usize);
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            assert!(*w > 0.0, "step {k}: the test program must not be silent");
            let rel = ((g - w) / w).abs();
            if rel > worst.0 {
                worst = (rel, k);
            }
            assert!(
                rel <= 1e-9,
                "loudness {} {fs} Hz block {block}: step {k} (frames {}..): crate {w:e}, device {g:e}, relative {rel:.2e}",
                layout.name(),
                k * ((fs as usize + 5) / 10)
            );
        }
        println!(
            "loudness steps {} {fs} Hz block {block}: {} steps, largest relative difference {:.2e} at step {}",
            layout.name(),
            want.len(),
            worst.0,
            worst.1
        );
    }
}
