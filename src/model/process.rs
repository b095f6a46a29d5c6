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
    /// Order of `mono_below_hz`'s high-pass: 24 dB per octave, steep enough that the side signal
    /// an octave below is 24 dB down, as a mastering "mono maker" is.
    pub const MONO_BELOW_ORDER: u32 = 4;
}

/// Where a stage's keys come from: the session builder implements it, so that every bad value is
/// reported with its key and line, and every key a stage does not read is refused.
pub trait StageKeys {
    /// The number under `key` (`default` when absent), refused outside [min, max].
    fn number(&mut self, key: &str, default: f64, min: f64, max: f64) -> Result<f64>;
    /// The session's `[eq_design] taps`, for a stage that designs a FIR as the EQ is.
    fn eq_taps(&self) -> usize;
}

impl Process {
    /// The `type` of every stage a chain accepts.
    pub const TYPES: &'static [&'static str] = &["width"];

    /// The stage of type `kind` read from `keys`; None for a type that is not one of `TYPES`.
    pub fn parse(kind: &str, keys: &mut dyn StageKeys) -> Result<Option<Process>> {
        Ok(Some(match kind {
            "width" => Process::Width(Width {
                width: keys.number("width", 1.0, 0.0, 4.0)?,
                mono_below_hz: keys.number("mono_below_hz", 0.0, 0.0, 1000.0)?,
                taps: keys.eq_taps(),
            }),
            _ => return Ok(None),
        }))
    }

    /// Its `type` as written in the session file.
    pub fn name(&self) -> &'static str {
        match self {
            Process::Width(_) => "width",
        }
    }

    /// Frames by which the stage delays its signal at `sample_rate` (compensated by the engines
    /// with every other latency, `engine::Alignment`).
    pub fn latency(&self, _sample_rate: u32) -> usize {
        match self {
            Process::Width(w) if w.mono_below_hz > 0.0 => (w.taps - 1) / 2,
            Process::Width(_) => 0,
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
