//! Quantized matrix multiplication `out = x · Wᵀ` in the ggml style.
//!
//! `x` is `n_tok × cols` f32 (row-major), `W` is `rows × cols` in any supported weight type,
//! `out` is `n_tok × rows`. The activations are first converted once to the weight type's
//! companion format ([`companion_type`]) in the caller's scratch; then every output is the dot
//! product of one packed weight row with one packed activation row.
//!
//! Work split: weight rows are divided over the pool's threads (aligned to 16 rows so threads
//! never write the same cache line of one token's output). Within a thread, tokens are
//! processed in tiles that fit in L2, and within a tile each weight row is dotted with four
//! tokens at a time, so its blocks are unpacked once per four tokens.

use formats::GgmlType;

use crate::act_quant::{append_f32_scales, companion_type, quantize_row_unchecked};
use crate::blocks::*;
use crate::context::{Cpu, Simd};
use crate::dot::{scalar, RowDot, ScalarF32, ScalarPacked};
use crate::error::{check_len, CpuError};
use crate::pool::ThreadPool;

/// Weight rows per thread boundary: 16 f32 outputs = one 64-byte cache line.
const ROW_ALIGN: usize = 16;
/// Target size of the activation rows one token tile holds (fits L2 next to a weight row).
const TILE_BYTES: usize = 128 * 1024;

/// A weight matrix as stored in GGUF: `rows` rows of `cols` values of type `ty`, packed
/// row after row (`bytes.len() == rows * ty.bytes_for(cols)`), no alignment requirement.
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    pub ty: GgmlType,
    pub bytes: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

/// Weight types [`matmul`] accepts.
pub const MATMUL_TYPES: [GgmlType; 14] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Iq4Nl,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// Bytes of one activation row of `cols` values in the companion format of weight type `ty`
/// (0 when the kernel reads f32 activations directly, or for unsupported types).
///
/// q8_0 and q8_1 rows are the ggml blocks followed by each block's scale as an f32, then each
/// block's `s = d · Σ q` as an f32 (q8_1: its stored f16 `s` widened): the SIMD kernels load
/// eight of them at once instead of widening one f16 per block.
fn act_row_bytes(ty: GgmlType, cols: usize) -> usize {
    match companion_type(ty) {
        Some(GgmlType::Q8_0) => cols.div_ceil(QK) * (Q8_0_BYTES + 8),
        Some(GgmlType::Q8_1) => cols.div_ceil(QK) * (Q8_1_BYTES + 8),
        Some(GgmlType::Q8K) => cols.div_ceil(QK_K) * Q8_K_BYTES,
        Some(GgmlType::F16) => cols * 2,
        _ => 0,
    }
}

/// Scratch bytes [`matmul`] needs for `n_tok` activation rows of `cols` values against
/// weights of type `ty` (0 for f32/bf16 weights, which read the f32 activations directly).
/// The memory planner takes the maximum over the shapes it will run; a larger scratch is fine.
pub fn matmul_scratch_bytes(ty: GgmlType, cols: usize, n_tok: usize) -> usize {
    act_row_bytes(ty, cols).saturating_mul(n_tok)
}

