//! `TruePeakMeter`: the reference meter's true peak alone (the crate's, per channel, as
//! `LoudnessMeter` reads it: `PeakScan`), for the solve, which predicts the master's true peak
//! beside its loudness so that the limiter's aim is solved with G.
use rayon::prelude::*;

use super::{MAX_RATE, MIN_RATE, PeakScan, amplitude_db};
use crate::error::{Error, Result};

pub struct TruePeakMeter {
    peaks: Vec<PeakScan>,
}

impl TruePeakMeter {
    pub fn new(channels: usize, sample_rate: u32) -> Result<Self> {
        if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
            return Err(Error::Usage(format!("true-peak meter: cannot meter {sample_rate} Hz")));
        }
        Ok(TruePeakMeter { peaks: vec![PeakScan::new(sample_rate); channels] })
    }

    /// Feed one block, `planar[ch][frame]`; the channels are metered in parallel.
    pub fn add_planar(&mut self, planar: &[&[f32]]) {
        assert_eq!(planar.len(), self.peaks.len(), "TruePeakMeter::add_planar: wrong channel count");
        self.peaks.par_iter_mut().zip(planar.par_iter()).for_each(|(m, c)| m.add(c));
    }

    /// The true peak so far, dBTP, as `LoudnessMeter` reads it.
    pub fn true_peak_dbtp(&self) -> f64 {
        amplitude_db(self.peaks.iter().map(PeakScan::true_peak).fold(0.0f64, f64::max))
    }
}
