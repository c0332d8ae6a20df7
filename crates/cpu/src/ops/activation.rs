//! Activations: SiLU, GELU (tanh approximation, as ggml computes it) and the fused gated forms
//! SwiGLU (`silu(gate) * up`) and GeGLU (`gelu(gate) * up`).
//!
//! GELU matches ggml's CPU numerics: for `-10 < x < 10` ggml rounds `x` to f16, looks up
//! `f16(gelu(x))` in a 64 Ki-entry table and widens it back; below -10 it returns 0, above 10
//! `x` itself. We build the same table (128 KiB, once per process, on first use).

use std::sync::OnceLock;

use super::for_row_runs;
use crate::context::Cpu;
use crate::error::{check_len, CpuError};

const GELU_COEF_A: f32 = 0.044715;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// The tanh-approximation GELU in f32, with ggml's order of operations.
pub fn gelu_tanh_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

fn gelu_table() -> &'static [u16] {
    static TABLE: OnceLock<Box<[u16]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = half::f16::from_bits(bits).to_f32();
                half::f16::from_f32(gelu_tanh_f32(x)).to_bits()
            })
            .collect()
    })
}

#[inline(always)]
fn gelu_lookup(table: &[u16], x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let bits = half::f16::from_f32(x).to_bits();
        half::f16::from_bits(table[bits as usize]).to_f32()
    }
}

/// `x / (1 + e^-x)` with libm's `exp` (the scalar reference).
#[inline(always)]
fn silu_scalar(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `x ← gelu(x)` element-wise.
pub fn gelu_inplace(cpu: &Cpu, x: &mut [f32]) {
    let table = gelu_table();
    for_row_runs(cpu, x, 1, |_, run| {
        for v in run {
            *v = gelu_lookup(table, *v);
        }
    });
}

/// `x ← silu(x)` element-wise.
pub fn silu_inplace(cpu: &Cpu, x: &mut [f32]) {
    let simd = cpu.simd.avx2();
    for_row_runs(cpu, x, 1, |_, run| match simd {
        #[cfg(target_arch = "x86_64")]
        Some(t) => avx2::silu_mul(t, run, None),
        _ => run.iter_mut().for_each(|v| *v = silu_scalar(*v)),
    });
}

/// `gate ← silu(gate) * up` (SwiGLU), element-wise over equal-length slices.
pub fn swiglu_inplace(cpu: &Cpu, gate: &mut [f32], up: &[f32]) -> Result<(), CpuError> {
    check_len("swiglu", "up length", up.len(), gate.len())?;
    let simd = cpu.simd.avx2();
    for_row_runs(cpu, gate, 1, |first, run| {
        let up = &up[first..first + run.len()];
        match simd {
            #[cfg(target_arch = "x86_64")]
            Some(t) => avx2::silu_mul(t, run, Some(up)),
            _ => {
                for (g, &u) in run.iter_mut().zip(up) {
                    *g = silu_scalar(*g) * u;
                }
            }
        }
    });
    Ok(())
}

/// `gate ← gelu(gate) * up` (GeGLU, tanh GELU), element-wise over equal-length slices.
pub fn geglu_inplace(cpu: &Cpu, gate: &mut [f32], up: &[f32]) -> Result<(), CpuError> {
    check_len("geglu", "up length", up.len(), gate.len())?;
    let table = gelu_table();
    for_row_runs(cpu, gate, 1, |first, run| {
        for (g, &u) in run.iter_mut().zip(&up[first..]) {
            *g = gelu_lookup(table, *g) * u;
        }
    });
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::ops::simd_math::exp256;
    use crate::path::Avx2;

    /// `x ← silu(x)`, times `up` when given (same length as `x`).
    pub(super) fn silu_mul(t: Avx2, x: &mut [f32], up: Option<&[f32]>) {
        let _ = t;
        if let Some(u) = up {
            assert_eq!(u.len(), x.len());
        }
        // SAFETY: the token proves AVX2/FMA; lengths checked above.
        unsafe { silu_mul_impl(x, up) }
    }

    /// # Safety
    /// AVX2/FMA supported; `up`, if given, as long as `x`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn silu_mul_impl(x: &mut [f32], up: Option<&[f32]>) {
        let n8 = x.len() / 8 * 8;
        let p = x.as_mut_ptr();
        for i in (0..n8).step_by(8) {
            // SAFETY: i + 8 <= x.len() (and up.len()).
            unsafe {
                let u = up.map(|u| _mm256_loadu_ps(u.as_ptr().add(i)));
                _mm256_storeu_ps(p.add(i), silu8(_mm256_loadu_ps(p.add(i)), u));
            }
        }
        // The last 1–7 values through the same vector code (padded), not a scalar `exp`:
        // every value must come out the same wherever the pool's split puts it, so a row's
        // result does not depend on how many rows share the call (batch invariance).
        let rest = x.len() - n8;
        if rest > 0 {
            let mut xv = [0f32; 8];
            let mut uv = [0f32; 8];
            xv[..rest].copy_from_slice(&x[n8..]);
            if let Some(u) = up {
                uv[..rest].copy_from_slice(&u[n8..]);
            }
            // SAFETY: 8-value stack arrays.
            unsafe {
                let u = up.map(|_| _mm256_loadu_ps(uv.as_ptr()));
                _mm256_storeu_ps(xv.as_mut_ptr(), silu8(_mm256_loadu_ps(xv.as_ptr()), u));
            }
            x[n8..].copy_from_slice(&xv[..rest]);
        }
    }

    /// `silu(v)`, times `u` when given.
    ///
    /// # Safety
    /// AVX2/FMA enabled in the caller.
    #[inline(always)]
    unsafe fn silu8(v: __m256, u: Option<__m256>) -> __m256 {
        // SAFETY: per the function contract.
        unsafe {
            let e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), v));
            let s = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0), e));
            match u {
                Some(u) => _mm256_mul_ps(s, u),
                None => s,
            }
        }
    }
}
