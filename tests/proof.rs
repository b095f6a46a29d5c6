//! The proof page (design/proof.md, issue 15): it renders in headless Chromium with every section,
//! no console error and nothing fetched, and keeps a screenshot; its curves are the meter's own
//! readings (recomputed here with the `ebur128` crate from the written master), its gain-reduction
//! trace peaks at the report's maximum, its EQ curve is the design within 0.1 dB; the GPU engine's
//! page carries the same curves; `stemforge proof` rebuilds the page from the saved report; and
//! a 2-hour 5.1 report gives a page under 2 MB.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use ebur128::{EbuR128, Mode};
use serde_json::Value;
use stemforge::dsp::eq_design::bands_magnitude;
use stemforge::report::proof::{
    Curve, EqCurve, MasterProof, ProofData, ProofReport, SECTIONS, Spectrum, StemProof, page,
};

const FS: u32 = 48_000;
const STEP: usize = 4800;

/// An 8 s song: four stems (one mono), a realistic EQ on the vocals, a compressor on the drums,
/// mastered loud enough (-9 LUFS) that the limiter works; an f32 master (what the meter reads).
fn song(dir: &Path) -> PathBuf {
    song_with(dir, "")
}

/// `song`, with `top` (session keys such as `reference_mix`) before the stems.
fn song_with(dir: &Path, top: &str) -> PathBuf {
    let frames = 8 * FS as usize;
    for (i, (name, ch)) in [("drums", 2), ("bass", 1), ("music", 2), ("vocals", 2)].iter().enumerate() {
        let mut s = music(40 + i as u64, frames, *ch, -4.0 - i as f64);
        quantise(&mut s, 24);
        write_wav(&dir.join(format!("{name}.wav")), &s, FS, 24);
    }
    let toml = r#"name = "proof-song"
layout = "stereo"
TOP
[[stems]]
name = "drums"
path = "drums.wav"
process = [ { type = "compressor", threshold_db = -20.0, ratio = 3.0, attack_ms = 5.0, release_ms = 80.0 } ]
[[stems]]
name = "bass"
path = "bass.wav"
gain_db = -1.5
[[stems]]
name = "music"
path = "music.wav"
[[stems]]
name = "vocals"
path = "vocals.wav"
gain_db = 1.0
eq = [
  { type = "highpass", freq_hz = 80.0, order = 2 },
  { type = "low_shelf", freq_hz = 120.0, gain_db = -1.0, q = 0.707 },
  { type = "peak", freq_hz = 250.0, gain_db = -3.0, q = 1.4 },
  { type = "peak", freq_hz = 3000.0, gain_db = 2.0, q = 1.0 },
  { type = "high_shelf", freq_hz = 10000.0, gain_db = 1.5, q = 0.707 },
  { type = "lowpass", freq_hz = 19000.0, order = 2 },
]
[master]
target_lufs = -9.0
ceiling_dbtp = -1.0
[[outputs]]
path = "master.wav"
kind = "master"
format = "f32"
[[outputs]]
path = "stems"
kind = "stems"
format = "pcm24"
"#;
    let p = dir.join("session.toml");
    std::fs::write(&p, toml.replace("TOP", top)).unwrap();
    p
}

/// Render `session` on `engine` with `--proof` and `--report`; the report as JSON.
fn render_proof(session: &Path, out: &Path, engine: &str) -> Value {
    let (page, report) = (out.join("proof.html"), out.join("report.json"));
    let page_arg = page.to_str().unwrap().to_string();
    let report_arg = report.to_str().unwrap().to_string();
    render(session, out, engine, &["--proof", &page_arg, "--report", &report_arg], 0);
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<Option<f64>> {
    v.as_array().expect("an array").iter().map(Value::as_f64).collect()
}

/// What headless Chromium made of a page: the DOM and its log.
struct Browsed {
    dom: String,
    log: String,
}

/// Open `page` in headless Chromium (Debian's `chromium`), logging to stderr, with every host
/// name unresolvable (a fetch would fail and be logged); also save a screenshot to `shot`.
fn chromium(page: &Path, shot: Option<&Path>) -> Browsed {
    let found = Command::new("chromium").arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "chromium is missing: the proof page test needs Debian's `chromium` package (apt-get install -y chromium; \
         .ci/run installs it). {found:?}"
    );
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=1",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        // Chromium's own background services stay off: only the page's requests are logged.
        "--disable-background-networking",
        "--disable-sync",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--window-size=1000,3000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    match shot {
        Some(s) => args.push(format!("--screenshot={}", s.display())),
        None => args.push("--dump-dom".into()),
    }
    args.push(url);
    let out = Command::new("chromium").args(&args).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "chromium failed on {}:\n{log}", page.display());
    Browsed { dom: String::from_utf8_lossy(&out.stdout).to_string(), log }
}

