//! WAV and RF64 reader: chunk parser and raw PCM streaming (symphonia 0.6 has no RF64 support).
//!
//! Formats: RIFF/WAVE, RF64 and BW64 (EBU Tech 3306 / ITU-R BS.2088: a `ds64` chunk carries the
//! 64-bit RIFF size, data size and sample count when the 32-bit fields hold 0xFFFFFFFF); `fmt `
//! with WAVE_FORMAT_PCM (1), WAVE_FORMAT_IEEE_FLOAT (3) or WAVE_FORMAT_EXTENSIBLE (0xFFFE, with
//! the KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT GUIDs); 16/24/32-bit integer, 32/64-bit float.
//! The header is parsed at open (nothing decoded); samples stream in blocks through one reused
//! byte buffer, never the whole file.
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::cpu::pcm_unpack;
use crate::error::{Error, Result};
use crate::io::{AudioInfo, BlockReader};
use crate::model::SourceEncoding;

const WAVE_FORMAT_PCM: u16 = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 0x0003;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// KSDATAFORMAT_SUBTYPE_* GUIDs are {0000xxxx-0000-0010-8000-00AA00389B71}: the format code in
/// the first two bytes (little-endian), then this fixed tail.
const GUID_TAIL: [u8; 14] = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71];

/// Where the audio is and how it is stored, as parsed from the header.
#[derive(Debug, Clone, PartialEq)]
pub struct WavLayout {
    pub encoding: SourceEncoding,
    pub channels: usize,
    pub sample_rate: u32,
    pub channel_mask: Option<u32>,
    /// Valid bits per sample (WAVE_FORMAT_EXTENSIBLE wValidBitsPerSample; else the container size).
    pub valid_bits: u32,
    /// Byte offset of the first sample.
    pub data_offset: u64,
    /// Size of the data chunk in bytes (from ds64 for RF64/BW64).
    pub data_size: u64,
    /// True for RF64/BW64 files.
    pub rf64: bool,
}

/// Why `WavReader::open_inner` failed.
#[derive(Debug)]
pub(crate) enum WavOpenError {
    /// A well-formed header with an encoding this reader does not decode.
    Unsupported(Error),
    Other(Error),
}

impl WavOpenError {
    pub(crate) fn into_error(self) -> Error {
        match self {
            WavOpenError::Unsupported(e) | WavOpenError::Other(e) => e,
        }
    }
}

impl From<Error> for WavOpenError {
    fn from(e: Error) -> Self {
        WavOpenError::Other(e)
    }
}

/// What `parse_header` found: a layout this reader streams, or a supported-by-others encoding.
pub enum Parsed {
    Layout(WavLayout),
    Unsupported(Error),
}

/// Streaming reader of one WAV/RF64/BW64 file.
pub struct WavReader {
    info: AudioInfo,
    layout: WavLayout,
    file: BufReader<File>,
    frames_read: u64,
    bytes_per_frame: usize,
    /// Reused raw buffer for `read_planar`.
    buf: Vec<u8>,
}

impl WavReader {
    /// Parse the header of `path` and position at the first sample. A missing file, a header that
    /// is not WAV, an unsupported encoding, zero frames, or a file shorter than its header says
    /// are `Error::Input` naming the file.
    pub fn open(path: &Path) -> Result<WavReader> {
        Self::open_inner(path).map_err(WavOpenError::into_error)
    }

