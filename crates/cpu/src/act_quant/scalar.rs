//! Portable activation quantizers (the reference for the SIMD ones).

use crate::blocks::*;

fn store_f16(dst: &mut [u8], v: f32) {
    dst.copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
}

/// Scales one block of 32 by `127 / amax`; returns `(d, sum of the quantized values)`.
fn q8_block(x: &[f32], qs: &mut [u8]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let r = (v * id).round_ties_even() as i32;
        sum += r;
        *q = r as i8 as u8;
    }
    (d, sum)
}

pub(super) fn q8_0(x: &[f32], dst: &mut [u8]) {
    for (xb, b) in x.chunks_exact(QK).zip(dst.chunks_exact_mut(Q8_0_BYTES)) {
        let (d, _) = q8_block(xb, &mut b[2..]);
        store_f16(&mut b[0..2], d);
    }
}

pub(super) fn q8_1(x: &[f32], dst: &mut [u8]) {
    for (xb, b) in x.chunks_exact(QK).zip(dst.chunks_exact_mut(Q8_1_BYTES)) {
        let (d, sum) = q8_block(xb, &mut b[4..]);
        store_f16(&mut b[0..2], d);
        store_f16(&mut b[2..4], d * sum as f32);
    }
}

pub(super) fn q8_k(x: &[f32], dst: &mut [u8]) {
    for (xb, b) in x.chunks_exact(QK_K).zip(dst.chunks_exact_mut(Q8_K_BYTES)) {
        let mut max = 0f32;
        let mut amax = 0f32;
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (j, &v) in xb.iter().enumerate() {
            let q = ((iscale * v).round_ties_even() as i32).min(127);
            b[Q8_K_QS + j] = q as i8 as u8;
        }
        for g in 0..QK_K / 16 {
            let s: i32 = b[Q8_K_QS + 16 * g..Q8_K_QS + 16 * g + 16]
                .iter()
                .map(|&q| q as i8 as i32)
                .sum();
            b[Q8_K_BSUMS + 2 * g..Q8_K_BSUMS + 2 * g + 2]
                .copy_from_slice(&(s as i16).to_le_bytes());
        }
        b[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

pub(super) fn f16(x: &[f32], dst: &mut [u8]) {
    for (&v, b) in x.iter().zip(dst.chunks_exact_mut(2)) {
        store_f16(b, v);
    }
}
