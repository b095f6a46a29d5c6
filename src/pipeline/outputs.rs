//! The render's output files: planned from the session (names, formats, dither seeds), checked
//! against the inputs and each other before anything is read, and opened as writers for a pass.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::dsp::resample::output_frames;
use sha2::{Digest, Sha256};

use crate::engine::RenderPlan;
use crate::error::{Error, Result};
use crate::io::WriterSpec;
use crate::io::bext::{Bext, BextLoudness, LoudnessTap};
use crate::io::wav_writer::WavWriter;
use crate::meter::{LoudnessMeter, LoudnessStats, MeterBank};
use crate::model::{Dither, Origination, OutputKind, SampleFormat};
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
    /// The stem's index in plan order.
    pub(super) stem_index: Option<usize>,
    /// The file's own format: one channel for a `split_channels` file.
    pub(super) spec: WriterSpec,
    /// `split_channels`: the channel of the output's signal this file holds.
    pub(super) channel: Option<usize>,
    /// Channels of the output's signal (the bus's).
    pub(super) signal_channels: usize,
    pub(super) bext: Bext,
}

impl PlannedFile {
    /// A writer for this file, its `bext` loudness metered on what it writes. A split channel's
    /// writer still takes blocks of every channel unless `whole_blocks` is false (the segment
    /// join hands it its own channel's parts).
    pub(super) fn open(&self, frames: u64, whole_blocks: bool) -> Result<WavWriter> {
        self.open_metered(frames, whole_blocks, Box::new(MeterTap(self.meter()?)))
    }

    /// As `open`, its `bext` loudness metered by `tap`.
    fn open_metered(&self, frames: u64, whole_blocks: bool, tap: Box<dyn LoudnessTap>) -> Result<WavWriter> {
        let mut w = WavWriter::create(&self.final_path, &self.spec)?;
        w.expect_frames(frames)?;
        w.set_bext(self.bext.clone(), tap)?;
        if let (Some(c), true) = (self.channel, whole_blocks) {
            w.pick_channel(c, self.signal_channels)?;
        }
        Ok(w)
    }

    /// The reference meter of this file's samples.
    fn meter(&self) -> Result<LoudnessMeter> {
        LoudnessMeter::new(self.spec.channels, self.spec.sample_rate, self.spec.layout)
    }
}

/// A meter's readings as the `bext` chunk carries them.
fn bext_loudness(r: LoudnessStats) -> BextLoudness {
    BextLoudness {
        integrated_lufs: r.integrated_lufs,
        lra_lu: r.lra_lu,
        true_peak_dbtp: r.true_peak_dbtp,
        max_momentary_lufs: r.max_momentary_lufs,
        max_short_term_lufs: r.max_short_term_lufs,
    }
}

/// The reference meter (`LoudnessMeter`, every reading) on a writer's samples, for its `bext`.
struct MeterTap(LoudnessMeter);

impl LoudnessTap for MeterTap {
    fn add_planar(&mut self, planar: &[&[f32]]) {
        self.0.add_planar(planar);
    }
    fn loudness(&mut self) -> BextLoudness {
        bext_loudness(self.0.result())
    }
}

/// A writer's meter in a pass's `MeterBank` (file `file` of it): the same readings as its own
/// `MeterTap`, K-weighted beside the pass's other files.
struct BankTap {
    bank: Arc<MeterBank>,
    file: usize,
}

impl LoudnessTap for BankTap {
    fn add_planar(&mut self, planar: &[&[f32]]) {
        self.bank.add(self.file, planar);
    }
    fn loudness(&mut self) -> BextLoudness {
        bext_loudness(self.bank.result(self.file))
    }
}

/// OriginationDate/Time of every output: `[delivery] date`, else the `SOURCE_DATE_EPOCH`
/// environment variable (reproducible-builds.org: seconds since 1970-01-01 UTC), else blank, so
/// that a render is a pure function of its inputs unless asked otherwise.
fn origination(session: &Session) -> Result<Option<Origination>> {
    if let Some(d) = &session.delivery.date {
        return Ok(Some(d.clone()));
    }
    let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH") else { return Ok(None) };
    let v = v.to_string_lossy();
    v.trim().parse::<u64>().ok().and_then(Origination::from_unix_seconds).map(Some).ok_or_else(|| {
        Error::Usage(format!(
            "SOURCE_DATE_EPOCH = {v:?} is not a count of seconds since 1970-01-01 00:00:00 UTC \
                 (a non-negative integer, up to the end of year 9999)"
        ))
    })
}

