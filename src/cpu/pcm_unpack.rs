//! Raw little-endian PCM bytes (16/24/32-bit integer, 32/64-bit float, interleaved) -> planar f32.
//!
//! SKELETON: the I/O work fills this in; the GPU's `shaders/pcm_unpack.wgsl` mirrors it.
