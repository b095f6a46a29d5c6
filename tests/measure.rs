//! `measure`: BS.1770-4 loudness against EBU Tech 3341 cases built from their definitions, against
//! ffmpeg's ebur128 filter as an independent meter, and the exact JSON shape.
mod common;

use std::path::Path;
use std::process::Command;

use common::{Noise, Rng, db_to_amp, music_noise, sine, write_wav};
use stemforge::analysis::measure::{measure, measure_one};
use stemforge::meter::{LoudnessMeter, MeterScope, channel_map, measure_file};
use stemforge::model::Layout;
use stemforge::report::measure::{to_json, to_text};

const FS: u32 = 48_000;

/// EBU Tech 3341 Table 1 allows ±0.1 LU on integrated, momentary and short-term loudness for a
/// compliant meter; the crate implements BS.1770-4 exactly, so this is the standard's own figure.
const TECH3341_LU: f64 = 0.1;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Tech 3341 cases 1 and 2: a 1 kHz sine in both channels at −23 / −33 dBFS reads −23 / −33 LUFS
/// (the −0.691 dB constant of BS.1770 cancels the K-filter's gain at 1 kHz; two channels of mean
/// square A²/2 sum to A²). 20 s as in the Tech 3341 files, so momentary and short-term have reached
/// a steady state long before the end.
#[test]
fn tech3341_stereo_sine_at_minus_23_and_minus_33() {
    let dir = tmp();
    for level in [-23.0, -33.0] {
        let s = sine(1000.0, db_to_amp(level), 0.0, 20 * FS as usize, FS);
        let path = dir.path().join(format!("sine{level}.wav"));
        write_wav(&path, &[s.clone(), s], FS, 0);
        let st = measure_file(&path).unwrap();
        assert!((st.integrated_lufs - level).abs() <= TECH3341_LU, "I = {} for {level}", st.integrated_lufs);
        assert!((st.max_momentary_lufs - level).abs() <= TECH3341_LU, "M = {}", st.max_momentary_lufs);
        assert!((st.max_short_term_lufs - level).abs() <= TECH3341_LU, "S = {}", st.max_short_term_lufs);
        // A steady tone has no loudness range (Tech 3342: LRA of a constant signal is 0); 0.1 LU
        // leaves room for the gating blocks at the start and end.
        assert!(st.lra_lu.abs() <= 0.1, "LRA = {}", st.lra_lu);
        // The sample peak of a 1 kHz sine at 48 kHz hits the crest to within 0.01 dB.
        assert!((st.sample_peak_dbfs - level).abs() < 0.01, "sample peak = {}", st.sample_peak_dbfs);
    }
}

/// The gates (BS.1770-4 2.1): a programme of −60 / −23 / −60 dBFS tone, 10 s each. The quiet parts
/// are more than 10 LU under the loud part, so the relative gate drops them. What remains, from the
/// definition (400 ms blocks every 100 ms): 97 blocks wholly in the loud part, and at each edge 3
/// blocks holding 1/4, 2/4, 3/4 of it, all above the gate: mean energy (97 + 2·1.5)/103 of the loud
/// part's, i.e. −23 + 10·log10(100/103) = −23.13 LUFS. Without the relative gate, the 194 quiet
/// blocks would pull it to about −27.7.
#[test]
fn relative_gate_drops_quiet_passages() {
    let dir = tmp();
    let n = 10 * FS as usize;
    let loud = sine(1000.0, db_to_amp(-23.0), 0.0, n, FS);
    // −60 dBFS is more than 10 LU below the loud part: the relative gate (BS.1770-4 2.1, −10 LU)
    // removes it, so the integrated reading stays at the loud part's −23.
    let quiet = sine(1000.0, db_to_amp(-60.0), 0.0, n, FS);
    let ch: Vec<f32> = quiet.iter().chain(&loud).chain(&quiet).copied().collect();
    let path = dir.path().join("gate.wav");
    write_wav(&path, &[ch.clone(), ch], FS, 0);
    let st = measure_file(&path).unwrap();
    let want = -23.0 + 10.0 * (100.0f64 / 103.0).log10();
    assert!((st.integrated_lufs - want).abs() <= TECH3341_LU, "I = {} vs {want}", st.integrated_lufs);
    // Loudness range (Tech 3342): the 3 s windows wholly in the quiet parts sit 37 LU down, below
    // its −20 LU relative gate, so they are dropped; the windows ramping over the edges remain and
    // give a few LU. Counting the quiet windows would put the 10th percentile at −60 (LRA ≈ 37).
    assert!(st.lra_lu > 0.5 && st.lra_lu < 10.0, "LRA = {}", st.lra_lu);
}

