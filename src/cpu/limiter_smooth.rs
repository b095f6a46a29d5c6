//! Attack smoothing and conversion to a linear gain: S[n] = (1/L) sum_{j<L} D[n-j] as a window sum
//! per block (never a running prefix sum over the program), g[n] = 10^(-S[n]/20).
//!
//! At the start of each call the window sum is re-summed directly from the L-1 carried values, then
//! slid across the call in f64 (add the entering value, subtract the leaving one). Its rounding is
//! thus bounded by one call's worth of f64 steps (~1e-13 dB), never growing with the program's
//! length, unlike an f32 prefix sum whose error reaches tenths of a dB after an hour.
use std::f64::consts::LN_10;

pub struct LimiterSmooth {
    lookahead: usize,
    block: usize,
    /// The last L-1 values of D from the previous call, then this call's values.
    ext: Vec<f32>,
}

impl LimiterSmooth {
    pub fn new(lookahead: usize, block: usize) -> Self {
        assert!(lookahead >= 1, "LimiterSmooth: lookahead must be at least 1 frame");
        LimiterSmooth { lookahead, block, ext: vec![0.0; lookahead - 1 + block] }
    }

    /// `gain[n]` = 10^(-S[n]/20) for the frames of `released_db` (any length up to `block`).
    pub fn process(&mut self, released_db: &[f32], gain: &mut [f32]) {
        let len = released_db.len();
        assert!(len <= self.block && gain.len() == len, "LimiterSmooth::process: shape");
        let l = self.lookahead;
        let m = l - 1 + len;
        self.ext[l - 1..m].copy_from_slice(released_db);
        let mut sum: f64 = self.ext[..l - 1].iter().map(|&v| v as f64).sum();
        let inv_l = 1.0 / l as f64;
        // window of frame n: ext[n..n+L]; entering value ext[n+L-1], leaving value ext[n].
        for ((g, &enter), &leave) in gain.iter_mut().zip(&self.ext[l - 1..m]).zip(&self.ext[..len]) {
            sum += enter as f64;
            let s = sum * inv_l;
            *g = if s > 0.0 { (s * (-LN_10 / 20.0)).exp() as f32 } else { 1.0 };
            sum -= leave as f64;
        }
        self.ext.copy_within(len..m, 0);
    }

    /// Forget all history (as if newly built).
    pub fn reset(&mut self) {
        self.ext.fill(0.0);
    }
}
