//! The one list of stages (STYLE.md "One registry of stages"): each stage's name, its single WGSL
//! source and the precision variants generated from it. The GPU engine's kernels and pipeline
//! cache, the shader validation test and the layout checks all derive from `Stage::ALL`, so a
//! misspelt or missing stage is a compile error, not a missing shader at run time.
//!
//! A source is one file, `shaders/<stage>.wgsl`, with a few preprocessor lines (after vello's):
//! `#import NAME` pulls in `shaders/common/NAME.wgsl`; `#ifdef F64` / `#ifndef F64` / `#else` /
//! `#endif` choose the lines of a precision variant. `F64` is defined for the f64 variant.
use crate::error::{Error, Result};

/// Arithmetic of the FIR and of the limiter's and meter's dB-domain stages: f64 as the CPU twins,
/// where the adapter has 64-bit floats in shaders, else the f32 variant of the same source, which
/// keeps the same conservative direction of rounding with explicit margins (the f32 FIR may then
/// differ from the CPU engine's by more than 1 LSB on integer outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    F64,
    F32,
}

impl Precision {
    /// "f64" or "f32", as the render report and `stemforge devices` say it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }

    /// Bytes of a `real` in the shaders that have the alias (`meter`'s read-back).
    pub fn real_bytes(self) -> usize {
        match self {
            Precision::F64 => 8,
            Precision::F32 => 4,
        }
    }
}

/// Declares the stages once: the enum, its list, each name and each source file.
macro_rules! stages {
    ($($variant:ident => $name:literal, f64: $f64:literal;)*) => {
        /// A stage of the chain: one name across `shaders/<name>.wgsl`, `src/cpu/<name>.rs`,
        /// `src/gpu/<name>.rs` and its parity test.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Stage {
            $($variant,)*
        }

        impl Stage {
            /// Every stage, in chain order.
            pub const ALL: &'static [Stage] = &[$(Stage::$variant,)*];

            /// The stage's name: its shader, CPU and GPU files and its parity test.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Stage::$variant => $name,)*
                }
            }

            /// Whether the source has an f64 variant (`#ifdef F64`, or `#import real`); the
            /// others compute in f32 whatever the adapter has.
            pub const fn has_f64(self) -> bool {
                match self {
                    $(Stage::$variant => $f64,)*
                }
            }

            /// The stage's WGSL file as written, before preprocessing.
            pub const fn file(self) -> &'static str {
                match self {
                    $(Stage::$variant => include_str!(concat!("../shaders/", $name, ".wgsl")),)*
                }
            }
        }
    };
}

stages! {
    PcmUnpack => "pcm_unpack", f64: false;
    DelayLine => "delay_line", f64: false;
    FirConvolve => "fir_convolve", f64: true;
    GainSum => "gain_sum", f64: false;
    OversamplePeak => "oversample_peak", f64: true;
    LimiterHold => "limiter_hold", f64: false;
    LimiterRelease => "limiter_release", f64: true;
    LimiterSmooth => "limiter_smooth", f64: true;
    LimiterApply => "limiter_apply", f64: false;
    DitherQuantize => "dither_quantize", f64: false;
    Meter => "meter", f64: true;
    Width => "width", f64: false;
    Compressor => "compressor", f64: true;
    Saturation => "saturation", f64: false;
    Transient => "transient", f64: false;
}

/// Shared WGSL for `#import`, by name (`shaders/common/<name>.wgsl`).
const COMMON: &[(&str, &str)] = &[
    ("real", include_str!("../shaders/common/real.wgsl")),
    ("db_to_gain", include_str!("../shaders/common/db_to_gain.wgsl")),
];

impl Stage {
    /// The variant a device of precision `precision` runs: f32 for a stage without an f64 one.
    pub fn variant(self, precision: Precision) -> Precision {
        if self.has_f64() { precision } else { Precision::F32 }
    }

