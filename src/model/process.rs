//! The stages of a `process` chain (design/mastering.md): what each takes from the session file
//! and what the engines need to know of it (the channels it takes; its latency, which depends on
//! designed filters, is `dsp::process_latency`). Adding a stage here is
//! a variant, its parameters and its arm in each `match`; its DSP lives in `cpu/<stage>.rs`,
//! `gpu/<stage>.rs` and `shaders/<stage>.wgsl`.
use crate::error::Result;

/// One stage of a stem's chain, as validated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Process {
    Compressor(Compressor),
    Width(Width),
    Saturation(Saturation),
    Transient(Transient),
}

/// `compressor`: feed-forward, log domain (design/mastering.md, Giannoulis, Massberg & Reiss 2012).
/// Level x (dB) per channel from the side-chain (optionally high-passed), linked across channels,
/// a quadratic soft-knee gain computer, smooth branching ballistics in the gain domain, and the
/// gain applied to the audio delayed by the look-ahead, with make-up gain and a dry/wet mix.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Compressor {
    pub threshold_db: f64,
    pub ratio: f64,
    pub knee_db: f64,
    pub attack_ms: f64,
    pub release_ms: f64,
    pub detector: Detector,
    pub rms_ms: f64,
    pub link: f64,
    /// 0 is off.
    pub sidechain_hpf_hz: f64,
    pub lookahead_ms: f64,
    pub makeup_db: f64,
    pub mix: f64,
    /// `key`: another unmuted stem's name (ducking); its processed signal is the side-chain and its
    /// level per frame is the max over its channels. The session checks the name (it exists, is not
    /// this stem, is not muted, makes no cycle).
    pub key: Option<String>,
}

/// How a compressor measures its side-chain's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// 20·log10(max(|s|, 1e-9)).
    Peak,
    /// 10·log10(max(mean of s² over the last `rms_ms`, 1e-18)).
    Rms,
}

impl Compressor {
    /// A compressor at `threshold_db` with mastering.md's default for every other key.
    pub fn new(threshold_db: f64) -> Compressor {
        Compressor {
            threshold_db,
            ratio: 4.0,
            knee_db: 0.0,
            attack_ms: 10.0,
            release_ms: 100.0,
            detector: Detector::Peak,
            rms_ms: 10.0,
            link: 1.0,
            sidechain_hpf_hz: 0.0,
            lookahead_ms: 0.0,
            makeup_db: 0.0,
            mix: 1.0,
            key: None,
        }
    }

    /// The look-ahead in frames at `sample_rate`: round(lookahead_ms·fs/1000).
    pub fn lookahead(&self, sample_rate: u32) -> usize {
        (self.lookahead_ms * sample_rate as f64 / 1000.0).round() as usize
    }

    /// The RMS window in frames at `sample_rate`: round(rms_ms·fs/1000), at least 1.
    pub fn rms_frames(&self, sample_rate: u32) -> usize {
        ((self.rms_ms * sample_rate as f64 / 1000.0).round() as usize).max(1)
    }
}

/// `width`: mid/side, M = (L + R)/2, S = (L - R)/2, S' = width·S, L' = M + S', R' = M - S'.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Width {
    /// 0 is mono, 1 leaves the signal unchanged, above 1 widens.
    pub width: f64,
    /// 0: off; else S' is high-passed there (a linear-phase Butterworth magnitude of order
    /// `MONO_BELOW_ORDER`, designed as the EQ is, `taps` long), so the lows are mono.
    pub mono_below_hz: f64,
    /// The session's `[eq_design] taps`: the high-pass's length (its latency is (taps - 1)/2).
    pub taps: usize,
}

impl Width {
    /// Order of `mono_below_hz`'s high-pass: 36 dB per octave, so that the side an octave below
    /// (60 Hz for 120) is 36 dB down and anything above four times the frequency passes within
    /// 0.1 dB, as issue 11 asks of a mastering "mono maker" (4th order left 60 Hz only 24 dB down).
    pub const MONO_BELOW_ORDER: u32 = 6;
}

/// `saturation`: harmonic enhancement, anti-aliased. Upsample by `oversampling` with the limiter's
/// polyphase table, y = tanh(g·x)/g with g = 10^(drive_db/20), downsample with the transpose of the
/// same table, out = mix·y + (1 − mix)·x (the dry path delayed as the wet one); `cpu::saturation`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Saturation {
    /// Input gain into the tanh, dB (≥ 0); the output is divided by it, so small signals pass at unity.
    pub drive_db: f64,
    /// 0 is dry, 1 is fully saturated.
    pub mix: f64,
    /// 1, 2, 4 or 8.
    pub oversampling: usize,
}

impl Saturation {
    /// The oversampling factors accepted.
    pub const FACTORS: &'static [f64] = &[1.0, 2.0, 4.0, 8.0];
}

/// `transient`: attack / sustain shaper, channels linked, latency 0; the exact formula is
/// `cpu::transient`'s: two followers of r = max over channels |x|, F (attack `fast_ms`, release
/// `slow_ms`) and S (attack `slow_ms`, release `release_ms`); onset = 1 − (S/F)² where F > S, tail =
/// 1 − (F/S)² where S > F (each 0 otherwise, so both lie in 0..1); gain dB = attack_db·onset +
/// sustain_db·tail.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Transient {
    pub attack_db: f64,
    pub sustain_db: f64,
    pub fast_ms: f64,
    pub slow_ms: f64,
    pub release_ms: f64,
}

