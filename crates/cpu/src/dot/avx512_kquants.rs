//! AVX-512 (F + BW) dot products for the K-quants against q8_K: 64 values per step (two
//! 32-value pieces side by side), otherwise the scheme of `avx2_kquants.rs`. Scales are spread
//! to their 16-value groups with one `permutexvar` per step.

use std::arch::x86_64::*;

use super::avx2_kquants::{k4_scales_mins_words, q3k_scales_words};
use super::x86_util::*;
use super::{checked_blocks, simd_kernel};
use crate::blocks::*;
use crate::path::Avx512;

struct Act {
    d: f32,
    qs: *const u8,
    bsums: __m256i,
}

#[inline(always)]
unsafe fn act(row: &[u8], b: usize) -> Act {
    // SAFETY: the caller checked that `row` holds block `b`; AVX2 enabled in the caller.
    unsafe {
        let p = row.as_ptr().add(b * Q8_K_BYTES);
        Act {
            d: load_f32(p),
            qs: p.add(Q8_K_QS),
            bsums: load256(p.add(Q8_K_BSUMS)),
        }
    }
}

#[inline(always)]
unsafe fn load512(p: *const u8) -> __m512i {
    // SAFETY: caller guarantees 64 readable bytes and AVX-512F.
    unsafe { _mm512_loadu_si512(p as *const _) }
}

/// Sixteen i8 scales widened to i16 in the low half of a 512-bit register.
#[inline(always)]
unsafe fn scales16(sc: &[i8; 16]) -> __m512i {
    // SAFETY: AVX-512F and AVX2 enabled in the caller.
    unsafe {
        let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(sc.as_ptr() as *const __m128i));
        _mm512_castsi256_si512(v)
    }
}

/// Float accumulation of one super-block's integer sums, and the final reduction.
#[inline(always)]
unsafe fn finish(isum: __m512i, d: f32, acc: __m512) -> __m512 {
    // SAFETY: AVX-512F enabled in the caller.
    unsafe { _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d), acc) }
}

/// # Safety
/// The CPU supports AVX-512F/BW, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn q4_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    // SAFETY: features enabled on this function.
    unsafe { q45_k::<false, NT>(w, acts, out) }
}

/// # Safety
/// The CPU supports AVX-512F/BW, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn q5_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    // SAFETY: features enabled on this function.
    unsafe { q45_k::<true, NT>(w, acts, out) }
}

/// # Safety
/// AVX-512F/BW and AVX2/FMA/F16C enabled in the caller.
#[inline(always)]
unsafe fn q45_k<const FIVE: bool, const NT: usize>(
    w: &[u8],
    acts: [&[u8]; NT],
    out: &mut [f32; NT],
) {
    let w_bytes = if FIVE { Q5_K_BYTES } else { Q4_K_BYTES };
    let qs_off = if FIVE { 48 } else { 16 };
    let nb = checked_blocks(w, w_bytes, &acts, Q8_K_BYTES);
    // SAFETY: `nb` whole blocks in `w` and every activation row (checked above); pointers stay
    // inside block `b`. Features per the function contract.
    unsafe {
        let low4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); NT];
        let mut acc_min = [_mm256_setzero_ps(); NT];
        for b in 0..nb {
            let x = &w[b * w_bytes..(b + 1) * w_bytes];
            let dw = load_f16(x.as_ptr());
            let dminw = load_f16(x.as_ptr().add(2));
            let (sc, mn) = k4_scales_mins_words(&x[4..16]);
            let mn_x = _mm_loadl_epi64(mn.as_ptr() as *const __m128i);
            let mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn_x, mn_x));
            // Scales as i16, duplicated: entries 2c and 2c+1 sit at i16 index 2c/2c+1.
            let sc_x = _mm_loadl_epi64(sc.as_ptr() as *const __m128i);
            let sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sc_x));
            let a: [Act; NT] = std::array::from_fn(|t| act(acts[t], b));
            let mut isum = [_mm512_setzero_si512(); NT];
            let mut qh = if FIVE {
                load256(x.as_ptr().add(16))
            } else {
                _mm256_setzero_si256()
            };
            for c in 0..4 {
                let raw = load256(x.as_ptr().add(qs_off + 32 * c));
                let mut lo = _mm256_and_si256(raw, low4);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
                if FIVE {
                    let one = _mm256_set1_epi8(1);
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, one), 4));
                    let two = _mm256_set1_epi8(2);
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(qh, two), 3));
                    qh = _mm256_srli_epi16(qh, 2);
                }
                let q = join256(lo, hi);
                // i16 lanes 0..16 (low piece) take scale 2c, lanes 16..32 take 2c + 1.
                let s = _mm512_mask_blend_epi16(
                    0xFFFF_0000,
                    _mm512_permutexvar_epi16(_mm512_set1_epi16((2 * c) as i16), sc16),
                    _mm512_permutexvar_epi16(_mm512_set1_epi16((2 * c + 1) as i16), sc16),
                );
                for t in 0..NT {
                    let y = load512(a[t].qs.add(64 * c));
                    let p = _mm512_madd_epi16(_mm512_maddubs_epi16(q, y), s);
                    isum[t] = _mm512_add_epi32(isum[t], p);
                }
            }
            for t in 0..NT {
                acc[t] = finish(isum[t], dw * a[t].d, acc[t]);
                let m = _mm256_madd_epi16(a[t].bsums, mins16);
                let dm = _mm256_set1_ps(dminw * a[t].d);
                acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dm, acc_min[t]);
            }
        }
        for t in 0..NT {
            out[t] = _mm512_reduce_add_ps(acc[t]) - hsum_ps(acc_min[t]);
        }
    }
}

