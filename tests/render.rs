//! Whole renders through the CLI, on every engine: exact sums, loudness targets read by ffmpeg,
//! true peak under the ceiling, stems that sum to the master, sample alignment, the golden demo,
//! and one writing pass once G is solved on the spilled bus.
mod common;

use std::path::Path;

use common::gpu_parity::assert_engines_agree;
use common::*;

const FS: u32 = 48_000;

fn session_file(dir: &Path, body: &str) -> std::path::PathBuf {
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

/// Issue 2: seven 24-bit stems, no EQ and no master, to f32: the output is the exact sum.
#[test]
fn seven_stems_sum_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let gains = [0.0, -3.0, 2.5, -6.0, 0.0, -1.5, 1.0];
    let mono = [false, true, false, false, true, false, false];
    let lengths = [96_000usize, 90_000, 96_000, 60_000, 96_000, 95_999, 72_000];
    let mut expected = vec![vec![0.0f64; 96_000]; 2];
    let mut toml = String::from("name = \"seven\"\nlayout = \"stereo\"\n");
    for i in 0..7 {
        let mut s = music(100 + i as u64, lengths[i], if mono[i] { 1 } else { 2 }, -9.0);
        quantise(&mut s, 24);
        write_wav(&dir.path().join(format!("s{i}.wav")), &s, FS, 24);
        let g = 10f64.powf(gains[i] / 20.0);
        for (c, e) in expected.iter_mut().enumerate() {
            let (src, w) = if mono[i] { (0, stemforge::pipeline::plan::MONO_TO_STEREO as f64) } else { (c, 1.0) };
            for (n, v) in s[src].iter().enumerate() {
                e[n] += g * w * *v as f64;
            }
        }
        toml += &format!("[[stems]]\nname = \"s{i}\"\npath = \"s{i}.wav\"\ngain_db = {}\n", gains[i]);
    }
    toml += "[[outputs]]\npath = \"sum.wav\"\nkind = \"master\"\nformat = \"f32\"\n";
    let session = session_file(dir.path(), &toml);
    let expected: Vec<Vec<f32>> = expected.iter().map(|c| c.iter().map(|v| *v as f32).collect()).collect();
    for engine in engines() {
        let out = dir.path().join(format!("out-{engine}"));
        render(&session, &out, engine, &[], 0);
        let (fs, got) = read_audio(&out.join("sum.wav"));
        assert_eq!(fs, FS);
        assert_eq!(got[0].len(), 96_000, "{engine}: frame count is the longest stem's");
        let (peak, rms) = residual(&got, &expected);
        // The sum of 7 f32 products carries ~7 ulp of rounding at most: far below -110 dBFS.
        assert!(peak <= -110.0, "{engine}: residual peak {peak:.1} dBFS (rms {rms:.1})");
    }
}

fn song_session(dir: &Path, target: f64, ceiling: f64, extra_outputs: &str) -> std::path::PathBuf {
    let names = ["drums", "bass", "keys", "vox"];
    for (i, n) in names.iter().enumerate() {
        let mut s = music(7 + i as u64, 4 * FS as usize, if *n == "bass" { 1 } else { 2 }, -6.0 - i as f64);
        quantise(&mut s, 24);
        write_wav(&dir.join(format!("{n}.wav")), &s, FS, 24);
    }
    let body = format!(
        r#"name = "song"
layout = "stereo"
[[stems]]
name = "drums"
path = "drums.wav"
eq = [{{ type = "low_shelf", freq_hz = 90.0, gain_db = 2.0, q = 0.707 }}]
[[stems]]
name = "bass"
path = "bass.wav"
gain_db = 1.0
eq = [{{ type = "highpass", freq_hz = 35.0, order = 2 }}]
[[stems]]
name = "keys"
path = "keys.wav"
eq = [{{ type = "peak", freq_hz = 1200.0, gain_db = -2.0, q = 1.4 }}]
[[stems]]
name = "vox"
path = "vox.wav"
gain_db = 2.0
eq = [{{ type = "high_shelf", freq_hz = 8000.0, gain_db = 2.0, q = 0.707 }}]
[bus]
eq = [{{ type = "peak", freq_hz = 250.0, gain_db = -1.0, q = 0.8 }}]
[eq_design]
taps = 4095
[master]
target_lufs = {target}
ceiling_dbtp = {ceiling}
[[outputs]]
path = "master.wav"
kind = "master"
format = "f32"
{extra_outputs}
"#
    );
    session_file(dir, &body)
}

/// The f32 stem files a `song_session` with a `stems` output writes under `out`.
fn song_stem_files(out: &Path) -> Vec<std::path::PathBuf> {
    ["drums", "bass", "keys", "vox"].iter().map(|n| out.join(format!("stems/{n}.wav"))).collect()
}

fn dme_session(dir: &Path, target: f64, ceiling: f64) -> std::path::PathBuf {
    // Dialogue (mono, centre), music (5.1), effects (5.1 with a hot LFE).
    let frames = 4 * FS as usize;
    let mut dia = music(31, frames, 1, -4.0);
    quantise(&mut dia, 24);
    write_wav(&dir.join("dialogue.wav"), &dia, FS, 24);
    let mut mus = music(32, frames, 6, -10.0);
    mus[3].iter_mut().for_each(|v| *v *= 0.3);
    quantise(&mut mus, 24);
    write_wav(&dir.join("music.wav"), &mus, FS, 24);
    let mut fx = music(33, frames, 6, -8.0);
    // A hot LFE: louder than anything else, and it must not count towards loudness.
    fx[3] = music(34, frames, 1, -1.0).remove(0);
    quantise(&mut fx, 24);
    write_wav(&dir.join("effects.wav"), &fx, FS, 24);
    let body = format!(
        r#"name = "reel-1"
layout = "5.1"
[[stems]]
name = "dialogue"
path = "dialogue.wav"
eq = [{{ type = "highpass", freq_hz = 80.0, order = 4 }}, {{ type = "peak", freq_hz = 3000.0, gain_db = 1.5, q = 1.0 }}]
[[stems]]
name = "music"
path = "music.wav"
gain_db = -2.0
[[stems]]
name = "effects"
path = "effects.wav"
eq = [{{ type = "lowpass", freq_hz = 16000.0, order = 2 }}]
[eq_design]
taps = 2047
phase = "minimum"
[master]
target_lufs = {target}
ceiling_dbtp = {ceiling}
[[outputs]]
path = "printmaster.wav"
kind = "master"
format = "pcm24"
[[outputs]]
path = "printmaster-f32.wav"
kind = "master"
format = "f32"
[[outputs]]
path = "stems"
kind = "stems"
format = "pcm24"
"#
    );
    session_file(dir, &body)
}

fn assert_spec(path: &Path, target: f64, ceiling: f64, frames: usize, what: &str) {
    let (i, tp, sp) = ffmpeg_loudness(path);
    // 0.1 LU: the issue's acceptance figure; the render itself iterates to 0.05 LU by its meter.
    assert!((i - target).abs() <= 0.1, "{what}: integrated {i:.2} LUFS by ffmpeg, target {target}");
    assert!(tp <= ceiling, "{what}: true peak {tp:.2} dBTP by ffmpeg over the ceiling {ceiling}");
    assert!(sp <= ceiling, "{what}: sample peak {sp:.2} dBFS over the ceiling {ceiling}");
    let (_, data) = read_audio(path);
    assert_eq!(data[0].len(), frames, "{what}: frame count");
}

