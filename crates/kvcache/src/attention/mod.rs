//! CPU attention that reads the packed cache directly.
//!
//! # Work split
//!
//! A *unit* is (tile of query rows, KV head, chunk of that KV head's query heads): every query
//! vector (row, head) of a unit reads the same K/V rows, so each K/V row is decoded once per
//! unit and used by up to [`MAX_VECS`] query vectors (GQA sharing). Where two 64-wide turbo
//! heads share a stored group, a unit serves both KV heads and decodes each group once for
//! both (`Plan::kv_per_unit`).
//!
//! # Segments: a row's bits depend on nothing but the row
//!
//! A row's keys are cut at fixed absolute positions into *segments* of `segment_len(pos)`
//! keys (512 up to 8192 keys, doubling beyond so a row has at most `MAX_SEGMENTS`); chunks
//! start at multiples of [`CHUNK`], so they never straddle a segment. Each segment gets its own
//! online softmax state (max, sum, unnormalized output) from a fresh start, and the segments
//! are folded in order into the row's total by one function (`kernel::fold_state`). That is
//! the arithmetic of every row on every path, whoever computes the segments:
//! - one item may walk all of a row's keys and fold each segment as it ends;
//! - when there are few units for the workers (decode: one row per sequence, e.g. 3 KV heads
//!   on 2 threads), each unit is also split by segment (split-K): item (unit, s) computes
//!   segment `s` of each of its rows into a partial result, and a second pass folds them.
//!
//! Both give the same bits, so a row's output does not depend on the thread count, on the
//! other rows of its batch, or on how a prompt is cut into passes. Items run single-threaded
//! on the caller's [`Executor`].
//!
//! # One item
//!
//! Walk the pages of the sequence, [`CHUNK`] tokens at a time, with an online softmax (running
//! max and sum, flash-attention style): decode each K row once and score it against every
//! query vector, fold the chunk into the running state, decode each V row once and accumulate.
//! Rows are decoded eight at a time into a small per-worker buffer; no f32/f16 copy of the
//! cache is made.
//!
//! Per K type:
//! - f32/f16/bf16 and the 32-blocks: decode the head row to f32 and dot it with the scaled
//!   query. Q is not quantized: the decode is shared by the unit's query vectors, so a float
//!   dot costs no more than an integer one and keeps Q exact.
//! - turbo: the scaled query is zero-padded and rotated once per (row, head); the scalar path
//!   scores with a table `T[j][c] = q'[j] · C[c]` (`score = norm · Σ_j T[j][idx[j]]`), the AVX2
//!   path decodes the row (`C[idx]`, by `vpshufb` lookups) and takes a dot product.
//!
//! Per V type: rows are decoded and accumulated as `Σ p · v`; turbo V rows stay in the rotated
//! domain, and each output row gets one inverse rotation per 128-group at the end, then loses
//! its padding. Each side undoes only its own rotation, so any K/V pair works.
//!
//! 64-wide turbo heads (padded, or packed two to a group, see `layout`) are scored and
//! accumulated in 64 dimensions: each decoded 128-value row is folded to its head's half form
//! and the query and output are rotated by a 64-point transform (`half`), so such a head costs
//! 64-wide dot products like an f16 head plus the turbo decode. The AVX2 path writes folded
//! rows in an order of its choosing (`RowOps::fold_order`, the queries and accumulators follow
//! it) and leaves the norm out, applying it once per key to the score and the value weight.

mod half;
mod kernel;
mod ops;

#[cfg(target_arch = "x86_64")]
mod avx2;

use crate::cache::{KvCache, TokenPos};
use crate::codec::turbo_centroids;
use crate::error::{KvError, Result};
use crate::exec::Executor;
use crate::layout::KvLayout;
use crate::types::KvType;

use kernel::{Job, SharedMut};
use ops::KB;

