//! One error type for the crate: bad input (named shape, type, vocab file) or I/O.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A bad argument or combination of arguments.
    #[error("{0}")]
    Input(String),
    #[error("vocab file {path}: {msg}")]
    Vocab { path: PathBuf, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] formats::FormatError),
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
}
