//! Release: D[n] = max(A[n], rho * D[n-1]), D = 0 before the start; state carried across blocks.
//!
//! SKELETON: the contract for the DSP work and the GPU mirror.
pub struct LimiterRelease {
    _private: (),
}

impl LimiterRelease {
    pub fn new(rho: f32) -> Self {
        let _ = rho;
        unimplemented!("LimiterRelease::new")
    }
    pub fn process(&mut self, held_db: &[f32], released_db: &mut [f32]) {
        let _ = (held_db, released_db);
        unimplemented!("LimiterRelease::process")
    }
}
