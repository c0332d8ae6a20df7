//! Element types and block layouts: every ggml block format turbine reads, the TurboQuant KV
//! formats of `TURBO-KV.md`, reference (scalar) quantizers and dequantizers, and the
//! Walsh–Hadamard rotation.

pub mod types;

pub use types::{GgmlType, ALL_TYPES, QK_K};
