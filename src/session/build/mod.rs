//! Turns the raw file into a `Session`: every value checked against its rule, paths resolved.
mod outputs;

use std::path::{Path, PathBuf};

use super::locate::Locator;
use super::raw::{self, BAND_KEYS};
use super::template::{self, TemplateError, Vars};
use super::*;
use crate::dsp::resample::SUPPORTED_RATES;
use crate::error::Result;
use crate::model::{Normalised, PROFILE_NAMES, Profile};

/// Turns the raw file into a `Session`, checking each value against its rule.
pub(super) struct Builder<'a> {
    pub(super) loc: &'a Locator<'a>,
    pub(super) dir: &'a Path,
    /// The stems' sample rate, read from the first stem's header once a `{rate}` template needs it.
    pub(super) rate: std::cell::OnceCell<u32>,
}

/// What an output's path template is expanded with (`template::Vars`, less what the output says).
struct TemplateCtx<'a> {
    name: &'a str,
    variant: &'a str,
    layout: Layout,
    stems: &'a [Stem],
}

impl Builder<'_> {
    pub(super) fn session(&self, raw: raw::Session, file: &Path) -> Result<Session> {
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

        // Before the stems: a process stage that designs a FIR takes the EQ's length.
        let eq_design = self.eq_design(raw.eq_design)?;
        let raw_stems = raw.stems.unwrap_or_default();
        if raw_stems.is_empty() {
            return Err(loc.err("", "the session has no stems: add at least one [[stems]] table"));
        }
        let mut stems = Vec::with_capacity(raw_stems.len());
        for (i, rs) in raw_stems.into_iter().enumerate() {
            stems.push(self.stem(i, rs, &eq_design)?);
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

        check_keys(loc, &stems)?;

        let (bus_filter, bus_process) = match raw.bus {
            Some(b) => {
                let filter = self.filter("bus", b.eq, b.fir)?;
                (filter, self.bus_process(b.process, layout, eq_design.taps)?)
            }
            None => (Filter::None, Vec::new()),
        };
        let master = match raw.master {
            Some(m) => Some(self.master(m, &stems)?),
            None => None,
        };

        let raw_outputs = raw.outputs.unwrap_or_default();
        if raw_outputs.is_empty() {
            return Err(loc.err("", "the session has no outputs: add at least one [[outputs]] table"));
        }
        let main = TemplateCtx { name: &name, variant: MAIN_VARIANT, layout, stems: &stems };
        let mut outputs = Vec::with_capacity(raw_outputs.len());
        for (i, ro) in raw_outputs.into_iter().enumerate() {
            outputs.push(self.output(&format!("outputs[{i}]"), ro, &main)?);
        }
        let mut variants: Vec<Variant> = Vec::new();
        for (j, rv) in raw.variants.unwrap_or_default().into_iter().enumerate() {
            let v = self.variant(j, rv, &name, layout, &stems, master.as_ref(), &bus_process)?;
            if let Some(k) = variants.iter().position(|w| w.name.to_lowercase() == v.name.to_lowercase()) {
                return Err(loc.err(
                    &format!("variants[{j}].name"),
                    format!(
                        "variant name {:?} is already used by variants[{k}] ({:?}); variant names must be unique \
                         (ignoring case: they name output files through {{variant}})",
                        v.name, variants[k].name
                    ),
                ));
            }
            variants.push(v);
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
            bus_process,
            eq_design,
            master,
            outputs,
            variants,
            check: CheckSettings { null_threshold_db },
            delivery: self.delivery(raw.delivery)?,
        };
        self.check_output_collisions(&session)?;
        self.check_bus_residual(&session)?;
        self.check_dialogue_normalisation(&session)?;
        Ok(session)
    }

    fn stem(&self, i: usize, rs: raw::Stem, eq_design: &EqDesign) -> Result<Stem> {
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
        let process = super::process::chain(loc, &format!("{at}.process"), rs.process, eq_design.taps)?;
        if let Some(role) = &rs.role
            && (role.trim().is_empty() || role.contains(char::is_whitespace))
        {
            return Err(loc.err(
                &format!("{at}.role"),
                format!("role = {role:?} must be one word (a tag such as \"dialogue\" or \"vocals\")"),
            ));
        }
        Ok(Stem { name, path, gain_db, mute: rs.mute.unwrap_or(false), filter, process, role: rs.role })
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

    fn master(&self, m: raw::Master, stems: &[Stem]) -> Result<Master> {
        let loc = self.loc;
        let has_dialogue = stems.iter().any(|s| s.role.as_deref() == Some(DIALOGUE_ROLE));
        let mut dialogue = false;
        let (target_lufs, ceiling_dbtp, profile) = match m.profile {
            Some(p) => {
                let Some(profile) = Profile::named(&p) else {
                    let names: Vec<String> = PROFILE_NAMES.iter().map(|n| format!("{n:?}")).collect();
                    return Err(
                        loc.err("master.profile", format!("profile = {p:?} is not one of {}", names.join(", ")))
                    );
                };
                if profile.normalised == Normalised::Dialogue {
                    if profile.needs_dialogue_stem && !has_dialogue {
                        return Err(loc.err(
                            "master.profile",
                            format!(
                                "profile = {p:?} normalises loudness gated on the dialogue stem, and no stem has \
                                 role = \"{DIALOGUE_ROLE}\": give the dialogue stem that role"
                            ),
                        ));
                    }
                    dialogue = has_dialogue;
                }
                let (target, ceiling) = (profile.target_lufs, profile.ceiling_dbtp);
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
        Ok(Master {
            target_lufs,
            ceiling_dbtp,
            lookahead_ms,
            release_ms,
            oversampling: oversampling as u32,
            profile,
            dialogue,
        })
    }

    /// An output's `format`.
    fn format(&self, at: &str, format: Option<&str>) -> Result<SampleFormat> {
        let loc = self.loc;
        Ok(match format {
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
                return Err(loc.err(at, "missing required key `format` (\"pcm16\", \"pcm24\", \"pcm32\" or \"f32\")"));
            }
        })
    }

    /// `[bus] process`: a chain as a stem's, on the bus's channels.
    fn bus_process(&self, raw: Option<Vec<toml::Table>>, layout: Layout, eq_taps: usize) -> Result<Vec<Process>> {
        let chain = super::process::chain(self.loc, "bus.process", raw, eq_taps)?;
        for (j, stage) in chain.iter().enumerate() {
            if let Process::Compressor(c) = stage
                && let Some(key) = &c.key
            {
                return Err(self.loc.err(
                    &format!("bus.process[{j}].key"),
                    format!(
                        "key = {key:?}: a bus compressor has no key (ducking is a stem's move: put the compressor on \
                         the stems to duck, keyed on {key:?})"
                    ),
                ));
            }
            stage.takes(layout.channels()).map_err(|why| {
                self.loc
                    .err(&format!("bus.process[{j}]"), format!("{} on the {} bus: {why}", stage.name(), layout.name()))
            })?;
        }
        Ok(chain)
    }

    /// What dialogue-gated normalisation does not cover yet, refused rather than normalised on
    /// the programme unseen: a master delivered at another rate (its dialogue blocks would be
    /// read at that rate), and a remaster variant with its own loudness (its G would be solved
    /// on its programme).
    fn check_dialogue_normalisation(&self, s: &Session) -> Result<()> {
        let Some(m) = s.master.as_ref().filter(|m| m.dialogue) else { return Ok(()) };
        let profile = m.profile.as_deref().unwrap_or("?");
        for (i, o) in s.outputs.iter().enumerate() {
            if o.kind == OutputKind::Master && o.sample_rate.is_some() {
                return Err(self.loc.err(
                    &format!("outputs[{i}].sample_rate"),
                    format!(
                        "profile = {profile:?} normalises dialogue-gated loudness, which is read at the stems' rate: \
                         a master at another rate is not supported under it; resample the delivered file separately"
                    ),
                ));
            }
        }
        for (j, v) in s.variants.iter().enumerate() {
            if v.mode == VariantMode::Remaster && v.loudness == VariantLoudness::Own {
                return Err(self.loc.err(
                    &format!("variants[{j}].loudness"),
                    format!(
                        "profile = {profile:?} normalises dialogue-gated loudness; a remaster variant with \
                         loudness = \"own\" is not supported under it: use loudness = \"main\" (the main's G)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A bus stage that is not a gain envelope or linear (`Process::shares_with_stems`) cannot be
    /// shared out among stem outputs: they would not sum to the master. Refused unless the stems
    /// output accepts the residual.
    fn check_bus_residual(&self, s: &Session) -> Result<()> {
        let Some((j, stage)) = s.bus_process.iter().enumerate().find(|(_, p)| !p.shares_with_stems()) else {
            return Ok(());
        };
        for (i, o) in s.outputs.iter().enumerate() {
            if o.kind == OutputKind::Stems && !o.allow_residual {
                return Err(self.loc.err(
                    &format!("bus.process[{j}]"),
                    format!(
                        "a bus {} stage cannot be shared out among stems, so the stems of outputs[{i}] would not sum \
                         to the master: remove the stage, move it to the stems, or set allow_residual = true on \
                         outputs[{i}] (the report then gives the residual of the stem sum against the master)",
                        stage.name()
                    ),
                ));
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

/// `{variant}` in the session's own outputs; no variant may take the name.
const MAIN_VARIANT: &str = "main";

/// Each compressor `key` (ducking) names another unmuted stem, and the keys make no cycle: the
/// engines run a key stem's chain before the chains it keys.
fn check_keys(loc: &Locator<'_>, stems: &[Stem]) -> Result<()> {
    use crate::model::Process;
    // keys[i]: (entry index, key stem index) of stem i's keyed compressors.
    let mut keys: Vec<Vec<usize>> = vec![Vec::new(); stems.len()];
    for (i, s) in stems.iter().enumerate() {
        for (j, stage) in s.process.iter().enumerate() {
            let Process::Compressor(c) = stage else { continue };
            let Some(key) = &c.key else { continue };
            let at = format!("stems[{i}].process[{j}].key");
            let Some(k) = stems.iter().position(|t| &t.name == key) else {
                let names = stems.iter().map(|t| format!("{:?}", t.name)).collect::<Vec<_>>().join(", ");
                return Err(loc.err(
                    &at,
                    format!("stem {:?}: key = {key:?} names no stem of the session (its stems: {names})", s.name),
                ));
            };
            if k == i {
                return Err(
                    loc.err(&at, format!("stem {:?}: key = {key:?} is the stem itself; a key is another stem", s.name))
                );
            }
            if stems[k].mute {
                return Err(loc.err(
                    &at,
                    format!(
                        "stem {:?}: key = {key:?} names a muted stem (stems[{k}]); a key stem must be unmuted",
                        s.name
                    ),
                ));
            }
            keys[i].push(k);
        }
    }
    // A cycle: follow keys from each stem; reaching the stem again is one.
    for (i, s) in stems.iter().enumerate() {
        let mut seen = vec![false; stems.len()];
        let mut stack: Vec<(usize, Vec<usize>)> = keys[i].iter().map(|&k| (k, vec![i, k])).collect();
        while let Some((n, path)) = stack.pop() {
            if n == i {
                let chain = path.iter().map(|&m| format!("{:?}", stems[m].name)).collect::<Vec<_>>().join(" keys ");
                let j = s.process.iter().position(|p| matches!(p, crate::model::Process::Compressor(c) if c.key.as_deref() == Some(stems[path[1]].name.as_str()))).unwrap_or(0);
                return Err(loc.err(
                    &format!("stems[{i}].process[{j}].key"),
                    format!("stem {:?}: key = {:?} makes a cycle of keys ({chain})", s.name, stems[path[1]].name),
                ));
            }
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            for &k in &keys[n] {
                let mut p = path.clone();
                p.push(k);
                stack.push((k, p));
            }
        }
    }
    Ok(())
}
