//! Audio file I/O: streaming block readers (WAV/RF64 ourselves, the rest through symphonia) and
//! atomic WAV/RF64 writers.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use crate::model::{Layout, SampleFormat, SourceEncoding};

pub mod bext;
pub mod fir_file;
pub mod symphonia_reader;
pub mod wav_reader;
pub mod wav_writer;

/// What is known about an input file once opened (header only: nothing decoded yet).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AudioInfo {
    pub path: PathBuf,
    pub sample_rate: u32,
    pub channels: usize,
    /// Exact frame count from the header (WAV/RF64/AIFF data size, FLAC STREAMINFO).
    pub frames: u64,
    pub encoding: SourceEncoding,
    /// WAVE_FORMAT_EXTENSIBLE channel mask when the file has one.
    pub channel_mask: Option<u32>,
}

/// A streaming reader of planar f32 blocks (full scale 1.0; integer PCM reads as x / 2^(bits-1)).
pub trait BlockReader: Send {
    fn info(&self) -> &AudioInfo;
    /// Read up to `max_frames` frames into `out[ch][..n]` (out.len() == channels, each at least
    /// `max_frames` long); returns n, 0 at the end. A file that ends before its header's frame
    /// count, or holds a NaN/Inf sample, is an `Error::Input` naming the file and the frame.
    fn read_planar(&mut self, out: &mut [Vec<f32>], max_frames: usize) -> Result<usize>;
    /// The encoding of the file's own bytes, for a reader that can hand them out (`read_raw`:
    /// WAV/RF64/BW64); None for a codec-decoded file (AIFF, FLAC, ... through symphonia).
    fn raw_encoding(&self) -> Option<SourceEncoding> {
        None
    }
    /// Read up to `max_frames` frames of raw interleaved little-endian bytes into `buf` (resized to
    /// exactly n frames); returns n, 0 at the end. Only for a reader with a `raw_encoding`.
    fn read_raw(&mut self, _buf: &mut Vec<u8>, _max_frames: usize) -> Result<usize> {
        Err(Error::Internal(format!("{}: this reader decodes; it has no raw PCM", self.info().path.display())))
    }
    /// Position at frame `frame` of a reader that has read nothing yet (a segment of a programme,
    /// design/farm.md). A WAV reader seeks, reading none of the frames before; a codec-decoded
    /// file is decoded and discarded up to there (a codec has no sample-exact seek).
    fn seek_frame(&mut self, frame: u64) -> Result<()> {
        let channels = self.info().channels;
        let mut scratch = vec![vec![0.0f32; 4096]; channels];
        let mut left = frame;
        while left > 0 {
            let n = self.read_planar(&mut scratch, left.min(4096) as usize)?;
            if n == 0 {
                break;
            }
            left -= n as u64;
        }
        Ok(())
    }
}

/// Open any supported audio file by content (not by extension): WAV and RF64 through
/// `wav_reader`, everything else through `symphonia_reader`. Missing file, non-audio file,
/// zero-length audio, unsupported encoding: `Error::Input` naming the file.
pub fn open(path: &Path) -> Result<Box<dyn BlockReader>> {
    match sniff(path)? {
        Sniffed::Wav => match wav_reader::WavReader::open_inner(path) {
            Ok(r) => Ok(Box::new(r)),
            // 8-bit, A-law, mu-law...: symphonia's WAV reader decodes those; if it cannot either,
            // our message (which names the encoding) is the clearer one.
            Err(wav_reader::WavOpenError::Unsupported(ours)) => match symphonia_reader::SymphoniaReader::open(path) {
                Ok(r) => Ok(Box::new(r)),
                Err(_) => Err(ours),
            },
            Err(wav_reader::WavOpenError::Other(e)) => Err(e),
        },
        Sniffed::Other(head) => match symphonia_reader::SymphoniaReader::open(path) {
            Ok(r) => Ok(Box::new(r)),
            Err(symphonia_reader::OpenError::NotRecognised) => {
                Err(Error::input(path, format!("not an audio file ({})", describe_head(&head))))
            }
            Err(symphonia_reader::OpenError::Input(e)) => Err(e),
        },
    }
}

/// What the first bytes of a file say it is.
enum Sniffed {
    /// RIFF/RF64/BW64 with form type WAVE.
    Wav,
    /// Anything else: the first bytes (up to 12), for the error message.
    Other(Vec<u8>),
}

fn sniff(path: &Path) -> Result<Sniffed> {
    use std::io::Read;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::input(path, "no such file").with_source(e));
        }
        Err(e) => return Err(Error::input_from(path, "cannot open", e)),
    };
    if meta.is_dir() {
        return Err(Error::input(path, "is a folder, not an audio file"));
    }
    if !meta.is_file() {
        // A device (/dev/zero, /dev/urandom), a FIFO or a socket: its length reads as 0 and it
        // cannot be sought or read twice (a render reads every stem once per pass).
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let what = if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(Error::input(
            path,
            format!(
                "not a regular file ({what}): stemforge reads audio from regular files (a render reads each stem more than once)"
            ),
        ));
    }
    if meta.len() == 0 {
        return Err(Error::input(path, "not an audio file (empty: 0 bytes)"));
    }
    let mut f = std::fs::File::open(path).map_err(|e| Error::input_from(path, "cannot open", e))?;
    let mut head = Vec::with_capacity(12);
    (&mut f).take(12).read_to_end(&mut head).map_err(|e| Error::input_from(path, "read error", e))?;
    let riff = head.len() == 12 && matches!(&head[0..4], b"RIFF" | b"RF64" | b"BW64") && &head[8..12] == b"WAVE";
    Ok(if riff { Sniffed::Wav } else { Sniffed::Other(head) })
}

/// "starts with 7b 0a 20 20 ... (\"{\\n  ...\")" for a file neither reader understands.
fn describe_head(head: &[u8]) -> String {
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let text: String =
        head.iter().take(8).map(|&c| if c.is_ascii_graphic() || c == b' ' { c as char } else { '.' }).collect();
    format!("no WAV/RF64, AIFF, FLAC or Ogg header; starts with bytes {} \"{}\"", hex.join(" "), text)
}

/// Options for writing one output file.
#[derive(Debug, Clone)]
pub struct WriterSpec {
    pub sample_rate: u32,
    pub channels: usize,
    pub layout: Option<Layout>,
    pub format: SampleFormat,
    /// TPDF dither seed; None = no dither.
    pub dither_seed: Option<u32>,
}

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
