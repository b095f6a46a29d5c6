//! CPU twin of `shaders/transient.wgsl`: the `transient` stage (design/mastering.md), an attack /
//! sustain shaper, all channels linked, latency 0. Per frame n, in f32:
//!
//! - r[n] = max over channels of |x_c[n]| (the channel-linked rectified signal);
//! - two one-pole followers, each with its own attack and release: with α(ms) = exp(−1/(ms·fs/1000)),
//!   E[n] = α·E[n−1] + (1 − α)·r[n], α = α_attack when r[n] > E[n−1], else α_release; E[−1] = 0.
//!   The fast follower F attacks with `fast_ms` and releases with `slow_ms`; the slow follower S
//!   attacks with `slow_ms` and releases with `release_ms`;
//! - onset[n] = 1 − (S[n]/F[n])² when F[n] > S[n], else 0 (F leads S on an attack);
//!   tail[n] = 1 − (F[n]/S[n])² when S[n] > F[n], else 0 (F follows a decay down, S holds): both
//!   in 0..1, never both above 0. Squared (a ratio of energies): with the plain ratio the tail of a
//!   burst decaying with a 30 ms time constant moved by only −4.8 dB of −6 from 100 ms on; squared,
//!   −5.75 dB (tests/parity/transient.rs);
//! - gain[n] (dB) = attack_db·onset[n] + sustain_db·tail[n]; y_c[n] = x_c[n]·10^(gain[n]/20),
//!   10^(d/20) evaluated as `saturation::exp(d·ln 10/20)` (the shaders' `exp_poly`).
//!
//! The shader runs the same recurrence, serially over the block, one invocation per stem, with F
//! and S carried across blocks in a device buffer.
use crate::cpu::Stage;
use crate::cpu::saturation::exp;

pub struct Transient {
    /// (attack, release) coefficients of F and S, and 1 − each.
    coef: Coefficients,
    attack_db: f32,
    sustain_db: f32,
    fast: f32,
    slow: f32,
    /// The last block's gain per frame (linear), for `apply_envelope`.
    gains: Vec<f32>,
    /// The report's gain reduction since the reset, in f32 as the shader keeps it: the largest
    /// cut (dB, boosts count as 0) and the sum of the cuts, summed per block and then over blocks.
    most_cut: f32,
    sum_cut: f32,
}

/// The followers' coefficients and the gains' scale, computed once in f64 and rounded to f32,
/// shared by both engines.
#[derive(Debug, Clone, Copy)]
pub struct Coefficients {
    pub fast_attack: f32,
    pub fast_release: f32,
    pub slow_attack: f32,
    pub slow_release: f32,
    /// ln 10 / 20: dB to the exponent of e.
    pub db_to_nepers: f32,
}

impl Coefficients {
    pub fn new(p: &crate::model::Transient, sample_rate: u32) -> Coefficients {
        let alpha = |ms: f64| (-1.0 / (ms * sample_rate as f64 / 1000.0)).exp() as f32;
        Coefficients {
            fast_attack: alpha(p.fast_ms),
            fast_release: alpha(p.slow_ms),
            slow_attack: alpha(p.slow_ms),
            slow_release: alpha(p.release_ms),
            db_to_nepers: (std::f64::consts::LN_10 / 20.0) as f32,
        }
    }
}

/// One step of a follower: a·e + (1 − a)·r with a the attack coefficient when r rises above e.
#[inline(always)]
pub fn follow(e: f32, r: f32, attack: f32, release: f32) -> f32 {
    let a = if r > e { attack } else { release };
    a * e + (1.0 - a) * r
}

/// The gain in dB for followers F (`fast`) and S (`slow`).
#[inline(always)]
pub fn gain_db(fast: f32, slow: f32, attack_db: f32, sustain_db: f32) -> f32 {
    let onset = if fast > slow {
        let q = slow / fast;
        1.0 - q * q
    } else {
        0.0
    };
    let tail = if slow > fast {
        let q = fast / slow;
        1.0 - q * q
    } else {
        0.0
    };
    attack_db * onset + sustain_db * tail
}

/// The stage's gain reduction from its largest cut and the sum of its cuts over `frames` frames
/// (all channels take the same gain).
pub fn cut_reduction(most: f32, sum: f32, frames: u64) -> crate::engine::StageReduction {
    crate::engine::StageReduction { max_db: most as f64, mean_db: sum as f64 / frames.max(1) as f64 }
}

impl Transient {
    pub fn new(p: &crate::model::Transient, block: usize, sample_rate: u32) -> Transient {
        Transient {
            gains: vec![1.0; block],
            most_cut: 0.0,
            sum_cut: 0.0,
            coef: Coefficients::new(p, sample_rate),
            attack_db: p.attack_db as f32,
            sustain_db: p.sustain_db as f32,
            fast: 0.0,
            slow: 0.0,
        }
    }
}

impl Stage for Transient {
    fn latency(&self) -> usize {
        0
    }

    fn process(&mut self, block: &mut [Vec<f32>]) {
        let len = block.first().map_or(0, Vec::len);
        let c = self.coef;
        let (mut fast, mut slow) = (self.fast, self.slow);
        let (mut most, mut block_cut) = (self.most_cut, 0.0f32);
        for n in 0..len {
            let r = block.iter().fold(0.0f32, |m, ch| m.max(ch[n].abs()));
            fast = follow(fast, r, c.fast_attack, c.fast_release);
            slow = follow(slow, r, c.slow_attack, c.slow_release);
            let db = gain_db(fast, slow, self.attack_db, self.sustain_db);
            let cut = (-db).max(0.0);
            most = most.max(cut);
            block_cut += cut;
            let g = exp(db * c.db_to_nepers);
            self.gains[n] = g;
            for ch in block.iter_mut() {
                ch[n] *= g;
            }
        }
        (self.fast, self.slow) = (fast, slow);
        self.most_cut = most;
        self.sum_cut += block_cut;
    }

    fn reduction(&self, frames: u64) -> Option<crate::engine::StageReduction> {
        Some(cut_reduction(self.most_cut, self.sum_cut, frames))
    }

    fn state_bytes(&self) -> Option<Vec<u8>> {
        // The two followers (not the report's figures, which only count).
        Some([self.fast.to_bits().to_le_bytes(), self.slow.to_bits().to_le_bytes()].concat())
    }

    fn reset(&mut self) {
        (self.fast, self.slow) = (0.0, 0.0);
        (self.most_cut, self.sum_cut) = (0.0, 0.0);
    }

    fn apply_envelope(&self, part: &mut [Vec<f32>]) {
        for ch in part.iter_mut() {
            ch.iter_mut().zip(&self.gains).for_each(|(v, g)| *v *= g);
        }
    }
}
