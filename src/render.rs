//! The `render` command: validate everything, plan, run the passes (analysis with the bus spilled,
//! G solved on the spill, one writing pass; `solve` says why that is the same), write outputs
//! atomically, report.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::channel_mask::MaskVerdict;
use crate::cpu::engine::CpuEngine;
use crate::cpu::loudness::{LoudnessMeter, LoudnessStats, MeterScope};
use crate::engine::{BusBytes, Engine, PassParams, RenderPlan};
use crate::error::{Error, Result};
use crate::io::wav_writer::{WavWriter, WrittenFile};
use crate::io::{self, AudioInfo, WriterSpec};
use crate::paths::{self, Role};
use crate::plan::{PlanKind, build_plan, replay_plan};
use crate::progress::{Progress, ProgressMode};
use crate::publish::{Publication, sweep_stale};
use crate::report::ReportFile;
pub use crate::report::render::{OutputRecord, PassRecord, RenderReport};
use crate::session::{Dither, OutputKind, Session};
use crate::sink::{GainReduction, OutputSink, PassResult, ProgressSink, SealedOutputs, ThreadedSink, Writers};
use crate::solve::{Spill, SpillSource, SpillTee, SpillWriter, Spills, solve_gain, spill_bytes};
use crate::source::FileStemSource;
use crate::target::{GainSearch, LOUDNESS_TOLERANCE_LU, MAX_GAIN_DB, MAX_PUSH_DB, Verdict, reach_target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// A hardware GPU when there is one, else the CPU engine.
    Auto,
    Cpu,
    Gpu,
}

/// What the analysis pass may spill to disk, as unlinked temporary files (`--spill`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpillMode {
    /// The bus, and for an engine that replays spills (the CPU engine) each linked stem too: G is
    /// solved on the bus and the writing pass reads every FIR's output back instead of
    /// recomputing it (4 bytes per frame and bus channel, per stem output).
    All,
    /// The bus only: G is solved on it; the writing pass decodes and filters the stems again.
    Bus,
    /// Nothing: G is found by repeating the writing pass (for a disk that must not be written).
    None,
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
            block: crate::plan::DEFAULT_BLOCK,
            spill_dir: None,
            spill: SpillMode::All,
            hold_before_publish: None,
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

/// One planned output file.
struct PlannedFile {
    /// Index of the session output it belongs to.
    output: usize,
    final_path: PathBuf,
    kind: OutputKind,
    stem: Option<String>,
    spec: WriterSpec,
}

fn dither_seed(output: usize, stem: Option<usize>) -> u32 {
    // Distinct, fixed seeds per file: renders are reproducible and stem dithers uncorrelated.
    let s = stem.map_or(0xFFFF, |s| s as u32);
    (output as u32 + 1).wrapping_mul(0x9E37_79B9) ^ s.wrapping_mul(0x85EB_CA6B)
}

fn plan_outputs(session: &Session, plan: &RenderPlan, out_dir: &Path, force: bool) -> Result<Vec<PlannedFile>> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for (o, out) in session.outputs.iter().enumerate() {
        let spec = |stem: Option<usize>| WriterSpec {
            sample_rate: plan.sample_rate,
            channels: plan.bus_channels(),
            layout: Some(plan.layout),
            format: out.format,
            dither_seed: (out.dither == Dither::Tpdf).then(|| dither_seed(o, stem)),
        };
        match out.kind {
            OutputKind::Master => files.push(PlannedFile {
                output: o,
                final_path: out_dir.join(&out.path),
                kind: OutputKind::Master,
                stem: None,
                spec: spec(None),
            }),
            OutputKind::Stems => {
                for (i, sp) in plan.stems.iter().enumerate() {
                    let stem = &session.stems[sp.index];
                    files.push(PlannedFile {
                        output: o,
                        final_path: out_dir.join(session.stem_output_path(out, stem)),
                        kind: OutputKind::Stems,
                        stem: Some(stem.name.clone()),
                        spec: spec(Some(i)),
                    });
                }
            }
        }
    }
    for f in &files {
        if !seen.insert(f.final_path.clone()) {
            return Err(Error::input(
                &session.file,
                format!("two outputs write the same file {}", f.final_path.display()),
            ));
        }
        if !force && exists(&f.final_path) {
            return Err(Error::output(&f.final_path, "already exists; pass --force to overwrite it"));
        }
        if f.final_path.is_dir() {
            return Err(Error::output(&f.final_path, "is a folder"));
        }
    }
    Ok(files)
}

