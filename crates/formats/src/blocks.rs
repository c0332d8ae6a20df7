//! `#[repr(C)]` block layouts, byte-compatible with ggml's `block_*` structs and the
//! TurboQuant KV blocks of `TURBO-KV.md`.
//!
//! Every struct is plain old data (`bytemuck::Pod`), has no padding, and its size is checked at
//! compile time against [`GgmlType::block_bytes`]. Blocks with `f16` fields have alignment 2 and
//! [`BlockQ8K`] alignment 4, so tensor bytes can only be cast in place when suitably aligned; the
//! reference code in this crate never casts, it reads each block with
//! [`Block::read`] (an unaligned copy), which is safe on any byte slice.

// Block fields (f16, u16, i16, f32) are read in native byte order; GGUF data is little endian.
#[cfg(target_endian = "big")]
compile_error!(
    "formats reads ggml blocks in native byte order and supports little-endian targets only"
);

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::types::{GgmlType, QK_K};

/// A block type: plain data with a fixed ggml type.
pub trait Block: Pod {
    /// The element type this block encodes.
    const TYPE: GgmlType;
    /// Values per block.
    const VALUES: usize = Self::TYPE.block_size();
    /// Bytes per block.
    const BYTES: usize = Self::TYPE.block_bytes();

    /// Copies one block out of `bytes`, which must be exactly [`Self::BYTES`] long (callers
    /// split slices with `chunks_exact(Self::BYTES)`); any alignment is fine.
    fn read(bytes: &[u8]) -> Self {
        bytemuck::pod_read_unaligned(bytes)
    }

    /// Writes this block into `out`, which must be exactly [`Self::BYTES`] long.
    fn write(&self, out: &mut [u8]) {
        out.copy_from_slice(bytemuck::bytes_of(self));
    }
}

macro_rules! block {
    ($(#[$meta:meta])* $name:ident = $ty:ident { $($(#[$fmeta:meta])* $field:ident : $fty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $fty),*
        }

        impl Block for $name {
            const TYPE: GgmlType = GgmlType::$ty;
        }

        const _: () = assert!(
            core::mem::size_of::<$name>() == GgmlType::$ty.block_bytes(),
            concat!("size of ", stringify!($name), " differs from its ggml block size"),
        );
    };
}

// ---- 32-value blocks -------------------------------------------------------------------------

block! {
    /// `x = d · (q − 8)`; value `j` < 16 in the low nibble of `qs[j]`, value `j + 16` in the high.
    BlockQ4_0 = Q4_0 { d: f16, qs: [u8; 16] }
}
block! {
    /// `x = d · q + m`, nibbles as in [`BlockQ4_0`].
    BlockQ4_1 = Q4_1 { d: f16, m: f16, qs: [u8; 16] }
}
block! {
    /// `x = d · (q − 16)`; low 4 bits as in [`BlockQ4_0`], bit 4 of value `j` is bit `j` of
    /// the little-endian `qh`.
    BlockQ5_0 = Q5_0 { d: f16, qh: [u8; 4], qs: [u8; 16] }
}
block! {
    /// `x = d · q + m`, bits as in [`BlockQ5_0`].
    BlockQ5_1 = Q5_1 { d: f16, m: f16, qh: [u8; 4], qs: [u8; 16] }
}
block! {
    /// `x = d · q`.
    BlockQ8_0 = Q8_0 { d: f16, qs: [i8; 32] }
}
block! {
    /// `x = d · q`; `s = d · Σ q` (precomputed for the q4_1/q5_1 dot products).
    BlockQ8_1 = Q8_1 { d: f16, s: f16, qs: [i8; 32] }
}
block! {
    /// Non-linear 4-bit: `x = d · KVALUES_IQ4NL[q]`, nibbles as in [`BlockQ4_0`].
    BlockIq4Nl = Iq4Nl { d: f16, qs: [u8; 16] }
}
block! {
    /// MXFP4: shared E8M0 exponent `e`, 4-bit E2M1 values, nibbles as in [`BlockQ4_0`].
    BlockMxfp4 = Mxfp4 { e: u8, qs: [u8; 16] }
}

