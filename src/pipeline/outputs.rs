//! The render's output files: planned from the session (names, formats, dither seeds), checked
//! against the inputs and each other before anything is read, and opened as writers for a pass.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::engine::RenderPlan;
use crate::error::{Error, Result};
use crate::io::WriterSpec;
use crate::io::wav_writer::WavWriter;
use crate::meter::LoudnessMeter;
use crate::model::{Dither, OutputKind};
use crate::paths::{self, Role};
use crate::pipeline::sink::{VariantWriters, Writers};
use crate::progress::Progress;
use crate::publish::sweep_stale;
use crate::session::{Session, VariantMode};

/// One planned output file.
pub(super) struct PlannedFile {
    /// Index of the session output it belongs to.
    pub(super) output: usize,
    pub(super) final_path: PathBuf,
    pub(super) kind: OutputKind,
    pub(super) stem: Option<String>,
    /// The stem's index in the plan, for a stem file.
    pub(super) plan_stem: Option<usize>,
    pub(super) spec: WriterSpec,
}

/// The files of one variant (`Session::variants[variant]`): its outputs, stem files only for the
/// stems it keeps.
pub(super) struct VariantFiles {
    pub(super) variant: usize,
    /// Plan indices of the stems it sums (unmuted in the session and in the variant).
    pub(super) keep: Vec<usize>,
    pub(super) files: Vec<PlannedFile>,
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
    let (files, _) = plan_all_outputs(session, plan, out_dir, force)?;
    Ok(files)
}

/// The session's own files, and each variant's: every file checked against every other and, without
/// `force`, against what exists.
pub(super) fn plan_all_outputs(
    session: &Session,
    plan: &RenderPlan,
    out_dir: &Path,
    force: bool,
) -> Result<(Vec<PlannedFile>, Vec<VariantFiles>)> {
    let all_stems: Vec<usize> = (0..plan.stems.len()).collect();
    let mut seed_base = 0;
    let files = plan_files(session, plan, out_dir, &session.outputs, &all_stems, &mut seed_base);
    let mut variants = Vec::new();
    for (v, variant) in session.variants.iter().enumerate() {
        let keep: Vec<usize> =
            plan.stems.iter().enumerate().filter(|(_, sp)| !variant.mute[sp.index]).map(|(i, _)| i).collect();
        let files = plan_files(session, plan, out_dir, &variant.outputs, &keep, &mut seed_base);
        variants.push(VariantFiles { variant: v, keep, files });
    }
    let mut seen = HashSet::new();
    for f in files.iter().chain(variants.iter().flat_map(|v| &v.files)) {
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
    Ok((files, variants))
}

/// The files of `outputs`, stem files for the plan stems `keep`; `seed_base` numbers the outputs
/// across the session's and the variants' so that every file's dither seed differs.
fn plan_files(
    session: &Session,
    plan: &RenderPlan,
    out_dir: &Path,
    outputs: &[crate::session::Output],
    keep: &[usize],
    seed_base: &mut usize,
) -> Vec<PlannedFile> {
    let mut files = Vec::new();
    for (o, out) in outputs.iter().enumerate() {
        let seed_output = *seed_base + o;
        let spec = |stem: Option<usize>| WriterSpec {
            sample_rate: plan.sample_rate,
            channels: plan.bus_channels(),
            layout: Some(plan.layout),
            format: out.format,
            dither_seed: (out.dither == Dither::Tpdf).then(|| dither_seed(seed_output, stem)),
        };
        match out.kind {
            OutputKind::Master => files.push(PlannedFile {
                output: o,
                final_path: out_dir.join(&out.path),
                kind: OutputKind::Master,
                stem: None,
                plan_stem: None,
                spec: spec(None),
            }),
            OutputKind::Stems => {
                for &i in keep {
                    let stem = &session.stems[plan.stems[i].index];
                    files.push(PlannedFile {
                        output: o,
                        final_path: out_dir.join(session.stem_output_path(out, stem)),
                        kind: OutputKind::Stems,
                        stem: Some(stem.name.clone()),
                        plan_stem: Some(i),
                        spec: spec(Some(i)),
                    });
                }
            }
        }
    }
    *seed_base += outputs.len();
    files
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

/// Writers for a pass of `frames` frames (told, so each writes its final header first and hashes
/// as it goes).
pub(super) fn make_writers(files: &[PlannedFile], frames: u64) -> Result<Writers> {
    let mut writers = Writers::none();
    let mut stem_output: Option<usize> = None;
    for f in files {
        let mut w = WavWriter::create(&f.final_path, &f.spec)?;
        w.expect_frames(frames)?;
        match f.kind {
            OutputKind::Master => writers.masters.push(w),
            OutputKind::Stems => {
                if stem_output != Some(f.output) {
                    writers.stems.push(Vec::new());
                    writers.stem_of.push(Vec::new());
                    stem_output = Some(f.output);
                }
                writers.stems.last_mut().expect("stem output").push(w);
                writers.stem_of.last_mut().expect("stem output").push(f.plan_stem.unwrap_or(0));
            }
        }
    }
    Ok(writers)
}

/// Writers of the `mode = "stems"` variants among `variants`, for the main's writing pass to fill
/// (`sink::OutputSink::variants`).
pub(super) fn make_variant_writers(
    session: &Session,
    variants: &[VariantFiles],
    plan: &RenderPlan,
) -> Result<Vec<VariantWriters>> {
    variants
        .iter()
        .filter(|v| session.variants[v.variant].mode == VariantMode::Stems)
        .map(|v| {
            Ok(VariantWriters {
                variant: v.variant,
                keep: v.keep.clone(),
                writers: make_writers(&v.files, plan.frames)?,
                meter: LoudnessMeter::new(plan.bus_channels(), plan.sample_rate, Some(plan.layout))?,
            })
        })
        .collect()
}
