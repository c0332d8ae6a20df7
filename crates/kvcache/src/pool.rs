//! The page allocator: a fixed pool of page ids, one page table per sequence, and per-layer
//! write marks. All bookkeeping is allocated once, at construction, at its largest size
//! ([`crate::layout::metadata_words`]), so nothing grows while serving.

use crate::error::{KvError, Result};
use crate::layout::KvConfig;

#[derive(Debug)]
pub(crate) struct PagePool {
    page_size: usize,
    n_pages: usize,
    n_layers: usize,
    max_seqs: usize,
    /// Free page ids; the next page handed out is the last one.
    free: Vec<u32>,
    /// Row `s` (`n_pages` entries) is sequence `s`'s page table; its first
    /// `⌈reserved[s] / page_size⌉` entries are in use.
    tables: Vec<u32>,
    /// Positions `0..reserved[s]` of sequence `s` have pages.
    reserved: Vec<u32>,
    /// `written[s * n_layers + l]`: positions `0..written` of sequence `s` hold K/V in layer `l`.
    written: Vec<u32>,
    /// `floors[s * n_layers + l]`: positions below it were evicted from layer `l`'s ring.
    floors: Vec<u32>,
}

impl PagePool {
    /// `config` must already be validated by `KvLayout::new` (sizes fit u32, no overflow).
    pub(crate) fn new(config: &KvConfig) -> PagePool {
        let n_pages = config.n_pages;
        let n_layers = config.layers.len();
        // Reversed so that page 0 is handed out first: a lone sequence gets pages in order.
        let free: Vec<u32> = (0..n_pages as u32).rev().collect();
        PagePool {
            page_size: config.page_size,
            n_pages,
            n_layers,
            max_seqs: config.max_seqs,
            free,
            tables: vec![0; config.max_seqs * n_pages],
            reserved: vec![0; config.max_seqs],
            written: vec![0; config.max_seqs * n_layers],
            floors: vec![0; config.max_seqs * n_layers],
        }
    }

    /// Bytes held by the bookkeeping vectors, measured from their capacities.
    pub(crate) fn allocated_bytes(&self) -> usize {
        4 * (self.free.capacity()
            + self.tables.capacity()
            + self.reserved.capacity()
            + self.written.capacity()
            + self.floors.capacity())
    }

    pub(crate) fn check_seq(&self, seq: usize) -> Result<()> {
        if seq < self.max_seqs {
            Ok(())
        } else {
            Err(KvError::BadSequence {
                seq,
                max_seqs: self.max_seqs,
            })
        }
    }

    fn pages_in_use(&self, seq: usize) -> usize {
        (self.reserved[seq] as usize).div_ceil(self.page_size)
    }

    pub(crate) fn free_pages(&self) -> usize {
        self.free.len()
    }

    pub(crate) fn reserved(&self, seq: usize) -> Result<usize> {
        self.check_seq(seq)?;
        Ok(self.reserved[seq] as usize)
    }

    pub(crate) fn written(&self, seq: usize, layer: usize) -> usize {
        self.written[seq * self.n_layers + layer] as usize
    }

    /// Pages that `reserve(seq, n_tokens)` would take from the pool.
    pub(crate) fn pages_needed(&self, seq: usize, n_tokens: usize) -> Result<usize> {
        self.check_seq(seq)?;
        Ok(n_tokens
            .div_ceil(self.page_size)
            .saturating_sub(self.pages_in_use(seq)))
    }

    /// Makes positions `0..n_tokens` of `seq` addressable, taking pages from the pool; never
    /// shrinks (see [`PagePool::truncate`]). All or nothing: on error nothing changes.
    pub(crate) fn reserve(&mut self, seq: usize, n_tokens: usize) -> Result<()> {
        let needed = self.pages_needed(seq, n_tokens)?;
        if n_tokens <= self.reserved[seq] as usize {
            return Ok(());
        }
        if needed > self.free.len() {
            return Err(KvError::OutOfPages {
                seq,
                tokens: n_tokens,
                needed,
                free: self.free.len(),
                total: self.n_pages,
                page_size: self.page_size,
            });
        }
        let base = seq * self.n_pages + self.pages_in_use(seq);
        for slot in &mut self.tables[base..base + needed] {
            // Cannot fail: `needed <= free.len()` was checked above.
            *slot = self.free.pop().unwrap_or_default();
        }
        // Fits u32: n_tokens ≤ pages × page_size ≤ u32::MAX (checked by the layout).
        self.reserved[seq] = n_tokens as u32;
        Ok(())
    }

    /// Forgets positions `n_tokens..` of `seq` in every layer and returns the pages it no
    /// longer needs to the pool.
    pub(crate) fn truncate(&mut self, seq: usize, n_tokens: usize) -> Result<()> {
        self.check_seq(seq)?;
        if n_tokens >= self.reserved[seq] as usize {
            return Ok(());
        }
        let keep = n_tokens.div_ceil(self.page_size);
        let base = seq * self.n_pages;
        for i in keep..self.pages_in_use(seq) {
            self.free.push(self.tables[base + i]);
        }
        self.reserved[seq] = n_tokens as u32;
        let marks = seq * self.n_layers..(seq + 1) * self.n_layers;
        for w in &mut self.written[marks.clone()] {
            *w = (*w).min(n_tokens as u32);
        }
        // Positions from n_tokens on will be written anew; below it, what was evicted stays so.
        for f in &mut self.floors[marks] {
            *f = (*f).min(n_tokens as u32);
        }
        Ok(())
    }

