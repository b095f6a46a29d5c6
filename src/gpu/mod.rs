//! The GPU engine: wgpu context, one host file per stage (named as its shader and CPU twin), and
//! the engine that keeps the per-block chain on the device.
