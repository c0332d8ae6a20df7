//! CPU compute kernels for turbine's forward pass.
//!
//! # Set-up
//!
//! Build one [`Cpu`] at start-up from a [`CpuConfig`]: `n_threads` (`-t`, the calling thread
//! included) and an optional forced [`KernelPath`] (`Scalar`, `Avx2`, `Avx512`; `None` picks
//! the best the CPU has, detected once with `is_x86_feature_detected!`). It owns the
//! persistent [`ThreadPool`]. Every op takes `&Cpu`, works on caller-provided slices and
//! allocates nothing per call (the only lazily built data is GELU's 128 KiB f16 table, once
//! per process). Errors ([`CpuError`]) are one line naming the op and the bad argument.
//!
//! # Matmul
//!
//! [`matmul`]`(cpu, &WeightView { ty, bytes, rows, cols }, x, n_tok, out, scratch)` computes
//! `out[t][r] = Σ_c x[t][c] · W[r][c]` (`x`: `n_tok × cols`, `out`: `n_tok × rows`, both
//! row-major f32; `W` exactly as stored in GGUF, no alignment needed). Weight types:
//! [`MATMUL_TYPES`] (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl, q2_K … q6_K).
//! Activations are first converted to the weight's companion format ([`companion_type`]:
//! q8_0 for q4_0/q5_0/q8_0/iq4_nl, q8_1 for q4_1/q5_1, q8_K for the K-quants, f16 for f16,
//! none for f32/bf16) in `scratch`, which must hold at least
//! [`matmul_scratch_bytes`]`(ty, cols, n_tok)` bytes (the memory planner's formula).
//! Rounding of that conversion matches ggml's x86 build (see [`quantize_row`]).
//!
//! # Other ops
//!
//! - norms: [`rms_norm`], [`rms_norm_inplace`], [`layer_norm_inplace`] (f64 sums as ggml)
//! - RoPE: [`rope_inplace`] with [`RopeParams`] ([`RopeMode::Normal`] / [`RopeMode::Neox`],
//!   partial `n_rot`, `freq_base`, `freq_scale`, YaRN, per-pair frequency factors)
//! - activations: [`silu_inplace`], [`gelu_inplace`] (ggml's tanh GELU via its f16 table),
//!   fused [`swiglu_inplace`] / [`geglu_inplace`] (`gate ← act(gate) · up`)
//! - [`softmax_inplace`] (rows, with scale; all-`-inf` rows become 0)
//! - [`add`], [`add_inplace`], [`mul_inplace`] (with row broadcast), [`scale_inplace`]
//! - [`get_rows`] (embedding lookup from any type `formats::dequantize` reads)
//! - [`f32_to_f16`], [`f16_to_f32`], [`f32_to_bf16`], [`bf16_to_f32`]
//!
//! # Threads
//!
//! [`ThreadPool::run`]`(|thread_idx, n_threads| …)` runs a borrowing closure on every thread
//! and returns when all are done (idle workers spin ~100 µs, yielding now and then, then
//! park). Matmul and the element-wise ops split their work into pieces the threads claim
//! ([`ThreadPool::run_dynamic`]): a worker that has no core when a job starts (a loaded
//! machine) is not waited for, so more threads than free cores degrade towards one
//! thread's speed instead of stalling. Large element-wise inputs are split over the pool;
//! decode-sized ones stay on the calling thread.
//!
//! # Batch invariance
//!
//! A token's (row's) results never depend on which other rows share the call or on how the
//! pool splits the work: every kernel computes each row with the same operations in the same
//! order (tested bit for bit), so a server can batch clients without changing their outputs.
//!
//! # Testing
//!
//! Every SIMD kernel is tested against the scalar path on random data (all row lengths that
//! matter, 1–7 tokens, 1 and 3 threads), the scalar path against an f64 reference built from
//! `formats::dequantize`, and the activation quantizers against `formats::quantize`
//! (ggml's reference quantizers). AVX-512 tests run only where the CPU has AVX-512 F+BW.

mod act_quant;
mod blocks;
mod context;
mod dot;
mod error;
mod matmul;
mod ops;
mod path;
mod pool;

pub use act_quant::{companion_type, quantize_row};
pub use context::{Cpu, CpuConfig};
pub use error::CpuError;
pub use matmul::{matmul, matmul_scratch_bytes, WeightView, MATMUL_TYPES};
pub use ops::activation::{
    geglu_inplace, gelu_inplace, gelu_tanh_f32, silu_inplace, swiglu_inplace,
};
pub use ops::convert::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub use ops::elementwise::{add, add_inplace, mul_inplace, scale_inplace};
pub use ops::get_rows::get_rows;
pub use ops::norm::{layer_norm_inplace, rms_norm, rms_norm_inplace};
pub use ops::rope::{rope_inplace, RopeMode, RopeParams, MAX_ROPE_DIMS};
pub use ops::softmax::softmax_inplace;
pub use path::KernelPath;
pub use pool::{split_range, ColumnPart, ThreadPool};
