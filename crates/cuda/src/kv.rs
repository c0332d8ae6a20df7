//! The KV cache on the device: per layer one K and one V allocation, each laid out
//! `[sequence][kv head][position][head bytes]`, so the keys one attention block reads (one KV
//! head of one sequence) are contiguous. Rows are stored packed in the cache type (ggml blocks
//! or turbo groups, heads zero-padded to whole blocks), exactly as `formats::quantize` writes
//! them.
//!
//! Decode attention splits each sequence's positions into fixed splits of [`SPLIT_LEN`] keys
//! ("pages" of the split-K pass); the split count, and so the workspace, follows from the
//! number of keys.

use formats::GgmlType;
use turbine_core::{CoreError, KvLayerShape, KvSpec};

use crate::device::{Device, DeviceAlloc};

/// Keys per split of the decode attention.
pub const SPLIT_LEN: usize = 256;
/// Most query rows the split-K path takes; more rows have parallelism enough without splits.
pub const SPLIT_MAX_ROWS: usize = 16;
/// Longest padded head the attention kernel handles (4 values per thread × 128 threads).
pub const MAX_PADDED_HEAD: usize = 512;

/// KV cache types the CUDA backend stores.
pub const KV_TYPES: [GgmlType; 12] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Iq4Nl,
    GgmlType::Turbo2,
    GgmlType::Turbo3,
    GgmlType::Turbo4,
];

pub fn check_type(ty: GgmlType) -> Result<(), CoreError> {
    if KV_TYPES.contains(&ty) {
        Ok(())
    } else {
        Err(CoreError::Kv(format!(
            "cache type {} is not supported by the CUDA backend",
            ty.name()
        )))
    }
}

/// Head dimension padded to whole blocks of `ty` (turbo: 128-value groups).
pub fn padded_dim(ty: GgmlType, head_dim: usize) -> usize {
    head_dim.div_ceil(ty.block_size()) * ty.block_size()
}

/// Bytes of one head of one token.
pub fn head_bytes(ty: GgmlType, head_dim: usize) -> usize {
    padded_dim(ty, head_dim) / ty.block_size() * ty.block_bytes()
}

