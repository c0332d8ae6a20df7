//! AVX2 dot products for the K-quants (q2_K, q3_K, q4_K, q5_K, q6_K) against q8_K.
//!
//! A super-block of 256 values is processed in 32-value pieces: the piece's weights are
//! unpacked to unsigned bytes once, `maddubs` against each token's q8_K bytes gives 16-bit
//! pair sums, and `madd` with the piece's scales (one per 16 values) widens them to i32. All
//! integer work for a super-block stays in one i32 vector per token, converted to f32 once.
//! Offsets (q6_K's -32, q3_K's -4, the mins of q2/q4/q5_K) are applied through q8_K's
//! per-16 sums (`bsums`) instead of per value.

use std::arch::x86_64::*;

use super::x86_util::*;
use super::{checked_blocks, simd_kernel};
use crate::blocks::*;
use crate::path::Avx2;

/// q8_K fields of super-block `b` of an activation row.
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

/// The 12 packed scale bytes of q4_K/q5_K as (8 scales, 8 mins), 6 bits each. Word-wise form of
/// `blocks::k4_scales_mins` (a unit test keeps the two equal).
#[inline(always)]
pub(crate) fn k4_scales_mins_words(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let (a, b, c) = (w(0), w(4), w(8));
    let sc_hi = (c & 0x0F0F_0F0F) | (((a >> 6) & 0x0303_0303) << 4);
    let mn_hi = ((c >> 4) & 0x0F0F_0F0F) | (((b >> 6) & 0x0303_0303) << 4);
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    sc[..4].copy_from_slice(&(a & 0x3F3F_3F3F).to_le_bytes());
    sc[4..].copy_from_slice(&sc_hi.to_le_bytes());
    mn[..4].copy_from_slice(&(b & 0x3F3F_3F3F).to_le_bytes());
    mn[4..].copy_from_slice(&mn_hi.to_le_bytes());
    (sc, mn)
}

/// Sixteen i16 lanes `[v0, v0, v1, v1, …, v7, v7]` from eight bytes: the per-16 weights that
/// pair with q8_K's 16 `bsums` when each byte covers 32 values.
#[inline(always)]
unsafe fn dup_pairs_epi16(v: [u8; 8]) -> __m256i {
    // SAFETY: AVX2 enabled in the caller.
    unsafe {
        let x = _mm_loadl_epi64(v.as_ptr() as *const __m128i);
        _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x, x))
    }
}

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    // SAFETY: features enabled on this function.
    unsafe { q45_k::<false, NT>(w, acts, out) }
}

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    // SAFETY: features enabled on this function.
    unsafe { q45_k::<true, NT>(w, acts, out) }
}

