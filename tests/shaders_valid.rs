//! Every stage's generated WGSL (each precision variant of `stemforge::stages::Stage::ALL`) parses
//! and validates with naga (the naga of the pinned wgpu), with the capabilities the GPU engine asks
//! the device for; the structs shared with Rust have the same layout on both sides, read from
//! naga's reflection. Needs no GPU.
use std::path::Path;

use bytemuck::Zeroable;
use stemforge::stages::{Precision, Stage};

/// Parse and validate with the capabilities the engine asks the device for: immediates (push
/// constants) always, 64-bit floats only for an f64 variant (every f32 variant, and every stage
/// without an f64 one, must do without).
fn validate(what: &str, source: &str, precision: Precision) -> Result<naga::Module, String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("{what}: parse error:\n{}", e.emit_to_string(source)))?;
    let mut caps = naga::valid::Capabilities::IMMEDIATES;
    if precision == Precision::F64 {
        caps |= naga::valid::Capabilities::FLOAT64;
    }
    let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
    validator.validate(&module).map_err(|e| format!("{what}: validation error:\n{}", e.emit_to_string(source)))?;
    Ok(module)
}

/// Every variant of every stage, validated: (stage, precision, module).
fn modules() -> Vec<(Stage, Precision, naga::Module)> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for &stage in Stage::ALL {
        for &p in stage.variants() {
            let what = stage.describe(p);
            match stage.source(p).map_err(|e| e.to_string()).and_then(|src| validate(&what, &src, p)) {
                Ok(m) => out.push((stage, p, m)),
                Err(e) => errors.push(e),
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    out
}

#[test]
fn every_stage_variant_parses_and_validates() {
    let modules = modules();
    let f64_stages = Stage::ALL.iter().filter(|s| s.has_f64()).count();
    assert_eq!(modules.len(), Stage::ALL.len() + f64_stages, "one module per stage and variant");
}

#[test]
fn every_stage_has_its_files_and_compute_entry_points() {
    // One name across shader, CPU twin, GPU host file and parity test (DESIGN.md "Engines").
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (stage, p, module) in modules() {
        assert!(
            module.entry_points.iter().any(|e| e.stage == naga::ShaderStage::Compute),
            "{}: no compute entry point",
            stage.describe(p)
        );
        let name = stage.name();
        assert!(root.join(format!("shaders/{name}.wgsl")).exists());
        assert!(root.join(format!("src/gpu/{name}.rs")).exists(), "stage {name}: src/gpu/{name}.rs is missing");
        // The CPU twin is a file of the CPU engine, or a room of its own (the meter, which every
        // host uses).
        assert!(
            root.join(format!("src/cpu/{name}.rs")).exists() || root.join(format!("src/{name}/mod.rs")).exists(),
            "stage {name}: its CPU twin src/cpu/{name}.rs (or src/{name}/) is missing"
        );
        assert!(
            root.join(format!("tests/parity/{name}.rs")).exists(),
            "stage {name}: its parity test tests/parity/{name}.rs is missing"
        );
        // The shader's parameter structs point at their Rust twins.
        let src = stage.file();
        assert!(
            !src.contains("struct ") || src.contains(&format!("src/gpu/{name}.rs")),
            "shaders/{name}.wgsl: its structs must say \"keep in sync with ... src/gpu/{name}.rs\""
        );
    }
}

#[test]
fn f64_variants_need_the_capability_and_f32_variants_do_not() {
    for &stage in Stage::ALL.iter().filter(|s| s.has_f64()) {
        let f64_src = stage.source(Precision::F64).unwrap();
        // The f64 variant uses f64: it does not validate without the capability.
        assert!(
            validate(&stage.describe(Precision::F64), &f64_src, Precision::F32).is_err(),
            "{}: validates without FLOAT64, so it has no f64 arithmetic",
            stage.describe(Precision::F64)
        );
        assert_ne!(f64_src, stage.source(Precision::F32).unwrap(), "{stage:?}: the variants are the same source");
    }
    // And the check can fail: an f64 shader does not validate without the capability.
    let f64_src = "@compute @workgroup_size(1) fn main() { var x: f64 = 1.0; x = x * 2.0; }";
    assert!(validate("inline", f64_src, Precision::F32).is_err(), "f64 without FLOAT64 must be refused");
}

#[test]
fn a_broken_shader_is_rejected() {
    // The check itself can fail: an undeclared identifier and a type error are both caught.
    let bad = "@compute @workgroup_size(1) fn main() { let x: u32 = undeclared + 1.0; }";
    assert!(validate("inline", bad, Precision::F32).is_err());
}

/// No shader reads a uniform buffer (issue 17): Mesa's lavapipe re-specialises a shader for the
/// values of a uniform it reads in a loop condition on every command buffer and keeps each
/// variant until the device goes, so one stage's `var<uniform>` config grew the GPU engine by
/// 0.76 MB per block (`gpu::context::Bind`, `benches/gpu_memory_repro.rs`). Configs are read-only
/// storage buffers. Checked on naga's module, not the text, so a comment cannot fool it.
#[test]
fn no_shader_reads_a_uniform_buffer() {
    for (stage, p, module) in modules() {
        let uniforms: Vec<String> = module
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::Uniform)
            .map(|(_, g)| g.name.clone().unwrap_or_default())
            .collect();
        assert!(
            uniforms.is_empty(),
            "{}: uniform buffer(s) {uniforms:?}: bind them as var<storage, read>",
            stage.describe(p)
        );
    }
    // The check can fail: a uniform declaration is seen.
    let with_uniform = "struct C { n: u32 }\n@group(0) @binding(0) var<uniform> cfg: C;\n@compute @workgroup_size(1) fn main() { _ = cfg.n; }";
    let module = validate("inline", with_uniform, Precision::F32).expect("valid");
    assert!(module.global_variables.iter().any(|(_, g)| g.space == naga::AddressSpace::Uniform));
}

/// A Rust struct shared with WGSL: its size and, per named field, offset, size and scalar kind.
struct RustLayout {
    stage: Stage,
    name: &'static str,
    size: usize,
    fields: Vec<(&'static str, usize, usize, &'static str)>,
}

/// `shared!(Stage, module::Type { field, ... })`: the layout of a `#[repr(C)]` Pod struct, read by the
/// compiler (offset_of!, size_of_val, the field's type name), so the list cannot drift from the
/// Rust side; a field named here must exist there.
macro_rules! shared {
    ($stage:expr, $module:ident :: $ty:ident { $($field:ident),* $(,)? }) => {{
        let zero = <stemforge::gpu::$module::$ty>::zeroed();
        RustLayout {
            stage: $stage,
            name: stringify!($ty),
            size: std::mem::size_of::<stemforge::gpu::$module::$ty>(),
            fields: vec![$((
                stringify!($field),
                std::mem::offset_of!(stemforge::gpu::$module::$ty, $field),
                std::mem::size_of_val(&zero.$field),
                std::any::type_name_of_val(&zero.$field),
            )),*],
        }
    }};
}

/// Every struct shared between a stage's host file and its shader (padding is covered by size).
fn shared_structs() -> Vec<RustLayout> {
    use Stage::*;
    vec![
        shared!(DelayLine, delay_line::DelayImmediates { block, channels, block_index }),
        shared!(DitherQuantize, dither_quantize::DitherConfig { format, channels, block, input, seed, dither }),
        shared!(DitherQuantize, dither_quantize::DitherImmediates { frame_lo, frame_hi, frames }),
        shared!(
            FirConvolve,
            fir_convolve::FirConfig { block, fft_size, half, hist_len, m1, log2_m1, m2, log2_m2, channels, log2_half }
        ),
        shared!(FirConvolve, fir_convolve::FirImmediates { block_index, log2_ns, flags, halves }),
        shared!(GainSum, gain_sum::GainSumConfig { block, bus_channels, signals, stems_out, gain, bus_given }),
        shared!(GainSum, gain_sum::GainSumImmediates { slot_base, valid_from, valid_to }),
        shared!(LimiterApply, limiter_apply::ApplyImmediates { block, channels, x_base, out_base, len }),
        shared!(LimiterHold, limiter_hold::HoldConfig { block, lookahead, segments }),
        shared!(LimiterHold, limiter_hold::HoldImmediates { block_index }),
        shared!(LimiterRelease, limiter_release::ReleaseConfig { block, chunk, rho }),
        shared!(LimiterSmooth, limiter_smooth::SmoothConfig { block, lookahead }),
        shared!(LimiterSmooth, limiter_smooth::SmoothImmediates { block_index }),
        shared!(Meter, meter::LoudnessConfig { block, channels, chunk, chunks, step, steps, levels, tp_base }),
        shared!(Meter, meter::LoudnessImmediates { phase, len, parity, input }),
        shared!(OversamplePeak, oversample_peak::OversampleConfig { block, channels, hist_len, input, ceiling_db }),
        shared!(OversamplePeak, oversample_peak::OversampleImmediates { block_index }),
        shared!(PcmUnpack, pcm_unpack::UnpackConfig { format, channels, block, output }),
        shared!(PcmUnpack, pcm_unpack::UnpackImmediates { frames }),
        shared!(Width, width::WidthConfig { block, left, right, width }),
        shared!(
            Compressor,
            compressor::CompressorConfig {
                block,
                channels,
                first,
                lfe,
                rms,
                history,
                lookahead,
                hpf,
                parts,
                side_first,
                side_channels,
                keyed
            }
        ),
        shared!(
            Saturation,
            saturation::SaturationConfig {
                block,
                channels,
                first,
                factor,
                taps,
                half,
                drive,
                inv_drive,
                mix,
                dry,
                inv_k
            }
        ),
        shared!(
            Transient,
            transient::TransientConfig {
                block,
                channels,
                first,
                parts,
                fast_attack,
                fast_release,
                slow_attack,
                slow_release,
                attack_db,
                sustain_db,
                db_to_nepers
            }
        ),
    ]
}

#[test]
fn shared_structs_have_the_same_layout_in_rust_and_wgsl() {
    let modules = modules();
    let mut checked = 0;
    for rust in shared_structs() {
        for (_, p, module) in modules.iter().filter(|(s, _, _)| *s == rust.stage) {
            let what = format!("{} in {}", rust.name, rust.stage.describe(*p));
            let (members, span) = module
                .types
                .iter()
                .find_map(|(_, t)| match (&t.name, &t.inner) {
                    (Some(n), naga::TypeInner::Struct { members, span }) if n == rust.name => Some((members, *span)),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{what}: no such struct in the shader"));
            assert_eq!(span as usize, rust.size, "{what}: {span} bytes in WGSL, {} in Rust", rust.size);
            for &(field, offset, size, ty) in &rust.fields {
                let m = members
                    .iter()
                    .find(|m| m.name.as_deref() == Some(field))
                    .unwrap_or_else(|| panic!("{what}: field `{field}` is in Rust but not in WGSL"));
                assert_eq!(m.offset as usize, offset, "{what}.{field}: offset {} in WGSL, {offset} in Rust", m.offset);
                let inner = &module.types[m.ty].inner;
                let wgsl_ty = match inner {
                    naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Uint, width: 4 }) => "u32",
                    naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Float, width: 4 }) => "f32",
                    other => panic!("{what}.{field}: {other:?} is not a u32 or f32"),
                };
                assert_eq!((wgsl_ty, 4), (ty, size), "{what}.{field}: {wgsl_ty} in WGSL, {ty} in Rust");
            }
            // Every non-padding WGSL member is listed (a field added on one side only is caught).
            for m in members.iter().filter_map(|m| m.name.as_deref()).filter(|n| !n.starts_with('_')) {
                assert!(rust.fields.iter().any(|f| f.0 == m), "{what}: WGSL field `{m}` is not checked against Rust");
            }
            checked += 1;
        }
    }
    assert!(checked >= shared_structs().len(), "every shared struct was found in its shader");
}