    /// As `open`, telling an encoding this reader does not handle (8-bit, A-law, ...) apart, so
    /// `io::open` can hand those files to symphonia.
    pub(crate) fn open_inner(path: &Path) -> std::result::Result<WavReader, WavOpenError> {
        let file = File::open(path).map_err(|e| open_error(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::input_from(path, "cannot read", e))?.len();
        let mut file = BufReader::with_capacity(1 << 16, file);
        let layout = parse_header(&mut file, path, file_len)?;
        let layout = match layout {
            Parsed::Layout(l) => l,
            Parsed::Unsupported(e) => return Err(WavOpenError::Unsupported(e)),
        };
        let bps = pcm_unpack::bytes_per_sample(layout.encoding).expect("the WAV parser gives raw encodings");
        let bytes_per_frame = bps * layout.channels;
        let frames = layout.data_size / bytes_per_frame as u64;
        if frames == 0 {
            return Err(Error::input(path, "contains no audio (0 frames)").into());
        }
        let end = layout.data_offset + frames * bytes_per_frame as u64;
        if file_len < end {
            let held = file_len.saturating_sub(layout.data_offset) / bytes_per_frame as u64;
            return Err(Error::input(path, format!("truncated: header says {frames} frames, file holds {held}")).into());
        }
        file.seek(SeekFrom::Start(layout.data_offset)).map_err(|e| read_error(path, e))?;
        let info = AudioInfo {
            path: path.to_path_buf(),
            sample_rate: layout.sample_rate,
            channels: layout.channels,
            frames,
            encoding: layout.encoding,
            channel_mask: layout.channel_mask,
        };
        Ok(WavReader { info, layout, file, frames_read: 0, bytes_per_frame, buf: Vec::new() })
    }

    /// Bytes of one interleaved frame (channels * bytes per sample).
    pub fn bytes_per_frame(&self) -> usize {
        self.bytes_per_frame
    }

    /// The parsed header: data offset and size, valid bits, RF64 or not.
    pub fn layout(&self) -> &WavLayout {
        &self.layout
    }

    /// Frames read so far.
    pub fn position(&self) -> u64 {
        self.frames_read
    }

    /// Read up to `max_frames` frames of raw interleaved little-endian bytes into `buf` (resized to
    /// exactly `n * bytes_per_frame()`), for `pcm_unpack` on the CPU or the GPU. Returns n, 0 at
    /// the end. Float samples are checked for NaN/Inf here, so raw and planar reads agree.
    pub fn read_raw(&mut self, buf: &mut Vec<u8>, max_frames: usize) -> Result<usize> {
        let n = self.next_len(max_frames);
        buf.resize(n * self.bytes_per_frame, 0);
        self.fill(buf, n)?;
        Ok(n)
    }

    fn next_len(&self, max_frames: usize) -> usize {
        (self.info.frames - self.frames_read).min(max_frames as u64) as usize
    }

    /// Read `n` frames into `buf[..n * bytes_per_frame]`, check them, advance.
    fn fill(&mut self, buf: &mut [u8], n: usize) -> Result<()> {
        let bytes = &mut buf[..n * self.bytes_per_frame];
        if let Err(e) = self.file.read_exact(bytes) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::input(
                    &self.info.path,
                    format!(
                        "truncated: header says {} frames, file ends within frame {}..{}",
                        self.info.frames,
                        self.frames_read,
                        self.frames_read + n as u64
                    ),
                )
            } else {
                read_error(&self.info.path, e)
            });
        }
        check_finite_raw(bytes, self.info.encoding, self.info.channels, self.frames_read, &self.info.path)?;
        self.frames_read += n as u64;
        Ok(())
    }
}

impl BlockReader for WavReader {
    fn info(&self) -> &AudioInfo {
        &self.info
    }

    fn read_planar(&mut self, out: &mut [Vec<f32>], max_frames: usize) -> Result<usize> {
        let n = self.next_len(max_frames);
        if n == 0 {
            return Ok(0);
        }
        let mut buf = std::mem::take(&mut self.buf);
        if buf.len() < n * self.bytes_per_frame {
            buf.resize(n * self.bytes_per_frame, 0);
        }
        let r = self.fill(&mut buf, n);
        if r.is_ok() {
            pcm_unpack::unpack(&buf, self.info.encoding, self.info.channels, out, n);
        }
        self.buf = buf;
        r.map(|()| n)
    }

    fn raw_encoding(&self) -> Option<SourceEncoding> {
        Some(self.info.encoding)
    }

    fn read_raw(&mut self, buf: &mut Vec<u8>, max_frames: usize) -> Result<usize> {
        WavReader::read_raw(self, buf, max_frames)
    }

    fn seek_frame(&mut self, frame: u64) -> Result<()> {
        let frame = frame.min(self.info.frames);
        let at = self.layout.data_offset + frame * self.bytes_per_frame as u64;
        self.file.seek(SeekFrom::Start(at)).map_err(|e| read_error(&self.info.path, e))?;
        self.frames_read = frame;
        Ok(())
    }
}

/// A float sample that is NaN or ±Inf is an input error naming the frame (0-based, absolute in the
/// file) and channel (1-based, as a user counts them). Checked on the raw bits: an all-ones
/// exponent field.
fn check_finite_raw(
    bytes: &[u8],
    encoding: SourceEncoding,
    channels: usize,
    first_frame: u64,
    path: &Path,
) -> Result<()> {
    let (size, exp_mask_hi): (usize, u32) = match encoding {
        SourceEncoding::Float32 => (4, 0x7F80_0000),
        SourceEncoding::Float64 => (8, 0x7FF0_0000),
        _ => return Ok(()),
    };
    for (i, s) in bytes.chunks_exact(size).enumerate() {
        // The exponent sits in the most significant (last, little-endian) 32-bit word.
        let w = u32::from_le_bytes(s[size - 4..].try_into().unwrap());
        if w & exp_mask_hi == exp_mask_hi {
            let value = if size == 4 {
                f32::from_le_bytes(s.try_into().unwrap()) as f64
            } else {
                f64::from_le_bytes(s.try_into().unwrap())
            };
            return Err(non_finite_error(path, value, first_frame + (i / channels) as u64, i % channels, channels));
        }
    }
    Ok(())
}