    /// Positions of `seq` below this are evicted from `layer` (0 unless it is a ring layer).
    pub(crate) fn floor(&self, seq: usize, layer: usize) -> usize {
        self.floors[seq * self.n_layers + layer] as usize
    }

    /// Records that positions below `floor` are evicted from `layer`; returns true if that
    /// raised the floor.
    pub(crate) fn raise_floor(&mut self, seq: usize, layer: usize, floor: usize) -> bool {
        let f = &mut self.floors[seq * self.n_layers + layer];
        if floor > *f as usize {
            *f = floor as u32;
            true
        } else {
            false
        }
    }

    /// The physical page holding position `pos` of `seq`; `pos` must be reserved.
    #[inline]
    pub(crate) fn page_of(&self, seq: usize, pos: usize) -> usize {
        self.tables[seq * self.n_pages + pos / self.page_size] as usize
    }

    /// Records a write of `pos` in `layer`: only the next position or an earlier one (an
    /// overwrite) is allowed, so `0..written` never has holes. Returns true for an overwrite.
    pub(crate) fn mark_written(&mut self, layer: usize, seq: usize, pos: usize) -> Result<bool> {
        let reserved = self.reserved(seq)?;
        if pos >= reserved {
            return Err(KvError::NotReserved {
                layer,
                seq,
                pos,
                reserved,
            });
        }
        let w = &mut self.written[seq * self.n_layers + layer];
        if pos > *w as usize {
            return Err(KvError::WriteGap {
                layer,
                seq,
                pos,
                written: *w as usize,
            });
        }
        let overwrite = pos < *w as usize;
        *w = (*w).max(pos as u32 + 1);
        Ok(overwrite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::LayerKind;
    use crate::types::KvType;

    fn pool(n_pages: usize) -> PagePool {
        PagePool::new(&KvConfig {
            layers: vec![LayerKind::Full; 2],
            n_kv_heads: 1,
            head_dim_k: 32,
            head_dim_v: 32,
            k_type: KvType::F16,
            v_type: KvType::F16,
            page_size: 4,
            n_pages,
            max_seqs: 3,
            pack_turbo_heads: false,
            center_turbo_keys: true,
        })
    }

    #[test]
    fn reserve_truncate_and_reuse() {
        let mut p = pool(5);
        p.reserve(0, 5).unwrap(); // 2 pages
        p.reserve(1, 4).unwrap(); // 1 page
        assert_eq!(p.free_pages(), 2);
        assert_eq!(p.pages_needed(2, 12).unwrap(), 3);
        let e = p.reserve(2, 12).unwrap_err();
        assert_eq!(
            e.to_string(),
            "KV cache full: sequence 2 needs 3 more page(s) of 4 tokens to hold 12 tokens, but only 2 of 5 pages are free"
        );
        assert_eq!(p.reserved(2).unwrap(), 0, "failed reserve changes nothing");
        assert_eq!(p.free_pages(), 2);
        // Pages are distinct across sequences.
        let mut seen = vec![p.page_of(0, 0), p.page_of(0, 4), p.page_of(1, 0)];
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3);
        // Growing within the last page takes nothing; shrinking frees whole pages.
        p.reserve(0, 8).unwrap();
        assert_eq!(p.free_pages(), 2);
        p.truncate(0, 3).unwrap();
        assert_eq!(p.free_pages(), 3);
        p.reserve(2, 12).unwrap();
        assert_eq!(p.free_pages(), 0);
        p.truncate(2, 0).unwrap();
        p.truncate(1, 0).unwrap();
        p.truncate(0, 0).unwrap();
        assert_eq!(p.free_pages(), 5);
        assert!(p.reserve(3, 1).is_err());
    }

    #[test]
    fn write_marks_refuse_gaps_and_follow_truncation() {
        let mut p = pool(4);
        p.reserve(0, 6).unwrap();
        p.mark_written(1, 0, 0).unwrap();
        p.mark_written(1, 0, 1).unwrap();
        assert!(matches!(
            p.mark_written(1, 0, 3),
            Err(KvError::WriteGap { written: 2, .. })
        ));
        assert!(matches!(
            p.mark_written(1, 0, 6),
            Err(KvError::NotReserved { reserved: 6, .. })
        ));
        assert!(p.mark_written(1, 0, 0).unwrap(), "overwrite");
        assert_eq!(p.written(0, 1), 2);
        assert_eq!(p.written(0, 0), 0);
        p.raise_floor(0, 1, 1);
        assert_eq!(p.floor(0, 1), 1);
        p.truncate(0, 1).unwrap();
        assert_eq!(p.written(0, 1), 1);
        assert_eq!(p.floor(0, 1), 1);
        p.truncate(0, 0).unwrap();
        assert_eq!(p.floor(0, 1), 0);
    }
}
