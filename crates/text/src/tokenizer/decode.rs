//! Token → bytes. Pieces are computed once per vocabulary; detokenizing joins them, and
//! [`StreamDecoder`] turns a stream of tokens into text without ever splitting a character.

use super::byte_level;
use super::vocab::{TokenAttr, Vocab};

/// How a model's tokens spell text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelling {
    /// GPT-2 byte-level characters.
    ByteLevel,
    /// "▁" for a space (SentencePiece, WordPiece, Gemma 4).
    SpaceMarker,
}

/// The bytes each token stands for, when special tokens are rendered, back to back.
pub struct Pieces {
    bytes: Vec<u8>,
    /// `bytes[offsets[id]..offsets[id + 1]]` is token `id`'s piece.
    offsets: Vec<u32>,
}

fn byte_token_value(text: &str) -> Option<u8> {
    // "<0xAB>"
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

fn piece_of(text: &str, attr: TokenAttr, spelling: Spelling, out: &mut Vec<u8>) {
    if attr.has(TokenAttr::UNKNOWN | TokenAttr::CONTROL | TokenAttr::USER_DEFINED) {
        out.extend_from_slice(text.as_bytes());
    } else if attr.has(TokenAttr::NORMAL) {
        match spelling {
            Spelling::SpaceMarker => {
                let mut rest = text;
                while let Some(p) = rest.find('\u{2581}') {
                    out.extend_from_slice(&rest.as_bytes()[..p]);
                    out.push(b' ');
                    rest = &rest[p + '\u{2581}'.len_utf8()..];
                }
                out.extend_from_slice(rest.as_bytes());
            }
            Spelling::ByteLevel => {
                for c in text.chars() {
                    match byte_level::char_to_byte(c) {
                        Some(b) => out.push(b),
                        None => {
                            // Not a byte-level character: say so in the text rather than
                            // dropping it (llama.cpp writes the same marker).
                            out.extend_from_slice(b"[UNK_BYTE_0x");
                            let mut buf = [0u8; 4];
                            for b in c.encode_utf8(&mut buf).bytes() {
                                out.extend_from_slice(format!("{b:02x}").as_bytes());
                            }
                            out.extend_from_slice(text.as_bytes());
                            out.push(b']');
                        }
                    }
                }
            }
        }
    } else if attr.has(TokenAttr::BYTE) {
        if let Some(b) = byte_token_value(text) {
            out.push(b);
        }
    }
    // Unused and undefined tokens have no piece.
}

impl Pieces {
    pub fn new(vocab: &Vocab, spelling: Spelling) -> Pieces {
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(vocab.len() + 1);
        offsets.push(0);
        for (text, &attr) in vocab.texts.iter().zip(&vocab.attrs) {
            piece_of(text, attr, spelling, &mut bytes);
            offsets.push(bytes.len() as u32);
        }
        Pieces { bytes, offsets }
    }

    /// Token `id`'s piece; empty for an id outside the vocabulary.
    #[inline]
    pub fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        if i + 1 >= self.offsets.len() {
            return &[];
        }
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

/// The Hugging Face "clean up tokenization spaces" passes, as llama.cpp applies them: drop the
/// space before `? ! . ,`, around a lone apostrophe, and before `'s 'm 're 've`. Each pass
/// compacts the text in place: it reads at `i`, writes at `w <= i`, and always looks back at
/// the unwritten input (`t[i - 1]`), as the reference does.
pub fn clean_spaces(t: &mut Vec<u8>) {
    if t.is_empty() {
        return;
    }
    // " ?", " !", " .", " ,"
    let mut w = 1;
    for i in 1..t.len() {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            w -= 1;
        }
        t[w] = x;
        w += 1;
    }
    t.truncate(w);
    // " ' " → "'". The space after the apostrophe is blanked (to NUL) and skipped, so it no
    // longer counts as a space for the next character.
    let n = t.len();
    let (mut w, mut i) = (1, 1);
    while i < n {
        let x = t[i];
        if x == b'\'' && i + 1 < n && t[i - 1] == b' ' && t[i + 1] == b' ' {
            w -= 1;
            t[i + 1] = 0;
            t[w] = x;
            w += 1;
            i += 2;
            continue;
        }
        t[w] = x;
        w += 1;
        i += 1;
    }
    t.truncate(w);
    // " 's", " 'm", " 're", " 've"
    let n = t.len();
    let mut w = 1;
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = t[i + 1];
            let x2 = if i + 2 < n { t[i + 2] } else { 0 };
            if matches!(x1, b's' | b'm') || matches!((x1, x2), (b'r', b'e') | (b'v', b'e')) {
                w -= 1;
            }
        }
        t[w] = x;
        w += 1;
    }
    t.truncate(w);
}

