//! The one error type of the library; `main` maps each kind to an exit code (DESIGN.md "Exit codes").
use std::path::{Path, PathBuf};

/// Everything that can stop a command. Library code returns these; only `main` decides the exit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input file or session content: exit 2. `path` is the file at fault.
    #[error("{}: {msg}", path.display())]
    Input {
        path: PathBuf,
        msg: String,
        /// The error underneath (an I/O or a decoder error), already quoted at the end of `msg`.
        #[source]
        source: Option<Cause>,
    },
    /// Bad command-line usage or option value: exit 2.
    #[error("{0}")]
    Usage(String),
    /// An output could not be written (unwritable folder, existing file without --force): exit 2.
    #[error("{}: {msg}", path.display())]
    Output {
        path: PathBuf,
        msg: String,
        /// The error underneath, already quoted at the end of `msg`.
        #[source]
        source: Option<Cause>,
    },
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

/// An error from below (the file system, a decoder) kept as an `Error`'s source.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    pub fn input(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Input { path: path.as_ref().to_path_buf(), msg: msg.into(), source: None }
    }
    /// An input error caused by `cause`: the message is "`what`: `cause`", and `cause` stays
    /// reachable through `std::error::Error::source`.
    pub fn input_from(
        path: impl AsRef<Path>,
        what: impl std::fmt::Display,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::input(path, format!("{what}: {cause}")).with_source(cause)
    }
    pub fn output(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Output { path: path.as_ref().to_path_buf(), msg: msg.into(), source: None }
    }
    /// This input or output error with `cause` kept as its source, the message as it is.
    pub fn with_source(self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        match self {
            Error::Input { path, msg, .. } => Error::Input { path, msg, source: Some(Box::new(cause)) },
            Error::Output { path, msg, .. } => Error::Output { path, msg, source: Some(Box::new(cause)) },
            other => other,
        }
    }
    /// An output error caused by `cause`, as `input_from`.
    pub fn output_from(
        path: impl AsRef<Path>,
        what: impl std::fmt::Display,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::output(path, format!("{what}: {cause}")).with_source(cause)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_error_keeps_its_cause() {
        let missing = Path::new("/nonexistent/stemforge/x.wav");
        let e = crate::io::open(missing).err().expect("a missing file is an error");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "/nonexistent/stemforge/x.wav: no such file");
        let cause = std::error::Error::source(&e).and_then(|c| c.downcast_ref::<std::io::Error>());
        assert_eq!(cause.map(|c| c.kind()), Some(std::io::ErrorKind::NotFound), "{e:?}");
        // An error made without a cause has none.
        assert!(std::error::Error::source(&Error::input(missing, "bad")).is_none());
    }
}
