//! The 32-value block formats: q4_0, q4_1, q5_0, q5_1, q8_0, q8_1.
//!
//! Quantizers reproduce ggml's reference quantizers bit for bit: the same f32 operations in the
//! same order, truncating casts where ggml truncates (`(int8_t)(x + 8.5f)`) and round-half-away
//! (`roundf`, = Rust's `f32::round`) where ggml rounds. Rust never fuses `a * b + c` into an
//! FMA, which matches ggml's reference build.

use half::f16;

use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};

/// Values per block of every format in this module.
pub const QK: usize = 32;
const HALF: usize = QK / 2;

/// The element of largest magnitude (the first one on ties), sign kept; 0 for an all-zero block.
fn signed_absmax(x: &[f32; QK]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32; QK]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn absmax(x: &[f32; QK]) -> f32 {
    // ggml's MAX(a, b) is `a > b ? a : b`.
    x.iter()
        .fold(0.0f32, |m, &v| if m > v.abs() { m } else { v.abs() })
}

fn inverse_or_zero(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

// ---- q4_0 -----------------------------------------------------------------------------------

pub fn quantize_block_q4_0(x: &[f32; QK]) -> BlockQ4_0 {
    let d = signed_absmax(x) / -8.0;
    let id = inverse_or_zero(d);
    let mut qs = [0u8; HALF];
    for (j, q) in qs.iter_mut().enumerate() {
        // Truncation toward zero after +8.5 is ggml's rounding here; the cap handles the
        // element that maps to exactly +8.
        let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
        let q1 = ((x[j + HALF] * id + 8.5) as i8).min(15) as u8;
        *q = q0 | (q1 << 4);
    }
    BlockQ4_0 {
        d: f16::from_f32(d),
        qs,
    }
}

pub fn dequantize_block_q4_0(b: &BlockQ4_0, y: &mut [f32; QK]) {
    let d = b.d.to_f32();
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
        y[j + HALF] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

// ---- q4_1 -----------------------------------------------------------------------------------

pub fn quantize_block_q4_1(x: &[f32; QK]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse_or_zero(d);
    let mut qs = [0u8; HALF];
    for (j, q) in qs.iter_mut().enumerate() {
        let q0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
        let q1 = (((x[j + HALF] - min) * id + 0.5) as i8).min(15) as u8;
        *q = q0 | (q1 << 4);
    }
    BlockQ4_1 {
        d: f16::from_f32(d),
        m: f16::from_f32(min),
        qs,
    }
}

pub fn dequantize_block_q4_1(b: &BlockQ4_1, y: &mut [f32; QK]) {
    let d = b.d.to_f32();
    let m = b.m.to_f32();
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = (q & 0x0f) as f32 * d + m;
        y[j + HALF] = (q >> 4) as f32 * d + m;
    }
}

// ---- q5_0 / q5_1 ----------------------------------------------------------------------------

/// Packs 32 five-bit values: low nibbles into `qs` (value `j + 16` in the high nibble), the
/// fifth bits into the little-endian `qh` (bit `j` for value `j`).
fn pack_5bit(q: &[u8; QK]) -> ([u8; 4], [u8; HALF]) {
    let mut qs = [0u8; HALF];
    let mut qh = 0u32;
    for j in 0..HALF {
        let (q0, q1) = (q[j], q[j + HALF]);
        qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + HALF);
    }
    (qh.to_le_bytes(), qs)
}

fn unpack_5bit(qh: &[u8; 4], qs: &[u8; HALF]) -> [u8; QK] {
    let qh = u32::from_le_bytes(*qh);
    let mut q = [0u8; QK];
    for j in 0..HALF {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        q[j] = (qs[j] & 0x0f) | h0;
        q[j + HALF] = (qs[j] >> 4) | h1;
    }
    q
}

