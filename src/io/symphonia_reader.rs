//! Block reader for AIFF, FLAC and other containers, through symphonia 0.6.
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::{AudioInfo, BlockReader};

/// Why `SymphoniaReader::open` failed: the content is not a format symphonia knows (the caller
/// words the "not an audio file" message), or a known format with a problem.
#[derive(Debug)]
pub enum OpenError {
    NotRecognised,
    Input(Error),
}

pub struct SymphoniaReader {
    info: AudioInfo,
}

impl SymphoniaReader {
    pub fn open(_path: &Path) -> std::result::Result<SymphoniaReader, OpenError> {
        Err(OpenError::NotRecognised)
    }
}

impl BlockReader for SymphoniaReader {
    fn info(&self) -> &AudioInfo {
        &self.info
    }
    fn read_planar(&mut self, _out: &mut [Vec<f32>], _max_frames: usize) -> Result<usize> {
        Err(Error::input(&self.info.path, "not implemented"))
    }
}
