//! `stemforge render`'s report: the passes, the outputs and the loudness, as the `--report` JSON
//! file and as the summary on stderr (text, or `--progress json` events).
use std::path::PathBuf;

use crate::engine::{BusBytes, EngineInfo};
use crate::meter::LoudnessStats;
use crate::model::{OutputKind, SampleFormat};
use crate::session::{VariantLoudness, VariantMode};

/// The residual of the stem outputs' sum against the master (dBFS; -inf when they sum exactly).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StemResidual {
    #[serde(serialize_with = "crate::meter::finite_or_null")]
    pub peak_dbfs: f64,
    #[serde(serialize_with = "crate::meter::finite_or_null")]
    pub rms_dbfs: f64,
}

/// Gain-reduction statistics of the limiter over the program (dB, positive = reduction).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct GainReduction {
    pub max_db: f64,
    pub mean_db: f64,
}

/// The limiter's aim (design/mastering.md "The limiter uses its ceiling"): the ceiling its gain
/// computer held the master to in the writing pass kept, solved from the reference meter's
/// true-peak readings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LimiterAim {
    /// `LimiterPlan::ceiling_db`: the limiter's own detector holds every oversampled peak here.
    pub aim_dbtp: f64,
    /// `ceiling_dbtp - aim_dbtp`: the margin the measurement found the meters need.
    pub margin_db: f64,
    /// Solves and writing passes run only to move the aim (0 when the first aim landed).
    pub aim_moves: u32,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputRecord {
    pub path: PathBuf,
    pub kind: OutputKind,
    /// The stem's name for `kind = "stems"` files.
    pub stem: Option<String>,
    /// The variant the file belongs to (None: the main).
    pub variant: Option<String>,
    pub format: SampleFormat,
    pub frames: u64,
    pub bytes: u64,
    pub sha256: String,
    /// Samples beyond full scale (clamped in integer formats).
    pub over_full_scale: u64,
    /// Whether the file is under `path`. A render that misses its spec publishes nothing: its
    /// files are deleted, and `sha256`/`bytes` describe what would have been published.
    pub published: bool,
    /// The rate the file is delivered at (Hz): the stems' rate, or its output's `sample_rate`.
    pub sample_rate: u32,
    /// A master delivered at another rate than the stems': the loudness and true peak of the file
    /// as delivered (after resampling, dither and quantisation), which the spec is checked on too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<LoudnessStats>,
    /// A fold-down's file (`layout = "2.0"`): its layout; absent for the session's layout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<&'static str>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PassRecord {
    pub pass: u32,
    /// "stems" (`--cache`: the capture pass, the stems the cache lacked computed and stored),
    /// "analysis" (the bus, metered and spilled), "solve" (one G tried on the spill: no stems read,
    /// nothing written), "limiter" (a writing pass), or "sum" (a writing pass without a master).
    pub kind: &'static str,
    pub gain_db: f64,
    pub integrated_lufs: Option<f64>,
    /// The master's true peak by the pass's meter (a solve: predicted by the reference meter).
    pub true_peak_dbtp: Option<f64>,
    /// The limiter's aim in this pass (solves and limiter passes), dBTP.
    pub aim_dbtp: Option<f64>,
    pub seconds: f64,
    /// What the pass read: "stems" (the stem files, decoded and filtered), "cache" (`--cache`: the
    /// stems' entries, already filtered) or "spill" (the
    /// analysis pass's spilled output: a solve, or a writing pass that replays it).
    pub input: &'static str,
    /// GPU engine: bytes moved between host and device in this pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus_bytes: Option<BusBytes>,
    /// Which meter read this pass: "cpu" (the `ebur128` crate on the host; always for "solve") or
    /// "device" (the GPU engine's `gpu::meter`, `EngineInfo::meter`); "none" for the capture pass,
    /// which meters nothing.
    pub meter: &'static str,
}