/// # Safety
/// The CPU supports AVX-512F/BW, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn q6_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let nb = checked_blocks(w, Q6_K_BYTES, &acts, Q8_K_BYTES);
    // SAFETY: as in `q45_k`.
    unsafe {
        let low4 = _mm256_set1_epi8(0x0F);
        let top2 = _mm256_set1_epi8(0x30);
        let mut acc = [_mm512_setzero_ps(); NT];
        for b in 0..nb {
            let x = w.as_ptr().add(b * Q6_K_BYTES);
            let dw = load_f16(x.add(208));
            let sc: [i8; 16] = std::mem::transmute(_mm_loadu_si128(x.add(192) as *const __m128i));
            let sc16 = scales16(&sc);
            let a: [Act; NT] = std::array::from_fn(|t| act(acts[t], b));
            let mut isum: [__m512i; NT] = std::array::from_fn(|t| {
                let corr = _mm256_slli_epi32(
                    _mm256_madd_epi16(a[t].bsums, _mm512_castsi512_si256(sc16)),
                    5,
                );
                _mm512_castsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), corr))
            });
            // The upper half of `isum` must start at zero too.
            for v in isum.iter_mut() {
                *v = _mm512_inserti64x4(*v, _mm256_setzero_si256(), 1);
            }
            for n in 0..2 {
                let ql0 = load256(x.add(64 * n));
                let ql1 = load256(x.add(64 * n + 32));
                let qh = load256(x.add(128 + 32 * n));
                let q1 = _mm256_or_si256(
                    _mm256_and_si256(ql0, low4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2),
                );
                let q2 = _mm256_or_si256(
                    _mm256_and_si256(ql1, low4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2),
                );
                let q3 = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                    _mm256_and_si256(qh, top2),
                );
                let q4 = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2),
                );
                for (k, q) in [join256(q1, q2), join256(q3, q4)].into_iter().enumerate() {
                    let s = spread_scales4(sc16, 8 * n + 4 * k);
                    for t in 0..NT {
                        let y = load512(a[t].qs.add(128 * n + 64 * k));
                        let p = _mm512_madd_epi16(_mm512_maddubs_epi16(q, y), s);
                        isum[t] = _mm512_add_epi32(isum[t], p);
                    }
                }
            }
            for t in 0..NT {
                acc[t] = finish(isum[t], dw * a[t].d, acc[t]);
            }
        }
        for t in 0..NT {
            out[t] = _mm512_reduce_add_ps(acc[t]);
        }
    }
}

