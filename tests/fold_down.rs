//! `layout = "2.0"` outputs of 5.1/7.1 sessions (design/deliverables.md "Output formats", issue 13
//! item 5), through the CLI on every engine: the BS.775 fold-down on target and under the ceiling by
//! ffmpeg's meter and the `ebur128` crate, equal to the matrix of the bus where the limiters idle,
//! 7.1's back surrounds folded into the sides first, bad input, and CPU/GPU parity.
mod common;

use std::path::{Path, PathBuf};

use common::gpu_parity::assert_engines_agree;
use common::*;

const FS: u32 = 48_000;
/// Programme length: 1.5 s quiet (every limiter idle), then 1.5 s loud (the limiters working).
const FRAMES: usize = 3 * FS as usize;
const QUIET: usize = 3 * FS as usize / 2;
/// Frames where both limiters are idle: the quiet half less the look-ahead and attack smoothing
/// before the loud half (100 ms is ample for 2 ms).
const IDLE: usize = QUIET - FS as usize / 10;
/// BS.775's 0.7071: −3 dB.
const K: f64 = std::f64::consts::FRAC_1_SQRT_2;

fn session_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The `ebur128` crate on a stereo file: integrated loudness and true peak.
fn crate_meter(path: &Path) -> (f64, f64) {
    let (fs, x) = read_audio(path);
    assert_eq!(x.len(), 2, "{}: a 2.0 file", path.display());
    let mut m = ebur128::EbuR128::new(2, fs, ebur128::Mode::I | ebur128::Mode::TRUE_PEAK).unwrap();
    m.add_frames_planar_f32(&[&x[0], &x[1]]).unwrap();
    let tp = (0..2).map(|c| m.true_peak(c).unwrap()).fold(0.0f64, f64::max);
    (m.loudness_global().unwrap(), 20.0 * tp.log10())
}

/// The `bext` chunk's LoudnessValue and MaxTruePeakLevel (EBU Tech 3285 v2: int16 at 412 and 416,
/// round(100·value)) and its Description.
fn bext_loudness(path: &Path) -> (i16, i16, String) {
    let b = std::fs::read(path).unwrap();
    let mut at = 12;
    while at + 8 <= b.len() {
        let size = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        if &b[at..at + 4] == b"bext" {
            let c = &b[at + 8..at + 8 + size];
            let i16_at = |k: usize| i16::from_le_bytes(c[k..k + 2].try_into().unwrap());
            let end = c[..256].iter().position(|&x| x == 0).unwrap_or(256);
            return (i16_at(412), i16_at(416), String::from_utf8_lossy(&c[..end]).into_owned());
        }
        at += 8 + size + (size & 1);
    }
    panic!("{}: no bext chunk", path.display())
}

/// The BS.775 matrix applied here, in f64, to `bus` (5.1 or 7.1 in WAV order), times `scale`.
fn bs775(bus: &[Vec<f32>], scale: f64, frames: usize) -> Vec<Vec<f64>> {
    let at = |c: usize, n: usize| bus[c][n] as f64;
    (0..2)
        .map(|side| {
            (0..frames)
                .map(|n| {
                    // 7.1 (L R C LFE Lsr Rsr Lss Rss): the back surround into the side at K first.
                    let surround = match bus.len() {
                        6 => at(4 + side, n),
                        8 => at(6 + side, n) + K * at(4 + side, n),
                        ch => panic!("{ch} channels"),
                    };
                    scale * (at(side, n) + K * at(2, n) + K * surround)
                })
                .collect()
        })
        .collect()
}

/// Peak and RMS of `got - want` over the first `frames` frames, dBFS.
fn residual_f64(got: &[Vec<f32>], want: &[Vec<f64>], frames: usize) -> (f64, f64, usize) {
    let (mut peak, mut sum, mut at) = (0.0f64, 0.0f64, 0);
    for (g, w) in got.iter().zip(want) {
        for n in 0..frames {
            let d = (g[n] as f64 - w[n]).abs();
            if d > peak {
                (peak, at) = (d, n);
            }
            sum += d * d;
        }
    }
    (db(peak), db((sum / (2 * frames) as f64).sqrt()), at)
}

