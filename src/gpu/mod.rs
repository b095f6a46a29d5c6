//! The GPU engine: wgpu context, one host file per stage (named as its shader and CPU twin), and
//! the engine that keeps the per-block chain on the device.
pub mod context;
pub mod knobs;

pub mod delay_line;
pub mod dither_quantize;
pub mod fir_convolve;
pub mod gain_sum;
pub mod limiter_apply;
pub mod limiter_hold;
pub mod limiter_release;
pub mod limiter_smooth;
pub mod meter;
pub mod oversample_peak;
pub mod pcm_unpack;

mod chain;
pub mod engine;

pub use context::{AdapterSummary, GpuContext, list_adapters};
pub use engine::GpuEngine;
