//! CPU attention that reads the packed cache directly.
//!
//! Work is split into items of (tile of up to [`TILE_ROWS`] query rows, query head). Each item
//! is single-threaded and walks the pages of its sequence once, [`CHUNK`] tokens at a time,
//! with an online softmax (running max and sum, flash-attention style). Per chunk it decodes
//! each K row once for all rows of the tile, scores, rescales, then decodes each V row once and
//! accumulates it. No f32/f16 copy of the cache is ever made: the largest decoded piece is one
//! head row of one token.
//!
//! Per K type:
//! - f32/f16/bf16 and the 32-blocks: decode the head row to f32, dot with the scaled query (we
//!   do not quantize Q: the K decode is shared by the tile's rows, so the float dot costs the
//!   same as an integer one and keeps Q exact).
//! - turbo: the scaled query is zero-padded and rotated once per (row, head), and a table
//!   `T[j][c] = q'[j] · C[c]` is built; a key's score is `norm · Σ_j T[j][idx[j]]`.
//!
//! Per V type: rows are decoded and accumulated as `Σ p · v`; turbo V rows stay in the rotated
//! domain (`C[idx] · norm`), and the output row gets one inverse rotation per 128-group at the
//! end, then loses its padding. Since each side undoes only its own rotation, any K/V pair works.

use formats::turbo::{rotate, rotate_inverse, QK_TURBO};

use crate::cache::{KvCache, TokenPos};
use crate::codec::{decode_head, turbo_centroids, turbo_indices};
use crate::error::{KvError, Result};
use crate::exec::Executor;
use crate::layout::{KvLayout, LayerKind};
use crate::types::KvType;

/// Query rows that share one pass over the keys.
pub const TILE_ROWS: usize = 8;
/// Tokens scored before each softmax rescale.
pub const CHUNK: usize = 64;

/// What the attention workspace depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub k_type: KvType,
    pub v_type: KvType,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    /// The most query rows one `attend` call will get (ubatch size for prefill, number of
    /// sequences for decode).
    pub max_rows: usize,
    /// The executor's `n_workers()`.
    pub n_workers: usize,
}

impl AttentionShape {
    pub fn for_layout(layout: &KvLayout, max_rows: usize, n_workers: usize) -> AttentionShape {
        let c = &layout.config;
        AttentionShape {
            k_type: c.k_type,
            v_type: c.v_type,
            head_dim_k: c.head_dim_k,
            head_dim_v: c.head_dim_v,
            max_rows,
            n_workers,
        }
    }
}

/// Per-worker scratch, in f32 values, for tiles of `tile` rows. `None` if a head size is
/// invalid for its type.
struct Scratch {
    pk: usize,
    pv: usize,
    tile: usize,
    table_len: usize,
}

impl Scratch {
    fn new(k_type: KvType, v_type: KvType, dk: usize, dv: usize, tile: usize) -> Result<Scratch> {
        let pk = k_type.padded_head_dim(dk)?;
        let pv = v_type.padded_head_dim(dv)?;
        let table_len = pk * turbo_centroids(k_type).len();
        Ok(Scratch {
            pk,
            pv,
            tile,
            table_len,
        })
    }

    /// Layout: queries (tile × pk) | tables (tile × table_len) | scores (tile × CHUNK) |
    /// accumulators (tile × pv) | max (tile) | sum (tile) | K row (pk) | V row (pv).
    fn floats(&self) -> usize {
        let t = self.tile;
        t * (self.pk + self.table_len + CHUNK + self.pv + 2) + self.pk + self.pv
    }
}

fn tile_rows(max_rows: usize) -> usize {
    max_rows.clamp(1, TILE_ROWS)
}

/// f32 values of workspace `attend` needs at `shape` (all workers together).
pub fn attention_workspace_floats(shape: &AttentionShape) -> Result<usize> {
    let s = Scratch::new(
        shape.k_type,
        shape.v_type,
        shape.head_dim_k,
        shape.head_dim_v,
        tile_rows(shape.max_rows),
    )?;
    s.floats()
        .checked_mul(shape.n_workers.max(1))
        .ok_or_else(|| KvError::Shape("workspace size overflows".into()))
}

/// Bytes of workspace `attend` needs at `shape`: what the memory plan reserves.
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

