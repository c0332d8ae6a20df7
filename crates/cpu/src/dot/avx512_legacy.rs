//! AVX-512 (F + BW) dot products for the 32-value block formats: two blocks per 512-bit
//! register, otherwise the same scheme as `avx2_legacy.rs` (weights unpacked once per pair of
//! blocks and reused for every token). An odd last block runs with a zero upper half.

use std::arch::x86_64::*;

use super::legacy_formats::*;
use super::x86_util::*;
use super::{checked_blocks, simd_kernel};
use crate::blocks::*;
use crate::path::Avx512;

/// Groups of eight blocks as in `avx2_legacy.rs` (gathered weight scales, f32 activation
/// scales from the scratch layout), two blocks per 512-bit register; the pair's two scales
/// are spread over its two halves with one permute.
///
/// # Safety
/// AVX-512F/BW and AVX2/FMA/F16C enabled in the caller.
#[inline(always)]
unsafe fn dot_blocks<F: Format, const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let (a_bytes, a_qs) = if F::HAS_MIN {
        (Q8_1_BYTES, 4)
    } else {
        (Q8_0_BYTES, 2)
    };
    // Each block also has an f32 scale and an f32 sum in the row's tail.
    let nb = checked_blocks(w, F::W_BYTES, &acts, a_bytes + 8);
    // SAFETY: as in the AVX2 kernel: `nb` whole blocks plus the scale arrays in every row;
    // block `b + 1` of a pair is only read when it exists. Features per the contract.
    unsafe {
        let mut acc0 = [_mm512_setzero_ps(); NT];
        let mut acc1 = [_mm512_setzero_ps(); NT];
        let mut acc_min = [_mm256_setzero_ps(); NT];
        let mut g0 = 0;
        while g0 < nb {
            let count = (nb - g0).min(8);
            let mask = lane_mask(count);
            let (dw, mw) = gather_scales::<F>(w.as_ptr().add(g0 * F::W_BYTES), count);
            let d: [__m512; NT] = std::array::from_fn(|t| {
                let da = acts[t].as_ptr().add(nb * a_bytes) as *const f32;
                _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_maskload_ps(da.add(g0), mask)))
            });
            if let Some(f) = sum_factor::<F>(dw, mw) {
                for t in 0..NT {
                    let sa = acts[t].as_ptr().add(nb * a_bytes + 4 * nb) as *const f32;
                    acc_min[t] =
                        _mm256_fmadd_ps(f, _mm256_maskload_ps(sa.add(g0), mask), acc_min[t]);
                }
            }
            for j in 0..4 {
                let b = g0 + 2 * j;
                if 2 * j >= count {
                    break;
                }
                let pair = 2 * j + 1 < count;
                let q0 = F::unpack(w.as_ptr().add(b * F::W_BYTES));
                let q1 = if pair {
                    F::unpack(w.as_ptr().add((b + 1) * F::W_BYTES))
                } else {
                    _mm256_setzero_si256()
                };
                let q = join256(q0, q1);
                let abs_q = if F::SIGNED { _mm512_abs_epi8(q) } else { q };
                // Lanes 0–7 take scale 2j, lanes 8–15 scale 2j + 1.
                let idx = _mm512_add_epi32(
                    _mm512_set1_epi32(2 * j as i32),
                    _mm512_srli_epi32(
                        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                        3,
                    ),
                );
                for t in 0..NT {
                    let yp = acts[t].as_ptr().add(b * a_bytes + a_qs);
                    let y1 = if pair {
                        load256(yp.add(a_bytes))
                    } else {
                        _mm256_setzero_si256()
                    };
                    let y = join256(load256(yp), y1);
                    let s = if F::SIGNED {
                        dot512_i8_i8_pre(q, abs_q, y)
                    } else {
                        dot512_u8_i8(q, y)
                    };
                    let dj = _mm512_permutexvar_ps(idx, d[t]);
                    // Alternate accumulators so pairs do not chain on one FMA. The same for
                    // every `NT`: a token's sum must not depend on how many tokens share
                    // the call (batch invariance).
                    if j % 2 == 1 {
                        acc1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), dj, acc1[t]);
                    } else {
                        acc0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), dj, acc0[t]);
                    }
                }
            }
            g0 += 8;
        }
        for t in 0..NT {
            out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t])) + hsum_ps(acc_min[t]);
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
