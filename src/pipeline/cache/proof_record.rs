//! `render --cache DIR --proof`: the proof page's measures of the stem files (`StemProbe`: level,
//! spectrum, findings) and of the reference mix's null against them (`MixProbe`), kept beside the
//! entries, so that a revision's proof page reads them back instead of reading every stem again.
//!
//! They are measures of the files as read, before any gain, EQ or chain, so their keys cover only
//! what they depend on: the files' content (SHA-256), the channels, the rate, the programme's
//! length and the block and step it is read in, the probe's FFT length, and stemforge's version;
//! the null's key also covers every stem it sums, in plan order (a mute changes it). A record is
//! `<key>.proof`: a line with the XXH3-128 of the rest, then JSON. One that is missing, truncated,
//! corrupt or of another key is measured again, never trusted; records are evicted like entries.
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_128;

use crate::engine::RenderPlan;
use crate::error::{Error, Result};
use crate::meter::step_frames_at;
use crate::pipeline::proof::{FFT_LEN, MixMeasures, StemMeasure, StemMeasures, StemProbe, stem_probe};
use crate::pipeline::source::FileStemSource;
use crate::session::Session;

pub const EXTENSION: &str = "proof";

/// Bumped when what a record holds or how it is measured changes.
const RECORD_VERSION: u32 = 1;

/// The proof records a render with `--proof` needs: one per stem (plan order), and the null's
/// when the session's reference mix is nulled.
pub struct ProofKeys {
    pub stems: Vec<[u8; 32]>,
    pub null: Option<[u8; 32]>,
}

impl ProofKeys {
    /// The keys for `plan`'s stems, whose files hash to `files` (plan order), and for the null of
    /// the reference mix whose file hashes to `mix` (None: no null).
    pub fn new(plan: &RenderPlan, step: usize, files: &[[u8; 32]], mix: Option<&[u8; 32]>) -> ProofKeys {
        let framing = format!(
            "stemforge proof record {RECORD_VERSION}; stemforge {}; rate {}; frames {}; block {}; step {step}; fft {FFT_LEN}",
            env!("CARGO_PKG_VERSION"),
            plan.sample_rate,
            plan.frames,
            plan.block
        );
        let stems = plan
            .stems
            .iter()
            .zip(files)
            .map(|(s, file)| {
                let mut h = Sha256::new();
                h.update(format!("{framing}; stem; channels {}\n", s.channels).as_bytes());
                h.update(file);
                h.finalize().into()
            })
            .collect();
        let null = mix.map(|mix| {
            let mut h = Sha256::new();
            h.update(format!("{framing}; null; layout {}\n", plan.layout.name()).as_bytes());
            h.update(mix);
            for (s, file) in plan.stems.iter().zip(files) {
                h.update(format!("\nstem channels {}\n", s.channels).as_bytes());
                h.update(file);
            }
            h.finalize().into()
        });
        ProofKeys { stems, null }
    }
}

/// A record as stored: its key beside what it holds, so that a record renamed over another's
/// name is not taken for it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record<T> {
    key: String,
    measures: T,
}

fn path(dir: &Path, key: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.{EXTENSION}", super::entry::hex(key)))
}

