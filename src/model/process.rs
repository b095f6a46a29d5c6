//! The stages of a `process` chain (design/mastering.md): what each takes from the session file
//! and what the engines need to know of it (latency, the channels it takes). Adding a stage here is
//! a variant, its parameters and its arm in each `match`; its DSP lives in `cpu/<stage>.rs`,
//! `gpu/<stage>.rs` and `shaders/<stage>.wgsl`.
use crate::error::Result;

/// One stage of a stem's chain, as validated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Process {
    Width(Width),
    Saturation(Saturation),
    Transient(Transient),
}

/// `width`: mid/side, M = (L + R)/2, S = (L - R)/2, S' = width·S, L' = M + S', R' = M - S'.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Width {
    /// 0 is mono, 1 leaves the signal unchanged, above 1 widens.
    pub width: f64,
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

    /// Frames by which its output lags its input: the interpolator's latency plus the decimator's
    /// (`dsp::oversampling::resampling_latency`), 0 without oversampling.
    pub fn latency(&self) -> usize {
        crate::dsp::oversampling::resampling_latency(&crate::dsp::oversampling::design_oversampling(self.oversampling))
    }
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
    /// The number under `key` (`default` when absent), refused unless it is one of `allowed`.
    fn one_of(&mut self, key: &str, default: f64, allowed: &[f64]) -> Result<f64>;
}

impl Process {
    /// The `type` of every stage a chain accepts.
    pub const TYPES: &'static [&'static str] = &["width", "saturation", "transient"];

    /// The stage of type `kind` read from `keys`; None for a type that is not one of `TYPES`.
    pub fn parse(kind: &str, keys: &mut dyn StageKeys) -> Result<Option<Process>> {
        Ok(Some(match kind {
            "width" => Process::Width(Width { width: keys.number("width", 1.0, 0.0, 4.0)? }),
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
            Process::Width(_) => "width",
            Process::Saturation(_) => "saturation",
            Process::Transient(_) => "transient",
        }
    }

    /// Frames by which the stage delays its signal at `sample_rate` (compensated by the engines
    /// with every other latency, `engine::Alignment`).
    pub fn latency(&self, _sample_rate: u32) -> usize {
        match self {
            Process::Width(_) | Process::Transient(_) => 0,
            Process::Saturation(p) => p.latency(),
        }
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
