//! The session file (DESIGN.md "Session file"): parse, validate every value, resolve paths.
//!
//! Parsing goes through private `raw` structs with `deny_unknown_fields`, so a typo'd key is an error
//! naming the key, its table and its line; every value is then checked against its rule and turned
//! into the public types below, which other modules build on.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use crate::model::{Dither, EqBand, EqDesign, Filter, Layout, OutputKind, Phase, SampleFormat};

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
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::input(path, format!("cannot read session file: {e}")))?;
        Session::from_toml_str(&text, path)
    }

    /// Parse and validate `text` as if read from `path`. Touches no file: paths are resolved
    /// against `path`'s folder but not opened.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Session> {
        let locator = Locator::parse(text, path)?;
        let raw: raw::Session = toml::from_str(text).map_err(|e| locator.serde_error(&e))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Builder { loc: &locator, dir: &dir }.session(raw, path)
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

    /// Where a `kind = "stems"` output writes `stem`: `<output.path>/<stem name>.wav`, relative to
    /// the output folder chosen at render time.
    pub fn stem_output_path(&self, output: &Output, stem: &Stem) -> PathBuf {
        output.path.join(format!("{}.wav", stem.name))
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

/// Target loudness (LUFS) and true-peak ceiling (dBTP) of a delivery profile (DESIGN.md `[master]
/// profile`): EBU R128 (-23 LUFS, -1 dBTP), ATSC A/85 (-24 LKFS, -2 dBTP), streaming (-14, -1).
pub fn profile_values(name: &str) -> Option<(f64, f64)> {
    match name {
        "ebu-r128" => Some((-23.0, -1.0)),
        "atsc-a85" => Some((-24.0, -2.0)),
        "streaming" => Some((-14.0, -1.0)),
        _ => None,
    }
}

const PROFILES: &str = "\"ebu-r128\", \"atsc-a85\", \"streaming\"";

/// The file as written: every key optional here, so that a missing key is reported by the builder
/// with its table and line rather than by serde; `deny_unknown_fields` catches typos.
mod raw {
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
        pub check: Option<Check>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a [[stems]] table")]
    pub struct Stem {
        pub name: Option<String>,
        pub path: Option<String>,
        pub gain_db: Option<f64>,
        pub mute: Option<bool>,
        pub eq: Option<Vec<Band>>,
        pub fir: Option<String>,
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
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a [check] table")]
    pub struct Check {
        pub null_threshold_db: Option<f64>,
    }
}

/// Keys each band `type` takes, besides `type`; `true` = required.
const BAND_KEYS: &[(&str, &[(&str, bool)])] = &[
    ("peak", &[("freq_hz", true), ("gain_db", true), ("q", true)]),
    ("low_shelf", &[("freq_hz", true), ("gain_db", true), ("q", true)]),
    ("high_shelf", &[("freq_hz", true), ("gain_db", true), ("q", true)]),
    ("highpass", &[("freq_hz", true), ("order", false)]),
    ("lowpass", &[("freq_hz", true), ("order", false)]),
    ("notch", &[("freq_hz", true), ("q", true)]),
    ("bandpass", &[("freq_hz", true), ("q", true)]),
    ("tilt", &[("freq_hz", true), ("gain_db", true)]),
];

/// Maps byte offsets of the TOML text to dotted paths ("stems[2].gain_db") and lines, so that
/// errors name the table and line they are about.
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    /// (span, path reported for an error in it, full path of the node)
    nodes: Vec<(std::ops::Range<usize>, String, String)>,
}

impl<'a> Locator<'a> {
    /// Parses the document for its spans; a TOML syntax error stops here, with its line and column.
    fn parse(text: &'a str, file: &'a Path) -> Result<Locator<'a>> {
        let mut loc = Locator { file, text, nodes: Vec::new() };
        let doc = toml::de::DeTable::parse(text).map_err(|e| {
            let at = e.span().map(|s| loc.line_col(s.start)).unwrap_or_default();
            Error::input(file, format!("invalid TOML: {}{at}", e.message()))
        })?;
        loc.walk_table(doc.get_ref(), "");
        Ok(loc)
    }

    fn walk_table(&mut self, table: &toml::de::DeTable<'_>, prefix: &str) {
        for (key, value) in table.iter() {
            let path = join(prefix, key.get_ref());
            // An unknown-key error points at the key: report the table it is in.
            self.nodes.push((key.span(), prefix.to_string(), path.clone()));
            self.walk_value(value, &path);
        }
    }

    fn walk_value(&mut self, value: &toml::Spanned<toml::de::DeValue<'_>>, path: &str) {
        // For a [[stems]] element the span is its header line; its keys carry their own spans.
        self.nodes.push((value.span(), path.to_string(), path.to_string()));
        match value.get_ref() {
            toml::de::DeValue::Table(t) => self.walk_table(t, path),
            toml::de::DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    self.walk_value(item, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }

    fn line_col(&self, offset: usize) -> String {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
        format!(" (line {line}, column {col})")
    }

    /// " (line N)" for the node at `path` (a key, or an array element's header), if it is in the file.
    fn line_of(&self, path: &str) -> String {
        self.nodes
            .iter()
            .find(|(_, _, full)| full == path)
            .map(|(span, _, _)| {
                let line = self.text[..span.start.min(self.text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default()
    }

    /// An error about `path` ("stems[2].gain_db" or "" for the top level).
    fn err(&self, path: &str, msg: impl std::fmt::Display) -> Error {
        let line = self.line_of(path);
        if path.is_empty() {
            Error::input(self.file, format!("{msg}{line}"))
        } else {
            Error::input(self.file, format!("{path}: {msg}{line}"))
        }
    }

    /// A serde error (unknown key, wrong type) re-worded and placed at the innermost node its span
    /// falls in.
    fn serde_error(&self, e: &toml::de::Error) -> Error {
        let msg = e
            .message()
            .replace("unknown field", "unknown key")
            .replace("missing field", "missing key")
            .replace("expected one of", "the keys here are")
            .replace(", expected `", ", the keys here are `")
            .replace("expected f64", "expected a number")
            .replace("expected i64", "expected an integer")
            .replace("expected a sequence", "expected an array");
        let Some(span) = e.span() else {
            return Error::input(self.file, msg);
        };
        let node = self
            .nodes
            .iter()
            .filter(|(s, _, _)| s.start <= span.start && (span.start < s.end || span.start == s.start))
            .min_by_key(|(s, _, _)| s.end - s.start);
        let at = self.line_col(span.start);
        match node {
            Some((_, reported, _)) if !reported.is_empty() => Error::input(self.file, format!("{reported}: {msg}{at}")),
            _ => Error::input(self.file, format!("{msg}{at}")),
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

/// Turns the raw file into a `Session`, checking each value against its rule.
struct Builder<'a> {
    loc: &'a Locator<'a>,
    dir: &'a Path,
}

impl Builder<'_> {
    fn session(&self, raw: raw::Session, file: &Path) -> Result<Session> {
        let loc = self.loc;
        let name = raw.name.ok_or_else(|| loc.err("", "missing required key `name`"))?;
        if name.trim().is_empty() {
            return Err(loc.err("name", "must not be empty"));
        }
        let layout_s = raw
            .layout
            .ok_or_else(|| loc.err("", "missing required key `layout` (\"mono\", \"stereo\", \"5.1\" or \"7.1\")"))?;
        let layout = match layout_s.as_str() {
            "mono" => Layout::Mono,
            "stereo" => Layout::Stereo,
            "5.1" => Layout::Surround51,
            "7.1" => Layout::Surround71,
            other => {
                return Err(loc.err(
                    "layout",
                    format!("layout = {other:?} is not one of \"mono\", \"stereo\", \"5.1\", \"7.1\""),
                ));
            }
        };
        let reference_mix = match raw.reference_mix {
            Some(p) => Some(self.input_path("reference_mix", &p)?),
            None => None,
        };

        let raw_stems = raw.stems.unwrap_or_default();
        if raw_stems.is_empty() {
            return Err(loc.err("", "the session has no stems: add at least one [[stems]] table"));
        }
        let mut stems = Vec::with_capacity(raw_stems.len());
        for (i, rs) in raw_stems.into_iter().enumerate() {
            stems.push(self.stem(i, rs)?);
        }
        // Case-insensitively: stem names become file names of `kind = "stems"` outputs, and
        // "Vocals.wav" and "vocals.wav" are one file on macOS and Windows volumes.
        for (i, s) in stems.iter().enumerate() {
            if let Some(j) = stems[..i].iter().position(|t| t.name.to_lowercase() == s.name.to_lowercase()) {
                return Err(loc.err(
                    &format!("stems[{i}].name"),
                    format!(
                        "stem name {:?} is already used by stems[{j}] ({:?}); stem names must be unique \
                         (ignoring case: they become output file names)",
                        s.name, stems[j].name
                    ),
                ));
            }
        }

        let bus_filter = match raw.bus {
            Some(b) => self.filter("bus", b.eq, b.fir)?,
            None => Filter::None,
        };
        let eq_design = self.eq_design(raw.eq_design)?;
        let master = match raw.master {
            Some(m) => Some(self.master(m)?),
            None => None,
        };

        let raw_outputs = raw.outputs.unwrap_or_default();
        if raw_outputs.is_empty() {
            return Err(loc.err("", "the session has no outputs: add at least one [[outputs]] table"));
        }
        let mut outputs = Vec::with_capacity(raw_outputs.len());
        for (i, ro) in raw_outputs.into_iter().enumerate() {
            outputs.push(self.output(i, ro)?);
        }

        let null_threshold_db = raw.check.and_then(|c| c.null_threshold_db).unwrap_or(-60.0);
        if !(null_threshold_db.is_finite() && (-200.0..0.0).contains(&null_threshold_db)) {
            return Err(loc.err(
                "check.null_threshold_db",
                format!("null_threshold_db = {null_threshold_db} dB must be in [-200, 0)"),
            ));
        }

        let session = Session {
            file: file.to_path_buf(),
            dir: self.dir.to_path_buf(),
            name,
            layout,
            reference_mix,
            stems,
            bus_filter,
            eq_design,
            master,
            outputs,
            check: CheckSettings { null_threshold_db },
        };
        self.check_output_collisions(&session)?;
        Ok(session)
    }

    fn stem(&self, i: usize, rs: raw::Stem) -> Result<Stem> {
        let loc = self.loc;
        let at = format!("stems[{i}]");
        let name = rs.name.ok_or_else(|| loc.err(&at, "missing required key `name`"))?;
        let key = format!("{at}.name");
        if name.trim().is_empty() {
            return Err(loc.err(
                &key,
                format!("name = {name:?} is blank (empty or only whitespace): a stem needs a name (it names the stem's output file, \"<name>.wav\")"),
            ));
        }
        if name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Err(loc.err(
                &key,
                format!(
                    "name = {name:?} cannot be used as a file name (it names the stem's output file): \
                     no '/', '\\\\' or NUL, and not \".\" or \"..\""
                ),
            ));
        }
        let path = rs.path.ok_or_else(|| loc.err(&at, format!("stem {name:?}: missing required key `path`")))?;
        let path = self.input_path(&format!("{at}.path"), &path)?;
        let gain_db = rs.gain_db.unwrap_or(0.0);
        if !(gain_db.is_finite() && (-120.0..=24.0).contains(&gain_db)) {
            return Err(loc.err(&format!("{at}.gain_db"), format!("gain_db = {gain_db} dB must be in [-120, 24]")));
        }
        let filter = self.filter(&at, rs.eq, rs.fir)?;
        Ok(Stem { name, path, gain_db, mute: rs.mute.unwrap_or(false), filter })
    }

    /// A stem's or the bus's `eq` / `fir` (at most one of them).
    fn filter(&self, at: &str, eq: Option<Vec<raw::Band>>, fir: Option<String>) -> Result<Filter> {
        match (eq, fir) {
            (Some(_), Some(_)) => Err(self.loc.err(
                &format!("{at}.fir"),
                "both `eq` and `fir` are given; use one (an EQ designed from bands, or a user impulse response)",
            )),
            (None, Some(fir)) => Ok(Filter::File(self.input_path(&format!("{at}.fir"), &fir)?)),
            // `eq = []` filters nothing: no convolution at all rather than a unit impulse.
            (Some(bands), None) if bands.is_empty() => Ok(Filter::None),
            (Some(bands), None) => {
                let bands = bands
                    .into_iter()
                    .enumerate()
                    .map(|(j, b)| self.band(&format!("{at}.eq[{j}]"), b))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Filter::Bands(bands))
            }
            (None, None) => Ok(Filter::None),
        }
    }

    fn band(&self, at: &str, b: raw::Band) -> Result<EqBand> {
        let loc = self.loc;
        let types = || BAND_KEYS.iter().map(|(t, _)| format!("{t:?}")).collect::<Vec<_>>().join(", ");
        let kind = b.kind.ok_or_else(|| loc.err(at, format!("missing required key `type` (one of {})", types())))?;
        let Some((_, keys)) = BAND_KEYS.iter().find(|(t, _)| *t == kind) else {
            return Err(loc.err(&format!("{at}.type"), format!("type = {kind:?} is not one of {}", types())));
        };
        let given = [
            ("freq_hz", b.freq_hz.is_some()),
            ("gain_db", b.gain_db.is_some()),
            ("q", b.q.is_some()),
            ("order", b.order.is_some()),
        ];
        let allowed = keys.iter().map(|(k, _)| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        for (key, present) in given {
            let spec = keys.iter().find(|(k, _)| *k == key);
            if present && spec.is_none() {
                return Err(loc.err(
                    &format!("{at}.{key}"),
                    format!("unknown key `{key}` for a {kind} band (its keys: `type`, {allowed})"),
                ));
            }
            if !present && spec.is_some_and(|(_, required)| *required) {
                return Err(loc.err(at, format!("{kind} band: missing required key `{key}`")));
            }
        }
        let freq_hz = b.freq_hz.unwrap_or(0.0);
        if !(freq_hz.is_finite() && freq_hz > 0.0) {
            return Err(loc.err(&format!("{at}.freq_hz"), format!("freq_hz = {freq_hz} Hz must be finite and > 0")));
        }
        let gain_db = b.gain_db.unwrap_or(0.0);
        if !(gain_db.is_finite() && (-30.0..=30.0).contains(&gain_db)) {
            return Err(loc.err(&format!("{at}.gain_db"), format!("gain_db = {gain_db} dB must be in [-30, 30]")));
        }
        let q = b.q.unwrap_or(1.0);
        if !(q.is_finite() && q > 0.0 && q <= 50.0) {
            return Err(loc.err(&format!("{at}.q"), format!("q = {q} must be in (0, 50]")));
        }
        let order = b.order.unwrap_or(2);
        if !(1..=8).contains(&order) {
            return Err(loc.err(&format!("{at}.order"), format!("order = {order} must be an integer in 1..=8")));
        }
        let order = order as u32;
        Ok(match kind.as_str() {
            "peak" => EqBand::Peak { freq_hz, gain_db, q },
            "low_shelf" => EqBand::LowShelf { freq_hz, gain_db, q },
            "high_shelf" => EqBand::HighShelf { freq_hz, gain_db, q },
            "highpass" => EqBand::Highpass { freq_hz, order },
            "lowpass" => EqBand::Lowpass { freq_hz, order },
            "notch" => EqBand::Notch { freq_hz, q },
            "bandpass" => EqBand::Bandpass { freq_hz, q },
            "tilt" => EqBand::Tilt { freq_hz, gain_db },
            _ => unreachable!("BAND_KEYS lists every type"),
        })
    }

    fn eq_design(&self, raw: Option<raw::EqDesign>) -> Result<EqDesign> {
        let (phase, taps) = raw.map(|d| (d.phase, d.taps)).unwrap_or((None, None));
        let phase = match phase.as_deref() {
            None | Some("linear") => Phase::Linear,
            Some("minimum") => Phase::Minimum,
            Some(other) => {
                return Err(self
                    .loc
                    .err("eq_design.phase", format!("phase = {other:?} is not one of \"linear\", \"minimum\"")));
            }
        };
        let taps = taps.unwrap_or(8191);
        // Odd: a linear-phase FIR then has a whole-sample delay of (taps-1)/2.
        if !((15..=65535).contains(&taps) && taps % 2 == 1) {
            return Err(self.loc.err("eq_design.taps", format!("taps = {taps} must be an odd integer in 15..=65535")));
        }
        Ok(EqDesign { phase, taps: taps as usize })
    }

    fn master(&self, m: raw::Master) -> Result<Master> {
        let loc = self.loc;
        let (target_lufs, ceiling_dbtp, profile) = match m.profile {
            Some(p) => {
                let Some((target, ceiling)) = profile_values(&p) else {
                    return Err(loc.err("master.profile", format!("profile = {p:?} is not one of {PROFILES}")));
                };
                // A profile fixes both values; an explicit one beside it leaves the spec ambiguous.
                for (key, given) in [("target_lufs", m.target_lufs), ("ceiling_dbtp", m.ceiling_dbtp)] {
                    if let Some(v) = given {
                        return Err(loc.err(
                            &format!("master.{key}"),
                            format!(
                                "`profile` = {p:?} and `{key}` = {v} are both given; the profile sets \
                                 {key}, so give one or the other"
                            ),
                        ));
                    }
                }
                (Some(target), ceiling, Some(p))
            }
            None => (m.target_lufs, m.ceiling_dbtp.unwrap_or(-1.0), None),
        };
        if let Some(t) = target_lufs
            && !(t.is_finite() && (-70.0..=-5.0).contains(&t))
        {
            return Err(loc.err("master.target_lufs", format!("target_lufs = {t} LUFS must be in [-70, -5]")));
        }
        if !(ceiling_dbtp.is_finite() && (-20.0..=0.0).contains(&ceiling_dbtp)) {
            return Err(
                loc.err("master.ceiling_dbtp", format!("ceiling_dbtp = {ceiling_dbtp} dBTP must be in [-20, 0]"))
            );
        }
        let lookahead_ms = m.lookahead_ms.unwrap_or(2.0);
        if !(lookahead_ms.is_finite() && lookahead_ms > 0.0 && lookahead_ms <= 50.0) {
            return Err(loc.err("master.lookahead_ms", format!("lookahead_ms = {lookahead_ms} ms must be in (0, 50]")));
        }
        let release_ms = m.release_ms.unwrap_or(60.0);
        if !(release_ms.is_finite() && (1.0..=5000.0).contains(&release_ms)) {
            return Err(loc.err("master.release_ms", format!("release_ms = {release_ms} ms must be in [1, 5000]")));
        }
        let oversampling = m.oversampling.unwrap_or(4);
        if ![1, 2, 4, 8].contains(&oversampling) {
            return Err(loc.err("master.oversampling", format!("oversampling = {oversampling} must be 1, 2, 4 or 8")));
        }
        Ok(Master { target_lufs, ceiling_dbtp, lookahead_ms, release_ms, oversampling: oversampling as u32, profile })
    }

    fn output(&self, i: usize, o: raw::Output) -> Result<Output> {
        let loc = self.loc;
        let at = format!("outputs[{i}]");
        let path = o.path.ok_or_else(|| loc.err(&at, "missing required key `path`"))?;
        let path =
            output_path(&path).map_err(|rule| loc.err(&format!("{at}.path"), format!("path = {path:?} {rule}")))?;
        let kind = match o.kind.as_deref() {
            Some("master") => OutputKind::Master,
            Some("stems") => OutputKind::Stems,
            Some(other) => {
                return Err(
                    loc.err(&format!("{at}.kind"), format!("kind = {other:?} is not one of \"master\", \"stems\""))
                );
            }
            None => return Err(loc.err(&at, "missing required key `kind` (\"master\" or \"stems\")")),
        };
        if kind == OutputKind::Master {
            // The writer writes WAV, becoming RF64 past 4 GiB (EBU Tech 3306), and no bext chunk:
            // a name that promises another format (.mp3, .flac) or a Broadcast Wave (.bwf)
            // would mislabel the file.
            let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
            if !matches!(ext.as_deref(), Some("wav" | "rf64")) {
                let given = ext.map_or("no extension".to_string(), |e| format!("the extension \".{e}\""));
                return Err(loc.err(
                    &format!("{at}.path"),
                    format!(
                        "path = {:?} has {given}, but stemforge writes WAV (RF64 past 4 GiB): name it .wav or .rf64 \
                         (.bwf would promise a bext chunk, which is not written)",
                        path.display().to_string()
                    ),
                ));
            }
        }
        let format = match o.format.as_deref() {
            Some("pcm16") => SampleFormat::Pcm16,
            Some("pcm24") => SampleFormat::Pcm24,
            Some("pcm32") => SampleFormat::Pcm32,
            Some("f32") => SampleFormat::F32,
            Some(other) => {
                return Err(loc.err(
                    &format!("{at}.format"),
                    format!("format = {other:?} is not one of \"pcm16\", \"pcm24\", \"pcm32\", \"f32\""),
                ));
            }
            None => {
                return Err(loc.err(&at, "missing required key `format` (\"pcm16\", \"pcm24\", \"pcm32\" or \"f32\")"));
            }
        };
        let dither = match o.dither.as_deref() {
            None => match format {
                SampleFormat::Pcm16 | SampleFormat::Pcm24 => Dither::Tpdf,
                SampleFormat::Pcm32 | SampleFormat::F32 => Dither::None,
            },
            Some("tpdf") if format == SampleFormat::F32 => {
                return Err(loc.err(
                    &format!("{at}.dither"),
                    "dither = \"tpdf\" with format = \"f32\": float output is not quantised, so it takes no dither",
                ));
            }
            Some("tpdf") => Dither::Tpdf,
            Some("none") => Dither::None,
            Some(other) => {
                return Err(
                    loc.err(&format!("{at}.dither"), format!("dither = {other:?} is not one of \"tpdf\", \"none\""))
                );
            }
        };
        Ok(Output { path, kind, format, dither })
    }

    /// No two outputs may write the same file: neither two `path`s, nor a master file and a file of
    /// a `kind = "stems"` folder.
    fn check_output_collisions(&self, s: &Session) -> Result<()> {
        let mut written: Vec<(PathBuf, String)> = Vec::new();
        for (i, o) in s.outputs.iter().enumerate() {
            let files: Vec<(PathBuf, String)> = match o.kind {
                OutputKind::Master => vec![(o.path.clone(), format!("outputs[{i}]"))],
                OutputKind::Stems => s
                    .stems
                    .iter()
                    .map(|st| (s.stem_output_path(o, st), format!("outputs[{i}] (stem {:?})", st.name)))
                    .collect(),
            };
            if let Some(j) = s.outputs[..i].iter().position(|p| p.path == o.path) {
                return Err(self.loc.err(
                    &format!("outputs[{i}].path"),
                    format!("path = {:?} is also the path of outputs[{j}]; output paths must be unique", o.path),
                ));
            }
            for (f, who) in files {
                if let Some((_, other)) = written.iter().find(|(w, _)| *w == f) {
                    return Err(self.loc.err(
                        &format!("outputs[{i}].path"),
                        format!("{who} would write {:?}, which {other} also writes", f),
                    ));
                }
                written.push((f, who));
            }
        }
        Ok(())
    }

    /// An input file's path: non-empty, resolved against the session's folder unless absolute.
    fn input_path(&self, key: &str, p: &str) -> Result<PathBuf> {
        if p.is_empty() {
            return Err(self.loc.err(key, "path must not be empty"));
        }
        let p = Path::new(p);
        Ok(if p.is_absolute() { p.to_path_buf() } else { self.dir.join(p) })
    }
}

/// An output path: relative, inside the output folder, naming something. Returns it without `.`
/// components (so "./a.wav" and "a.wav" compare equal), or the rule it breaks.
fn output_path(p: &str) -> std::result::Result<PathBuf, &'static str> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err("must not contain `..`: outputs stay inside the output folder (--out-dir)");
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative: outputs are written under the output folder (--out-dir)");
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err("must name a file or folder under the output folder");
    }
    Ok(out)
}