/// A raw pointer the work items share; each item touches only its own disjoint part.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: items write disjoint ranges (output: their own (row, head) slices; workspace: their
// worker's slice, which the Executor contract keeps exclusive).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl KvCache {
    /// Causal attention of `input.q` over this cache, written to `out`
    /// (`tokens.len() × n_heads × head_dim_v`). Each row sees the keys of its sequence at
    /// positions `0..=pos` (or the last `window` of them on a sliding layer); those positions
    /// must be written in this layer. `workspace` holds at least
    /// [`attention_workspace_floats`] values for `tokens.len()` rows and `exec.n_workers()`.
    pub fn attend(
        &self,
        input: &AttentionInput,
        out: &mut [f32],
        exec: &dyn Executor,
        workspace: &mut [f32],
    ) -> Result<()> {
        let layer = input.layer;
        let layer_off = self.check_layer(layer)?;
        let c = &self.layout().config;
        let (n_heads, nkv) = (input.n_heads, c.n_kv_heads);
        let (dk, dv) = (c.head_dim_k, c.head_dim_v);
        let n_rows = input.tokens.len();
        if n_heads == 0 || !n_heads.is_multiple_of(nkv) {
            return Err(KvError::Shape(format!(
                "{n_heads} query heads is not a positive multiple of the {nkv} KV heads"
            )));
        }
        for (what, got, expected) in [
            ("query", input.q.len(), n_rows * n_heads * dk),
            ("attention output", out.len(), n_rows * n_heads * dv),
        ] {
            if got != expected {
                return Err(KvError::BadLength {
                    what,
                    expected,
                    got,
                });
            }
        }
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
        }
        if n_rows == 0 {
            return Ok(());
        }
        let scratch = Scratch::new(c.k_type, c.v_type, dk, dv, tile_rows(n_rows))?;
        let per_worker = scratch.floats();
        let workers = exec.n_workers().max(1);
        let needed = per_worker * workers;
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
            window: match self.layer_kind(layer) {
                LayerKind::Sliding { window } => Some(window),
                _ => None,
            },
            scratch,
            group: n_heads / nkv,
        };
        let n_tiles = n_rows.div_ceil(job.scratch.tile);
        let out_ptr = SharedMut(out.as_mut_ptr());
        let ws_ptr = SharedMut(workspace.as_mut_ptr());
        exec.run(n_tiles * n_heads, &|item, worker| {
            // Copy the wrappers whole so the closure captures them (Sync), not their fields.
            let (out_ptr, ws_ptr) = (out_ptr, ws_ptr);
            assert!(
                worker < workers,
                "executor passed worker {worker} of {workers}"
            );
            // SAFETY: the worker's slice lies inside `workspace` (checked length) and the
            // Executor contract gives it to one item at a time.
            let ws = unsafe {
                std::slice::from_raw_parts_mut(ws_ptr.0.add(worker * per_worker), per_worker)
            };
            let (tile, head) = (item / n_heads, item % n_heads);
            let r0 = tile * job.scratch.tile;
            let r1 = (r0 + job.scratch.tile).min(n_rows);
            // Runs of consecutive rows of the same sequence share one pass over its pages.
            let mut a = r0;
            while a < r1 {
                let seq = input.tokens[a].seq;
                let mut b = a + 1;
                while b < r1 && input.tokens[b].seq == seq {
                    b += 1;
                }
                job.run(a, b, head, ws, |row, values| {
                    // SAFETY: (row, head) is written by this item only, inside `out` (length
                    // checked above).
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(
                            out_ptr.0.add((row * n_heads + head) * dv),
                            dv,
                        )
                    };
                    dst.copy_from_slice(values);
                });
                a = b;
            }
        });
        Ok(())
    }
}

/// Everything a work item reads.
struct Job<'a> {
    cache: &'a KvCache,
    input: &'a AttentionInput<'a>,
    layer_off: usize,
    window: Option<usize>,
    scratch: Scratch,
    /// Query heads per KV head.
    group: usize,
}

