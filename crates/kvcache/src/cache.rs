//! The cache itself: page storage, sequences, and writing K/V rows.

use std::sync::Mutex;

use crate::codec::encode_head;
use crate::error::{KvError, Result};
use crate::exec::{Executor, Sequential};
use crate::layout::{KvConfig, KvLayout, LayerKind};
use crate::pool::PagePool;

/// A first batch of fewer rows than this leaves a sequence's keys uncentered: the mean of a
/// handful of keys (often dominated by the first token's) is no estimate of their common part.
pub const MIN_CENTER_ROWS: usize = 8;

/// One row of a batch: which sequence it belongs to and its position there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenPos {
    pub seq: usize,
    pub pos: usize,
}

/// The data buffer's base pointer, shared by the write items (each writes its own rows).
#[derive(Clone, Copy)]
struct SharedBytes(*mut u8);
// SAFETY: items write disjoint byte ranges (see `KvCache::write_with`).
unsafe impl Send for SharedBytes {}
unsafe impl Sync for SharedBytes {}

impl SharedBytes {
    /// A method, so closures capture the whole (Sync) wrapper, not its field.
    fn ptr(self) -> *mut u8 {
        self.0
    }
}

/// A paged KV cache of fixed size.
pub struct KvCache {
    layout: KvLayout,
    data: Vec<u8>,
    pool: PagePool,
    /// Turbo K only: per (sequence, layer) the `n_kv_heads × head_dim_k` key center that is
    /// subtracted before quantizing (see [`crate::layout::centers_floats`]); empty otherwise.
    centers: Vec<f32>,
    /// Per sequence, rows of the current batch that set its center (scratch of `write_with`).
    center_rows: Vec<u32>,
}

/// Geometry and occupancy only: the page bytes (gigabytes) are never printed.
impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache")
            .field("layout", &self.layout)
            .field("free_pages", &self.pool.free_pages())
            .finish_non_exhaustive()
    }
}

impl KvCache {
    /// Exactly the bytes [`KvCache::new`] allocates for `config` (page storage plus
    /// bookkeeping); the memory planner's number.
    pub fn bytes_required(config: &KvConfig) -> Result<usize> {
        Ok(KvLayout::new(config)?.total_bytes())
    }

    pub fn new(config: &KvConfig) -> Result<KvCache> {
        let layout = KvLayout::new(config)?;
        // Zeroed: pages never written read as zeros, not as stale bytes of another process.
        let data = vec![0u8; layout.data_bytes];
        let pool = PagePool::new(config);
        let centers = vec![0.0f32; crate::layout::centers_floats(config)];
        let center_rows = vec![
            0u32;
            if centers.is_empty() {
                0
            } else {
                config.max_seqs
            }
        ];
        Ok(KvCache {
            layout,
            data,
            pool,
            centers,
            center_rows,
        })
    }

    pub fn layout(&self) -> &KvLayout {
        &self.layout
    }

    pub fn config(&self) -> &KvConfig {
        &self.layout.config
    }

    /// Bytes this cache holds, measured from its buffers' capacities; equals
    /// [`KvCache::bytes_required`] (tested).
    pub fn allocated_bytes(&self) -> usize {
        self.data.capacity()
            + self.pool.allocated_bytes()
            + 4 * (self.centers.capacity() + self.center_rows.capacity())
    }

    pub fn free_pages(&self) -> usize {
        self.pool.free_pages()
    }

    /// Pages `reserve(seq, n_tokens)` would take; lets a scheduler check before committing.
    pub fn pages_needed(&self, seq: usize, n_tokens: usize) -> Result<usize> {
        self.pool.pages_needed(seq, n_tokens)
    }

    /// Makes positions `0..n_tokens` of `seq` writable. Call before writing a batch; fails
    /// with [`KvError::OutOfPages`] (and changes nothing) if the pool is too small.
    pub fn reserve(&mut self, seq: usize, n_tokens: usize) -> Result<()> {
        self.pool.reserve(seq, n_tokens)
    }

    /// Positions of `seq` that have pages.
    pub fn reserved(&self, seq: usize) -> Result<usize> {
        self.pool.reserved(seq)
    }

