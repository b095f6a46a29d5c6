//! EQ bands, the FIR design settings and where a stem's or the bus's filter comes from.
use std::path::PathBuf;

/// One EQ band; frequencies in Hz, gains in dB. RBJ Audio-EQ-Cookbook definitions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum EqBand {
    Peak {
        freq_hz: f64,
        gain_db: f64,
        q: f64,
    },
    LowShelf {
        freq_hz: f64,
        gain_db: f64,
        q: f64,
    },
    HighShelf {
        freq_hz: f64,
        gain_db: f64,
        q: f64,
    },
    /// Butterworth high-pass of `order` 1..=8 (cascade of cookbook sections).
    Highpass {
        freq_hz: f64,
        order: u32,
    },
    Lowpass {
        freq_hz: f64,
        order: u32,
    },
    Notch {
        freq_hz: f64,
        q: f64,
    },
    Bandpass {
        freq_hz: f64,
        q: f64,
    },
    /// Tilt around `freq_hz`: +gain_db/2 above, -gain_db/2 below (a low shelf and a high shelf).
    Tilt {
        freq_hz: f64,
        gain_db: f64,
    },
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

impl EqBand {
    pub fn freq_hz(&self) -> f64 {
        match *self {
            EqBand::Peak { freq_hz, .. }
            | EqBand::LowShelf { freq_hz, .. }
            | EqBand::HighShelf { freq_hz, .. }
            | EqBand::Highpass { freq_hz, .. }
            | EqBand::Lowpass { freq_hz, .. }
            | EqBand::Notch { freq_hz, .. }
            | EqBand::Bandpass { freq_hz, .. }
            | EqBand::Tilt { freq_hz, .. } => freq_hz,
        }
    }
    /// The band's `type` as written in the session file.
    pub fn type_name(&self) -> &'static str {
        match self {
            EqBand::Peak { .. } => "peak",
            EqBand::LowShelf { .. } => "low_shelf",
            EqBand::HighShelf { .. } => "high_shelf",
            EqBand::Highpass { .. } => "highpass",
            EqBand::Lowpass { .. } => "lowpass",
            EqBand::Notch { .. } => "notch",
            EqBand::Bandpass { .. } => "bandpass",
            EqBand::Tilt { .. } => "tilt",
        }
    }
}
