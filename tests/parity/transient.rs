//! Parity of `transient` (design/mastering.md): the CPU twin and the GPU stage over several blocks
//! at full scale (the followers carried across blocks); the contract's user checks on a decaying
//! tone burst; and the stage in whole renders on both engines.
use crate::common::gpu_harness::gpu;
use crate::common::gpu_parity::{STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_parity};
use crate::common::{Noise, music_noise, write_wav};
use stemforge::model::Transient;

const BLOCK: usize = 4096;
const FS: u32 = 48_000;

fn params(attack_db: f64, sustain_db: f64) -> Transient {
    Transient { attack_db, sustain_db, fast_ms: 1.0, slow_ms: 20.0, release_ms: 150.0 }
}

/// The CPU twin over `x` in blocks.
fn cpu_transient(p: &Transient, x: &[Vec<f32>]) -> Vec<Vec<f32>> {
    crate::cpu_process(&mut stemforge::cpu::transient::Transient::new(p, FS), x, BLOCK)
}

/// Bursts of music noise with silences between them, so that onsets and tails recur across blocks.
fn bursty(seed: u64, frames: usize) -> Vec<f32> {
    let x = music_noise(seed, frames, Noise::FullScale);
    x.iter()
        .enumerate()
        .map(|(n, v)| {
            let t = (n % 6000) as f32 / 6000.0;
            v * if t < 0.7 { (-6.0 * t).exp() } else { 0.0 }
        })
        .collect()
}

