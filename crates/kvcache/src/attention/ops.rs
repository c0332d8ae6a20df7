//! The row operations the attention kernel is generic over, and their scalar implementation.
//!
//! Keys are processed in blocks of [`KB`]: decode `KB` K rows, score each query vector
//! against all of them at once, and later add `KB` weighted V rows into each accumulator with
//! one load and one store of it. Blocking keeps the accumulators' loads and stores (and the
//! horizontal sums of the dot products) off the per-key path.
//!
//! The scalar path is the reference every SIMD path is tested against, and the fallback on
//! CPUs without AVX2. It scores turbo K by table lookup (`T[j][c] = q'[j] · C[c]`, one load and
//! add per element); the AVX2 path instead decodes the turbo row with register permutes and
//! takes an 8-wide dot product, which is faster once the decode is shared by the GQA group.

use crate::codec::decode_head;
use crate::types::KvType;

/// Keys per block.
pub(crate) const KB: usize = 8;

/// Operations on head rows. `unsafe` because SIMD implementations require their CPU features;
/// callers guarantee them (see `KernelPath`).
pub(crate) trait RowOps {
    /// Score turbo K through per-query lookup tables (true) or by decoding the rows (false).
    const TURBO_K_TABLE: bool;

    /// Decodes `n` stored head rows (`row_bytes` apart in `src`) into `dst`, row `r` at
    /// `r * pitch` (its padded length); turbo rows stay rotated.
    unsafe fn decode_rows(
        ty: KvType,
        src: &[u8],
        row_bytes: usize,
        n: usize,
        dst: &mut [f32],
        pitch: usize,
    );
    /// Folds `n` decoded 128-value turbo rows (`pitch` apart) to their 64-value half form in
    /// place: `row[j] += signs[j] · row[j + 64]` (see `half`).
    unsafe fn fold_rows(buf: &mut [f32], n: usize, pitch: usize, signs: &[f32; 64]);
    /// The order in which `decode_fold_rows` writes a turbo type's folded rows: position `p`
    /// holds half value `order[p]` (`None`: natural order). A path may pick any order that
    /// makes its decoder cheap; the kernel puts the queries, fold signs and accumulators of
    /// folded heads in the same order (dot products and sums do not care) and restores the
    /// natural order once per output row.
    fn fold_order(_ty: KvType) -> Option<&'static [u8; 64]> {
        None
    }
    /// `decode_rows` then `fold_rows` for a turbo type (one pass where a path fuses them);
    /// `signs` and the output are in `fold_order(ty)`. Row `r` may come out divided by a
    /// factor written to `scales[r]`, which the kernel then applies to the row's scores and
    /// weights (one multiply per key instead of one per value: the AVX2 path leaves the turbo
    /// norm out of the decode); the default writes 1.
    #[allow(clippy::too_many_arguments)]
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
        Self::decode_rows(ty, src, row_bytes, n, dst, pitch);
        Self::fold_rows(dst, n, pitch, signs);
        scales.fill(1.0);
    }
    /// `decode_fold_rows` of the same stored rows for the two heads of a packed pair: `first`
    /// (the head at offset 0) with `signs`, `second` (the head at offset 64) with `−signs`,
    /// which are its fold signs; both with the same `scales`. Paths that can decode once and
    /// fold twice override this.
    #[allow(clippy::too_many_arguments)]
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
        let neg = signs.map(|s| -s);
        Self::decode_fold_rows(ty, src, row_bytes, n, first, pitch, signs, scales);
        Self::decode_fold_rows(ty, src, row_bytes, n, second, pitch, &neg, scales);
    }
    /// `out[j] = Σ_d q[d] · k[j·pitch + d]` for the `KB` rows of `k`.
    unsafe fn dot_block(q: &[f32], k: &[f32], pitch: usize, out: &mut [f32]);
    /// `acc[d] += Σ_j p[j] · v[j·pitch + d]` over the `KB` rows of `v`.
    unsafe fn axpy_block(acc: &mut [f32], p: &[f32], v: &[f32], pitch: usize);
    /// x *= s.
    unsafe fn scale(x: &mut [f32], s: f32);
    /// x ← exp(x − m) in place (exp(−∞) = 0); returns Σ of the results.
    unsafe fn exp_sub_sum(x: &mut [f32], m: f32) -> f32;
}

pub(crate) struct Scalar;

impl RowOps for Scalar {
    const TURBO_K_TABLE: bool = true;

    unsafe fn decode_rows(
        ty: KvType,
        src: &[u8],
        row_bytes: usize,
        n: usize,
        dst: &mut [f32],
        pitch: usize,
    ) {
        for r in 0..n {
            decode_head(
                ty,
                &src[r * row_bytes..(r + 1) * row_bytes],
                &mut dst[r * pitch..(r + 1) * pitch],
            );
        }
    }

    unsafe fn fold_rows(buf: &mut [f32], n: usize, pitch: usize, signs: &[f32; 64]) {
        for r in 0..n {
            let (lo, hi) = buf[r * pitch..r * pitch + 128].split_at_mut(64);
            for ((l, h), s) in lo.iter_mut().zip(hi.iter()).zip(signs) {
                *l += s * h;
            }
        }
    }

    unsafe fn dot_block(q: &[f32], k: &[f32], pitch: usize, out: &mut [f32]) {
        for (j, o) in out[..KB].iter_mut().enumerate() {
            *o = dot(q, &k[j * pitch..j * pitch + q.len()]);
        }
    }

    unsafe fn axpy_block(acc: &mut [f32], p: &[f32], v: &[f32], pitch: usize) {
        let n = acc.len();
        for (j, &pj) in p[..KB].iter().enumerate() {
            if pj != 0.0 {
                for (a, x) in acc.iter_mut().zip(&v[j * pitch..j * pitch + n]) {
                    *a += pj * x;
                }
            }
        }
    }

    unsafe fn scale(x: &mut [f32], s: f32) {
        for v in x {
            *v *= s;
        }
    }

    unsafe fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
        let mut sum = 0.0f32;
        for v in x {
            *v = (*v - m).exp();
            sum += *v;
        }
        sum
    }
}

/// Σ a·b with eight independent partial sums (vectorizable without reassociation).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = [0.0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for k in 0..8 {
            s[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    (s[0] + s[4]) + (s[1] + s[5]) + ((s[2] + s[6]) + (s[3] + s[7])) + tail
}
