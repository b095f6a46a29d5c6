//! The file as written: every key optional here, so that a missing key is reported by the builder with its table and line rather than by serde; `deny_unknown_fields` catches typos.
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a session table")]
pub struct Session {
    pub name: Option<String>,
    pub layout: Option<String>,
    pub reference_mix: Option<String>,
    pub stems: Option<Vec<Stem>>,
    pub bus: Option<Bus>,
    pub eq_design: Option<EqDesign>,
    pub master: Option<Master>,
    pub outputs: Option<Vec<Output>>,
    pub variants: Option<Vec<Variant>>,
    pub check: Option<Check>,
    pub delivery: Option<Delivery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[variants]] table")]
pub struct Variant {
    pub name: Option<String>,
    pub mute: Option<Vec<String>>,
    pub gain_db: Option<std::collections::BTreeMap<String, f64>>,
    pub mode: Option<String>,
    pub loudness: Option<String>,
    pub outputs: Option<Vec<Output>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[stems]] table")]
pub struct Stem {
    pub name: Option<String>,
    pub path: Option<String>,
    pub gain_db: Option<f64>,
    pub mute: Option<bool>,
    pub role: Option<String>,
    pub eq: Option<Vec<Band>>,
    pub fir: Option<String>,
    /// Each stage's keys are read by `session::process` (they differ per `type`).
    pub process: Option<Vec<toml::Table>>,
}

/// One flat struct for every band type (not a serde-tagged enum): serde buffers a tagged enum's
/// content and loses toml's spans, so an unknown key would lose its line. Which keys apply to
/// which `type` is checked by the builder (`BAND_KEYS`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an eq band table")]
pub struct Band {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub freq_hz: Option<f64>,
    pub gain_db: Option<f64>,
    pub q: Option<f64>,
    pub order: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [bus] table")]
pub struct Bus {
    pub eq: Option<Vec<Band>>,
    pub fir: Option<String>,
    /// As a stem's `process`: read by `session::process`.
    pub process: Option<Vec<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [eq_design] table")]
pub struct EqDesign {
    pub phase: Option<String>,
    pub taps: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [master] table")]
pub struct Master {
    pub target_lufs: Option<f64>,
    pub ceiling_dbtp: Option<f64>,
    pub lookahead_ms: Option<f64>,
    pub release_ms: Option<f64>,
    pub oversampling: Option<i64>,
    pub profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[outputs]] table")]
pub struct Output {
    pub path: Option<String>,
    pub kind: Option<String>,
    pub format: Option<String>,
    pub dither: Option<String>,
    pub allow_residual: Option<bool>,
    pub sample_rate: Option<i64>,
    pub split_channels: Option<bool>,
    pub layout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [delivery] table")]
pub struct Delivery {
    pub title: Option<String>,
    pub timecode_start: Option<String>,
    pub frame_rate: Option<String>,
    pub date: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [check] table")]
pub struct Check {
    pub null_threshold_db: Option<f64>,
}

/// Keys each band `type` takes, besides `type`; `true` = required.
pub(super) const BAND_KEYS: &[(&str, &[(&str, bool)])] = &[
    ("peak", &[("freq_hz", true), ("gain_db", true), ("q", true)]),
    ("low_shelf", &[("freq_hz", true), ("gain_db", true), ("q", true)]),
    ("high_shelf", &[("freq_hz", true), ("gain_db", true), ("q", true)]),
    ("highpass", &[("freq_hz", true), ("order", false)]),
    ("lowpass", &[("freq_hz", true), ("order", false)]),
    ("notch", &[("freq_hz", true), ("q", true)]),
    ("bandpass", &[("freq_hz", true), ("q", true)]),
    ("tilt", &[("freq_hz", true), ("gain_db", true)]),
];
