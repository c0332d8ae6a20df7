//! Row softmax `x ← softmax(scale · x)`, numerically safe (max subtracted first); the sum is
//! accumulated in f64 as ggml does.

use super::for_row_runs;
use crate::context::Cpu;
use crate::error::CpuError;

/// Softmax of every row of `row_len` values of `x`, after multiplying by `scale`. Rows that
/// are all `-inf` become all zero.
pub fn softmax_inplace(
    cpu: &Cpu,
    x: &mut [f32],
    row_len: usize,
    scale: f32,
) -> Result<(), CpuError> {
    if row_len == 0 || !x.len().is_multiple_of(row_len) {
        return Err(CpuError::NotMultiple {
            op: "softmax",
            what: "input length",
            value: x.len(),
            multiple: row_len,
        });
    }
    let simd = cpu.simd.avx2();
    for_row_runs(cpu, x, row_len, |_, run| {
        for row in run.chunks_exact_mut(row_len) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
            if max == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            let sum = match simd {
                #[cfg(target_arch = "x86_64")]
                Some(t) => avx2::exp_shifted(t, row, scale, max),
                _ => {
                    let mut sum = 0f64;
                    for v in row.iter_mut() {
                        *v = (*v * scale - max).exp();
                        sum += *v as f64;
                    }
                    sum
                }
            };
            let inv = (1.0 / sum) as f32;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    });
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::ops::simd_math::exp256;
    use crate::path::Avx2;

    /// `x ← e^(scale·x - max)`; returns the sum (f64).
    pub(super) fn exp_shifted(t: Avx2, x: &mut [f32], scale: f32, max: f32) -> f64 {
        let _ = t;
        // SAFETY: the token proves AVX2/FMA.
        unsafe { exp_shifted_impl(x, scale, max) }
    }

    /// # Safety
    /// AVX2/FMA supported.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp_shifted_impl(x: &mut [f32], scale: f32, max: f32) -> f64 {
        let n8 = x.len() / 8 * 8;
        let (vs, vm) = (_mm256_set1_ps(scale), _mm256_set1_ps(max));
        let mut acc = _mm256_setzero_pd();
        let p = x.as_mut_ptr();
        for i in (0..n8).step_by(8) {
            // SAFETY: i + 8 <= x.len().
            unsafe {
                let e = exp256(_mm256_sub_ps(
                    _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vs),
                    vm,
                ));
                _mm256_storeu_ps(p.add(i), e);
                acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
                acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
            }
        }
        let mut lanes = [0f64; 4];
        // SAFETY: `lanes` has room for 4 f64.
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), acc) };
        let mut sum: f64 = lanes.iter().sum();
        for v in &mut x[n8..] {
            *v = (*v * scale - max).exp();
            sum += *v as f64;
        }
        sum
    }
}