/// Issue 3: loudness targets met, true peak under the ceiling, read by ffmpeg, on every engine.
#[test]
fn stereo_song_meets_loudness_specs() {
    for (target, ceiling) in [(-14.0, -1.0), (-23.0, -1.0)] {
        let dir = tempfile::tempdir().unwrap();
        let session = song_session(dir.path(), target, ceiling, "");
        for engine in engines() {
            let out = dir.path().join(engine);
            render(&session, &out, engine, &[], 0);
            assert_spec(
                &out.join("master.wav"),
                target,
                ceiling,
                4 * FS as usize,
                &format!("song {target} on {engine}"),
            );
        }
    }
}

#[test]
fn dme_51_meets_loudness_specs_and_declares_layout() {
    for (target, ceiling) in [(-23.0, -1.0), (-14.0, -1.0)] {
        let dir = tempfile::tempdir().unwrap();
        let session = dme_session(dir.path(), target, ceiling);
        for engine in engines() {
            let out = dir.path().join(engine);
            render(&session, &out, engine, &[], 0);
            let pm = out.join("printmaster.wav");
            assert_spec(&pm, target, ceiling, 4 * FS as usize, &format!("DME {target} on {engine}"));
            let (channels, layout) = ffprobe_layout(&pm);
            assert_eq!(channels, 6);
            assert_eq!(layout, "5.1(side)", "{engine}: WAVE_FORMAT_EXTENSIBLE mask FL FR FC LFE SL SR");
        }
    }
}

fn sum_of(files: &[std::path::PathBuf]) -> Vec<Vec<f32>> {
    let mut acc: Option<Vec<Vec<f64>>> = None;
    for f in files {
        let (_, d) = read_audio(f);
        let a = acc.get_or_insert_with(|| vec![vec![0.0; d[0].len()]; d.len()]);
        for (ac, dc) in a.iter_mut().zip(&d) {
            for (x, y) in ac.iter_mut().zip(dc) {
                *x += *y as f64;
            }
        }
    }
    acc.unwrap().iter().map(|c| c.iter().map(|v| *v as f32).collect()).collect()
}

/// The f32 stem files sum to the master within -110 dBFS peak (design/mastering.md).
fn assert_stems_sum_to_master(engine: &str, stems: &[std::path::PathBuf], master: &[Vec<f32>]) {
    let (peak, rms) = residual(&sum_of(stems), master);
    println!("{engine}: stems vs master residual {peak:.1} dBFS peak, {rms:.1} rms");
    assert!(peak <= -110.0, "{engine}: stems vs master residual {peak:.1} dBFS peak, {rms:.1} rms");
}

