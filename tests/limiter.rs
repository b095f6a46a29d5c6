//! The limiter stages against brute-force evaluations of DESIGN.md "DSP" 6, and the whole limiter's
//! guarantee on hard signals as read by independent true-peak meters (the `ebur128` crate, ffmpeg).
use std::f64::consts::PI;
use std::path::Path;
use std::process::Command;

use stemforge::cpu::limiter::{Limiter, true_peak_margin_db};
use stemforge::cpu::limiter_hold::LimiterHold;
use stemforge::cpu::limiter_release::LimiterRelease;
use stemforge::cpu::limiter_smooth::LimiterSmooth;
use stemforge::cpu::oversample_peak::OversamplePeak;
use stemforge::dsp::oversampling::{OversamplingTable, design_oversampling};
use stemforge::engine::LimiterPlan;

const FS: u32 = 48000;

mod common;
use common::{Noise, Rng, music_noise, sine};

/// An attenuation-like envelope: stretches of 0 (no limiting), bursts of random height and length,
/// isolated spikes, slow ramps: every shape the hold, release and box see.
fn envelope(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    let mut a = vec![0.0f32; n];
    let mut i = 0;
    while i < n {
        let len = r.range(1, 400).min(n - i);
        match r.range(0, 4) {
            0 | 1 => {}
            2 => {
                let h = (r.unit() * 24.0) as f32;
                a[i..i + len].iter_mut().for_each(|v| *v = h * (0.5 + r.unit() as f32));
            }
            3 => a[i] = (r.unit() * 30.0) as f32,
            _ => {
                let h = r.unit() * 12.0;
                for (k, v) in a[i..i + len].iter_mut().enumerate() {
                    *v = (h * k as f64 / len as f64) as f32;
                }
            }
        }
        i += len;
    }
    a
}

/// Run a stage over `x` in calls of random length 1..=block (so block boundaries fall everywhere).
fn run_chunks(x: &[f32], block: usize, seed: u64, mut f: impl FnMut(&[f32], &mut [f32])) -> Vec<f32> {
    let mut r = Rng(seed);
    let mut y = vec![0.0f32; x.len()];
    let mut i = 0;
    while i < x.len() {
        let len = r.range(1, block).min(x.len() - i);
        f(&x[i..i + len], &mut y[i..i + len]);
        i += len;
    }
    y
}

fn rho_for(release_ms: f64) -> f32 {
    (-1000.0 / (release_ms * FS as f64)).exp() as f32
}

#[test]
fn hold_equals_brute_force() {
    for (l, block, seed) in [(1, 64, 1), (2, 100, 2), (7, 64, 3), (96, 1000, 4), (96, 50, 5), (480, 300, 6)] {
        let a = envelope(20000, seed);
        let mut hold = LimiterHold::new(l, block);
        let got = run_chunks(&a, block, seed + 100, |x, y| hold.process(x, y));
        for (n, &g) in got.iter().enumerate() {
            // Causal hold: A[n] = max a[k], k in [n-L+1, n], a = 0 before the start.
            let want = a[n.saturating_sub(l - 1)..=n].iter().fold(0.0f32, |m, &v| m.max(v));
            // A max of the same f32 values is exact: no tolerance.
            assert_eq!(g, want, "hold L={l} block={block}: frame {n}: got {g}, want {want}");
        }
    }
}

#[test]
fn release_equals_brute_force() {
    for (release_ms, block, seed) in [(1.0, 64, 11), (60.0, 1000, 12), (60.0, 37, 13), (500.0, 256, 14)] {
        let a = envelope(30000, seed);
        let rho = rho_for(release_ms);
        let mut rel = LimiterRelease::new(rho);
        let got = run_chunks(&a, block, seed + 100, |x, y| rel.process(x, y));
        // D[n] = max(A[n], rho * D[n-1]) in f64, D = 0 before the start.
        let mut d = 0.0f64;
        for (n, (&g, &an)) in got.iter().zip(&a).enumerate() {
            d = (an as f64).max(rho as f64 * d);
            // The stage keeps its state in f64 too, so only the output's rounding to f32 remains:
            // half an ulp, i.e. at most 6e-8 relative.
            let tol = d * 6.0e-8;
            assert!((g as f64 - d).abs() <= tol, "release {release_ms} ms block={block}: frame {n}: got {g}, want {d}");
        }
    }
}

