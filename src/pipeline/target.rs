//! Reaching the loudness target: G is the root of L(G) − target, where L is the integrated loudness
//! after the limiter, found by bracketing (L is monotone non-decreasing in G: more gain into a
//! limiter with a fixed ceiling never makes the programme quieter) and regula falsi with the
//! Illinois modification and bisection safeguards; first on the spilled bus (`GainSearch::solve`),
//! then, only where the writing pass's own meter disagrees, on writing passes.
use crate::error::Result;

/// DESIGN.md DSP 6: G is corrected while the loudness misses the target by more than this; a
/// render that still misses it by more fails its spec (`render`).
pub const LOUDNESS_TOLERANCE_LU: f64 = 0.05;

/// A G further from 0 dB than this is not a mastering move but a broken input: 100 dB is the
/// whole range of a 16-bit file and more than any programme sits from its delivery loudness (film
/// dialogue at −40 LUFS to −14 is 26 dB). Positive G cannot get there (the −70 LUFS gate bounds
/// L from below, so G ≤ +65 dB); samples near f32::MAX read hundreds of LUFS and do. `render`
/// refuses such a G with the bus's reading instead of trying it.
pub const MAX_GAIN_DB: f64 = 100.0;

/// How far the search pushes G past where it started (target − L of the unlimited bus, the G at
/// which an unlimited programme would land) before it calls the target out of reach: there the
/// limiter takes some 30 dB off the peaks and what is left is close to a square wave. Measured on
/// the one-stem drum session of tests/solver.rs (−17.0 LUFS unlimited, ceiling −1 dBTP): −8 LUFS
/// is reached 25.6 dB past the start; at the bound (target −6) loudness reads −7.32 LUFS and rises
/// only 0.085 LU per further dB of G.
pub const MAX_PUSH_DB: f64 = 30.0;

/// Bound on the G values tried on the spill. A bracket is found in a few steps (the first step
/// is target − L, then secant steps over-shot by half, up to MAX_PUSH_DB: about 4 for the drum
/// session), and then Illinois converges superlinearly, with bisection at worst halving
/// 2·MAX_PUSH_DB of width each step: 16 halvings reach 1e-3 dB. 24 is that worst case with
/// room; a solve costs about 0.1 s per 80 s of stereo programme, so even 24 are a fraction of
/// one writing pass.
pub const MAX_SOLVES: u32 = 24;

/// Bound on writing passes. Each is a full render (stems decoded and filtered, every output
/// written), so they get fewer tries than solves: one when the solve landed and the writing pass
/// agrees (the usual case), a bracket of a few more where it does not (the GPU engine's f32
/// fallback, or no spill at all), which lands in 4–6 on the sessions of the tests.
pub const MAX_WRITES: u32 = 8;

/// A writing pass "agrees" with the solve when it reads within this of the solve's prediction
/// (the CPU engine's are ~1e-14 LU apart; the GPU engine's f32 fallback limiter a few hundredths).
const AGREE_LU: f64 = 0.01;

/// The bracket is closed when its width in G is below this (a discontinuity in L, which a
/// continuous chain should not have): nothing between its ends can be told apart on a 24-bit file.
const WIDTH_TOL_DB: f64 = 1e-3;

/// Over-shoot of a secant step while bracketing. L(G) is concave once the limiter grips (each dB
/// buys less than the last), so the secant through two quiet points under-estimates the G the
/// target needs; over-shooting by half brackets it in one step more often than not, and regula
/// falsi then closes in from both sides.
const EXPAND: f64 = 1.5;

/// What `reach_target` needs from a render: predict the loudness at a gain from the spill, and
/// run a writing pass at a gain.
pub trait GainSearch {
    /// Outputs of a writing pass, still under temporary names (dropping them deletes them).
    type Written;
    /// Integrated loudness the writing pass would deliver at `gain_db`, solved on the spill;
    /// `None` when there is no spill (it could not be made, or could not be read back).
    fn solve(&mut self, gain_db: f64) -> Option<f64>;
    /// Run the writing pass at `gain_db`: its integrated loudness by its own meter, and its outputs.
    fn write(&mut self, gain_db: f64) -> Result<(f64, Self::Written)>;
}

