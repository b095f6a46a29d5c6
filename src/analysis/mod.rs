//! The read-only commands: `measure` (loudness), `compare` (null residual), `check` (stems vs mix).
//!
//! Each is a library function returning a report struct (`report::<command>`, which holds its
//! `to_text` and `to_json`); the CLI only parses options, calls them, prints, and maps a failed
//! report to exit 1.
pub mod check;
pub mod compare;
pub mod measure;

use crate::error::Result;
use crate::io::BlockReader;
use crate::report::seconds;

/// Frames per streamed block in the analysis commands (64 Ki frames: 2 MiB for 8 channels of f32).
pub const BLOCK: usize = 1 << 16;

/// Fill `out[ch][..want]` from `reader`, looping over short reads (a decoder may hand back less than
/// asked, one packet at a time), so two files streamed side by side stay frame-aligned. `scratch`
/// must have the reader's channel count, each at least `want` long. Returns the frames filled;
/// less than `want` only at the end of the file.
pub fn read_full(
    reader: &mut dyn BlockReader,
    out: &mut [Vec<f32>],
    scratch: &mut [Vec<f32>],
    want: usize,
) -> Result<usize> {
    let mut filled = reader.read_planar(out, want)?;
    while filled < want {
        let n = reader.read_planar(scratch, want - filled)?;
        if n == 0 {
            break;
        }
        for (o, s) in out.iter_mut().zip(scratch.iter()) {
            o[filled..filled + n].copy_from_slice(&s[..n]);
        }
        filled += n;
    }
    Ok(filled)
}
