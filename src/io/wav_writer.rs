//! Atomic WAV/RF64 writer: temp file in the destination folder, renamed on `finish`.
//!
//! Layout (EBU Tech 3306 "RF64", section 3.5: a RIFF file that may outgrow 4 GiB reserves a JUNK
//! chunk where the ds64 chunk would go, so it can become RF64 in place):
//!
//! ```text
//!  0 "RIFF" | riff size u32 | "WAVE"
//! 12 "JUNK" | 28 | 28 zero bytes        -> "ds64" | 28 | riff size u64, data size u64, frames u64, 0u32
//! 48 "fmt " | 16 or 40 | WAVEFORMAT(EX/EXTENSIBLE)
//!    "data" | data size u32 (0xFFFFFFFF in RF64) | interleaved little-endian samples [| pad byte]
//!    "bext" | 602 + history | BWF bext chunk v2 (src/io/bext.rs), when the writer is given one
//! ```
//!
//! The `bext` chunk follows the audio: its loudness fields are those of the samples as written,
//! known only when the last one is, and a chunk after the data is written then, in order, so the
//! file is still hashed as it streams out (a chunk before the data would have to be patched,
//! and an hours-long file read back to hash it). RIFF lets chunks come in any order; ffmpeg
//! reads a trailing `bext`, and readers that ignore it (hound, sox) stop at the data.
//!
//! WAVE_FORMAT_EXTENSIBLE (with the layout's channel mask, 0 when none is given) whenever the
//! plain header is ambiguous: more than 2 channels, more than 16 bits, or float (Microsoft,
//! "WAVEFORMATEXTENSIBLE" remarks); plain WAVE_FORMAT_PCM otherwise, which every reader takes.
//! The file is written under a hidden temporary name in the destination folder and renamed over
//! the final name only when complete (DESIGN.md "Commands": a crash never leaves a half-written
//! file under the final name); dropping an unfinished writer deletes the temporary file.
//!
//! A writer told its frame count before the first write (`expect_frames`; a render knows N before
//! a pass) writes the finished header first and hashes the file (SHA-256) as the bytes go out, so
//! finishing it is a flush, an fsync and a rename. Otherwise, or when the count turns out
//! different, `finish` patches the sizes in and hashes the file by reading it back.
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::cpu::{dither_quantize, pcm_unpack};
use crate::error::{Error, Result};
use crate::io::WriterSpec;
use crate::io::bext::{Bext, LoudnessTap};
use crate::model::{SampleFormat, SourceEncoding};
use crate::publish::{OutputTemp, Publication};

/// Bytes before the fmt chunk: RIFF header (12) + JUNK/ds64 chunk (8 + 28).
const FMT_OFFSET: u64 = 48;
const JUNK_BODY: u32 = 28;
/// KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: {0000000x-0000-0010-8000-00AA00389B71}.
const GUID_TAIL: [u8; 14] = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71];

/// A finished output file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WrittenFile {
    pub path: PathBuf,
    pub frames: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// SHA-256 of the finished file, lowercase hex.
    pub sha256: String,
    /// Samples beyond full scale: clamped in integer formats (so the file no longer equals the
    /// signal), kept but over 0 dBFS in f32.
    pub over_full_scale: u64,
}

