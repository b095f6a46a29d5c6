//! The one error type of the library; `main` maps each kind to an exit code (DESIGN.md "Exit codes").
use std::path::{Path, PathBuf};

/// Everything that can stop a command. Library code returns these; only `main` decides the exit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input file or session content: exit 2. `path` is the file at fault.
    #[error("{}: {msg}", path.display())]
    Input { path: PathBuf, msg: String },
    /// Bad command-line usage or option value: exit 2.
    #[error("{0}")]
    Usage(String),
    /// An output could not be written (unwritable folder, existing file without --force): exit 2.
    #[error("{}: {msg}", path.display())]
    Output { path: PathBuf, msg: String },
    /// A quality check failed (check finding, compare over tolerance, loudness/peak spec missed): exit 1.
    #[error("{0}")]
    Quality(String),
    /// The GPU engine was requested and no adapter exists: exit 3.
    #[error("{0}")]
    NoGpu(String),
    /// The GPU failed while running (device lost, out of memory, shader error): a bug or a broken driver.
    #[error("GPU engine: {0}")]
    Gpu(String),
    /// A broken invariant inside stemforge: a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn input(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Input { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }
    pub fn output(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Output { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }

    /// DESIGN.md: 0 success, 1 quality check failed, 2 invalid input or usage, 3 no GPU adapter,
    /// anything else a bug.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Quality(_) => 1,
            Error::Input { .. } | Error::Usage(_) | Error::Output { .. } => 2,
            Error::NoGpu(_) => 3,
            Error::Gpu(_) | Error::Internal(_) => 70,
        }
    }
}
