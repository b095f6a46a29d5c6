//! CPU twin of `shaders/compressor.wgsl`: the `compressor` stage (design/mastering.md), feed-forward
//! in the log domain (Giannoulis, Massberg & Reiss, JAES 2012). Audio in f32; the side-chain, the
//! levels, the gains and the ballistics in f64, with the shader's arithmetic in the shader's order,
//! including its own logarithm (`ln_f32`) and power (`limiter_smooth::db_to_gain`), so that the two
//! engines agree far inside the stage parity contract. Per block of B frames, as the shader's passes:
//!   1. levels (per channel, serial): the audio is appended to the look-ahead delay line; the
//!      side-chain s passes the optional high-pass biquad (RBJ, Q = 1/√2, transposed direct form
//!      II); the linear level is v = max(|s|, 1e-9) (peak) or max(mean of s² over the last N frames,
//!      1e-18) (rms: the sum of the window recomputed from its history at each block start, then slid
//!      across the block), rounded to f32;
//!   2. gains (per frame): x_c = K·ln(v_c) (K = 20/ln 10 peak, 10/ln 10 rms), the link
//!      x'_c = (1 − link)·x_c + link·max_{c ≠ LFE} x_c, the soft-knee gain computer g_c = y − x'_c;
//!   3. ballistics (per channel, serial): z = α·z + (1 − α)·g, α = α_A when g < z, else α_R;
//!   4. apply (per sample): out = f32(d·(mix·10^((z + makeup)/20) + (1 − mix))), d the audio
//!      delayed by the look-ahead L.
use crate::cpu::Stage;
use crate::cpu::limiter_smooth::db_to_gain;
use crate::model::{Compressor as Params, Detector, Layout};

/// Values the stage computes with, as the shader reads them from its `consts` buffer (f64 there
/// when the adapter has 64-bit floats). Keep the order in sync with shaders/compressor.wgsl.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Consts {
    pub alpha_a: f64,
    pub alpha_r: f64,
    pub threshold: f64,
    pub knee: f64,
    /// 1/R − 1.
    pub slope: f64,
    /// 1/(2W), 0 without a knee.
    pub half_inv_knee: f64,
    pub link: f64,
    pub makeup: f64,
    pub mix: f64,
    /// 1/N, N the RMS window in frames.
    pub inv_n: f64,
    /// dB per neper of the level: 20/ln 10 (peak) or 10/ln 10 (rms).
    pub k_level: f64,
    /// High-pass biquad, normalised by a0: b0, b1, b2, a1, a2 (unused when off).
    pub biquad: [f64; 5],
}

impl Consts {
    pub fn new(p: &Params, sample_rate: u32) -> Consts {
        let fs = sample_rate as f64;
        let biquad = if p.sidechain_hpf_hz > 0.0 {
            let w0 = 2.0 * std::f64::consts::PI * p.sidechain_hpf_hz.min(0.45 * fs) / fs;
            let (sin, cos) = w0.sin_cos();
            let alpha = sin / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
            let a0 = 1.0 + alpha;
            [(1.0 + cos) / 2.0 / a0, -(1.0 + cos) / a0, (1.0 + cos) / 2.0 / a0, -2.0 * cos / a0, (1.0 - alpha) / a0]
        } else {
            [0.0; 5]
        };
        Consts {
            alpha_a: (-1.0 / (p.attack_ms / 1000.0 * fs)).exp(),
            alpha_r: (-1.0 / (p.release_ms / 1000.0 * fs)).exp(),
            threshold: p.threshold_db,
            knee: p.knee_db,
            slope: 1.0 / p.ratio - 1.0,
            half_inv_knee: if p.knee_db > 0.0 { 1.0 / (2.0 * p.knee_db) } else { 0.0 },
            link: p.link,
            makeup: p.makeup_db,
            mix: p.mix,
            inv_n: 1.0 / p.rms_frames(sample_rate) as f64,
            k_level: match p.detector {
                Detector::Peak => 20.0 / std::f64::consts::LN_10,
                Detector::Rms => 10.0 / std::f64::consts::LN_10,
            },
            biquad,
        }
    }

    /// In the shader's order (`consts[i]`).
    pub fn to_array(&self) -> [f64; 16] {
        let [b0, b1, b2, a1, a2] = self.biquad;
        [
            self.alpha_a,
            self.alpha_r,
            self.threshold,
            self.knee,
            self.slope,
            self.half_inv_knee,
            self.link,
            self.makeup,
            self.mix,
            self.inv_n,
            self.k_level,
            b0,
            b1,
            b2,
            a1,
            a2,
        ]
    }

