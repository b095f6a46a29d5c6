//! Command-line definitions (clap derive); parsed into typed options, validated once.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::pipeline::render::EngineChoice;
use crate::pipeline::spill::SpillMode;
use crate::progress::ProgressMode;

#[derive(Debug, Parser)]
#[command(
    name = "stemforge",
    version,
    about = "Offline stem mastering: rebuild, EQ, normalise, limit and deliver stems and masters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a session: EQ, sum, normalise, limit, write the master and stems.
    Render {
        session: PathBuf,
        /// Engine: auto uses a hardware GPU when one exists; gpu fails (exit 3) without an adapter.
        #[arg(long, value_enum, default_value = "auto")]
        engine: EngineChoice,
        /// GPU adapter to use (substring of its name; default: $WGPU_ADAPTER_NAME, else the best one).
        #[arg(long)]
        adapter: Option<String>,
        /// Output folder (default: the session file's folder).
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Write the render report (JSON) to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "auto")]
        progress: ProgressMode,
        /// Overwrite existing outputs.
        #[arg(long)]
        force: bool,
        /// Frames per block (power of two, 1024..=65536): the streaming unit and FIR partition.
        #[arg(long, default_value_t = crate::pipeline::plan::DEFAULT_BLOCK, value_parser = parse_block)]
        block: usize,
        /// Folder for the analysis pass's spills, unlinked temporary files of 4 bytes per bus
        /// channel and frame, for the bus and (CPU engine, `--spill all`) per stem output
        /// (default: the output folder).
        #[arg(long)]
        spill_dir: Option<PathBuf>,
        /// What the analysis pass spills: all (the bus, and each linked stem for the CPU engine's
        /// writing pass to read back instead of filtering again), bus (only what solving G needs),
        /// none (G is found by repeating the writing pass).
        #[arg(long, value_enum, default_value = "all")]
        spill: SpillMode,
        /// Segmented render (design/farm.md; README "One long programme across nodes"): the
        /// programme split into N segments of whole blocks (phases 1 and 3).
        #[arg(long, requires = "state_dir", value_parser = clap::value_parser!(u32).range(1..))]
        segments: Option<u32>,
        /// The segment (0-based) this task analyses (phase 1) or writes (phase 3).
        #[arg(long, requires = "segments")]
        segment: Option<u32>,
        /// Folder the phases of a segmented render share (every node sees the same one).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Phase 2: join the analysed segments' bus, meter it and solve G.
        #[arg(long, requires = "state_dir", conflicts_with_all = ["write", "join", "segments"])]
        solve: bool,
        /// Phase 3: write segment I of every output.
        #[arg(long, requires = "segment", conflicts_with = "join")]
        write: bool,
        /// Phase 4: join the written segments into the outputs and write the report.
        #[arg(long, requires = "state_dir", conflicts_with = "segments")]
        join: bool,
        /// A longer warm-up before each segment than the computed one, in seconds (phases 1 and
        /// 3 must be given the same).
        #[arg(long, requires = "segments")]
        warmup_s: Option<f64>,
        /// Write the proof page (one self-contained HTML file) here; its data also goes into
        /// the `--report` JSON, for `stemforge proof`.
        #[arg(long, conflicts_with = "state_dir")]
        proof: Option<PathBuf>,
        /// Keep each stem's processed signal (after its EQ and process chain) in this folder, and
        /// read it back when nothing that shapes it changed: a revision of gains, mutes, the bus
        /// chain or the master only sums, limits and writes (README "Revisions"); with --proof,
        /// the proof page's measures of the stem files are kept too. Not with a segmented render
        /// (--state-dir): its phases run on other nodes, each on a part.
        #[arg(long, conflicts_with = "state_dir")]
        cache: Option<PathBuf>,
        /// The --cache folder's limit in GB (10^9 bytes); least recently used entries are deleted
        /// to stay under it, and a stem bigger than it is not kept.
        #[arg(long, requires = "cache", allow_negative_numbers = true, default_value_t = crate::pipeline::cache::DEFAULT_MAX_GB, value_parser = parse_cache_gb)]
        cache_max_gb: f64,
    },
    /// Build the proof page from a saved render report (a render made with --proof).
    Proof {
        /// The render's `--report` JSON.
        report: PathBuf,
        /// The HTML file to write.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing page.
        #[arg(long)]
        force: bool,
    },
    /// Validate the stems and null their sum against the reference mix.
    Check {
        session: PathBuf,
        /// Write the check report (JSON) to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Overwrite an existing report file.
        #[arg(long)]
        force: bool,
    },
    /// Loudness per BS.1770-4 / EBU R128: integrated, LRA, max momentary/short-term, sample and true peak.
    Measure {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
        /// The programme's dialogue stem: also read the programme's loudness gated on it (stem
        /// gating, design/deliverables.md) and the dialogue percentage. Takes one programme file.
        #[arg(long, value_name = "STEM")]
        dialogue: Option<PathBuf>,
    },
    /// Master several sessions as one release (design/deliverables.md "Albums and EPs"): per-track
    /// files, one sequence file with its CUE sheet, album or track normalisation.
    Album {
        album: PathBuf,
        #[arg(long, value_enum, default_value = "auto")]
        engine: EngineChoice,
        #[arg(long)]
        adapter: Option<String>,
        /// Output folder (default: the album file's folder).
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Write the album report (JSON) to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Replace existing outputs.
        #[arg(long)]
        force: bool,
        /// The stem cache, as `render --cache` (README "Revisions"): every track's stems kept in
        /// this folder and read back when nothing that shapes them changed, so that revising one
        /// track's gains or the album's target only sums, limits and writes.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// The --cache folder's limit in GB (10^9 bytes), as `render --cache-max-gb`.
        #[arg(long, requires = "cache", allow_negative_numbers = true, default_value_t = crate::pipeline::cache::DEFAULT_MAX_GB, value_parser = parse_cache_gb)]
        cache_max_gb: f64,
    },
    /// Null residual of two files; exit 1 when over tolerance.
    Compare {
        a: PathBuf,
        b: PathBuf,
        #[arg(long)]
        json: bool,
        /// Residual peak tolerance (dBFS).
        #[arg(long, default_value_t = -100.0, allow_negative_numbers = true, value_parser = parse_dbfs)]
        max_peak_dbfs: f64,
        /// Residual RMS tolerance (dBFS).
        #[arg(long, default_value_t = -120.0, allow_negative_numbers = true, value_parser = parse_dbfs)]
        max_rms_dbfs: f64,
    },
    /// GPU adapters seen, and which one would be used.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Render a batch of sessions (design/farm.md): all of them N at a time, one (`--task I`),
    /// or none (`--summarize`); sessions whose recorded fingerprint still matches are skipped.
    Batch {
        batch: PathBuf,
        /// Sessions rendered at once.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
        jobs: u32,
        /// Render session I only (0-based): what one scheduler task runs.
        #[arg(long, conflicts_with_all = ["summarize", "jobs"])]
        task: Option<usize>,
        /// Gather the sessions' records into the summary without rendering anything.
        #[arg(long)]
        summarize: bool,
        /// Write the summary (JSON) to this file.
        #[arg(long)]
        summary: Option<PathBuf>,
        /// Engine of the sessions that do not name one in the batch file.
        #[arg(long, value_enum, default_value = "auto")]
        engine: EngineChoice,
        /// With --task: exit 0 once the session's result is recorded (the summary carries its
        /// exit code), for schedulers that run a dependent step only after success (OpenJD).
        #[arg(long, requires = "task")]
        record_only: bool,
    },
    /// Write a scheduler's job for a batch to stdout.
    Farm {
        #[command(subcommand)]
        scheduler: FarmCommand,
    },
}