// ---- 256-value K-quant super-blocks ----------------------------------------------------------

block! {
    /// 16 sub-blocks of 16: `scales[i]` = 4-bit scale | 4-bit min << 4; 2-bit values.
    BlockQ2K = Q2K { scales: [u8; QK_K / 16], qs: [u8; QK_K / 4], d: f16, dmin: f16 }
}
block! {
    /// 16 sub-blocks of 16 with 6-bit signed scales packed in 12 bytes; low 2 bits in `qs`,
    /// the third bit in `hmask`.
    BlockQ3K = Q3K { hmask: [u8; QK_K / 8], qs: [u8; QK_K / 4], scales: [u8; 12], d: f16 }
}
block! {
    /// 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes; 4-bit values.
    BlockQ4K = Q4K { d: f16, dmin: f16, scales: [u8; 12], qs: [u8; QK_K / 2] }
}
block! {
    /// As [`BlockQ4K`] plus a fifth bit per value in `qh`.
    BlockQ5K = Q5K { d: f16, dmin: f16, scales: [u8; 12], qh: [u8; QK_K / 8], qs: [u8; QK_K / 2] }
}
block! {
    /// 16 sub-blocks of 16 with 8-bit signed scales; low 4 bits in `ql`, high 2 bits in `qh`.
    BlockQ6K = Q6K { ql: [u8; QK_K / 2], qh: [u8; QK_K / 4], scales: [i8; QK_K / 16], d: f16 }
}
block! {
    /// Activation format of the K-quant dot products: f32 scale, 8-bit values, and the sums of
    /// each group of 16 values.
    BlockQ8K = Q8K { d: f32, qs: [i8; QK_K], bsums: [i16; QK_K / 16] }
}

// ---- i-quants and ternary --------------------------------------------------------------------

block! {
    /// [`BlockIq4Nl`] values with 8 sub-blocks of 32 and 6-bit scales (low 4 bits in
    /// `scales_l`, high 2 bits in `scales_h`).
    BlockIq4Xs = Iq4Xs { d: f16, scales_h: u16, scales_l: [u8; QK_K / 64], qs: [u8; QK_K / 2] }
}
block! {
    /// 2.0625 bpw: grid indices and signs packed in 32 u16.
    BlockIq2Xxs = Iq2Xxs { d: f16, qs: [u16; QK_K / 8] }
}
block! {
    /// 2.3125 bpw.
    BlockIq2Xs = Iq2Xs { d: f16, qs: [u16; QK_K / 8], scales: [u8; QK_K / 32] }
}
block! {
    /// 2.5625 bpw.
    BlockIq2S = Iq2S { d: f16, qs: [u8; QK_K / 4], qh: [u8; QK_K / 32], scales: [u8; QK_K / 32] }
}
block! {
    /// 3.0625 bpw.
    BlockIq3Xxs = Iq3Xxs { d: f16, qs: [u8; 3 * QK_K / 8] }
}
block! {
    /// 3.4375 bpw.
    BlockIq3S = Iq3S {
        d: f16,
        qs: [u8; QK_K / 4],
        qh: [u8; QK_K / 32],
        signs: [u8; QK_K / 8],
        scales: [u8; QK_K / 64],
    }
}
block! {
    /// 1.5625 bpw.
    BlockIq1S = Iq1S { d: f16, qs: [u8; QK_K / 8], qh: [u16; QK_K / 32] }
}
block! {
    /// 1.75 bpw; the f16 super-block scale is spread over the top nibbles of `scales`.
    BlockIq1M = Iq1M { qs: [u8; QK_K / 8], qh: [u8; QK_K / 16], scales: [u8; QK_K / 32] }
}
block! {
    /// Ternary, 1.6875 bpw: five trits per byte in `qs`, four in `qh`.
    BlockTq1_0 = Tq1_0 { qs: [u8; (QK_K - 4 * QK_K / 64) / 5], qh: [u8; QK_K / 64], d: f16 }
}
block! {
    /// Ternary, 2.0625 bpw: 2 bits per value.
    BlockTq2_0 = Tq2_0 { qs: [u8; QK_K / 4], d: f16 }
}

