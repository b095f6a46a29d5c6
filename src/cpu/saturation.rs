//! CPU twin of `shaders/saturation.wgsl`: the `saturation` stage (design/mastering.md), harmonic
//! enhancement, anti-aliased by oversampling. Per channel, with the limiter's polyphase table
//! (`dsp::oversampling`: K phases c_j of T taps, phase 0 the unit impulse at tap T/2):
//!
//! 1. interpolate: u_j[p] = Σ_m c_j[m]·x[p − m], m = 0..T (sub-sample j of frame p − T/2);
//! 2. saturate: w_j[p] = tanh(g·u_j[p])·(1/g), g = 10^(drive_db/20) (`tanh` below, the shader's);
//! 3. decimate with the transpose of the interpolator (the same prototype at the K-times rate,
//!    every K-th sample kept, DC gain 1): y[p] = (w_0[p − (T/2 − 1)] + Σ_{j=1..K−1} Σ_m
//!    c_{K−j}[m]·w_j[p − m])·(1/K), which is frame p − (T − 1) (`resampling_latency`);
//! 4. mix: out[p] = mix·y[p] + (1 − mix)·x[p − (T − 1)].
//!
//! Without oversampling (K = 1): out = mix·tanh(g·x)/g + (1 − mix)·x, latency 0.
//! Sums run in the shader's order (m = 0, 1, ... within a phase, phases in increasing j), each
//! product rounded before its addition (no FMA), so the two engines differ by rounding alone.
use crate::cpu::Stage;
use crate::dsp::oversampling::{OversamplingTable, design_oversampling, resampling_latency};

pub struct Saturation {
    factor: usize,
    taps: usize,
    /// T − 1: frames of input (and of each saturated phase) carried across blocks.
    hist: usize,
    /// T/2: where phase 0's unit impulse sits.
    half: usize,
    coeffs: Vec<f32>,
    latency: usize,
    drive: f32,
    inv_drive: f32,
    mix: f32,
    dry: f32,
    inv_k: f32,
    block: usize,
    /// Per channel: T − 1 input frames, then the block.
    e: Vec<Vec<f32>>,
    /// Per channel and phase: T − 1 saturated sub-samples, then the block's.
    w: Vec<Vec<Vec<f32>>>,
    /// The decimator's sum over phases 1..K for one block.
    acc: Vec<f32>,
}

/// The host-side constants both engines use: (g, 1/g, mix, 1 − mix, 1/K), rounded once to f32.
pub fn constants(p: &crate::model::Saturation) -> (f32, f32, f32, f32, f32) {
    let g = 10f64.powf(p.drive_db / 20.0);
    (g as f32, (1.0 / g) as f32, p.mix as f32, (1.0 - p.mix) as f32, (1.0 / p.oversampling as f64) as f32)
}

impl Saturation {
    pub fn new(p: &crate::model::Saturation, block: usize) -> Saturation {
        let table = design_oversampling(p.oversampling);
        check_table(&table);
        let (drive, inv_drive, mix, dry, inv_k) = constants(p);
        let taps = table.taps_per_phase;
        Saturation {
            factor: table.factor,
            taps,
            hist: taps - 1,
            half: table.latency,
            latency: resampling_latency(&table),
            coeffs: table.coeffs,
            drive,
            inv_drive,
            mix,
            dry,
            inv_k,
            block,
            e: Vec::new(),
            w: Vec::new(),
            acc: Vec::new(),
        }
    }

    /// State for `channels` channels of up to `block` frames (allocates on the first block only).
    fn shape(&mut self, channels: usize, len: usize) {
        if self.factor == 1 || (self.e.len() == channels && len <= self.block) {
            return;
        }
        self.block = self.block.max(len);
        let n = self.hist + self.block;
        self.e.resize_with(channels, || vec![0.0; n]);
        self.w.resize_with(channels, || vec![vec![0.0; n]; self.factor]);
        self.e.iter_mut().for_each(|e| e.resize(n, 0.0));
        self.w.iter_mut().flatten().for_each(|w| w.resize(n, 0.0));
        self.acc.resize(self.block, 0.0);
    }
}

/// The table the stage is written for: phase 0 the unit impulse at tap `latency` (checked, not
/// assumed: the decimator's phase 0 and the dry path rely on it).
pub fn check_table(table: &OversamplingTable) {
    let t = table.taps_per_phase;
    assert!(
        table.factor == 1
            || (table.latency >= 1
                && table.latency < t
                && table.coeffs[..t].iter().enumerate().all(|(m, &c)| c == if m == table.latency { 1.0 } else { 0.0 })),
        "saturation: phase 0 of the oversampling table must be the unit impulse at its latency"
    );
}

impl Stage for Saturation {
    fn latency(&self) -> usize {
        self.latency
    }