/// Issue 3: stem outputs carry the master's gain and limiter envelope and sum to it.
#[test]
fn stems_sum_to_the_master() {
    let dir = tempfile::tempdir().unwrap();
    let session =
        song_session(dir.path(), -12.0, -1.0, "[[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n");
    for engine in engines() {
        let out = dir.path().join(engine);
        render(&session, &out, engine, &[], 0);
        let stems = song_stem_files(&out);
        let (_, master) = read_audio(&out.join("master.wav"));
        // f32 sums of four stems in another order: a few ulp of a full-scale signal.
        assert_stems_sum_to_master(engine, &stems, &master);
    }
    // DME stems at 24 bits with independent dither sum to the 24-bit printmaster within the dither.
    let dir = tempfile::tempdir().unwrap();
    let session = dme_session(dir.path(), -23.0, -1.0);
    for engine in engines() {
        let out = dir.path().join(engine);
        let report = dir.path().join(format!("{engine}-report.json"));
        render(&session, &out, engine, &["--report", report.to_str().unwrap()], 0);
        let stems: Vec<_> =
            ["dialogue", "music", "effects"].iter().map(|n| out.join(format!("stems/{n}.wav"))).collect();
        let (_, pm) = read_audio(&out.join("printmaster.wav"));
        let (peak, _) = residual(&sum_of(&stems), &pm);
        // Four dithered 24-bit signals, each within 1.5 LSB of the exact value: < 6 LSB = -123 dBFS;
        // the issue's bound is -90 dBFS.
        assert!(peak <= -90.0, "{engine}: DME stems vs printmaster residual {peak:.1} dBFS");
        // The five files (two printmasters, three stems) are committed together and hashed as they
        // were written: each hash and size in the report is that of the file on disk.
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let outputs = r["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), 5, "{engine}: 2 printmasters and 3 stems");
        for o in outputs {
            use sha2::Digest;
            let path = Path::new(o["path"].as_str().unwrap());
            let bytes = std::fs::read(path).unwrap();
            let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(o["sha256"].as_str().unwrap(), hex, "{engine}: {}", path.display());
            assert_eq!(o["bytes"].as_u64().unwrap(), bytes.len() as u64, "{engine}: {}", path.display());
        }
    }
}

/// Issue 11: with per-stem process chains (compressors with and without look-ahead, a width with
/// its high-pass latency) the stem outputs still sum to the master, on both engines, and the two
/// engines' masters agree within the whole-render contract.
#[test]
fn stems_with_process_chains_sum_to_the_master() {
    let dir = tempfile::tempdir().unwrap();
    let session =
        song_session(dir.path(), -12.0, -1.0, "[[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n");
    let text = std::fs::read_to_string(&session).unwrap();
    let chains = [
        (
            "path = \"drums.wav\"\n",
            "process = [{ type = \"compressor\", threshold_db = -20.0, ratio = 4.0, attack_ms = 5.0 }]\n",
        ),
        ("path = \"keys.wav\"\n", "process = [{ type = \"width\", width = 1.4, mono_below_hz = 150.0 }]\n"),
        (
            "path = \"vox.wav\"\n",
            "process = [{ type = \"compressor\", threshold_db = -24.0, ratio = 3.0, knee_db = 6.0, detector = \"rms\", \
             lookahead_ms = 3.0 }, { type = \"width\", width = 0.8 }]\n",
        ),
    ];
    let text = chains.iter().fold(text, |t, (at, chain)| t.replace(at, &format!("{at}{chain}")));
    assert_eq!(text.matches("process = ").count(), 3);
    std::fs::write(&session, text).unwrap();
    let mut masters = Vec::new();
    for engine in engines() {
        let out = dir.path().join(engine);
        render(&session, &out, engine, &[], 0);
        let stems = song_stem_files(&out);
        let (_, master) = read_audio(&out.join("master.wav"));
        assert_stems_sum_to_master(engine, &stems, &master);
        masters.push(master);
    }
    if let [cpu, gpu] = &masters[..] {
        assert_engines_agree("master", cpu, gpu);
    }
}

/// design/mastering.md "Stems that still sum to the master": a bus compressor (with look-ahead),
/// a bus transient shaper and a bus width stage on top of per-stem compressors; each bus stage is
/// shared out among the stem outputs (gain envelopes computed once on the bus, width per stem), so
/// the f32 stems still sum to the master, on both engines, and the engines agree. The bus chain
/// must also do something: the master differs from the same session without it.
#[test]
fn stems_with_a_bus_chain_sum_to_the_master() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = "[[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n\
                   [[outputs]]\npath = \"master24.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n";
    let session = song_session(dir.path(), -12.0, -1.0, outputs);
    let plain = std::fs::read_to_string(&session).unwrap();
    let text = plain
        .replace(
            "path = \"drums.wav\"\n",
            "path = \"drums.wav\"\nprocess = [{ type = \"compressor\", threshold_db = -20.0, ratio = 4.0, attack_ms = 5.0 }]\n",
        )
        // Every stage of design/mastering.md in one render: saturation on the (mono) bass.
        .replace("path = \"bass.wav\"\n", "path = \"bass.wav\"\nprocess = [{ type = \"saturation\", drive_db = 6.0 }]\n")
        .replace(
            "[bus]\n",
            "[bus]\nprocess = [{ type = \"compressor\", threshold_db = -18.0, ratio = 2.0, knee_db = 6.0, attack_ms = 20.0, \
             release_ms = 200.0, lookahead_ms = 2.0, mix = 0.8 }, { type = \"transient\", attack_db = 3.0, sustain_db = -2.0 }, \
             { type = \"width\", width = 1.3, mono_below_hz = 100.0 }]\n",
        );
    assert_eq!(text.matches("process = ").count(), 3);
    let chained = dir.path().join("chained.toml");
    std::fs::write(&chained, text).unwrap();
    let mut masters = Vec::new();
    let mut vox = Vec::new();
    let mut reductions = Vec::new();
    for engine in engines() {
        let out = dir.path().join(engine);
        let rp = dir.path().join(format!("{engine}.json"));
        render(&chained, &out, engine, &["--report", rp.to_str().unwrap()], 0);
        // The report lists every stage in order, stems then bus, with the gain reduction of those
        // that reduce gain (compressors; the transient shaper's cuts); none for saturation and width.
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rp).unwrap()).unwrap();
        let stages = r["process_stages"].as_array().unwrap();
        let listed: Vec<(String, String)> =
            stages.iter().map(|s| (s["stem"].as_str().unwrap_or("bus").to_string(), s["type"].to_string())).collect();
        let want = [
            ("drums", "compressor"),
            ("bass", "saturation"),
            ("bus", "compressor"),
            ("bus", "transient"),
            ("bus", "width"),
        ];
        assert_eq!(listed, want.map(|(a, b)| (a.to_string(), format!("{b:?}"))), "{engine}: process_stages");
        let gr = |i: usize| {
            (
                stages[i]["gain_reduction"]["max_db"].as_f64().unwrap(),
                stages[i]["gain_reduction"]["mean_db"].as_f64().unwrap(),
            )
        };
        println!(
            "{engine}: reduction (max, mean dB): drums compressor {:.2?}, bus compressor {:.2?}, bus transient {:.2?}",
            gr(0),
            gr(2),
            gr(3)
        );
        for i in [0, 2] {
            assert!(gr(i).0 > 1.0 && gr(i).1 > 0.1 && gr(i).1 < gr(i).0, "{engine}: stage {i} reduction {:?}", gr(i));
        }
        // sustain_db = -2: its cuts reach at most 2 dB.
        assert!(gr(3).0 > 0.5 && gr(3).0 <= 2.0 + 1e-6 && gr(3).1 > 0.0, "{engine}: transient reduction {:?}", gr(3));
        for i in [1, 4] {
            assert!(stages[i]["gain_reduction"].is_null(), "{engine}: stage {i} reports a gain reduction");
        }
        reductions.push((gr(0), gr(2), gr(3)));
        let stems = song_stem_files(&out);
        let (_, master) = read_audio(&out.join("master.wav"));
        assert_stems_sum_to_master(engine, &stems, &master);
        masters.push(master);
        vox.push(read_audio(&stems[3]).1);
    }
    if let [cpu, gpu] = &reductions[..] {
        assert_eq!(cpu, gpu, "the engines' compressors report different reductions");
    }
    if let ([cpu, gpu], [cpu_vox, gpu_vox]) = (&masters[..], &vox[..]) {
        assert_engines_agree("master", cpu, gpu);
        // A stem output takes the bus stages' shared work on both engines alike.
        assert_engines_agree("vox stem", cpu_vox, gpu_vox);
        // pcm24 (TPDF dither): within 1 LSB (DESIGN.md's parity contract).
        assert_engines_within_1_lsb(dir.path(), "master24.wav", "every stage");
    }
    // Without the bus chain (the same stems and targets) the master is another signal.
    let out = dir.path().join("plain");
    render(&session, &out, "cpu", &[], 0);
    let (_, plain_master) = read_audio(&out.join("master.wav"));
    let (peak, _) = residual(&plain_master, &masters[0]);
    println!("with vs without the bus chain: {peak:.1} dBFS peak");
    assert!(peak > -40.0, "the bus chain changed the master by only {peak:.1} dBFS peak");
}

/// A bus `saturation` cannot be shared out among stems: with a stems output the render refuses it
/// (exit 2, naming the stage and the way out) unless that output sets `allow_residual = true`;
/// then it renders, the stems stay aligned with the master (delayed as the stage delays the bus),
/// and the report gives the residual of their sum against the master, which the test recomputes.
#[test]
fn a_bus_saturation_with_stems_needs_allow_residual() {
    let dir = tempfile::tempdir().unwrap();
    let stems_out = "[[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n";
    let session = song_session(dir.path(), -10.0, -1.0, stems_out);
    let text = std::fs::read_to_string(&session)
        .unwrap()
        .replace("[bus]\n", "[bus]\nprocess = [{ type = \"saturation\", drive_db = 9.0 }]\n");
    std::fs::write(&session, &text).unwrap();
    let refused = dir.path().join("refused");
    let err = render(&session, &refused, "cpu", &[], 2);
    for needle in ["bus.process[0]", "saturation", "outputs[1]", "allow_residual = true"] {
        assert!(err.contains(needle), "message {err:?} does not mention {needle:?}");
    }
    assert!(!refused.join("master.wav").exists(), "a refused render wrote its master");
    std::fs::write(&session, text.replace("kind = \"stems\"\n", "kind = \"stems\"\nallow_residual = true\n")).unwrap();
    for engine in engines() {
        let out = dir.path().join(engine);
        let rp = dir.path().join(format!("{engine}.json"));
        render(&session, &out, engine, &["--report", rp.to_str().unwrap()], 0);
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rp).unwrap()).unwrap();
        let stems = song_stem_files(&out);
        let (_, master) = read_audio(&out.join("master.wav"));
        let sum = sum_of(&stems);
        let (peak, rms) = residual(&sum, &master);
        let reported =
            (r["stem_residual"]["peak_dbfs"].as_f64().unwrap(), r["stem_residual"]["rms_dbfs"].as_f64().unwrap());
        println!("{engine}: residual {peak:.2} dBFS peak, {rms:.2} rms; reported {reported:.2?}");
        // The saturation's harmonics: well above rounding, well below the programme.
        assert!(peak > -60.0 && rms < -20.0, "{engine}: residual {peak:.1} dBFS peak, {rms:.1} rms");
        assert!((reported.0 - peak).abs() < 0.01 && (reported.1 - rms).abs() < 0.01, "{engine}: reported {reported:?}");
        // Aligned: the stems' sum correlates with the master at lag 0 better than at +-1 frame.
        let corr = |lag: i64| -> f64 {
            (200..master[0].len() - 200).map(|n| master[0][n] as f64 * sum[0][(n as i64 + lag) as usize] as f64).sum()
        };
        assert!(corr(0) > corr(1) && corr(0) > corr(-1), "{engine}: the stems are not aligned with the master");
    }
}

