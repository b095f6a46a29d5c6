//! Delivery profiles (design/deliverables.md "Delivery profiles", issue 13): a render to a named
//! spec checks the master as written against the spec's checks and says which check failed and by
//! how much (exit 1, nothing published); on both engines.
mod common;

use std::path::{Path, PathBuf};

use common::*;

const FS: u32 = 48_000;

/// 40 s of music with a 6 s passage 13 dB louder: at -23 LUFS integrated its loudest 3 s read far
/// above -18 LUFS short-term.
fn session(dir: &Path, profile: &str) -> PathBuf {
    let frames = 40 * FS as usize;
    let mut m = music(51, frames, 2, -16.0);
    let loud = music(52, frames, 2, -3.0);
    for c in 0..2 {
        m[c][20 * FS as usize..26 * FS as usize].copy_from_slice(&loud[c][20 * FS as usize..26 * FS as usize]);
    }
    write_wav(&dir.join("stems/mix.wav"), &m, FS, 24);
    let p = dir.join("session.toml");
    std::fs::write(
        &p,
        format!(
            r#"name = "promo"
layout = "stereo"
[[stems]]
name = "mix"
path = "stems/mix.wav"
[master]
profile = "{profile}"
[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
"#
        ),
    )
    .unwrap();
    p
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn ebu_r128_s1_fails_on_its_short_term_limit_and_ebu_r128_passes() {
    let d = tempfile::tempdir().unwrap();
    let mut readings = Vec::new();
    for engine in engines() {
        // EBU R128 s1: the loud passage's short-term loudness is over -18 LUFS.
        let s1 = session(&d.path().join(format!("s1-{engine}")), "ebu-r128-s1");
        let rep = d.path().join(format!("s1-{engine}.json"));
        let out = d.path().join(format!("s1-{engine}-out"));
        let err = render(&s1, &out, engine, &["--report", rep.to_str().unwrap()], 1);
        assert!(
            err.contains("profile ebu-r128-s1: max short-term loudness") && err.contains("is over -18.00 by"),
            "{err}"
        );
        assert!(!out.join("master.wav").exists(), "a render that failed its profile published its master");
        let r = report(&rep);
        let checks = r["profile"]["checks"].as_array().unwrap();
        let st = checks.iter().find(|c| c["check"] == "max short-term loudness").unwrap();
        let (value, over) = (st["value"].as_f64().unwrap(), st["over_by"].as_f64().unwrap());
        assert_eq!(st["passed"], false);
        assert!((value - r["loudness_after"]["max_short_term_lufs"].as_f64().unwrap()).abs() < 1e-9);
        assert!((over - (value + 18.0)).abs() < 1e-9 && over > 0.5, "{st}");
        // Its loudness and true-peak checks passed: only the named one failed.
        assert!(
            checks.iter().filter(|c| c["check"] != "max short-term loudness").all(|c| c["passed"] == true),
            "{checks:?}"
        );
        assert_eq!(r["profile"]["name"], "ebu-r128-s1");
        assert!((r["loudness_after"]["integrated_lufs"].as_f64().unwrap() + 23.0).abs() <= 0.1);

        // EBU R128 (no short-term limit): the same programme delivers.
        let plain = session(&d.path().join(format!("r128-{engine}")), "ebu-r128");
        let rep = d.path().join(format!("r128-{engine}.json"));
        render(&plain, &d.path().join(format!("r128-{engine}-out")), engine, &["--report", rep.to_str().unwrap()], 0);
        let r = report(&rep);
        let checks = r["profile"]["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert!(checks.iter().all(|c| c["passed"] == true), "{checks:?}");
        assert_eq!(r["profile"]["tolerance_lu"], 0.5);
        readings.push((engine, value, r["loudness_after"]["integrated_lufs"].as_f64().unwrap()));
    }
    println!("max short-term at -23 LUFS, integrated as delivered: {readings:?}");
    if let [(_, st_cpu, i_cpu), (_, st_gpu, i_gpu)] = readings[..] {
        assert!((st_cpu - st_gpu).abs() < 0.01 && (i_cpu - i_gpu).abs() < 0.01, "engines differ: {readings:?}");
    }
}

#[test]
fn each_programme_profile_sets_its_target_and_ceiling() {
    let d = tempfile::tempdir().unwrap();
    let mut hashes = Vec::new();
    let profiles = [
        ("arib-tr-b32", -24.0, -1.0, 1.0),
        ("streaming", -14.0, -1.0, 1.0),
        ("apple-music", -16.0, -1.0, 1.0),
        // Without a dialogue stem ATSC A/85 normalises the programme.
        ("atsc-a85", -24.0, -2.0, 2.0),
    ];
    for ((profile, target, ceiling, tolerance), engine) in
        profiles.into_iter().flat_map(|p| engines().into_iter().map(move |e| (p, e)))
    {
        let dir = d.path().join(format!("{profile}-{engine}"));
        let s = session(&dir, profile);
        let rep = dir.join("report.json");
        render(&s, &dir.join("out"), engine, &["--report", rep.to_str().unwrap()], 0);
        let r = report(&rep);
        assert_eq!(r["profile"]["target_lufs"], target, "{profile}");
        assert_eq!(r["profile"]["ceiling_dbtp"], ceiling, "{profile}");
        assert_eq!(r["profile"]["tolerance_lu"], tolerance, "{profile}");
        assert_eq!(r["normalisation"]["rule"], "programme");
        let (l, tp, _) = ffmpeg_loudness(&dir.join("out/master.wav"));
        assert!((l - target).abs() <= 0.1 && tp <= ceiling, "{profile} {engine}: ffmpeg reads {l} LUFS, {tp} dBTP");
        hashes.push(((profile, engine), r["outputs"][0]["sha256"].clone()));
    }
    // Both engines deliver the same file for each profile.
    for pair in hashes.chunks(2).filter(|c| c.len() == 2) {
        assert_eq!(pair[0].1, pair[1].1, "{pair:?}");
    }
}

#[test]
fn an_unknown_profile_is_exit_2_naming_the_profiles() {
    let d = tempfile::tempdir().unwrap();
    let s = session(&d.path().join("bad"), "bbc");
    let err = render(&s, &d.path().join("bad/out"), "cpu", &[], 2);
    assert!(err.contains("\"bbc\"") && err.contains("ebu-r128-s1"), "{err}");
}
