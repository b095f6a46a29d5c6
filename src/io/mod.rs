//! Audio file I/O: streaming block readers (WAV/RF64 ourselves, the rest through symphonia) and
//! atomic WAV/RF64 writers.
//!
//! SKELETON: the types and signatures below are the contract; the I/O work fills them in.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::session::{Layout, SampleFormat};

pub mod wav_reader;
pub mod symphonia_reader;
pub mod wav_writer;

/// How the samples are stored in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SourceEncoding {
    Int16,
    Int24,
    Int32,
    Float32,
    Float64,
    /// Decoded by a codec (FLAC, ...): `bits` of integer precision.
    Coded { bits: u32 },
}

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
}

/// Open any supported audio file by content (not by extension): WAV and RF64 through
/// `wav_reader`, everything else through `symphonia_reader`. Missing file, non-audio file,
/// zero-length audio, unsupported encoding: `Error::Input` naming the file.
pub fn open(path: &Path) -> Result<Box<dyn BlockReader>> {
    Err(Error::input(path, "audio input is not implemented yet"))
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
