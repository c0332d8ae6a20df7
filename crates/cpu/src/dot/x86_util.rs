//! Small AVX2 helpers shared by the x86 kernels. All are `#[inline(always)]` without their own
//! `#[target_feature]`: they are only called from (and inlined into) kernels compiled with
//! AVX2/FMA/F16C, which is where their intrinsics get their features.

use std::arch::x86_64::*;

/// Sum of the 8 lanes.
#[inline(always)]
pub(crate) unsafe fn hsum_ps(v: __m256) -> f32 {
    // SAFETY: caller runs with AVX2 enabled (module contract).
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// Reads an f16 at `p` (unaligned) and widens it exactly, in integer registers.
///
/// Not F16C: for a single value LLVM emits `vpinsrw` into whatever vector register it likes
/// (often a loop accumulator), which chained every block's scale to the previous block's FMA
/// and made the 32-value kernels 4× slower. The integer form ends in a full-register `vmovd`.
#[inline(always)]
pub(crate) unsafe fn load_f16(p: *const u8) -> f32 {
    // SAFETY: caller guarantees 2 readable bytes at `p`.
    let h = unsafe { (p as *const u16).read_unaligned() };
    f16_to_f32_bits(h)
}

/// Exact f16 → f32 widening (normals rebias the exponent; subnormals are `m · 2^-24`; inf and
/// NaN keep their payload).
#[inline(always)]
pub(crate) fn f16_to_f32_bits(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let em = h & 0x7FFF;
    let mag = if em >= 0x7C00 {
        0x7F80_0000 | ((em & 0x3FF) << 13)
    } else if em >= 0x400 {
        (em << 13) + (112 << 23)
    } else {
        (em as f32 * 5.960_464_5e-8).to_bits()
    };
    f32::from_bits(sign | mag)
}

#[inline(always)]
pub(crate) unsafe fn load_f32(p: *const u8) -> f32 {
    // SAFETY: caller guarantees 4 readable bytes at `p`.
    unsafe { (p as *const f32).read_unaligned() }
}

/// 32 bytes at `p`.
#[inline(always)]
pub(crate) unsafe fn load256(p: *const u8) -> __m256i {
    // SAFETY: caller guarantees 32 readable bytes at `p`.
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

/// The 16 bytes at `p` split into nibbles: low nibbles in the low 128-bit lane, high nibbles
/// in the high lane (32 values in ggml's in-block order).
#[inline(always)]
pub(crate) unsafe fn nibbles_32(p: *const u8) -> __m256i {
    // SAFETY: caller guarantees 16 readable bytes at `p` and AVX2.
    unsafe {
        let raw = _mm_loadu_si128(p as *const __m128i);
        let m = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(raw, m);
        let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m);
        _mm256_set_m128i(hi, lo)
    }
}

/// Byte `i` is 0xFF when bit `i` of `bits` is set, else 0.
#[inline(always)]
pub(crate) unsafe fn bits_to_bytes(bits: u32) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe {
        let v = _mm256_set1_epi32(bits as i32);
        // Byte i takes byte i / 8 of `bits` (valid in both lanes: the broadcast repeats it).
        let spread = _mm256_shuffle_epi8(
            v,
            _mm256_setr_epi8(
                0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                3, 3, 3, 3,
            ),
        );
        let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select)
    }
}

/// Two i16 broadcasts: `lo` in the low 128-bit lane, `hi` in the high one.
#[inline(always)]
pub(crate) unsafe fn set_pair_epi16(lo: i16, hi: i16) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe { _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo)) }
}

/// Two 256-bit halves as one 512-bit register (`lo` in the low half).
#[inline(always)]
pub(crate) unsafe fn join256(lo: __m256i, hi: __m256i) -> __m512i {
    // SAFETY: AVX-512F enabled in the caller.
    unsafe { _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1) }
}

/// `|a| · (b with a's sign)`, summed in fours (`maddubs` needs an unsigned left operand, so
/// `a`'s sign moves onto `b`, which must not hold -128; there is no 512-bit `sign`, so `b` is
/// negated under the mask of negative `a`).
#[inline(always)]
pub(crate) unsafe fn dot512_i8_i8_pre(a: __m512i, abs_a: __m512i, b: __m512i) -> __m512i {
    // SAFETY: AVX-512F/BW enabled in the caller.
    unsafe {
        let neg = _mm512_movepi8_mask(a);
        let sb = _mm512_mask_sub_epi8(b, neg, _mm512_setzero_si512(), b);
        _mm512_madd_epi16(_mm512_maddubs_epi16(abs_a, sb), _mm512_set1_epi16(1))
    }
}

/// Unsigned by signed bytes summed in fours (512-bit).
#[inline(always)]
pub(crate) unsafe fn dot512_u8_i8(a: __m512i, b: __m512i) -> __m512i {
    // SAFETY: AVX-512F/BW enabled in the caller.
    unsafe { _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1)) }
}

/// Sixteen i16 scales at `sc` (any i16 vector of 16) spread so that i16 lane `i` of the result
/// holds scale `base + i / 8`: four groups of 16 bytes each get their own scale.
#[inline(always)]
pub(crate) unsafe fn spread_scales4(sc16: __m512i, base: usize) -> __m512i {
    // SAFETY: AVX-512F/BW enabled in the caller.
    unsafe {
        let idx = _mm512_add_epi16(
            _mm512_set1_epi16(base as i16),
            _mm512_srli_epi16(
                _mm512_set_epi16(
                    31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12,
                    11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
                ),
                3,
            ),
        );
        _mm512_permutexvar_epi16(idx, sc16)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn f16_widening_is_exact_for_every_bit_pattern() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = super::f16_to_f32_bits(h);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#06x}"
            );
        }
    }
}
