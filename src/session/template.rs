//! Output path templates (design/deliverables.md "Output formats"): `{name}`, `{variant}`,
//! `{stem}`, `{layout}`, `{rate}`, `{bits}`, and `{index}` / `{index:02}` for albums, expanded by
//! one function so every command reads a template the same way.
use crate::model::{Layout, SampleFormat};

/// What a template's placeholders stand for, for one output.
pub struct Vars<'a> {
    /// The session's name.
    pub name: &'a str,
    /// The variant's name, "main" for the session's own outputs.
    pub variant: &'a str,
    /// The stem's name for one file of a `kind = "stems"` output; None: `{stem}` is left in place
    /// (a stems output's path is expanded once, and once more per stem by
    /// `Session::stem_output_path`), or refused for a master output (`stem_allowed`).
    pub stem: Option<&'a str>,
    pub stem_allowed: bool,
    pub layout: Layout,
    /// The output's sample rate (`Session::output_rate`); None when no template asked for it yet.
    pub rate_hz: Option<u32>,
    pub format: SampleFormat,
    /// A track's number in an album (`stemforge album`); None outside albums, where `{index}` is
    /// refused.
    pub index: Option<usize>,
}

/// Why a template cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `{something}` that is not a placeholder.
    Unknown(String),
    /// A `{` without its `}`, or a `}` without its `{`.
    Unbalanced,
    /// `{index}` outside an album.
    IndexOutsideAlbum(String),
    /// `{stem}` in a master output's path.
    StemInMaster,
    /// `{rate}` asked for before the rate is known: the caller supplies it and expands again.
    NeedsRate,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Unknown(p) => write!(
                f,
                "unknown placeholder `{{{p}}}` (the placeholders are {{name}}, {{variant}}, {{stem}}, {{layout}}, \
                 {{rate}}, {{bits}}, and {{index}} in albums)"
            ),
            TemplateError::Unbalanced => write!(f, "a `{{` without its `}}` (or the other way round)"),
            TemplateError::IndexOutsideAlbum(p) => {
                write!(f, "`{{{p}}}` numbers the tracks of an album (`stemforge album`); a session has no index")
            }
            TemplateError::StemInMaster => {
                write!(f, "`{{stem}}` names a stem's file, so it belongs in a kind = \"stems\" output's path")
            }
            TemplateError::NeedsRate => write!(f, "`{{rate}}` needs the output's sample rate"),
        }
    }
}

/// Whether `template` uses `{rate}` (its expansion then needs the stems' sample rate).
pub fn uses_rate(template: &str) -> bool {
    template.contains("{rate}")
}

/// `template` with every placeholder replaced.
pub fn expand(template: &str, vars: &Vars<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(TemplateError::Unbalanced);
        }
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(TemplateError::Unbalanced)?;
        let placeholder = &after[..close];
        if placeholder.contains('{') {
            return Err(TemplateError::Unbalanced);
        }
        match placeholder {
            "name" => out.push_str(vars.name),
            "variant" => out.push_str(vars.variant),
            "stem" => match (vars.stem, vars.stem_allowed) {
                (Some(s), _) => out.push_str(s),
                (None, true) => out.push_str("{stem}"),
                (None, false) => return Err(TemplateError::StemInMaster),
            },
            "layout" => out.push_str(layout_label(vars.layout)),
            "rate" => out.push_str(&rate_label(vars.rate_hz.ok_or(TemplateError::NeedsRate)?)),
            "bits" => out.push_str(bits_label(vars.format)),
            p if p == "index" || p.starts_with("index:") => {
                let Some(i) = vars.index else {
                    return Err(TemplateError::IndexOutsideAlbum(p.to_string()));
                };
                out.push_str(&index_label(p, i).ok_or_else(|| TemplateError::Unknown(p.to_string()))?);
            }
            p => return Err(TemplateError::Unknown(p.to_string())),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `{index}` as written, or `{index:0N}` zero-padded to N digits (N 1..=9).
fn index_label(placeholder: &str, index: usize) -> Option<String> {
    match placeholder.strip_prefix("index") {
        Some("") => Some(index.to_string()),
        Some(spec) => {
            let width = spec.strip_prefix(":0")?;
            let width: usize = width.parse().ok().filter(|w| (1..=9).contains(w))?;
            Some(format!("{index:0width$}"))
        }
        None => None,
    }
}

/// The speaker layout as a facility writes it in a file name.
pub fn layout_label(layout: Layout) -> &'static str {
    match layout {
        Layout::Mono => "1.0",
        Layout::Stereo => "2.0",
        Layout::Surround51 => "5.1",
        Layout::Surround71 => "7.1",
    }
}

/// A sample rate in kHz as written in file names: 48000 is "48k", 44100 "44.1k".
pub fn rate_label(hz: u32) -> String {
    format!("{}k", f64::from(hz) / 1000.0)
}

/// The sample format as written in file names: "16b", "24b", "32b" (integer), "32f" (float).
pub fn bits_label(format: SampleFormat) -> &'static str {
    match format {
        SampleFormat::Pcm16 => "16b",
        SampleFormat::Pcm24 => "24b",
        SampleFormat::Pcm32 => "32b",
        SampleFormat::F32 => "32f",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            name: "song-a",
            variant: "instrumental",
            stem: None,
            stem_allowed: false,
            layout: Layout::Surround51,
            rate_hz: Some(44_100),
            format: SampleFormat::Pcm24,
            index: None,
        }
    }

    #[test]
    fn every_placeholder_expands() {
        let v = vars();
        assert_eq!(
            expand("alt/{name}_{variant}_{layout}_{rate}_{bits}.wav", &v).unwrap(),
            "alt/song-a_instrumental_5.1_44.1k_24b.wav"
        );
        assert_eq!(rate_label(48_000), "48k");
        assert_eq!(rate_label(96_000), "96k");
        assert_eq!(bits_label(SampleFormat::F32), "32f");
        assert_eq!(expand("plain.wav", &v).unwrap(), "plain.wav");
        let stems = Vars { stem: Some("vocals"), stem_allowed: true, ..vars() };
        assert_eq!(expand("s/{name}_{stem}.wav", &stems).unwrap(), "s/song-a_vocals.wav");
        let folder = Vars { stem_allowed: true, ..vars() };
        assert_eq!(expand("s/{name}_{stem}.wav", &folder).unwrap(), "s/song-a_{stem}.wav");
        let album = Vars { index: Some(3), ..vars() };
        assert_eq!(expand("{index:02}-{name}.wav", &album).unwrap(), "03-song-a.wav");
        assert_eq!(expand("{index}-{name}.wav", &album).unwrap(), "3-song-a.wav");
    }

    #[test]
    fn bad_templates_say_why() {
        let v = vars();
        assert_eq!(expand("{nmae}.wav", &v), Err(TemplateError::Unknown("nmae".into())));
        assert_eq!(expand("{name.wav", &v), Err(TemplateError::Unbalanced));
        assert_eq!(expand("name}.wav", &v), Err(TemplateError::Unbalanced));
        assert_eq!(expand("{index:02}.wav", &v), Err(TemplateError::IndexOutsideAlbum("index:02".into())));
        assert_eq!(expand("{stem}.wav", &v), Err(TemplateError::StemInMaster));
        let album = Vars { index: Some(1), ..vars() };
        assert_eq!(expand("{index:x}.wav", &album), Err(TemplateError::Unknown("index:x".into())));
        let no_rate = Vars { rate_hz: None, ..vars() };
        assert_eq!(expand("{rate}.wav", &no_rate), Err(TemplateError::NeedsRate));
    }
}