/// "NaN sample at frame 1234, channel 2 of 6" (frame 0-based, channel 1-based).
pub(crate) fn non_finite_error(path: &Path, value: f64, frame: u64, channel: usize, channels: usize) -> Error {
    let what = if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "+Inf"
    } else {
        "-Inf"
    };
    Error::input(path, format!("{what} sample at frame {frame}, channel {} of {channels}", channel + 1))
}

fn open_error(path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::input(path, "no such file"),
        std::io::ErrorKind::PermissionDenied => Error::input(path, "cannot open: permission denied"),
        _ => Error::input_from(path, "cannot open", e),
    }
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    Error::input_from(path, "read error", e)
}

/// Little-endian field readers over a chunk's bytes.
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn fourcc(id: &[u8]) -> String {
    id.iter().map(|&c| if c.is_ascii_graphic() || c == b' ' { c as char } else { '?' }).collect()
}

/// The `fmt ` chunk, decoded.
struct Fmt {
    encoding: SourceEncoding,
    channels: usize,
    sample_rate: u32,
    channel_mask: Option<u32>,
    valid_bits: u32,
}

/// Parse the RIFF/RF64/BW64 header up to the data chunk. `file` is at offset 0. A well-formed
/// header whose encoding this reader does not decode is `Parsed::Unsupported`.
pub fn parse_header<R: Read + Seek>(file: &mut R, path: &Path, file_len: u64) -> Result<Parsed> {
    let bad = |msg: String| Error::input(path, msg);
    let mut head = [0u8; 12];
    read_header_bytes(file, &mut head, path, "the RIFF header")?;
    let rf64 = match &head[0..4] {
        b"RIFF" => false,
        b"RF64" | b"BW64" => true,
        other => return Err(bad(format!("not a WAV file (starts with \"{}\")", fourcc(other)))),
    };
    if &head[8..12] != b"WAVE" {
        return Err(bad(format!("not a WAV file (RIFF form type \"{}\", expected \"WAVE\")", fourcc(&head[8..12]))));
    }
    let mut pos = 12u64;
    let mut ds64_data_size: Option<u64> = None;
    let mut fmt: Option<Fmt> = None;
    let mut data: Option<(u64, u64)> = None;
    loop {
        if pos + 8 > file_len {
            break;
        }
        let mut ch = [0u8; 8];
        read_header_bytes(file, &mut ch, path, "a chunk header")?;
        let id = [ch[0], ch[1], ch[2], ch[3]];
        let size32 = le32(&ch, 4);
        let body = pos + 8;
        match &id {
            b"ds64" => {
                if !rf64 {
                    // A ds64 in a plain RIFF file is meaningless; treat it as unknown.
                } else {
                    if size32 < 24 {
                        return Err(bad(format!("corrupt RF64 header: ds64 chunk of {size32} bytes (at least 24)")));
                    }
                    let mut b = [0u8; 24];
                    read_header_bytes(file, &mut b, path, "the ds64 chunk")?;
                    ds64_data_size = Some(le64(&b, 8));
                }
            }
            b"fmt " => {
                if !(16..=1024).contains(&size32) {
                    return Err(bad(format!("corrupt WAV header: fmt chunk of {size32} bytes")));
                }
                let mut b = vec![0u8; size32 as usize];
                read_header_bytes(file, &mut b, path, "the fmt chunk")?;
                match parse_fmt(&b, path)? {
                    Ok(f) => fmt = Some(f),
                    Err(unsupported) => return Ok(Parsed::Unsupported(unsupported)),
                }
            }
            b"data" => {
                let size = if size32 == 0xFFFF_FFFF && rf64 {
                    ds64_data_size.ok_or_else(|| {
                        bad("corrupt RF64 header: data size 0xFFFFFFFF and no ds64 chunk before it".into())
                    })?
                } else {
                    size32 as u64
                };
                data = Some((body, size));
                if fmt.is_some() {
                    break;
                }
                // fmt after data (allowed, rare): keep scanning past the audio.
                let next = body + size + (size & 1);
                file.seek(SeekFrom::Start(next)).map_err(|e| read_error(path, e))?;
                pos = next;
                continue;
            }
            _ => {}
        }
        let size = size32 as u64;
        let next = body + size + (size & 1); // RIFF pads odd-sized chunks to an even length
        file.seek(SeekFrom::Start(next)).map_err(|e| read_error(path, e))?;
        pos = next;
    }
    let Some(fmt) = fmt else {
        return Err(bad(if data.is_some() {
            "corrupt WAV header: no fmt chunk".into()
        } else {
            format!("corrupt or truncated WAV header: no fmt chunk in the file's {file_len} bytes")
        }));
    };
    let Some((data_offset, data_size)) = data else {
        return Err(bad(format!("corrupt or truncated WAV: no data chunk in the file's {file_len} bytes")));
    };
    Ok(Parsed::Layout(WavLayout {
        encoding: fmt.encoding,
        channels: fmt.channels,
        sample_rate: fmt.sample_rate,
        channel_mask: fmt.channel_mask,
        valid_bits: fmt.valid_bits,
        data_offset,
        data_size,
        rf64,
    }))
}

