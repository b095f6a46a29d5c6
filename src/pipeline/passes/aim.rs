//! The limiter's aim under the ceiling, moved from the reference meter's true-peak readings.
use super::*;

/// Bound on the solves that move the limiter's aim at one G (`next_margin_db` usually lands in
/// one: the reference meter's reading follows the aim dB for dB where the limiter works).
const MAX_AIM_SOLVES: u32 = 3;

/// Bound on the writing passes repeated to move the aim: one when the solve predicted the peak
/// (the usual case needs none), a second where there is no spill to predict it (the first aim
/// is a measured default) or the writing pass reads otherwise.
pub(super) const MAX_AIM_WRITES: u32 = 2;

/// How much lower than the limiter-level guarantee the aim may go when a master is resampled:
/// the overshoot resampling after a limiter can add (design/deliverables.md, up to a dB).
const RESAMPLED_AIM_ALLOWANCE_DB: f64 = 1.0;

/// The limiter's aim (design/mastering.md "The limiter uses its ceiling"): `margin_db` under the
/// ceiling, moved from the reference meter's true-peak readings, by solves where there is a spill,
/// else by repeating the writing pass, within the oversampling's `AimBounds`.
pub(in crate::pipeline) struct Aim {
    ceiling_dbtp: f64,
    bounds: Option<AimBounds>,
    margin_db: f64,
    /// Each solve that `reach_target` read: a writing pass at a solved G aims as that solve did.
    solved_at: Vec<SolvedAt>,
    /// Solves and writing passes run only to move the aim (the cost of the measured margin).
    moves: u32,
}

/// A solve `reach_target` read: its G, the aim's margin, and what it predicted of the peak.
#[derive(Debug, Clone, Copy)]
struct SolvedAt {
    gain_db: f64,
    margin_db: f64,
    true_peak_dbtp: f64,
    limited: bool,
}

impl Aim {
    pub(in crate::pipeline) fn new(session: &Session) -> Option<Aim> {
        let m = session.master.as_ref()?;
        let mut bounds = aim_bounds(m.oversampling as usize);
        // A master delivered at another rate can peak over the limited master it is resampled from
        // (design/deliverables.md "Output formats": up to a dB): the aim may go that much lower.
        if session.outputs.iter().any(|o| o.kind == OutputKind::Master && o.sample_rate.is_some())
            && let Some(b) = bounds.as_mut()
        {
            b.most_db += RESAMPLED_AIM_ALLOWANCE_DB;
        }
        Some(Aim {
            ceiling_dbtp: m.ceiling_dbtp,
            bounds,
            margin_db: bounds.map_or(0.0, |b| b.first_db),
            solved_at: Vec::new(),
            moves: 0,
        })
    }

    /// The aim `margin_db` under the session's ceiling (a segmented render's phases 3 and 4 take
    /// phase 2's).
    pub(in crate::pipeline) fn at_margin(session: &Session, margin_db: f64) -> Option<Aim> {
        Aim::new(session).map(|a| Aim { margin_db, ..a })
    }

    /// The margin under the ceiling now (dB).
    pub(in crate::pipeline) fn margin_db(&self) -> f64 {
        self.margin_db
    }

    /// The aim now (dBTP): the plan's limiter ceiling (`plan::with_aim`).
    pub(in crate::pipeline) fn aim(&self) -> f32 {
        aim_db(self.ceiling_dbtp, self.margin_db)
    }

    /// The loudness at `gain_db`, by `solve` (one solve at an aim); where it lands on `target`,
    /// the aim is solved there too: while the predicted true peak is outside the accepted band, the
    /// aim moves and G is solved again (at most MAX_AIM_SOLVES). The render's search and the
    /// segmented solve (`segments::analyse`) both find the aim this way.
    pub(in crate::pipeline) fn solve_at(
        &mut self,
        gain_db: f64,
        target: f64,
        mut solve: impl FnMut(f32) -> Result<Solved>,
    ) -> Result<f64> {
        let mut moves = 0;
        loop {
            let s = solve(self.aim())?;
            let landed = (s.lufs - target).abs() <= LOUDNESS_TOLERANCE_LU;
            if landed && moves < MAX_AIM_SOLVES && self.moved(s.true_peak_dbtp, s.limited) {
                moves += 1;
                continue;
            }
            let margin_db = self.margin_db;
            let (true_peak_dbtp, limited) = (s.true_peak_dbtp, s.limited);
            self.solved_at.push(SolvedAt { gain_db, margin_db, true_peak_dbtp, limited });
            return Ok(s.lufs);
        }
    }

    /// Before writing at `gain_db`: a G a solve read is written at the aim it was read at, and
    /// where that reading was outside the band (the search stopped out of reach, or short, where
    /// `solve_at` does not move the aim), the aim is solved at this G first, by `solve` when there
    /// is one (else the writing pass verifies it).
    pub(in crate::pipeline) fn settle(&mut self, gain_db: f64, solve: Option<&mut dyn FnMut(f32) -> Result<Solved>>) {
        let Some(at) = self.solved_at.iter().rev().find(|s| s.gain_db == gain_db).copied() else { return };
        self.margin_db = at.margin_db;
        let Some(solve) = solve else { return };
        let (mut true_peak_dbtp, mut limited) = (at.true_peak_dbtp, at.limited);
        let mut moves = 0;
        while moves < MAX_AIM_SOLVES && self.moved(true_peak_dbtp, limited) {
            moves += 1;
            match solve(self.aim()) {
                Ok(s) => (true_peak_dbtp, limited) = (s.true_peak_dbtp, s.limited),
                // The writing pass verifies the aim without the solve.
                Err(_) => return,
            }
        }
    }

    /// Whether a writing pass that read `true_peak_dbtp` would move the aim (and be repeated).
    pub(in crate::pipeline) fn would_move(&self, true_peak_dbtp: f64, limited: bool) -> bool {
        self.bounds
            .is_some_and(|b| next_margin_db(&b, self.ceiling_dbtp, self.margin_db, true_peak_dbtp, limited).is_some())
    }

    /// Move the aim after a pass read `true_peak_dbtp`: whether it moved.
    pub(super) fn moved(&mut self, true_peak_dbtp: f64, limited: bool) -> bool {
        let next =
            self.bounds.and_then(|b| next_margin_db(&b, self.ceiling_dbtp, self.margin_db, true_peak_dbtp, limited));
        if let Some(m) = next {
            self.margin_db = m;
            self.moves += 1;
        }
        next.is_some()
    }

    pub(in crate::pipeline) fn report(&self) -> LimiterAim {
        let aim = self.aim() as f64;
        LimiterAim { aim_dbtp: aim, margin_db: self.ceiling_dbtp - aim, aim_moves: self.moves }
    }
}
