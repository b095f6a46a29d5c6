//! The CPU reference engine: one file per stage, named as its shader (`shaders/<stage>.wgsl`) and its
//! GPU host code (`src/gpu/<stage>.rs`). Each stage: `new(...)` allocates, `process(...)` does not.
pub mod delay_line;
pub mod dither_quantize;
pub mod engine;
pub mod fir_convolve;
pub mod gain_sum;
pub mod limiter;
pub mod limiter_apply;
pub mod limiter_hold;
pub mod limiter_release;
pub mod limiter_smooth;
pub mod oversample_peak;
pub mod pcm_unpack;