/// Where a stage's keys come from: the session builder implements it, so that every bad value is
/// reported with its key and line, and every key a stage does not read is refused.
pub trait StageKeys {
    /// The number under `key` (`default` when absent), refused outside [min, max].
    fn number(&mut self, key: &str, default: f64, min: f64, max: f64) -> Result<f64>;
    /// The session's `[eq_design] taps`, for a stage that designs a FIR as the EQ is.
    fn eq_taps(&self) -> usize;
    /// The number under `key`, which must be there, refused outside [min, max].
    fn required_number(&mut self, key: &str, min: f64, max: f64) -> Result<f64>;
    /// The string under `key` (`default` when absent), which must be one of `options`.
    fn choice(&mut self, key: &str, default: &'static str, options: &[&'static str]) -> Result<&'static str>;
    /// The number under `key` (`default` when absent), refused unless it is one of `allowed`.
    fn one_of(&mut self, key: &str, default: f64, allowed: &[f64]) -> Result<f64>;
    /// The non-empty string under `key`, None when absent.
    fn string(&mut self, key: &str) -> Result<Option<String>>;
}

impl Process {
    /// The `type` of every stage a chain accepts.
    pub const TYPES: &'static [&'static str] = &["compressor", "width", "saturation", "transient"];

    /// The stage of type `kind` read from `keys`; None for a type that is not one of `TYPES`.
    pub fn parse(kind: &str, keys: &mut dyn StageKeys) -> Result<Option<Process>> {
        Ok(Some(match kind {
            "compressor" => {
                let d = Compressor::new(keys.required_number("threshold_db", -80.0, 0.0)?);
                Process::Compressor(Compressor {
                    ratio: keys.number("ratio", d.ratio, 1.0, 100.0)?,
                    knee_db: keys.number("knee_db", d.knee_db, 0.0, 48.0)?,
                    attack_ms: positive_ms(keys, "attack_ms", d.attack_ms)?,
                    release_ms: positive_ms(keys, "release_ms", d.release_ms)?,
                    detector: match keys.choice("detector", "peak", &["peak", "rms"])? {
                        "rms" => Detector::Rms,
                        _ => Detector::Peak,
                    },
                    rms_ms: keys.number("rms_ms", d.rms_ms, 0.01, 1000.0)?,
                    link: keys.number("link", d.link, 0.0, 1.0)?,
                    sidechain_hpf_hz: keys.number("sidechain_hpf_hz", d.sidechain_hpf_hz, 0.0, 2000.0)?,
                    lookahead_ms: keys.number("lookahead_ms", d.lookahead_ms, 0.0, 20.0)?,
                    makeup_db: keys.number("makeup_db", d.makeup_db, -24.0, 24.0)?,
                    mix: keys.number("mix", d.mix, 0.0, 1.0)?,
                    key: keys.string("key")?,
                    ..d
                })
            }
            "width" => Process::Width(Width {
                width: keys.number("width", 1.0, 0.0, 4.0)?,
                mono_below_hz: keys.number("mono_below_hz", 0.0, 0.0, 1000.0)?,
                taps: keys.eq_taps(),
            }),
            "saturation" => Process::Saturation(Saturation {
                drive_db: keys.number("drive_db", 6.0, 0.0, 48.0)?,
                mix: keys.number("mix", 1.0, 0.0, 1.0)?,
                oversampling: keys.one_of("oversampling", 4.0, Saturation::FACTORS)? as usize,
            }),
            "transient" => Process::Transient(Transient {
                attack_db: keys.number("attack_db", 0.0, -24.0, 24.0)?,
                sustain_db: keys.number("sustain_db", 0.0, -24.0, 24.0)?,
                fast_ms: keys.number("fast_ms", 1.0, 0.01, 1000.0)?,
                slow_ms: keys.number("slow_ms", 20.0, 0.01, 1000.0)?,
                release_ms: keys.number("release_ms", 150.0, 0.01, 10000.0)?,
            }),
            _ => return Ok(None),
        }))
    }

    /// Its `type` as written in the session file.
    pub fn name(&self) -> &'static str {
        match self {
            Process::Compressor(_) => "compressor",
            Process::Width(_) => "width",
            Process::Saturation(_) => "saturation",
            Process::Transient(_) => "transient",
        }
    }

    /// How this stage, on the bus, reaches the stem outputs (design/mastering.md, "Stems that
    /// still sum to the master").
    pub fn share(&self) -> Share {
        match self {
            Process::Compressor(_) | Process::Transient(_) => Share::Envelope,
            Process::Width(_) => Share::Linear,
            Process::Saturation(_) => Share::Residual,
        }
    }

    /// Whether stem outputs still sum to the master with this stage on the bus.
    pub fn shares_with_stems(&self) -> bool {
        self.share() != Share::Residual
    }

    /// Whether it runs on a signal of `channels` channels; Err says why not.
    pub fn takes(&self, channels: usize) -> std::result::Result<(), String> {
        match self {
            Process::Width(_) if channels != 2 => {
                Err(format!("`width` works on mid and side, so it needs a stereo signal; this one has {channels}"))
            }
            _ => Ok(()),
        }
    }
}

/// A time in ms, above 0 and at most 10 s (a zero time constant has no exp(-1/(t·fs))).
fn positive_ms(keys: &mut dyn StageKeys, key: &str, default: f64) -> Result<f64> {
    keys.number(key, default, 0.001, 10_000.0)
}

/// How a bus stage's work is shared out among the stem outputs, so that they still sum to the
/// master (design/mastering.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// A gain per channel and frame computed once on the bus (and a delay): each stem output is
    /// delayed alike and takes the same gains.
    Envelope,
    /// Linear and time-invariant: each stem output goes through a copy of the stage.
    Linear,
    /// Neither: each stem output is only delayed alike, and the stems miss the stage's residual.
    Residual,
}
