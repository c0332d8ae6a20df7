//! Errors of the core crate: one line each, naming what failed and where.

use formats::GgmlType;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("cannot allocate {bytes} bytes for buffer `{name}` on {device}")]
    Alloc {
        name: String,
        bytes: u64,
        device: String,
    },
    #[error("buffer `{name}` holds {have} bytes but the operation needs {need}")]
    BufferTooSmall { name: String, have: u64, need: u64 },
    #[error("weight `{name}`: {reason}")]
    Weight { name: String, reason: String },
    #[error("{op}: element type {ty} is not supported by the {backend} backend")]
    Unsupported {
        op: &'static str,
        ty: GgmlType,
        backend: &'static str,
    },
    #[error("KV cache: {0}")]
    Kv(String),
    #[error("{0}")]
    Kernel(String),
    #[error("{0}")]
    Shape(String),
    /// An operation this backend does not implement yet (new model families land on the CPU
    /// first).
    #[error("{op} is not implemented on the {backend} backend yet")]
    NotImplemented { op: &'static str, backend: String },
}
