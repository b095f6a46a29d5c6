//! Oversample by K with the polyphase table and reduce to the required attenuation per frame:
//! a[n] = max(0, 20*log10(max over channels and sub-samples |u|) - ceiling_db).
//!
//! SKELETON: the contract for the DSP work and the GPU mirror.
use crate::dsp::oversampling::OversamplingTable;

pub struct OversamplePeak {
    _private: (),
}

impl OversamplePeak {
    pub fn new(table: &OversamplingTable, channels: usize, block: usize) -> Self {
        let _ = (table, channels, block);
        unimplemented!("OversamplePeak::new")
    }
    /// `x[ch]` holds `block` frames; writes `atten_db[..block]`, lagging the input by `table.latency`.
    pub fn process(&mut self, x: &[&[f32]], ceiling_db: f32, atten_db: &mut [f32]) {
        let _ = (x, ceiling_db, atten_db);
        unimplemented!("OversamplePeak::process")
    }
}
