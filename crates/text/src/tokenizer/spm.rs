//! SentencePiece-style BPE (`tokenizer.ggml.model = llama`): the text, with spaces written as
//! "▁", starts as one symbol per character; the adjacent pair whose concatenation is a token
//! with the highest score is merged (ties: leftmost) until no pair forms a token. Symbols that
//! are not tokens fall back to byte tokens `<0xXX>`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::cache::WordCache;
use super::segment::MarkerSplit;
use super::vocab::Vocab;

pub struct Spm {
    /// Where the text may be cut into independently merged pieces.
    split: MarkerSplit,
    /// Token for each byte: `<0xXX>`, else the one-byte text, else the unknown token.
    byte_tokens: Box<[Option<u32>; 256]>,
}

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    end: u32,
    prev: u32,
    next: u32,
}

const NIL: u32 = u32::MAX;

struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    len: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl Spm {
    pub fn new(vocab: &Vocab, unk: Option<u32>) -> Spm {
        let mut byte_tokens = Box::new([None; 256]);
        for b in 0..=255u8 {
            let hex = format!("<0x{b:02X}>");
            let one = [b];
            byte_tokens[usize::from(b)] = vocab
                .id(&hex)
                .or_else(|| std::str::from_utf8(&one).ok().and_then(|s| vocab.id(s)))
                .or(unk);
        }
        Spm {
            split: MarkerSplit::new(vocab.texts.iter().map(String::as_str)),
            byte_tokens,
        }
    }

    /// Tokenizes `text` (already "▁"-escaped) and appends the ids to `out`.
    /// `cache` may be shared by all fragments of one text.
    pub fn encode_fragment(
        &self,
        vocab: &Vocab,
        text: &str,
        cache: &mut WordCache,
        out: &mut Vec<u32>,
    ) {
        let bytes = text.as_bytes();
        self.split.split(text, 0, text.len(), &mut |s, e| {
            if !cache.get(&bytes[s..e], out) {
                let before = out.len();
                self.encode_piece(vocab, &text[s..e], out);
                cache.insert(&bytes[s..e], &out[before..]);
            }
        });
    }

    fn encode_piece(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
        for (i, c) in text.char_indices() {
            let k = syms.len() as u32;
            syms.push(Sym {
                start: i as u32,
                end: (i + c.len_utf8()) as u32,
                prev: if k == 0 { NIL } else { k - 1 },
                next: k + 1,
            });
        }
        if let Some(last) = syms.last_mut() {
            last.next = NIL;
        }
        let mut heap = BinaryHeap::new();
        let try_pair = |syms: &[Sym], heap: &mut BinaryHeap<Bigram>, l: u32, r: u32| {
            if l == NIL || r == NIL {
                return;
            }
            let (a, b) = (syms[l as usize], syms[r as usize]);
            if let Some(id) = vocab.id(&text[a.start as usize..b.end as usize]) {
                heap.push(Bigram {
                    score: vocab.scores[id as usize],
                    left: l,
                    right: r,
                    len: b.end - a.start,
                });
            }
        };
        for i in 1..syms.len() as u32 {
            try_pair(&syms, &mut heap, i - 1, i);
        }
        while let Some(bg) = heap.pop() {
            let (l, r) = (syms[bg.left as usize], syms[bg.right as usize]);
            // Stale if either side was merged away or has grown since.
            if l.end == l.start
                || r.end == r.start
                || l.next != bg.right
                || r.end - l.start != bg.len
            {
                continue;
            }
            syms[bg.left as usize].end = r.end;
            syms[bg.left as usize].next = r.next;
            syms[bg.right as usize].end = syms[bg.right as usize].start; // empty: merged away
            if r.next != NIL {
                syms[r.next as usize].prev = bg.left;
            }
            try_pair(&syms, &mut heap, l.prev, bg.left);
            try_pair(&syms, &mut heap, bg.left, r.next);
        }
        let mut i = if syms.is_empty() { NIL } else { 0 };
        while i != NIL {
            let s = syms[i as usize];
            let piece = &text[s.start as usize..s.end as usize];
            match vocab.id(piece) {
                Some(id) => out.push(id),
                None => {
                    for &b in piece.as_bytes() {
                        if let Some(id) = self.byte_tokens[usize::from(b)] {
                            out.push(id);
                        }
                    }
                }
            }
            i = s.next;
        }
    }
}