    fn state_bytes(&self) -> Option<Vec<u8>> {
        // FIRs and delay lines only: finite memory, which a segment's warm-up covers
        // (`segments::Warmup`), so there is no recursion whose state needs proving.
        Some(Vec::new())
    }

    fn process(&mut self, block: &mut [Vec<f32>]) {
        let (g, inv_g, mix, dry) = (self.drive, self.inv_drive, self.mix, self.dry);
        let len = block.first().map_or(0, Vec::len);
        if self.factor == 1 {
            for x in block.iter_mut().flatten() {
                *x = mix * (tanh(g * *x) * inv_g) + dry * *x;
            }
            return;
        }
        self.shape(block.len(), len);
        let (k, t, h, half, lat) = (self.factor, self.taps, self.hist, self.half, self.latency);
        for ((x, e), w) in block.iter_mut().zip(&mut self.e).zip(&mut self.w) {
            assert_eq!(x.len(), len, "saturation: channels of different lengths");
            e[h..h + len].copy_from_slice(x);
            // 1-2. Every phase of the interpolated signal, saturated.
            for (j, wj) in w.iter_mut().enumerate() {
                let out = &mut wj[h..h + len];
                if j == 0 {
                    out.copy_from_slice(&e[h - half..h - half + len]);
                } else {
                    out.fill(0.0);
                    for (m, &c) in self.coeffs[j * t..(j + 1) * t].iter().enumerate() {
                        for (a, &v) in out.iter_mut().zip(&e[h - m..h - m + len]) {
                            *a += c * v;
                        }
                    }
                }
                for a in out.iter_mut() {
                    *a = tanh(g * *a) * inv_g;
                }
            }
            // 3. The transposed filter: phase j of the K-times signal through phase K − j.
            let acc = &mut self.acc[..len];
            acc.fill(0.0);
            for (j, wj) in w.iter().enumerate().skip(1) {
                for (m, &c) in self.coeffs[(k - j) * t..(k - j + 1) * t].iter().enumerate() {
                    for (a, &v) in acc.iter_mut().zip(&wj[h - m..h - m + len]) {
                        *a += c * v;
                    }
                }
            }
            // 4. Phase 0 (its transposed tap is T/2 − 1 frames back), 1/K, and the delayed dry path.
            let w0 = &w[0][h + 1 - half..h + 1 - half + len];
            let x_dry = &e[h - lat..h - lat + len];
            for (((o, &a), &v0), &d) in x.iter_mut().zip(acc.iter()).zip(w0).zip(x_dry) {
                let y = (v0 + a) * self.inv_k;
                *o = mix * y + dry * d;
            }
            // The next block's history.
            e.copy_within(len..len + h, 0);
            for wj in w.iter_mut() {
                wj.copy_within(len..len + h, 0);
            }
        }
    }

    fn reset(&mut self) {
        self.e.iter_mut().for_each(|e| e.fill(0.0));
        self.w.iter_mut().flatten().for_each(|w| w.fill(0.0));
    }
}

/// tanh in f32 arithmetic of its own (the shader's `tanh_sat`, operation for operation), so that
/// the engines do not depend on two libraries' tanh: odd; for |z| < 0.125 the Taylor series to z⁹
/// (truncation below 1e-11 relative); below 9, (1 − e)/(1 + e) with e = exp(−2|z|) from `exp`;
/// from 9 on, 1 (tanh 9 rounds to 1 in f32). Within 2e-7 of the exact tanh (tests/parity/saturation.rs).
#[inline(always)]
pub fn tanh(z: f32) -> f32 {
    let a = z.abs();
    let t = if a < 0.125 {
        let s = a * a;
        a + a * (s * (-1.0 / 3.0 + s * (2.0 / 15.0 + s * (-17.0 / 315.0 + s * (62.0 / 2835.0)))))
    } else if a < 9.0 {
        let e = exp(-2.0 * a);
        (1.0 - e) / (1.0 + e)
    } else {
        1.0
    };
    if z < 0.0 { -t } else { t }
}

/// exp(y) for y in [−87, 88] (`tanh` asks [−18, −0.25], `cpu::transient` its gains), in f32
/// arithmetic of its own, as the shaders' `exp_poly`: y = k·ln 2 + r with k = floor(y·log2 e + 1/2)
/// and r = (y − k·C1) − k·C2 (Cody–Waite, cephes' split of ln 2: k·C1 is exact), |r| ≤ ln 2 / 2;
/// exp(r) by its Taylor polynomial to r⁷ (truncation 5e-9 relative), times 2^k built from its bits.
#[inline(always)]
pub fn exp(y: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 355.0 / 512.0; // 0.693359375, 9 bits: k·C1 is exact
    const C2: f32 = -2.121_944_4e-4;
    let k = (y * LOG2E + 0.5).floor();
    let r = (y - k * C1) - k * C2;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}
