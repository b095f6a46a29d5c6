//! The render's output files: planned from the session (names, formats, dither seeds), checked
//! against the inputs and each other before anything is read, and opened as writers for a pass.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::dsp::resample::output_frames;
use crate::engine::RenderPlan;
use crate::error::{Error, Result};
use crate::io::WriterSpec;
use crate::io::wav_writer::WavWriter;
use crate::model::{Dither, OutputKind};
use crate::paths::{self, Role};
use crate::pipeline::sink::Writers;
use crate::progress::Progress;
use crate::publish::sweep_stale;
use crate::session::Session;

/// One planned output file.
pub(super) struct PlannedFile {
    /// Index of the session output it belongs to.
    pub(super) output: usize,
    pub(super) final_path: PathBuf,
    pub(super) kind: OutputKind,
    pub(super) stem: Option<String>,
    pub(super) spec: WriterSpec,
}

pub(super) fn dither_seed(output: usize, stem: Option<usize>) -> u32 {
    // Distinct, fixed seeds per file: renders are reproducible and stem dithers uncorrelated.
    let s = stem.map_or(0xFFFF, |s| s as u32);
    (output as u32 + 1).wrapping_mul(0x9E37_79B9) ^ s.wrapping_mul(0x85EB_CA6B)
}

pub(super) fn plan_outputs(
    session: &Session,
    plan: &RenderPlan,
    out_dir: &Path,
    force: bool,
) -> Result<Vec<PlannedFile>> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for (o, out) in session.outputs.iter().enumerate() {
        let spec = |stem: Option<usize>| WriterSpec {
            sample_rate: out.delivered_rate(plan.sample_rate),
            channels: plan.bus_channels(),
            layout: Some(plan.layout),
            format: out.format,
            dither_seed: (out.dither == Dither::Tpdf).then(|| dither_seed(o, stem)),
        };
        match out.kind {
            OutputKind::Master => files.push(PlannedFile {
                output: o,
                final_path: out_dir.join(&out.path),
                kind: OutputKind::Master,
                stem: None,
                spec: spec(None),
            }),
            OutputKind::Stems => {
                for (i, sp) in plan.stems.iter().enumerate() {
                    let stem = &session.stems[sp.index];
                    files.push(PlannedFile {
                        output: o,
                        final_path: out_dir.join(session.stem_output_path(out, stem)),
                        kind: OutputKind::Stems,
                        stem: Some(stem.name.clone()),
                        spec: spec(Some(i)),
                    });
                }
            }
        }
    }
    for f in &files {
        if !seen.insert(f.final_path.clone()) {
            return Err(Error::input(
                &session.file,
                format!("two outputs write the same file {}", f.final_path.display()),
            ));
        }
        if !force && exists(&f.final_path) {
            return Err(Error::output(&f.final_path, "already exists; pass --force to overwrite it"));
        }
        if f.final_path.is_dir() {
            return Err(Error::output(&f.final_path, "is a folder"));
        }
    }
    Ok(files)
}

/// Whether anything is at `p`, a dangling symlink included (a rename without `--force` would
/// refuse it).
pub(super) fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The folder a file goes to.
pub(super) fn folder_of(p: &Path) -> &Path {
    p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Remove stale temporary files of `paths` (`publish::sweep_stale`), saying so.
pub(super) fn sweep(paths: &[&Path], progress: &Progress) {
    for p in paths {
        for gone in sweep_stale(p) {
            progress.note(&format!(
                "stemforge: removed the stale temporary file {} (left by a render that was killed)",
                gone.display()
            ));
            progress.event(serde_json::json!({"event": "stale_temp_removed", "path": gone}));
        }
    }
}

/// The checks every command that writes makes first, before it reads anything but the session:
/// no write (`writes`, and the `report` file) lands on an input or on another write, and without
/// `--force` the report does not exist yet (outputs are checked with their plan, `plan_outputs`).
pub fn check_writes(session: &Session, mut writes: Vec<Role>, report: Option<&Path>, force: bool) -> Result<()> {
    writes.extend(report.map(|r| Role::new(r, "--report")));
    paths::check_writes(&writes, &paths::session_inputs(session))?;
    if let Some(r) = report
        && !force
        && exists(r)
    {
        return Err(Error::output(r, "already exists; pass --force to overwrite it"));
    }
    Ok(())
}

/// Writers for a pass of `frames` frames at `sample_rate` (told, so each writes its final header
/// first and hashes as it goes; a resampled output holds `resample::output_frames` of them).
pub(super) fn make_writers(files: &[PlannedFile], frames: u64, sample_rate: u32) -> Result<Writers> {
    let mut writers = Writers::none();
    let mut stem_output: Option<usize> = None;
    for f in files {
        let mut w = WavWriter::create(&f.final_path, &f.spec)?;
        w.expect_frames(output_frames(frames, sample_rate, f.spec.sample_rate))?;
        match f.kind {
            OutputKind::Master => writers.masters.push(w),
            OutputKind::Stems => {
                if stem_output != Some(f.output) {
                    writers.stems.push(Vec::new());
                    stem_output = Some(f.output);
                }
                writers.stems.last_mut().expect("stem output").push(w);
            }
        }
    }
    Ok(writers)
}