/// Console messages of the page (Chromium logs each as `INFO:CONSOLE:<line>] "message"`).
fn console_messages(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// Network requests (at `--v=1` Chromium logs each as `NetworkDelegate::NotifyBeforeURLRequest:
/// <url>`; the page's own file:// load is not one), less those Chromium's own services make at
/// start whatever the page (clock, account and update checks to Google's hosts, which the
/// `--disable-*` flags do not all stop). The page itself names no host at all (checked on its text).
fn requests(log: &str) -> Vec<&str> {
    const BROWSER_OWN: [&str; 3] = [".google.com/", ".googleapis.com/", ".gvt1.com/"];
    log.lines().filter(|l| l.contains("NotifyBeforeURLRequest") && !BROWSER_OWN.iter().any(|h| l.contains(h))).collect()
}

/// The page renders in Chromium: every section is in its DOM, the console is empty, no request
/// left it; a screenshot is kept. First, each check is shown to catch what it looks for: the page
/// with an image from the network is refused by its policy (a console message), and without its
/// policy the image is requested (a logged request).
fn assert_page_renders(page: &Path, shot: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let html = std::fs::read_to_string(page).unwrap();
    let with_image = html.replacen("<h1>", "<img src=\"http://stemforge.invalid/x.png\"><h1>", 1);
    let csp = with_image.find("<meta http-equiv=\"Content-Security-Policy\"").expect("a CSP meta tag");
    let csp_end = csp + with_image[csp..].find('>').unwrap() + 1;
    let no_policy = format!("{}{}", &with_image[..csp], &with_image[csp_end..]);
    std::fs::write(dir.path().join("refused.html"), &with_image).unwrap();
    std::fs::write(dir.path().join("fetches.html"), &no_policy).unwrap();
    let refused = chromium(&dir.path().join("refused.html"), None);
    assert!(
        console_messages(&refused.log).iter().any(|l| l.contains("Content Security Policy")),
        "control: the page's policy should have refused the image, with a console message:\n{}",
        refused.log
    );
    let fetches = chromium(&dir.path().join("fetches.html"), None);
    assert!(
        requests(&fetches.log).iter().any(|l| l.contains("stemforge.invalid")),
        "control: without the policy the image should have been requested and logged:\n{}",
        fetches.log
    );

    // Nothing on the page names a resource, and its policy forbids fetching any.
    assert!(html.contains("default-src 'none'"), "no strict Content-Security-Policy");
    for pattern in ["src=", "href=", "url(", "@import", "<script", "google"] {
        assert!(!html.contains(pattern), "the page references a resource: `{pattern}`");
    }
    let b = chromium(page, None);
    let console = console_messages(&b.log);
    assert!(console.is_empty(), "console messages:\n{}", console.join("\n"));
    let fetched = requests(&b.log);
    assert!(fetched.is_empty(), "network requests:\n{}", fetched.join("\n"));
    for id in SECTIONS {
        assert!(b.dom.contains(&format!("<section id=\"{id}\"")), "section `{id}` missing from the rendered DOM");
    }
    assert!(b.dom.matches("<svg").count() >= 6, "the rendered DOM has too few charts");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(shot);
    chromium(page, Some(shot));
    let size = std::fs::metadata(shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot {} is {size} bytes", shot.display());
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

/// Momentary and short-term loudness and the true peak at every 100 ms step of `master`, by the
/// `ebur128` crate fed step by step (stereo: the crate's default L/R map).
fn crate_curves(master: &[Vec<f32>]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut m = EbuR128::new(2, FS, Mode::M | Mode::S | Mode::TRUE_PEAK).unwrap();
    let (mut mom, mut short, mut tp) = (Vec::new(), Vec::new(), Vec::new());
    let steps = master[0].len() / STEP;
    for k in 0..steps {
        let part: Vec<&[f32]> = master.iter().map(|c| &c[k * STEP..(k + 1) * STEP]).collect();
        m.add_frames_planar_f32(&part).unwrap();
        mom.push(m.loudness_momentary().unwrap());
        short.push(m.loudness_shortterm().unwrap());
        let peak = (0..2).map(|c| m.prev_true_peak(c).unwrap()).fold(0.0f64, f64::max);
        tp.push(20.0 * peak.log10());
    }
    (mom, short, tp)
}

/// Each curve point within `tol` of the crate's reading (both -inf where the window is silent).
fn assert_curve(what: &str, got: &[Option<f64>], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: {} points, the master has {} steps", got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        match g {
            Some(g) => assert!((g - w).abs() <= tol, "{what}: step {k}: page {g:.5}, ebur128 {w:.5}"),
            None => assert!(w.is_infinite(), "{what}: step {k}: page null, ebur128 {w:.5}"),
        }
    }
}

/// CPU engine: the page renders, and its plots say what the meter, the limiter and the EQ did.
#[test]
fn cpu_page_renders_and_its_plots_are_true() {
    let dir = tempfile::tempdir().unwrap();
    let session = song(dir.path());
    let out = dir.path().join("out");
    let report = render_proof(&session, &out, "cpu");
    let page = out.join("proof.html");
    assert_page_renders(&page, &artifacts().join("proof.png"));

    let proof = &report["proof"];
    assert_eq!(proof["step_s"].as_f64(), Some(0.1));
    let (_, master) = read_audio(&out.join("master.wav"));
    let (mom, short, tp) = crate_curves(&master);
    let m = &proof["master"];
    // The curves are stored as f32 (about 1e-6 relative, 2e-5 LU at -14): 1e-4 LU leaves room for
    // that and for the step-energy route of the meter (1e-9 LU from the crate's own readings).
    assert_curve("momentary", &floats(&m["momentary_lufs"]), &mom, 1e-4);
    assert_curve("short-term", &floats(&m["short_term_lufs"]), &short, 1e-4);
    // The true peak per step from one crate instance per channel, fed as the render fed it.
    assert_curve("true peak", &floats(&m["true_peak_dbtp"]), &tp, 1e-4);
    // The integrated reading's inputs are the same steps; the loudest point of each curve is the
    // report's maximum.
    let top = |c: &[Option<f64>]| c.iter().flatten().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let after = &report["loudness_after"];
    assert!((top(&floats(&m["momentary_lufs"])) - after["max_momentary_lufs"].as_f64().unwrap()).abs() < 1e-4);
    assert!((top(&floats(&m["true_peak_dbtp"])) - after["true_peak_dbtp"].as_f64().unwrap()).abs() < 1e-4);

    // The gain-reduction trace peaks at the report's maximum (f32 storage: 1e-5 dB).
    let gr = floats(&m["gain_reduction_db"]);
    assert_eq!(gr.len(), master[0].len() / STEP);
    let gr_max = top(&gr);
    let report_max = report["gain_reduction"]["max_db"].as_f64().unwrap();
    assert!(report_max > 0.5, "the limiter should work on this song (max {report_max:.2} dB)");
    assert!((gr_max - report_max).abs() < 1e-5, "trace max {gr_max:.6} dB, report {report_max:.6} dB");

    // The vocals' EQ curve: the FIR the engines run, within 0.1 dB of the cookbook design over
    // 30 Hz..18 kHz (the design requirement tests/eq.rs holds the designer to).
    let vocals = proof["stems"].as_array().unwrap().iter().find(|s| s["name"] == "vocals").unwrap();
    let eq: EqCurve = serde_json::from_value(vocals["eq"].clone()).unwrap();
    let bands = realistic_eq();
    let mut checked = 0;
    for (i, &f) in eq.freq_hz.iter().enumerate() {
        let design = 20.0 * bands_magnitude(&bands, FS as f64, f as f64).log10();
        assert!(
            (eq.design_db.as_ref().unwrap()[i] as f64 - design).abs() < 1e-3,
            "design curve at {f} Hz: {} vs {design}",
            eq.design_db.as_ref().unwrap()[i]
        );
        if (30.0..=18_000.0).contains(&f) {
            let e = (eq.response_db[i] as f64 - design).abs();
            assert!(e <= 0.1, "EQ curve at {f:.1} Hz: {:.3} dB, design {design:.3} dB", eq.response_db[i]);
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} EQ points checked");
    assert!(vocals["spectrum"]["after_db"].as_array().is_some_and(|a| !a.is_empty()));

    // Each stem's level curve: the RMS of its file over each step, all channels.
    let (_, bass) = read_audio(&dir.path().join("bass.wav"));
    let bass_proof = proof["stems"].as_array().unwrap().iter().find(|s| s["name"] == "bass").unwrap();
    let level = floats(&bass_proof["level_dbfs"]);
    assert_eq!(level.len(), bass[0].len() / STEP);
    for (k, l) in level.iter().enumerate() {
        let ms = bass[0][k * STEP..(k + 1) * STEP].iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / STEP as f64;
        let want = 10.0 * ms.log10();
        assert!((l.unwrap() - want).abs() < 1e-3, "bass level step {k}: {l:?} vs {want}");
    }
    let drums = proof["stems"].as_array().unwrap().iter().find(|s| s["name"] == "drums").unwrap();
    assert_eq!(drums["process"][0], "compressor");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("compression is not in it"), "the page must say the after-spectrum omits the compressor");

    // `stemforge proof` from the saved report: the same page, byte for byte, written atomically;
    // the report is left as it was.
    let again = out.join("again.html");
    let before = std::fs::read(out.join("report.json")).unwrap();
    stemforge().arg("proof").arg(out.join("report.json")).arg("--out").arg(&again).assert().success();
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&page).unwrap(), "proof REPORT.json differs");
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), before);
    // Again without --force: exit 2, naming the page, which is left as it was.
    let o = stemforge().arg("proof").arg(out.join("report.json")).arg("--out").arg(&again).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("again.html"));
}