/// `out[t][r] = Σ_c x[t][c] · W[r][c]` for `t < n_tok`, `r < w.rows`.
///
/// `scratch` must hold at least [`matmul_scratch_bytes`]`(w.ty, w.cols, n_tok)` bytes; only
/// that prefix is used. Runs on all threads of `cpu`'s pool.
pub fn matmul(
    cpu: &Cpu,
    w: &WeightView<'_>,
    x: &[f32],
    n_tok: usize,
    out: &mut [f32],
    scratch: &mut [u8],
) -> Result<(), CpuError> {
    const OP: &str = "matmul";
    if !MATMUL_TYPES.contains(&w.ty) {
        return Err(CpuError::UnsupportedType { op: OP, ty: w.ty });
    }
    let block = w.ty.block_size();
    if !w.cols.is_multiple_of(block) {
        return Err(CpuError::NotMultiple {
            op: OP,
            what: "weight row length",
            value: w.cols,
            multiple: block,
        });
    }
    let row_bytes = w.cols / block * w.ty.block_bytes();
    check_len(
        OP,
        "weight bytes",
        w.bytes.len(),
        row_bytes.saturating_mul(w.rows),
    )?;
    check_len(OP, "input length", x.len(), n_tok.saturating_mul(w.cols))?;
    check_len(OP, "output length", out.len(), n_tok.saturating_mul(w.rows))?;
    let need = matmul_scratch_bytes(w.ty, w.cols, n_tok);
    if scratch.len() < need {
        return Err(CpuError::BadLength {
            op: OP,
            what: "scratch bytes (too small)",
            got: scratch.len(),
            expected: need,
        });
    }
    if n_tok == 0 || w.rows == 0 {
        return Ok(());
    }
    if w.cols == 0 {
        out.fill(0.0);
        return Ok(());
    }

    let pool = cpu.pool();
    let arb = act_row_bytes(w.ty, w.cols);
    let acts = &mut scratch[..need];
    if let Some(comp) = companion_type(w.ty).filter(|&c| c != GgmlType::F32) {
        quantize_activations(pool, cpu.simd, comp, x, w.cols, acts, arb);
    }
    let acts: &[u8] = acts;
    let job = Job {
        pool,
        w: w.bytes,
        row_bytes,
        rows: w.rows,
        n_tok,
    };

    // Each arm below runs one kernel and returns.
    macro_rules! packed {
        ($k:expr) => {{
            job.run($k, acts, arb, out);
            return Ok(());
        }};
    }
    macro_rules! plain {
        ($k:expr) => {{
            job.run($k, x, w.cols, out);
            return Ok(());
        }};
    }

    #[cfg(target_arch = "x86_64")]
    {
        use crate::dot::{avx2_float, avx2_kquants, avx2_legacy};
        use crate::dot::{avx512_float, avx512_kquants, avx512_legacy};
        use GgmlType::*;
        match (cpu.simd, w.ty) {
            (Simd::Avx2(t), F32) => plain!(avx2_float::F32(t)),
            (Simd::Avx2(t), Bf16) => plain!(avx2_float::Bf16(t)),
            (Simd::Avx2(t), F16) => packed!(avx2_float::F16(t)),
            (Simd::Avx2(t), Q4_0) => packed!(avx2_legacy::Q4_0(t)),
            (Simd::Avx2(t), Q4_1) => packed!(avx2_legacy::Q4_1(t)),
            (Simd::Avx2(t), Q5_0) => packed!(avx2_legacy::Q5_0(t)),
            (Simd::Avx2(t), Q5_1) => packed!(avx2_legacy::Q5_1(t)),
            (Simd::Avx2(t), Q8_0) => packed!(avx2_legacy::Q8_0(t)),
            (Simd::Avx2(t), Iq4Nl) => packed!(avx2_legacy::Iq4Nl(t)),
            (Simd::Avx2(t), Q2K) => packed!(avx2_kquants::Q2K(t)),
            (Simd::Avx2(t), Q3K) => packed!(avx2_kquants::Q3K(t)),
            (Simd::Avx2(t), Q4K) => packed!(avx2_kquants::Q4K(t)),
            (Simd::Avx2(t), Q5K) => packed!(avx2_kquants::Q5K(t)),
            (Simd::Avx2(t), Q6K) => packed!(avx2_kquants::Q6K(t)),
            (Simd::Avx512(t), F32) => plain!(avx512_float::F32(t)),
            (Simd::Avx512(t), Bf16) => plain!(avx512_float::Bf16(t)),
            (Simd::Avx512(t), F16) => packed!(avx512_float::F16(t)),
            (Simd::Avx512(t), Q4_0) => packed!(avx512_legacy::Q4_0(t)),
            (Simd::Avx512(t), Q4_1) => packed!(avx512_legacy::Q4_1(t)),
            (Simd::Avx512(t), Q5_0) => packed!(avx512_legacy::Q5_0(t)),
            (Simd::Avx512(t), Q5_1) => packed!(avx512_legacy::Q5_1(t)),
            (Simd::Avx512(t), Q8_0) => packed!(avx512_legacy::Q8_0(t)),
            (Simd::Avx512(t), Iq4Nl) => packed!(avx512_legacy::Iq4Nl(t)),
            (Simd::Avx512(t), Q2K) => packed!(avx512_kquants::Q2K(t)),
            (Simd::Avx512(t), Q3K) => packed!(avx512_kquants::Q3K(t)),
            (Simd::Avx512(t), Q4K) => packed!(avx512_kquants::Q4K(t)),
            (Simd::Avx512(t), Q5K) => packed!(avx512_kquants::Q5K(t)),
            (Simd::Avx512(t), Q6K) => packed!(avx512_kquants::Q6K(t)),
            _ => {}
        }
    }

    let sp = |f: fn(&[u8], &[u8]) -> f32| ScalarPacked(f);
    match w.ty {
        GgmlType::F32 => plain!(ScalarF32(scalar::f32)),
        GgmlType::Bf16 => plain!(ScalarF32(scalar::bf16)),
        GgmlType::F16 => packed!(sp(scalar::f16)),
        GgmlType::Q4_0 => packed!(sp(scalar::q4_0)),
        GgmlType::Q4_1 => packed!(sp(scalar::q4_1)),
        GgmlType::Q5_0 => packed!(sp(scalar::q5_0)),
        GgmlType::Q5_1 => packed!(sp(scalar::q5_1)),
        GgmlType::Q8_0 => packed!(sp(scalar::q8_0)),
        GgmlType::Iq4Nl => packed!(sp(scalar::iq4_nl)),
        GgmlType::Q2K => packed!(sp(scalar::q2_k)),
        GgmlType::Q3K => packed!(sp(scalar::q3_k)),
        GgmlType::Q4K => packed!(sp(scalar::q4_k)),
        GgmlType::Q5K => packed!(sp(scalar::q5_k)),
        GgmlType::Q6K => packed!(sp(scalar::q6_k)),
        other => Err(CpuError::UnsupportedType { op: OP, ty: other }),
    }
}

