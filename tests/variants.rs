//! Variants (design/deliverables.md "Variants") and output path templates, through the CLI on every
//! engine: an instrumental and an a cappella that sum to the master, a level-matched vocal-up and
//! one on target, a stems variant over the ceiling, bad input, and CPU/GPU parity.
mod common;

use std::path::{Path, PathBuf};

use common::gpu_parity::assert_engines_agree;
use common::*;

const FS: u32 = 48_000;
/// Programme length: 1.5 s quiet (the limiter idle), then 1.5 s loud (the limiter working).
const FRAMES: usize = 3 * FS as usize;
const QUIET: usize = 3 * FS as usize / 2;
/// Frames where the limiter is idle in every version: the quiet half less the look-ahead and
/// attack smoothing before the loud half (100 ms is ample for 2 ms).
const IDLE: usize = QUIET - FS as usize / 10;
/// Loud enough that the limiter works in the loud half (about 4 dB of gain reduction).
const TARGET: f64 = -9.0;

fn session_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("session.toml");
    std::fs::write(&p, body).unwrap();
    p
}

/// Four stems (the bass mono), quiet in their first half (26 dB down, under the relative gate) and
/// loud in their second, so that at `TARGET` the limiter works only in the second half; vocals
/// tagged with a role.
fn song(dir: &Path, body: &str) -> PathBuf {
    let names = ["drums", "bass", "keys", "vocals"];
    let mut toml = String::from("name = \"song\"\nlayout = \"stereo\"\n");
    for (i, n) in names.iter().enumerate() {
        let mut s = music(40 + i as u64, FRAMES, if *n == "bass" { 1 } else { 2 }, -6.0 - i as f64);
        for c in &mut s {
            for v in &mut c[..QUIET] {
                *v *= 0.05; // -26 dB
            }
        }
        quantise(&mut s, 24);
        write_wav(&dir.join(format!("{n}.wav")), &s, FS, 24);
        let role = if *n == "vocals" { "vocals" } else { "band" };
        toml += &format!("[[stems]]\nname = \"{n}\"\npath = \"{n}.wav\"\nrole = \"{role}\"\n");
    }
    toml += &format!("[eq_design]\ntaps = 511\n[master]\ntarget_lufs = {TARGET}\nceiling_dbtp = -1.0\n");
    toml += "[[outputs]]\npath = \"{name}_{variant}.wav\"\nkind = \"master\"\nformat = \"f32\"\n";
    toml += "[[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n";
    toml += body;
    session_file(dir, &toml)
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn variant<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["variants"].as_array().unwrap().iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("variant {name}"))
}

