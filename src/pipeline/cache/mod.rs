//! `render --cache DIR` (design/proof.md "fast revisions"): each stem's processed stream (after its
//! EQ and `process` chain, before its gain and routing) kept in DIR under a key of everything that
//! shapes it (`key`), so that a revision of gains, mutes, the bus chain or the master reads the
//! stems back and only sums, solves, limits and writes.
//!
//! How a render uses it (`prepare`): every stem's entry is looked up and verified in full
//! (`entry::open_verified`); the stems without a good entry go through one capture pass on the
//! render's engine (`capture`), which stores them; then the render's passes run on the host CPU
//! engine over a plan whose stems are the entries (`StemPlan::replayed_latency`), replayed block by
//! block (`entry::EntrySource`). The engines apply a stem's gain and routing after its chain
//! (`cpu::gain_sum`, `gpu::gain_sum`), so the replayed render performs exactly the float
//! operations of an uncached render from there on: the same sum, bus EQ, bus chain, G, limiter.
//! What a stem's chain did (its stages' gain reduction, taken in the capture pass) is kept in its
//! entry too (`entry::StoredStages`), so the report lists the stems' stages as an uncached one.
//! Memory does not grow with programme length: entries stream in and out one block at a time.
//!
//! The folder: entries `<key>.sfstem`, written under a temporary name and renamed, so renders
//! sharing the folder see an entry whole or not at all (two storing the same key write the same
//! bytes). Least recently used goes first (`evict`): a use sets an entry's modification time.
//! Beside the entries: each stem's last key (`Slot`, `.slot`), which says what changed on a
//! recompute, and each stem file's hash with what the file was when hashed (`key::stem_file_sha256`,
//! `.stat`), so that a warm revision does not read every stem file again.
mod capture;
pub mod entry;
mod key;
mod proof_record;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use rayon::prelude::*;

use crate::engine::{Alignment, Engine, RecordedStages, RenderPlan, StageSnapshot, chain_levels, stem_stages_at};
use crate::error::{Error, Result};
use crate::model::Process;
use crate::progress::Progress;
use crate::report::render::{CacheReport, CacheStem, PassRecord};
use crate::session::Session;
use entry::{EntrySource, EntryWriter, Expect, StoredStages, Verified};
use proof_record::ProofCache;

/// `--cache DIR --cache-max-gb F`.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    pub dir: PathBuf,
    /// The folder's limit in bytes (entries and temporary entries together).
    pub max_bytes: u64,
}

impl CacheOptions {
    /// `--cache DIR --cache-max-gb GB` (a batch file's `cache` and `cache_max_gb`), the limit
    /// checked (`check_max_gb`).
    pub fn new(dir: PathBuf, max_gb: f64) -> std::result::Result<CacheOptions, String> {
        check_max_gb(max_gb)?;
        Ok(CacheOptions { dir, max_bytes: (max_gb * 1e9).floor() as u64 })
    }
}

/// A cache limit of `gb` GB is a positive number, at least one entry's header.
pub fn check_max_gb(gb: f64) -> std::result::Result<(), String> {
    if !gb.is_finite() || gb <= 0.0 {
        return Err(format!("{gb} GB: the cache's limit must be a positive number of GB"));
    }
    if gb * 1e9 < entry::HEADER_BYTES as f64 {
        return Err(format!("{gb} GB is less than one entry's header: give at least 1e-6"));
    }
    Ok(())
}

/// `--cache-max-gb` when not given: room for about 20 minutes of 12 stereo stems at 48 kHz
/// (18 GB), a few revisions' worth of a feature's 5.1 DME stems.
pub const DEFAULT_MAX_GB: f64 = 20.0;

/// Blocks an entry holds past what the storing render reads: a revision whose bus EQ or limiter
/// look-ahead grows by up to this many blocks still reads it (`entry::Unusable::Short` beyond).
const SPARE_BLOCKS: u64 = 2;

