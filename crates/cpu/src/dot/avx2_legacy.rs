//! AVX2 dot products for the 32-value block formats (q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl)
//! against q8_0 / q8_1 activations.
//!
//! Blocks go in groups of eight. Per block, the weight's 32 values are unpacked into one
//! register once and multiplied (`maddubs`) into every token's q8 block; the eight blocks'
//! integer sums are then reduced together into one i32 vector (lane k = block k's exact sum),
//! converted once and multiplied by the eight `d_w · d_a` scale products with one FMA. Per
//! block that is one or two integer multiplies and a few shuffles, and no per-block float
//! work: on cores where 256-bit integer multiplies are the bottleneck (AMD Zen 1 runs them at
//! half rate) that halves the multiplier work of the classic `maddubs`, `madd`, `cvt`, `fma`
//! per block.
//!
//! Every token's result takes exactly the same operations in the same order whatever the
//! number of tokens per call (`NT`), so a row's output never depends on which other rows
//! share its batch (batch invariance: the server's outputs do not depend on concurrency).
//!
//! Signed formats move the weight's sign onto the activation (`maddubs` needs one unsigned
//! operand); q4_1/q5_1 are unsigned already and add `m_w · s_a` per block through the
//! activation row's block sums, q4_0/q5_0 subtract their offset the same way.

use std::arch::x86_64::*;

use super::legacy_formats::*;
use super::x86_util::*;
use super::{checked_blocks, simd_kernel};
use crate::blocks::*;
use crate::path::Avx2;

/// Sums of two vectors' i16 lanes in adjacent pairs, interleaved: per 128-bit lane
/// `[a, b, a, b, a, b, a, b]` (each the sum of two lanes of `a` or of `b`).
#[inline(always)]
unsafe fn fold16(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe { _mm256_add_epi16(_mm256_unpacklo_epi16(a, b), _mm256_unpackhi_epi16(a, b)) }
}

/// Second fold: `[a, b, a, b, ...]` and `[c, d, c, d, ...]` into `[a, b, c, d, a, b, c, d]`.
#[inline(always)]
unsafe fn fold32(ab: __m256i, cd: __m256i) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe { _mm256_add_epi16(_mm256_unpacklo_epi32(ab, cd), _mm256_unpackhi_epi32(ab, cd)) }
}

/// Last fold of the 16-bit tree: per 128-bit lane, i16 lane k is block k's partial sum; the
/// two 128-bit halves are widened to i32 and added, giving each block's exact total.
#[inline(always)]
unsafe fn fold64_widen(a03: __m256i, a47: __m256i) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe {
        let v = _mm256_add_epi16(
            _mm256_unpacklo_epi64(a03, a47),
            _mm256_unpackhi_epi64(a03, a47),
        );
        _mm256_add_epi32(
            _mm256_cvtepi16_epi32(_mm256_castsi256_si128(v)),
            _mm256_cvtepi16_epi32(_mm256_extracti128_si256(v, 1)),
        )
    }
}

/// The i32 form of the tree (for formats whose `maddubs` lanes are too large to add in 16
/// bits): `[a, b, a, b]` per 128-bit lane from two blocks' 8 i32 lanes.
#[inline(always)]
unsafe fn fold32_wide(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe { _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b)) }
}

#[inline(always)]
unsafe fn fold64_wide(ab: __m256i, cd: __m256i) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe { _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd)) }
}

/// `[a, b, c, d]` and `[e, f, g, h]` partials in both 128-bit halves into the eight totals.
#[inline(always)]
unsafe fn fold128_wide(a03: __m256i, a47: __m256i) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe {
        _mm256_add_epi32(
            _mm256_permute2x128_si256(a03, a47, 0x20),
            _mm256_permute2x128_si256(a03, a47, 0x31),
        )
    }
}

/// Products of weight block `b` with every token's q8 block: i16 lanes (narrow formats) or
/// i32 lanes (the others).
///
/// # Safety
/// Block `b` readable in `w` and every activation row; AVX2 enabled in the caller.
#[inline(always)]
unsafe fn block_products<F: Format, const NT: usize>(
    w: &[u8],
    acts: &[&[u8]; NT],
    b: usize,
    a_bytes: usize,
    a_qs: usize,
) -> [__m256i; NT] {
    let mut p = [_mm256_setzero_si256(); NT];
    // SAFETY: per the function contract.
    unsafe {
        let q = F::unpack(w.as_ptr().add(b * F::W_BYTES));
        let abs_q = if F::SIGNED { _mm256_sign_epi8(q, q) } else { q };
        for t in 0..NT {
            let y = load256(acts[t].as_ptr().add(b * a_bytes + a_qs));
            let y = if F::SIGNED { _mm256_sign_epi8(y, q) } else { y };
            let m = _mm256_maddubs_epi16(abs_q, y);
            p[t] = if F::NARROW {
                m
            } else {
                _mm256_madd_epi16(m, _mm256_set1_epi16(1))
            };
        }
    }
    p
}

/// First and second folds of the block-sum tree, in the lane width of format `F`.
#[inline(always)]
unsafe fn fold_pair<F: Format>(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe {
        if F::NARROW {
            fold16(a, b)
        } else {
            fold32_wide(a, b)
        }
    }
}

