//! Byte-pair encoding over the words a [`PreTokenizer`] cuts: each word starts as one symbol
//! per character (per byte in byte-level vocabularies) and the adjacent pair with the lowest
//! merge rank is merged until no pair has a rank; ties go to the leftmost pair.
//!
//! Symbols are interned strings: every token text, plus every merge part or result that is not
//! a token (a "virtual" id at or above the vocabulary size). Merges are then a map from an id
//! pair to (rank, merged id), and a word never allocates strings while it is merged.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::byte_level;
use super::cache::WordCache;
use super::fxhash::FxMap;
use super::pretokenize::PreTokenizer;
use super::segment::MarkerSplit;
use super::vocab::Vocab;

/// A symbol whose text is neither a token nor part of any merge.
const NO_SYMBOL: u32 = u32::MAX;
/// A symbol merged into its left neighbour.
const DEAD: u32 = u32::MAX - 1;

pub struct Bpe {
    pub pre: PreTokenizer,
    /// GPT-2 byte-level alphabet (false: merges over raw UTF-8 characters, SentencePiece-style
    /// byte fallback tokens `<0xXX>`, as Gemma 4 does).
    pub byte_level: bool,
    /// A word that is itself a token is emitted whole without merging (Llama 3).
    pub ignore_merges: bool,
    /// A word made only of newlines that is a token is emitted whole (Gemma 4).
    pub whole_newline_words: bool,
    /// Cuts "▁"-spelled words into independently merged pieces (raw UTF-8 vocabularies).
    marker_split: Option<MarkerSplit>,
    n_vocab: u32,
    /// Interned non-token strings → virtual id.
    virtual_ids: FxMap<String, u32>,
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    merges: FxMap<u64, u64>,
    /// Symbol id of each byte's byte-level character.
    byte_symbol: [u32; 256],
    /// Token emitted for each byte of a symbol that is not a token: the single-character token
    /// of printable ASCII bytes (byte-level) or `<0xXX>` (raw UTF-8).
    byte_fallback: [Option<u32>; 256],
}

/// Working memory reused across the words of one call.
#[derive(Default)]
pub struct Scratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<(u32, u32, u32, u32)>>,
    encoded: String,
}

#[derive(Clone, Copy)]
struct Sym {
    id: u32,
    start: u32,
    end: u32,
    prev: u32,
    next: u32,
}

const NIL: u32 = u32::MAX;

impl Bpe {
    /// Builds the merge table. `merges` are "left right" strings, lowest rank first; a line
    /// without a separating space (after its first byte) is skipped, and of two lines naming
    /// the same pair the first counts.
    pub fn new(
        vocab: &Vocab,
        merges: &[String],
        pre: PreTokenizer,
        byte_level: bool,
        ignore_merges: bool,
        whole_newline_words: bool,
    ) -> Bpe {
        let n_vocab = vocab.len() as u32;
        let mut virtual_ids: FxMap<String, u32> = FxMap::default();
        let intern = |s: &str, virtual_ids: &mut FxMap<String, u32>| -> u32 {
            if let Some(id) = vocab.id(s) {
                return id;
            }
            if let Some(&id) = virtual_ids.get(s) {
                return id;
            }
            let id = n_vocab + virtual_ids.len() as u32;
            virtual_ids.insert(s.to_owned(), id);
            id
        };
        let mut table: FxMap<u64, u64> = FxMap::default();
        table.reserve(merges.len());
        let mut joined = String::new();
        for (rank, line) in merges.iter().enumerate() {
            let Some(sp) = line.as_bytes().iter().skip(1).position(|&b| b == b' ') else {
                continue;
            };
            let (left, right) = (&line[..sp + 1], &line[sp + 2..]);
            let l = intern(left, &mut virtual_ids);
            let r = intern(right, &mut virtual_ids);
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            let m = intern(&joined, &mut virtual_ids);
            let key = (u64::from(l) << 32) | u64::from(r);
            table
                .entry(key)
                .or_insert(((rank as u64) << 32) | u64::from(m));
        }
        let mut byte_symbol = [NO_SYMBOL; 256];
        let mut byte_fallback = [None; 256];
        let mut buf = [0u8; 4];
        for b in 0..=255u8 {
            if byte_level {
                let s: &str = byte_level::byte_to_char(b).encode_utf8(&mut buf);
                byte_symbol[usize::from(b)] = vocab
                    .id(s)
                    .or_else(|| virtual_ids.get(s).copied())
                    .unwrap_or(NO_SYMBOL);
                if (0x21..=0x7E).contains(&b) {
                    byte_fallback[usize::from(b)] = vocab.id(s);
                }
            } else {
                byte_fallback[usize::from(b)] = vocab.id(&format!("<0x{b:02X}>"));
            }
        }
        let marker_split = (!byte_level).then(|| {
            MarkerSplit::new(
                vocab
                    .texts
                    .iter()
                    .map(String::as_str)
                    .chain(virtual_ids.keys().map(String::as_str)),
            )
        });
        Bpe {
            pre,
            byte_level,
            ignore_merges,
            whole_newline_words,
            marker_split,
            n_vocab,
            virtual_ids,
            merges: table,
            byte_symbol,
            byte_fallback,
        }
    }

    #[inline]
    fn merge_of(&self, l: u32, r: u32) -> Option<(u32, u32)> {
        if l >= DEAD || r >= DEAD {
            return None;
        }
        self.merges
            .get(&((u64::from(l) << 32) | u64::from(r)))
            .map(|&v| ((v >> 32) as u32, v as u32))
    }

