//! The `mode = "remaster"` variants: each replays the main's spilled stem contributions (or renders
//! the stems again) through its own limiter, after the main's passes.
use super::*;

/// What a render made of one variant (design/deliverables.md "Variants").
pub(in crate::pipeline) struct VariantOutcome {
    /// Index into `Session::variants`.
    pub(in crate::pipeline) variant: usize,
    /// Its G: the main's, or its own (`loudness = "own"`).
    pub(in crate::pipeline) gain_db: f64,
    /// G values tried for it (0: it took the main's).
    pub(in crate::pipeline) iterations: u32,
    /// Its master as written.
    pub(in crate::pipeline) loudness: LoudnessStats,
    /// Its own limiter's gain reduction (remaster; a stems variant carries the main's envelope).
    pub(in crate::pipeline) reduction: Option<GainReduction>,
    pub(in crate::pipeline) limiter: Option<LimiterAim>,
    /// Its own passes (remaster: solves and writing passes; a stems variant is made in the main's).
    pub(in crate::pipeline) passes: Vec<PassRecord>,
    pub(in crate::pipeline) outputs: SealedOutputs,
}

impl VariantOutcome {
    /// A `mode = "stems"` variant, made in the main's writing pass.
    pub(super) fn of_stems(v: VariantPass, gain_db: f64) -> Result<VariantOutcome> {
        Ok(VariantOutcome {
            variant: v.variant,
            gain_db,
            iterations: 0,
            loudness: v.loudness,
            reduction: None,
            limiter: None,
            passes: Vec::new(),
            outputs: v.writers.seal()?,
        })
    }
}

/// What the main's passes leave for the remaster variants.
pub(super) struct MainResult<'a> {
    pub(super) gain_db: f64,
    /// The main's limiter margin under the ceiling at its last writing pass.
    pub(super) margin_db: Option<f64>,
    /// The analysis pass's linked stem contributions, where they were spilled.
    pub(super) stem_spill: Option<&'a Spill>,
}

/// The `mode = "remaster"` variants, each with its own limiter (and its own G for
/// `loudness = "own"`), added to `outcome.variants` in session order. Where the analysis pass
/// spilled the stems' contributions, they are replayed on the host (the CPU engine: decoding, EQ and
/// process chains ran once, on the render's engine, for the main and every variant); without that
/// spill (no loudness target, `--spill bus|none`, no room), each remaster decodes and filters the
/// stems again on the render's engine.
pub(super) fn remaster_variants(
    runner: &mut Runner<'_>,
    out_plan: &RenderPlan,
    variant_files: &[VariantFiles],
    main: &MainResult<'_>,
    outcome: &mut PassesOutcome,
    spill_dir: &Path,
) -> Result<()> {
    let session = runner.session;
    let mut host = Runner {
        session,
        engine: Box::new(crate::cpu::engine::CpuEngine::new()),
        progress: runner.progress,
        passes: Vec::new(),
        // The proof page shows the main: a variant's passes gather no curves.
        proof: false,
        measures: None,
        reference_note: None,
        // A remaster's G is the main's under dialogue gating (`loudness = "own"` is refused there).
        normalise: None,
        dialogue_tap: None,
        cached: runner.cached,
    };
    for vf in variant_files {
        let variant = &session.variants[vf.variant];
        if variant.mode != VariantMode::Remaster {
            continue;
        }
        runner.note(&format!("stemforge: variant `{}` (remaster)", variant.name));
        let weights: Vec<f32> = out_plan.stems.iter().map(|sp| variant.weight(sp.index)).collect();
        let r: &mut Runner<'_> = if main.stem_spill.is_some() { &mut host } else { runner };
        let first_pass = r.passes.len();
        let made = remaster(r, out_plan, vf, &weights, main, spill_dir)?;
        let passes = r.passes.split_off(first_pass);
        outcome.variants.push(VariantOutcome { passes, ..made });
    }
    outcome.variants.sort_by_key(|v| v.variant);
    Ok(())
}

/// One remaster variant (`remaster_variants`).
fn remaster(
    runner: &mut Runner<'_>,
    out_plan: &RenderPlan,
    vf: &VariantFiles,
    weights: &[f32],
    main: &MainResult<'_>,
    spill_dir: &Path,
) -> Result<VariantOutcome> {
    let session = runner.session;
    let variant = &session.variants[vf.variant];
    let master = session.master.as_ref();
    let replay = main.stem_spill;
    // The stems are delivered only for its stem files: a master-only remaster replays the stems'
    // contributions (level-matched) or its own bus spill (`own`) and delivers the master alone.
    let stems = vf.files.iter().any(|f| f.stem_index.is_some());
    let made = |result: PassResult, gain_db, iterations, limiter| {
        Ok::<_, Error>(VariantOutcome {
            variant: vf.variant,
            gain_db,
            iterations,
            loudness: result.loudness,
            reduction: master.map(|_| result.reduction),
            limiter,
            passes: Vec::new(),
            outputs: result.writers.seal()?,
        })
    };
    let target = master.and_then(|m| m.target_lufs).filter(|_| variant.loudness == VariantLoudness::Own);
    let Some(target) = target else {
        // Level-matched: the main's G, the limiter starting from the main's aim.
        let mut aim = main.margin_db.and_then(|m| Aim::at_margin(session, m));
        let params = PassParams { gain_db: main.gain_db, limit: master.is_some(), stems };
        let kind = if master.is_some() { "limiter" } else { "sum" };
        let replay = replay.map(|spill| Replay { spill, stems: true });
        let result = write_pass(runner, out_plan, aim.as_mut(), params, kind, &vf.files, &[], replay, Some(weights))?;
        let limiter = aim.as_ref().map(Aim::report);
        return made(result, main.gain_db, 0, limiter);
    };
    // Its own G: the variant's bus (the spilled contributions, weighed and summed) metered and
    // spilled for the solves, then the same search as the main's.
    let mut first = main.gain_db;
    let bus = match replay {
        Some(stems) => {
            let mut meter = LoudnessMeter::with_scope(
                out_plan.bus_channels(),
                out_plan.sample_rate,
                Some(out_plan.layout),
                MeterScope::Integrated,
            )?;
            // Stem-major, as the spill holds them: each bus channel sums the stems in plan order.
            let ch = out_plan.bus_channels();
            let routes: Vec<(usize, usize, f32)> =
                weights.iter().enumerate().flat_map(|(s, &w)| (0..ch).map(move |c| (s * ch + c, c, w))).collect();
            match mix_spill(stems, &routes, ch, spill_dir, &mut meter) {
                Ok(bus) => {
                    let l = meter.result().integrated_lufs;
                    unmeasurable_bus(session, out_plan, l, target)?;
                    first = target - l;
                    Some(bus)
                }
                Err(e) => {
                    runner.note(&format!(
                        "stemforge: note: cannot spill variant `{}`'s bus ({e}); its G is found by repeating its writing pass",
                        variant.name
                    ));
                    None
                }
            }
        }
        None => None,
    };
    let mut aim = Aim::new(session).ok_or_else(|| Error::Internal("a loudness target without a master".into()))?;
    let mut search = Search {
        runner,
        spill: bus,
        stem_spill: replay,
        replay: replay.is_some(),
        plan: out_plan,
        files: &vf.files,
        variants: &[],
        weights: Some(weights),
        stems,
        aim: &mut aim,
        target,
    };
    let reached = reach_target(&mut search, target, first)?;
    let (written, limiter) = reached.written;
    made(written, reached.gain_db, reached.iterations, Some(limiter))
}
