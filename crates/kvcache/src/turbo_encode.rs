//! A fast TurboQuant block encoder (AVX2) that produces exactly the bytes of the reference
//! quantizer in `formats::turbo` (tested on random and edge-case blocks).
//!
//! Exactness: the two norms (`Σ x²`, `Σ C[idx]²`) are summed in index order on scalars, as the
//! specification requires; everything else is elementwise and therefore exact when
//! vectorized: scaling, sign flips, the Hadamard butterflies (`a + b` is commutative in IEEE
//! arithmetic, and every `a − b` keeps its operand order), and the codebook search, which
//! counts the midpoints `M[i]` with `!(u < M[i])` — the index of the first midpoint above `u`
//! because the midpoints ascend (and the last index for NaN, as the reference).

use std::arch::x86_64::*;

use formats::rotation::{INV_SQRT_128, SIGNS_1, SIGNS_2};
use formats::turbo::{
    norm_to_f16, CENTROIDS_2, CENTROIDS_3, CENTROIDS_4, MIDPOINTS_2, MIDPOINTS_3, MIDPOINTS_4,
    QK_TURBO,
};

use crate::types::KvType;

/// Below this a norm counts as zero (TURBO-KV.md).
const NORM_EPS: f32 = 1e-10;

/// `±1.0` per element of a sign diagonal.
const fn sign_table(signs: &[u8; 16], scale: f32) -> [f32; QK_TURBO] {
    let mut t = [0.0f32; QK_TURBO];
    let mut i = 0;
    while i < QK_TURBO {
        t[i] = if (signs[i >> 3] >> (i & 7)) & 1 == 1 {
            -scale
        } else {
            scale
        };
        i += 1;
    }
    t
}

const S1: [f32; QK_TURBO] = sign_table(&SIGNS_1, 1.0);
/// The reference multiplies by `INV_SQRT_128 · sign`, which is exactly `±INV_SQRT_128`.
const S2_SCALED: [f32; QK_TURBO] = sign_table(&SIGNS_2, INV_SQRT_128);

/// True if [`encode_group`] may run on this CPU.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// One butterfly stage with stride `h` < 8, inside each 8-lane vector: lanes with bit `h`
/// clear get `a + b`, their partners `a − b` (a: lower lane, b: upper lane).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn butterfly_in_lanes(x: __m256, swapped: __m256, upper: __m256) -> __m256 {
    let sum = _mm256_add_ps(x, swapped);
    // In an upper lane, `swapped` holds a and `x` holds b.
    let diff = _mm256_sub_ps(swapped, x);
    _mm256_blendv_ps(sum, diff, upper)
}