    /// Step 4 of the contract: the target gain g = y − x (dB, ≤ 0) of the level x.
    pub fn gain_computer(&self, x: f64) -> f64 {
        let d = x - self.threshold;
        if 2.0 * d < -self.knee {
            0.0
        } else if self.knee > 0.0 && (2.0 * d).abs() <= self.knee {
            let e = d + self.knee * 0.5;
            self.slope * (e * e) * self.half_inv_knee
        } else {
            self.slope * d
        }
    }
}

/// ln(v) for a positive normal f32, in f64: v = 2^e·m with m in [√½, √2), ln m = 2·atanh(t),
/// t = (m − 1)/(m + 1), by its series to t^21 (|t| ≤ 0.172: error below 1e-16). The shader's
/// `ln_f32`, operation for operation.
pub fn ln_f32(v: f32) -> f64 {
    let bits = v.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000) as f64;
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let mut p = 1.0 / 21.0;
    for c in
        [1.0 / 19.0, 1.0 / 17.0, 1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0]
    {
        p = p * t2 + c;
    }
    e as f64 * std::f64::consts::LN_2 + 2.0 * t * p
}

/// The stage's gain reduction from each channel's (largest −z, Σ −z) over `frames` frames.
pub fn reduction_of(per_channel: &[[f64; 2]], frames: u64) -> crate::engine::StageReduction {
    let most = per_channel.iter().fold(0.0f64, |m, r| m.max(r[0]));
    let sum: f64 = per_channel.iter().map(|r| r[1]).sum();
    let n = (frames * per_channel.len() as u64).max(1) as f64;
    crate::engine::StageReduction { max_db: most, mean_db: sum / n }
}

pub struct Compressor {
    k: Consts,
    rms: bool,
    hpf: bool,
    /// The channel left out of the link's max (the LFE of a 5.1 or 7.1 stem).
    lfe: Option<usize>,
    lookahead: usize,
    /// N − 1: the squares of the RMS window carried from the previous block.
    history: usize,
    /// Per channel: the last L input frames, then this block's (L + B).
    audio: Vec<Vec<f32>>,
    /// Per channel: the last N − 1 squares of the side-chain, then this block's.
    squares: Vec<Vec<f64>>,
    /// Per channel: biquad state s1, s2 and the ballistics' z.
    state: Vec<[f64; 3]>,
    /// Per channel: the largest reduction −z and the sum of −z over the frames (the report's
    /// gain reduction; the shader keeps the same two in its state).
    reduction: Vec<[f64; 2]>,
    /// `[channel][frame]`: the level v, then the target gain g, then z.
    gz: Vec<Vec<f64>>,
    /// Levels of one frame (x_c), one per channel.
    xs: Vec<f64>,
    /// With a `key` (ducking), per key channel: its RMS squares, its biquad state (z unused) and
    /// its linear levels; sized on the first keyed block.
    key_squares: Vec<Vec<f64>>,
    key_state: Vec<[f64; 3]>,
    key_levels: Vec<Vec<f64>>,
}

impl Compressor {
    pub fn new(p: &Params, channels: usize, block: usize, sample_rate: u32) -> Compressor {
        let lookahead = p.lookahead(sample_rate);
        let rms = p.detector == Detector::Rms;
        let history = if rms { p.rms_frames(sample_rate) - 1 } else { 0 };
        Compressor {
            k: Consts::new(p, sample_rate),
            rms,
            hpf: p.sidechain_hpf_hz > 0.0,
            lfe: Layout::for_channels(channels).and_then(|l| l.lfe_channel()),
            lookahead,
            history,
            audio: vec![vec![0.0; lookahead + block]; channels],
            squares: vec![vec![0.0; if rms { history + block } else { 0 }]; channels],
            state: vec![[0.0; 3]; channels],
            reduction: vec![[0.0; 2]; channels],
            gz: vec![vec![0.0; block]; channels],
            xs: vec![0.0; channels],
            key_squares: Vec::new(),
            key_state: Vec::new(),
            key_levels: Vec::new(),
        }
    }

    /// Pass 1 on one channel: the delay line, the side-chain and its linear level v (as f32).
    fn levels(&mut self, c: usize, x: &[f32]) {
        let (b, l) = (x.len(), self.lookahead);
        let audio = &mut self.audio[c];
        audio.copy_within(b..b + l, 0);
        audio[l..].copy_from_slice(x);
        side_levels(
            &self.k,
            self.rms,
            self.hpf,
            self.history,
            &mut self.squares[c],
            &mut self.state[c],
            x,
            &mut self.gz[c],
        );
    }

    /// Pass 2 on frame n: levels in dB, the link, the gain computer.
    fn gains(&mut self, n: usize) {
        let mut m = -1000.0f64;
        for (c, x) in self.xs.iter_mut().enumerate() {
            *x = self.k.k_level * ln_f32(self.gz[c][n] as f32);
            if Some(c) != self.lfe {
                m = m.max(*x);
            }
        }
        let link = self.k.link;
        for (c, &x) in self.xs.iter().enumerate() {
            self.gz[c][n] = self.k.gain_computer((1.0 - link) * x + link * m);
        }
    }