/// The `bext` chunk of output `o`'s file `rel` (relative to the output folder): the session and
/// the output in the Description, an OriginatorReference of the programme and the file, the
/// timecode start as TimeReference, and EBU R 98 coding history.
#[allow(clippy::too_many_arguments)]
fn bext_for(
    session: &Session,
    plan: &RenderPlan,
    out: &crate::session::Output,
    o: usize,
    rel: &Path,
    stem: Option<&str>,
    channel: Option<usize>,
    date: &Option<Origination>,
) -> Bext {
    let title = session.delivery.title.as_deref().unwrap_or(&session.name);
    let kind = match (out.kind, stem) {
        (OutputKind::Stems, Some(s)) => format!("stem {s:?}"),
        _ => "master".to_string(),
    };
    // A fold-down's file is in its own layout (2.0), and says what it was folded from.
    let layout = out.layout.unwrap_or(plan.layout);
    let label = channel.map_or(String::new(), |c| format!(", channel {}", layout.channel_labels()[c]));
    let layout_name = match out.layout {
        Some(l) => format!("{} fold-down of {}", crate::session::template::layout_label(l), plan.layout.name()),
        None => plan.layout.name().to_string(),
    };
    let (bits, float) = match out.format {
        SampleFormat::F32 => (32, true),
        f => (f.int_bits().unwrap_or(32), false),
    };
    let description = format!(
        "{title}: {kind} of session {:?}, output {o} ({layout_name} {}{label}), file {}",
        session.name,
        if float { "f32".to_string() } else { format!("pcm{bits}") },
        rel.display()
    );
    // The programme (to 23 characters) and 8 hex digits of SHA-256 of the file's path: the same
    // for every render of the file, different for every file of the programme.
    let id: String = Sha256::digest(rel.to_string_lossy().as_bytes())[..4].iter().map(|b| format!("{b:02x}")).collect();
    let programme: String = title.chars().filter(|c| c.is_ascii_graphic()).take(23).collect();
    let mode = match (channel, layout.channels()) {
        (Some(_), _) | (None, 1) => "mono",
        (None, 2) => "stereo",
        _ => "multitrack",
    };
    // The file's own rate: an output delivered at another rate counts its samples at that rate.
    let rate = out.delivered_rate(plan.sample_rate);
    let coding_history = format!(
        "A=PCM,F={rate},W={bits},M={mode},T=stemforge {}; {layout_name} {}{label}\r\n",
        env!("CARGO_PKG_VERSION"),
        if float { "IEEE float" } else { "integer" },
    );
    Bext {
        description,
        originator: "stemforge".to_string(),
        originator_reference: format!("{programme}-{id}"),
        origination_date: date.as_ref().map_or(String::new(), |d| d.date.clone()),
        origination_time: date.as_ref().and_then(|d| d.time.clone()).unwrap_or_default(),
        time_reference: session.delivery.timecode_start.map_or(0, |t| t.samples_since_midnight(rate)),
        coding_history,
    }
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

/// The session's own files (a segmented render refuses fold-downs before it plans).
pub(super) fn plan_outputs(
    session: &Session,
    plan: &RenderPlan,
    out_dir: &Path,
    force: bool,
) -> Result<Vec<PlannedFile>> {
    let all = plan_all_outputs(session, plan, out_dir, force)?;
    Ok(all.files)
}

/// Every file a render writes, planned (`plan_all_outputs`).
pub(super) struct AllFiles {
    /// The main's files: its masters and stems in the session's layout.
    pub(super) files: Vec<PlannedFile>,
    pub(super) variants: Vec<VariantFiles>,
    /// The `layout = "2.0"` outputs' files: the fold-down, a deliverable of its own (`passes::fold`).
    pub(super) fold: Vec<PlannedFile>,
}

/// The session's own files, the fold-down's and each variant's: every file checked against every
/// other and, without `force`, against what exists.
pub(super) fn plan_all_outputs(session: &Session, plan: &RenderPlan, out_dir: &Path, force: bool) -> Result<AllFiles> {
    let all_stems: Vec<usize> = (0..plan.stems.len()).collect();
    let mut seed_base = 0;
    let date = origination(session)?;
    let all = plan_files(session, plan, out_dir, &session.outputs, &all_stems, &mut seed_base, &date);
    let (fold, files): (Vec<PlannedFile>, Vec<PlannedFile>) =
        all.into_iter().partition(|f| session.outputs[f.output].layout.is_some());
    let mut variants = Vec::new();
    for (v, variant) in session.variants.iter().enumerate() {
        let keep: Vec<usize> =
            plan.stems.iter().enumerate().filter(|(_, sp)| !variant.mute[sp.index]).map(|(i, _)| i).collect();
        let files = plan_files(session, plan, out_dir, &variant.outputs, &keep, &mut seed_base, &date);
        variants.push(VariantFiles { variant: v, keep, files });
    }
    let mut seen = HashSet::new();
    for f in files.iter().chain(&fold).chain(variants.iter().flat_map(|v| &v.files)) {
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
    Ok(AllFiles { files, variants, fold })
}

/// The files of `outputs`, stem files for the plan stems `keep`; `seed_base` numbers the outputs
/// across the session's and the variants' so that the dither seeds of different signals differ.
fn plan_files(
    session: &Session,
    plan: &RenderPlan,
    out_dir: &Path,
    outputs: &[crate::session::Output],
    keep: &[usize],
    seed_base: &mut usize,
    date: &Option<Origination>,
) -> Vec<PlannedFile> {
    let mut files = Vec::new();
    for (o, out) in outputs.iter().enumerate() {
        // One dither per signal and format: outputs of the same kind and format share the seed of
        // the first of them (the same signal quantised alike is the same file), and a split
        // channel's file is dithered as its channel of the whole signal
        // (`WavWriter::pick_channel`), so it holds that channel of the interleaved file exactly.
        // A fold-down is another signal than the master in its format.
        let seed_output = *seed_base
            + outputs
                .iter()
                .position(|x| x.kind == out.kind && x.format == out.format && x.layout == out.layout)
                .unwrap_or(o);
        let layout = out.layout.unwrap_or(plan.layout);
        let spec = |stem: Option<usize>, channel: Option<usize>| WriterSpec {
            sample_rate: out.delivered_rate(plan.sample_rate),
            channels: if channel.is_some() { 1 } else { layout.channels() },
            // One channel of a layout has no speaker mask of its own here: none (0) is written.
            layout: if channel.is_some() { None } else { Some(layout) },
            format: out.format,
            dither_seed: (out.dither == Dither::Tpdf).then(|| dither_seed(seed_output, stem)),
        };
        let whole: Vec<(PathBuf, Option<usize>, Option<String>)> = match out.kind {
            OutputKind::Master => vec![(out.path.clone(), None, None)],
            OutputKind::Stems => keep
                .iter()
                .map(|&i| {
                    let stem = &session.stems[plan.stems[i].index];
                    (session.stem_output_path(out, stem), Some(i), Some(stem.name.clone()))
                })
                .collect(),
        };
        for (rel, stem_index, stem) in whole {
            for (rel, channel) in session.split_paths(out, &rel) {
                files.push(PlannedFile {
                    output: o,
                    final_path: out_dir.join(&rel),
                    kind: out.kind,
                    bext: bext_for(session, plan, out, o, &rel, stem.as_deref(), channel, date),
                    stem: stem.clone(),
                    stem_index,
                    spec: spec(stem_index, channel),
                    channel,
                    signal_channels: layout.channels(),
                });
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

/// Writers for a pass of `frames` frames at `sample_rate` (told, so each writes its final header
/// first and hashes as it goes; a resampled output holds `resample::output_frames` of them).
///
/// The files at the pass's own rate are written block for block together, so their meters share
/// one `MeterBank` (one K-weighting for all their channels); a resampled file meters alone.
pub(super) fn make_writers(files: &[PlannedFile], frames: u64, sample_rate: u32) -> Result<Writers> {
    let mut writers = Writers::none();
    let mut stem_output: Option<usize> = None;
    // Each file's meter: its own (`Err`), or its place in the bank (`Ok`).
    let mut banked = Vec::new();
    let mut meters: Vec<std::result::Result<usize, LoudnessMeter>> = Vec::with_capacity(files.len());
    for f in files {
        let mut meter = f.meter()?;
        let map = if f.spec.sample_rate == sample_rate { meter.weighted_externally() } else { None };
        match map {
            Some(map) => {
                meters.push(Ok(banked.len()));
                banked.push((meter, map));
            }
            None => meters.push(Err(meter)),
        }
    }
    // None banked (a rate without whole 100 ms steps, every file resampled): no bank to build.
    let bank = (!banked.is_empty()).then(|| Arc::new(MeterBank::new(sample_rate, banked)));
    for (f, meter) in files.iter().zip(meters) {
        let tap: Box<dyn LoudnessTap> = match (meter, &bank) {
            (Ok(file), Some(bank)) => Box::new(BankTap { bank: bank.clone(), file }),
            (Ok(_), None) => unreachable!("a banked file has its bank"),
            (Err(own), _) => Box::new(MeterTap(own)),
        };
        let w = f.open_metered(output_frames(frames, sample_rate, f.spec.sample_rate), true, tap)?;
        match f.kind {
            OutputKind::Master => writers.masters.push(w),
            OutputKind::Stems => {
                if stem_output != Some(f.output) {
                    writers.stems.push(Vec::new());
                    writers.stem_of.push(Vec::new());
                    stem_output = Some(f.output);
                }
                writers.stems.last_mut().expect("stem output").push(w);
                writers.stem_of.last_mut().expect("stem output").push(f.stem_index.expect("a stem file's stem"));
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
                writers: make_writers(&v.files, plan.frames, plan.sample_rate)?,
                meter: LoudnessMeter::new(plan.bus_channels(), plan.sample_rate, Some(plan.layout))?,
            })
        })
        .collect()
}
