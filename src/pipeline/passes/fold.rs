//! The `layout = "2.0"` outputs of a 5.1/7.1 session: the ITU-R BS.775 fold-down of the main's bus
//! (after bus EQ and bus chain, before G), with its own G and limiter, replayed on the host.
use super::*;
use crate::model::Layout;

/// What a render made of the fold-down (design/deliverables.md "Output formats").
pub(in crate::pipeline) struct FoldOutcome {
    /// The layout folded to (2.0) and from (the session's).
    pub(in crate::pipeline) layout: Layout,
    pub(in crate::pipeline) from: Layout,
    /// The folded bus before G, by the meter its first G is read from (integrated scope).
    pub(in crate::pipeline) before: LoudnessStats,
    /// Its own G (0 without a target).
    pub(in crate::pipeline) gain_db: f64,
    pub(in crate::pipeline) iterations: u32,
    pub(in crate::pipeline) verdict: Verdict,
    /// Its master as written.
    pub(in crate::pipeline) loudness: LoudnessStats,
    pub(in crate::pipeline) reduction: Option<GainReduction>,
    pub(in crate::pipeline) limiter: Option<LimiterAim>,
    /// Its own passes: an analysis pass where the main spilled no bus, then solves and writing
    /// passes on the host.
    pub(in crate::pipeline) passes: Vec<PassRecord>,
    pub(in crate::pipeline) outputs: SealedOutputs,
    /// With a loudness target: what was normalised (the main's rule: on dialogue, the dialogue
    /// blocks of the programme, read on the 2.0's own blocks), read on the 2.0 as written.
    pub(in crate::pipeline) normalisation: Option<NormalisationReport>,
}

/// The fold-down's bus: the main's bus through the BS.775 matrix, spilled for its solves and its
/// writing pass, and its loudness before G.
pub(super) struct FoldBus {
    spill: Spill,
    before: LoudnessStats,
    /// Its 400 ms block energies, when the render gates on dialogue.
    blocks: Option<Vec<f64>>,
}

/// The plan of the fold-down's passes: `out_plan`'s length, block and limiter, in 2.0, with every
/// stage before G already applied (the folded bus is replayed as it is, `plan::replay_plan`).
fn fold_plan(out_plan: &RenderPlan) -> RenderPlan {
    RenderPlan { layout: Layout::Stereo, stems: Vec::new(), bus_fir: None, bus_process: Vec::new(), ..out_plan.clone() }
}

/// Before the main's search frees it: the fold-down's bus made of the main's bus spill, where
/// there are fold-down files and a bus spill. None otherwise (`fold_down` then spills the bus itself).
pub(super) fn fold_bus(
    plan: &RenderPlan,
    files: &[PlannedFile],
    bus: Option<&Spill>,
    spill_dir: &Path,
    keep_blocks: bool,
) -> Result<Option<FoldBus>> {
    match bus {
        Some(bus) if !files.is_empty() => mix(plan, bus, spill_dir, keep_blocks).map(Some),
        _ => Ok(None),
    }
}

/// `bus` (the main's, before G) folded down and metered as the main's analysis pass meters its
/// bus (`LoudnessMeter`, integrated scope, `LoudnessStats::integrated_lufs` read for the first G).
/// `keep_blocks`: keep its 400 ms block energies too, for dialogue gating.
fn mix(plan: &RenderPlan, bus: &Spill, spill_dir: &Path, keep_blocks: bool) -> Result<FoldBus> {
    let routes = plan
        .layout
        .fold_down_routes()
        .ok_or_else(|| Error::Internal(format!("a fold-down of a {} bus", plan.layout.name())))?;
    let ch = Layout::Stereo.channels();
    let mut meter = LoudnessMeter::with_scope(ch, plan.sample_rate, Some(Layout::Stereo), MeterScope::Integrated)?;
    if keep_blocks {
        meter.keep_blocks()?;
    }
    let spill = mix_spill(bus, &routes, ch, spill_dir, &mut meter).map_err(|e| {
        Error::output(
            spill_dir,
            format!(
                "cannot spill the 2.0 fold-down of the bus ({:.2} GB) for its own G and limiter: {e}",
                spill_bytes(ch, plan.frames) as f64 / 1e9
            ),
        )
    })?;
    Ok(FoldBus { spill, before: meter.result(), blocks: meter.block_energies().map(<[f64]>::to_vec) })
}

