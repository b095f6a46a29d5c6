//! The `render` command: validate everything, plan, run the passes (analysis with the bus spilled,
//! G solved on the spill, one writing pass; `solve` says why that is the same), write outputs
//! atomically, report.
mod checks;

use checks::{Normalised, check_fold, check_variants, normalised};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::normalise::Rule;
use super::outputs::{AllFiles, PlannedFile, check_writes, folder_of, plan_all_outputs, sweep};
use super::passes::{FoldOutcome, VariantOutcome, run_passes};
use super::sink::SealedOutputs;
use super::spill::SpillMode;
use crate::channel_mask::MaskVerdict;
use crate::cpu::engine::CpuEngine;
use crate::engine::{Engine, RenderPlan};
use crate::error::{Error, Result};
use crate::io::wav_writer::WrittenFile;
use crate::io::{self, AudioInfo};
use crate::meter::LoudnessStats;
use crate::model::OutputKind;
use crate::paths;
use crate::pipeline::cache::CacheOptions;
use crate::pipeline::plan::{PlanKind, build_plans};
use crate::pipeline::proof::proof_data;
use crate::pipeline::target::{LOUDNESS_TOLERANCE_LU, MAX_PUSH_DB, Verdict};
use crate::progress::{Progress, ProgressMode};
use crate::publish::Publication;
use crate::report::ReportFile;
use crate::report::render::{FoldRecord, OutputRecord, OwnMaster, ProfileReport, RenderReport, VariantRecord};
use crate::session::template::layout_label;
use crate::session::{Session, VariantLoudness, VariantMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// A hardware GPU when there is one, else the CPU engine.
    Auto,
    Cpu,
    Gpu,
}

#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub engine: EngineChoice,
    pub adapter: Option<String>,
    pub out_dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub progress: ProgressMode,
    pub force: bool,
    pub block: usize,
    /// Folder for the analysis pass's bus spill (an unlinked temporary file); default `out_dir`.
    pub spill_dir: Option<PathBuf>,
    pub spill: SpillMode,
    /// Test hook (`STEMFORGE_TEST_HOLD_BEFORE_PUBLISH`, read once by the CLI): with everything
    /// sealed and the report written, wait until this file exists before publishing, so a test can
    /// make a second render publish first (tests/reliability.rs).
    #[doc(hidden)]
    pub hold_before_publish: Option<PathBuf>,
    /// What `batch` recorded about the inputs and flags (`farm::fingerprint`), carried into the
    /// report so that it is published atomically with the outputs it describes.
    pub fingerprint: Option<serde_json::Value>,
    /// `--proof FILE.html`: the proof page (design/proof.md), from data gathered as the render
    /// streams; written atomically with the report.
    pub proof: Option<PathBuf>,
    /// `--cache DIR`: the stem cache (`pipeline::cache`).
    pub cache: Option<CacheOptions>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            engine: EngineChoice::Cpu,
            adapter: None,
            out_dir: None,
            report: None,
            progress: ProgressMode::None,
            force: false,
            block: crate::pipeline::plan::DEFAULT_BLOCK,
            spill_dir: None,
            spill: SpillMode::All,
            hold_before_publish: None,
            fingerprint: None,
            proof: None,
            cache: None,
        }
    }
}

