//! Stand-in matmul: dequantize each weight block with the reference dequantizer and dot it
//! with f32 activations. Correct for every type `formats` decodes; the SIMD kernels of the
//! `cpu` crate replace it for speed.

use rayon::prelude::*;

use super::weight::CpuWeight;
use crate::error::CoreError;

/// Largest block (the K-quant super-block).
const MAX_BLOCK: usize = 256;
/// Input rows handled together per dequantized block.
const ROW_TILE: usize = 32;

struct OutPtr(*mut f32);
// SAFETY: every task writes a disjoint set of output columns.
unsafe impl Sync for OutPtr {}
unsafe impl Send for OutPtr {}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums let the compiler vectorize without reassociation flags.
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for i in chunks * 8..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// `out[r][o] = Σ_i w[o][i] · x[r][i]`, `x` rows of `w.row_len`, `out` rows of `w.n_rows`.
pub fn matmul(
    pool: &rayon::ThreadPool,
    w: &CpuWeight,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
) -> Result<(), CoreError> {
    let k = w.row_len;
    let n_out = w.n_rows;
    let bs = w.ty.block_size();
    let bb = w.ty.block_bytes();
    if bs > MAX_BLOCK || !formats::can_dequantize(w.ty) {
        return Err(CoreError::Unsupported {
            op: "matmul",
            ty: w.ty,
            backend: "CPU",
        });
    }
    if x.len() < rows * k || out.len() < rows * n_out {
        return Err(CoreError::Shape(format!(
            "matmul {}: {rows} rows need {} inputs and {} outputs, buffers hold {} and {}",
            w.name,
            rows * k,
            rows * n_out,
            x.len(),
            out.len()
        )));
    }
    let n_blocks = k / bs;
    let out_ptr = OutPtr(out.as_mut_ptr());
    let n_tasks = (pool.current_num_threads() * 8).min(n_out).max(1);
    let per_task = n_out.div_ceil(n_tasks);
    let result: Result<(), CoreError> = pool.install(|| {
        (0..n_tasks).into_par_iter().try_for_each(|t| {
            let out_ptr = &out_ptr;
            let o_end = ((t + 1) * per_task).min(n_out);
            let mut tmp = [0.0f32; MAX_BLOCK];
            for o in t * per_task..o_end {
                let row = w.row(o);
                for r0 in (0..rows).step_by(ROW_TILE) {
                    let r1 = (r0 + ROW_TILE).min(rows);
                    let mut acc = [0.0f32; ROW_TILE];
                    for b in 0..n_blocks {
                        formats::dequantize(w.ty, &row[b * bb..(b + 1) * bb], &mut tmp[..bs])
                            .map_err(|e| CoreError::Weight {
                                name: w.name.clone(),
                                reason: e.to_string(),
                            })?;
                        for r in r0..r1 {
                            let xs = &x[r * k + b * bs..r * k + (b + 1) * bs];
                            acc[r - r0] += dot(&tmp[..bs], xs);
                        }
                    }
                    for r in r0..r1 {
                        // SAFETY: column `o` belongs to this task only; `r * n_out + o` is in
                        // bounds (checked above).
                        unsafe { *out_ptr.0.add(r * n_out + o) = acc[r - r0] };
                    }
                }
            }
            Ok(())
        })
    });
    result
}