// ---- TurboQuant KV blocks (TURBO-KV.md) ------------------------------------------------------

block! {
    /// 128 rotated values, 2-bit codebook index each (4 per byte, element `j` at bits
    /// `2·(j & 3)` of `qs[j >> 2]`), times `norm`.
    BlockTurbo2 = Turbo2 { norm: f16, qs: [u8; 32] }
}
block! {
    /// 128 rotated values, 3-bit codebook index each: low 2 bits packed as in
    /// [`BlockTurbo2`], bit 2 in `signs` (bit `j & 7` of `signs[j >> 3]`).
    BlockTurbo3 = Turbo3 { norm: f16, qs: [u8; 32], signs: [u8; 16] }
}
block! {
    /// 128 rotated values, 4-bit codebook index each (even element in the low nibble).
    BlockTurbo4 = Turbo4 { norm: f16, qs: [u8; 64] }
}

impl BlockTurbo2 {
    /// Codebook index (0..4) of element `j` (0..128).
    pub fn index(&self, j: usize) -> usize {
        ((self.qs[j >> 2] >> (2 * (j & 3))) & 3) as usize
    }

    /// Sets the index of element `j`; `idx` must be < 4 and the slot must still be zero.
    pub(crate) fn or_index(&mut self, j: usize, idx: usize) {
        self.qs[j >> 2] |= ((idx & 3) as u8) << (2 * (j & 3));
    }
}

impl BlockTurbo3 {
    /// Codebook index (0..8) of element `j` (0..128).
    pub fn index(&self, j: usize) -> usize {
        let low = (self.qs[j >> 2] >> (2 * (j & 3))) & 3;
        let high = (self.signs[j >> 3] >> (j & 7)) & 1;
        (low | (high << 2)) as usize
    }

    /// Sets the index of element `j`; `idx` must be < 8 and the slot must still be zero.
    pub(crate) fn or_index(&mut self, j: usize, idx: usize) {
        self.qs[j >> 2] |= ((idx & 3) as u8) << (2 * (j & 3));
        self.signs[j >> 3] |= (((idx >> 2) & 1) as u8) << (j & 7);
    }
}

impl BlockTurbo4 {
    /// Codebook index (0..16) of element `j` (0..128).
    pub fn index(&self, j: usize) -> usize {
        ((self.qs[j >> 1] >> (4 * (j & 1))) & 15) as usize
    }

    /// Sets the index of element `j`; `idx` must be < 16 and the slot must still be zero.
    pub(crate) fn or_index(&mut self, j: usize, idx: usize) {
        self.qs[j >> 1] |= ((idx & 15) as u8) << (4 * (j & 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignments_are_what_casting_callers_expect() {
        assert_eq!(core::mem::align_of::<BlockQ4_0>(), 2);
        assert_eq!(core::mem::align_of::<BlockMxfp4>(), 1);
        assert_eq!(core::mem::align_of::<BlockQ8K>(), 4);
        assert_eq!(BlockQ6K::VALUES, 256);
        assert_eq!(BlockTurbo3::BYTES, 50);
    }

    #[test]
    fn turbo_index_accessors_round_trip() {
        let mut b2 = BlockTurbo2::zeroed();
        let mut b3 = BlockTurbo3::zeroed();
        let mut b4 = BlockTurbo4::zeroed();
        for j in 0..128 {
            b2.or_index(j, (j * 7) % 4);
            b3.or_index(j, (j * 5) % 8);
            b4.or_index(j, (j * 11) % 16);
        }
        for j in 0..128 {
            assert_eq!(b2.index(j), (j * 7) % 4);
            assert_eq!(b3.index(j), (j * 5) % 8);
            assert_eq!(b4.index(j), (j * 11) % 16);
        }
        // Element 1 of turbo4 sits in the high nibble of byte 0 (TURBO-KV.md).
        let mut b = BlockTurbo4::zeroed();
        b.or_index(1, 0xA);
        assert_eq!(b.qs[0], 0xA0);
    }
}
