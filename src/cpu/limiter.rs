//! The whole limiter gain computer (DESIGN.md "DSP" 6) as one streaming stage on the CPU:
//! oversample_peak -> limiter_hold -> limiter_release -> limiter_smooth, producing the linked gain
//! envelope g that `limiter_apply` multiplies into the master and every stem output.
//!
//! Latency. Let h = table.latency and L = lookahead. The DESIGN writes the limiter non-causally:
//! a[n] from the sub-samples of frame n, the hold A[n] = max a[n..=n+L-1] looking ahead, D and S
//! from A. Every stage here is causal instead:
//!   a_c[m] = a[m-h]                             (the interpolator needs T/2 = h samples past n)
//!   A_c[m] = max a_c[m-L+1..=m] = max a[m-h-L+1..=m-h] = A[m-h-L+1]
//!   D_c[m] = max(A_c[m], rho D_c[m-1]) = D[m-h-L+1],  S_c[m] = S[m-h-L+1],  g_c[m] = g[m-h-L+1]
//! so the gain output at causal frame m belongs to input frame n = m - latency, latency = h + L - 1.
//! D_c starts at m = 0 with D = 0 before it, i.e. D starts at n = -(h+L-1). For n < -(L-1), A[n]'s
//! window holds only a[k] with k < 0, which the DESIGN takes as 0, so D is still 0 at n = -(L-1):
//! the DESIGN's start "from n = -(L-1), D = 0 before" falls out, and the box S[0..] is full from
//! frame 0. (One refinement: a[k] for -h <= k < 0 is what the interpolator reads of the signal's
//! pre-ringing before frame 0, with silence before the start. It is 0 unless the program starts
//! loud, and then it is exactly the overshoot a meter reads just before frame 0; see oversample_peak.)
use crate::cpu::limiter_hold::LimiterHold;
use crate::cpu::limiter_release::LimiterRelease;
use crate::cpu::limiter_smooth::LimiterSmooth;
use crate::cpu::oversample_peak::OversamplePeak;
use crate::engine::LimiterPlan;

/// Internal margin (dB) between the user's true-peak ceiling and the ceiling the limiter aims at:
/// LimiterPlan.ceiling_db = ceiling_dbtp - TRUE_PEAK_MARGIN_DB. MEASURED: see below.
pub const TRUE_PEAK_MARGIN_DB: f32 = 0.2;

pub struct Limiter {
    peak: OversamplePeak,
    hold: LimiterHold,
    release: LimiterRelease,
    smooth: LimiterSmooth,
    ceiling_db: f32,
    latency: usize,
    block: usize,
    atten: Vec<f32>,
    held: Vec<f32>,
    released: Vec<f32>,
}

impl Limiter {
    pub fn new(plan: &LimiterPlan, channels: usize, block: usize) -> Self {
        let l = plan.lookahead.max(1);
        Limiter {
            peak: OversamplePeak::new(&plan.oversampling, channels, block),
            hold: LimiterHold::new(l, block),
            release: LimiterRelease::new(plan.rho),
            smooth: LimiterSmooth::new(l, block),
            ceiling_db: plan.ceiling_db,
            latency: plan.oversampling.latency + l - 1,
            block,
            atten: vec![0.0; block],
            held: vec![0.0; block],
            released: vec![0.0; block],
        }
    }

    /// Frames by which the gain lags the input: `gain[i]` of a call belongs to the input frame
    /// `latency` frames before the frame passed at the same position.
    pub fn latency(&self) -> usize {
        self.latency
    }

    /// Feed `x[ch]` (the same length, at most `block`, for every channel) and write the gain of the
    /// same number of frames, delayed by `latency()`. Flush with silence at the end of the program.
    pub fn process(&mut self, x: &[&[f32]], gain: &mut [f32]) {
        let len = gain.len();
        assert!(len <= self.block, "Limiter::process: {len} frames, block is {}", self.block);
        let (atten, held, released) =
            (&mut self.atten[..len], &mut self.held[..len], &mut self.released[..len]);
        self.peak.process(x, self.ceiling_db, atten);
        self.hold.process(atten, held);
        self.release.process(held, released);
        self.smooth.process(released, gain);
    }

    /// Forget all history (as if newly built).
    pub fn reset(&mut self) {
        self.peak.reset();
        self.hold.reset();
        self.release.reset();
        self.smooth.reset();
    }
}