#[test]
fn transient() {
    let Some(ctx) = gpu("transient") else {
        return;
    };
    let blocks = 4;
    let frames = blocks * BLOCK;
    let cases = [
        (2, params(6.0, 0.0)),
        (2, params(0.0, -6.0)),
        (2, params(12.0, -12.0)),
        (1, params(-24.0, 24.0)),
        (3, Transient { attack_db: 9.0, sustain_db: 4.0, fast_ms: 0.3, slow_ms: 8.0, release_ms: 400.0 }),
    ];
    for (channels, p) in cases {
        let x: Vec<Vec<f32>> = (0..channels).map(|c| bursty(501 + c as u64, frames)).collect();
        let gpu_out = crate::gpu_process(&ctx, &x, BLOCK, &format!("{p:?}"), |buf, first| {
            Box::new(
                stemforge::gpu::transient::Transient::new(&ctx, &p, FS, channels, BLOCK, buf, first)
                    .expect("transient"),
            )
        });
        let cpu_out = cpu_transient(&p, &x);
        let what = format!(
            "transient attack {} dB, sustain {} dB, {}/{}/{} ms, {channels} ch",
            p.attack_db, p.sustain_db, p.fast_ms, p.slow_ms, p.release_ms
        );
        let r = assert_parity(&what, &cpu_out, &gpu_out, STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
        println!("{what}: residual peak {:.1} dBFS, rms {:.1} dBFS", r.peak_dbfs, r.rms_dbfs);
    }
}

/// 50 ms of silence, then a 1 kHz tone starting at 0.5 and decaying with a 30 ms time constant,
/// on two channels (the right one 6 dB lower: the gain is linked, so both move alike).
fn burst() -> (usize, Vec<Vec<f32>>) {
    let onset = FS as usize / 20;
    let frames = onset + FS as usize * 2 / 5;
    let left: Vec<f32> = (0..frames)
        .map(|n| {
            if n < onset {
                return 0.0;
            }
            let t = (n - onset) as f64 / FS as f64;
            (0.5 * (-t / 0.030).exp() * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as f32
        })
        .collect();
    let right = left.iter().map(|v| v * 0.5).collect();
    (onset, vec![left, right])
}

/// The level change, dB, of `y` against `x` over [from_ms, to_ms) after the onset (energy ratio).
fn change_db(x: &[f32], y: &[f32], onset: usize, from_ms: f64, to_ms: f64) -> f64 {
    let at = |ms: f64| onset + (ms * FS as f64 / 1000.0) as usize;
    let e = |v: &[f32]| v[at(from_ms)..at(to_ms)].iter().map(|&a| a as f64 * a as f64).sum::<f64>();
    10.0 * (e(y) / e(x)).log10()
}

#[test]
fn transient_shapes_a_decaying_tone_burst() {
    let (onset, x) = burst();
    // Neutral settings leave the signal bit for bit (exp of 0 is exactly 1).
    assert_eq!(cpu_transient(&params(0.0, 0.0), &x), x);
    let attack = cpu_transient(&params(6.0, 0.0), &x);
    let sustain = cpu_transient(&params(0.0, -6.0), &x);
    for (c, name) in [(0, "left"), (1, "right")] {
        let a_head = change_db(&x[c], &attack[c], onset, 0.0, 5.0);
        let a_tail = change_db(&x[c], &attack[c], onset, 100.0, 400.0);
        let s_head = change_db(&x[c], &sustain[c], onset, 0.0, 5.0);
        let s_tail = change_db(&x[c], &sustain[c], onset, 100.0, 400.0);
        println!(
            "transient on a decaying 1 kHz burst ({name}): attack_db 6: first 5 ms {a_head:+.2} dB, tail from 100 ms \
             {a_tail:+.2} dB; sustain_db -6: first 5 ms {s_head:+.2} dB, tail from 100 ms {s_tail:+.2} dB"
        );
        assert!((a_head - 6.0).abs() <= 1.0, "attack_db 6 lifts the first 5 ms by {a_head:.2} dB, not 6 ± 1");
        assert!(a_tail.abs() <= 0.5, "attack_db 6 moves the tail by {a_tail:.2} dB (0 ± 0.5 expected)");
        assert!((s_tail + 6.0).abs() <= 1.0, "sustain_db -6 moves the tail by {s_tail:.2} dB, not -6 ± 1");
        assert!(s_head.abs() <= 1.0, "sustain_db -6 moves the first 5 ms by {s_head:.2} dB (0 ± 1 expected)");
    }
    // Linked: the same gain on both channels, frame by frame.
    for y in [&attack, &sustain] {
        for n in (0..x[0].len()).step_by(7).filter(|&n| x[1][n].abs() > 1e-6) {
            let (gl, gr) = (y[0][n] / x[0][n], y[1][n] / x[1][n]);
            assert!((gl - gr).abs() <= 1e-5 * gl.abs(), "frame {n}: gains {gl} and {gr} differ");
        }
    }
}

/// A session with transient shapers on two stems, rendered by both engines: the masters agree
/// within the whole-render contract.
#[test]
fn transient_in_a_render() {
    let Some(_gpu) = gpu("transient_in_a_render") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let frames = 48_000 * 2 + 333;
    let stereo = |seed: u64| vec![bursty(seed, frames), bursty(seed + 1, frames)];
    write_wav(&dir.path().join("drums.wav"), &stereo(511), FS, 0);
    write_wav(&dir.path().join("perc.wav"), &stereo(513), FS, 0);
    let session = dir.path().join("t.toml");
    std::fs::write(
        &session,
        "name = \"t\"\nlayout = \"stereo\"\n\
         [[stems]]\nname = \"drums\"\npath = \"drums.wav\"\n\
         eq = [{ type = \"peak\", freq_hz = 2000.0, gain_db = 3.0, q = 1.0 }]\n\
         process = [{ type = \"transient\", attack_db = 6.0, sustain_db = -3.0 }, { type = \"saturation\" }]\n\
         [[stems]]\nname = \"perc\"\npath = \"perc.wav\"\n\
         process = [{ type = \"transient\", sustain_db = 6.0, fast_ms = 0.5, slow_ms = 30.0, release_ms = 300.0 }]\n\
         [master]\ntarget_lufs = -16.0\nceiling_dbtp = -1.0\n\
         [[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"f32\"\n",
    )
    .unwrap();
    crate::engines_agree(&session, dir.path(), "transient in a render");
}
