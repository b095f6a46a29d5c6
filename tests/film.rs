//! Film and TV delivery to a dialogue-gated spec (design/deliverables.md "Delivery profiles" and
//! "Dialogue-gated loudness", issue 13): the bundled film (reference-renders/film) to Netflix's
//! −27 LKFS dialogue-gated and −2 dBTP, its 5.1 printmaster and its 2.0 fold-down, read by the
//! tests' own BS.1770 reference on the delivered files and by ffmpeg; Netflix's programme rule where dialogue is sparse; ATSC A/85 on its anchor
//! element or its programme; and what is refused. Every render on both engines, with parity.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::loudness_ref::{block_energies, dialogue_gated};
use common::*;

const FS: u32 = 48_000;
/// BS.1770-4 channel weights of 5.1 in WAV order: L R C LFE Ls Rs.
const WEIGHTS_51: [f64; 6] = [1.0, 1.0, 1.0, 0.0, 1.41, 1.41];
const LABELS_51: [&str; 6] = ["L", "R", "C", "LFE", "Ls", "Rs"];

fn film_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference-renders/film")
}

/// The bundled film copied into `dir` (stems and session), its session edited by `edit`.
fn film_copy(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    std::fs::create_dir_all(dir.join("stems")).unwrap();
    for f in ["dialogue.flac", "music.flac", "effects.flac"] {
        std::fs::copy(film_dir().join("stems").join(f), dir.join("stems").join(f)).unwrap();
    }
    let text = std::fs::read_to_string(film_dir().join("session.toml")).unwrap();
    let p = dir.join("session.toml");
    std::fs::write(&p, edit(text)).unwrap();
    p
}

/// A session's text without its `[[variants]]` (the film's M&E is its last table).
fn without_variants(text: String) -> String {
    text.split("[[variants]]").next().unwrap().to_string()
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every output's SHA-256 by its path under `out`.
fn hashes(r: &serde_json::Value, out: &Path) -> BTreeMap<PathBuf, String> {
    r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let p = PathBuf::from(o["path"].as_str().unwrap());
            (p.strip_prefix(out).unwrap_or(&p).to_path_buf(), o["sha256"].as_str().unwrap().to_string())
        })
        .collect()
}

/// A split output's six mono files, `<stem>.<label>.wav`, as one 5.1 signal.
fn read_split(stem: &Path) -> Vec<Vec<f32>> {
    LABELS_51
        .iter()
        .map(|l| {
            let (fs, mut c) = read_audio(&stem.with_extension(format!("{l}.wav")));
            assert_eq!(fs, FS);
            c.remove(0)
        })
        .collect()
}

