//! Spills: the analysis pass's f32 output (its bus, or its stems' linked contributions) kept in an
//! unlinked temporary file for the solve (`solve`) and, on an engine that replays it, for the
//! writing pass (`SpillSource`), so that no FIR runs twice.
use std::fs::File;
use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::engine::{Delivery, PassBlock, PassSink, StemSource};
use crate::error::{Error, Result};
use crate::meter::LoudnessMeter;

/// What the analysis pass may spill to disk, as unlinked temporary files (`--spill`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpillMode {
    /// The bus, and for an engine that replays spills (the CPU engine) each linked stem too: G is
    /// solved on the bus and the writing pass reads every FIR's output back instead of
    /// recomputing it (4 bytes per frame and bus channel, per stem output).
    All,
    /// The bus only: G is solved on it; the writing pass decodes and filters the stems again.
    Bus,
    /// Nothing: G is found by repeating the writing pass (for a disk that must not be written).
    None,
}

/// Bytes of a spill of `channels` f32 channels.
pub fn spill_bytes(channels: usize, frames: u64) -> u64 {
    channels as u64 * 4 * frames
}

/// Bytes free to an unprivileged writer on the file system holding `file`.
#[cfg(unix)]
fn free_bytes(file: &File) -> Option<u64> {
    rustix::fs::fstatvfs(file).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_file: &File) -> Option<u64> {
    None
}

/// Writes f32 channels of the analysis pass (its master, the bus before G, or its stem
/// contributions) to an unlinked temporary file, block by block, planar f32 in native byte order:
/// block k holds `channels` runs of `len_k` samples.
/// A write error (a full disk) does not fail the pass: the spill is dropped, which frees its
/// space, and the error is kept for `finish`.
pub struct SpillWriter {
    out: Option<File>,
    channels: usize,
    frames: u64,
    error: Option<String>,
}

impl SpillWriter {
    /// An anonymous temporary file in `dir` (on Linux unlinked from the start, so a kill leaves
    /// nothing behind), for `frames` frames. Refused when the folder's file system has less free
    /// space than that plus `beside` bytes (what else must fit while the spill exists: other
    /// spills, the outputs when the writing pass replays it): writing until it is full would only
    /// crowd the disk the outputs go to next.
    pub fn create(dir: &Path, channels: usize, frames: u64, beside: u64) -> std::io::Result<SpillWriter> {
        let file = tempfile::tempfile_in(dir)?;
        let need = spill_bytes(channels, frames);
        if let Some(free) = free_bytes(&file)
            && free < need.saturating_add(beside)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "{:.2} GB needed beside {:.2} GB for the rest of the render, {:.2} GB free",
                    need as f64 / 1e9,
                    beside as f64 / 1e9,
                    free as f64 / 1e9
                ),
            ));
        }
        Ok(SpillWriter { out: Some(file), channels, frames: 0, error: None })
    }

    /// Appends one block: `planes` must yield `channels` planes, each at least `len` long.
    fn write<'a>(&mut self, planes: impl Iterator<Item = &'a Vec<f32>>, len: usize) {
        let Some(out) = &mut self.out else { return };
        // One gathering write per block: no copy through a user-space buffer (the page cache
        // copy is the one the kernel makes anyway).
        let mut slices: Vec<IoSlice<'_>> =
            planes.take(self.channels).map(|c| IoSlice::new(bytemuck::cast_slice(&c[..len]))).collect();
        let written = if slices.len() == self.channels {
            write_all_vectored(out, &mut slices)
        } else {
            Err(std::io::Error::other(format!(
                "the pass delivered {} of the spill's {} channels",
                slices.len(),
                self.channels
            )))
        };
        match written {
            Ok(()) => self.frames += len as u64,
            Err(e) => {
                self.error = Some(e.to_string());
                self.out = None;
            }
        }
    }

    /// The spill, ready to be read back, once `frames` frames have been written; else why not.
    pub fn finish(self, frames: u64, block: usize) -> std::result::Result<Spill, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let file = self.out.ok_or_else(|| "spill closed".to_string())?;
        if self.frames != frames {
            return Err(format!("spill holds {} frames of {frames}", self.frames));
        }
        Ok(Spill { file, channels: self.channels, block, frames })
    }
}

