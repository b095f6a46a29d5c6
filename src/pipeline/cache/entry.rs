//! One stem cache entry on disk: a 128-byte header (magic, format version, channels, block,
//! blocks, key, XXH3-128 checksum of the rest, the trailer's length), the stem's processed stream
//! as f32 blocks, then a trailer: what its chain's stages did (JSON, empty for a stem without a
//! chain). Written under a temporary name and renamed, verified in full before any use, replayed
//! block by block.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::engine::{StageReduction, StemSource};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"SFSTEMC\0";
/// Bumped whenever the header, the payload layout or what a stream holds changes: an entry of
/// another version is recomputed (it is also part of every key, `key::FORMAT_VERSION`).
/// 2: the payload checksum is XXH3-128 (was SHA-256): a checksum against damage, read at memory
/// speed; what an entry stands for is its key, which stays SHA-256.
/// 3: the trailer of stage figures (`StoredStages`), in the checksum.
pub const FORMAT_VERSION: u32 = 3;
pub const HEADER_BYTES: u64 = 128;
/// The file name of an entry: its key in hex and this extension (eviction counts only these and
/// the temporary names below).
pub const EXTENSION: &str = "sfstem";
pub const TEMP_PREFIX: &str = ".sfstem-";

/// What the stem's chain did when the entry was stored: its stages' gain reduction (one per stage,
/// in chain order) over n blocks, for each n from `first` to the entry's blocks: a render whose
/// `engine::stem_stages_at` is n reports `reductions[n - first]` (`engine::RecordedStages`, whose
/// stage names the key fixes), the figures an uncached render would.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredStages {
    pub first: u64,
    pub reductions: Vec<Vec<Option<StageReduction>>>,
}

/// Bytes of an entry of `blocks` blocks of `channels` × `block` f32, less its trailer.
pub fn entry_bytes(channels: usize, block: usize, blocks: u64) -> u64 {
    HEADER_BYTES + blocks * (channels * block * 4) as u64
}

/// The most bytes a trailer of `stages` stages' figures over `lengths` lengths takes (each
/// figure's JSON is at most about 90 bytes), so that eviction makes room before the entry is
/// written.
pub fn trailer_bound(stages: usize, lengths: u64) -> u64 {
    if stages == 0 { 0 } else { 64 + lengths * (4 + stages as u64 * 100) }
}

pub fn entry_path(dir: &Path, key: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.{EXTENSION}", hex(key)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an entry must be to stand for a stem's stream in this render.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub key: [u8; 32],
    pub channels: usize,
    pub block: usize,
    /// Blocks this render will read (it may hold more).
    pub blocks: u64,
    /// Stages in the stem's chain: its trailer holds that many figures per length.
    pub stages: usize,
    /// The length this render reports its stems' stages over (`engine::stem_stages_at`: its
    /// programme's blocks plus the stems' lag): the trailer must have figures from there on.
    pub first: u64,
}