/// Tokens scored before each softmax rescale (a multiple of the key block).
pub const CHUNK: usize = 64;
const _: () = assert!(CHUNK.is_multiple_of(ops::KB));
/// Most query vectors (row × head) one work item serves from one pass over the keys.
pub const MAX_VECS: usize = 16;
/// Most query heads of one KV head that one item serves.
const MAX_HEADS: usize = 8;
/// Keys of a segment (see the module docs) for rows of up to `SEGMENT * MAX_SEGMENTS` keys.
pub(crate) const SEGMENT: usize = 512;
const _: () = assert!(SEGMENT.is_multiple_of(CHUNK));
/// Most segments of one row: longer rows get longer segments.
pub(crate) const MAX_SEGMENTS: usize = 16;
/// Units are split by segment when there are fewer than this many per worker.
const SPLIT_BELOW_UNITS_PER_WORKER: usize = 2;

/// Keys per segment for a row at position `pos`: a function of the row alone, so its
/// segments (and its bits) do not depend on the batch it runs in. The smallest `SEGMENT · 2^k`
/// that cuts keys `0..=pos` into at most [`MAX_SEGMENTS`] pieces.
pub(crate) fn segment_len(pos: usize) -> usize {
    let mut len = SEGMENT;
    while pos / len >= MAX_SEGMENTS {
        len *= 2;
    }
    len
}

/// Segments of keys `0..=pos` (the segment of key `pos`, plus one).
fn segments_of(pos: usize) -> usize {
    pos / segment_len(pos) + 1
}

/// Which implementation of the row operations runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// Portable scalar code; the reference for the SIMD paths.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
}

impl KernelPath {
    /// The fastest path this CPU supports.
    pub fn best() -> KernelPath {
        if KernelPath::Avx2.is_available() {
            KernelPath::Avx2
        } else {
            KernelPath::Scalar
        }
    }

    pub fn is_available(self) -> bool {
        match self {
            KernelPath::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(not(target_arch = "x86_64"))]
            KernelPath::Avx2 => false,
        }
    }

    /// True if this path scores turbo K by lookup tables (which need workspace).
    fn turbo_k_table(self) -> bool {
        self == KernelPath::Scalar
    }
}

/// The order in which `path` writes folded rows of `ty` (see `RowOps::fold_order`).
fn fold_order(path: KernelPath, ty: KvType) -> Option<&'static [u8; half::HALF]> {
    match path {
        KernelPath::Scalar => <ops::Scalar as ops::RowOps>::fold_order(ty),
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => <avx2::Avx2 as ops::RowOps>::fold_order(ty),
        #[cfg(not(target_arch = "x86_64"))]
        KernelPath::Avx2 => None,
    }
}

/// What the attention workspace depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub k_type: KvType,
    pub v_type: KvType,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    pub n_kv_heads: usize,
    /// Query heads (a multiple of `n_kv_heads`).
    pub n_heads: usize,
    /// The most query rows one `attend` call will get (ubatch size for prefill, sequences for
    /// decode). The workspace also serves every smaller call.
    pub max_rows: usize,
    /// The executor's `n_workers()`.
    pub n_workers: usize,
    pub path: KernelPath,
}

impl AttentionShape {
    /// The shape for attention over a cache of `layout` on the best kernel path.
    pub fn for_layout(
        layout: &KvLayout,
        n_heads: usize,
        max_rows: usize,
        n_workers: usize,
    ) -> AttentionShape {
        let c = &layout.config;
        AttentionShape {
            k_type: c.k_type,
            v_type: c.v_type,
            head_dim_k: c.head_dim_k,
            head_dim_v: c.head_dim_v,
            n_kv_heads: c.n_kv_heads,
            n_heads,
            max_rows,
            n_workers,
            path: KernelPath::best(),
        }
    }
}

/// How a call's work is cut into items; a function of the shape only.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// KV heads per unit: 2 where 64-wide turbo heads can share one decoded group (see
    /// `kv_per_unit`), else 1.
    kv_per_unit: usize,
    /// Query heads per unit (the last chunk of a KV head's group, or a lone last KV head of a
    /// pair, may have fewer).
    heads: usize,
    /// Head chunks per KV head.
    head_chunks: usize,
    /// Query rows per tile.
    tile: usize,
    /// Items per unit: 1 (each item folds its rows' segments itself), or one per segment of the
    /// call's longest row (split-K: a merge pass folds them).
    splits: usize,
    n_units: usize,
    /// Padded head sizes.
    pk: usize,
    pv: usize,
    /// Floats of one query's turbo score table (0 unless the path uses tables).
    table_len: usize,
    /// 64-wide turbo heads: K / V rows are folded to their half form and scored and
    /// accumulated in 64 dimensions (see `half`).
    fold_k: bool,
    fold_v: bool,
}

