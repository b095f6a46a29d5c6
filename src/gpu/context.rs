//! The wgpu device the GPU engine runs on: adapter choice (`--adapter`, `WGPU_ADAPTER_NAME`, else the
//! default high-performance one), device creation with the adapter's real limits, error capture, and
//! small buffer helpers (upload, synchronous read-back) used by the stages and the tests; and what
//! is compiled on it: each stage's kernel (its generated WGSL with an explicit bind-group layout built
//! from a list of binding kinds), cached once per device with its pipelines, and bind groups over
//! buffers. Which stages and sources exist is `crate::stages`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::knobs::GpuKnobs;
pub use crate::stages::{Precision, Stage};

/// How to get an adapter, appended to every "no adapter" message.
pub const NO_GPU_HELP: &str = "install a GPU driver with Vulkan support, or Mesa's software Vulkan \
driver for testing (Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1), or run with \
--engine cpu";

/// One adapter as `stemforge devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    /// "Vulkan", "Gl", "Metal", "Dx12".
    pub backend: String,
    /// "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" (a software rasteriser such as
    /// llvmpipe), "Other".
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    /// The GPU engine's FIR arithmetic on it: "f64" with SHADER_F64, else "f32" (`Precision`).
    pub fir_precision: &'static str,
    /// This adapter is the one `GpuContext::new(None)` would use.
    pub selected: bool,
}

impl AdapterSummary {
    fn from_info(info: &wgpu::AdapterInfo, features: wgpu::Features, knobs: &GpuKnobs, selected: bool) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            fir_precision: Precision::for_features(features, knobs.force_f32).name(),
            selected,
        }
    }
    /// "llvmpipe (LLVM 15.0.6, 256 bits), Vulkan, Cpu, driver llvmpipe Mesa 22.3.6".
    pub fn describe(&self) -> String {
        let mut s = format!("{}, {}, {}", self.name, self.backend, self.device_type);
        if !self.driver.is_empty() {
            s.push_str(&format!(", driver {}", self.driver));
            if !self.driver_info.is_empty() {
                s.push_str(&format!(" {}", self.driver_info));
            }
        }
        s
    }
}

/// Errors the device reported outside any call that returns a `Result` (validation errors, out
/// of memory, device lost). wgpu reports them through callbacks; we keep them here and turn them
/// into `Error::Gpu` at the next check instead of letting wgpu's default handler panic.
#[derive(Default)]
struct ErrorSink {
    messages: Vec<String>,
}

/// The device, its queue and what was chosen. Cheap to share by reference; one per render.
pub struct GpuContext {
    pub adapter_info: wgpu::AdapterInfo,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    errors: Arc<Mutex<ErrorSink>>,
    /// Every stage's kernel and pipelines, compiled once per device (`Kernel::new`).
    pub(crate) kernels: KernelCache,
    /// The environment knobs, read once when the context was made.
    pub knobs: GpuKnobs,
}

fn instance() -> wgpu::Instance {
    // From the environment, so that WGPU_BACKEND, WGPU_POWER_PREF and friends work.
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())
}

/// The name filter in force: `--adapter`, else WGPU_ADAPTER_NAME.
fn name_filter(adapter_name: Option<&str>) -> Option<String> {
    adapter_name
        .map(str::to_string)
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
        .filter(|s| !s.trim().is_empty())
}

fn choose_adapter(instance: &wgpu::Instance, filter: Option<&str>) -> Result<wgpu::Adapter> {
    if let Some(want) = filter {
        let adapters = pollster::block_on(instance.enumerate_adapters(backends()));
        let seen: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let lower = want.to_lowercase();
        return adapters.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&lower)).ok_or_else(|| {
            Error::NoGpu(format!(
                "no GPU adapter whose name contains \"{want}\" (adapters seen: {}); {NO_GPU_HELP}",
                if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
            ))
        });
    }
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance),
        ..Default::default()
    };
    pollster::block_on(instance.request_adapter(&options))
        .map_err(|e| Error::NoGpu(format!("no GPU adapter found ({e}); {NO_GPU_HELP}")))
}

/// Every adapter wgpu sees (with the backends WGPU_BACKEND allows), and which one
/// `GpuContext::new(adapter_name)` would use.
pub fn list_adapters(adapter_name: Option<&str>) -> Result<Vec<AdapterSummary>> {
    let knobs = GpuKnobs::from_env()?;
    let instance = instance();
    let chosen = choose_adapter(&instance, name_filter(adapter_name).as_deref()).ok().map(|a| a.get_info());
    let adapters = pollster::block_on(instance.enumerate_adapters(backends()));
    Ok(adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            let selected = chosen
                .as_ref()
                .is_some_and(|c| c.name == info.name && c.backend == info.backend && c.device == info.device);
            AdapterSummary::from_info(&info, a.features(), &knobs, selected)
        })
        .collect())
}

