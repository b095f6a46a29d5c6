//! The session file (DESIGN.md "Session file"): parse, validate every value, resolve paths.
//!
//! Parsing goes through private `raw` structs with `deny_unknown_fields`, so a typo'd key is an error
//! naming the key, its table and its line; every value is then checked against its rule and turned
//! into the public types below, which other modules build on.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::{
    Dither, EqBand, EqDesign, FRAME_RATES, Filter, FrameRate, Layout, Origination, OutputKind, Phase, Process,
    SampleFormat, Timecode,
};

mod build;
mod locate;
mod process;
mod raw;
pub mod template;

use build::Builder;
use locate::Locator;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stem {
    pub name: String,
    /// Resolved against the session file's folder.
    pub path: PathBuf,
    pub gain_db: f64,
    pub mute: bool,
    pub filter: Filter,
    /// Its `process` chain, after the EQ and before gain and routing (design/mastering.md).
    pub process: Vec<Process>,
    /// An optional tag (design/mastering.md `role`): any word; a variant mutes every stem of a
    /// role with `mute = ["role:NAME"]` (an M&E: `"role:dialogue"`).
    pub role: Option<String>,
}

/// How a variant is made (design/deliverables.md "Variants").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantMode {
    /// The sum of the main render's linked stem outputs, less the muted ones: the main's G and
    /// limiter envelope, so shared elements are identical to the sample.
    Stems,
    /// The variant's stems through the bus with its own gains and its own limiter.
    Remaster,
}

/// A remaster variant's G.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantLoudness {
    /// The main master's G: level-matched to the main.
    Main,
    /// Its own G, normalised to the session's target.
    Own,
}

/// An alternate version of the master (`[[variants]]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Variant {
    pub name: String,
    /// Per session stem: muted in this variant (on top of the stem's own `mute`).
    pub mute: Vec<bool>,
    /// Per session stem: dB on top of the stem's `gain_db` (0 where not given).
    pub gain_db: Vec<f64>,
    pub mode: VariantMode,
    /// Remaster only (stems variants carry the main's G).
    pub loudness: VariantLoudness,
    pub outputs: Vec<Output>,
}

impl Variant {
    /// The linear weight of session stem `i` in this variant, against the main: 0 when muted,
    /// 10^(gain_db/20) otherwise (the stem's own gain is already in its contribution).
    pub fn weight(&self, i: usize) -> f32 {
        if self.mute[i] { 0.0 } else { 10f64.powf(self.gain_db[i] / 20.0) as f32 }
    }
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
    /// The target is for the programme's loudness gated on its dialogue stems (the stems with
    /// role "dialogue", design/deliverables.md "Dialogue-gated loudness"), not its integrated
    /// loudness: a `Dialogue` profile, on a session with a dialogue stem.
    pub dialogue: bool,
}

/// The role of the stems dialogue gating listens to.
pub const DIALOGUE_ROLE: &str = "dialogue";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Output {
    /// Relative to the output folder (never absolute, never escaping it with `..`).
    pub path: PathBuf,
    pub kind: OutputKind,
    pub format: SampleFormat,
    pub dither: Dither,
    /// Stems output only: accept stems that do not sum to the master exactly (a bus stage that
    /// cannot be shared out among stems, design/mastering.md); the report gives the residual.
    pub allow_residual: bool,
    /// The rate the output is delivered at, when it is not the stems' (`sample_rate = 44100`,
    /// design/deliverables.md "Output formats"): resampled in the writing sink. One of
    /// `dsp::resample::SUPPORTED_RATES`.
    pub sample_rate: Option<u32>,
    /// One mono file per channel, `<path stem>.<label>.wav` (design/deliverables.md).
    pub split_channels: bool,
    /// `layout = "2.0"` on a 5.1 or 7.1 session: the output is the ITU-R BS.775 fold-down of the
    /// bus, normalised and limited as a deliverable of its own (design/deliverables.md "Output
    /// formats"). None: the session's layout (`layout` left out, or naming the session's own).
    pub layout: Option<Layout>,
}

impl Output {
    /// The rate this output is delivered at, for a session whose stems are at `session_rate` Hz.
    pub fn delivered_rate(&self, session_rate: u32) -> u32 {
        self.sample_rate.unwrap_or(session_rate)
    }
}

/// `[delivery]` (design/deliverables.md): what the outputs' BWF `bext` chunks say beyond the
/// session's name.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delivery {
    /// The programme's title; the session's name when not given.
    pub title: Option<String>,
    /// The first frame's timecode, at `frame_rate`; None: midnight (TimeReference 0).
    pub timecode_start: Option<Timecode>,
    /// `frame_rate` (default 25, which only matters with a timecode).
    pub frame_rate: FrameRate,
    /// `date`: OriginationDate (and Time when given); None: from `SOURCE_DATE_EPOCH` at render
    /// time, else blank.
    pub date: Option<Origination>,
}