/// `render --cache`: what each stem made of the cache (`pipeline::cache`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheReport {
    pub dir: PathBuf,
    /// `--cache-max-gb` in bytes.
    pub max_bytes: u64,
    /// The engine that computed the stems not reused (the capture pass); None when all were.
    pub stems_engine: Option<String>,
    /// The engine that summed, solved, limited and wrote from the cached stems: always the host
    /// CPU engine (the engines are bit-identical; replaying f32 up to a device would cost more
    /// than the sum).
    pub mix_engine: &'static str,
    /// Bytes of the entries reused (each read in full to verify it, then replayed).
    pub bytes_read: u64,
    /// Bytes of the entries stored.
    pub bytes_written: u64,
    /// Entries deleted to keep the folder under its limit, least recently used first.
    pub evicted: Vec<String>,
    pub stems: Vec<CacheStem>,
    /// With `--proof`: how the proof page's measures of the stem files and the reference mix's
    /// null were had ("reused", "measured as the stems were computed", or measured by reading the
    /// stem files once more); None without `--proof`.
    pub proof: Option<&'static str>,
}

/// One stem's use of the cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheStem {
    pub stem: String,
    /// Its key, the entry's file name without `.sfstem`.
    pub key: String,
    /// "reused" (a verified entry), "stored" (none: computed and stored), "recomputed" (an entry
    /// that could not be used, `reason`: computed and stored), "uncached" (computed, larger than
    /// the cache: used for this render only).
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The entry's size.
    pub bytes: u64,
}

/// A profile and its checks, as the render report gives them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProfileReport {
    #[serde(flatten)]
    pub profile: crate::model::Profile,
    pub checks: Vec<crate::model::ProfileCheck>,
}

/// What the render normalised (design/deliverables.md "Delivery profiles" and "Dialogue-gated
/// loudness"), read on the master as delivered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NormalisationReport {
    /// "programme", "dialogue", or "programme_sparse_dialogue" (Netflix's rule for a programme
    /// with dialogue in under 15 % of it).
    pub rule: crate::model::LoudnessRule,
    pub target_lufs: f64,
    /// What the rule reads of the master as delivered: its dialogue-gated loudness under the
    /// dialogue rule, else its integrated loudness.
    #[serde(serialize_with = "crate::meter::finite_or_null")]
    pub reading_lufs: f64,
    /// The master's programme loudness (BS.1770-4, gated), whatever the rule.
    #[serde(serialize_with = "crate::meter::finite_or_null")]
    pub programme_lufs: f64,
    /// On a session that gates on dialogue: the master's dialogue-gated loudness (BS.1770-1
    /// style, no relative gate), the dialogue percentage and the blocks counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialogue: Option<crate::meter::DialogueLoudness>,
    /// The stems it gates on (role "dialogue").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dialogue_stems: Vec<String>,
    /// How dialogue is found: on the dialogue stems, not by a speech classifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
}

/// One variant as rendered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VariantRecord {
    pub name: String,
    pub mode: VariantMode,
    /// Remaster only: whose G ("main": level-matched; "own": on target).
    pub loudness: Option<VariantLoudness>,
    /// The stems it mutes (beyond those the session mutes).
    pub muted: Vec<String>,
    /// Its gain offsets, dB, per stem.
    pub gain_offsets_db: Vec<(String, f64)>,
    /// Its G (the main's for a stems variant and a level-matched remaster), its master, its
    /// limiter (a stems variant carries the main's envelope) and its own passes (remaster).
    #[serde(flatten)]
    pub master: OwnMaster,
}

/// What a deliverable with a master of its own (a variant, the fold-down) made of it: its G, its
/// master as written, its limiter, its passes, and whether it met the spec.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OwnMaster {
    pub gain_db: f64,
    /// G values tried for its own G (0 where it took the main's).
    pub iterations: u32,
    /// Its master as written, by the reference meter.
    pub loudness_after: LoudnessStats,
    pub gain_reduction: Option<GainReduction>,
    pub limiter: Option<LimiterAim>,
    /// Its own passes, numbered as the main's.
    pub passes: Vec<PassRecord>,
    pub spec_met: bool,
    pub spec_problems: Vec<String>,
}