#[test]
fn smooth_equals_brute_force() {
    for (l, block, seed) in [(1, 64, 21), (3, 100, 22), (96, 1024, 23), (96, 40, 24), (480, 512, 25)] {
        // Feed a released-like envelope (smooth() sees D, which is >= 0).
        let d = envelope(40000, seed);
        let mut sm = LimiterSmooth::new(l, block);
        let got = run_chunks(&d, block, seed + 100, |x, y| sm.process(x, y));
        let mut worst = 0.0f64;
        for (n, &g) in got.iter().enumerate() {
            // S[n] = (1/L) sum_{j<L} D[n-j], D = 0 before the start; g = 10^(-S/20).
            let s: f64 = (0..l).filter(|&j| j <= n).map(|j| d[n - j] as f64).sum::<f64>() / l as f64;
            let want = 10f64.powf(-s / 20.0);
            let rel = (g as f64 - want).abs() / want;
            worst = worst.max(rel);
            // f64 window sum and portable exp (errors ~1e-15), then g rounded DOWN to f32: less
            // than one f32 ulp, i.e. under 2^-23 relative.
            assert!(rel < 2f64.powi(-23) + 1e-12, "smooth L={l} block={block}: frame {n}: got {g}, want {want}");
            assert!(g as f64 <= want * (1.0 + 1e-12), "smooth: gain {g} above the exact {want} at frame {n}");
        }
        println!("smooth L={l} block={block}: worst relative error {worst:.2e}");
    }
}

/// Sub-sample j of frame n by the DESIGN's definition (x = 0 outside the signal), in f64.
fn upsampled(x: &[f32], t: &OversamplingTable, n: isize, j: usize) -> f64 {
    let tp = t.taps_per_phase;
    (0..tp)
        .map(|m| {
            let i = n + t.latency as isize - m as isize;
            let v = if i >= 0 && (i as usize) < x.len() { x[i as usize] as f64 } else { 0.0 };
            t.coeffs[j * tp + m] as f64 * v
        })
        .sum()
}

#[test]
fn oversample_peak_equals_brute_force() {
    use stemforge::cpu::oversample_peak::amplitude_db;
    // Stereo runs the channels one after another, 5.1 in parallel (OversamplePeak's PARALLEL_FROM):
    // both must give the same bits.
    for (k, channels) in [(1, 2), (2, 2), (4, 2), (8, 2), (4, 6)] {
        let table = design_oversampling(k);
        let mut r = Rng(31 + k as u64 + channels as u64);
        let n = 6000;
        let x: Vec<Vec<f32>> = (0..channels).map(|_| (0..n).map(|_| (r.gauss() * 0.6) as f32).collect()).collect();
        let ceiling = -3.0f32;
        let block = 500;
        let mut op = OversamplePeak::new(&table, channels, block);
        let mut got = vec![0.0f32; n];
        for (b, out) in got.chunks_mut(block).enumerate() {
            let xs: Vec<&[f32]> = x.iter().map(|c| &c[b * block..b * block + out.len()]).collect();
            op.process(&xs, ceiling, out);
        }
        for (m, &g) in got.iter().enumerate() {
            // Causal output m belongs to frame m - latency.
            let f = m as isize - table.latency as isize;
            // Bit-exact against the documented f32 evaluation order (phase sums m = 0, 1, ... with
            // separate multiply and add, max over channels and phases, a rounded up): whatever
            // vector path this machine takes must give these bits, so every machine does.
            let tp = table.taps_per_phase;
            let mut p32 = 0.0f32;
            for xc in &x {
                for j in 0..k {
                    let mut u = 0.0f32;
                    for mm in 0..tp {
                        let i = f + table.latency as isize - mm as isize;
                        let v = if i >= 0 && (i as usize) < n { xc[i as usize] } else { 0.0 };
                        u += table.coeffs[j * tp + mm] * v;
                    }
                    p32 = p32.max(u.abs());
                }
            }
            let v = amplitude_db((p32 as f64).max(f64::MIN_POSITIVE)) + 1e-10 - ceiling as f64;
            let exact = if v > 0.0 {
                let r = v as f32;
                if (r as f64) < v { r.next_up() } else { r }
            } else {
                0.0
            };
            assert_eq!(g.to_bits(), exact.to_bits(), "K={k}, {channels} ch: causal frame {m}: {g} vs {exact}");
            let p = (0..channels)
                .flat_map(|c| (0..k).map(move |j| (c, j)))
                .map(|(c, j)| upsampled(&x[c], &table, f, j).abs())
                .fold(0.0f64, f64::max);
            let want = (20.0 * p.log10() - ceiling as f64).max(0.0);
            // f32 polyphase sums (T terms of size <= 2.5) and an f32 log10: 1e-4 dB is about
            // 100 ulp of the sums' relative rounding converted to dB, far below anything audible
            // and far above what an indexing error (a wrong tap or phase) would give.
            assert!((g as f64 - want).abs() <= 1e-4, "K={k}: causal frame {m}: got {g} dB, want {want} dB");
        }
    }
}