/// Issue 11's must-show for `key` (ducking): a music stem keyed on a dialogue stem is reduced only
/// while the dialogue speaks, on both engines, and the stems still sum to the master. Music: a
/// steady stereo 440 Hz sine at -20 dBFS. Dialogue (mono, with a linear-phase high-pass EQ, so its
/// path has 4095 frames of latency that the music's has not): a 1 kHz tone at 0.5 in 1-2 s and
/// 3-4 s, a -80 dBFS noise floor elsewhere; its own chain (a compressor at ratio 1 with -6 dB of
/// make-up: a plain -6 dB) runs before the key is read, so the key's level is that of a tone at
/// 0.5·10^(-6/20). The compressor on the music: rms 10 ms (ten periods of the tone, so the key's
/// level is steady: 10·log10(0.5²/2) - 6 = -15.03 dB), T = -30, R = 4, so the static curve's gain
/// is -(x - T)(1 - 1/R) = -11.23 dB while the dialogue speaks (-15.73 dB if the key were read
/// before the dialogue's chain) and 0 dB on the floor. No master stage, so a stem output is the
/// processed stem.
#[test]
fn a_music_stem_keyed_on_dialogue_ducks_only_while_the_dialogue_speaks() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 5 * FS as usize;
    let fs = FS as f64;
    let music: Vec<Vec<f32>> = (0..2)
        .map(|c| {
            (0..frames)
                .map(|n| (0.1 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / fs + c as f64).sin()) as f32)
                .collect()
        })
        .collect();
    let speaks =
        |n: usize| (FS as usize..2 * FS as usize).contains(&n) || (3 * FS as usize..4 * FS as usize).contains(&n);
    let floor = music_noise(91, frames, Noise::FullScale);
    let dialogue: Vec<f32> = (0..frames)
        .map(|n| {
            if speaks(n) {
                (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / fs).sin()) as f32
            } else {
                1e-4 * floor[n]
            }
        })
        .collect();
    write_wav(&dir.path().join("music.wav"), &music, FS, 0);
    write_wav(&dir.path().join("dialogue.wav"), std::slice::from_ref(&dialogue), FS, 0);
    let session = session_file(
        dir.path(),
        "name = \"ducking\"\nlayout = \"stereo\"\n\
         [[stems]]\nname = \"music\"\npath = \"music.wav\"\n\
         process = [{ type = \"compressor\", threshold_db = -30.0, ratio = 4.0, detector = \"rms\", rms_ms = 10.0, \
         attack_ms = 5.0, release_ms = 100.0, key = \"dialogue\" }]\n\
         [[stems]]\nname = \"dialogue\"\npath = \"dialogue.wav\"\n\
         eq = [{ type = \"highpass\", freq_hz = 80.0, order = 2 }]\n\
         process = [{ type = \"compressor\", threshold_db = -80.0, ratio = 1.0, makeup_db = -6.0 }]\n\
         [eq_design]\nphase = \"linear\"\ntaps = 8191\n\
         [[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"f32\"\n\
         [[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n",
    );
    let expected = -(10.0 * (0.5f64 * 0.5 / 2.0).log10() - 6.0 + 30.0) * (1.0 - 1.0 / 4.0);
    let seconds = |a: f64, b: f64| (a * fs) as usize..(b * fs) as usize;
    let mut outs = Vec::new();
    for engine in engines() {
        let out = dir.path().join(engine);
        render(&session, &out, engine, &[], 0);
        let (_, y) = read_audio(&out.join("stems/music.wav"));
        // The gain over an interval: the output's RMS against the input's (both channels).
        let gain_db = |r: std::ops::Range<usize>| {
            let e = |x: &[Vec<f32>]| {
                x.iter().map(|c| c[r.clone()].iter().map(|v| (*v as f64).powi(2)).sum::<f64>()).sum::<f64>()
            };
            10.0 * (e(&y) / e(&music)).log10()
        };
        // While the dialogue speaks (after 200 ms of attack): the static curve, within 0.1 dB.
        for (a, b) in [(1.2, 1.95), (3.2, 3.95)] {
            let g = gain_db(seconds(a, b));
            println!("{engine}: music {a}-{b} s (dialogue speaks): {g:.3} dB (static curve {expected:.3} dB)");
            assert!((g - expected).abs() < 0.1, "{engine}: music in {a}-{b} s at {g:.3} dB, not {expected:.3} dB");
        }
        // Silent: before the first word unity exactly; 600 ms after each (release 100 ms: 15.7 dB
        // decays to 0.04 dB) within 0.1 dB of unity.
        for (a, b) in [(0.0, 0.95), (2.6, 2.95), (4.6, 5.0)] {
            let g = gain_db(seconds(a, b));
            println!("{engine}: music {a}-{b} s (dialogue silent): {g:.4} dB");
            assert!(g.abs() < 0.1, "{engine}: music in {a}-{b} s (dialogue silent) at {g:.3} dB, not unity");
        }
        assert_eq!(y[0][..FS as usize - 1], music[0][..FS as usize - 1], "{engine}: music moved before the first word");
        // The ducking starts with the first word, not the 4095 frames of the dialogue's EQ early
        // or late: the first frame 1 dB down lies within the 10 ms RMS window after 1 s.
        let onset = (0..frames)
            .find(|&n| music[0][n].abs() > 0.05 && (y[0][n] / music[0][n]).abs() < 10f32.powf(-1.0 / 20.0))
            .unwrap();
        println!("{engine}: ducking 1 dB down at frame {onset} (first word at {})", FS);
        assert!((FS as usize..FS as usize + 480).contains(&onset), "{engine}: ducking 1 dB down at frame {onset}");
        // The stems still sum to the master.
        let stems = ["music", "dialogue"].map(|n| out.join(format!("stems/{n}.wav")));
        let (_, master) = read_audio(&out.join("master.wav"));
        assert_stems_sum_to_master(engine, &stems, &master);
        outs.push(y);
    }
    if let [cpu, gpu] = &outs[..] {
        assert_engines_agree("music stem", cpu, gpu);
    }
}

