//! The GPU engine's environment knobs, read once when a context is made and checked there: a
//! misspelt value is a usage error (exit 2), never a setting silently ignored on a farm node.
use crate::error::{Error, Result};
use crate::gpu::fir_convolve::FftStrategy;

/// Where the GPU engine meters: `cpu` or `device` (else by adapter, `gpu::engine::meter_choice`).
pub const METER_VAR: &str = "STEMFORGE_GPU_METER";
/// `1`: the f32 variants even where the adapter has 64-bit floats (`0` or unset: by adapter).
pub const F32_VAR: &str = "STEMFORGE_GPU_F32";
/// `global` or `four-step`: the FIR's FFT strategy, to measure the alternative on new hardware.
pub const FFT_VAR: &str = "STEMFORGE_GPU_FFT";

/// The knobs' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuKnobs {
    /// Some(true): meter on the device; Some(false): on the CPU; None: by adapter.
    pub meter_on_device: Option<bool>,
    pub force_f32: bool,
    pub fft: FftStrategy,
}

impl Default for GpuKnobs {
    fn default() -> Self {
        GpuKnobs { meter_on_device: None, force_f32: false, fft: FftStrategy::FourStep }
    }
}

impl GpuKnobs {
    /// From this process's environment.
    pub fn from_env() -> Result<GpuKnobs> {
        GpuKnobs::parse(|name| std::env::var(name).ok())
    }

    /// From `get(name)`; an unset or empty variable takes the default.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<GpuKnobs> {
        let value = |name: &str| get(name).filter(|v| !v.is_empty());
        let bad = |name: &str, v: &str, expected: &str| Err(Error::Usage(format!("{name}={v}: expected {expected}")));
        let mut knobs = GpuKnobs::default();
        if let Some(v) = value(METER_VAR) {
            knobs.meter_on_device = match v.as_str() {
                "cpu" => Some(false),
                "device" => Some(true),
                _ => return bad(METER_VAR, &v, "\"cpu\" or \"device\""),
            };
        }
        if let Some(v) = value(F32_VAR) {
            knobs.force_f32 = match v.as_str() {
                "1" => true,
                "0" => false,
                _ => return bad(F32_VAR, &v, "\"1\" (the f32 variants) or \"0\""),
            };
        }
        if let Some(v) = value(FFT_VAR) {
            knobs.fft = match v.as_str() {
                "global" => FftStrategy::GlobalPasses,
                "four-step" => FftStrategy::FourStep,
                _ => return bad(FFT_VAR, &v, "\"global\" or \"four-step\""),
            };
        }
        Ok(knobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<GpuKnobs> {
        GpuKnobs::parse(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn knobs_are_read_and_misspellings_refused() {
        assert_eq!(parse(&[]).unwrap(), GpuKnobs::default());
        assert_eq!(parse(&[(F32_VAR, "")]).unwrap(), GpuKnobs::default());
        let k = parse(&[(METER_VAR, "device"), (F32_VAR, "1"), (FFT_VAR, "global")]).unwrap();
        assert_eq!(k, GpuKnobs { meter_on_device: Some(true), force_f32: true, fft: FftStrategy::GlobalPasses });
        for (name, v) in [(METER_VAR, "gpu"), (F32_VAR, "true"), (F32_VAR, "yes"), (FFT_VAR, "radix2")] {
            let e = parse(&[(name, v)]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains(&format!("{name}={v}")), "{e}");
        }
    }
}