fn add(a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<Vec<f32>> {
    a.iter().zip(b).map(|(x, y)| x.iter().zip(y).map(|(p, q)| p + q).collect()).collect()
}

/// The reference meter (the `ebur128` crate) on a stereo file: integrated loudness and true peak.
fn reference_meter(path: &Path) -> (f64, f64) {
    let (fs, x) = read_audio(path);
    let mut m = ebur128::EbuR128::new(2, fs, ebur128::Mode::I | ebur128::Mode::TRUE_PEAK).unwrap();
    m.add_frames_planar_f32(&[&x[0], &x[1]]).unwrap();
    let tp = (0..2).map(|c| m.true_peak(c).unwrap()).fold(0.0f64, f64::max);
    (m.loudness_global().unwrap(), 20.0 * tp.log10())
}

/// An instrumental (vocals muted) and an a cappella (every other stem muted, by role), both
/// `mode = "stems"`, as f32: they sum to the main master within -110 dBFS, and the instrumental is
/// the sum of the main's other stem outputs. Path templates name the files.
#[test]
fn instrumental_and_a_cappella_sum_to_the_master() {
    let dir = tempfile::tempdir().unwrap();
    let session = song(
        dir.path(),
        r#"
[[variants]]
name = "instrumental"
mute = ["vocals"]
outputs = [ { path = "alt/{name}_{variant}_{layout}_{rate}_{bits}.wav", kind = "master", format = "f32" } ]

[[variants]]
name = "a-cappella"
mute = ["role:band"]
mode = "stems"
outputs = [
  { path = "alt/{name}_{variant}.wav", kind = "master", format = "f32" },
  { path = "alt/{variant}/{stem}_{bits}.wav", kind = "stems", format = "f32" },
]
"#,
    );
    let mut masters = Vec::new();
    for engine in engines() {
        let out = dir.path().join(engine);
        let rep = dir.path().join(format!("{engine}.json"));
        render(&session, &out, engine, &["--report", rep.to_str().unwrap()], 0);
        let (_, main) = read_audio(&out.join("song_main.wav"));
        let (_, inst) = read_audio(&out.join("alt/song_instrumental_2.0_48k_32f.wav"));
        let (_, acap) = read_audio(&out.join("alt/song_a-cappella.wav"));
        let (peak, rms) = residual(&add(&inst, &acap), &main);
        println!("{engine}: instrumental + a cappella vs master: {peak:.1} dBFS peak, {rms:.1} rms");
        assert!(peak <= -110.0, "{engine}: instrumental + a cappella vs master {peak:.1} dBFS peak");
        // The a cappella's one stem file is the main's vocal stem output, to the sample.
        let (_, vox) = read_audio(&out.join("alt/a-cappella/vocals_32f.wav"));
        let (_, main_vox) = read_audio(&out.join("stems/vocals.wav"));
        assert_eq!(vox, main_vox, "{engine}: the a cappella's vocals are the main's");
        assert!(!out.join("alt/a-cappella/drums_32f.wav").exists(), "{engine}: a muted stem has no file");
        let band: Vec<Vec<f32>> = ["drums", "bass", "keys"]
            .iter()
            .map(|n| read_audio(&out.join(format!("stems/{n}.wav"))).1)
            .reduce(|a, b| add(&a, &b))
            .unwrap();
        let (peak, _) = residual(&inst, &band);
        assert!(peak <= -130.0, "{engine}: instrumental vs the main's other stems {peak:.1} dBFS");
        let r = report(&rep);
        assert!(r["spec_met"].as_bool().unwrap());
        for name in ["instrumental", "a-cappella"] {
            let v = variant(&r, name);
            assert_eq!(v["mode"], "stems");
            assert_eq!(v["gain_db"], r["gain_db"], "{engine}: {name} carries the main's G");
            assert!(v["loudness_after"]["true_peak_dbtp"].as_f64().unwrap() <= -1.0, "{engine}: {name} {v}");
        }
        let variant_files = r["outputs"].as_array().unwrap().iter().filter(|o| !o["variant"].is_null()).count();
        assert_eq!(variant_files, 3, "{engine}: the variants' files are reported");
        masters.push((inst, acap));
    }
    if let [(ci, ca), (gi, ga)] = masters.as_slice() {
        assert_engines_agree("instrumental", ci, gi);
        assert_engines_agree("a cappella", ca, ga);
    }
}

/// A vocal-up remaster with the main's G: the same G, its vocal stem output +1.00 dB over the
/// main's where the limiter is idle (the quiet first half), its true peak under the ceiling; with
/// `loudness = "own"` it reads the target within 0.1 LU by the reference meter.
#[test]
fn vocal_up_is_level_matched_or_on_target() {
    let dir = tempfile::tempdir().unwrap();
    let session = song(
        dir.path(),
        r#"
[[variants]]
name = "vocal-up"
gain_db = { vocals = 1.0 }
loudness = "main"
outputs = [
  { path = "{name}_{variant}.wav", kind = "master", format = "f32" },
  { path = "{variant}-stems", kind = "stems", format = "f32" },
]

[[variants]]
name = "vocal-up-own"
gain_db = { vocals = 1.0 }
loudness = "own"
outputs = [ { path = "{name}_{variant}.wav", kind = "master", format = "f32" } ]
"#,
    );
    let mut renders = Vec::new();
    for engine in engines() {
        let out = dir.path().join(engine);
        let rep = dir.path().join(format!("{engine}.json"));
        render(&session, &out, engine, &["--report", rep.to_str().unwrap()], 0);
        let r = report(&rep);
        assert!(r["gain_reduction"]["max_db"].as_f64().unwrap() > 1.0, "{engine}: the limiter works in the main");
        println!(
            "{engine}: main G {:+.3} dB, {:.3} LUFS, {:.2} dBTP, limiter max {:.2} dB",
            r["gain_db"].as_f64().unwrap(),
            r["loudness_after"]["integrated_lufs"].as_f64().unwrap(),
            r["loudness_after"]["true_peak_dbtp"].as_f64().unwrap(),
            r["gain_reduction"]["max_db"].as_f64().unwrap(),
        );
        let up = variant(&r, "vocal-up");
        assert!(up["gain_reduction"]["max_db"].as_f64().unwrap() > 1.0, "{engine}: and in vocal-up's own limiter");
        assert_eq!(up["mode"], "remaster");
        assert_eq!(up["gain_db"], r["gain_db"], "{engine}: level-matched: the main's G");
        let (_, main_vox) = read_audio(&out.join("stems/vocals.wav"));
        let (_, up_vox) = read_audio(&out.join("vocal-up-stems/vocals.wav"));
        let energy =
            |x: &[Vec<f32>]| x.iter().map(|c| c[..IDLE].iter().map(|v| (*v as f64).powi(2)).sum::<f64>()).sum::<f64>();
        let lift = 10.0 * (energy(&up_vox) / energy(&main_vox)).log10();
        println!("{engine}: vocal-up's vocals over the main's, limiter idle: {lift:+.4} dB");
        assert!((lift - 1.0).abs() < 0.0001, "{engine}: vocal-up lifts the vocals {lift:+.4} dB, not +1.00");
        // The other stems are the main's where the limiter is idle.
        let (_, main_keys) = read_audio(&out.join("stems/keys.wav"));
        let (_, up_keys) = read_audio(&out.join("vocal-up-stems/keys.wav"));
        let head = |x: &[Vec<f32>]| x.iter().map(|c| c[..IDLE].to_vec()).collect::<Vec<_>>();
        let (peak, _) = residual(&head(&up_keys), &head(&main_keys));
        assert!(peak <= -130.0, "{engine}: vocal-up's keys differ from the main's by {peak:.1} dBFS where idle");
        let (_, tp) = reference_meter(&out.join("song_vocal-up.wav"));
        assert!(tp <= -1.0, "{engine}: vocal-up true peak {tp:.2} dBTP over the ceiling");
        let (lufs, tp) = reference_meter(&out.join("song_vocal-up-own.wav"));
        println!("{engine}: vocal-up-own {lufs:.3} LUFS, {tp:.2} dBTP");
        assert!((lufs - TARGET).abs() <= 0.1, "{engine}: vocal-up-own reads {lufs:.3} LUFS, not {TARGET} ± 0.1");
        assert!(tp <= -1.0, "{engine}: vocal-up-own true peak {tp:.2} dBTP over the ceiling");
        let own = variant(&r, "vocal-up-own");
        assert_eq!(own["loudness"], "own");
        assert_ne!(own["gain_db"], r["gain_db"], "{engine}: own G");
        renders.push((read_audio(&out.join("song_vocal-up.wav")).1, read_audio(&out.join("song_vocal-up-own.wav")).1));
    }
    if let [(cu, co), (gu, go)] = renders.as_slice() {
        assert_engines_agree("vocal-up", cu, gu);
        assert_engines_agree("vocal-up-own", co, go);
    }
}

/// A stems variant whose kept stems pass the ceiling without the stem that cancelled them in the
/// main (a stem and its inverted copy): exit 1, saying to use `remaster`, nothing published.
#[test]
fn a_stems_variant_over_the_ceiling_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let a = music(77, FRAMES, 2, -6.0);
    let b: Vec<Vec<f32>> = a.iter().map(|c| c.iter().map(|v| -0.9 * v).collect()).collect();
    write_wav(&dir.path().join("a.wav"), &a, FS, 0);
    write_wav(&dir.path().join("b.wav"), &b, FS, 0);
    let session = session_file(
        dir.path(),
        r#"name = "cancel"
layout = "stereo"
[[stems]]
name = "a"
path = "a.wav"
[[stems]]
name = "b"
path = "b.wav"
[master]
target_lufs = -14.0
ceiling_dbtp = -1.0
[[outputs]]
path = "master.wav"
kind = "master"
format = "f32"
[[variants]]
name = "no-b"
mute = ["b"]
outputs = [ { path = "no-b.wav", kind = "master", format = "f32" } ]
"#,
    );
    for engine in engines() {
        let out = dir.path().join(engine);
        let err = render(&session, &out, engine, &[], 1);
        assert!(err.contains("no-b") && err.contains("remaster"), "{engine}: {err}");
        assert!(files_under(&out).is_empty(), "{engine}: nothing published: {:?}", files_under(&out));
    }
}