/// Tech 3341 true-peak case (cases 15–19 are built this way): a sine at fs/4 with a 45° phase
/// offset has every sample at ±A·sin 45°, so the sample peak is 3.01 dB under the true peak A.
/// Tech 3341 accepts a true-peak meter reading within +0.2 / −0.4 dB of the true value.
#[test]
fn tech3341_true_peak_of_fs_over_4_sine_at_45_degrees() {
    let dir = tmp();
    let a = db_to_amp(-6.0);
    let s = sine(FS as f64 / 4.0, a, std::f64::consts::FRAC_PI_4, 5 * FS as usize, FS);
    let path = dir.path().join("tp.wav");
    write_wav(&path, &[s.clone(), s], FS, 0);
    let st = measure_file(&path).unwrap();
    assert!((st.sample_peak_dbfs - (-6.0 - 3.0103)).abs() < 0.01, "sample peak {}", st.sample_peak_dbfs);
    let err = st.true_peak_dbtp - -6.0;
    assert!((-0.4..=0.2).contains(&err), "true peak {} dBTP, expected -6.0 (+0.2/-0.4)", st.true_peak_dbtp);
    assert!(st.true_peak_dbtp - st.sample_peak_dbfs > 2.6, "true peak must read ~3 dB above the samples");
}

/// The channel weights, from BS.1770-4's definition: L = 10·log10(Σ w_i·z_i) − 0.691, where a
/// 1 kHz sine of amplitude A has K-weighted z = A²/2 · 10^(0.691/10). A hot LFE must not count.
fn weighted_sine_program(levels_db: &[f64], weights: &[f64]) -> (Vec<Vec<f32>>, f64) {
    let n = 5 * FS as usize;
    let planar: Vec<Vec<f32>> =
        levels_db.iter().enumerate().map(|(c, &l)| sine(1000.0, db_to_amp(l), c as f64 * 0.7, n, FS)).collect();
    let power: f64 = levels_db.iter().zip(weights).map(|(&l, &w)| w * db_to_amp(l).powi(2) / 2.0).sum();
    (planar, 10.0 * power.log10())
}

#[test]
fn surround_weights_5_1_and_7_1_exclude_lfe() {
    let dir = tmp();
    // 5.1: L R C LFE Ls Rs; the LFE at −3 dBFS would add ~20 LU if it counted.
    let (p51, want51) =
        weighted_sine_program(&[-28.0, -28.0, -30.0, -3.0, -31.0, -31.0], &[1.0, 1.0, 1.0, 0.0, 1.41, 1.41]);
    let path = dir.path().join("s51.wav");
    write_wav(&path, &p51, FS, 0);
    let st = measure_file(&path).unwrap();
    assert!((st.integrated_lufs - want51).abs() <= TECH3341_LU, "5.1: {} vs {want51}", st.integrated_lufs);
    // 7.1 (WAV order L R C LFE Lrs Rrs Lss Rss): all four surrounds at 1.41.
    let (p71, want71) = weighted_sine_program(
        &[-28.0, -28.0, -30.0, -3.0, -33.0, -34.0, -31.0, -32.0],
        &[1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.41, 1.41],
    );
    let path = dir.path().join("s71.wav");
    write_wav(&path, &p71, FS, 0);
    let st = measure_file(&path).unwrap();
    assert!((st.integrated_lufs - want71).abs() <= TECH3341_LU, "7.1: {} vs {want71}", st.integrated_lufs);
    // The peaks are physical: the LFE's −3 dBFS is the file's sample peak.
    assert!((st.sample_peak_dbfs - -3.0).abs() < 0.01, "peak {}", st.sample_peak_dbfs);

    // Three channels have no standard layout: every channel weighs 1.0.
    let (p3, want3) = weighted_sine_program(&[-30.0, -30.0, -30.0], &[1.0, 1.0, 1.0]);
    let path = dir.path().join("three.wav");
    write_wav(&path, &p3, FS, 0);
    let r = measure_one(&path).unwrap();
    assert!((r.stats.integrated_lufs - want3).abs() <= TECH3341_LU, "3 ch: {} vs {want3}", r.stats.integrated_lufs);
    assert!(r.layout().is_none());
    assert!(to_text(&[r]).contains("every channel weighted 1.0"));
}