/// Bad input to `stemforge proof`: exit 2, the file named, nothing written.
#[test]
fn proof_command_refuses_bad_reports() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("garbage.json", "{ not json"),
        (
            "no-proof.json",
            r#"{"session":"s","engine":{"engine":"cpu","device":"x"},"sample_rate":48000,"layout":"stereo","duration_s":1.0,"loudness_after":{"integrated_lufs":-14.0,"lra_lu":null,"max_momentary_lufs":null,"max_short_term_lufs":null,"true_peak_dbtp":-1.0},"target_lufs":-14.0,"ceiling_dbtp":-1.0,"gain_db":0.0,"gain_reduction":null,"spec_met":true,"outputs":[],"wall_time_s":1.0,"realtime_factor":1.0}"#,
        ),
    ];
    for (name, body) in cases {
        let report = dir.path().join(name);
        std::fs::write(&report, body).unwrap();
        let out = dir.path().join(format!("{name}.html"));
        let o = stemforge().arg("proof").arg(&report).arg("--out").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name), "{name}: the message names the report: {err}");
        assert!(!out.exists(), "{name}: a page was written");
    }
    // The report as its own --out: refused, the report untouched.
    let report = dir.path().join("no-proof.json");
    let before = std::fs::read(&report).unwrap();
    let o = stemforge().arg("proof").arg(&report).arg("--out").arg(&report).arg("--force").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&report).unwrap(), before);
    let left: Vec<_> = files_under(dir.path()).into_iter().filter(|p| p.to_string_lossy().contains(".html")).collect();
    assert!(left.is_empty(), "files left: {left:?}");
}