/// A 5.1 DME-like programme (6-channel music and effects, mono dialogue to the centre), quiet in
/// its first half (26 dB down) and loud in its second, so that at −7 LUFS the limiters of the
/// 5.1 master and of the 2.0 fold-down work only in the second half. The session asks for the 5.1
/// master and two 2.0 fold-downs (f32 and pcm24), named through `{layout}`.
fn programme_51(dir: &Path) -> PathBuf {
    let mut toml = String::from("name = \"reel\"\nlayout = \"5.1\"\n");
    for (name, ch, level, seed) in [("dx", 1, -8.0, 81), ("mx", 6, -10.0, 82), ("fx", 6, -12.0, 83)] {
        let mut s = music(seed, FRAMES, ch, level);
        for c in &mut s {
            for v in &mut c[..QUIET] {
                *v *= 0.05; // -26 dB
            }
        }
        quantise(&mut s, 24);
        write_wav(&dir.join(format!("{name}.wav")), &s, FS, 24);
        toml += &format!("[[stems]]\nname = \"{name}\"\npath = \"{name}.wav\"\n");
    }
    toml += "[bus]\neq = [ { type = \"low_shelf\", freq_hz = 120.0, gain_db = -1.0, q = 0.707 } ]\n";
    toml += "[eq_design]\ntaps = 511\n[master]\ntarget_lufs = -7.0\nceiling_dbtp = -1.0\n";
    toml += "[[outputs]]\npath = \"{name}_{layout}.wav\"\nkind = \"master\"\nformat = \"f32\"\n";
    toml += "[[outputs]]\npath = \"{name}_{layout}.wav\"\nkind = \"master\"\nformat = \"f32\"\nlayout = \"2.0\"\n";
    toml +=
        "[[outputs]]\npath = \"{name}_{layout}_{bits}.wav\"\nkind = \"master\"\nformat = \"pcm24\"\nlayout = \"2.0\"\n";
    session_file(dir, &toml)
}

