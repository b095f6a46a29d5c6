//! Shared work across variants (design/deliverables.md "Variants": the main plus four variants
//! costs well under twice the main alone): the CPU engine on the 5-stem benchmark session of
//! `render_vs_ffmpeg` (5 stereo stems, 48 kHz 24-bit, 8191-tap linear-phase EQ on every stem and on
//! the bus, -14 LUFS / -1 dBTP at 4x, a pcm24 master and pcm24 linked stems), alone and with four
//! variants, each with a pcm24 master: an a cappella (`mode = "stems"`), a TV mix without the FX
//! and an instrumental (`remaster` at the main's G: as stems variants their true peaks read -0.89
//! and -0.96 dBTP on this session, over the ceiling, which the render refuses) and a vocal-up on
//! target (`remaster`, `loudness = "own"`): three remasters, the costlier mode. Runs alternate
//! between the two sessions; medians of wall and CPU time.
//!
//! `cargo bench --bench variants`; env STEMFORGE_BENCH_MINUTES (programme length, default 1),
//! STEMFORGE_BENCH_RUNS (timed runs of each session, default 5).
#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const VARIANTS: &str = r#"
[[variants]]
name = "tv-mix"
mute = ["fx"]
mode = "remaster"
outputs = [ { path = "out-variants/{name}_{variant}.wav", kind = "master", format = "pcm24" } ]

[[variants]]
name = "a-cappella"
mute = ["drums", "bass", "music", "fx"]
outputs = [ { path = "out-variants/{name}_{variant}.wav", kind = "master", format = "pcm24" } ]

[[variants]]
name = "instrumental"
mute = ["vocals"]
mode = "remaster"
loudness = "main"
outputs = [ { path = "out-variants/{name}_{variant}.wav", kind = "master", format = "pcm24" } ]

[[variants]]
name = "vocal-up"
gain_db = { vocals = 1.0 }
loudness = "own"
outputs = [ { path = "out-variants/{name}_{variant}.wav", kind = "master", format = "pcm24" } ]
"#;

fn session_toml(folder: &str, variants: bool) -> String {
    let mut s = five_stems::session_toml(folder, 0.0);
    if variants {
        s += VARIANTS;
    }
    s
}

fn render(session: &Path, report: &Path, log: &Path) -> (Measured, serde_json::Value) {
    let _ = std::fs::remove_file(report);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stemforge"));
    cmd.arg("render").arg(session);
    cmd.args(["--engine", "cpu", "--force", "--progress", "none", "--report"]).arg(report);
    let m = run_measured(cmd, log);
    let json = serde_json::from_str(&std::fs::read_to_string(report).expect("report")).expect("report JSON");
    (m, json)
}

fn main() {
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"variants".contains(a.as_str())) {
        return;
    }
    let minutes = env_f64("STEMFORGE_BENCH_MINUTES", 1.0);
    let runs = env_usize("STEMFORGE_BENCH_RUNS", 5);
    let frames = (minutes * 60.0 * FS as f64).round() as u64;
    let (dir, stems) = five_stems::data(frames);
    let main_only = dir.join("session-main.toml");
    let with_variants = dir.join("session-variants.toml");
    std::fs::write(&main_only, session_toml("out-main", false)).expect("write session");
    std::fs::write(&with_variants, session_toml("out-variants", true)).expect("write session");
    warm_cache(&stems);
    let log = dir.join("render.log");
    let _ = std::fs::remove_file(&log);
    println!("# variants: main alone against main + 4 variants, CPU engine, {minutes} min programme, {runs} runs each");
    println!("machine: {}; load average before: {}", machine(), loadavg());
    // One untimed run of each: page cache, and the reports checked.
    let (_, r) = render(&with_variants, &dir.join("report-variants.json"), &log);
    assert_eq!(r["spec_met"], true, "the variants session misses its spec: {}", r["spec_problems"]);
    render(&main_only, &dir.join("report-main.json"), &log);
    let (mut main_runs, mut var_runs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        main_runs.push(render(&main_only, &dir.join("report-main.json"), &log).0);
        var_runs.push(render(&with_variants, &dir.join("report-variants.json"), &log).0);
    }
    let program_s = minutes * 60.0;
    let (wall, cpu) = (median_wall, median_cpu);
    print!("{}", medians_table("session", program_s, &[("main alone", &main_runs), ("main + 4 variants", &var_runs)]));
    println!(
        "main + 4 variants / main alone: {:.2}x wall, {:.2}x CPU (load average after: {})",
        wall(&var_runs) / wall(&main_runs),
        cpu(&var_runs) / cpu(&main_runs),
        loadavg()
    );
    println!("variants (last run's report):");
    for v in r["variants"].as_array().expect("variants") {
        let secs: f64 = v["passes"]
            .as_array()
            .map_or(0.0, |p| p.iter().filter_map(|p| p["seconds"].as_f64()).fold(0.0, |a, b| a + b));
        println!(
            "  {:<14} {:<9} G {:+.2} dB  {:.2} LUFS  {:.2} dBTP  own passes {:.2} s",
            v["name"].as_str().unwrap_or("?"),
            v["mode"].as_str().unwrap_or("?"),
            v["gain_db"].as_f64().unwrap_or(f64::NAN),
            v["loudness_after"]["integrated_lufs"].as_f64().unwrap_or(f64::NAN),
            v["loudness_after"]["true_peak_dbtp"].as_f64().unwrap_or(f64::NAN),
            secs
        );
    }
}
