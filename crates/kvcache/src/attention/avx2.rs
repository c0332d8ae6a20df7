//! AVX2 + FMA + F16C row operations (x86-64, chosen at run time by `KernelPath::best`).
//!
//! Decoders turn one stored head row into f32 eight values at a time: f16 by `vcvtph2ps`,
//! bf16 by a 16-bit shift, the 32-blocks by widening their integer codes, iq4_nl by a byte
//! shuffle through its 16-entry codebook, and turbo rows by extracting eight indices with
//! per-lane shifts and looking the centroids up with `vpermps` (turbo4's 16 centroids take two
//! permutes and a blend on bit 3). Turbo K is then scored by an ordinary dot product against
//! the rotated query.
//!
//! Folded 64-wide turbo rows (the common case: SmolLM2, Qwen2.5) take a faster route: 32
//! indices at a time, one per byte, looked up by four `vpshufb` (one per byte of the f32
//! centroid) and interleaved by unpacks, all inside 128-bit lanes (`vpermps` crosses lanes and
//! is slow on Zen 1). That fixes an output order per type (`fold_order`), which the kernel
//! follows.

use std::arch::x86_64::*;

use formats::iquants::KVALUES_IQ4NL;
use formats::turbo::{CENTROIDS_2, CENTROIDS_3, CENTROIDS_4};

use super::ops::{RowOps, KB};
use crate::codec::decode_head;
use crate::types::KvType;

pub(crate) struct Avx2;

/// f16 bits at `p` (unaligned) as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// Eight sign-extended i8 codes (the low 8 bytes of `v`) as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i8x8_to_f32(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))
}

/// Writes the 32 values of one block whose codes are bytes `lo` (values 0..16) and `hi`
/// (values 16..32), as `d · code` (signed codes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_signed_halves(lo: __m128i, hi: __m128i, d: __m256, y: *mut f32) {
    _mm256_storeu_ps(y, _mm256_mul_ps(i8x8_to_f32(lo), d));
    _mm256_storeu_ps(
        y.add(8),
        _mm256_mul_ps(i8x8_to_f32(_mm_srli_si128(lo, 8)), d),
    );
    _mm256_storeu_ps(y.add(16), _mm256_mul_ps(i8x8_to_f32(hi), d));
    _mm256_storeu_ps(
        y.add(24),
        _mm256_mul_ps(i8x8_to_f32(_mm_srli_si128(hi, 8)), d),
    );
}

/// As `store_signed_halves` for unsigned codes with an offset: `d · code + m`, multiplied and
/// added separately (two roundings, as the reference dequantizer; an FMA would differ).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_unsigned_halves(lo: __m128i, hi: __m128i, d: __m256, m: __m256, y: *mut f32) {
    let cvt = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
    let f = |v: __m128i| _mm256_add_ps(_mm256_mul_ps(cvt(v), d), m);
    _mm256_storeu_ps(y, f(lo));
    _mm256_storeu_ps(y.add(8), f(_mm_srli_si128(lo, 8)));
    _mm256_storeu_ps(y.add(16), f(hi));
    _mm256_storeu_ps(y.add(24), f(_mm_srli_si128(hi, 8)));
}

/// Low and high nibbles of 16 bytes at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> (__m128i, __m128i) {
    let q = _mm_loadu_si128(p as *const __m128i);
    let mask = _mm_set1_epi8(15);
    (
        _mm_and_si128(q, mask),
        _mm_and_si128(_mm_srli_epi16(q, 4), mask),
    )
}

/// The fifth bits of a q5 block's values `base..base+8`, placed at bit 4 of each i32 lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_high(qh: __m256i, base: i32) -> __m256i {
    let shifts = _mm256_add_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(base),
    );
    _mm256_slli_epi32(
        _mm256_and_si256(_mm256_srlv_epi32(qh, shifts), _mm256_set1_epi32(1)),
        4,
    )
}

/// Decodes one q5 block (`qs` 16 bytes of nibbles, `qh` the 32 fifth bits) as
/// `d · (code + offset)`, plus `m` when given (separate multiply and add, as the reference).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_block(qs: *const u8, qh: u32, offset: i32, d: __m256, m: Option<__m256>, y: *mut f32) {
    let (lo, hi) = nibbles(qs);
    let qh = _mm256_set1_epi32(qh as i32);
    let off = _mm256_set1_epi32(offset);
    for (k, (codes, base)) in [
        (lo, 0),
        (_mm_srli_si128(lo, 8), 8),
        (hi, 16),
        (_mm_srli_si128(hi, 8), 24),
    ]
    .into_iter()
    .enumerate()
    {
        let v = _mm256_or_si256(_mm256_cvtepu8_epi32(codes), q5_high(qh, base));
        let v = _mm256_cvtepi32_ps(_mm256_add_epi32(v, off));
        let v = _mm256_mul_ps(v, d);
        let v = match m {
            Some(m) => _mm256_add_ps(v, m),
            None => v,
        };
        _mm256_storeu_ps(y.add(8 * k), v);
    }
}