pub fn quantize_block_q5_0(x: &[f32; QK]) -> BlockQ5_0 {
    let d = signed_absmax(x) / -16.0;
    let id = inverse_or_zero(d);
    let q: [u8; QK] = std::array::from_fn(|j| ((x[j] * id + 16.5) as i8).min(31) as u8);
    let (qh, qs) = pack_5bit(&q);
    BlockQ5_0 {
        d: f16::from_f32(d),
        qh,
        qs,
    }
}

pub fn dequantize_block_q5_0(b: &BlockQ5_0, y: &mut [f32; QK]) {
    let d = b.d.to_f32();
    for (y, q) in y.iter_mut().zip(unpack_5bit(&b.qh, &b.qs)) {
        *y = (q as i32 - 16) as f32 * d;
    }
}

pub fn quantize_block_q5_1(x: &[f32; QK]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse_or_zero(d);
    // ggml casts straight to uint8_t here (no cap); the largest value lands on 31.
    let q: [u8; QK] = std::array::from_fn(|j| ((x[j] - min) * id + 0.5) as u8);
    let (qh, qs) = pack_5bit(&q);
    BlockQ5_1 {
        d: f16::from_f32(d),
        m: f16::from_f32(min),
        qh,
        qs,
    }
}

pub fn dequantize_block_q5_1(b: &BlockQ5_1, y: &mut [f32; QK]) {
    let d = b.d.to_f32();
    let m = b.m.to_f32();
    for (y, q) in y.iter_mut().zip(unpack_5bit(&b.qh, &b.qs)) {
        *y = q as f32 * d + m;
    }
}

// ---- q8_0 / q8_1 ----------------------------------------------------------------------------

fn quantize_8bit(x: &[f32; QK]) -> (f32, [i8; QK]) {
    let d = absmax(x) / 127.0;
    let id = inverse_or_zero(d);
    (d, std::array::from_fn(|j| (x[j] * id).round() as i8))
}

pub fn quantize_block_q8_0(x: &[f32; QK]) -> BlockQ8_0 {
    let (d, qs) = quantize_8bit(x);
    BlockQ8_0 {
        d: f16::from_f32(d),
        qs,
    }
}

pub fn dequantize_block_q8_0(b: &BlockQ8_0, y: &mut [f32; QK]) {
    let d = b.d.to_f32();
    for (y, &q) in y.iter_mut().zip(&b.qs) {
        *y = q as f32 * d;
    }
}

pub fn quantize_block_q8_1(x: &[f32; QK]) -> BlockQ8_1 {
    let (d, qs) = quantize_8bit(x);
    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
    BlockQ8_1 {
        d: f16::from_f32(d),
        // The f32 scale, not the rounded f16 one, as ggml does.
        s: f16::from_f32(sum as f32 * d),
        qs,
    }
}

pub fn dequantize_block_q8_1(b: &BlockQ8_1, y: &mut [f32; QK]) {
    let d = b.d.to_f32();
    for (y, &q) in y.iter_mut().zip(&b.qs) {
        *y = q as f32 * d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_1_sum_uses_the_unrounded_scale() {
        let x: [f32; QK] = std::array::from_fn(|i| (i as f32 - 11.3) * 0.37);
        let b = quantize_block_q8_1(&x);
        let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
        let d = absmax(&x) / 127.0;
        assert_eq!(b.s, f16::from_f32(sum as f32 * d));
        assert_eq!(b.qs.iter().map(|q| q.unsigned_abs()).max(), Some(127));
        assert_eq!(quantize_block_q8_0(&x).qs, b.qs);
    }

    #[test]
    fn all_zero_blocks_encode_to_zero() {
        let x = [0.0f32; QK];
        assert_eq!(quantize_block_q4_0(&x).qs, [0x88; HALF]);
        assert_eq!(quantize_block_q8_0(&x).qs, [0; QK]);
        let mut y = [1.0f32; QK];
        dequantize_block_q5_1(&quantize_block_q5_1(&x), &mut y);
        assert_eq!(y, [0.0; QK]);
    }
}
