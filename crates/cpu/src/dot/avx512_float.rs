//! AVX-512 dot products for float weights (f32, bf16 against f32 activations; f16 against
//! f16), 32 values per step; see `avx2_float.rs` for the scheme.

use std::arch::x86_64::*;

use super::{checked_blocks, simd_kernel};
use crate::path::Avx512;

#[inline(always)]
fn f16_scalar(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

#[inline(always)]
fn bf16_scalar(b: &[u8]) -> f32 {
    half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// # Safety
/// AVX-512F enabled in the caller; `n` values readable through `w_at`/`act_at` at every
/// multiple of 16 below `n / 32 * 32`.
#[inline(always)]
unsafe fn dot_rows<const NT: usize>(
    n: usize,
    w_at: impl Fn(usize) -> __m512,
    w_scalar: impl Fn(usize) -> f32,
    act_at: impl Fn(usize, usize) -> __m512,
    act_scalar: impl Fn(usize, usize) -> f32,
    out: &mut [f32; NT],
) {
    // SAFETY: per the function contract.
    unsafe {
        let mut acc0 = [_mm512_setzero_ps(); NT];
        let mut acc1 = [_mm512_setzero_ps(); NT];
        let n32 = n / 32 * 32;
        let mut i = 0;
        while i < n32 {
            let w0 = w_at(i);
            let w1 = w_at(i + 16);
            for t in 0..NT {
                acc0[t] = _mm512_fmadd_ps(w0, act_at(t, i), acc0[t]);
                acc1[t] = _mm512_fmadd_ps(w1, act_at(t, i + 16), acc1[t]);
            }
            i += 32;
        }
        for t in 0..NT {
            let mut s = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t]));
            for k in n32..n {
                s += w_scalar(k) * act_scalar(t, k);
            }
            out[t] = s;
        }
    }
}

/// # Safety
/// The CPU supports AVX-512F/BW, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn f32_rows<const NT: usize>(w: &[u8], acts: [&[f32]; NT], out: &mut [f32; NT]) {
    let n = checked_blocks(w, 4, &acts, 1);
    let wp = w.as_ptr() as *const f32;
    // SAFETY: `n` values in `w` and in every row (checked above); features enabled here.
    unsafe {
        dot_rows::<NT>(
            n,
            |i| _mm512_loadu_ps(wp.add(i)),
            |k| f32::from_le_bytes([w[4 * k], w[4 * k + 1], w[4 * k + 2], w[4 * k + 3]]),
            |t, i| _mm512_loadu_ps(acts[t].as_ptr().add(i)),
            |t, k| acts[t][k],
            out,
        )
    }
}

/// # Safety
/// The CPU supports AVX-512F/BW, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn bf16_rows<const NT: usize>(w: &[u8], acts: [&[f32]; NT], out: &mut [f32; NT]) {
    let n = checked_blocks(w, 2, &acts, 1);
    let wp = w.as_ptr();
    // SAFETY: as in `f32_rows`; bf16 is the top half of an f32.
    unsafe {
        dot_rows::<NT>(
            n,
            |i| {
                let h = _mm256_loadu_si256(wp.add(2 * i) as *const __m256i);
                _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
            },
            |k| bf16_scalar(&w[2 * k..]),
            |t, i| _mm512_loadu_ps(acts[t].as_ptr().add(i)),
            |t, k| acts[t][k],
            out,
        )
    }
}

/// # Safety
/// The CPU supports AVX-512F/BW, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn f16_rows<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let n = checked_blocks(w, 2, &acts, 2);
    let wp = w.as_ptr();
    // SAFETY: as in `f32_rows` (f16 activations, 2 bytes per value).
    unsafe {
        dot_rows::<NT>(
            n,
            |i| _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(2 * i) as *const __m256i)),
            |k| f16_scalar(&w[2 * k..]),
            |t, i| {
                _mm512_cvtph_ps(_mm256_loadu_si256(
                    acts[t].as_ptr().add(2 * i) as *const __m256i
                ))
            },
            |t, k| f16_scalar(&acts[t][2 * k..]),
            out,
        )
    }
}

simd_kernel!(F32, Avx512, f32_rows, f32);
simd_kernel!(Bf16, Avx512, bf16_rows, f32);
simd_kernel!(F16, Avx512, f16_rows, u8);
