//! Launches of the qwen3.5 output gates (kernels/gated.cu): the per-head query/gate split and
//! `x · sigmoid(gate)`.

use turbine_core::CoreError;

use crate::buffer::CudaBuffer;
use crate::compile;
use crate::device::{Arg, Device};

const THREADS: u32 = 256;

fn grid(n: usize) -> (u32, u32, u32) {
    (n.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32, 1, 1)
}

/// `qg` rows of `n_head × [q | gate]` (each `head_dim`) into `q` and `gate`.
pub fn split_q_gate(
    dev: &Device,
    qg: &CudaBuffer,
    rows: usize,
    n_head: usize,
    head_dim: usize,
    q: &mut CudaBuffer,
    gate: &mut CudaBuffer,
) -> Result<(), CoreError> {
    let n = rows * n_head * head_dim;
    let src = qg.f32_ptr(2 * n)?;
    let qp = q.f32_ptr(n)?;
    let gp = gate.f32_ptr(n)?;
    if n == 0 {
        return Ok(());
    }
    let hd = i32::try_from(head_dim)
        .map_err(|_| CoreError::Shape(format!("split_q_gate: head size {head_dim}")))?;
    let f = dev.function(&compile::GATED, &[], "split_q_gate")?;
    dev.launch(
        "split_q_gate",
        &f,
        grid(n),
        THREADS,
        0,
        &[
            Arg::Ptr(src),
            Arg::Ptr(qp),
            Arg::Ptr(gp),
            Arg::I64(n as i64),
            Arg::I32(hd),
        ],
    )
}

/// `x[r][i] *= sigmoid(gate[r][i])`, or `sigmoid(gate[r][0])` when `gate_width == 1`.
pub fn sigmoid_mul(
    dev: &Device,
    x: &mut CudaBuffer,
    gate: &CudaBuffer,
    rows: usize,
    width: usize,
    gate_width: usize,
) -> Result<(), CoreError> {
    if width == 0 || (gate_width != width && gate_width != 1) || width > i32::MAX as usize {
        return Err(CoreError::Shape(format!(
            "sigmoid_mul: gate width {gate_width} for rows of {width}"
        )));
    }
    let n = rows * width;
    let xp = x.f32_ptr(n)?;
    let gp = gate.f32_ptr(rows * gate_width)?;
    if n == 0 {
        return Ok(());
    }
    let f = dev.function(&compile::GATED, &[], "sigmoid_mul")?;
    dev.launch(
        "sigmoid_mul",
        &f,
        grid(n),
        THREADS,
        0,
        &[
            Arg::Ptr(xp),
            Arg::Ptr(gp),
            Arg::I64(n as i64),
            Arg::I32(width as i32),
            Arg::I32(gate_width as i32),
        ],
    )
}
