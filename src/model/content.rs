//! The content thresholds of `check`'s findings (clipping runs, DC offset, silence), shared with
//! the proof page's per-stem findings, which are gathered while a render streams.
/// A sample at or above this |x| counts toward a clipping run: 0.999 (−0.009 dBFS) rather than 1.0
/// so that clipping which was later scaled by a hair, or quantised to the top integer code
/// (32767/32768 = 0.99997), is still caught.
pub const CLIP_LEVEL: f32 = 0.999;
/// Consecutive samples at `CLIP_LEVEL` that make a clipping run. One or two full-scale samples
/// happen in legitimately peak-normalised material; three in a row do not (the usual rule of QC
/// tools and of ffmpeg's `astats` "flat factor").
pub const CLIP_RUN: usize = 3;
/// DC offset threshold on |mean| per channel, dBFS. −50 dBFS is 0.3 % of full scale: a real
/// converter or processing offset shows up above it, while an honest signal stays below it — the
/// mean of a file is not a high-pass, and a partial cycle of bass biases it by up to A/(π·f·T),
/// e.g. −49 dBFS for a full-scale 30 Hz tone cut off after 3 s, so a −60 dBFS threshold would
/// flag short bass stems that have no offset at all.
pub const DC_OFFSET_DBFS: f64 = -50.0;
/// A file whose sample peak stays below this is reported as silent (−90 dBFS is below 16-bit
/// dither: nothing audible is there).
pub const SILENCE_DBFS: f64 = -90.0;
