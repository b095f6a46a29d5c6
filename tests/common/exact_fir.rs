//! The exact FIR reference both FIR test files check against: direct convolution in f64, and the
//! check that an f64-inside, f32-out convolution is that value rounded once to f32.

/// y[n] = sum_k h[k] x[n-k] in f64, the definition (DESIGN.md "DSP" 2).
pub fn direct(x: &[f32], h: &[f32]) -> Vec<f64> {
    (0..x.len())
        .map(|n| {
            let kmax = h.len().min(n + 1);
            (0..kmax).map(|k| h[k] as f64 * x[n - k] as f64).sum()
        })
        .collect()
}

/// Every output sample is the exact value `want` rounded to f32, or (a near-tie, where the f64
/// FFT's own error can tip the rounding) its neighbour: |y - want| < 1 ulp of f32, plus 1e-12 for
/// that error (about 1e-16 of full scale, which is more than an ulp only of near-silent samples).
/// An f32 FFT misses this by orders of magnitude on every quiet sample.
pub fn assert_f32_rounding_of(y: &[f32], want: &[f64], what: &str) {
    for (n, (&v, &w)) in y.iter().zip(want).enumerate() {
        let ulp = ((w as f32).abs().next_up() - (w as f32).abs()) as f64;
        assert!(
            (v as f64 - w).abs() < ulp + 1e-12,
            "{what}: frame {n}: {v:e} is not {w:e} rounded to f32 (ulp {ulp:e})"
        );
    }
}

/// (peak, rms) of a - b in dBFS (full scale 1.0), and the first frame of the peak.
pub fn residual_db(a: &[f32], b: &[f64]) -> (f64, f64, usize) {
    let mut peak = 0.0f64;
    let mut at = 0;
    let mut sum = 0.0;
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let d = (x as f64 - y).abs();
        sum += d * d;
        if d > peak {
            peak = d;
            at = i;
        }
    }
    (20.0 * peak.log10(), 10.0 * (sum / a.len() as f64).log10(), at)
}
