//! AVX2 activation quantizers; bit-identical to `scalar.rs` (tested).

use std::arch::x86_64::*;

use crate::blocks::*;
use crate::path::Avx2;

pub(super) fn q8_0(t: Avx2, x: &[f32], dst: &mut [u8]) {
    let _ = t;
    assert!(x.len() / QK * Q8_0_BYTES <= dst.len());
    // SAFETY: `Avx2` proves the CPU has AVX2/FMA/F16C; lengths checked above.
    unsafe { q8_0_impl::<false>(x, dst) }
}

pub(super) fn q8_1(t: Avx2, x: &[f32], dst: &mut [u8]) {
    let _ = t;
    assert!(x.len() / QK * Q8_1_BYTES <= dst.len());
    // SAFETY: as in `q8_0`.
    unsafe { q8_0_impl::<true>(x, dst) }
}

pub(super) fn q8_k(t: Avx2, x: &[f32], dst: &mut [u8]) {
    let _ = t;
    assert!(x.len() / QK_K * Q8_K_BYTES <= dst.len());
    // SAFETY: as in `q8_0`.
    unsafe { q8_k_impl(x, dst) }
}

pub(super) fn f16(t: Avx2, x: &[f32], dst: &mut [u8]) {
    let _ = t;
    assert!(x.len() * 2 <= dst.len());
    // SAFETY: as in `q8_0`.
    unsafe { f16_impl(x, dst) }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn hmax_ps(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    _mm_cvtss_f32(m)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn f32_to_f16_bits(v: f32) -> u16 {
    _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(v), _MM_FROUND_TO_NEAREST_INT), 0) as u16
}

/// Packs four vectors of eight i32 (each in -128..=127) into 32 bytes in order.
#[target_feature(enable = "avx2,fma,f16c")]
fn pack_i32x32(i0: __m256i, i1: __m256i, i2: __m256i, i3: __m256i) -> __m256i {
    // The packs work per 128-bit lane, leaving 4-byte groups in order 0,2,4,6,1,3,5,7.
    let a = _mm256_packs_epi32(i0, i1);
    let b = _mm256_packs_epi32(i2, i3);
    let p = _mm256_packs_epi16(a, b);
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// q8_0 (`WITH_SUM = false`) or q8_1 (`true`, with the `s = d * sum` field).
///
/// # Safety
/// AVX2/FMA/F16C present; `dst` holds `x.len() / 32` blocks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_impl<const WITH_SUM: bool>(x: &[f32], dst: &mut [u8]) {
    let bytes = if WITH_SUM { Q8_1_BYTES } else { Q8_0_BYTES };
    let qs_off = if WITH_SUM { 4 } else { 2 };
    let sign = _mm256_set1_ps(-0.0);
    for (i, xb) in x.chunks_exact(QK).enumerate() {
        let p = xb.as_ptr();
        // SAFETY: `xb` has 32 floats.
        let (v0, v1, v2, v3) = unsafe {
            (
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            )
        };
        let m = _mm256_max_ps(
            _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
            _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)),
        );
        let amax = hmax_ps(m);
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        // cvtps rounds half to even under the default MXCSR, like `round_ties_even`.
        let i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, id));
        let i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, id));
        let i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, id));
        let i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, id));
        let b = &mut dst[i * bytes..(i + 1) * bytes];
        b[0..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
        if WITH_SUM {
            let sum = hsum_epi32(_mm256_add_epi32(
                _mm256_add_epi32(i0, i1),
                _mm256_add_epi32(i2, i3),
            ));
            b[2..4].copy_from_slice(&f32_to_f16_bits(d * sum as f32).to_le_bytes());
        }
        let q = pack_i32x32(i0, i1, i2, i3);
        // SAFETY: the block has 32 bytes of quants at `qs_off`.
        unsafe { _mm256_storeu_si256(b.as_mut_ptr().add(qs_off) as *mut __m256i, q) };
    }
}

/// # Safety
/// AVX2/FMA/F16C present; `dst` holds `x.len() / 256` blocks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_k_impl(x: &[f32], dst: &mut [u8]) {
    let sign = _mm256_set1_ps(-0.0);
    for (i, xb) in x.chunks_exact(QK_K).enumerate() {
        let p = xb.as_ptr();
        let mut m = _mm256_setzero_ps();
        for k in 0..QK_K / 8 {
            // SAFETY: `xb` has 256 floats.
            m = _mm256_max_ps(
                m,
                _mm256_andnot_ps(sign, unsafe { _mm256_loadu_ps(p.add(8 * k)) }),
            );
        }
        let amax = hmax_ps(m);
        let b = &mut dst[i * Q8_K_BYTES..(i + 1) * Q8_K_BYTES];
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        // The reference takes the sign of the *first* value of largest magnitude.
        let target = _mm256_set1_ps(amax);
        let mut max = amax;
        for k in 0..QK_K / 8 {
            // SAFETY: as above.
            let v = unsafe { _mm256_loadu_ps(p.add(8 * k)) };
            let hit =
                _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), target, _CMP_EQ_OQ));
            if hit != 0 {
                max = xb[8 * k + hit.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        let vs = _mm256_set1_ps(iscale);
        let cap = _mm256_set1_epi32(127);
        let qs = b[Q8_K_QS..Q8_K_QS + QK_K].as_mut_ptr();
        let mut sums = [0i16; 16];
        for k in 0..QK_K / 32 {
            let mut iv = [_mm256_setzero_si256(); 4];
            for (j, v) in iv.iter_mut().enumerate() {
                // SAFETY: as above.
                let f = unsafe { _mm256_loadu_ps(p.add(32 * k + 8 * j)) };
                *v = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(f, vs)), cap);
            }
            sums[2 * k] = hsum_epi32(_mm256_add_epi32(iv[0], iv[1])) as i16;
            sums[2 * k + 1] = hsum_epi32(_mm256_add_epi32(iv[2], iv[3])) as i16;
            let q = pack_i32x32(iv[0], iv[1], iv[2], iv[3]);
            // SAFETY: `qs` points to 256 bytes; this stores bytes 32k..32k+32.
            unsafe { _mm256_storeu_si256(qs.add(32 * k) as *mut __m256i, q) };
        }
        for (g, s) in sums.iter().enumerate() {
            b[Q8_K_BSUMS + 2 * g..Q8_K_BSUMS + 2 * g + 2].copy_from_slice(&s.to_le_bytes());
        }
        b[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// # Safety
/// AVX2/FMA/F16C present; `dst` holds `2 * x.len()` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_impl(x: &[f32], dst: &mut [u8]) {
    let n8 = x.len() / 8 * 8;
    let d = dst.as_mut_ptr();
    for k in (0..n8).step_by(8) {
        // SAFETY: k + 8 <= x.len(); dst has 2 * x.len() bytes.
        unsafe {
            let h = _mm256_cvtps_ph(
                _mm256_loadu_ps(x.as_ptr().add(k)),
                _MM_FROUND_TO_NEAREST_INT,
            );
            _mm_storeu_si128(d.add(2 * k) as *mut __m128i, h);
        }
    }
    for k in n8..x.len() {
        dst[2 * k..2 * k + 2].copy_from_slice(&f32_to_f16_bits(x[k]).to_le_bytes());
    }
}
