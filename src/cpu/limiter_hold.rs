//! Look-ahead hold: A[n] = max a[k], k in [n-L+1, n] (causal form, a = 0 before the start), a
//! sliding-window maximum (van Herk / Gil-Werman on the GPU; a monotonic deque here).
//!
//! SKELETON: the contract for the DSP work and the GPU mirror.
pub struct LimiterHold {
    _private: (),
}

impl LimiterHold {
    pub fn new(lookahead: usize, block: usize) -> Self {
        let _ = (lookahead, block);
        unimplemented!("LimiterHold::new")
    }
    pub fn process(&mut self, atten_db: &[f32], held_db: &mut [f32]) {
        let _ = (atten_db, held_db);
        unimplemented!("LimiterHold::process")
    }
}