#[test]
fn the_bundled_film_delivers_to_netflix_dialogue_gated() {
    let d = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for engine in engines() {
        let out = d.path().join(engine);
        let rep = d.path().join(format!("{engine}.json"));
        let err = render(&film_dir().join("session.toml"), &out, engine, &["--report", rep.to_str().unwrap()], 0);
        assert!(!err.contains("warning"), "{engine}: the bundled film renders without a warning: {err}");
        assert!(err.contains("stem gating, not a speech classifier"), "{err}");
        let r = report(&rep);
        let n = &r["normalisation"];
        assert_eq!(n["rule"], "dialogue", "{n}");
        assert_eq!(n["target_lufs"], -27.0);
        assert_eq!(n["dialogue_stems"], serde_json::json!(["dialogue"]));
        assert!(n["method"].as_str().unwrap().contains("not a speech classifier"));
        let reading = n["reading_lufs"].as_f64().unwrap();
        let gated = n["dialogue"]["dialogue_gated_lufs"].as_f64().unwrap();
        let percent = n["dialogue"]["dialogue_percent"].as_f64().unwrap();
        let programme = n["programme_lufs"].as_f64().unwrap();
        assert_eq!(reading, gated, "under the dialogue rule the reading is the dialogue-gated loudness");
        assert!((gated + 27.0).abs() <= 0.1, "{engine}: dialogue-gated {gated} LUFS");
        assert_eq!(programme, r["loudness_after"]["integrated_lufs"].as_f64().unwrap());
        assert!(r["profile"]["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true), "{}", r["profile"]);

        // The tests' own reading of the files as delivered: the dialogue stem output (its six
        // split files) gates the printmaster's blocks.
        let printmaster = out.join("out/ep101_sc12_printmaster_5.1_24b.wav");
        let (fs, pm) = read_audio(&printmaster);
        assert_eq!(fs, FS);
        let dx = read_split(&out.join("out/dme/dialogue.wav"));
        let (own, blocks, own_percent) =
            dialogue_gated(&block_energies(&dx, &WEIGHTS_51), &block_energies(&pm, &WEIGHTS_51));
        let tool_blocks = n["dialogue"]["dialogue_blocks"].as_u64().unwrap() as usize;
        assert!((own + 27.0).abs() <= 0.1, "{engine}: the test's own dialogue-gated reading {own}");
        assert!((own - gated).abs() <= 0.02, "{engine}: report {gated}, the test's own {own}");
        assert!(blocks.abs_diff(tool_blocks) <= 1, "{engine}: {tool_blocks} dialogue blocks, the test's own {blocks}");
        assert!((own_percent - percent).abs() <= 1.0, "{engine}: {percent} %, the test's own {own_percent} %");
        // ffmpeg's meter: the programme loudness the report gives, and the ceiling.
        let (ff_i, ff_tp, _) = ffmpeg_loudness(&printmaster);
        assert!((ff_i - programme).abs() <= 0.1, "{engine}: ffmpeg {ff_i}, report {programme}");
        assert!(ff_tp <= -2.0, "{engine}: ffmpeg reads {ff_tp} dBTP");
        let tp = r["loudness_after"]["true_peak_dbtp"].as_f64().unwrap();
        assert!(tp <= -2.0, "{engine}: the reference meter reads {tp} dBTP");
        // The 2.0 fold-down, a deliverable of its own to the same spec: its own blocks, gated by
        // the dialogue stem's.
        let fold = &r["fold_down"];
        assert_eq!(fold["normalisation"]["rule"], "dialogue", "{fold}");
        let fold_gated = fold["normalisation"]["reading_lufs"].as_f64().unwrap();
        let stereo = out.join("out/ep101_sc12_printmaster_2.0_24b.wav");
        let (_, lo_ro) = read_audio(&stereo);
        assert_eq!(lo_ro.len(), 2);
        let (own_2, _, _) = dialogue_gated(&block_energies(&dx, &WEIGHTS_51), &block_energies(&lo_ro, &[1.0, 1.0]));
        assert!((fold_gated + 27.0).abs() <= 0.1, "{engine}: 2.0 dialogue-gated {fold_gated}");
        assert!((own_2 - fold_gated).abs() <= 0.02, "{engine}: 2.0 report {fold_gated}, the test's own {own_2}");
        let (ff_i2, ff_tp2, _) = ffmpeg_loudness(&stereo);
        assert!(ff_tp2 <= -2.0, "{engine}: ffmpeg reads the 2.0 at {ff_tp2} dBTP");
        assert_eq!(fold["spec_met"], true, "{fold}");
        println!(
            "{engine}: 2.0 fold-down dialogue-gated {fold_gated:.3} LUFS (tests' own {own_2:.3}), programme {ff_i2:.2} by \
             ffmpeg, {ff_tp2:.2} dBTP, its own G {:+.2} dB",
            fold["gain_db"].as_f64().unwrap()
        );
        println!(
            "{engine}: dialogue-gated {gated:.3} LUFS (tests' own {own:.3}), programme {programme:.3} (ffmpeg {ff_i:.1}), \
             dialogue {percent:.1} % ({tool_blocks} blocks; own {blocks}), true peak {tp:.2} dBTP (ffmpeg {ff_tp:.1})"
        );
        runs.push((engine, hashes(&r, &out)));
    }
    if let [(_, cpu), (_, gpu)] = &runs[..] {
        assert_eq!(cpu.len(), gpu.len());
        assert_eq!(cpu, gpu, "the engines' deliveries differ");
    }
}

/// Dialogue in under 15 % of the programme: Netflix's programme rule, −24 ±2 LKFS on the
/// programme's BS.1770-4 loudness, and the report says so beside the dialogue reading.
#[test]
fn netflix_with_sparse_dialogue_normalises_the_programme() {
    let d = tempfile::tempdir().unwrap();
    // The dialogue stem speaks only between 0.8 s and 2.0 s (its first line cut short).
    let wav = d.path().join("dialogue-full.wav");
    let st = std::process::Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-i"])
        .arg(film_dir().join("stems/dialogue.flac"))
        .arg(&wav)
        .status()
        .unwrap();
    assert!(st.success());
    let (_, mut dx) = read_audio(&wav);
    dx[0][2 * FS as usize..].fill(0.0);
    let mut runs = Vec::new();
    for engine in engines() {
        let dir = d.path().join(engine);
        let session = film_copy(&dir, |t| t.replace("stems/dialogue.flac", "stems/dialogue.wav"));
        write_wav(&dir.join("stems/dialogue.wav"), &dx, FS, 16);
        let rep = dir.join("report.json");
        let err = render(&session, &dir.join("render"), engine, &["--report", rep.to_str().unwrap()], 0);
        assert!(err.contains("under 15 %"), "{err}");
        let r = report(&rep);
        let n = &r["normalisation"];
        assert_eq!(n["rule"], "programme_sparse_dialogue", "{n}");
        assert_eq!(n["target_lufs"], -24.0);
        assert_eq!(r["target_lufs"], -24.0);
        let percent = n["dialogue"]["dialogue_percent"].as_f64().unwrap();
        assert!(percent < 15.0 && percent > 5.0, "{percent}");
        let (ff_i, ff_tp, _) = ffmpeg_loudness(&dir.join("render/out/ep101_sc12_printmaster_5.1_24b.wav"));
        assert!((ff_i + 24.0).abs() <= 0.1 && ff_tp <= -2.0, "{engine}: ffmpeg {ff_i} LUFS {ff_tp} dBTP");
        let loudness = r["profile"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"].as_str().unwrap().starts_with("loudness"))
            .cloned()
            .unwrap();
        assert_eq!(loudness["limit"], 2.0);
        assert_eq!(loudness["passed"], true);
        println!(
            "{engine}: dialogue {percent:.1} % of the programme: programme {ff_i:.2} LUFS by ffmpeg, dialogue-gated {}",
            n["dialogue"]["dialogue_gated_lufs"]
        );
        runs.push(hashes(&r, &dir.join("render")));
    }
    if let [cpu, gpu] = &runs[..] {
        assert_eq!(cpu, gpu, "the engines' deliveries differ");
    }
}

/// ATSC A/85 normalises its anchor element, the dialogue, where a stem has role "dialogue", and
/// the programme where none has.
#[test]
fn atsc_a85_gates_on_dialogue_when_there_is_a_dialogue_stem() {
    let d = tempfile::tempdir().unwrap();
    for engine in engines() {
        for (case, role) in [("dialogue", "role = \"dialogue\""), ("programme", "role = \"voice\"")] {
            let dir = d.path().join(format!("{engine}-{case}"));
            let session = film_copy(&dir, |t| {
                t.replace("profile = \"netflix\"", "profile = \"atsc-a85\"")
                    .replace("role = \"dialogue\"", role)
                    // The M&E mutes role:dialogue: without that role there is nothing to mute.
                    .split("[[variants]]")
                    .next()
                    .unwrap()
                    .to_string()
            });
            let rep = dir.join("report.json");
            render(&session, &dir.join("render"), engine, &["--report", rep.to_str().unwrap()], 0);
            let r = report(&rep);
            let n = &r["normalisation"];
            assert_eq!(n["rule"], case, "{engine}: {n}");
            assert_eq!(n["target_lufs"], -24.0);
            let reading = n["reading_lufs"].as_f64().unwrap();
            assert!((reading + 24.0).abs() <= 0.1, "{engine} {case}: {reading}");
            let (ff_i, ff_tp, _) = ffmpeg_loudness(&dir.join("render/out/ep101_sc12_printmaster_5.1_24b.wav"));
            assert!(ff_tp <= -2.0, "{engine} {case}: {ff_tp} dBTP");
            match case {
                "programme" => {
                    assert!((ff_i + 24.0).abs() <= 0.1, "{engine}: ffmpeg {ff_i}");
                    assert!(n.get("dialogue").is_none(), "{n}");
                }
                _ => assert!(n["dialogue"]["dialogue_gated_lufs"].as_f64().is_some(), "{n}"),
            }
            println!(
                "{engine}: atsc-a85 on the {case}: {reading:.3} LUFS, ffmpeg programme {ff_i:.2}, {ff_tp:.2} dBTP"
            );
        }
    }
}

/// What dialogue-gated normalisation refuses, each exit 2 naming the session and the key, with
/// nothing written.
#[test]
fn dialogue_normalisation_refuses_what_it_does_not_cover() {
    let d = tempfile::tempdir().unwrap();
    type Edit = dyn Fn(String) -> String;
    let cases: [(&str, &Edit, &[&str]); 3] = [
        (
            "no dialogue role",
            &|t: String| {
                t.replace("role = \"dialogue\"", "role = \"voice\"").split("[[variants]]").next().unwrap().to_string()
            },
            &["master.profile", "netflix", "role = \"dialogue\""],
        ),
        (
            "a resampled master",
            &|t: String| t.replacen("format = \"pcm24\"\n", "format = \"pcm24\"\nsample_rate = 44100\n", 1),
            &["outputs[0].sample_rate", "dialogue-gated"],
        ),
        (
            "a remaster variant with its own loudness",
            &|t: String| t.replace("mode = \"stems\"", "mode = \"remaster\"\nloudness = \"own\""),
            &["variants[0].loudness", "dialogue-gated"],
        ),
    ];
    for (i, (what, edit, want)) in cases.iter().enumerate() {
        let dir = d.path().join(format!("case{i}"));
        let session = film_copy(&dir, edit);
        let out = dir.join("render");
        let err = render(&session, &out, "cpu", &[], 2);
        assert!(err.contains("session.toml"), "{what}: {err}");
        for w in *want {
            assert!(err.contains(w), "{what}: {w:?} not in {err}");
        }
        assert!(files_under(&out).is_empty(), "{what}: nothing written");
    }
    // A segmented render does not carry the dialogue gate across segments.
    let dir = d.path().join("segments");
    let session = film_copy(&dir, without_variants);
    let out = stemforge()
        .arg("render")
        .arg(&session)
        .args(["--segments", "2", "--segment", "0", "--state-dir"])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("dialogue-gated") && err.contains("segmented"), "{err}");
}
