//! WordPiece (`tokenizer.ggml.model = bert`): BERT's normalizer (lower-casing, accent
//! stripping), a split on whitespace and around punctuation and CJK ideographs, then the
//! longest-match-first search over each word. GGUF BERT vocabularies mark word starts with "▁"
//! (the converter rewrote "##" continuations), so each word is searched as "▁word".

use super::unicode::{self, CONTROL, MARK, PUNCT, SYMBOL, WHITESPACE};
use super::vocab::Vocab;

pub struct Wpm {
    pub lowercase: bool,
    pub strip_accents: bool,
}

/// The CJK ideograph blocks BERT splits into single characters.
fn is_cjk_ideograph(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        // The reference implementation starts this block at 0x2B920, not 0x2B820.
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

impl Wpm {
    /// The normalized words of `text`.
    fn words(&self, text: &str) -> Vec<String> {
        let mut words = vec![String::new()];
        for c in text.chars() {
            let c = if self.strip_accents {
                unicode::nfd_base(c)
            } else {
                c
            };
            let f = unicode::flags(c);
            if f & WHITESPACE != 0 {
                if !words.last().is_some_and(String::is_empty) {
                    words.push(String::new());
                }
                continue;
            }
            if c == '\0' || c == '\u{FFFD}' || f & CONTROL != 0 {
                continue;
            }
            if self.strip_accents && f & MARK != 0 {
                continue;
            }
            let single =
                f & PUNCT != 0 || ((c as u32) < 0x7F && f & SYMBOL != 0) || is_cjk_ideograph(c);
            let c = if self.lowercase {
                unicode::to_lower(c)
            } else {
                c
            };
            if single {
                if !words.last().is_some_and(String::is_empty) {
                    words.push(String::new());
                }
                if let Some(w) = words.last_mut() {
                    w.push(c);
                }
                words.push(String::new());
            } else if let Some(w) = words.last_mut() {
                w.push(c);
            }
        }
        words.retain(|w| !w.is_empty());
        words
    }

    pub fn encode_fragment(&self, vocab: &Vocab, unk: Option<u32>, text: &str, out: &mut Vec<u32>) {
        for word in self.words(text) {
            let w = format!("\u{2581}{word}");
            let n = w.len();
            let before = out.len();
            let mut i = 0;
            while i < n {
                // Longest token starting at byte i (ends on character boundaries only: no
                // token text can end inside a character).
                let mut found = None;
                let mut j = n.min(i + vocab.max_token_len);
                while j > i {
                    if w.is_char_boundary(j) {
                        if let Some(id) = vocab.id(&w[i..j]) {
                            found = Some((id, j));
                            break;
                        }
                    }
                    j -= 1;
                }
                match found {
                    Some((id, j)) => {
                        out.push(id);
                        i = j;
                    }
                    None => {
                        // One unmatched piece makes the whole word unknown.
                        out.truncate(before);
                        break;
                    }
                }
            }
            if out.len() == before {
                if let Some(unk) = unk {
                    out.push(unk);
                }
            }
        }
    }
}
