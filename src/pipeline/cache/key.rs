//! A stem cache entry's key: SHA-256 of everything that shapes the stem's processed stream, and of
//! nothing that comes after it (gain, routing, mutes of other stems, the bus chain, the master).
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::engine::{RenderPlan, StemPlan};
use crate::error::{Error, Result};

/// SHA-256 of a stem file's bytes, through the cache folder's record of it (`StatRecord`): a
/// file whose size, times, inode and device are those recorded when it was last hashed is not
/// read again (as git trusts its index); any other is hashed, and recorded when that is safe.
pub fn stem_file_sha256(dir: &Path, path: &Path) -> Result<[u8; 32]> {
    let Some(now) = StatRecord::of(path) else { return file_sha256(path) };
    let record = StatRecord::path(dir, path);
    if let Some(old) = std::fs::read(&record).ok().and_then(|b| serde_json::from_slice::<StatRecord>(&b).ok())
        && old.same_file(&now)
        && let Some(sha) = old.sha256()
    {
        return Ok(sha);
    }
    let sha = file_sha256(path)?;
    // Recorded only when the file did not change while it was read and its last change is old
    // enough that a write landing in the same timestamp tick after this read is ruled out.
    if StatRecord::of(path).is_some_and(|after| after.same_file(&now) && after.settled()) {
        super::write_record(dir, &record, &StatRecord { sha256: super::entry::hex(&sha), ..now });
    }
    Ok(sha)
}

/// What a stem file was when it was hashed (`<SHA-256 of its canonical path>.stat` in the cache
/// folder, a few hundred bytes, evicted like an entry). A write to the file changes its ctime,
/// which no user tool sets back; the record is only kept for files last changed `SETTLED` before
/// it was made, so a change within one timestamp tick of the hashing cannot go unseen.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct StatRecord {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
    device: u64,
    sha256: String,
}

/// How long ago a file's last change must be for its record to be kept.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);
pub const STAT_EXTENSION: &str = "stat";

