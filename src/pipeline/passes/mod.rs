//! The render's passes: the analysis pass (metered, spilled), G solved on the spill and searched
//! for (`target`), the writing pass, each recorded for the report.
mod aim;
mod fold;
mod variants;

pub(super) use aim::Aim;
use aim::MAX_AIM_WRITES;
pub(super) use fold::FoldOutcome;
pub(super) use variants::VariantOutcome;
use variants::{MainResult, remaster_variants};

use std::path::Path;
use std::time::Instant;

use super::outputs::{PlannedFile, VariantFiles, folder_of, make_variant_writers, make_writers};
use crate::cpu::limiter::{AimBounds, aim_bounds, next_margin_db};
use crate::engine::{BusBytes, Engine, PassParams, RenderPlan, StageActivity};
use crate::error::{Error, Result};
use crate::io;
use crate::meter::{LoudnessMeter, LoudnessStats, MeterScope};
use crate::model::OutputKind;
use crate::paths;
use crate::pipeline::cache::CachedStems;
use crate::pipeline::normalise::{self, Normalise, Rule, dialogue_stems};
use crate::pipeline::plan::{aim_db, replay_plan, with_aim};
use crate::pipeline::proof::{StemMeasures, StemProbe};
use crate::pipeline::sink::{
    MasterCurves, OutputSink, PassResult, ProgressSink, SealedOutputs, ThreadedSink, VariantPass, Writers,
};
use crate::pipeline::solve::{Solved, solve_gain};
use crate::pipeline::source::FileStemSource;
use crate::pipeline::spill::{Spill, SpillMode, SpillSource, SpillTee, SpillWriter, Spills, mix_spill, spill_bytes};
use crate::pipeline::target::{GainSearch, LOUDNESS_TOLERANCE_LU, MAX_GAIN_DB, Verdict, reach_target};
use crate::progress::Progress;
use crate::report::render::GainReduction;
use crate::report::render::{LimiterAim, NormalisationReport, PassRecord, StemResidual};
use crate::session::{Session, VariantLoudness, VariantMode};

pub(super) fn open_readers(session: &Session, plan: &RenderPlan) -> Result<Vec<Box<dyn io::BlockReader>>> {
    plan.stems.iter().map(|s| io::open(&session.stems[s.index].path)).collect()
}