#[test]
fn oversampling_reads_sines() {
    // A 0 dBFS sine below 20 kHz at 48 kHz must read its true peak within 0.1 dB (the table's
    // accuracy; the max over half a second of sub-samples visits every phase of the sine).
    for k in [2, 4, 8] {
        let table = design_oversampling(k);
        assert_eq!(table.coeffs.len(), k * table.taps_per_phase);
        let t = table.taps_per_phase;
        assert_eq!(
            &table.coeffs[..t],
            &{
                let mut u = vec![0.0f32; t];
                u[table.latency] = 1.0;
                u
            }[..],
            "phase 0 must be the unit impulse at the latency"
        );
        let mut worst = 0.0f64;
        for i in 0..60 {
            let f = 20.0 * (1000f64).powf(i as f64 / 59.0); // 20 Hz .. 20 kHz, log spaced
            let x: Vec<f32> = (0..24000).map(|n| (2.0 * PI * f * n as f64 / FS as f64 + 0.7).sin() as f32).collect();
            let mut op = OversamplePeak::new(&table, 1, x.len());
            let mut a = vec![0.0f32; x.len()];
            // Ceiling -40 dB: a = reading + 40 dB everywhere, so the reading comes back out.
            op.process(&[&x], -40.0, &mut a);
            let read = a[table.latency + 2000..].iter().fold(0.0f32, |m, &v| m.max(v)) as f64 - 40.0;
            worst = worst.max(read.abs());
            assert!(read.abs() <= 0.1, "K={k}: {f:.0} Hz sine reads {read:.3} dB");
        }
        println!("K={k}: worst sine reading error {worst:.3} dB");
    }
    let one = design_oversampling(1);
    assert_eq!((one.factor, one.taps_per_phase, one.latency, one.coeffs.clone()), (1, 1, 0, vec![1.0]));
}

// ---------------------------------------------------------------------------------------------
// The limiter's guarantee on hard signals.

fn plan(ceiling_db: f32, k: usize) -> LimiterPlan {
    LimiterPlan {
        ceiling_db,
        lookahead: (2.0 * FS as f64 / 1000.0).round() as usize,
        rho: rho_for(60.0),
        oversampling: design_oversampling(k),
    }
}

