//! The library's error type: every failure says what was expected, what was found and where.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in xlt, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O failure on a named file. The OS error is part of the message
    /// and deliberately not exposed as a `source`, so a printed error chain names it once.
    #[error("{path}: {}", io_message(.err))]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A file exists but its content is not what was expected.
    #[error("{path}: {msg}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What was expected and what was found.
        msg: String,
    },
    /// A model configuration xlt cannot run.
    #[error("{path}: unsupported model configuration: {msg}")]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// What is unsupported.
        msg: String,
    },
    /// Weights that do not match the configuration.
    #[error("{path}: checkpoint does not match the model: {msg}")]
    Checkpoint {
        /// The checkpoint file or folder.
        path: PathBuf,
        /// Missing, unexpected or mis-shaped tensors, by name.
        msg: String,
    },
    /// A tokenizer failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Invalid arguments or shapes supplied by the caller.
    #[error("{0}")]
    Invalid(String),
    /// A CUDA driver, cuBLAS or NVRTC failure, or no usable GPU.
    #[error("CUDA: {0}")]
    Cuda(String),
    /// The GPU ran out of memory.
    #[error("GPU out of memory allocating {what} ({:.2} GiB)", *bytes as f64 / (1u64 << 30) as f64)]
    OutOfMemory {
        /// What was being allocated, with the batch shape when one applies and what to lower.
        what: String,
        /// Bytes asked for (0 when unknown).
        bytes: usize,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), err }
    }
    /// A format error on `path`.
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }
}

/// An I/O error as one plain phrase: "No such file or directory", without std's
/// " (os error 2)" suffix.
pub fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text.strip_suffix(&format!(" (os error {code})")).map(str::to_string).unwrap_or(text),
        None => text,
    }
}

/// A TOML parse error as one line: `line L, column C: message`, the message's own lines
/// joined with "; " (the `toml` crate prints a multi-line snippet of the file instead).
pub fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {msg}")
        }
        None => msg,
    }
}
