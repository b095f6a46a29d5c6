//! FIR convolution y[n] = sum_k h[k] x[n-k] by uniformly partitioned FFT convolution (realfft).
//!
//! SKELETON: the contract for the DSP work and the GPU mirror.

/// One channel's streaming convolver. Partition size = `block`; FFT size = 2*block.
pub struct FirConvolve {
    _private: (),
}

impl FirConvolve {
    /// Plans, spectra of `h` and scratch are built here; `process` allocates nothing.
    pub fn new(h: &[f32], block: usize) -> Self {
        let _ = (h, block);
        unimplemented!("FirConvolve::new")
    }
    /// Causal convolution of the next `block` input frames (history carried across calls, zero
    /// before the first call). `input.len() == output.len() == block`.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) {
        let _ = (input, output);
        unimplemented!("FirConvolve::process")
    }
}