/// The `layout = "2.0"` fold-down as rendered: a deliverable of its own, checked like the main
/// (design/deliverables.md "Output formats").
#[derive(Debug, Clone, serde::Serialize)]
pub struct FoldRecord {
    /// "2.0".
    pub layout: &'static str,
    /// The session's layout it is folded from ("5.1", "7.1").
    pub from: &'static str,
    /// The fold-down's coefficients: Lo = L + 0.7071·C + 0.7071·Ls, Ro likewise, LFE dropped (7.1:
    /// the back surrounds into the sides at 0.7071 first).
    pub matrix: &'static str,
    /// The folded bus before its G (integrated loudness; the meter reads nothing else there).
    pub loudness_before: LoudnessStats,
    /// Its own G, master, limiter and passes (where the main spilled no bus, an analysis pass on
    /// the render's engine; then its solves and writing passes on the host).
    #[serde(flatten)]
    pub master: OwnMaster,
    /// `[master] profile`'s checks on it as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileReport>,
    /// With a loudness target: the main's rule read on the 2.0 as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalisation: Option<NormalisationReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RenderReport {
    pub session: String,
    pub session_file: PathBuf,
    pub engine: EngineInfo,
    pub sample_rate: u32,
    pub layout: &'static str,
    pub frames: u64,
    pub duration_s: f64,
    /// Integrated loudness of the bus before normalisation and limiting (when a target is set;
    /// the analysis pass meters nothing else).
    pub loudness_before: Option<LoudnessStats>,
    /// Loudness of the master as written (before quantisation; the GPU engine, where the pass
    /// writes no f32 master, meters its deepest integer master output, within 0.01 LU/dB of that).
    pub loudness_after: LoudnessStats,
    pub target_lufs: Option<f64>,
    pub ceiling_dbtp: Option<f64>,
    /// Normalisation gain G applied before the limiter.
    pub gain_db: f64,
    pub gain_reduction: Option<GainReduction>,
    /// With a bus stage that cannot be shared out among stems (`allow_residual = true`): the
    /// stem outputs' sum against the master (design/mastering.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stem_residual: Option<StemResidual>,
    /// Every stage of the stems' and the bus's process chains, in order (stems, then the bus),
    /// with its gain reduction where it reduces gain (design/mastering.md).
    pub process_stages: Vec<crate::engine::StageActivity>,
    /// The limiter's aim and the margin found (None without a master).
    pub limiter: Option<LimiterAim>,
    /// G values tried (the re-measure loop of DESIGN.md DSP 6), on the spill or by a writing pass.
    pub iterations: u32,
    pub passes: Vec<PassRecord>,
    /// `[master] profile`: the spec delivered to and each of its checks on the master as written
    /// (design/deliverables.md "Delivery profiles").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileReport>,
    /// With a loudness target: what was normalised and its readings on the master as delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalisation: Option<NormalisationReport>,
    /// Each `[[variants]]` entry, checked like the main (design/deliverables.md "Variants").
    pub variants: Vec<VariantRecord>,
    /// The `layout = "2.0"` fold-down, when the session asks for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fold_down: Option<FoldRecord>,
    /// Whether the loudness target and the true-peak ceiling were met (the main's and every
    /// variant's), and the profile's checks.
    pub spec_met: bool,
    pub spec_problems: Vec<String>,
    /// Things a deliverables team should know that do not fail the render (clamped stem samples).
    pub warnings: Vec<String>,
    pub outputs: Vec<OutputRecord>,
    pub wall_time_s: f64,
    pub realtime_factor: f64,
    /// `batch` only: the inputs and flags this render was made from (`farm::fingerprint`); a
    /// resumed batch skips the session while they still match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<serde_json::Value>,
    /// `--cache`: each stem reused, stored or recomputed, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheReport>,
    /// `--proof`: the proof page's data, gathered while the render streamed (design/proof.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<super::proof::ProofData>,
}