/// The fold-down, after the main and its variants: its own G (the main's search, `reach_target`,
/// on the folded bus: solves and writing passes replay it on the host's CPU engine, as the
/// remaster variants do) and its own limiter at the main's ceiling, oversampling, look-ahead and
/// release. `folded` is `fold_bus`'s; where the main spilled no bus (no loudness target, or no
/// room), one pass of the render's engine spills it first. None without fold-down files.
pub(super) fn fold_down(
    runner: &mut Runner<'_>,
    out_plan: &RenderPlan,
    files: &[PlannedFile],
    folded: Option<FoldBus>,
    spill_dir: &Path,
) -> Result<Option<FoldOutcome>> {
    if files.is_empty() {
        return Ok(None);
    }
    let session = runner.session;
    runner.note(&format!("stemforge: 2.0 fold-down of the {} bus (ITU-R BS.775)", out_plan.layout.name()));
    let first_pass = runner.passes.len();
    let folded = match folded {
        Some(f) => f,
        None => {
            let (ch, frames) = (out_plan.bus_channels(), out_plan.frames);
            let no_spill = |e: String| {
                Error::output(
                    spill_dir,
                    format!(
                        "cannot spill the bus ({:.2} GB) for the 2.0 fold-down's own G and limiter: {e}",
                        spill_bytes(ch, frames) as f64 / 1e9
                    ),
                )
            };
            let w = SpillWriter::create(spill_dir, ch, frames, 0).map_err(|e| no_spill(e.to_string()))?;
            let spills = Spills { bus: Some(w), stems: None };
            let params = PassParams { gain_db: 0.0, limit: false, stems: false };
            let (_, spills) = runner.run(
                out_plan,
                params,
                "analysis",
                MeterScope::Integrated,
                Writers::none(),
                spills,
                None,
                None,
            )?;
            let w = spills.bus.ok_or_else(|| Error::Internal("the fold-down's bus spill went missing".into()))?;
            let bus = w.finish(frames, out_plan.block).map_err(no_spill)?;
            mix(out_plan, &bus, spill_dir, false)?
        }
    };
    let mut host = Runner {
        session,
        engine: Box::new(crate::cpu::engine::CpuEngine::new()),
        progress: runner.progress,
        passes: runner.passes.split_off(first_pass),
        proof: false,
        measures: None,
        reference_note: None,
        // The main's rule: on dialogue, the dialogue stems' blocks gate the 2.0's own.
        normalise: runner.normalise.clone(),
        dialogue_tap: None,
        // The fold-down replays the folded bus: no stems are read.
        cached: None,
    };
    let plan = fold_plan(out_plan);
    let master = session.master.as_ref();
    let replay = Replay { spill: &folded.spill, stems: false };
    let normalise = host.normalise.clone();
    let made = |result: PassResult, gain_db, iterations, verdict, limiter, passes| {
        let normalisation = match &normalise {
            Some(n) => Some(normalise::report(session, n, &result.loudness, result.blocks.as_deref(), gain_db)?),
            None => None,
        };
        Ok::<_, Error>(FoldOutcome {
            normalisation,
            layout: Layout::Stereo,
            from: out_plan.layout,
            before: folded.before,
            gain_db,
            iterations,
            verdict,
            loudness: result.loudness,
            reduction: master.map(|_| result.reduction),
            limiter,
            passes,
            outputs: result.writers.seal()?,
        })
    };
    let Some(target) = master.and_then(|m| m.target_lufs) else {
        // No normalisation, as the main: G = 0, the writing pass repeated only to move the aim.
        let mut aim = Aim::new(session);
        let params = PassParams { gain_db: 0.0, limit: master.is_some(), stems: false };
        let kind = if master.is_some() { "limiter" } else { "sum" };
        let result = write_pass(&mut host, &plan, aim.as_mut(), params, kind, files, &[], Some(replay), None)?;
        let limiter = aim.as_ref().map(Aim::report);
        return made(result, 0.0, 1, Verdict::Reached, limiter, host.passes).map(Some);
    };
    // The main's target and rule (Netflix's programme rule under sparse dialogue is the
    // programme's, so the 2.0 follows it).
    let (target, l) = match &normalise {
        Some(n) => (n.target_lufs, n.read(&folded.before, folded.blocks.as_deref(), 0.0)?),
        None => (target, folded.before.integrated_lufs),
    };
    unmeasurable_bus(session, out_plan, l, target).map_err(|e| match e {
        Error::Input { path, msg, .. } => Error::input(path, format!("the 2.0 fold-down (layout = \"2.0\"): {msg}")),
        e => e,
    })?;
    let mut aim = Aim::new(session).ok_or_else(|| Error::Internal("a loudness target without a master".into()))?;
    let mut search =
        FoldSearch { runner: &mut host, bus: &folded.spill, solving: true, plan: &plan, files, aim: &mut aim, target };
    let reached = reach_target(&mut search, target, target - l)?;
    let (written, limiter) = reached.written;
    made(written, reached.gain_db, reached.iterations, reached.verdict, Some(limiter), host.passes).map(Some)
}

/// The fold-down's `GainSearch`: the main's (`Search`) on a bus that is always there to replay,
/// solved on while the solves can read it.
struct FoldSearch<'a, 'r> {
    runner: &'r mut Runner<'a>,
    bus: &'r Spill,
    solving: bool,
    plan: &'r RenderPlan,
    files: &'r [PlannedFile],
    aim: &'r mut Aim,
    target: f64,
}

impl GainSearch for FoldSearch<'_, '_> {
    type Written = (PassResult, LimiterAim);

    fn solve(&mut self, gain_db: f64) -> Option<f64> {
        if !self.solving {
            return None;
        }
        let (runner, plan, bus) = (&mut *self.runner, self.plan, self.bus);
        match self.aim.solve_at(gain_db, self.target, |aim| runner.solve(bus, &with_aim(plan, aim), gain_db)) {
            Ok(lufs) => Some(lufs),
            Err(e) => {
                self.runner.note(&format!(
                    "stemforge: note: {e}; the 2.0 fold-down's G is found by repeating its writing pass instead"
                ));
                self.solving = false;
                None
            }
        }
    }

    fn write(&mut self, gain_db: f64) -> Result<(f64, (PassResult, LimiterAim))> {
        let (runner, plan, bus) = (&mut *self.runner, self.plan, self.bus);
        match self.solving {
            true => self.aim.settle(gain_db, Some(&mut |aim| runner.solve(bus, &with_aim(plan, aim), gain_db))),
            false => self.aim.settle(gain_db, None),
        }
        let params = PassParams { gain_db, limit: true, stems: false };
        let replay = Some(Replay { spill: self.bus, stems: false });
        let result =
            write_pass(self.runner, self.plan, Some(self.aim), params, "limiter", self.files, &[], replay, None)?;
        let lufs = match &self.runner.normalise {
            Some(n) => n.read(&result.loudness, result.blocks.as_deref(), gain_db)?,
            None => result.loudness.integrated_lufs,
        };
        Ok((lufs, (result, self.aim.report())))
    }
}
