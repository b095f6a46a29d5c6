//! FIR convolution y[n] = sum_k h[k] x[n-k] by uniformly partitioned FFT convolution (realfft).
//!
//! Uniformly partitioned overlap-save (UPOLS; Wefers, "Partitioned convolution algorithms for
//! real-time auralization", 2015, ch. 5): h is cut into P = ceil(len/B) partitions of B taps, each
//! zero-padded to 2B and transformed once in `new`. Every block, the last 2B input samples are
//! transformed into a frequency-domain delay line (FDL) of the last P input spectra; the output
//! spectrum is sum_p H_p X_{k-p}, and the second half of its inverse transform is the block's
//! linear convolution (the first half is circular wrap-around and is discarded).
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// One channel's streaming convolver. Partition size = `block`; FFT size = 2*block.
pub struct FirConvolve {
    block: usize,
    /// Number of partitions P.
    parts: usize,
    /// Bins per spectrum: block + 1.
    bins: usize,
    r2c: Arc<dyn RealToComplex<f32>>,
    c2r: Arc<dyn ComplexToReal<f32>>,
    /// P partition spectra, partition-major, already scaled by 1/(2B) (realfft's inverse is
    /// unnormalised), so the output needs no extra pass.
    h_spec: Vec<Complex<f32>>,
    /// Ring of the last P input spectra, slot-major; `head` is the newest.
    fdl: Vec<Complex<f32>>,
    head: usize,
    /// The previous block's input: the first half of the next FFT frame.
    prev: Vec<f32>,
    /// FFT input frame (2B); realfft uses it as scratch, so it is rebuilt every block.
    frame: Vec<f32>,
    acc: Vec<Complex<f32>>,
    out_frame: Vec<f32>,
    scratch_fwd: Vec<Complex<f32>>,
    scratch_inv: Vec<Complex<f32>>,
}

impl FirConvolve {
    /// Plans, spectra of `h` and scratch are built here; `process` allocates nothing.
    pub fn new(h: &[f32], block: usize) -> Self {
        assert!(block >= 1, "FirConvolve: block must be at least 1");
        let n = 2 * block;
        let bins = block + 1;
        let parts = h.len().div_ceil(block).max(1);
        let mut planner = RealFftPlanner::<f32>::new();
        let r2c = planner.plan_fft_forward(n);
        let c2r = planner.plan_fft_inverse(n);
        let mut scratch_fwd = r2c.make_scratch_vec();
        let scale = 1.0 / n as f32;
        let mut h_spec = vec![Complex::new(0.0f32, 0.0); parts * bins];
        let mut frame = vec![0.0f32; n];
        for (p, spec) in h_spec.chunks_exact_mut(bins).enumerate() {
            frame.fill(0.0);
            let taps = &h[(p * block).min(h.len())..((p + 1) * block).min(h.len())];
            for (f, &t) in frame.iter_mut().zip(taps) {
                *f = t * scale;
            }
            r2c.process_with_scratch(&mut frame, spec, &mut scratch_fwd)
                .expect("realfft: buffer sizes fixed in new");
        }
        FirConvolve {
            block,
            parts,
            bins,
            scratch_inv: c2r.make_scratch_vec(),
            r2c,
            c2r,
            h_spec,
            fdl: vec![Complex::new(0.0, 0.0); parts * bins],
            head: 0,
            prev: vec![0.0; block],
            frame,
            acc: vec![Complex::new(0.0, 0.0); bins],
            out_frame: vec![0.0; n],
            scratch_fwd,
        }
    }

    /// Frames per call.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Causal convolution of the next `block` input frames (history carried across calls, zero
    /// before the first call). `input.len() == output.len() == block`.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) {
        let b = self.block;
        assert!(input.len() == b && output.len() == b, "FirConvolve::process: block is {b}");
        let (first, second) = self.frame.split_at_mut(b);
        first.copy_from_slice(&self.prev);
        second.copy_from_slice(input);
        self.prev.copy_from_slice(input);

        self.head = if self.head + 1 == self.parts { 0 } else { self.head + 1 };
        let bins = self.bins;
        let newest = &mut self.fdl[self.head * bins..(self.head + 1) * bins];
        self.r2c
            .process_with_scratch(&mut self.frame, newest, &mut self.scratch_fwd)
            .expect("realfft: buffer sizes fixed in new");

        // acc = sum_p H_p X_{k-p}; partition 0 initialises the accumulator.
        for (p, hp) in self.h_spec.chunks_exact(bins).enumerate() {
            let slot = if p <= self.head { self.head - p } else { self.head + self.parts - p };
            let xp = &self.fdl[slot * bins..(slot + 1) * bins];
            if p == 0 {
                for (a, (h, x)) in self.acc.iter_mut().zip(hp.iter().zip(xp)) {
                    *a = cmul(*h, *x);
                }
            } else {
                for (a, (h, x)) in self.acc.iter_mut().zip(hp.iter().zip(xp)) {
                    *a = cmac(*a, *h, *x);
                }
            }
        }
        // A real signal's DC and Nyquist bins are real; realfft insists on it.
        self.acc[0].im = 0.0;
        self.acc[bins - 1].im = 0.0;
        self.c2r
            .process_with_scratch(&mut self.acc, &mut self.out_frame, &mut self.scratch_inv)
            .expect("realfft: buffer sizes fixed in new");
        output.copy_from_slice(&self.out_frame[b..]);
    }

    /// Forget all history (as if newly built).
    pub fn reset(&mut self) {
        self.fdl.fill(Complex::new(0.0, 0.0));
        self.prev.fill(0.0);
        self.head = 0;
    }
}

#[inline(always)]
fn cmul(h: Complex<f32>, x: Complex<f32>) -> Complex<f32> {
    Complex::new(h.re * x.re - h.im * x.im, h.re * x.im + h.im * x.re)
}

#[inline(always)]
fn cmac(a: Complex<f32>, h: Complex<f32>, x: Complex<f32>) -> Complex<f32> {
    Complex::new(a.re + (h.re * x.re - h.im * x.im), a.im + (h.re * x.im + h.im * x.re))
}
