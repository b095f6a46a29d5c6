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
        self.spectrum(&mut acc, None);
        inverse(&*self.c2r, &mut acc, &mut self.out_frame, &mut self.scratch_inv, output);
        self.acc = acc;
    }

    /// `process` with the output written over the input (the input is taken in by `push` first).
    pub fn process_in_place(&mut self, signal: &mut [f32]) {
        self.push(signal);
        let mut acc = std::mem::take(&mut self.acc);
        self.spectrum(&mut acc, None);
        inverse(&*self.c2r, &mut acc, &mut self.out_frame, &mut self.scratch_inv, signal);
        self.acc = acc;
    }

    /// Bins of the spectra `accumulate` adds into: block + 1.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// First half of the split form of `process`: transform the next `block` input frames into the
    /// frequency-domain delay line. The split form lets an engine sum many convolutions in the
    /// frequency domain (stems into a bus) and pay one inverse FFT per output channel instead of
    /// one per input: `push` every input, `accumulate` each into its outputs' spectra, then
    /// `FirInverse::process` each output. With one input and weight 1 it gives `process`'s bits.
    pub fn push(&mut self, input: &[f32]) {
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

    /// acc += weight * (spectrum of this block's output), i.e. sum_p weight H_p X_{k-p}, for the
    /// input last `push`ed. `acc.len() == bins()`.
    pub fn accumulate(&self, weight: f32, acc: &mut [Complex<f64>]) {
        assert_eq!(acc.len(), self.bins, "FirConvolve::accumulate: {} bins", self.bins);
        self.spectrum(acc, Some(weight as f64));
    }

    /// `weight` None: acc = sum_p H_p X_{k-p}; Some(w): acc += w * H_p X_{k-p}, partition by
    /// partition (for w = 1 the very operations of the None case after its first partition).
    fn spectrum(&self, acc: &mut [Complex<f64>], weight: Option<f64>) {
        let bins = self.bins;
        for (p, hp) in self.h_spec.chunks_exact(bins).enumerate() {
            let slot = if p <= self.head { self.head - p } else { self.head + self.parts - p };
            let xp = &self.fdl[slot * bins..(slot + 1) * bins];
            match weight {
                None if p == 0 => {
                    for (a, (h, x)) in acc.iter_mut().zip(hp.iter().zip(xp)) {
                        *a = cmul(*h, *x);
                    }
                }
                None => {
                    for (a, (h, x)) in acc.iter_mut().zip(hp.iter().zip(xp)) {
                        *a = cmac(*a, *h, *x);
                    }
                }
                Some(w) => {
                    for (a, (h, x)) in acc.iter_mut().zip(hp.iter().zip(xp)) {
                        let m = cmul(*h, *x);
                        *a = Complex::new(a.re + w * m.re, a.im + w * m.im);
                    }
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

/// Second half of the split form of `FirConvolve::process`: spectrum sum -> output block. Build one
/// per thread or output; `process` allocates nothing.
pub struct FirInverse {
    block: usize,
    c2r: Arc<dyn ComplexToReal<f64>>,
    out_frame: Vec<f64>,
    scratch: Vec<Complex<f64>>,
}

impl FirInverse {
    pub fn new(block: usize) -> Self {
        let c2r = RealFftPlanner::<f64>::new().plan_fft_inverse(2 * block);
        FirInverse { block, scratch: c2r.make_scratch_vec(), c2r, out_frame: vec![0.0; 2 * block] }
    }

    /// `output[..block]` from `acc` (block + 1 bins, summed by `FirConvolve::accumulate`); `acc` is
    /// used as scratch and must be cleared (or overwritten) before the next block's sums.
    pub fn process(&mut self, acc: &mut [Complex<f64>], output: &mut [f32]) {
        assert!(acc.len() == self.block + 1 && output.len() == self.block, "FirInverse::process: shape");
        inverse(&*self.c2r, acc, &mut self.out_frame, &mut self.scratch, output);
    }
}

#[inline(always)]
fn cmul(h: Complex<f64>, x: Complex<f64>) -> Complex<f64> {
    Complex::new(h.re * x.re - h.im * x.im, h.re * x.im + h.im * x.re)
}

#[inline(always)]
fn cmac(a: Complex<f64>, h: Complex<f64>, x: Complex<f64>) -> Complex<f64> {
    Complex::new(a.re + (h.re * x.re - h.im * x.im), a.im + (h.re * x.im + h.im * x.re))
}
