use std::path::{Path, PathBuf};

/// Every failure names what was wrong and, where there is one, the file or tensor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{path}: cannot load tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("tokenization failed: {0}")]
    Encode(String),
    #[error("model computation failed: {0}")]
    Compute(String),
    /// The caller cancelled the call (`Cancel::cancel`) before it finished.
    #[error("the operation was cancelled")]
    Cancelled,
    /// The call would run more tokens than its budget allows; nothing was computed.
    #[error("{0}")]
    TooLarge(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
    pub(crate) fn config(path: &Path, message: impl Into<String>) -> Self {
        Error::Config { path: path.to_path_buf(), message: message.into() }
    }
    pub(crate) fn weights(path: &Path, message: impl Into<String>) -> Self {
        Error::Weights { path: path.to_path_buf(), message: message.into() }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Compute(e.to_string())
    }
}
