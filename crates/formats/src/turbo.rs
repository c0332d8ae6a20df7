//! TurboQuant KV blocks `turbo2`, `turbo3`, `turbo4` (`TURBO-KV.md`).
//!
//! A block holds 128 values of one head in the *rotated* domain: the input is scaled to unit
//! length, rotated by [`rotate`], each coordinate is replaced by the index of its nearest
//! Lloyd–Max centroid, and a corrected norm (input norm / norm of the chosen centroids) is
//! stored as f16. Dequantizing gives `C[idx] · norm`, i.e. `R(x)` up to quantization error.
//!
//! Bytes match the reference fork exactly, with one deliberate exception: where the corrected
//! norm does not fit f16 the reference stores `inf`; turbine stores 65504 (`f16::MAX`) so finite
//! input never yields inf or NaN.

use bytemuck::Zeroable;
use half::f16;

use crate::blocks::{BlockTurbo2, BlockTurbo3, BlockTurbo4};
pub use crate::rotation::{rotate, rotate_inverse, ROTATION_SIZE};

/// Values per turbo block.
pub const QK_TURBO: usize = ROTATION_SIZE;

/// turbo2 codebook (ascending).
pub const CENTROIDS_2: [f32; 4] = [-0.133462, -0.039994, 0.039994, 0.133462];
/// turbo2 decision thresholds between neighbouring centroids.
pub const MIDPOINTS_2: [f32; 3] = [-0.086728, 0.0, 0.086728];

/// turbo3 codebook (ascending).
pub const CENTROIDS_3: [f32; 8] = [
    -0.190685, -0.117832, -0.065717, -0.021460, 0.021460, 0.065717, 0.117832, 0.190685,
];
/// turbo3 decision thresholds.
pub const MIDPOINTS_3: [f32; 7] = [
    -0.154259, -0.091775, -0.043589, 0.0, 0.043589, 0.091775, 0.154259,
];

/// turbo4 codebook (ascending): 100 Lloyd iterations for N(0, 1/128), rounded to 6 decimals.
pub const CENTROIDS_4: [f32; 16] = [
    -0.240210, -0.181385, -0.141492, -0.109598, -0.082046, -0.057088, -0.033692, -0.011141,
    0.011141, 0.033692, 0.057088, 0.082046, 0.109598, 0.141492, 0.181385, 0.240210,
];
/// turbo4 decision thresholds.
pub const MIDPOINTS_4: [f32; 15] = [
    -0.210798, -0.161439, -0.125545, -0.095822, -0.069567, -0.045390, -0.022417, 0.0, 0.022417,
    0.045390, 0.069567, 0.095822, 0.125545, 0.161439, 0.210798,
];

/// Below this, a norm counts as zero (no scaling, no correction).
const NORM_EPS: f32 = 1e-10;

/// Index of the first midpoint above `u`, i.e. the centroid cell `u` falls in (ties at a
/// midpoint go up).
#[inline]
pub fn nearest_centroid(u: f32, midpoints: &[f32]) -> usize {
    midpoints
        .iter()
        .position(|&m| u < m)
        .unwrap_or(midpoints.len())
}

/// The stored norm for `norm`: f16, round to nearest even, saturated at ±65504.
pub fn norm_to_f16(norm: f32) -> f16 {
    let h = f16::from_f32(norm);
    if h.is_infinite() {
        if norm > 0.0 {
            f16::MAX
        } else {
            f16::MIN
        }
    } else {
        h
    }
}

/// The codebook indices of one block and its stored norm (the shared part of all three
/// quantizers; `midpoints.len() + 1 == centroids.len()`).
fn quantize_indices(
    x: &[f32; QK_TURBO],
    centroids: &[f32],
    midpoints: &[f32],
) -> ([u8; QK_TURBO], f16) {
    let mut n2 = 0.0f32;
    for &v in x {
        n2 += v * v;
    }
    let g = n2.sqrt();
    let inv = if g > NORM_EPS { 1.0 / g } else { 0.0 };

    let mut u = [0.0f32; QK_TURBO];
    for (u, &v) in u.iter_mut().zip(x) {
        *u = v * inv;
    }
    rotate(&mut u);

    let mut idx = [0u8; QK_TURBO];
    let mut r2 = 0.0f32;
    for (i, &u) in idx.iter_mut().zip(&u) {
        let c = nearest_centroid(u, midpoints);
        *i = c as u8;
        r2 += centroids[c] * centroids[c];
    }
    let rn = r2.sqrt();
    let norm = if rn > NORM_EPS { g / rn } else { g };
    (idx, norm_to_f16(norm))
}