/// Turns tokens into text as they arrive. A token that ends inside a multi-byte character
/// leaves those bytes pending until the character is complete; bytes that can never form a
/// character come out as U+FFFD. Every string returned is valid UTF-8 on its own, and the
/// concatenation of all of them equals the lossy UTF-8 decoding of all the bytes.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Adds a token's bytes; returns the text that is now complete (possibly empty).
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    // The prefix is valid UTF-8 by the error's own account.
                    out.push_str(std::str::from_utf8(&rest[..good]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: keep it for the next token.
                        None => {
                            rest = &rest[good..];
                            break;
                        }
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            rest = &rest[good + bad..];
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let start = self.pending.len() - keep;
        self.pending.drain(..start);
        out
    }

    /// Bytes held back, waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Ends the stream: whatever is still pending can no longer complete and comes out as
    /// U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = if self.pending.is_empty() {
            String::new()
        } else {
            String::from_utf8_lossy(&self.pending).into_owned()
        };
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_holds_split_characters() {
        let mut d = StreamDecoder::new();
        let llama = "🦙".as_bytes(); // 4 bytes
        assert_eq!(d.push_bytes(b"a"), "a");
        assert_eq!(d.push_bytes(&llama[..1]), "");
        assert_eq!(d.push_bytes(&llama[1..3]), "");
        assert_eq!(d.pending().len(), 3);
        assert_eq!(d.push_bytes(&[llama[3], b'!']), "🦙!");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn stream_replaces_invalid_bytes() {
        let mut d = StreamDecoder::new();
        // A lone continuation byte, then a lead byte followed by ASCII.
        assert_eq!(d.push_bytes(&[0x80, b'x']), "\u{FFFD}x");
        assert_eq!(d.push_bytes(&[0xE2]), "");
        assert_eq!(d.push_bytes(b"y"), "\u{FFFD}y");
        // Left incomplete at the end.
        assert_eq!(d.push_bytes(&[0xF0, 0x9F]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }

    #[test]
    fn stream_matches_lossy_decoding_for_every_split() {
        let text = "héllo 🦙 wörld €";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            let mut d = StreamDecoder::new();
            let mut s = d.push_bytes(&bytes[..cut]);
            s += &d.push_bytes(&bytes[cut..]);
            s += &d.finish();
            assert_eq!(s, text, "cut at {cut}");
        }
    }

    #[test]
    fn cleaning_spaces() {
        let mut t = b"Hello , world ! It 's a ' quote ' and we 're here .".to_vec();
        clean_spaces(&mut t);
        assert_eq!(
            String::from_utf8(t).unwrap(),
            "Hello, world! It's a'quote'and we're here."
        );
    }

    #[test]
    fn byte_tokens() {
        assert_eq!(byte_token_value("<0x0A>"), Some(10));
        assert_eq!(byte_token_value("<0xFF>"), Some(255));
        assert_eq!(byte_token_value("<0x>"), None);
        assert_eq!(byte_token_value("<0xZZ>"), None);
    }
}
