//! Portable dot products of one weight row with one activation row, on packed blocks, following
//! ggml's generic algorithms: exact integer sums per block, scaled and accumulated in f32.
//! These are the reference the SIMD kernels are tested against.

use crate::blocks::*;

/// Signed 4-bit pairs of a 32-value block: low nibbles are values 0..16, high nibbles 16..32.
#[inline(always)]
fn nibbles(qs: &[u8], j: usize) -> (i32, i32) {
    ((qs[j] & 0x0F) as i32, (qs[j] >> 4) as i32)
}

#[inline(always)]
fn i8s(b: &[u8]) -> impl Iterator<Item = i32> + '_ {
    b.iter().map(|&v| v as i8 as i32)
}

pub(crate) fn q4_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(Q4_0_BYTES).zip(a.chunks_exact(Q8_0_BYTES)) {
        let mut isum = 0i32;
        for j in 0..16 {
            let (lo, hi) = nibbles(&x[2..], j);
            isum += (lo - 8) * (y[2 + j] as i8 as i32) + (hi - 8) * (y[18 + j] as i8 as i32);
        }
        sum += isum as f32 * (f16_at(x, 0) * f16_at(y, 0));
    }
    sum
}

pub(crate) fn q4_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(Q4_1_BYTES).zip(a.chunks_exact(Q8_1_BYTES)) {
        let mut isum = 0i32;
        for j in 0..16 {
            let (lo, hi) = nibbles(&x[4..], j);
            isum += lo * (y[4 + j] as i8 as i32) + hi * (y[20 + j] as i8 as i32);
        }
        sum += isum as f32 * (f16_at(x, 0) * f16_at(y, 0)) + f16_at(x, 2) * f16_at(y, 2);
    }
    sum
}

pub(crate) fn q5_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(Q5_0_BYTES).zip(a.chunks_exact(Q8_0_BYTES)) {
        let qh = u32_at(x, 2);
        let mut isum = 0i32;
        for j in 0..16 {
            let (lo, hi) = nibbles(&x[6..], j);
            let lo = lo | ((((qh >> j) & 1) as i32) << 4);
            let hi = hi | ((((qh >> (j + 16)) & 1) as i32) << 4);
            isum += (lo - 16) * (y[2 + j] as i8 as i32) + (hi - 16) * (y[18 + j] as i8 as i32);
        }
        sum += isum as f32 * (f16_at(x, 0) * f16_at(y, 0));
    }
    sum
}

pub(crate) fn q5_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(Q5_1_BYTES).zip(a.chunks_exact(Q8_1_BYTES)) {
        let qh = u32_at(x, 4);
        let mut isum = 0i32;
        for j in 0..16 {
            let (lo, hi) = nibbles(&x[8..], j);
            let lo = lo | ((((qh >> j) & 1) as i32) << 4);
            let hi = hi | ((((qh >> (j + 16)) & 1) as i32) << 4);
            isum += lo * (y[4 + j] as i8 as i32) + hi * (y[20 + j] as i8 as i32);
        }
        sum += isum as f32 * (f16_at(x, 0) * f16_at(y, 0)) + f16_at(x, 2) * f16_at(y, 2);
    }
    sum
}

pub(crate) fn q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(Q8_0_BYTES).zip(a.chunks_exact(Q8_0_BYTES)) {
        let isum: i32 = i8s(&x[2..]).zip(i8s(&y[2..])).map(|(p, q)| p * q).sum();
        sum += isum as f32 * (f16_at(x, 0) * f16_at(y, 0));
    }
    sum
}

pub(crate) fn iq4_nl(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(IQ4_NL_BYTES).zip(a.chunks_exact(Q8_0_BYTES)) {
        let mut isum = 0i32;
        for j in 0..16 {
            let (lo, hi) = nibbles(&x[2..], j);
            isum += IQ4NL_VALUES[lo as usize] as i32 * (y[2 + j] as i8 as i32)
                + IQ4NL_VALUES[hi as usize] as i32 * (y[18 + j] as i8 as i32);
        }
        sum += isum as f32 * (f16_at(x, 0) * f16_at(y, 0));
    }
    sum
}

/// Sum of q8_K quants `[16 g, 16 g + 16)` times the weight values `q(i)` of the same group.
#[inline(always)]
fn group_dot(y: &[u8], g: usize, q: impl Fn(usize) -> i32) -> i32 {
    (0..16)
        .map(|l| q(16 * g + l) * (y[Q8_K_QS + 16 * g + l] as i8 as i32))
        .sum()
}

#[inline(always)]
fn bsum(y: &[u8], g: usize) -> i32 {
    i16_at(y, Q8_K_BSUMS + 2 * g) as i32
}