/// Both engines: the GPU engine's page renders too and carries the CPU engine's curves (DESIGN.md
/// parity: loudness and true-peak readings within 0.01 LU/dB).
#[test]
fn gpu_engine_page_renders_with_the_cpu_curves() {
    if !engines().contains(&"gpu") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let session = song(dir.path());
    let cpu = render_proof(&session, &dir.path().join("cpu"), "cpu");
    let gpu = render_proof(&session, &dir.path().join("gpu"), "gpu");
    assert_eq!(gpu["engine"]["engine"], "gpu");
    assert_page_renders(&dir.path().join("gpu/proof.html"), &artifacts().join("proof-gpu.png"));
    for key in ["momentary_lufs", "short_term_lufs", "true_peak_dbtp", "gain_reduction_db"] {
        let (a, b) = (floats(&cpu["proof"]["master"][key]), floats(&gpu["proof"]["master"][key]));
        assert_eq!(a.len(), b.len(), "{key}: point counts");
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            let (x, y) = (x.unwrap_or(-200.0), y.unwrap_or(-200.0));
            assert!((x - y).abs() <= 0.01, "{key} step {k}: cpu {x:.4}, gpu {y:.4}");
        }
    }
    for (a, b) in cpu["proof"]["stems"].as_array().unwrap().iter().zip(gpu["proof"]["stems"].as_array().unwrap()) {
        assert_eq!(a["level_dbfs"], b["level_dbfs"], "stem {}: the level is the stem file's, engine or not", a["name"]);
        assert_eq!(a["spectrum"], b["spectrum"], "stem {}: spectrum", a["name"]);
    }
}

