//! Revision speed with `render --cache` (design/proof.md, issue 15 item 2): on the 5-stem benchmark
//! session (`common::five_stems`, as `benches/variants.rs`), the CPU engine, each run: an uncached
//! render, a first render with an empty --cache folder, then the revision "vocals +1 dB" with that
//! (now warm) folder. Medians of wall and CPU time; the revision's outputs are checked, once,
//! against an uncached render of the revised session (SHA-256 of every output).
//!
//! `cargo bench --bench revision`; env STEMFORGE_BENCH_MINUTES (programme length, default 1),
//! STEMFORGE_BENCH_RUNS (timed runs, default 5).
#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

/// A render on the CPU engine, outputs under `out` (the session's folder when None).
fn render_in(
    session: &Path,
    out: Option<&Path>,
    report: &Path,
    log: &Path,
    cache: Option<&Path>,
) -> (Measured, serde_json::Value) {
    let _ = std::fs::remove_file(report);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stemforge"));
    cmd.arg("render").arg(session);
    cmd.args(["--engine", "cpu", "--force", "--progress", "none", "--report"]).arg(report);
    if let Some(c) = cache {
        cmd.arg("--cache").arg(c);
    }
    if let Some(o) = out {
        cmd.arg("--out-dir").arg(o);
    }
    let m = run_measured(cmd, log);
    let json = serde_json::from_str(&std::fs::read_to_string(report).expect("report")).expect("report JSON");
    (m, json)
}

fn render(session: &Path, report: &Path, log: &Path, cache: Option<&Path>) -> (Measured, serde_json::Value) {
    render_in(session, None, report, log, cache)
}

/// Output path (as the report gives it, less the output folder) -> SHA-256.
fn hashes(r: &serde_json::Value) -> BTreeMap<String, String> {
    r["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| {
            let p = o["path"].as_str().expect("path");
            let rel = p.rsplit_once("out-rev-b").map_or(p, |(_, r)| r).to_string();
            (rel, o["sha256"].as_str().expect("sha256").to_string())
        })
        .collect()
}

fn actions(r: &serde_json::Value) -> Vec<String> {
    r["cache"]["stems"].as_array().map_or(Vec::new(), |s| {
        s.iter()
            .map(|s| format!("{}:{}", s["stem"].as_str().unwrap_or("?"), s["action"].as_str().unwrap_or("?")))
            .collect()
    })
}

fn main() {
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"revision".contains(a.as_str())) {
        return;
    }
    let minutes = env_f64("STEMFORGE_BENCH_MINUTES", 1.0);
    let runs = env_usize("STEMFORGE_BENCH_RUNS", 5);
    let frames = (minutes * 60.0 * FS as f64).round() as u64;
    let (dir, stems) = five_stems::data(frames);
    let original = dir.join("session-revision-a.toml");
    let revised = dir.join("session-revision-b.toml");
    std::fs::write(&original, five_stems::session_toml("out-rev-a", 0.0)).expect("write session");
    std::fs::write(&revised, five_stems::session_toml("out-rev-b", 1.0)).expect("write session");
    warm_cache(&stems);
    let cache = dir.join("stem-cache");
    let log = dir.join("revision.log");
    let _ = std::fs::remove_file(&log);
    println!("# revision: \"vocals +1 dB\" with a warm --cache, CPU engine, {minutes} min programme, {runs} runs");
    println!("machine: {}; load average before: {}", machine(), loadavg());

    // Once, untimed: the page cache warmed, and the contract checked: the revision read from the
    // cache is an uncached render of the revised session, to the bit.
    let _ = std::fs::remove_dir_all(&cache);
    render(&original, &dir.join("report-a.json"), &log, Some(&cache));
    let (_, warm) = render(&revised, &dir.join("report-b.json"), &log, Some(&cache));
    // The same session file (the outputs' metadata names their session), another output folder.
    let plain_out = dir.join("uncached");
    let (_, plain) = render_in(&revised, Some(&plain_out), &dir.join("report-b-plain.json"), &log, None);
    assert_eq!(warm["spec_met"], true, "the revised session misses its spec: {}", warm["spec_problems"]);
    assert!(actions(&warm).iter().all(|a| a.ends_with(":reused")), "not every stem reused: {:?}", actions(&warm));
    assert_eq!(hashes(&warm), hashes(&plain), "the cached revision differs from an uncached render");
    println!("check: the cached revision's {} outputs equal an uncached render's (SHA-256)", hashes(&warm).len());

    let (mut uncached, mut first, mut revision) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        uncached.push(render(&original, &dir.join("report-a-plain.json"), &log, None).0);
        let _ = std::fs::remove_dir_all(&cache);
        first.push(render(&original, &dir.join("report-a.json"), &log, Some(&cache)).0);
        let (m, r) = render(&revised, &dir.join("report-b.json"), &log, Some(&cache));
        assert!(actions(&r).iter().all(|a| a.ends_with(":reused")), "{:?}", actions(&r));
        revision.push(m);
    }
    let program_s = minutes * 60.0;
    let (wall, cpu) = (median_wall, median_cpu);
    print!(
        "{}",
        medians_table(
            "render",
            program_s,
            &[
                ("uncached render", &uncached),
                ("first render, --cache (empty)", &first),
                ("revision vocals +1 dB, --cache (warm)", &revision),
            ],
        )
    );
    println!(
        "revision / first render: {:.2}x wall, {:.2}x CPU; revision / uncached: {:.2}x wall, {:.2}x CPU (load average after: {})",
        wall(&revision) / wall(&first),
        cpu(&revision) / cpu(&first),
        wall(&revision) / wall(&uncached),
        cpu(&revision) / cpu(&uncached),
        loadavg()
    );
    let entries: u64 =
        warm["cache"]["stems"].as_array().map_or(0, |s| s.iter().filter_map(|s| s["bytes"].as_u64()).sum());
    println!("cache: {} entries, {:.1} MB", actions(&warm).len(), entries as f64 / 1e6);
}