/// `Write::write_all` for a gather list (std's `write_all_vectored` is not stable).
fn write_all_vectored(out: &mut File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The analysis pass's spills while they are written: the master (the bus) and every stem
/// contribution, stem-major.
#[derive(Default)]
pub struct Spills {
    pub bus: Option<SpillWriter>,
    pub stems: Option<SpillWriter>,
}

/// A pass sink that also spills what it is given.
pub struct SpillTee<S: PassSink> {
    pub inner: S,
    pub spills: Spills,
}

impl<S: PassSink> PassSink for SpillTee<S> {
    fn delivery(&self) -> Delivery {
        let mut d = self.inner.delivery();
        // The spills are f32, whatever the inner sink would take packed.
        d.master |= self.spills.bus.is_some();
        d.stems |= self.spills.stems.is_some();
        d
    }

    fn block(&mut self, block: PassBlock<'_>) -> Result<()> {
        if let Some(s) = &mut self.spills.bus {
            s.write(block.master.iter(), block.len);
        }
        if let Some(s) = &mut self.spills.stems {
            s.write(block.stems.iter().flatten(), block.len);
        }
        self.inner.block(block)
    }
}

/// A spill of the analysis pass: `frames` frames of `channels` channels in blocks of `block`.
pub struct Spill {
    pub(super) file: File,
    pub(super) channels: usize,
    pub(super) block: usize,
    pub(super) frames: u64,
}

impl Spill {
    pub fn channels(&self) -> usize {
        self.channels
    }

    pub(super) fn blocks(&self) -> u64 {
        self.frames.div_ceil(self.block as u64)
    }

    pub(super) fn len_of(&self, k: u64) -> usize {
        (self.frames - k * self.block as u64).min(self.block as u64) as usize
    }
}

fn spill_error(e: std::io::Error) -> Error {
    Error::Internal(format!("reading the spill back: {e}"))
}

/// The writing pass's input when it replays a spill: `Spill` block k as stem blocks of
/// `group` channels each (`out[stem][ch]`, stem-major as `SpillTee` wrote them), zero-padded past
/// the program, as `FileStemSource` hands over decoded stems.
pub struct SpillSource<'a> {
    spill: &'a Spill,
    /// A duplicate of the spill's handle, rewound (it shares the file offset: the solves and the
    /// replay read the spill one after another, never at once).
    file: File,
    next: u64,
}

impl<'a> SpillSource<'a> {
    pub fn new(spill: &'a Spill) -> Result<SpillSource<'a>> {
        let mut file = spill.file.try_clone().map_err(spill_error)?;
        file.seek(SeekFrom::Start(0)).map_err(spill_error)?;
        Ok(SpillSource { spill, file, next: 0 })
    }
}

impl StemSource for SpillSource<'_> {
    fn next_block(&mut self, out: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        let have: usize = out.iter().map(|s| s.len()).sum();
        if have != self.spill.channels {
            return Err(Error::Internal(format!(
                "replay plan of {have} channels for a spill of {}",
                self.spill.channels
            )));
        }
        if self.next >= self.spill.blocks() {
            return Ok(0);
        }
        let len = self.spill.len_of(self.next);
        for c in out.iter_mut().flatten() {
            self.file.read_exact(bytemuck::cast_slice_mut(&mut c[..len])).map_err(spill_error)?;
            c[len..].fill(0.0);
        }
        self.next += 1;
        Ok(len)
    }
}

