//! A `process` chain (design/mastering.md) read from the session: each entry's `type` picks the
//! stage (`model::Process::parse`), its keys are read through `StageKeys` with their lines, and a
//! key the stage did not read is refused by name.
use super::locate::Locator;
use crate::error::Result;
use crate::model::{Process, StageKeys};

/// One entry's keys, as `StageKeys`: each read removes its key, so what is left was not read.
struct Keys<'a> {
    loc: &'a Locator<'a>,
    eq_taps: usize,
    at: String,
    kind: String,
    table: toml::Table,
    read: Vec<String>,
}

impl StageKeys for Keys<'_> {
    fn number(&mut self, key: &str, default: f64, min: f64, max: f64) -> Result<f64> {
        let at = format!("{}.{key}", self.at);
        self.read.push(format!("`{key}`"));
        let v = match self.table.remove(key) {
            None => return Ok(default),
            Some(toml::Value::Float(v)) => v,
            Some(toml::Value::Integer(v)) => v as f64,
            Some(other) => {
                return Err(self.loc.err(&at, format!("{key} = {other} must be a number ({} stage)", self.kind)));
            }
        };
        if !(v.is_finite() && (min..=max).contains(&v)) {
            return Err(self.loc.err(&at, format!("{key} = {v} must be in [{min}, {max}] ({} stage)", self.kind)));
        }
        Ok(v)
    }

    fn eq_taps(&self) -> usize {
        self.eq_taps
    }

    fn required_number(&mut self, key: &str, min: f64, max: f64) -> Result<f64> {
        if !self.table.contains_key(key) {
            self.read.push(format!("`{key}`"));
            return Err(self.loc.err(
                &self.at,
                format!("missing required key `{key}` ({} stage; a number in [{min}, {max}])", self.kind),
            ));
        }
        self.number(key, f64::NAN, min, max)
    }

    fn choice(&mut self, key: &str, default: &'static str, options: &[&'static str]) -> Result<&'static str> {
        let at = format!("{}.{key}", self.at);
        self.read.push(format!("`{key}`"));
        let one_of = || options.iter().map(|o| format!("{o:?}")).collect::<Vec<_>>().join(", ");
        match self.table.remove(key) {
            None => Ok(default),
            Some(toml::Value::String(v)) => options.iter().find(|o| **o == v).copied().ok_or_else(|| {
                self.loc.err(&at, format!("{key} = {v:?} is not one of {} ({} stage)", one_of(), self.kind))
            }),
            Some(other) => Err(self
                .loc
                .err(&at, format!("{key} = {other} must be a string, one of {} ({} stage)", one_of(), self.kind))),
        }
    }

    fn string(&mut self, key: &str) -> Result<Option<String>> {
        let at = format!("{}.{key}", self.at);
        self.read.push(format!("`{key}`"));
        match self.table.remove(key) {
            None => Ok(None),
            Some(toml::Value::String(v)) if !v.trim().is_empty() => Ok(Some(v)),
            Some(other) => {
                Err(self.loc.err(&at, format!("{key} = {other} must be a non-empty string ({} stage)", self.kind)))
            }
        }
    }

    fn one_of(&mut self, key: &str, default: f64, allowed: &[f64]) -> Result<f64> {
        let v = self.number(key, default, f64::NEG_INFINITY, f64::INFINITY)?;
        if !allowed.contains(&v) {
            let at = format!("{}.{key}", self.at);
            let list = allowed.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
            return Err(self.loc.err(&at, format!("{key} = {v} must be one of {list} ({} stage)", self.kind)));
        }
        Ok(v)
    }
}

/// The chain under `at` (`stems[i].process`), in the order written.
/// `eq_taps`: the session's `[eq_design] taps`.
pub(super) fn chain(
    loc: &Locator<'_>,
    at: &str,
    raw: Option<Vec<toml::Table>>,
    eq_taps: usize,
) -> Result<Vec<Process>> {
    let types = || Process::TYPES.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ");
    let mut stages = Vec::new();
    for (j, mut table) in raw.unwrap_or_default().into_iter().enumerate() {
        let at = format!("{at}[{j}]");
        let kind = match table.remove("type") {
            Some(toml::Value::String(k)) => k,
            Some(other) => return Err(loc.err(&format!("{at}.type"), format!("type = {other} must be a string"))),
            None => return Err(loc.err(&at, format!("missing required key `type` (one of {})", types()))),
        };
        let mut keys = Keys { loc, eq_taps, at: at.clone(), kind: kind.clone(), table, read: Vec::new() };
        let Some(stage) = Process::parse(&kind, &mut keys)? else {
            return Err(loc.err(&format!("{at}.type"), format!("type = {kind:?} is not one of {}", types())));
        };
        if let Some(key) = keys.table.keys().next() {
            let allowed = keys.read.join(", ");
            return Err(loc.err(
                &format!("{at}.{key}"),
                format!("unknown key `{key}` for a {kind} stage (its keys: `type`, {allowed})"),
            ));
        }
        stages.push(stage);
    }
    Ok(stages)
}
