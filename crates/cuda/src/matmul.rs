//! Launches of the matmul kernels (kernels/matmul.cu): the warp-per-row matvec for decode and
//! small batches, the shared-memory tiled kernel for prefill.

use formats::GgmlType;
use turbine_core::{CoreError, GluActivation};

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
/// Warps per block of the q4_K multi-row matvec.
const MV4K_WARPS: usize = 4;

const Q4K_THREADS: u32 = (32 * MV4K_WARPS) as u32;

/// Whether a product runs on the multi-row q4_K decode kernels (one input row).
fn q4k_decode(w: &CudaWeight, rows: usize) -> bool {
    rows == 1
        && w.ty == GgmlType::Q4K
        && w.row_len.is_multiple_of(256)
        && w.row_len <= i32::MAX as usize
        && w.n_rows <= i32::MAX as usize / 2
}

/// Output rows per warp of the q4_K decode kernel: as many as keep ≥ ~2048 warps in flight
/// (a warp's rows share its input loads), fewer for small matrices so every SM has work.
fn q4k_rows_per_warp(n_out: usize) -> usize {
    if n_out >= 8192 {
        4
    } else if n_out >= 4096 {
        2
    } else {
        1
    }
}

fn q4k_blocks(n_out: usize, rpw: usize) -> u32 {
    n_out.div_ceil(MV4K_WARPS * rpw) as u32
}

/// `outs[i] = ws[i] · x` for one input row in a single launch, when all three are q4_K of one
/// row length; `Ok(false)` (nothing run) otherwise.
pub fn matvec3(
    dev: &Device,
    ws: [&CudaWeight; 3],
    x: &CudaBuffer,
    rows: usize,
    outs: [u64; 3],
) -> Result<bool, CoreError> {
    let k = ws[0].row_len;
    if !ws
        .iter()
        .all(|w| q4k_decode(w, rows) && w.row_len == k && w.row_bytes == ws[0].row_bytes)
    {
        return Ok(false);
    }
    let xp = x.f32_ptr(k)?;
    let total: usize = ws.iter().map(|w| w.n_rows).sum();
    let rpw = q4k_rows_per_warp(total);
    let blocks = ws.map(|w| q4k_blocks(w.n_rows, rpw));
    let f = dev.function(&compile::MATMUL, &[], &format!("matvec3_q4k_w{rpw}"))?;
    let args = [
        Arg::Ptr(ws[0].ptr()),
        Arg::Ptr(outs[0]),
        Arg::I32(ws[0].n_rows as i32),
        Arg::I32(blocks[0] as i32),
        Arg::Ptr(ws[1].ptr()),
        Arg::Ptr(outs[1]),
        Arg::I32(ws[1].n_rows as i32),
        Arg::I32(blocks[1] as i32),
        Arg::Ptr(ws[2].ptr()),
        Arg::Ptr(outs[2]),
        Arg::I32(ws[2].n_rows as i32),
        Arg::Ptr(xp),
        Arg::I32(k as i32),
        Arg::I64(ws[0].row_bytes as i64),
    ];
    let grid = blocks.iter().sum::<u32>();
    dev.launch("matmul (matvec)", &f, (grid, 1, 1), Q4K_THREADS, 0, &args)?;
    Ok(true)
}

/// `out = act(gate · x) ⊙ (up · x)` for one input row in a single launch, when both are q4_K of
/// one shape; `Ok(false)` (nothing run) otherwise.
pub fn matvec_glu(
    dev: &Device,
    gate: &CudaWeight,
    up: &CudaWeight,
    x: &CudaBuffer,
    rows: usize,
    act: GluActivation,
    out: &mut CudaBuffer,
) -> Result<bool, CoreError> {
    if !(q4k_decode(gate, rows)
        && q4k_decode(up, rows)
        && gate.row_len == up.row_len
        && gate.n_rows == up.n_rows)
    {
        return Ok(false);
    }
    let (k, n_out) = (gate.row_len, gate.n_rows);
    let xp = x.f32_ptr(k)?;
    let op = out.f32_ptr(n_out)?;
    let rpw = q4k_rows_per_warp(2 * n_out).min(2);
    let name = match act {
        GluActivation::Silu => "silu",
        GluActivation::GeluTanh => "gelu_tanh",
    };
    let f = dev.function(
        &compile::MATMUL,
        &[],
        &format!("matvec_glu_{name}_q4k_w{rpw}"),
    )?;
    let args = [
        Arg::Ptr(gate.ptr()),
        Arg::Ptr(up.ptr()),
        Arg::Ptr(xp),
        Arg::Ptr(op),
        Arg::I32(k as i32),
        Arg::I32(n_out as i32),
        Arg::I64(gate.row_bytes as i64),
    ];
    let grid = q4k_blocks(n_out, rpw);
    dev.launch(
        "matmul (matvec glu)",
        &f,
        (grid, 1, 1),
        Q4K_THREADS,
        0,
        &args,
    )?;
    Ok(true)
}

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
        let r = match rows {
            1 => 1,
            2 => 2,
            3 | 4 => 4,
            _ => 8,
        };
        if q4k_decode(w, rows) {
            let rpw = q4k_rows_per_warp(n_out);
            let f = dev.function(&compile::MATMUL, &[], &format!("matvec_q4k_w{rpw}"))?;
            let args = [
                Arg::Ptr(w.ptr()),
                Arg::Ptr(xp),
                Arg::Ptr(op),
                Arg::I32(k as i32),
                Arg::I32(n_out as i32),
                Arg::I64(w.row_bytes as i64),
            ];
            let grid = q4k_blocks(n_out, rpw);
            return dev.launch("matmul (matvec)", &f, (grid, 1, 1), Q4K_THREADS, 0, &args);
        }
        // Rows made of whole 32-value sub-blocks take the sub-block kernel (a block per output
        // row, wide loads, one decode per 8 values); other lengths (f32/f16 rows of odd
        // sizes) the per-element one (a warp per output row).
        if k.is_multiple_of(32) {
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