/// Run the limiter over the whole signal in blocks (flushing its latency with silence) and apply
/// the gain: y[c][n] = x[c][n] * g[n], g aligned to the input frame.
fn limit(x: &[Vec<f32>], plan: &LimiterPlan, block: usize) -> (Vec<Vec<f32>>, Vec<f32>) {
    let ch = x.len();
    let n = x[0].len();
    let mut lim = Limiter::new(plan, ch, block);
    let lat = lim.latency();
    assert_eq!(lat, plan.oversampling.latency + plan.lookahead - 1);
    let total = (n + lat).div_ceil(block) * block;
    let mut g_all = vec![0.0f32; total];
    let mut buf = vec![vec![0.0f32; block]; ch];
    for (b, g) in g_all.chunks_exact_mut(block).enumerate() {
        for (bc, xc) in buf.iter_mut().zip(x) {
            for (i, v) in bc.iter_mut().enumerate() {
                *v = xc.get(b * block + i).copied().unwrap_or(0.0);
            }
        }
        let refs: Vec<&[f32]> = buf.iter().map(|v| v.as_slice()).collect();
        lim.process(&refs, g);
    }
    let g = g_all[lat..lat + n].to_vec();
    let y = x.iter().map(|xc| xc.iter().zip(&g).map(|(a, b)| a * b).collect()).collect();
    (y, g)
}

fn ebur128_true_peak_db(y: &[Vec<f32>]) -> f64 {
    let mut m = ebur128::EbuR128::new(y.len() as u32, FS, ebur128::Mode::TRUE_PEAK).unwrap();
    let refs: Vec<&[f32]> = y.iter().map(|v| v.as_slice()).collect();
    m.add_frames_planar_f32(&refs).unwrap();
    let tp = (0..y.len() as u32).map(|c| m.true_peak(c).unwrap()).fold(0.0, f64::max);
    20.0 * tp.log10()
}