/// True if a head of `head_dim` in type `ty` is handled in half-group form.
fn folds(ty: KvType, head_dim: usize) -> bool {
    ty.is_turbo() && head_dim == half::HALF
}

/// KV heads one unit serves. Two 64-wide turbo heads packed into one group (`layout`) decode
/// from the same bytes: a unit serving both KV heads decodes each group once and folds it both
/// ways (`RowOps::decode_fold_pair_rows`), instead of two units decoding it once each. Decided
/// from the shape alone (the workspace formula has no layout); on an unpacked cache a pair
/// unit decodes its two rows separately, as two units would.
fn kv_per_unit(shape: &AttentionShape, group: usize) -> usize {
    let folded = folds(shape.k_type, shape.head_dim_k) || folds(shape.v_type, shape.head_dim_v);
    if folded && shape.n_kv_heads >= 2 && 2 * group <= MAX_HEADS {
        2
    } else {
        1
    }
}

impl Plan {
    /// The plan for `n_rows` query rows whose longest has `n_segments` segments. Only the
    /// scheduling depends on the workers; the arithmetic of a row does not (module docs).
    fn new(shape: &AttentionShape, n_rows: usize, n_segments: usize) -> Result<Plan> {
        let (nkv, n_heads) = (shape.n_kv_heads, shape.n_heads);
        if nkv == 0 || n_heads == 0 || !n_heads.is_multiple_of(nkv) {
            return Err(KvError::Shape(format!(
                "{n_heads} query heads is not a positive multiple of the {nkv} KV heads"
            )));
        }
        let group = n_heads / nkv;
        let kv_per_unit = kv_per_unit(shape, group);
        let heads = (group * kv_per_unit).min(MAX_HEADS);
        let head_chunks = group.div_ceil(heads);
        let tile = (MAX_VECS / heads).clamp(1, n_rows.max(1));
        let n_units = n_rows.div_ceil(tile) * nkv.div_ceil(kv_per_unit) * head_chunks;
        let workers = shape.n_workers.max(1);
        let splits = if workers > 1 && n_units < SPLIT_BELOW_UNITS_PER_WORKER * workers {
            n_segments.clamp(1, MAX_SEGMENTS)
        } else {
            1
        };
        let pk = shape.k_type.padded_head_dim(shape.head_dim_k)?;
        let pv = shape.v_type.padded_head_dim(shape.head_dim_v)?;
        let (fold_k, fold_v) = (
            folds(shape.k_type, shape.head_dim_k),
            folds(shape.v_type, shape.head_dim_v),
        );
        let table_len = if shape.k_type.is_turbo() && shape.path.turbo_k_table() && !fold_k {
            pk * turbo_centroids(shape.k_type).len()
        } else {
            0
        };
        Ok(Plan {
            kv_per_unit,
            heads,
            head_chunks,
            tile,
            splits,
            n_units,
            pk,
            pv,
            table_len,
            fold_k,
            fold_v,
        })
    }

    /// Query vectors of one unit, at most.
    fn vecs(&self) -> usize {
        self.tile * self.heads
    }

    /// Per-worker scratch: queries (vecs × pk) | tables (vecs × table_len) | scores
    /// (vecs × CHUNK) | segment accumulators (vecs × pv) | max (vecs) | sum (vecs) | total
    /// accumulators, max and sum (the same) | a block of decoded K rows (KB × pk) per KV head
    /// of the unit | the same of V rows (KB × pv).
    fn worker_floats(&self) -> usize {
        self.vecs() * (self.pk + self.table_len + CHUNK + 2 * (self.pv + 2))
            + self.kv_per_unit * KB * (self.pk + self.pv)
    }

    /// Floats of one partial result: max, sum, unnormalized output.
    fn partial_floats(&self) -> usize {
        self.pv + 2
    }

    /// Floats of the split-K partial results of this call.
    fn split_floats(&self) -> usize {
        if self.splits == 1 {
            0
        } else {
            self.n_units * self.splits * self.vecs() * self.partial_floats()
        }
    }
}

