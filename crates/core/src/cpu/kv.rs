//! Stand-in KV cache for the CPU backend: one contiguous region of cells per sequence, every
//! K/V type stored with the reference quantizers, attention with an online softmax that reads
//! the packed cells (no full-cache expansion). The `kvcache` crate's paged cache with SIMD
//! attention replaces it.
//!
//! Turbo types are stored in the rotated domain (TURBO-KV.md): K turbo → the query is rotated
//! once per head; V turbo → the output is accumulated rotated and un-rotated once.

use formats::rotation::{rotate, rotate_inverse};
use formats::GgmlType;
use rayon::prelude::*;

use super::buffer::CpuBuffer;
use crate::backend::{AttnParams, KvLayerShape, KvSpec};
use crate::error::CoreError;

const ROT: usize = 128;
/// Longest (padded) head the stand-in stores.
const MAX_HEAD: usize = 1024;

/// Head dimension padded to whole blocks of `ty` (turbo: 128-value groups).
pub fn padded_dim(ty: GgmlType, head_dim: usize) -> usize {
    head_dim.div_ceil(ty.block_size()) * ty.block_size()
}

/// Bytes of one head of one token.
pub fn head_bytes(ty: GgmlType, head_dim: usize) -> u64 {
    (padded_dim(ty, head_dim) / ty.block_size()) as u64 * ty.block_bytes() as u64
}

fn check_type(ty: GgmlType) -> Result<(), CoreError> {
    if formats::can_quantize(ty) && formats::can_dequantize(ty) && ty != GgmlType::Q8_1 {
        Ok(())
    } else {
        Err(CoreError::Kv(format!(
            "cache type {} is not supported",
            ty.name()
        )))
    }
}

/// Bytes of the K and V caches of one layer.
pub fn layer_bytes(spec: &KvSpec, l: &KvLayerShape) -> (u64, u64) {
    let cells = spec.n_ctx as u64 * l.n_head_kv as u64;
    (
        cells * head_bytes(spec.type_k, l.head_dim_k),
        cells * head_bytes(spec.type_v, l.head_dim_v),
    )
}

pub fn cache_bytes(spec: &KvSpec) -> Result<u64, CoreError> {
    check_type(spec.type_k)?;
    check_type(spec.type_v)?;
    Ok(spec
        .layers
        .iter()
        .map(|l| {
            let (k, v) = layer_bytes(spec, l);
            k + v
        })
        .sum())
}

/// Floats of attention workspace per worker thread.
pub fn worker_floats(
    type_k: GgmlType,
    type_v: GgmlType,
    head_dim_k: usize,
    head_dim_v: usize,
) -> usize {
    2 * padded_dim(type_k, head_dim_k) + 2 * padded_dim(type_v, head_dim_v)
}

struct LayerCache {
    k: CpuBuffer,
    v: CpuBuffer,
    shape: KvLayerShape,
    k_head_bytes: usize,
    v_head_bytes: usize,
}

pub struct CpuKvCache {
    spec: KvSpec,
    layers: Vec<LayerCache>,
    /// Tokens stored per sequence.
    lens: Vec<usize>,
}

impl CpuKvCache {
    /// Allocates every layer; `record(bytes)` is called once per allocation.
    pub fn new(
        name: &str,
        spec: &KvSpec,
        mut record: impl FnMut(u64),
    ) -> Result<CpuKvCache, CoreError> {
        check_type(spec.type_k)?;
        check_type(spec.type_v)?;
        if spec.n_seq == 0 || spec.n_ctx < spec.n_seq {
            return Err(CoreError::Kv(format!(
                "{} cells cannot hold {} sequences",
                spec.n_ctx, spec.n_seq
            )));
        }
        let mut layers = Vec::with_capacity(spec.layers.len());
        for l in &spec.layers {
            let (kb, vb) = layer_bytes(spec, l);
            let k = CpuBuffer::new(name, kb)?;
            record(kb);
            let v = CpuBuffer::new(name, vb)?;
            record(vb);
            layers.push(LayerCache {
                k,
                v,
                shape: *l,
                k_head_bytes: head_bytes(spec.type_k, l.head_dim_k) as usize,
                v_head_bytes: head_bytes(spec.type_v, l.head_dim_v) as usize,
            });
        }
        Ok(CpuKvCache {
            spec: spec.clone(),
            layers,
            lens: vec![0; spec.n_seq],
        })
    }

    pub fn seq_len(&self, seq: usize) -> usize {
        self.lens.get(seq).copied().unwrap_or(0)
    }

