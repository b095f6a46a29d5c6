//! Block reader for AIFF, FLAC and other containers, through symphonia 0.6.
//!
//! symphonia decodes packet by packet; this reader keeps the last decoded packet as planar f32
//! (one reused set of vectors) and hands it out in whatever block sizes the caller asks for.
//! The frame count must be known up front (AIFF COMM, FLAC STREAMINFO, ...): the render plan needs
//! N before the first block, so a stream of unknown length is refused at open.
use std::fs::File;
use std::path::Path;

use symphonia::core::audio::Channels;
use symphonia::core::audio::sample::SampleFormat as SymFormat;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::error::{Error, Result};
use crate::io::wav_reader::non_finite_error;
use crate::io::{AudioInfo, BlockReader};
use crate::model::SourceEncoding;

/// Why `SymphoniaReader::open` failed: the content is not a format symphonia knows (the caller
/// words the "not an audio file" message), or a known format with a problem.
#[derive(Debug)]
pub enum OpenError {
    NotRecognised,
    Input(Error),
}

impl From<Error> for OpenError {
    fn from(e: Error) -> Self {
        OpenError::Input(e)
    }
}

/// Streaming reader of one file symphonia can probe and decode.
pub struct SymphoniaReader {
    info: AudioInfo,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    /// Short container name ("aiff", "flac", ...), for messages.
    container: &'static str,
    /// The last decoded packet, planar; `pending_pos..pending_len` not yet handed out.
    pending: Vec<Vec<f32>>,
    pending_pos: usize,
    pending_len: usize,
    /// Frames handed out so far (the absolute frame index of the next one).
    frames_out: u64,
    /// Frames decoded so far (including those still pending).
    frames_decoded: u64,
    /// The container said it has no more packets.
    eof: bool,
}

