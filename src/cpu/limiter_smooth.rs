//! Attack smoothing and conversion to a linear gain: S[n] = (1/L) sum_{j<L} D[n-j] as a window sum
//! per block (never a running prefix sum over the program), g[n] = 10^(-S[n]/20).
//!
//! SKELETON: the contract for the DSP work and the GPU mirror.
pub struct LimiterSmooth {
    _private: (),
}

impl LimiterSmooth {
    pub fn new(lookahead: usize, block: usize) -> Self {
        let _ = (lookahead, block);
        unimplemented!("LimiterSmooth::new")
    }
    pub fn process(&mut self, released_db: &[f32], gain: &mut [f32]) {
        let _ = (released_db, gain);
        unimplemented!("LimiterSmooth::process")
    }
}