fn read_header_bytes<R: Read>(file: &mut R, buf: &mut [u8], path: &Path, what: &str) -> Result<()> {
    file.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::input(path, format!("truncated WAV header: the file ends inside {what}"))
        } else {
            read_error(path, e)
        }
    })
}

/// Ok(Ok(fmt)): readable; Ok(Err(e)): a valid header with an encoding we do not decode; Err: corrupt.
fn parse_fmt(b: &[u8], path: &Path) -> Result<std::result::Result<Fmt, Error>> {
    let bad = |msg: String| Error::input(path, msg);
    let tag = le16(b, 0);
    let channels = le16(b, 2) as usize;
    let sample_rate = le32(b, 4);
    let block_align = le16(b, 12) as usize;
    let bits = le16(b, 14) as u32;
    let (code, channel_mask, valid_bits) = if tag == WAVE_FORMAT_EXTENSIBLE {
        if b.len() < 40 {
            return Err(bad(format!(
                "corrupt WAV header: WAVE_FORMAT_EXTENSIBLE fmt chunk of {} bytes (needs 40)",
                b.len()
            )));
        }
        let valid = le16(b, 18) as u32;
        let mask = le32(b, 20);
        let guid = &b[24..40];
        if guid[2..] != GUID_TAIL {
            return Ok(Err(bad(
                "unsupported WAV encoding: WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID".into()
            )));
        }
        (le16(guid, 0), Some(mask), if valid == 0 { bits } else { valid })
    } else {
        (tag, None, bits)
    };
    if channels == 0 {
        return Err(bad("corrupt WAV header: 0 channels".into()));
    }
    if sample_rate == 0 {
        return Err(bad("corrupt WAV header: sample rate 0 Hz".into()));
    }
    let encoding = match (code, bits) {
        (WAVE_FORMAT_PCM, 16) => SourceEncoding::Int16,
        (WAVE_FORMAT_PCM, 24) => SourceEncoding::Int24,
        (WAVE_FORMAT_PCM, 32) => SourceEncoding::Int32,
        (WAVE_FORMAT_IEEE_FLOAT, 32) => SourceEncoding::Float32,
        (WAVE_FORMAT_IEEE_FLOAT, 64) => SourceEncoding::Float64,
        (WAVE_FORMAT_PCM, b) => {
            return Ok(Err(bad(format!(
                "unsupported WAV encoding: {b}-bit integer PCM (integer PCM of 8, 16, 24 or 32 bits is read, and float of 32 or 64)"
            ))));
        }
        (WAVE_FORMAT_IEEE_FLOAT, b) => {
            return Ok(Err(bad(format!("unsupported WAV encoding: {b}-bit float (32 or 64-bit are read)"))));
        }
        (c, _) => {
            return Ok(Err(bad(format!(
                "unsupported WAV encoding: format code {c:#06x} (integer PCM and IEEE float are read)"
            ))));
        }
    };
    if valid_bits == 0 || valid_bits > bits {
        return Err(bad(format!("corrupt WAV header: {valid_bits} valid bits in a {bits}-bit sample")));
    }
    let bps = pcm_unpack::bytes_per_sample(encoding).unwrap();
    if block_align != channels * bps {
        return Err(bad(format!(
            "corrupt WAV header: block align {block_align} bytes, but {channels} channels of {bits} bits need {}",
            channels * bps
        )));
    }
    Ok(Ok(Fmt { encoding, channels, sample_rate, channel_mask, valid_bits }))
}