impl Default for Delivery {
    /// No `[delivery]` table: the session's name as title, TimeReference 0, no date.
    fn default() -> Self {
        Delivery {
            title: None,
            timecode_start: None,
            frame_rate: FrameRate { nominal: 25, pulled_down: false },
            date: None,
        }
    }
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
    /// The bus's `process` chain, after the bus EQ, before G and the limiter, in order.
    pub bus_process: Vec<Process>,
    pub eq_design: EqDesign,
    pub master: Option<Master>,
    pub outputs: Vec<Output>,
    /// Alternate versions rendered beside the main (design/deliverables.md "Variants").
    pub variants: Vec<Variant>,
    pub check: CheckSettings,
    pub delivery: Delivery,
}

impl Session {
    /// Read, parse and validate a session file; every path resolved against its folder.
    pub fn load(path: &Path) -> Result<Session> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::input_from(path, "cannot read session file", e))?;
        Session::from_toml_str(&text, path)
    }

    /// Parse and validate `text` as if read from `path`. Paths are resolved against `path`'s
    /// folder but not opened, except that an output path template with `{rate}` reads the first
    /// stem's header for its sample rate (templates are expanded here, so that two outputs that
    /// expand to one file are refused before anything is read).
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Session> {
        let locator = Locator::parse(text, path)?;
        let raw: raw::Session = toml::from_str(text).map_err(|e| locator.serde_error(&e))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Builder { loc: &locator, dir: &dir, rate: Default::default() }.session(raw, path)
    }

    /// Checks that need the program's sample rate (band frequencies below Nyquist, look-ahead of at
    /// least one frame). Called once the stems have been opened.
    pub fn validate_sample_rate(&self, sample_rate: u32) -> Result<()> {
        let bad = |msg: String| Err(Error::input(&self.file, msg));
        if sample_rate == 0 {
            return bad("sample rate 0 Hz: the stems report no sample rate".into());
        }
        let nyquist = f64::from(sample_rate) / 2.0;
        let mut filters: Vec<(String, &Filter)> =
            self.stems.iter().enumerate().map(|(i, s)| (format!("stems[{i}] ({})", s.name), &s.filter)).collect();
        filters.push(("bus".to_string(), &self.bus_filter));
        for (label, filter) in filters {
            if let Filter::Bands(bands) = filter {
                for (j, band) in bands.iter().enumerate() {
                    let f = band.freq_hz();
                    if f >= nyquist {
                        return bad(format!(
                            "{label}.eq[{j}] ({}): freq_hz = {f} Hz must be below Nyquist, {nyquist} Hz \
                             at the stems' sample rate of {sample_rate} Hz",
                            band.type_name()
                        ));
                    }
                }
            }
        }
        if let Some(master) = &self.master
            && master.lookahead_frames(sample_rate) < 1
        {
            return bad(format!(
                "master.lookahead_ms = {} ms is less than one frame at {sample_rate} Hz \
                 (round(lookahead_ms * fs / 1000) must be at least 1)",
                master.lookahead_ms
            ));
        }
        Ok(())
    }

    /// Where a `kind = "stems"` output writes `stem`: `<output.path>/<stem name>.wav`, or, when
    /// its path template holds `{stem}`, that path with the stem's name in it; relative to the
    /// output folder chosen at render time.
    pub fn stem_output_path(&self, output: &Output, stem: &Stem) -> PathBuf {
        let path = output.path.to_string_lossy();
        if path.contains("{stem}") {
            PathBuf::from(path.replace("{stem}", &stem.name))
        } else {
            output.path.join(format!("{}.wav", stem.name))
        }
    }

    /// The sample rate an output is written at (`{rate}` in its path): its `sample_rate`, else
    /// the stems'.
    pub fn output_rate(output: &Output, stems_rate: u32) -> u32 {
        output.delivered_rate(stems_rate)
    }

    /// The speaker layout an output is written in (`{layout}` in its path): its fold-down's, else
    /// the session's.
    pub fn output_layout(&self, output: &Output) -> Layout {
        output.layout.unwrap_or(self.layout)
    }

    /// The stems a variant sums (not muted in the session nor in the variant).
    pub fn variant_stems<'a>(&'a self, v: &'a Variant) -> impl Iterator<Item = (usize, &'a Stem)> {
        self.unmuted_stems().filter(|(i, _)| !v.mute[*i])
    }

    /// The files of one planned output file `path` (relative to the output folder): itself, or
    /// with `split_channels` one per channel of the session's layout, `<path stem>.<label>.wav`
    /// beside it, each with its channel index.
    pub fn split_paths(&self, output: &Output, path: &Path) -> Vec<(PathBuf, Option<usize>)> {
        if !output.split_channels {
            return vec![(path.to_path_buf(), None)];
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        self.layout
            .channel_labels()
            .iter()
            .enumerate()
            .map(|(c, label)| (path.with_file_name(format!("{stem}.{label}.wav")), Some(c)))
            .collect()
    }

    /// The stems that are summed (not muted), with their index into `stems`.
    pub fn unmuted_stems(&self) -> impl Iterator<Item = (usize, &Stem)> {
        self.stems.iter().enumerate().filter(|(_, s)| !s.mute)
    }
}

impl Master {
    /// Look-ahead in frames, DESIGN.md "L = round(lookahead_ms·fs/1000) ≥ 1" (the ≥ 1 is checked by
    /// `Session::validate_sample_rate`).
    pub fn lookahead_frames(&self, sample_rate: u32) -> usize {
        (self.lookahead_ms * f64::from(sample_rate) / 1000.0).round() as usize
    }
}
