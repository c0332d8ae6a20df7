//! AVX2 dot products for float weights: f32 and bf16 rows against f32 activations, f16 rows
//! against f16 activations (as ggml: both sides f16, products and sums in f32).
//!
//! Each step loads 16 weights once and multiplies them into every token's two accumulators.
//! Row lengths need not be multiples of 16; the tail is done in scalar code.

use std::arch::x86_64::*;

use super::x86_util::*;
use super::{checked_blocks, simd_kernel};
use crate::path::Avx2;

/// How to widen 8 weights (or f16 activations) at `p` to f32.
trait Widen {
    const BYTES: usize;
    /// # Safety
    /// `8 * BYTES` readable bytes at `p`; AVX2/FMA/F16C enabled in the caller.
    unsafe fn load8(p: *const u8) -> __m256;
    fn scalar(b: &[u8]) -> f32;
}

struct F32W;
impl Widen for F32W {
    const BYTES: usize = 4;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: per the trait contract.
        unsafe { _mm256_loadu_ps(p as *const f32) }
    }
    fn scalar(b: &[u8]) -> f32 {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

struct Bf16W;
impl Widen for Bf16W {
    const BYTES: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: per the trait contract. bf16 is the top half of an f32.
        unsafe {
            let h = _mm_loadu_si128(p as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        }
    }
    fn scalar(b: &[u8]) -> f32 {
        half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
    }
}

struct F16W;
impl Widen for F16W {
    const BYTES: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: per the trait contract.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
    fn scalar(b: &[u8]) -> f32 {
        half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
    }
}

/// Weights widened by `W`, activations given as rows of `A::Elem` loaded by `load_act`.
///
/// # Safety
/// AVX2/FMA/F16C enabled in the caller; `n` values readable in `w` (n * W::BYTES bytes) and in
/// every activation row (checked by the entries).
#[inline(always)]
unsafe fn dot_rows<W: Widen, const NT: usize>(
    n: usize,
    w: &[u8],
    act_at: impl Fn(usize, usize) -> __m256,
    act_scalar: impl Fn(usize, usize) -> f32,
    out: &mut [f32; NT],
) {
    // SAFETY: callers guarantee `n` values in every row; all indices below are `< n`.
    unsafe {
        let mut acc0 = [_mm256_setzero_ps(); NT];
        let mut acc1 = [_mm256_setzero_ps(); NT];
        let n16 = n / 16 * 16;
        let wp = w.as_ptr();
        let mut i = 0;
        while i < n16 {
            let w0 = W::load8(wp.add(i * W::BYTES));
            let w1 = W::load8(wp.add((i + 8) * W::BYTES));
            for t in 0..NT {
                acc0[t] = _mm256_fmadd_ps(w0, act_at(t, i), acc0[t]);
                acc1[t] = _mm256_fmadd_ps(w1, act_at(t, i + 8), acc1[t]);
            }
            i += 16;
        }
        for t in 0..NT {
            let mut s = hsum_ps(_mm256_add_ps(acc0[t], acc1[t]));
            for k in n16..n {
                s += W::scalar(&w[k * W::BYTES..]) * act_scalar(t, k);
            }
            out[t] = s;
        }
    }
}

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_rows<const NT: usize>(w: &[u8], acts: [&[f32]; NT], out: &mut [f32; NT]) {
    let n = checked_blocks(w, 4, &acts, 1);
    // SAFETY: `n` values in `w` and every row (checked above); features enabled here.
    unsafe {
        dot_rows::<F32W, NT>(
            n,
            w,
            |t, i| _mm256_loadu_ps(acts[t].as_ptr().add(i)),
            |t, k| acts[t][k],
            out,
        )
    }
}

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_rows<const NT: usize>(w: &[u8], acts: [&[f32]; NT], out: &mut [f32; NT]) {
    let n = checked_blocks(w, 2, &acts, 1);
    // SAFETY: as in `f32_rows`.
    unsafe {
        dot_rows::<Bf16W, NT>(
            n,
            w,
            |t, i| _mm256_loadu_ps(acts[t].as_ptr().add(i)),
            |t, k| acts[t][k],
            out,
        )
    }
}

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_rows<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let n = checked_blocks(w, 2, &acts, 2);
    // SAFETY: as in `f32_rows` (activation rows are f16 bytes, 2 per value).
    unsafe {
        dot_rows::<F16W, NT>(
            n,
            w,
            |t, i| F16W::load8(acts[t].as_ptr().add(2 * i)),
            |t, k| F16W::scalar(&acts[t][2 * k..]),
            out,
        )
    }
}

simd_kernel!(F32, Avx2, f32_rows, f32);
simd_kernel!(Bf16, Avx2, bf16_rows, f32);
simd_kernel!(F16, Avx2, f16_rows, u8);