/// The record under `key`, when there is one whose checksum and key hold; its use marks it
/// recently used (eviction goes by modification time, as for entries).
fn load<T: serde::de::DeserializeOwned>(dir: &Path, key: &[u8; 32]) -> Option<T> {
    let path = path(dir, key);
    let bytes = std::fs::read(&path).ok()?;
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let (head, body) = (&bytes[..newline], &bytes[newline + 1..]);
    if head != format!("{:032x}", xxh3_128(body)).as_bytes() {
        return None;
    }
    let record: Record<T> = serde_json::from_slice(body).ok()?;
    if record.key != super::entry::hex(key) {
        return None;
    }
    if let Ok(f) = std::fs::File::options().append(true).open(&path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    Some(record.measures)
}

/// Keep `measures` under `key`, best effort (a record saves work; a render does not fail for it).
fn store<T: serde::Serialize>(dir: &Path, key: &[u8; 32], measures: &T) {
    let record = Record { key: super::entry::hex(key), measures };
    let Ok(json) = serde_json::to_vec(&record) else { return };
    let mut bytes = format!("{:032x}\n", xxh3_128(&json)).into_bytes();
    bytes.extend_from_slice(&json);
    super::write_record_bytes(dir, &path(dir, key), &bytes);
}

/// What the cache holds of the records `keys` names: each stem's, and the null's.
pub struct Found {
    pub stems: Vec<Option<StemMeasure>>,
    pub null: Option<MixMeasures>,
}

impl Found {
    pub fn look_up(dir: &Path, keys: &ProofKeys) -> Found {
        Found {
            stems: keys.stems.iter().map(|k| load(dir, k)).collect(),
            null: keys.null.as_ref().and_then(|k| load(dir, k)),
        }
    }

    /// Whether every record the render needs was found.
    pub fn complete(&self, keys: &ProofKeys) -> bool {
        self.stems.iter().all(Option::is_some) && (keys.null.is_none() || self.null.is_some())
    }
}

/// Keep the records of a render's measures (`stems` in plan order, `null` when nulled).
pub fn store_all(dir: &Path, keys: &ProofKeys, stems: &[StemMeasure], null: Option<&MixMeasures>) {
    for (key, m) in keys.stems.iter().zip(stems) {
        store(dir, key, m);
    }
    if let (Some(key), Some(m)) = (&keys.null, null) {
        store(dir, key, m);
    }
}

/// A render's proof measures through the cache: looked up before the capture pass, measured by
/// it when it reads every stem, else by a pass that only reads them, else read back.
pub struct ProofCache {
    keys: ProofKeys,
    found: Found,
    /// A probe for the render's stems and its nulled mix, until one measures.
    probe: Option<StemProbe>,
    /// Why the reference mix is not nulled, when it cannot be.
    note: Option<String>,
}

/// What `ProofCache::finish` hands the render.
pub struct ProofMeasures {
    pub measures: StemMeasures,
    pub reference_note: Option<String>,
    /// How they were had, for the report's `cache` section.
    pub action: &'static str,
}

impl ProofCache {
    /// The records `plan`'s stems (files hashing to `files`, plan order) and the session's
    /// reference mix need, and those `dir` holds.
    pub fn look_up(session: &Session, plan: &RenderPlan, dir: &Path, files: &[[u8; 32]]) -> Result<ProofCache> {
        let (probe, note) = stem_probe(session, plan, step_frames_at(plan.sample_rate));
        let mix = match (&session.reference_mix, &note) {
            (Some(mix), None) => Some(super::key::stem_file_sha256(dir, mix)?),
            _ => None,
        };
        let keys = ProofKeys::new(plan, step_frames_at(plan.sample_rate), files, mix.as_ref());
        let found = Found::look_up(dir, &keys);
        Ok(ProofCache { keys, found, probe: Some(probe), note })
    }

    /// The probe for a capture pass that reads every stem, when a record is missing.
    pub fn probe(&mut self) -> Option<StemProbe> {
        if self.found.complete(&self.keys) { None } else { self.probe.take() }
    }

    /// The measures: read back when every record was found, else `measured` by the capture pass,
    /// else measured now by reading the stem files (and the mix) once more; the measured kept.
    pub fn finish(
        mut self,
        dir: &Path,
        session: &Session,
        plan: &RenderPlan,
        measured: Option<StemMeasures>,
    ) -> Result<ProofMeasures> {
        let reference_note = self.note.take();
        if self.found.complete(&self.keys) {
            let stems = self.found.stems.into_iter().map(|m| m.expect("complete")).collect();
            let measures = StemMeasures { stems, mix: self.found.null };
            return Ok(ProofMeasures { measures, reference_note, action: "reused" });
        }
        let (measures, action) = match measured {
            Some(m) => (m, "measured as the stems were computed"),
            None => {
                let probe = self.probe.take().ok_or_else(|| Error::Internal("proof probe used twice".into()))?;
                let readers = crate::pipeline::passes::open_readers(session, plan)?;
                let mut source = FileStemSource::start_probed(readers, plan.block, plan.frames, false, probe);
                let m = source.measures()?.ok_or_else(|| Error::Internal("the proof probe measured nothing".into()))?;
                (m, "measured: the stem files read once more (the cache had no proof data for them)")
            }
        };
        store_all(dir, &self.keys, &measures.stems, measures.mix.as_ref());
        Ok(ProofMeasures { measures, reference_note, action })
    }
}