/// # Safety
/// The CPU supports AVX-512F/BW, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn q2_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let nb = checked_blocks(w, Q2_K_BYTES, &acts, Q8_K_BYTES);
    // SAFETY: as in `q45_k`.
    unsafe {
        let three = _mm256_set1_epi8(3);
        let mut acc = [_mm512_setzero_ps(); NT];
        let mut acc_min = [_mm256_setzero_ps(); NT];
        for b in 0..nb {
            let x = w.as_ptr().add(b * Q2_K_BYTES);
            let dw = load_f16(x.add(80));
            let dminw = load_f16(x.add(82));
            let scales = _mm_loadu_si128(x as *const __m128i);
            let mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(
                _mm_srli_epi16(scales, 4),
                _mm_set1_epi8(0x0F),
            ));
            let sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(
                scales,
                _mm_set1_epi8(0x0F),
            )));
            let a: [Act; NT] = std::array::from_fn(|t| act(acts[t], b));
            let mut isum = [_mm512_setzero_si512(); NT];
            for n in 0..2 {
                let q = load256(x.add(16 + 32 * n));
                for j in [0usize, 2] {
                    let q0 = _mm256_and_si256(
                        _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j as i32)),
                        three,
                    );
                    let q1 = _mm256_and_si256(
                        _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * (j + 1) as i32)),
                        three,
                    );
                    let s = spread_scales4(sc16, 8 * n + 2 * j);
                    let qq = join256(q0, q1);
                    for t in 0..NT {
                        let y = load512(a[t].qs.add(128 * n + 32 * j));
                        let p = _mm512_madd_epi16(_mm512_maddubs_epi16(qq, y), s);
                        isum[t] = _mm512_add_epi32(isum[t], p);
                    }
                }
            }
            for t in 0..NT {
                acc[t] = finish(isum[t], dw * a[t].d, acc[t]);
                let m = _mm256_madd_epi16(a[t].bsums, mins16);
                let dm = _mm256_set1_ps(dminw * a[t].d);
                acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dm, acc_min[t]);
            }
        }
        for t in 0..NT {
            out[t] = _mm512_reduce_add_ps(acc[t]) - hsum_ps(acc_min[t]);
        }
    }
}

/// # Safety
/// The CPU supports AVX-512F/BW, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn q3_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let nb = checked_blocks(w, Q3_K_BYTES, &acts, Q8_K_BYTES);
    // SAFETY: as in `q45_k`.
    unsafe {
        let three = _mm256_set1_epi8(3);
        let one = _mm256_set1_epi8(1);
        let mut acc = [_mm512_setzero_ps(); NT];
        for b in 0..nb {
            let x = w.as_ptr().add(b * Q3_K_BYTES);
            let dw = load_f16(x.add(108));
            let sc = q3k_scales_words(std::slice::from_raw_parts(x.add(96), 12));
            let sc16 = scales16(&sc);
            let hmask = load256(x);
            let a: [Act; NT] = std::array::from_fn(|t| act(acts[t], b));
            let mut isum: [__m512i; NT] = std::array::from_fn(|t| {
                let corr = _mm256_slli_epi32(
                    _mm256_madd_epi16(a[t].bsums, _mm512_castsi512_si256(sc16)),
                    2,
                );
                let neg = _mm256_sub_epi32(_mm256_setzero_si256(), corr);
                _mm512_inserti64x4(_mm512_castsi256_si512(neg), _mm256_setzero_si256(), 1)
            });
            for n in 0..2 {
                let q = load256(x.add(32 + 32 * n));
                for j in [0usize, 2] {
                    let piece = |jj: usize| {
                        let low = _mm256_and_si256(
                            _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * jj as i32)),
                            three,
                        );
                        let high = _mm256_and_si256(
                            _mm256_srl_epi16(hmask, _mm_cvtsi32_si128((4 * n + jj) as i32)),
                            one,
                        );
                        _mm256_or_si256(low, _mm256_slli_epi16(high, 2))
                    };
                    let u = join256(piece(j), piece(j + 1));
                    let s = spread_scales4(sc16, 8 * n + 2 * j);
                    for t in 0..NT {
                        let y = load512(a[t].qs.add(128 * n + 32 * j));
                        let p = _mm512_madd_epi16(_mm512_maddubs_epi16(u, y), s);
                        isum[t] = _mm512_add_epi32(isum[t], p);
                    }
                }
            }
            for t in 0..NT {
                acc[t] = finish(isum[t], dw * a[t].d, acc[t]);
            }
        }
        for t in 0..NT {
            out[t] = _mm512_reduce_add_ps(acc[t]);
        }
    }
}

simd_kernel!(Q2K, Avx512, q2_k, u8);
simd_kernel!(Q3K, Avx512, q3_k, u8);
simd_kernel!(Q4K, Avx512, q4_k, u8);
simd_kernel!(Q5K, Avx512, q5_k, u8);
simd_kernel!(Q6K, Avx512, q6_k, u8);