/// ffmpeg's `ebur128=peak=true` reading (linear, printed with 3 decimals in the frame metadata).
fn ffmpeg_true_peak_db(y: &[Vec<f32>], dir: &Path, name: &str) -> f64 {
    let path = dir.join(format!("{name}.wav"));
    let spec = hound::WavSpec {
        channels: y.len() as u16,
        sample_rate: FS,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for n in 0..y[0].len() {
        for c in y {
            w.write_sample(c[n]).unwrap();
        }
    }
    w.finalize().unwrap();
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-hide_banner", "-i"])
        .arg(&path)
        .args(["-af", "ebur128=peak=true:metadata=1,ametadata=print:key=lavfi.r128.true_peak"])
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed (DESIGN.md: the independent reference meter)");
    let text = String::from_utf8_lossy(&out.stderr);
    let v: f64 = text
        .lines()
        .filter_map(|l| l.split("lavfi.r128.true_peak=").nth(1))
        .next_back()
        .unwrap_or_else(|| panic!("no true peak in ffmpeg output for {name}:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    20.0 * v.log10()
}

/// Naive (aliased) square wave: every sample +-amp, the classic inter-sample-peak generator.
fn square(n: usize, f: f64, amp: f32) -> Vec<f32> {
    (0..n).map(|i| if (f * i as f64 / FS as f64).fract() < 0.5 { amp } else { -amp }).collect()
}

fn db(x: f64) -> f32 {
    10f64.powf(x / 20.0) as f32
}

/// A hard signal: name, channels, and whether it is loud from its very first sample.
struct Hard {
    name: String,
    x: Vec<Vec<f32>>,
    loud_at_frame_0: bool,
}

/// The hard signals. All but the `loud_at_frame_0` ones start after 10 ms of silence, so that
/// ffmpeg's mirrored start (see TRUE_PEAK_MARGIN_DB) sees silence, and every one of them is a
/// transient after silence as well.
fn hard_signals() -> Vec<Hard> {
    let n = 24000; // 0.5 s: dozens of release cycles, quick to meter
    let mut r = Rng(77);
    let mut v: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
    let stereo = |s: Vec<f32>| vec![s.clone(), s];
    for (f, g) in [(1000.0, 6.0), (997.0, 6.0), (3000.0, 3.0), (5100.0, 3.0), (7919.0, 9.0), (11000.0, 3.0)] {
        v.push((format!("square {f} Hz +{g} dB"), stereo(square(n, f, db(g)))));
    }
    // fs/4 sine at 45 degrees: every sample at 0.707 of the peak; samples at +3 dBFS, true peak +6.
    v.push((
        "fs/4 sine at 45 deg, samples +3 dBFS".into(),
        stereo(sine(12000.0, db(3.0) as f64 * 2f64.sqrt(), PI / 4.0, n, FS)),
    ));
    for f in [8000.0, 15000.0, 16000.0, 17000.0, 19000.0, 20000.0, 21000.0, 22500.0] {
        v.push((format!("sine {f} Hz +6 dB"), stereo(sine(f, db(6.0) as f64, 0.3, n, FS))));
    }
    // Worst-case inter-sample pattern: x[k] = sign(sinc(k - 31.5)) over 64 samples, repeated:
    // the interpolated value at k = 31.5 is the sum of |sinc|, several dB above the samples.
    let pat: Vec<f32> = (0..64)
        .map(|k| {
            let t = k as f64 - 31.5;
            if (PI * t).sin() / t >= 0.0 { 1.0 } else { -1.0 }
        })
        .collect();
    v.push(("sign(sinc) pattern".into(), stereo((0..n).map(|i| pat[i % 64]).collect())));
    // Random +-1.41 (binary white noise): dense inter-sample peaks at every frequency.
    let mut bin = || (0..n).map(|_| if r.unit() < 0.5 { db(3.0) } else { -db(3.0) }).collect::<Vec<f32>>();
    v.push(("binary noise +3 dB".into(), vec![bin(), bin()]));
    // Transients after silence: +12 dBFS clicks, a 2 kHz square burst, a DC step.
    let mut s = vec![0.0f32; n];
    s[9000] = db(12.0);
    s[15000] = -db(12.0);
    s[15001] = db(12.0);
    v.push(("clicks after silence".into(), stereo(s)));
    let mut s = vec![0.0f32; n];
    s[8000..12000].copy_from_slice(&square(4000, 2000.0, db(6.0)));
    v.push(("square burst after silence".into(), stereo(s)));
    let mut s = vec![0.0f32; n];
    s[10000..].iter_mut().for_each(|v| *v = db(6.0));
    v.push(("DC step".into(), stereo(s)));
    for f in [8000.0, 15000.0, 19000.0] {
        let mut s = vec![0.0f32; n];
        s[9600..].copy_from_slice(&sine(f, db(6.0) as f64, 0.3, n - 9600, FS));
        v.push((format!("{f} Hz sine onset after silence"), stereo(s)));
    }
    // Noise bursts: 20 ms of music-like noise at random levels up to +12 dB, 30 ms gaps.
    let mut s = music_noise(5, n, Noise::BassLift(0.25));
    for (i, v) in s.iter_mut().enumerate() {
        let burst = (i / 960) % 5 < 2;
        *v *= if burst { db(12.0 * ((i / 2400) % 3) as f64 / 2.0) * 2.0 } else { 0.0 };
    }
    v.push(("noise bursts".into(), vec![s, music_noise(6, n, Noise::BassLift(0.1))]));
    // Hot program: music-like noise at 0 dBFS RMS, limited all the time; and a bright one.
    v.push((
        "hot music noise".into(),
        vec![music_noise(8, n, Noise::BassLift(1.0)), music_noise(9, n, Noise::BassLift(1.0))],
    ));
    let bright = |x: Vec<f32>| {
        let mut prev = 0.0f32;
        x.into_iter()
            .map(|v| {
                let d = v - prev;
                prev = v;
                v + 1.5 * d
            })
            .collect::<Vec<f32>>()
    };
    v.push((
        "bright music noise".into(),
        vec![bright(music_noise(28, n, Noise::BassLift(0.3))), bright(music_noise(29, n, Noise::BassLift(0.3)))],
    ));
    // Torture: full-band white noise at -3 dBFS RMS (peaks ~+10 dBFS), 4 s.
    let mut white = || (0..192000).map(|_| (r.gauss() * 0.7) as f32).collect::<Vec<f32>>();
    v.push(("white noise -3 dBFS RMS, 4 s".into(), vec![white(), white()]));
    // Sweep 20 Hz .. 22 kHz at +3 dB.
    let s: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / FS as f64;
            let (f0, f1, dur) = (20.0f64, 22000.0f64, n as f64 / FS as f64);
            let k = (f1 / f0).ln();
            (db(3.0) as f64 * (2.0 * PI * f0 * dur / k * ((t / dur * k).exp() - 1.0)).sin()) as f32
        })
        .collect();
    v.push(("log sweep +3 dB".into(), stereo(s)));
    // 5.1 with a hot LFE: the linked gain must hold the 40 Hz LFE at +6 dBFS down.
    let mut ch: Vec<Vec<f32>> = (0..6).map(|c| music_noise(40 + c, n, Noise::BassLift(0.15))).collect();
    ch[3] = sine(40.0, db(6.0) as f64, 0.0, n, FS);
    v.push(("5.1 hot LFE".into(), ch));

    let mut hard: Vec<Hard> = v
        .into_iter()
        .map(|(name, x)| Hard {
            name,
            x: x.into_iter().map(|c| [vec![0.0f32; 480], c].concat()).collect(),
            loud_at_frame_0: false,
        })
        .collect();
    // Loud from the very first sample (the interpolator's pre-ringing before frame 0 counts).
    for (name, s) in [
        ("15 kHz sine from frame 0", sine(15000.0, db(6.0) as f64, 0.3, n, FS)),
        ("23 kHz sine from frame 0", sine(23000.0, db(3.0) as f64, 1.2, n, FS)),
        ("square 5100 Hz from frame 0", square(n, 5100.0, db(3.0))),
    ] {
        hard.push(Hard { name: name.into(), x: vec![s.clone(), s], loud_at_frame_0: true });
    }
    hard
}

/// The limiter's guarantee (DESIGN.md "DSP" 6): with the plan aiming at ceiling_dbtp - margin, no
/// sample of y = x * g exceeds the aim and neither independent meter reads a true peak above
/// ceiling_dbtp. Prints how far each meter reads over the aim: the margin's measurement.
#[test]
fn limited_hard_signals_stay_under_the_true_peak_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let ceiling_dbtp = -1.0f32;
    let signals = hard_signals();
    for k in [2, 4, 8] {
        let margin = true_peak_margin_db(k).unwrap();
        let p = plan(ceiling_dbtp - margin, k);
        let aim = p.ceiling_db as f64;
        let (mut worst_crate, mut worst_ff) = (f64::MIN, f64::MIN);
        for (i, h) in signals.iter().enumerate() {
            // 1000-frame blocks: not a power of two, so block edges fall everywhere.
            let (y, _) = limit(&h.x, &p, 1000);
            // The limiter rounds a up and g down, so x * g is at most the aim before the product's
            // own rounding to f32 (half an ulp, 2^-24 relative); 2^-23 allows that with room.
            let lin = 10f64.powf(aim / 20.0) * (1.0 + 2f64.powi(-23));
            for (c, yc) in y.iter().enumerate() {
                if let Some((n, v)) = yc.iter().enumerate().find(|(_, v)| v.abs() as f64 > lin) {
                    panic!("K={k} {}: channel {c} frame {n}: sample {v} over the aim {aim} dB", h.name);
                }
            }
            let tp = ebur128_true_peak_db(&y);
            worst_crate = worst_crate.max(tp - aim);
            assert!(
                tp <= ceiling_dbtp as f64,
                "K={k} {}: ebur128 true peak {tp:.3} dBTP over the ceiling {ceiling_dbtp}",
                h.name
            );
            let ff = if h.loud_at_frame_0 {
                // ffmpeg meters a mirrored copy of the first samples here (TRUE_PEAK_MARGIN_DB):
                // only the BS.1770-4 filter-from-rest reading above holds.
                f64::NAN
            } else {
                let ff = ffmpeg_true_peak_db(&y, dir.path(), &format!("k{k}_{i}"));
                worst_ff = worst_ff.max(ff - aim);
                // ffmpeg prints the linear peak with 3 decimals: allow its rounding (0.0005).
                let limit_lin = 10f64.powf(ceiling_dbtp as f64 / 20.0) + 0.0005;
                assert!(
                    10f64.powf(ff / 20.0) <= limit_lin,
                    "K={k} {}: ffmpeg true peak {ff:.3} dBTP over the ceiling {ceiling_dbtp}",
                    h.name
                );
                ff
            };
            println!("K={k} {:38} over the aim: ebur128 {:+.3} dB, ffmpeg {:+.3} dB", h.name, tp - aim, ff - aim);
        }
        println!(
            "K={k}, margin {margin} dB: worst over the aim: ebur128 {worst_crate:+.3} dB, ffmpeg {worst_ff:+.3} dB"
        );
    }
    assert_eq!(true_peak_margin_db(1), None, "a sample-peak limiter guarantees no true peak");
}