/// Whether anything is at `p`, a dangling symlink included (a rename without `--force` would
/// refuse it).
fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The folder a file goes to.
fn folder_of(p: &Path) -> &Path {
    p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Remove stale temporary files of `paths` (`publish::sweep_stale`), saying so.
fn sweep(paths: &[&Path], progress: &Progress) {
    for p in paths {
        for gone in sweep_stale(p) {
            progress.note(&format!(
                "stemforge: removed the stale temporary file {} (left by a render that was killed)",
                gone.display()
            ));
            progress.event(serde_json::json!({"event": "stale_temp_removed", "path": gone}));
        }
    }
}

/// The checks every command that writes makes first, before it reads anything but the session:
/// no write (`writes`, and the `report` file) lands on an input or on another write, and without
/// `--force` the report does not exist yet (outputs are checked with their plan, `plan_outputs`).
pub fn check_writes(session: &Session, mut writes: Vec<Role>, report: Option<&Path>, force: bool) -> Result<()> {
    writes.extend(report.map(|r| Role::new(r, "--report")));
    paths::check_writes(&writes, &paths::session_inputs(session))?;
    if let Some(r) = report
        && !force
        && exists(r)
    {
        return Err(Error::output(r, "already exists; pass --force to overwrite it"));
    }
    Ok(())
}

fn open_readers(session: &Session, plan: &RenderPlan) -> Result<Vec<Box<dyn io::BlockReader>>> {
    plan.stems.iter().map(|s| io::open(&session.stems[s.index].path)).collect()
}

struct Runner<'a> {
    session: &'a Session,
    engine: Box<dyn Engine>,
    progress: &'a Progress,
    passes: Vec<PassRecord>,
}

impl Runner<'_> {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        plan: &RenderPlan,
        params: PassParams,
        kind: &'static str,
        scope: MeterScope,
        writers: Writers,
        spills: Spills,
        replay: Option<&Spill>,
    ) -> Result<(PassResult, Spills)> {
        let t0 = Instant::now();
        let pass_no = self.passes.len() as u32 + 1;
        self.progress.start_pass(pass_no, kind, plan.frames);
        let meter = LoudnessMeter::with_scope(plan.bus_channels(), plan.sample_rate, Some(plan.layout), scope)?;
        let sink = OutputSink::new(meter, writers)
            .limited_master(params.limit)
            .device_meter(self.engine.meter_on_device(plan));
        let sink = ThreadedSink::start(SpillTee { inner: sink, spills });
        let mut psink = ProgressSink { inner: sink, progress: self.progress, frames_done: 0 };
        let input = match replay {
            Some(spill) => {
                let plan = replay_plan(plan, params.stems);
                self.engine.run_pass(&plan, &params, &mut SpillSource::new(spill)?, &mut psink)?;
                "spill"
            }
            None => {
                let raw = self.engine.takes_raw_pcm();
                let mut source = FileStemSource::start(open_readers(self.session, plan)?, plan.block, plan.frames, raw);
                self.engine.run_pass(plan, &params, &mut source, &mut psink)?;
                "stems"
            }
        };
        let tee = psink.inner.finish()?;
        let result = tee.inner.finish();
        self.progress.finish_pass();
        let bus_bytes = self.engine.bus_bytes();
        let (lufs, dbtp) = (result.loudness.integrated_lufs, result.loudness.true_peak_dbtp);
        self.record(pass_no, kind, params.gain_db, lufs, dbtp, input, bus_bytes, t0);
        if let Some(p) = self.passes.last_mut() {
            p.meter = result.meter;
        }
        Ok((result, tee.spills))
    }

    /// One G tried on the spill: the integrated loudness the writing pass would deliver.
    fn solve(&mut self, spill: &Spill, plan: &RenderPlan, gain_db: f64) -> Result<f64> {
        let t0 = Instant::now();
        let pass_no = self.passes.len() as u32 + 1;
        let limiter = plan.limiter.as_ref().ok_or_else(|| Error::Internal("solve without a limiter plan".into()))?;
        self.progress.start_pass(pass_no, "solve", plan.frames);
        let progress = self.progress;
        let lufs = solve_gain(spill, limiter, plan.layout, plan.sample_rate, gain_db, &|done| progress.advance(done));
        self.progress.finish_pass();
        let lufs = lufs?;
        self.record(pass_no, "solve", gain_db, lufs, f64::NAN, "spill", None, t0);
        Ok(lufs)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        pass: u32,
        kind: &'static str,
        gain_db: f64,
        lufs: f64,
        dbtp: f64,
        input: &'static str,
        bus_bytes: Option<BusBytes>,
        t0: Instant,
    ) {
        let finite = |v: f64| v.is_finite().then_some(v);
        self.passes.push(PassRecord {
            pass,
            kind,
            gain_db,
            integrated_lufs: finite(lufs),
            true_peak_dbtp: finite(dbtp),
            seconds: t0.elapsed().as_secs_f64(),
            input,
            bus_bytes,
            meter: "cpu",
        });
        self.progress.event(serde_json::json!({
            "event": "pass_done", "pass": pass, "what": kind, "gain_db": gain_db,
            "integrated_lufs": finite(lufs), "true_peak_dbtp": finite(dbtp),
        }));
    }

    /// A message for people on stderr (a JSON `note` event for farms).
    fn note(&self, msg: &str) {
        self.progress.note(msg);
    }
}