/// A keyed compressor whose stem has latency from the compressor on (its look-ahead, a later
/// width with `mono_below_hz`) would read the key late: the render refuses it (exit 2, naming the
/// stem, the entry, the frames and the fix), writing nothing; latency before it is fine.
#[test]
fn a_keyed_compressor_with_latency_after_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let frames = FS as usize;
    write_wav(&dir.path().join("music.wav"), &music(3, frames, 2, -12.0), FS, 0);
    write_wav(&dir.path().join("dx.wav"), &music(4, frames, 1, -6.0), FS, 0);
    let session = |chain: &str| {
        session_file(
            dir.path(),
            &format!(
                "name = \"k\"\nlayout = \"stereo\"\n[[stems]]\nname = \"music\"\npath = \"music.wav\"\n\
                 process = [{chain}]\n[[stems]]\nname = \"dx\"\npath = \"dx.wav\"\n\
                 [eq_design]\ntaps = 1023\n\
                 [[outputs]]\npath = \"master.wav\"\nkind = \"master\"\nformat = \"f32\"\n"
            ),
        )
    };
    let keyed = "{ type = \"compressor\", threshold_db = -30.0, key = \"dx\" }";
    let keyed_ahead = "{ type = \"compressor\", threshold_db = -30.0, key = \"dx\", lookahead_ms = 5.0 }";
    let width = "{ type = \"width\", width = 1.2, mono_below_hz = 100.0 }";
    for (chain, frames) in [(keyed_ahead.to_string(), 240), (format!("{keyed}, {width}"), 511)] {
        let out = dir.path().join("refused");
        let err = render(&session(&chain), &out, "cpu", &[], 2);
        for needle in ["stem `music`", "process[0] (compressor)", "\"dx\"", &format!("{frames} frames"), "lookahead_ms"]
        {
            assert!(err.contains(needle), "{chain}: message {err:?} does not mention {needle:?}");
        }
        assert!(!out.join("master.wav").exists(), "{chain}: a refused render wrote its master");
    }
    // Latency before the keyed compressor is compensated like any other.
    let out = dir.path().join("accepted");
    render(&session(&format!("{width}, {keyed}")), &out, "cpu", &[], 0);
    assert!(out.join("master.wav").exists());
}

/// DESIGN.md DSP 1: every latency is compensated: an impulse stays at its frame through a
/// linear-phase EQ, the bus EQ and the limiter's look-ahead and oversampling filter.
#[test]
fn impulses_stay_at_their_frame() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 3 * FS as usize;
    // Around block boundaries (8192) and both ends, each far enough from the next to be found alone.
    let clicks = [1usize, 8191, 16_384, 50_001, frames - 3];
    let mut s = music(5, frames, 2, -40.0);
    for &c in &clicks {
        s[0][c] = 0.5;
        s[1][c] = -0.5;
    }
    quantise(&mut s, 24);
    write_wav(&dir.path().join("clicks.wav"), &s, FS, 24);
    let session = session_file(
        dir.path(),
        r#"name = "align"
layout = "stereo"
[[stems]]
name = "clicks"
path = "clicks.wav"
eq = [{ type = "peak", freq_hz = 2000.0, gain_db = 3.0, q = 2.0 }]
[bus]
eq = [{ type = "low_shelf", freq_hz = 100.0, gain_db = -2.0, q = 0.707 }]
[master]
ceiling_dbtp = -1.0
[[outputs]]
path = "out.wav"
kind = "master"
format = "f32"
"#,
    );
    for engine in engines() {
        let out = dir.path().join(engine);
        render(&session, &out, engine, &[], 0);
        let (_, y) = read_audio(&out.join("out.wav"));
        assert_eq!(y[0].len(), frames);
        for &c in &clicks {
            // The click is the largest sample within +-200 frames of where it was put, on its frame.
            let lo = c.saturating_sub(200);
            let hi = (c + 200).min(frames);
            let at = (lo..hi).max_by(|a, b| y[0][*a].abs().total_cmp(&y[0][*b].abs())).unwrap();
            assert_eq!(at, c, "{engine}: click put at frame {c} came out at frame {at}");
            assert!(y[0][c] > 0.2 && y[1][c] < -0.2, "{engine}: click at {c} lost its level or polarity");
        }
    }
}

/// The limiter's guarantee on hard material through the whole chain, read by ffmpeg.
#[test]
fn limiter_holds_the_ceiling_on_hard_signals() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 2 * FS as usize;
    let n = frames;
    let mut square = vec![vec![0.0f32; n]; 2];
    let mut quarter = vec![vec![0.0f32; n]; 2];
    let mut burst = vec![vec![0.0f32; n]; 2];
    for i in 0..n {
        let sq = if (i / 37) % 2 == 0 { 0.999 } else { -0.999 };
        square[0][i] = sq;
        square[1][i] = -sq;
        // fs/4 at 45 degrees: samples at +-0.707 of a sine whose true peak is 1.0 (3 dB over).
        let q = (std::f64::consts::PI / 2.0 * i as f64 + std::f64::consts::PI / 4.0).sin() as f32;
        quarter[0][i] = q;
        quarter[1][i] = q;
        // Silence, then a full-scale transient.
        let t = if i > n / 2 { if (i - n / 2) < 3 { 0.99 } else { 0.0 } } else { 0.0 };
        burst[0][i] = t;
        burst[1][i] = t;
    }
    // A quiet bed under the transient, so the limiter releases from a real signal.
    let bed = music(11, n, 2, -30.0);
    for (b, d) in burst.iter_mut().zip(&bed) {
        b.iter_mut().zip(d).for_each(|(x, y)| *x += *y);
    }
    write_wav(&dir.path().join("square.wav"), &square, FS, 0);
    write_wav(&dir.path().join("quarter.wav"), &quarter, FS, 0);
    write_wav(&dir.path().join("burst.wav"), &burst, FS, 0);
    for (case, gain) in [("square", 6.0), ("quarter", 3.0), ("burst", 10.0)] {
        let session = session_file(
            dir.path(),
            &format!(
                r#"name = "hard-{case}"
layout = "stereo"
[[stems]]
name = "{case}"
path = "{case}.wav"
gain_db = {gain}
[master]
ceiling_dbtp = -1.0
[[outputs]]
path = "{case}-out.wav"
kind = "master"
format = "f32"
[[outputs]]
path = "{case}-out16.wav"
kind = "master"
format = "pcm16"
"#
            ),
        );
        for engine in engines() {
            let out = dir.path().join(engine);
            render(&session, &out, engine, &[], 0);
            for f in [format!("{case}-out.wav"), format!("{case}-out16.wav")] {
                let path = out.join(&f);
                // The reference meter (DESIGN.md DSP 5: the `ebur128` crate).
                let reference = stemforge::meter::measure_file(&path).unwrap();
                assert!(
                    reference.true_peak_dbtp <= -1.0,
                    "{engine} {f}: true peak {:.2} dBTP",
                    reference.true_peak_dbtp
                );
                assert!(
                    reference.sample_peak_dbfs <= -1.0,
                    "{engine} {f}: sample peak {:.2} dBFS",
                    reference.sample_peak_dbfs
                );
                let (_, ffmpeg_tp, _) = ffmpeg_loudness(&path);
                if case == "quarter" {
                    // ffmpeg 5.1's true-peak meter (swresample to 192 kHz) over-reads pure high
                    // tones: a 0.5-amplitude sine reads +0.3 dB at 10 kHz, +0.9 dB at 15 kHz, and
                    // this fs/4 case +0.6 dB over its analytic peak. The reference meter reads
                    // them within 0.03 dB, so the tone is held to the reference meter above.
                    eprintln!("{engine} {f}: ffmpeg reads {ffmpeg_tp:.2} dBTP (its HF over-read)");
                } else {
                    assert!(ffmpeg_tp <= -1.0, "{engine} {f}: true peak {ffmpeg_tp:.2} dBTP by ffmpeg");
                }
            }
        }
    }
}