pub(super) struct Runner<'a> {
    session: &'a Session,
    engine: Box<dyn Engine>,
    progress: &'a Progress,
    passes: Vec<PassRecord>,
    /// Gather the proof page's data (design/proof.md): the stems' measures on the reader thread
    /// of a pass that reads them, the master's curves in every writing pass.
    proof: bool,
    measures: Option<StemMeasures>,
    reference_note: Option<String>,
    /// What the render normalises, once the analysis pass has decided (`Normalise::decide`):
    /// every later pass keeps the master's block energies when it gates on dialogue.
    normalise: Option<Normalise>,
    /// The dialogue stems (plan order) the next pass meters (the analysis pass's, on a session
    /// that gates on dialogue).
    dialogue_tap: Option<Vec<usize>>,
    /// `--cache`: the stems as verified cache entries, replayed in place of the stem files
    /// (the plan's stems are then `StemPlan::replayed_latency`).
    cached: Option<&'a CachedStems>,
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
        replay: Option<Replay<'_>>,
        weights: Option<&[f32]>,
    ) -> Result<(PassResult, Spills)> {
        let t0 = Instant::now();
        let pass_no = self.passes.len() as u32 + 1;
        self.progress.start_pass(pass_no, kind, plan.frames);
        let meter = LoudnessMeter::with_scope(plan.bus_channels(), plan.sample_rate, Some(plan.layout), scope)?;
        let step = meter.step_frames();
        // A bus stage that cannot be shared out among the stems (allowed by `allow_residual`):
        // the writing pass measures what the stems miss.
        let residual = params.stems && writers.has_stems() && plan.bus_process.iter().any(|p| !p.shares_with_stems());
        let tap = self.dialogue_tap.take();
        let keep_blocks = tap.is_some() || self.normalise.as_ref().is_some_and(Normalise::needs_blocks);
        let sink = OutputSink::new(meter, writers)?
            .keep_blocks(keep_blocks)?
            .dialogue_tap(tap, plan.layout)?
            .programme_frames(plan.frames)
            .limited_master(params.limit)
            .device_meter(self.engine.meter_on_device(plan))
            .stem_residual(residual)
            .proof_curves(self.proof && scope == MeterScope::Full);
        let sink = ThreadedSink::start(SpillTee { inner: sink, spills });
        let mut psink = ProgressSink { inner: sink, progress: self.progress, frames_done: 0 };
        let input = match replay {
            Some(Replay { spill, stems }) => {
                // A bus spill is replayed as it is (a variant's is weighed already).
                let plan = if stems { weighed(replay_plan(plan, true), weights) } else { replay_plan(plan, false) };
                self.engine.run_pass(&plan, &params, &mut SpillSource::new(spill)?, &mut psink)?;
                "spill"
            }
            None if self.cached.is_some() => {
                let cached = self.cached.expect("checked");
                let plan = weighed(plan.clone(), weights);
                self.engine.run_pass(&plan, &params, &mut cached.source()?, &mut psink)?;
                "cache"
            }
            None => {
                let raw = self.engine.takes_raw_pcm();
                let plan = weighed(plan.clone(), weights);
                let readers = open_readers(self.session, &plan)?;
                let mut source = match self.proof {
                    true => {
                        let probe = self.stem_probe(&plan, step);
                        FileStemSource::start_probed(readers, plan.block, plan.frames, raw, probe)
                    }
                    false => FileStemSource::start(readers, plan.block, plan.frames, raw),
                };
                self.engine.run_pass(&plan, &params, &mut source, &mut psink)?;
                if let Some(m) = source.measures()? {
                    self.measures = Some(m);
                }
                "stems"
            }
        };
        let tee = psink.inner.finish()?;
        let result = tee.inner.finish();
        self.progress.finish_pass();
        let bus_bytes = self.engine.bus_bytes();
        let (lufs, dbtp) = (result.loudness.integrated_lufs, result.loudness.true_peak_dbtp);
        let aim = plan.limiter.as_ref().filter(|_| params.limit).map(|l| l.ceiling_db as f64);
        self.record(pass_no, kind, params.gain_db, lufs, dbtp, aim, input, bus_bytes, t0);
        if let Some(p) = self.passes.last_mut() {
            p.meter = result.meter;
        }
        Ok((result, tee.spills))
    }

    /// One G tried on the spill at `plan`'s aim: the integrated loudness and true peak the
    /// writing pass would deliver.
    fn solve(&mut self, spill: &Spill, plan: &RenderPlan, gain_db: f64) -> Result<Solved> {
        let t0 = Instant::now();
        let pass_no = self.passes.len() as u32 + 1;
        let limiter = plan.limiter.as_ref().ok_or_else(|| Error::Internal("solve without a limiter plan".into()))?;
        self.progress.start_pass(pass_no, "solve", plan.frames);
        let progress = self.progress;
        let fs = plan.sample_rate;
        let mut rates: Vec<u32> = self
            .session
            .outputs
            .iter()
            .filter(|o| o.kind == OutputKind::Master && o.layout.unwrap_or(self.session.layout) == plan.layout)
            .map(|o| o.delivered_rate(fs))
            .filter(|&r| r != fs)
            .collect();
        rates.sort_unstable();
        rates.dedup();
        let gate = self.normalise.as_ref().filter(|n| n.rule == Rule::Dialogue).and_then(|n| n.gate.as_ref());
        let solved = solve_gain(spill, limiter, plan.layout, fs, &rates, gain_db, gate, &|done| progress.advance(done));
        self.progress.finish_pass();
        let s = solved?;
        let aim = Some(limiter.ceiling_db as f64);
        self.record(pass_no, "solve", gain_db, s.lufs, s.true_peak_dbtp, aim, "spill", None, t0);
        Ok(s)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        pass: u32,
        kind: &'static str,
        gain_db: f64,
        lufs: f64,
        dbtp: f64,
        aim_dbtp: Option<f64>,
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
            aim_dbtp,
            seconds: t0.elapsed().as_secs_f64(),
            input,
            bus_bytes,
            meter: "cpu",
        });
        self.progress.event(serde_json::json!({
            "event": "pass_done", "pass": pass, "what": kind, "gain_db": gain_db,
            "integrated_lufs": finite(lufs), "true_peak_dbtp": finite(dbtp), "aim_dbtp": aim_dbtp,
        }));
    }

    /// The proof page's probe of a pass's stems (`proof::stem_probe`), noting why the reference
    /// mix is not nulled when it cannot be.
    fn stem_probe(&mut self, plan: &RenderPlan, step: usize) -> StemProbe {
        let (probe, note) = crate::pipeline::proof::stem_probe(self.session, plan, step);
        if note.is_some() {
            self.reference_note = note;
        }
        probe
    }

    /// A message for people on stderr (a JSON `note` event for farms).
    fn note(&self, msg: &str) {
        self.progress.note(msg);
    }
}

