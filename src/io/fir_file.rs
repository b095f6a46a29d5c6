//! User impulse-response files (`filter = "path"` of a stem or the bus): read through the same
//! readers as the stems, checked for rate, channel count and length.
use std::path::Path;

use crate::error::{Error, Result};

/// Longest user impulse response accepted: 2^20 taps (21.8 s at 48 kHz), far beyond any EQ or
/// room correction, still bounded so that a wrong file (a whole song picked by mistake) is caught.
pub const MAX_FIR_TAPS: u64 = 1 << 20;

/// Load a user impulse response: one FIR per channel of a `channels`-channel signal (a mono IR is
/// shared by all channels). Its sample rate must equal `fs`. Used as given (latency 0).
pub fn load_fir_file(path: &Path, channels: usize, fs: u32) -> Result<Vec<Vec<f32>>> {
    let mut reader = super::open(path)?;
    let info = reader.info().clone();
    if info.sample_rate != fs {
        return Err(Error::input(
            path,
            format!(
                "impulse response at {} Hz, but the session runs at {fs} Hz (resample the IR to {fs} Hz)",
                info.sample_rate
            ),
        ));
    }
    if info.channels != 1 && info.channels != channels {
        return Err(Error::input(
            path,
            format!(
                "impulse response has {} channels; it must be mono (shared by all channels) or have \
                 exactly the {channels} channels of the signal it filters",
                info.channels
            ),
        ));
    }
    if info.frames > MAX_FIR_TAPS {
        return Err(Error::input(
            path,
            format!("impulse response is {} frames long; at most {MAX_FIR_TAPS} taps are accepted", info.frames),
        ));
    }
    const CHUNK: usize = 65536;
    let mut buf = vec![vec![0.0f32; CHUNK]; info.channels];
    let mut taps: Vec<Vec<f32>> = vec![Vec::with_capacity(info.frames as usize); info.channels];
    loop {
        let n = reader.read_planar(&mut buf, CHUNK)?;
        if n == 0 {
            break;
        }
        for (t, b) in taps.iter_mut().zip(&buf) {
            t.extend_from_slice(&b[..n]);
        }
        if taps[0].len() as u64 > MAX_FIR_TAPS {
            return Err(Error::input(path, format!("impulse response is longer than {MAX_FIR_TAPS} taps")));
        }
    }
    if taps[0].is_empty() {
        return Err(Error::input(path, "impulse response has no samples"));
    }
    Ok(if info.channels == 1 { vec![taps.swap_remove(0); channels] } else { taps })
}
