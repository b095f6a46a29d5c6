//! Stem input for a pass: every stem's reader on one read-ahead thread, so reading overlaps the
//! engine's compute; blocks are zero-padded past each stem's end and buffers are recycled. For an
//! engine that unpacks PCM itself (the GPU engine), WAV/RF64/BW64 stems in 16/24/32-bit integer
//! or 32-bit float come as the file's raw bytes, undecoded (DESIGN.md "Engines": stems are
//! uploaded as raw PCM); 64-bit float and codec-decoded stems (AIFF, FLAC, ...) are decoded to
//! f32 here, which for them is the smaller upload or the only form there is.
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::cpu::pcm_unpack;
use crate::engine::StemSource;
use crate::error::{Error, Result};
use crate::io::BlockReader;
use crate::model::SourceEncoding;
use crate::pipeline::proof::{StemMeasures, StemProbe};

/// Blocks read ahead of the engine.
const READ_AHEAD: usize = 3;

/// One block of every stem: `planar[stem][ch]` for decoded stems, `raw[stem]` for raw ones.
struct Blocks {
    planar: Vec<Vec<Vec<f32>>>,
    raw: Vec<Vec<u8>>,
}

pub struct FileStemSource {
    rx: Receiver<Result<(usize, Blocks)>>,
    recycle: SyncSender<Blocks>,
    thread: Option<JoinHandle<Option<StemMeasures>>>,
    done: bool,
    /// Per stem: the raw encoding its blocks come in, None when decoded to f32.
    raw: Vec<Option<SourceEncoding>>,
    channels: Vec<usize>,
    /// The proof page's stem measurements (`StemProbe`), returned by the reader thread.
    measures: Option<StemMeasures>,
}

fn fill_block(reader: &mut dyn BlockReader, scratch: &mut [Vec<f32>], out: &mut [Vec<f32>]) -> Result<usize> {
    let block = out[0].len();
    let mut filled = 0;
    while filled < block {
        let n = reader.read_planar(scratch, block - filled)?;
        if n == 0 {
            break;
        }
        for (dst, src) in out.iter_mut().zip(scratch.iter()) {
            dst[filled..filled + n].copy_from_slice(&src[..n]);
        }
        filled += n;
    }
    for ch in out.iter_mut() {
        ch[filled..].fill(0.0);
    }
    Ok(filled)
}

/// Up to `block` frames of raw bytes into `out` (a reader may return fewer than asked before
/// its end; `more` takes the rest).
fn fill_raw(reader: &mut dyn BlockReader, out: &mut Vec<u8>, more: &mut Vec<u8>, block: usize) -> Result<usize> {
    let mut filled = reader.read_raw(out, block)?;
    while filled > 0 && filled < block {
        let n = reader.read_raw(more, block - filled)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(more);
        filled += n;
    }
    Ok(filled)
}

/// Whether a stem of this reader is read raw when the engine takes raw PCM: any encoding of at
/// most 4 bytes a sample (64-bit float would be twice the bytes of the f32 it decodes to).
fn read_raw(reader: &dyn BlockReader) -> Option<SourceEncoding> {
    reader.raw_encoding().filter(|&e| pcm_unpack::bytes_per_sample(e).is_some_and(|b| b <= 4))
}

impl FileStemSource {
    /// Start reading `readers` (plan order) in blocks of `block` frames, for `frames` program
    /// frames; `raw`: hand out raw PCM where `read_raw` says so (for `next_raw_block`).
    pub fn start(readers: Vec<Box<dyn BlockReader>>, block: usize, frames: u64, raw: bool) -> Self {
        Self::start_at(readers, block, 0, frames, raw).expect("no seek from frame 0")
    }

    /// As `start`, from program frame `first` (each reader seeks there first: a segment of the
    /// programme, design/farm.md), for `frames` frames.
    pub fn start_at(
        mut readers: Vec<Box<dyn BlockReader>>,
        block: usize,
        first: u64,
        frames: u64,
        raw: bool,
    ) -> Result<Self> {
        if first > 0 {
            for r in readers.iter_mut() {
                r.seek_frame(first)?;
            }
        }
        Ok(Self::spawn(readers, block, frames, raw, None))
    }

    /// As `start`, measuring each stem for the proof page as it is read (`StemProbe`, on the
    /// reader thread); `measures` gives the result once every block was taken.
    pub fn start_probed(
        readers: Vec<Box<dyn BlockReader>>,
        block: usize,
        frames: u64,
        raw: bool,
        probe: StemProbe,
    ) -> Self {
        Self::spawn(readers, block, frames, raw, Some(probe))
    }

    /// The proof measurements, once the engine has taken every block (None when not probed).
    pub fn measures(&mut self) -> Result<Option<StemMeasures>> {
        while self.receive()?.is_some() {}
        Ok(self.measures.take())
    }

