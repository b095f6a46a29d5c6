//! Error positions: byte offsets of the TOML text mapped to dotted paths and lines.
use std::path::Path;

use crate::error::{Error, Result};

/// Maps byte offsets of the TOML text to dotted paths ("stems[2].gain_db") and lines, so that
/// errors name the table and line they are about.
pub(super) struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    /// (span, path reported for an error in it, full path of the node)
    nodes: Vec<(std::ops::Range<usize>, String, String)>,
}

impl<'a> Locator<'a> {
    /// Parses the document for its spans; a TOML syntax error stops here, with its line and column.
    pub(super) fn parse(text: &'a str, file: &'a Path) -> Result<Locator<'a>> {
        let mut loc = Locator { file, text, nodes: Vec::new() };
        let doc = toml::de::DeTable::parse(text).map_err(|e| {
            let at = e.span().map(|s| loc.line_col(s.start)).unwrap_or_default();
            Error::input(file, format!("invalid TOML: {}{at}", e.message()))
        })?;
        loc.walk_table(doc.get_ref(), "");
        Ok(loc)
    }

    pub(super) fn walk_table(&mut self, table: &toml::de::DeTable<'_>, prefix: &str) {
        for (key, value) in table.iter() {
            let path = join(prefix, key.get_ref());
            // An unknown-key error points at the key: report the table it is in.
            self.nodes.push((key.span(), prefix.to_string(), path.clone()));
            self.walk_value(value, &path);
        }
    }

    pub(super) fn walk_value(&mut self, value: &toml::Spanned<toml::de::DeValue<'_>>, path: &str) {
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

    pub(super) fn line_col(&self, offset: usize) -> String {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
        format!(" (line {line}, column {col})")
    }

    /// " (line N)" for the node at `path` (a key, or an array element's header), if it is in the file.
    pub(super) fn line_of(&self, path: &str) -> String {
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
    pub(super) fn err(&self, path: &str, msg: impl std::fmt::Display) -> Error {
        let line = self.line_of(path);
        if path.is_empty() {
            Error::input(self.file, format!("{msg}{line}"))
        } else {
            Error::input(self.file, format!("{path}: {msg}{line}"))
        }
    }

    /// A serde error (unknown key, wrong type) re-worded and placed at the innermost node its span
    /// falls in.
    pub(super) fn serde_error(&self, e: &toml::de::Error) -> Error {
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

pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}