    /// The precisions this stage has a variant for (the shader test validates each).
    pub fn variants(self) -> &'static [Precision] {
        if self.has_f64() { &[Precision::F64, Precision::F32] } else { &[Precision::F32] }
    }

    /// The WGSL the device compiles for `precision`: the file with its imports and conditionals
    /// resolved.
    pub fn source(self, precision: Precision) -> Result<String> {
        let defines: &[&str] = match self.variant(precision) {
            Precision::F64 => &["F64"],
            Precision::F32 => &[],
        };
        preprocess(self.file(), defines).map_err(|e| Error::Internal(format!("shaders/{}.wgsl: {e}", self.name())))
    }

    /// Where a device error in this stage's shader points a reader: the file, and the variant.
    pub fn describe(self, precision: Precision) -> String {
        if self.has_f64() {
            format!("shaders/{}.wgsl ({} variant)", self.name(), self.variant(precision).name())
        } else {
            format!("shaders/{}.wgsl", self.name())
        }
    }
}

/// Resolve `#import` and `#ifdef`/`#ifndef`/`#else`/`#endif` against `defines`. A directive it
/// does not know, an unknown import or unbalanced conditionals are errors naming the line.
pub fn preprocess(source: &str, defines: &[&str]) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(source.len());
    // For each open conditional: whether its current branch is taken, and whether it has an #else.
    let mut open: Vec<(bool, bool)> = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let at = n + 1;
        let trimmed = line.trim_start();
        let active = open.iter().all(|(taken, _)| *taken);
        if let Some(rest) = trimmed.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            let directive = words.next().unwrap_or("");
            let arg = words.next();
            match (directive, arg) {
                ("ifdef", Some(name)) => open.push((defines.contains(&name), false)),
                ("ifndef", Some(name)) => open.push((!defines.contains(&name), false)),
                ("else", None) => match open.last_mut() {
                    Some((taken, seen_else @ false)) => {
                        *taken = !*taken;
                        *seen_else = true;
                    }
                    _ => return Err(format!("line {at}: #else without an open #ifdef")),
                },
                ("endif", None) => {
                    open.pop().ok_or_else(|| format!("line {at}: #endif without an open #ifdef"))?;
                }
                ("import", Some(name)) => {
                    if active {
                        let (_, text) = COMMON
                            .iter()
                            .find(|(n, _)| *n == name)
                            .ok_or_else(|| format!("line {at}: no shaders/common/{name}.wgsl to import"))?;
                        out.push_str(&preprocess(text, defines).map_err(|e| format!("common/{name}.wgsl {e}"))?);
                    }
                }
                _ => return Err(format!("line {at}: unknown directive `{}`", line.trim())),
            }
            continue;
        }
        if active {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !open.is_empty() {
        return Err(format!("{} #ifdef(s) without #endif", open.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditionals_choose_lines_and_nest() {
        let src = "a\n#ifdef F64\nb\n#ifndef X\nc\n#else\nd\n#endif\n#else\ne\n#endif\nf\n";
        assert_eq!(preprocess(src, &["F64"]).unwrap(), "a\nb\nc\nf\n");
        assert_eq!(preprocess(src, &["F64", "X"]).unwrap(), "a\nb\nd\nf\n");
        assert_eq!(preprocess(src, &[]).unwrap(), "a\ne\nf\n");
    }

    #[test]
    fn imports_are_resolved_with_the_same_defines() {
        let f64 = preprocess("#import real\nx\n", &["F64"]).unwrap();
        assert!(f64.contains("alias real = f64;") && !f64.contains("alias real = f32;"), "{f64}");
        let f32 = preprocess("#import real\nx\n", &[]).unwrap();
        assert!(f32.contains("alias real = f32;") && !f32.contains("alias real = f64;"), "{f32}");
    }

    #[test]
    fn bad_directives_are_refused_with_their_line() {
        for (src, says) in [
            ("#ifdef F64\na\n", "without #endif"),
            ("a\n#endif\n", "line 2"),
            ("#else\n", "line 1"),
            ("#ifdef F64\n#else\n#else\n#endif\n", "line 3"),
            ("#import nowhere\n", "no shaders/common/nowhere.wgsl"),
            ("#define X\n", "unknown directive"),
        ] {
            let e = preprocess(src, &[]).expect_err(src);
            assert!(e.contains(says), "{src:?}: {e}");
        }
    }

    #[test]
    fn every_stage_has_a_source_for_each_of_its_variants() {
        for &stage in Stage::ALL {
            for &p in stage.variants() {
                let src = stage.source(p).unwrap();
                assert!(!src.lines().any(|l| l.trim_start().starts_with('#')), "{stage:?} {p:?}: a directive is left");
            }
        }
    }
}
