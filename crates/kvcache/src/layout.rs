//! The cache geometry and its exact byte formula.
//!
//! Storage is one byte buffer. Every cached layer owns `n_pages` pages; page `p` of a layer holds
//! the K rows of `page_size` tokens, then their V rows, each side laid out head-major:
//!
//! ```text
//! layer ─┬─ page 0 ─┬─ K: head 0: token 0 … token P-1 │ head 1: … │ … (k_head_bytes each)
//!        │          └─ V: head 0: token 0 … token P-1 │ head 1: … │ … (v_head_bytes each)
//!        ├─ page 1 …
//! ```
//!
//! Head-major pages keep the rows one attention work item reads (one KV head) contiguous.
//! A page id names the same slot in every cached layer, so one page table per sequence serves
//! the whole model.
//!
//! A *stored row* is one head of one token, except for turbo heads narrower than a rotation
//! group when [`KvConfig::pack_turbo_heads`] is set: then `128 / head_dim` heads of the same
//! token (e.g. two 64-wide heads) share one 128-value group, head `h` at values
//! `(h % pack) · head_dim ..` of row `h / pack`. The rotation is orthogonal, so a query
//! zero-padded into its head's part of the group and rotated scores exactly `q · k_h`, and the
//! matching part of an inverse-rotated V accumulator is exactly `Σ p · v_h`; the heads of a row
//! share its norm (they are quantized jointly), which is what the bits allow.

use crate::error::{KvError, Result};
use crate::types::KvType;

/// What a model layer keeps in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// No KV cache (e.g. a recurrent layer of a hybrid model); attention on it is an error.
    Uncached,
    /// Attention over every earlier position.
    Full,
    /// Attention over the last `window` positions only (the query's own included): a query at
    /// position `p` sees keys at `p - window + 1 ..= p`. The layer keeps every page of the
    /// shared pool; the window is only a mask.
    Sliding { window: usize },
    /// As `Sliding`, but the layer stores only what the window can still reach: each sequence
    /// owns a fixed ring of `⌈(window + max_batch − 1) / page_size⌉ + 1` pages of this layer
    /// (not pages of the shared pool), and writing a new page evicts the oldest.
    /// `max_batch` is the most positions of one sequence written to the layer between two
    /// attention calls (the ubatch size); a query whose window reaches an evicted position is
    /// an error ([`crate::KvError::Evicted`]), never stale data.
    SlidingRing { window: usize, max_batch: usize },
}

impl LayerKind {
    /// The attention window, if the layer has one.
    pub fn window(self) -> Option<usize> {
        match self {
            LayerKind::Sliding { window } | LayerKind::SlidingRing { window, .. } => Some(window),
            LayerKind::Full | LayerKind::Uncached => None,
        }
    }
}

/// Everything that fixes the cache's size; [`KvLayout::new`] validates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvConfig {
    /// One entry per model layer.
    pub layers: Vec<LayerKind>,
    pub n_kv_heads: usize,
    /// Values per K head before padding.
    pub head_dim_k: usize,
    /// Values per V head before padding.
    pub head_dim_v: usize,
    pub k_type: KvType,
    pub v_type: KvType,
    /// Tokens per page.
    pub page_size: usize,
    /// Pages in the pool, shared by all sequences; each cached layer has this many.
    pub n_pages: usize,
    /// Sequence ids are `0..max_seqs`.
    pub max_seqs: usize,
    /// Turbo heads narrower than 128 share rotation groups (see the module docs) instead of
    /// each being zero-padded to 128: 64-wide heads take half the memory. A backend whose
    /// kernels expect one head per group leaves this off.
    pub pack_turbo_heads: bool,
    /// Turbo K is stored minus a per-(sequence, layer) key center (see `KvCache::write`'s
    /// centering): exact for the softmax, smaller quantization error. A backend whose kernels
    /// do not center (and a check that compares against one) leaves this off.
    pub center_turbo_keys: bool,
}

impl KvConfig {
    /// Pages that let `n_seqs` sequences hold `n_ctx` tokens in total however the tokens are
    /// split among them: each sequence wastes less than one page in its last page, and
    /// Σ⌈tᵢ/P⌉ ≤ ⌈Σtᵢ/P⌉ + n_seqs − 1.
    pub fn pages_for_context(n_ctx: usize, n_seqs: usize, page_size: usize) -> usize {
        if page_size == 0 {
            return 0;
        }
        n_ctx.div_ceil(page_size) + n_seqs.saturating_sub(1)
    }
}