    /// Pass 3 on one channel: the smooth branching ballistics.
    fn ballistics(&mut self, c: usize) {
        let (aa, ar) = (self.k.alpha_a, self.k.alpha_r);
        let mut z = self.state[c][2];
        let [mut most, mut sum] = self.reduction[c];
        for g in self.gz[c].iter_mut() {
            z = if *g < z { aa * z + (1.0 - aa) * *g } else { ar * z + (1.0 - ar) * *g };
            *g = z;
            most = most.max(-z);
            sum += -z;
        }
        self.state[c][2] = z;
        self.reduction[c] = [most, sum];
    }

    /// The gain of z (dB) with the make-up and the mix: the factor the delayed audio takes.
    #[inline(always)]
    fn gain_of(&self, z: f64) -> f64 {
        let mix = self.k.mix;
        mix * db_to_gain(-(z + self.k.makeup)) + (1.0 - mix)
    }

    /// Pass 4 on one channel: the gain on the delayed audio, the mix.
    fn apply(&self, c: usize, x: &mut [f32]) {
        for ((y, &d), &z) in x.iter_mut().zip(&self.audio[c]).zip(&self.gz[c]) {
            *y = (d as f64 * self.gain_of(z)) as f32;
        }
    }
}

impl Stage for Compressor {
    fn latency(&self) -> usize {
        self.lookahead
    }

    fn process(&mut self, block: &mut [Vec<f32>]) {
        assert_eq!(block.len(), self.audio.len(), "compressor: channel count changed");
        let frames = block.first().map_or(0, Vec::len);
        assert_eq!(frames, self.gz[0].len(), "compressor: block length changed");
        for (c, x) in block.iter().enumerate() {
            self.levels(c, x);
        }
        for n in 0..frames {
            self.gains(n);
        }
        for (c, x) in block.iter_mut().enumerate() {
            self.ballistics(c);
            self.apply(c, x);
        }
    }

    fn reduction(&self, frames: u64) -> Option<crate::engine::StageReduction> {
        Some(reduction_of(&self.reduction, frames))
    }

    fn apply_envelope(&self, part: &mut [Vec<f32>]) {
        assert_eq!(part.len(), self.gz.len(), "compressor: a part of another channel count");
        for (x, gz) in part.iter_mut().zip(&self.gz) {
            for (y, &z) in x.iter_mut().zip(gz) {
                *y = (*y as f64 * self.gain_of(z)) as f32;
            }
        }
    }

    /// With a key: the level of frame n is the max over the key's channels of each channel's
    /// level (through the side-chain high-pass), the same for every channel of this stem (no link).
    fn process_keyed(&mut self, block: &mut [Vec<f32>], key: &[Vec<f32>]) {
        assert_eq!(block.len(), self.audio.len(), "compressor: channel count changed");
        let frames = block.first().map_or(0, Vec::len);
        assert_eq!(frames, self.gz[0].len(), "compressor: block length changed");
        assert!(key.iter().all(|k| k.len() == frames), "compressor: key block of another length");
        if self.key_state.len() != key.len() {
            let h = self.history;
            self.key_squares = vec![vec![0.0; if self.rms { h + frames } else { 0 }]; key.len()];
            self.key_state = vec![[0.0; 3]; key.len()];
            self.key_levels = vec![vec![0.0; frames]; key.len()];
        }
        let (b, l) = (frames, self.lookahead);
        for (audio, x) in self.audio.iter_mut().zip(block.iter()) {
            audio.copy_within(b..b + l, 0);
            audio[l..].copy_from_slice(x);
        }
        for (kc, x) in key.iter().enumerate() {
            let (sq, st, out) = (&mut self.key_squares[kc], &mut self.key_state[kc], &mut self.key_levels[kc]);
            side_levels(&self.k, self.rms, self.hpf, self.history, sq, st, x, out);
        }
        for n in 0..frames {
            let m = self.key_levels.iter().map(|v| self.k.k_level * ln_f32(v[n] as f32)).fold(-1000.0f64, f64::max);
            let g = self.k.gain_computer(m);
            self.gz.iter_mut().for_each(|gz| gz[n] = g);
        }
        for (c, x) in block.iter_mut().enumerate() {
            self.ballistics(c);
            self.apply(c, x);
        }
    }

    fn state_bytes(&self) -> Option<Vec<u8>> {
        // The look-ahead line, the RMS window's squares, the biquad and the ballistics, and a key's
        // side-chain squares and biquad (not the report's reduction figures, which only count).
        let mut out = Vec::new();
        self.audio.iter().flatten().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
        self.squares.iter().flatten().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
        self.state.iter().flatten().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
        self.key_squares.iter().flatten().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
        self.key_state.iter().flatten().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
        Some(out)
    }

