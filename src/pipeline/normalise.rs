//! What a render normalises (design/deliverables.md "Delivery profiles"): the programme's
//! integrated loudness, or its loudness gated on its dialogue stems, and each pass's reading of it.
//!
//! Dialogue gating listens to the dialogue stems' contribution to the bus (after their EQ, chain,
//! gain, routing and the bus EQ), metered in the analysis pass beside the bus. Which 400 ms blocks
//! are dialogue is decided on that contribution at the render's G, before the limiter: the
//! relative gate (I_d − 15 LU) does not move with G, the absolute one (−70 LUFS) does, and gating
//! before the limiter keeps the same blocks for every pass that tries a G. The programme's blocks
//! are read on what each pass delivers (the limited master), so the reading is the file's.

use crate::error::{Error, Result};
use crate::meter::{DialogueLoudness, LoudnessStats, dialogue_gated};
pub use crate::model::LoudnessRule as Rule;
use crate::model::{Profile, ProgrammeFallback};
use crate::report::render::NormalisationReport;
use crate::session::{DIALOGUE_ROLE, Session};

/// The dialogue stems' 400 ms block energies from the analysis pass (before G), from frame 0.
#[derive(Debug, Clone)]
pub struct DialogueGate {
    energies: Vec<f64>,
}

impl DialogueGate {
    pub fn new(energies: Vec<f64>) -> DialogueGate {
        DialogueGate { energies }
    }

    /// Dialogue gating of `programme` (the master's block energies) with the dialogue at
    /// `gain_db`, the f32 gain the engines apply.
    pub fn read(&self, programme: &[f64], gain_db: f64) -> DialogueLoudness {
        let g = 10f64.powf(gain_db / 20.0) as f32 as f64;
        let scaled: Vec<f64> = self.energies.iter().map(|e| e * g * g).collect();
        dialogue_gated(&scaled, programme)
    }
}

/// The render's normalisation: its rule, its target, and how passes read it.
#[derive(Debug, Clone)]
pub struct Normalise {
    pub rule: Rule,
    pub target_lufs: f64,
    /// The dialogue stems' gate, on a session that gates on dialogue (whatever the rule: under
    /// the programme rule the report still gives the dialogue reading).
    pub gate: Option<DialogueGate>,
    /// The dialogue at G = 0 as the analysis pass read it.
    pub analysis: Option<DialogueLoudness>,
}

impl Normalise {
    /// The programme rule at `target_lufs`.
    pub fn programme(target_lufs: f64) -> Self {
        Normalise { rule: Rule::Programme, target_lufs, gate: None, analysis: None }
    }

    /// The rule for `session` (target `target_lufs`), from the analysis pass's readings: the bus's
    /// block energies and the dialogue stems' (None when the session does not gate on dialogue).
    pub fn decide(
        session: &Session,
        target_lufs: f64,
        bus: Option<&[f64]>,
        dialogue: Option<Vec<f64>>,
    ) -> Result<Self> {
        let Some(energies) = dialogue else { return Ok(Self::programme(target_lufs)) };
        let bus = bus.ok_or_else(|| Error::Internal("dialogue gating without the bus's block energies".into()))?;
        let gate = DialogueGate::new(energies);
        let at_zero = gate.read(bus, 0.0);
        let fallback: Option<ProgrammeFallback> = session
            .master
            .as_ref()
            .and_then(|m| m.profile.as_deref())
            .and_then(Profile::named)
            .and_then(|p| p.fallback);
        // No dialogue block at all reads as 0 %: the programme rule (the profile's fallback
        // target where it has one).
        let silent = at_zero.dialogue_gated_lufs.is_none();
        let (rule, target_lufs) = match fallback {
            Some(f) if silent || at_zero.dialogue_percent < f.below_percent => {
                (Rule::ProgrammeSparseDialogue, f.target_lufs)
            }
            None if silent => (Rule::Programme, target_lufs),
            _ => (Rule::Dialogue, target_lufs),
        };
        Ok(Normalise { rule, target_lufs, gate: Some(gate), analysis: Some(at_zero) })
    }

    /// Whether passes must keep the master's block energies (`LoudnessMeter::keep_blocks`).
    pub fn needs_blocks(&self) -> bool {
        self.gate.is_some()
    }

    /// What the rule reads of a master at `gain_db`: its integrated loudness, or its dialogue-gated
    /// loudness from its block energies (`blocks`).
    pub fn read(&self, stats: &LoudnessStats, blocks: Option<&[f64]>, gain_db: f64) -> Result<f64> {
        match (self.rule, &self.gate) {
            (Rule::Dialogue, Some(gate)) => {
                let blocks =
                    blocks.ok_or_else(|| Error::Internal("a pass without the master's block energies".into()))?;
                Ok(gate.read(blocks, gain_db).dialogue_gated_lufs.unwrap_or(f64::NEG_INFINITY))
            }
            _ => Ok(stats.integrated_lufs),
        }
    }

    /// The dialogue reading of a master at `gain_db` from its block energies (dialogue profiles).
    pub fn dialogue(&self, blocks: Option<&[f64]>, gain_db: f64) -> Option<DialogueLoudness> {
        Some(self.gate.as_ref()?.read(blocks?, gain_db))
    }
}

/// The plan-order indices of the stems dialogue gating listens to: the unmuted stems with role
/// "dialogue", when the session normalises dialogue.
pub fn dialogue_stems(session: &Session, plan_stems: impl Iterator<Item = usize>) -> Option<Vec<usize>> {
    session.master.as_ref().filter(|m| m.dialogue)?;
    Some(
        plan_stems
            .enumerate()
            .filter(|&(_, s)| session.stems[s].role.as_deref() == Some(DIALOGUE_ROLE))
            .map(|(i, _)| i)
            .collect(),
    )
}

/// The report's `normalisation` for a master written at `gain_db` (`stats`, `blocks` its
/// readings).
pub fn report(
    session: &Session,
    n: &Normalise,
    stats: &LoudnessStats,
    blocks: Option<&[f64]>,
    gain_db: f64,
) -> Result<NormalisationReport> {
    let dialogue = n.dialogue(blocks, gain_db);
    let gated = n.gate.is_some();
    Ok(NormalisationReport {
        rule: n.rule,
        target_lufs: n.target_lufs,
        reading_lufs: n.read(stats, blocks, gain_db)?,
        programme_lufs: stats.integrated_lufs,
        dialogue,
        dialogue_stems: match gated {
            true => session
                .unmuted_stems()
                .filter(|(_, s)| s.role.as_deref() == Some(DIALOGUE_ROLE))
                .map(|(_, s)| s.name.clone())
                .collect(),
            false => Vec::new(),
        },
        method: gated.then_some(GATING_METHOD),
    })
}

/// What the report and the README say of how dialogue is found.
pub const GATING_METHOD: &str = "stem gating: dialogue blocks are those where the stems with role \"dialogue\" speak \
     (design/deliverables.md), not a speech classifier on the mix";
