//! The one error type of this crate: every variant names what was wrong and where, in one line.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KvError {
    /// The cache geometry cannot be built (zero sizes, head size the type cannot hold, ...).
    #[error("invalid KV cache configuration: {0}")]
    Config(String),

    /// `-ctk`/`-ctv` named a type the KV cache does not store.
    #[error("unsupported KV cache type '{0}' (supported: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, turbo2, turbo3, turbo4)")]
    UnsupportedType(String),

    /// The page pool cannot hold what a sequence asked for.
    #[error("KV cache full: sequence {seq} needs {needed} more page(s) of {page_size} tokens to hold {tokens} tokens, but only {free} of {total} pages are free")]
    OutOfPages {
        seq: usize,
        tokens: usize,
        needed: usize,
        free: usize,
        total: usize,
        page_size: usize,
    },

    #[error("sequence id {seq} out of range: the cache was built for {max_seqs} sequences")]
    BadSequence { seq: usize, max_seqs: usize },

    #[error("layer {layer} out of range: the cache has {n_layers} layers")]
    BadLayer { layer: usize, n_layers: usize },

    #[error("layer {layer} has no KV cache (it was configured as uncached)")]
    UncachedLayer { layer: usize },

    /// A write or read at a position the sequence has not reserved.
    #[error("layer {layer}, sequence {seq}: position {pos} is beyond the {reserved} reserved positions (call reserve first)")]
    NotReserved {
        layer: usize,
        seq: usize,
        pos: usize,
        reserved: usize,
    },

    /// A write that would leave a hole before it in this layer.
    #[error("layer {layer}, sequence {seq}: write at position {pos} leaves a gap (positions below {written} are written)")]
    WriteGap {
        layer: usize,
        seq: usize,
        pos: usize,
        written: usize,
    },

    /// Attention for a query whose keys (positions up to its own) are not all written yet.
    #[error("layer {layer}, sequence {seq}: query at position {pos} needs keys up to it, but only {written} positions are written in this layer")]
    KeysMissing {
        layer: usize,
        seq: usize,
        pos: usize,
        written: usize,
    },

    /// A sliding-ring layer no longer holds a position that a write or query needs.
    #[error("layer {layer}, sequence {seq}: position {pos} was evicted from the sliding-window ring (positions below {floor} are gone; write at most max_batch positions between attention calls)")]
    Evicted {
        layer: usize,
        seq: usize,
        pos: usize,
        floor: usize,
    },

    /// A buffer argument has the wrong length.
    #[error("{what}: expected {expected} values, got {got}")]
    BadLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },

    /// Query heads are not a whole multiple of the cached KV heads, or similar shape errors.
    #[error("attention shape: {0}")]
    Shape(String),

    /// The caller's workspace is smaller than `attention_workspace_bytes` asks for.
    #[error("attention workspace too small: need {needed} f32 values for {workers} worker(s), got {got}")]
    Workspace {
        needed: usize,
        got: usize,
        workers: usize,
    },

    /// A reference quantizer of the `formats` crate refused a row.
    #[error("quantizing a {ty} row: {msg}")]
    Quantize { ty: &'static str, msg: String },
}

pub type Result<T> = std::result::Result<T, KvError>;