/// Why a stored entry was not used (the report's `reason`); None from `open_verified` means there
/// was none.
#[derive(Debug, Clone, PartialEq)]
pub enum Unusable {
    /// Shorter than its header says: a render killed mid-copy, or a disk that filled.
    Truncated {
        have: u64,
        want: u64,
    },
    /// The payload does not hash to the header's checksum: a flipped bit.
    Corrupt,
    /// Not an entry of this format, or its header does not match its key and shape.
    BadHeader(String),
    /// Holds fewer blocks than this render reads (its bus or limiter latency grew).
    Short {
        have: u64,
        want: u64,
    },
    /// Its stage figures begin at more blocks than this render reports its stems' stages over (the
    /// programme, set by the longest stem, got shorter).
    Stages {
        have: u64,
        want: u64,
    },
    Unreadable(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Truncated { have, want } => write!(f, "truncated: {have} bytes of {want}"),
            Unusable::Corrupt => write!(f, "corrupt: the payload does not match its checksum"),
            Unusable::BadHeader(why) => write!(f, "stale or foreign header: {why}"),
            Unusable::Short { have, want } => {
                write!(f, "stale: holds {have} blocks, this render's bus and limiter latency need {want}")
            }
            Unusable::Stages { have, want } => write!(
                f,
                "stale: its stage figures begin at {have} blocks, this render reports over {want} (a shorter programme)"
            ),
            Unusable::Unreadable(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// A verified entry, open for replay.
pub struct Verified {
    pub file: File,
    pub channels: usize,
    pub block: usize,
    pub blocks: u64,
    pub bytes: u64,
    /// None for a stem without a chain.
    pub stages: Option<StoredStages>,
}

/// The entry at `path` checked against `want` in full (header, length, payload checksum) before
/// any use; Ok(None) when there is no entry. A used entry's modification time is set to now: that
/// is its last use for the least-recently-used eviction (the cache's `evict`).
pub fn open_verified(path: &Path, want: &Expect) -> std::result::Result<Option<Verified>, Unusable> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Unusable::Unreadable(e.to_string())),
    };
    let len = file.metadata().map_err(|e| Unusable::Unreadable(e.to_string()))?.len();
    let mut header = [0u8; HEADER_BYTES as usize];
    if len < HEADER_BYTES {
        return Err(Unusable::Truncated { have: len, want: HEADER_BYTES });
    }
    file.read_exact(&mut header).map_err(|e| Unusable::Unreadable(e.to_string()))?;
    let u32_at = |o: usize| u32::from_le_bytes(header[o..o + 4].try_into().expect("4 bytes"));
    if &header[..8] != MAGIC {
        return Err(Unusable::BadHeader("not a stemforge stem cache entry".into()));
    }
    if u32_at(8) != FORMAT_VERSION {
        return Err(Unusable::BadHeader(format!("format version {} (this stemforge: {FORMAT_VERSION})", u32_at(8))));
    }
    if header[32..64] != want.key {
        return Err(Unusable::BadHeader("its key is not its name's".into()));
    }
    let (channels, block) = (u32_at(12) as usize, u32_at(16) as usize);
    if channels != want.channels || block != want.block {
        return Err(Unusable::BadHeader(format!(
            "{channels} channels of {block}-frame blocks, expected {} of {}",
            want.channels, want.block
        )));
    }
    let blocks = u64::from_le_bytes(header[24..32].try_into().expect("8 bytes"));
    let trailer = u64::from_le_bytes(header[96..104].try_into().expect("8 bytes"));
    let payload = entry_bytes(channels, block, blocks);
    let full = payload.saturating_add(trailer);
    if len != full {
        return Err(Unusable::Truncated { have: len, want: full });
    }
    if blocks < want.blocks {
        return Err(Unusable::Short { have: blocks, want: want.blocks });
    }
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Unusable::Unreadable(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if checksum_field(&hasher) != header[64..96] {
        return Err(Unusable::Corrupt);
    }
    let stages = read_stages(&mut file, payload, trailer, blocks, want)?;
    // Best effort: an entry on a read-only cache is still used, only its age is not refreshed.
    let _ = file.set_modified(std::time::SystemTime::now());
    Ok(Some(Verified { file, channels, block, blocks, bytes: len, stages }))
}

/// The trailer of `len` bytes at `at` of an entry of `blocks` blocks, checked to hold `want.stages`
/// figures for each length from at most `want.first` to `blocks`.
fn read_stages(
    file: &mut File,
    at: u64,
    len: u64,
    blocks: u64,
    want: &Expect,
) -> std::result::Result<Option<StoredStages>, Unusable> {
    let stages = want.stages;
    if stages == 0 && len == 0 {
        return Ok(None);
    }
    let mut bytes = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(at))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| Unusable::Unreadable(e.to_string()))?;
    let stored: StoredStages = serde_json::from_slice(&bytes)
        .map_err(|e| Unusable::BadHeader(format!("its stage figures do not read: {e}")))?;
    if stored.reductions.is_empty() || stored.reductions.iter().any(|r| r.len() != stages) {
        return Err(Unusable::BadHeader(format!("its stage figures are not of {stages} stage(s)")));
    }
    let last = stored.first + stored.reductions.len() as u64 - 1;
    if last != blocks {
        return Err(Unusable::BadHeader(format!(
            "stage figures for {} to {last} blocks in an entry of {blocks}",
            stored.first
        )));
    }
    if stored.first > want.first {
        return Err(Unusable::Stages { have: stored.first, want: want.first });
    }
    Ok(Some(stored))
}

/// The header's 32-byte checksum field: the payload's XXH3-128, little-endian, then zeros.
fn checksum_field(hasher: &Xxh3) -> [u8; 32] {
    let mut field = [0u8; 32];
    field[..16].copy_from_slice(&hasher.digest128().to_le_bytes());
    field
}

/// Where a new entry goes: a temporary name in the cache folder, renamed to its final name when
/// complete (an entry too big for the cache never gets a name: an unlinked file in the spill
/// folder, used by this render only).
enum Target {
    Named(tempfile::NamedTempFile, PathBuf),
    Unlinked(File),
}

/// Writes one entry while the capture pass streams, hashing as it goes; the
/// header is written last, so a killed render leaves only a temporary file that eviction sweeps.
pub struct EntryWriter {
    target: Target,
    key: [u8; 32],
    channels: usize,
    block: usize,
    blocks: u64,
    hasher: Xxh3,
    error: Option<String>,
}