/// The 2.0 fold-down of a 5.1 session is a deliverable of its own: on target within 0.1 LU and
/// under the ceiling by ffmpeg's meter and by the `ebur128` crate, with its own G, limiter and
/// report entry, its bext carrying its own loudness; where both limiters idle it is, sample for
/// sample, 10^(G2/20) times the BS.775 matrix of the bus (the 5.1 master divided by the main's G).
#[test]
fn fold_down_of_5_1_is_the_bs775_matrix_on_target() {
    let dir = tempfile::tempdir().unwrap();
    let session = programme_51(dir.path());
    let mut folds = Vec::new();
    for engine in engines() {
        let out = dir.path().join(engine);
        let rep = dir.path().join(format!("{engine}.json"));
        let err = render(&session, &out, engine, &["--report", rep.to_str().unwrap()], 0);
        assert!(err.contains("2.0 fold-down"), "{engine}: the summary names the fold-down:\n{err}");
        let r = report(&rep);
        assert_eq!(r["engine"]["engine"], engine, "{engine}: the engine asked for ran");
        println!("{engine}: {}", r["engine"]["device"]);
        assert!(r["spec_met"].as_bool().unwrap(), "{engine}: {}", r["spec_problems"]);
        let f = &r["fold_down"];
        let (g1, g2) = (r["gain_db"].as_f64().unwrap(), f["gain_db"].as_f64().unwrap());
        let (gr1, gr2) =
            (r["gain_reduction"]["max_db"].as_f64().unwrap(), f["gain_reduction"]["max_db"].as_f64().unwrap());
        println!(
            "{engine}: 5.1 G {g1:+.3} dB (limiter max {gr1:.2} dB); 2.0 G {g2:+.3} dB (limiter max {gr2:.2} dB), \
             {} value(s), report {:.3} LUFS {:.2} dBTP",
            f["iterations"], f["loudness_after"]["integrated_lufs"], f["loudness_after"]["true_peak_dbtp"]
        );
        assert!(gr1 > 0.5 && gr2 > 0.5, "{engine}: both limiters work in the loud half ({gr1:.2}, {gr2:.2} dB)");
        assert_ne!(g1, g2, "{engine}: the fold-down has its own G");
        assert_eq!(f["layout"], "2.0");
        assert_eq!(f["from"], "5.1");
        assert!(f["spec_met"].as_bool().unwrap());
        assert!(!f["passes"].as_array().unwrap().is_empty(), "{engine}: its own passes are reported");

        for name in ["reel_2.0.wav", "reel_2.0_24b.wav"] {
            let path = out.join(name);
            assert_eq!(ffprobe_layout(&path).0, 2, "{engine}: {name} is 2.0");
            let (lufs, tp, _) = ffmpeg_loudness(&path);
            let (c_lufs, c_tp) = crate_meter(&path);
            println!("{engine}: {name}: ffmpeg {lufs:.2} LUFS {tp:.2} dBTP; ebur128 {c_lufs:.3} LUFS {c_tp:.3} dBTP");
            // ffmpeg prints one decimal: its reading rounds by up to 0.05 on top of the 0.1 LU.
            assert!((lufs + 7.0).abs() <= 0.15, "{engine}: {name} reads {lufs:.1} LUFS by ffmpeg, not -7 ± 0.1");
            assert!(tp <= -1.0, "{engine}: {name} true peak {tp:.1} dBTP by ffmpeg over the ceiling");
            assert!((c_lufs + 7.0).abs() <= 0.1, "{engine}: {name} reads {c_lufs:.3} LUFS, not -7 ± 0.1");
            assert!(c_tp <= -1.0, "{engine}: {name} true peak {c_tp:.3} dBTP over the ceiling");
            // Its bext carries its own loudness (round(100·value); ±1 for the reading's last digit).
            let (value, peak, description) = bext_loudness(&path);
            assert!((value as f64 - 100.0 * c_lufs).abs() <= 1.0, "{engine}: {name} bext LoudnessValue {value}");
            assert!((peak as f64 - 100.0 * c_tp).abs() <= 1.0, "{engine}: {name} bext MaxTruePeakLevel {peak}");
            assert!(description.contains("2.0 fold-down of 5.1"), "{engine}: {description}");
        }
        let (_, main) = read_audio(&out.join("reel_5.1.wav"));
        let (_, fold) = read_audio(&out.join("reel_2.0.wav"));
        assert_eq!(main.len(), 6);
        // Where both limiters idle, main = f32(g1·bus) and fold = f32(g2·f32(M·bus)): the matrix of
        // the main times g2/g1 differs from the fold by f32 rounding only (a few ulps of samples
        // under -20 dBFS: under -130 dBFS). -120 dBFS leaves room for that and catches any
        // coefficient off by 1e-6 or a single sample out of place.
        let want = bs775(&main, 10f64.powf((g2 - g1) / 20.0), IDLE);
        let (peak, rms, at) = residual_f64(&fold, &want, IDLE);
        println!(
            "{engine}: fold-down against 10^(G2/20)·BS.775(bus), limiters idle: {peak:.1} dBFS peak, {rms:.1} rms"
        );
        assert!(peak <= -120.0, "{engine}: fold-down off the matrix by {peak:.1} dBFS at frame {at}");
        // Outside the idle half the limiters differ (each its own envelope): the matrix still holds
        // to within their gain reduction, which the ceiling checks above cover.
        folds.push(fold);
    }
    if let [cpu, gpu] = folds.as_slice() {
        assert_engines_agree("2.0 fold-down", cpu, gpu);
    }
}