impl Job<'_> {
    /// Attention for query rows `r0..r1` (one sequence) and query head `head`; hands each
    /// finished output row (head_dim_v values) to `emit`.
    fn run(
        &self,
        r0: usize,
        r1: usize,
        head: usize,
        ws: &mut [f32],
        mut emit: impl FnMut(usize, &[f32]),
    ) {
        let cache = self.cache;
        let layout = cache.layout();
        let c = &layout.config;
        let (kty, vty) = (c.k_type, c.v_type);
        let (dk, dv) = (c.head_dim_k, c.head_dim_v);
        let (khb, vhb) = (layout.k_head_bytes, layout.v_head_bytes);
        let page_size = c.page_size;
        let Scratch {
            pk,
            pv,
            tile,
            table_len,
        } = self.scratch;
        let n = r1 - r0;
        let kv_head = head / self.group;
        let seq = self.input.tokens[r0].seq;
        let data = cache.data();
        let pool = cache.pool();
        let centroids = turbo_centroids(kty);
        let nc = centroids.len();

        let (qs, rest) = ws.split_at_mut(tile * pk);
        let (tables, rest) = rest.split_at_mut(tile * table_len);
        let (scores, rest) = rest.split_at_mut(tile * CHUNK);
        let (accs, rest) = rest.split_at_mut(tile * pv);
        let (maxes, rest) = rest.split_at_mut(tile);
        let (sums, rest) = rest.split_at_mut(tile);
        let (krow, rest) = rest.split_at_mut(pk);
        let vrow = &mut rest[..pv];

        // Key range of each row, and of the run.
        let lo_of = |pos: usize| match self.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        };
        let mut kmin = usize::MAX;
        let mut kmax = 0;
        for i in 0..n {
            let pos = self.input.tokens[r0 + i].pos;
            kmin = kmin.min(lo_of(pos));
            kmax = kmax.max(pos);
        }

        // Prepare the queries: scaled, padded, rotated + tabled for turbo K.
        for i in 0..n {
            let q = &self.input.q[((r0 + i) * self.input.n_heads + head) * dk..][..dk];
            let qp = &mut qs[i * pk..(i + 1) * pk];
            for (d, s) in qp.iter_mut().zip(q) {
                *d = s * self.input.scale;
            }
            qp[dk..].fill(0.0);
            if kty.is_turbo() {
                let table = &mut tables[i * table_len..(i + 1) * table_len];
                for (g, group) in qp.chunks_exact_mut(QK_TURBO).enumerate() {
                    let group: &mut [f32; QK_TURBO] = group.try_into().expect("128-value group");
                    rotate(group);
                    for (j, &qj) in group.iter().enumerate() {
                        let row = &mut table[(g * QK_TURBO + j) * nc..][..nc];
                        for (t, &cc) in row.iter_mut().zip(centroids) {
                            *t = qj * cc;
                        }
                    }
                }
            }
            accs[i * pv..(i + 1) * pv].fill(0.0);
            maxes[i] = f32::NEG_INFINITY;
            sums[i] = 0.0;
        }

        let mut idx = [0u8; QK_TURBO];
        let mut t = kmin;
        while t <= kmax {
            let slot = t % page_size;
            let len = CHUNK.min(page_size - slot).min(kmax + 1 - t);
            let page = pool.page_of(seq, t);
            let kbase = layout.k_block(self.layer_off, page, kv_head) + slot * khb;
            let vbase = layout.v_block(self.layer_off, page, kv_head) + slot * vhb;

            // Scores of this chunk for every row (masked ones −∞).
            for u in 0..len {
                let kbytes = &data[kbase + u * khb..][..khb];
                if kty.is_turbo() {
                    for i in 0..n {
                        scores[i * CHUNK + u] = 0.0;
                    }
                    for (g, block) in kbytes.chunks_exact(kty.block_bytes()).enumerate() {
                        let norm = turbo_indices(kty, block, &mut idx);
                        for i in 0..n {
                            let table = &tables[i * table_len + g * QK_TURBO * nc..];
                            let mut s = 0.0f32;
                            for (j, &ix) in idx.iter().enumerate() {
                                s += table[j * nc + ix as usize];
                            }
                            scores[i * CHUNK + u] += norm * s;
                        }
                    }
                } else {
                    decode_head(kty, kbytes, krow);
                    for i in 0..n {
                        let q = &qs[i * pk..(i + 1) * pk];
                        scores[i * CHUNK + u] = dot(q, krow);
                    }
                }
                let key = t + u;
                for i in 0..n {
                    let pos = self.input.tokens[r0 + i].pos;
                    if key > pos || key < lo_of(pos) {
                        scores[i * CHUNK + u] = f32::NEG_INFINITY;
                    }
                }
            }

            // Online softmax: fold the chunk into each row's running max and sum, turning its
            // scores into weights.
            for i in 0..n {
                let s = &mut scores[i * CHUNK..i * CHUNK + len];
                let chunk_max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if chunk_max == f32::NEG_INFINITY {
                    // Every key of this chunk is masked for this row: zero weights.
                    s.fill(0.0);
                    continue;
                }
                let m_new = maxes[i].max(chunk_max);
                let alpha = (maxes[i] - m_new).exp();
                if alpha != 1.0 {
                    for a in &mut accs[i * pv..(i + 1) * pv] {
                        *a *= alpha;
                    }
                    sums[i] *= alpha;
                }
                let mut sum = 0.0f32;
                for x in s.iter_mut() {
                    *x = (*x - m_new).exp();
                    sum += *x;
                }
                sums[i] += sum;
                maxes[i] = m_new;
            }

            // Accumulate V.
            for u in 0..len {
                let vbytes = &data[vbase + u * vhb..][..vhb];
                decode_head(vty, vbytes, vrow);
                for i in 0..n {
                    let p = scores[i * CHUNK + u];
                    if p != 0.0 {
                        axpy(&mut accs[i * pv..(i + 1) * pv], p, vrow);
                    }
                }
            }
            t += len;
        }

        for i in 0..n {
            let acc = &mut accs[i * pv..(i + 1) * pv];
            // Every row sees at least its own key, so the sum is positive.
            let inv = 1.0 / sums[i];
            for a in acc.iter_mut() {
                *a *= inv;
            }
            if vty.is_turbo() {
                for group in acc.chunks_exact_mut(QK_TURBO) {
                    let group: &mut [f32; QK_TURBO] = group.try_into().expect("128-value group");
                    rotate_inverse(group);
                }
            }
            emit(r0 + i, &acc[..dv]);
        }
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent partial sums: lets the compiler vectorize without reassociating.
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

#[inline]
fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
    for (a, x) in acc.iter_mut().zip(v) {
        *a += p * x;
    }
}