/// How the search ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The writing pass's meter reads within `LOUDNESS_TOLERANCE_LU` of the target.
    Reached,
    /// Loudness saturates short of the target within MAX_PUSH_DB of push: `gain_db` is where the
    /// loudest reading was (`too_loud`: the target is below the quietest reading instead).
    OutOfReach { too_loud: bool },
    /// The work bound ran out, or the bracket closed, before a reading landed: `gain_db` is the
    /// closest one.
    Missed,
}

/// Where `reach_target` stopped.
#[derive(Debug)]
pub struct Reached<W> {
    pub gain_db: f64,
    /// G values tried, by the solve or by a writing pass (the report's `iterations`).
    pub iterations: u32,
    /// Writing passes run: 1 unless a writing pass missed what the solve predicted.
    pub writes: u32,
    pub verdict: Verdict,
    /// The writing pass at `gain_db`.
    pub written: W,
}

#[derive(Debug, Clone, Copy)]
struct Point {
    g: f64,
    /// L(g) − target; −∞ for a reading under the gate.
    f: f64,
}

enum Step {
    Try(f64),
    /// Loudness saturates: the target is out of reach (`true`: too loud even at the floor).
    OutOfReach(bool),
    /// The bracket is narrower than WIDTH_TOL_DB and neither end landed.
    Closed,
}

/// The bracket on L(G) − target: the highest G read too quiet, the lowest read too loud.
struct Bracket {
    lo: Option<Point>,
    hi: Option<Point>,
    /// The point `lo` (or `hi`) replaced, for a secant while only one side is known.
    prev: Option<Point>,
    floor: f64,
    cap: f64,
    /// Illinois: the f values regula falsi uses, halved on the side that keeps its end twice.
    flo: f64,
    fhi: f64,
    last_side: i8,
    /// Bisection safeguard: the width when it last halved, and steps since.
    width_then: f64,
    stale: u32,
}

impl Bracket {
    fn new(start: f64) -> Bracket {
        Bracket {
            lo: None,
            hi: None,
            prev: None,
            floor: start - MAX_PUSH_DB,
            cap: start + MAX_PUSH_DB,
            flo: 0.0,
            fhi: 0.0,
            last_side: 0,
            width_then: f64::INFINITY,
            stale: 0,
        }
    }

    fn add(&mut self, p: Point) {
        // NaN reads as too quiet: it can only come from a reading under the gate here.
        if p.f > 0.0 {
            if self.hi.is_none_or(|h| p.g < h.g) {
                if self.lo.is_none() {
                    self.prev = self.hi;
                }
                self.hi = Some(p);
                self.fhi = p.f;
                if self.last_side == 1 {
                    self.flo *= 0.5;
                }
                self.last_side = 1;
            }
        } else if self.lo.is_none_or(|l| p.g > l.g) {
            if self.hi.is_none() {
                self.prev = self.lo;
            }
            self.lo = Some(p);
            self.flo = p.f;
            if self.last_side == -1 {
                self.fhi *= 0.5;
            }
            self.last_side = -1;
        }
        if let (Some(l), Some(h)) = (self.lo, self.hi) {
            let w = h.g - l.g;
            if w <= 0.5 * self.width_then {
                self.width_then = w;
                self.stale = 0;
            } else {
                self.stale += 1;
            }
        }
    }