    /// Positions `0..written` of `seq` hold K/V in `layer`.
    pub fn written(&self, layer: usize, seq: usize) -> Result<usize> {
        self.check_layer(layer)?;
        self.pool.check_seq(seq)?;
        Ok(self.pool.written(seq, layer))
    }

    /// Drops positions `n_tokens..` of `seq` (all layers) and frees their pages.
    pub fn truncate(&mut self, seq: usize, n_tokens: usize) -> Result<()> {
        self.pool.truncate(seq, n_tokens)
    }

    /// Drops all of `seq` and returns its pages to the pool.
    pub fn free_sequence(&mut self, seq: usize) -> Result<()> {
        self.pool.truncate(seq, 0)
    }

    /// The byte offset of `layer`'s storage, or an error if it is out of range or uncached.
    pub(crate) fn check_layer(&self, layer: usize) -> Result<usize> {
        let n_layers = self.layout.layer_offsets.len();
        match self.layout.layer_offsets.get(layer) {
            None => Err(KvError::BadLayer { layer, n_layers }),
            Some(None) => Err(KvError::UncachedLayer { layer }),
            Some(Some(off)) => Ok(*off),
        }
    }

    pub(crate) fn layer_kind(&self, layer: usize) -> LayerKind {
        self.layout.config.layers[layer]
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    pub(crate) fn pool(&self) -> &PagePool {
        &self.pool
    }

    /// Writes the K and V rows of `tokens` into `layer`, quantizing to the cache types, on the
    /// calling thread. See [`KvCache::write_with`].
    pub fn write(&mut self, layer: usize, tokens: &[TokenPos], k: &[f32], v: &[f32]) -> Result<()> {
        self.write_with(layer, tokens, k, v, &Sequential)
    }

    /// Writes the K and V rows of `tokens` into `layer`, quantizing to the cache types, with
    /// the rows spread over `exec`'s workers.
    ///
    /// `k` is `tokens.len() × n_kv_heads × head_dim_k` f32 (after RoPE), `v` likewise with
    /// `head_dim_v`. Positions must be reserved, and each must be at most the layer's current
    /// written length for its sequence (rows of one sequence in increasing order; rewriting an
    /// earlier position is allowed). On error the rows before the offending one are written.
    pub fn write_with(
        &mut self,
        layer: usize,
        tokens: &[TokenPos],
        k: &[f32],
        v: &[f32],
        exec: &dyn Executor,
    ) -> Result<()> {
        let layer_off = self.check_layer(layer)?;
        let c = &self.layout.config;
        let (nkv, dk, dv) = (c.n_kv_heads, c.head_dim_k, c.head_dim_v);
        for (what, got, per) in [("K rows", k.len(), dk), ("V rows", v.len(), dv)] {
            let expected = tokens.len().saturating_mul(nkv * per);
            if got != expected {
                return Err(KvError::BadLength {
                    what,
                    expected,
                    got,
                });
            }
        }
        if !self.centers.is_empty() {
            self.set_centers(layer, tokens, k);
        }
        // Bookkeeping first (cheap, in order); then the rows it accepted are encoded.
        let c = &self.layout.config;
        let ring = self.layout.ring_pages[layer];
        let page_size = c.page_size;
        let mut accepted = tokens.len();
        let mut failure = None;
        // Rows that must be encoded in order: a position written twice, or a ring page that a
        // later row of the same batch reuses.
        let mut in_order = false;
        for (i, t) in tokens.iter().enumerate() {
            match self.mark_row(layer, ring, *t) {
                Ok((overwrite, evicted_from)) => {
                    in_order |= overwrite;
                    if let Some(floor) = evicted_from {
                        in_order |= tokens[..i].iter().any(|u| u.seq == t.seq && u.pos < floor);
                    }
                }
                Err(e) => {
                    accepted = i;
                    failure = Some(e);
                    break;
                }
            }
        }
        let tokens = &tokens[..accepted];
        let (kty, vty) = (self.layout.config.k_type, self.layout.config.v_type);
        let (khb, vhb) = (self.layout.k_head_bytes, self.layout.v_head_bytes);
        let layout = &self.layout;
        let pool = &self.pool;
        let data = SharedBytes(self.data.as_mut_ptr());
        let encode_error = Mutex::new(None);
        let (k_pack, v_pack) = (layout.k_pack, layout.v_pack);
        let centers = &self.centers;
        let n_layers = layout.config.layers.len();
        let encode_token = |i: usize, _worker: usize| {
            let t = tokens[i];
            let page = page_for(layout, pool, layer, t.seq, t.pos);
            let slot = t.pos % page_size;
            // One stored row holds `pack` consecutive heads, whose values are contiguous in
            // the input: the encoder zero-pads whatever the row's heads do not fill.
            let sides = [
                (kty, k, dk, k_pack, layout.k_rows, khb, true),
                (vty, v, dv, v_pack, layout.v_rows, vhb, false),
            ];
            for (ty, src, d, pack, n_rows, hb, is_k) in sides {
                for r in 0..n_rows {
                    let at = if is_k {
                        layout.k_block(layer_off, page, r)
                    } else {
                        layout.v_block(layer_off, page, r)
                    } + slot * hb;
                    let (h0, h1) = (r * pack, ((r + 1) * pack).min(nkv));
                    // SAFETY: the range lies inside the data buffer (offsets from the validated
                    // layout and a reserved or ring page), and no other item writes it:
                    // distinct (seq, pos) rows own distinct slots, and batches where two rows
                    // share a slot run on one thread (below).
                    let dst = unsafe { std::slice::from_raw_parts_mut(data.ptr().add(at), hb) };
                    let row = &src[(i * nkv + h0) * d..(i * nkv + h1) * d];
                    let center = (is_k && !centers.is_empty()).then(|| {
                        let base = (t.seq * n_layers + layer) * nkv * d;
                        &centers[base + h0 * d..base + h1 * d]
                    });
                    if let Err(e) = encode_head(ty, row, center, dst) {
                        if let Ok(mut slot) = encode_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
            }
        };
        if in_order {
            Sequential.run(tokens.len(), &encode_token);
        } else {
            exec.run(tokens.len(), &encode_token);
        }
        if let Some(e) = encode_error.into_inner().ok().flatten() {
            return Err(e);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sets the key center of every sequence whose `layer` is empty before this batch: the
    /// mean of its K rows in the batch (zero if it has fewer than [`MIN_CENTER_ROWS`]).
    ///
    /// Why: a query's scores against keys `k − c` differ from those against `k` by the same
    /// `q · c` for every key of its sequence, which the softmax cancels, so any fixed `c` per
    /// (sequence, layer, head) is exact. Keys share a large common part (channels with a
    /// consistent offset), and a turbo group's error scales with the norm of what it stores,
    /// so storing `k − mean` cuts the score error. A sequence keeps its center until it is
    /// emptied (truncated to 0), since its stored keys depend on it.
    fn set_centers(&mut self, layer: usize, tokens: &[TokenPos], k: &[f32]) {
        let c = &self.layout.config;
        let width = c.n_kv_heads * c.head_dim_k;
        let n_layers = c.layers.len();
        let fresh = |pool: &PagePool, seq: usize| seq < c.max_seqs && pool.written(seq, layer) == 0;
        for t in tokens {
            if fresh(&self.pool, t.seq) {
                self.center_rows[t.seq] = 0;
            }
        }
        for (i, t) in tokens.iter().enumerate() {
            if !fresh(&self.pool, t.seq) {
                continue;
            }
            let center = &mut self.centers[(t.seq * n_layers + layer) * width..][..width];
            if self.center_rows[t.seq] == 0 {
                center.fill(0.0);
            }
            self.center_rows[t.seq] += 1;
            for (m, x) in center.iter_mut().zip(&k[i * width..(i + 1) * width]) {
                *m += x;
            }
        }
        for t in tokens {
            let n = self.center_rows.get(t.seq).copied().unwrap_or(0);
            if n == 0 || !fresh(&self.pool, t.seq) {
                continue;
            }
            let center = &mut self.centers[(t.seq * n_layers + layer) * width..][..width];
            let inv = if n as usize >= MIN_CENTER_ROWS {
                1.0 / n as f32
            } else {
                0.0
            };
            for m in center.iter_mut() {
                *m *= inv;
            }
            self.center_rows[t.seq] = 0; // divided once
        }
    }

    /// Bookkeeping of one row write: returns whether it rewrites a position, and for a ring
    /// layer the new eviction floor if the write evicted a page.
    fn mark_row(
        &mut self,
        layer: usize,
        ring: Option<usize>,
        t: TokenPos,
    ) -> Result<(bool, Option<usize>)> {
        self.pool.check_seq(t.seq)?;
        if ring.is_some() {
            let floor = self.pool.floor(t.seq, layer);
            if t.pos < floor {
                return Err(KvError::Evicted {
                    layer,
                    seq: t.seq,
                    pos: t.pos,
                    floor,
                });
            }
        }
        let overwrite = self.pool.mark_written(layer, t.seq, t.pos)?;
        let mut evicted = None;
        if let Some(ring) = ring {
            // Page p takes the ring slot of page p − ring: everything before page p − ring + 1
            // is gone.
            let page = t.pos / self.layout.config.page_size;
            if page + 1 > ring {
                let floor = (page + 1 - ring) * self.layout.config.page_size;
                if self.pool.raise_floor(t.seq, layer, floor) {
                    evicted = Some(floor);
                }
            }
        }
        Ok((overwrite, evicted))
    }

    /// Positions of `seq` below this are evicted from `layer` (0 unless it is a
    /// `SlidingRing` layer).
    pub fn evicted_below(&self, layer: usize, seq: usize) -> Result<usize> {
        self.check_layer(layer)?;
        self.pool.check_seq(seq)?;
        Ok(self.pool.floor(seq, layer))
    }

    /// The page of `layer`'s storage that holds position `pos` of `seq`.
    #[inline]
    pub(crate) fn page_for(&self, layer: usize, seq: usize, pos: usize) -> usize {
        page_for(&self.layout, &self.pool, layer, seq, pos)
    }

    /// The stored bytes of the K row holding `kv_head` of one written token (for tests,
    /// debugging and other backends that copy pages). With packed turbo heads the row holds
    /// several heads; [`KvLayout::k_place`] says where this one's values are once decoded.
    pub fn k_head(&self, layer: usize, seq: usize, pos: usize, kv_head: usize) -> Result<&[u8]> {
        let (layer_off, page, slot) = self.locate(layer, seq, pos, kv_head)?;
        let row = self.layout.k_place(kv_head).0;
        let at = self.layout.k_block(layer_off, page, row) + slot * self.layout.k_head_bytes;
        Ok(&self.data[at..at + self.layout.k_head_bytes])
    }

    /// The stored bytes of the V row holding `kv_head` of one written token
    /// (see [`KvCache::k_head`]).
    pub fn v_head(&self, layer: usize, seq: usize, pos: usize, kv_head: usize) -> Result<&[u8]> {
        let (layer_off, page, slot) = self.locate(layer, seq, pos, kv_head)?;
        let row = self.layout.v_place(kv_head).0;
        let at = self.layout.v_block(layer_off, page, row) + slot * self.layout.v_head_bytes;
        Ok(&self.data[at..at + self.layout.v_head_bytes])
    }

    fn locate(
        &self,
        layer: usize,
        seq: usize,
        pos: usize,
        kv_head: usize,
    ) -> Result<(usize, usize, usize)> {
        let layer_off = self.check_layer(layer)?;
        let written = self.written(layer, seq)?;
        if pos >= written {
            return Err(KvError::KeysMissing {
                layer,
                seq,
                pos,
                written,
            });
        }
        let floor = self.pool.floor(seq, layer);
        if pos < floor {
            return Err(KvError::Evicted {
                layer,
                seq,
                pos,
                floor,
            });
        }
        if kv_head >= self.layout.config.n_kv_heads {
            return Err(KvError::Shape(format!(
                "KV head {kv_head} out of range: the cache has {} KV heads",
                self.layout.config.n_kv_heads
            )));
        }
        Ok((
            layer_off,
            self.page_for(layer, seq, pos),
            pos % self.layout.config.page_size,
        ))
    }
}

/// The page of `layer`'s storage holding position `pos` of `seq`: its own ring slot for a
/// `SlidingRing` layer, else the sequence's page in the shared pool.
#[inline]
fn page_for(layout: &KvLayout, pool: &PagePool, layer: usize, seq: usize, pos: usize) -> usize {
    match layout.ring_pages[layer] {
        Some(ring) => seq * ring + (pos / layout.config.page_size) % ring,
        None => pool.page_of(seq, pos),
    }
}
