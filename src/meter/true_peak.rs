//! `TruePeakMeter`: the reference meter's true peak alone (one `ebur128` crate instance per
//! channel, as `LoudnessMeter` reads it), for the solve, which predicts the master's true peak
//! beside its loudness so that the limiter's aim is solved with G.
use ebur128::{EbuR128, Mode};
use rayon::prelude::*;

use super::amplitude_db;
use crate::error::{Error, Result};

pub struct TruePeakMeter {
    peaks: Vec<EbuR128>,
}

impl TruePeakMeter {
    pub fn new(channels: usize, sample_rate: u32) -> Result<Self> {
        let peaks = (0..channels)
            .map(|_| {
                EbuR128::new(1, sample_rate, Mode::TRUE_PEAK)
                    .map_err(|e| Error::Usage(format!("true-peak meter: cannot meter {sample_rate} Hz ({e})")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TruePeakMeter { peaks })
    }

    /// Feed one block, `planar[ch][frame]`; the channels are metered in parallel.
    pub fn add_planar(&mut self, planar: &[&[f32]]) {
        assert_eq!(planar.len(), self.peaks.len(), "TruePeakMeter::add_planar: wrong channel count");
        self.peaks.par_iter_mut().zip(planar.par_iter()).for_each(|(m, c)| {
            m.add_frames_planar_f32(&[c]).expect("ebur128 accepts a one-channel block");
        });
    }

    /// The true peak so far, dBTP, as `LoudnessMeter` reads it.
    pub fn true_peak_dbtp(&self) -> f64 {
        amplitude_db(self.peaks.iter().map(|m| m.true_peak(0).unwrap_or(0.0)).fold(0.0f64, f64::max))
    }
}