/// A spill a writing pass replays: the bus, or the stems' contributions (stem-major), which the
/// pass sums whether or not it delivers the stems.
#[derive(Clone, Copy)]
struct Replay<'a> {
    spill: &'a Spill,
    stems: bool,
}

/// `plan` with each stem's routes scaled by its weight (a variant's mutes and gain offsets, in plan
/// order): a route's weight is the stem's gain times its routing, so this is the stem's gain
/// moved; the stem's EQ and process chain are untouched.
fn weighed(mut plan: RenderPlan, weights: Option<&[f32]>) -> RenderPlan {
    if let Some(weights) = weights {
        for (stem, &w) in plan.stems.iter_mut().zip(weights) {
            for route in &mut stem.routes {
                route.2 *= w;
            }
        }
    }
    plan
}

/// A writing pass at `params.gain_db`, verified: where the reference meter reads the master's true
/// peak outside the accepted band (`next_margin_db`), the aim moves and the pass is repeated, at
/// most MAX_AIM_WRITES times; dropping a repeated pass's outputs deletes them.
#[allow(clippy::too_many_arguments)]
fn write_pass(
    runner: &mut Runner<'_>,
    plan: &RenderPlan,
    aim: Option<&mut Aim>,
    params: PassParams,
    kind: &'static str,
    files: &[PlannedFile],
    variants: &[VariantFiles],
    replay: Option<Replay<'_>>,
    weights: Option<&[f32]>,
) -> Result<PassResult> {
    let mut aim = aim.filter(|_| params.limit);
    let mut repeats = 0;
    loop {
        let plan = match &aim {
            Some(a) => with_aim(plan, a.aim()),
            None => plan.clone(),
        };
        let mut writers = make_writers(files, plan.frames, plan.sample_rate)?;
        writers.variants = make_variant_writers(runner.session, variants, &plan)?;
        let (result, _) =
            runner.run(&plan, params, kind, MeterScope::Full, writers, Spills::default(), replay, weights)?;
        let limited = result.reduction.max_db > 0.0;
        // The ceiling holds for the files as delivered: a master resampled after the limiter can
        // peak higher than the limited master (design/deliverables.md "Output formats"), so the
        // aim answers the highest true peak of them all.
        let moved = repeats < MAX_AIM_WRITES
            && aim.as_deref_mut().is_some_and(|a| a.moved(result.delivered_true_peak_dbtp(), limited));
        if !moved {
            return Ok(result);
        }
        repeats += 1;
    }
}

/// The render's `GainSearch`: solves on the bus spill while there is one, writes through the
/// engine, from `replay` when there is one.
pub(super) struct Search<'a, 'r> {
    runner: &'r mut Runner<'a>,
    spill: Option<Spill>,
    /// The stem contributions spilled for the writing pass to replay (stems delivered).
    stem_spill: Option<&'r Spill>,
    /// Whether the writing pass replays a spill: `stem_spill` when stems are delivered, else the
    /// bus spill.
    replay: bool,
    plan: &'r RenderPlan,
    files: &'r [PlannedFile],
    /// The `mode = "stems"` variants each writing pass makes beside the main.
    variants: &'r [VariantFiles],
    /// A remaster variant's stem weights (`weighed`); None for the main.
    weights: Option<&'r [f32]>,
    stems: bool,
    aim: &'r mut Aim,
    target: f64,
}

impl GainSearch for Search<'_, '_> {
    /// The pass, and the aim it was written at (`reach_target` may keep an earlier pass).
    type Written = (PassResult, LimiterAim);