#[inline(always)]
unsafe fn fold_quad<F: Format>(ab: __m256i, cd: __m256i) -> __m256i {
    // SAFETY: AVX2 (module contract).
    unsafe {
        if F::NARROW {
            fold32(ab, cd)
        } else {
            fold64_wide(ab, cd)
        }
    }
}

/// Exact integer sums of four consecutive blocks from `b0` for every token, as partials
/// `[b0, b0+1, b0+2, b0+3]` in the tree's layout.
///
/// # Safety
/// As [`block_products`].
#[inline(always)]
unsafe fn four_blocks<F: Format, const NT: usize>(
    w: &[u8],
    acts: &[&[u8]; NT],
    b0: usize,
    a_bytes: usize,
    a_qs: usize,
) -> [__m256i; NT] {
    // SAFETY: per the function contract.
    unsafe {
        let p0 = block_products::<F, NT>(w, acts, b0, a_bytes, a_qs);
        let p1 = block_products::<F, NT>(w, acts, b0 + 1, a_bytes, a_qs);
        let mut f01 = [_mm256_setzero_si256(); NT];
        for t in 0..NT {
            f01[t] = fold_pair::<F>(p0[t], p1[t]);
        }
        let p2 = block_products::<F, NT>(w, acts, b0 + 2, a_bytes, a_qs);
        let p3 = block_products::<F, NT>(w, acts, b0 + 3, a_bytes, a_qs);
        for t in 0..NT {
            f01[t] = fold_quad::<F>(f01[t], fold_pair::<F>(p2[t], p3[t]));
        }
        f01
    }
}

/// Blocks `g0..g0 + 8` into every token's accumulator: their exact integer sums reduced into
/// one i32 vector per token (lane k: block `g0 + k`), then one FMA with the eight scale
/// products and, for formats with a minimum or offset, one with the block sums `s_a`.
///
/// # Safety
/// As [`dot_blocks`], with `g0 + 8 <= nb` (`nb` locates the scale arrays).
#[inline(always)]
unsafe fn group<F: Format, const NT: usize>(
    w: &[u8],
    acts: &[&[u8]; NT],
    g0: usize,
    nb: usize,
    a_bytes: usize,
    a_qs: usize,
    acc: &mut [__m256; NT],
) {
    // SAFETY: per the function contract.
    unsafe {
        let lo = four_blocks::<F, NT>(w, acts, g0, a_bytes, a_qs);
        let hi = four_blocks::<F, NT>(w, acts, g0 + 4, a_bytes, a_qs);
        let (dw, mw) = load_scales::<F>(w.as_ptr().add(g0 * F::W_BYTES), 8);
        let factor = sum_factor::<F>(dw, mw);
        for t in 0..NT {
            let isum = if F::NARROW {
                fold64_widen(lo[t], hi[t])
            } else {
                fold128_wide(lo[t], hi[t])
            };
            let tail = acts[t].as_ptr().add(nb * a_bytes) as *const f32;
            let da = _mm256_loadu_ps(tail.add(g0));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, da), acc[t]);
            if let Some(f) = factor {
                let sa = _mm256_loadu_ps(tail.add(nb + g0));
                acc[t] = _mm256_fmadd_ps(f, sa, acc[t]);
            }
        }
    }
}

/// The shared loop; `F` picks the format, activations are q8_0 (or q8_1 if `F::HAS_MIN`)
/// rows in the matmul scratch layout: the blocks, then one f32 per block holding its scale,
/// then one f32 per block holding its `s = d · Σ q`.
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
    // `nb` blocks followed by the f32 scale arrays; only blocks `< nb` are read. Features per
    // the function contract.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); NT];
        let mut g0 = 0;
        while g0 + 8 <= nb {
            group::<F, NT>(w, &acts, g0, nb, a_bytes, a_qs, &mut acc);
            g0 += 8;
        }
        // The last 1–7 blocks one at a time (a whole tree for two blocks would cost as
        // much as eight): scale products broadcast per block, offsets in a scalar sum.
        let mut tail_sum = [0f32; NT];
        for b in g0..nb {
            let x = w.as_ptr().add(b * F::W_BYTES);
            let q = F::unpack(x);
            let abs_q = if F::SIGNED { _mm256_sign_epi8(q, q) } else { q };
            // Scale (and minimum) widened by F16C from one full-register `vmovd`, which
            // depends on nothing earlier (unlike an insert into a live register).
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((x as *const i32).read_unaligned()));
            let dw = _mm_cvtss_f32(dm);
            let factor = if F::HAS_MIN {
                _mm_cvtss_f32(_mm_movehdup_ps(dm))
            } else {
                -(F::OFFSET as f32) * dw
            };
            for t in 0..NT {
                let y = load256(acts[t].as_ptr().add(b * a_bytes + a_qs));
                let y = if F::SIGNED { _mm256_sign_epi8(y, q) } else { y };
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(abs_q, y), _mm256_set1_epi16(1));
                let scales = acts[t].as_ptr().add(nb * a_bytes) as *const f32;
                let d = _mm256_set1_ps(dw * scales.add(b).read_unaligned());
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc[t]);
                if F::HAS_MIN || F::OFFSET != 0 {
                    tail_sum[t] += factor * scales.add(nb + b).read_unaligned();
                }
            }
        }
        for t in 0..NT {
            out[t] = hsum_ps(acc[t]) + tail_sum[t];
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
