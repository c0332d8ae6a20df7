//! Finding special tokens in text. Control and unknown tokens are parsed only on request
//! (`parse_special`); user-defined tokens always are, before any other tokenization, as
//! Hugging Face tokenizers do with "added tokens".
//!
//! The order is llama.cpp's: longest token text first; each token splits every text fragment
//! left by the longer ones at all its (non-overlapping, leftmost-first) occurrences. A trie
//! pass first finds which tokens occur at all, so text with no special tokens costs one scan.

use super::vocab::{TokenAttr, Vocab};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// Byte range of the text.
    Text(usize, usize),
    Token(u32),
}

struct Trie {
    /// Child index per first byte, for the root.
    root: Box<[u32; 256]>,
    nodes: Vec<TrieNode>,
}

/// (children sorted by byte, index into the token list of a token ending here).
type TrieNode = (Vec<(u8, u32)>, Option<u32>);

const NONE: u32 = u32::MAX;

impl Trie {
    fn new(texts: &[&str]) -> Trie {
        let mut t = Trie {
            root: Box::new([NONE; 256]),
            nodes: Vec::new(),
        };
        for (k, text) in texts.iter().enumerate() {
            let bytes = text.as_bytes();
            let Some((&first, rest)) = bytes.split_first() else {
                continue;
            };
            let mut node = t.root[usize::from(first)];
            if node == NONE {
                node = t.nodes.len() as u32;
                t.nodes.push((Vec::new(), None));
                t.root[usize::from(first)] = node;
            }
            for &b in rest {
                let children = &t.nodes[node as usize].0;
                node = match children.binary_search_by_key(&b, |&(c, _)| c) {
                    Ok(i) => children[i].1,
                    Err(i) => {
                        let new = t.nodes.len() as u32;
                        t.nodes.push((Vec::new(), None));
                        t.nodes[node as usize].0.insert(i, (b, new));
                        new
                    }
                };
            }
            let end = &mut t.nodes[node as usize].1;
            if end.is_none() {
                *end = Some(k as u32);
            }
        }
        t
    }

    /// Marks in `found` every token (by list index) that occurs somewhere in `text`.
    fn occurring(&self, text: &[u8], found: &mut [bool]) -> bool {
        let mut any = false;
        for i in 0..text.len() {
            let mut node = self.root[usize::from(text[i])];
            let mut j = i + 1;
            while node != NONE {
                let (children, end) = &self.nodes[node as usize];
                if let Some(k) = *end {
                    found[k as usize] = true;
                    any = true;
                }
                let Some(&b) = text.get(j) else { break };
                node = match children.binary_search_by_key(&b, |&(c, _)| c) {
                    Ok(x) => children[x].1,
                    Err(_) => NONE,
                };
                j += 1;
            }
        }
        any
    }
}

/// One list of special tokens (longest text first) with its trie.
struct TokenSet {
    ids: Vec<u32>,
    trie: Trie,
}

impl TokenSet {
    fn new(vocab: &Vocab, mut ids: Vec<u32>) -> TokenSet {
        // Longest first; equal lengths by id so the order does not depend on anything else.
        ids.sort_by_key(|&id| (std::cmp::Reverse(vocab.texts[id as usize].len()), id));
        let texts: Vec<&str> = ids
            .iter()
            .map(|&id| vocab.texts[id as usize].as_str())
            .collect();
        let trie = Trie::new(&texts);
        TokenSet { ids, trie }
    }
}

pub struct SpecialTokens {
    /// Control, unknown and user-defined tokens.
    all: TokenSet,
    /// User-defined tokens only.
    user: TokenSet,
}

/// C's `isspace` (what the strip rules remove).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

impl SpecialTokens {
    pub fn new(vocab: &Vocab) -> SpecialTokens {
        let special = TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN;
        let all: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&id| vocab.attrs[id as usize].has(special))
            .collect();
        let user: Vec<u32> = all
            .iter()
            .copied()
            .filter(|&id| !vocab.attrs[id as usize].has(TokenAttr::CONTROL | TokenAttr::UNKNOWN))
            .collect();
        SpecialTokens {
            all: TokenSet::new(vocab, all),
            user: TokenSet::new(vocab, user),
        }
    }

    /// Number of tokens that are parsed out of text when `parse_special` is on.
    pub fn len(&self) -> usize {
        self.all.ids.len()
    }

    /// Splits `text` into text fragments and special tokens.
    pub fn partition(&self, vocab: &Vocab, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(0, text.len()));
        let set = if parse_special { &self.all } else { &self.user };
        if set.ids.is_empty() {
            return frags;
        }
        let mut found = vec![false; set.ids.len()];
        if !set.trie.occurring(text.as_bytes(), &mut found) {
            return frags;
        }
        let bytes = text.as_bytes();
        for (k, &id) in set.ids.iter().enumerate() {
            if !found[k] {
                continue;
            }
            let needle = vocab.texts[id as usize].as_str();
            let attr = vocab.attrs[id as usize];
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(mut start, end) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(at) = text[start..end].find(needle).map(|p| start + p) {
                    let mut left_end = at;
                    if attr.has(TokenAttr::LSTRIP) {
                        while left_end > start && is_c_space(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > start {
                        next.push(Fragment::Text(start, left_end));
                    }
                    next.push(Fragment::Token(id));
                    start = at + needle.len();
                    if attr.has(TokenAttr::RSTRIP) {
                        while start < end && is_c_space(bytes[start]) {
                            start += 1;
                        }
                    }
                }
                if start < end {
                    next.push(Fragment::Text(start, end));
                }
            }
            frags = next;
        }
        frags
    }
}
