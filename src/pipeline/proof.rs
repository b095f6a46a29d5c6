//! The proof page's data (design/proof.md), gathered while the render streams: each stem's level
//! per 100 ms, its long-term average spectrum and its content findings, taken on the stem reader
//! thread (`StemProbe`), and the master's curves from the writing pass's sink; then assembled with
//! the EQ's designed response into the report's `proof` (`report::proof::ProofData`).
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::dsp::eq_design::bands_magnitude;
use crate::engine::RenderPlan;
use crate::io::BlockReader;
use crate::io::read_full;
use crate::meter::amplitude_db;
use crate::meter::{LoudnessMeter, MeterScope};
use crate::model::Filter;
use crate::model::content::{CLIP_LEVEL, CLIP_RUN, DC_OFFSET_DBFS, SILENCE_DBFS};
use crate::pipeline::plan::routes;
use crate::pipeline::sink::MasterCurves;
use crate::report::proof::{Curve, EqCurve, MasterProof, NullProof, ProofData, Spectrum, StemProof, curve};
use crate::session::Session;

/// Frames per spectrum frame: 4096 at 48 kHz resolves 11.7 Hz, enough for the sixth-octave bands
/// the page draws from 20 Hz up.
pub const FFT_LEN: usize = 4096;
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
    mix: Option<MixProbe>,
}

/// The reference mix, read beside the stems: metered, and nulled against the stems' sum as
/// delivered (mute and mono routing; gain and EQ are mastering moves), as `check` nulls it.
pub struct MixProbe {
    reader: Box<dyn BlockReader>,
    meter: LoudnessMeter,
    /// Per stem in plan order: (stem channel, bus channel, weight) at 0 dB.
    routes: Vec<Vec<(usize, usize, f32)>>,
    buf: Vec<Vec<f32>>,
    scratch: Vec<Vec<f32>>,
    sum: Vec<Vec<f64>>,
    /// Σ residual² and Σ mix² over the programme, and the residual's peak.
    res_energy: f64,
    mix_energy: f64,
    res_peak: f64,
    /// The residual's mean square over the open step, and each step's, dBFS.
    step_res: f64,
    in_step: usize,
    residual_steps: Vec<f32>,
    /// Why the mix could not be read to the end (its reading stops; the null covers what was read).
    failed: Option<String>,
}

impl MixProbe {
    /// The reference mix at `path` for a bus of `layout` at `rate`, stems of `channels` each;
    /// None with the reason when it cannot be nulled against them (its rate or channels differ).
    pub fn open(
        path: &std::path::Path,
        layout: crate::model::Layout,
        rate: u32,
        channels: &[usize],
        block: usize,
    ) -> std::result::Result<MixProbe, String> {
        let reader = crate::io::open(path).map_err(|e| e.to_string())?;
        let info = reader.info().clone();
        let bus = layout.channels();
        if info.sample_rate != rate || info.channels != bus {
            return Err(format!(
                "{}: {} channels at {} Hz, the bus is {bus} at {rate} Hz: not nulled (`stemforge check` says more)",
                path.display(),
                info.channels,
                info.sample_rate
            ));
        }
        let mut meter =
            LoudnessMeter::with_scope(bus, rate, Some(layout), MeterScope::Full).map_err(|e| e.to_string())?;
        meter.record_curves();
        Ok(MixProbe {
            reader,
            meter,
            routes: channels.iter().map(|&c| routes(layout, c, 0.0).unwrap_or_default()).collect(),
            buf: vec![vec![0.0; block]; bus],
            scratch: vec![vec![0.0; block]; bus],
            sum: vec![vec![0.0; block]; bus],
            res_energy: 0.0,
            mix_energy: 0.0,
            res_peak: 0.0,
            step_res: 0.0,
            in_step: 0,
            residual_steps: Vec::new(),
            failed: None,
        })
    }

    fn add(&mut self, planar: &[Vec<Vec<f32>>], n: usize, step: usize) {
        let got = match &self.failed {
            Some(_) => 0,
            None => match read_full(self.reader.as_mut(), &mut self.buf, &mut self.scratch, n) {
                Ok(got) => got,
                Err(e) => {
                    self.failed = Some(e.to_string());
                    0
                }
            },
        };
        for c in &mut self.buf {
            c[got..n].fill(0.0);
        }
        for c in &mut self.sum {
            c[..n].fill(0.0);
        }
        for (stem, routes) in planar.iter().zip(&self.routes) {
            for &(src, dst, w) in routes {
                for (acc, &x) in self.sum[dst][..n].iter_mut().zip(&stem[src][..n]) {
                    *acc += w as f64 * x as f64;
                }
            }
        }
        let view: Vec<&[f32]> = self.buf.iter().map(|c| &c[..n]).collect();
        self.meter.add_planar(&view);
        let bus = self.buf.len();
        for t in 0..n {
            let mut sq = 0.0;
            for c in 0..bus {
                let m = self.buf[c][t] as f64;
                let r = m - self.sum[c][t];
                sq += r * r;
                self.mix_energy += m * m;
                self.res_peak = self.res_peak.max(r.abs());
            }
            self.res_energy += sq;
            self.step_res += sq;
            self.in_step += 1;
            if self.in_step == step {
                let ms = self.step_res / (step * bus) as f64;
                self.residual_steps.push((10.0 * ms.log10()) as f32);
                self.step_res = 0.0;
                self.in_step = 0;
            }
        }
    }

