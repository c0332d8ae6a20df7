//! The non-linear 4-bit formats iq4_nl (32-value blocks) and iq4_xs (256-value super-blocks
//! with 6-bit sub-block scales). Both map 4-bit codes through the same 16-entry table.

use half::f16;

use crate::blocks::{BlockIq4Nl, BlockIq4Xs};
use crate::types::QK_K;

/// Values per iq4_nl block.
pub const QK4_NL: usize = 32;

/// The iq4_nl / iq4_xs code table (ascending; `x = d · KVALUES_IQ4NL[q]`).
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Sub-blocks whose largest magnitude is below this are treated as all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// Index of the table entry nearest `x` (ties go to the upper entry), as ggml's
/// `best_index_int8`.
pub fn best_index_iq4nl(x: f32) -> usize {
    let v = &KVALUES_IQ4NL;
    if x <= v[0] as f32 {
        return 0;
    }
    if x >= v[15] as f32 {
        return 15;
    }
    let (mut lo, mut hi) = (0usize, 15usize);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if x < v[mid] as f32 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    if x - (v[hi - 1] as f32) < (v[hi] as f32) - x {
        hi - 1
    } else {
        hi
    }
}

/// ggml's reference iq4_nl quantizer (`quantize_row_iq4_nl_ref`).
///
/// Per block: codes from the scale `max / −127`, then the scale refit by least squares with
/// weights `x²` (no scan over candidate scales: the reference deliberately matches the GPU
/// quantizers used for KV caches).
///
/// An all-zero block gets scale 0 and its codes are irrelevant; ggml leaves them as the
/// previous block of the same call chose, and this quantizer does the same so that buffers
/// match ggml byte for byte. Hence it carries state from block to block.
#[derive(Clone, Debug)]
pub struct Iq4NlQuantizer {
    codes: [u8; QK4_NL],
}

impl Default for Iq4NlQuantizer {
    fn default() -> Self {
        // Code 8 (value 1) is the table entry nearest zero: what a leading zero block gets.
        Iq4NlQuantizer { codes: [8; QK4_NL] }
    }
}

impl Iq4NlQuantizer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn quantize_block(&mut self, x: &[f32; QK4_NL]) -> BlockIq4Nl {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        let mut d = 0.0f32;
        if amax >= GROUP_MAX_EPS {
            let id = 1.0 / (max / KVALUES_IQ4NL[0] as f32);
            let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
            for (code, &v) in self.codes.iter_mut().zip(x) {
                let l = best_index_iq4nl(id * v);
                *code = l as u8;
                let q = KVALUES_IQ4NL[l] as f32;
                let w = v * v;
                sumqx += w * q * v;
                sumq2 += w * q * q;
            }
            d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        }
        let mut qs = [0u8; QK4_NL / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = self.codes[j] | (self.codes[j + 16] << 4);
        }
        BlockIq4Nl {
            d: f16::from_f32(d),
            qs,
        }
    }
}

pub fn dequantize_block_iq4_nl(b: &BlockIq4Nl, y: &mut [f32; QK4_NL]) {
    let d = b.d.to_f32();
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = d * KVALUES_IQ4NL[(q & 0xf) as usize] as f32;
        y[j + 16] = d * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
    }
}

pub fn dequantize_block_iq4_xs(b: &BlockIq4Xs, y: &mut [f32; QK_K]) {
    let d = b.d.to_f32();
    let scales_h = u16::from_le(b.scales_h);
    for (ib, (q, y)) in
        b.qs.chunks_exact(16)
            .zip(y.chunks_exact_mut(32))
            .enumerate()
    {
        let low = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf;
        let high = ((scales_h >> (2 * ib)) & 3) as u8;
        let dl = d * ((low | (high << 4)) as i32 - 32) as f32;
        for (j, &q) in q.iter().enumerate() {
            y[j] = dl * KVALUES_IQ4NL[(q & 0xf) as usize] as f32;
            y[j + 16] = dl * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_index_picks_the_nearest_entry() {
        assert_eq!(best_index_iq4nl(-200.0), 0);
        assert_eq!(best_index_iq4nl(200.0), 15);
        assert_eq!(best_index_iq4nl(0.0), 8);
        assert_eq!(best_index_iq4nl(-4.5), 8); // exactly between -10 and 1: upper
        assert_eq!(best_index_iq4nl(-4.6), 7);
        for x in -130..=130 {
            let x = x as f32 * 0.97;
            let best = (0..16)
                .min_by(|&a, &b| {
                    let da = (KVALUES_IQ4NL[a] as f32 - x).abs();
                    let db = (KVALUES_IQ4NL[b] as f32 - x).abs();
                    da.partial_cmp(&db).unwrap().then(b.cmp(&a))
                })
                .unwrap();
            assert_eq!(best_index_iq4nl(x), best, "x = {x}");
        }
    }
}