/// Bytes of the K and V allocations of one layer.
pub fn layer_bytes(spec: &KvSpec, l: &KvLayerShape) -> (u64, u64) {
    let heads = (spec.n_seq * spec.cells_per_seq()) as u64 * l.n_head_kv as u64;
    (
        heads * head_bytes(spec.type_k, l.head_dim_k) as u64,
        heads * head_bytes(spec.type_v, l.head_dim_v) as u64,
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

/// Shortest decode split: below this a block's setup (query load, rotation) outweighs its keys.
pub const MIN_SPLIT_LEN: usize = 32;
/// Most splits a short context is cut into so that a decode step still launches enough blocks
/// to fill the GPU (66 splits × 8 KV heads = 528 blocks, four per H100 SM: the decode kernel is
/// bound by latency, not bandwidth, when fewer warps run).
pub const SHORT_CONTEXT_SPLITS: usize = 128;

/// Most splits of the decode attention over `n_kv` keys: [`SPLIT_LEN`]-key splits, or, for short
/// contexts, up to [`SHORT_CONTEXT_SPLITS`] splits of at least [`MIN_SPLIT_LEN`] keys. Grows
/// with `n_kv`, so a workspace planned for the longest context holds every shorter one.
pub fn n_splits(n_kv: usize) -> usize {
    let long = n_kv.div_ceil(SPLIT_LEN);
    let short = n_kv.div_ceil(MIN_SPLIT_LEN).min(SHORT_CONTEXT_SPLITS);
    long.max(short).max(1)
}

/// The splits (count, keys each) a decode over `n_kv` keys with `blocks_per_split` blocks per
/// split (KV heads × rows) uses: [`SPLIT_LEN`]-key splits when they launch at least
/// `min_blocks` blocks, otherwise shorter ones (within [`n_splits`]).
pub fn decode_splits(n_kv: usize, blocks_per_split: usize, min_blocks: usize) -> (usize, usize) {
    let long = n_kv.div_ceil(SPLIT_LEN).max(1);
    if long * blocks_per_split >= min_blocks {
        return (long, SPLIT_LEN);
    }
    let want = min_blocks
        .div_ceil(blocks_per_split.max(1))
        .min(SHORT_CONTEXT_SPLITS);
    let len = n_kv
        .div_ceil(want)
        .next_multiple_of(MIN_SPLIT_LEN)
        .clamp(MIN_SPLIT_LEN, SPLIT_LEN);
    (n_kv.div_ceil(len).max(1), len)
}

/// Workspace floats of the split-K path for `rows` query rows over `n_kv` keys.
pub fn split_workspace_floats(
    rows: usize,
    n_head: usize,
    n_kv: usize,
    type_v: GgmlType,
    head_dim_v: usize,
) -> usize {
    rows * n_head * n_splits(n_kv) * (padded_dim(type_v, head_dim_v) + 2)
}

pub(crate) struct LayerKv {
    pub k: DeviceAlloc,
    pub v: DeviceAlloc,
    pub shape: KvLayerShape,
    pub k_head_bytes: usize,
    pub v_head_bytes: usize,
}

pub struct CudaKvCache {
    pub(crate) spec: KvSpec,
    pub(crate) layers: Vec<LayerKv>,
    /// Positions `0..reserved[seq]` of each sequence may be written ([`CudaKvCache::reserve`]).
    pub(crate) reserved: Vec<usize>,
    /// Positions `0..written[layer][seq]` hold K/V in that layer.
    pub(crate) written: Vec<Vec<usize>>,
    /// Cells per sequence.
    pub(crate) cells: usize,
}

impl CudaKvCache {
    pub(crate) fn new(
        dev: &Device,
        name: &str,
        spec: &KvSpec,
        mut record: impl FnMut(u64),
    ) -> Result<CudaKvCache, CoreError> {
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
            let k = DeviceAlloc::new(dev, name, kb)?;
            record(kb);
            let v = DeviceAlloc::new(dev, name, vb)?;
            record(vb);
            layers.push(LayerKv {
                k,
                v,
                shape: *l,
                k_head_bytes: head_bytes(spec.type_k, l.head_dim_k),
                v_head_bytes: head_bytes(spec.type_v, l.head_dim_v),
            });
        }
        Ok(CudaKvCache {
            spec: spec.clone(),
            reserved: vec![0; spec.n_seq],
            written: vec![vec![0; spec.n_seq]; layers.len()],
            layers,
            cells: spec.cells_per_seq(),
        })
    }

    pub fn spec(&self) -> &KvSpec {
        &self.spec
    }

    /// Positions of `seq` that hold K/V in `layer`.
    pub fn written(&self, layer: usize, seq: usize) -> usize {
        self.written
            .get(layer)
            .and_then(|w| w.get(seq))
            .copied()
            .unwrap_or(0)
    }

    /// Makes positions `0..n_tokens` of `seq` writable; changes nothing if they do not fit.
    pub(crate) fn reserve(&mut self, seq: usize, n_tokens: usize) -> Result<(), CoreError> {
        self.check_seq(seq)?;
        if n_tokens > self.cells {
            return Err(CoreError::Kv(format!(
                "sequence {seq} is full: {n_tokens} tokens exceed its {} cells (raise -c)",
                self.cells
            )));
        }
        let r = &mut self.reserved[seq];
        *r = (*r).max(n_tokens);
        Ok(())
    }

    /// Forgets positions `from..` of `seq` in every layer.
    pub(crate) fn truncate(&mut self, seq: usize, from: usize) -> Result<(), CoreError> {
        self.check_seq(seq)?;
        let r = &mut self.reserved[seq];
        *r = (*r).min(from);
        for w in &mut self.written {
            w[seq] = w[seq].min(from);
        }
        Ok(())
    }

    /// Checks the rows a store writes (reserved, in order, no gaps) and records them.
    pub(crate) fn mark_written(
        &mut self,
        layer: usize,
        rows: &[turbine_core::TokenPos],
    ) -> Result<(), CoreError> {
        self.layer(layer)?;
        for t in rows {
            self.check_seq(t.seq)?;
            if t.pos >= self.reserved[t.seq] {
                return Err(CoreError::Kv(format!(
                    "sequence {} position {} is not reserved ({} reserved)",
                    t.seq, t.pos, self.reserved[t.seq]
                )));
            }
            let w = &mut self.written[layer][t.seq];
            if t.pos > *w {
                return Err(CoreError::Kv(format!(
                    "sequence {} layer {layer}: position {} written before position {}",
                    t.seq, t.pos, *w
                )));
            }
            *w = (*w).max(t.pos + 1);
        }
        Ok(())
    }

    pub(crate) fn layer(&self, layer: usize) -> Result<&LayerKv, CoreError> {
        self.layers
            .get(layer)
            .ok_or_else(|| CoreError::Kv(format!("layer {layer} out of range")))
    }

    pub(crate) fn check_seq(&self, seq: usize) -> Result<(), CoreError> {
        if seq >= self.spec.n_seq {
            return Err(CoreError::Kv(format!(
                "sequence {seq} out of range ({} sequences)",
                self.spec.n_seq
            )));
        }
        Ok(())
    }

    /// Device addresses of position 0, head 0 of `seq` in the K and V allocations of a layer.
    pub(crate) fn seq_base(&self, lc: &LayerKv, seq: usize) -> (u64, u64) {
        let heads = (seq * lc.shape.n_head_kv * self.cells) as u64;
        (
            lc.k.ptr() + heads * lc.k_head_bytes as u64,
            lc.v.ptr() + heads * lc.v_head_bytes as u64,
        )
    }

    /// Address of (seq, head, pos) in K (`v = false`) or V, and that head's bytes.
    pub(crate) fn cell_addr(
        &self,
        layer: usize,
        seq: usize,
        head: usize,
        pos: usize,
        v: bool,
    ) -> Result<(u64, usize), CoreError> {
        let lc = self.layer(layer)?;
        self.check_seq(seq)?;
        if head >= lc.shape.n_head_kv || pos >= self.cells {
            return Err(CoreError::Kv(format!(
                "cell (head {head}, position {pos}) outside the cache"
            )));
        }
        let (kb, vb) = self.seq_base(lc, seq);
        let (base, hb) = if v {
            (vb, lc.v_head_bytes)
        } else {
            (kb, lc.k_head_bytes)
        };
        Ok((base + ((head * self.cells + pos) * hb) as u64, hb))
    }
}
