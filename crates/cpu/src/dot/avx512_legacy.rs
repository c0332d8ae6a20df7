//! AVX-512 (F + BW) dot products for the 32-value block formats: two blocks per 512-bit
//! register, otherwise the same scheme as `avx2_legacy.rs` (weights unpacked once per pair of
//! blocks and reused for every token). An odd last block runs with a zero upper half.

use std::arch::x86_64::*;

use super::legacy_formats::*;
use super::x86_util::*;
use super::{checked_blocks, simd_kernel};
use crate::blocks::*;
use crate::path::Avx512;

/// # Safety
/// AVX-512F/BW and AVX2/FMA/F16C enabled in the caller.
#[inline(always)]
unsafe fn dot_blocks<F: Format, const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let (a_bytes, a_qs) = if F::HAS_MIN {
        (Q8_1_BYTES, 4)
    } else {
        (Q8_0_BYTES, 2)
    };
    let nb = checked_blocks(w, F::W_BYTES, &acts, a_bytes);
    // SAFETY: `nb` whole blocks in `w` and in every activation row (checked above); block
    // `b + 1` is only read when `b + 1 < nb`. Features per the function contract.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); NT];
        let mut mins = [0f32; NT];
        let mut b = 0;
        while b < nb {
            let pair = b + 1 < nb;
            let (q0, d0, m0) = F::unpack(w.as_ptr().add(b * F::W_BYTES));
            let (q1, d1, m1) = if pair {
                F::unpack(w.as_ptr().add((b + 1) * F::W_BYTES))
            } else {
                (_mm256_setzero_si256(), 0.0, 0.0)
            };
            let q = join256(q0, q1);
            let abs_q = if F::SIGNED { _mm512_abs_epi8(q) } else { q };
            for t in 0..NT {
                let y0p = acts[t].as_ptr().add(b * a_bytes);
                let y0 = load256(y0p.add(a_qs));
                let (y1, dy1) = if pair {
                    let y1p = y0p.add(a_bytes);
                    if F::HAS_MIN {
                        mins[t] += m1 * load_f16(y1p.add(2));
                    }
                    (load256(y1p.add(a_qs)), load_f16(y1p))
                } else {
                    (_mm256_setzero_si256(), 0.0)
                };
                if F::HAS_MIN {
                    mins[t] += m0 * load_f16(y0p.add(2));
                }
                let y = join256(y0, y1);
                let s = if F::SIGNED {
                    dot512_i8_i8_pre(q, abs_q, y)
                } else {
                    dot512_u8_i8(q, y)
                };
                let d = _mm512_mask_blend_ps(
                    0xFF00,
                    _mm512_set1_ps(d0 * load_f16(y0p)),
                    _mm512_set1_ps(d1 * dy1),
                );
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[t]);
            }
            b += 2;
        }
        for t in 0..NT {
            out[t] = _mm512_reduce_add_ps(acc[t]) + mins[t];
        }
    }
}

macro_rules! entry {
    ($fname:ident, $fmt:ty, $kname:ident) => {
        /// # Safety
        /// The CPU supports AVX-512F/BW, AVX2, FMA and F16C.
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn $fname<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
            // SAFETY: features enabled on this function; lengths checked inside.
            unsafe { dot_blocks::<$fmt, NT>(w, acts, out) }
        }
        simd_kernel!($kname, Avx512, $fname, u8);
    };
}

entry!(q4_0, Q40, Q4_0);
entry!(q4_1, Q41, Q4_1);
entry!(q5_0, Q50, Q5_0);
entry!(q5_1, Q51, Q5_1);
entry!(q8_0, Q80, Q8_0);
entry!(iq4_nl, Iq4, Iq4Nl);