/// The whole chain against DESIGN.md "DSP" 6 evaluated literally in f64 (look-ahead hold from
/// n = -(L-1), release, box), checking the latency bookkeeping of `Limiter`.
#[test]
fn limiter_gain_equals_design_formulas() {
    let lead_in = 64; // > table latency: a[k] = 0 for k < 0 holds literally
    let n = 8000;
    let x: Vec<Vec<f32>> = (0..2)
        .map(|c| [vec![0.0f32; lead_in], music_noise(60 + c, n - lead_in, Noise::BassLift(0.8))].concat())
        .collect();
    for k in [1, 4] {
        let p = plan(-1.5, k);
        let (_, g) = limit(&x, &p, 700);
        let t = &p.oversampling;
        let l = p.lookahead as isize;
        let rho = p.rho as f64;
        // a[k] for k in [0, n + L): sub-samples by the table in f64 (x = 0 outside the signal).
        let a: Vec<f64> = (0..n as isize + l)
            .map(|f| {
                let pk = (0..2)
                    .flat_map(|c| (0..t.factor).map(move |j| (c, j)))
                    .map(|(c, j)| upsampled(&x[c], t, f, j).abs())
                    .fold(0.0f64, f64::max);
                (20.0 * pk.log10() - p.ceiling_db as f64).max(0.0)
            })
            .collect();
        let a_at = |i: isize| if i < 0 { 0.0 } else { a[i as usize] };
        // D from n = -(L-1), D = 0 before; S box of L.
        let mut d = vec![0.0f64; (n as isize + l - 1) as usize];
        let mut prev = 0.0;
        for (i, dv) in d.iter_mut().enumerate() {
            let m = i as isize - (l - 1);
            let hold = (m..m + l).map(a_at).fold(0.0f64, f64::max);
            prev = hold.max(rho * prev);
            *dv = prev;
        }
        let mut worst = 0.0f64;
        for (i, &gi) in g.iter().enumerate() {
            // d index of frame m is m + L - 1.
            let s: f64 = (0..l).map(|j| d[(i as isize - j + l - 1) as usize]).sum::<f64>() / l as f64;
            let want = 10f64.powf(-s / 20.0);
            let rel = (gi as f64 - want).abs() / want;
            worst = worst.max(rel);
            // f32 polyphase sums put ~1e-6 dB of noise into a, i.e. ~1e-7 relative gain, plus g's
            // own rounding: 1e-6 relative (-120 dB) catches any misalignment, which shows up as
            // whole dB.
            assert!(rel <= 1e-6, "K={k}: frame {i}: gain {gi}, want {want} (rel {rel:.2e})");
        }
        println!("K={k}: worst relative gain error {worst:.2e}");
    }
}