/// The bundled demo renders to its golden f32 master (reference-renders/README.md says how it
/// was made; a change that moves it must say why).
#[test]
fn demo_matches_its_golden_render() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference-renders/demo");
    let dir = tempfile::tempdir().unwrap();
    for engine in engines() {
        let out = dir.path().join(engine);
        render(&root.join("session.toml"), &out, engine, &[], 0);
        let (_, got) = read_audio(&out.join("out/master-f32.wav"));
        let (_, gold) = read_audio(&root.join("golden/master-f32.wav"));
        let (peak, rms) = residual(&got, &gold);
        // The render parity contract (DESIGN.md): float output within -100 dBFS peak, -120 RMS.
        println!("{engine}: demo vs golden {peak:.1} dBFS peak, {rms:.1} dBFS RMS");
        assert!(peak <= -100.0 && rms <= -120.0, "{engine}: demo vs golden {peak:.1} dBFS peak, {rms:.1} rms");
    }
    // Its 24-bit master and stems (-14 LUFS) within 1 LSB across engines.
    if engines().len() == 2 {
        for file in
            ["master.wav", "stems/drums.wav", "stems/bass.wav", "stems/music.wav", "stems/vocals.wav", "stems/fx.wav"]
        {
            assert_engines_within_1_lsb(dir.path(), &format!("out/{file}"), "demo");
        }
    }
}

/// The largest difference between the two engines' renders of `file` (under `dir`/cpu and
/// `dir`/gpu) in LSB at 24 bits, printed, and asserted to be at most 1 (DESIGN.md "Parity
/// contract": the dither is the same pure function on both, so only float rounding differs).
fn assert_engines_within_1_lsb(dir: &Path, file: &str, what: &str) -> f64 {
    let (_, a) = read_audio(&dir.join("cpu").join(file));
    let (_, b) = read_audio(&dir.join("gpu").join(file));
    assert_eq!(a.len(), b.len(), "{what} {file}: channel counts");
    let mut worst = (0.0f64, 0usize, 0usize);
    for (c, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.len(), y.len(), "{what} {file}: frame counts");
        for (n, (p, q)) in x.iter().zip(y).enumerate() {
            let lsb = ((*p as f64 - *q as f64) * 8_388_608.0).abs();
            if lsb > worst.0 {
                worst = (lsb, c, n);
            }
        }
    }
    println!("{what} {file}: cpu vs gpu at most {} LSB", worst.0);
    assert!(worst.0 <= 1.0, "{what} {file}: {} LSB apart at channel {}, frame {}", worst.0, worst.1, worst.2);
    worst.0
}

/// Render `session` on both engines into `dir`/cpu and `dir`/gpu and hold every pcm24 `files`
/// to 1 LSB; false (nothing checked) when STEMFORGE_SKIP_GPU_TESTS=1 leaves one engine.
fn engines_agree_on(dir: &Path, session: &Path, files: &[&str], what: &str) -> bool {
    if engines().len() < 2 {
        return false; // engines() has said so
    }
    for engine in ["cpu", "gpu"] {
        render(session, &dir.join(engine), engine, &[], 0);
    }
    for file in files {
        assert_engines_within_1_lsb(dir, file, what);
    }
    true
}

const DME_PCM24: [&str; 4] = ["printmaster.wav", "stems/dialogue.wav", "stems/music.wav", "stems/effects.wav"];

/// Issue 4: the same session on both engines gives a 24-bit 5.1 printmaster (and stems) within
/// 1 LSB per sample.
#[test]
fn engines_agree_on_a_24_bit_printmaster() {
    let dir = tempfile::tempdir().unwrap();
    let session = dme_session(dir.path(), -23.0, -1.0);
    engines_agree_on(dir.path(), &session, &DME_PCM24, "5.1 at -23 LUFS");
}

/// The same at -14 LUFS, where the normalisation gain lifts the FIRs' rounding too: with f32 FFTs
/// (about -135 dBFS apart) the engines differed by 2-3 LSB here; both FIRs now compute in f64.
#[test]
fn engines_agree_on_a_loud_24_bit_printmaster() {
    let dir = tempfile::tempdir().unwrap();
    let session = dme_session(dir.path(), -14.0, -1.0);
    engines_agree_on(dir.path(), &session, &DME_PCM24, "5.1 at -14 LUFS");
}

/// A stereo song at -14 LUFS / -1 dBTP with 4095-tap stem and bus EQs (the linked stems' FIR is
/// their convolution, 8189 taps): a pcm24 master and pcm24 stems within 1 LSB across engines.
#[test]
fn engines_agree_on_a_loud_24_bit_song_and_its_stems() {
    let dir = tempfile::tempdir().unwrap();
    let pcm24 = "[[outputs]]\npath = \"master24.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n\
                 [[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"pcm24\"\n";
    let session = song_session(dir.path(), -14.0, -1.0, pcm24);
    let files = ["master24.wav", "stems/drums.wav", "stems/bass.wav", "stems/keys.wav", "stems/vox.wav"];
    engines_agree_on(dir.path(), &session, &files, "stereo song at -14 LUFS");
}

/// Issue 4: the GPU engine reduces the limiter gain to statistics on its device (least gain, Σ log10
/// per block; `gpu::limiter_apply`'s `stats`) instead of sending it down per frame. The report's
/// gain reduction from those matches the CPU engine's, computed on the host from every frame's gain,
/// on a song pushed to -9 LUFS so that the limiter works hard (24 blocks, the last one partial).
/// 1e-4 dB: the two engines' gains differ by float rounding only (their pcm24 outputs agree to
/// 1 LSB), and the device's f32 log2 sums add about 1e-6 dB to the mean (parity test
/// `limiter_apply_stats`); the measured differences are printed.
#[test]
fn engines_agree_on_the_gain_reduction() {
    if engines().len() < 2 {
        return; // engines() has said so
    }
    let dir = tempfile::tempdir().unwrap();
    let session = song_session(dir.path(), LOUD_TARGET, LOUD_CEILING, "");
    let mut reports = Vec::new();
    for engine in ["cpu", "gpu"] {
        let rp = dir.path().join(format!("{engine}.json"));
        render(&session, &dir.path().join(engine), engine, &["--report", rp.to_str().unwrap()], 0);
        reports.push(solve_report(&rp));
    }
    // The reductions depend on G, which each engine solves from its own analysis pass: it must
    // agree well inside the bound for the comparison to say anything about the reductions.
    let g: Vec<f64> = reports.iter().map(|r| r["gain_db"].as_f64().unwrap()).collect();
    println!("gain_db: cpu {:.9}, gpu {:.9}, |diff| {:.3e} dB", g[0], g[1], (g[0] - g[1]).abs());
    assert!((g[0] - g[1]).abs() <= 1e-5, "G: cpu {} dB, gpu {} dB", g[0], g[1]);
    for key in ["max_db", "mean_db"] {
        let read = |r: &serde_json::Value| {
            let v = &r["gain_reduction"][key];
            v.as_f64().unwrap_or_else(|| panic!("gain_reduction.{key}: {v}"))
        };
        let (cpu, gpu) = (read(&reports[0]), read(&reports[1]));
        println!("gain_reduction.{key}: cpu {cpu:.9} dB, gpu {gpu:.9} dB, |diff| {:.3e} dB", (cpu - gpu).abs());
        // The limiter worked: tenths of a dB on average, several dB at its deepest.
        let least = if key == "max_db" { 2.0 } else { 0.1 };
        assert!(cpu > least, "gain_reduction.{key} {cpu} dB: the limiter barely worked");
        assert!((cpu - gpu).abs() <= 1e-4, "gain_reduction.{key}: cpu {cpu} dB, gpu {gpu} dB");
    }
}