    fn reset(&mut self) {
        self.key_squares.iter_mut().for_each(|s| s.fill(0.0));
        self.key_state.iter_mut().for_each(|s| *s = [0.0; 3]);
        self.audio.iter_mut().for_each(|a| a.fill(0.0));
        self.squares.iter_mut().for_each(|s| s.fill(0.0));
        self.state.iter_mut().for_each(|s| *s = [0.0; 3]);
        self.reduction.iter_mut().for_each(|r| *r = [0.0; 2]);
    }
}

/// The side-chain of one channel `x` through the high-pass (state `st`) to its linear level per
/// frame (as f32) in `out`; `sq` holds the RMS window's last `h` squares, then this block's.
#[allow(clippy::too_many_arguments)]
fn side_levels(
    k: &Consts,
    rms: bool,
    hpf: bool,
    h: usize,
    sq: &mut [f64],
    st: &mut [f64; 3],
    x: &[f32],
    out: &mut [f64],
) {
    let b = x.len();
    let [b0, b1, b2, a1, a2] = k.biquad;
    let [mut s1, mut s2, _] = *st;
    let mut sum = 0.0f64;
    if rms {
        sq.copy_within(b..b + h, 0);
        for &q in &sq[..h] {
            sum += q;
        }
    }
    for (n, (&xn, v)) in x.iter().zip(out.iter_mut()).enumerate() {
        let mut s = xn as f64;
        if hpf {
            let y = b0 * s + s1;
            s1 = b1 * s - a1 * y + s2;
            s2 = b2 * s - a2 * y;
            s = y;
        }
        let level = if rms {
            let q = s * s;
            sq[h + n] = q;
            sum += q;
            let ms = sum * k.inv_n;
            sum -= sq[n];
            ms.max(1e-18) as f32
        } else {
            s.abs().max(1e-9) as f32
        };
        *v = level as f64;
    }
    st[0] = s1;
    st[1] = s2;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(detector: Detector, hpf: f64) -> Params {
        Params {
            threshold_db: -24.0,
            ratio: 4.0,
            knee_db: 6.0,
            attack_ms: 2.0,
            release_ms: 50.0,
            detector,
            rms_ms: 5.0,
            link: 1.0,
            sidechain_hpf_hz: hpf,
            lookahead_ms: 1.0,
            makeup_db: 0.0,
            mix: 1.0,
            key: None,
        }
    }

    fn noise(seed: u32, frames: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(747_796_405).wrapping_add(1);
        (0..frames)
            .map(|n| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let burst = if (n / 3000) % 2 == 0 { 0.9 } else { 0.05 };
                burst * ((s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    /// Keyed by a copy of its own stereo block with link 1, the compressor is the unkeyed one,
    /// bit for bit: the key's level is the max over its channels, as the linked level is.
    #[test]
    fn keyed_by_itself_is_the_linked_compressor() {
        for (detector, hpf) in [(Detector::Peak, 0.0), (Detector::Rms, 100.0)] {
            let p = params(detector, hpf);
            let (mut own, mut keyed) = (Compressor::new(&p, 2, 1024, 48_000), Compressor::new(&p, 2, 1024, 48_000));
            for b in 0..12 {
                let block: Vec<Vec<f32>> =
                    (0..2).map(|c| noise(b * 2 + c, 12 * 1024)[b as usize * 1024..][..1024].to_vec()).collect();
                let (mut a, mut k) = (block.clone(), block.clone());
                own.process(&mut a);
                keyed.process_keyed(&mut k, &block);
                assert_eq!(a, k, "{detector:?}, block {b}");
            }
        }
    }

    /// A silent key leaves the stem at unity (after the look-ahead); a loud key pulls it down.
    #[test]
    fn a_key_ducks_the_stem() {
        let p = Params { lookahead_ms: 0.0, ..params(Detector::Peak, 0.0) };
        let mut c = Compressor::new(&p, 2, 4096, 48_000);
        let music = vec![vec![0.1f32; 4096]; 2];
        let (mut quiet, mut loud) = (music.clone(), music.clone());
        c.process_keyed(&mut quiet, &[vec![0.0; 4096]]);
        assert!(quiet.iter().flatten().all(|&v| v == 0.1), "a silent key changed the stem");
        c.process_keyed(&mut loud, &[vec![0.5; 4096]]);
        // Key at -6 dBFS, T = -24, R = 4: the static gain is -13.5 dB, reached well within 85 ms.
        let end = loud[0][4095] as f64 / 0.1;
        assert!((20.0 * end.log10() + 13.5).abs() < 0.1, "gain {} dB", 20.0 * end.log10());
        assert_eq!(loud[0], loud[1]);
    }
}
