//! stemforge: offline stem mastering on the GPU (wgpu/WGSL) with a CPU reference engine.
pub mod album;
pub mod analysis;
pub mod cpu;
pub mod dsp;
pub mod engine;
pub mod error;
pub mod farm;
pub mod gpu;
pub mod io;
pub mod meter;
pub mod model;
pub mod paths;
pub mod pipeline;
pub mod publish;
pub mod session;

pub use error::{Error, Result};
pub mod channel_mask;
pub mod cli;
pub mod commands;
pub mod progress;
pub mod report;
pub mod stages;
