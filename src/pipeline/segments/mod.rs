//! One long programme rendered in segments across nodes (design/farm.md): phase 1 analyses
//! segment I from a warm-up before it and writes its part of the bus spill; phase 2 joins the
//! parts, meters them in order and solves G exactly as one machine does; phase 3 writes segment I
//! of every output; phase 4 joins the parts into the final files. The result is byte-identical to
//! one machine's render (tests/segments.rs), on the CPU engine, and on the GPU engine for sessions
//! without process chains (whose warm-up proof needs the CPU engine's state snapshots).
//!
//! Why the warm-up makes it exact (figures from `Warmup::of`):
//! - Every FIR (stem EQ, bus EQ, the oversampler), delay line, look-ahead window, RMS window and
//!   the limiter's hold and smoothing have finite memory. Segments start on block boundaries and a
//!   task decodes from a block boundary, so after as many blocks as that memory spans, every
//!   partition of every frequency-domain delay line holds the FFT of the same input block as on
//!   one machine: the outputs are the same bits, not merely close.
//! - The limiter's release D[n] = max(A[n], ρ·D[n−1]) (f64, read out as f32) has infinite memory,
//!   but a max-recursion forgets exactly: a warm-up started from D = 0 stays at or below the true
//!   D and equals it from the first frame where A wins in both. Where A never wins, the true D's
//!   part from before the warm-up is at most D_MAX·ρ^n; once that is below half the least f32
//!   subnormal (7.0e-46), both read out as the same f32 (0 or the A-driven value).
//!   n = ln(D_MAX / 7.0e-46) / −ln ρ with D_MAX = 1000 dB (above the 771 dB of f32::MAX over any
//!   ceiling) is 110.9 release time constants: 319,400 frames for 60 ms at 48 kHz.
//! - A compressor's ballistics and side-chain biquad (f64) and a transient shaper's followers (f32)
//!   are recursions: two starts converge to within rounding after ln(Δ/ulp) time constants and
//!   then merge only when a rounding lands the same way, which no bound guarantees. So the warm-up
//!   gives them 60 time constants, and phase 2 *proves* it was enough: each task records every
//!   chain's full state (stems', then the bus chain's)
//!   (`Stage::state_bytes`) at its segment's start (after its warm-up) and end (continuing from its
//!   own start); segment 0 starts from one machine's own state, so if the end of I equals the start
//!   of I+1 bit for bit, by induction every segment ran from one machine's state. A mismatch is
//!   exit 2 naming the segment (use a longer `--warmup-s`). Phase 3 runs the same chains on the
//!   same frames from the same start, so the proof covers its compressors too.
//! - The analysis loudness that seeds G and G itself are computed as one machine does: the joined
//!   bus spill metered in order in blocks of B, G solved on it by `target::reach_target` with the
//!   same solve. The dither is a function of the absolute frame index.
mod analyse;
mod write;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::outputs::{PlannedFile, plan_outputs};
use super::render::{EngineChoice, open_stems};
use crate::cpu::engine::CpuEngine;
use crate::engine::{Alignment, Engine, PassBlock, PassParams, PassSink, RenderPlan};
use crate::error::{Error, Result};
use crate::meter::{LoudnessMeter, LoudnessStats, MeterScope};
use crate::model::{OutputKind, Process};
use crate::paths;
use crate::pipeline::plan::{PlanKind, build_plan};
use crate::pipeline::source::FileStemSource;
use crate::pipeline::target::{GainSearch, LOUDNESS_TOLERANCE_LU, Verdict, reach_target};
use crate::publish::Publication;
use crate::session::Session;

/// Half the least positive f32 subnormal: an f64 below it reads out as f32 0.
const F32_ZERO_BELOW: f64 = 7.0e-46;
/// Bound on the limiter's required attenuation in dB: 20·log10(f32::MAX) = 770.6 dB over a
/// ceiling of 0 dB; a ceiling is at most a couple of hundred dB below it.
const D_MAX_DB: f64 = 1000.0;
/// Time constants given to a process stage's recursions (compressor, transient shaper: see the
/// module comment; phase 2 checks that they were enough).
const RECURSION_TAUS: f64 = 60.0;

