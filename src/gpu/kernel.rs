//! Shader sources and the small amount of wgpu plumbing every stage shares: a compute pipeline with
//! an explicit bind-group layout built from a list of binding kinds, and bind groups over buffers.
use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

/// The WGSL source of every stage, by name (`shaders/<stage>.wgsl`), and the f32 fallbacks of the
/// limiter stages that use f64 (see `Precision`; `fir_convolve_f32` is derived, `shader_source`).
#[rustfmt::skip]
pub const SHADERS: &[(&str, &str)] = &[
    ("pcm_unpack", include_str!("../../shaders/pcm_unpack.wgsl")),
    ("fir_convolve", include_str!("../../shaders/fir_convolve.wgsl")),
    ("gain_sum", include_str!("../../shaders/gain_sum.wgsl")),
    ("oversample_peak", include_str!("../../shaders/oversample_peak.wgsl")),
    ("oversample_peak_f32", include_str!("../../shaders/oversample_peak_f32.wgsl")),
    ("limiter_hold", include_str!("../../shaders/limiter_hold.wgsl")),
    ("limiter_release", include_str!("../../shaders/limiter_release.wgsl")),
    ("limiter_release_f32", include_str!("../../shaders/limiter_release_f32.wgsl")),
    ("limiter_smooth", include_str!("../../shaders/limiter_smooth.wgsl")),
    ("limiter_smooth_f32", include_str!("../../shaders/limiter_smooth_f32.wgsl")),
    ("limiter_apply", include_str!("../../shaders/limiter_apply.wgsl")),
    ("dither_quantize", include_str!("../../shaders/dither_quantize.wgsl")),
    ("delay_line", include_str!("../../shaders/delay_line.wgsl")),
    ("loudness", include_str!("../../shaders/loudness.wgsl")),
];

/// The line of a shader whose scalar type is a parameter (`fir_convolve`): the shader computes in
/// f64, and its f32 fallback `<stage>_f32` is the same source with this line set to f32.
pub const REAL_F64: &str = "alias real = f64;";
const REAL_F32: &str = "alias real = f32;";

/// The WGSL of `stage`: a file of `SHADERS`, or the f32 fallback of a shader with a `real` alias.
pub fn shader_source(stage: &str) -> Result<Cow<'static, str>> {
    let file = |name: &str| SHADERS.iter().find(|(n, _)| *n == name).map(|(_, src)| *src);
    if let Some(src) = file(stage) {
        return Ok(Cow::Borrowed(src));
    }
    stage
        .strip_suffix("_f32")
        .and_then(file)
        .filter(|src| src.contains(REAL_F64))
        .map(|src| Cow::Owned(src.replacen(REAL_F64, REAL_F32, 1)))
        .ok_or_else(|| Error::Internal(format!("no shader named {stage}")))
}

/// Arithmetic of the FIR and of the limiter's dB-domain stages (oversample_peak's attenuation, the
/// release recursion, the smoothing sum and gain): f64 as the CPU twins, where the adapter has
/// 64-bit floats (SHADER_F64: NVIDIA, AMD, lavapipe), else the f32 fallbacks: `fir_convolve_f32`
/// (the same FFTs in f32, so integer outputs may then differ from the CPU engine's by more than
/// 1 LSB) and the limiter's `<stage>_f32.wgsl`, which keep the same conservative direction of
/// rounding with explicit margins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F64,
    F32,
}

impl Precision {
    /// F64 when the device has it, unless STEMFORGE_GPU_F32=1 asks for the fallback.
    pub fn for_context(ctx: &GpuContext) -> Precision {
        Precision::for_features(ctx.device.features())
    }

    /// As `for_context`, for an adapter's (or a device's) features.
    pub fn for_features(features: wgpu::Features) -> Precision {
        let asked_f32 = std::env::var("STEMFORGE_GPU_F32").is_ok_and(|v| v == "1");
        if features.contains(wgpu::Features::SHADER_F64) && !asked_f32 {
            Precision::F64
        } else {
            Precision::F32
        }
    }

