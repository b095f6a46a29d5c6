//! Metering whole files, streamed in blocks (`stemforge measure`, `check`).
use std::path::Path;

use super::{LoudnessMeter, LoudnessStats};
use crate::error::{Error, Result};
use crate::model::Layout;

/// Frames per block when a file is streamed through a meter: 64 Ki frames keeps an 8-channel
/// block at 2 MiB while amortising the per-call overhead.
pub const METER_BLOCK: usize = 1 << 16;

/// Meter one file, streamed in blocks; the layout follows the channel count
/// (`Layout::for_channels`: 1, 2, 6, 8), any other count weights every channel 1.0.
pub fn measure_file(path: &Path) -> Result<LoudnessStats> {
    let mut reader = crate::io::open(path)?;
    Ok(meter_reader(reader.as_mut())?.0)
}

/// Stream a whole reader through a meter laid out for its channel count; returns the stats and the
/// number of frames read.
pub fn meter_reader(reader: &mut dyn crate::io::BlockReader) -> Result<(LoudnessStats, u64)> {
    let (stats, frames, _) = meter_reader_with(reader, false)?;
    Ok((stats, frames))
}

/// `meter_reader`, also returning every 400 ms block energy (`LoudnessMeter::block_energies`),
/// for dialogue gating.
pub fn meter_reader_blocks(reader: &mut dyn crate::io::BlockReader) -> Result<(LoudnessStats, u64, Vec<f64>)> {
    meter_reader_with(reader, true)
}

fn meter_reader_with(reader: &mut dyn crate::io::BlockReader, keep: bool) -> Result<(LoudnessStats, u64, Vec<f64>)> {
    let info = reader.info().clone();
    let layout = Layout::for_channels(info.channels);
    let in_file = |e| match e {
        Error::Usage(msg) => Error::input(&info.path, msg),
        other => other,
    };
    let mut meter = LoudnessMeter::new(info.channels, info.sample_rate, layout).map_err(in_file)?;
    if keep {
        meter.keep_blocks().map_err(in_file)?;
    }
    let mut buf = vec![vec![0.0f32; METER_BLOCK]; info.channels];
    let mut frames = 0u64;
    loop {
        let n = reader.read_planar(&mut buf, METER_BLOCK)?;
        if n == 0 {
            break;
        }
        let planar: Vec<&[f32]> = buf.iter().map(|c| &c[..n]).collect();
        meter.add_planar(&planar);
        frames += n as u64;
    }
    let blocks = meter.block_energies().map(<[f64]>::to_vec).unwrap_or_default();
    Ok((meter.result(), frames, blocks))
}