/// The meter gives the same figures however the stream is cut into blocks (the 100 ms steps of
/// momentary/short-term are tracked across calls).
#[test]
fn block_size_does_not_change_the_reading() {
    let n = 7 * FS as usize + 1234;
    let planar: Vec<Vec<f32>> = (0..2).map(|c| music_noise(40 + c, n, Noise::Programme(FS, 0.08))).collect();
    let read = |block: usize| {
        let mut m = LoudnessMeter::new(2, FS, Some(Layout::Stereo)).unwrap();
        let mut at = 0;
        while at < n {
            let e = (at + block).min(n);
            m.add_planar(&[&planar[0][at..e], &planar[1][at..e]]);
            at = e;
        }
        m.result()
    };
    let a = read(n);
    for block in [1000, 4799, 4800, 65536] {
        let b = read(block);
        // Same samples, same order, same f64 sums: identical to the last bit is expected; 1e-9 LU
        // allows only for summation-order changes inside the crate.
        for (x, y) in [
            (a.integrated_lufs, b.integrated_lufs),
            (a.max_momentary_lufs, b.max_momentary_lufs),
            (a.max_short_term_lufs, b.max_short_term_lufs),
            (a.lra_lu, b.lra_lu),
            (a.true_peak_dbtp, b.true_peak_dbtp),
        ] {
            assert!((x - y).abs() < 1e-9, "block {block}: {a:?} vs {b:?}");
        }
    }
}

/// Tone bursts of 330..390 ms (shorter than the 400 ms momentary window, so the max momentary
/// depends on where the 100 ms steps fall) and of 2.6..2.95 s (the same for short-term), at
/// random levels, offsets and frequencies, over a quiet noise floor.
fn tone_bursts(seed: u64, frames: usize, fs: u32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut x: Vec<f32> = music_noise(seed + 100, frames, Noise::Programme(fs, 0.003));
    let mut at = rng.range(0, fs as usize / 7);
    let mut k = 0;
    while at < frames {
        let long = k % 3 == 2;
        let ms = if long { rng.range(2600, 2950) } else { rng.range(330, 390) };
        let len = (ms * fs as usize / 1000).min(frames - at);
        let amp = db_to_amp(-30.0 + 25.0 * rng.unit());
        let f = 200.0 + 3000.0 * rng.unit();
        for (n, v) in x[at..at + len].iter_mut().enumerate() {
            *v += (amp * (2.0 * std::f64::consts::PI * f * n as f64 / fs as f64).sin()) as f32;
        }
        at += len + rng.range(fs as usize / 20, fs as usize);
        k += 1;
    }
    x
}