/// q4_K and q5_K (`FIVE`): four 64-value chunks; chunk `c` is the low nibbles (sub-block
/// `2c`) and high nibbles (`2c + 1`) of 32 bytes, plus for q5_K bits `2c`, `2c + 1` of `qh`.
///
/// # Safety
/// AVX2/FMA/F16C enabled in the caller.
#[inline(always)]
unsafe fn q45_k<const FIVE: bool, const NT: usize>(
    w: &[u8],
    acts: [&[u8]; NT],
    out: &mut [f32; NT],
) {
    let w_bytes = if FIVE { Q5_K_BYTES } else { Q4_K_BYTES };
    let qs_off = if FIVE { 48 } else { 16 };
    let nb = checked_blocks(w, w_bytes, &acts, Q8_K_BYTES);
    // SAFETY: `nb` whole blocks in `w` and in every activation row (checked above); all
    // pointers stay within block `b`. Inlined only into the AVX2 entries above.
    unsafe {
        let low4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); NT];
        let mut acc_min = [_mm256_setzero_ps(); NT];
        for b in 0..nb {
            let x = &w[b * w_bytes..(b + 1) * w_bytes];
            let dw = load_f16(x.as_ptr());
            let dminw = load_f16(x.as_ptr().add(2));
            let (sc, mn) = k4_scales_mins_words(&x[4..16]);
            let mins16 = dup_pairs_epi16(mn);
            let a: [Act; NT] = std::array::from_fn(|t| act(acts[t], b));
            let mut isum = [_mm256_setzero_si256(); NT];
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
                let s_lo = _mm256_set1_epi16(sc[2 * c] as i16);
                let s_hi = _mm256_set1_epi16(sc[2 * c + 1] as i16);
                for t in 0..NT {
                    let y0 = load256(a[t].qs.add(64 * c));
                    let y1 = load256(a[t].qs.add(64 * c + 32));
                    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s_lo);
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s_hi);
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
                }
            }
            for t in 0..NT {
                let d = _mm256_set1_ps(dw * a[t].d);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), d, acc[t]);
                let m = _mm256_madd_epi16(a[t].bsums, mins16);
                let dm = _mm256_set1_ps(dminw * a[t].d);
                acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dm, acc_min[t]);
            }
        }
        for t in 0..NT {
            out[t] = hsum_ps(_mm256_sub_ps(acc[t], acc_min[t]));
        }
    }
}

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let nb = checked_blocks(w, Q6_K_BYTES, &acts, Q8_K_BYTES);
    // SAFETY: as in `q45_k`.
    unsafe {
        let low4 = _mm256_set1_epi8(0x0F);
        let top2 = _mm256_set1_epi8(0x30);
        let mut acc = [_mm256_setzero_ps(); NT];
        for b in 0..nb {
            let x = w.as_ptr().add(b * Q6_K_BYTES);
            let dw = load_f16(x.add(208));
            let sc_bytes = _mm_loadu_si128(x.add(192) as *const __m128i);
            let sc16 = _mm256_cvtepi8_epi16(sc_bytes);
            let sc: [i8; 16] = std::mem::transmute(sc_bytes);
            let a: [Act; NT] = std::array::from_fn(|t| act(acts[t], b));
            // The -32 offset: Σ_g sc[g] · 32 · bsum[g], subtracted in the integer domain.
            let mut isum: [__m256i; NT] = std::array::from_fn(|t| {
                _mm256_sub_epi32(
                    _mm256_setzero_si256(),
                    _mm256_slli_epi32(_mm256_madd_epi16(a[t].bsums, sc16), 5),
                )
            });
            for n in 0..2 {
                let ql0 = load256(x.add(64 * n));
                let ql1 = load256(x.add(64 * n + 32));
                let qh = load256(x.add(128 + 32 * n));
                let q = [
                    _mm256_or_si256(
                        _mm256_and_si256(ql0, low4),
                        _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, low4),
                        _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                        _mm256_and_si256(qh, top2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                        _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2),
                    ),
                ];
                for (k, qk) in q.iter().enumerate() {
                    let g = 8 * n + 2 * k;
                    let s = set_pair_epi16(sc[g] as i16, sc[g + 1] as i16);
                    for t in 0..NT {
                        let y = load256(a[t].qs.add(128 * n + 32 * k));
                        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*qk, y), s);
                        isum[t] = _mm256_add_epi32(isum[t], p);
                    }
                }
            }
            for t in 0..NT {
                let d = _mm256_set1_ps(dw * a[t].d);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), d, acc[t]);
            }
        }
        for t in 0..NT {
            out[t] = hsum_ps(acc[t]);
        }
    }
}

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let nb = checked_blocks(w, Q2_K_BYTES, &acts, Q8_K_BYTES);
    // SAFETY: as in `q45_k`.
    unsafe {
        let three = _mm256_set1_epi8(3);
        let mut acc = [_mm256_setzero_ps(); NT];
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
            let sc: [u8; 16] = std::mem::transmute(_mm_and_si128(scales, _mm_set1_epi8(0x0F)));
            let a: [Act; NT] = std::array::from_fn(|t| act(acts[t], b));
            let mut isum = [_mm256_setzero_si256(); NT];
            for n in 0..2 {
                let q = load256(x.add(16 + 32 * n));
                for j in 0..4 {
                    let qj = _mm256_and_si256(
                        _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j as i32)),
                        three,
                    );
                    let g = 8 * n + 2 * j;
                    let s = set_pair_epi16(sc[g] as i16, sc[g + 1] as i16);
                    for t in 0..NT {
                        let y = load256(a[t].qs.add(128 * n + 32 * j));
                        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(qj, y), s);
                        isum[t] = _mm256_add_epi32(isum[t], p);
                    }
                }
            }
            for t in 0..NT {
                let d = _mm256_set1_ps(dw * a[t].d);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), d, acc[t]);
                let m = _mm256_madd_epi16(a[t].bsums, mins16);
                let dm = _mm256_set1_ps(dminw * a[t].d);
                acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dm, acc_min[t]);
            }
        }
        for t in 0..NT {
            out[t] = hsum_ps(_mm256_sub_ps(acc[t], acc_min[t]));
        }
    }
}

