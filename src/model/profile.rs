//! Delivery profiles (design/deliverables.md, "Delivery profiles"): what a named spec normalises,
//! to what, its QC tolerance and ceiling, and the checks a render must pass to deliver to it.
use serde::Serialize;

/// What a profile's target applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalised {
    /// The programme's integrated loudness, BS.1770-4 gated.
    Programme,
    /// The programme's loudness gated on its dialogue stem (`meter::dialogue_gated`).
    Dialogue,
}

/// Which rule a render normalised by (the report's `normalisation.rule`), decided from its
/// profile and its analysis pass (`pipeline::normalise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoudnessRule {
    /// Integrated loudness (BS.1770-4, gated): every profile but the dialogue ones, and a
    /// dialogue profile on a session without a dialogue stem (ATSC A/85).
    Programme,
    /// Dialogue-gated loudness.
    Dialogue,
    /// Netflix: dialogue in under 15 % of the programme, so its programme loudness is normalised
    /// to the profile's programme target.
    ProgrammeSparseDialogue,
}

/// Where dialogue is too sparse to normalise on: Netflix's rule that a programme with dialogue in
/// under `below_percent` of it is normalised on its programme loudness instead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProgrammeFallback {
    pub below_percent: f64,
    pub target_lufs: f64,
    pub tolerance_lu: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub normalised: Normalised,
    pub target_lufs: f64,
    /// The QC window around the target, ± LU.
    pub tolerance_lu: f64,
    pub ceiling_dbtp: f64,
    /// EBU R128 s1: no 3 s short-term reading above this, LUFS.
    pub max_short_term_lufs: Option<f64>,
    /// `Dialogue` profiles: whether a session needs a stem with role "dialogue" (Netflix), or
    /// normalises its programme without one (ATSC A/85: "the anchor element" where there is one).
    pub needs_dialogue_stem: bool,
    /// Netflix: the programme rule where dialogue is under 15 % of the programme.
    pub fallback: Option<ProgrammeFallback>,
}

/// Every profile of the table, in its order.
pub const PROFILE_NAMES: [&str; 7] =
    ["ebu-r128", "ebu-r128-s1", "atsc-a85", "arib-tr-b32", "netflix", "streaming", "apple-music"];

impl Profile {
    /// The profile called `name`, as the table in design/deliverables.md defines it.
    pub fn named(name: &str) -> Option<Profile> {
        let p = |name, normalised, target_lufs, tolerance_lu, ceiling_dbtp, max_short_term_lufs| Profile {
            name,
            normalised,
            target_lufs,
            tolerance_lu,
            ceiling_dbtp,
            max_short_term_lufs,
            needs_dialogue_stem: false,
            fallback: None,
        };
        use Normalised::*;
        Some(match name {
            "ebu-r128" => p("ebu-r128", Programme, -23.0, 0.5, -1.0, None),
            "ebu-r128-s1" => p("ebu-r128-s1", Programme, -23.0, 0.5, -1.0, Some(-18.0)),
            "atsc-a85" => p("atsc-a85", Dialogue, -24.0, 2.0, -2.0, None),
            "arib-tr-b32" => p("arib-tr-b32", Programme, -24.0, 1.0, -1.0, None),
            "netflix" => Profile {
                needs_dialogue_stem: true,
                fallback: Some(ProgrammeFallback { below_percent: 15.0, target_lufs: -24.0, tolerance_lu: 2.0 }),
                ..p("netflix", Dialogue, -27.0, 2.0, -2.0, None)
            },
            "streaming" => p("streaming", Programme, -14.0, 1.0, -1.0, None),
            "apple-music" => p("apple-music", Programme, -16.0, 1.0, -1.0, None),
            _ => return None,
        })
    }

    /// The profile's checks on the master as delivered: loudness within the QC tolerance, true
    /// peak under the ceiling, and the profile's own (EBU R128 s1's max short-term).
    /// `loudness` is what the render normalised (`normalised`, or the programme under the
    /// fallback rule: `fallback` says so), read on the master as delivered.
    pub fn checks(
        &self,
        loudness: f64,
        fallback: bool,
        true_peak_dbtp: f64,
        max_short_term_lufs: f64,
    ) -> Vec<ProfileCheck> {
        let (target, tolerance) = match self.fallback.filter(|_| fallback) {
            Some(f) => (f.target_lufs, f.tolerance_lu),
            None => (self.target_lufs, self.tolerance_lu),
        };
        let mut out = vec![
            ProfileCheck::at_most("loudness (distance from the target)", (loudness - target).abs(), tolerance, "LU"),
            ProfileCheck::at_most("true peak", true_peak_dbtp, self.ceiling_dbtp, "dBTP"),
        ];
        if let Some(limit) = self.max_short_term_lufs {
            out.push(ProfileCheck::at_most("max short-term loudness", max_short_term_lufs, limit, "LUFS"));
        }
        out
    }
}

/// One check of a profile: the reading, its limit, and by how much it missed (0 when it passed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileCheck {
    pub check: &'static str,
    pub value: f64,
    pub limit: f64,
    pub unit: &'static str,
    pub passed: bool,
    pub over_by: f64,
}

impl ProfileCheck {
    fn at_most(check: &'static str, value: f64, limit: f64, unit: &'static str) -> ProfileCheck {
        // A reading that is not a number (silence) fails rather than passes unseen.
        let passed = value <= limit;
        ProfileCheck { check, value, limit, unit, passed, over_by: if passed { 0.0 } else { value - limit } }
    }

    /// "max short-term loudness -16.20 LUFS is over -18.00 LUFS by 1.80".
    pub fn failure(&self) -> String {
        format!("{} {:.2} {} is over {:.2} by {:.2}", self.check, self.value, self.unit, self.limit, self.over_by)
    }
}
