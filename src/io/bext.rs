//! The BWF `bext` chunk, version 2 (EBU Tech 3285 v2, 2011), that every WAV output carries: who
//! made the file, its place on the timeline (TimeReference) and the loudness of its samples.
//!
//! Fixed part, 602 bytes, then the CodingHistory text:
//! Description 256 | Originator 32 | OriginatorReference 32 | OriginationDate 10 | OriginationTime 8 |
//! TimeReferenceLow u32 | TimeReferenceHigh u32 | Version u16 | UMID 64 | LoudnessValue i16 |
//! LoudnessRange i16 | MaxTruePeakLevel i16 | MaxMomentaryLoudness i16 | MaxShortTermLoudness i16 |
//! Reserved 180. Text fields are ASCII, NUL-padded; a field filled to its length has no NUL.

/// Bytes of the chunk body before CodingHistory.
pub const FIXED_BYTES: usize = 602;
/// Tech 3285 v2: a loudness field "not used" holds 0x7FFF.
pub const LOUDNESS_UNSET: i16 = 0x7FFF;

/// What a `bext` chunk says besides the loudness, which is known only once the file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bext {
    /// Up to 256 ASCII characters (longer text is cut, anything else becomes '?').
    pub description: String,
    /// Up to 32.
    pub originator: String,
    /// Up to 32.
    pub originator_reference: String,
    /// "yyyy-mm-dd", or empty.
    pub origination_date: String,
    /// "hh:mm:ss", or empty.
    pub origination_time: String,
    /// First sample of the file, counted from midnight.
    pub time_reference: u64,
    /// EBU R 98 lines, each ending in CR LF.
    pub coding_history: String,
}

/// The loudness fields, as measured on the file's own samples: LUFS, LU and dBTP, -inf or NaN where
/// there is nothing to measure (silence, or a file shorter than one gating block).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BextLoudness {
    pub integrated_lufs: f64,
    pub lra_lu: f64,
    pub true_peak_dbtp: f64,
    pub max_momentary_lufs: f64,
    pub max_short_term_lufs: f64,
}

/// Meters what a writer writes, block by block, for its `bext` loudness. Implemented where the
/// meter lives (the pipeline), so that `io` stays below `meter`.
pub trait LoudnessTap: Send {
    /// The next `planar[ch][..]` frames, exactly as written to the file (after dither and
    /// quantisation: integer samples read back as x / 2^(bits-1)).
    fn add_planar(&mut self, planar: &[&[f32]]);
    /// Everything added so far.
    fn loudness(&mut self) -> BextLoudness;
}

impl Bext {
    /// Bytes the chunk takes in the file: header, body, and the pad byte of an odd body.
    pub fn chunk_len(&self) -> u64 {
        let body = (FIXED_BYTES + self.coding_history.len()) as u64;
        8 + body + (body & 1)
    }

    /// The whole chunk ("bext", size, body, pad) with `loudness` in its fields.
    pub fn chunk(&self, loudness: &BextLoudness) -> Vec<u8> {
        let history = ascii(&self.coding_history, usize::MAX);
        let body = FIXED_BYTES + history.len();
        let mut c = Vec::with_capacity(8 + body + 1);
        c.extend_from_slice(b"bext");
        c.extend_from_slice(&(body as u32).to_le_bytes());
        text(&mut c, &self.description, 256);
        text(&mut c, &self.originator, 32);
        text(&mut c, &self.originator_reference, 32);
        text(&mut c, &self.origination_date, 10);
        text(&mut c, &self.origination_time, 8);
        c.extend_from_slice(&(self.time_reference as u32).to_le_bytes());
        c.extend_from_slice(&((self.time_reference >> 32) as u32).to_le_bytes());
        c.extend_from_slice(&2u16.to_le_bytes()); // Version
        c.extend_from_slice(&[0u8; 64]); // UMID: none (SMPTE 330M material numbers are not ours to mint)
        for v in [
            loudness.integrated_lufs,
            loudness.lra_lu,
            loudness.true_peak_dbtp,
            loudness.max_momentary_lufs,
            loudness.max_short_term_lufs,
        ] {
            c.extend_from_slice(&loudness_field(v).to_le_bytes());
        }
        c.extend_from_slice(&[0u8; 180]);
        c.extend_from_slice(&history);
        if body % 2 == 1 {
            c.push(0); // RIFF pads odd-sized chunks to an even length
        }
        debug_assert_eq!(c.len() as u64, self.chunk_len());
        c
    }
}

/// Tech 3285 v2: round(100 x value) as a signed 16-bit integer; `LOUDNESS_UNSET` for a reading
/// that does not exist (-inf for silence) and, clamped, for one beyond the field (-327.68 and
/// below would not fit).
pub fn loudness_field(v: f64) -> i16 {
    if !v.is_finite() {
        return LOUDNESS_UNSET;
    }
    (100.0 * v).round().clamp(f64::from(i16::MIN), f64::from(LOUDNESS_UNSET - 1)) as i16
}

/// `s` as ASCII bytes ('?' for anything else), at most `max`.
fn ascii(s: &str, max: usize) -> Vec<u8> {
    s.chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() || c == '\r' || c == '\n' { c as u8 } else { b'?' })
        .take(max)
        .collect()
}

/// A text field of `len` bytes, NUL-padded.
fn text(out: &mut Vec<u8>, s: &str, len: usize) {
    let b = ascii(s, len);
    out.extend_from_slice(&b);
    out.resize(out.len() + len - b.len(), 0);
}
