//! The library's error type: every failure says what was expected, what was found and where.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in xlt, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
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
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }
    /// A format error on `path`.
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }
}
