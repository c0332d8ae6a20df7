//! Codepoint classes as the pre-tokenizer rules see them (`\p{L}`, `\p{N}`, `\s`, ...), from
//! Unicode 15.1 tables (see `gen_unicode_tables.py`), plus the few per-codepoint helpers the
//! WordPiece normalizer needs.

use std::sync::OnceLock;

use super::unicode_tables::{CLASS_RUNS, NFD_BASE};

/// `\p{N}`
pub const NUMBER: u8 = 1 << 0;
/// `\p{L}`
pub const LETTER: u8 = 1 << 1;
/// `\p{Z}`
pub const SEPARATOR: u8 = 1 << 2;
/// `\p{M}`
pub const MARK: u8 = 1 << 3;
/// `\p{P}`
pub const PUNCT: u8 = 1 << 4;
/// `\p{S}`
pub const SYMBOL: u8 = 1 << 5;
/// `\p{C}` except unassigned codepoints (those have no class bit at all).
pub const CONTROL: u8 = 1 << 6;
/// Unicode `White_Space` (what `\s` matches).
pub const WHITESPACE: u8 = 1 << 7;

/// Class number in the generated table → flag bit. Class 0 is "unassigned" (no bit).
const CLASS_FLAG: [u8; 8] = [0, NUMBER, LETTER, SEPARATOR, MARK, PUNCT, SYMBOL, CONTROL];

/// The `White_Space` property: a short fixed list, so it is kept here rather than generated.
const WHITE_SPACE: [u32; 25] = [
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
    0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
];

fn class_from_runs(cp: u32) -> u8 {
    // Index of the last run starting at or before `cp`; the first run starts at 0.
    let i = CLASS_RUNS.partition_point(|&(start, _)| start <= cp);
    let class = CLASS_RUNS[i.saturating_sub(1)].1;
    CLASS_FLAG[usize::from(class & 7)]
}

/// Flags of every codepoint of the Basic Multilingual Plane, built once (64 KiB): text is
/// almost all BMP, and one load beats a binary search per character.
fn bmp_table() -> &'static [u8; 0x10000] {
    static TABLE: OnceLock<Box<[u8; 0x10000]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0u8; 0x10000]);
        for (i, w) in CLASS_RUNS.windows(2).enumerate() {
            let (start, class) = CLASS_RUNS[i];
            let end = w[1].0.min(0x10000);
            if start >= 0x10000 {
                break;
            }
            let f = CLASS_FLAG[usize::from(class & 7)];
            for slot in &mut t[start as usize..end as usize] {
                *slot = f;
            }
        }
        for &cp in &WHITE_SPACE {
            t[cp as usize] |= WHITESPACE;
        }
        t
    })
}

const C: u8 = CONTROL;
const CW: u8 = CONTROL | WHITESPACE;
const SW: u8 = SEPARATOR | WHITESPACE;
const P: u8 = PUNCT;
const S: u8 = SYMBOL;
const N: u8 = NUMBER;
const L: u8 = LETTER;

/// ASCII, written out so the commonest lookups touch neither the lazily built table nor its
/// lock (checked against the generated table in the tests).
#[rustfmt::skip]
const ASCII: [u8; 128] = [
    C, C, C, C, C, C, C, C, C, CW, CW, CW, CW, CW, C, C,
    C, C, C, C, C, C, C, C, C, C, C, C, C, C, C, C,
    SW, P, P, P, S, P, P, P, P, P, P, S, P, P, P, P,
    N, N, N, N, N, N, N, N, N, N, P, P, S, S, S, P,
    P, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,
    L, L, L, L, L, L, L, L, L, L, L, P, P, P, S, P,
    S, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,
    L, L, L, L, L, L, L, L, L, L, L, P, S, P, S, C,
];

/// Class flags of `c` (one class bit, or none for unassigned codepoints, plus [`WHITESPACE`]).
#[inline]
pub fn flags(c: char) -> u8 {
    let cp = c as u32;
    if cp < 0x80 {
        ASCII[cp as usize]
    } else if cp < 0x10000 {
        bmp_table()[cp as usize]
    } else {
        // No astral codepoint is White_Space.
        class_from_runs(cp)
    }
}

#[inline]
pub fn is_whitespace(c: char) -> bool {
    flags(c) & WHITESPACE != 0
}

/// First codepoint of the NFD decomposition of `c` (the base letter of an accented one).
pub fn nfd_base(c: char) -> char {
    let cp = c as u32;
    let i = NFD_BASE.partition_point(|&(first, _, _)| first <= cp);
    if i > 0 {
        let (first, last, base) = NFD_BASE[i - 1];
        if (first..=last).contains(&cp) {
            return char::from_u32(base).unwrap_or(c);
        }
    }
    c
}

/// Simple (one-to-one) lowercase mapping. Rust's full mapping only differs for U+0130, which
/// lowercases to "i̇"; its simple mapping is the first of those, 'i'.
pub fn to_lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_table_matches_generated_table() {
        for cp in 0..128u32 {
            assert_eq!(ASCII[cp as usize], bmp_table()[cp as usize], "U+{cp:04X}");
        }
    }

    #[test]
    fn ascii_classes() {
        assert_eq!(flags('a'), LETTER);
        assert_eq!(flags('Z'), LETTER);
        assert_eq!(flags('7'), NUMBER);
        assert_eq!(flags(' '), SEPARATOR | WHITESPACE);
        assert_eq!(flags('\n'), CONTROL | WHITESPACE);
        assert_eq!(flags('!'), PUNCT);
        assert_eq!(flags('$'), SYMBOL);
        assert_eq!(flags('`'), SYMBOL);
        assert_eq!(flags('\0'), CONTROL);
    }

    #[test]
    fn non_ascii_classes() {
        assert_eq!(flags('é'), LETTER);
        assert_eq!(flags('\u{0301}'), MARK);
        assert_eq!(flags('\u{00A0}'), SEPARATOR | WHITESPACE);
        assert_eq!(flags('\u{0085}'), CONTROL | WHITESPACE);
        assert_eq!(flags('\u{3000}'), SEPARATOR | WHITESPACE);
        assert_eq!(flags('½'), NUMBER);
        assert_eq!(flags('🦙'), SYMBOL);
        assert_eq!(flags('\u{E000}'), CONTROL); // private use
        assert_eq!(flags('\u{10FFFF}'), 0); // unassigned
                                            // Added in Unicode 15.1 (CJK Extension I) and 15.0: letters here, as in llama.cpp.
        assert_eq!(flags('\u{2EBF0}'), LETTER);
        assert_eq!(flags('\u{1E030}'), LETTER);
        // Added in Unicode 16.0: still unassigned at 15.1.
        assert_eq!(flags('\u{1C89}'), 0);
    }

    #[test]
    fn nfd_and_lower() {
        assert_eq!(nfd_base('é'), 'e');
        assert_eq!(nfd_base('Å'), 'A');
        assert_eq!(nfd_base('가'), '\u{1100}');
        assert_eq!(nfd_base('x'), 'x');
        assert_eq!(to_lower('É'), 'é');
        assert_eq!(to_lower('\u{0130}'), 'i');
    }
}