/// A 2-hour 5.1 delivery's page stays under 2 MB. Built from a synthetic report with 2 hours of
/// 100 ms points (72,000 per curve) and six stems, not from 2 hours of rendered audio (that would
/// take the test suite's time for no more pixels: the page's size depends on the points, and
/// every curve is decimated to two points per pixel column).
#[test]
fn two_hour_5_1_page_is_under_2_mb() {
    let steps = 2 * 3600 * 10;
    let mut rng = Rng::new(15);
    let mut wander = |base: f64, spread: f64| -> Curve {
        let mut v = base;
        (0..steps)
            .map(|_| {
                v = (v + spread * rng.gauss() * 0.1).clamp(base - 3.0 * spread, base + spread);
                Some(v as f32)
            })
            .collect()
    };
    let master = MasterProof {
        momentary_lufs: wander(-24.0, 6.0),
        short_term_lufs: wander(-24.0, 3.0),
        true_peak_dbtp: wander(-6.0, 4.0),
        gain_reduction_db: wander(1.0, 1.0),
    };
    let freqs: Vec<f32> = (0..60).map(|i| 20.0 * 2f32.powf(i as f32 / 6.0)).collect();
    let stems = ["dialogue", "music", "effects", "foley", "ambience", "lfe"]
        .iter()
        .map(|name| StemProof {
            name: name.to_string(),
            gain_db: 0.0,
            process: vec!["compressor".into()],
            level_dbfs: wander(-30.0, 8.0),
            eq: Some(EqCurve {
                freq_hz: freqs.clone(),
                response_db: freqs.iter().map(|f| (f / 1000.0).ln()).collect(),
                design_db: Some(freqs.iter().map(|f| (f / 1000.0).ln()).collect()),
            }),
            spectrum: Some(Spectrum {
                freq_hz: freqs.clone(),
                before_db: freqs.iter().map(|f| Some(-30.0 - f.ln())).collect(),
                after_db: freqs.iter().map(|f| Some(-31.0 - f.ln())).collect(),
            }),
            findings: vec!["DC offset on channel 4: -45.0 dBFS".into()],
        })
        .collect();
    let proof = ProofData { step_s: 0.1, tolerance_lu: 1.0, master, stems, ..Default::default() };
    let outputs: Vec<Value> = (0..7)
        .map(|i| {
            serde_json::json!({"path": format!("out/file{i}.wav"), "kind": "stems", "stem": null, "format": "pcm24",
            "bytes": 7_000_000_000u64, "sha256": "ab".repeat(32), "published": true})
        })
        .collect();
    let report: ProofReport = serde_json::from_value(serde_json::json!({
        "session": "feature-reel-1", "engine": {"engine": "cpu", "device": "16 threads"}, "sample_rate": 48000,
        "layout": "5.1", "duration_s": 7200.0,
        "loudness_after": {"integrated_lufs": -24.0, "lra_lu": 12.0, "max_momentary_lufs": -10.0,
            "max_short_term_lufs": -15.0, "true_peak_dbtp": -2.1},
        "target_lufs": -24.0, "ceiling_dbtp": -2.0, "gain_db": 1.0, "gain_reduction": {"max_db": 4.0, "mean_db": 0.2},
        "spec_met": true, "outputs": outputs, "wall_time_s": 600.0, "realtime_factor": 12.0, "proof": proof,
    }))
    .unwrap();
    let html = page(&report).unwrap();
    println!("2-hour 5.1 page: {} bytes", html.len());
    assert!(html.len() < 2_000_000, "the page is {} bytes", html.len());
    for id in SECTIONS {
        assert!(html.contains(&format!("<section id=\"{id}\"")), "section {id}");
    }
}