pub(crate) fn q2_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(Q2_K_BYTES).zip(a.chunks_exact(Q8_K_BYTES)) {
        // Value i = 128 n + 32 j + l is bits 2j.. of qs[32 n + l].
        let q = |i: usize| ((x[16 + 32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3) as i32;
        let mut isum = 0i32;
        let mut msum = 0i32;
        for (g, &sc) in x[..16].iter().enumerate() {
            isum += (sc & 0x0F) as i32 * group_dot(y, g, q);
            msum += (sc >> 4) as i32 * bsum(y, g);
        }
        let dy = f32_at(y, 0);
        sum += dy * f16_at(x, 80) * isum as f32 - dy * f16_at(x, 82) * msum as f32;
    }
    sum
}

pub(crate) fn q3_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(Q3_K_BYTES).zip(a.chunks_exact(Q8_K_BYTES)) {
        let scales = q3k_scales(&x[96..108]);
        let q = |i: usize| {
            let (n, j, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = ((x[32 + 32 * n + l] >> (2 * j)) & 3) as i32;
            let high = (x[l] >> (4 * n + j)) & 1;
            low - if high != 0 { 0 } else { 4 }
        };
        let isum: i32 = (0..16).map(|g| scales[g] as i32 * group_dot(y, g, q)).sum();
        sum += f32_at(y, 0) * f16_at(x, 108) * isum as f32;
    }
    sum
}

/// q4_K (`FIVE = false`) and q5_K (`true`): eight sub-blocks of 32 with 6-bit scale and min.
fn q45_k<const FIVE: bool>(w: &[u8], a: &[u8]) -> f32 {
    let bytes = if FIVE { Q5_K_BYTES } else { Q4_K_BYTES };
    let qs_off = if FIVE { 48 } else { 16 };
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(bytes).zip(a.chunks_exact(Q8_K_BYTES)) {
        let (sc, mn) = k4_scales_mins(&x[4..16]);
        // Value i = 64 c + 32 h + l: nibble h of qs[32 c + l], 5th bit 2c + h of qh[l].
        let q = |i: usize| {
            let (c, h, l) = (i / 64, (i % 64) / 32, i % 32);
            let nib = (x[qs_off + 32 * c + l] >> (4 * h)) & 0x0F;
            let top = if FIVE {
                ((x[16 + l] >> (2 * c + h)) & 1) << 4
            } else {
                0
            };
            (nib | top) as i32
        };
        let mut isum = 0i32;
        let mut msum = 0i32;
        for s in 0..8 {
            isum += sc[s] as i32 * (group_dot(y, 2 * s, q) + group_dot(y, 2 * s + 1, q));
            msum += mn[s] as i32 * (bsum(y, 2 * s) + bsum(y, 2 * s + 1));
        }
        let dy = f32_at(y, 0);
        sum += dy * f16_at(x, 0) * isum as f32 - dy * f16_at(x, 2) * msum as f32;
    }
    sum
}

pub(crate) fn q4_k(w: &[u8], a: &[u8]) -> f32 {
    q45_k::<false>(w, a)
}

pub(crate) fn q5_k(w: &[u8], a: &[u8]) -> f32 {
    q45_k::<true>(w, a)
}

pub(crate) fn q6_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.chunks_exact(Q6_K_BYTES).zip(a.chunks_exact(Q8_K_BYTES)) {
        // Value i = 128 n + 32 k + l: low bits from ql[64 n + 32 (k % 2) + l] (nibble k / 2),
        // high bits pair k of qh[32 n + l].
        let q = |i: usize| {
            let (n, k, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = (x[64 * n + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0F;
            let high = (x[128 + 32 * n + l] >> (2 * k)) & 3;
            (low | (high << 4)) as i32 - 32
        };
        let isum: i32 = (0..16)
            .map(|g| (x[192 + g] as i8) as i32 * group_dot(y, g, q))
            .sum();
        sum += f32_at(y, 0) * f16_at(x, 208) * isum as f32;
    }
    sum
}

pub(crate) fn f16(w: &[u8], a: &[u8]) -> f32 {
    w.chunks_exact(2)
        .zip(a.chunks_exact(2))
        .map(|(x, y)| f16_at(x, 0) * f16_at(y, 0))
        .sum()
}

pub(crate) fn bf16(w: &[u8], a: &[f32]) -> f32 {
    w.chunks_exact(2)
        .zip(a)
        .map(|(x, &y)| half::bf16::from_bits(u16::from_le_bytes([x[0], x[1]])).to_f32() * y)
        .sum()
}

pub(crate) fn f32(w: &[u8], a: &[f32]) -> f32 {
    w.chunks_exact(4)
        .zip(a)
        .map(|(x, &y)| f32_at(x, 0) * y)
        .sum()
}
