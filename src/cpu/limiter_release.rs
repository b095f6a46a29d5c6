//! Release: D[n] = max(A[n], rho * D[n-1]), D = 0 before the start; state carried across blocks.
//!
//! Sequential here, with the state in f64: an f32 recurrence rounds once per frame, so a release
//! k frames long drifts by up to k/2 ulp (~1e-3 dB worst case over a 60 ms release), where the
//! f64 state stays exact to the output's f32 rounding. The GPU evaluates the same recurrence as a
//! scan over the associative operator (a1,b1)∘(a2,b2) = (max(a2, b2*a1), b1*b2) (DESIGN.md "DSP" 6),
//! which rounds about log2(k) times: it differs from this reference only in rounding.
pub struct LimiterRelease {
    rho: f64,
    /// D[n-1] of the last frame processed.
    state: f64,
}

impl LimiterRelease {
    pub fn new(rho: f32) -> Self {
        assert!((0.0..1.0).contains(&rho), "LimiterRelease: rho must be in [0, 1), got {rho}");
        LimiterRelease { rho: rho as f64, state: 0.0 }
    }

    pub fn process(&mut self, held_db: &[f32], released_db: &mut [f32]) {
        assert_eq!(held_db.len(), released_db.len(), "LimiterRelease::process: shape");
        let rho = self.rho;
        let mut d = self.state;
        for (o, &a) in released_db.iter_mut().zip(held_db) {
            d = (a as f64).max(rho * d);
            *o = d as f32;
        }
        self.state = d;
    }

    /// The release state D of the last frame processed.
    pub fn state(&self) -> f64 {
        self.state
    }

    /// Forget all history (as if newly built).
    pub fn reset(&mut self) {
        self.state = 0.0;
    }
}
