//! AVX2 dot products for the 32-value block formats (q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl)
//! against q8_0 / q8_1 activations.
//!
//! Per weight block: unpack its 32 values into one register once, then for each token do an
//! 8-bit multiply-add against that token's q8 block and accumulate `sum * d_w * d_a` in f32
//! lanes. Signed formats move the weight's sign onto the activation (`maddubs` needs one
//! unsigned operand); q4_1/q5_1 are unsigned already and add `m_w * s_a` separately.

use std::arch::x86_64::*;

use super::legacy_formats::*;
use super::x86_util::*;
use super::{checked_blocks, simd_kernel};
use crate::blocks::*;
use crate::path::Avx2;

/// The shared loop; `F` picks the format, activations are q8_0 (or q8_1 if `F::HAS_MIN`).
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
    let nb = checked_blocks(w, F::W_BYTES, &acts, a_bytes);
    // SAFETY: `checked_blocks` proved `nb` whole blocks in `w` and in every activation row;
    // every pointer below stays inside block `b < nb`. Features per the function contract.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); NT];
        let mut mins = [0f32; NT];
        for b in 0..nb {
            let (q, dw, mw) = F::unpack(w.as_ptr().add(b * F::W_BYTES));
            let abs_q = if F::SIGNED { _mm256_sign_epi8(q, q) } else { q };
            for t in 0..NT {
                let y = acts[t].as_ptr().add(b * a_bytes);
                let ys = load256(y.add(a_qs));
                let s = if F::SIGNED {
                    dot_i8_i8_pre(q, abs_q, ys)
                } else {
                    dot_u8_i8(q, ys)
                };
                let d = _mm256_set1_ps(dw * load_f16(y));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[t]);
                if F::HAS_MIN {
                    mins[t] += mw * load_f16(y.add(2));
                }
            }
        }
        for t in 0..NT {
            out[t] = hsum_ps(acc[t]) + mins[t];
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
