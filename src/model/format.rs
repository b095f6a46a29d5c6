//! Sample formats of outputs (with their dither) and encodings of inputs.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OutputKind {
    Master,
    Stems,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SampleFormat {
    Pcm16,
    Pcm24,
    Pcm32,
    F32,
}

impl SampleFormat {
    /// Integer bit depth, None for float.
    pub fn int_bits(self) -> Option<u32> {
        match self {
            SampleFormat::Pcm16 => Some(16),
            SampleFormat::Pcm24 => Some(24),
            SampleFormat::Pcm32 => Some(32),
            SampleFormat::F32 => None,
        }
    }
    pub fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::Pcm16 => 2,
            SampleFormat::Pcm24 => 3,
            SampleFormat::Pcm32 | SampleFormat::F32 => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Dither {
    Tpdf,
    None,
}

/// How the samples are stored in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SourceEncoding {
    Int16,
    Int24,
    Int32,
    Float32,
    Float64,
    /// Decoded by a codec (FLAC, ...): `bits` of integer precision.
    Coded {
        bits: u32,
    },
}
