//! One head of one token, encoded into and decoded out of its cache type.
//!
//! Encoding uses the `formats` crate's reference quantizers, so stored bytes are exactly what
//! ggml (or the TurboQuant reference) would store; turbo groups go through a faster AVX2
//! encoder where the CPU has it, which writes the same bytes (`turbo_encode`). Decoding is this crate's own: the attention
//! kernel decodes one head row at a time into a small scratch, and these loops are written for
//! that (no per-block dispatch, no block copies). Tests check them against `formats::dequantize`.
//!
//! Turbo rows decode to the *rotated* domain (`C[idx] · norm`); the kernel keeps them there.

use formats::iquants::KVALUES_IQ4NL;
use formats::turbo::{self, QK_TURBO};
use half::{bf16, f16};

use crate::error::{KvError, Result};
use crate::types::KvType;

/// Writes one head (`src.len()` = unpadded head size) into `dst` (its padded size in `ty`).
/// Turbo types pad each head to a multiple of 128 with zeros before rotating, and store
/// `src − center` when a center is given (the cache's key centering; ignored for other types).
pub(crate) fn encode_head(
    ty: KvType,
    src: &[f32],
    center: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<()> {
    let err = |e: formats::FormatError| KvError::Quantize {
        ty: ty.name(),
        msg: e.to_string(),
    };
    if !ty.is_turbo() {
        return formats::quantize(ty.ggml(), src, dst).map_err(err);
    }
    let bytes = ty.block_bytes();
    #[cfg(target_arch = "x86_64")]
    let fast = crate::turbo_encode::available();
    for (g, out) in dst.chunks_exact_mut(bytes).enumerate() {
        let start = g * QK_TURBO;
        let end = src.len().min(start + QK_TURBO);
        let mut group = [0.0f32; QK_TURBO];
        if start < end {
            group[..end - start].copy_from_slice(&src[start..end]);
            if let Some(c) = center {
                for (x, m) in group[..end - start].iter_mut().zip(&c[start..end]) {
                    *x -= m;
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if fast && out.len() == bytes {
            // SAFETY: `available()` checked the CPU features.
            unsafe { crate::turbo_encode::encode_group(ty, &group, out) };
            continue;
        }
        formats::quantize(ty.ggml(), &group, out).map_err(err)?;
    }
    Ok(())
}

#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Decodes one head row `src` of type `ty` into `dst` (its padded length). Turbo rows come out
/// in the rotated domain.
pub(crate) fn decode_head(ty: KvType, src: &[u8], dst: &mut [f32]) {
    match ty {
        KvType::F32 => {
            for (b, y) in src.chunks_exact(4).zip(dst.iter_mut()) {
                *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        KvType::F16 => {
            for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
                *y = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            }
        }
        KvType::Bf16 => {
            for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
                *y = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            }
        }
        KvType::Q8_0 => {
            for (b, y) in src.chunks_exact(34).zip(dst.chunks_exact_mut(32)) {
                let d = f16_at(b, 0);
                for (q, y) in b[2..].iter().zip(y) {
                    *y = (*q as i8) as f32 * d;
                }
            }
        }
        KvType::Q4_0 => {
            for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(32)) {
                let d = f16_at(b, 0);
                let (lo, hi) = y.split_at_mut(16);
                for ((q, l), h) in b[2..].iter().zip(lo).zip(hi) {
                    *l = ((q & 15) as i32 - 8) as f32 * d;
                    *h = ((q >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        KvType::Q4_1 => {
            for (b, y) in src.chunks_exact(20).zip(dst.chunks_exact_mut(32)) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let (lo, hi) = y.split_at_mut(16);
                for ((q, l), h) in b[4..].iter().zip(lo).zip(hi) {
                    *l = (q & 15) as f32 * d + m;
                    *h = (q >> 4) as f32 * d + m;
                }
            }
        }
        KvType::Q5_0 => {
            for (b, y) in src.chunks_exact(22).zip(dst.chunks_exact_mut(32)) {
                let d = f16_at(b, 0);
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let (lo, hi) = y.split_at_mut(16);
                for (j, ((q, l), h)) in b[6..].iter().zip(lo).zip(hi).enumerate() {
                    let h0 = ((qh >> j) & 1) << 4;
                    let h1 = ((qh >> (j + 16)) & 1) << 4;
                    *l = (((*q as u32 & 15) | h0) as i32 - 16) as f32 * d;
                    *h = (((*q as u32 >> 4) | h1) as i32 - 16) as f32 * d;
                }
            }
        }
        KvType::Q5_1 => {
            for (b, y) in src.chunks_exact(24).zip(dst.chunks_exact_mut(32)) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let (lo, hi) = y.split_at_mut(16);
                for (j, ((q, l), h)) in b[8..].iter().zip(lo).zip(hi).enumerate() {
                    let h0 = ((qh >> j) & 1) << 4;
                    let h1 = ((qh >> (j + 16)) & 1) << 4;
                    *l = ((*q as u32 & 15) | h0) as f32 * d + m;
                    *h = ((*q as u32 >> 4) | h1) as f32 * d + m;
                }
            }
        }
        KvType::Iq4Nl => {
            for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(32)) {
                let d = f16_at(b, 0);
                let (lo, hi) = y.split_at_mut(16);
                for ((q, l), h) in b[2..].iter().zip(lo).zip(hi) {
                    *l = KVALUES_IQ4NL[(q & 15) as usize] as f32 * d;
                    *h = KVALUES_IQ4NL[(q >> 4) as usize] as f32 * d;
                }
            }
        }
        KvType::Turbo2 | KvType::Turbo3 | KvType::Turbo4 => {
            let centroids = turbo_centroids(ty);
            let mut idx = [0u8; QK_TURBO];
            for (b, y) in src
                .chunks_exact(ty.block_bytes())
                .zip(dst.chunks_exact_mut(QK_TURBO))
            {
                let norm = turbo_indices(ty, b, &mut idx);
                for (i, y) in idx.iter().zip(y) {
                    *y = centroids[*i as usize] * norm;
                }
            }
        }
    }
}

/// The codebook of a turbo type (empty for other types).
pub(crate) fn turbo_centroids(ty: KvType) -> &'static [f32] {
    match ty {
        KvType::Turbo2 => &turbo::CENTROIDS_2,
        KvType::Turbo3 => &turbo::CENTROIDS_3,
        KvType::Turbo4 => &turbo::CENTROIDS_4,
        _ => &[],
    }
}

/// Unpacks the 128 codebook indices of one turbo block and returns its norm.
#[inline]
pub(crate) fn turbo_indices(ty: KvType, block: &[u8], idx: &mut [u8; QK_TURBO]) -> f32 {
    let norm = f16_at(block, 0);
    match ty {
        KvType::Turbo2 => {
            for (q, out) in block[2..34].iter().zip(idx.chunks_exact_mut(4)) {
                for (k, o) in out.iter_mut().enumerate() {
                    *o = (q >> (2 * k)) & 3;
                }
            }
        }
        KvType::Turbo3 => {
            let (qs, signs) = block[2..50].split_at(32);
            for (q, out) in qs.iter().zip(idx.chunks_exact_mut(4)) {
                for (k, o) in out.iter_mut().enumerate() {
                    *o = (q >> (2 * k)) & 3;
                }
            }
            for (s, out) in signs.iter().zip(idx.chunks_exact_mut(8)) {
                for (k, o) in out.iter_mut().enumerate() {
                    *o |= ((s >> k) & 1) << 2;
                }
            }
        }
        KvType::Turbo4 => {
            for (q, out) in block[2..66].iter().zip(idx.chunks_exact_mut(2)) {
                out[0] = q & 15;
                out[1] = q >> 4;
            }
        }
        _ => {}
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ALL_KV_TYPES;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // Deterministic, sign-mixed, with a few large entries so scales differ per block.
        (0..n)
            .map(|i| {
                let x = ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                    / (1u32 << 24) as f32;
                let v = x * 2.0 - 1.0;
                if i % 37 == 5 {
                    v * 8.0
                } else {
                    v
                }
            })
            .collect()
    }

    /// The fast decoder agrees exactly with the reference dequantizer of `formats` for every
    /// type, on bytes the reference quantizer wrote.
    #[test]
    fn decode_matches_formats_dequantize() {
        for ty in ALL_KV_TYPES {
            for head_dim in [64usize, 128, 256] {
                let padded = ty.padded_head_dim(head_dim).unwrap();
                let mut bytes = vec![0u8; ty.head_bytes(head_dim).unwrap()];
                let src = values(head_dim, head_dim as u32 + ty.block_bytes() as u32);
                encode_head(ty, &src, None, &mut bytes).unwrap();
                let mut want = vec![0.0f32; padded];
                formats::dequantize(ty.ggml(), &bytes, &mut want).unwrap();
                let mut got = vec![f32::NAN; padded];
                decode_head(ty, &bytes, &mut got);
                for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.to_bits(), w.to_bits(), "{ty} head {head_dim} value {j}");
                }
            }
        }
    }

    #[test]
    fn turbo_pads_with_zeros() {
        for ty in [KvType::Turbo2, KvType::Turbo3, KvType::Turbo4] {
            let src = values(96, 7);
            let mut bytes = vec![0u8; ty.head_bytes(96).unwrap()];
            encode_head(ty, &src, None, &mut bytes).unwrap();
            let mut padded = [0.0f32; QK_TURBO];
            padded[..96].copy_from_slice(&src);
            let mut want = vec![0u8; ty.block_bytes()];
            formats::quantize(ty.ggml(), &padded, &mut want).unwrap();
            assert_eq!(bytes, want, "{ty}");
        }
    }
}