/// The end of a render on stderr: a summary, each output, each warning, each spec problem; with
/// `--progress json`, one JSON object per line (`rendered`, `wrote` or `not_published`,
/// `warning`, `spec_not_met`), as every other stderr line of that mode.
pub fn print(r: &RenderReport, json: bool) {
    let writing = r.passes.iter().filter(|p| p.kind == "limiter" || p.kind == "sum").count();
    let finite = |v: f64| v.is_finite().then_some(v);
    if json {
        let line = |v: serde_json::Value| eprintln!("{v}");
        line(serde_json::json!({
            "event": "rendered", "session": r.session, "duration_s": r.duration_s,
            "realtime_factor": r.realtime_factor, "engine": r.engine.engine,
            "integrated_lufs": finite(r.loudness_after.integrated_lufs),
            "true_peak_dbtp": finite(r.loudness_after.true_peak_dbtp), "gain_db": r.gain_db,
            "iterations": r.iterations, "writing_passes": writing, "spec_met": r.spec_met,
        }));
        if let Some(c) = &r.cache {
            let count = |a: &str| c.stems.iter().filter(|s| s.action == a).count();
            line(serde_json::json!({
                "event": "cache", "dir": c.dir, "reused": count("reused"), "stored": count("stored"),
                "recomputed": count("recomputed"), "uncached": count("uncached"), "bytes_read": c.bytes_read,
                "bytes_written": c.bytes_written, "stems_engine": c.stems_engine, "mix_engine": c.mix_engine,
                "proof": c.proof,
            }));
        }
        for v in &r.variants {
            line(serde_json::json!({
                "event": "variant", "name": v.name, "mode": v.mode, "loudness": v.loudness,
                "integrated_lufs": finite(v.master.loudness_after.integrated_lufs),
                "true_peak_dbtp": finite(v.master.loudness_after.true_peak_dbtp), "gain_db": v.master.gain_db,
                "spec_met": v.master.spec_met,
            }));
        }
        if let Some(f) = &r.fold_down {
            line(serde_json::json!({
                "event": "fold_down", "layout": f.layout, "from": f.from,
                "integrated_lufs": finite(f.master.loudness_after.integrated_lufs),
                "true_peak_dbtp": finite(f.master.loudness_after.true_peak_dbtp), "gain_db": f.master.gain_db,
                "spec_met": f.master.spec_met,
            }));
        }
        for o in &r.outputs {
            let event = if o.published { "wrote" } else { "not_published" };
            line(serde_json::json!({"event": event, "path": o.path, "frames": o.frames, "sha256": o.sha256}));
        }
        for w in &r.warnings {
            line(serde_json::json!({"event": "warning", "message": w}));
        }
        for p in &r.spec_problems {
            line(serde_json::json!({"event": "spec_not_met", "message": p, "exit_code": 1}));
        }
        return;
    }
    eprintln!(
        "stemforge: rendered `{}` ({:.1} s of program, {:.0}x realtime) on {}: {:.2} LUFS, {:.2} dBTP, gain {:+.2} dB ({} value(s) tried), {} writing pass(es)",
        r.session,
        r.duration_s,
        r.realtime_factor,
        r.engine.engine,
        r.loudness_after.integrated_lufs,
        r.loudness_after.true_peak_dbtp,
        r.gain_db,
        r.iterations,
        writing
    );
    if let Some(n) = &r.normalisation
        && let Some(d) = &n.dialogue
    {
        let rule = match n.rule {
            crate::model::LoudnessRule::Dialogue => "normalised on dialogue".to_string(),
            crate::model::LoudnessRule::ProgrammeSparseDialogue => {
                format!("dialogue in under 15 % of the programme: normalised on the programme to {:.1}", n.target_lufs)
            }
            crate::model::LoudnessRule::Programme => "normalised on the programme".to_string(),
        };
        eprintln!(
            "  dialogue-gated {} LUFS (stems {}; stem gating, not a speech classifier), programme {} LUFS, \
             dialogue {:.1} % of the programme: {rule}",
            d.dialogue_gated_lufs.map_or("-".to_string(), |v| crate::report::fmt_db(v, 2)),
            n.dialogue_stems.join(", "),
            crate::report::fmt_db(n.programme_lufs, 2),
            d.dialogue_percent,
        );
    }
    if let Some(c) = &r.cache {
        let count = |a: &str| c.stems.iter().filter(|s| s.action == a).count();
        let why: Vec<String> =
            c.stems.iter().filter_map(|s| s.reason.as_ref().map(|r| format!("{}: {r}", s.stem))).collect();
        eprintln!(
            "  cache {}: {} stem(s) reused, {} stored, {} recomputed{}, {} uncached; {:.3} GB read, {:.3} GB written, {} evicted; stems on {}, mix on {}",
            c.dir.display(),
            count("reused"),
            count("stored"),
            count("recomputed"),
            if why.is_empty() { String::new() } else { format!(" ({})", why.join("; ")) },
            count("uncached"),
            c.bytes_read as f64 / 1e9,
            c.bytes_written as f64 / 1e9,
            c.evicted.len(),
            c.stems_engine.as_deref().unwrap_or("none (all reused)"),
            c.mix_engine
        );
        if let Some(how) = c.proof {
            eprintln!("  cache {}: the proof page's measures of the stem files {how}", c.dir.display());
        }
    }
    for st in &r.process_stages {
        if let Some(gr) = st.gain_reduction {
            let on = st.stem.as_ref().map_or("the bus".to_string(), |s| format!("stem `{s}`"));
            eprintln!(
                "  {} on {on} (process[{}]): gain reduction {:.1} dB max, {:.1} dB mean",
                st.stage, st.index, gr.max_db, gr.mean_db
            );
        }
    }
    for v in &r.variants {
        let how = match (v.mode, v.loudness) {
            (VariantMode::Stems, _) => "stems: the main's stem outputs summed".to_string(),
            (VariantMode::Remaster, Some(VariantLoudness::Own)) => "remaster, own G".to_string(),
            (VariantMode::Remaster, _) => "remaster, the main's G".to_string(),
        };
        eprintln!(
            "  variant `{}` ({how}): {:.2} LUFS, {:.2} dBTP, gain {:+.2} dB{}",
            v.name,
            v.master.loudness_after.integrated_lufs,
            v.master.loudness_after.true_peak_dbtp,
            v.master.gain_db,
            if v.master.spec_met { "" } else { " (spec not met)" }
        );
    }
    if let Some(f) = &r.fold_down {
        let gr = f.master.gain_reduction.map_or(String::new(), |g| format!(", limiter {:.2} dB max", g.max_db));
        eprintln!(
            "  {} fold-down of {} ({}, own G): {:.2} LUFS, {:.2} dBTP, gain {:+.2} dB{gr}{}",
            f.layout,
            f.from,
            f.matrix,
            f.master.loudness_after.integrated_lufs,
            f.master.loudness_after.true_peak_dbtp,
            f.master.gain_db,
            if f.master.spec_met { "" } else { " (spec not met)" }
        );
    }
    if let Some(res) = r.stem_residual {
        eprintln!(
            "  stems against the master (allow_residual): residual {} dBFS peak, {} dBFS RMS",
            crate::report::fmt_db(res.peak_dbfs, 1),
            crate::report::fmt_db(res.rms_dbfs, 1)
        );
    }
    for o in &r.outputs {
        if o.published {
            eprintln!("  wrote {} ({} frames, sha256 {})", o.path.display(), o.frames, o.sha256);
        } else {
            eprintln!("  not published: {} (would be {} frames, sha256 {})", o.path.display(), o.frames, o.sha256);
        }
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    for p in &r.spec_problems {
        eprintln!("Error: spec not met: {p}");
    }
    if !r.spec_met && !r.outputs.is_empty() {
        eprintln!("Error: nothing was published: a render that misses its spec leaves every output as it was");
    }
}
