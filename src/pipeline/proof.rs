//! The proof page's data (design/proof.md), gathered while the render streams: each stem's level
//! per 100 ms, its long-term average spectrum and its content findings, taken on the stem reader
//! thread (`StemProbe`), and the master's curves from the writing pass's sink; then assembled with
//! the EQ's designed response into the report's `proof` (`report::proof::ProofData`).
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::analysis::check::{CLIP_LEVEL, CLIP_RUN, DC_OFFSET_DBFS, SILENCE_DBFS};
use crate::dsp::eq_design::bands_magnitude;
use crate::engine::RenderPlan;
use crate::meter::amplitude_db;
use crate::pipeline::sink::MasterCurves;
use crate::report::proof::{EqCurve, MasterProof, ProofData, Spectrum, StemProof, curve};
use crate::model::Filter;
use crate::session::Session;

/// Frames per spectrum frame: 4096 at 48 kHz resolves 11.7 Hz, enough for the sixth-octave bands
/// the page draws from 20 Hz up.
const FFT_LEN: usize = 4096;
/// Bands per octave of the page's spectra (bins averaged in power).
const BANDS_PER_OCTAVE: f64 = 6.0;
/// Points of the EQ's response curve, log-spaced from 20 Hz.
const EQ_POINTS: usize = 160;

/// One stem's running measurements.
struct StemState {
    channels: usize,
    /// Σ x² over every channel in the open 100 ms step.
    step_sq: f64,
    level: Vec<f32>,
    /// Per channel: samples not yet in a spectrum frame (at most `FFT_LEN`).
    pending: Vec<Vec<f32>>,
    power: Vec<f64>,
    spectrum_frames: u64,
    peak: f32,
    sum: Vec<f64>,
    /// Per channel: the length of the current run at `CLIP_LEVEL`.
    run: Vec<usize>,
    clip_runs: u64,
    frames: u64,
}

/// Each stem's level, spectrum and findings, fed the blocks the stem reader hands the engine.
pub struct StemProbe {
    step: usize,
    in_step: usize,
    stems: Vec<StemState>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    input: Vec<f32>,
    output: Vec<realfft::num_complex::Complex<f32>>,
}

/// What `StemProbe` measured, per stem in plan order.
pub struct StemMeasures {
    pub level_dbfs: Vec<Vec<f32>>,
    /// Mean power per FFT bin (Hann window, normalised so a full-scale sine's bin reads 0 dB).
    pub power: Vec<Vec<f64>>,
    pub findings: Vec<Vec<String>>,
}

