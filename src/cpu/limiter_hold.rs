//! Look-ahead hold: A[n] = max a[k], k in [n-L+1, n] (causal form, a = 0 before the start), a
//! sliding-window maximum (van Herk / Gil-Werman, the same algorithm as the GPU stage).
//!
//! van Herk (1992) / Gil & Werman (1993): cut the extended input (the last L-1 values of the previous
//! call, then this call's values) into segments of L; g = running max from each segment's start,
//! h = running max towards each segment's end. A window of L values starting at i covers the tail
//! of i's segment and the head of the next, so its max is max(h[i], g[i+L-1]): three branch-free
//! passes, about 3 comparisons per value whatever L is.
pub struct LimiterHold {
    lookahead: usize,
    block: usize,
    /// The last L-1 inputs of the previous call, then this call's inputs.
    ext: Vec<f32>,
    g: Vec<f32>,
    h: Vec<f32>,
}

impl LimiterHold {
    pub fn new(lookahead: usize, block: usize) -> Self {
        assert!(lookahead >= 1, "LimiterHold: lookahead must be at least 1 frame");
        let n = lookahead - 1 + block;
        LimiterHold { lookahead, block, ext: vec![0.0; n], g: vec![0.0; n], h: vec![0.0; n] }
    }

    /// `held_db[n]` = max of the last L values of `atten_db` up to n (any length up to `block`).
    pub fn process(&mut self, atten_db: &[f32], held_db: &mut [f32]) {
        let len = atten_db.len();
        assert!(len <= self.block && held_db.len() == len, "LimiterHold::process: shape");
        let l = self.lookahead;
        let m = l - 1 + len;
        self.ext[l - 1..m].copy_from_slice(atten_db);
        for ((seg, g), h) in self.ext[..m].chunks(l).zip(self.g[..m].chunks_mut(l)).zip(self.h[..m].chunks_mut(l)) {
            let mut run = 0.0f32;
            for (gv, &v) in g.iter_mut().zip(seg) {
                run = run.max(v);
                *gv = run;
            }
            run = 0.0;
            for (hv, &v) in h.iter_mut().zip(seg).rev() {
                run = run.max(v);
                *hv = run;
            }
        }
        for ((o, &hv), &gv) in held_db.iter_mut().zip(&self.h[..len]).zip(&self.g[l - 1..m]) {
            *o = hv.max(gv);
        }
        self.ext.copy_within(len..m, 0);
    }

    /// Forget all history (as if newly built).
    pub fn reset(&mut self) {
        self.ext.fill(0.0);
    }
}
