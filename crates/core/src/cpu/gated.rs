//! Output gates of the qwen3.5 family: the per-head query/gate split of the gated attention
//! projection and `x · sigmoid(gate)` (attention output gate, shared-expert gate).

use crate::error::CoreError;

/// `qg` rows of `n_head × [q | gate]` (each `head_dim`) into `q` and `gate`.
pub fn split_q_gate(qg: &[f32], head_dim: usize, q: &mut [f32], gate: &mut [f32]) {
    for ((src, qd), gd) in qg
        .chunks_exact(2 * head_dim)
        .zip(q.chunks_exact_mut(head_dim))
        .zip(gate.chunks_exact_mut(head_dim))
    {
        qd.copy_from_slice(&src[..head_dim]);
        gd.copy_from_slice(&src[head_dim..]);
    }
}

/// `x[r][i] *= sigmoid(gate[r][i])`, or `sigmoid(gate[r][0])` when `gate_width == 1`.
pub fn sigmoid_mul(
    x: &mut [f32],
    gate: &[f32],
    width: usize,
    gate_width: usize,
) -> Result<(), CoreError> {
    if width == 0 || (gate_width != width && gate_width != 1) {
        return Err(CoreError::Shape(format!(
            "sigmoid_mul: gate width {gate_width} for rows of {width}"
        )));
    }
    let sig = |g: f32| 1.0 / (1.0 + (-g).exp());
    for (row, g) in x.chunks_exact_mut(width).zip(gate.chunks_exact(gate_width)) {
        if gate_width == 1 {
            let s = sig(g[0]);
            row.iter_mut().for_each(|v| *v *= s);
        } else {
            row.iter_mut().zip(g).for_each(|(v, &gv)| *v *= sig(gv));
        }
    }
    Ok(())
}