impl StemProbe {
    /// A probe for stems of `channels` each, stepping every `step` frames (the meter's 100 ms).
    pub fn new(channels: &[usize], step: usize) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FFT_LEN);
        let window: Vec<f32> = (0..FFT_LEN)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / FFT_LEN as f64).cos()) as f32)
            .collect();
        let stems = channels
            .iter()
            .map(|&c| StemState {
                channels: c,
                step_sq: 0.0,
                level: Vec::new(),
                pending: vec![Vec::with_capacity(FFT_LEN); c],
                power: vec![0.0; FFT_LEN / 2 + 1],
                spectrum_frames: 0,
                peak: 0.0,
                sum: vec![0.0; c],
                run: vec![0; c],
                clip_runs: 0,
                frames: 0,
            })
            .collect();
        StemProbe {
            step,
            in_step: 0,
            stems,
            input: fft.make_input_vec(),
            output: fft.make_output_vec(),
            fft,
            window,
        }
    }

    /// The next `n` frames of every stem, `planar[stem][ch]`; frames past a stem's end are zeros
    /// (`real[stem]` frames of it are real: findings count only those).
    pub fn add(&mut self, planar: &[Vec<Vec<f32>>], n: usize, real: &[usize]) {
        let mut t = 0;
        while t < n {
            let len = (self.step - self.in_step).min(n - t);
            for (s, st) in self.stems.iter_mut().enumerate() {
                for c in 0..st.channels {
                    let x = &planar[s][c][t..t + len];
                    st.step_sq += x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
                }
            }
            self.in_step += len;
            t += len;
            if self.in_step == self.step {
                self.in_step = 0;
                for st in &mut self.stems {
                    let ms = st.step_sq / (self.step * st.channels) as f64;
                    st.level.push((10.0 * ms.log10()) as f32);
                    st.step_sq = 0.0;
                }
            }
        }
        for (s, st) in self.stems.iter_mut().enumerate() {
            let real = real[s].min(n);
            for c in 0..st.channels {
                let x = &planar[s][c][..real];
                for &v in x {
                    let a = v.abs();
                    st.peak = st.peak.max(a);
                    st.sum[c] += v as f64;
                    if a >= CLIP_LEVEL {
                        st.run[c] += 1;
                        if st.run[c] == CLIP_RUN {
                            st.clip_runs += 1;
                        }
                    } else {
                        st.run[c] = 0;
                    }
                }
            }
            st.frames += real as u64;
            // Spectrum frames at 50 % overlap (Hann), summed over channels.
            let mut at = 0;
            while at < n {
                let take = (FFT_LEN - st.pending[0].len()).min(n - at);
                for c in 0..st.channels {
                    st.pending[c].extend_from_slice(&planar[s][c][at..at + take]);
                }
                at += take;
                if st.pending[0].len() == FFT_LEN {
                    for c in 0..st.channels {
                        for ((i, &x), w) in self.input.iter_mut().zip(&st.pending[c]).zip(&self.window) {
                            *i = x * w;
                        }
                        self.fft.process(&mut self.input, &mut self.output).expect("FFT of the planned length");
                        for (p, z) in st.power.iter_mut().zip(&self.output) {
                            *p += z.norm_sqr() as f64;
                        }
                        st.pending[c].drain(..FFT_LEN / 2);
                    }
                    st.spectrum_frames += 1;
                }
            }
        }
    }

    /// The measurements; `names` for the findings' wording.
    pub fn finish(self) -> StemMeasures {
        // A full-scale sine through the Hann window: |X| = N/4 at its bin.
        let norm = (FFT_LEN as f64 / 4.0).powi(2);
        let mut out = StemMeasures { level_dbfs: Vec::new(), power: Vec::new(), findings: Vec::new() };
        for st in self.stems {
            let frames = (st.spectrum_frames * st.channels as u64).max(1) as f64;
            out.power.push(st.power.iter().map(|p| p / frames / norm).collect());
            let mut findings = Vec::new();
            let peak = amplitude_db(st.peak as f64);
            if st.frames > 0 && peak < SILENCE_DBFS {
                findings.push(format!("silent: its peak is {peak:.1} dBFS"));
            }
            if st.clip_runs > 0 {
                findings.push(format!(
                    "clipping: {} run(s) of {CLIP_RUN} or more samples at full scale (the stem as delivered was clipped)",
                    st.clip_runs
                ));
            }
            for (c, sum) in st.sum.iter().enumerate() {
                let dc = amplitude_db((sum / st.frames.max(1) as f64).abs());
                if dc > DC_OFFSET_DBFS {
                    findings.push(format!("DC offset on channel {}: {dc:.1} dBFS", c + 1));
                }
            }
            out.findings.push(findings);
            out.level_dbfs.push(st.level);
        }
        out
    }
}

/// Log-spaced frequencies from 20 Hz to just under Nyquist (or 20 kHz).
fn log_freqs(fs: f64, points: usize) -> Vec<f64> {
    let top = (fs / 2.0 * 0.98).min(20_000.0);
    (0..points).map(|i| 20.0 * (top / 20.0).powf(i as f64 / (points - 1) as f64)).collect()
}

/// |H(f)| of FIR taps `h` at `freq` (a direct sum: a few hundred points of an 8191-tap filter is
/// a few million multiply-adds, once per render).
fn fir_magnitude(h: &[f32], fs: f64, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / fs;
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (k, &x) in h.iter().enumerate() {
        let (s, c) = (w * k as f64).sin_cos();
        re += x as f64 * c;
        im -= x as f64 * s;
    }
    re.hypot(im)
}

