//! Stem input for a pass: every stem's reader on one read-ahead thread, so decoding overlaps the
//! engine's compute; blocks are zero-padded past each stem's end and buffers are recycled.
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::engine::StemSource;
use crate::error::{Error, Result};
use crate::io::BlockReader;

/// Blocks decoded ahead of the engine.
const READ_AHEAD: usize = 3;

type Blocks = Vec<Vec<Vec<f32>>>;

pub struct FileStemSource {
    rx: Receiver<Result<(usize, Blocks)>>,
    recycle: SyncSender<Blocks>,
    thread: Option<JoinHandle<()>>,
    done: bool,
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

impl FileStemSource {
    /// Start reading `readers` (plan order) in blocks of `block` frames, for `frames` program frames.
    pub fn start(mut readers: Vec<Box<dyn BlockReader>>, block: usize, frames: u64) -> Self {
        let (tx, rx) = sync_channel::<Result<(usize, Blocks)>>(READ_AHEAD);
        let (recycle, recycled) = sync_channel::<Blocks>(READ_AHEAD + 2);
        let channels: Vec<usize> = readers.iter().map(|r| r.info().channels).collect();
        let thread = std::thread::spawn(move || {
            let mut scratch: Vec<Vec<Vec<f32>>> = channels.iter().map(|&c| vec![vec![0.0; block]; c]).collect();
            let mut done: u64 = 0;
            while done < frames {
                let mut blocks = recycled
                    .try_recv()
                    .unwrap_or_else(|_| channels.iter().map(|&c| vec![vec![0.0; block]; c]).collect());
                let mut result = Ok(());
                for ((reader, scr), out) in readers.iter_mut().zip(&mut scratch).zip(&mut blocks) {
                    if let Err(e) = fill_block(reader.as_mut(), scr, out) {
                        result = Err(e);
                        break;
                    }
                }
                let n = (frames - done).min(block as u64) as usize;
                done += n as u64;
                let msg = result.map(|_| (n, blocks));
                let failed = msg.is_err();
                if tx.send(msg).is_err() || failed {
                    return;
                }
            }
        });
        FileStemSource { rx, recycle, thread: Some(thread), done: false }
    }
}

impl StemSource for FileStemSource {
    fn next_block(&mut self, out: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        if self.done {
            return Ok(0);
        }
        match self.rx.recv() {
            Ok(Ok((n, mut blocks))) => {
                for (o, b) in out.iter_mut().zip(blocks.iter_mut()) {
                    for (oc, bc) in o.iter_mut().zip(b.iter_mut()) {
                        std::mem::swap(oc, bc);
                    }
                }
                let _ = self.recycle.try_send(blocks);
                Ok(n)
            }
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                if let Some(t) = self.thread.take() {
                    if t.join().is_err() {
                        return Err(Error::Internal("stem reader thread panicked".into()));
                    }
                }
                Ok(0)
            }
        }
    }
}