/// The validated geometry: sizes of every part, and where each part lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvLayout {
    pub config: KvConfig,
    /// Values per stored K / V row after padding (turbo types: multiple of 128).
    pub padded_dim_k: usize,
    pub padded_dim_v: usize,
    /// Heads per stored K / V row: 1, or `128 / head_dim` for packed turbo heads.
    pub k_pack: usize,
    pub v_pack: usize,
    /// Stored K / V rows per token: `⌈n_kv_heads / pack⌉`.
    pub k_rows: usize,
    pub v_rows: usize,
    /// Bytes of one stored row of one token.
    pub k_head_bytes: usize,
    pub v_head_bytes: usize,
    /// Bytes of one page of one layer (K and V of `page_size` tokens, all heads).
    pub page_bytes: usize,
    /// Byte offset of each layer's first page in the data buffer; `None` for uncached layers.
    pub layer_offsets: Vec<Option<usize>>,
    /// Pages of each layer's storage: `n_pages` (shared pool), `max_seqs × ring` for a
    /// `SlidingRing` layer, 0 if uncached.
    pub layer_pages: Vec<usize>,
    /// Ring length (pages per sequence) of each `SlidingRing` layer.
    pub ring_pages: Vec<Option<usize>>,
    /// Bytes of page storage: cached layers × pages × page bytes.
    pub data_bytes: usize,
    /// Bytes of bookkeeping (page tables, free list, per-layer write marks), all allocated at
    /// construction.
    pub metadata_bytes: usize,
}

fn checked(what: &str, v: Option<usize>) -> Result<usize> {
    v.ok_or_else(|| KvError::Config(format!("{what} overflows the address space")))
}

impl KvLayout {
    pub fn new(config: &KvConfig) -> Result<KvLayout> {
        let c = config;
        for (name, v) in [
            ("n_kv_heads", c.n_kv_heads),
            ("page_size", c.page_size),
            ("n_pages", c.n_pages),
            ("max_seqs", c.max_seqs),
        ] {
            if v == 0 {
                return Err(KvError::Config(format!("{name} is 0")));
            }
        }
        if c.layers.is_empty() {
            return Err(KvError::Config("no layers".into()));
        }
        // Page ids and positions are stored as u32.
        if c.n_pages
            .checked_mul(c.page_size)
            .is_none_or(|n| n > u32::MAX as usize)
        {
            return Err(KvError::Config(format!(
                "{} pages of {} tokens exceed the u32 page ids and positions",
                c.n_pages, c.page_size
            )));
        }
        for (i, l) in c.layers.iter().enumerate() {
            if l.window() == Some(0) {
                return Err(KvError::Config(format!("layer {i}: sliding window of 0")));
            }
            if let LayerKind::SlidingRing { max_batch: 0, .. } = l {
                return Err(KvError::Config(format!("layer {i}: max_batch of 0")));
            }
        }
        let padded_dim_k = c
            .k_type
            .padded_head_dim(c.head_dim_k)
            .map_err(|e| KvError::Config(format!("K: {e}")))?;
        let padded_dim_v = c
            .v_type
            .padded_head_dim(c.head_dim_v)
            .map_err(|e| KvError::Config(format!("V: {e}")))?;
        let k_head_bytes = padded_dim_k / c.k_type.block_size() * c.k_type.block_bytes();
        let v_head_bytes = padded_dim_v / c.v_type.block_size() * c.v_type.block_bytes();
        let k_pack = heads_per_row(c, c.k_type, c.head_dim_k, padded_dim_k);
        let v_pack = heads_per_row(c, c.v_type, c.head_dim_v, padded_dim_v);
        let (k_rows, v_rows) = (c.n_kv_heads.div_ceil(k_pack), c.n_kv_heads.div_ceil(v_pack));

        let page_bytes = checked(
            "page size",
            (k_rows * k_head_bytes)
                .checked_add(v_rows * v_head_bytes)
                .and_then(|n| n.checked_mul(c.page_size)),
        )?;
        let n = c.layers.len();
        let (mut layer_offsets, mut layer_pages, mut ring_pages) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut data_bytes = 0usize;
        for l in &c.layers {
            let (pages, ring) = match *l {
                LayerKind::Uncached => (0, None),
                LayerKind::Full | LayerKind::Sliding { .. } => (c.n_pages, None),
                LayerKind::SlidingRing { window, max_batch } => {
                    // Keys a batch's queries need: max_batch − 1 before the window's
                    // window − 1; spread over one more page than they fill when unaligned.
                    let span = checked("ring size", window.checked_add(max_batch - 1))?;
                    let ring = span.div_ceil(c.page_size) + 1;
                    (
                        checked("ring size", ring.checked_mul(c.max_seqs))?,
                        Some(ring),
                    )
                }
            };
            layer_offsets.push((*l != LayerKind::Uncached).then_some(data_bytes));
            layer_pages.push(pages);
            ring_pages.push(ring);
            let bytes = checked("layer size", page_bytes.checked_mul(pages))?;
            data_bytes = checked("cache size", data_bytes.checked_add(bytes))?;
        }
        let metadata_bytes = checked(
            "metadata size",
            metadata_words(c).and_then(|w| w.checked_mul(4)),
        )?;
        Ok(KvLayout {
            config: c.clone(),
            padded_dim_k,
            padded_dim_v,
            k_pack,
            v_pack,
            k_rows,
            v_rows,
            k_head_bytes,
            v_head_bytes,
            page_bytes,
            layer_offsets,
            layer_pages,
            ring_pages,
            data_bytes,
            metadata_bytes,
        })
    }