/// Eight turbo codebook indices `8i..8i+8` of a block as i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn turbo_idx8(ty: KvType, block: *const u8, i: usize) -> __m256i {
    let qs = block.add(2);
    match ty {
        KvType::Turbo2 | KvType::Turbo3 => {
            // Two bits per element, four per byte: elements 8i..8i+8 are the u16 at 2i.
            let word = (qs.add(2 * i) as *const u16).read_unaligned() as i32;
            let low = _mm256_and_si256(
                _mm256_srlv_epi32(
                    _mm256_set1_epi32(word),
                    _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14),
                ),
                _mm256_set1_epi32(3),
            );
            if ty == KvType::Turbo2 {
                return low;
            }
            let signs = *block.add(34 + i) as i32;
            let high = _mm256_and_si256(
                _mm256_srlv_epi32(
                    _mm256_set1_epi32(signs),
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                ),
                _mm256_set1_epi32(1),
            );
            _mm256_or_si256(low, _mm256_slli_epi32(high, 2))
        }
        _ => {
            // turbo4: four bits per element, even element in the low nibble.
            let word = (qs.add(4 * i) as *const u32).read_unaligned() as i32;
            _mm256_and_si256(
                _mm256_srlv_epi32(
                    _mm256_set1_epi32(word),
                    _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28),
                ),
                _mm256_set1_epi32(15),
            )
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_turbo(ty: KvType, src: &[u8], dst: &mut [f32]) {
    let (c_lo, c_hi) = match ty {
        KvType::Turbo2 => {
            let c = &CENTROIDS_2;
            let v = _mm256_setr_ps(c[0], c[1], c[2], c[3], c[0], c[1], c[2], c[3]);
            (v, v)
        }
        KvType::Turbo3 => {
            let v = _mm256_loadu_ps(CENTROIDS_3.as_ptr());
            (v, v)
        }
        _ => (
            _mm256_loadu_ps(CENTROIDS_4.as_ptr()),
            _mm256_loadu_ps(CENTROIDS_4.as_ptr().add(8)),
        ),
    };
    let bb = ty.block_bytes();
    for (g, block) in src.chunks_exact(bb).enumerate() {
        let b = block.as_ptr();
        let norm = _mm256_set1_ps(f16_at(b));
        let y = dst.as_mut_ptr().add(g * 128);
        for i in 0..16 {
            let idx = turbo_idx8(ty, b, i);
            let mut c = _mm256_permutevar8x32_ps(c_lo, idx);
            if ty == KvType::Turbo4 {
                let hi = _mm256_permutevar8x32_ps(c_hi, idx);
                // Bit 3 of the index moved to the sign bit selects the upper eight.
                let sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
                c = _mm256_blendv_ps(c, hi, sel);
            }
            _mm256_storeu_ps(y.add(8 * i), _mm256_mul_ps(c, norm));
        }
    }
}

/// Byte plane `k` of a codebook for `vpshufb`: byte `k` of each centroid's f32 bits (16
/// entries; those past the codebook are zero, and no index reaches them).
const fn codebook_plane<const N: usize>(c: &[f32; N], k: usize) -> [u8; 16] {
    let mut plane = [0u8; 16];
    let mut i = 0;
    while i < N {
        plane[i] = c[i].to_bits().to_le_bytes()[k];
        i += 1;
    }
    plane
}

const fn codebook_planes<const N: usize>(c: &[f32; N]) -> [[u8; 16]; 4] {
    [
        codebook_plane(c, 0),
        codebook_plane(c, 1),
        codebook_plane(c, 2),
        codebook_plane(c, 3),
    ]
}

/// turbo2's folded values: entry `4a + b` is `C[a] + C[b]`, rounded once, as the FMA of the
/// two lookups would. With `C[3 − b] = −C[b]` (the codebook is symmetric, exactly), `C[a] −
/// C[b]` is entry `4a + (b ^ 3)`, so one lookup gives a folded value of either sign.
static PLANES_2_SUMS: [[u8; 16]; 4] = codebook_planes(&{
    let mut t = [0.0f32; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = CENTROIDS_2[i / 4] + CENTROIDS_2[i % 4];
        i += 1;
    }
    t
});
const _: () = {
    let mut i = 0;
    while i < 4 {
        assert!(CENTROIDS_2[3 - i] == -CENTROIDS_2[i]);
        i += 1;
    }
};
/// turbo3's codebook for the folded decode: entries 0..8 are the codebook, and entries 8..12
/// repeat its upper half, so an index may carry its high bit (bit 2) at bit 2 or at bit 3
/// (see [`turbo_half_indices`]).
static PLANES_3: [[u8; 16]; 4] = codebook_planes(&{
    let mut c = [0.0f32; 12];
    let mut i = 0;
    while i < 12 {
        c[i] = CENTROIDS_3[if i < 8 { i } else { i - 4 }];
        i += 1;
    }
    c
});
static PLANES_4: [[u8; 16]; 4] = codebook_planes(&CENTROIDS_4);

/// The byte planes of the table [`decode_fold_turbo`] looks a turbo type up in (the codebook,
/// or for turbo2 the folded sums), each in both 128-bit lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn turbo_planes(ty: KvType) -> [__m256i; 4] {
    let planes = match ty {
        KvType::Turbo2 => &PLANES_2_SUMS,
        KvType::Turbo3 => &PLANES_3,
        _ => &PLANES_4,
    };
    planes.map(|p| _mm256_broadcastsi128_si256(_mm_loadu_si128(p.as_ptr() as *const __m128i)))
}

