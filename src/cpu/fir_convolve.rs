//! FIR convolution y[n] = sum_k h[k] x[n-k] by uniformly partitioned FFT convolution (realfft).
//!
//! f32 in and out, f64 inside (partition spectra, delay line, accumulation, inverse), rounded once
//! at the output: an f32 FFT of an 8191-tap EQ is about -134 dBFS off the exact convolution on
//! full-scale signals, above 1 LSB at 24 bits (-138.5 dBFS), so two engines that each round their
//! own f32 FFT could not keep integer outputs within 1 LSB (DESIGN.md "Parity contract"). In f64
//! the FFT's error is ~1e-15 of full scale, so the output is the exact convolution rounded to f32
//! (or, at a near-tie, its neighbour) whichever FFT computed it; realfft f64 costs about 1.5x f32.
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
    r2c: Arc<dyn RealToComplex<f64>>,
    c2r: Arc<dyn ComplexToReal<f64>>,
    /// P partition spectra, partition-major, already scaled by 1/(2B) (realfft's inverse is
    /// unnormalised), so the output needs no extra pass.
    h_spec: Vec<Complex<f64>>,
    /// Ring of the last P input spectra, slot-major; `head` is the newest.
    fdl: Vec<Complex<f64>>,
    head: usize,
    /// The previous block's input: the first half of the next FFT frame.
    prev: Vec<f32>,
    /// FFT input frame (2B); realfft uses it as scratch, so it is rebuilt every block.
    frame: Vec<f64>,
    acc: Vec<Complex<f64>>,
    out_frame: Vec<f64>,
    scratch_fwd: Vec<Complex<f64>>,
    scratch_inv: Vec<Complex<f64>>,
}

impl FirConvolve {
    /// Plans, spectra of `h` and scratch are built here; `process` allocates nothing.
    pub fn new(h: &[f32], block: usize) -> Self {
        assert!(block >= 1, "FirConvolve: block must be at least 1");
        let n = 2 * block;
        let bins = block + 1;
        let parts = h.len().div_ceil(block).max(1);
        let mut planner = RealFftPlanner::<f64>::new();
        let r2c = planner.plan_fft_forward(n);
        let c2r = planner.plan_fft_inverse(n);
        let mut scratch_fwd = r2c.make_scratch_vec();
        let scale = 1.0 / n as f64;
        let mut h_spec = vec![Complex::new(0.0f64, 0.0); parts * bins];
        let mut frame = vec![0.0f64; n];
        for (p, spec) in h_spec.chunks_exact_mut(bins).enumerate() {
            frame.fill(0.0);
            let taps = &h[(p * block).min(h.len())..((p + 1) * block).min(h.len())];
            for (f, &t) in frame.iter_mut().zip(taps) {
                *f = t as f64 * scale;
            }
            r2c.process_with_scratch(&mut frame, spec, &mut scratch_fwd).expect("realfft: buffer sizes fixed in new");
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
        self.push(input);
        let mut acc = std::mem::take(&mut self.acc);
        self.spectrum(&mut acc);
        inverse(&*self.c2r, &mut acc, &mut self.out_frame, &mut self.scratch_inv, output);
        self.acc = acc;
    }

    /// `process` with the output written over the input (the input is taken in by `push` first).
    pub fn process_in_place(&mut self, signal: &mut [f32]) {
        self.push(signal);
        let mut acc = std::mem::take(&mut self.acc);
        self.spectrum(&mut acc);
        inverse(&*self.c2r, &mut acc, &mut self.out_frame, &mut self.scratch_inv, signal);
        self.acc = acc;
    }

    /// Transform the next `block` input frames into the frequency-domain delay line.
    fn push(&mut self, input: &[f32]) {
        let b = self.block;
        assert_eq!(input.len(), b, "FirConvolve::push: block is {b}");
        let (first, second) = self.frame.split_at_mut(b);
        first.iter_mut().zip(&self.prev).for_each(|(f, &x)| *f = x as f64);
        second.iter_mut().zip(input).for_each(|(f, &x)| *f = x as f64);
        self.prev.copy_from_slice(input);
        self.head = if self.head + 1 == self.parts { 0 } else { self.head + 1 };
        let bins = self.bins;
        let newest = &mut self.fdl[self.head * bins..(self.head + 1) * bins];
        self.r2c
            .process_with_scratch(&mut self.frame, newest, &mut self.scratch_fwd)
            .expect("realfft: buffer sizes fixed in new");
    }

    /// acc = sum_p H_p X_{k-p}: this block's output spectrum, for the input last `push`ed.
    fn spectrum(&self, acc: &mut [Complex<f64>]) {
        let bins = self.bins;
        for (p, hp) in self.h_spec.chunks_exact(bins).enumerate() {
            let slot = if p <= self.head { self.head - p } else { self.head + self.parts - p };
            let xp = &self.fdl[slot * bins..(slot + 1) * bins];
            if p == 0 {
                for (a, (h, x)) in acc.iter_mut().zip(hp.iter().zip(xp)) {
                    *a = cmul(*h, *x);
                }
            } else {
                for (a, (h, x)) in acc.iter_mut().zip(hp.iter().zip(xp)) {
                    *a = cmac(*a, *h, *x);
                }
            }
        }
    }

    /// Forget all history (as if newly built).
    pub fn reset(&mut self) {
        self.fdl.fill(Complex::new(0.0, 0.0));
        self.prev.fill(0.0);
        self.head = 0;
    }
}

/// The inverse FFT of an accumulated spectrum, keeping the second half (overlap-save), rounded
/// once to f32.
fn inverse(
    c2r: &dyn ComplexToReal<f64>,
    acc: &mut [Complex<f64>],
    out_frame: &mut [f64],
    scratch: &mut [Complex<f64>],
    output: &mut [f32],
) {
    // A real signal's DC and Nyquist bins are real; realfft insists on it.
    let last = acc.len() - 1;
    acc[0].im = 0.0;
    acc[last].im = 0.0;
    c2r.process_with_scratch(acc, out_frame, scratch).expect("realfft: buffer sizes fixed in new");
    let kept = &out_frame[output.len()..];
    output.iter_mut().zip(kept).for_each(|(y, &v)| *y = v as f32);
}

#[inline(always)]
fn cmul(h: Complex<f64>, x: Complex<f64>) -> Complex<f64> {
    Complex::new(h.re * x.re - h.im * x.im, h.re * x.im + h.im * x.re)
}

#[inline(always)]
fn cmac(a: Complex<f64>, h: Complex<f64>, x: Complex<f64>) -> Complex<f64> {
    Complex::new(a.re + (h.re * x.re - h.im * x.im), a.im + (h.re * x.im + h.im * x.re))
}
