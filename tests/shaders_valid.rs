//! Every WGSL file in shaders/ parses and validates with naga (the naga of the pinned wgpu), with
//! the capabilities the GPU engine asks the device for. Needs no GPU.
use std::path::{Path, PathBuf};

fn wgsl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            wgsl_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            out.push(path);
        }
    }
}

/// Parse and validate with the capabilities the engine asks the device for: immediates (push
/// constants) always, 64-bit floats only for the shaders that use them (the f64 variants of the
/// limiter's dB stages; their `_f32` fallbacks and every other shader must do without).
fn validate(path: &Path, source: &str) -> Result<naga::Module, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| {
        format!(
            "{}: parse error:\n{}",
            path.display(),
            e.emit_to_string(source)
        )
    })?;
    let mut caps = naga::valid::Capabilities::IMMEDIATES;
    if uses_f64(path) {
        caps |= naga::valid::Capabilities::FLOAT64;
    }
    let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
    validator.validate(&module).map_err(|e| {
        format!(
            "{}: validation error:\n{}",
            path.display(),
            e.emit_to_string(source)
        )
    })?;
    Ok(module)
}

/// The shaders with an f64 path. Each has an f32 fallback `<stage>_f32`: a file next to it, or
/// (fir_convolve) the same source with its `real` alias set to f32 (`kernel::shader_source`).
const F64_SHADERS: [&str; 5] = ["fir_convolve", "oversample_peak", "limiter_release", "limiter_smooth", "loudness"];

fn uses_f64(path: &Path) -> bool {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    F64_SHADERS.contains(&stem)
}

#[test]
fn every_shader_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = Vec::new();
    wgsl_files(&dir, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no .wgsl files under {}", dir.display());
    let errors: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let src = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            validate(p, &src).err()
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn every_stage_has_its_shader_with_compute_entry_points() {
    // One name across shader, CPU twin, GPU host file and parity test (DESIGN.md "Engines").
    let stages = [
        "pcm_unpack",
        "fir_convolve",
        "gain_sum",
        "oversample_peak",
        "limiter_hold",
        "limiter_release",
        "limiter_smooth",
        "limiter_apply",
        "dither_quantize",
        "loudness",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for stage in stages {
        let path = root.join("shaders").join(format!("{stage}.wgsl"));
        let src =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let module = validate(&path, &src).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            module
                .entry_points
                .iter()
                .any(|e| e.stage == naga::ShaderStage::Compute),
            "{}: no compute entry point",
            path.display()
        );
        for twin in [format!("src/cpu/{stage}.rs"), format!("src/gpu/{stage}.rs")] {
            assert!(
                root.join(&twin).exists(),
                "stage {stage}: {twin} is missing"
            );
        }
        // The shader's parameter structs point at their Rust twins.
        assert!(
            !src.contains("struct ") || src.contains(&format!("src/gpu/{stage}.rs")),
            "{}: its structs must say \"keep in sync with ... src/gpu/{stage}.rs\"",
            path.display()
        );
    }
}

#[test]
fn f64_shaders_have_f32_fallbacks_without_f64() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for stage in F64_SHADERS {
        let fallback = format!("{stage}_f32");
        let path = dir.join(format!("{fallback}.wgsl"));
        let src = match std::fs::read_to_string(&path) {
            Ok(src) => src,
            Err(_) => stemforge::gpu::kernel::shader_source(&fallback)
                .unwrap_or_else(|e| panic!("{stage}: no f32 fallback ({e})"))
                .into_owned(),
        };
        // Validated without FLOAT64: any f64 in it is refused (checked just below).
        validate(&path, &src).unwrap_or_else(|e| panic!("{e}"));
        // The engine compiles exactly this source for the fallback.
        let engine_src = stemforge::gpu::kernel::shader_source(&fallback).expect("fallback source");
        assert_eq!(engine_src, src, "{fallback}: the engine's source is not the one validated here");
    }
    // And the check can fail: an f64 shader does not validate without the capability.
    let f64_src = "@compute @workgroup_size(1) fn main() { var x: f64 = 1.0; x = x * 2.0; }";
    let module = naga::front::wgsl::parse_str(f64_src).expect("parses");
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::IMMEDIATES,
    );
    assert!(
        validator.validate(&module).is_err(),
        "f64 without FLOAT64 must be refused"
    );
}

#[test]
fn a_broken_shader_is_rejected() {
    // The check itself can fail: an undeclared identifier and a type error are both caught.
    let bad = "@compute @workgroup_size(1) fn main() { let x: u32 = undeclared + 1.0; }";
    assert!(validate(Path::new("inline.wgsl"), bad).is_err());
}

/// No shader reads a uniform buffer (issue 17): Mesa's lavapipe re-specialises a shader for the
/// values of a uniform it reads in a loop condition on every command buffer and keeps each
/// variant until the device goes, so one stage's `var<uniform>` config grew the GPU engine by
/// 0.76 MB per block (`gpu::kernel::Bind`, `examples/gpu_memory_repro.rs`). Configs are read-only
/// storage buffers. Checked on naga's module, not the text, so a comment cannot fool it.
#[test]
fn no_shader_reads_a_uniform_buffer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = Vec::new();
    wgsl_files(&dir, &mut files);
    for path in &files {
        let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let module = validate(path, &src).unwrap_or_else(|e| panic!("{e}"));
        let uniforms: Vec<String> = module
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::Uniform)
            .map(|(_, g)| g.name.clone().unwrap_or_default())
            .collect();
        assert!(uniforms.is_empty(), "{}: uniform buffer(s) {uniforms:?}: bind them as var<storage, read>", path.display());
    }
    // The check can fail: a uniform declaration is seen.
    let with_uniform = "struct C { n: u32 }\n@group(0) @binding(0) var<uniform> cfg: C;\n@compute @workgroup_size(1) fn main() { _ = cfg.n; }";
    let module = validate(Path::new("inline.wgsl"), with_uniform).expect("valid");
    assert!(module.global_variables.iter().any(|(_, g)| g.space == naga::AddressSpace::Uniform));
}