/// A 7.1 session folds its back surrounds into the sides at 0.7071 first: with a signal only in the
/// back surrounds (Lsr, Rsr), Lo is 0.5·Lsr and Ro 0.5·Rsr, scaled by the fold-down's G over the
/// main's, with no crosstalk; `profile = "ebu-r128"` checks the fold-down as the master.
#[test]
fn seven_one_folds_its_back_surrounds_into_the_sides_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = music(91, FRAMES, 8, -20.0);
    for (c, ch) in s.iter_mut().enumerate() {
        if !(4..6).contains(&c) {
            ch.fill(0.0);
        }
    }
    quantise(&mut s, 24);
    // 7.1 in WAV order (FL FR FC LFE BL BR SL SR).
    write_wav_mask(&dir.path().join("back.wav"), &s, FS, 0x63F);
    let session = session_file(
        dir.path(),
        r#"name = "atmos-bed"
layout = "7.1"
[[stems]]
name = "back"
path = "back.wav"
[master]
profile = "ebu-r128"
[[outputs]]
path = "{name}_{layout}.wav"
kind = "master"
format = "f32"
[[outputs]]
path = "{name}_{layout}.wav"
kind = "master"
format = "f32"
layout = "2.0"
"#,
    );
    let mut folds = Vec::new();
    for engine in engines() {
        let out = dir.path().join(engine);
        let rep = dir.path().join(format!("{engine}.json"));
        render(&session, &out, engine, &["--report", rep.to_str().unwrap()], 0);
        let r = report(&rep);
        let f = &r["fold_down"];
        assert_eq!(f["from"], "7.1");
        let (g1, g2) = (r["gain_db"].as_f64().unwrap(), f["gain_db"].as_f64().unwrap());
        // Nothing to limit at -23 LUFS: the whole programme is the matrix.
        assert_eq!(r["gain_reduction"]["max_db"].as_f64().unwrap(), 0.0, "{engine}: the main's limiter idles");
        assert_eq!(f["gain_reduction"]["max_db"].as_f64().unwrap(), 0.0, "{engine}: the fold-down's idles");
        let checks = f["profile"]["checks"].as_array().unwrap();
        assert!(!checks.is_empty() && checks.iter().all(|c| c["passed"] == true), "{engine}: {checks:?}");
        let (_, main) = read_audio(&out.join("atmos-bed_7.1.wav"));
        let (_, fold) = read_audio(&out.join("atmos-bed_2.0.wav"));
        let scale = 10f64.powf((g2 - g1) / 20.0);
        // The back surrounds reach the sides at K, the sides Lo/Ro at K: 0.5 in all.
        let want: Vec<Vec<f64>> =
            (0..2).map(|c| main[4 + c].iter().map(|&v| scale * 0.5 * v as f64).collect()).collect();
        let (peak, rms, at) = residual_f64(&fold, &want, FRAMES);
        let (lufs, tp, _) = ffmpeg_loudness(&out.join("atmos-bed_2.0.wav"));
        println!(
            "{engine}: 7.1 G {g1:+.3} dB, 2.0 G {g2:+.3} dB; 2.0 against 0.5·(Lsr, Rsr): {peak:.1} dBFS peak, {rms:.1} \
             rms; ffmpeg {lufs:.1} LUFS {tp:.1} dBTP"
        );
        assert!(peak <= -120.0, "{engine}: Lo/Ro off 0.5·(Lsr, Rsr) by {peak:.1} dBFS at frame {at}");
        // No crosstalk: Lo holds Lsr only (the two channels are independent noises).
        let cross: f64 = fold[0].iter().zip(&main[5]).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
        let own: f64 = fold[0].iter().zip(&main[4]).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
        assert!(cross.abs() < 0.05 * own.abs(), "{engine}: Lo correlates with Rsr ({cross} against {own})");
        assert!((lufs + 23.0).abs() <= 0.15 && tp <= -1.0, "{engine}: {lufs} LUFS, {tp} dBTP by ffmpeg");
        let (c_lufs, c_tp) = crate_meter(&out.join("atmos-bed_2.0.wav"));
        assert!((c_lufs + 23.0).abs() <= 0.1 && c_tp <= -1.0, "{engine}: {c_lufs} LUFS, {c_tp} dBTP by ebur128");
        // With only the bus spilled (the writing pass decodes the stems again), the same fold-down.
        let bus_only = dir.path().join(format!("{engine}-spill-bus"));
        render(&session, &bus_only, engine, &["--spill", "bus"], 0);
        let again = std::fs::read(bus_only.join("atmos-bed_2.0.wav")).unwrap();
        assert!(again == std::fs::read(out.join("atmos-bed_2.0.wav")).unwrap(), "{engine}: --spill bus differs");
        folds.push(fold);
    }
    if let [cpu, gpu] = folds.as_slice() {
        assert_engines_agree("7.1 fold-down", cpu, gpu);
    }
}