    fn next(&self) -> Step {
        match (self.lo, self.hi) {
            (Some(l), Some(h)) => {
                let w = h.g - l.g;
                if w < WIDTH_TOL_DB {
                    return Step::Closed;
                }
                let mid = 0.5 * (l.g + h.g);
                // Regula falsi with the Illinois weights; bisection when it would leave the
                // bracket's inner part, when a reading is under the gate, or when three steps in
                // a row did not halve the bracket (Brent's safeguard, in its simplest form).
                let g = l.g + w * (-self.flo) / (self.fhi - self.flo);
                let inner = l.g + 0.01 * w..=h.g - 0.01 * w;
                if !g.is_finite() || !inner.contains(&g) || self.stale >= 3 { Step::Try(mid) } else { Step::Try(g) }
            }
            (Some(l), None) => self.expand(l, 1.0),
            (None, Some(h)) => self.expand(h, -1.0),
            (None, None) => Step::Try(0.5 * (self.floor + self.cap)),
        }
    }

    /// A step from `p` towards the target (`dir` +1: up), while only one side is known.
    fn expand(&self, p: Point, dir: f64) -> Step {
        let end = if dir > 0.0 { self.cap } else { self.floor };
        if (end - p.g) * dir <= 0.0 {
            return Step::OutOfReach(dir < 0.0);
        }
        let miss = -p.f * dir;
        let step = match self.prev {
            // The first step is the unlimited estimate, target − L, as DESIGN.md DSP 6 has it.
            None if miss.is_finite() => miss,
            Some(q) if miss.is_finite() && q.f.is_finite() => {
                let slope = (p.f - q.f) / (p.g - q.g);
                // L cannot rise faster than G (the limiter only takes away), so a slope over 1 is
                // rounding; a flat one means the search goes to the end of its range at once.
                if slope > 0.0 { EXPAND * miss / slope.min(1.0) } else { f64::INFINITY }
            }
            // A reading under the gate: double from the unlimited estimate's scale.
            _ => 2.0 * (p.g - self.prev.map_or(p.g - 6.0, |q| q.g)).abs().max(6.0),
        };
        let g = p.g + dir * step;
        Step::Try(if dir > 0.0 { g.min(self.cap) } else { g.max(self.floor) })
    }
}

/// Closest reading so far, for a search that stops without landing.
fn closer(best: Option<Point>, p: Point) -> bool {
    best.is_none_or(|b| p.f.abs() < b.f.abs() || b.f.is_nan())
}

fn landed(f: f64) -> bool {
    f.abs() <= LOUDNESS_TOLERANCE_LU
}