/// Bad input is exit 2 naming the variant, output or placeholder, with nothing written.
#[test]
fn bad_variants_and_templates_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let stems = "[[stems]]\nname = \"vocals\"\npath = \"v.wav\"\nrole = \"vocals\"\n[[stems]]\nname = \"drums\"\npath = \"d.wav\"\n";
    write_wav(&dir.path().join("v.wav"), &music(1, FS as usize, 2, -12.0), FS, 24);
    write_wav(&dir.path().join("d.wav"), &music(2, FS as usize, 2, -12.0), FS, 24);
    let main = "[[outputs]]\npath = \"m.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n";
    let alt = "outputs = [ { path = \"alt.wav\", kind = \"master\", format = \"pcm24\" } ]\n";
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{stems}[[outputs]]\npath = \"{{nmae}}.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n"),
            vec!["outputs[0].path", "{nmae}"],
        ),
        (
            format!(
                "{stems}{main}[[variants]]\nname = \"x\"\noutputs = [ {{ path = \"{{index:02}}.wav\", kind = \"master\", format = \"f32\" }} ]\n"
            ),
            vec!["variants[0].outputs[0].path", "{index:02}", "album"],
        ),
        (
            format!("{stems}{main}[[variants]]\nname = \"inst\"\nmute = [\"vox\"]\n{alt}"),
            vec!["variants[0].mute[0]", "\"vox\""],
        ),
        (
            format!("{stems}{main}[[variants]]\nname = \"me\"\nmute = [\"role:dialogue\"]\n{alt}"),
            vec!["variants[0].mute[0]", "role \"dialogue\""],
        ),
        (
            format!(
                "{stems}{main}[[variants]]\nname = \"inst\"\nmute = [\"vocals\"]\n{alt}[[variants]]\nname = \"inst\"\nmute = [\"drums\"]\noutputs = [ {{ path = \"b.wav\", kind = \"master\", format = \"f32\" }} ]\n"
            ),
            vec!["variants[1].name", "\"inst\"", "already used"],
        ),
        (
            format!(
                "{stems}[[outputs]]\npath = \"{{name}}.wav\"\nkind = \"master\"\nformat = \"pcm24\"\n[[variants]]\nname = \"inst\"\nmute = [\"vocals\"]\noutputs = [ {{ path = \"s.wav\", kind = \"master\", format = \"f32\" }} ]\n"
            ),
            vec!["variants[0].outputs[0].path", "also the path of outputs[0]"],
        ),
        (
            format!("{stems}{main}[[variants]]\nname = \"up\"\ngain_db = {{ vocals = 1.0 }}\nmode = \"stems\"\n{alt}"),
            vec!["variants[0].gain_db", "remaster"],
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        // The session is named "s" so that "{name}.wav" and "s.wav" collide.
        let session = session_file(dir.path(), &format!("name = \"s\"\nlayout = \"stereo\"\n{body}"));
        let out = dir.path().join(format!("out{i}"));
        let err = render(&session, &out, "cpu", &[], 2);
        for w in want {
            assert!(err.contains(w), "case {i}: {w:?} not in: {err}");
        }
        assert!(files_under(&out).is_empty(), "case {i}: nothing written");
    }
}