/// The centroids of 32 indices (one per byte of `idx`, each below 16) as four vectors of f32:
/// vector `m` holds the indices at bytes `4m..4m+4` of the low 128-bit lane, then bytes
/// `16+4m..16+4m+4`. Each byte of the f32 comes from its own `vpshufb` table; two rounds of
/// unpacks interleave them. Every step stays inside a 128-bit lane (cheap on CPUs that split
/// 256-bit operations, unlike `vpermps`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lookup32(idx: __m256i, planes: &[__m256i; 4]) -> [__m256; 4] {
    let b0 = _mm256_shuffle_epi8(planes[0], idx);
    let b1 = _mm256_shuffle_epi8(planes[1], idx);
    let b2 = _mm256_shuffle_epi8(planes[2], idx);
    let b3 = _mm256_shuffle_epi8(planes[3], idx);
    let lo01 = _mm256_unpacklo_epi8(b0, b1);
    let hi01 = _mm256_unpackhi_epi8(b0, b1);
    let lo23 = _mm256_unpacklo_epi8(b2, b3);
    let hi23 = _mm256_unpackhi_epi8(b2, b3);
    [
        _mm256_castsi256_ps(_mm256_unpacklo_epi16(lo01, lo23)),
        _mm256_castsi256_ps(_mm256_unpackhi_epi16(lo01, lo23)),
        _mm256_castsi256_ps(_mm256_unpacklo_epi16(hi01, hi23)),
        _mm256_castsi256_ps(_mm256_unpackhi_epi16(hi01, hi23)),
    ]
}

/// The 64 indices of half `h` (0: values 0..64 of the block, 1: values 64..128) as two
/// vectors of one index per byte, in the order [`half_element`] gives, which is the same for
/// both halves. Each is an index into [`turbo_planes`]' table (for turbo3, the high bit may sit
/// at bit 3: see `PLANES_3`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn turbo_half_indices(ty: KvType, block: *const u8, h: usize) -> [__m256i; 2] {
    let qs = block.add(2);
    if ty == KvType::Turbo4 {
        // Byte b holds values 2b (low nibble) and 2b + 1.
        let a = _mm256_loadu_si256(qs.add(32 * h) as *const __m256i);
        let m = _mm256_set1_epi8(15);
        return [
            _mm256_and_si256(a, m),
            _mm256_and_si256(_mm256_srli_epi16(a, 4), m),
        ];
    }
    // Two bits per value, four per byte: the half's 16 bytes in both lanes, shifted by 0 / 2
    // (vector 0) or 4 / 6 (vector 1) bits in the low / high lane.
    let l = _mm256_broadcastsi128_si256(_mm_loadu_si128(qs.add(16 * h) as *const __m128i));
    let m = _mm256_set1_epi8(3);
    let mut x = [
        _mm256_and_si256(_mm256_srlv_epi64(l, _mm256_setr_epi64x(0, 0, 2, 2)), m),
        _mm256_and_si256(_mm256_srlv_epi64(l, _mm256_setr_epi64x(4, 4, 6, 6)), m),
    ];
    if ty == KvType::Turbo3 {
        // Bit 2 of value e is bit e % 8 of sign byte e / 8. Interleave the half's eight sign
        // bytes with themselves shifted down a nibble: byte b of `z` then holds the sign bit of
        // value 4b + k at bit k (bits 4..8 are left over, masked below). Vector r needs k = 2r
        // in the low lane and 2r + 1 in the high lane; shifted by 2 − 2r, those land at bit 2
        // (low lane) and bit 3 (high lane) of the index, which `PLANES_3` maps alike. All 16
        // sign bytes in both lanes: the two halves' calls share the load and the shift.
        let s = _mm256_broadcastsi128_si256(_mm_loadu_si128(block.add(34) as *const __m128i));
        let s4 = _mm256_srli_epi16(s, 4);
        let z = if h == 0 {
            _mm256_unpacklo_epi8(s, s4)
        } else {
            _mm256_unpackhi_epi8(s, s4)
        };
        let high = _mm256_setr_epi8(
            4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
            8, 8, 8,
        );
        x[0] = _mm256_or_si256(x[0], _mm256_and_si256(_mm256_slli_epi16(z, 2), high));
        x[1] = _mm256_or_si256(x[1], _mm256_and_si256(z, high));
    }
    x
}

/// The value (0..64 within its half) that byte `byte` (0..32) of index vector `r` (0 or 1)
/// of [`turbo_half_indices`] holds.
const fn half_element(ty: KvType, r: usize, byte: usize) -> usize {
    match ty {
        KvType::Turbo4 => 2 * byte + r,
        _ => 4 * (byte % 16) + 2 * r + byte / 16,
    }
}

/// The order in which [`decode_fold_turbo`] writes a folded half: position `p` holds value
/// `order[p]`. Position `8(4r + m) + i` is lane `i` of lookup vector `m` of index vector `r`.
const fn fold_order_of(ty: KvType) -> [u8; 64] {
    let mut order = [0u8; 64];
    let mut p = 0;
    while p < 64 {
        let (v, i) = (p / 8, p % 8);
        let (r, m) = (v / 4, v % 4);
        let byte = 16 * (i / 4) + 4 * m + i % 4;
        order[p] = half_element(ty, r, byte) as u8;
        p += 1;
    }
    order
}

static FOLD_ORDER_23: [u8; 64] = fold_order_of(KvType::Turbo3);
static FOLD_ORDER_4: [u8; 64] = fold_order_of(KvType::Turbo4);

/// The order of the AVX2 folded rows of a turbo type (see `RowOps::fold_order`).
pub(crate) fn fold_order(ty: KvType) -> Option<&'static [u8; 64]> {
    match ty {
        KvType::Turbo2 | KvType::Turbo3 => Some(&FOLD_ORDER_23),
        KvType::Turbo4 => Some(&FOLD_ORDER_4),
        _ => None,
    }
}