    /// The mix's measures, before the session's threshold judges the null (`MixMeasures::null`).
    fn finish(mut self) -> MixMeasures {
        let curves = self.meter.take_curves();
        MixMeasures {
            integrated_lufs: Some(self.meter.result().integrated_lufs).filter(|v| v.is_finite()),
            momentary_lufs: curve(&curves.momentary),
            short_term_lufs: curve(&curves.short_term),
            residual_dbfs: curve(&self.residual_steps),
            res_energy: self.res_energy,
            mix_energy: self.mix_energy,
            res_peak: self.res_peak,
            failed: self.failed,
        }
    }
}

/// What `MixProbe` measured of the reference mix and its null against the stems. It depends only
/// on the mix file, the stem files and the programme's framing (a revision of gains or EQ leaves
/// it as it is), so `render --cache` keeps it (`pipeline::cache::proof_record`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MixMeasures {
    pub integrated_lufs: Option<f64>,
    pub momentary_lufs: Curve,
    pub short_term_lufs: Curve,
    pub residual_dbfs: Curve,
    /// Σ residual² and Σ mix² over the programme, and the residual's peak.
    pub res_energy: f64,
    pub mix_energy: f64,
    pub res_peak: f64,
    /// Why the mix could not be read to the end (the null covers what was read).
    pub failed: Option<String>,
}

impl MixMeasures {
    /// The null test of the mix at `path`, judged against `threshold_db` (`[check] null_threshold_db`).
    pub fn null(self, path: &std::path::Path, threshold_db: f64) -> NullProof {
        let rel = if self.res_energy == 0.0 {
            f64::NEG_INFINITY
        } else if self.mix_energy == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.res_energy / self.mix_energy).log10()
        };
        NullProof {
            path: path.to_path_buf(),
            integrated_lufs: self.integrated_lufs,
            momentary_lufs: self.momentary_lufs,
            short_term_lufs: self.short_term_lufs,
            residual_dbfs: self.residual_dbfs,
            residual_db_rel_mix: Some(rel).filter(|v| v.is_finite()),
            residual_peak_dbfs: Some(amplitude_db(self.res_peak)).filter(|v| v.is_finite()),
            threshold_db,
            passed: rel <= threshold_db,
            note: self.failed.map(|e| format!("reading the reference mix stopped: {e}")),
        }
    }
}

/// What `StemProbe` measured of one stem file. It depends only on the file and the programme's
/// framing, so `render --cache` keeps it (`pipeline::cache::proof_record`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StemMeasure {
    /// Mean square over every channel per 100 ms step, dBFS (None: digital silence).
    pub level_dbfs: Curve,
    /// Mean power per FFT bin (Hann window, normalised so a full-scale sine's bin reads 0 dB).
    pub power: Vec<f64>,
    pub findings: Vec<String>,
}

/// What `StemProbe` measured, per stem in plan order.
#[derive(Debug, Clone, Default)]
pub struct StemMeasures {
    pub stems: Vec<StemMeasure>,
    /// The reference mix's measures and null test; its threshold is applied by `proof_data`.
    pub mix: Option<MixMeasures>,
}