/// DESIGN.md DSP 6's loop, with the limiter passes moved onto the spill and the correction
/// bracketed: from `start` (target − L of the bus), solve L(G) = target on the spill until a
/// reading lands within `LOUDNESS_TOLERANCE_LU`, the target proves out of reach, or MAX_SOLVES
/// run out; then write once. Where that writing pass's meter still misses (an engine whose
/// writing pass reads differently from the solve, or no spill at all), the same bracketed search
/// runs on writing passes, at most MAX_WRITES of them. The writing pass returned is the one at
/// the returned G: the one that landed, else the closest (the loudest, when out of reach).
pub fn reach_target<S: GainSearch>(search: &mut S, target: f64, start: f64) -> Result<Reached<S::Written>> {
    let mut iterations = 0;
    let mut bracket = Bracket::new(start);
    let mut g = start;
    let mut best: Option<Point> = None;
    let mut verdict = Verdict::Missed;
    // Whether the writing pass's G is one the solve has measured (it tries nothing new).
    let mut measured = false;
    let mut solves = 0;
    let mut readings: Vec<(f64, f64)> = Vec::new();
    while solves < MAX_SOLVES {
        let Some(lufs) = search.solve(g) else { break };
        solves += 1;
        iterations += 1;
        measured = true;
        readings.push((g, lufs));
        let p = Point { g, f: lufs - target };
        if closer(best, p) {
            best = Some(p);
        }
        if landed(p.f) {
            verdict = Verdict::Reached;
            break;
        }
        bracket.add(p);
        match bracket.next() {
            Step::Try(next) => g = next,
            Step::OutOfReach(too_loud) => {
                verdict = Verdict::OutOfReach { too_loud };
                break;
            }
            Step::Closed => {
                // The ends are the readings nearest the step; keep the closer of them.
                best = [bracket.lo, bracket.hi]
                    .into_iter()
                    .flatten()
                    .fold(None, |b, p| if closer(b, p) { Some(p) } else { b });
                break;
            }
        }
    }
    if measured {
        // The write goes where the solve ended: its landing, the loudest reading when out of
        // reach (the bracket's end), else the closest.
        g = match verdict {
            Verdict::Reached => g,
            Verdict::OutOfReach { too_loud: false } => bracket.lo.map_or(g, |p| p.g),
            Verdict::OutOfReach { too_loud: true } => bracket.hi.map_or(g, |p| p.g),
            Verdict::Missed => best.map_or(g, |p| p.g),
        };
    }
    let solved = readings.iter().find(|(at, _)| *at == g).map(|&(_, l)| l);

    let (lufs, mut written) = search.write(g)?;
    let mut writes = 1;
    if !measured {
        iterations += 1;
    }
    let first = Point { g, f: lufs - target };
    // The solve's verdict stands when the writing pass agrees with it: a target out of reach on
    // the spill is out of reach here too, and no writing pass is repeated to show it again.
    if landed(first.f) {
        return Ok(Reached { gain_db: g, iterations, writes, verdict: Verdict::Reached, written });
    }
    // Likewise when the solve stopped short (work bound, a closed bracket) and the writing pass
    // reads what it predicted: bracketing writing passes would only repeat the solve, slower.
    let agrees = solved.is_some_and(|l| (l - lufs).abs() <= AGREE_LU);
    if matches!(verdict, Verdict::OutOfReach { .. }) || (verdict == Verdict::Missed && agrees) {
        return Ok(Reached { gain_db: g, iterations, writes, verdict, written });
    }
    let mut bracket = Bracket::new(start);
    let mut best = first;
    bracket.add(first);
    let mut verdict = Verdict::Missed;
    while writes < MAX_WRITES {
        g = match bracket.next() {
            Step::Try(next) => next,
            Step::OutOfReach(too_loud) => {
                verdict = Verdict::OutOfReach { too_loud };
                break;
            }
            Step::Closed => break,
        };
        let (lufs, w) = search.write(g)?;
        writes += 1;
        iterations += 1;
        let p = Point { g, f: lufs - target };
        if closer(Some(best), p) {
            best = p;
            // Dropping a pass's outputs deletes their temporary files.
            written = w;
        }
        if landed(p.f) {
            verdict = Verdict::Reached;
            break;
        }
        bracket.add(p);
    }
    Ok(Reached { gain_db: best.g, iterations, writes, verdict, written })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model chain: a limiter that takes loudness away as G grows and saturates at `ceiling_lufs`
    /// (a soft knee: L = c − softplus(c − (bus + G)), monotone, concave, flat at the top), as
    /// the solve sees it; the writing pass reads `offset` LU off the solve (the GPU's f32
    /// limiter, or rounding).
    struct Model {
        bus: f64,
        ceiling_lufs: f64,
        offset: f64,
        /// A writing pass that reads this whatever G is (it never lands).
        stuck: Option<f64>,
        spill: bool,
        solves: Vec<f64>,
        writes: Vec<f64>,
    }

    impl Model {
        fn new(bus: f64, ceiling_lufs: f64) -> Model {
            Model { bus, ceiling_lufs, offset: 0.0, stuck: None, spill: true, solves: vec![], writes: vec![] }
        }
        fn loudness(&self, gain_db: f64) -> f64 {
            // Knee width 4 LU: at ceiling − 8 LU the model limiter takes 0.01 LU, at the
            // unlimited estimate for a target 2 LU under it, 0.5 LU.
            let x = self.bus + gain_db;
            let k = 4.0;
            self.ceiling_lufs - k * ((self.ceiling_lufs - x) / k).exp().ln_1p()
        }
    }

    impl GainSearch for Model {
        type Written = f64;
        fn solve(&mut self, gain_db: f64) -> Option<f64> {
            self.spill.then(|| {
                self.solves.push(gain_db);
                self.loudness(gain_db)
            })
        }
        fn write(&mut self, gain_db: f64) -> Result<(f64, f64)> {
            self.writes.push(gain_db);
            let l = self.stuck.unwrap_or(self.loudness(gain_db) + self.offset);
            Ok((l, l))
        }
    }

    /// What the old loop did on the model: G += target − L, six values at most.
    fn creep(m: &Model, target: f64, mut g: f64) -> f64 {
        for _ in 0..6 {
            let l = m.loudness(g);
            if (l - target).abs() <= LOUDNESS_TOLERANCE_LU {
                return l;
            }
            g += target - l;
        }
        m.loudness(g)
    }

    #[test]
    fn solve_then_one_write() {
        let mut m = Model::new(-20.0, -9.0);
        let r = reach_target(&mut m, -14.0, 6.0).unwrap();
        assert_eq!(r.writes, 1, "one writing pass: {:?}", m.writes);
        assert!(m.solves.len() >= 2, "the model limiter takes loudness: the solve corrects G");
        assert_eq!(r.iterations as usize, m.solves.len(), "the writing pass tries no new G");
        assert_eq!(m.writes, vec![*m.solves.last().unwrap()]);
        assert_eq!(r.verdict, Verdict::Reached);
        assert!((r.written + 14.0).abs() <= LOUDNESS_TOLERANCE_LU);
    }

    /// The drum-stem case on the model: a target 0.5 LU under where loudness saturates, which
    /// the old creeping loop ends 0.32 LU short of after six values; the bracket lands.
    #[test]
    fn a_target_the_creeping_loop_missed_is_reached() {
        let mut m = Model::new(-20.0, -13.5);
        let (target, start) = (-14.0, 6.0);
        let crept = creep(&m, target, start);
        assert!(target - crept > 0.3, "the old loop lands at {crept:.3}: not the case in point");
        let r = reach_target(&mut m, target, start).unwrap();
        assert_eq!(r.verdict, Verdict::Reached, "solves at {:?}", m.solves);
        assert!((r.written - target).abs() <= LOUDNESS_TOLERANCE_LU, "landed at {}", r.written);
        assert_eq!(r.writes, 1);
        assert!(m.solves.len() <= 10, "{} solves: {:?}", m.solves.len(), m.solves);
    }

    /// A target above where loudness saturates: the search says so, writes once at its loudest
    /// reading, and that reading is the loudest the model reaches within the push bound.
    #[test]
    fn an_unreachable_target_reports_the_loudest_reachable() {
        let mut m = Model::new(-20.0, -9.0);
        let r = reach_target(&mut m, -6.0, 14.0).unwrap();
        assert_eq!(r.verdict, Verdict::OutOfReach { too_loud: false }, "solves at {:?}", m.solves);
        assert_eq!(r.writes, 1, "no writing pass repeats to show it again: {:?}", m.writes);
        let loudest = m.solves.iter().map(|&g| m.loudness(g)).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(r.written, loudest, "the writing pass is at the loudest reading");
        assert_eq!(r.gain_db, 14.0 + MAX_PUSH_DB, "at the end of the push");
        // Within the push bound the model comes within a few hundredths of its ceiling.
        assert!(r.written > -9.1 && r.written < -9.0, "{}", r.written);
        assert!(m.solves.len() <= 8, "{} solves: {:?}", m.solves.len(), m.solves);
    }

    #[test]
    fn a_writing_pass_that_misses_falls_back_to_another() {
        // The writing pass lands 0.12 LU below the solve: its meter catches it and G is corrected.
        let mut m = Model::new(-20.0, -9.0);
        m.offset = -0.12;
        let r = reach_target(&mut m, -14.0, 6.0).unwrap();
        assert_eq!(r.writes, 2, "writes at {:?}", m.writes);
        assert_eq!(r.iterations as usize, m.solves.len() + 1, "the second writing pass tries a new G");
        assert!(m.writes[1] > m.writes[0]);
        assert!((r.written + 14.0).abs() <= LOUDNESS_TOLERANCE_LU, "landed at {}", r.written);
        assert_eq!(r.gain_db, m.writes[1]);
    }

    /// No spill (`--spill none`, or a GPU engine whose spill failed): the writing passes bracket
    /// the target themselves, and reach what the creeping loop missed.
    #[test]
    fn without_a_spill_the_writing_passes_bracket() {
        let mut m = Model::new(-20.0, -13.5);
        m.spill = false;
        let r = reach_target(&mut m, -14.0, 6.0).unwrap();
        assert!(m.solves.is_empty());
        assert_eq!(r.verdict, Verdict::Reached, "writes at {:?}", m.writes);
        assert!(r.writes >= 2, "the model limiter takes loudness: {:?}", m.writes);
        assert!(r.writes <= MAX_WRITES);
        assert_eq!(r.iterations, r.writes);
        assert_eq!(r.gain_db, *m.writes.last().unwrap());
        assert!((r.written + 14.0).abs() <= LOUDNESS_TOLERANCE_LU);
        // And out of reach without a spill: the loudest writing pass is kept.
        let mut m = Model::new(-20.0, -9.0);
        m.spill = false;
        let r = reach_target(&mut m, -6.0, 14.0).unwrap();
        assert_eq!(r.verdict, Verdict::OutOfReach { too_loud: false }, "writes at {:?}", m.writes);
        assert!(r.writes <= MAX_WRITES);
        assert_eq!(r.written, m.loudness(r.gain_db));
        assert!(m.writes.iter().all(|&g| m.loudness(g) <= r.written));
    }

    #[test]
    fn the_work_bound_holds_across_solve_and_writes() {
        // A writing pass that never agrees with the solve: every G value tried counts, and the
        // search stops at MAX_SOLVES + MAX_WRITES at most, with the closest writing pass.
        let mut m = Model::new(-20.0, -9.0);
        m.stuck = Some(-15.0);
        let r = reach_target(&mut m, -14.0, 6.0).unwrap();
        assert_ne!(r.verdict, Verdict::Reached);
        assert!(m.writes.len() as u32 <= MAX_WRITES, "{:?}", m.writes);
        assert!(m.solves.len() as u32 <= MAX_SOLVES);
        assert_eq!(r.iterations as usize, m.solves.len() + m.writes.len() - 1);
        assert_eq!(r.written, -15.0);
    }

    /// Monotone but with a step (a reading that jumps over the tolerance band): the bracket
    /// closes to its width bound and the search stops with the closer end instead of looping.
    #[test]
    fn a_step_in_loudness_closes_the_bracket() {
        struct Step(Vec<f64>);
        impl GainSearch for Step {
            type Written = f64;
            fn solve(&mut self, g: f64) -> Option<f64> {
                self.0.push(g);
                Some(if g < 3.3 { -14.2 } else { -13.9 })
            }
            fn write(&mut self, g: f64) -> Result<(f64, f64)> {
                let l = if g < 3.3 { -14.2 } else { -13.9 };
                Ok((l, l))
            }
        }
        let mut s = Step(vec![]);
        let r = reach_target(&mut s, -14.0, 0.0).unwrap();
        assert_eq!(r.verdict, Verdict::Missed);
        // The closer end (-13.9 LUFS), just above the step.
        assert!(r.gain_db >= 3.3 && r.gain_db - 3.3 < 2.0 * WIDTH_TOL_DB, "{}", r.gain_db);
        assert!(s.0.len() < MAX_SOLVES as usize, "{} solves", s.0.len());
    }
}
