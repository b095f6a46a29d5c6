//! The one test-helper module, used the same way by every test file (`mod common;` then
//! `use common::...`): the seeded RNG and the signals drawn from it, WAV files, the stemforge
//! binary and the outside tools (ffmpeg, ffprobe), the exact FIR reference, the GPU harness and
//! CPU/GPU parity check, and the local Slurm cluster (`slurm`). Each test binary uses part of it,
//! hence `allow(dead_code)`.
#![allow(dead_code)]

pub mod cli;
pub mod exact_fir;
pub mod gpu_harness;
pub mod gpu_parity;
pub mod loudness_ref;
pub mod rng;
pub mod signals;
pub mod slurm;
pub mod wav;

// Each binary imports what it uses from these; the rest are unused there.
#[allow(unused_imports)]
pub use {cli::*, rng::Rng, signals::*, wav::*};
