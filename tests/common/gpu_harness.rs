//! GPU test plumbing shared by the GPU test files: one device per test binary, tests serialised on
//! it, and the rule that GPU tests never skip silently (DESIGN.md "Testing without a GPU").
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use stemforge::error::Error;
use stemforge::gpu::GpuContext;

/// Set to 1 to skip GPU tests explicitly (each skip is printed and counted).
pub const SKIP_VAR: &str = "STEMFORGE_SKIP_GPU_TESTS";

static SKIPPED: AtomicUsize = AtomicUsize::new(0);

struct Shared {
    ctx: GpuContext,
}

fn shared() -> &'static Mutex<Shared> {
    static CTX: OnceLock<Mutex<Shared>> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = match GpuContext::new(None) {
            Ok(ctx) => ctx,
            Err(Error::NoGpu(msg)) => panic!(
                "GPU tests need a GPU adapter and none was found: {msg}. \
                 Set {SKIP_VAR}=1 to skip the GPU tests explicitly."
            ),
            Err(e) => panic!("GPU device could not be opened: {e}"),
        };
        let summary = ctx.summary();
        // Never drift onto the GL fallback unnoticed: the GPU tests run on Vulkan unless
        // WGPU_BACKEND names another backend on purpose.
        let asked = std::env::var("WGPU_BACKEND").unwrap_or_default().to_lowercase();
        if (asked.is_empty() || asked == "vulkan") && summary.backend != "Vulkan" {
            panic!(
                "GPU tests must run on Vulkan, but the adapter is {} (set WGPU_BACKEND=vulkan and install \
                 mesa-vulkan-drivers libvulkan1, or name the backend you mean to test in WGPU_BACKEND)",
                summary.describe()
            );
        }
        eprintln!("GPU tests run on: {}", summary.describe());
        Mutex::new(Shared { ctx })
    })
}

/// The device, held exclusively for the test's duration; `None` (after printing that the test
/// skipped, with the running count) only when STEMFORGE_SKIP_GPU_TESTS=1.
pub struct Gpu {
    guard: MutexGuard<'static, Shared>,
}

impl std::ops::Deref for Gpu {
    type Target = GpuContext;
    fn deref(&self) -> &GpuContext {
        &self.guard.ctx
    }
}

pub fn gpu(test: &str) -> Option<Gpu> {
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        let n = SKIPPED.fetch_add(1, Ordering::SeqCst) + 1;
        // Straight to the stderr handle: libtest captures print!/eprint! of passing tests, and a
        // skip must be seen.
        let line = format!("SKIPPED GPU test {test} ({SKIP_VAR}=1; {n} GPU test(s) skipped so far in this binary)\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        return None;
    }
    // A test that panicked while holding the device poisons the lock; the device itself is fine.
    let guard = shared().lock().unwrap_or_else(|p| p.into_inner());
    guard.ctx.check().ok();
    Some(Gpu { guard })
}

/// Run `f` with one compute pass on a fresh encoder and submit it.
pub fn run_pass(ctx: &GpuContext, f: impl FnOnce(&mut wgpu::ComputePass<'_>)) {
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        f(&mut pass);
    }
    ctx.queue.submit([enc.finish()]);
}

/// Submit commands recorded on a fresh encoder.
pub fn run_encoder(ctx: &GpuContext, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    f(&mut enc);
    ctx.queue.submit([enc.finish()]);
}

pub fn upload(ctx: &GpuContext, buf: &wgpu::Buffer, data: &[f32]) {
    ctx.queue.write_buffer(buf, 0, bytemuck::cast_slice(data));
}

pub fn read(ctx: &GpuContext, buf: &wgpu::Buffer, offset: usize, count: usize) -> Vec<f32> {
    ctx.read_back(buf, offset, count).unwrap_or_else(|e| panic!("read-back failed: {e}"))
}