/// Floats of workspace for any `attend` call of at most `shape.max_rows` rows.
pub fn attention_workspace_floats(shape: &AttentionShape) -> Result<usize> {
    let workers = shape.n_workers.max(1);
    let plan = Plan::new(shape, shape.max_rows, MAX_SEGMENTS)?;
    let per_worker = plan.worker_floats();
    // Splits happen only when units < SPLIT_BELOW_UNITS_PER_WORKER × workers, into at most
    // MAX_SEGMENTS items per unit (see `Plan::new`), so this bounds the partial results of
    // every row count up to max_rows; smaller calls have no more query vectors per unit.
    let split = if workers > 1 {
        (SPLIT_BELOW_UNITS_PER_WORKER * workers - 1)
            * MAX_SEGMENTS
            * plan.vecs()
            * plan.partial_floats()
    } else {
        0
    };
    per_worker
        .checked_mul(workers)
        .and_then(|w| w.checked_add(split))
        .ok_or_else(|| KvError::Shape("workspace size overflows".into()))
}

/// Bytes of workspace `attend` needs at `shape`: what the memory plan reserves. Independent of
/// the context length.
pub fn attention_workspace_bytes(shape: &AttentionShape) -> Result<usize> {
    attention_workspace_floats(shape)?
        .checked_mul(4)
        .ok_or_else(|| KvError::Shape("workspace size overflows".into()))
}

/// One attention call: the query rows of a batch (any mix of sequences) against one layer.
#[derive(Clone, Copy, Debug)]
pub struct AttentionInput<'a> {
    pub layer: usize,
    /// Sequence and position of each query row.
    pub tokens: &'a [TokenPos],
    /// `tokens.len() × n_heads × head_dim_k`, after RoPE.
    pub q: &'a [f32],
    /// Query heads; a multiple of the cache's KV heads (GQA).
    pub n_heads: usize,
    /// Multiplies every score (usually `1/√head_dim`).
    pub scale: f32,
}

impl KvCache {
    /// Causal attention of `input.q` over this cache, written to `out`
    /// (`tokens.len() × n_heads × head_dim_v`), on the best kernel path. Each row sees the keys
    /// of its sequence at positions `0..=pos` (or the last `window` of them on a sliding
    /// layer); those positions must be written in this layer. `workspace` holds at least
    /// [`attention_workspace_floats`] values for a shape with `max_rows >= tokens.len()` and
    /// `n_workers = exec.n_workers()`.
    pub fn attend(
        &self,
        input: &AttentionInput,
        out: &mut [f32],
        exec: &dyn Executor,
        workspace: &mut [f32],
    ) -> Result<()> {
        self.attend_on(KernelPath::best(), input, out, exec, workspace)
    }