/// The proof page's probe of `plan`'s stems, stepping every `step` frames (the meter's 100 ms),
/// with the session's reference mix beside them when it can be nulled against them (else why not).
pub fn stem_probe(session: &Session, plan: &RenderPlan, step: usize) -> (StemProbe, Option<String>) {
    let channels: Vec<usize> = plan.stems.iter().map(|s| s.channels).collect();
    let probe = StemProbe::new(&channels, step);
    let Some(mix) = &session.reference_mix else { return (probe, None) };
    match MixProbe::open(mix, plan.layout, plan.sample_rate, &channels, plan.block) {
        Ok(m) => (probe.with_mix(m), None),
        Err(why) => (probe, Some(why)),
    }
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
            mix: None,
        }
    }

    /// Also meter the reference mix and null it against the stems (`MixProbe`).
    pub fn with_mix(mut self, mix: MixProbe) -> Self {
        self.mix = Some(mix);
        self
    }

    /// The next `n` frames of every stem, `planar[stem][ch]`; frames past a stem's end are zeros
    /// (`real[stem]` frames of it are real: findings count only those).
    pub fn add(&mut self, planar: &[Vec<Vec<f32>>], n: usize, real: &[usize]) {
        if let Some(m) = &mut self.mix {
            m.add(planar, n, self.step);
        }
        let mut t = 0;
        while t < n {
            let len = (self.step - self.in_step).min(n - t);
            for (s, st) in self.stems.iter_mut().enumerate() {
                for ch in &planar[s][..st.channels] {
                    st.step_sq += ch[t..t + len].iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
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
            for ((ch, sum), run) in planar[s].iter().zip(st.sum.iter_mut()).zip(st.run.iter_mut()) {
                for &v in &ch[..real] {
                    let a = v.abs();
                    st.peak = st.peak.max(a);
                    *sum += v as f64;
                    if a >= CLIP_LEVEL {
                        *run += 1;
                        if *run == CLIP_RUN {
                            st.clip_runs += 1;
                        }
                    } else {
                        *run = 0;
                    }
                }
            }
            st.frames += real as u64;
            // Spectrum frames at 50 % overlap (Hann), summed over channels.
            let mut at = 0;
            while at < n {
                let take = (FFT_LEN - st.pending[0].len()).min(n - at);
                for (pending, ch) in st.pending.iter_mut().zip(&planar[s]) {
                    pending.extend_from_slice(&ch[at..at + take]);
                }
                at += take;
                if st.pending[0].len() == FFT_LEN {
                    for pending in st.pending.iter_mut() {
                        for ((i, &x), w) in self.input.iter_mut().zip(pending.iter()).zip(&self.window) {
                            *i = x * w;
                        }
                        self.fft.process(&mut self.input, &mut self.output).expect("FFT of the planned length");
                        for (p, z) in st.power.iter_mut().zip(&self.output) {
                            *p += z.norm_sqr() as f64;
                        }
                        pending.drain(..FFT_LEN / 2);
                    }
                    st.spectrum_frames += 1;
                }
            }
        }
    }

    /// The measurements.
    pub fn finish(self) -> StemMeasures {
        // A full-scale sine through the Hann window: |X| = N/4 at its bin.
        let norm = (FFT_LEN as f64 / 4.0).powi(2);
        let mut out = StemMeasures { stems: Vec::new(), mix: self.mix.map(MixProbe::finish) };
        for st in self.stems {
            let frames = (st.spectrum_frames * st.channels as u64).max(1) as f64;
            let power = st.power.iter().map(|p| p / frames / norm).collect();
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
            out.stems.push(StemMeasure { level_dbfs: curve(&st.level), power, findings });
        }
        out
    }
}

/// Log-spaced frequencies from 20 Hz to just under Nyquist (or 20 kHz).
fn log_freqs(fs: f64, points: usize) -> Vec<f64> {
    let top = (fs / 2.0 * 0.98).min(20_000.0);
    (0..points).map(|i| 20.0 * (top / 20.0).powf(i as f64 / (points - 1) as f64)).collect()
}

/// |H(f)| of FIR taps `h` at `freq`: a direct sum whose e^(−jωk) steps by one complex multiply
/// per tap (the rounding this accumulates over 8191 taps, about 1e-12 relative, is far below
/// what a dB curve shows; a sin_cos per tap made the proof page's EQ curves cost more than a
/// minute of rendering).
fn fir_magnitude(h: &[f32], fs: f64, freq: f64) -> f64 {
    let (s, c) = (2.0 * std::f64::consts::PI * freq / fs).sin_cos();
    let (mut re, mut im) = (0.0f64, 0.0f64);
    // (pr, pi) = e^(−jωk), from k = 0.
    let (mut pr, mut pi) = (1.0f64, 0.0f64);
    for &x in h {
        re += x as f64 * pr;
        im += x as f64 * pi;
        (pr, pi) = (pr * c + pi * s, pi * c - pr * s);
    }
    re.hypot(im)
}

/// |H|² of FIR taps `h` at every bin of the spectrum's FFT (k · fs / `FFT_LEN`, k = 0..=N/2):
/// `h` folded modulo N (which leaves its DFT at those bins as it is) through one real FFT in f64.
fn fir_power_at_bins(h: &[f32]) -> Vec<f64> {
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(FFT_LEN);
    let mut folded = fft.make_input_vec();
    for (n, &x) in h.iter().enumerate() {
        folded[n % FFT_LEN] += x as f64;
    }
    let mut bins = fft.make_output_vec();
    fft.process(&mut folded, &mut bins).expect("FFT of the planned length");
    bins.iter().map(|z| z.norm_sqr()).collect()
}

/// The proof data of a render: `plan` is the bus plan (each stem's own FIR, not the bus EQ
/// folded in), `curves` what the kept writing pass gathered, `stems` what the stem reader did.
pub fn proof_data(
    session: &Session,
    plan: &RenderPlan,
    curves: Option<&MasterCurves>,
    stems: Option<StemMeasures>,
    tolerance_lu: f64,
    reference_note: Option<String>,
) -> ProofData {
    let fs = plan.sample_rate as f64;
    let step = curves.map_or(crate::meter::step_frames_at(plan.sample_rate), |c| c.step);
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
    let measures = stems.unwrap_or_default();
    let reference = match (measures.mix, &session.reference_mix) {
        (Some(m), Some(path)) => Some(m.null(path, session.check.null_threshold_db)),
        _ => None,
    };
    let stems = plan
        .stems
        .iter()
        .enumerate()
        .map(|(i, sp)| {
            let stem = &session.stems[sp.index];
            let taps = sp.fir.as_ref().map(|f| &f.taps[0]);
            let eq = taps.map(|h| {
                let freq_hz = log_freqs(fs, EQ_POINTS);
                let response_db = freq_hz.iter().map(|&f| (20.0 * fir_magnitude(h, fs, f).log10()) as f32).collect();
                let design_db = match &stem.filter {
                    Filter::Bands(bands) => {
                        Some(freq_hz.iter().map(|&f| (20.0 * bands_magnitude(bands, fs, f).log10()) as f32).collect())
                    }
                    _ => None,
                };
                EqCurve { freq_hz: freq_hz.iter().map(|&f| f as f32).collect(), response_db, design_db }
            });
            let gain = 10f64.powf(stem.gain_db / 10.0);
            let measure = measures.stems.get(i);
            let spectrum = measure.map(|m| {
                let p = &m.power;
                let eq_power = taps.map(|h| fir_power_at_bins(h));
                let mut freq_hz = Vec::new();
                let (mut before, mut after) = (Vec::new(), Vec::new());
                for &(centre, a, b) in &bands {
                    let pb: f64 = p[a..b].iter().sum::<f64>() / (b - a) as f64;
                    // After the EQ and gain: each bin's power times |H|² at the bin, g².
                    let pa: f64 = (a..b).map(|k| p[k] * eq_power.as_ref().map_or(1.0, |e| e[k])).sum::<f64>()
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
                level_dbfs: measure.map_or_else(Vec::new, |m| m.level_dbfs.clone()),
                eq,
                spectrum,
                findings: measure.map_or_else(Vec::new, |m| m.findings.clone()),
            }
        })
        .collect();
    ProofData {
        step_s: step as f64 / fs,
        tolerance_lu,
        master,
        stems,
        muted: session.stems.iter().filter(|s| s.mute).map(|s| s.name.clone()).collect(),
        reference,
        reference_note,
        variants: Vec::new(),
        album: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::eq_design::design_eq;
    use crate::model::{EqBand, Phase};

    /// |H| by the definition: one sin_cos per tap.
    fn direct(h: &[f32], w: f64) -> f64 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (k, &x) in h.iter().enumerate() {
            let (s, c) = (w * k as f64).sin_cos();
            re += x as f64 * c;
            im -= x as f64 * s;
        }
        re.hypot(im)
    }

    /// The page's two fast responses of a designed 8191-tap EQ (and of a minimum-phase one) are
    /// the definition's to 1e-9 relative, at the EQ curve's points and at every spectrum bin; in
    /// the highpass's stop band, where the sums cancel to below −200 dB, to 1e-12 of unity gain.
    #[test]
    fn fast_responses_are_the_direct_sum() {
        let fs = 48_000.0;
        let bands = [
            EqBand::Highpass { freq_hz: 80.0, order: 2 },
            EqBand::Peak { freq_hz: 3000.0, gain_db: 4.0, q: 1.0 },
            EqBand::HighShelf { freq_hz: 10_000.0, gain_db: -3.0, q: 0.707 },
        ];
        for phase in [Phase::Linear, Phase::Minimum] {
            let h = design_eq(&bands, fs, 8191, phase);
            for f in log_freqs(fs, EQ_POINTS) {
                let (got, want) = (fir_magnitude(&h, fs, f), direct(&h, 2.0 * std::f64::consts::PI * f / fs));
                assert!((got - want).abs() <= 1e-9 * want + 1e-12, "{phase:?} at {f:.1} Hz: {got} vs {want}");
            }
            let bins = fir_power_at_bins(&h);
            assert_eq!(bins.len(), FFT_LEN / 2 + 1);
            for (k, &got) in bins.iter().enumerate().step_by(7) {
                let want = direct(&h, 2.0 * std::f64::consts::PI * k as f64 / FFT_LEN as f64).powi(2);
                assert!((got - want).abs() <= 1e-9 * want + 1e-24, "{phase:?} at bin {k}: {got} vs {want}");
            }
        }
    }
}
