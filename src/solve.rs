//! One writing pass: the analysis pass spills its bus to an anonymous temporary file, G is solved on
//! that spill (gain, the CPU limiter as the engines run it, the integrated meter), and only then
//! are the outputs written, once. An engine that replays the spill (the CPU engine,
//! `Engine::replays_spill`) also spills what the writing pass would otherwise recompute: the bus
//! itself for a master-only render, each stem's linked contribution (after every FIR) when stems
//! are delivered. Its writing pass then reads them back (`SpillSource`) through a plan without
//! FIRs (`plan::replay_plan`), so every FIR runs once per render.
//!
//! Why this is the same function as a limiter pass (DESIGN.md DSP 6): the limiter gain is linked
//! and depends only on the bus x = 10^(G/20)·bus, and the analysis pass's master *is* that bus
//! before G (stem EQ, gain, routing, sum, bus EQ; zero outside [0, N)). `solve_gain` multiplies it
//! by G in f32 as the engines do and runs the limiter on the engines' block grid with their
//! alignment scheme (pre-delay M·B − latency, a FIFO of M blocks, M zero blocks at the end), so a
//! master-only render on the CPU engine limits to the very same samples as the solve (the readings
//! differ by ~1e-14 LU only because the solve meters integrated loudness alone, whose shorter
//! ring of energies sums them in another order; with every mode on, they are equal). Renders that
//! differ (linked stem outputs sum G·contributions after a folded FIR; the GPU's f32-fallback
//! limiter) differ by rounding; the writing pass's own meter confirms, and `target::reach_target`
//! brackets writing passes when it misses.
use std::fs::File;
use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::cpu::limiter::LimiterFifo;
use crate::cpu::limiter_apply;
use crate::cpu::loudness::{LoudnessMeter, MeterScope};
use crate::engine::{Delivery, LimiterPlan, PassBlock, PassSink, StemSource};
use crate::error::{Error, Result};
use crate::model::Layout;

/// Blocks read from the spill ahead of the limiter, and limited blocks queued for the meter.
const AHEAD: usize = 3;

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
    file: File,
    channels: usize,
    block: usize,
    frames: u64,
}

impl Spill {
    pub fn channels(&self) -> usize {
        self.channels
    }

    fn blocks(&self) -> u64 {
        self.frames.div_ceil(self.block as u64)
    }

    fn len_of(&self, k: u64) -> usize {
        (self.frames - k * self.block as u64).min(self.block as u64) as usize
    }
}

/// What the chain would deliver at `gain_db`: the integrated loudness (LUFS) of the limited bus.
/// Three threads: the spill is read ahead on one, the limiter runs on the caller's (a surround
/// bus's oversampler channels in parallel), the meter on a third. `progress` gets the frames metered.
pub fn solve_gain(
    spill: &Spill,
    limiter: &LimiterPlan,
    layout: Layout,
    sample_rate: u32,
    gain_db: f64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<f64> {
    let (ch, b) = (spill.channels, spill.block);
    let total = spill.blocks();
    let mut meter = LoudnessMeter::with_scope(ch, sample_rate, Some(layout), MeterScope::Integrated)?;
    let mut source = SpillSource::new(spill)?;

    let (read_tx, read_rx) = sync_channel::<Result<Vec<Vec<f32>>>>(AHEAD);
    let (read_back, read_free) = sync_channel::<Vec<Vec<f32>>>(AHEAD + 2);
    let (meter_tx, meter_rx) = sync_channel::<(usize, Vec<Vec<f32>>)>(AHEAD);
    let (meter_back, meter_free) = sync_channel::<Vec<Vec<f32>>>(AHEAD + 2);

    std::thread::scope(|scope| {
        scope.spawn(move || {
            for _ in 0..total {
                let mut x = read_free.try_recv().unwrap_or_else(|_| vec![vec![0.0f32; b]; ch]);
                // Zero-padded past the program: there the engines' bus is zero (DESIGN.md DSP 6:
                // a[k] = 0 outside).
                let read = source.next_block(std::slice::from_mut(&mut x));
                let failed = read.is_err();
                if read_tx.send(read.map(|_| x)).is_err() || failed {
                    return;
                }
            }
        });
        let metering = scope.spawn(move || {
            let mut done = 0u64;
            for (len, y) in meter_rx {
                let planes: Vec<&[f32]> = y.iter().map(|c| &c[..len]).collect();
                meter.add_planar(&planes);
                done += len as u64;
                progress(done);
                let _ = meter_back.try_send(y);
            }
            meter.result().integrated_lufs
        });

        let limited = limit_blocks(limiter, ch, b, total, gain_db, read_rx, read_back, |k, y| {
            let len = spill.len_of(k);
            meter_tx.send((len, y)).map_err(|_| Error::Internal("solve meter thread stopped".into()))?;
            Ok(meter_free.try_recv().unwrap_or_else(|_| vec![vec![0.0f32; b]; ch]))
        });
        drop(meter_tx);
        let lufs = metering.join().map_err(|_| Error::Internal("solve meter thread panicked".into()))?;
        limited.map(|_| lufs)
    })
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

/// The engines' limiter step (CpuEngine::run_pass, step 5) on bus blocks 0..total: each block
/// times the f32 gain, through the same `LimiterFifo`, with its lag's zero blocks to flush.
/// `deliver(k, y)` gets aligned block k and hands back a free buffer.
#[allow(clippy::too_many_arguments)]
fn limit_blocks(
    plan: &LimiterPlan,
    ch: usize,
    b: usize,
    total: u64,
    gain_db: f64,
    input: Receiver<Result<Vec<Vec<f32>>>>,
    recycle: SyncSender<Vec<Vec<f32>>>,
    mut deliver: impl FnMut(u64, Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>>,
) -> Result<()> {
    let mut lim = LimiterFifo::<Vec<Vec<f32>>>::new(plan, ch, b);
    let m_lim = lim.lag().blocks;
    // The same f32 factor the engines multiply the bus by.
    let gain = 10f64.powf(gain_db / 20.0) as f32;
    let mut spare: Vec<Vec<Vec<f32>>> = Vec::new();
    for t in 0..total + m_lim as u64 {
        let x = if t < total {
            let mut x = input.recv().map_err(|_| Error::Internal("solve reader thread stopped".into()))??;
            if gain != 1.0 {
                x.iter_mut().flatten().for_each(|v| *v *= gain);
            }
            x
        } else {
            let mut z = spare.pop().unwrap_or_else(|| vec![vec![0.0f32; b]; ch]);
            z.iter_mut().for_each(|c| c.fill(0.0));
            z
        };
        if let Some((mut y, gains)) = lim.push(x) {
            y.iter_mut().for_each(|c| limiter_apply::apply(c, gains));
            let free = deliver(t - m_lim as u64, y)?;
            if let Err(TrySendError::Full(free) | TrySendError::Disconnected(free)) = recycle.try_send(free) {
                // The reader has buffers enough; keep this one for the flush's zero blocks.
                if spare.len() <= m_lim {
                    spare.push(free);
                }
            }
        }
    }
    Ok(())
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