/// The render's `GainSearch`: solves on the bus spill while there is one, writes through the
/// engine, from `replay` when there is one.
struct Search<'a, 'r> {
    runner: &'r mut Runner<'a>,
    spill: Option<Spill>,
    /// The stem contributions spilled for the writing pass to replay (stems delivered).
    stem_spill: Option<Spill>,
    /// Whether the writing pass replays a spill: `stem_spill` when stems are delivered, else the
    /// bus spill.
    replay: bool,
    plan: &'r RenderPlan,
    files: &'r [PlannedFile],
    stems: bool,
}

impl GainSearch for Search<'_, '_> {
    type Written = PassResult;

    fn solve(&mut self, gain_db: f64) -> Option<f64> {
        let spill = self.spill.as_ref()?;
        match self.runner.solve(spill, self.plan, gain_db) {
            Ok(lufs) => Some(lufs),
            Err(e) => {
                self.runner.note(&format!("stemforge: note: {e}; G is found by repeating the writing pass instead"));
                self.spill = None;
                None
            }
        }
    }

    fn write(&mut self, gain_db: f64) -> Result<(f64, PassResult)> {
        if !self.replay || self.spill.is_none() {
            // The spills have done their work: free their disk before the outputs take theirs.
            self.spill = None;
            self.stem_spill = None;
        }
        let replay = match (self.replay, self.stems) {
            (false, _) => None,
            (true, true) => self.stem_spill.as_ref(),
            (true, false) => self.spill.as_ref(),
        };
        let params = PassParams { gain_db, limit: true, stems: self.stems };
        let writers = make_writers(self.files, self.plan.frames)?;
        let (result, _) =
            self.runner.run(self.plan, params, "limiter", MeterScope::Full, writers, Spills::default(), replay)?;
        Ok((result.loudness.integrated_lufs, result))
    }
}

/// Writers for a pass of `frames` frames (told, so each writes its final header first and hashes
/// as it goes).
fn make_writers(files: &[PlannedFile], frames: u64) -> Result<Writers> {
    let mut writers = Writers::none();
    let mut stem_output: Option<usize> = None;
    for f in files {
        let mut w = WavWriter::create(&f.final_path, &f.spec)?;
        w.expect_frames(frames)?;
        match f.kind {
            OutputKind::Master => writers.masters.push(w),
            OutputKind::Stems => {
                if stem_output != Some(f.output) {
                    writers.stems.push(Vec::new());
                    stem_output = Some(f.output);
                }
                writers.stems.last_mut().expect("stem output").push(w);
            }
        }
    }
    Ok(writers)
}