    /// The loudness at `gain_db`, the aim solved where it lands (`Aim::solve_at`).
    fn solve(&mut self, gain_db: f64) -> Option<f64> {
        let spill = self.spill.as_ref()?;
        let (runner, plan) = (&mut *self.runner, self.plan);
        let solved = self.aim.solve_at(gain_db, self.target, |aim| runner.solve(spill, &with_aim(plan, aim), gain_db));
        match solved {
            Ok(lufs) => Some(lufs),
            Err(e) => {
                self.runner.note(&format!("stemforge: note: {e}; G is found by repeating the writing pass instead"));
                self.spill = None;
                None
            }
        }
    }

    fn write(&mut self, gain_db: f64) -> Result<(f64, (PassResult, LimiterAim))> {
        self.settle_aim(gain_db);
        if !self.replay || self.spill.is_none() {
            // The spills have done their work: free their disk before the outputs take theirs.
            self.spill = None;
            self.stem_spill = None;
        }
        let replay = match (self.replay, self.stems) {
            (false, _) => None,
            (true, true) => self.stem_spill.map(|spill| Replay { spill, stems: true }),
            (true, false) => self.spill.as_ref().map(|spill| Replay { spill, stems: false }),
        };
        let params = PassParams { gain_db, limit: true, stems: self.stems };
        let result = write_pass(
            self.runner,
            self.plan,
            Some(self.aim),
            params,
            "limiter",
            self.files,
            self.variants,
            replay,
            self.weights,
        )?;
        let lufs = match &self.runner.normalise {
            Some(n) => n.read(&result.loudness, result.blocks.as_deref(), gain_db)?,
            None => result.loudness.integrated_lufs,
        };
        Ok((lufs, (result, self.aim.report())))
    }
}

impl Search<'_, '_> {
    /// Before writing at `gain_db`: the aim settled there (`Aim::settle`), by solves on the spill.
    fn settle_aim(&mut self, gain_db: f64) {
        let (runner, plan) = (&mut *self.runner, self.plan);
        match self.spill.as_ref() {
            Some(spill) => {
                self.aim.settle(gain_db, Some(&mut |aim| runner.solve(spill, &with_aim(plan, aim), gain_db)))
            }
            None => self.aim.settle(gain_db, None),
        }
    }
}

