//! The read-only commands: `measure` (loudness), `compare` (null residual), `check` (stems vs mix).
//!
//! Each is a library function returning a report struct (`report::<command>`, which holds its
//! `to_text` and `to_json`); the CLI only parses options, calls them, prints, and maps a failed
//! report to exit 1.
pub mod check;
pub mod compare;
pub mod measure;

use crate::report::seconds;

/// Frames per streamed block in the analysis commands (64 Ki frames: 2 MiB for 8 channels of f32).
pub const BLOCK: usize = 1 << 16;

/// Streams two files side by side (moved to `io`, where the proof page's mix reader uses it too).
pub use crate::io::read_full;
