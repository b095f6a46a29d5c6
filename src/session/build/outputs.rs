//! The outputs, `[delivery]` and the variants of a session: paths expanded from their templates,
//! each checked against its rule, and no two files on one path.
use super::*;

impl Builder<'_> {
    pub(super) fn output(&self, at: &str, o: raw::Output, ctx: &TemplateCtx<'_>) -> Result<Output> {
        let loc = self.loc;
        let template = o.path.ok_or_else(|| loc.err(at, "missing required key `path`"))?;
        let kind = match o.kind.as_deref() {
            Some("master") => OutputKind::Master,
            Some("stems") => OutputKind::Stems,
            Some(other) => {
                return Err(
                    loc.err(&format!("{at}.kind"), format!("kind = {other:?} is not one of \"master\", \"stems\""))
                );
            }
            None => return Err(loc.err(at, "missing required key `kind` (\"master\" or \"stems\")")),
        };
        let format = self.format(at, o.format.as_deref())?;
        // The rate first: `{rate}` in the path reads it.
        let sample_rate = match o.sample_rate {
            None => None,
            Some(r) if u32::try_from(r).is_ok_and(|r| SUPPORTED_RATES.contains(&r)) => Some(r as u32),
            Some(r) => {
                let list = SUPPORTED_RATES.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
                return Err(loc.err(
                    &format!("{at}.sample_rate"),
                    format!("sample_rate = {r} is not a rate stemforge delivers at (Hz): one of {list}"),
                ));
            }
        };
        // The layout too: `{layout}` in the path reads it.
        let layout = self.output_layout(at, o.layout.as_deref(), kind, ctx.layout)?;
        let mut output = Output {
            path: PathBuf::new(),
            kind,
            format,
            dither: Dither::None,
            allow_residual: false,
            sample_rate,
            split_channels: false,
            layout,
        };
        let path = self.expand(at, &template, &output, ctx)?;
        let path =
            output_path(&path).map_err(|rule| loc.err(&format!("{at}.path"), format!("path = {path:?} {rule}")))?;
        // A stems output whose template names `{stem}` writes exactly that file per stem.
        let per_stem_file = kind == OutputKind::Stems && path.to_string_lossy().contains("{stem}");
        if kind == OutputKind::Master || per_stem_file {
            // The writer writes Broadcast WAV (a bext chunk), becoming RF64 past 4 GiB (EBU Tech
            // 3306): a name that promises another format (.mp3, .flac) would mislabel the file.
            let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
            if !matches!(ext.as_deref(), Some("wav" | "rf64" | "bwf")) {
                let given = ext.map_or("no extension".to_string(), |e| format!("the extension \".{e}\""));
                return Err(loc.err(
                    &format!("{at}.path"),
                    format!(
                        "path = {:?} has {given}, but stemforge writes Broadcast WAV (RF64 past 4 GiB): name it \
                         .wav, .bwf or .rf64",
                        path.display().to_string()
                    ),
                ));
            }
        }
        output.path = path;
        output.dither = match o.dither.as_deref() {
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
        output.allow_residual = o.allow_residual.unwrap_or(false);
        if output.allow_residual && kind != OutputKind::Stems {
            return Err(loc.err(
                &format!("{at}.allow_residual"),
                "allow_residual applies to kind = \"stems\" outputs only (stems that may not sum to the master)",
            ));
        }
        output.split_channels = o.split_channels.unwrap_or(false);
        if let Some(l) = layout {
            // A fold-down is one interleaved master at the stems' rate for now.
            let refused = if output.split_channels {
                Some("split_channels")
            } else if sample_rate.is_some() {
                Some("sample_rate")
            } else {
                None
            };
            if let Some(key) = refused {
                return Err(loc.err(
                    &format!("{at}.{key}"),
                    format!(
                        "{key} with layout = {:?} (a fold-down) is not supported yet: deliver the fold-down \
                         interleaved at the stems' rate",
                        template::layout_label(l)
                    ),
                ));
            }
        }
        if output.split_channels && sample_rate.is_some() {
            return Err(loc.err(
                &format!("{at}.split_channels"),
                "split_channels with sample_rate is not supported yet: split the output at the stems' rate, or give \
                 the resampled output interleaved",
            ));
        }
        Ok(output)
    }

    /// An output's `layout`: "2.0" on a 5.1 or 7.1 session asks for the BS.775 fold-down of the
    /// bus (Some(Stereo)); left out, the output is in the session's layout (None). Anything else
    /// is exit 2 naming the output and why: only a fold-down to 2.0 is a layout an output can ask
    /// for, and only of a master.
    fn output_layout(
        &self,
        at: &str,
        layout: Option<&str>,
        kind: OutputKind,
        session: Layout,
    ) -> Result<Option<Layout>> {
        let Some(given) = layout else { return Ok(None) };
        let key = format!("{at}.layout");
        let err = |why: String| Err(self.loc.err(&key, format!("layout = {given:?}: {why}")));
        let asked = match given {
            "2.0" => Layout::Stereo,
            "1.0" | "mono" | "stereo" | "5.1" | "7.1" => {
                let named = match given {
                    "stereo" => "2.0",
                    "mono" => "1.0",
                    g => g,
                };
                return err(format!(
                    "an output's layout asks for a fold-down, and the one stemforge makes is \"2.0\" (ITU-R BS.775, \
                     of a 5.1 or 7.1 session){}",
                    if named == template::layout_label(session) {
                        format!("; this is the session's own layout ({}): leave layout out", session.name())
                    } else {
                        String::new()
                    }
                ));
            }
            _ => {
                return err(
                    "is not a layout stemforge delivers: the one an output can ask for is \"2.0\" (the ITU-R BS.775 \
                     fold-down of a 5.1 or 7.1 session)"
                        .to_string(),
                );
            }
        };
        if !matches!(session, Layout::Surround51 | Layout::Surround71) {
            return err(format!(
                "a fold-down to 2.0 is made of a 5.1 or 7.1 bus, and this session's layout is {:?}{}",
                session.name(),
                if session == Layout::Stereo { " (already 2.0: leave layout out)" } else { "" }
            ));
        }
        if kind == OutputKind::Stems {
            return err(
                "a fold-down of kind = \"stems\" is not supported yet: the 2.0 fold-down is a master with its own G \
                 and limiter (kind = \"master\")"
                    .to_string(),
            );
        }
        Ok(Some(asked))
    }

    /// `[delivery]`: each value checked, the key named when it breaks its rule.
    pub(super) fn delivery(&self, raw: Option<raw::Delivery>) -> Result<Delivery> {
        let loc = self.loc;
        let Some(d) = raw else {
            return Ok(Delivery::default());
        };
        if let Some(t) = &d.title
            && t.trim().is_empty()
        {
            return Err(loc.err("delivery.title", "title must not be empty (leave it out to use the session's name)"));
        }
        let frame_rate = match d.frame_rate.as_deref() {
            None if d.timecode_start.is_some() => {
                return Err(loc.err(
                    "delivery",
                    format!("timecode_start needs frame_rate, the rate it counts frames at (one of {FRAME_RATES})"),
                ));
            }
            None => Delivery::default().frame_rate,
            Some(r) => FrameRate::parse(r).ok_or_else(|| {
                loc.err("delivery.frame_rate", format!("frame_rate = {r:?} is not one of {FRAME_RATES}"))
            })?,
        };
        let timecode_start = match &d.timecode_start {
            None => None,
            Some(t) => Some(
                Timecode::parse(t, frame_rate)
                    .map_err(|rule| loc.err("delivery.timecode_start", format!("timecode_start = {t:?} {rule}")))?,
            ),
        };
        let date = match &d.date {
            None => None,
            Some(t) => {
                Some(Origination::parse(t).map_err(|rule| loc.err("delivery.date", format!("date = {t:?} {rule}")))?)
            }
        };
        Ok(Delivery { title: d.title, timecode_start, frame_rate, date })
    }

    /// An output's path template, expanded (`template::expand`); `{stem}` stays for
    /// `Session::stem_output_path`. An unknown placeholder is exit 2 naming the output and it.
    fn expand(&self, at: &str, path: &str, output: &Output, ctx: &TemplateCtx<'_>) -> Result<String> {
        let rate_hz = if template::uses_rate(path) {
            let stems_rate = self.stems_rate(at, ctx.stems)?;
            Some(Session::output_rate(output, stems_rate))
        } else {
            None
        };
        let vars = Vars {
            name: ctx.name,
            variant: ctx.variant,
            stem: None,
            stem_allowed: output.kind == OutputKind::Stems,
            layout: output.layout.unwrap_or(ctx.layout),
            rate_hz,
            format: output.format,
            index: None,
        };
        template::expand(path, &vars).map_err(|e| match e {
            TemplateError::Unknown(_) | TemplateError::Unbalanced | TemplateError::IndexOutsideAlbum(_) => {
                self.loc.err(&format!("{at}.path"), format!("path = {path:?}: {e}"))
            }
            other => self.loc.err(&format!("{at}.path"), format!("path = {path:?}: {other}")),
        })
    }

    /// The stems' sample rate, for `{rate}`: the first stem's, read from its header once (the
    /// render checks that every stem has it).
    fn stems_rate(&self, at: &str, stems: &[Stem]) -> Result<u32> {
        if let Some(&r) = self.rate.get() {
            return Ok(r);
        }
        let first = stems.first().ok_or_else(|| self.loc.err(at, "`{rate}` needs a stem to take the rate from"))?;
        let rate = crate::io::open(&first.path)?.info().sample_rate;
        Ok(*self.rate.get_or_init(|| rate))
    }

    /// One `[[variants]]` table: every name it gives resolved against the stems, its mode and
    /// loudness checked against what it changes and against the session.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn variant(
        &self,
        j: usize,
        rv: raw::Variant,
        session_name: &str,
        layout: Layout,
        stems: &[Stem],
        master: Option<&Master>,
        bus_process: &[Process],
    ) -> Result<Variant> {
        let loc = self.loc;
        let at = format!("variants[{j}]");
        let name = rv.name.ok_or_else(|| loc.err(&at, "missing required key `name`"))?;
        let key = format!("{at}.name");
        if name.trim().is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Err(loc.err(
                &key,
                format!(
                    "name = {name:?}: a variant needs a name that can be part of a file name ({{variant}}): not blank, \
                     no '/', '\\\\' or NUL, and not \".\" or \"..\""
                ),
            ));
        }
        if name.eq_ignore_ascii_case(MAIN_VARIANT) {
            return Err(loc.err(
                &key,
                format!(
                    "name = {name:?} is reserved: {{variant}} in the session's own outputs reads \"{MAIN_VARIANT}\""
                ),
            ));
        }
        let names = || stems.iter().map(|t| format!("{:?}", t.name)).collect::<Vec<_>>().join(", ");
        let mut mute = vec![false; stems.len()];
        for (m, entry) in rv.mute.unwrap_or_default().iter().enumerate() {
            let at_m = format!("{at}.mute[{m}]");
            match entry.strip_prefix("role:") {
                Some(role) => {
                    let mut any = false;
                    for (i, s) in stems.iter().enumerate() {
                        if s.role.as_deref() == Some(role) {
                            mute[i] = true;
                            any = true;
                        }
                    }
                    if !any {
                        let roles: Vec<String> =
                            stems.iter().filter_map(|s| s.role.as_ref().map(|r| format!("{r:?}"))).collect();
                        let roles = if roles.is_empty() { "no stem has a role".to_string() } else { roles.join(", ") };
                        return Err(loc.err(
                            &at_m,
                            format!(
                                "variant {name:?}: {entry:?} names role {role:?}, which no stem has (the stems' roles: \
                                 {roles}; a stem takes one with role = \"...\")"
                            ),
                        ));
                    }
                }
                None => match stems.iter().position(|s| &s.name == entry) {
                    Some(i) => mute[i] = true,
                    None => {
                        return Err(loc.err(
                            &at_m,
                            format!(
                                "variant {name:?}: mute names {entry:?}, which is not a stem of the session (its stems: \
                                 {}; a role is written \"role:NAME\")",
                                names()
                            ),
                        ));
                    }
                },
            }
        }
        let mut gain_db = vec![0.0; stems.len()];
        let gains = rv.gain_db.unwrap_or_default();
        for (stem, db) in &gains {
            let at_g = format!("{at}.gain_db.{stem}");
            let Some(i) = stems.iter().position(|s| &s.name == stem) else {
                return Err(loc.err(
                    &at_g,
                    format!(
                        "variant {name:?}: gain_db names {stem:?}, which is not a stem of the session (its stems: {})",
                        names()
                    ),
                ));
            };
            if !(db.is_finite() && (-120.0..=24.0).contains(db)) {
                return Err(loc.err(&at_g, format!("variant {name:?}: {stem} = {db} dB must be in [-120, 24]")));
            }
            gain_db[i] = *db;
        }
        if stems.iter().enumerate().all(|(i, s)| s.mute || mute[i]) {
            return Err(loc.err(&format!("{at}.mute"), format!("variant {name:?} mutes every stem: nothing to render")));
        }
        let mode = match rv.mode.as_deref() {
            None if gains.is_empty() => VariantMode::Stems,
            None => VariantMode::Remaster,
            Some("stems") => VariantMode::Stems,
            Some("remaster") => VariantMode::Remaster,
            Some(other) => {
                return Err(loc.err(
                    &format!("{at}.mode"),
                    format!("variant {name:?}: mode = {other:?} is not one of \"stems\", \"remaster\""),
                ));
            }
        };
        if mode == VariantMode::Stems && !gains.is_empty() {
            return Err(loc.err(
                &format!("{at}.gain_db"),
                format!(
                    "variant {name:?}: mode = \"stems\" sums the main's stem outputs as they are, so it cannot change \
                     a stem's gain: use mode = \"remaster\" (its own limiter) for gain_db"
                ),
            ));
        }
        let loudness = match (rv.loudness.as_deref(), mode) {
            (None, _) => VariantLoudness::Main,
            (Some(_), VariantMode::Stems) => {
                return Err(loc.err(
                    &format!("{at}.loudness"),
                    format!(
                        "variant {name:?}: loudness applies to mode = \"remaster\" only (a stems variant carries the \
                         main's G)"
                    ),
                ));
            }
            (Some("main"), _) => VariantLoudness::Main,
            (Some("own"), _) => VariantLoudness::Own,
            (Some(other), _) => {
                return Err(loc.err(
                    &format!("{at}.loudness"),
                    format!("variant {name:?}: loudness = {other:?} is not one of \"main\", \"own\""),
                ));
            }
        };
        if loudness == VariantLoudness::Own && master.and_then(|m| m.target_lufs).is_none() {
            return Err(loc.err(
                &format!("{at}.loudness"),
                format!(
                    "variant {name:?}: loudness = \"own\" normalises to the target, and [master] sets no target_lufs"
                ),
            ));
        }
        if mode == VariantMode::Remaster
            && let Some(k) = (!bus_process.is_empty()).then_some(0)
        {
            return Err(loc.err(
                &format!("{at}.mode"),
                format!(
                    "variant {name:?}: mode = \"remaster\" with a [bus] process chain (bus.process[{k}], {}) is not \
                     supported yet: the remaster replays the stems' spilled contributions, which a bus chain has \
                     already shaped for the main; use mode = \"stems\", or render the variant as a session of its own",
                    bus_process[k].name()
                ),
            ));
        }
        if mode == VariantMode::Stems
            && let Some((k, stage)) = bus_process.iter().enumerate().find(|(_, p)| !p.shares_with_stems())
        {
            return Err(loc.err(
                &format!("{at}.mode"),
                format!(
                    "variant {name:?}: a bus {} stage (bus.process[{k}]) cannot be shared out among stems, so a sum of \
                     the main's stem outputs would not be the master less the muted stems",
                    stage.name()
                ),
            ));
        }
        let raw_outputs = rv.outputs.unwrap_or_default();
        if raw_outputs.is_empty() {
            return Err(loc.err(
                &at,
                format!(
                    "variant {name:?} has no outputs: add outputs = [ {{ path = ..., kind = ..., format = ... }} ]"
                ),
            ));
        }
        let ctx = TemplateCtx { name: session_name, variant: &name, layout, stems };
        let mut outputs = Vec::with_capacity(raw_outputs.len());
        for (k, ro) in raw_outputs.into_iter().enumerate() {
            let o = self.output(&format!("{at}.outputs[{k}]"), ro, &ctx)?;
            if o.sample_rate.is_some() {
                return Err(loc.err(
                    &format!("{at}.outputs[{k}].sample_rate"),
                    "a variant delivers at the stems' rate for now: give sample_rate on the session's own outputs",
                ));
            }
            if o.layout.is_some() {
                return Err(loc.err(
                    &format!("{at}.outputs[{k}].layout"),
                    format!(
                        "variant {name:?}: a variant's fold-down is not supported yet: give layout = \"2.0\" on the \
                         session's own outputs (the fold-down of the main)"
                    ),
                ));
            }
            if o.allow_residual {
                return Err(loc.err(
                    &format!("{at}.outputs[{k}].allow_residual"),
                    "allow_residual applies to the session's own stems outputs",
                ));
            }
            outputs.push(o);
        }
        Ok(Variant { name, mute, gain_db, mode, loudness, outputs })
    }

    /// No two outputs may write the same file: neither two `path`s, nor a master file and a file of
    /// a `kind = "stems"` folder, across the session's outputs and every variant's (templates
    /// expanded).
    pub(super) fn check_output_collisions(&self, s: &Session) -> Result<()> {
        let mut all: Vec<(String, &Output, Vec<&Stem>)> =
            s.outputs.iter().enumerate().map(|(i, o)| (format!("outputs[{i}]"), o, s.stems.iter().collect())).collect();
        for (j, v) in s.variants.iter().enumerate() {
            for (k, o) in v.outputs.iter().enumerate() {
                all.push((format!("variants[{j}].outputs[{k}]"), o, s.variant_stems(v).map(|(_, st)| st).collect()));
            }
        }
        let mut written: Vec<(PathBuf, String)> = Vec::new();
        for (i, (at, o, stems)) in all.iter().enumerate() {
            let whole: Vec<(PathBuf, String)> = match o.kind {
                OutputKind::Master => vec![(o.path.clone(), at.clone())],
                OutputKind::Stems => {
                    stems.iter().map(|st| (s.stem_output_path(o, st), format!("{at} (stem {:?})", st.name))).collect()
                }
            };
            // A split output's files are its channels' (`master.L.wav` may be another's path).
            let files: Vec<(PathBuf, String)> = whole
                .into_iter()
                .flat_map(|(p, who)| {
                    s.split_paths(o, &p).into_iter().map(move |(f, c)| {
                        let who = match c {
                            Some(c) => format!("{who} (channel {})", s.layout.channel_labels()[c]),
                            None => who.clone(),
                        };
                        (f, who)
                    })
                })
                .collect();
            if let Some((other, _, _)) = all[..i].iter().find(|(_, p, _)| p.path == o.path) {
                return Err(self.loc.err(
                    &format!("{at}.path"),
                    format!("path = {:?} is also the path of {other}; output paths must be unique", o.path),
                ));
            }
            for (f, who) in files {
                if let Some((_, other)) = written.iter().find(|(w, _)| *w == f) {
                    return Err(self
                        .loc
                        .err(&format!("{at}.path"), format!("{who} would write {:?}, which {other} also writes", f)));
                }
                written.push((f, who));
            }
        }
        Ok(())
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