/// Encodes one 128-value group of type `ty` into `out` (`ty.block_bytes()` bytes).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn encode_group(ty: KvType, x: &[f32; QK_TURBO], out: &mut [u8]) {
    let (centroids, midpoints): (&[f32], &[f32]) = match ty {
        KvType::Turbo2 => (&CENTROIDS_2, &MIDPOINTS_2),
        KvType::Turbo3 => (&CENTROIDS_3, &MIDPOINTS_3),
        _ => (&CENTROIDS_4, &MIDPOINTS_4),
    };
    let mut n2 = 0.0f32;
    for &v in x {
        n2 += v * v;
    }
    let g = n2.sqrt();
    let inv = if g > NORM_EPS { 1.0 / g } else { 0.0 };

    // u = S1 · (x · inv), then the butterflies, then S2/√128.
    let mut u = [_mm256_setzero_ps(); 16];
    let vinv = _mm256_set1_ps(inv);
    for (k, u) in u.iter_mut().enumerate() {
        let v = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(8 * k)), vinv);
        *u = _mm256_mul_ps(v, _mm256_loadu_ps(S1.as_ptr().add(8 * k)));
    }
    let lane_bit = |bit: i32| {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let set = _mm256_and_si256(lanes, _mm256_set1_epi32(bit));
        _mm256_castsi256_ps(_mm256_cmpeq_epi32(set, _mm256_set1_epi32(bit)))
    };
    let (upper1, upper2, upper4) = (lane_bit(1), lane_bit(2), lane_bit(4));
    for v in u.iter_mut() {
        // h = 1: swap neighbours; h = 2: swap pairs; h = 4: swap the 128-bit halves.
        let s = _mm256_permute_ps(*v, 0b10_11_00_01);
        *v = butterfly_in_lanes(*v, s, upper1);
        let s = _mm256_permute_ps(*v, 0b01_00_11_10);
        *v = butterfly_in_lanes(*v, s, upper2);
        let s = _mm256_permute2f128_ps(*v, *v, 0x01);
        *v = butterfly_in_lanes(*v, s, upper4);
    }
    let mut h = 1; // in vectors of 8
    while h < 16 {
        for base in (0..16).step_by(2 * h) {
            for j in base..base + h {
                let (a, b) = (u[j], u[j + h]);
                u[j] = _mm256_add_ps(a, b);
                u[j + h] = _mm256_sub_ps(a, b);
            }
        }
        h *= 2;
    }

    // Codebook indices: how many midpoints are not above u.
    let mut idx = [0i32; QK_TURBO];
    let one = _mm256_set1_epi32(1);
    for (k, v) in u.iter().enumerate() {
        let v = _mm256_mul_ps(*v, _mm256_loadu_ps(S2_SCALED.as_ptr().add(8 * k)));
        let mut count = _mm256_setzero_si256();
        for &m in midpoints {
            let not_below = _mm256_cmp_ps(v, _mm256_set1_ps(m), _CMP_NLT_UQ);
            count = _mm256_add_epi32(count, _mm256_and_si256(_mm256_castps_si256(not_below), one));
        }
        _mm256_storeu_si256(idx.as_mut_ptr().add(8 * k) as *mut __m256i, count);
    }

    let mut r2 = 0.0f32;
    for &i in &idx {
        let c = centroids[i as usize];
        r2 += c * c;
    }
    let rn = r2.sqrt();
    let norm = if rn > NORM_EPS { g / rn } else { g };
    out[..2].copy_from_slice(&norm_to_f16(norm).to_bits().to_le_bytes());
    let body = &mut out[2..ty.block_bytes()];
    body.fill(0);
    match ty {
        KvType::Turbo2 | KvType::Turbo3 => {
            for (j, &i) in idx.iter().enumerate() {
                body[j >> 2] |= ((i & 3) as u8) << (2 * (j & 3));
                if ty == KvType::Turbo3 {
                    body[32 + (j >> 3)] |= (((i >> 2) & 1) as u8) << (j & 7);
                }
            }
        }
        _ => {
            for (j, &i) in idx.iter().enumerate() {
                body[j >> 1] |= ((i & 15) as u8) << (4 * (j & 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks() -> Vec<[f32; QK_TURBO]> {
        let mut seed = 0x1234_5678u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut out = Vec::new();
        for scale in [1.0f32, 1e-3, 30.0, 1e-12, 1e6, 1e30] {
            for _ in 0..200 {
                let mut b = [0.0f32; QK_TURBO];
                for v in b.iter_mut() {
                    *v = next() * scale;
                }
                out.push(b);
            }
        }
        // Zeros, one spike, a constant, half padding, values on midpoints after rotation.
        out.push([0.0; QK_TURBO]);
        let mut spike = [0.0f32; QK_TURBO];
        spike[17] = 3.0;
        out.push(spike);
        out.push([0.25; QK_TURBO]);
        let mut half = [0.0f32; QK_TURBO];
        for (i, v) in half.iter_mut().take(64).enumerate() {
            *v = (i as f32 * 0.3).sin();
        }
        out.push(half);
        let mut neg_zero = [0.0f32; QK_TURBO];
        neg_zero[3] = -0.0;
        neg_zero[5] = 1.0;
        out.push(neg_zero);
        out
    }

    #[test]
    fn bytes_match_the_reference_quantizer() {
        if !available() {
            eprintln!("skipped: this CPU lacks AVX2/FMA/F16C");
            return;
        }
        for ty in [KvType::Turbo2, KvType::Turbo3, KvType::Turbo4] {
            for (n, b) in blocks().iter().enumerate() {
                let mut want = vec![0u8; ty.block_bytes()];
                formats::quantize(ty.ggml(), b, &mut want).unwrap();
                let mut got = vec![0xAAu8; ty.block_bytes()];
                unsafe { encode_group(ty, b, &mut got) };
                assert_eq!(got, want, "{ty} block {n}");
            }
        }
    }
}