/// Without a loudness target (no analysis pass, no bus spilled by the main) the fold-down spills
/// the bus itself and is limited at G = 0: its samples are the matrix of the main's.
#[test]
fn without_a_target_the_fold_down_is_the_matrix_at_unity() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = music(95, FS as usize, 6, -20.0);
    quantise(&mut s, 24);
    write_wav(&dir.path().join("bed.wav"), &s, FS, 24);
    let session = session_file(
        dir.path(),
        r#"name = "bed"
layout = "5.1"
[[stems]]
name = "bed"
path = "bed.wav"
[master]
ceiling_dbtp = -1.0
[[outputs]]
path = "bed.wav"
kind = "master"
format = "f32"
[[outputs]]
path = "bed_{layout}.wav"
kind = "master"
format = "f32"
layout = "2.0"
"#,
    );
    for engine in engines() {
        let out = dir.path().join(engine);
        let rep = dir.path().join(format!("{engine}.json"));
        render(&session, &out, engine, &["--report", rep.to_str().unwrap()], 0);
        let r = report(&rep);
        assert_eq!(r["fold_down"]["gain_db"].as_f64().unwrap(), 0.0);
        assert_eq!(r["fold_down"]["passes"][0]["kind"], "analysis", "{engine}: it spilled the bus itself");
        let (_, main) = read_audio(&out.join("bed.wav"));
        let (_, fold) = read_audio(&out.join("bed_2.0.wav"));
        let (peak, _, at) = residual_f64(&fold, &bs775(&main, 1.0, main[0].len()), main[0].len());
        println!("{engine}: no target: 2.0 against BS.775 of the 5.1 master: {peak:.1} dBFS peak");
        assert!(peak <= -120.0, "{engine}: off the matrix by {peak:.1} dBFS at frame {at}");
    }
}

