//! A per-call cache of word → ids. Text repeats its words, so most words are a lookup.

use super::fxhash::FxMap;

/// Words longer than this (in bytes) are not cached: they rarely repeat.
const MAX_CACHED_WORD: usize = 64;

/// Words already encoded in this call → their ids. Short words (nearly all) are keyed by their bytes packed into two integers, which
/// hash and compare without a call to `memcmp`; entries stay small so more of the table fits in
/// cache.
///
/// In front of the maps sits a small direct-mapped table of recent short words (96 KiB, so it
/// stays in the core's cache): word frequencies are skewed, and one probe there is cheaper
/// than a hash-map lookup that misses the cache.
pub struct WordCache {
    front: Vec<FrontEntry>,
    front_shift: u32,
    short: FxMap<(u64, u64), u64>,
    /// Longer words own their key (rare enough that the copy does not matter).
    long: FxMap<Box<[u8]>, u64>,
    ids: Vec<u32>,
}

/// A front-table slot; `hi == 0` is empty (a real key's top byte holds a non-zero length).
#[derive(Clone, Copy, Default)]
struct FrontEntry {
    lo: u64,
    hi: u64,
    val: u64,
}

const FRONT_BITS: u32 = 12;

impl WordCache {
    /// A cache for a text of `len` bytes: short texts get a smaller front table (or none),
    /// so that many small fragments do not each clear 96 KiB.
    pub fn for_text(len: usize) -> Self {
        let bits = if len < 1024 {
            0
        } else {
            (len / 16)
                .next_power_of_two()
                .trailing_zeros()
                .min(FRONT_BITS)
        };
        WordCache {
            front: vec![FrontEntry::default(); if bits == 0 { 0 } else { 1 << bits }],
            front_shift: 64 - bits,
            short: FxMap::default(),
            long: FxMap::default(),
            ids: Vec::new(),
        }
    }

    #[inline]
    fn front_slot(&self, lo: u64, hi: u64) -> Option<usize> {
        if self.front.is_empty() {
            return None;
        }
        let h = (lo.rotate_left(5) ^ hi).wrapping_mul(0x517c_c1b7_2722_0a95);
        Some((h >> self.front_shift) as usize)
    }
}

/// Cached ids: one id with the top bit set, else (offset << 32 | count) in `WordCache::ids`.
const ONE: u64 = 1 << 63;

/// Bytes of `b` (at most 8) as a little-endian integer, zero-padded, without a loop.
#[inline]
fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    let u32_at = |i: usize| u64::from(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    match n {
        0 => 0,
        1..=3 => {
            u64::from(b[0])
                | u64::from(b[n / 2]) << (8 * (n / 2))
                | u64::from(b[n - 1]) << (8 * (n - 1))
        }
        // Two overlapping 4-byte reads: the shared bytes land on the same bits.
        4..=7 => u32_at(0) | u32_at(n - 4) << (8 * (n - 4)),
        _ => {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[..8]);
            u64::from_le_bytes(w)
        }
    }
}

impl WordCache {
    /// Up to 15 bytes packed with the length in the top byte (so "a" and "a\0" differ).
    #[inline]
    fn short_key(b: &[u8]) -> (u64, u64) {
        let n = b.len();
        if n <= 8 {
            (load_le(b), (n as u64) << 56)
        } else {
            (load_le(&b[..8]), load_le(&b[8..]) | (n as u64) << 56)
        }
    }

    /// Appends the cached ids of `word` to `out`, if cached.
    #[inline]
    pub fn get(&mut self, word: &[u8], out: &mut Vec<u32>) -> bool {
        let v = if word.len() < 16 {
            let (lo, hi) = Self::short_key(word);
            let slot = self.front_slot(lo, hi);
            match slot.map(|i| self.front[i]) {
                Some(f) if f.lo == lo && f.hi == hi => Some(f.val),
                _ => {
                    let v = self.short.get(&(lo, hi)).copied();
                    if let (Some(val), Some(i)) = (v, slot) {
                        self.front[i] = FrontEntry { lo, hi, val };
                    }
                    v
                }
            }
        } else {
            self.long.get(word).copied()
        };
        match v {
            Some(v) if v & ONE != 0 => out.push(v as u32),
            Some(v) => {
                let (at, n) = ((v >> 32) as usize, (v & 0xFFFF_FFFF) as usize);
                out.extend_from_slice(&self.ids[at..at + n]);
            }
            None => return false,
        }
        true
    }

    pub fn insert(&mut self, word: &[u8], ids: &[u32]) {
        if word.len() > MAX_CACHED_WORD {
            return;
        }
        let v = if let [id] = ids {
            ONE | u64::from(*id)
        } else {
            let at = self.ids.len() as u64;
            self.ids.extend_from_slice(ids);
            (at << 32) | ids.len() as u64
        };
        if word.len() < 16 {
            let (lo, hi) = Self::short_key(word);
            if let Some(i) = self.front_slot(lo, hi) {
                self.front[i] = FrontEntry { lo, hi, val: v };
            }
            self.short.insert((lo, hi), v);
        } else {
            self.long.insert(word.into(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_keys_are_distinct_and_exact() {
        let words = [
            "",
            "a",
            "a\0",
            "ab",
            "abc",
            "abcd",
            "abcde",
            "abcdef",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmno",
            "\0",
            "\0\0",
            "ba",
            "cba",
            "dcba",
            "edcba",
        ];
        let keys: Vec<_> = words
            .iter()
            .map(|w| WordCache::short_key(w.as_bytes()))
            .collect();
        for i in 0..keys.len() {
            for j in 0..i {
                assert_ne!(keys[i], keys[j], "{:?} vs {:?}", words[i], words[j]);
            }
        }
        for w in words {
            let b = w.as_bytes();
            let mut want = [0u8; 16];
            want[..b.len()].copy_from_slice(b);
            let (lo, hi) = WordCache::short_key(b);
            let mut got = [0u8; 16];
            got[..8].copy_from_slice(&lo.to_le_bytes());
            got[8..].copy_from_slice(&hi.to_le_bytes());
            got[15] = 0;
            assert_eq!(got, want, "{w:?}");
        }
    }
}
