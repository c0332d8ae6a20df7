//! Scalar dequantization of one row of any weight type the CPU backend reads: used by
//! `get_rows` (embedding lookup) and as the reference for the dot-product kernels.
//!
//! Arithmetic follows ggml's `dequantize_row_*` step by step (same products in the same order)
//! so the output is bit-identical to ggml's; the tests check that against ggml's own bytes.

use formats::GgmlType;

use crate::blocks::*;
use crate::error::{check_len, CpuError};

/// Types [`dequantize_row`] (and so `get_rows` and `matmul`) accept.
pub const SUPPORTED_TYPES: [GgmlType; 16] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q8K,
    GgmlType::Iq4Nl,
];

/// Dequantizes `dst.len()` values from the blocks in `src` (exactly `ty.bytes_for(dst.len())`
/// bytes).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), CpuError> {
    const OP: &str = "dequantize_row";
    if !SUPPORTED_TYPES.contains(&ty) {
        return Err(CpuError::UnsupportedType { op: OP, ty });
    }
    let bs = ty.block_size();
    if !dst.len().is_multiple_of(bs) {
        return Err(CpuError::NotMultiple {
            op: OP,
            what: "row length",
            value: dst.len(),
            multiple: bs,
        });
    }
    check_len(
        OP,
        "source bytes",
        src.len(),
        dst.len() / bs * ty.block_bytes(),
    )?;
    let blocks = src.chunks_exact(ty.block_bytes());
    let outs = dst.chunks_exact_mut(bs);
    match ty {
        GgmlType::F32 => {
            for (b, o) in blocks.zip(outs) {
                o[0] = f32_at(b, 0);
            }
        }
        GgmlType::F16 => {
            for (b, o) in blocks.zip(outs) {
                o[0] = f16_at(b, 0);
            }
        }
        GgmlType::Bf16 => {
            for (b, o) in blocks.zip(outs) {
                o[0] = half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            }
        }
        GgmlType::Q4_0 => blocks.zip(outs).for_each(|(b, o)| q4_0(b, o)),
        GgmlType::Q4_1 => blocks.zip(outs).for_each(|(b, o)| q4_1(b, o)),
        GgmlType::Q5_0 => blocks.zip(outs).for_each(|(b, o)| q5_0(b, o)),
        GgmlType::Q5_1 => blocks.zip(outs).for_each(|(b, o)| q5_1(b, o)),
        GgmlType::Q8_0 => blocks.zip(outs).for_each(|(b, o)| q8_0(b, o)),
        GgmlType::Q8_1 => blocks.zip(outs).for_each(|(b, o)| q8_1(b, o)),
        GgmlType::Iq4Nl => blocks.zip(outs).for_each(|(b, o)| iq4_nl(b, o)),
        GgmlType::Q2K => blocks.zip(outs).for_each(|(b, o)| q2_k(b, o)),
        GgmlType::Q3K => blocks.zip(outs).for_each(|(b, o)| q3_k(b, o)),
        GgmlType::Q4K => blocks.zip(outs).for_each(|(b, o)| q4_k(b, o)),
        GgmlType::Q5K => blocks.zip(outs).for_each(|(b, o)| q5_k(b, o)),
        GgmlType::Q6K => blocks.zip(outs).for_each(|(b, o)| q6_k(b, o)),
        GgmlType::Q8K => blocks.zip(outs).for_each(|(b, o)| q8_k(b, o)),
        _ => return Err(CpuError::UnsupportedType { op: OP, ty }),
    }
    Ok(())
}

fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        o[j] = ((b[2 + j] & 0x0F) as i32 - 8) as f32 * d;
        o[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
    }
}

fn q4_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    for j in 0..16 {
        o[j] = (b[4 + j] & 0x0F) as f32 * d + m;
        o[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
    }
}

/// The 5th bit of value `j` of a q5 block lives in bit `j` of the 32-bit `qh`.
fn q5_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32_at(b, 2);
    for j in 0..16 {
        let lo = (b[6 + j] & 0x0F) as u32 | (((qh >> j) & 1) << 4);
        let hi = (b[6 + j] >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4);
        o[j] = (lo as i32 - 16) as f32 * d;
        o[j + 16] = (hi as i32 - 16) as f32 * d;
    }
}

fn q5_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32_at(b, 4);
    for j in 0..16 {
        let lo = (b[8 + j] & 0x0F) as u32 | (((qh >> j) & 1) << 4);
        let hi = (b[8 + j] >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4);
        o[j] = lo as f32 * d + m;
        o[j + 16] = hi as f32 * d + m;
    }
}

fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        o[j] = (b[2 + j] as i8) as f32 * d;
    }
}

fn q8_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        o[j] = (b[4 + j] as i8) as f32 * d;
    }
}

fn iq4_nl(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        o[j] = d * IQ4NL_VALUES[(b[2 + j] & 0x0F) as usize] as f32;
        o[j + 16] = d * IQ4NL_VALUES[(b[2 + j] >> 4) as usize] as f32;
    }
}

/// Values `128 n + 32 j + l` hold bits `2j..2j+2` of `qs[32 n + l]`; each group of 16 has a
/// 4-bit scale (low nibble) and 4-bit min (high nibble).
fn q2_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    let mut g = 0;
    for n in 0..2 {
        let q = &b[16 + 32 * n..16 + 32 * n + 32];
        for j in 0..4 {
            let shift = 2 * j;
            for half in 0..2 {
                let sc = b[g];
                g += 1;
                let dl = d * (sc & 0x0F) as f32;
                let ml = dmin * (sc >> 4) as f32;
                for l in 0..16 {
                    let v = (q[16 * half + l] >> shift) & 3;
                    o[128 * n + 32 * j + 16 * half + l] = dl * v as f32 - ml;
                }
            }
        }
    }
}

/// Like q2_K plus a high bit from `hmask` (bit `4n + j` of `hmask[l]`); a clear bit
/// subtracts 4.
fn q3_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 108);
    let scales = q3k_scales(&b[96..108]);
    let hmask = &b[0..32];
    let mut g = 0;
    for n in 0..2 {
        let q = &b[32 + 32 * n..32 + 32 * n + 32];
        for j in 0..4 {
            let shift = 2 * j;
            let m = 1u8 << (4 * n + j);
            for half in 0..2 {
                let dl = d * scales[g] as f32;
                g += 1;
                for l in 0..16 {
                    let i = 16 * half + l;
                    let low = ((q[i] >> shift) & 3) as i32;
                    let v = low - if hmask[i] & m != 0 { 0 } else { 4 };
                    o[128 * n + 32 * j + i] = dl * v as f32;
                }
            }
        }
    }
}

/// Four chunks of 64 values; chunk `c` takes the low nibbles (sub-block `2c`) then the high
/// nibbles (sub-block `2c + 1`) of `qs[32 c .. 32 c + 32]`.
fn q4_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    for c in 0..4 {
        let q = &b[16 + 32 * c..16 + 32 * c + 32];
        let (d1, m1) = (d * sc[2 * c] as f32, dmin * mn[2 * c] as f32);
        let (d2, m2) = (d * sc[2 * c + 1] as f32, dmin * mn[2 * c + 1] as f32);
        for l in 0..32 {
            o[64 * c + l] = d1 * (q[l] & 0x0F) as f32 - m1;
            o[64 * c + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// q4_K plus a 5th bit: bit `2c` (low half) / `2c + 1` (high half) of `qh[l]`.
fn q5_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    let qh = &b[16..48];
    for c in 0..4 {
        let q = &b[48 + 32 * c..48 + 32 * c + 32];
        let (d1, m1) = (d * sc[2 * c] as f32, dmin * mn[2 * c] as f32);
        let (d2, m2) = (d * sc[2 * c + 1] as f32, dmin * mn[2 * c + 1] as f32);
        for l in 0..32 {
            let h1 = ((qh[l] >> (2 * c)) & 1) << 4;
            let h2 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
            o[64 * c + l] = d1 * ((q[l] & 0x0F) + h1) as f32 - m1;
            o[64 * c + 32 + l] = d2 * ((q[l] >> 4) + h2) as f32 - m2;
        }
    }
}

/// Two halves of 128; in half `n`, value `32 k + l` (k = 0..4) takes 4 low bits from
/// `ql[64 n + l + 32 (k % 2)]` (low nibble for k < 2) and 2 high bits from `qh[32 n + l]`
/// (pair `k`), minus 32; scales per 16 values.
fn q6_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 208);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let base = 128 * n;
            o[base + l] = d * (sc[is] as i8) as f32 * q1 as f32;
            o[base + l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            o[base + l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            o[base + l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

fn q8_k(b: &[u8], o: &mut [f32]) {
    let d = f32_at(b, 0);
    for j in 0..QK_K {
        o[j] = d * (b[Q8_K_QS + j] as i8) as f32;
    }
}