/// The M&E of a 5.1 DME session (design/deliverables.md "M&E and stems to spec", issue 13 item 6):
/// a `mute = ["role:dialogue"]` stems variant. Its music and effects files are the printmaster's
/// stem outputs to the sample, the M&E plus the dialogue stem output is the printmaster within the
/// stem-sum tolerance, and its true peak is verified under the ceiling; on every engine.
#[test]
fn m_and_e_plus_dialogue_is_the_printmaster() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 6 * FS as usize;
    for (name, ch, level, seed) in [("dx", 1, -8.0, 71), ("mx", 6, -14.0, 72), ("fx", 6, -16.0, 73)] {
        let mut s = music(seed, frames, ch, level);
        quantise(&mut s, 24);
        write_wav(&dir.path().join(format!("{name}.wav")), &s, FS, 24);
    }
    let session = session_file(
        dir.path(),
        r#"name = "reel1"
layout = "5.1"
[[stems]]
name = "dx"
path = "dx.wav"
role = "dialogue"
[[stems]]
name = "mx"
path = "mx.wav"
role = "music"
[[stems]]
name = "fx"
path = "fx.wav"
role = "effects"
[master]
target_lufs = -24.0
ceiling_dbtp = -2.0
[[outputs]]
path = "{name}_printmaster.wav"
kind = "master"
format = "f32"
[[outputs]]
path = "stems"
kind = "stems"
format = "f32"
[[variants]]
name = "me"
mute = ["role:dialogue"]
mode = "stems"
outputs = [
  { path = "{name}_{variant}.wav", kind = "master", format = "f32" },
  { path = "{variant}/{stem}.wav", kind = "stems", format = "f32" },
]
"#,
    );
    let mut mes = Vec::new();
    for engine in engines() {
        let out = dir.path().join(engine);
        let rep = dir.path().join(format!("{engine}.json"));
        render(&session, &out, engine, &["--report", rep.to_str().unwrap()], 0);
        let (_, pm) = read_audio(&out.join("reel1_printmaster.wav"));
        let (_, me) = read_audio(&out.join("reel1_me.wav"));
        let (_, dx) = read_audio(&out.join("stems/dx.wav"));
        let (peak, rms) = residual(&add(&me, &dx), &pm);
        println!("{engine}: M&E + dialogue against the printmaster: {peak:.1} dBFS peak, {rms:.1} rms");
        assert!(peak <= -110.0, "{engine}: M&E + dialogue against the printmaster {peak:.1} dBFS");
        for s in ["mx", "fx"] {
            let (_, a) = read_audio(&out.join(format!("me/{s}.wav")));
            let (_, b) = read_audio(&out.join(format!("stems/{s}.wav")));
            assert_eq!(a, b, "{engine}: the M&E's {s} is the printmaster's, to the sample");
        }
        assert!(!out.join("me/dx.wav").exists());
        let r = report(&rep);
        let v = variant(&r, "me");
        assert_eq!(v["gain_db"], r["gain_db"], "{engine}: the M&E carries the printmaster's G");
        let tp = stemforge::meter::measure_file(&out.join("reel1_me.wav")).unwrap().true_peak_dbtp;
        assert!(tp <= -2.0, "{engine}: the M&E's true peak {tp} dBTP");
        mes.push(me);
    }
    if let [cpu, gpu] = mes.as_slice() {
        assert_engines_agree("M&E", cpu, gpu);
    }
}