impl SymphoniaReader {
    /// Probe `path` by content, pick its default audio track, make a decoder. Unknown content is
    /// `OpenError::NotRecognised`; a known format with a problem (no audio track, unsupported
    /// codec, unknown length, 0 frames, corrupt header) is an `Error::Input` naming the file.
    pub fn open(path: &Path) -> std::result::Result<SymphoniaReader, OpenError> {
        let file = File::open(path).map_err(|e| {
            Error::input(
                path,
                if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file".to_string()
                } else {
                    format!("cannot open: {e}")
                },
            )
        })?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let format = match symphonia::default::get_probe().probe(
            &Hint::new(),
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        ) {
            Ok(f) => f,
            // "core (probe): no suitable format reader found" (the scan reached EOF or its limit).
            Err(SymError::Unsupported(_)) => return Err(OpenError::NotRecognised),
            // The probe found a format marker and that format's reader ran off the end of the
            // file (an AIFF cut short inside its SSND chunk, say).
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Error::input(
                    path,
                    "truncated or corrupt: the file ends before the data its header describes",
                )
                .into());
            }
            Err(e) => return Err(Error::input_from(path, "corrupt or unsupported audio file", e).into()),
        };
        let container = format.format_info().short_name;
        let Some(track) = format.default_track(TrackType::Audio) else {
            return Err(Error::input(path, format!("{container} file has no audio track")).into());
        };
        let track_id = track.id;
        let params = match &track.codec_params {
            Some(CodecParameters::Audio(p)) => p.clone(),
            _ => {
                return Err(
                    Error::input(path, format!("{container} file: its audio track has no codec parameters")).into()
                );
            }
        };
        let frames = track.num_frames.ok_or_else(|| {
            Error::input(
                path,
                format!("{container} file does not state its length (frame count unknown); convert it to WAV or FLAC"),
            )
        })?;
        if frames == 0 {
            return Err(Error::input(path, "contains no audio (0 frames)").into());
        }
        let sample_rate = params
            .sample_rate
            .ok_or_else(|| Error::input(path, format!("{container} file does not state its sample rate")))?;
        let channels_desc = params
            .channels
            .clone()
            .ok_or_else(|| Error::input(path, format!("{container} file does not state its channel count")))?;
        let channels = channels_desc.count();
        if channels == 0 {
            return Err(Error::input(path, format!("{container} file has 0 channels")).into());
        }
        let channel_mask = match channels_desc {
            // FLAC states no mask: its channel order is implied by the count (RFC 9639 9.1.3), and
            // its six channels are L R C LFE and the surround pair, which symphonia labels as the
            // back pair and ffmpeg as the side pair. The order is what routing needs; a label
            // read from the count would only warn about a difference the file does not state.
            _ if container == "flac" => None,
            // symphonia's first 18 positions are WAVEFORMATEXTENSIBLE's dwChannelMask bits.
            Channels::Positioned(p) if p.bits() < (1 << 18) => Some(p.bits() as u32),
            _ => None,
        };
        let bits = params.bits_per_sample.or(params.bits_per_coded_sample).unwrap_or(match params.sample_format {
            Some(SymFormat::F64) => 64,
            Some(SymFormat::F32) => 32,
            // Lossy and companded codecs (Vorbis, A-law, ...) state no integer precision; 0 says so.
            _ => 0,
        });
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| Error::input_from(path, format_args!("{container} file: unsupported codec"), e))?;
        let info = AudioInfo {
            path: path.to_path_buf(),
            sample_rate,
            channels,
            frames,
            encoding: SourceEncoding::Coded { bits },
            channel_mask,
        };
        Ok(SymphoniaReader {
            info,
            format,
            decoder,
            track_id,
            container,
            pending: vec![Vec::new(); channels],
            pending_pos: 0,
            pending_len: 0,
            frames_out: 0,
            frames_decoded: 0,
            eof: false,
        })
    }

    /// Container short name as symphonia reports it ("aiff", "flac", "ogg", ...).
    pub fn container(&self) -> &'static str {
        self.container
    }

    /// Decode the next packet of our track into `pending`. Returns false at the end of the stream.
    fn decode_next(&mut self) -> Result<bool> {
        let path = &self.info.path;
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(false),
                // A file cut short mid-packet: the frame count check below words the error.
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
                Err(e) => {
                    return Err(Error::input(
                        path,
                        format!("{} read error after frame {}: {e}", self.container, self.frames_decoded),
                    ));
                }
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let buf = self.decoder.decode(&packet).map_err(|e| {
                Error::input_from(
                    path,
                    format_args!("{} decode error after frame {}", self.container, self.frames_decoded),
                    e,
                )
            })?;
            let n = buf.frames();
            if n == 0 {
                continue;
            }
            if buf.num_planes() != self.info.channels {
                return Err(Error::input(
                    path,
                    format!(
                        "{} stream changed from {} to {} channels at frame {}",
                        self.container,
                        self.info.channels,
                        buf.num_planes(),
                        self.frames_decoded
                    ),
                ));
            }
            for p in &mut self.pending {
                p.resize(n, 0.0);
            }
            // symphonia's conversion is x / 2^(bits-1) for integers (exact up to 24 bits, one
            // rounding for 32), the same scale as `pcm_unpack`.
            buf.copy_to_slice_planar::<f32, _>(&mut self.pending);
            self.pending_pos = 0;
            self.pending_len = n;
            self.frames_decoded += n as u64;
            return Ok(true);
        }
    }
}

impl BlockReader for SymphoniaReader {
    fn info(&self) -> &AudioInfo {
        &self.info
    }

    fn read_planar(&mut self, out: &mut [Vec<f32>], max_frames: usize) -> Result<usize> {
        let total = self.info.frames;
        let want = (total - self.frames_out).min(max_frames as u64) as usize;
        let mut done = 0;
        while done < want {
            if self.pending_pos == self.pending_len && (self.eof || !self.decode_next()?) {
                self.eof = true;
                return Err(Error::input(
                    &self.info.path,
                    format!("truncated: header says {total} frames, file holds {}", self.frames_decoded),
                ));
            }
            let k = (want - done).min(self.pending_len - self.pending_pos);
            for (ch, (o, p)) in out.iter_mut().zip(&self.pending).enumerate() {
                let src = &p[self.pending_pos..self.pending_pos + k];
                if let Some(i) = src.iter().position(|v| !v.is_finite()) {
                    let frame = self.frames_out + (done + i) as u64;
                    return Err(non_finite_error(&self.info.path, src[i] as f64, frame, ch, self.info.channels));
                }
                o[done..done + k].copy_from_slice(src);
            }
            self.pending_pos += k;
            done += k;
        }
        self.frames_out += done as u64;
        Ok(done)
    }
}