/// Open every stem and check they can be rendered together. Returns the infos in session order,
/// and warnings about channel masks that label the layout's routing differently
/// (`channel_mask::compare`; a mask that changes the routing is refused).
pub fn open_stems(session: &Session) -> Result<(Vec<AudioInfo>, Vec<String>)> {
    let mut infos: Vec<AudioInfo> = Vec::with_capacity(session.stems.len());
    let mut warnings = Vec::new();
    for stem in &session.stems {
        let reader = io::open(&stem.path)?;
        let info = reader.info().clone();
        if let Some(first) = infos.first()
            && info.sample_rate != first.sample_rate
        {
            return Err(Error::input(
                &stem.path,
                format!(
                    "sample rate {} Hz, but the session's other stems are {} Hz (stem `{}`)",
                    info.sample_rate, first.sample_rate, session.stems[0].name
                ),
            ));
        }
        let bus = session.layout.channels();
        if info.channels != 1 && info.channels != bus {
            return Err(Error::input(
                &stem.path,
                format!(
                    "{} channels, but the session layout is {} ({bus} channels): a stem must be mono or match the bus",
                    info.channels,
                    session.layout.name()
                ),
            ));
        }
        match crate::channel_mask::compare(info.channel_mask, info.channels, session.layout) {
            MaskVerdict::Agrees => {}
            MaskVerdict::Label(why) => warnings.push(format!("{} (stem `{}`): {why}", stem.path.display(), stem.name)),
            MaskVerdict::Routing(why) => return Err(Error::input(&stem.path, format!("stem `{}`: {why}", stem.name))),
        }
        infos.push(info);
    }
    Ok((infos, warnings))
}

/// Choose the engine. `auto` takes a hardware GPU and leaves software adapters (lavapipe) alone,
/// since the CPU engine is faster than an emulated GPU.
pub fn make_engine(choice: EngineChoice, adapter: Option<&str>) -> Result<(Box<dyn Engine>, Option<String>)> {
    match choice {
        EngineChoice::Cpu => Ok((Box::new(CpuEngine::new()), None)),
        EngineChoice::Gpu => Ok((Box::new(crate::gpu::engine::GpuEngine::new(adapter)?), None)),
        EngineChoice::Auto => match crate::gpu::engine::GpuEngine::new_hardware_only(adapter) {
            Ok(gpu) => Ok((Box::new(gpu), None)),
            Err(Error::NoGpu(why)) => Ok((Box::new(CpuEngine::new()), Some(why))),
            Err(e) => Err(e),
        },
    }
}

/// Render a session. Errors before any output is created leave nothing behind; errors later
/// remove the temporary files, the files this render already renamed into place and the folders
/// it created (`Publication`).
pub fn render(session_path: &Path, opts: &RenderOptions) -> Result<RenderReport> {
    render_session(Session::load(session_path)?, opts)
}

