//! AVX2 dot products for the 32-value block formats (q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl)
//! against q8_0 / q8_1 activations.
//!
//! Per weight block: unpack its 32 values into one register once, then for each token do an
//! 8-bit multiply-add against that token's q8 block and accumulate `sum * d_w * d_a` in f32
//! lanes (scales fetched eight blocks at a time, see `dot_blocks`). Signed formats move the weight's sign onto the activation (`maddubs` needs one
//! unsigned operand); q4_1/q5_1 are unsigned already and add `m_w * s_a` separately.

use std::arch::x86_64::*;

use super::legacy_formats::*;
use super::x86_util::*;
use super::{checked_blocks, simd_kernel};
use crate::blocks::*;
use crate::path::Avx2;

/// The shared loop; `F` picks the format, activations are q8_0 (or q8_1 if `F::HAS_MIN`)
/// rows in the matmul scratch layout: the blocks, then one f32 per block holding its scale,
/// then one f32 per block holding its `s = d · Σ q`.
///
/// Blocks go in groups of eight: one gather fetches the eight weight scales, one load the
/// eight activation scales, and each block's scale is then a lane permute.
///
/// # Safety
/// AVX2/FMA/F16C enabled in the caller (this is inlined into `#[target_feature]` entries).
#[inline(always)]
unsafe fn dot_blocks<F: Format, const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
    let (a_bytes, a_qs) = if F::HAS_MIN {
        (Q8_1_BYTES, 4)
    } else {
        (Q8_0_BYTES, 2)
    };
    // Each block also has an f32 scale and an f32 sum in the row's tail.
    let nb = checked_blocks(w, F::W_BYTES, &acts, a_bytes + 8);
    // SAFETY: `checked_blocks` proved `nb` whole weight blocks and, in every activation row,
    // `nb` blocks followed by the f32 scale arrays; all accesses below are within those.
    // Features per the function contract.
    unsafe {
        let mut acc0 = [_mm256_setzero_ps(); NT];
        let mut acc1 = [_mm256_setzero_ps(); NT];
        let mut acc_min = [_mm256_setzero_ps(); NT];
        let mut g0 = 0;
        while g0 < nb {
            let count = (nb - g0).min(8);
            let mask = lane_mask(count);
            let (dw, mw) = gather_scales::<F>(w.as_ptr().add(g0 * F::W_BYTES), count);
            let d: [__m256; NT] = std::array::from_fn(|t| {
                let da = acts[t].as_ptr().add(nb * a_bytes) as *const f32;
                _mm256_mul_ps(dw, _mm256_maskload_ps(da.add(g0), mask))
            });
            if let Some(f) = sum_factor::<F>(dw, mw) {
                for t in 0..NT {
                    let sa = acts[t].as_ptr().add(nb * a_bytes + 4 * nb) as *const f32;
                    acc_min[t] =
                        _mm256_fmadd_ps(f, _mm256_maskload_ps(sa.add(g0), mask), acc_min[t]);
                }
            }
            for k in 0..8 {
                if k >= count {
                    break;
                }
                let b = g0 + k;
                let q = F::unpack(w.as_ptr().add(b * F::W_BYTES));
                let abs_q = if F::SIGNED { _mm256_sign_epi8(q, q) } else { q };
                let lane = _mm256_set1_epi32(k as i32);
                for t in 0..NT {
                    let y = load256(acts[t].as_ptr().add(b * a_bytes + a_qs));
                    let s = if F::SIGNED {
                        dot_i8_i8_pre(q, abs_q, y)
                    } else {
                        dot_u8_i8(q, y)
                    };
                    let dk = _mm256_permutevar8x32_ps(d[t], lane);
                    // With one or two tokens, alternate blocks between two accumulators so
                    // the FMA latency is hidden; with more, the tokens' chains already
                    // interleave and extra accumulators would only spill registers.
                    if NT <= 2 && k % 2 == 1 {
                        acc1[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dk, acc1[t]);
                    } else {
                        acc0[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dk, acc0[t]);
                    }
                }
            }
            g0 += 8;
        }
        for t in 0..NT {
            out[t] = hsum_ps(_mm256_add_ps(acc0[t], acc1[t])) + hsum_ps(acc_min[t]);
        }
    }
}

macro_rules! entry {
    ($fname:ident, $fmt:ty, $kname:ident) => {
        /// # Safety
        /// The CPU supports AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $fname<const NT: usize>(w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
            // SAFETY: features enabled on this function; lengths checked inside.
            unsafe { dot_blocks::<$fmt, NT>(w, acts, out) }
        }
        simd_kernel!($kname, Avx2, $fname, u8);
    };
}

entry!(q4_0, Q40, Q4_0);
entry!(q4_1, Q41, Q4_1);
entry!(q5_0, Q50, Q5_0);
entry!(q5_1, Q51, Q5_1);
entry!(q8_0, Q80, Q8_0);
entry!(iq4_nl, Iq4, Iq4Nl);
