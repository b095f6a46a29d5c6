//! The session file (DESIGN.md "Session file"): parse, validate every value, resolve paths.
//!
//! SKELETON: the types below are the contract other modules build on. Parsing and validation
//! (`Session::load`, `Session::from_toml_str`, `Session::validate_sample_rate`) are filled in by the
//! session work.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Bus layout, in WAV channel order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    Mono,
    Stereo,
    /// L R C LFE Ls Rs
    Surround51,
    /// L R C LFE Lrs Rrs Lss Rss (WAV order: back pair before side pair)
    Surround71,
}

impl Layout {
    pub fn channels(self) -> usize {
        match self {
            Layout::Mono => 1,
            Layout::Stereo => 2,
            Layout::Surround51 => 6,
            Layout::Surround71 => 8,
        }
    }
    /// The layout a file of `channels` channels is read as when no session says otherwise.
    pub fn for_channels(channels: usize) -> Option<Layout> {
        match channels {
            1 => Some(Layout::Mono),
            2 => Some(Layout::Stereo),
            6 => Some(Layout::Surround51),
            8 => Some(Layout::Surround71),
            _ => None,
        }
    }
    /// WAVE_FORMAT_EXTENSIBLE dwChannelMask.
    pub fn channel_mask(self) -> u32 {
        match self {
            Layout::Mono => 0x4,                 // FC
            Layout::Stereo => 0x3,               // FL FR
            Layout::Surround51 => 0x60F,         // FL FR FC LFE SL SR
            Layout::Surround71 => 0x63F,         // FL FR FC LFE BL BR SL SR
        }
    }
    /// Index of the LFE channel, if any (excluded from loudness).
    pub fn lfe_channel(self) -> Option<usize> {
        match self {
            Layout::Surround51 | Layout::Surround71 => Some(3),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Layout::Mono => "mono",
            Layout::Stereo => "stereo",
            Layout::Surround51 => "5.1",
            Layout::Surround71 => "7.1",
        }
    }
}

/// One EQ band; frequencies in Hz, gains in dB. RBJ Audio-EQ-Cookbook definitions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum EqBand {
    Peak { freq_hz: f64, gain_db: f64, q: f64 },
    LowShelf { freq_hz: f64, gain_db: f64, q: f64 },
    HighShelf { freq_hz: f64, gain_db: f64, q: f64 },
    /// Butterworth high-pass of `order` 1..=8 (cascade of cookbook sections).
    Highpass { freq_hz: f64, order: u32 },
    Lowpass { freq_hz: f64, order: u32 },
    Notch { freq_hz: f64, q: f64 },
    Bandpass { freq_hz: f64, q: f64 },
    /// Tilt around `freq_hz`: +gain_db/2 above, -gain_db/2 below (a low shelf and a high shelf).
    Tilt { freq_hz: f64, gain_db: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Phase {
    Linear,
    Minimum,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EqDesign {
    pub phase: Phase,
    /// Odd, 15..=65535; default 8191.
    pub taps: usize,
}

/// Where a stem's (or the bus's) filter comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Filter {
    None,
    Bands(Vec<EqBand>),
    /// A user impulse response file (mono, or one channel per stem channel), used as given.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stem {
    pub name: String,
    /// Resolved against the session file's folder.
    pub path: PathBuf,
    pub gain_db: f64,
    pub mute: bool,
    pub filter: Filter,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Master {
    /// Integrated loudness target, LUFS; None = no normalisation (limiter only).
    pub target_lufs: Option<f64>,
    pub ceiling_dbtp: f64,
    pub lookahead_ms: f64,
    pub release_ms: f64,
    /// 1, 2, 4 or 8.
    pub oversampling: u32,
    /// The profile name when one set the target and ceiling.
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OutputKind {
    Master,
    Stems,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SampleFormat {
    Pcm16,
    Pcm24,
    Pcm32,
    F32,
}

impl SampleFormat {
    /// Integer bit depth, None for float.
    pub fn int_bits(self) -> Option<u32> {
        match self {
            SampleFormat::Pcm16 => Some(16),
            SampleFormat::Pcm24 => Some(24),
            SampleFormat::Pcm32 => Some(32),
            SampleFormat::F32 => None,
        }
    }
    pub fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::Pcm16 => 2,
            SampleFormat::Pcm24 => 3,
            SampleFormat::Pcm32 | SampleFormat::F32 => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Dither {
    Tpdf,
    None,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Output {
    /// Relative to the output folder (never absolute, never escaping it with `..`).
    pub path: PathBuf,
    pub kind: OutputKind,
    pub format: SampleFormat,
    pub dither: Dither,
}

/// `check` settings (an extension of DESIGN.md's session: `[check] null_threshold_db = -60.0`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckSettings {
    /// Null test passes when residual level relative to the mix is at or below this (dB). Default -60.
    pub null_threshold_db: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Session {
    /// The session file itself.
    pub file: PathBuf,
    /// Its folder: relative paths in the file resolve against it; default output folder.
    pub dir: PathBuf,
    pub name: String,
    pub layout: Layout,
    pub reference_mix: Option<PathBuf>,
    pub stems: Vec<Stem>,
    pub bus_filter: Filter,
    pub eq_design: EqDesign,
    pub master: Option<Master>,
    pub outputs: Vec<Output>,
    pub check: CheckSettings,
}

impl Session {
    /// Read, parse and validate a session file; every path resolved against its folder.
    pub fn load(path: &Path) -> Result<Session> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(path, format!("cannot read session file: {e}")))?;
        Session::from_toml_str(&text, path)
    }

    /// Parse and validate `text` as if read from `path`.
    pub fn from_toml_str(_text: &str, path: &Path) -> Result<Session> {
        Err(Error::input(path, "session parsing is not implemented yet"))
    }

    /// Checks that need the program's sample rate (band frequencies below Nyquist, look-ahead of at
    /// least one frame). Called once the stems have been opened.
    pub fn validate_sample_rate(&self, _sample_rate: u32) -> Result<()> {
        Ok(())
    }
}