/// Decodes one 128-value turbo block straight into its 64-value half form (see `half`), in
/// the order of [`fold_order`], without its norm (returned): `C[idx_j] + signs_j ·
/// C[idx_{j+64}]`, where `signs` is already in that order. Values `j` and `j + 64` come out at
/// the same position of the two halves' lookups, so the fold is one FMA per eight outputs.
/// With `second`, also writes the fold with `−signs` there (the other head of a packed pair)
/// from the same lookups. turbo2 instead looks each folded value up whole in its table of
/// sums, its index flipped by `flips` ([`sign_flips`] of `signs`).
///
/// # Safety
/// `b` points at `ty.block_bytes()` readable bytes, `y` (and `y2`) at 64 writable floats.
#[inline(always)]
unsafe fn decode_fold_turbo(
    ty: KvType,
    b: *const u8,
    planes: &[__m256i; 4],
    signs: &[f32; 64],
    flips: &[__m256i; 2],
    y: *mut f32,
    y2: Option<*mut f32>,
) -> f32 {
    let lo = turbo_half_indices(ty, b, 0);
    let hi = turbo_half_indices(ty, b, 1);
    if ty == KvType::Turbo2 {
        // One lookup per folded value: index 4·lo + (hi ^ 3 where the sign is −1) in
        // `PLANES_2_SUMS` (`planes`); the other head of a pair has every sign flipped.
        for r in 0..2 {
            let a = _mm256_slli_epi16(lo[r], 2);
            let v = lookup32(
                _mm256_or_si256(a, _mm256_xor_si256(hi[r], flips[r])),
                planes,
            );
            for (m, v) in v.iter().enumerate() {
                _mm256_storeu_ps(y.add(8 * (4 * r + m)), *v);
            }
            if let Some(y2) = y2 {
                let three = _mm256_set1_epi8(3);
                let flipped = _mm256_xor_si256(hi[r], _mm256_xor_si256(flips[r], three));
                let v = lookup32(_mm256_or_si256(a, flipped), planes);
                for (m, v) in v.iter().enumerate() {
                    _mm256_storeu_ps(y2.add(8 * (4 * r + m)), *v);
                }
            }
        }
        return f16_at(b);
    }
    for r in 0..2 {
        let l = lookup32(lo[r], planes);
        let h = lookup32(hi[r], planes);
        for m in 0..4 {
            let k = 8 * (4 * r + m);
            let s = _mm256_loadu_ps(signs.as_ptr().add(k));
            _mm256_storeu_ps(y.add(k), _mm256_fmadd_ps(s, h[m], l[m]));
            if let Some(y2) = y2 {
                // −s·h + l rounds once, exactly as fmadd(−s, h, l).
                _mm256_storeu_ps(y2.add(k), _mm256_fnmadd_ps(s, h[m], l[m]));
            }
        }
    }
    f16_at(b)
}

/// turbo2's index flips for [`decode_fold_turbo`]: byte `b` of vector `r` is 3 where the fold
/// sign of the value at that byte of index vector `r` is −1 (see [`fold_order_of`]), else 0.
/// Position `8(4r + m) + i` holds byte `16(i / 4) + 4m + i % 4`, which is where two in-lane
/// packs of the four sign vectors of `r` put lane `i` of vector `m`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn sign_flips(signs: &[f32; 64]) -> [__m256i; 2] {
    let neg = |k: usize| {
        let s = _mm256_loadu_ps(signs.as_ptr().add(8 * k));
        _mm256_castps_si256(_mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_LT_OQ))
    };
    std::array::from_fn(|r| {
        let lo = _mm256_packs_epi32(neg(4 * r), neg(4 * r + 1));
        let hi = _mm256_packs_epi32(neg(4 * r + 2), neg(4 * r + 3));
        _mm256_and_si256(_mm256_packs_epi16(lo, hi), _mm256_set1_epi8(3))
    })
}

/// [`decode_fold_turbo`] over `n` stored rows (`row_bytes` apart), row `r` to
/// `first[r·pitch..]` (and `second`'s), its norm to `scales[r]`; false, writing nothing, if
/// `ty` is not a turbo type.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn fold_turbo_rows(
    ty: KvType,
    src: &[u8],
    row_bytes: usize,
    n: usize,
    first: &mut [f32],
    mut second: Option<&mut [f32]>,
    pitch: usize,
    signs: &[f32; 64],
    scales: &mut [f32; KB],
) -> bool {
    // One match per block of rows: each arm's loop is specialized to its type. The bounds
    // are checked once per block of rows, not per row (that was a tenth of the loop).
    macro_rules! rows {
        ($t:expr) => {{
            let planes = turbo_planes($t);
            assert!(n <= KB);
            if n > 0 {
                assert!(src.len() >= (n - 1) * row_bytes + $t.block_bytes());
                assert!(first.len() >= (n - 1) * pitch + 64);
                assert!(second
                    .as_ref()
                    .is_none_or(|d| d.len() >= (n - 1) * pitch + 64));
            }
            let (b, y) = (src.as_ptr(), first.as_mut_ptr());
            let y2 = second.as_deref_mut().map(|d| d.as_mut_ptr());
            let flips = if $t == KvType::Turbo2 {
                sign_flips(signs)
            } else {
                [_mm256_setzero_si256(); 2]
            };
            for (r, scale) in scales[..n].iter_mut().enumerate() {
                // SAFETY: row r's block and outputs lie inside the ranges checked above.
                *scale = decode_fold_turbo(
                    $t,
                    b.add(r * row_bytes),
                    &planes,
                    signs,
                    &flips,
                    y.add(r * pitch),
                    y2.map(|y2| y2.add(r * pitch)),
                );
            }
        }};
    }
    match ty {
        KvType::Turbo2 => rows!(KvType::Turbo2),
        KvType::Turbo3 => rows!(KvType::Turbo3),
        KvType::Turbo4 => rows!(KvType::Turbo4),
        _ => return false,
    }
    true
}