/// `render` of a session already loaded (and perhaps adjusted: an album sets each track's target,
/// ceiling and outputs, `album`).
pub fn render_session(session: Session, opts: &RenderOptions) -> Result<RenderReport> {
    let t0 = Instant::now();
    let out_dir = opts.out_dir.clone().unwrap_or_else(|| session.dir.clone());
    // Inputs are never modified, whatever the flags: checked before a stem is opened.
    let mut writes = paths::render_writes(&session, &out_dir);
    if let Some(p) = &opts.proof {
        writes.push(paths::Role::new(p, "--proof"));
        if !opts.force && std::fs::symlink_metadata(p).is_ok() {
            return Err(Error::output(p, "already exists; pass --force to overwrite it"));
        }
    }
    check_writes(&session, writes, opts.report.as_deref(), opts.force)?;
    let (infos, mask_warnings) = open_stems(&session)?;
    let fs = infos[0].sample_rate;
    session.validate_sample_rate(fs)?;
    let stems_wanted = session.outputs.iter().any(|o| o.kind == OutputKind::Stems);
    let [bus_plan, linked_plan] = build_plans(&session, &infos, [PlanKind::Bus, PlanKind::StemsLinked], opts.block)?;
    if bus_plan.stems.is_empty() {
        return Err(Error::input(&session.file, "every stem is muted: nothing to render"));
    }
    if session.master.as_ref().is_some_and(|m| m.target_lufs.is_some()) {
        too_short_to_meter(&session, &infos, &bus_plan)?;
    }
    let AllFiles { files, variants: variant_files, fold: fold_files } =
        plan_all_outputs(&session, &linked_plan, &out_dir, opts.force)?;
    if let (Some(f), SpillMode::None) = (fold_files.first(), opts.spill) {
        return Err(Error::Usage(format!(
            "--spill none with {} (outputs[{}], layout = \"2.0\"): the fold-down is made from the bus spilled to \
             disk (its own G and limiter replay it); use --spill bus or all",
            f.final_path.display(),
            f.output
        )));
    }

    let progress = Progress::new(opts.progress);
    // Killed renders of these very files may have left their temporary files.
    let all_files = || files.iter().chain(&fold_files).chain(variant_files.iter().flat_map(|v| &v.files));
    let mut finals: Vec<&Path> = all_files().map(|f| f.final_path.as_path()).collect();
    finals.extend(opts.report.as_deref());
    finals.extend(opts.proof.as_deref());
    sweep(&finals, &progress);
    // From here on, whatever fails or is interrupted takes back what this render put on disk.
    let mut publication = Publication::new(opts.force);
    for f in all_files() {
        publication.create_dir_all(folder_of(&f.final_path))?;
    }
    // The report's folder is checked now, by making its temporary file: a bad `--report` fails
    // before any work, with nothing written (the folders just made go again). Its folder may be
    // one the outputs needed.
    let report_file = opts.report.as_deref().map(ReportFile::create).transpose()?;
    let proof_file = opts.proof.as_deref().map(ReportFile::create).transpose()?;
    let (engine, fallback) = make_engine(opts.engine, opts.adapter.as_deref())?;
    // The writing passes run the linked plan: stem outputs need it (each stem leaves the chain
    // bus-EQ'd), variants are made of the stems' linked contributions (design/deliverables.md
    // "Variants"), and a render from the stem cache replays linked stems. So a master-only render
    // runs it too, on either engine: it then sums the same f32 linked stems that a cache entry
    // holds, and a render from the cache gives an uncached render's bits (design/proof.md).
    let out_plan = linked_plan;
    let info = engine.info();
    match &fallback {
        Some(why) => {
            // The install help that ends a NoGpu message is for `--engine gpu`; here the CPU engine runs.
            let why = why.split("; install").next().unwrap_or(why);
            progress.note(&format!("stemforge: engine cpu ({}; no hardware GPU: {why})", info.device))
        }
        None => progress.note(&format!(
            "stemforge: engine {} ({}; FIR in {}; meter on {})",
            info.engine, info.device, info.fir_precision, info.meter
        )),
    }
    progress.event(
        serde_json::json!({"event": "engine", "engine": info.engine, "device": info.device, "meter": info.meter}),
    );
    if session.master.as_ref().is_some_and(|m| m.oversampling == 1) {
        progress.warning(
            "stemforge: warning: oversampling = 1 limits sample peaks only; the true peak can pass the ceiling \
             (the render fails if the meter reads it over). Use 4 for a true-peak ceiling.",
        );
    }

    let spill_dir = opts.spill_dir.as_deref().unwrap_or(&out_dir);
    // --cache: the stems from the cache (those it lacks computed on the render's engine and
    // stored), then every pass on the host CPU engine from them (`pipeline::cache`).
    let (engine, mut prepared) = match &opts.cache {
        Some(c) => {
            let mut engine = engine;
            let p = crate::pipeline::cache::prepare(
                &session,
                &out_plan,
                engine.as_mut(),
                c,
                spill_dir,
                &progress,
                opts.proof.is_some(),
            )?;
            (Box::new(CpuEngine::new()) as Box<dyn Engine>, Some(p))
        }
        None => (engine, None),
    };
    let out_plan = match &prepared {
        Some(p) => p.plan.clone(),
        None => out_plan,
    };
    let (mut result, mut passes) = run_passes(
        &session,
        engine,
        &progress,
        prepared.as_ref().map(|p| &p.stems),
        &out_plan,
        &files,
        &variant_files,
        &fold_files,
        stems_wanted,
        spill_dir,
        opts.spill,
        opts.proof.is_some(),
    )?;

    // A cached render reads no stem file in its passes: the proof page's measures of them came
    // from the cache, or were measured as it prepared.
    if let Some(p) = prepared.as_mut().and_then(|p| p.proof.take()) {
        result.measures = Some(p.measures);
        result.reference_note = p.reference_note;
    }
    if let Some(capture) = prepared.as_ref().and_then(|p| p.capture.clone()) {
        passes.insert(0, capture);
        for (n, p) in passes.iter_mut().enumerate() {
            p.pass = n as u32 + 1;
        }
    }
    let master = session.master.as_ref();
    let mut problems = Vec::new();
    let after = result.loudness;
    let Normalised { target_lufs, reading, reads: what, profile } =
        normalised(master, result.normalisation.as_ref(), &after);
    if let Some(target) = target_lufs
        && (reading - target).abs() > LOUDNESS_TOLERANCE_LU
    {
        let ceiling = master.map_or(f64::NAN, |m| m.ceiling_dbtp);
        problems.push(match result.verdict {
            Verdict::OutOfReach { too_loud: false } => format!(
                "target {target:.2} LUFS is out of reach at ceiling {ceiling:.2} dBTP: the loudest reachable is {:.2} LUFS \
                 at G = {:+.2} dB ({MAX_PUSH_DB:.0} dB past the unlimited gain, where more G only distorts; lower the \
                 target or raise the ceiling)",
                reading, result.gain_db
            ),
            Verdict::OutOfReach { too_loud: true } => format!(
                "target {target:.2} LUFS is out of reach: the quietest reachable is {:.2} LUFS at G = {:+.2} dB",
                reading, result.gain_db
            ),
            _ => format!(
                "{what} {:.2} LUFS misses the target {:.2} LUFS by more than {LOUDNESS_TOLERANCE_LU} LU \
                 after {} values of G (the closest reading was at G = {:+.2} dB)",
                reading, target, result.iterations, result.gain_db
            ),
        });
    }
    if let Some(m) = master
        && after.true_peak_dbtp > m.ceiling_dbtp
    {
        problems
            .push(format!("true peak {:.2} dBTP is over the ceiling {:.2} dBTP", after.true_peak_dbtp, m.ceiling_dbtp));
    }
    // The profile's own checks (its QC tolerance, EBU R128 s1's short-term limit) on the master
    // as written; the target and the ceiling above are the profile's.
    for c in profile.iter().flat_map(|p| &p.checks).filter(|c| !c.passed) {
        let p = &profile.as_ref().expect("checked").profile;
        let failure = format!("profile {}: {}", p.name, c.failure());
        if !problems.iter().any(|q| c.check == "true peak" && q.starts_with("true peak")) {
            problems.push(failure);
        }
    }
    // A master delivered at another rate is checked as delivered: its own loudness and true peak.
    let mut delivered = result.delivered.iter();
    for f in files.iter().filter(|f| f.kind == OutputKind::Master) {
        let Some(Some(l)) = delivered.next() else { continue };
        let at = f.final_path.display();
        let rate = f.spec.sample_rate;
        if let Some(target) = master.and_then(|m| m.target_lufs)
            && (l.integrated_lufs - target).abs() > DELIVERED_LOUDNESS_TOLERANCE_LU
        {
            problems.push(format!(
                "{at} (at {rate} Hz): integrated loudness {:.2} LUFS misses the target {target:.2} LUFS by more than \
                 {DELIVERED_LOUDNESS_TOLERANCE_LU} LU",
                l.integrated_lufs
            ));
        }
        if let Some(m) = master
            && l.true_peak_dbtp > m.ceiling_dbtp
        {
            problems.push(format!(
                "{at} (at {rate} Hz): true peak {:.2} dBTP is over the ceiling {:.2} dBTP",
                l.true_peak_dbtp, m.ceiling_dbtp
            ));
        }
    }
    let variants = check_variants(&session, &result.variants, &mut problems);
    let fold_down = result.fold.as_ref().map(|f| check_fold(&session, f, &mut problems));
    // A render that misses its spec publishes no output (below): the report still says what each
    // file would have been.
    let published = problems.is_empty();

    let mut outputs = Vec::new();
    let mut warnings = mask_warnings;
    if info.fir_precision == "f32" {
        warnings.push(format!(
            "the {} engine's FIR runs in f32 on {} (no 64-bit floats in its shaders, or STEMFORGE_GPU_F32=1): integer outputs may differ from the CPU engine's by more than 1 LSB",
            info.engine, info.device
        ));
    }
    let no_delivered = Vec::new();
    let mut sets = vec![(&files[..], &result.outputs, None, &result.delivered)];
    for (v, vf) in result.variants.iter().zip(&variant_files) {
        sets.push((&vf.files[..], &v.outputs, Some(session.variants[v.variant].name.clone()), &no_delivered));
    }
    if let Some(f) = &result.fold {
        sets.push((&fold_files[..], &f.outputs, None, &no_delivered));
    }
    for (files, sealed, variant, delivered) in sets {
        for (f, w, delivered) in written_files(files, sealed, delivered)? {
            outputs.push(OutputRecord {
                path: w.path.clone(),
                kind: f.kind,
                stem: f.stem.clone(),
                variant: variant.clone(),
                format: f.spec.format,
                frames: w.frames,
                bytes: w.bytes,
                sha256: w.sha256.clone(),
                over_full_scale: w.over_full_scale,
                published,
                sample_rate: f.spec.sample_rate,
                delivered,
                layout: session
                    .outputs
                    .get(f.output)
                    .filter(|_| variant.is_none())
                    .and_then(|o| o.layout)
                    .map(layout_label),
            });
            if w.over_full_scale > 0 {
                warnings.push(match f.spec.format.int_bits() {
                    Some(_) => format!(
                        "{}: {} samples beyond full scale were clamped (a stem can peak above the limited master it sums \
                         to; deliver stems as f32, or lower the ceiling)",
                        w.path.display(),
                        w.over_full_scale
                    ),
                    None => format!("{}: {} samples over 0 dBFS (kept: f32)", w.path.display(), w.over_full_scale),
                });
            }
        }
    }
    // The proof page draws each stem's EQ as designed: the bus plan's, not the replay plan's.
    let proof = opts.proof.as_ref().map(|_| {
        let note = result.reference_note.take();
        proof_data(&session, &bus_plan, result.curves.as_ref(), result.measures.take(), LOUDNESS_TOLERANCE_LU, note)
    });
    let wall = t0.elapsed().as_secs_f64();
    let duration = out_plan.frames as f64 / fs as f64;
    let report = RenderReport {
        session: session.name.clone(),
        session_file: session.file.clone(),
        engine: info,
        sample_rate: fs,
        layout: session.layout.name(),
        frames: out_plan.frames,
        duration_s: duration,
        loudness_before: result.before,
        loudness_after: after,
        target_lufs,
        ceiling_dbtp: master.map(|m| m.ceiling_dbtp),
        gain_db: result.gain_db,
        gain_reduction: master.map(|_| result.reduction),
        stem_residual: result.residual,
        process_stages: result.stages,
        limiter: result.limiter,
        iterations: result.iterations,
        passes,
        profile,
        normalisation: result.normalisation.clone(),
        variants,
        fold_down,
        spec_met: problems.is_empty(),
        spec_problems: problems,
        warnings,
        outputs,
        wall_time_s: wall,
        realtime_factor: duration / wall,
        fingerprint: opts.fingerprint.clone(),
        cache: prepared.map(|p| p.report),
        proof,
    };
    if let Some(f) = &report_file {
        f.write(&report)?;
    }
    if let Some(f) = &proof_file {
        f.write_text(&proof_page(&report)?)?;
    }
    if !published {
        // A render that misses its spec publishes no output (README "Outputs"): dropping the
        // sealed files deletes them, and whatever is under their final names stays. The report,
        // the diagnosis, is published; folders made for the outputs go again where empty.
        drop(result.outputs);
        drop(result.variants);
        drop(result.fold);
        if let Some(f) = proof_file {
            f.publish(&mut publication)?;
        }
        if let Some(f) = report_file {
            f.publish(&mut publication)?;
        }
        publication.keep_published();
        return Ok(report);
    }
    if let Some(go) = &opts.hold_before_publish {
        progress.event(serde_json::json!({"event": "test_hold", "until": go}));
        progress.note(&format!("stemforge: test hook: holding before publishing until {} exists", go.display()));
        while !go.exists() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    // The outputs, then the report that describes them; should a name have appeared meanwhile
    // (without --force), the error drops `publication`, which takes back what was renamed.
    result.outputs.publish(&mut publication)?;
    for v in result.variants {
        v.outputs.publish(&mut publication)?;
    }
    if let Some(f) = result.fold {
        f.outputs.publish(&mut publication)?;
    }
    if let Some(f) = proof_file {
        f.publish(&mut publication)?;
    }
    if let Some(f) = report_file {
        f.publish(&mut publication)?;
    }
    publication.keep();
    Ok(report)
}

/// Each planned file with what was written for it (masters and stem files are sealed apart, in
/// plan order) and, for a master, its readings as delivered at another rate (`delivered`, one per
/// master, None at the stems' rate).
fn written_files<'a>(
    files: &'a [PlannedFile],
    sealed: &SealedOutputs,
    delivered: &'a [Option<LoudnessStats>],
) -> Result<Vec<(&'a PlannedFile, WrittenFile, Option<LoudnessStats>)>> {
    let (masters, stems) = sealed.written();
    let (mut masters, mut stems) = (masters.into_iter(), stems.into_iter().flatten());
    let mut delivered = delivered.iter();
    files
        .iter()
        .map(|f| {
            let (w, d) = match f.kind {
                OutputKind::Master => (masters.next(), delivered.next().copied().flatten()),
                OutputKind::Stems => (stems.next(), None),
            };
            Ok((f, w.ok_or_else(|| Error::Internal("output count mismatch".into()))?, d))
        })
        .collect()
}

