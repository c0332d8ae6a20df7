//! Vectorized `exp` for the AVX2 paths of SiLU and softmax.
//!
//! Range reduction `x = n ln2 + r` (ln 2 split in two parts so `r` is exact), a degree-6
//! polynomial for `e^r` on `|r| ≤ ln2/2` (the classic Cephes `expf` coefficients), and `2^n`
//! put into the exponent bits. Inputs are clamped to [-87.3, 88.7] (results stay normal);
//! error ≤ 2 ulp against libm over that range (tested).

use std::arch::x86_64::*;

/// `e^x` lane-wise.
///
/// # Safety
/// AVX2 and FMA enabled in the caller.
#[inline(always)]
pub(crate) unsafe fn exp256(x: __m256) -> __m256 {
    // SAFETY: per the function contract.
    unsafe {
        let underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3), _CMP_LT_OQ);
        let overflow = _mm256_cmp_ps(x, _mm256_set1_ps(88.722_83), _CMP_GT_OQ);
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.3)),
            _mm256_set1_ps(88.7),
        );
        let n = _mm256_round_ps(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.398_199_9e-3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333_452e-3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166_579_6e-2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.166_666_65));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
        let r2 = _mm256_mul_ps(r, r);
        let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        // 2^n: n in [-126, 128] after the clamp; n = 128 is split as 2^127 * 2.
        let ni = _mm256_cvtps_epi32(n);
        let half = _mm256_srai_epi32(ni, 1);
        let pow_a = _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_add_epi32(half, _mm256_set1_epi32(127)),
            23,
        ));
        let pow_b = _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)),
            23,
        ));
        let y = _mm256_andnot_ps(underflow, _mm256_mul_ps(_mm256_mul_ps(e, pow_a), pow_b));
        _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), overflow)
    }
}