/// The proof data of a render: `plan` is the bus plan (each stem's own FIR, not the bus EQ
/// folded in), `curves` what the kept writing pass gathered, `stems` what the stem reader did.
pub fn proof_data(
    session: &Session,
    plan: &RenderPlan,
    curves: Option<&MasterCurves>,
    stems: Option<StemMeasures>,
    tolerance_lu: f64,
) -> ProofData {
    let fs = plan.sample_rate as f64;
    let step = curves.map_or(((plan.sample_rate as usize + 5) / 10).max(1), |c| c.step);
    let master = match curves {
        Some(c) => MasterProof {
            momentary_lufs: curve(&c.loudness.momentary),
            short_term_lufs: curve(&c.loudness.short_term),
            true_peak_dbtp: curve(&c.loudness.true_peak),
            gain_reduction_db: curve(&c.gain_reduction),
        },
        None => MasterProof::default(),
    };
    let bins = FFT_LEN / 2 + 1;
    let bin_hz = fs / FFT_LEN as f64;
    // Sixth-octave bands from 20 Hz: the bins in each, averaged in power.
    let mut bands: Vec<(f64, usize, usize)> = Vec::new();
    let mut lo = 20.0f64;
    while lo * 2f64.powf(1.0 / BANDS_PER_OCTAVE) < fs / 2.0 {
        let hi = lo * 2f64.powf(1.0 / BANDS_PER_OCTAVE);
        let (a, b) = ((lo / bin_hz).ceil() as usize, ((hi / bin_hz).ceil() as usize).min(bins));
        if b > a {
            bands.push(((lo * hi).sqrt(), a, b));
        }
        lo = hi;
    }
    let measures = stems.unwrap_or(StemMeasures { level_dbfs: Vec::new(), power: Vec::new(), findings: Vec::new() });
    let stems = plan
        .stems
        .iter()
        .enumerate()
        .map(|(i, sp)| {
            let stem = &session.stems[sp.index];
            let taps = sp.fir.as_ref().map(|f| &f.taps[0]);
            let eq = taps.map(|h| {
                let freq_hz = log_freqs(fs, EQ_POINTS);
                let response_db =
                    freq_hz.iter().map(|&f| (20.0 * fir_magnitude(h, fs, f).log10()) as f32).collect();
                let design_db = match &stem.filter {
                    Filter::Bands(bands) => {
                        Some(freq_hz.iter().map(|&f| (20.0 * bands_magnitude(bands, fs, f).log10()) as f32).collect())
                    }
                    _ => None,
                };
                EqCurve { freq_hz: freq_hz.iter().map(|&f| f as f32).collect(), response_db, design_db }
            });
            let gain = 10f64.powf(stem.gain_db / 10.0);
            let spectrum = measures.power.get(i).map(|p| {
                let mut freq_hz = Vec::new();
                let (mut before, mut after) = (Vec::new(), Vec::new());
                for &(centre, a, b) in &bands {
                    let pb: f64 = p[a..b].iter().sum::<f64>() / (b - a) as f64;
                    // After the EQ and gain: each bin's power times |H|² at the bin, g².
                    let pa: f64 = (a..b)
                        .map(|k| p[k] * taps.map_or(1.0, |h| fir_magnitude(h, fs, k as f64 * bin_hz).powi(2)))
                        .sum::<f64>()
                        / (b - a) as f64
                        * gain;
                    freq_hz.push(centre as f32);
                    before.push((10.0 * pb.log10()) as f32);
                    after.push((10.0 * pa.log10()) as f32);
                }
                Spectrum { freq_hz, before_db: curve(&before), after_db: curve(&after) }
            });
            StemProof {
                name: stem.name.clone(),
                gain_db: stem.gain_db,
                process: sp.process.iter().map(|p| p.name().to_string()).collect(),
                level_dbfs: measures.level_dbfs.get(i).map_or_else(Vec::new, |l| curve(l)),
                eq,
                spectrum,
                findings: measures.findings.get(i).cloned().unwrap_or_default(),
            }
        })
        .collect();
    ProofData {
        step_s: step as f64 / fs,
        tolerance_lu,
        master,
        stems,
        muted: session.stems.iter().filter(|s| s.mute).map(|s| s.name.clone()).collect(),
        variants: Vec::new(),
        album: Vec::new(),
    }
}
