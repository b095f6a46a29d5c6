//! What a batch session's render was made from: the session file, every input file (size, mtime,
//! SHA-256 of the bytes as read), the stemforge version and the flags that change the output.
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::Filter;
use crate::pipeline::render::EngineChoice;
use crate::session::Session;

/// One file as it was read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    pub path: std::path::PathBuf,
    pub bytes: u64,
    /// Modification time, seconds and nanoseconds since the Unix epoch.
    pub mtime_s: i64,
    pub mtime_ns: u32,
    pub sha256: String,
}

/// The flags of a render that change its output bytes (`--progress`, `--spill` and the report's
/// place do not: the spill's replay is the same samples to the bit).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flags {
    pub engine: EngineChoice,
    pub adapter: Option<String>,
    pub block: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub stemforge: String,
    pub session: FileStamp,
    /// Every file the render reads: each stem (muted ones too) and each `fir` file, in session order.
    pub inputs: Vec<FileStamp>,
    pub flags: Flags,
}

/// Read every input once, hashing it; no audio is decoded.
pub fn fingerprint(session: &Session, flags: Flags) -> Result<Fingerprint> {
    let mut inputs = Vec::new();
    for stem in &session.stems {
        inputs.push(stamp(&stem.path)?);
        if let Filter::File(fir) = &stem.filter {
            inputs.push(stamp(fir)?);
        }
    }
    if let Filter::File(fir) = &session.bus_filter {
        inputs.push(stamp(fir)?);
    }
    Ok(Fingerprint { stemforge: env!("CARGO_PKG_VERSION").to_string(), session: stamp(&session.file)?, inputs, flags })
}

/// Size and mtime from the open file, and the hash of exactly the bytes read from it.
pub fn stamp(path: &Path) -> Result<FileStamp> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::input_from(path, "cannot open", e))?;
    let meta = f.metadata().map_err(|e| Error::input_from(path, "cannot stat", e))?;
    let mtime = meta.modified().map_err(|e| Error::input_from(path, "no modification time", e))?;
    let (mtime_s, mtime_ns) = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => (-(e.duration().as_secs() as i64), e.duration().subsec_nanos()),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::input_from(path, "cannot read", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(FileStamp { path: path.to_path_buf(), bytes, mtime_s, mtime_ns, sha256 })
}
