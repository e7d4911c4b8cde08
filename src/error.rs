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
    /// A setting the caller must change: a flag or configuration value out of range or in
    /// conflict with another (the message names the flag).
    #[error("{0}")]
    Setting(String),
    /// Input data that is well formed but cannot be used as asked: a split without labels or
    /// examples, a task without the split, an example the task cannot take.
    #[error("{0}")]
    Data(String),
    /// A name that is not known: a task, head, language, round, selection or preset.
    #[error("{0}")]
    Unknown(String),
    /// The library called in a way it does not allow: outputs read before a forward pass,
    /// an inference-only model trained, buffers or views of the wrong size or type.
    #[error("{0}")]
    Usage(String),
    /// A run folder that does not fit the request: a checkpoint there without `--resume`, an
    /// incomplete checkpoint, a checkpoint or finished run made with other settings, a folder
    /// that is not writable or too full.
    #[error("{0}")]
    RunFolder(String),
    /// Training produced a NaN or an infinity (the message names the step, the task, the batch
    /// and the first non-finite value found).
    #[error("{0}")]
    Diverged(String),
    /// A size that cannot fit in the available memory, refused before allocating.
    #[error("{0}")]
    TooLarge(String),
    /// A value that could not be encoded (JSON, TOML, safetensors) for writing.
    #[error("encoding {what}: {msg}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The encoder's message.
        msg: String,
    },
    /// A CUDA driver call failed. The driver's error is kept (and shown once, not as a source).
    #[error("CUDA: {what}: {}", crate::cuda::device::driver_msg(.err))]
    Driver {
        /// What was being done.
        what: String,
        /// The driver's error.
        err: cudarc::driver::DriverError,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS: {what}: {err:?}")]
    Cublas {
        /// What was being done.
        what: String,
        /// cuBLAS's status.
        err: cudarc::cublas::result::CublasError,
    },
    /// No usable GPU, or a CUDA condition that is not a driver or cuBLAS status (NVRTC, a
    /// missing kernel, an unsupported device).
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
    /// Another error with what was being done when it happened; [`Error::root`] is the error
    /// itself, whose variant says what to act on.
    #[error("{what}: {err}")]
    Context {
        /// What was being done.
        what: String,
        /// The error.
        err: Box<Error>,
    },
}

impl From<cudarc::driver::DriverError> for Error {
    fn from(err: cudarc::driver::DriverError) -> Self {
        crate::cuda::device::cuda_err("a CUDA driver call", &err)
    }
}

impl From<cudarc::cublas::result::CublasError> for Error {
    fn from(err: cudarc::cublas::result::CublasError) -> Self {
        Error::Cublas { what: "a cuBLAS call".into(), err }
    }
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
    /// An encoding failure of `what`.
    pub fn encode(what: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Encode { what: what.into(), msg: msg.to_string() }
    }
    /// This error with `what` was being done in front; the variant stays reachable through
    /// [`Error::root`].
    pub fn context(self, what: impl Into<String>) -> Self {
        Error::Context { what: what.into(), err: Box::new(self) }
    }
    /// The error under any [`Error::Context`] layers: the one whose variant says what happened.
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { err, .. } => err.root(),
            e => e,
        }
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
