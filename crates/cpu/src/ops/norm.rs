//! Row normalizations: RMS norm and layer norm, optionally times a weight (and plus a bias).
//!
//! As in ggml, sums are accumulated in f64 and the scale `1 / sqrt(mean + eps)` is formed in
//! f32; the weight multiply is a separate f32 product (ggml does it as a following `mul` op).

use super::for_row_runs;
use crate::context::Cpu;
use crate::error::{check_len, CpuError};

fn check_rows(
    op: &'static str,
    len: usize,
    dim: usize,
    weight: Option<&[f32]>,
) -> Result<(), CpuError> {
    if dim == 0 || !len.is_multiple_of(dim) {
        return Err(CpuError::NotMultiple {
            op,
            what: "input length",
            value: len,
            multiple: dim,
        });
    }
    if let Some(w) = weight {
        check_len(op, "weight length", w.len(), dim)?;
    }
    Ok(())
}

fn rms_row(x: &mut [f32], weight: Option<&[f32]>, eps: f32) {
    let sum: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    match weight {
        Some(w) => x
            .iter_mut()
            .zip(w)
            .for_each(|(v, &w)| *v = (*v * scale) * w),
        None => x.iter_mut().for_each(|v| *v *= scale),
    }
}

/// Each row of `dim` values of `x`: `x ← x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm_inplace(
    cpu: &Cpu,
    x: &mut [f32],
    dim: usize,
    weight: Option<&[f32]>,
    eps: f32,
) -> Result<(), CpuError> {
    check_rows("rms_norm", x.len(), dim, weight)?;
    for_row_runs(cpu, x, dim, |_, run| {
        run.chunks_exact_mut(dim)
            .for_each(|row| rms_row(row, weight, eps));
    });
    Ok(())
}

/// Out-of-place [`rms_norm_inplace`]: `out ← rms_norm(x)`.
pub fn rms_norm(
    cpu: &Cpu,
    x: &[f32],
    dim: usize,
    weight: Option<&[f32]>,
    eps: f32,
    out: &mut [f32],
) -> Result<(), CpuError> {
    check_len("rms_norm", "output length", out.len(), x.len())?;
    check_rows("rms_norm", x.len(), dim, weight)?;
    for_row_runs(cpu, out, dim, |first, run| {
        run.copy_from_slice(&x[first * dim..first * dim + run.len()]);
        run.chunks_exact_mut(dim)
            .for_each(|row| rms_row(row, weight, eps));
    });
    Ok(())
}

/// Each row: `x ← (x - mean) / sqrt(var + eps) · weight + bias` (ggml's `norm`, then `mul`,
/// `add`).
pub fn layer_norm_inplace(
    cpu: &Cpu,
    x: &mut [f32],
    dim: usize,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
) -> Result<(), CpuError> {
    check_rows("layer_norm", x.len(), dim, weight)?;
    if let Some(b) = bias {
        check_len("layer_norm", "bias length", b.len(), dim)?;
    }
    for_row_runs(cpu, x, dim, |_, run| {
        for row in run.chunks_exact_mut(dim) {
            let sum: f64 = row.iter().map(|&v| v as f64).sum();
            let mean = (sum / dim as f64) as f32;
            let mut sum2 = 0f64;
            for v in row.iter_mut() {
                *v -= mean;
                sum2 += *v as f64 * *v as f64;
            }
            let var = (sum2 / dim as f64) as f32;
            let scale = 1.0 / (var + eps).sqrt();
            for (i, v) in row.iter_mut().enumerate() {
                let mut y = *v * scale;
                if let Some(w) = weight {
                    y *= w[i];
                }
                if let Some(b) = bias {
                    y += b[i];
                }
                *v = y;
            }
        }
    });
    Ok(())
}
