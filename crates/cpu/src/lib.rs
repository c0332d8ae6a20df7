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
mod dequant;
mod dot;
mod error;
mod matmul;
mod path;
mod pool;

pub use act_quant::{companion_type, quantize_row};
pub use context::{Cpu, CpuConfig};
pub use dequant::{dequantize_row, SUPPORTED_TYPES};
pub use error::CpuError;
pub use matmul::{matmul, matmul_scratch_bytes, WeightView, MATMUL_TYPES};
pub use path::KernelPath;
pub use pool::{split_range, ColumnPart, ThreadPool};