/// The frames of input a process stage needs to reach one machine's state (`Warmup::process`): a
/// compressor's look-ahead, RMS window and RECURSION_TAUS time constants of the slower of attack
/// and release; a transient shaper's RECURSION_TAUS of its slowest follower; the FIRs of `width`'s
/// mono-below high-pass and of saturation's oversampler (finite memory).
fn stage_memory(p: &Process, sample_rate: u32) -> u64 {
    let frames = |ms: f64| (RECURSION_TAUS * ms / 1000.0 * sample_rate as f64).ceil() as u64;
    match p {
        Process::Compressor(c) => {
            c.lookahead(sample_rate) as u64 + c.rms_frames(sample_rate) as u64 + frames(c.attack_ms.max(c.release_ms))
        }
        Process::Transient(t) => frames(t.fast_ms.max(t.slow_ms).max(t.release_ms)),
        Process::Width(w) => {
            if w.mono_below_hz > 0.0 {
                w.taps as u64
            } else {
                0
            }
        }
        Process::Saturation(s) => {
            2 * crate::dsp::oversampling::design_oversampling(s.oversampling).taps_per_phase as u64
        }
    }
}

/// Which phase of design/farm.md a `render` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Analyse,
    Solve,
    Write,
    Join,
}

#[derive(Debug, Clone)]
pub struct SegmentOptions {
    pub phase: Phase,
    pub segments: Option<u32>,
    pub segment: Option<u32>,
    pub state_dir: PathBuf,
    pub engine: EngineChoice,
    /// `--adapter`: the GPU adapter phases 1 and 3 run on with `--engine gpu`.
    pub adapter: Option<String>,
    pub block: usize,
    pub out_dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub force: bool,
    /// A longer warm-up than `Warmup::of` computes, in seconds.
    pub warmup_s: Option<f64>,
    /// Test hook (`STEMFORGE_TEST_WARMUP_FRAMES`, read once by the CLI): a warm-up of this many
    /// frames (rounded up to blocks) instead of the computed one, so a test can show that phase 2
    /// refuses a warm-up too short for the compressors (tests/segments.rs).
    #[doc(hidden)]
    pub test_warmup_frames: Option<u64>,
}

/// What a phase prints (and phase 4 writes as the report).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentReport {
    pub session: String,
    pub phase: &'static str,
    pub segments: u32,
    pub segment: Option<u32>,
    /// Program frames this task produced: [first, end).
    pub frames: Option<[u64; 2]>,
    /// Program frames this task decoded from the stems: [first, end).
    pub decoded: Option<[u64; 2]>,
    pub warmup_frames: u64,
    pub gain_db: Option<f64>,
    pub loudness_before: Option<serde_json::Value>,
    pub loudness_after: Option<LoudnessStats>,
    pub outputs: Vec<JoinedOutput>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JoinedOutput {
    pub path: PathBuf,
    pub frames: u64,
    pub bytes: u64,
    pub sha256: String,
    pub over_full_scale: u64,
}

/// The warm-up a segment needs before its first frame, by what needs it (frames).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Warmup {
    /// FIRs, delay lines and the engine's block alignment (finite memory).
    pub filters: u64,
    /// The stems' and the bus's process chains (`stage_memory`; the recursions are checked in
    /// phase 2).
    pub process: u64,
    /// The limiter: oversampler, look-ahead, and the release's exact forgetting (module comment).
    pub limiter: u64,
    /// Their sum rounded up to whole blocks: what a task decodes before its segment.
    pub total: u64,
}