impl EntryWriter {
    /// A named entry in `dir` (when `keep`), else an unlinked one in `scratch`.
    pub fn create(
        dir: &Path,
        scratch: &Path,
        keep: bool,
        key: [u8; 32],
        channels: usize,
        block: usize,
    ) -> std::io::Result<EntryWriter> {
        let mut target = if keep {
            let tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir)?;
            Target::Named(tmp, entry_path(dir, &key))
        } else {
            Target::Unlinked(tempfile::tempfile_in(scratch)?)
        };
        target.file().write_all(&[0u8; HEADER_BYTES as usize])?;
        Ok(EntryWriter { target, key, channels, block, blocks: 0, hasher: Xxh3::new(), error: None })
    }

    /// Appends one block: `planes[..channels]`, each `block` long.
    pub fn write_block(&mut self, planes: &[Vec<f32>]) {
        if self.error.is_some() {
            return;
        }
        for p in &planes[..self.channels] {
            let bytes: &[u8] = bytemuck::cast_slice(&p[..self.block]);
            self.hasher.update(bytes);
            if let Err(e) = self.target.file().write_all(bytes) {
                self.error = Some(e.to_string());
                return;
            }
        }
        self.blocks += 1;
    }

    /// The trailer (`stages`, none for a stem without a chain) and the header written, the entry
    /// renamed to its final name (when named), and opened for replay; else why not (a full disk).
    pub fn finish(mut self, stages: Option<StoredStages>) -> std::result::Result<(Verified, bool), String> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let io = |e: std::io::Error| e.to_string();
        let trailer = match &stages {
            Some(s) => serde_json::to_vec(s).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        self.hasher.update(&trailer);
        self.target.file().write_all(&trailer).map_err(io)?;
        let mut header = [0u8; HEADER_BYTES as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(self.channels as u32).to_le_bytes());
        header[16..20].copy_from_slice(&(self.block as u32).to_le_bytes());
        header[24..32].copy_from_slice(&self.blocks.to_le_bytes());
        header[32..64].copy_from_slice(&self.key);
        header[64..96].copy_from_slice(&checksum_field(&self.hasher));
        header[96..104].copy_from_slice(&(trailer.len() as u64).to_le_bytes());
        let bytes = entry_bytes(self.channels, self.block, self.blocks) + trailer.len() as u64;
        let f = self.target.file();
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(&header).map_err(io)?;
        f.flush().map_err(io)?;
        let (file, named) = match self.target {
            Target::Named(tmp, path) => {
                // The rename is atomic: a reader sees the old entry, no entry, or this one whole.
                // Two renders storing the same key write the same bytes; the last rename wins.
                let file = tmp.persist(&path).map_err(|e| e.error.to_string())?;
                (file, true)
            }
            Target::Unlinked(file) => (file, false),
        };
        Ok((Verified { file, channels: self.channels, block: self.block, blocks: self.blocks, bytes, stages }, named))
    }
}

impl Target {
    fn file(&mut self) -> &mut File {
        match self {
            Target::Named(t, _) => t.as_file_mut(),
            Target::Unlinked(f) => f,
        }
    }
}

/// The replay of verified entries as a pass's stems (plan order): block t of each is its stream
/// at the render's block t, handed over as `StemSource` blocks; `blocks` blocks, then the end.
pub struct EntrySource {
    files: Vec<File>,
    blocks: u64,
    next: u64,
    buf: Vec<u8>,
}

impl EntrySource {
    pub fn new(entries: &[&Verified], blocks: u64) -> Result<EntrySource> {
        let files = entries
            .iter()
            .map(|e| {
                // A duplicate handle shares the offset: the passes replay one after another.
                let mut f = e.file.try_clone()?;
                f.seek(SeekFrom::Start(HEADER_BYTES))?;
                Ok(f)
            })
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::Internal(format!("replaying the stem cache: {e}")))?;
        Ok(EntrySource { files, blocks, next: 0, buf: Vec::new() })
    }
}

impl StemSource for EntrySource {
    fn next_block(&mut self, out: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        if self.next >= self.blocks {
            return Ok(0);
        }
        for (file, stem) in self.files.iter_mut().zip(out.iter_mut()) {
            for c in stem.iter_mut() {
                self.buf.resize(c.len() * 4, 0);
                file.read_exact(&mut self.buf)
                    .map_err(|e| Error::Internal(format!("replaying the stem cache: {e}")))?;
                // f32 in the byte order they were written in (`key` puts it in every key).
                for (x, b) in c.iter_mut().zip(self.buf.chunks_exact(4)) {
                    *x = f32::from_ne_bytes(b.try_into().expect("4 bytes"));
                }
            }
        }
        self.next += 1;
        Ok(out.first().and_then(|s| s.first()).map_or(0, Vec::len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_trailer_fits_its_bound() {
        let worst = StageReduction { max_db: -f64::MAX, mean_db: -f64::MIN_POSITIVE };
        for (stages, lengths) in [(1, 1), (3, 7), (8, 40)] {
            let st = StoredStages { first: u64::MAX, reductions: vec![vec![Some(worst); stages]; lengths] };
            let len = serde_json::to_vec(&st).unwrap().len() as u64;
            assert!(len <= trailer_bound(stages, lengths as u64), "{len} bytes for {stages} x {lengths}");
            assert!(len * 2 > trailer_bound(stages, lengths as u64), "a loose bound: {len}");
        }
        assert_eq!(trailer_bound(0, 5), 0);
    }
}