/// Render a session. Errors before any output is created leave nothing behind; errors later
/// remove the temporary files, the files this render already renamed into place and the folders
/// it created (`Publication`).
pub fn render(session_path: &Path, opts: &RenderOptions) -> Result<RenderReport> {
    let t0 = Instant::now();
    let session = Session::load(session_path)?;
    let out_dir = opts.out_dir.clone().unwrap_or_else(|| session.dir.clone());
    // Inputs are never modified, whatever the flags: checked before a stem is opened.
    check_writes(&session, paths::render_writes(&session, &out_dir), opts.report.as_deref(), opts.force)?;
    let (infos, mask_warnings) = open_stems(&session)?;
    let fs = infos[0].sample_rate;
    session.validate_sample_rate(fs)?;
    let stems_wanted = session.outputs.iter().any(|o| o.kind == OutputKind::Stems);
    let bus_plan = build_plan(&session, &infos, PlanKind::Bus, opts.block)?;
    if bus_plan.stems.is_empty() {
        return Err(Error::input(&session.file, "every stem is muted: nothing to render"));
    }
    if session.master.as_ref().is_some_and(|m| m.target_lufs.is_some()) {
        too_short_to_meter(&session, &infos, &bus_plan)?;
    }
    let linked_plan = build_plan(&session, &infos, PlanKind::StemsLinked, opts.block)?;
    let files = plan_outputs(&session, &linked_plan, &out_dir, opts.force)?;

    let progress = Progress::new(opts.progress);
    // Killed renders of these very files may have left their temporary files.
    let mut finals: Vec<&Path> = files.iter().map(|f| f.final_path.as_path()).collect();
    finals.extend(opts.report.as_deref());
    sweep(&finals, &progress);
    // From here on, whatever fails or is interrupted takes back what this render put on disk.
    let mut publication = Publication::new(opts.force);
    for f in &files {
        publication.create_dir_all(folder_of(&f.final_path))?;
    }
    // The report's folder is checked now, by making its temporary file: a bad `--report` fails
    // before any work, with nothing written (the folders just made go again). Its folder may be
    // one the outputs needed.
    let report_file = opts.report.as_deref().map(ReportFile::create).transpose()?;
    let (engine, fallback) = make_engine(opts.engine, opts.adapter.as_deref())?;
    // Stem outputs need the linked plan (each stem leaves the chain bus-EQ'd). The CPU engine
    // takes it for a master-only render too: it sums linked stems in the frequency domain, one
    // inverse FFT per bus channel and no separate bus EQ.
    let out_plan = if stems_wanted || engine.replays_spill() { linked_plan } else { bus_plan.clone() };
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
    let (result, passes) =
        run_passes(&session, engine, &progress, &bus_plan, &out_plan, &files, stems_wanted, spill_dir, opts.spill)?;

    let master = session.master.as_ref();
    let mut problems = Vec::new();
    let after = result.loudness;
    if let Some(target) = master.and_then(|m| m.target_lufs)
        && (after.integrated_lufs - target).abs() > LOUDNESS_TOLERANCE_LU
    {
        let ceiling = master.map_or(f64::NAN, |m| m.ceiling_dbtp);
        problems.push(match result.verdict {
            Verdict::OutOfReach { too_loud: false } => format!(
                "target {target:.2} LUFS is out of reach at ceiling {ceiling:.2} dBTP: the loudest reachable is {:.2} LUFS \
                 at G = {:+.2} dB ({MAX_PUSH_DB:.0} dB past the unlimited gain, where more G only distorts; lower the \
                 target or raise the ceiling)",
                after.integrated_lufs, result.gain_db
            ),
            Verdict::OutOfReach { too_loud: true } => format!(
                "target {target:.2} LUFS is out of reach: the quietest reachable is {:.2} LUFS at G = {:+.2} dB",
                after.integrated_lufs, result.gain_db
            ),
            _ => format!(
                "integrated loudness {:.2} LUFS misses the target {:.2} LUFS by more than {LOUDNESS_TOLERANCE_LU} LU \
                 after {} values of G (the closest reading was at G = {:+.2} dB)",
                after.integrated_lufs, target, result.iterations, result.gain_db
            ),
        });
    }
    if let Some(m) = master
        && after.true_peak_dbtp > m.ceiling_dbtp
    {
        problems
            .push(format!("true peak {:.2} dBTP is over the ceiling {:.2} dBTP", after.true_peak_dbtp, m.ceiling_dbtp));
    }
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
    let (masters, stems) = result.outputs.written();
    let mut masters = masters.iter();
    let mut stems = stems.iter().flatten();
    for f in &files {
        let w: &WrittenFile = match f.kind {
            OutputKind::Master => masters.next(),
            OutputKind::Stems => stems.next(),
        }
        .ok_or_else(|| Error::Internal("output count mismatch".into()))?;
        outputs.push(OutputRecord {
            path: w.path.clone(),
            kind: f.kind,
            stem: f.stem.clone(),
            format: f.spec.format,
            frames: w.frames,
            bytes: w.bytes,
            sha256: w.sha256.clone(),
            over_full_scale: w.over_full_scale,
            published,
        });
        if w.over_full_scale > 0 {
            warnings.push(match f.spec.format.int_bits() {
                Some(_) => format!(
                    "{}: {} samples beyond full scale were clamped (a stem can peak above the limited master it sums to; \
                     deliver stems as f32, or lower the ceiling)",
                    w.path.display(),
                    w.over_full_scale
                ),
                None => format!("{}: {} samples over 0 dBFS (kept: f32)", w.path.display(), w.over_full_scale),
            });
        }
    }
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
        target_lufs: master.and_then(|m| m.target_lufs),
        ceiling_dbtp: master.map(|m| m.ceiling_dbtp),
        gain_db: result.gain_db,
        gain_reduction: master.map(|_| result.reduction),
        iterations: result.iterations,
        passes,
        spec_met: problems.is_empty(),
        spec_problems: problems,
        warnings,
        outputs,
        wall_time_s: wall,
        realtime_factor: duration / wall,
    };
    if let Some(f) = &report_file {
        f.write(&report)?;
    }
    if !published {
        // A render that misses its spec publishes no output (README "Outputs"): dropping the
        // sealed files deletes them, and whatever is under their final names stays. The report,
        // the diagnosis, is published; folders made for the outputs go again where empty.
        drop(result.outputs);
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
    if let Some(f) = report_file {
        f.publish(&mut publication)?;
    }
    publication.keep();
    Ok(report)
}