impl Warmup {
    pub fn of(plan: &RenderPlan, min_frames: u64) -> Warmup {
        let b = plan.block as u64;
        let align = Alignment::of(plan, plan.limiter.is_some());
        let taps = |f: &Option<crate::engine::FirPlan>| {
            f.as_ref().map_or(0, |f| f.taps.iter().map(|t| t.len()).max().unwrap_or(0)) as u64
        };
        let stem_taps = plan.stems.iter().map(|s| taps(&s.fir)).max().unwrap_or(0);
        // The recursions start forgetting only once their input is exact: the stages add up.
        let filters = stem_taps + taps(&plan.bus_fir) + (align.total() as u64 + 2) * b;
        // A stem's chain runs after its EQ, a keyed compressor after its key's whole chain (one
        // chain level after another, `engine::chain_levels`), the bus chain after all of them.
        let chain = |ps: &[Process]| ps.iter().map(|p| stage_memory(p, plan.sample_rate)).sum::<u64>();
        let levels = crate::engine::chain_levels(&plan.stems).map_or(plan.stems.len(), |l| l.len()) as u64;
        let stems = plan.stems.iter().map(|s| chain(&s.process)).max().unwrap_or(0);
        let process = stems * levels + chain(&plan.bus_process);
        let limiter = plan.limiter.as_ref().map_or(0, |l| {
            let per_frame = -(l.rho as f64).ln();
            let release = ((D_MAX_DB / F32_ZERO_BELOW).ln() / per_frame * 1.001).ceil() as u64 + 1;
            (l.oversampling.coeffs.len() + l.lookahead) as u64 + release
        });
        let total = (filters + process + limiter).max(min_frames).div_ceil(b) * b;
        Warmup { filters, process, limiter, total }
    }
}