    fn symbol_of(&self, vocab: &Vocab, s: &str) -> u32 {
        vocab
            .id(s)
            .or_else(|| self.virtual_ids.get(s).copied())
            .unwrap_or(NO_SYMBOL)
    }

    /// Tokenizes one text fragment (no special tokens in it) and appends the ids to `out`.
    /// `cache` may be shared by all fragments of one text.
    pub fn encode_fragment(
        &self,
        vocab: &Vocab,
        text: &str,
        cache: &mut WordCache,
        out: &mut Vec<u32>,
    ) {
        let mut scratch = Scratch::default();
        let bytes = text.as_bytes();
        let mut word = |s: usize, e: usize| {
            // One byte: its own token, nothing to merge (a third of the words of prose).
            if e == s + 1 && self.byte_level {
                let id = self.byte_symbol[usize::from(bytes[s])];
                if id < self.n_vocab {
                    out.push(id);
                    return;
                }
            }
            if cache.get(&bytes[s..e], out) {
                return;
            }
            let before = out.len();
            // Piece bounds are character boundaries.
            self.encode_word(vocab, &text[s..e], &mut scratch, out);
            cache.insert(&bytes[s..e], &out[before..]);
        };
        match &self.marker_split {
            // Newline-only words are never cut (they hold no "▁"), so the whole-word rules
            // still see them whole; Gemma 4 does not ignore merges.
            Some(split) if !self.ignore_merges => {
                self.pre.split(text, 0, text.len(), &mut |s, e| {
                    split.split(text, s, e, &mut word)
                })
            }
            _ => self.pre.split(text, 0, text.len(), &mut word),
        }
    }

    fn encode_word(&self, vocab: &Vocab, word: &str, sc: &mut Scratch, out: &mut Vec<u32>) {
        if self.ignore_merges || (self.whole_newline_words && word.bytes().all(|b| b == b'\n')) {
            let id = if self.byte_level {
                sc.encoded.clear();
                byte_level::encode_into(word.as_bytes(), &mut sc.encoded);
                vocab.id(&sc.encoded)
            } else {
                vocab.id(word)
            };
            if let Some(id) = id {
                out.push(id);
                return;
            }
        }

        // One symbol per byte (byte-level) or per character.
        sc.syms.clear();
        if self.byte_level {
            for (i, &b) in word.as_bytes().iter().enumerate() {
                sc.syms.push(Sym {
                    id: self.byte_symbol[usize::from(b)],
                    start: i as u32,
                    end: i as u32 + 1,
                    prev: NIL,
                    next: NIL,
                });
            }
        } else {
            for (i, c) in word.char_indices() {
                let n = c.len_utf8();
                sc.syms.push(Sym {
                    id: self.symbol_of(vocab, &word[i..i + n]),
                    start: i as u32,
                    end: (i + n) as u32,
                    prev: NIL,
                    next: NIL,
                });
            }
        }
        let n = sc.syms.len();
        for (i, s) in sc.syms.iter_mut().enumerate() {
            s.prev = if i == 0 { NIL } else { i as u32 - 1 };
            s.next = if i + 1 == n { NIL } else { i as u32 + 1 };
        }

        if n > 1 {
            self.merge(sc);
        }

        let mut i = if n == 0 { NIL } else { 0 };
        while i != NIL {
            let s = sc.syms[i as usize];
            if s.id < self.n_vocab {
                out.push(s.id);
            } else {
                for &b in &word.as_bytes()[s.start as usize..s.end as usize] {
                    if let Some(id) = self.byte_fallback[usize::from(b)] {
                        out.push(id);
                    }
                }
            }
            i = s.next;
        }
    }

    /// Merges the symbols in `sc.syms` (a linked list in text order) by rank.
    fn merge(&self, sc: &mut Scratch) {
        sc.heap.clear();
        for i in 0..sc.syms.len().saturating_sub(1) {
            let (l, r) = (sc.syms[i].id, sc.syms[i + 1].id);
            if let Some((rank, _)) = self.merge_of(l, r) {
                sc.heap.push(Reverse((rank, i as u32, l, r)));
            }
        }
        while let Some(Reverse((_, li, lid, rid))) = sc.heap.pop() {
            // Stale entries: the left symbol changed (merged, or absorbed), or its right
            // neighbour is no longer the one this pair was made with. Ids only ever change into
            // longer texts, so an equal id means an unchanged symbol.
            let left = sc.syms[li as usize];
            if left.id != lid || left.next == NIL {
                continue;
            }
            let ri = left.next;
            let right = sc.syms[ri as usize];
            if right.id != rid {
                continue;
            }
            let Some((_, merged)) = self.merge_of(lid, rid) else {
                continue;
            };
            {
                let l = &mut sc.syms[li as usize];
                l.id = merged;
                l.end = right.end;
                l.next = right.next;
            }
            sc.syms[ri as usize].id = DEAD;
            if right.next != NIL {
                sc.syms[right.next as usize].prev = li;
            }
            let prev = sc.syms[li as usize].prev;
            if prev != NIL {
                let pid = sc.syms[prev as usize].id;
                if let Some((rank, _)) = self.merge_of(pid, merged) {
                    sc.heap.push(Reverse((rank, prev, pid, merged)));
                }
            }
            let next = sc.syms[li as usize].next;
            if next != NIL {
                let nid = sc.syms[next as usize].id;
                if let Some((rank, _)) = self.merge_of(merged, nid) {
                    sc.heap.push(Reverse((rank, li, merged, nid)));
                }
            }
        }
    }
}
