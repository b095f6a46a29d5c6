//! Sinks that wrap a sink: on its own thread (`ThreadedSink`), and with progress (`ProgressSink`).
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::engine::{Delivery, GainStats, MeterReadings, PassBlock, PassSink};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Owned copy of a `PassBlock`, to cross to the sink thread.
struct OwnedBlock {
    index: u64,
    len: usize,
    master: Vec<Vec<f32>>,
    stems: Vec<Vec<Vec<f32>>>,
    gain: Option<Vec<f32>>,
    gain_stats: Option<GainStats>,
    packed: Vec<Vec<u8>>,
    over_full_scale: Vec<u64>,
    meter: Option<MeterReadings>,
}

fn copy_into(dst: &mut Vec<f32>, src: &[f32]) {
    dst.clear();
    dst.extend_from_slice(src);
}

/// Runs a sink on its own thread so metering, quantising and writing overlap the engine.
pub struct ThreadedSink<S: PassSink + Send + 'static> {
    tx: Option<SyncSender<OwnedBlock>>,
    recycled: Receiver<OwnedBlock>,
    thread: Option<JoinHandle<(S, Result<()>)>>,
    /// The inner sink's, asked before it moved to its thread.
    delivery: Delivery,
}

impl<S: PassSink + Send + 'static> ThreadedSink<S> {
    pub fn start(mut inner: S) -> Self {
        let delivery = inner.delivery();
        let (tx, rx) = sync_channel::<OwnedBlock>(2);
        let (back, recycled) = sync_channel::<OwnedBlock>(4);
        let thread = std::thread::spawn(move || {
            let mut result = Ok(());
            for b in rx {
                result = inner.block(PassBlock {
                    index: b.index,
                    len: b.len,
                    master: &b.master,
                    stems: &b.stems,
                    gain: b.gain.as_deref(),
                    gain_stats: b.gain_stats,
                    packed: &b.packed,
                    over_full_scale: &b.over_full_scale,
                    meter: b.meter.as_ref(),
                });
                if result.is_err() {
                    // Dropping the receiver makes the engine's next send fail, so it stops early.
                    break;
                }
                let _ = back.try_send(b);
            }
            (inner, result)
        });
        ThreadedSink { tx: Some(tx), recycled, thread: Some(thread), delivery }
    }

    /// Wait for every block to be processed; return the inner sink.
    pub fn finish(mut self) -> Result<S> {
        drop(self.tx.take());
        let (inner, result) = self
            .thread
            .take()
            .expect("sink thread")
            .join()
            .map_err(|_| Error::Internal("output thread panicked".into()))?;
        result.map(|_| inner)
    }
}

/// An unfinished sink (the engine failed) still waits for its thread: the thread owns the output
/// writers, whose drop deletes the temporary files, and a caller returning the error must not get
/// ahead of that (`main` would exit with the files still there).
impl<S: PassSink + Send + 'static> Drop for ThreadedSink<S> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<S: PassSink + Send + 'static> PassSink for ThreadedSink<S> {
    fn delivery(&self) -> Delivery {
        self.delivery.clone()
    }

    fn block(&mut self, block: PassBlock<'_>) -> Result<()> {
        let mut owned = self.recycled.try_recv().unwrap_or(OwnedBlock {
            index: 0,
            len: 0,
            master: Vec::new(),
            stems: Vec::new(),
            gain: None,
            gain_stats: None,
            packed: Vec::new(),
            over_full_scale: Vec::new(),
            meter: None,
        });
        owned.index = block.index;
        owned.len = block.len;
        owned.master.resize_with(block.master.len(), Vec::new);
        for (d, s) in owned.master.iter_mut().zip(block.master) {
            copy_into(d, &s[..block.len]);
        }
        owned.stems.resize_with(block.stems.len(), Vec::new);
        for (d, s) in owned.stems.iter_mut().zip(block.stems) {
            d.resize_with(s.len(), Vec::new);
            for (dc, sc) in d.iter_mut().zip(s) {
                copy_into(dc, &sc[..block.len]);
            }
        }
        match (block.gain, &mut owned.gain) {
            (Some(g), Some(d)) => copy_into(d, &g[..block.len]),
            (Some(g), slot) => *slot = Some(g[..block.len].to_vec()),
            (None, slot) => *slot = None,
        }
        owned.gain_stats = block.gain_stats;
        owned.packed.resize_with(block.packed.len(), Vec::new);
        for (d, s) in owned.packed.iter_mut().zip(block.packed) {
            d.clear();
            d.extend_from_slice(s);
        }
        owned.over_full_scale.clear();
        owned.over_full_scale.extend_from_slice(block.over_full_scale);
        match (block.meter, &mut owned.meter) {
            (Some(r), Some(d)) => d.clone_from(r),
            (Some(r), slot) => *slot = Some(r.clone()),
            (None, slot) => *slot = None,
        }
        let tx = self.tx.as_ref().expect("sink open");
        if tx.send(owned).is_err() {
            // The thread stopped on an error: report it now.
            let (_, result) = self
                .thread
                .take()
                .expect("sink thread")
                .join()
                .map_err(|_| Error::Internal("output thread panicked".into()))?;
            result?;
            return Err(Error::Internal("output thread stopped".into()));
        }
        Ok(())
    }
}

/// Reports progress as blocks reach the sink.
pub struct ProgressSink<'a, S: PassSink> {
    pub inner: S,
    pub progress: &'a Progress,
    pub frames_done: u64,
}

impl<S: PassSink> PassSink for ProgressSink<'_, S> {
    fn delivery(&self) -> Delivery {
        self.inner.delivery()
    }

    fn block(&mut self, block: PassBlock<'_>) -> Result<()> {
        self.frames_done += block.len as u64;
        self.inner.block(block)?;
        self.progress.advance(self.frames_done);
        Ok(())
    }
}
