//! EQ bands (RBJ Audio-EQ-Cookbook) -> one linear- or minimum-phase FIR (user impulse-response
//! files are read by `io::fir_file`).
//!
//! Everything here runs once per render, in f64 (DESIGN.md "DSP" 2): the bands' cookbook biquads are
//! evaluated on the unit circle, multiplied into one target magnitude on a dense FFT grid, and turned
//! into a FIR by a zero-phase inverse FFT (linear phase) or through the real cepstrum (minimum
//! phase). Only the finished taps are rounded to f32, so both engines get the same table.
use std::f64::consts::PI;

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

use crate::model::{EqBand, Phase};

/// One second-order (or, with b2 = a2 = 0, first-order) section, normalised so that a0 = 1.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 3],
}

impl Biquad {
    fn new(b0: f64, b1: f64, b2: f64, a0: f64, a1: f64, a2: f64) -> Self {
        Biquad { b: [b0 / a0, b1 / a0, b2 / a0], a: [1.0, a1 / a0, a2 / a0] }
    }

    fn magnitude(&self, w: f64) -> f64 {
        self.magnitude_at(&UnitCircle::at(w))
    }

    /// |H(e^{jw})| = |b0 + b1 z^-1 + b2 z^-2| / |1 + a1 z^-1 + a2 z^-2| at z = e^{jw}.
    fn magnitude_at(&self, z: &UnitCircle) -> f64 {
        let UnitCircle { s1, c1, s2, c2 } = *z;
        let num_re = self.b[0] + self.b[1] * c1 + self.b[2] * c2;
        let num_im = -(self.b[1] * s1 + self.b[2] * s2);
        let den_re = self.a[0] + self.a[1] * c1 + self.a[2] * c2;
        let den_im = -(self.a[1] * s1 + self.a[2] * s2);
        (num_re.hypot(num_im)) / (den_re.hypot(den_im))
    }
}

/// sin and cos of w and 2w, shared by every section evaluated at one frequency.
struct UnitCircle {
    s1: f64,
    c1: f64,
    s2: f64,
    c2: f64,
}

impl UnitCircle {
    fn at(w: f64) -> Self {
        let (s1, c1) = w.sin_cos();
        let (s2, c2) = (2.0 * w).sin_cos();
        UnitCircle { s1, c1, s2, c2 }
    }
}

/// Cookbook intermediates for centre/corner frequency f0: (cos w0, alpha = sin w0 / (2Q)).
fn cos_alpha(fs: f64, f0: f64, q: f64) -> (f64, f64) {
    let w0 = 2.0 * PI * f0 / fs;
    (w0.cos(), w0.sin() / (2.0 * q))
}

/// RBJ cookbook peakingEQ.
fn peaking(fs: f64, f0: f64, gain_db: f64, q: f64) -> Biquad {
    let a = 10f64.powf(gain_db / 40.0);
    let (c, al) = cos_alpha(fs, f0, q);
    Biquad::new(1.0 + al * a, -2.0 * c, 1.0 - al * a, 1.0 + al / a, -2.0 * c, 1.0 - al / a)
}

/// RBJ cookbook lowShelf, alpha from Q (the cookbook's "Q" form of the shelf slope).
fn low_shelf(fs: f64, f0: f64, gain_db: f64, q: f64) -> Biquad {
    let a = 10f64.powf(gain_db / 40.0);
    let (c, al) = cos_alpha(fs, f0, q);
    let k = 2.0 * a.sqrt() * al;
    Biquad::new(
        a * ((a + 1.0) - (a - 1.0) * c + k),
        2.0 * a * ((a - 1.0) - (a + 1.0) * c),
        a * ((a + 1.0) - (a - 1.0) * c - k),
        (a + 1.0) + (a - 1.0) * c + k,
        -2.0 * ((a - 1.0) + (a + 1.0) * c),
        (a + 1.0) + (a - 1.0) * c - k,
    )
}