/// Streaming writer of one WAV (or RF64, past 4 GiB) file.
pub struct WavWriter {
    final_path: PathBuf,
    spec: WriterSpec,
    /// Declared before `temp`, so a dropped writer flushes before the file is deleted.
    out: Option<BufWriter<File>>,
    /// Some until `seal` hands it on; dropping it deletes the temporary file.
    temp: Option<OutputTemp>,
    data_offset: u64,
    frames: u64,
    data_bytes: u64,
    /// The file becomes RF64 when its RIFF size (file length - 8) exceeds this.
    rf64_threshold: u64,
    /// The frame count given to `expect_frames`, if any.
    expected_frames: Option<u64>,
    /// Whether the header has gone out; it is written with the first bytes (so that
    /// `expect_frames` and `set_rf64_threshold` can still shape it before that).
    header_written: bool,
    /// Bytes handed to the file so far, and how many of them writeback was started for.
    bytes_out: u64,
    kicked: u64,
    /// With `expected_frames`: SHA-256 of every byte written so far, in file order, which is the
    /// file's hash when the header written first was the final one.
    hasher: Sha256,
    /// Samples beyond full scale so far (see `WrittenFile::over_full_scale`).
    over_full_scale: u64,
    /// Reused per block: one channel's integers, the interleaved bytes.
    ints: Vec<i32>,
    bytes: Vec<u8>,
    /// The `bext` chunk written after the data (`set_bext`), and the meter of what is written.
    bext: Option<(Bext, Box<dyn LoudnessTap>)>,
    /// The written samples read back for the tap, `[channel][frame]`.
    decoded: Vec<Vec<f32>>,
    /// `pick_channel`: (channel, of channels) of the blocks this one-channel file takes.
    pick: Option<(usize, usize)>,
    /// A picked channel's bytes out of a packed block.
    picked: Vec<u8>,
}

impl WavWriter {
    /// Create a temporary file `.<name>.XXXXXX.stemforge-tmp` next to `final_path` and write the
    /// header. A missing or unwritable folder is an `Error::Output` naming `final_path`.
    pub fn create(final_path: &Path, spec: &WriterSpec) -> Result<WavWriter> {
        if spec.channels == 0 || spec.channels > u16::MAX as usize {
            return Err(Error::Internal(format!("WavWriter: {} channels", spec.channels)));
        }
        if spec.sample_rate == 0 {
            return Err(Error::Internal("WavWriter: sample rate 0".into()));
        }
        if let Some(l) = spec.layout
            && l.channels() != spec.channels
        {
            return Err(Error::Internal(format!(
                "WavWriter: layout {} has {} channels, spec says {}",
                l.name(),
                l.channels(),
                spec.channels
            )));
        }
        let temp = OutputTemp::create(final_path)?;
        let file = temp.file().try_clone().map_err(|e| Error::output_from(final_path, "cannot write", e))?;
        let mut w = WavWriter {
            final_path: final_path.to_path_buf(),
            spec: spec.clone(),
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            temp: Some(temp),
            data_offset: 0,
            frames: 0,
            data_bytes: 0,
            rf64_threshold: u32::MAX as u64,
            expected_frames: None,
            header_written: false,
            bytes_out: 0,
            kicked: 0,
            hasher: Sha256::new(),
            over_full_scale: 0,
            ints: Vec::new(),
            bytes: Vec::new(),
            bext: None,
            decoded: Vec::new(),
            pick: None,
            picked: Vec::new(),
        };
        w.data_offset = w.header(None).len() as u64;
        Ok(w)
    }

    /// Test hook: make files whose RIFF size exceeds `bytes` RF64 (default 2^32 - 1), so RF64
    /// output can be checked with small files. Takes effect for a header not yet written (see
    /// `expect_frames`) and at `finish`.
    pub fn set_rf64_threshold(&mut self, bytes: u64) {
        self.rf64_threshold = bytes.min(u32::MAX as u64);
    }

    /// Declare the number of frames the file will hold, before the first write: the header then
    /// goes out finished (RIFF, or RF64 when the size calls for it) and the file's SHA-256 is
    /// computed as it is written, sparing `finish` a read-back. Writing another count is still
    /// correct, only slower at `finish`. An `Error::Internal` after the first write.
    pub fn expect_frames(&mut self, frames: u64) -> Result<()> {
        if self.header_written {
            return Err(Error::Internal("WavWriter::expect_frames after the first write".into()));
        }
        self.expected_frames = Some(frames);
        Ok(())
    }

    /// Write a BWF `bext` chunk (after the data) whose loudness fields `tap` measures on the
    /// samples as written. Before the first write (the header's sizes count the chunk).
    pub fn set_bext(&mut self, bext: Bext, tap: Box<dyn LoudnessTap>) -> Result<()> {
        if self.header_written {
            return Err(Error::Internal("WavWriter::set_bext after the first write".into()));
        }
        self.bext = Some((bext, tap));
        Ok(())
    }