    fn spawn(
        mut readers: Vec<Box<dyn BlockReader>>,
        block: usize,
        frames: u64,
        raw: bool,
        mut probe: Option<StemProbe>,
    ) -> Self {
        let (tx, rx) = sync_channel::<Result<(usize, Blocks)>>(READ_AHEAD);
        let (recycle, recycled) = sync_channel::<Blocks>(READ_AHEAD + 2);
        let channels: Vec<usize> = readers.iter().map(|r| r.info().channels).collect();
        let encodings: Vec<Option<SourceEncoding>> =
            readers.iter().map(|r| if raw { read_raw(r.as_ref()) } else { None }).collect();
        let (ch, enc) = (channels.clone(), encodings.clone());
        let thread = std::thread::spawn(move || -> Option<StemMeasures> {
            let fresh = || Blocks {
                planar: ch
                    .iter()
                    .zip(&enc)
                    .map(|(&c, e)| if e.is_some() { Vec::new() } else { vec![vec![0.0; block]; c] })
                    .collect(),
                raw: ch.iter().map(|_| Vec::new()).collect(),
            };
            let mut scratch = fresh().planar;
            let mut more = Vec::new();
            // Raw stems, unpacked for the probe only.
            let mut probe_planar: Vec<Vec<Vec<f32>>> = match probe {
                Some(_) => ch.iter().map(|&c| vec![vec![0.0; block]; c]).collect(),
                None => Vec::new(),
            };
            let mut real = vec![0usize; ch.len()];
            let mut done: u64 = 0;
            while done < frames {
                let mut blocks = recycled.try_recv().unwrap_or_else(|_| fresh());
                let mut result = Ok(());
                for (s, reader) in readers.iter_mut().enumerate() {
                    let r = match enc[s] {
                        Some(_) => fill_raw(reader.as_mut(), &mut blocks.raw[s], &mut more, block),
                        None => fill_block(reader.as_mut(), &mut scratch[s], &mut blocks.planar[s]),
                    };
                    match r {
                        Ok(got) => real[s] = got,
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                let n = (frames - done).min(block as u64) as usize;
                if let (Some(p), Ok(())) = (&mut probe, &result) {
                    for (s, e) in enc.iter().enumerate() {
                        match e {
                            Some(e) => {
                                let got = real[s];
                                pcm_unpack::unpack(&blocks.raw[s], *e, ch[s], &mut probe_planar[s], got);
                                probe_planar[s].iter_mut().for_each(|c| c[got..].fill(0.0));
                            }
                            None => probe_planar[s]
                                .iter_mut()
                                .zip(&blocks.planar[s])
                                .for_each(|(d, x)| d.copy_from_slice(x)),
                        }
                    }
                    p.add(&probe_planar, n, &real);
                }
                done += n as u64;
                let msg = result.map(|_| (n, blocks));
                let failed = msg.is_err();
                if tx.send(msg).is_err() || failed {
                    return None;
                }
            }
            probe.map(StemProbe::finish)
        });
        FileStemSource { rx, recycle, thread: Some(thread), done: false, raw: encodings, channels, measures: None }
    }

    /// The next block from the reader thread; None after the end.
    fn receive(&mut self) -> Result<Option<(usize, Blocks)>> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Ok(b)) => Ok(Some(b)),
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                if let Some(t) = self.thread.take() {
                    self.measures = t.join().map_err(|_| Error::Internal("stem reader thread panicked".into()))?;
                }
                Ok(None)
            }
        }
    }
}

impl StemSource for FileStemSource {
    fn next_block(&mut self, out: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        let Some((n, mut blocks)) = self.receive()? else { return Ok(0) };
        for (s, (o, b)) in out.iter_mut().zip(blocks.planar.iter_mut()).enumerate() {
            match self.raw[s] {
                // Asked for f32 of a raw stem: unpack here, as the GPU would.
                Some(e) => {
                    let bytes = &blocks.raw[s];
                    let got = bytes.len() / (self.channels[s] * pcm_unpack::bytes_per_sample(e).expect("raw"));
                    pcm_unpack::unpack(bytes, e, self.channels[s], o, got);
                    o.iter_mut().for_each(|c| c[got..].fill(0.0));
                }
                None => o.iter_mut().zip(b.iter_mut()).for_each(|(oc, bc)| std::mem::swap(oc, bc)),
            }
        }
        let _ = self.recycle.try_send(blocks);
        Ok(n)
    }

    fn raw_encoding(&self, stem: usize) -> Option<SourceEncoding> {
        self.raw.get(stem).copied().flatten()
    }

    fn next_raw_block(&mut self, raw: &mut [Vec<u8>], planar: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        let Some((n, mut blocks)) = self.receive()? else {
            raw.iter_mut().for_each(Vec::clear);
            return Ok(0);
        };
        for (s, is_raw) in self.raw.iter().enumerate() {
            if is_raw.is_some() {
                std::mem::swap(&mut raw[s], &mut blocks.raw[s]);
            } else {
                planar[s].iter_mut().zip(blocks.planar[s].iter_mut()).for_each(|(oc, bc)| std::mem::swap(oc, bc));
            }
        }
        let _ = self.recycle.try_send(blocks);
        Ok(n)
    }
}
