//! Byte layouts of the ggml block formats the kernels read, as offsets into one block.
//!
//! These are ggml's layouts (little-endian, packed, no padding); every kernel reads blocks
//! straight from the GGUF mapping through these offsets, so there is no alignment requirement
//! on weight or scratch buffers.

/// Values per block of the 32-value formats.
pub(crate) const QK: usize = 32;
/// Values per super-block of the K-quants.
pub(crate) const QK_K: usize = 256;

pub(crate) const Q4_0_BYTES: usize = 18; // d: f16, qs: [u8; 16]
pub(crate) const Q4_1_BYTES: usize = 20; // d: f16, m: f16, qs: [u8; 16]
pub(crate) const Q5_0_BYTES: usize = 22; // d: f16, qh: [u8; 4], qs: [u8; 16]
pub(crate) const Q5_1_BYTES: usize = 24; // d: f16, m: f16, qh: [u8; 4], qs: [u8; 16]
pub(crate) const Q8_0_BYTES: usize = 34; // d: f16, qs: [i8; 32]
pub(crate) const Q8_1_BYTES: usize = 36; // d: f16, s: f16 (= d * sum(qs)), qs: [i8; 32]
pub(crate) const IQ4_NL_BYTES: usize = 18; // d: f16, qs: [u8; 16] (indices into IQ4NL_VALUES)
pub(crate) const Q2_K_BYTES: usize = 84; // scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16
pub(crate) const Q3_K_BYTES: usize = 110; // hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16
pub(crate) const Q4_K_BYTES: usize = 144; // d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]
pub(crate) const Q5_K_BYTES: usize = 176; // d, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]
pub(crate) const Q6_K_BYTES: usize = 210; // ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16
pub(crate) const Q8_K_BYTES: usize = 292; // d: f32, qs: [i8; 256], bsums: [i16; 16]

/// Offset of `qs` in a q8_K block, and of its 16 per-16-value sums.
pub(crate) const Q8_K_QS: usize = 4;
pub(crate) const Q8_K_BSUMS: usize = 260;

/// The 16 non-uniform levels of iq4_nl (and iq4_xs).
pub(crate) const IQ4NL_VALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Reads an IEEE half at `off` and widens it.
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

#[inline(always)]
pub(crate) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[inline(always)]
pub(crate) fn i16_at(b: &[u8], off: usize) -> i16 {
    i16::from_le_bytes([b[off], b[off + 1]])
}

#[inline(always)]
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The eight 6-bit scales and eight 6-bit mins of a q4_K / q5_K super-block, unpacked from
/// their 12-byte packing: sub-blocks 0–3 keep their low 6 bits in bytes 0–3 (scales) and
/// 4–7 (mins); sub-blocks 4–7 take their low 4 bits from the nibbles of bytes 8–11 and their
/// top 2 bits from the spare top bits of bytes 0–7.
#[inline(always)]
pub(crate) fn k4_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
    }
    for j in 4..8 {
        sc[j] = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
    (sc, mn)
}

/// The sixteen signed 6-bit scales of a q3_K super-block (already minus 32): scale `j` takes
/// its low 4 bits from byte `j % 8` (low nibble for `j < 8`, high nibble after) and its top
/// 2 bits from byte `8 + j % 4`, bit pair `j / 4`.
#[inline(always)]
pub(crate) fn q3k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0F } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = ((low | (high << 4)) as i8) - 32;
    }
    out
}
