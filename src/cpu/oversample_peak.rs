//! Oversample by K with the polyphase table and reduce to the required attenuation per frame:
//! a[n] = max(0, 20*log10(max over channels and sub-samples |u|) - ceiling_db).
//!
//! Causal: the output for frame n comes out `table.latency` frames later (the interpolator needs
//! T/2 samples past n), the signal is zero before the first call, and the last T-1 input samples of
//! every channel are carried into the next call. The frames before the start (causal outputs
//! 0..latency) read the interpolated signal's pre-ringing, which is zero unless the program starts
//! loud; keeping them (rather than forcing a = 0 there) costs nothing and covers the inter-sample
//! overshoot a meter reads just before a program that starts at full scale.
use crate::dsp::oversampling::OversamplingTable;

/// Frames per register tile of the polyphase sum: 32 f32 accumulators stay in registers (eight
/// SSE or four AVX vectors), so each multiply-add costs one load of x and no load/store of the sum.
const TILE: usize = 32;

pub struct OversamplePeak {
    factor: usize,
    taps: usize,
    /// Phase-major, as `OversamplingTable::coeffs`.
    coeffs: Vec<f32>,
    latency: usize,
    channels: usize,
    block: usize,
    /// Per channel: the last T-1 input samples, then room for one block.
    hist: Vec<Vec<f32>>,
    /// max over channels and sub-samples of |u| for the frames of the current call.
    peak: Vec<f32>,
}

impl OversamplePeak {
    pub fn new(table: &OversamplingTable, channels: usize, block: usize) -> Self {
        let taps = table.taps_per_phase;
        assert!(taps >= 1 && table.coeffs.len() == table.factor * taps);
        assert!(table.latency < taps.max(1) || (taps == 1 && table.latency == 0));
        OversamplePeak {
            factor: table.factor,
            taps,
            coeffs: table.coeffs.clone(),
            latency: table.latency,
            channels,
            block,
            hist: vec![vec![0.0; taps - 1 + block]; channels],
            peak: vec![0.0; block],
        }
    }

    /// Frames by which `atten_db` lags the input.
    pub fn latency(&self) -> usize {
        self.latency
    }

    /// `x[ch]` holds `block` frames; writes `atten_db[..block]`, lagging the input by `table.latency`.
    /// (Any length up to `block` is accepted, the same for every channel and `atten_db`.)
    pub fn process(&mut self, x: &[&[f32]], ceiling_db: f32, atten_db: &mut [f32]) {
        let len = atten_db.len();
        assert!(len <= self.block && x.len() == self.channels, "OversamplePeak::process: shape");
        let t = self.taps;
        let peak = &mut self.peak[..len];
        peak.fill(0.0);
        for (buf, xc) in self.hist.iter_mut().zip(x) {
            assert_eq!(xc.len(), len, "OversamplePeak::process: channel length");
            buf[t - 1..t - 1 + len].copy_from_slice(xc);
            // Phase 0 is the unit impulse at m = latency: the input sample itself.
            let x0 = &buf[t - 1 - self.latency..t - 1 - self.latency + len];
            for (p, &v) in peak.iter_mut().zip(x0) {
                *p = p.max(v.abs());
            }
            for cj in self.coeffs.chunks_exact(t).skip(1) {
                phase_peak(cj, &buf[..t - 1 + len], peak);
            }
            buf.copy_within(len..len + t - 1, 0);
        }
        for (a, &p) in atten_db.iter_mut().zip(peak.iter()) {
            *a = (20.0 * p.log10() - ceiling_db).max(0.0);
        }
        let _ = self.factor;
    }

    /// Forget all history (as if newly built).
    pub fn reset(&mut self) {
        for h in &mut self.hist {
            h.fill(0.0);
        }
    }
}

/// peak[n] = max(peak[n], |sum_m c[m] * xs[T-1+n-m]|) for n in 0..peak.len(), where
/// xs.len() == T-1 + peak.len(). The sum over m runs in the same order (m = 0, 1, ...) for every
/// frame, tiled or not, so the result does not depend on the tiling.
#[inline]
fn phase_peak(c: &[f32], xs: &[f32], peak: &mut [f32]) {
    let t = c.len();
    let len = peak.len();
    let full = len / TILE * TILE;
    let (head, tail) = peak.split_at_mut(full);
    for (k, pk) in head.chunks_exact_mut(TILE).enumerate() {
        let n0 = k * TILE;
        let mut acc = [0.0f32; TILE];
        for (m, &cm) in c.iter().enumerate() {
            let w: &[f32; TILE] = xs[n0 + t - 1 - m..n0 + t - 1 - m + TILE].try_into().unwrap();
            for (a, &v) in acc.iter_mut().zip(w) {
                *a += cm * v;
            }
        }
        for (p, a) in pk.iter_mut().zip(acc) {
            *p = p.max(a.abs());
        }
    }
    for (i, p) in tail.iter_mut().enumerate() {
        let n = full + i;
        let mut a = 0.0f32;
        for (m, &cm) in c.iter().enumerate() {
            a += cm * xs[n + t - 1 - m];
        }
        *p = p.max(a.abs());
    }
}