/// The crate alone, read the way EBU Tech 3341 specifies and the meter once did: fed in 100 ms
/// steps, `loudness_momentary()` / `loudness_shortterm()` read at every step. Returns (I, LRA,
/// max M, max S, sample peak, true peak) in the crate's units (LUFS, LU, linear peaks).
fn crate_readings(planar: &[Vec<f32>], fs: u32, layout: Option<Layout>) -> [f64; 6] {
    use ebur128::{EbuR128, Mode};
    let ch = planar.len();
    // The meter's former modes (not `Mode::all()`: HISTOGRAM gates on binned energies).
    let mut m = EbuR128::new(ch as u32, fs, Mode::I | Mode::LRA | Mode::M | Mode::S | Mode::TRUE_PEAK).unwrap();
    m.set_channel_map(&channel_map(ch, layout)).unwrap();
    let step = (fs as usize + 5) / 10;
    let n = planar[0].len();
    let (mut max_m, mut max_s) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut at = 0;
    while at < n {
        let e = (at + step).min(n);
        let views: Vec<&[f32]> = planar.iter().map(|c| &c[at..e]).collect();
        m.add_frames_planar_f32(&views).unwrap();
        if e - at == step {
            max_m = max_m.max(m.loudness_momentary().unwrap());
            max_s = max_s.max(m.loudness_shortterm().unwrap());
        }
        at = e;
    }
    let sp = (0..ch as u32).map(|c| m.sample_peak(c).unwrap()).fold(0.0, f64::max);
    let tp = (0..ch as u32).map(|c| m.true_peak(c).unwrap()).fold(0.0, f64::max);
    [m.loudness_global().unwrap(), m.loudness_range().unwrap(), max_m, max_s, sp, tp]
}