impl StatRecord {
    #[cfg(unix)]
    fn of(path: &Path) -> Option<StatRecord> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        Some(StatRecord {
            len: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            inode: m.ino(),
            device: m.dev(),
            sha256: String::new(),
        })
    }

    /// Elsewhere every stem file is hashed in full each time.
    #[cfg(not(unix))]
    fn of(_: &Path) -> Option<StatRecord> {
        None
    }

    fn path(dir: &Path, file: &Path) -> std::path::PathBuf {
        let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let name: [u8; 32] = Sha256::digest(file.to_string_lossy().as_bytes()).into();
        dir.join(format!("{}.{STAT_EXTENSION}", super::entry::hex(&name)))
    }

    fn same_file(&self, other: &StatRecord) -> bool {
        (self.len, self.mtime_ns, self.ctime_ns, self.inode, self.device)
            == (other.len, other.mtime_ns, other.ctime_ns, other.inode, other.device)
    }

    fn settled(&self) -> bool {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
        now - self.mtime_ns.max(self.ctime_ns) > SETTLED.as_nanos() as i128
    }

    fn sha256(&self) -> Option<[u8; 32]> {
        let bytes: Vec<u8> = (0..self.sha256.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(self.sha256.get(i..i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        bytes.try_into().ok()
    }
}

/// SHA-256 of a file's bytes: a changed file (even at the same size and time) is a new key.
pub fn file_sha256(path: &Path) -> Result<[u8; 32]> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// The key of `plan.stems[i]` in a render whose stems share a lag of `lag_blocks` blocks, as its
/// parts (`Parts::key` hashes them together; `Parts::changed` says which differ from another's).
///
/// What it covers, and why each:
/// - the format version and the stemforge version (a decoder or a stage that changed);
/// - the host's byte order (entries hold native f32) and the FIR arithmetic of the engine that
///   computes it (`EngineInfo::fir_precision`: a GPU without f64 gives other bits);
/// - the stem file's content, its channel count, the sample rate;
/// - the FIR as designed (every tap's bits, and its latency): that is the EQ bands, taps, phase
///   or FIR file content, and in a linked plan the bus EQ folded into it;
/// - the process chain's parameters, and for a keyed compressor (ducking) the key stem's own key;
/// - the block size and the stems' lag: the stream is the engine's output block by block, after
///   the pre-delay `lag_blocks · B − latency` that aligns it (`engine::Lag`), so a render whose
///   stems align otherwise (a longer EQ on another stem) computes other blocks.
///
/// Not covered, since the engines apply them after the chain (`cpu::gain_sum` after step 2b):
/// the gain, the routing, the programme length (an entry of more blocks serves a shorter need).
/// A chain stage that is level-dependent therefore sees the same signal whatever the gain.
pub fn stem_key(
    plan: &RenderPlan,
    i: usize,
    file: &[u8; 32],
    lag_blocks: usize,
    fir_precision: &str,
    keys: &[Option<[u8; 32]>],
) -> Parts {
    let s: &StemPlan = &plan.stems[i];
    let digest = |f: &dyn Fn(&mut Sha256)| {
        let mut h = Sha256::new();
        f(&mut h);
        super::entry::hex(&h.finalize())
    };
    let setup = format!(
        "stemforge stem cache format {}; stemforge {}; endian {}; fir arithmetic {fir_precision}; \
         channels {}; rate {}; block {}; lag {lag_blocks}; latency {}",
        super::entry::FORMAT_VERSION,
        env!("CARGO_PKG_VERSION"),
        if cfg!(target_endian = "little") { "le" } else { "be" },
        s.channels,
        plan.sample_rate,
        plan.block,
        s.latency(plan.sample_rate)
    );
    let fir = digest(&|h| match &s.fir {
        None => h.update(b"none"),
        Some(f) => {
            h.update(format!("latency {}; channels {}\n", f.latency, f.taps.len()).as_bytes());
            for taps in &f.taps {
                h.update(format!("taps {}\n", taps.len()).as_bytes());
                h.update(bytemuck::cast_slice::<f32, u8>(taps));
            }
        }
    });
    let chain = serde_json::to_string(&s.process).unwrap_or_else(|e| format!("unserialisable: {e}"));
    let key_stems: Vec<String> = s
        .key_stems(&plan.stems)
        .into_iter()
        .map(|k| format!("{}={}", plan.stems[k].name, keys[k].map_or_else(|| "?".into(), |k| super::entry::hex(&k))))
        .collect();
    Parts {
        setup: digest(&|h| h.update(setup.as_bytes())),
        file: super::entry::hex(file),
        fir,
        process: digest(&|h| h.update(chain.as_bytes())),
        key_stems: digest(&|h| h.update(key_stems.join(";").as_bytes())),
    }
}

/// What a key is made of, each part hashed (hex), kept beside the entries per stem (`super::Slot`)
/// so that a recompute can say what changed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Parts {
    pub setup: String,
    pub file: String,
    pub fir: String,
    pub process: String,
    pub key_stems: String,
}

impl Parts {
    pub fn key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in [&self.setup, &self.file, &self.fir, &self.process, &self.key_stems] {
            h.update(p.as_bytes());
            h.update(b"\n");
        }
        h.finalize().into()
    }

    /// What differs from `before`, in words.
    pub fn changed(&self, before: &Parts) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.file != before.file {
            out.push("the stem file changed");
        }
        if self.fir != before.fir {
            out.push("its EQ changed (bands, taps, phase, FIR file, or a bus EQ folded into it)");
        }
        if self.process != before.process {
            out.push("its process chain changed");
        }
        if self.key_stems != before.key_stems {
            out.push("a stem keying its compressor changed");
        }
        if self.setup != before.setup {
            out.push("the sample rate, block, stems' alignment, engine arithmetic or stemforge version changed");
        }
        out
    }
}
