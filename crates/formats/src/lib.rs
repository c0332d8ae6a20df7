//! Element types and block layouts: every ggml block format turbine reads, the TurboQuant KV
//! formats of `TURBO-KV.md`, reference (scalar) quantizers and dequantizers, and the
//! Walsh–Hadamard rotation.
//!
//! The reference quantizers reproduce ggml's `quantize_row_*_ref` byte for byte; the
//! dequantizers reproduce ggml's `dequantize_row_*` bit for bit. They are scalar and meant as
//! the ground truth that fast kernels are tested against, and for conversions off the hot path.
//!
//! | module | types | quantize | dequantize |
//! |---|---|---|---|
//! | [`float`] | f32, f16, bf16 | yes | yes |
//! | [`simple`] | q4_0, q4_1, q5_0, q5_1, q8_0, q8_1 | yes | yes |
//! | [`kquants`] | q2_K, q3_K, q4_K, q5_K, q6_K, q8_K | yes | yes |
//! | [`iquants`] | iq4_nl, iq4_xs | iq4_nl | yes |
//! | [`mxfp4`], [`ternary`] | mxfp4, tq1_0, tq2_0 | yes | yes |
//! | [`turbo`] (+ [`rotation`]) | turbo2, turbo3, turbo4 | yes | yes |
//!
//! [`quantize`] and [`dequantize`] dispatch on [`GgmlType`] over whole blocks; the per-block
//! functions (`quantize_block_*`, `dequantize_block_*`) work on the [`blocks`] structs.

pub mod blocks;
mod convert;
pub mod error;
pub mod float;
pub mod iquants;
pub mod kquants;
pub mod mxfp4;
pub mod rotation;
pub mod simple;
pub mod ternary;
pub mod turbo;
pub mod types;

pub use convert::{can_dequantize, can_quantize, dequantize, quantize};
pub use error::{Direction, FormatError};
pub use float::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub use types::{GgmlType, ALL_TYPES, QK_K};
