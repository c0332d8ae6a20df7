//! turbine's CUDA backend: the [`turbine_core::Backend`] trait on one NVIDIA GPU.
//!
//! - Kernels live in `kernels/*.cu`, one file per op family, and are compiled by NVRTC for the
//!   device's architecture on first use, then cached on disk by source hash
//!   ([`compile`]). Building turbine needs no CUDA toolkit; `libcuda` and `libnvrtc` are
//!   opened at run time, and [`probe`] says why CUDA is unusable where it is.
//! - One stream per backend (per model); every CUDA call is checked and its error names the
//!   operation.
//! - Products of more than 8 rows (prefill) run on tensor cores through cuBLAS with f16
//!   operands dequantized into planned scratch ([`gemm`]); the tiled kernel serves where
//!   cuBLAS is missing.
//! - Weights stay in their GGUF encoding: the matvec (decode) and tiled matmul (prefill)
//!   kernels dequantize q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K, iq4_nl, f16, bf16 and f32
//!   blocks as they read them.
//! - The KV cache is stored packed in all twelve cache types, written bit-exactly like the
//!   `formats` reference quantizers (TurboQuant included), and attention reads it packed
//!   ([`kv`], kernels/attention.cu).
//!
//! Memory outside the plan ("runtime"): the CUDA context, loaded kernels, and a 64 KiB staging
//! buffer for host-side token ids and positions.

mod attention;
mod backend;
mod buffer;
pub mod compile;
mod delta_net;
mod device;
mod gated;
mod gemm;
pub mod kv;
mod matmul;
mod moe;
mod profile;

pub use attention::workspace_bytes as attention_workspace_bytes;
pub use attention::TC_MIN_ROWS as ATTENTION_TC_MIN_ROWS;
pub use backend::{CudaBackend, CudaConfig, STAGING_U32};
pub use buffer::{CudaBuffer, CudaWeight, WEIGHT_TYPES};
pub use device::probe;
pub use gemm::chunk_rows as gemm_chunk_rows;
pub use kv::CudaKvCache;
pub use matmul::MATVEC_MAX_ROWS;
pub use moe::VEC_MAX_ROWS as MOE_VEC_MAX_ROWS;
