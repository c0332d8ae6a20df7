//! Launches of the attention kernels (kernels/attention.cu) and their workspace formula.
//!
//! Paths, chosen by shape:
//! - split-K (decode, at most [`SPLIT_MAX_ROWS`] query rows, when the planned workspace holds
//!   the partials): each block one split of the keys (`kv::decode_splits`: 256-key splits, or
//!   shorter ones at short context so the GPU fills), writing `(m, l, acc[d])`; then a merge
//!   pass. `attn_decode_g*` serves a whole GQA group per block (grid: splits, KV heads, rows),
//!   a half-warp per key; `attn_partial` one query head (heads too wide or groups too large for
//!   the former). Workspace: rows × heads × splits × (d + 2) floats, d the padded V head.
//! - tensor-core prefill (`attn_prefill_tc`, a module per head width 64/128/256, consecutive positions of one
//!   sequence, at least [`TC_MIN_ROWS`] rows, padded heads ≤ 256, GQA group ≤ 64): blocks of 64
//!   query rows (a whole GQA group × 64 / group positions), K/V tiles decoded from the packed
//!   cache into shared memory as f16, `mma.sync` products, f32 online softmax; no workspace.
//! - tiled prefill (`attn_prefill`, consecutive positions of one sequence, heads ≤ 128; the
//!   fallback for shapes the former does not take): K/V tiles decoded once per 32 queries, FP32,
//!   no workspace.
//! - direct (other prefill): `attn_partial` with one split, a block per (row, head), no workspace.
//!
//! The workspace formula is what the planner asks for at each shape class; it is zero for the
//! prefill class, so it never grows with rows × context.

use formats::GgmlType;
use turbine_core::{AttnParams, AttnShape, CoreError, TokenPos};

use crate::backend::CudaBackend;
use crate::buffer::CudaBuffer;
use crate::compile;
use crate::device::{cuda_err, Arg};
use crate::kv::{
    self, padded_dim, split_workspace_floats, CudaKvCache, MAX_PADDED_HEAD, SPLIT_MAX_ROWS,
};
use cudarc::driver::sys::CUfunction_attribute;

const THREADS: u32 = 128;
/// Query rows per block and longest padded head of the tiled prefill kernel.
const PF_Q: usize = 32;
const PF_D: usize = 128;
/// Query rows (GQA group heads × positions) per block of the tensor-core prefill kernel.
const TC_M: usize = 64;
/// Fewest rows the tensor-core prefill takes: below this its 64-row blocks are mostly padding
/// (and up to 16 rows normally go to the split-K decode path anyway).
pub const TC_MIN_ROWS: usize = 16;
/// Most shared memory a block may opt into on sm_90 (227 KiB).
const MAX_SHARED_OPT_IN: usize = 227 * 1024;

/// Head width (64, 128 or 256) of the `attn_prefill_tc` instance for padded heads `pad_k`,
/// `pad_v`, and its dynamic shared memory in bytes (mirrors `TcShape` in attention.cu: f16 Q
/// rows, K tile and transposed V tile, each row padded by 8 halves).
fn tc_instance(pad_k: usize, pad_v: usize) -> Option<(usize, usize)> {
    let widest = pad_k.max(pad_v);
    let d = [64usize, 128, 256].into_iter().find(|&d| widest <= d)?;
    let keys = if d > 128 { 32 } else { 64 };
    let bytes = TC_M * (d + 8) * 2 + keys * (d + 8) * 2 + d * (keys + 8) * 2;
    Some((d, bytes))
}

/// Most query heads per KV head the decode kernel serves in one block.
const DEC_G: usize = 8;
const TILE: usize = 32;
/// Dynamic shared memory a block may use without opting in.
const MAX_SHARED: usize = 48 * 1024;

