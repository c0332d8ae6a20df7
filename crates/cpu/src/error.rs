//! The one error type of this crate: every message names the op and what was wrong.

use formats::GgmlType;

/// A caller-side mistake (shapes, buffer sizes, unsupported type or kernel path).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuError {
    #[error("{op}: weight type {ty} is not supported on the CPU backend")]
    UnsupportedType { op: &'static str, ty: GgmlType },
    #[error("{op}: {what} is {got}, expected {expected}")]
    BadLength {
        op: &'static str,
        what: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("{op}: {what} ({value}) must be a multiple of {multiple}")]
    NotMultiple {
        op: &'static str,
        what: &'static str,
        value: usize,
        multiple: usize,
    },
    #[error("{op}: {what}")]
    BadArgument { op: &'static str, what: String },
    #[error("kernel path {requested} is not supported by this CPU (it lacks {missing})")]
    PathUnsupported {
        requested: &'static str,
        missing: &'static str,
    },
    #[error("thread pool: could not start worker thread {index}: {reason}")]
    ThreadSpawn { index: usize, reason: String },
}

/// Returns `Err(BadLength)` unless `got == expected`.
pub(crate) fn check_len(
    op: &'static str,
    what: &'static str,
    got: usize,
    expected: usize,
) -> Result<(), CpuError> {
    if got == expected {
        Ok(())
    } else {
        Err(CpuError::BadLength {
            op,
            what,
            got,
            expected,
        })
    }
}