    /// Everything the cache allocates: page storage plus bookkeeping.
    pub fn total_bytes(&self) -> usize {
        self.data_bytes + self.metadata_bytes
    }

    /// Byte offset of stored K row `row` of the first token in `page` of `layer` (`page_size`
    /// rows follow, one per token).
    pub(crate) fn k_block(&self, layer_off: usize, page: usize, row: usize) -> usize {
        layer_off + page * self.page_bytes + row * self.config.page_size * self.k_head_bytes
    }

    /// Byte offset of stored V row `row` of the first token in `page` of `layer`.
    pub(crate) fn v_block(&self, layer_off: usize, page: usize, row: usize) -> usize {
        layer_off
            + page * self.page_bytes
            + self.config.page_size * self.k_rows * self.k_head_bytes
            + row * self.config.page_size * self.v_head_bytes
    }

    /// The stored K row holding `kv_head`, and the offset of its values in the decoded row.
    pub fn k_place(&self, kv_head: usize) -> (usize, usize) {
        (
            kv_head / self.k_pack,
            kv_head % self.k_pack * self.config.head_dim_k,
        )
    }

    /// The stored V row holding `kv_head`, and the offset of its values in the decoded row.
    pub fn v_place(&self, kv_head: usize) -> (usize, usize) {
        (
            kv_head / self.v_pack,
            kv_head % self.v_pack * self.config.head_dim_v,
        )
    }

    /// Number of pages that hold positions `0..n_tokens`.
    pub fn pages_for(&self, n_tokens: usize) -> usize {
        n_tokens.div_ceil(self.config.page_size)
    }
}

/// Heads that share one stored row: several only for packed turbo heads that divide a group.
fn heads_per_row(c: &KvConfig, ty: KvType, head_dim: usize, padded: usize) -> usize {
    if c.pack_turbo_heads && ty.is_turbo() && padded.is_multiple_of(head_dim) {
        (padded / head_dim).min(c.n_kv_heads)
    } else {
        1
    }
}

/// Floats of the key centers a turbo-K cache keeps: `n_kv_heads × head_dim_k` per (sequence,
/// layer); 0 for other K types.
pub(crate) fn centers_floats(c: &KvConfig) -> usize {
    if c.k_type.is_turbo() && c.center_turbo_keys {
        c.max_seqs * c.layers.len() * c.n_kv_heads * c.head_dim_k
    } else {
        0
    }
}