/// The reference mix: read beside the stems, its loudness curves are the crate's readings of the
/// mix file, and the null against the stems as delivered (mute and mono routing, not gain or EQ)
/// is exact for the true mix and reads 20·log10(1 - a) for a mix at gain a; the page says which.
#[test]
fn reference_mix_is_metered_and_nulled() {
    let dir = tempfile::tempdir().unwrap();
    song(dir.path());
    let frames = 8 * FS as usize;
    let mut sum = vec![vec![0.0f64; frames]; 2];
    for name in ["drums", "bass", "music", "vocals"] {
        let (_, s) = read_audio(&dir.path().join(format!("{name}.wav")));
        for (c, acc) in sum.iter_mut().enumerate() {
            let (src, w) = if s.len() == 1 { (0, stemforge::pipeline::plan::MONO_TO_STEREO as f64) } else { (c, 1.0) };
            for (a, &x) in acc.iter_mut().zip(&s[src]) {
                *a += w * x as f64;
            }
        }
    }
    // An f32 mix of the sum (rounded once), and the same 1 dB down.
    let a = 10f64.powf(-1.0 / 20.0);
    let mix: Vec<Vec<f32>> = sum.iter().map(|c| c.iter().map(|&v| v as f32).collect()).collect();
    let quiet: Vec<Vec<f32>> = sum.iter().map(|c| c.iter().map(|&v| (a * v) as f32).collect()).collect();
    write_wav(&dir.path().join("mix.wav"), &mix, FS, 0);
    write_wav(&dir.path().join("mix-1db.wav"), &quiet, FS, 0);

    let session = song_with(dir.path(), "reference_mix = \"mix.wav\"");
    let out = dir.path().join("out");
    let report = render_proof(&session, &out, "cpu");
    let r = &report["proof"]["reference"];
    let (mom, short, _) = crate_curves(&mix);
    assert_curve("mix momentary", &floats(&r["momentary_lufs"]), &mom, 1e-4);
    assert_curve("mix short-term", &floats(&r["short_term_lufs"]), &short, 1e-4);
    // The mix is the sum rounded to f32 once: the residual is that rounding, about -150 dB.
    let rel = r["residual_db_rel_mix"].as_f64().unwrap_or(f64::NEG_INFINITY);
    assert!(rel < -120.0, "exact mix: residual {rel:.1} dB relative to the mix");
    assert_eq!(r["passed"], true);
    let html = std::fs::read_to_string(out.join("proof.html")).unwrap();
    assert!(html.contains("The master against the approved reference mix"));
    assert_page_renders(&out.join("proof.html"), &artifacts().join("proof-reference.png"));

    let session = song_with(dir.path(), "reference_mix = \"mix-1db.wav\"");
    std::fs::remove_dir_all(&out).unwrap();
    let report = render_proof(&session, &out, "cpu");
    let r = &report["proof"]["reference"];
    let rel = r["residual_db_rel_mix"].as_f64().unwrap();
    // Σ (a·s - s)² / Σ (a·s)²: 20·log10((1 - a)/a), relative to the quieter mix.
    let want_rel = 20.0 * ((1.0 - a) / a).log10();
    assert!((rel - want_rel).abs() < 0.01, "mix 1 dB down: residual {rel:.3} dB, want {want_rel:.3} dB");
    assert_eq!(r["passed"], false);
    let html = std::fs::read_to_string(out.join("proof.html")).unwrap();
    assert!(html.contains("The stems do not rebuild the approved mix"));
}