pub(super) struct PassesOutcome {
    pub(super) before: Option<LoudnessStats>,
    pub(super) gain_db: f64,
    pub(super) iterations: u32,
    /// How the search for G ended (`Reached` when there was no target).
    pub(super) verdict: Verdict,
    pub(super) loudness: LoudnessStats,
    pub(super) reduction: GainReduction,
    /// The stems' sum against the master, when a bus stage keeps them from summing exactly.
    pub(super) residual: Option<StemResidual>,
    /// Per master output file: its readings as delivered when it is resampled (`PassResult::delivered`).
    pub(super) delivered: Vec<Option<LoudnessStats>>,
    /// Every process stage, with what it did (`Engine::stage_activity`).
    pub(super) stages: Vec<StageActivity>,
    /// The limiter's aim in the last writing pass (None without a master).
    pub(super) limiter: Option<LimiterAim>,
    /// Every output file of the last writing pass, finished under its temporary name: `render`
    /// publishes them only once the spec checks pass.
    pub(super) outputs: SealedOutputs,
    /// Each variant, in session order.
    pub(super) variants: Vec<VariantOutcome>,
    /// The `layout = "2.0"` fold-down, when the session asks for one.
    pub(super) fold: Option<FoldOutcome>,
    /// With `--proof`: the kept writing pass's master curves, and the stems' measures.
    pub(super) curves: Option<MasterCurves>,
    pub(super) measures: Option<StemMeasures>,
    /// Why the reference mix was not nulled (its rate or channels), when it was not.
    pub(super) reference_note: Option<String>,
    /// With a loudness target: what was normalised, read on the master written.
    pub(super) normalisation: Option<NormalisationReport>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run_passes<'a>(
    session: &'a Session,
    engine: Box<dyn Engine>,
    progress: &'a Progress,
    cached: Option<&'a CachedStems>,
    out_plan: &RenderPlan,
    files: &[PlannedFile],
    variant_files: &[VariantFiles],
    fold_files: &[PlannedFile],
    stems_wanted: bool,
    spill_dir: &Path,
    spill_mode: SpillMode,
    proof: bool,
) -> Result<(PassesOutcome, Vec<PassRecord>)> {
    let mut runner = Runner {
        session,
        engine,
        progress,
        passes: Vec::new(),
        proof,
        measures: None,
        reference_note: None,
        normalise: None,
        dialogue_tap: None,
        cached,
    };
    let master = session.master.as_ref();
    let limit = master.is_some();
    let mut aim = Aim::new(session);
    // A stems variant is summed from the main's stem outputs, so every writing pass delivers the
    // stems when there is one; a remaster variant replays the stems' spilled contributions.
    let stems_variants = session.variants.iter().any(|v| v.mode == VariantMode::Stems);
    let remasters = session.variants.iter().any(|v| v.mode == VariantMode::Remaster);
    let deliver_stems = stems_wanted || stems_variants;
    let outcome = |before, gain_db, iterations, verdict, result: PassResult, limiter: Option<LimiterAim>| {
        let variants =
            result.variants.into_iter().map(|v| VariantOutcome::of_stems(v, gain_db)).collect::<Result<Vec<_>>>()?;
        let outputs = result.writers.seal()?;
        Ok::<_, Error>(PassesOutcome {
            before,
            gain_db,
            iterations,
            verdict,
            loudness: result.loudness,
            reduction: result.reduction,
            residual: result.residual,
            delivered: result.delivered,
            stages: Vec::new(),
            limiter,
            outputs,
            variants,
            fold: None,
            curves: result.curves,
            measures: None,
            reference_note: None,
            normalisation: None,
        })
    };

    let Some(target) = master.and_then(|m| m.target_lufs) else {
        // No normalisation: one writing pass at G = 0, repeated only to move the aim.
        let params = PassParams { gain_db: 0.0, limit, stems: deliver_stems };
        let kind = if limit { "limiter" } else { "sum" };
        let result = write_pass(&mut runner, out_plan, aim.as_mut(), params, kind, files, variant_files, None, None)?;
        let mut outcome = outcome(None, 0.0, 1, Verdict::Reached, result, aim.as_ref().map(Aim::report))?;
        outcome.stages = runner.engine.stage_activity();
        outcome.measures = runner.measures.take();
        outcome.reference_note = runner.reference_note.take();
        let main = MainResult { gain_db: 0.0, margin_db: aim.as_ref().map(Aim::margin_db), stem_spill: None };
        remaster_variants(&mut runner, out_plan, variant_files, &main, &mut outcome, spill_dir)?;
        outcome.fold = fold::fold_down(&mut runner, out_plan, fold_files, None, spill_dir)?;
        return Ok((outcome, runner.passes));
    };

    // The analysis pass runs the writing pass's plan (the linked one) on every engine, so that the
    // bus it meters is the very sum the writing pass limits: the loudness that seeds the solve, and
    // with it G, is then the same bits on either engine and from the stem cache, whose passes run
    // on the CPU engine (design/proof.md: a cached render gives an uncached render's bits). An
    // engine that replays spills (the CPU engine) also runs it with the writing pass's stem flag,
    // so that what it spills of the stems is what that pass would compute: the linked stems'
    // contributions.
    let replays = runner.engine.replays_spill();
    // Replaying stands in for the writing pass's whole chain before G: the analysis pass of a
    // replaying engine runs the writing pass's plan and stem flag, and every stage (stem EQ and
    // process chains, routing, bus EQ and bus chain) comes before G, so what it spills (the bus,
    // or each stem's contribution) is exactly what the writing pass would compute, linear or not.
    // With stems the replay rebuilds the master as their sum, which is the writing pass's master
    // only without a bus chain (after one, the master is G times the chain's bus, equal to the
    // stems' sum only to rounding; after a residual stage, not at all).
    // Stems read from the cache (`--cache`) are already on disk, one entry per stem: spilling their
    // contributions again would write and read back as much as the entries hold, so their writing
    // pass reads the entries (the bus is still spilled for the solve; the outputs are the same
    // bits either way, `tests/cache.rs`).
    let cached_stems = runner.cached.is_some() && deliver_stems;
    let replay =
        spill_mode == SpillMode::All && replays && (!deliver_stems || out_plan.bus_process.is_empty()) && !cached_stems;
    // A remaster variant replays the stems' contributions whatever the engine (the session refuses
    // a remaster beside a bus chain).
    let spill_for_remasters = spill_mode == SpillMode::All && remasters && out_plan.bus_process.is_empty();
    let analysis_plan = out_plan;
    let (ch, frames) = (out_plan.bus_channels(), out_plan.frames);
    // While a replayed spill is read, the outputs are being written beside it: those on its file
    // system (their folders exist by now) take from the same free space.
    let outputs: u64 = if replay || spill_for_remasters {
        files
            .iter()
            .chain(variant_files.iter().flat_map(|v| &v.files))
            .filter(|f| paths::same_file_system(folder_of(&f.final_path), spill_dir))
            .map(|f| f.spec.format.bytes_per_sample() as u64 * f.spec.channels as u64 * frames)
            .sum()
    } else {
        0
    };
    let stem_channels = if (replay && deliver_stems) || spill_for_remasters { out_plan.stems.len() * ch } else { 0 };
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
    let params = PassParams { gain_db: 0.0, limit: false, stems: stem_channels > 0 || (replays && deliver_stems) };
    // Dialogue gating meters the dialogue stems' contributions beside the bus.
    runner.dialogue_tap = dialogue_stems(session, analysis_plan.stems.iter().map(|s| s.index));
    let params = PassParams { stems: params.stems || runner.dialogue_tap.is_some(), ..params };
    let (mut analysis, spills) =
        runner.run(analysis_plan, params, "analysis", MeterScope::Integrated, Writers::none(), spills, None, None)?;
    let normalise = Normalise::decide(session, target, analysis.blocks.as_deref(), analysis.dialogue.take())?;
    let target = normalise.target_lufs;
    let l = normalise.read(&analysis.loudness, analysis.blocks.as_deref(), 0.0)?;
    runner.normalise = Some(normalise);
    unmeasurable_bus(session, analysis_plan, l, target)?;
    let finish = |w: Option<SpillWriter>, what: &str, channels: usize, instead: &str| {
        w.and_then(|w| match w.finish(frames, out_plan.block) {
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
    // The fold-down's bus, from the bus spill before the main's search frees it.
    let keep_blocks = runner.normalise.as_ref().is_some_and(Normalise::needs_blocks);
    let folded = fold::fold_bus(analysis_plan, fold_files, spill.as_ref(), spill_dir, keep_blocks)?;
    // A writing pass replays the bus spill only for a master-only render; with stems it needs
    // the stem spill.
    let replay = replay && spill.is_some() && (!deliver_stems || stem_spill.is_some());
    let Some(search_aim) = aim.as_mut() else {
        return Err(Error::Internal("a loudness target without a master".into()));
    };
    let mut search = Search {
        runner: &mut runner,
        spill,
        stem_spill: stem_spill.as_ref(),
        replay,
        plan: out_plan,
        files,
        variants: variant_files,
        weights: None,
        stems: deliver_stems,
        aim: search_aim,
        target,
    };
    let reached = reach_target(&mut search, target, target - l)?;
    let (written, limiter) = reached.written;
    let normalisation = match &runner.normalise {
        Some(n) => Some(normalise::report(session, n, &written.loudness, written.blocks.as_deref(), reached.gain_db)?),
        None => None,
    };
    let mut outcome =
        outcome(Some(analysis.loudness), reached.gain_db, reached.iterations, reached.verdict, written, Some(limiter))?;
    outcome.stages = runner.engine.stage_activity();
    outcome.measures = runner.measures.take();
    outcome.reference_note = runner.reference_note.take();
    outcome.normalisation = normalisation;
    let main = MainResult {
        gain_db: reached.gain_db,
        margin_db: Some(limiter.margin_db),
        stem_spill: stem_spill.as_ref().filter(|_| spill_for_remasters || replays),
    };
    remaster_variants(&mut runner, out_plan, variant_files, &main, &mut outcome, spill_dir)?;
    outcome.fold = fold::fold_down(&mut runner, out_plan, fold_files, folded, spill_dir)?;
    Ok((outcome, runner.passes))
}

/// Refuse a bus whose integrated loudness `l` gives no sane G for `target`: a silent one (under
/// the −70 LUFS gate), samples that overflow, or a G beyond ±MAX_GAIN_DB (DC, or samples near
/// f32::MAX).
pub(super) fn unmeasurable_bus(session: &Session, plan: &RenderPlan, l: f64, target: f64) -> Result<()> {
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