/// The fold-down is checked against the profile as a deliverable of its own: steady surrounds with a
/// 3 s burst in L/R, which BS.775 brings forward against the surrounds (Ls reaches Lo at 0.7071,
/// weighed 1.41 in the 5.1's loudness), pass EBU R128 s1's max short-term −18 LUFS in the 5.1
/// master (measured −19.3 LUFS) and fail it in the 2.0 (−17.4 LUFS, 0.6 LU over the limit): exit 1,
/// saying so, nothing published.
#[test]
fn a_fold_down_that_fails_its_profile_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 20 * FS as usize;
    let burst = 8 * FS as usize..11 * FS as usize;
    let mut bed: Vec<Vec<f32>> = (0..6).map(|c| white(200 + c as u64, frames)).collect();
    for (c, ch) in bed.iter_mut().enumerate() {
        for (n, v) in ch.iter_mut().enumerate() {
            // Surrounds steady at -30 dB, L/R only in the burst, 3x their power (+4.8 dB).
            *v *= match c {
                4 | 5 => 0.0316,
                0 | 1 if burst.contains(&n) => 0.0316 * 3f32.sqrt(),
                _ => 0.0,
            };
        }
    }
    quantise(&mut bed, 24);
    write_wav(&dir.path().join("bed.wav"), &bed, FS, 24);
    let session = session_file(
        dir.path(),
        r#"name = "s1"
layout = "5.1"
[[stems]]
name = "bed"
path = "bed.wav"
[master]
profile = "ebu-r128-s1"
[[outputs]]
path = "pm.wav"
kind = "master"
format = "pcm24"
[[outputs]]
path = "pm_{layout}.wav"
kind = "master"
format = "pcm24"
layout = "2.0"
"#,
    );
    for engine in engines() {
        let out = dir.path().join(engine);
        let rep = dir.path().join(format!("{engine}.json"));
        let err = render(&session, &out, engine, &["--report", rep.to_str().unwrap()], 1);
        let r = report(&rep);
        let st = |v: &serde_json::Value| v["max_short_term_lufs"].as_f64().unwrap();
        println!(
            "{engine}: max short-term: 5.1 {:.2} LUFS, 2.0 {:.2} LUFS (limit -18)",
            st(&r["loudness_after"]),
            st(&r["fold_down"]["loudness_after"])
        );
        assert!(r["profile"]["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true), "{engine}: 5.1");
        assert_eq!(r["fold_down"]["spec_met"], false);
        assert!(err.contains("2.0 fold-down: profile ebu-r128-s1") && err.contains("short-term"), "{engine}: {err}");
        assert!(!out.join("pm.wav").exists() && !out.join("pm_2.0.wav").exists(), "{engine}: nothing published");
    }
}

/// Bad input is exit 2 naming the session file and the output, with nothing written: `layout =
/// "2.0"` on a stereo session, an unknown layout, the session's own layout, and the combinations
/// not supported yet (kind = "stems", split_channels, sample_rate, a variant's output, `--spill
/// none`).
#[test]
fn bad_fold_downs_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(&dir.path().join("st.wav"), &music(1, FS as usize, 2, -12.0), FS, 24);
    write_wav(&dir.path().join("s51.wav"), &music(2, FS as usize, 6, -12.0), FS, 24);
    let stereo = "name = \"s\"\nlayout = \"stereo\"\n[[stems]]\nname = \"a\"\npath = \"st.wav\"\n";
    let five = "name = \"s\"\nlayout = \"5.1\"\n[[stems]]\nname = \"a\"\npath = \"s51.wav\"\n";
    let master =
        "[master]\ntarget_lufs = -23.0\n[[outputs]]\npath = \"m.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n";
    let fold = |extra: &str| format!("[[outputs]]\npath = \"f.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n{extra}\n");
    let cases: Vec<(String, &[&str], Vec<&str>)> = vec![
        (
            format!("{stereo}{master}{}", fold("layout = \"2.0\"")),
            &[],
            vec!["outputs[1].layout", "\"stereo\"", "5.1 or 7.1"],
        ),
        (format!("{five}{master}{}", fold("layout = \"3.0\"")), &[], vec!["outputs[1].layout", "\"3.0\"", "\"2.0\""]),
        (format!("{five}{master}{}", fold("layout = \"5.1\"")), &[], vec!["outputs[1].layout", "leave layout out"]),
        (
            format!("{five}{master}[[outputs]]\npath = \"st\"\nkind = \"stems\"\nformat = \"f32\"\nlayout = \"2.0\"\n"),
            &[],
            vec!["outputs[1].layout", "kind = \"stems\""],
        ),
        (
            format!("{five}{master}{}", fold("layout = \"2.0\"\nsplit_channels = true")),
            &[],
            vec!["outputs[1].split_channels", "not supported yet"],
        ),
        (
            format!("{five}{master}{}", fold("layout = \"2.0\"\nsample_rate = 44100")),
            &[],
            vec!["outputs[1].sample_rate", "not supported yet"],
        ),
        (
            format!(
                "{five}{master}[[variants]]\nname = \"v\"\ngain_db = {{ a = 1.0 }}\noutputs = [ {{ path = \"v.wav\", \
                 kind = \"master\", format = \"f32\", layout = \"2.0\" }} ]\n"
            ),
            &[],
            vec!["variants[0].outputs[0].layout", "session's own outputs"],
        ),
        (format!("{five}{master}{}", fold("layout = \"2.0\"")), &["--spill", "none"], vec!["--spill none", "f.wav"]),
    ];
    for (i, (body, flags, want)) in cases.iter().enumerate() {
        let session = session_file(dir.path(), body);
        let out = dir.path().join(format!("out{i}"));
        let err = render(&session, &out, "cpu", flags, 2);
        // Session errors name the session file; the flag's names the flag and the output.
        let file: &[&str] = if flags.is_empty() { &["session.toml"] } else { &[] };
        for w in want.iter().chain(file) {
            assert!(err.contains(w), "case {i}: {w:?} not in: {err}");
        }
        println!("case {i}: {}", err.trim());
        assert!(files_under(&out).is_empty(), "case {i}: nothing written: {:?}", files_under(&out));
    }
}