pub fn quantize_block_turbo2(x: &[f32; QK_TURBO]) -> BlockTurbo2 {
    let (idx, norm) = quantize_indices(x, &CENTROIDS_2, &MIDPOINTS_2);
    let mut b = BlockTurbo2::zeroed();
    b.norm = norm;
    for (j, &i) in idx.iter().enumerate() {
        b.or_index(j, i as usize);
    }
    b
}

pub fn quantize_block_turbo3(x: &[f32; QK_TURBO]) -> BlockTurbo3 {
    let (idx, norm) = quantize_indices(x, &CENTROIDS_3, &MIDPOINTS_3);
    let mut b = BlockTurbo3::zeroed();
    b.norm = norm;
    for (j, &i) in idx.iter().enumerate() {
        b.or_index(j, i as usize);
    }
    b
}

pub fn quantize_block_turbo4(x: &[f32; QK_TURBO]) -> BlockTurbo4 {
    let (idx, norm) = quantize_indices(x, &CENTROIDS_4, &MIDPOINTS_4);
    let mut b = BlockTurbo4::zeroed();
    b.norm = norm;
    for (j, &i) in idx.iter().enumerate() {
        b.or_index(j, i as usize);
    }
    b
}

/// Rotated-domain values `C[idx[j]] · norm`.
pub fn dequantize_block_turbo2(b: &BlockTurbo2, y: &mut [f32; QK_TURBO]) {
    let norm = b.norm.to_f32();
    for (j, y) in y.iter_mut().enumerate() {
        *y = CENTROIDS_2[b.index(j)] * norm;
    }
}

/// Rotated-domain values `C[idx[j]] · norm`.
pub fn dequantize_block_turbo3(b: &BlockTurbo3, y: &mut [f32; QK_TURBO]) {
    let norm = b.norm.to_f32();
    for (j, y) in y.iter_mut().enumerate() {
        *y = CENTROIDS_3[b.index(j)] * norm;
    }
}

/// Rotated-domain values `C[idx[j]] · norm`.
pub fn dequantize_block_turbo4(b: &BlockTurbo4, y: &mut [f32; QK_TURBO]) {
    let norm = b.norm.to_f32();
    for (j, y) in y.iter_mut().enumerate() {
        *y = CENTROIDS_4[b.index(j)] * norm;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_codebook(c: &[f32], m: &[f32]) {
        assert_eq!(c.len(), m.len() + 1);
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        for (i, &mid) in m.iter().enumerate() {
            assert!(c[i] < mid && mid < c[i + 1]);
            // Midpoints of the 6-decimal centroids, rounded to 6 decimals (within f32 error).
            let exact = (c[i] as f64 + c[i + 1] as f64) / 2.0;
            assert!((exact - mid as f64).abs() <= 1e-6, "{mid} vs {exact}");
        }
    }

    #[test]
    fn codebooks_are_sorted_with_midpoints_between() {
        check_codebook(&CENTROIDS_2, &MIDPOINTS_2);
        check_codebook(&CENTROIDS_3, &MIDPOINTS_3);
        check_codebook(&CENTROIDS_4, &MIDPOINTS_4);
    }

    #[test]
    fn ties_at_a_midpoint_go_to_the_upper_cell() {
        assert_eq!(nearest_centroid(0.0, &MIDPOINTS_2), 2);
        assert_eq!(nearest_centroid(-0.1, &MIDPOINTS_2), 0);
        assert_eq!(nearest_centroid(1.0, &MIDPOINTS_4), 15);
    }

    #[test]
    fn zero_block_has_zero_norm() {
        let b = quantize_block_turbo3(&[0.0; QK_TURBO]);
        assert_eq!(b.norm.to_bits(), 0);
    }

    #[test]
    fn huge_norm_saturates() {
        assert_eq!(norm_to_f16(1e6).to_bits(), 0x7bff);
        assert_eq!(norm_to_f16(65519.0).to_bits(), 0x7bff);
        let b = quantize_block_turbo4(&[1e4; QK_TURBO]);
        assert_eq!(b.norm, f16::MAX);
    }
}