/// u32 words of bookkeeping: the free list (one per page), the page tables (one row of
/// `n_pages` per sequence, since one sequence may take the whole pool), the reserved length of
/// each sequence, and per (sequence, layer) a written-positions mark and the lowest position
/// not evicted (sliding rings); for turbo K also the key centers and a row count per sequence.
pub(crate) fn metadata_words(c: &KvConfig) -> Option<usize> {
    let tables = c.max_seqs.checked_mul(c.n_pages)?;
    let marks = c.max_seqs.checked_mul(c.layers.len())?;
    let centers = if c.k_type.is_turbo() {
        c.max_seqs
            .checked_mul(c.layers.len())?
            .checked_mul(c.n_kv_heads)?
            .checked_mul(c.head_dim_k)?
            .checked_add(c.max_seqs)?
    } else {
        0
    };
    c.n_pages
        .checked_add(tables)?
        .checked_add(c.max_seqs)?
        .checked_add(marks.checked_mul(2)?)?
        .checked_add(centers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KvConfig {
        KvConfig {
            layers: vec![
                LayerKind::Full,
                LayerKind::Uncached,
                LayerKind::Sliding { window: 512 },
            ],
            n_kv_heads: 3,
            head_dim_k: 64,
            head_dim_v: 64,
            k_type: KvType::Q8_0,
            v_type: KvType::Turbo3,
            page_size: 16,
            n_pages: 10,
            max_seqs: 2,
            pack_turbo_heads: false,
            center_turbo_keys: true,
        }
    }

    #[test]
    fn formula_by_hand() {
        let l = KvLayout::new(&config()).unwrap();
        // q8_0: 64 values = 2 blocks × 34 bytes; turbo3 pads 64 → 128 = 1 block × 50 bytes.
        assert_eq!(l.k_head_bytes, 68);
        assert_eq!(l.v_head_bytes, 50);
        assert_eq!(l.page_bytes, 16 * 3 * (68 + 50));
        assert_eq!(l.data_bytes, 2 * 10 * 16 * 3 * (68 + 50));
        assert_eq!(
            l.layer_offsets,
            vec![Some(0), None, Some(10 * l.page_bytes)]
        );
        assert_eq!(l.metadata_bytes, 4 * (10 + 2 * 10 + 2 + 2 * 2 * 3));
        // V of head 1 in page 2 of layer 2: after the layer start, two pages, all K rows of the
        // page and head 0's V rows.
        assert_eq!(
            l.v_block(l.layer_offsets[2].unwrap(), 2, 1),
            10 * l.page_bytes + 2 * l.page_bytes + 16 * 3 * 68 + 16 * 50
        );
    }

    #[test]
    fn packed_turbo_heads_share_groups() {
        let mut c = config();
        c.pack_turbo_heads = true;
        let l = KvLayout::new(&c).unwrap();
        // q8_0 K is never packed; turbo3 V: heads 0 and 1 share row 0, head 2 has row 1 alone.
        assert_eq!((l.k_pack, l.k_rows, l.k_head_bytes), (1, 3, 68));
        assert_eq!((l.v_pack, l.v_rows, l.v_head_bytes), (2, 2, 50));
        assert_eq!(l.page_bytes, 16 * (3 * 68 + 2 * 50));
        assert_eq!(l.v_place(0), (0, 0));
        assert_eq!(l.v_place(1), (0, 64));
        assert_eq!(l.v_place(2), (1, 0));
        assert_eq!(l.v_block(0, 1, 1), l.page_bytes + 16 * 3 * 68 + 16 * 50);
        // 4 heads of 32 in one group; 96-wide heads do not divide a group and stay padded.
        c.n_kv_heads = 4;
        c.head_dim_v = 32;
        c.k_type = KvType::Turbo4;
        c.head_dim_k = 96;
        let l = KvLayout::new(&c).unwrap();
        assert_eq!((l.v_pack, l.v_rows, l.v_place(3)), (4, 1, (0, 96)));
        assert_eq!((l.k_pack, l.k_rows, l.k_head_bytes), (1, 4, 66));
    }

    #[test]
    fn ring_layers_hold_what_the_window_reaches() {
        let mut c = config();
        // Window 512, batches of up to 512, pages of 16: 1023 positions span at most
        // ⌈1023/16⌉ + 1 = 65 pages per sequence, 2 sequences.
        c.layers[2] = LayerKind::SlidingRing {
            window: 512,
            max_batch: 512,
        };
        let l = KvLayout::new(&c).unwrap();
        assert_eq!(l.ring_pages, vec![None, None, Some(65)]);
        assert_eq!(l.layer_pages, vec![10, 0, 130]);
        assert_eq!(l.data_bytes, (10 + 130) * l.page_bytes);
        c.layers[2] = LayerKind::SlidingRing {
            window: 16,
            max_batch: 1,
        };
        assert_eq!(KvLayout::new(&c).unwrap().ring_pages[2], Some(2));
        c.layers[2] = LayerKind::SlidingRing {
            window: 4,
            max_batch: 0,
        };
        assert!(KvLayout::new(&c).is_err());
    }

    #[test]
    fn rejects_bad_configs() {
        let mut c = config();
        c.head_dim_k = 80;
        let e = KvLayout::new(&c).unwrap_err().to_string();
        assert!(e.contains("multiple of 32"), "{e}");
        let mut c = config();
        c.layers[2] = LayerKind::Sliding { window: 0 };
        assert!(KvLayout::new(&c).is_err());
        let mut c = config();
        c.n_pages = 0;
        assert!(KvLayout::new(&c).is_err());
        let mut c = config();
        c.n_pages = usize::MAX / 2;
        assert!(KvLayout::new(&c).is_err());
    }

    #[test]
    fn pages_for_context_bounds_any_split() {
        // 3 sequences, 100 tokens, pages of 16: worst split 33+33+34 → 3+3+3 = 9 ≤ 7 + 2.
        assert_eq!(KvConfig::pages_for_context(100, 3, 16), 9);
        for a in 0..=100usize {
            for b in 0..=(100 - a) {
                let c = 100 - a - b;
                let need = a.div_ceil(16) + b.div_ceil(16) + c.div_ceil(16);
                assert!(need <= 9);
            }
        }
    }
}