/// The portable log and exp the limiter uses instead of libm, against std's f64 functions over
/// their whole working range.
#[test]
fn portable_log_and_exp_are_accurate() {
    use stemforge::cpu::limiter_smooth::db_to_gain;
    use stemforge::cpu::oversample_peak::amplitude_db;
    let mut r = Rng(123);
    let (mut worst_log, mut worst_exp) = (0.0f64, 0.0f64);
    for i in 0..200_000 {
        // Amplitudes from 1e-12 to 1e6 (f32 peaks of any signal), log-uniform, plus exact powers
        // of two and the sqrt(2) split point of the reduction.
        let p = match i {
            0 => 1.0,
            1 => 2.0,
            2 => std::f64::consts::SQRT_2,
            3 => 0.5,
            _ => 10f64.powf(-12.0 + 18.0 * r.unit()),
        };
        let want = 20.0 * p.log10();
        let err = (amplitude_db(p) - want).abs();
        worst_log = worst_log.max(err);
        // Attenuations from 0 to 300 dB.
        let att = if i == 0 { 0.0 } else { 300.0 * r.unit() * r.unit() };
        let want = 10f64.powf(-att / 20.0);
        let rel = (db_to_gain(att) - want).abs() / want;
        worst_exp = worst_exp.max(rel);
    }
    println!("amplitude_db worst {worst_log:.2e} dB, db_to_gain worst {worst_exp:.2e} relative");
    // The stages add biases of 1e-10 dB and 1e-13 relative to stay on the safe side of the exact
    // value; these bounds are what those biases must cover (and std's own error is ~1 ulp).
    assert!(worst_log < 1e-12, "amplitude_db off by {worst_log:e} dB");
    assert!(worst_exp < 1e-14, "db_to_gain off by {worst_exp:e} relative");
}

