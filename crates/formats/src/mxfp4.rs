//! MXFP4 (OCP microscaling FP4): 32 E2M1 values sharing one E8M0 power-of-two scale.
//!
//! ggml stores the E2M1 values doubled as small integers ([`KVALUES_MXFP4`]) and halves the
//! scale to compensate ([`e8m0_to_f32_half`]).

use crate::blocks::BlockMxfp4;

/// Values per block.
pub const QK_MXFP4: usize = 32;

/// E2M1 code → value × 2 (codes 8..16 are the negatives of 0..8).
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `2^(e − 128)`, i.e. half the E8M0 scale `2^(e − 127)`, exactly (subnormal for e < 2).
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        ((e as u32) - 1) << 23
    };
    f32::from_bits(bits)
}

/// The code whose value (times `d`) is nearest `x`; the lowest code on ties.
fn best_code(x: f32, d: f32) -> u8 {
    let mut best = 0;
    let mut best_err = (KVALUES_MXFP4[0] as f32 * d - x).abs();
    for (i, &k) in KVALUES_MXFP4.iter().enumerate().skip(1) {
        let err = (k as f32 * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

/// ggml's `quantize_row_mxfp4_ref`: the scale exponent is `⌊log2 amax⌋ − 2` (so the largest
/// value lands near 4..8 ×), then each value takes the nearest code.
pub fn quantize_block_mxfp4(x: &[f32; QK_MXFP4]) -> BlockMxfp4 {
    let mut amax = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
        }
    }
    // ggml converts through a C float → uint8_t cast; going through i32 keeps its wrap-around
    // for the (subnormal) inputs whose exponent is out of range.
    let e = if amax > 0.0 {
        ((amax.log2().floor() - 2.0 + 127.0) as i32) as u8
    } else {
        0
    };
    let d = e8m0_to_f32_half(e);
    let mut qs = [0u8; QK_MXFP4 / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = best_code(x[j], d) | (best_code(x[j + 16], d) << 4);
    }
    BlockMxfp4 { e, qs }
}

pub fn dequantize_block_mxfp4(b: &BlockMxfp4, y: &mut [f32; QK_MXFP4]) {
    let d = e8m0_to_f32_half(b.e);
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = KVALUES_MXFP4[(q & 0xf) as usize] as f32 * d;
        y[j + 16] = KVALUES_MXFP4[(q >> 4) as usize] as f32 * d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_is_a_power_of_two() {
        for e in 0..=254u8 {
            assert_eq!(
                e8m0_to_f32_half(e) as f64,
                2f64.powi(e as i32 - 128),
                "e = {e}"
            );
        }
    }

    #[test]
    fn exact_values_round_trip() {
        let x: [f32; 32] = std::array::from_fn(|i| KVALUES_MXFP4[i % 16] as f32 * 0.25);
        let b = quantize_block_mxfp4(&x);
        let mut y = [0.0f32; 32];
        dequantize_block_mxfp4(&b, &mut y);
        assert_eq!(x, y);
    }
}