    /// [`KvCache::attend`] on a chosen kernel path (tests and benchmarks compare paths).
    pub fn attend_on(
        &self,
        path: KernelPath,
        input: &AttentionInput,
        out: &mut [f32],
        exec: &dyn Executor,
        workspace: &mut [f32],
    ) -> Result<()> {
        if !path.is_available() {
            return Err(KvError::Shape(format!(
                "kernel path {path:?} is not supported by this CPU"
            )));
        }
        let layer = input.layer;
        let layer_off = self.check_layer(layer)?;
        let c = &self.layout().config;
        let (dk, dv) = (c.head_dim_k, c.head_dim_v);
        let n_rows = input.tokens.len();
        let workers = exec.n_workers().max(1);
        let shape = AttentionShape {
            n_heads: input.n_heads,
            max_rows: n_rows,
            n_workers: workers,
            path,
            ..AttentionShape::for_layout(self.layout(), input.n_heads, n_rows, workers)
        };
        let n_segments = input
            .tokens
            .iter()
            .map(|t| segments_of(t.pos))
            .max()
            .unwrap_or(1);
        let plan = Plan::new(&shape, n_rows, n_segments)?;
        for (what, got, expected) in [
            (
                "query",
                input.q.len(),
                n_rows.saturating_mul(input.n_heads).saturating_mul(dk),
            ),
            (
                "attention output",
                out.len(),
                n_rows.saturating_mul(input.n_heads).saturating_mul(dv),
            ),
        ] {
            if got != expected {
                return Err(KvError::BadLength {
                    what,
                    expected,
                    got,
                });
            }
        }
        let window = self.layer_kind(layer).window();
        for t in input.tokens {
            self.pool().check_seq(t.seq)?;
            let written = self.pool().written(t.seq, layer);
            if t.pos >= written {
                return Err(KvError::KeysMissing {
                    layer,
                    seq: t.seq,
                    pos: t.pos,
                    written,
                });
            }
            let lo = window.map_or(0, |w| (t.pos + 1).saturating_sub(w));
            let floor = self.pool().floor(t.seq, layer);
            if lo < floor {
                return Err(KvError::Evicted {
                    layer,
                    seq: t.seq,
                    pos: lo,
                    floor,
                });
            }
        }
        if n_rows == 0 {
            return Ok(());
        }
        let per_worker = plan.worker_floats();
        let split_floats = plan.split_floats();
        let needed = per_worker * workers + split_floats;
        if workspace.len() < needed {
            return Err(KvError::Workspace {
                needed,
                got: workspace.len(),
                workers,
            });
        }

        let job = Job {
            cache: self,
            input,
            layer_off,
            window,
            group: input.n_heads / c.n_kv_heads,
            kv_per_unit: plan.kv_per_unit,
            plan_heads: plan.heads,
            head_chunks: plan.head_chunks,
            tile: plan.tile,
            splits: plan.splits,
            pk: plan.pk,
            pv: plan.pv,
            table_len: plan.table_len,
            fold_k: plan.fold_k,
            fold_v: plan.fold_v,
            k_order: fold_order(path, c.k_type),
            v_order: fold_order(path, c.v_type),
            out: SharedMut(out.as_mut_ptr()),
            partials: SharedMut(workspace[per_worker * workers..].as_mut_ptr()),
        };
        let ws = SharedMut(workspace.as_mut_ptr());
        let run_item = |item: usize, worker: usize| {
            assert!(
                worker < workers,
                "executor passed worker {worker} of {workers}"
            );
            // SAFETY: the worker's slice lies inside `workspace` (length checked above) and the
            // Executor contract gives it to one item at a time.
            let scratch = unsafe {
                std::slice::from_raw_parts_mut(ws.ptr().add(worker * per_worker), per_worker)
            };
            let (unit, split) = (item / plan.splits, item % plan.splits);
            match path {
                KernelPath::Scalar => job.run_scalar(unit, split, scratch),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `path.is_available()` checked the CPU features above.
                KernelPath::Avx2 => unsafe { job.run_avx2(unit, split, scratch) },
                #[cfg(not(target_arch = "x86_64"))]
                KernelPath::Avx2 => unreachable!("checked by is_available"),
            }
        };
        exec.run(plan.n_units * plan.splits, &run_item);
        if plan.splits > 1 {
            exec.run(plan.n_units, &|unit, _worker| job.merge(unit));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(n_heads: usize, nkv: usize, max_rows: usize, workers: usize) -> AttentionShape {
        AttentionShape {
            k_type: KvType::Q8_0,
            v_type: KvType::Turbo3,
            head_dim_k: 128,
            head_dim_v: 128,
            n_kv_heads: nkv,
            n_heads,
            max_rows,
            n_workers: workers,
            path: KernelPath::Avx2,
        }
    }

    /// The workspace for `max_rows` covers every smaller call (split-K partials included).
    #[test]
    fn workspace_covers_every_smaller_call() {
        for (n_heads, nkv) in [(16, 2), (9, 3), (32, 32), (64, 4), (12, 1)] {
            for workers in [1, 2, 7, 16, 64] {
                for max_rows in [1, 3, 8, 64, 512] {
                    let s = shape(n_heads, nkv, max_rows, workers);
                    let total = attention_workspace_floats(&s).unwrap();
                    for rows in 1..=max_rows {
                        let p = Plan::new(&s, rows, MAX_SEGMENTS).unwrap();
                        let need = p.worker_floats() * workers + p.split_floats();
                        assert!(
                            need <= total,
                            "{n_heads}/{nkv} heads, {workers} workers, {rows} of {max_rows} rows"
                        );
                    }
                }
            }
        }
    }
}