/// The render's aim rule (`aim_bounds`, `next_margin_db`): a reading in [ceiling - 0.25,
/// ceiling - 0.03] stays; outside it the margin moves by the miss towards ceiling - 0.1, in 0.01 dB
/// steps, within the bounds; a reading under the band stays where the limiter took nothing (its aim
/// does not shape that peak); 2x keeps its fixed 1.5 dB and 1x has no true-peak aim.
#[test]
fn the_aim_moves_by_the_measured_miss() {
    use stemforge::cpu::limiter::{aim_bounds, next_margin_db};
    let b = aim_bounds(4).unwrap();
    assert_eq!(aim_bounds(8), Some(b));
    assert_eq!((b.first_db, b.least_db, b.most_db), (0.1, 0.05, 0.6));
    assert_eq!(b.most_db as f32, true_peak_margin_db(4).unwrap(), "the lowest aim is the limiter-level guarantee");
    let c = -1.0;
    // In the band: kept.
    for tp in [-1.25, -1.1, -1.03] {
        assert_eq!(next_margin_db(&b, c, 0.1, tp, true), None, "{tp}");
    }
    // Over it (bright noise reads +0.10 over the aim -1.1): 0.1 dB lower, read -1.0 -> margin 0.2.
    assert_eq!(next_margin_db(&b, c, 0.1, -0.996, true), Some(0.2));
    // Over the ceiling by far: down to the limiter-level guarantee, no further.
    assert_eq!(next_margin_db(&b, c, 0.1, -0.2, true), Some(0.6));
    assert_eq!(next_margin_db(&b, c, 0.6, -0.9, true), None, "at the bound: nothing left to move");
    // Under it: up by the miss where the limiter works, never above ceiling - 0.05.
    assert_eq!(next_margin_db(&b, c, 0.6, -1.5, true), Some(0.2));
    assert_eq!(next_margin_db(&b, c, 0.1, -1.4, true), Some(0.05));
    assert_eq!(next_margin_db(&b, c, 0.1, -1.4, false), None, "the limiter took nothing");
    assert_eq!(next_margin_db(&b, c, 0.1, f64::NEG_INFINITY, true), None, "silence");
    let two = aim_bounds(2).unwrap();
    assert_eq!((two.first_db, two.least_db, two.most_db), (1.5, 1.5, 1.5));
    assert_eq!(next_margin_db(&two, c, 1.5, -2.5, true), None);
    assert_eq!(aim_bounds(1), None);
}
