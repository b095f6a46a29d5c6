//! Apply the linked limiter gain: y[ch][n] = x[ch][n] * g[n] (master and every stem output).
pub fn apply(signal: &mut [f32], gain: &[f32]) {
    for (s, g) in signal.iter_mut().zip(gain) {
        *s *= *g;
    }
}