/// Workspace bytes of one attention call of `shape`.
pub fn workspace_bytes(type_v: GgmlType, shape: &AttnShape) -> u64 {
    if shape.rows == 0 || shape.rows > SPLIT_MAX_ROWS {
        return 0;
    }
    split_workspace_floats(
        shape.rows,
        shape.n_head,
        shape.n_kv,
        type_v,
        shape.head_dim_v,
    ) as u64
        * 4
}

fn codebook_size(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Turbo2 => 4,
        GgmlType::Turbo3 => 8,
        GgmlType::Turbo4 => 16,
        _ => 0,
    }
}

/// Dynamic shared memory of `attn_partial`, in bytes (mirrors the carve-up in the kernel).
fn partial_shared_bytes(type_k: GgmlType, type_v: GgmlType, pad_k: usize, pad_v: usize) -> usize {
    let lut = codebook_size(type_k) * pad_k;
    let vcb = TILE * (pad_v / 128) * codebook_size(type_v);
    (pad_k + lut + 2 * TILE + vcb + pad_v) * 4
}

/// Blocks the decode pass should at least launch: four per SM of an H100 (132 SMs), as many as
/// run at once (the decode kernel is built for four resident blocks).
const DECODE_MIN_BLOCKS: usize = 528;

#[allow(clippy::too_many_arguments)]
pub fn attention(
    be: &CudaBackend,
    kv: &CudaKvCache,
    layer: usize,
    rows: &[TokenPos],
    q: &CudaBuffer,
    p: &AttnParams,
    out: &mut CudaBuffer,
    workspace: &mut CudaBuffer,
) -> Result<(), CoreError> {
    let dev = &be.dev;
    let lc = kv.layer(layer)?;
    let s = lc.shape;
    let (type_k, type_v) = (kv.spec.type_k, kv.spec.type_v);
    if p.n_head_kv != s.n_head_kv || p.head_dim_k != s.head_dim_k || p.head_dim_v != s.head_dim_v {
        return Err(CoreError::Kv(format!(
            "attention: layer {layer} shape differs from the cache"
        )));
    }
    if p.n_head == 0 || !p.n_head.is_multiple_of(p.n_head_kv) {
        return Err(CoreError::Kv(format!(
            "attention: {} query heads over {} KV heads",
            p.n_head, p.n_head_kv
        )));
    }
    for t in rows {
        kv.check_seq(t.seq)?;
        if t.pos >= kv.written(layer, t.seq) {
            return Err(CoreError::Kv(format!(
                "attention: sequence {} holds {} tokens in layer {layer}, a query is at position {}",
                t.seq,
                kv.written(layer, t.seq),
                t.pos
            )));
        }
    }
    let n = rows.len();
    if n == 0 {
        return Ok(());
    }
    let (hdk, hdv) = (p.head_dim_k, p.head_dim_v);
    let (pad_k, pad_v) = (padded_dim(type_k, hdk), padded_dim(type_v, hdv));
    if pad_k > MAX_PADDED_HEAD || pad_v > MAX_PADDED_HEAD {
        return Err(CoreError::Kv(format!(
            "attention: heads of {hdk}/{hdv} values exceed the CUDA kernel's {MAX_PADDED_HEAD}"
        )));
    }
    let shared = partial_shared_bytes(type_k, type_v, pad_k, pad_v);
    if shared > MAX_SHARED {
        return Err(CoreError::Kv(format!(
            "attention: {shared} bytes of shared memory for heads of {hdk}/{hdv}"
        )));
    }
    if p.n_head > 65535 {
        return Err(CoreError::Kv(format!(
            "attention: {} heads exceed one launch",
            p.n_head
        )));
    }
    let qp = q.f32_ptr(n * p.n_head * hdk)?;
    let op = out.f32_ptr(n * p.n_head * hdv)?;
    let (kbase, vbase) = (lc.k.ptr(), lc.v.ptr());
    let (k_head_bytes, v_head_bytes, cells) = (lc.k_head_bytes, lc.v_head_bytes, kv.cells);

    // The most keys any row sees; splits cover positions 0 .. n_kv.
    let n_kv = rows.iter().map(|t| t.pos + 1).max().unwrap_or(1);
    let ws_floats = split_workspace_floats(n, p.n_head, n_kv, type_v, hdv);
    let split = n <= SPLIT_MAX_ROWS && ws_floats * 4 <= workspace.bytes();
    let (n_splits, split_len) = if split {
        kv::decode_splits(n_kv, p.n_head_kv * n, DECODE_MIN_BLOCKS)
    } else {
        (1, n_kv)
    };
    let ws_ptr = if split {
        workspace.f32_ptr(ws_floats)?
    } else {
        0
    };

    let defines = [
        ("KT", type_k.id().to_string()),
        ("VT", type_v.id().to_string()),
    ];
    // The cache geometry and score parameters every attention kernel takes, in this order.
    let geometry = [
        Arg::I32(p.n_head as i32),
        Arg::I32(p.n_head_kv as i32),
        Arg::I32(hdk as i32),
        Arg::I32(hdv as i32),
        Arg::I32(pad_k as i32),
        Arg::I32(pad_v as i32),
        Arg::I64(k_head_bytes as i64),
        Arg::I64(v_head_bytes as i64),
        Arg::I64(cells as i64),
        Arg::F32(p.scale),
        Arg::I32(p.window.unwrap_or(0).min(i32::MAX as usize) as i32),
        Arg::F32(p.softcap.unwrap_or(0.0)),
    ];

    let first = rows[0];
    let contiguous = rows
        .iter()
        .enumerate()
        .all(|(i, t)| t.seq == first.seq && t.pos == first.pos + i);
    // Both prefill kernels (one sequence, consecutive positions) take the same arguments.
    let prefill_args = || {
        let mut args = vec![
            Arg::Ptr(qp),
            Arg::Ptr(kbase),
            Arg::Ptr(vbase),
            Arg::Ptr(op),
            Arg::I32(n as i32),
            Arg::I32(first.seq as i32),
            Arg::I32(first.pos as i32),
        ];
        args.extend(geometry);
        args
    };
    let group = p.n_head / p.n_head_kv;
    // Prefill on tensor cores: each decoded K/V tile serves 64 query rows of a whole GQA group.
    let tc = tc_instance(pad_k, pad_v).filter(|_| {
        !split
            && contiguous
            && n >= TC_MIN_ROWS
            && group <= TC_M
            && pad_k.is_multiple_of(16)
            && pad_v.is_multiple_of(16)
            && p.n_head_kv <= 65535
            && n.div_ceil(TC_M / group) <= 65535
            && first.pos + n <= i32::MAX as usize
    });
    if let Some((d, shared)) = tc {
        // Its own module per head width (TC_D): only the widths a model uses get compiled.
        let tc_defines = [
            ("KT", type_k.id().to_string()),
            ("VT", type_v.id().to_string()),
            ("TC_D", d.to_string()),
        ];
        let f = dev.function(&compile::ATTENTION, &tc_defines, "attn_prefill_tc")?;
        if shared > MAX_SHARED {
            f.set_attribute(
                CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                shared.min(MAX_SHARED_OPT_IN) as i32,
            )
            .map_err(|e| cuda_err("attention (prefill tc): shared memory opt-in", e))?;
        }
        let args = prefill_args();
        return dev.launch(
            "attention (prefill tc)",
            &f,
            (p.n_head_kv as u32, n.div_ceil(TC_M / group) as u32, 1),
            THREADS,
            shared as u32,
            &args,
        );
    }

    // Prefill of one sequence's consecutive positions: the tiled kernel, which decodes each K
    // and V tile once for PF_Q queries (the per-row kernel would decode every key once per
    // query).
    if !split && contiguous && pad_k <= PF_D && pad_v <= PF_D && first.pos + n <= i32::MAX as usize
    {
        let f = dev.function(&compile::ATTENTION, &defines, "attn_prefill")?;
        let args = prefill_args();
        return dev.launch(
            "attention (prefill)",
            &f,
            (n.div_ceil(PF_Q) as u32, p.n_head as u32, 1),
            THREADS,
            0,
            &args,
        );
    }

    // Split path, decode: one block per (split, KV head, row) serving the whole GQA group
    // (attn_decode), when the group and heads fit it; otherwise, and for the direct path, one
    // block per (split, query head, row) (attn_partial). Scores (group × split) double as the
    // decode kernel's cross-warp sums (4 × group × pad_v) at its end.
    // attn_decode: a half-warp per key, pad/16 dims per lane.
    let grouped = split
        && group <= DEC_G
        && [pad_k, pad_v]
            .iter()
            .all(|&d| d <= 128 && d.is_multiple_of(16))
        && p.n_head_kv <= 65535;
    let (f, name, heads, shared_bytes) = if grouped {
        let gm = group.next_power_of_two();
        let f = dev.function(&compile::ATTENTION, &defines, &format!("attn_decode_g{gm}"))?;
        (f, "attention (decode)", p.n_head_kv, 0)
    } else {
        let f = dev.function(&compile::ATTENTION, &defines, "attn_partial")?;
        (f, "attention", p.n_head, shared)
    };
    let merge = if split {
        Some(dev.function(&compile::ATTENTION, &defines, "attn_merge")?)
    } else {
        None
    };
    be.with_rows("attention", rows, |r0, nr, info, seq0, pos0| {
        if nr > 65535 {
            return Err(CoreError::Kv(format!(
                "attention: {nr} rows exceed one launch"
            )));
        }
        let q_r = qp + (r0 * p.n_head * hdk * 4) as u64;
        let o_r = op + (r0 * p.n_head * hdv * 4) as u64;
        // attn_decode writes only partials (no output pointer, no direct flag).
        let mut args = vec![Arg::Ptr(q_r), Arg::Ptr(kbase), Arg::Ptr(vbase)];
        if !grouped {
            args.push(Arg::Ptr(o_r));
        }
        args.extend([
            Arg::Ptr(ws_ptr),
            Arg::Ptr(info),
            Arg::I32(seq0),
            Arg::I32(pos0),
        ]);
        args.extend(geometry);
        args.extend([
            Arg::I32(split_len.min(i32::MAX as usize) as i32),
            Arg::I32(n_splits as i32),
        ]);
        if !grouped {
            args.push(Arg::I32(!split as i32));
        }
        dev.launch(
            name,
            &f,
            (n_splits as u32, heads as u32, nr as u32),
            THREADS,
            shared_bytes as u32,
            &args,
        )?;
        if let Some(m) = &merge {
            dev.launch(
                "attention merge",
                m,
                (p.n_head as u32, nr as u32, 1),
                THREADS,
                ((pad_v + n_splits) * 4) as u32,
                &[
                    Arg::Ptr(ws_ptr),
                    Arg::Ptr(o_r),
                    Arg::I32(p.n_head as i32),
                    Arg::I32(hdv as i32),
                    Arg::I32(pad_v as i32),
                    Arg::I32(n_splits as i32),
                ],
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc_instance_covers_heads_to_256_within_shared_memory() {
        assert_eq!(tc_instance(64, 64).map(|x| x.0), Some(64));
        // A 64-wide f16 K with a turbo V (padded to 128) takes the 128 instance.
        assert_eq!(tc_instance(64, 128).map(|x| x.0), Some(128));
        assert_eq!(tc_instance(96, 96).map(|x| x.0), Some(128));
        assert_eq!(tc_instance(256, 128).map(|x| x.0), Some(256));
        assert_eq!(tc_instance(512, 512), None);
        for pad in [64, 128, 256] {
            let (d, bytes) = tc_instance(pad, pad).unwrap();
            assert!(bytes <= MAX_SHARED_OPT_IN, "d={d}: {bytes} bytes");
            // The output staging (64 rows × d f32) reuses the whole area.
            assert!(TC_M * d * 4 <= bytes, "d={d}");
        }
    }
}