/// Converts each of the `x.len() / cols` rows of `x` into `arb` bytes of `acts`, in parallel
/// when there are several rows.
fn quantize_activations(
    pool: &ThreadPool,
    simd: Simd,
    comp: GgmlType,
    x: &[f32],
    cols: usize,
    acts: &mut [u8],
    arb: usize,
) {
    let simd = simd.avx2();
    let one_row = |xr: &[f32], ar: &mut [u8]| {
        let blocks = comp.bytes_for(cols as u64).unwrap_or(0) as usize;
        let (packed, scales) = ar.split_at_mut(blocks);
        quantize_row_unchecked(simd, comp, xr, packed);
        append_f32_scales(comp, packed, scales);
    };
    if x.len() == cols || pool.n_threads() == 1 {
        for (xr, ar) in x.chunks_exact(cols).zip(acts.chunks_exact_mut(arb)) {
            one_row(xr, ar);
        }
        return;
    }
    pool.run_chunks(acts, arb, |first, run| {
        for (k, ar) in run.chunks_exact_mut(arb).enumerate() {
            let t = first + k;
            one_row(&x[t * cols..(t + 1) * cols], ar);
        }
    });
}

/// The shape of one matmul, shared by all kernels.
struct Job<'a> {
    pool: &'a ThreadPool,
    w: &'a [u8],
    row_bytes: usize,
    rows: usize,
    n_tok: usize,
}

impl Job<'_> {
    /// Runs kernel `k` over all rows and tokens; `acts` holds `n_tok` rows of `act_len`
    /// elements.
    fn run<K: RowDot>(&self, k: K, acts: &[K::Act], act_len: usize, out: &mut [f32]) {
        let act_bytes = act_len * std::mem::size_of::<K::Act>();
        let tile = (TILE_BYTES / act_bytes.max(1)).max(4) / 4 * 4;
        let n_tok = self.n_tok;
        let act = |t: usize| &acts[t * act_len..(t + 1) * act_len];
        self.pool
            .run_columns(out, self.rows, ROW_ALIGN, |rows, part| {
                for t0 in (0..n_tok).step_by(tile) {
                    let t1 = (t0 + tile).min(n_tok);
                    for r in rows.clone() {
                        let wr = &self.w[r * self.row_bytes..(r + 1) * self.row_bytes];
                        let c = r - rows.start;
                        let mut t = t0;
                        while t + 4 <= t1 {
                            let mut o = [0f32; 4];
                            k.dot::<4>(wr, [act(t), act(t + 1), act(t + 2), act(t + 3)], &mut o);
                            for (i, v) in o.into_iter().enumerate() {
                                part.row_mut(t + i)[c] = v;
                            }
                            t += 4;
                        }
                        match t1 - t {
                            3 => {
                                let mut o = [0f32; 3];
                                k.dot::<3>(wr, [act(t), act(t + 1), act(t + 2)], &mut o);
                                for (i, v) in o.into_iter().enumerate() {
                                    part.row_mut(t + i)[c] = v;
                                }
                            }
                            2 => {
                                let mut o = [0f32; 2];
                                k.dot::<2>(wr, [act(t), act(t + 1)], &mut o);
                                for (i, v) in o.into_iter().enumerate() {
                                    part.row_mut(t + i)[c] = v;
                                }
                            }
                            1 => {
                                let mut o = [0f32; 1];
                                k.dot::<1>(wr, [act(t)], &mut o);
                                part.row_mut(t)[c] = o[0];
                            }
                            _ => {}
                        }
                    }
                }
            });
    }
}