    fn layer(&self, layer: usize) -> Result<&LayerCache, CoreError> {
        self.layers
            .get(layer)
            .ok_or_else(|| CoreError::Kv(format!("layer {layer} out of range")))
    }

    fn cell(&self, seq: usize, pos: usize) -> Result<usize, CoreError> {
        let per = self.spec.cells_per_seq();
        if seq >= self.spec.n_seq {
            return Err(CoreError::Kv(format!(
                "sequence {seq} out of range ({} sequences)",
                self.spec.n_seq
            )));
        }
        if pos >= per {
            return Err(CoreError::Kv(format!(
                "sequence {seq} is full: position {pos} needs more than its {per} cells (raise -c)"
            )));
        }
        Ok(seq * per + pos)
    }

    pub fn truncate(&mut self, seq: usize, from: usize) -> Result<(), CoreError> {
        let len = self
            .lens
            .get_mut(seq)
            .ok_or_else(|| CoreError::Kv(format!("sequence {seq} out of range")))?;
        *len = (*len).min(from);
        Ok(())
    }

    /// Quantizes `rows` tokens of K and V (rows of `n_head_kv × head_dim`) into their cells.
    pub fn store(
        &mut self,
        layer: usize,
        seq: usize,
        pos0: usize,
        k: &[f32],
        v: &[f32],
        rows: usize,
    ) -> Result<(), CoreError> {
        let (type_k, type_v) = (self.spec.type_k, self.spec.type_v);
        let first = self.cell(seq, pos0)?;
        if rows > 0 {
            self.cell(seq, pos0 + rows - 1)?;
        }
        let lc = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| CoreError::Kv(format!("layer {layer} out of range")))?;
        let s = lc.shape;
        if k.len() < rows * s.n_head_kv * s.head_dim_k
            || v.len() < rows * s.n_head_kv * s.head_dim_v
        {
            return Err(CoreError::Kv(
                "store: K/V rows shorter than the layer shape".into(),
            ));
        }
        if padded_dim(type_k, s.head_dim_k).max(padded_dim(type_v, s.head_dim_v)) > MAX_HEAD {
            return Err(CoreError::Kv(format!(
                "store: heads longer than {MAX_HEAD} values"
            )));
        }
        let mut tmp = [0.0f32; MAX_HEAD];
        for r in 0..rows {
            let cell = first + r;
            for h in 0..s.n_head_kv {
                for (src, dst_buf, ty, hd, hb) in [
                    (k, &mut lc.k, type_k, s.head_dim_k, lc.k_head_bytes),
                    (v, &mut lc.v, type_v, s.head_dim_v, lc.v_head_bytes),
                ] {
                    let pad = padded_dim(ty, hd);
                    let row = &src[(r * s.n_head_kv + h) * hd..(r * s.n_head_kv + h + 1) * hd];
                    tmp[..hd].copy_from_slice(row);
                    tmp[hd..pad].fill(0.0);
                    let off = (cell * s.n_head_kv + h) * hb;
                    let dst = &mut dst_buf.as_bytes_mut()[off..off + hb];
                    formats::quantize(ty, &tmp[..pad], dst)
                        .map_err(|e| CoreError::Kv(format!("store: {e}")))?;
                }
            }
        }
        let len = &mut self.lens[seq];
        *len = (*len).max(pos0 + rows);
        Ok(())
    }

    /// Causal attention of `rows` queries at positions `pos0..` over the cached tokens of
    /// `seq`; `workspace` holds `worker_floats` floats per pool thread.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        pool: &rayon::ThreadPool,
        layer: usize,
        seq: usize,
        q: &[f32],
        rows: usize,
        pos0: usize,
        p: &AttnParams,
        out: &mut [f32],
        workspace: &mut [f32],
    ) -> Result<(), CoreError> {
        let lc = self.layer(layer)?;
        let s = lc.shape;
        let (type_k, type_v) = (self.spec.type_k, self.spec.type_v);
        if p.n_head_kv != s.n_head_kv
            || p.head_dim_k != s.head_dim_k
            || p.head_dim_v != s.head_dim_v
        {
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
        if rows > 0 && pos0 + rows > self.seq_len(seq) {
            return Err(CoreError::Kv(format!(
                "attention: sequence {seq} holds {} tokens, queries reach {}",
                self.seq_len(seq),
                pos0 + rows
            )));
        }
        let base_cell = self.cell(seq, 0)?;
        let (hdk, hdv) = (p.head_dim_k, p.head_dim_v);
        let (pad_k, pad_v) = (padded_dim(type_k, hdk), padded_dim(type_v, hdv));
        let wf = worker_floats(type_k, type_v, hdk, hdv);
        let n_workers = pool.current_num_threads();
        if q.len() < rows * p.n_head * hdk || out.len() < rows * p.n_head * hdv {
            return Err(CoreError::Kv("attention: q/out buffers too small".into()));
        }
        if workspace.len() < wf * n_workers {
            return Err(CoreError::Kv(format!(
                "attention: workspace of {} floats, {} needed",
                workspace.len(),
                wf * n_workers
            )));
        }
        let group = p.n_head / p.n_head_kv;
        let ws_ptr = SharedMut(workspace.as_mut_ptr());
        let out_ptr = SharedMut(out.as_mut_ptr());
        let k_turbo = type_k.is_turbo();
        let v_turbo = type_v.is_turbo();
        pool.install(|| {
            (0..rows * p.n_head).into_par_iter().try_for_each(|task| {
                let (ws_ptr, out_ptr) = (&ws_ptr, &out_ptr);
                let worker = rayon::current_thread_index().unwrap_or(0) % n_workers;
                // SAFETY: each worker thread owns its slice of the workspace, and a worker runs
                // one task at a time.
                let ws = unsafe { std::slice::from_raw_parts_mut(ws_ptr.0.add(worker * wf), wf) };
                let (qr, rest) = ws.split_at_mut(pad_k);
                let (kbuf, rest) = rest.split_at_mut(pad_k);
                let (vbuf, acc) = rest.split_at_mut(pad_v);
                let (r, h) = (task / p.n_head, task % p.n_head);
                let kvh = h / group;
                let pos = pos0 + r;
                qr[..hdk]
                    .copy_from_slice(&q[(r * p.n_head + h) * hdk..(r * p.n_head + h + 1) * hdk]);
                qr[hdk..].fill(0.0);
                if k_turbo {
                    for blk in qr.chunks_exact_mut(ROT) {
                        let blk: &mut [f32; ROT] = blk
                            .try_into()
                            .map_err(|_| CoreError::Kv("turbo block".into()))?;
                        rotate(blk);
                    }
                }
                acc.fill(0.0);
                let start = match p.window {
                    Some(w) => (pos + 1).saturating_sub(w),
                    None => 0,
                };
                let mut m = f32::NEG_INFINITY;
                let mut l = 0.0f32;
                for t in start..=pos {
                    let cell = base_cell + t;
                    let koff = (cell * s.n_head_kv + kvh) * lc.k_head_bytes;
                    formats::dequantize(
                        type_k,
                        &lc.k.as_bytes()[koff..koff + lc.k_head_bytes],
                        kbuf,
                    )
                    .map_err(|e| CoreError::Kv(format!("attention: {e}")))?;
                    let mut score = 0.0f32;
                    for i in 0..pad_k {
                        score += qr[i] * kbuf[i];
                    }
                    score *= p.scale;
                    if let Some(c) = p.softcap {
                        score = c * (score / c).tanh();
                    }
                    let voff = (cell * s.n_head_kv + kvh) * lc.v_head_bytes;
                    formats::dequantize(
                        type_v,
                        &lc.v.as_bytes()[voff..voff + lc.v_head_bytes],
                        vbuf,
                    )
                    .map_err(|e| CoreError::Kv(format!("attention: {e}")))?;
                    if score > m {
                        let corr = (m - score).exp();
                        for a in acc.iter_mut() {
                            *a *= corr;
                        }
                        l *= corr;
                        m = score;
                    }
                    let w = (score - m).exp();
                    l += w;
                    for (a, &vv) in acc.iter_mut().zip(vbuf.iter()) {
                        *a += w * vv;
                    }
                }
                if v_turbo {
                    for blk in acc.chunks_exact_mut(ROT) {
                        let blk: &mut [f32; ROT] = blk
                            .try_into()
                            .map_err(|_| CoreError::Kv("turbo block".into()))?;
                        rotate_inverse(blk);
                    }
                }
                let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
                for (i, &a) in acc[..hdv].iter().enumerate() {
                    // SAFETY: task (r, h) alone writes this head's `hdv` outputs; bounds were
                    // checked against `rows * n_head * hdv` above.
                    unsafe { *out_ptr.0.add((r * p.n_head + h) * hdv + i) = a * inv };
                }
                Ok(())
            })
        })
    }
}

struct SharedMut(*mut f32);
// SAFETY: used only for disjoint per-task/per-worker regions (see the call sites).
unsafe impl Sync for SharedMut {}
unsafe impl Send for SharedMut {}
