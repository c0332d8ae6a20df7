//! The element-wise and row-wise ops of the forward pass, over caller-provided slices.
//!
//! Every op takes the [`Cpu`](crate::Cpu) so it can split large inputs over the pool (small
//! inputs, as in decode, run on the calling thread: a dispatch costs more than the work) and
//! honor the kernel path (the AVX2 and AVX-512 paths share the AVX2 code here: these ops are
//! memory-bound or transcendental-bound and gain nothing from 512-bit registers).

pub(crate) mod activation;
pub(crate) mod convert;
pub(crate) mod elementwise;
pub(crate) mod get_rows;
pub(crate) mod norm;
pub(crate) mod rope;
#[cfg(target_arch = "x86_64")]
mod simd_math;
pub(crate) mod softmax;

use crate::context::Cpu;

/// Below this many elements an op runs on the calling thread only.
const PARALLEL_MIN: usize = 16 * 1024;

/// Calls `f(first_row, rows)` on contiguous runs of whole rows of `data` (`row_len` each),
/// split over the pool when `data` is large enough to pay for the dispatch.
pub(crate) fn for_row_runs<F>(cpu: &Cpu, data: &mut [f32], row_len: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    if data.is_empty() || row_len == 0 {
        return;
    }
    if data.len() < PARALLEL_MIN || data.len() == row_len || cpu.n_threads() == 1 {
        f(0, data);
    } else {
        cpu.pool().run_chunks(data, row_len, f);
    }
}
