//! Unpacking of the 32-value block formats into one 256-bit register of bytes, shared by the
//! AVX2 and AVX-512 kernels (which use it two blocks at a time).

use std::arch::x86_64::*;

use super::x86_util::*;
use crate::blocks::*;

/// How one weight format unpacks. `unpack` returns the 32 stored values: i8 if `SIGNED`, else
/// u8, in which case the real value is `stored - OFFSET` (q4_0: 8, q5_0: 16) or
/// `d · stored + m` (`HAS_MIN`: q4_1, q5_1). Offsets are not subtracted per value: the kernels
/// apply `-OFFSET · d_w · s_a` per block, with `s_a = d_a · Σ q_a` from the activation row,
/// which saves the sign juggling `maddubs` otherwise needs.
///
/// Every format keeps its f16 scale `d` at byte 0 of the block and, if `HAS_MIN`, its f16
/// minimum `m` at byte 2 (the kernels gather those eight blocks at a time).
pub(crate) trait Format {
    const W_BYTES: usize;
    const SIGNED: bool;
    const OFFSET: i32;
    const HAS_MIN: bool;
    /// Stored values are at most 15, so a `maddubs` lane against q8 bytes (|q| ≤ 127) is at
    /// most 2 · 15 · 127 = 3810 and sums of eight such lanes still fit an i16 (the AVX2
    /// kernel then reduces blocks in 16-bit lanes, with no `madd` per block).
    const NARROW: bool;
    /// # Safety
    /// `p` points to a whole block; AVX2/FMA/F16C enabled in the caller (the AVX-512 kernels
    /// enable them too).
    unsafe fn unpack(p: *const u8) -> __m256i;
}

pub(crate) struct Q40;
impl Format for Q40 {
    const W_BYTES: usize = Q4_0_BYTES;
    const SIGNED: bool = false;
    const OFFSET: i32 = 8;
    const HAS_MIN: bool = false;
    const NARROW: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> __m256i {
        // SAFETY: per the trait contract.
        unsafe { nibbles_32(p.add(2)) }
    }
}

pub(crate) struct Q41;
impl Format for Q41 {
    const W_BYTES: usize = Q4_1_BYTES;
    const SIGNED: bool = false;
    const OFFSET: i32 = 0;
    const HAS_MIN: bool = true;
    const NARROW: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> __m256i {
        // SAFETY: per the trait contract.
        unsafe { nibbles_32(p.add(4)) }
    }
}

pub(crate) struct Q50;
impl Format for Q50 {
    const W_BYTES: usize = Q5_0_BYTES;
    const SIGNED: bool = false;
    const OFFSET: i32 = 16;
    const HAS_MIN: bool = false;
    const NARROW: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> __m256i {
        // SAFETY: per the trait contract.
        unsafe {
            let high = bits_to_bytes((p.add(2) as *const u32).read_unaligned());
            _mm256_or_si256(
                nibbles_32(p.add(6)),
                _mm256_and_si256(high, _mm256_set1_epi8(0x10)),
            )
        }
    }
}

pub(crate) struct Q51;
impl Format for Q51 {
    const W_BYTES: usize = Q5_1_BYTES;
    const SIGNED: bool = false;
    const OFFSET: i32 = 0;
    const HAS_MIN: bool = true;
    const NARROW: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> __m256i {
        // SAFETY: per the trait contract.
        unsafe {
            let high = bits_to_bytes((p.add(4) as *const u32).read_unaligned());
            _mm256_or_si256(
                nibbles_32(p.add(8)),
                _mm256_and_si256(high, _mm256_set1_epi8(0x10)),
            )
        }
    }
}

pub(crate) struct Q80;
impl Format for Q80 {
    const W_BYTES: usize = Q8_0_BYTES;
    const SIGNED: bool = true;
    const OFFSET: i32 = 0;
    const HAS_MIN: bool = false;
    const NARROW: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> __m256i {
        // SAFETY: per the trait contract.
        unsafe { load256(p.add(2)) }
    }
}

pub(crate) struct Iq4;
impl Format for Iq4 {
    const W_BYTES: usize = IQ4_NL_BYTES;
    const SIGNED: bool = true;
    const OFFSET: i32 = 0;
    const HAS_MIN: bool = false;
    const NARROW: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> __m256i {
        // SAFETY: per the trait contract.
        unsafe {
            let table = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                IQ4NL_VALUES.as_ptr() as *const __m128i
            ));
            _mm256_shuffle_epi8(table, nibbles_32(p.add(2)))
        }
    }
}