/// Everything every phase derives from the session, the same way on every node.
struct Setup {
    session: Session,
    plan: RenderPlan,
    files: Vec<PlannedFile>,
    out_dir: PathBuf,
    stems_wanted: bool,
    segments: u32,
    warmup: Warmup,
    /// The session as the phases must agree on it (`stamp`).
    stamp: String,
    /// Phases 1 and 3 run on the GPU engine (`--engine gpu`), else on the CPU engine.
    gpu: bool,
    adapter: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AnalysisRecord {
    stamp: String,
    segment: u32,
    segments: u32,
    frames: [u64; 2],
    decoded: [u64; 2],
    warmup: Warmup,
    /// SHA-256 of the stems' process chains' state at the segment's first frame and at its end.
    state_start: String,
    state_end: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SolveRecord {
    stamp: String,
    segments: u32,
    gain_db: f64,
    loudness_before: Option<serde_json::Value>,
    /// `target::Verdict` of the solve, and the solve's reading at `gain_db`.
    verdict: String,
    solved_lufs: Option<f64>,
    /// The limiter's aim, `margin_db` under the ceiling (`passes::Aim`): phase 3 writes at it.
    margin_db: Option<f64>,
    /// The warm-up phase 1 ran with: phase 3 must start where it did (phase 2's proof covers its
    /// compressors only then), whatever `--warmup-s` it is given.
    warmup_frames: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WriteRecord {
    stamp: String,
    segment: u32,
    segments: u32,
    frames: [u64; 2],
    decoded: [u64; 2],
    /// Per planned file: samples beyond full scale in this part.
    over_full_scale: Vec<u64>,
    /// The limiter took something off in this segment.
    limited: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Setup {
    fn load(session_path: &Path, opts: &SegmentOptions, segments: Option<u32>) -> Result<Setup> {
        let session = Session::load(session_path)?;
        let gpu = opts.engine == EngineChoice::Gpu;
        if gpu && (session.stems.iter().any(|s| !s.mute && !s.process.is_empty()) || !session.bus_process.is_empty()) {
            // Phase 2 proves the compressors' warm-up from their state, which only the CPU engine
            // hands over (`CpuEngine::snapshot_chains_at`).
            return Err(Error::Usage(
                "--segments/--state-dir: on the GPU engine, segmented rendering takes sessions without process \
                 chains (their warm-up is proved from state the CPU engine hands over): use --engine cpu"
                    .into(),
            ));
        }
        let out_dir = opts.out_dir.clone().unwrap_or_else(|| session.dir.clone());
        let (infos, _) = open_stems(&session)?;
        let fs = infos[0].sample_rate;
        session.validate_sample_rate(fs)?;
        let stems_wanted = session.outputs.iter().any(|o| o.kind == OutputKind::Stems);
        let plan = build_plan(&session, &infos, PlanKind::StemsLinked, opts.block)?;
        if plan.stems.is_empty() {
            return Err(Error::input(&session.file, "every stem is muted: nothing to render"));
        }
        if !session.variants.is_empty() {
            return Err(Error::input(
                &session.file,
                "[[variants]]: a segmented render does not render variants yet (render the session on one machine)",
            ));
        }
        if let Some(p) = session.master.as_ref().filter(|m| m.dialogue).and_then(|m| m.profile.as_deref()) {
            return Err(Error::input(
                &session.file,
                format!(
                    "master.profile = {p:?} normalises dialogue-gated loudness: a segmented render does not carry the \
                     dialogue gate across segments yet (render the session on one machine)"
                ),
            ));
        }
        if let Some(i) = session.outputs.iter().position(|o| o.layout.is_some()) {
            return Err(Error::input(
                &session.file,
                format!(
                    "outputs[{i}].layout: a segmented render does not make fold-downs yet (render the session on one \
                     machine)"
                ),
            ));
        }
        if let Some(i) = session.outputs.iter().position(|o| o.delivered_rate(fs) != fs) {
            return Err(Error::input(
                &session.file,
                format!(
                    "outputs[{i}].sample_rate: a segmented render delivers at the stems' rate ({fs} Hz) only for now \
                     (render a resampled output on one machine)"
                ),
            ));
        }
        let files = plan_outputs(&session, &plan, &out_dir, true)?;
        let text = std::fs::read(&session.file).map_err(|e| Error::input_from(&session.file, "cannot read", e))?;
        let mut h = Sha256::new();
        h.update(&text);
        h.update(format!("|{}|{}|{}|{}", plan.frames, plan.block, plan.sample_rate, env!("CARGO_PKG_VERSION")));
        let stamp = hex(&h.finalize());
        let min = opts.warmup_s.map_or(0, |s| (s * fs as f64).ceil() as u64);
        let mut warmup = Warmup::of(&plan, min);
        if let Some(w) = opts.test_warmup_frames {
            warmup.total = w.div_ceil(plan.block as u64) * plan.block as u64;
        }
        let segments = match segments {
            Some(n) => n,
            None => read_json::<SolveOrAny>(&opts.state_dir.join("segments.json"))?.segments,
        };
        let blocks = plan.blocks();
        if segments == 0 || segments as u64 > blocks {
            return Err(Error::Usage(format!(
                "--segments {segments}: the programme has {blocks} blocks of {} frames; give 1..={blocks} segments",
                plan.block
            )));
        }
        let adapter = opts.adapter.clone();
        Ok(Setup { session, plan, files, out_dir, stems_wanted, segments, warmup, stamp, gpu, adapter })
    }

    /// Program frames [first, end) of segment `i`: whole blocks, split as evenly as they go.
    fn bounds(&self, i: u32) -> [u64; 2] {
        let k = self.plan.blocks();
        let b = self.plan.block as u64;
        let (n, i) = (self.segments as u64, i as u64);
        [(k * i / n) * b, ((k * (i + 1) / n) * b).min(self.plan.frames)]
    }

    fn check_stamp(&self, stamp: &str, file: &Path) -> Result<()> {
        if stamp != self.stamp {
            return Err(Error::input(
                file,
                format!(
                    "was written for another version of {} (the session file, its programme length, the block size or \
                     stemforge changed since): run the phases again from phase 1 into an empty --state-dir",
                    self.session.file.display()
                ),
            ));
        }
        Ok(())
    }

    fn segment(&self, segment: Option<u32>) -> Result<u32> {
        let i = segment.ok_or_else(|| Error::Usage("this phase needs --segment I".into()))?;
        if i >= self.segments {
            return Err(Error::Usage(format!(
                "--segment {i}: segments are 0..{} (--segments {})",
                self.segments, self.segments
            )));
        }
        Ok(i)
    }

    /// The engine of phases 1 and 3 without process chains to snapshot: the GPU engine when asked.
    fn engine(&self) -> Result<Box<dyn Engine>> {
        Ok(if self.gpu {
            Box::new(crate::gpu::GpuEngine::new(self.adapter.as_deref())?)
        } else {
            Box::new(CpuEngine::new())
        })
    }

    /// Runs one pass of `engine` over program frames [from, to) (a warm-up then a segment)
    /// with the source read from `from`, handing the sink blocks with absolute indices.
    fn run_window(
        &self,
        engine: &mut dyn Engine,
        params: &PassParams,
        from: u64,
        to: u64,
        sink: &mut dyn PassSink,
    ) -> Result<[u64; 2]> {
        let b = self.plan.block as u64;
        let mut plan = self.plan.clone();
        plan.frames = to - from;
        let align = Alignment::of(&plan, params.limit);
        // The stems are read as far as the chain looks ahead of the last frame it delivers.
        let decode_to = (to + align.total() as u64 * b).min(self.plan.frames);
        let readers = super::passes::open_readers(&self.session, &plan)?;
        let raw = engine.takes_raw_pcm();
        let mut source = FileStemSource::start_at(readers, plan.block, from, decode_to - from, raw)?;
        let mut shifted = Shifted { inner: sink, offset: from / b };
        engine.run_pass(&plan, params, &mut source, &mut shifted)?;
        Ok([from, decode_to])
    }
}

#[derive(serde::Deserialize)]
struct SolveOrAny {
    segments: u32,
}

/// A sink whose blocks come from a pass started at block `offset` of the programme.
struct Shifted<'a> {
    inner: &'a mut dyn PassSink,
    offset: u64,
}

impl PassSink for Shifted<'_> {
    fn block(&mut self, mut block: PassBlock<'_>) -> Result<()> {
        block.index += self.offset;
        self.inner.block(block)
    }
    fn delivery(&self) -> crate::engine::Delivery {
        self.inner.delivery()
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(|e| {
        Error::input_from(
            path,
            "cannot read this phase's input (did the phase that writes it run, into this --state-dir?)",
            e,
        )
    })?;
    serde_json::from_slice(&text).map_err(|e| Error::input(path, format!("not a stemforge segment record: {e}")))
}

/// Written whole under a temporary name, then renamed: a killed task leaves no half record.
/// The temporary name is this process's own: tasks of several nodes may write the same record
/// (`segments.json`) at once, each renaming its own whole file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("{}.stemforge-tmp", std::process::id()));
    let werr = |e| Error::output_from(path, "cannot write", e);
    let mut f = File::create(&tmp).map_err(werr)?;
    f.write_all(bytes).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(werr)
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    write_atomic(path, &text)
}

fn part_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// A file written under `name.stemforge-tmp` and renamed on `finish`.
struct PartFile {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
}

impl PartFile {
    fn create(path: PathBuf) -> Result<PartFile> {
        let tmp = path.with_extension("stemforge-tmp");
        let f = File::create(&tmp).map_err(|e| Error::output_from(&path, "cannot create", e))?;
        Ok(PartFile { path, tmp, out: BufWriter::with_capacity(1 << 20, f) })
    }
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| Error::output_from(&self.path, "write failed", e))
    }
    fn finish(self) -> Result<()> {
        let f = self.out.into_inner().map_err(|e| Error::output_from(&self.path, "write failed", e.into_error()))?;
        f.sync_all().map_err(|e| Error::output_from(&self.path, "fsync failed", e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::output_from(&self.path, "cannot rename", e))
    }
}

/// Planar f32 blocks (`channels` runs of `len` samples per block, as `spill::SpillWriter`).
fn write_planar_f32(out: &mut PartFile, planes: &[Vec<f32>], len: usize) -> Result<()> {
    for c in planes {
        out.write(bytemuck::cast_slice(&c[..len]))?;
    }
    Ok(())
}

fn state_dir_ready(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::output_from(dir, "cannot create the state folder", e))
}

/// Runs the phase `opts` names.
pub fn run(session_path: &Path, opts: &SegmentOptions) -> Result<SegmentReport> {
    match opts.phase {
        Phase::Analyse => analyse::analyse(session_path, opts),
        Phase::Solve => analyse::solve(session_path, opts),
        Phase::Write => write::write(session_path, opts),
        Phase::Join => write::join(session_path, opts),
    }
}