/// Decodes one stored head row; `src` and `dst` hold exactly one row.
#[inline(always)]
unsafe fn decode_row(ty: KvType, src: &[u8], dst: &mut [f32]) {
    let y = dst.as_mut_ptr();
    match ty {
        KvType::F32 => {
            std::ptr::copy_nonoverlapping(src.as_ptr(), y as *mut u8, dst.len() * 4);
        }
        KvType::F16 | KvType::Bf16 => {
            let n8 = dst.len() / 8 * 8;
            for i in (0..n8).step_by(8) {
                let h = _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i);
                let v = if ty == KvType::F16 {
                    _mm256_cvtph_ps(h)
                } else {
                    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                };
                _mm256_storeu_ps(y.add(i), v);
            }
            if n8 < dst.len() {
                decode_head(ty, &src[2 * n8..], &mut dst[n8..]);
            }
        }
        KvType::Q8_0 => {
            for (k, b) in src.chunks_exact(34).enumerate() {
                let p = b.as_ptr();
                let d = _mm256_set1_ps(f16_at(p));
                for j in 0..4 {
                    let q = _mm_loadl_epi64(p.add(2 + 8 * j) as *const __m128i);
                    _mm256_storeu_ps(y.add(32 * k + 8 * j), _mm256_mul_ps(i8x8_to_f32(q), d));
                }
            }
        }
        KvType::Q4_0 => {
            for (k, b) in src.chunks_exact(18).enumerate() {
                let p = b.as_ptr();
                let d = _mm256_set1_ps(f16_at(p));
                let (lo, hi) = nibbles(p.add(2));
                let eight = _mm_set1_epi8(8);
                let (lo, hi) = (_mm_sub_epi8(lo, eight), _mm_sub_epi8(hi, eight));
                store_signed_halves(lo, hi, d, y.add(32 * k));
            }
        }
        KvType::Iq4Nl => {
            let table = _mm_loadu_si128(KVALUES_IQ4NL.as_ptr() as *const __m128i);
            for (k, b) in src.chunks_exact(18).enumerate() {
                let p = b.as_ptr();
                let d = _mm256_set1_ps(f16_at(p));
                let (lo, hi) = nibbles(p.add(2));
                let (lo, hi) = (_mm_shuffle_epi8(table, lo), _mm_shuffle_epi8(table, hi));
                store_signed_halves(lo, hi, d, y.add(32 * k));
            }
        }
        KvType::Q4_1 => {
            for (k, b) in src.chunks_exact(20).enumerate() {
                let p = b.as_ptr();
                let d = _mm256_set1_ps(f16_at(p));
                let m = _mm256_set1_ps(f16_at(p.add(2)));
                let (lo, hi) = nibbles(p.add(4));
                store_unsigned_halves(lo, hi, d, m, y.add(32 * k));
            }
        }
        KvType::Q5_0 => {
            for (k, b) in src.chunks_exact(22).enumerate() {
                let p = b.as_ptr();
                let d = _mm256_set1_ps(f16_at(p));
                let qh = (p.add(2) as *const u32).read_unaligned();
                q5_block(p.add(6), qh, -16, d, None, y.add(32 * k));
            }
        }
        KvType::Q5_1 => {
            for (k, b) in src.chunks_exact(24).enumerate() {
                let p = b.as_ptr();
                let d = _mm256_set1_ps(f16_at(p));
                let m = _mm256_set1_ps(f16_at(p.add(2)));
                let qh = (p.add(4) as *const u32).read_unaligned();
                q5_block(p.add(8), qh, 0, d, Some(m), y.add(32 * k));
            }
        }
        KvType::Turbo2 | KvType::Turbo3 | KvType::Turbo4 => decode_turbo(ty, src, dst),
    }
}

/// Sums of eight vectors: lane `j` of the result is the horizontal sum of `v[j]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum8(v: &[__m256; 8]) -> __m256 {
    let t0 = _mm256_hadd_ps(v[0], v[1]);
    let t1 = _mm256_hadd_ps(v[2], v[3]);
    let t2 = _mm256_hadd_ps(v[4], v[5]);
    let t3 = _mm256_hadd_ps(v[6], v[7]);
    // u0 lanes: sums of v0..v3 over the low 128 bits, then over the high 128 bits.
    let u0 = _mm256_hadd_ps(t0, t1);
    let u1 = _mm256_hadd_ps(t2, t3);
    let lo = _mm256_permute2f128_ps(u0, u1, 0x20);
    let hi = _mm256_permute2f128_ps(u0, u1, 0x31);
    _mm256_add_ps(lo, hi)
}

impl RowOps for Avx2 {
    const TURBO_K_TABLE: bool = false;