/// The 16 signed q3_K scales (minus 32), word-wise (see `blocks::q3k_scales`).
#[inline(always)]
pub(crate) fn q3k_scales_words(s: &[u8]) -> [i8; 16] {
    let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let (a, b, c) = (w(0), w(4), w(8));
    let m4 = 0x0F0F_0F0F;
    let m2 = 0x0303_0303;
    let words = [
        (a & m4) | ((c & m2) << 4),
        (b & m4) | (((c >> 2) & m2) << 4),
        ((a >> 4) & m4) | (((c >> 4) & m2) << 4),
        ((b >> 4) & m4) | (((c >> 6) & m2) << 4),
    ];
    let mut out = [0i8; 16];
    for (k, word) in words.iter().enumerate() {
        for (i, byte) in word.to_le_bytes().iter().enumerate() {
            out[4 * k + i] = (*byte as i8) - 32;
        }
    }
    out
}

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let nb = checked_blocks(w, Q3_K_BYTES, &acts, Q8_K_BYTES);
    // SAFETY: as in `q45_k`.
    unsafe {
        let three = _mm256_set1_epi8(3);
        let one = _mm256_set1_epi8(1);
        let mut acc = [_mm256_setzero_ps(); NT];
        for b in 0..nb {
            let x = w.as_ptr().add(b * Q3_K_BYTES);
            let dw = load_f16(x.add(108));
            let sc = q3k_scales_words(std::slice::from_raw_parts(x.add(96), 12));
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(sc.as_ptr() as *const __m128i));
            let hmask = load256(x);
            let a: [Act; NT] = std::array::from_fn(|t| act(acts[t], b));
            // Stored value u = low 2 bits + 4 * high bit; real value u - 4.
            let mut isum: [__m256i; NT] = std::array::from_fn(|t| {
                _mm256_sub_epi32(
                    _mm256_setzero_si256(),
                    _mm256_slli_epi32(_mm256_madd_epi16(a[t].bsums, sc16), 2),
                )
            });
            for n in 0..2 {
                let q = load256(x.add(32 + 32 * n));
                for j in 0..4 {
                    let shift = _mm_cvtsi32_si128(2 * j as i32);
                    let low = _mm256_and_si256(_mm256_srl_epi16(q, shift), three);
                    let hshift = _mm_cvtsi32_si128((4 * n + j) as i32);
                    let high = _mm256_and_si256(_mm256_srl_epi16(hmask, hshift), one);
                    let u = _mm256_or_si256(low, _mm256_slli_epi16(high, 2));
                    let g = 8 * n + 2 * j;
                    let s = set_pair_epi16(sc[g] as i16, sc[g + 1] as i16);
                    for t in 0..NT {
                        let y = load256(a[t].qs.add(128 * n + 32 * j));
                        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), s);
                        isum[t] = _mm256_add_epi32(isum[t], p);
                    }
                }
            }
            for t in 0..NT {
                let d = _mm256_set1_ps(dw * a[t].d);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), d, acc[t]);
            }
        }
        for t in 0..NT {
            out[t] = hsum_ps(acc[t]);
        }
    }
}

simd_kernel!(Q2K, Avx2, q2_k, u8);
simd_kernel!(Q3K, Avx2, q3_k, u8);
simd_kernel!(Q4K, Avx2, q4_k, u8);
simd_kernel!(Q5K, Avx2, q5_k, u8);
simd_kernel!(Q6K, Avx2, q6_k, u8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_wise_scale_unpacking_matches_bytewise() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut s = [0u8; 12];
            for v in s.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            assert_eq!(k4_scales_mins_words(&s), k4_scales_mins(&s));
            assert_eq!(q3k_scales_words(&s), q3k_scales(&s));
        }
    }
}