// One writing pass (src/pipeline/solve.rs): G is solved on the analysis pass's spilled bus, so a render whose
// first G lands short still writes its outputs once; without a spill it repeats the writing pass.
// The song pushed to -9 LUFS keeps the limiter working, so the first G lands well short.

const LOUD_TARGET: f64 = -9.0;
const LOUD_CEILING: f64 = -1.0;

const SOLVE_STEMS_OUT: &str = "[[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"pcm24\"\n";

fn solve_report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn kinds(r: &serde_json::Value) -> Vec<String> {
    r["passes"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap().to_string()).collect()
}

fn lufs(p: &serde_json::Value) -> f64 {
    p["integrated_lufs"].as_f64().unwrap()
}

/// The benchmark's situation (the first limiter pass lands short) on a small session, with linked
/// stems (the writing pass's bus is sum of G·contributions through folded FIRs, not G·spill): the
/// solve corrects G on the spill and the outputs are written exactly once, on both engines, within
/// 0.05 LU by the render's meter and 0.1 LU by ffmpeg's.
#[test]
fn a_short_first_pass_is_solved_on_the_spill_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let session = song_session(dir.path(), LOUD_TARGET, LOUD_CEILING, SOLVE_STEMS_OUT);
    for engine in engines() {
        let out = dir.path().join(engine);
        let rp = dir.path().join(format!("{engine}.json"));
        render(&session, &out, engine, &["--report", rp.to_str().unwrap()], 0);
        let r = solve_report(&rp);
        let kinds = kinds(&r);
        let passes = r["passes"].as_array().unwrap();
        let solves: Vec<_> = passes.iter().filter(|p| p["kind"] == "solve").collect();
        for p in passes {
            eprintln!(
                "{engine}: {} G {:+.3} dB: {} LUFS, {} dBTP at aim {}",
                p["kind"].as_str().unwrap(),
                p["gain_db"].as_f64().unwrap(),
                p["integrated_lufs"],
                p["true_peak_dbtp"],
                p["aim_dbtp"]
            );
        }
        assert_eq!(kinds[0], "analysis", "{engine}: {kinds:?}");
        assert_eq!(kinds.last().unwrap(), "limiter", "{engine}: {kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "limiter").count(), 1, "{engine}: one writing pass: {kinds:?}");
        assert_eq!(kinds.len(), solves.len() + 2, "{engine}: {kinds:?}");
        // What makes this session the case in point: the first G lands short by more than the
        // tolerance, so today's loop would have written everything twice.
        let first = lufs(solves[0]);
        assert!(
            LOUD_TARGET - first > 0.05,
            "{engine}: the first G landed at {first:.3} LUFS: not short enough to test"
        );
        assert!(solves.len() >= 2, "{engine}: the solve corrected G");
        // Every solve tries a new G, or moves the limiter's aim at the G it landed on.
        let aim_moves = r["limiter"]["aim_moves"].as_u64().unwrap() as usize;
        assert_eq!(
            r["iterations"].as_u64().unwrap() as usize + aim_moves,
            solves.len(),
            "{engine}: G values tried and aim moves"
        );
        let written = passes.last().unwrap();
        assert_eq!(written["gain_db"], solves.last().unwrap()["gain_db"], "{engine}: written at the solved G");
        assert_eq!(r["gain_db"], written["gain_db"]);
        let after = r["loudness_after"]["integrated_lufs"].as_f64().unwrap();
        assert!((after - LOUD_TARGET).abs() <= 0.05, "{engine}: {after:.3} LUFS by the render's meter");
        assert_eq!(r["spec_met"], true, "{engine}: {}", r["spec_problems"]);
        // ffmpeg, the independent meter: 0.1 LU is the issue's acceptance figure.
        let master = out.join("master.wav");
        let (i, tp, _) = ffmpeg_loudness(&master);
        assert!((i - LOUD_TARGET).abs() <= 0.1, "{engine}: {i:.2} LUFS by ffmpeg");
        assert!(tp <= LOUD_CEILING, "{engine}: {tp:.2} dBTP by ffmpeg");
        let (_, m) = read_audio(&master);
        assert_eq!(m[0].len(), 4 * FS as usize);
        for stem in ["drums", "bass", "keys", "vox"] {
            assert!(out.join(format!("stems/{stem}.wav")).exists(), "{engine}: stems/{stem}.wav");
        }
        // Only the final outputs are left: no spill, no temporary of a discarded pass.
        assert_eq!(files_under(&out).len(), 5, "{engine}: {:?}", files_under(&out));
    }
}

/// With master output only, the writing pass's bus on the CPU engine is the spill times the same
/// f32 G through the same limiter code on the same block grid: the solve predicts its loudness
/// exactly, but for the meters' own summation order (the writing pass meters with every mode on,
/// which keeps a longer ring of energies than integrated-only metering: ~1e-14 LU apart; a
/// difference in the limited samples, even one f32 ulp of G, moves the reading by far more).
#[test]
fn the_solve_predicts_a_master_only_cpu_pass() {
    let dir = tempfile::tempdir().unwrap();
    let session = song_session(dir.path(), LOUD_TARGET, LOUD_CEILING, "");
    let rp = dir.path().join("r.json");
    render(&session, &dir.path().join("out"), "cpu", &["--report", rp.to_str().unwrap()], 0);
    let r = solve_report(&rp);
    let passes = r["passes"].as_array().unwrap();
    let n = passes.len();
    assert_eq!(kinds(&r)[n - 2..], ["solve", "limiter"]);
    let (solved, written) = (lufs(&passes[n - 2]), lufs(&passes[n - 1]));
    assert!((solved - written).abs() < 1e-9, "solve {solved} LUFS, writing pass {written} LUFS");
}

/// No spill (its folder does not exist): the render says so and finds G the old way, repeating
/// the writing pass, and still lands.
#[test]
fn without_a_spill_the_writing_pass_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let session = song_session(dir.path(), LOUD_TARGET, LOUD_CEILING, "");
    let rp = dir.path().join("r.json");
    let missing = dir.path().join("no-such-folder");
    let err = render(
        &session,
        &dir.path().join("out"),
        "cpu",
        &["--report", rp.to_str().unwrap(), "--spill-dir", missing.to_str().unwrap()],
        0,
    );
    assert!(err.contains("cannot spill the bus") && err.contains("no-such-folder"), "{err}");
    let r = solve_report(&rp);
    let kinds = kinds(&r);
    assert!(!kinds.contains(&"solve".to_string()), "{kinds:?}");
    let writes = kinds.iter().filter(|k| *k == "limiter").count();
    assert!(writes >= 2, "the first G lands short, so the writing pass repeats: {kinds:?}");
    // Each writing pass tries a new G, or moves the limiter's aim (no solve predicts the peak).
    let aim_moves = r["limiter"]["aim_moves"].as_u64().unwrap() as usize;
    assert_eq!(r["iterations"].as_u64().unwrap() as usize + aim_moves, writes);
    let after = r["loudness_after"]["integrated_lufs"].as_f64().unwrap();
    assert!((after - LOUD_TARGET).abs() <= 0.05, "{after:.3} LUFS");
    assert_eq!(files_under(&dir.path().join("out")).len(), 1, "one master; the discarded pass left nothing");
}

