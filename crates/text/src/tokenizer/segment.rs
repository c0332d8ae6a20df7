//! Cutting "▁"-spelled text (SentencePiece, Gemma 4) into pieces that can be merged apart.
//!
//! These tokenizers merge over a whole text fragment, not over pre-tokenized words, so one
//! long text is one long merge, and nothing repeats to be cached. But a merge can only join two
//! symbols into a string the model has (a token, or a BPE merge result). If no such string
//! holds the character `c` right before a "▁", no symbol can ever span a "c▁" boundary, so the
//! text can be cut there and each piece merged on its own with exactly the same result. In
//! practice only a handful of characters appear before "▁" inside tokens (Gemma: just `>`
//! in ">▁</"), so the text falls apart into words that repeat and cache well.

const MARKER: char = '\u{2581}';

pub struct MarkerSplit {
    /// ASCII characters that may precede "▁" inside a model string: no cut after them.
    keep_ascii: [bool; 128],
    /// The same for other characters, sorted.
    keep_other: Vec<char>,
}

impl MarkerSplit {
    /// From every string a merge can produce.
    pub fn new<'a>(strings: impl IntoIterator<Item = &'a str>) -> MarkerSplit {
        let mut keep_ascii = [false; 128];
        let mut keep_other = Vec::new();
        for s in strings {
            let mut prev: Option<char> = None;
            for c in s.chars() {
                if c == MARKER {
                    match prev {
                        Some(p) if p.is_ascii() => keep_ascii[p as usize] = true,
                        Some(p) if p != MARKER => keep_other.push(p),
                        _ => {}
                    }
                }
                prev = Some(c);
            }
        }
        keep_other.sort_unstable();
        keep_other.dedup();
        MarkerSplit {
            keep_ascii,
            keep_other,
        }
    }

    fn may_cut_after(&self, c: char) -> bool {
        if c == MARKER {
            false
        } else if c.is_ascii() {
            !self.keep_ascii[c as usize]
        } else {
            self.keep_other.binary_search(&c).is_err()
        }
    }

    /// Calls `emit(start, end)` for each piece of `text[start..end]`, in order.
    pub fn split(&self, text: &str, start: usize, end: usize, emit: &mut dyn FnMut(usize, usize)) {
        let mut piece = start;
        for (off, _) in text[start..end].match_indices(MARKER) {
            let p = start + off;
            if p > piece {
                if let Some(c) = text[..p].chars().next_back() {
                    if self.may_cut_after(c) {
                        emit(piece, p);
                        piece = p;
                    }
                }
            }
        }
        if piece < end {
            emit(piece, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(m: &MarkerSplit, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        m.split(text, 0, text.len(), &mut |a, b| {
            out.push(text[a..b].to_owned())
        });
        out
    }

    #[test]
    fn cuts_before_markers_except_after_kept_characters() {
        let m = MarkerSplit::new(["▁the", ">▁</", "▁▁", "é▁x"]);
        assert_eq!(pieces(&m, "▁a▁b▁▁c"), ["▁a", "▁b", "▁▁c"]);
        // '>' comes before "▁" in ">▁</": never cut after it.
        assert_eq!(pieces(&m, "<b>▁</b>▁x"), ["<b>▁</b>▁x"]);
        assert_eq!(pieces(&m, "<b>x▁</b>"), ["<b>x", "▁</b>"]);
        assert_eq!(pieces(&m, "café▁x▁y"), ["café▁x", "▁y"]);
        assert_eq!(pieces(&m, ""), Vec::<String>::new());
        assert_eq!(pieces(&m, "▁"), ["▁"]);
    }
}