/// How far a resampled master's integrated loudness may read from the target (LU): the design's
/// ±0.1 LU for each delivered rate. Wider than the search's `LOUDNESS_TOLERANCE_LU`, which the
/// stems' rate is held to: resampling removes what lies above 0.9 of the lower Nyquist frequency
/// and the dither of another frame count adds its own noise, a few hundredths of a LU at most.
const DELIVERED_LOUDNESS_TOLERANCE_LU: f64 = 0.1;

/// A loudness target needs at least one 400 ms gating block (BS.1770-4): a shorter programme has
/// no integrated loudness, which is the length's fault, not the session's or the stems' level.
fn too_short_to_meter(session: &Session, infos: &[AudioInfo], plan: &RenderPlan) -> Result<()> {
    if plan.frames as u128 * 10 >= plan.sample_rate as u128 * 4 {
        return Ok(());
    }
    let longest = plan.stems.iter().max_by_key(|s| infos[s.index].frames).expect("an unmuted stem");
    let stem = &session.stems[longest.index];
    Err(Error::input(
        &stem.path,
        format!(
            "the program is {:.1} ms long ({} frames at {} Hz; this is its longest stem, `{}`), shorter than one \
             400 ms BS.1770 gating block: its loudness cannot be measured, so it cannot be normalised to target_lufs",
            plan.frames as f64 * 1000.0 / plan.sample_rate as f64,
            plan.frames,
            plan.sample_rate,
            stem.name
        ),
    ))
}

/// The proof page of a render report (through its JSON, as `stemforge proof` reads a saved one).
pub fn proof_page(report: &RenderReport) -> Result<String> {
    let value = serde_json::to_value(report).map_err(|e| Error::Internal(format!("render report as JSON: {e}")))?;
    let fields: crate::report::proof::ProofReport =
        serde_json::from_value(value).map_err(|e| Error::Internal(format!("render report for the proof page: {e}")))?;
    crate::report::proof::page(&fields).map_err(Error::Internal)
}