/// Widens eight u16 in the low halves of eight u32 lanes (each < 65536) from f16 to f32.
///
/// # Safety
/// AVX2/F16C enabled in the caller.
#[inline(always)]
unsafe fn f16x8_in_u32_lanes(v: __m256i) -> __m256 {
    // SAFETY: per the function contract.
    unsafe {
        // packus works per 128-bit lane: qwords 0 and 2 hold lanes 0–3 and 4–7.
        let p = _mm256_packus_epi32(v, v);
        _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(
            p,
            0b00_00_10_00,
        )))
    }
}

/// Lanes `k < count` all ones.
///
/// # Safety
/// AVX2 enabled in the caller.
#[inline(always)]
pub(crate) unsafe fn lane_mask(count: usize) -> __m256i {
    // SAFETY: per the function contract.
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(count as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

/// The f16 scales (byte 0) and, for `HAS_MIN` formats, minimums (byte 2) of the `count ≤ 8`
/// consecutive blocks starting at `p`, as f32 lanes (lanes past `count` are 0). One gather
/// instead of eight scalar conversions.
///
/// # Safety
/// `count` whole blocks readable at `p`; AVX2/F16C enabled in the caller.
#[inline(always)]
pub(crate) unsafe fn gather_scales<F: Format>(p: *const u8, count: usize) -> (__m256, __m256) {
    // SAFETY: the gather reads 4 bytes at the start of each of the first `count` blocks (every
    // block is longer than 4 bytes); masked-off lanes read nothing.
    unsafe {
        let stride = F::W_BYTES as i32;
        let offsets = _mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(stride),
        );
        let g = _mm256_mask_i32gather_epi32::<1>(
            _mm256_setzero_si256(),
            p as *const i32,
            offsets,
            lane_mask(count),
        );
        let d = f16x8_in_u32_lanes(_mm256_and_si256(g, _mm256_set1_epi32(0xFFFF)));
        let m = if F::HAS_MIN {
            f16x8_in_u32_lanes(_mm256_srli_epi32(g, 16))
        } else {
            _mm256_setzero_ps()
        };
        (d, m)
    }
}

/// Like [`gather_scales`] without the gather instruction (microcoded and slow on some AMD
/// cores): eight scalar 4-byte loads. Lanes past `count` are 0.
///
/// # Safety
/// `count` whole blocks readable at `p`; AVX2/F16C enabled in the caller.
#[inline(always)]
pub(crate) unsafe fn load_scales<F: Format>(p: *const u8, count: usize) -> (__m256, __m256) {
    // SAFETY: only the first 4 bytes of each of the first `count` blocks are read.
    unsafe {
        let word = |k: usize| {
            if k < count {
                (p.add(k * F::W_BYTES) as *const i32).read_unaligned()
            } else {
                0
            }
        };
        let g = _mm256_setr_epi32(
            word(0),
            word(1),
            word(2),
            word(3),
            word(4),
            word(5),
            word(6),
            word(7),
        );
        let d = f16x8_in_u32_lanes(_mm256_and_si256(g, _mm256_set1_epi32(0xFFFF)));
        let m = if F::HAS_MIN {
            f16x8_in_u32_lanes(_mm256_srli_epi32(g, 16))
        } else {
            _mm256_setzero_ps()
        };
        (d, m)
    }
}

/// Per-block weight factor that multiplies the activation's `s = d_a · Σ q_a`: the minimum
/// for q4_1/q5_1, `-OFFSET · d_w` for q4_0/q5_0, none (`None`) for the signed formats.
///
/// # Safety
/// AVX2 enabled in the caller.
#[inline(always)]
pub(crate) unsafe fn sum_factor<F: Format>(dw: __m256, mw: __m256) -> Option<__m256> {
    // SAFETY: per the function contract.
    unsafe {
        if F::HAS_MIN {
            Some(mw)
        } else if F::OFFSET != 0 {
            Some(_mm256_mul_ps(dw, _mm256_set1_ps(-(F::OFFSET as f32))))
        } else {
            None
        }
    }
}