    fn fold_order(ty: KvType) -> Option<&'static [u8; 64]> {
        fold_order(ty)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn decode_rows(
        ty: KvType,
        src: &[u8],
        row_bytes: usize,
        n: usize,
        dst: &mut [f32],
        pitch: usize,
    ) {
        // One match per block of rows, not per row: each arm's loop is specialized.
        macro_rules! rows {
            ($t:expr) => {
                for r in 0..n {
                    decode_row(
                        $t,
                        &src[r * row_bytes..(r + 1) * row_bytes],
                        &mut dst[r * pitch..(r + 1) * pitch],
                    );
                }
            };
        }
        match ty {
            KvType::F32 => rows!(KvType::F32),
            KvType::F16 => rows!(KvType::F16),
            KvType::Bf16 => rows!(KvType::Bf16),
            KvType::Q8_0 => rows!(KvType::Q8_0),
            KvType::Q4_0 => rows!(KvType::Q4_0),
            KvType::Q4_1 => rows!(KvType::Q4_1),
            KvType::Q5_0 => rows!(KvType::Q5_0),
            KvType::Q5_1 => rows!(KvType::Q5_1),
            KvType::Iq4Nl => rows!(KvType::Iq4Nl),
            KvType::Turbo2 => rows!(KvType::Turbo2),
            KvType::Turbo3 => rows!(KvType::Turbo3),
            KvType::Turbo4 => rows!(KvType::Turbo4),
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn decode_fold_rows(
        ty: KvType,
        src: &[u8],
        row_bytes: usize,
        n: usize,
        dst: &mut [f32],
        pitch: usize,
        signs: &[f32; 64],
        scales: &mut [f32; KB],
    ) {
        if !fold_turbo_rows(ty, src, row_bytes, n, dst, None, pitch, signs, scales) {
            Self::decode_rows(ty, src, row_bytes, n, dst, pitch);
            Self::fold_rows(dst, n, pitch, signs);
            scales.fill(1.0);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn decode_fold_pair_rows(
        ty: KvType,
        src: &[u8],
        row_bytes: usize,
        n: usize,
        first: &mut [f32],
        second: &mut [f32],
        pitch: usize,
        signs: &[f32; 64],
        scales: &mut [f32; KB],
    ) {
        let second_out = Some(&mut *second);
        if !fold_turbo_rows(
            ty, src, row_bytes, n, first, second_out, pitch, signs, scales,
        ) {
            // Only turbo heads fold; kept correct for any type all the same.
            let neg = signs.map(|s| -s);
            Self::decode_fold_rows(ty, src, row_bytes, n, first, pitch, signs, scales);
            Self::decode_fold_rows(ty, src, row_bytes, n, second, pitch, &neg, scales);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fold_rows(buf: &mut [f32], n: usize, pitch: usize, signs: &[f32; 64]) {
        assert!(n == 0 || buf.len() >= (n - 1) * pitch + 128);
        let p = buf.as_mut_ptr();
        for r in 0..n {
            let row = p.add(r * pitch);
            for i in (0..64).step_by(8) {
                let s = _mm256_loadu_ps(signs.as_ptr().add(i));
                let lo = _mm256_loadu_ps(row.add(i));
                let hi = _mm256_loadu_ps(row.add(64 + i));
                _mm256_storeu_ps(row.add(i), _mm256_fmadd_ps(s, hi, lo));
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_block(q: &[f32], k: &[f32], pitch: usize, out: &mut [f32]) {
        let n = q.len();
        assert!(k.len() >= (KB - 1) * pitch + n && out.len() >= KB);
        let (pq, pk) = (q.as_ptr(), k.as_ptr());
        // One pointer per row, so the loop indexes each with the column alone (no per-row
        // address arithmetic).
        let rows: [*const f32; KB] = std::array::from_fn(|j| pk.add(j * pitch));
        let mut acc = [_mm256_setzero_ps(); KB];
        let mut d = 0;
        while d + 8 <= n {
            let qv = _mm256_loadu_ps(pq.add(d));
            for (a, row) in acc.iter_mut().zip(&rows) {
                *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(row.add(d)), *a);
            }
            d += 8;
        }
        _mm256_storeu_ps(out.as_mut_ptr(), hsum8(&acc));
        while d < n {
            for (j, o) in out[..KB].iter_mut().enumerate() {
                *o += q[d] * k[j * pitch + d];
            }
            d += 1;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn axpy_block(acc: &mut [f32], p: &[f32], v: &[f32], pitch: usize) {
        let n = acc.len();
        assert!(v.len() >= (KB - 1) * pitch + n && p.len() >= KB);
        let (pa, pv) = (acc.as_mut_ptr(), v.as_ptr());
        let mut pp = [_mm256_setzero_ps(); KB];
        for (b, &x) in pp.iter_mut().zip(p) {
            *b = _mm256_set1_ps(x);
        }
        let mut d = 0;
        // Four 8-lane columns at once: each column's eight FMAs depend on each other, so
        // interleaving four columns hides the FMA latency.
        while d + 32 <= n {
            let mut a = [_mm256_setzero_ps(); 4];
            for (c, a) in a.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(pa.add(d + 8 * c));
            }
            for (j, b) in pp.iter().enumerate() {
                let row = pv.add(j * pitch + d);
                for (c, a) in a.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(*b, _mm256_loadu_ps(row.add(8 * c)), *a);
                }
            }
            for (c, a) in a.iter().enumerate() {
                _mm256_storeu_ps(pa.add(d + 8 * c), *a);
            }
            d += 32;
        }
        while d + 8 <= n {
            let mut a = _mm256_loadu_ps(pa.add(d));
            for (j, b) in pp.iter().enumerate() {
                a = _mm256_fmadd_ps(*b, _mm256_loadu_ps(pv.add(j * pitch + d)), a);
            }
            _mm256_storeu_ps(pa.add(d), a);
            d += 8;
        }
        while d < n {
            for (j, &x) in p[..KB].iter().enumerate() {
                acc[d] += x * v[j * pitch + d];
            }
            d += 1;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scale(x: &mut [f32], s: f32) {
        let n = x.len();
        let px = x.as_mut_ptr();
        let ss = _mm256_set1_ps(s);
        let mut i = 0;
        while i + 8 <= n {
            _mm256_storeu_ps(px.add(i), _mm256_mul_ps(_mm256_loadu_ps(px.add(i)), ss));
            i += 8;
        }
        while i < n {
            x[i] *= s;
            i += 1;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
        let n = x.len();
        let px = x.as_mut_ptr();
        let mm = _mm256_set1_ps(m);
        let mut sum = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(px.add(i)), mm));
            _mm256_storeu_ps(px.add(i), e);
            sum = _mm256_add_ps(sum, e);
            i += 8;
        }
        if i < n {
            // Pad the tail to eight lanes with −∞ (exp = 0) so it goes through the same exp,
            // and add it lane-wise before the one horizontal sum: a row's scores then land in
            // the same lanes however long the slice is (the length follows the highest position
            // in the row's tile, so it depends on the batch), and padding adds exact zeros, so
            // the sum's bits do not depend on how a prompt was cut into passes.
            let mut tail = [f32::NEG_INFINITY; 8];
            tail[..n - i].copy_from_slice(&x[i..]);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(tail.as_ptr()), mm));
            _mm256_storeu_ps(tail.as_mut_ptr(), e);
            x[i..].copy_from_slice(&tail[..n - i]);
            sum = _mm256_add_ps(sum, e);
        }
        hsum(sum)
    }
}

/// e^x for eight lanes, x ≤ 0 expected; relative error about 2e-7 (Cephes `expf`: range
/// reduction by ln 2 split in two parts, then a degree-5 polynomial). Inputs below −87 and
/// −∞ give exactly 0, NaN stays NaN.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn exp8(x: __m256) -> __m256 {
    let underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0), _CMP_LT_OQ);
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
        _mm256_set1_ps(88.0),
    );
    // n = round(x / ln 2), r = x − n·ln 2 (ln 2 = C1 + C2, C1 exact in few bits).
    let n = _mm256_round_ps(
        _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
    );
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let r2 = _mm256_mul_ps(r, r);
    let y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    let pow2 = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
        23,
    );
    let e = _mm256_mul_ps(y, _mm256_castsi256_ps(pow2));
    _mm256_andnot_ps(underflow, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::ops::Scalar;
    use crate::attention::KernelPath;
    use crate::codec::encode_head;
    use crate::types::ALL_KV_TYPES;

    fn avx2() -> bool {
        let ok = KernelPath::Avx2.is_available();
        if !ok {
            eprintln!("skipped: this CPU lacks AVX2/FMA/F16C");
        }
        ok
    }

    /// The softmax sum of a row's scores does not depend on how many masked (−∞) scores follow
    /// them: a row attended in tiles of different composition (so different slice lengths)
    /// gets the same bits, which a server's prompt cache relies on.
    #[test]
    fn exp_sum_ignores_masked_padding() {
        if !avx2() {
            return;
        }
        let mut seed = 7u32;
        for valid in 1..40usize {
            let scores: Vec<f32> = (0..valid)
                .map(|_| {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    (seed >> 8) as f32 / (1 << 24) as f32 * 8.0 - 4.0
                })
                .collect();
            let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut alone = scores.clone();
            let want = unsafe { Avx2::exp_sub_sum(&mut alone, m) };
            for pad in 1..20usize {
                let mut padded = scores.clone();
                padded.resize(valid + pad, f32::NEG_INFINITY);
                let got = unsafe { Avx2::exp_sub_sum(&mut padded, m) };
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{valid} scores + {pad} masked"
                );
                for (a, b) in padded[..valid].iter().zip(&alone) {
                    assert_eq!(a.to_bits(), b.to_bits());
                }
                assert!(padded[valid..].iter().all(|&v| v == 0.0));
            }
        }
    }

    /// Every AVX2 decoder gives exactly the scalar decoder's values.
    #[test]
    fn decoders_match_scalar_bit_for_bit() {
        if !avx2() {
            return;
        }
        let mut seed = 12345u32;
        for ty in ALL_KV_TYPES {
            for hd in [32usize, 64, 72, 96, 128, 200, 256] {
                let Ok(padded) = ty.padded_head_dim(hd) else {
                    continue;
                };
                let row_bytes = ty.head_bytes(hd).unwrap();
                let n = 5;
                let mut bytes = vec![0u8; n * row_bytes];
                for (r, row) in bytes.chunks_exact_mut(row_bytes).enumerate() {
                    let src: Vec<f32> = (0..hd)
                        .map(|i| {
                            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                            let v = (seed >> 8) as f32 / (1 << 24) as f32 - 0.5;
                            if (i + r) % 29 == 0 {
                                v * 50.0
                            } else {
                                v
                            }
                        })
                        .collect();
                    encode_head(ty, &src, None, row).unwrap();
                }
                let pitch = padded + 3;
                let mut want = vec![0.0f32; n * pitch];
                let mut got = vec![f32::NAN; n * pitch];
                unsafe {
                    Scalar::decode_rows(ty, &bytes, row_bytes, n, &mut want, pitch);
                    Avx2::decode_rows(ty, &bytes, row_bytes, n, &mut got, pitch);
                }
                for r in 0..n {
                    for j in 0..padded {
                        let (g, w) = (got[r * pitch + j], want[r * pitch + j]);
                        assert_eq!(g.to_bits(), w.to_bits(), "{ty} head {hd} row {r} value {j}");
                    }
                }
            }
        }
    }

    /// The fused turbo decode-and-fold agrees with decoding then folding on the scalar path,
    /// once its fold order is undone; the order is a permutation.
    #[test]
    fn decode_fold_matches_scalar() {
        if !avx2() {
            return;
        }
        for ty in [KvType::Turbo2, KvType::Turbo3, KvType::Turbo4] {
            let order = fold_order(ty).expect("turbo types have a fold order");
            let mut seen = [false; 64];
            for &j in order {
                assert!(!seen[j as usize], "{ty}: value {j} twice in the fold order");
                seen[j as usize] = true;
            }
            let (n, row_bytes, pitch) = (5, ty.block_bytes(), 131);
            let mut bytes = vec![0u8; n * row_bytes];
            for (r, row) in bytes.chunks_exact_mut(row_bytes).enumerate() {
                let src: Vec<f32> = (0..128)
                    .map(|i| ((i * 7 + r) as f32 * 0.37).sin())
                    .collect();
                encode_head(ty, &src, None, row).unwrap();
            }
            let signs: [f32; 64] = std::array::from_fn(|j| if j % 3 == 0 { -1.0 } else { 1.0 });
            let permuted: [f32; 64] = std::array::from_fn(|p| signs[order[p] as usize]);
            let neg = signs.map(|s| -s);
            let neg_permuted = permuted.map(|s| -s);
            let buf = || vec![0.0f32; n * pitch];
            let (mut want, mut want_neg, mut got, mut got_neg) = (buf(), buf(), buf(), buf());
            let (mut first, mut second) = (buf(), buf());
            let mut ones = [0.0f32; KB];
            let (mut scales, mut scales_neg, mut pair_scales) =
                ([0.0f32; KB], [0.0f32; KB], [0.0f32; KB]);
            unsafe {
                Scalar::decode_fold_rows(
                    ty, &bytes, row_bytes, n, &mut want, pitch, &signs, &mut ones,
                );
                Scalar::decode_fold_rows(
                    ty,
                    &bytes,
                    row_bytes,
                    n,
                    &mut want_neg,
                    pitch,
                    &neg,
                    &mut ones,
                );
                Avx2::decode_fold_rows(
                    ty,
                    &bytes,
                    row_bytes,
                    n,
                    &mut got,
                    pitch,
                    &permuted,
                    &mut scales,
                );
                Avx2::decode_fold_rows(
                    ty,
                    &bytes,
                    row_bytes,
                    n,
                    &mut got_neg,
                    pitch,
                    &neg_permuted,
                    &mut scales_neg,
                );
                Avx2::decode_fold_pair_rows(
                    ty,
                    &bytes,
                    row_bytes,
                    n,
                    &mut first,
                    &mut second,
                    pitch,
                    &permuted,
                    &mut pair_scales,
                );
            }
            assert!(
                ones[..n].iter().all(|&s| s == 1.0),
                "the scalar rows carry their norms"
            );
            for r in 0..n {
                assert_eq!(scales[r], scales_neg[r]);
                assert_eq!(scales[r], pair_scales[r]);
                for (p, &j) in order.iter().enumerate() {
                    let at = r * pitch + p;
                    // Undo the order and apply the scale: the scalar fold.
                    for (g, want, what) in [
                        (got[at], &want, "fold"),
                        (got_neg[at], &want_neg, "negated fold"),
                    ] {
                        let (g, w) = (g * scales[r], want[r * pitch + j as usize]);
                        assert!(
                            (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                            "{ty} row {r} value {j} (position {p}), {what}: {g} vs {w}"
                        );
                    }
                    // The pair decoder gives both folds bit for bit.
                    assert_eq!(first[at].to_bits(), got[at].to_bits(), "{ty} pair {r} {p}");
                    assert_eq!(
                        second[at].to_bits(),
                        got_neg[at].to_bits(),
                        "{ty} pair {r} {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn exp_is_accurate_and_exact_at_the_ends() {
        if !avx2() {
            return;
        }
        let mut xs: Vec<f32> = (0..2000).map(|i| -(i as f32) * 0.05).collect();
        xs.extend([0.0, -1e-30, -86.9, -87.5, -100.0, f32::NEG_INFINITY, -3.0]);
        let m = 0.0;
        let mut got = xs.clone();
        let sum = unsafe { Avx2::exp_sub_sum(&mut got, m) };
        let mut want_sum = 0.0f64;
        for (x, g) in xs.iter().zip(&got) {
            let w = (*x as f64).exp();
            want_sum += if *x < -87.0 { 0.0 } else { w };
            if *x < -87.0 {
                assert_eq!(*g, 0.0, "exp({x})");
            } else {
                let rel = (*g as f64 - w).abs() / w;
                assert!(rel < 4e-7, "exp({x}) = {g}, want {w} (rel {rel:e})");
            }
        }
        assert!((sum as f64 - want_sum).abs() / want_sum < 1e-6);
    }

    #[test]
    fn block_ops_match_scalar() {
        if !avx2() {
            return;
        }
        for n in [1usize, 7, 8, 31, 32, 64, 100, 128, 256] {
            let pitch = n + 5;
            let q: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let k: Vec<f32> = (0..KB * pitch).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut got = [0.0f32; KB];
            let mut want = [0.0f32; KB];
            unsafe {
                Avx2::dot_block(&q, &k, pitch, &mut got);
                Scalar::dot_block(&q, &k, pitch, &mut want);
            }
            for j in 0..KB {
                assert!((got[j] - want[j]).abs() < 1e-5, "dot {n} row {j}");
            }
            let p: Vec<f32> = (0..KB)
                .map(|j| if j == 3 { 0.0 } else { 0.1 * j as f32 })
                .collect();
            let mut acc = q.clone();
            let mut acc_s = q.clone();
            unsafe {
                Avx2::axpy_block(&mut acc, &p, &k, pitch);
                Scalar::axpy_block(&mut acc_s, &p, &k, pitch);
                Avx2::scale(&mut acc, 1.7);
                Scalar::scale(&mut acc_s, 1.7);
            }
            for (x, y) in acc.iter().zip(&acc_s) {
                assert!((x - y).abs() < 1e-5, "axpy {n}");
            }
        }
    }
}