/// A bus made of a spill's channels (a remaster variant's: the stems' spilled contributions, each
/// times its weight, design/deliverables.md "Variants"; a fold-down's: the main's bus through the
/// BS.775 matrix, "Output formats"), spilled for its own solves; `meter` reads it as it goes.
/// `routes` are (spill channel, bus channel, weight) of a bus of `channels`: each bus channel is
/// the sum, in route order, of its routes' channels times their weights (a weight of 0 adds
/// nothing).
pub fn mix_spill(
    input: &Spill,
    routes: &[(usize, usize, f32)],
    channels: usize,
    dir: &Path,
    meter: &mut LoudnessMeter,
) -> std::result::Result<Spill, String> {
    if let Some(r) = routes.iter().find(|r| r.0 >= input.channels || r.1 >= channels) {
        return Err(format!("route {r:?} outside a spill of {} channels and a bus of {channels}", input.channels));
    }
    let mut source = SpillSource::new(input).map_err(|e| e.to_string())?;
    let mut out = SpillWriter::create(dir, channels, input.frames, 0).map_err(|e| e.to_string())?;
    let mut read = vec![vec![vec![0.0f32; input.block]; input.channels]];
    let mut bus = vec![vec![0.0f32; input.block]; channels];
    loop {
        let len = source.next_block(&mut read).map_err(|e| e.to_string())?;
        if len == 0 {
            break;
        }
        for (c, b) in bus.iter_mut().enumerate() {
            b[..len].fill(0.0);
            for &(from, _, w) in routes.iter().filter(|r| r.1 == c && r.2 != 0.0) {
                for (o, &x) in b[..len].iter_mut().zip(&read[0][from][..len]) {
                    *o += w * x;
                }
            }
        }
        let planes: Vec<&[f32]> = bus.iter().map(|c| &c[..len]).collect();
        meter.add_planar(&planes);
        out.write(bus.iter(), len);
    }
    out.finish(input.frames, input.block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spill_larger_than_the_free_space_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // 2^50 frames of stereo: 9 PB.
        let e = SpillWriter::create(dir.path(), 2, 1 << 50, 0).err().expect("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
        assert!(e.to_string().contains("GB free"), "{e}");
        assert!(SpillWriter::create(dir.path(), 2, 48_000, 0).is_ok());
        // A small spill is refused too when what must fit beside it does not.
        let e = SpillWriter::create(dir.path(), 2, 48_000, 1 << 62).err().expect("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the spill has no name");
    }

    /// What `SpillTee` writes of a pass, `SpillSource` hands back as the replay plan's stems:
    /// every sample in place, stem-major, the last block zero-padded, then the end.
    #[test]
    fn a_spill_reads_back_as_the_blocks_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let (b, frames, stems, ch) = (8usize, 21u64, 3usize, 2usize);
        let sample = |s: usize, c: usize, n: u64| (s * 1000 + c * 100) as f32 + n as f32 * 0.25 + 0.125;
        let mut tee = SpillTee {
            inner: Discard,
            spills: Spills {
                bus: Some(SpillWriter::create(dir.path(), ch, frames, 0).unwrap()),
                stems: Some(SpillWriter::create(dir.path(), stems * ch, frames, 0).unwrap()),
            },
        };
        for k in 0..frames.div_ceil(b as u64) {
            let len = (frames - k * b as u64).min(b as u64) as usize;
            let block = |s: usize| -> Vec<Vec<f32>> {
                (0..ch).map(|c| (0..b as u64).map(|i| sample(s, c, k * b as u64 + i)).collect()).collect()
            };
            let contrib: Vec<Vec<Vec<f32>>> = (0..stems).map(block).collect();
            let master = block(9);
            let pb = PassBlock {
                index: k,
                len,
                master: &master,
                stems: &contrib,
                gain: None,
                gain_stats: None,
                packed: &[],
                over_full_scale: &[],
                meter: None,
            };
            tee.block(pb).unwrap();
        }
        let stem_spill = tee.spills.stems.take().unwrap().finish(frames, b).unwrap();
        let bus_spill = tee.spills.bus.take().unwrap().finish(frames, b).unwrap();
        for (spill, groups, first) in [(&stem_spill, stems, 0), (&bus_spill, 1, 9)] {
            let mut src = SpillSource::new(spill).unwrap();
            let mut out = vec![vec![vec![f32::NAN; b]; ch]; groups];
            for k in 0..frames.div_ceil(b as u64) {
                let len = src.next_block(&mut out).unwrap();
                assert_eq!(len as u64, (frames - k * b as u64).min(b as u64));
                for (s, stem) in out.iter().enumerate() {
                    for (c, plane) in stem.iter().enumerate() {
                        for (i, &v) in plane.iter().enumerate() {
                            let want = if i < len { sample(first + s, c, k * b as u64 + i as u64) } else { 0.0 };
                            assert_eq!(v, want, "stem {s} ch {c} block {k} frame {i}");
                        }
                    }
                }
            }
            assert_eq!(src.next_block(&mut out).unwrap(), 0, "then the end");
            // A plan of another width is refused, not misread.
            let mut wrong = vec![vec![vec![0.0; b]; ch + 1]; groups];
            assert!(SpillSource::new(spill).unwrap().next_block(&mut wrong).is_err());
        }
    }

    struct Discard;
    impl PassSink for Discard {
        fn block(&mut self, _: PassBlock<'_>) -> Result<()> {
            Ok(())
        }
    }
}