struct PassesOutcome {
    before: Option<LoudnessStats>,
    gain_db: f64,
    iterations: u32,
    /// How the search for G ended (`Reached` when there was no target).
    verdict: Verdict,
    loudness: LoudnessStats,
    reduction: GainReduction,
    /// Every output file of the last writing pass, finished under its temporary name: `render`
    /// publishes them only once the spec checks pass.
    outputs: SealedOutputs,
}

#[allow(clippy::too_many_arguments)]
fn run_passes(
    session: &Session,
    engine: Box<dyn Engine>,
    progress: &Progress,
    bus_plan: &RenderPlan,
    out_plan: &RenderPlan,
    files: &[PlannedFile],
    stems_wanted: bool,
    spill_dir: &Path,
    spill_mode: SpillMode,
) -> Result<(PassesOutcome, Vec<PassRecord>)> {
    let mut runner = Runner { session, engine, progress, passes: Vec::new() };
    let master = session.master.as_ref();
    let limit = master.is_some();
    let outcome = |before, gain_db, iterations, verdict, result: PassResult| -> Result<PassesOutcome> {
        let outputs = result.writers.seal()?;
        Ok(PassesOutcome {
            before,
            gain_db,
            iterations,
            verdict,
            loudness: result.loudness,
            reduction: result.reduction,
            outputs,
        })
    };

    let Some(target) = master.and_then(|m| m.target_lufs) else {
        // No normalisation: one writing pass at G = 0.
        let params = PassParams { gain_db: 0.0, limit, stems: stems_wanted };
        let kind = if limit { "limiter" } else { "sum" };
        let writers = make_writers(files, out_plan.frames)?;
        let (result, _) = runner.run(out_plan, params, kind, MeterScope::Full, writers, Spills::default(), None)?;
        let outcome = outcome(None, 0.0, 1, Verdict::Reached, result)?;
        return Ok((outcome, runner.passes));
    };

    // An engine that replays spills (the CPU engine) runs its analysis pass as the writing pass
    // will (its plan, the stems delivered), so that the bus it meters and spills is the very sum
    // the writing pass limits, and what it spills of the stems is what that pass would compute:
    // the linked stems' contributions. Another engine meters the plain bus.
    let replays = runner.engine.replays_spill();
    // Replaying the spilled stems stands in for filtering them again only when their paths are
    // linear (`StemPlan::linear`).
    let replay = spill_mode == SpillMode::All && replays && out_plan.all_linear();
    let analysis_plan = if replays { out_plan } else { bus_plan };
    let (ch, frames) = (bus_plan.bus_channels(), bus_plan.frames);
    // While a replayed spill is read, the outputs are being written beside it: those on its file
    // system (their folders exist by now) take from the same free space.
    let outputs: u64 = if replay {
        files
            .iter()
            .filter(|f| paths::same_file_system(folder_of(&f.final_path), spill_dir))
            .map(|f| f.spec.format.bytes_per_sample() as u64 * ch as u64 * frames)
            .sum()
    } else {
        0
    };
    let stem_channels = if replay && stems_wanted { out_plan.stems.len() * ch } else { 0 };
    let mut spills = Spills::default();
    if spill_mode != SpillMode::None {
        let beside = outputs + spill_bytes(stem_channels, frames);
        match SpillWriter::create(spill_dir, ch, frames, beside) {
            Ok(w) => spills.bus = Some(w),
            Err(e) => runner.note(&format!(
                "stemforge: note: cannot spill the bus to {} ({e}); G is found by repeating the writing pass instead",
                spill_dir.display()
            )),
        }
    }
    if spills.bus.is_some() && stem_channels > 0 {
        let beside = outputs + spill_bytes(ch, frames);
        match SpillWriter::create(spill_dir, stem_channels, frames, beside) {
            Ok(w) => spills.stems = Some(w),
            Err(e) => runner.note(&format!(
                "stemforge: note: cannot spill the stems to {} ({e}); the writing pass filters them again instead",
                spill_dir.display()
            )),
        }
    }
    let params = PassParams { gain_db: 0.0, limit: false, stems: replays && stems_wanted };
    let (analysis, spills) =
        runner.run(analysis_plan, params, "analysis", MeterScope::Integrated, Writers::none(), spills, None)?;
    let l = analysis.loudness.integrated_lufs;
    unmeasurable_bus(session, analysis_plan, l, target)?;
    let finish = |w: Option<SpillWriter>, what: &str, channels: usize, instead: &str| {
        w.and_then(|w| match w.finish(frames, bus_plan.block) {
            Ok(s) => Some(s),
            Err(e) => {
                let size = spill_bytes(channels, frames) as f64 / 1e9;
                runner.note(&format!(
                    "stemforge: note: cannot spill the {what} ({size:.2} GB) to {} ({e}); {instead}",
                    spill_dir.display()
                ));
                None
            }
        })
    };
    let spill = finish(spills.bus, "bus", ch, "G is found by repeating the writing pass instead");
    let stem_spill = finish(spills.stems, "stems", stem_channels, "the writing pass filters them again instead");
    // A writing pass replays the bus spill only for a master-only render; with stems it needs
    // the stem spill.
    let replay = replay && spill.is_some() && (!stems_wanted || stem_spill.is_some());
    let mut search =
        Search { runner: &mut runner, spill, stem_spill, replay, plan: out_plan, files, stems: stems_wanted };
    let reached = reach_target(&mut search, target, target - l)?;
    let outcome =
        outcome(Some(analysis.loudness), reached.gain_db, reached.iterations, reached.verdict, reached.written)?;
    Ok((outcome, runner.passes))
}

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

