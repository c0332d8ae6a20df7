//! Launches of the matmul kernels (kernels/matmul.cu): the warp-per-row matvec for decode and
//! small batches, the shared-memory tiled kernel for prefill.

use turbine_core::CoreError;

use crate::buffer::{weight_kernel_suffix, CudaBuffer, CudaWeight};
use crate::compile;
use crate::device::{Arg, Device};

/// Rows up to which the matvec kernel runs (its register accumulators).
pub const MATVEC_MAX_ROWS: usize = 8;
const MATVEC_WARPS: usize = 4;
/// Threads of the sub-block matvec's block (one output row per block).
const MATVEC32_THREADS: u32 = 128;
/// Largest grid x dimension of a launch.
const MAX_GRID_X: usize = (1 << 31) - 1;
const TILE: usize = 64;

/// `out[r][o] = Σ_i w[o][i] · x[r][i]` for `rows` rows.
pub fn matmul(
    dev: &Device,
    w: &CudaWeight,
    x: &CudaBuffer,
    rows: usize,
    out: &mut CudaBuffer,
) -> Result<(), CoreError> {
    let (k, n_out) = (w.row_len, w.n_rows);
    let xp = x.f32_ptr(rows * k)?;
    let op = out.f32_ptr(rows * n_out)?;
    let suffix = weight_kernel_suffix(w.ty).ok_or(CoreError::Unsupported {
        op: "matmul",
        ty: w.ty,
        backend: "CUDA",
    })?;
    if rows == 0 || n_out == 0 {
        return Ok(());
    }
    if k > i32::MAX as usize || n_out > i32::MAX as usize || rows > i32::MAX as usize {
        return Err(CoreError::Shape(format!(
            "matmul {}: shape too large for 32-bit indices",
            w.name
        )));
    }
    let args = [
        Arg::Ptr(w.ptr()),
        Arg::Ptr(xp),
        Arg::Ptr(op),
        Arg::I32(k as i32),
        Arg::I32(n_out as i32),
        Arg::I32(rows as i32),
        Arg::I64(w.row_bytes as i64),
    ];
    if rows <= MATVEC_MAX_ROWS {
        // Rows made of whole 32-value sub-blocks take the sub-block kernel (a block per output
        // row, wide loads, one decode per 8 values); other lengths (f32/f16 rows of odd
        // sizes) the per-element one (a warp per output row).
        if k.is_multiple_of(32) {
            let r = match rows {
                1 => 1,
                2 => 2,
                3 | 4 => 4,
                _ => 8,
            };
            let f = dev.function(&compile::MATMUL, &[], &format!("matvec32_r{r}_{suffix}"))?;
            if n_out > MAX_GRID_X {
                return Err(CoreError::Shape(format!(
                    "matmul {}: {n_out} output rows exceed one launch",
                    w.name
                )));
            }
            return dev.launch(
                "matmul (matvec)",
                &f,
                (n_out as u32, 1, 1),
                MATVEC32_THREADS,
                0,
                &args,
            );
        }
        let f = dev.function(&compile::MATMUL, &[], &format!("matvec_{suffix}"))?;
        let grid = n_out.div_ceil(MATVEC_WARPS) as u32;
        dev.launch(
            "matmul (matvec)",
            &f,
            (grid, 1, 1),
            (32 * MATVEC_WARPS) as u32,
            0,
            &args,
        )
    } else {
        let f = dev.function(&compile::MATMUL, &[], &format!("matmul_{suffix}"))?;
        let grid = (n_out.div_ceil(TILE) as u32, rows.div_ceil(TILE) as u32, 1);
        if grid.1 > 65535 {
            return Err(CoreError::Shape(format!(
                "matmul {}: {rows} rows exceed one launch",
                w.name
            )));
        }
        dev.launch("matmul (tiled)", &f, grid, 256, 0, &args)
    }
}