    /// Make this one-channel file channel `channel` of blocks of `of` channels (`split_channels`,
    /// design/deliverables.md): `write_planar` takes `of` planes and `write_packed` blocks of `of`
    /// interleaved channels, and the channel is dithered as channel `channel` of those blocks,
    /// so the file holds exactly the bytes of that channel of the interleaved file. Before the
    /// first write.
    pub fn pick_channel(&mut self, channel: usize, of: usize) -> Result<()> {
        if self.header_written || self.spec.channels != 1 || channel >= of {
            return Err(Error::Internal(format!(
                "WavWriter::pick_channel({channel}, {of}) on a file of {} channels{}",
                self.spec.channels,
                if self.header_written { " after the first write" } else { "" }
            )));
        }
        self.pick = Some((channel, of));
        Ok(())
    }

    /// Bytes after the data chunk (and its pad byte): the `bext` chunk, if any.
    fn trailer_len(&self) -> u64 {
        self.bext.as_ref().map_or(0, |(b, _)| b.chunk_len())
    }

    /// The final path this writer renames to on `finish`.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// The temporary file being written (until `finish`).
    pub fn temp_path(&self) -> Option<&Path> {
        self.temp.as_ref().map(OutputTemp::path)
    }

    /// Frames written so far: the absolute frame index of the next `write_planar` frame.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    fn extensible(&self) -> bool {
        self.spec.channels > 2 || self.spec.format != SampleFormat::Pcm16
    }

    /// Bytes of sample data `frames` frames take.
    fn data_bytes_for(&self, frames: u64) -> u64 {
        frames * (self.spec.channels * self.spec.format.bytes_per_sample()) as u64
    }

    /// The header of a file of `frames` frames: RIFF header, JUNK reservation (or RF64 header and
    /// ds64 chunk past the threshold), fmt chunk, data chunk header. `None`: sizes 0, a
    /// placeholder `finish` overwrites. Every form has the same length.
    fn header(&self, frames: Option<u64>) -> Vec<u8> {
        let s = &self.spec;
        let bps = s.format.bytes_per_sample();
        let float = s.format == SampleFormat::F32;
        let block_align = (s.channels * bps) as u16;
        // (RIFF size, data size) of the finished file; RF64 when the RIFF size outgrows 32 bits.
        let sizes = frames.map(|f| {
            let data = self.data_bytes_for(f);
            (self.data_offset + data + (data & 1) + self.trailer_len() - 8, data)
        });
        let rf64 = sizes.is_some_and(|(riff, _)| riff > self.rf64_threshold);
        let mut h = Vec::with_capacity(FMT_OFFSET as usize + 8 + 40 + 8);
        if let (true, Some((riff, data)), Some(f)) = (rf64, sizes, frames) {
            // EBU Tech 3306: "RF64", RIFF and data sizes -1, the real ones in ds64.
            h.extend_from_slice(b"RF64");
            h.extend_from_slice(&u32::MAX.to_le_bytes());
            h.extend_from_slice(b"WAVE");
            h.extend_from_slice(b"ds64");
            h.extend_from_slice(&JUNK_BODY.to_le_bytes());
            h.extend_from_slice(&riff.to_le_bytes());
            h.extend_from_slice(&data.to_le_bytes());
            h.extend_from_slice(&f.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes()); // table length
        } else {
            h.extend_from_slice(b"RIFF");
            h.extend_from_slice(&sizes.map_or(0, |(riff, _)| riff as u32).to_le_bytes());
            h.extend_from_slice(b"WAVE");
            h.extend_from_slice(b"JUNK");
            h.extend_from_slice(&JUNK_BODY.to_le_bytes());
            h.extend_from_slice(&[0u8; JUNK_BODY as usize]);
        }
        debug_assert_eq!(h.len() as u64, FMT_OFFSET);
        let ext = self.extensible();
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&(if ext { 40u32 } else { 16 }).to_le_bytes());
        let code: u16 = if float { 3 } else { 1 };
        h.extend_from_slice(&(if ext { 0xFFFEu16 } else { code }).to_le_bytes());
        h.extend_from_slice(&(s.channels as u16).to_le_bytes());
        h.extend_from_slice(&s.sample_rate.to_le_bytes());
        h.extend_from_slice(&(s.sample_rate * block_align as u32).to_le_bytes());
        h.extend_from_slice(&block_align.to_le_bytes());
        h.extend_from_slice(&((bps * 8) as u16).to_le_bytes());
        if ext {
            h.extend_from_slice(&22u16.to_le_bytes()); // cbSize
            h.extend_from_slice(&((bps * 8) as u16).to_le_bytes()); // wValidBitsPerSample
            h.extend_from_slice(&s.layout.map_or(0, |l| l.channel_mask()).to_le_bytes());
            h.extend_from_slice(&code.to_le_bytes());
            h.extend_from_slice(&GUID_TAIL);
        }
        h.extend_from_slice(b"data");
        let data_size = match sizes {
            Some(_) if rf64 => u32::MAX,
            Some((_, data)) => data as u32,
            None => 0,
        };
        h.extend_from_slice(&data_size.to_le_bytes());
        h
    }

    /// Append bytes to the file (after the header, which the first call writes), hashing them.
    fn write_bytes_raw(&mut self, b: &[u8]) -> Result<()> {
        if !self.header_written {
            self.header_written = true;
            let header = self.header(self.expected_frames);
            self.write_bytes_raw(&header)?;
        }
        if self.expected_frames.is_some() {
            self.hasher.update(b);
        }
        let out = self.out.as_mut().expect("write after finish");
        out.write_all(b).map_err(|e| Error::output_from(&self.final_path, "write failed", e))?;
        self.bytes_out += b.len() as u64;
        if self.bytes_out - self.kicked >= KICK_BYTES {
            start_writeback(out.get_ref(), self.kicked, self.bytes_out - self.kicked);
            self.kicked = self.bytes_out;
        }
        Ok(())
    }

    /// Append `frames` frames from `planar[ch][..frames]` (one slice per channel): interleave,
    /// quantise (dithered with the writer's running frame index, so the dither depends only on
    /// seed, channel and absolute frame) and pack little-endian.
    pub fn write_planar(&mut self, planar: &[&[f32]], frames: usize) -> Result<()> {
        let ch = self.spec.channels;
        let (planar, first_channel) = match self.pick {
            Some((c, of)) if planar.len() == of => (&planar[c..c + 1], c as u32),
            Some((c, of)) => {
                return Err(Error::Internal(format!(
                    "WavWriter::write_planar: {} planes for channel {c} of {of}",
                    planar.len()
                )));
            }
            None => (planar, 0),
        };
        if planar.len() != ch || planar.iter().any(|p| p.len() < frames) {
            return Err(Error::Internal(format!(
                "WavWriter::write_planar: {} planes (need {ch}) of at least {frames} frames",
                planar.len()
            )));
        }
        if frames == 0 {
            return Ok(());
        }
        let mut bytes = std::mem::take(&mut self.bytes);
        let mut ints = std::mem::take(&mut self.ints);
        self.over_full_scale +=
            encode_channels(&self.spec, planar, frames, self.frames, first_channel, &mut ints, &mut bytes);
        self.ints = ints;
        let stride = ch * self.spec.format.bytes_per_sample();
        let r = self.write_bytes_raw(&bytes);
        self.tap(&bytes, frames);
        self.bytes = bytes;
        r?;
        self.frames += frames as u64;
        self.data_bytes += (frames * stride) as u64;
        Ok(())
    }

    /// `write_planar`, and the samples as the file now holds them (dithered, quantised and clamped,
    /// read back at full scale 1.0) into `delivered[ch][..frames]`: what a meter of the delivered
    /// file reads (design/deliverables.md: an output is verified at its own rate and bit depth).
    pub fn write_planar_delivered(
        &mut self,
        planar: &[&[f32]],
        frames: usize,
        delivered: &mut [Vec<f32>],
    ) -> Result<()> {
        self.write_planar(planar, frames)?;
        for (c, d) in delivered.iter_mut().enumerate() {
            d.clear();
            match self.spec.format.int_bits() {
                None => d.extend_from_slice(&planar[c][..frames]),
                Some(bits) => {
                    let scale = dither_quantize::full_scale(bits).recip();
                    d.extend(self.ints[c * frames..(c + 1) * frames].iter().map(|&q| q as f32 * scale));
                }
            }
        }
        Ok(())
    }

    /// Append `frames` frames already dithered, quantised and packed in this file's format
    /// (interleaved little-endian, as `write_planar` would have made them from the same samples at
    /// the same frame index: the GPU engine packs on its device), and `over_full_scale` of them
    /// beyond full scale.
    ///
    /// A picked channel (`pick_channel`) takes blocks of all its channels and keeps its own;
    /// `over_full_scale` then counts the whole block, so the file counts instead its own samples
    /// at the format's limits (a clamped sample lands there; a sample exactly at full scale is
    /// counted too).
    pub fn write_packed(&mut self, bytes: &[u8], frames: usize, over_full_scale: u64) -> Result<()> {
        if let Some((c, of)) = self.pick {
            let bps = self.spec.format.bytes_per_sample();
            if bytes.len() != frames * of * bps {
                return Err(Error::Internal(format!(
                    "WavWriter::write_packed: {} bytes for {frames} frames of {of} channels",
                    bytes.len()
                )));
            }
            let mut picked = std::mem::take(&mut self.picked);
            picked.clear();
            picked.extend(bytes.chunks_exact(of * bps).flat_map(|f| &f[c * bps..(c + 1) * bps]));
            let over = at_limits(&picked, self.spec.format);
            self.pick = None;
            let r = self.write_packed(&picked, frames, over);
            self.pick = Some((c, of));
            self.picked = picked;
            return r;
        }
        let stride = self.spec.channels * self.spec.format.bytes_per_sample();
        if bytes.len() != frames * stride {
            return Err(Error::Internal(format!(
                "WavWriter::write_packed: {} bytes for {frames} frames of {stride} bytes",
                bytes.len()
            )));
        }
        self.write_bytes_raw(bytes)?;
        self.tap(bytes, frames);
        self.over_full_scale += over_full_scale;
        self.frames += frames as u64;
        self.data_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Hand `frames` frames of this file's bytes, read back as samples, to the `bext` meter.
    fn tap(&mut self, bytes: &[u8], frames: usize) {
        let Some((_, tap)) = &mut self.bext else { return };
        let ch = self.spec.channels;
        self.decoded.resize_with(ch, Vec::new);
        self.decoded.iter_mut().for_each(|d| d.resize(frames, 0.0));
        pcm_unpack::unpack(bytes, encoding(self.spec.format), ch, &mut self.decoded, frames);
        let planes: Vec<&[f32]> = self.decoded.iter().map(|d| &d[..frames]).collect();
        tap.add_planar(&planes);
    }

    /// The format and dither this writer packs with.
    pub fn spec(&self) -> &WriterSpec {
        &self.spec
    }

    /// Complete the file: `seal` it, then rename it over the final name (replacing a file there)
    /// and make the rename durable.
    pub fn finish(self) -> Result<WrittenFile> {
        let sealed = self.seal()?;
        let dir = sealed.folder();
        let mut publication = Publication::new(true);
        let written = sealed.publish(&mut publication)?;
        publication.keep();
        sync_folder(&dir);
        Ok(written)
    }

    /// Complete the file under its temporary name: pad byte, final sizes (unless the header
    /// written first already had them), flush and fsync, and its SHA-256 (streamed, or read
    /// back when the header had to be patched). Nothing is under the final name yet: dropping
    /// the result deletes the file.
    pub fn seal(mut self) -> Result<SealedFile> {
        let path = self.final_path.clone();
        let oerr = |what: &str, e: std::io::Error| Error::output_from(&path, what, e);
        if self.data_bytes % 2 == 1 {
            self.write_bytes_raw(&[0])?; // RIFF chunks are padded to even length
        } else {
            self.write_bytes_raw(&[])?; // the header, for a file of no frames
        }
        if let Some((bext, mut tap)) = self.bext.take() {
            let chunk = bext.chunk(&tap.loudness());
            self.write_bytes_raw(&chunk)?;
            // Kept for the header, whose sizes count the chunk, should it need patching.
            self.bext = Some((bext, tap));
        }
        let out = self.out.take().expect("seal twice");
        let mut file = out.into_inner().map_err(|e| oerr("write failed", e.into_error()))?;
        let total = self.data_offset + self.data_bytes + (self.data_bytes & 1) + self.trailer_len();
        let streamed = self.expected_frames == Some(self.frames);
        if !streamed {
            patch(&mut file, 0, &self.header(Some(self.frames))).map_err(|e| oerr("write failed", e))?;
        }
        file.sync_all().map_err(|e| oerr("fsync failed", e))?;
        drop(file);
        let temp = self.temp.take().expect("seal twice");
        let sha256 = if streamed {
            hex(&std::mem::take(&mut self.hasher).finalize())
        } else {
            sha256_file(temp.path()).map_err(|e| oerr("cannot read back the finished file", e))?
        };
        Ok(SealedFile {
            temp,
            written: WrittenFile {
                path,
                frames: self.frames,
                bytes: total,
                sha256,
                over_full_scale: self.over_full_scale,
            },
        })
    }
}