/// RBJ cookbook highShelf, alpha from Q.
fn high_shelf(fs: f64, f0: f64, gain_db: f64, q: f64) -> Biquad {
    let a = 10f64.powf(gain_db / 40.0);
    let (c, al) = cos_alpha(fs, f0, q);
    let k = 2.0 * a.sqrt() * al;
    Biquad::new(
        a * ((a + 1.0) + (a - 1.0) * c + k),
        -2.0 * a * ((a - 1.0) + (a + 1.0) * c),
        a * ((a + 1.0) + (a - 1.0) * c - k),
        (a + 1.0) - (a - 1.0) * c + k,
        2.0 * ((a - 1.0) - (a + 1.0) * c),
        (a + 1.0) - (a - 1.0) * c - k,
    )
}

/// RBJ cookbook LPF (second order).
fn lowpass2(fs: f64, f0: f64, q: f64) -> Biquad {
    let (c, al) = cos_alpha(fs, f0, q);
    Biquad::new((1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0, 1.0 + al, -2.0 * c, 1.0 - al)
}

/// RBJ cookbook HPF (second order).
fn highpass2(fs: f64, f0: f64, q: f64) -> Biquad {
    let (c, al) = cos_alpha(fs, f0, q);
    Biquad::new((1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0, 1.0 + al, -2.0 * c, 1.0 - al)
}

/// First-order section by the bilinear transform prewarped at f0, the same mapping the cookbook's
/// second-order sections use, so an odd-order cascade is the bilinear image of the analog
/// Butterworth prototype: LPF K/(K+1) (1 + z^-1) / (1 + (K-1)/(K+1) z^-1), K = tan(w0/2).
fn first_order(fs: f64, f0: f64, highpass: bool) -> Biquad {
    let k = (PI * f0 / fs).tan();
    if highpass {
        Biquad::new(1.0, -1.0, 0.0, 1.0 + k, k - 1.0, 0.0)
    } else {
        Biquad::new(k, k, 0.0, 1.0 + k, k - 1.0, 0.0)
    }
}

/// Q of the second-order sections of an order-`order` Butterworth filter: the pole pairs sit at
/// angles psi_k from the negative real axis, Q_k = 1 / (2 cos psi_k), with psi_k = (2k-1) pi / (2N)
/// for even N and psi_k = k pi / N for odd N (whose remaining real pole is the first-order section).
fn butterworth_qs(order: u32) -> Vec<f64> {
    let n = order as f64;
    (1..=order / 2)
        .map(|k| {
            let k = k as f64;
            let psi = if order.is_multiple_of(2) { (2.0 * k - 1.0) * PI / (2.0 * n) } else { k * PI / n };
            1.0 / (2.0 * psi.cos())
        })
        .collect()
}

/// The cookbook sections whose product is the band's response.
fn band_sections(band: &EqBand, fs: f64) -> Vec<Biquad> {
    match *band {
        EqBand::Peak { freq_hz, gain_db, q } => vec![peaking(fs, freq_hz, gain_db, q)],
        EqBand::LowShelf { freq_hz, gain_db, q } => vec![low_shelf(fs, freq_hz, gain_db, q)],
        EqBand::HighShelf { freq_hz, gain_db, q } => vec![high_shelf(fs, freq_hz, gain_db, q)],
        EqBand::Highpass { freq_hz, order } | EqBand::Lowpass { freq_hz, order } => {
            let hp = matches!(band, EqBand::Highpass { .. });
            let mut s: Vec<Biquad> = butterworth_qs(order)
                .into_iter()
                .map(|q| if hp { highpass2(fs, freq_hz, q) } else { lowpass2(fs, freq_hz, q) })
                .collect();
            if order % 2 == 1 {
                s.push(first_order(fs, freq_hz, hp));
            }
            s
        }
        EqBand::Notch { freq_hz, q } => {
            let (c, al) = cos_alpha(fs, freq_hz, q);
            vec![Biquad::new(1.0, -2.0 * c, 1.0, 1.0 + al, -2.0 * c, 1.0 - al)]
        }
        // Cookbook BPF "constant 0 dB peak gain".
        EqBand::Bandpass { freq_hz, q } => {
            let (c, al) = cos_alpha(fs, freq_hz, q);
            vec![Biquad::new(al, 0.0, -al, 1.0 + al, -2.0 * c, 1.0 - al)]
        }
        // Tilt: a cookbook low shelf of -g/2 and a high shelf of +g/2, both at freq_hz with
        // Q = 0.707 (the maximally flat shelf), giving -g/2 well below and +g/2 well above freq_hz.
        EqBand::Tilt { freq_hz, gain_db } => {
            vec![low_shelf(fs, freq_hz, -gain_db / 2.0, TILT_Q), high_shelf(fs, freq_hz, gain_db / 2.0, TILT_Q)]
        }
    }
}

/// Q of the two shelves that make a tilt band.
pub const TILT_Q: f64 = 0.707;

/// Magnitude (linear) of one band's cookbook response at `freq_hz`, for sample rate `fs`.
pub fn band_magnitude(band: &EqBand, fs: f64, freq_hz: f64) -> f64 {
    let w = 2.0 * PI * freq_hz / fs;
    band_sections(band, fs).iter().map(|s| s.magnitude(w)).product()
}

/// The product of the bands' magnitudes at `freq_hz`: the curve `design_eq` approximates.
pub fn bands_magnitude(bands: &[EqBand], fs: f64, freq_hz: f64) -> f64 {
    bands.iter().map(|b| band_magnitude(b, fs, freq_hz)).product()
}

/// Size of the frequency grid the target is sampled on: a power of two at least 16 * taps. The
/// linear-phase design needs the zero-phase response to have decayed inside half the grid; the
/// minimum-phase design needs the real cepstrum not to alias, and a deep null (a lowpass's zero at
/// Nyquist, a notch) makes the cepstrum long, so the grid is made generous: it costs milliseconds.
fn grid_size(taps: usize) -> usize {
    (16 * taps).next_power_of_two().max(1024)
}

/// Floor for the log magnitude in the cepstrum: exact zeros (a cookbook LPF at Nyquist, a notch on a
/// grid point) have no logarithm. -200 dB is far below f32 resolution, so the floor cannot be heard
/// or measured in the f32 taps, yet keeps the log spectrum (and so the cepstrum) bounded.
const LOG_FLOOR: f64 = 1e-10;

/// Taper fraction of the Tukey window that cuts the linear-phase response to `taps`: 0, i.e. a
/// plain (rectangular) truncation. MEASURED (8191 taps, 48 kHz, worst error 30 Hz - 18 kHz): the
/// zero-phase responses of realistic bands decay well inside the +-85 ms the taps span, so inside
/// the span a window only multiplies the response by its own curvature, which smears the
/// low-frequency corners. 80 Hz 2nd-order highpass: Kaiser beta 2 / 4 / 8 cost 0.04 / 0.10 / 0.21 dB
/// at 30 Hz, no taper 0.000 dB. Where the response has NOT decayed inside the span (high Q at low
/// frequency), plain truncation is the least-squares best and tapers measured worse again: 100 Hz
/// Q 8 peak 0.30 dB untapered, 0.33 / 0.42 / 0.76 dB with Tukey taper 0.05 / 0.2 / 0.5; 30 Hz
/// 8th-order highpass 0.14 dB untapered, 0.23 / 0.40 dB with taper 0.2 / 0.5. (Those two exceed
/// 0.1 dB whatever the window: at 8191 taps, linear phase holds 0.1 dB for bands whose response
/// decays within ~85 ms, i.e. roughly Q / f0 < 0.03 s; minimum phase, with twice the span, holds
/// both: 0.000 and 0.035 dB.) The realistic set of tests/eq.rs holds < 0.001 dB.
pub const LINEAR_TAPER: f64 = 0.0;

/// Taper fraction of the half Tukey window that cuts the minimum-phase response (energy at the
/// start; only the end could be tapered): 0 by the same measurement (realistic set 0.008 dB,
/// 8th-order 30 Hz highpass 0.035 dB untapered against 0.074 dB with taper 0.2).
pub const MINIMUM_TAPER: f64 = 0.0;

/// Tukey (tapered cosine) window at position r in [-1, 1]: 1 for |r| <= 1 - taper, then a
/// half-cosine down to 0 at |r| = 1 (taper 0: rectangular, 1: Hann).
pub fn tukey(r: f64, taper: f64) -> f64 {
    let a = r.abs();
    if a >= 1.0 {
        0.0
    } else if a <= 1.0 - taper {
        1.0
    } else {
        0.5 * (1.0 + (PI * (a - (1.0 - taper)) / taper).cos())
    }
}

/// The target magnitude on bins 0..=n/2 of an n-point grid.
fn target_grid(bands: &[EqBand], fs: f64, n: usize) -> Vec<f64> {
    let sections: Vec<Biquad> = bands.iter().flat_map(|b| band_sections(b, fs)).collect();
    (0..=n / 2)
        .map(|k| {
            let w = 2.0 * PI * k as f64 / n as f64;
            let z = UnitCircle::at(w);
            sections.iter().map(|s| s.magnitude_at(&z)).product()
        })
        .collect()
}

/// Design one FIR of `taps` (odd) whose magnitude is the product of the bands' magnitudes.
///
/// Linear phase: the zero-phase response (inverse FFT of the real, even target) is centred on tap
/// (taps-1)/2 and cut to `taps` (window: `LINEAR_TAPER`); latency `eq_latency` = (taps-1)/2.
/// Minimum phase: the real cepstrum of the log target is folded onto positive quefrencies
/// (c[0], 2c[1..n/2], c[n/2], 0...), exponentiated back to a spectrum and inverse transformed; the
/// result is cut to its first `taps` (window: `MINIMUM_TAPER`); latency 0.
pub fn design_eq(bands: &[EqBand], fs: f64, taps: usize, phase: Phase) -> Vec<f32> {
    let taper = match phase {
        Phase::Linear => LINEAR_TAPER,
        Phase::Minimum => MINIMUM_TAPER,
    };
    design_eq_tukey(bands, fs, taps, phase, taper)
}

/// `design_eq` with an explicit Tukey taper fraction: the window choice is made by measurement with
/// this (tests/eq.rs).
pub fn design_eq_tukey(bands: &[EqBand], fs: f64, taps: usize, phase: Phase, taper: f64) -> Vec<f32> {
    assert!(taps >= 1 && taps % 2 == 1, "design_eq: taps must be odd, got {taps}");
    let n = grid_size(taps);
    let mag = target_grid(bands, fs, n);
    let mut planner = RealFftPlanner::<f64>::new();
    let r2c = planner.plan_fft_forward(n);
    let c2r = planner.plan_fft_inverse(n);
    let mut spec: Vec<Complex<f64>> = mag.iter().map(|&m| Complex::new(m, 0.0)).collect();
    let mut time = vec![0.0f64; n];
    match phase {
        Phase::Linear => {
            c2r.process(&mut spec, &mut time).expect("realfft c2r: sizes fixed above");
            let half = (taps - 1) / 2;
            (0..taps)
                .map(|i| {
                    let k = i as isize - half as isize;
                    let v = time[k.rem_euclid(n as isize) as usize] / n as f64;
                    let r = if half == 0 { 0.0 } else { k as f64 / (half as f64 + 1.0) };
                    (v * tukey(r, taper)) as f32
                })
                .collect()
        }
        Phase::Minimum => {
            // Real cepstrum: c = IFFT(log|H|), real and even.
            for (s, &m) in spec.iter_mut().zip(&mag) {
                *s = Complex::new(m.max(LOG_FLOOR).ln(), 0.0);
            }
            c2r.process(&mut spec, &mut time).expect("realfft c2r: sizes fixed above");
            for t in time.iter_mut() {
                *t /= n as f64;
            }
            // Fold: keep c[0] and c[n/2], double the positive quefrencies, drop the negative ones.
            for t in time[1..n / 2].iter_mut() {
                *t *= 2.0;
            }
            for t in time[n / 2 + 1..].iter_mut() {
                *t = 0.0;
            }
            r2c.process(&mut time, &mut spec).expect("realfft r2c: sizes fixed above");
            for s in spec.iter_mut() {
                *s = s.exp();
            }
            // A real sequence's DC and Nyquist bins are real; drop the rounding residue there.
            spec[0].im = 0.0;
            spec[n / 2].im = 0.0;
            c2r.process(&mut spec, &mut time).expect("realfft c2r: sizes fixed above");
            (0..taps)
                .map(|i| {
                    let r = i as f64 / taps as f64;
                    (time[i] / n as f64 * tukey(r, taper)) as f32
                })
                .collect()
        }
    }
}

/// Frames of delay the designed FIR adds: (taps-1)/2 for linear phase, 0 for minimum phase.
pub fn eq_latency(taps: usize, phase: Phase) -> usize {
    match phase {
        Phase::Linear => (taps - 1) / 2,
        Phase::Minimum => 0,
    }
}
