//! CPU compute kernels for turbine's forward pass.
//!
//! Start-up: build one [`Cpu`] from a [`CpuConfig`] (thread count `-t`, optional kernel-path
//! override); it owns the persistent [`ThreadPool`] and the [`KernelPath`] every op uses.
//! All ops work on caller-provided slices; nothing here allocates per call.
//!
//! (The op list is documented on the functions re-exported below.)

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