/// The meter's max momentary / short-term (built from 100 ms energies, not the crate's window
/// re-sums) and its per-channel true peak equal the crate's own readings, on tone bursts, music-like
/// noise, 5.1 with a hot LFE and 7.1, at 44.1, 48 and 96 kHz, and at 11025 Hz (where a 100 ms step
/// is not a whole number of frames and the meter falls back to the crate's reads). Fed in the
/// render's 8192-frame blocks and in odd ones.
#[test]
fn max_momentary_short_term_and_true_peak_equal_the_crate_read_every_100ms() {
    // (name, sample rate, layout, planar signal)
    type Case = (&'static str, u32, Option<Layout>, Vec<Vec<f32>>);
    let cases: Vec<Case> = {
        let n = |fs: u32, s: usize| s * fs as usize + 777;
        let noise = |fs: u32, ch: usize, seed: u64| -> Vec<Vec<f32>> {
            (0..ch)
                .map(|c| music_noise(seed + c as u64, n(fs, 9), Noise::Programme(fs, 0.05 + 0.02 * c as f64)))
                .collect()
        };
        let bursts = |fs: u32, ch: usize, seed: u64| -> Vec<Vec<f32>> {
            (0..ch).map(|c| tone_bursts(seed + 10 * c as u64, n(fs, 12), fs)).collect()
        };
        let mut lfe = noise(48_000, 6, 60);
        lfe[3] = tone_bursts(61, lfe[3].len(), 48_000).iter().map(|v| v * 8.0).collect();
        vec![
            ("stereo bursts 48k", 48_000, Some(Layout::Stereo), bursts(48_000, 2, 1)),
            ("stereo bursts 44.1k", 44_100, Some(Layout::Stereo), bursts(44_100, 2, 2)),
            ("stereo bursts 96k", 96_000, Some(Layout::Stereo), bursts(96_000, 2, 3)),
            ("stereo noise 44.1k", 44_100, Some(Layout::Stereo), noise(44_100, 2, 4)),
            ("mono bursts 11025", 11_025, Some(Layout::Mono), bursts(11_025, 1, 5)),
            ("5.1 noise, LFE bursts 48k", 48_000, Some(Layout::Surround51), lfe),
            ("7.1 bursts 96k", 96_000, Some(Layout::Surround71), bursts(96_000, 8, 7)),
        ]
    };
    for (name, fs, layout, planar) in &cases {
        let want = crate_readings(planar, *fs, *layout);
        for block in [8192usize, 1001] {
            let mut m = LoudnessMeter::new(planar.len(), *fs, *layout).unwrap();
            let n = planar[0].len();
            let mut at = 0;
            while at < n {
                let e = (at + block).min(n);
                let views: Vec<&[f32]> = planar.iter().map(|c| &c[at..e]).collect();
                m.add_planar(&views);
                at = e;
            }
            let r = m.result();
            // Integrated and LRA are gated from the same 100 ms energies (400 ms and 3 s blocks as
            // sums of 4 and 30 of them, the crate's gating step for step): f64 rounding only,
            // ~1e-14 LU. A block grouped one step off moves these bursts' readings by far more
            // than 1e-9 LU. Where the meter falls back to the crate's own modes (11025 Hz), the
            // bits are the crate's.
            let (i, lra) = (r.integrated_lufs, r.lra_lu);
            if *fs % 10 == 0 {
                assert!((i - want[0]).abs() < 1e-9, "{name}, block {block}: integrated {i} vs crate {}", want[0]);
                assert!((lra - want[1]).abs() < 1e-9, "{name}, block {block}: LRA {lra} vs crate {}", want[1]);
            } else {
                assert_eq!(i, want[0], "{name}, block {block}: integrated");
                assert_eq!(lra, want[1], "{name}, block {block}: LRA");
            }
            // The integrated-only meter (the render's analysis pass and solves) reads the same.
            let mut mi = LoudnessMeter::with_scope(planar.len(), *fs, *layout, MeterScope::Integrated).unwrap();
            mi.add_planar(&planar.iter().map(|c| c.as_slice()).collect::<Vec<_>>());
            let only = mi.result().integrated_lufs;
            assert!((only - i).abs() < 1e-9, "{name}: integrated-only meter {only} vs {i}");
            assert_eq!(r.sample_peak_dbfs, 20.0 * want[4].log10(), "{name}, block {block}: sample peak");
            assert_eq!(r.true_peak_dbtp, 20.0 * want[5].log10(), "{name}, block {block}: true peak");
            // The same K-weighted samples summed in another grouping (100 ms sums, then 4 or 30 of
            // them): f64 rounding only, ~1e-13 LU. 1e-6 LU is far inside the 0.01 LU that matters
            // and far outside rounding; a step off by one frame or one 100 ms step moves the max
            // on these bursts by hundredths to tenths of a LU.
            assert!(
                (r.max_momentary_lufs - want[2]).abs() < 1e-6,
                "{name}, block {block}: max M {} vs crate {}",
                r.max_momentary_lufs,
                want[2]
            );
            assert!(
                (r.max_short_term_lufs - want[3]).abs() < 1e-6,
                "{name}, block {block}: max S {} vs crate {}",
                r.max_short_term_lufs,
                want[3]
            );
        }
    }
}

/// 16-bit, 24-bit and float files of the same signal read the same: the reader scales integer PCM
/// by 2^(bits−1). 16-bit quantisation of a −20 dBFS-ish noise moves its loudness by far less than
/// 0.01 LU (quantisation noise is ~−98 dBFS, ~78 dB down).
#[test]
fn integer_and_float_files_agree() {
    let dir = tmp();
    let planar: Vec<Vec<f32>> =
        (0..2).map(|c| music_noise(7 + c, 4 * FS as usize, Noise::Programme(FS, 0.1))).collect();
    let mut results = Vec::new();
    for fmt in [16, 24, 0] {
        let path = dir.path().join(format!("{fmt:?}.wav"));
        write_wav(&path, &planar, FS, fmt);
        results.push(measure_file(&path).unwrap());
    }
    for r in &results[..2] {
        assert!((r.integrated_lufs - results[2].integrated_lufs).abs() < 0.01, "{r:?} vs {:?}", results[2]);
        assert!((r.sample_peak_dbfs - results[2].sample_peak_dbfs).abs() < 0.01);
    }
}

#[test]
fn silence_reads_minus_inf_and_serializes_null() {
    let dir = tmp();
    let path = dir.path().join("silent.wav");
    write_wav(&path, &[vec![0.0; FS as usize], vec![0.0; FS as usize]], FS, 16);
    let r = measure(&[path]).unwrap();
    assert_eq!(r[0].stats.integrated_lufs, f64::NEG_INFINITY);
    assert_eq!(r[0].stats.true_peak_dbtp, f64::NEG_INFINITY);
    let j = to_json(&r);
    for k in
        ["integrated_lufs", "lra_lu", "max_momentary_lufs", "max_short_term_lufs", "sample_peak_dbfs", "true_peak_dbtp"]
    {
        assert!(j[k].is_null(), "{k} = {}", j[k]);
    }
    assert!(to_text(&r).contains("-inf"));
}

#[test]
fn json_keys_are_exact_one_object_or_a_list() {
    let dir = tmp();
    let a = dir.path().join("a.wav");
    let b = dir.path().join("b.wav");
    let s = music_noise(3, 2 * FS as usize, Noise::Programme(FS, 0.1));
    write_wav(&a, &[s.clone(), s.clone()], FS, 0);
    write_wav(&b, &[s], FS, 24);
    let one = to_json(&measure(std::slice::from_ref(&a)).unwrap());
    let obj = one.as_object().expect("one file: one object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    let mut want = vec![
        "path",
        "channels",
        "sample_rate",
        "frames",
        "integrated_lufs",
        "lra_lu",
        "max_momentary_lufs",
        "max_short_term_lufs",
        "sample_peak_dbfs",
        "true_peak_dbtp",
    ];
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(obj["channels"], 2);
    assert_eq!(obj["sample_rate"], FS);
    assert_eq!(obj["frames"], 2 * FS as u64);
    assert_eq!(obj["path"], a.to_string_lossy().as_ref());
    assert!(obj["integrated_lufs"].is_f64());

    let two = to_json(&measure(&[a, b.clone()]).unwrap());
    let list = two.as_array().expect("several files: a list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["channels"], 1);
    assert_eq!(list[1]["path"], b.to_string_lossy().as_ref());
}

#[test]
fn missing_file_is_an_input_error_naming_it() {
    let dir = tmp();
    let p = dir.path().join("nope.wav");
    let e = measure(std::slice::from_ref(&p)).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("nope.wav"), "{e}");
}

// ---- agreement with ffmpeg's ebur128 filter, an independent BS.1770-4 implementation ----------

/// (integrated LUFS, true peak dBTP) from ffmpeg's summary ("I:" and, under "True peak:", "Peak:").
fn ffmpeg_ebur128(path: &Path, prefilter: Option<&str>) -> (f64, f64) {
    let af = match prefilter {
        Some(p) => format!("{p},ebur128=peak=true"),
        None => "ebur128=peak=true".to_string(),
    };
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", &af, "-f", "null", "-"])
        .output()
        .expect("ffmpeg (with the ebur128 filter) must be installed: it is the reference meter of these tests");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {text}");
    let summary = &text[text.rfind("Summary:").expect("ffmpeg ebur128 summary")..];
    let value = |key: &str| -> f64 {
        let line =
            summary.lines().find(|l| l.trim_start().starts_with(key)).unwrap_or_else(|| panic!("{key} in {summary}"));
        line.trim_start()[key.len()..].split_whitespace().next().unwrap().parse().unwrap()
    };
    (value("I:"), value("Peak:"))
}

/// ffmpeg prints one decimal (±0.05) and implements the same BS.1770-4 filter and gating: 0.1 LU
/// integrated. Its true peak comes from its own 4x resampler, not the crate's interpolator: on
/// noise the two agree to a few hundredths; 0.2 dB is Tech 3341's true-peak accuracy band.
const FFMPEG_LU: f64 = 0.1;
const FFMPEG_TP_DB: f64 = 0.2;

fn agree_with_ffmpeg(path: &Path, prefilter: Option<&str>) {
    let ours = measure_file(path).unwrap();
    let (i, tp) = ffmpeg_ebur128(path, prefilter);
    eprintln!(
        "{}: I ours {:.3} ffmpeg {i}; TP ours {:.3} ffmpeg {tp}",
        path.display(),
        ours.integrated_lufs,
        ours.true_peak_dbtp
    );
    assert!(
        (ours.integrated_lufs - i).abs() <= FFMPEG_LU,
        "{}: I ours {} ffmpeg {i}",
        path.display(),
        ours.integrated_lufs
    );
    assert!(
        (ours.true_peak_dbtp - tp).abs() <= FFMPEG_TP_DB,
        "{}: TP ours {} ffmpeg {tp}",
        path.display(),
        ours.true_peak_dbtp
    );
}

#[test]
fn agrees_with_ffmpeg_on_stereo_programme() {
    let dir = tmp();
    let n = 8 * FS as usize;
    let planar = vec![music_noise(101, n, Noise::Programme(FS, 0.12)), music_noise(102, n, Noise::Programme(FS, 0.07))];
    let path = dir.path().join("stereo.wav");
    write_wav(&path, &planar, FS, 24);
    agree_with_ffmpeg(&path, None);
}

/// 5.1 (hound writes mask 0x3F = FL FR FC LFE BL BR, which ffmpeg weights LFE 0 and BL/BR 1.41).
/// The LFE is the hottest channel: counted, it would move the reading by several LU.
#[test]
fn agrees_with_ffmpeg_on_5_1_programme_with_hot_lfe() {
    let dir = tmp();
    let n = 8 * FS as usize;
    let rms = [0.06, 0.05, 0.07, 0.15, 0.03, 0.025];
    let planar: Vec<Vec<f32>> =
        rms.iter().enumerate().map(|(c, &r)| music_noise(200 + c as u64, n, Noise::Programme(FS, r))).collect();
    let path = dir.path().join("s51.wav");
    write_wav(&path, &planar, FS, 0);
    agree_with_ffmpeg(&path, None);

    // The LFE must not count: the same programme without it reads the same, while counting it as
    // a full-range channel would read well above.
    let mut no_lfe = planar.clone();
    no_lfe[3].iter_mut().for_each(|x| *x = 0.0);
    let path0 = dir.path().join("s51_nolfe.wav");
    write_wav(&path0, &no_lfe, FS, 0);
    let with = measure_file(&path).unwrap().integrated_lufs;
    let without = measure_file(&path0).unwrap().integrated_lufs;
    assert!((with - without).abs() < 1e-9, "LFE changed the loudness: {with} vs {without}");
    let mut counted = LoudnessMeter::new(6, FS, None).unwrap();
    let refs: Vec<&[f32]> = planar.iter().map(|c| c.as_slice()).collect();
    counted.add_planar(&refs);
    assert!(counted.result().integrated_lufs > with + 1.0, "the test's LFE is not hot enough to tell");
}

/// 7.1: ffmpeg reads an 8-channel hound file as FL FR FC LFE BL BR FLC FRC, so it is told the 7.1
/// layout (FL FR FC LFE BL BR SL SR, our WAV order) without remixing. The side pair is loud enough
/// that weighting it 1.0 instead of 1.41 would move the reading by about 0.5 LU.
#[test]
fn agrees_with_ffmpeg_on_7_1_programme() {
    let dir = tmp();
    let n = 6 * FS as usize;
    let rms = [0.05, 0.04, 0.05, 0.15, 0.04, 0.035, 0.06, 0.05];
    let planar: Vec<Vec<f32>> =
        rms.iter().enumerate().map(|(c, &r)| music_noise(300 + c as u64, n, Noise::Programme(FS, r))).collect();
    let path = dir.path().join("s71.wav");
    write_wav(&path, &planar, FS, 0);
    agree_with_ffmpeg(&path, Some("channelmap=map=0|1|2|3|4|5|6|7:channel_layout=7.1"));
}