fn shas(r: &serde_json::Value) -> Vec<(String, String)> {
    let outputs = r["outputs"].as_array().unwrap();
    outputs
        .iter()
        .map(|o| {
            (
                o["path"].as_str().unwrap().rsplit('/').next().unwrap().to_string(),
                o["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The CPU engine's writing pass reads back what the analysis pass spilled (`--spill all`, the
/// default: the bus for a master-only render, each linked stem's contribution when stems are
/// delivered) instead of decoding and filtering the stems again: every FIR runs once. It is the
/// same function, so the outputs are the very bytes of a render that filters the stems again
/// (`--spill bus`), whose G the same solve finds.
#[test]
fn the_writing_pass_replays_the_spill_and_writes_the_same_samples() {
    let dir = tempfile::tempdir().unwrap();
    for (what, outputs, files) in [("master only", "", 1), ("master and stems", SOLVE_STEMS_OUT, 5)] {
        let name = what.replace(' ', "_");
        let src = dir.path().join(&name);
        std::fs::create_dir(&src).unwrap();
        let session = song_session(&src, LOUD_TARGET, LOUD_CEILING, outputs);
        let mut reports = Vec::new();
        for mode in ["all", "bus"] {
            let out = dir.path().join(format!("{name}-{mode}"));
            let rp = dir.path().join(format!("{name}-{mode}.json"));
            render(&session, &out, "cpu", &["--report", rp.to_str().unwrap(), "--spill", mode], 0);
            let r = solve_report(&rp);
            let passes = r["passes"].as_array().unwrap();
            let inputs: Vec<&str> = passes.iter().map(|p| p["input"].as_str().unwrap()).collect();
            let want = if mode == "all" { "spill" } else { "stems" };
            assert_eq!(inputs[0], "stems", "{what} --spill {mode}: the analysis pass reads the stems");
            assert_eq!(*inputs.last().unwrap(), want, "{what} --spill {mode}: the writing pass: {inputs:?}");
            assert_eq!(kinds(&r).iter().filter(|k| *k == "limiter").count(), 1, "{what} --spill {mode}");
            assert_eq!(r["spec_met"], true, "{what} --spill {mode}: {}", r["spec_problems"]);
            assert_eq!(files_under(&out).len(), files, "{what} --spill {mode}: only the outputs are left");
            reports.push(r);
        }
        assert_eq!(reports[0]["gain_db"], reports[1]["gain_db"], "{what}: the same G");
        let (replayed, filtered) = (shas(&reports[0]), shas(&reports[1]));
        assert_eq!(replayed.len(), files);
        assert_eq!(replayed, filtered, "{what}: replayed and re-filtered outputs differ");
    }
}

/// `--spill none` writes no temporary file at all: G is found by repeating the writing pass.
#[test]
fn spill_none_repeats_the_writing_pass_without_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let session = song_session(dir.path(), LOUD_TARGET, LOUD_CEILING, "");
    let rp = dir.path().join("r.json");
    let err =
        render(&session, &dir.path().join("out"), "cpu", &["--report", rp.to_str().unwrap(), "--spill", "none"], 0);
    assert!(!err.contains("cannot spill"), "asked for: no note: {err}");
    let r = solve_report(&rp);
    let kinds = kinds(&r);
    assert!(!kinds.contains(&"solve".to_string()), "{kinds:?}");
    assert!(kinds.iter().filter(|k| *k == "limiter").count() >= 2, "the first G lands short: {kinds:?}");
    let after = r["loudness_after"]["integrated_lufs"].as_f64().unwrap();
    assert!((after - LOUD_TARGET).abs() <= 0.05, "{after:.3} LUFS");
}

/// The GPU engine's device meter (`STEMFORGE_GPU_METER=device`, `gpu::meter`) reads the master
/// as its CPU meter does (`=cpu`, the `ebur128` crate on the downloaded PCM): every reading of
/// the report within DESIGN.md's 0.01 LU/dB, the report says which meter ran in each pass, and
/// the 5.1 printmaster (no f32 master output, so none comes down for the meter) is the same file.
#[test]
fn engines_gpu_meter_on_the_device_reads_as_on_the_cpu() {
    if !engines().contains(&"gpu") {
        return; // engines() has said so
    }
    let dir = tempfile::tempdir().unwrap();
    let session = dme_session(dir.path(), -23.0, -1.0);
    let body = std::fs::read_to_string(&session)
        .unwrap()
        .replace("[[outputs]]\npath = \"printmaster-f32.wav\"\nkind = \"master\"\nformat = \"f32\"\n", "");
    std::fs::write(&session, body).unwrap();
    let mut reports = Vec::new();
    for meter in ["cpu", "device"] {
        let out = dir.path().join(meter);
        let rp = dir.path().join(format!("{meter}.json"));
        let rp_arg = rp.to_str().unwrap().to_string();
        render_with_env(&session, &out, "gpu", &["--report", &rp_arg], &[("STEMFORGE_GPU_METER", meter)], 0);
        let r = solve_report(&rp);
        assert_eq!(r["engine"]["meter"], meter, "{meter}: engine.meter");
        for p in r["passes"].as_array().unwrap() {
            let want = if p["kind"] == "solve" { "cpu" } else { meter };
            assert_eq!(p["meter"], want, "{meter}: pass {p}");
        }
        reports.push(r);
    }
    for key in
        ["integrated_lufs", "lra_lu", "max_momentary_lufs", "max_short_term_lufs", "sample_peak_dbfs", "true_peak_dbtp"]
    {
        let (a, b) = (&reports[0]["loudness_after"][key], &reports[1]["loudness_after"][key]);
        let (a, b) =
            (a.as_f64().unwrap_or_else(|| panic!("{key}: {a}")), b.as_f64().unwrap_or_else(|| panic!("{key}: {b}")));
        assert!((a - b).abs() <= 0.01, "loudness_after.{key}: cpu meter {a}, device meter {b}");
        println!("loudness_after.{key}: cpu meter {a:.6}, device meter {b:.6}, |diff| {:.2e}", (a - b).abs());
    }
    let (a, b) = (&reports[0]["loudness_before"]["integrated_lufs"], &reports[1]["loudness_before"]["integrated_lufs"]);
    assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 0.01, "loudness_before: {a} vs {b}");
    let read = |m: &str| std::fs::read(dir.path().join(m).join("printmaster.wav")).unwrap();
    assert!(read("cpu") == read("device"), "the printmaster depends on the meter");
    // Anything else in the variable is a usage error that names it.
    let err = render_with_env(&session, &dir.path().join("bad"), "gpu", &[], &[("STEMFORGE_GPU_METER", "gpu")], 2);
    assert!(err.contains("STEMFORGE_GPU_METER=gpu"), "{err}");
}