/// Temporary entries older than this are left from a killed render, not being written: swept.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// The render's stems as verified entries (plan order), for the passes (`passes::Runner`).
pub struct CachedStems {
    entries: Vec<Verified>,
    blocks: u64,
}

impl CachedStems {
    /// A fresh replay of every entry from its first block.
    pub fn source(&self) -> Result<EntrySource> {
        EntrySource::new(&self.entries.iter().collect::<Vec<_>>(), self.blocks)
    }
}

/// What `prepare` hands the render: the replay plan, its entries, the report's section, the
/// capture pass's record when one ran, and with `--proof` the proof page's stem measures.
pub struct Prepared {
    pub plan: RenderPlan,
    pub stems: CachedStems,
    pub report: CacheReport,
    pub capture: Option<PassRecord>,
    pub proof: Option<proof_record::ProofMeasures>,
}

/// Look up, verify, compute and store the stems of `plan` (the render's writing plan), and build
/// the plan that replays them; with `proof`, the proof page's measures of the stem files too
/// (`proof_record`).
pub fn prepare(
    session: &Session,
    plan: &RenderPlan,
    engine: &mut dyn Engine,
    opts: &CacheOptions,
    scratch: &Path,
    progress: &Progress,
    proof: bool,
) -> Result<Prepared> {
    std::fs::create_dir_all(&opts.dir).map_err(|e| Error::output(&opts.dir, format!("--cache: {e}")))?;
    refuse_restless(session, plan)?;
    let b = plan.block;
    let align = Alignment::of(plan, plan.limiter.is_some());
    let lag = align.stems.blocks;
    // The most a pass of this render iterates: a writing pass from the stems (no spill, or a
    // remaster variant), lag + bus + limiter blocks past the programme.
    let needed = plan.blocks() + align.total() as u64;
    let stored_blocks = needed + SPARE_BLOCKS;
    let precision = engine.info().fir_precision;
    let files: Vec<[u8; 32]> = plan
        .stems
        .par_iter()
        .map(|s| key::stem_file_sha256(&opts.dir, &session.stems[s.index].path))
        .collect::<Result<Vec<_>>>()?;
    // Key stems first, so a keyed compressor's key covers its key stem's.
    let levels = chain_levels(&plan.stems).ok_or_else(|| Error::Internal("compressor keys make a cycle".into()))?;
    let mut keys: Vec<Option<[u8; 32]>> = vec![None; plan.stems.len()];
    let mut parts: Vec<Option<key::Parts>> = vec![None; plan.stems.len()];
    for &i in levels.iter().flatten() {
        let p = key::stem_key(plan, i, &files[i], lag, precision, &keys);
        keys[i] = Some(p.key());
        parts[i] = Some(p);
    }
    let keys: Vec<[u8; 32]> = keys.into_iter().map(|k| k.expect("every stem is in a level")).collect();
    let parts: Vec<key::Parts> = parts.into_iter().map(|p| p.expect("every stem is in a level")).collect();
    let mut proof = proof.then(|| ProofCache::look_up(session, plan, &opts.dir, &files)).transpose()?;

    let mut found: Vec<Option<Verified>> = Vec::new();
    let mut records = Vec::new();
    // Every entry read in full and hashed, the stems in parallel (the verification is most of a
    // warm render's reading).
    // An entry's stage figures cover the stems' reporting length (`stem_stages_at`) of this render
    // and of every longer programme whose render can still read it, up to every block stored.
    let first = stem_stages_at(plan);
    let checked: Vec<_> = plan
        .stems
        .par_iter()
        .enumerate()
        .map(|(i, s)| {
            let want =
                Expect { key: keys[i], channels: s.channels, block: b, blocks: needed, stages: s.process.len(), first };
            entry::open_verified(&entry::entry_path(&opts.dir, &keys[i]), &want)
        })
        .collect();
    for ((i, s), checked) in plan.stems.iter().enumerate().zip(checked) {
        let path = entry::entry_path(&opts.dir, &keys[i]);
        let (hit, action, reason) = match checked {
            Ok(Some(v)) => (Some(v), "reused", None),
            // No entry: this stem's slot says whether it had one under another key, and why not now.
            Ok(None) => match Slot::read(&opts.dir, session, &s.name).filter(|old| old.key != entry::hex(&keys[i])) {
                Some(old) => {
                    let changed = parts[i].changed(&old.parts);
                    let why = if changed.is_empty() { "its key changed".to_string() } else { changed.join("; ") };
                    (None, "recomputed", Some(why))
                }
                None => (None, "stored", None),
            },
            Err(why) => {
                // Replaced below; gone now, so that nothing reads it meanwhile.
                let _ = std::fs::remove_file(&path);
                (None, "recomputed", Some(why.to_string()))
            }
        };
        let bytes = hit.as_ref().map_or(0, |v| v.bytes);
        records.push(CacheStem { stem: s.name.clone(), key: entry::hex(&keys[i]), action, reason, bytes });
        found.push(hit);
    }
    let missing: Vec<usize> = (0..plan.stems.len()).filter(|&i| found[i].is_none()).collect();
    // The capture pass computes the missing stems and the key stems their compressors read.
    let mut group: Vec<usize> = Vec::new();
    let mut stack = missing.clone();
    while let Some(i) = stack.pop() {
        if !group.contains(&i) {
            group.push(i);
            stack.extend(plan.stems[i].key_stems(&plan.stems));
        }
    }
    group.sort_unstable();
    let size = |i: usize| {
        let s = &plan.stems[i];
        entry::entry_bytes(s.channels, b, stored_blocks)
            + entry::trailer_bound(s.process.len(), stored_blocks + 1 - first.min(stored_blocks))
    };
    // An entry bigger than the whole cache is never stored: it is written unlinked to the spill
    // folder, used by this render and gone with it.
    let keep = |i: usize| size(i) <= opts.max_bytes;
    let incoming: u64 = missing.iter().filter(|&&i| keep(i)).map(|&i| size(i)).sum();
    // Room first, so that the folder stays under its limit while the entries are written.
    let mut evicted = evict(&opts.dir, opts.max_bytes.saturating_sub(incoming))?;
    let mut capture_record = None;
    let mut bytes_written = 0;
    let mut measured = None;
    if !group.is_empty() {
        let t0 = Instant::now();
        let names: Vec<&str> = missing.iter().map(|&i| plan.stems[i].name.as_str()).collect();
        progress.note(&format!(
            "stemforge: cache: computing {} stem(s) on the {} engine ({})",
            missing.len(),
            engine.info().engine,
            names.join(", ")
        ));
        let mut writers = group
            .iter()
            .map(|&i| {
                if !missing.contains(&i) {
                    return Ok(None);
                }
                EntryWriter::create(&opts.dir, scratch, keep(i), keys[i], plan.stems[i].channels, b)
                    .map(Some)
                    .map_err(|e| Error::output(&opts.dir, format!("--cache: cannot write an entry: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        // A capture of every stem reads them all: the proof page's measures ride along.
        let probe = if group.len() == plan.stems.len() { proof.as_mut().and_then(ProofCache::probe) } else { None };
        // Each chain's figures for every reporting length from `first`; capture iteration c is the
        // render's iteration c - lag.
        let chained = group.iter().any(|&i| !plan.stems[i].process.is_empty());
        let snaps: Vec<StageSnapshot> = (first..=stored_blocks)
            .filter(|_| chained)
            .map(|n| StageSnapshot { at: n - 1 + lag as u64, as_iterations: n })
            .collect();
        engine.snapshot_stages_at(snaps.clone());
        measured = capture::capture(engine, session, plan, lag, &group, &mut writers, stored_blocks, probe)?;
        let taken = engine.take_stage_snapshots();
        if taken.iter().map(|(n, _)| *n).ne(snaps.iter().map(|s| s.as_iterations)) {
            return Err(Error::Internal("the capture pass did not take every stage snapshot asked".into()));
        }
        for (g, (&i, w)) in group.iter().zip(writers).enumerate() {
            let Some(w) = w else { continue };
            // The capture plan's stems are the group's, in its order.
            let stages = (!plan.stems[i].process.is_empty())
                .then(|| StoredStages { first, reductions: taken.iter().map(|(_, all)| all[g].clone()).collect() });
            let (v, named) = w
                .finish(stages)
                .map_err(|e| Error::output(&opts.dir, format!("--cache: cannot write an entry: {e}")))?;
            if named {
                bytes_written += v.bytes;
            } else {
                records[i].action = "uncached";
                records[i].reason = Some(format!(
                    "{:.3} GB, larger than --cache-max-gb {:.3}: used for this render only",
                    v.bytes as f64 / 1e9,
                    opts.max_bytes as f64 / 1e9
                ));
            }
            records[i].bytes = v.bytes;
            found[i] = Some(v);
        }
        capture_record = Some(PassRecord {
            pass: 0,
            kind: "stems",
            gain_db: 0.0,
            integrated_lufs: None,
            true_peak_dbtp: None,
            aim_dbtp: None,
            seconds: t0.elapsed().as_secs_f64(),
            input: "stems",
            bus_bytes: engine.bus_bytes(),
            meter: "none",
        });
    }
    for (i, s) in plan.stems.iter().enumerate() {
        if records[i].action != "uncached" {
            Slot { stem: s.name.clone(), key: entry::hex(&keys[i]), parts: parts[i].clone() }.write(&opts.dir, session);
        }
    }
    let proof = proof.map(|p| p.finish(&opts.dir, session, plan, measured)).transpose()?;
    // The limit holds after this render too (its slots and proof records, another render's
    // entries meanwhile). An evicted entry this render holds open stays readable until it is
    // done (unlinked).
    evicted.extend(evict(&opts.dir, opts.max_bytes)?);
    let entries: Vec<Verified> = found.into_iter().map(|v| v.expect("every stem found or computed")).collect();
    let bytes_read = records.iter().filter(|r| r.action == "reused").map(|r| r.bytes).sum();
    let report = CacheReport {
        proof: proof.as_ref().map(|p| p.action),
        dir: opts.dir.clone(),
        max_bytes: opts.max_bytes,
        stems_engine: (!group.is_empty()).then(|| engine.info().engine),
        mix_engine: "cpu",
        bytes_read,
        bytes_written,
        evicted,
        stems: records,
    };
    // The replay plan: each stem is its entry, aligned as the render aligned its path.
    let mut replay = plan.clone();
    for (s, v) in replay.stems.iter_mut().zip(&entries) {
        s.replayed_stages = v.stages.as_ref().map(|st| {
            std::sync::Arc::new(RecordedStages {
                names: s.process.iter().map(Process::name).collect(),
                first: st.first,
                reductions: st.reductions.clone(),
            })
        });
        s.fir = None;
        s.process = Vec::new();
        s.replayed_latency = Some(lag * b);
    }
    let blocks = entries.iter().map(|v| v.blocks).min().unwrap_or(0);
    Ok(Prepared { plan: replay, stems: CachedStems { entries, blocks }, report, capture: capture_record, proof })
}

/// A stem's last key in this cache (`<hash of session file and stem name>.slot`, a few hundred
/// bytes, evicted like an entry): when its entry is not found, what changed.
#[derive(serde::Serialize, serde::Deserialize)]
struct Slot {
    stem: String,
    key: String,
    parts: key::Parts,
}

impl Slot {
    fn path(dir: &Path, session: &Session, stem: &str) -> PathBuf {
        use sha2::Digest;
        let file = std::fs::canonicalize(&session.file).unwrap_or_else(|_| session.file.clone());
        let mut h = sha2::Sha256::new();
        h.update(file.to_string_lossy().as_bytes());
        h.update(b"\0");
        h.update(stem.as_bytes());
        dir.join(format!("{}.{SLOT_EXTENSION}", entry::hex(&h.finalize())))
    }

    fn read(dir: &Path, session: &Session, stem: &str) -> Option<Slot> {
        serde_json::from_slice(&std::fs::read(Slot::path(dir, session, stem)).ok()?).ok()
    }

    /// Best effort (the slot only explains; a render does not fail for it), atomically.
    fn write(&self, dir: &Path, session: &Session) {
        write_record(dir, &Slot::path(dir, session, &self.stem), self);
    }
}

/// Best effort, atomically: a small JSON record beside the entries (a slot, a stem file's stat
/// record, a proof record), under a temporary name in `dir` and renamed to `path`. A record only
/// saves work or explains; a render does not fail for it.
fn write_record(dir: &Path, path: &Path, record: &impl serde::Serialize) {
    if let Ok(json) = serde_json::to_vec(record) {
        write_record_bytes(dir, path, &json);
    }
}

/// As `write_record`, of bytes already made (a proof record with its checksum line).
fn write_record_bytes(dir: &Path, path: &Path, bytes: &[u8]) {
    if let Ok(mut tmp) = tempfile::Builder::new().prefix(entry::TEMP_PREFIX).tempfile_in(dir) {
        use std::io::Write;
        if tmp.write_all(bytes).is_ok() {
            let _ = tmp.persist(path);
        }
    }
}

const SLOT_EXTENSION: &str = "slot";

/// The capture pass puts silence before the stems (`capture`), which a compressor whose knee
/// reaches −180 dB (the level of silence) would not pass at rest: refused, with the reason.
fn refuse_restless(session: &Session, plan: &RenderPlan) -> Result<()> {
    for s in &plan.stems {
        for (j, p) in s.process.iter().enumerate() {
            if let Process::Compressor(c) = p
                && c.threshold_db - c.knee_db / 2.0 <= -170.0
            {
                return Err(Error::input(
                    &session.file,
                    format!(
                        "stem `{}`: process[{j}] (compressor): threshold_db {} with knee_db {} reaches silence \
                         (-180 dB): --cache cannot replay it exactly; render it without --cache",
                        s.name, c.threshold_db, c.knee_db
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Delete least-recently-used entries (oldest modification time first) until the folder's entries
/// and live temporary entries take at most `limit` bytes; temporary entries left by a killed render
/// (older than `STALE_TEMP`) go first. Returns the names deleted.
pub fn evict(dir: &Path, limit: u64) -> Result<Vec<String>> {
    let io = |e: std::io::Error| Error::output(dir, format!("--cache: {e}"));
    let now = SystemTime::now();
    let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    let mut total = 0u64;
    let mut gone = Vec::new();
    for item in std::fs::read_dir(dir).map_err(io)? {
        let item = item.map_err(io)?;
        let name = item.file_name().to_string_lossy().into_owned();
        let Ok(meta) = item.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if name.starts_with(entry::TEMP_PREFIX) {
            if now.duration_since(modified).unwrap_or_default() > STALE_TEMP {
                if std::fs::remove_file(item.path()).is_ok() {
                    gone.push(name);
                }
            } else {
                total += meta.len();
            }
        } else if [entry::EXTENSION, SLOT_EXTENSION, key::STAT_EXTENSION, proof_record::EXTENSION]
            .iter()
            .any(|x| name.ends_with(&format!(".{x}")))
        {
            total += meta.len();
            entries.push((modified, meta.len(), item.path()));
        }
    }
    entries.sort();
    for (_, len, path) in entries {
        if total <= limit {
            break;
        }
        // Already gone (another render evicted it) counts as evicted.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        total -= len;
        gone.push(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    }
    Ok(gone)
}
