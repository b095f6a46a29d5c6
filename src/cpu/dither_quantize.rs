//! TPDF dither (a pure function of seed, channel, frame via 32-bit integer hashing), round half to
//! even, clamp to the integer range.
//!
//! SKELETON: the I/O work fills this in; `shaders/dither_quantize.wgsl` mirrors it.
