//! The 256-value K-quant super-blocks: q2_K, q3_K, q4_K, q5_K, q6_K and the q8_K activation
//! format.
//!
//! The quantizers reproduce ggml's `quantize_row_q*_K_ref` byte for byte. They search for
//! good sub-block scales (and mins) iteratively, so every float operation below follows ggml's
//! order exactly: products are evaluated left to right (`w * x * l` is `(w * x) * l`), sums run
//! in index order, and rounding uses [`nearest_int`] (round half to even through the f32
//! mantissa), never `f32::round` (half away from zero).

use half::f16;

use crate::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::types::QK_K;

/// Sub-blocks whose largest magnitude is below this are treated as all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: adding 1.5·2²³ puts the integer part of `x` in the low mantissa bits,
/// rounded by the f32 addition (to nearest, ties to even). Exact for |x| < 2²²; larger inputs
/// give the same (meaningless) values as ggml, which callers then clamp.
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    let bits = (x + 12_582_912.0).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// The element of largest magnitude (first one on ties) and that magnitude.
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights: symmetric levels
/// `-nmax..nmax-1` (stored in `l` offset by `nmax`), weights `x²`, then a scan of 18 nearby
/// scales keeping the one with the best weighted least-squares fit. Returns the scale.
fn make_qx_quants(x: &[f32], nmax: i32, l: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let fit = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let q = level(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * q;
            suml2 += w * q * q;
        }
        (sumlx, suml2)
    };

    let mut iscale = -(nmax as f32) / max;
    for (l, &v) in l.iter_mut().zip(x) {
        *l = (level(iscale, v) + nmax) as i8;
    }
    let (sumlx, suml2) = fit(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (l, &v) in l.iter_mut().zip(x) {
                *l = (level(iscale, v) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse`: start from the max-based levels, then up to five
/// passes of coordinate descent on the weighted (`x²`) least-squares fit. Levels are stored
/// offset by `nmax`. Returns the scale.
fn make_q3_quants(x: &[f32], nmax: i32, l: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (l, &v) in l.iter_mut().zip(x) {
        let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *l = q as i8;
        let w = v * v;
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (l, &v) in l.iter_mut().zip(x) {
            let w = v * v;
            let cur = *l as f32;
            let mut slx = sumlx - w * v * cur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * cur * cur;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *l as i32 {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for l in l.iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Parameters of ggml's `make_qkx2_quants` scale search.
struct Qkx2Search {
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    /// Minimize the weighted absolute error instead of the squared error.
    use_mad: bool,
}

/// ggml's `make_qkx2_quants`: asymmetric levels `0..=nmax` with `x ≈ scale·l − min`, searched
/// over `nstep + 1` candidate scales, each refit by weighted least squares. Writes the levels
/// into `l` and returns `(scale, min)` (`min ≥ 0`, to be subtracted).
fn make_qkx2_quants(x: &[f32], weights: &[f32], s: &Qkx2Search, l: &mut [u8]) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let nmax = s.nmax;
    let err = |diff: f32| if s.use_mad { diff.abs() } else { diff * diff };

    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        best_error += weights[i] * err(scale * q as f32 + min - x[i]);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=s.nstep {
        iscale = (s.rmin + s.rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let (w, q) = (weights[i], q as f32);
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                cur_error += weights[i] * err(this_scale * laux[i] as f32 + this_min - x[i]);
            }
            if cur_error < best_error {
                l.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Packs 2-bit levels the K-quant way: in each half of 128 values, byte `l` of the 32-byte
/// group holds values `l`, `l+32`, `l+64`, `l+96` at bits 0, 2, 4, 6.
fn pack_2bit(levels: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for (half, out) in levels.chunks_exact(128).zip(qs.chunks_exact_mut(32)) {
        for (l, q) in out.iter_mut().enumerate() {
            *q = half[l] | (half[l + 32] << 2) | (half[l + 64] << 4) | (half[l + 96] << 6);
        }
    }
}

// ---- q2_K -----------------------------------------------------------------------------------

pub fn quantize_block_q2_k(x: &[f32; QK_K]) -> BlockQ2K {
    const Q4SCALE: f32 = 15.0;
    let search = Qkx2Search {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let mut levels = [0u8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];
    let mut mins = [0.0f32; QK_K / 16];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for (j, (xs, l)) in x
        .chunks_exact(16)
        .zip(levels.chunks_exact_mut(16))
        .enumerate()
    {
        let weights: [f32; 16] = std::array::from_fn(|i| xs[i].abs());
        (scales[j], mins[j]) = make_qkx2_quants(xs, &weights, &search, l);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }

    let mut b = BlockQ2K {
        scales: [0; QK_K / 16],
        qs: [0; QK_K / 4],
        d: f16::ZERO,
        dmin: f16::ZERO,
    };
    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for (s, &scale) in b.scales.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * scale) as u8;
        }
        b.d = f16::from_f32(max_scale / Q4SCALE);
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for (s, &min) in b.scales.iter_mut().zip(&mins) {
            *s |= (nearest_int(iscale * min) << 4) as u8;
        }
        b.dmin = f16::from_f32(max_min / Q4SCALE);
    }

    // Requantize against the rounded scales; sub-blocks whose scale rounded to zero keep the
    // levels of the search, as in ggml.
    let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
    for (j, (xs, l)) in x
        .chunks_exact(16)
        .zip(levels.chunks_exact_mut(16))
        .enumerate()
    {
        let dl = d * (b.scales[j] & 0xf) as f32;
        if dl == 0.0 {
            continue;
        }
        let ml = dmin * (b.scales[j] >> 4) as f32;
        for (l, &v) in l.iter_mut().zip(xs) {
            *l = nearest_int((v + ml) / dl).clamp(0, 3) as u8;
        }
    }
    pack_2bit(&levels, &mut b.qs);
    b
}

pub fn dequantize_block_q2_k(b: &BlockQ2K, y: &mut [f32; QK_K]) {
    let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
    let mut out = y.chunks_exact_mut(16);
    let mut scales = b.scales.iter();
    for q in b.qs.chunks_exact(32) {
        for shift in [0, 2, 4, 6] {
            for q16 in [&q[..16], &q[16..]] {
                let (Some(&sc), Some(out)) = (scales.next(), out.next()) else {
                    return;
                };
                let dl = d * (sc & 0xf) as f32;
                let ml = min * (sc >> 4) as f32;
                for (y, &q) in out.iter_mut().zip(q16) {
                    *y = dl * ((q >> shift) & 3) as f32 - ml;
                }
            }
        }
    }
}

// ---- q3_K -----------------------------------------------------------------------------------

/// The signed 6-bit scale of sub-block `j` (0..16): low 4 bits in nibbles of bytes 0..8, high
/// 2 bits in bytes 8..12.
fn q3k_scale(scales: &[u8; 12], j: usize) -> i32 {
    let low = if j < 8 {
        scales[j] & 0xf
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32 - 32
}

pub fn quantize_block_q3_k(x: &[f32; QK_K]) -> BlockQ3K {
    let mut levels = [0i8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for (j, (xs, l)) in x
        .chunks_exact(16)
        .zip(levels.chunks_exact_mut(16))
        .enumerate()
    {
        scales[j] = make_q3_quants(xs, 4, l);
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }

    let mut b = BlockQ3K {
        hmask: [0; QK_K / 8],
        qs: [0; QK_K / 4],
        scales: [0; 12],
        d: f16::ZERO,
    };
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &scale) in scales.iter().enumerate() {
            // ggml stores nearest_int in an int8_t before clamping.
            let l = ((nearest_int(iscale * scale) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                b.scales[j] = l & 0xf;
            } else {
                b.scales[j - 8] |= (l & 0xf) << 4;
            }
            b.scales[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
        }
        b.d = f16::from_f32(1.0 / iscale);
    }

    let d_all = b.d.to_f32();
    for (j, (xs, l)) in x
        .chunks_exact(16)
        .zip(levels.chunks_exact_mut(16))
        .enumerate()
    {
        let d = d_all * q3k_scale(&b.scales, j) as f32;
        if d == 0.0 {
            continue;
        }
        for (l, &v) in l.iter_mut().zip(xs) {
            *l = (nearest_int(v / d).clamp(-4, 3) + 4) as i8;
        }
    }

    // The third bit of value j goes to bit j / 32 of hmask[j % 32].
    let mut low = [0u8; QK_K];
    for (j, (&l, low)) in levels.iter().zip(low.iter_mut()).enumerate() {
        let mut l = l as u8;
        if l > 3 {
            b.hmask[j % 32] |= 1 << (j / 32);
            l -= 4;
        }
        *low = l;
    }
    pack_2bit(&low, &mut b.qs);
    b
}

pub fn dequantize_block_q3_k(b: &BlockQ3K, y: &mut [f32; QK_K]) {
    let d_all = b.d.to_f32();
    let mut out = y.chunks_exact_mut(16);
    let mut is = 0;
    let mut mask_bit = 0;
    for q in b.qs.chunks_exact(32) {
        for shift in [0, 2, 4, 6] {
            let m = 1u8 << mask_bit;
            for (q16, hm16) in [(&q[..16], &b.hmask[..16]), (&q[16..], &b.hmask[16..])] {
                let Some(out) = out.next() else { return };
                let dl = d_all * q3k_scale(&b.scales, is) as f32;
                is += 1;
                for ((y, &q), &hm) in out.iter_mut().zip(q16).zip(hm16) {
                    let high = if hm & m != 0 { 0 } else { 4 };
                    *y = dl * (((q >> shift) & 3) as i32 - high) as f32;
                }
            }
            mask_bit += 1;
        }
    }
}

// ---- q4_K / q5_K ----------------------------------------------------------------------------

/// Scale and min of sub-block `j` (0..8) of q4_K/q5_K: 6 bits each, packed in 12 bytes.
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Scales, mins and levels of the eight 32-value sub-blocks of q4_K / q5_K, requantized
/// against the packed 6-bit scales. Returns `(d, dmin, scales, levels)`.
fn quantize_k4_scales(x: &[f32; QK_K], search: &Qkx2Search) -> (f16, f16, [u8; 12], [u8; QK_K]) {
    let mut levels = [0u8; QK_K];
    let mut scales = [0.0f32; QK_K / 32];
    let mut mins = [0.0f32; QK_K / 32];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for (j, (xs, l)) in x
        .chunks_exact(32)
        .zip(levels.chunks_exact_mut(32))
        .enumerate()
    {
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|i| av_x + xs[i].abs());
        (scales[j], mins[j]) = make_qkx2_quants(xs, &weights, search, l);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..QK_K / 32 {
        // ggml stores nearest_int in a uint8_t before capping at 63.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);

    for (j, (xs, l)) in x
        .chunks_exact(32)
        .zip(levels.chunks_exact_mut(32))
        .enumerate()
    {
        let (sc, m) = scale_min_k4(j, &packed);
        let dl = d.to_f32() * sc as f32;
        if dl == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for (l, &v) in l.iter_mut().zip(xs) {
            *l = nearest_int((v + dm) / dl).clamp(0, search.nmax) as u8;
        }
    }
    (d, dmin, packed, levels)
}

pub fn quantize_block_q4_k(x: &[f32; QK_K]) -> BlockQ4K {
    let search = Qkx2Search {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    let (d, dmin, scales, levels) = quantize_k4_scales(x, &search);
    let mut qs = [0u8; QK_K / 2];
    for (l64, q) in levels.chunks_exact(64).zip(qs.chunks_exact_mut(32)) {
        for (i, q) in q.iter_mut().enumerate() {
            *q = l64[i] | (l64[i + 32] << 4);
        }
    }
    BlockQ4K {
        d,
        dmin,
        scales,
        qs,
    }
}

pub fn dequantize_block_q4_k(b: &BlockQ4K, y: &mut [f32; QK_K]) {
    let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
    for (j, (q, y)) in
        b.qs.chunks_exact(32)
            .zip(y.chunks_exact_mut(64))
            .enumerate()
    {
        let (sc1, m1) = scale_min_k4(2 * j, &b.scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, &b.scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let (lo, hi) = y.split_at_mut(32);
        for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(q) {
            *lo = d1 * (q & 0xf) as f32 - m1;
            *hi = d2 * (q >> 4) as f32 - m2;
        }
    }
}

pub fn quantize_block_q5_k(x: &[f32; QK_K]) -> BlockQ5K {
    let search = Qkx2Search {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    let (d, dmin, scales, levels) = quantize_k4_scales(x, &search);
    let mut qs = [0u8; QK_K / 2];
    let mut qh = [0u8; QK_K / 8];
    for (n, (l64, q)) in levels
        .chunks_exact(64)
        .zip(qs.chunks_exact_mut(32))
        .enumerate()
    {
        let (m1, m2) = (1u8 << (2 * n), 2u8 << (2 * n));
        for (j, q) in q.iter_mut().enumerate() {
            let (mut l1, mut l2) = (l64[j], l64[j + 32]);
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            *q = l1 | (l2 << 4);
        }
    }
    BlockQ5K {
        d,
        dmin,
        scales,
        qh,
        qs,
    }
}

pub fn dequantize_block_q5_k(b: &BlockQ5K, y: &mut [f32; QK_K]) {
    let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
    for (j, (ql, y)) in
        b.qs.chunks_exact(32)
            .zip(y.chunks_exact_mut(64))
            .enumerate()
    {
        let (sc1, m1) = scale_min_k4(2 * j, &b.scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, &b.scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        let (lo, hi) = y.split_at_mut(32);
        for (((lo, hi), &q), &h) in lo.iter_mut().zip(hi).zip(ql).zip(&b.qh) {
            let h1 = if h & u1 != 0 { 16 } else { 0 };
            let h2 = if h & u2 != 0 { 16 } else { 0 };
            *lo = d1 * ((q & 0xf) + h1) as f32 - m1;
            *hi = d2 * ((q >> 4) + h2) as f32 - m2;
        }
    }
}

// ---- q6_K -----------------------------------------------------------------------------------

pub fn quantize_block_q6_k(x: &[f32; QK_K]) -> BlockQ6K {
    let mut levels = [0i8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for (j, (xs, l)) in x
        .chunks_exact(16)
        .zip(levels.chunks_exact_mut(16))
        .enumerate()
    {
        scales[j] = make_qx_quants(xs, 32, l);
        if scales[j].abs() > max_abs_scale {
            max_abs_scale = scales[j].abs();
            max_scale = scales[j];
        }
    }

    let mut b = BlockQ6K {
        ql: [0; QK_K / 2],
        qh: [0; QK_K / 4],
        scales: [0; QK_K / 16],
        d: f16::ZERO,
    };
    if max_abs_scale < GROUP_MAX_EPS {
        return b;
    }
    let iscale = -128.0 / max_scale;
    b.d = f16::from_f32(1.0 / iscale);
    for (s, &scale) in b.scales.iter_mut().zip(&scales) {
        *s = nearest_int(iscale * scale).min(127) as i8;
    }

    let d_all = b.d.to_f32();
    for (j, (xs, l)) in x
        .chunks_exact(16)
        .zip(levels.chunks_exact_mut(16))
        .enumerate()
    {
        let d = d_all * b.scales[j] as f32;
        if d == 0.0 {
            continue;
        }
        for (l, &v) in l.iter_mut().zip(xs) {
            *l = (nearest_int(v / d).clamp(-32, 31) + 32) as i8;
        }
    }

    // Per 128 values: low nibbles of values l and l+64 share ql[l], of l+32 and l+96 share
    // ql[l+32]; the four high 2-bit parts share qh[l].
    for ((l128, ql), qh) in levels
        .chunks_exact(128)
        .zip(b.ql.chunks_exact_mut(64))
        .zip(b.qh.chunks_exact_mut(32))
    {
        for l in 0..32 {
            let q = [l128[l], l128[l + 32], l128[l + 64], l128[l + 96]].map(|q| q as u8);
            ql[l] = (q[0] & 0xf) | ((q[2] & 0xf) << 4);
            ql[l + 32] = (q[1] & 0xf) | ((q[3] & 0xf) << 4);
            qh[l] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
    b
}

pub fn dequantize_block_q6_k(b: &BlockQ6K, y: &mut [f32; QK_K]) {
    let d = b.d.to_f32();
    for (((ql, qh), sc), y) in
        b.ql.chunks_exact(64)
            .zip(b.qh.chunks_exact(32))
            .zip(b.scales.chunks_exact(8))
            .zip(y.chunks_exact_mut(128))
    {
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * sc[is] as f32 * q1 as f32;
            y[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
            y[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
            y[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
        }
    }
}

// ---- q8_K -----------------------------------------------------------------------------------

pub fn quantize_block_q8_k(x: &[f32; QK_K]) -> BlockQ8K {
    let mut b = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
    let (max, amax) = signed_absmax(x);
    if amax == 0.0 {
        // ggml leaves bsums untouched here; zero is the only sensible content.
        return b;
    }
    // -127 rather than -128 keeps every value in -127..=127 (ggml: needed by its IQ2 kernels).
    let iscale = -127.0 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, q16) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = q16.iter().map(|&q| q as i16).sum();
    }
    b.d = 1.0 / iscale;
    b
}

pub fn dequantize_block_q8_k(b: &BlockQ8K, y: &mut [f32; QK_K]) {
    for (y, &q) in y.iter_mut().zip(&b.qs) {
        *y = b.d * q as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-3.7), -4);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
    }

    #[test]
    fn q8_k_bsums_are_group_sums() {
        let x: [f32; QK_K] = std::array::from_fn(|i| ((i * 37) % 101) as f32 - 50.0);
        let b = quantize_block_q8_k(&x);
        for (g, &s) in b.bsums.iter().enumerate() {
            let sum: i32 = b.qs[16 * g..16 * g + 16].iter().map(|&q| q as i32).sum();
            assert_eq!(s as i32, sum);
        }
        assert_eq!(b.qs.iter().map(|q| q.unsigned_abs()).max(), Some(127));
        let mut y = [0.0f32; QK_K];
        dequantize_block_q8_k(&b, &mut y);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= 50.0 / 127.0 * 0.5 + 1e-4);
        }
    }

    #[test]
    fn scale_min_k4_inverts_the_packing() {
        // Pack 8 known (scale, min) pairs the q4_K way and read them back.
        let pairs: [(u8, u8); 8] =
            std::array::from_fn(|j| ((j as u8 * 9 + 5) % 64, (j as u8 * 23 + 1) % 64));
        let mut packed = [0u8; 12];
        for (j, &(ls, lm)) in pairs.iter().enumerate() {
            if j < 4 {
                packed[j] = ls;
                packed[j + 4] = lm;
            } else {
                packed[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
                packed[j - 4] |= (ls >> 4) << 6;
                packed[j] |= (lm >> 4) << 6;
            }
        }
        for (j, &p) in pairs.iter().enumerate() {
            assert_eq!(scale_min_k4(j, &packed), p);
        }
    }
}
