//! The ternary formats tq1_0 and tq2_0: 256 values in {−1, 0, +1} times one f16 scale (the
//! block's largest magnitude).
//!
//! tq1_0 packs five trits per byte as a base-3 fraction of 256 (so a trit is recovered with a
//! multiply and a shift), and the last 16 values four per byte. tq2_0 uses 2 bits per value.

use half::f16;

use crate::blocks::{BlockTq1_0, BlockTq2_0};
use crate::types::QK_K;

/// The largest magnitude (ggml's `MAX(amax, fabsf(v))` fold) and its inverse (0 for 0).
fn scale(x: &[f32; QK_K]) -> (f32, f32) {
    let amax = x
        .iter()
        .fold(0.0f32, |m, &v| if m > v.abs() { m } else { v.abs() });
    (amax, if amax != 0.0 { 1.0 / amax } else { 0.0 })
}

/// The trit of `v · id` as 0, 1, 2 (for −1, 0, +1), rounding half away from zero.
fn trit(v: f32, id: f32) -> u8 {
    ((v * id).round() as i32 + 1) as u8
}

/// Packs base-3 digits `q` (most significant first) into a byte as ⌈q · 256 / 243⌉.
fn pack_trits(q: u8) -> u8 {
    (q as u16 * 256).div_ceil(243) as u8
}

/// The `n`-th trit (0 = most significant) of a packed byte.
fn unpack_trit(byte: u8, n: usize) -> i32 {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let q = byte.wrapping_mul(POW3[n]);
    ((q as u16 * 3) >> 8) as i32 - 1
}

pub fn quantize_block_tq1_0(x: &[f32; QK_K]) -> BlockTq1_0 {
    let (d, id) = scale(x);
    let mut b = BlockTq1_0 {
        qs: [0; 48],
        qh: [0; 4],
        d: f16::from_f32(d),
    };
    // Bytes 0..32: five trits each, values m + 32·n (n = 0..5) of x[0..160].
    // Bytes 32..48: five trits each, values 160 + m + 16·n.
    // qh[0..4]: four trits each, values 240 + j + 4·n, then one padding trit.
    for (m, q) in b.qs[..32].iter_mut().enumerate() {
        *q = pack_trits((0..5).fold(0u8, |acc, n| acc * 3 + trit(x[m + 32 * n], id)));
    }
    for (m, q) in b.qs[32..].iter_mut().enumerate() {
        *q = pack_trits((0..5).fold(0u8, |acc, n| acc * 3 + trit(x[160 + m + 16 * n], id)));
    }
    for (j, q) in b.qh.iter_mut().enumerate() {
        *q = pack_trits((0..4).fold(0u8, |acc, n| acc * 3 + trit(x[240 + j + 4 * n], id)) * 3);
    }
    b
}

pub fn dequantize_block_tq1_0(b: &BlockTq1_0, y: &mut [f32; QK_K]) {
    let d = b.d.to_f32();
    for n in 0..5 {
        for m in 0..32 {
            y[m + 32 * n] = unpack_trit(b.qs[m], n) as f32 * d;
        }
        for m in 0..16 {
            y[160 + m + 16 * n] = unpack_trit(b.qs[32 + m], n) as f32 * d;
        }
    }
    for n in 0..4 {
        for j in 0..4 {
            y[240 + j + 4 * n] = unpack_trit(b.qh[j], n) as f32 * d;
        }
    }
}

pub fn quantize_block_tq2_0(x: &[f32; QK_K]) -> BlockTq2_0 {
    let (d, id) = scale(x);
    let mut qs = [0u8; QK_K / 4];
    // Per 128 values: byte m holds values m, m+32, m+64, m+96 at bits 0, 2, 4, 6.
    for (x128, q32) in x.chunks_exact(128).zip(qs.chunks_exact_mut(32)) {
        for (m, q) in q32.iter_mut().enumerate() {
            *q = (0..4).fold(0u8, |acc, n| {
                acc | ((trit(x128[m + 32 * n], id) & 3) << (2 * n))
            });
        }
    }
    BlockTq2_0 {
        qs,
        d: f16::from_f32(d),
    }
}

pub fn dequantize_block_tq2_0(b: &BlockTq2_0, y: &mut [f32; QK_K]) {
    let d = b.d.to_f32();
    for (q32, y128) in b.qs.chunks_exact(32).zip(y.chunks_exact_mut(128)) {
        for n in 0..4 {
            for (m, &q) in q32.iter().enumerate() {
                y128[m + 32 * n] = (((q >> (2 * n)) & 3) as i32 - 1) as f32 * d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ternary_values_round_trip() {
        let x: [f32; QK_K] = std::array::from_fn(|i| [(-1.5f32), 0.0, 1.5][(i * 7 + i / 3) % 3]);
        let mut y = [0.0f32; QK_K];
        dequantize_block_tq1_0(&quantize_block_tq1_0(&x), &mut y);
        assert_eq!(x, y);
        dequantize_block_tq2_0(&quantize_block_tq2_0(&x), &mut y);
        assert_eq!(x, y);
    }
}
