//! Unpacking of the 32-value block formats into one 256-bit register of bytes, shared by the
//! AVX2 and AVX-512 kernels (which use it two blocks at a time).

use std::arch::x86_64::*;

use super::x86_util::*;
use crate::blocks::*;

/// How one weight format unpacks. `unpack` returns the 32 values (i8 if `SIGNED`, else u8),
/// the block scale and (for `HAS_MIN` formats) the block minimum.
pub(crate) trait Format {
    const W_BYTES: usize;
    const SIGNED: bool;
    const HAS_MIN: bool;
    /// # Safety
    /// `p` points to a whole block; AVX2/FMA/F16C enabled in the caller (the AVX-512 kernels
    /// enable them too).
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32);
}

pub(crate) struct Q40;
impl Format for Q40 {
    const W_BYTES: usize = Q4_0_BYTES;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // SAFETY: per the trait contract.
        unsafe {
            let q = _mm256_sub_epi8(nibbles_32(p.add(2)), _mm256_set1_epi8(8));
            (q, load_f16(p), 0.0)
        }
    }
}

pub(crate) struct Q41;
impl Format for Q41 {
    const W_BYTES: usize = Q4_1_BYTES;
    const SIGNED: bool = false;
    const HAS_MIN: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // SAFETY: per the trait contract.
        unsafe { (nibbles_32(p.add(4)), load_f16(p), load_f16(p.add(2))) }
    }
}

pub(crate) struct Q50;
impl Format for Q50 {
    const W_BYTES: usize = Q5_0_BYTES;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // SAFETY: per the trait contract.
        unsafe {
            let high = bits_to_bytes((p.add(2) as *const u32).read_unaligned());
            // Value - 16: OR-ing 0xF0 into a nibble whose 5th bit is clear makes it (nib - 16)
            // as i8; a set 5th bit gives nib + 16 - 16.
            let q = _mm256_or_si256(
                nibbles_32(p.add(6)),
                _mm256_andnot_si256(high, _mm256_set1_epi8(0xF0u8 as i8)),
            );
            (q, load_f16(p), 0.0)
        }
    }
}

pub(crate) struct Q51;
impl Format for Q51 {
    const W_BYTES: usize = Q5_1_BYTES;
    const SIGNED: bool = false;
    const HAS_MIN: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // SAFETY: per the trait contract.
        unsafe {
            let high = bits_to_bytes((p.add(4) as *const u32).read_unaligned());
            let q = _mm256_or_si256(
                nibbles_32(p.add(8)),
                _mm256_and_si256(high, _mm256_set1_epi8(0x10)),
            );
            (q, load_f16(p), load_f16(p.add(2)))
        }
    }
}

pub(crate) struct Q80;
impl Format for Q80 {
    const W_BYTES: usize = Q8_0_BYTES;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // SAFETY: per the trait contract.
        unsafe { (load256(p.add(2)), load_f16(p), 0.0) }
    }
}

pub(crate) struct Iq4;
impl Format for Iq4 {
    const W_BYTES: usize = IQ4_NL_BYTES;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // SAFETY: per the trait contract.
        unsafe {
            let table = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                IQ4NL_VALUES.as_ptr() as *const __m128i
            ));
            (
                _mm256_shuffle_epi8(table, nibbles_32(p.add(2))),
                load_f16(p),
                0.0,
            )
        }
    }
}