/// A finished file still under its temporary name (`WavWriter::seal`); dropping it deletes it.
pub struct SealedFile {
    temp: OutputTemp,
    written: WrittenFile,
}

impl SealedFile {
    /// The folder the file goes to.
    pub fn folder(&self) -> PathBuf {
        self.temp.folder()
    }

    /// What the file will be once published (its final path, frames, hash).
    pub fn written(&self) -> &WrittenFile {
        &self.written
    }

    /// Rename the file over its final name, as `publication` allows (`Publication::publish`:
    /// without replacing an existing name unless it replaces). The rename is durable once the
    /// folder is synced (`sync_folder`), which a caller committing several files does once per
    /// folder.
    pub fn publish(self, publication: &mut Publication) -> Result<WrittenFile> {
        publication.publish(self.temp)?;
        Ok(self.written)
    }
}

/// Make renames into `dir` durable (POSIX: fsync the folder); best effort, as not every
/// filesystem allows opening a folder.
pub fn sync_folder(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Interleave, quantise and pack `frames` frames of `planar` in `spec`'s format, as frames
/// `first_frame..` of the file (the dither depends only on seed, channel and absolute frame), into
/// `bytes` (resized); `ints` is scratch. Returns the samples beyond full scale. What `WavWriter`
/// writes, and what a segment of a programme writes as its part (design/farm.md).
pub fn encode_block(
    spec: &WriterSpec,
    planar: &[&[f32]],
    frames: usize,
    first_frame: u64,
    ints: &mut Vec<i32>,
    bytes: &mut Vec<u8>,
) -> u64 {
    encode_channels(spec, planar, frames, first_frame, 0, ints, bytes)
}

/// `encode_block` for planes that are channels `first_channel..` of the signal (a picked
/// channel's file is dithered as its channel of the interleaved file).
pub fn encode_channels(
    spec: &WriterSpec,
    planar: &[&[f32]],
    frames: usize,
    first_frame: u64,
    first_channel: u32,
    ints: &mut Vec<i32>,
    bytes: &mut Vec<u8>,
) -> u64 {
    let ch = spec.channels;
    let bps = spec.format.bytes_per_sample();
    let stride = ch * bps;
    // The largest value the format holds: (2^(b-1) - 1) / 2^(b-1) for integers, 1.0 for float.
    let top = spec.format.int_bits().map_or(1.0, |b| 1.0 - dither_quantize::full_scale(b).recip());
    // Counted in u32 lanes per 2^16-frame chunk (no overflow), which vectorise 4 or 8 wide; a
    // u64 count per sample ran 2 wide and cost as much as packing the bytes.
    let over = planar
        .iter()
        .flat_map(|p| p[..frames].chunks(1 << 16))
        .map(|c| c.iter().map(|x| (*x > top || *x < -1.0) as u32).sum::<u32>() as u64)
        .sum::<u64>();
    bytes.resize(frames * stride, 0);
    match spec.format.int_bits() {
        None => pack::<4, f32>(planar.iter().copied(), stride, frames, f32::to_le_bytes, bytes),
        Some(bits) => {
            ints.resize(frames * ch, 0);
            for (c, (p, q)) in planar.iter().zip(ints.chunks_exact_mut(frames)).enumerate() {
                let c = first_channel + c as u32;
                dither_quantize::quantize_block(&p[..frames], bits, spec.dither_seed, c, first_frame, q);
            }
            let planes = ints.chunks_exact(frames);
            match bps {
                2 => pack::<2, i32>(planes, stride, frames, i32::to_le_bytes, bytes),
                3 => pack::<3, i32>(planes, stride, frames, i32::to_le_bytes, bytes),
                _ => pack::<4, i32>(planes, stride, frames, i32::to_le_bytes, bytes),
            }
        }
    }
    over
}

/// Interleave the channel planes (`[..frames]` of each) into `out`, frames of `stride` bytes, as
/// little-endian samples of `BPS` bytes: the low `BPS` bytes of each sample's 4. A constant sample
/// size makes each store a fixed-size move (a length known only at run time made every 3-byte
/// copy a `memmove` call, a quarter of the writer's time).
fn pack<'a, const BPS: usize, T: Copy + 'a>(
    planes: impl Iterator<Item = &'a [T]>,
    stride: usize,
    frames: usize,
    le_bytes: impl Fn(T) -> [u8; 4],
    out: &mut [u8],
) {
    for (c, p) in planes.enumerate() {
        for (frame, &v) in out.chunks_exact_mut(stride).zip(&p[..frames]) {
            let b = le_bytes(v);
            frame[c * BPS..c * BPS + BPS].copy_from_slice(&b[..BPS]);
        }
    }
}

/// The encoding a reader sees in a file written in `format`.
fn encoding(format: SampleFormat) -> SourceEncoding {
    match format {
        SampleFormat::Pcm16 => SourceEncoding::Int16,
        SampleFormat::Pcm24 => SourceEncoding::Int24,
        SampleFormat::Pcm32 => SourceEncoding::Int32,
        SampleFormat::F32 => SourceEncoding::Float32,
    }
}

/// Samples of packed `bytes` at `format`'s limits: the integer extremes, or floats beyond
/// full scale (as `encode_block` counts them).
fn at_limits(bytes: &[u8], format: SampleFormat) -> u64 {
    let bps = format.bytes_per_sample();
    let n = bytes.len() / bps;
    match format.int_bits() {
        None => {
            (0..n).filter(|&i| pcm_unpack::unpack_sample(bytes, i, SourceEncoding::Float32).abs() > 1.0).count() as u64
        }
        Some(bits) => {
            let top = (1i64 << (bits - 1)) - 1;
            bytes
                .chunks_exact(bps)
                .filter(|s| {
                    // The sample in the high bytes, shifted down with its sign.
                    let mut le = [0u8; 4];
                    le[4 - bps..].copy_from_slice(s);
                    let v = i64::from(i32::from_le_bytes(le) >> (8 * (4 - bps)));
                    v == top || v == -top - 1
                })
                .count() as u64
        }
    }
}

/// Writeback of a file's pages is started every this many bytes (`start_writeback`).
const KICK_BYTES: u64 = 16 << 20;

/// Ask the kernel to start writing `len` bytes from `offset` to the disk now, without waiting.
/// Linux holds dirty pages for up to 30 s (and up to a tenth of memory), so a render's files
/// would otherwise all wait to be written in the fsync at commit (0.7 s for a 10-minute stereo
/// master and 5 stems here); started as the file grows, the disk works beside the CPU and the
/// fsync finds little left to do. Best effort: an error here changes nothing, and `seal`'s fsync
/// reports any real one. (Linux only; elsewhere the fsync does all of it.)
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on an open descriptor this writer owns; it touches no memory
    // of ours.
    unsafe { libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

fn patch(file: &mut File, at: u64, bytes: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.write_all(bytes)
}

/// SHA-256 of a file, streamed in 1 MiB reads, lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
