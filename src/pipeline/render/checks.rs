//! The spec checks of what a render made beside the main's master: each variant's and the
//! fold-down's loudness, true peak and profile, and the reading of a master by the render's rule.
use super::*;

/// Each variant checked like the main (design/deliverables.md "Variants"): its true peak against the
/// ceiling, and a `loudness = "own"` remaster's loudness against the target; a problem is pushed on
/// `problems` (the render then exits 1 and publishes nothing). Returns the report's records.
pub(super) fn check_variants(
    session: &Session,
    made: &[VariantOutcome],
    problems: &mut Vec<String>,
) -> Vec<VariantRecord> {
    let master = session.master.as_ref();
    made.iter()
        .map(|v| {
            let variant = &session.variants[v.variant];
            let mut own = Vec::new();
            let after = v.loudness;
            let target = master.and_then(|m| m.target_lufs).filter(|_| variant.loudness == VariantLoudness::Own);
            let target = target.filter(|_| variant.mode == VariantMode::Remaster);
            if let Some(t) = target
                && (after.integrated_lufs - t).abs() > LOUDNESS_TOLERANCE_LU
            {
                own.push(format!(
                    "variant `{}`: integrated loudness {:.2} LUFS misses the target {t:.2} LUFS by more than \
                     {LOUDNESS_TOLERANCE_LU} LU (G = {:+.2} dB after {} value(s))",
                    variant.name, after.integrated_lufs, v.gain_db, v.iterations
                ));
            }
            if let Some(m) = master
                && after.true_peak_dbtp > m.ceiling_dbtp
            {
                own.push(match variant.mode {
                    VariantMode::Stems => format!(
                        "variant `{}` (mode = \"stems\"): true peak {:.2} dBTP is over the ceiling {:.2} dBTP: the \
                         main's limiter envelope does not hold the stems it keeps under the ceiling without the ones it \
                         mutes; use mode = \"remaster\" (its own limiter) for this variant",
                        variant.name, after.true_peak_dbtp, m.ceiling_dbtp
                    ),
                    VariantMode::Remaster => format!(
                        "variant `{}`: true peak {:.2} dBTP is over the ceiling {:.2} dBTP",
                        variant.name, after.true_peak_dbtp, m.ceiling_dbtp
                    ),
                });
            }
            problems.extend(own.iter().cloned());
            VariantRecord {
                name: variant.name.clone(),
                mode: variant.mode,
                loudness: (variant.mode == VariantMode::Remaster).then_some(variant.loudness),
                muted: session
                    .stems
                    .iter()
                    .enumerate()
                    .filter(|(i, s)| variant.mute[*i] && !s.mute)
                    .map(|(_, s)| s.name.clone())
                    .collect(),
                gain_offsets_db: session
                    .stems
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| variant.gain_db[*i] != 0.0)
                    .map(|(i, s)| (s.name.clone(), variant.gain_db[i]))
                    .collect(),
                master: OwnMaster {
                    gain_db: v.gain_db,
                    iterations: v.iterations,
                    loudness_after: after,
                    gain_reduction: v.reduction,
                    limiter: v.limiter,
                    passes: v.passes.clone(),
                    spec_met: own.is_empty(),
                    spec_problems: own,
                },
            }
        })
        .collect()
}

/// What a master's rule reads of it as written, to what target, and its profile's checks.
pub(super) struct Normalised {
    pub(super) target_lufs: Option<f64>,
    /// Its integrated loudness, or its dialogue-gated loudness (`pipeline::normalise`).
    pub(super) reading: f64,
    /// Which of the two, for messages.
    pub(super) reads: &'static str,
    pub(super) profile: Option<ProfileReport>,
}

/// `after` (a master as written) read by the render's rule `n` (None without a target: the
/// session's target, on its integrated loudness), and checked against the profile's QC.
pub(super) fn normalised(
    master: Option<&crate::session::Master>,
    n: Option<&crate::report::render::NormalisationReport>,
    after: &LoudnessStats,
) -> Normalised {
    let (target_lufs, reading) = match n {
        Some(n) => (Some(n.target_lufs), n.reading_lufs),
        None => (master.and_then(|m| m.target_lufs), after.integrated_lufs),
    };
    let reads = match n.map(|n| n.rule) {
        Some(Rule::Dialogue) => "dialogue-gated loudness",
        _ => "integrated loudness",
    };
    let profile = master.and_then(|m| m.profile.as_deref()).and_then(crate::model::Profile::named).map(|p| {
        let fallback = n.is_some_and(|n| n.rule == Rule::ProgrammeSparseDialogue);
        let checks = p.checks(reading, fallback, after.true_peak_dbtp, after.max_short_term_lufs);
        ProfileReport { profile: p, checks }
    });
    Normalised { target_lufs, reading, reads, profile }
}

/// The fold-down checked like a deliverable of its own (design/deliverables.md "Output formats"):
/// its loudness against the target, its true peak against the ceiling, the profile's checks on it
/// as written; each problem is pushed on `problems`. Returns the report's record.
pub(super) fn check_fold(session: &Session, f: &FoldOutcome, problems: &mut Vec<String>) -> FoldRecord {
    let master = session.master.as_ref();
    let after = f.loudness;
    let what = format!("the {} fold-down", layout_label(f.layout));
    let mut own = Vec::new();
    // The main's rule, read on the 2.0 as written.
    let Normalised { target_lufs, reading, reads, profile } = normalised(master, f.normalisation.as_ref(), &after);
    if let Some(t) = target_lufs
        && (reading - t).abs() > LOUDNESS_TOLERANCE_LU
    {
        let why = match f.verdict {
            Verdict::OutOfReach { too_loud: false } => " (out of reach at the ceiling: lower the target or raise it)",
            Verdict::OutOfReach { too_loud: true } => " (out of reach: too loud at the quietest G)",
            _ => "",
        };
        own.push(format!(
            "{what}: {reads} {:.2} LUFS misses the target {t:.2} LUFS by more than {LOUDNESS_TOLERANCE_LU} \
             LU (G = {:+.2} dB after {} value(s)){why}",
            reading, f.gain_db, f.iterations
        ));
    }
    if let Some(m) = master
        && after.true_peak_dbtp > m.ceiling_dbtp
    {
        own.push(format!(
            "{what}: true peak {:.2} dBTP is over the ceiling {:.2} dBTP",
            after.true_peak_dbtp, m.ceiling_dbtp
        ));
    }
    for c in profile.iter().flat_map(|p| &p.checks).filter(|c| !c.passed) {
        let p = &profile.as_ref().expect("checked").profile;
        if !(c.check == "true peak" && own.iter().any(|q| q.contains("true peak"))) {
            own.push(format!("{what}: profile {}: {}", p.name, c.failure()));
        }
    }
    problems.extend(own.iter().cloned());
    FoldRecord {
        layout: layout_label(f.layout),
        from: f.from.name(),
        matrix: "ITU-R BS.775",
        loudness_before: f.before,
        master: OwnMaster {
            gain_db: f.gain_db,
            iterations: f.iterations,
            loudness_after: after,
            gain_reduction: f.reduction,
            limiter: f.limiter,
            passes: f.passes.clone(),
            spec_met: own.is_empty(),
            spec_problems: own,
        },
        profile,
        normalisation: f.normalisation.clone(),
    }
}