/// Refuse a bus whose integrated loudness `l` gives no sane G for `target`: a silent one (under
/// the −70 LUFS gate), samples that overflow, or a G beyond ±MAX_GAIN_DB (DC, or samples near
/// f32::MAX).
fn unmeasurable_bus(session: &Session, plan: &RenderPlan, l: f64, target: f64) -> Result<()> {
    let stems: Vec<&str> = plan.stems.iter().map(|s| session.stems[s.index].name.as_str()).collect();
    let named = match stems.as_slice() {
        [one] => format!("stem `{one}`"),
        many => format!("stems {}", many.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")),
    };
    if l == f64::NEG_INFINITY {
        return Err(Error::input(
            &session.file,
            format!(
                "the program ({named}) is silent (integrated loudness below the -70 LUFS gate): it cannot be normalised to a target"
            ),
        ));
    }
    if !l.is_finite() {
        return Err(Error::input(
            &session.file,
            format!("the program ({named}) measures {l} LUFS: its samples overflow (values near the f32 limit?)"),
        ));
    }
    let g = target - l;
    if g.abs() > MAX_GAIN_DB {
        return Err(Error::input(
            &session.file,
            format!(
                "the program ({named}) measures {l:+.1} LUFS: reaching the target {target:.1} LUFS would take G = {g:+.1} dB, \
                 beyond the ±{MAX_GAIN_DB:.0} dB a programme can sanely be gained ({})",
                if g < 0.0 {
                    "float samples far beyond full scale: a file scaled wrongly, or not audio?"
                } else {
                    "a near-silent programme: the wrong file?"
                }
            ),
        ));
    }
    Ok(())
}
