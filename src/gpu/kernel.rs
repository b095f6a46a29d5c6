//! The small amount of wgpu plumbing every stage shares: a stage's kernel (its generated WGSL
//! compiled with an explicit bind-group layout built from a list of binding kinds), its cached
//! pipelines, and bind groups over buffers. Which stages and sources exist is `crate::stages`.
use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
pub use crate::stages::{Precision, Stage};

impl Precision {
    /// F64 when the device has it, unless STEMFORGE_GPU_F32=1 (`gpu::knobs`) asks for the f32
    /// variants.
    pub fn for_context(ctx: &GpuContext) -> Precision {
        Precision::for_features(ctx.device.features(), ctx.knobs.force_f32)
    }

    /// As `for_context`, for an adapter's (or a device's) features.
    pub fn for_features(features: wgpu::Features, force_f32: bool) -> Precision {
        if features.contains(wgpu::Features::SHADER_F64) && !force_f32 { Precision::F64 } else { Precision::F32 }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bind {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

/// One stage's compiled shader module and layout; its entry points become pipelines. Cheap to
/// clone (wgpu handles): the context caches one per (stage, variant) and its pipelines per entry
/// point and constants, so a chain built again (a new pass shape) compiles nothing twice.
#[derive(Clone)]
pub struct Kernel {
    pub layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    module: wgpu::ShaderModule,
    stage: Stage,
    precision: Precision,
    pipelines: std::sync::Arc<Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>>,
}

/// An entry point with its pipeline-overridable constants (as bits: f64 is not Eq).
type PipelineKey = (String, Vec<(String, u64)>);

/// The context's cache of compiled kernels: stage, variant, binding kinds, immediate bytes.
pub type KernelCache = Mutex<HashMap<(Stage, Precision, Vec<Bind>, u32), Kernel>>;

impl Kernel {
    /// The kernel of `stage`'s `precision` variant with `binds` at group 0 and `immediate_size`
    /// bytes of immediates (a multiple of 4): compiled on first use, then from the context's cache.
    pub fn new(
        ctx: &GpuContext,
        stage: Stage,
        precision: Precision,
        binds: &[Bind],
        immediate_size: u32,
    ) -> Result<Kernel> {
        let key = (stage, stage.variant(precision), binds.to_vec(), immediate_size);
        if let Some(k) = ctx.kernels.lock().map_err(|_| Error::Gpu("kernel cache poisoned".into()))?.get(&key) {
            return Ok(k.clone());
        }
        let kernel = Kernel::compile(ctx, stage, stage.variant(precision), binds, immediate_size)?;
        ctx.kernels.lock().map_err(|_| Error::Gpu("kernel cache poisoned".into()))?.insert(key, kernel.clone());
        Ok(kernel)
    }

    fn compile(
        ctx: &GpuContext,
        stage: Stage,
        precision: Precision,
        binds: &[Bind],
        immediate_size: u32,
    ) -> Result<Kernel> {
        let source = stage.source(precision)?;
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
        let layout = ctx.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(stage.name()),
            entries: &entries,
        });
        let pipeline_layout = ctx.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(stage.name()),
            bind_group_layouts: &[Some(&layout)],
            immediate_size,
        });
        let module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(stage.name()),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        ctx.check().map_err(|e| in_shader(e, stage, precision, None))?;
        Ok(Kernel { layout, pipeline_layout, module, stage, precision, pipelines: Default::default() })
    }

    /// The pipeline of one entry point, with `constants` as WGSL pipeline-overridable constants.
    pub fn pipeline(&self, ctx: &GpuContext, entry: &str, constants: &[(&str, f64)]) -> Result<wgpu::ComputePipeline> {
        let key: PipelineKey =
            (entry.to_string(), constants.iter().map(|(n, v)| (n.to_string(), v.to_bits())).collect());
        let mut cache = self.pipelines.lock().map_err(|_| Error::Gpu("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let pipeline = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
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
        ctx.check().map_err(|e| in_shader(e, self.stage, self.precision, Some(entry)))?;
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A bind group over whole buffers, in binding order.
    pub fn bind(&self, ctx: &GpuContext, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.stage.name()),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// Name the shader (and variant, and entry point) a device error came from.
fn in_shader(e: Error, stage: Stage, precision: Precision, entry: Option<&str>) -> Error {
    let file = stage.describe(precision);
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
