//! Apply the linked limiter gain: y[ch][n] = x[ch][n] * g[n] (master and every stem output); and
//! reduce a block's gains to the statistics the report's gain reduction needs (`gain_stats`).
use crate::engine::GainStats;

pub fn apply(signal: &mut [f32], gain: &[f32]) {
    for (s, g) in signal.iter_mut().zip(gain) {
        *s *= *g;
    }
}

/// The least gain (from 1, as the report's max reduction starts at 0 dB) and Σ log10(g) over
/// `gains`; twin of the `stats` entry point of shaders/limiter_apply.wgsl.
pub fn gain_stats(gains: &[f32]) -> GainStats {
    GainStats { least: gains.iter().fold(1.0f32, |m, &v| m.min(v)), sum_log10: sum_log10(gains), frames: gains.len() }
}

/// Σ log10(g) over limiter gains (in (0, 1]), as the logs of products of 16 gains: a libm log10
/// per frame was the output thread's costliest glue (about 3 % of a render's CPU time). A product
/// of 16 f64 factors is exact to ~2e-15 relative, and cannot underflow unless the gains are
/// below 1e-18 (-360 dB); such a group, or one holding a 0, is summed frame by frame.
pub fn sum_log10(gains: &[f32]) -> f64 {
    gains
        .chunks(16)
        .map(|c| {
            let p: f64 = c.iter().map(|&v| v as f64).product();
            if p >= 1e-290 { p.log10() } else { c.iter().map(|&v| (v as f64).log10()).sum() }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::sum_log10;

    /// Grouped into products, the sum of logs equals the frame-by-frame sum: on a limiter-like
    /// gain curve (unity stretches, reductions down to -60 dB, 8192-frame blocks) to 1e-12
    /// relative, and on gains so small that a product would underflow (summed frame by frame).
    #[test]
    fn grouped_log_sum_equals_the_per_frame_sum() {
        // Depths scattered over [0, 60) dB by a multiplicative (Weyl) sequence, a third at unity.
        let mut gains: Vec<f32> = (0..8192u64)
            .map(|i| {
                let u = (i.wrapping_mul(0x9E37_79B9) % 1_000_003) as f64 / 1_000_003.0;
                let depth_db = if (i / 700) % 3 == 0 { 0.0 } else { 60.0 * u };
                10f64.powf(-depth_db / 20.0) as f32
            })
            .collect();
        let per_frame: f64 = gains.iter().map(|&v| (v as f64).log10()).sum();
        let grouped = sum_log10(&gains);
        assert!(((grouped - per_frame) / per_frame).abs() < 1e-12, "{grouped} vs {per_frame}");
        gains[100..140].iter_mut().for_each(|v| *v = 1e-30);
        let per_frame: f64 = gains.iter().map(|&v| (v as f64).log10()).sum();
        let grouped = sum_log10(&gains);
        assert!(((grouped - per_frame) / per_frame).abs() < 1e-12, "tiny gains: {grouped} vs {per_frame}");
    }
}