impl GpuContext {
    /// Open the adapter whose name contains `adapter_name` (case-insensitive), else the one
    /// WGPU_ADAPTER_NAME names, else the default high-performance adapter. No adapter:
    /// `Error::NoGpu` saying how to get one.
    pub fn new(adapter_name: Option<&str>) -> Result<GpuContext> {
        // The knobs first: a misspelt one is a usage error before any device is opened.
        let knobs = GpuKnobs::from_env()?;
        let instance = instance();
        let adapter = choose_adapter(&instance, name_filter(adapter_name).as_deref())?;
        let adapter_info = adapter.get_info();
        let features = adapter.features();
        if !features.contains(wgpu::Features::IMMEDIATES) {
            return Err(Error::NoGpu(format!(
                "GPU adapter {} ({:?}) lacks immediate data (push constants), which the GPU engine \
                 needs; {NO_GPU_HELP}",
                adapter_info.name, adapter_info.backend
            )));
        }
        // The adapter's real limits: wgpu's defaults cap storage bindings at 128 MiB and
        // workgroup storage at 16 KiB, below what the hardware (and lavapipe) offers.
        let limits = adapter.limits();
        // 64-bit floats where there are any: the limiter's dB-domain stages then compute as the
        // CPU twins do (see `Precision`).
        let required_features = wgpu::Features::IMMEDIATES | (features & wgpu::Features::SHADER_F64);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("stemforge"),
            required_features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("cannot open device on {}: {e}", adapter_info.name)))?;

        let errors = Arc::new(Mutex::new(ErrorSink::default()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut s) = sink.lock() {
                s.messages.push(e.to_string());
            }
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut s) = sink.lock() {
                s.messages.push(format!("device lost ({reason:?}): {msg}"));
            }
        });
        Ok(GpuContext { adapter_info, device, queue, limits, errors, kernels: Default::default(), knobs })
    }

    /// The device has 64-bit floats in shaders (SHADER_F64).
    pub fn has_f64(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F64)
    }

    pub fn summary(&self) -> AdapterSummary {
        AdapterSummary::from_info(&self.adapter_info, self.device.features(), &self.knobs, true)
    }

    /// Turn any error the device reported since the last check into `Error::Gpu`.
    pub fn check(&self) -> Result<()> {
        let mut sink = self.errors.lock().map_err(|_| Error::Gpu("error sink poisoned".into()))?;
        if sink.messages.is_empty() {
            Ok(())
        } else {
            let msg = sink.messages.join("; ");
            sink.messages.clear();
            Err(Error::Gpu(msg))
        }
    }

    /// Block until the queue is idle, then check for errors.
    pub fn wait_idle(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        self.check()
    }

    /// A storage buffer of `bytes` (rounded up to 4, at least 4), zero-filled, usable as a copy
    /// source and destination.
    pub fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer holding `data` (at least 4 bytes).
    pub fn storage_init<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        let buf = self.storage(label, std::mem::size_of_val(data) as u64);
        if !data.is_empty() {
            self.queue.write_buffer(&buf, 0, bytemuck::cast_slice(data));
        }
        buf
    }

    /// Copy `count` elements of `buf` from element `offset` back to the host, waiting for the
    /// queue. For tests and set-up; the engine's block loop uses its own staging ring instead.
    pub fn read_back<T: bytemuck::Pod>(&self, buf: &wgpu::Buffer, offset: usize, count: usize) -> Result<Vec<T>> {
        let size = std::mem::size_of::<T>();
        let bytes = (count * size) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let padded = bytes.next_multiple_of(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, (offset * size) as u64, &staging, 0, padded);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait_idle()?;
        rx.recv()
            .map_err(|_| Error::Gpu("read-back mapping was dropped".into()))?
            .map_err(|e| Error::Gpu(format!("read-back mapping failed: {e}")))?;
        let view = staging.get_mapped_range(..).map_err(|e| Error::Gpu(format!("read-back view: {e}")))?;
        let out = bytemuck::cast_slice::<u8, u8>(&view[..bytes as usize]);
        let mut v: Vec<T> = vec![T::zeroed(); count];
        bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(out);
        drop(view);
        staging.unmap();
        Ok(v)
    }
}

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
/// `benches/gpu_memory_repro.rs` reproduces it with plain wgpu). A few scalars read per
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
