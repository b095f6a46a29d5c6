//! A pass's output writers: the main's files, the `mode = "stems"` variants', and sealing them.
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::io::wav_writer::{SealedFile, WavWriter, WrittenFile, sync_folder};
use crate::meter::{LoudnessMeter, LoudnessStats};
use crate::publish::Publication;

/// Open output writers of a pass: masters, and `stems[output][file]`, one file per stem in plan
/// order, or with `split_channels` one per stem and channel; `stem_of[output][file]` is the
/// stem a file carries; and the `mode = "stems"` variants the pass makes beside the main.
pub struct Writers {
    pub masters: Vec<WavWriter>,
    pub stems: Vec<Vec<WavWriter>>,
    pub stem_of: Vec<Vec<usize>>,
    pub variants: Vec<VariantWriters>,
}

/// A `mode = "stems"` variant's writers: its master is the sum of the plan stems `keep` of the
/// pass (the main's linked stem outputs), its stem files are those stems.
pub struct VariantWriters {
    /// Index into `Session::variants`.
    pub variant: usize,
    pub keep: Vec<usize>,
    pub writers: Writers,
    /// Its master's meter (`MeterScope::Full`: checked like the main's).
    pub meter: LoudnessMeter,
}

/// What a pass made of a `mode = "stems"` variant: its master's loudness, and its files (open).
pub struct VariantPass {
    pub variant: usize,
    pub loudness: LoudnessStats,
    pub writers: Writers,
}

/// A `mode = "stems"` variant while a pass runs: its writers, its meter, its master's buffer.
pub(super) struct StemsVariant {
    pub(super) variant: usize,
    pub(super) keep: Vec<usize>,
    pub(super) writers: Writers,
    pub(super) meter: LoudnessMeter,
    pub(super) sum: Vec<Vec<f32>>,
}

impl StemsVariant {
    /// Sum the kept stems of `block` (in plan order, as the engines sum the master), meter the
    /// sum and write it and the kept stems.
    pub(super) fn block(&mut self, stems: &[Vec<Vec<f32>>], n: usize) -> Result<()> {
        if stems.is_empty() {
            return Err(Error::Internal("a stems variant without the pass's stems".into()));
        }
        let channels = stems[0].len();
        self.sum.resize_with(channels, Vec::new);
        for (c, out) in self.sum.iter_mut().enumerate() {
            out.clear();
            out.resize(n, 0.0);
            for &i in &self.keep {
                for (o, &x) in out.iter_mut().zip(&stems[i][c][..n]) {
                    *o += x;
                }
            }
        }
        let master: Vec<&[f32]> = self.sum.iter().map(|c| &c[..n]).collect();
        self.meter.add_planar(&master);
        for w in &mut self.writers.masters {
            w.write_planar(&master, n)?;
        }
        for (ws, of) in self.writers.stems.iter_mut().zip(&self.writers.stem_of) {
            for (w, &i) in ws.iter_mut().zip(of) {
                let planes: Vec<&[f32]> = stems[i].iter().map(|c| &c[..n]).collect();
                w.write_planar(&planes, n)?;
            }
        }
        Ok(())
    }
}

impl Writers {
    /// Whether any stem output is open.
    pub fn has_stems(&self) -> bool {
        self.stems.iter().any(|s| !s.is_empty())
    }

    pub fn none() -> Self {
        Writers { masters: Vec::new(), stems: Vec::new(), stem_of: Vec::new(), variants: Vec::new() }
    }
    /// Finish every file and rename it into place (replacing what is there). Until this,
    /// nothing is under a final name. A render publishes through `seal` and
    /// `SealedOutputs::publish` instead, which can refuse to replace.
    pub fn commit(self) -> Result<(Vec<WrittenFile>, Vec<Vec<WrittenFile>>)> {
        let sealed = self.seal()?;
        let mut publication = Publication::new(true);
        let written = sealed.publish(&mut publication)?;
        publication.keep();
        Ok(written)
    }

    /// Finish every file under its temporary name: flushed, fsynced, hashed.
    ///
    /// The files are sealed side by side, one thread each: the fsyncs wait on the disk, not on a
    /// core, so rayon's pool is not the place for them. Only when every file is sealed can they
    /// be renamed (`SealedOutputs::publish`), so a failure leaves none of this render's outputs
    /// under a final name.
    pub fn seal(self) -> Result<SealedOutputs> {
        let n_masters = self.masters.len();
        let shape: Vec<usize> = self.stems.iter().map(Vec::len).collect();
        let writers: Vec<WavWriter> = self.masters.into_iter().chain(self.stems.into_iter().flatten()).collect();
        let sealed = std::thread::scope(|scope| {
            let jobs: Vec<_> = writers.into_iter().map(|w| scope.spawn(move || w.seal())).collect();
            jobs.into_iter()
                .map(|j| {
                    j.join().unwrap_or_else(|_| Err(Error::Internal("a thread sealing an output panicked".into())))
                })
                .collect::<Vec<_>>()
        });
        // Sealed files of a failed seal are dropped here, which deletes them.
        let files = sealed.into_iter().collect::<Result<Vec<SealedFile>>>()?;
        Ok(SealedOutputs { files, n_masters, shape })
    }
}

/// A pass's output files, finished under their temporary names (`Writers::seal`); dropping them
/// deletes them.
pub struct SealedOutputs {
    /// Masters, then each stem output's files in plan order.
    files: Vec<SealedFile>,
    n_masters: usize,
    /// Files per stem output.
    shape: Vec<usize>,
}

impl SealedOutputs {
    /// What the files will be once published: masters, and `stems[output][stem]`.
    pub fn written(&self) -> (Vec<WrittenFile>, Vec<Vec<WrittenFile>>) {
        let mut all = self.files.iter().map(|f| f.written().clone());
        let masters: Vec<WrittenFile> = all.by_ref().take(self.n_masters).collect();
        let stems = self.shape.iter().map(|&n| all.by_ref().take(n).collect()).collect();
        (masters, stems)
    }

    /// Rename every file into place through `publication` (which may refuse an existing name:
    /// then the error names it, and dropping the publication takes back the files already
    /// renamed); then sync each folder once to make the renames durable.
    pub fn publish(self, publication: &mut Publication) -> Result<(Vec<WrittenFile>, Vec<Vec<WrittenFile>>)> {
        let written = self.written();
        let mut folders: Vec<PathBuf> = self.files.iter().map(SealedFile::folder).collect();
        folders.sort();
        folders.dedup();
        for f in self.files {
            f.publish(publication)?;
        }
        for dir in &folders {
            sync_folder(dir);
        }
        Ok(written)
    }
}