/// `farm slurm|openjd FILE --segments N`: treat the file as one session split into N segments
/// across nodes, its four phases as dependent jobs (phases 1 and 3 one task per segment).
#[derive(Debug, clap::Args)]
pub struct SegmentSplit {
    /// Treat the file as one session and split it into N segments across nodes.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub segments: Option<u32>,
    /// With --segments: the shared state folder (default: .stemforge-segments/<name> beside the
    /// session file).
    #[arg(long, requires = "segments")]
    pub state_dir: Option<PathBuf>,
    /// With --segments: the output folder (default: the session file's folder).
    #[arg(long, requires = "segments")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum FarmCommand {
    /// An sbatch script: a job array (one task per session) and a summary job after it.
    Slurm {
        batch: PathBuf,
        #[arg(long)]
        partition: Option<String>,
        /// At most K tasks at once.
        #[arg(long)]
        max_parallel: Option<usize>,
        #[arg(long)]
        cpus_per_task: Option<usize>,
        /// Engine of the sessions that do not name one.
        #[arg(long, value_enum)]
        engine: Option<EngineChoice>,
        /// The stemforge the nodes run (default: this executable).
        #[arg(long)]
        stemforge: Option<PathBuf>,
        #[command(flatten)]
        split: SegmentSplit,
    },
    /// An Open Job Description template (jobtemplate-2023-09, JSON).
    Openjd {
        batch: PathBuf,
        /// Engine of the sessions that do not name one.
        #[arg(long, value_enum)]
        engine: Option<EngineChoice>,
        /// The stemforge the workers run (default: this executable).
        #[arg(long)]
        stemforge: Option<PathBuf>,
        #[command(flatten)]
        split: SegmentSplit,
    },
}

impl Command {
    /// Whether every stderr line of this command is a JSON object (`render --progress json`),
    /// errors included: `main` prints its error as one.
    pub fn json_stderr(&self) -> bool {
        matches!(self, Command::Render { progress: ProgressMode::Json, .. })
    }
}

/// Whether raw arguments ask for JSON on stderr, for errors found before they parse: `--progress
/// json` or `--progress=json` anywhere.
pub fn args_ask_for_json(args: &[std::ffi::OsString]) -> bool {
    args.iter().any(|a| a == "--progress=json") || args.windows(2).any(|w| w[0] == "--progress" && w[1] == "json")
}

/// `--cache-max-gb`: a finite number of GB above 0.
fn parse_cache_gb(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of GB"))?;
    crate::pipeline::cache::check_max_gb(v)?;
    Ok(v)
}

fn parse_block(s: &str) -> Result<usize, String> {
    let v: usize = s.parse().map_err(|_| format!("`{s}` is not a whole number"))?;
    if !(1024..=65536).contains(&v) || !v.is_power_of_two() {
        return Err(format!("{v} is not a power of two between 1024 and 65536"));
    }
    Ok(v)
}

/// A tolerance in dBFS: a finite number. NaN compares false with everything (a residual would
/// never pass, and the run would read as a failed comparison, exit 1, not a bad flag) and +inf
/// passes anything; identical files are -inf dBFS apart, which any finite tolerance admits.
fn parse_dbfs(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number (dBFS)"))?;
    if !v.is_finite() {
        return Err(format!("`{s}` is not a finite level: give the tolerance in dBFS, e.g. -100"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