    /// "f64" or "f32", as the render report and `stemforge devices` say it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }

    /// Bytes of a `real` in the shaders that have the alias (`loudness`'s read-back).
    pub fn real_bytes(self) -> usize {
        match self {
            Precision::F64 => 8,
            Precision::F32 => 4,
        }
    }

    /// The shader of `stage` for this precision.
    pub fn shader(self, stage: &'static str) -> &'static str {
        match (self, stage) {
            (Precision::F64, s) => s,
            (Precision::F32, "fir_convolve") => "fir_convolve_f32",
            (Precision::F32, "oversample_peak") => "oversample_peak_f32",
            (Precision::F32, "limiter_release") => "limiter_release_f32",
            (Precision::F32, "limiter_smooth") => "limiter_smooth_f32",
            (Precision::F32, "loudness") => "loudness_f32",
            (Precision::F32, s) => s,
        }
    }
}

/// What a binding slot holds; slot i of the list is `@binding(i)` of `@group(0)`.
///
/// There is no uniform kind on purpose: every stage reads its configuration from a read-only
/// storage buffer. Mesa's lavapipe (22.3, the CI's Vulkan driver) specialises a shader for the
/// values of a uniform buffer it reads in a loop condition ("inline uniforms"), again for every
/// command buffer, and keeps each compiled variant until the device is destroyed: the
/// `oversample_peak` config alone grew the process by 0.76 MB per block (issue 17;
/// `examples/gpu_memory_repro.rs` reproduces it with plain wgpu). A few scalars read per
/// invocation cost the same from a storage buffer on a hardware GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

/// One stage's compiled shader module and layout; its entry points become pipelines.
pub struct Kernel {
    pub layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    module: wgpu::ShaderModule,
    stage: &'static str,
}

impl Kernel {
    /// Compile `shaders/<stage>.wgsl` with `binds` at group 0 and `immediate_size` bytes of
    /// immediates (a multiple of 4).
    pub fn new(
        ctx: &GpuContext,
        stage: &'static str,
        binds: &[Bind],
        immediate_size: u32,
    ) -> Result<Kernel> {
        let source = shader_source(stage)?;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = binds
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b {
                        Bind::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Bind::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = ctx
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(stage),
                entries: &entries,
            });
        let pipeline_layout = ctx
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(stage),
                bind_group_layouts: &[Some(&layout)],
                immediate_size,
            });
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(stage),
                source: wgpu::ShaderSource::Wgsl(source),
            });
        ctx.check().map_err(|e| in_shader(e, stage, None))?;
        Ok(Kernel {
            layout,
            pipeline_layout,
            module,
            stage,
        })
    }

    /// The pipeline of one entry point, with `constants` as WGSL pipeline-overridable constants.
    pub fn pipeline(
        &self,
        ctx: &GpuContext,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&self.pipeline_layout),
                module: &self.module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Every kernel writes its workgroup memory before reading it; zeroing it first
                    // costs a pass over it per workgroup (measurable on lavapipe).
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        ctx.check()
            .map_err(|e| in_shader(e, self.stage, Some(entry)))?;
        Ok(pipeline)
    }

    /// A bind group over whole buffers, in binding order.
    pub fn bind(&self, ctx: &GpuContext, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.stage),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// Name the shader (and entry point) a device error came from.
fn in_shader(e: Error, stage: &str, entry: Option<&str>) -> Error {
    let file = match stage.strip_suffix("_f32") {
        Some(base) if !SHADERS.iter().any(|(n, _)| *n == stage) => {
            format!("shaders/{base}.wgsl (with {REAL_F32})")
        }
        _ => format!("shaders/{stage}.wgsl"),
    };
    let at = match entry {
        Some(entry) => format!("{file}, entry point {entry}"),
        None => file,
    };
    match e {
        Error::Gpu(msg) => Error::Gpu(format!("{at}: {msg}")),
        other => other,
    }
}

/// Workgroups needed for `n` invocations of `size` each.
pub fn groups(n: usize, size: usize) -> u32 {
    n.div_ceil(size) as u32
}
