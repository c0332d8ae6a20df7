//! Pre-tokenizers: split text into the words that BPE then merges inside, following the
//! regular expressions the Hugging Face tokenizers (and llama.cpp, per `tokenizer.ggml.pre`)
//! use. No regex engine: each pattern is written out by hand, which is exact (the patterns need
//! look-ahead that the `regex` crate lacks) and fast.
//!
//! A pre-tokenizer is a list of stages. Each stage splits every piece the previous stage made:
//! the first stage sees the whole text. Stages come in two kinds:
//! - whole-pattern splitters (GPT-2, Llama 3, Qwen 2, Qwen 3.5, newline runs), where every
//!   character ends up in some match, and
//! - match stages, which behave like a regex iterator: matches and the gaps between them both
//!   become pieces.
//!
//! Character classes are Unicode general categories (`\p{L}` letters, `\p{N}` numbers, `\p{P}`
//! punctuation, `\p{M}` marks) and `\s` is `White_Space`. Positions are byte offsets into the
//! text, always on character boundaries; a piece is a half-open byte range.

use super::unicode::{self, LETTER, MARK, NUMBER, PUNCT, WHITESPACE};

/// Set on every flag value that belongs to a character inside the piece being split, so that
/// "past the end" (0) differs from an unassigned codepoint (which has no class bit).
const PRESENT: u16 = 0x100;
const WS: u16 = WHITESPACE as u16;
const L: u16 = LETTER as u16;
const N: u16 = NUMBER as u16;
const M: u16 = MARK as u16;

/// A character class tested by a match stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `\p{L}`
    Letter,
    /// `\p{P}`
    Punct,
    /// DeepSeek LLM's explicit list of letter ranges (Latin, Greek, Cyrillic, Armenian, ...).
    DeepseekLetters,
    /// DeepSeek LLM's ASCII and full-width punctuation ranges.
    DeepseekPunct,
    /// CJK ideographs, the blocks below them from U+0800, and Hangul syllables.
    Cjk,
}

/// One pattern of a match stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// `[\p{P}$+<=>^~|]+`, with the backtick too when `backtick` (Falcon).
    PunctRun { backtick: bool },
    /// `\p{N}+`
    Numbers,
    /// `\p{N}`
    Number,
    /// `[0-9][0-9][0-9]`
    ThreeAsciiDigits,
    /// `[\r\n]`
    CrOrLf,
    /// `\s?X+`
    SpaceThenRun(Class),
    /// `X+`
    Run(Class),
    /// `\s+$` (whitespace that ends the piece)
    TrailingSpace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3,
    /// As [`Stage::Llama3`] with single digits: `\p{N}` instead of `\p{N}{1,3}`.
    Qwen2,
    /// As [`Stage::Qwen2`] with combining marks inside words:
    /// `[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+` and ` ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*`.
    Qwen35,
    /// `[^\n]+|[\n]+`
    NewlineRuns,
    Match(Matcher),
}

/// The stages for a `tokenizer.ggml.pre` family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreTokenizer {
    stages: Vec<Stage>,
}

impl PreTokenizer {
    pub fn new(stages: Vec<Stage>) -> PreTokenizer {
        PreTokenizer { stages }
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Calls `emit(start, end)` for each word of `text[start..end]`, in order; the words cover
    /// the range exactly.
    pub fn split(&self, text: &str, start: usize, end: usize, emit: &mut dyn FnMut(usize, usize)) {
        run_stages(&self.stages, text.as_bytes(), start, end, emit);
    }

    /// The words of `text`, as string slices (for tests and tools).
    pub fn words<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut out = Vec::new();
        self.split(text, 0, text.len(), &mut |a, b| out.push(&text[a..b]));
        out
    }
}

fn run_stages(
    stages: &[Stage],
    b: &[u8],
    start: usize,
    end: usize,
    emit: &mut dyn FnMut(usize, usize),
) {
    match stages.split_first() {
        None => emit(start, end),
        Some((stage, [])) => apply(*stage, b, start, end, emit),
        Some((stage, rest)) => apply(*stage, b, start, end, &mut |s, e| {
            run_stages(rest, b, s, e, emit)
        }),
    }
}

fn apply(stage: Stage, b: &[u8], start: usize, end: usize, emit: &mut dyn FnMut(usize, usize)) {
    match stage {
        Stage::Gpt2 => split_gpt2(b, start, end, emit),
        Stage::Llama3 => split_llama3_like(b, start, end, 3, false, emit),
        Stage::Qwen2 => split_llama3_like(b, start, end, 1, false, emit),
        Stage::Qwen35 => split_llama3_like(b, start, end, 1, true, emit),
        Stage::NewlineRuns => split_newline_runs(b, start, end, emit),
        Stage::Match(m) => split_matches(m, b, start, end, emit),
    }
}

// ---------------------------------------------------------------------------------------------
// Character access. The bytes come from a `&str`, so they are valid UTF-8.

#[inline]
fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// The character starting at `i` and its length in bytes.
#[inline]
fn decode(b: &[u8], i: usize) -> (char, usize) {
    let b0 = b[i];
    if b0 < 0x80 {
        return (char::from(b0), 1);
    }
    let n = utf8_len(b0);
    let mut cp = u32::from(b0) & (0x7F >> n);
    for k in 1..n {
        cp = (cp << 6) | (u32::from(b.get(i + k).copied().unwrap_or(0x80)) & 0x3F);
    }
    (char::from_u32(cp).unwrap_or('\u{FFFD}'), n)
}

/// Flags of the character at `i`, or 0 past `end`.
#[inline]
fn flags_at(b: &[u8], i: usize, end: usize) -> u16 {
    if i >= end {
        0
    } else {
        u16::from(unicode::flags(decode(b, i).0)) | PRESENT
    }
}

#[inline]
fn byte_at(b: &[u8], i: usize, end: usize) -> Option<u8> {
    if i < end {
        Some(b[i])
    } else {
        None
    }
}

/// Length (1 + 1 or 1 + 2 bytes) of the contraction `'s 't 'm 'd 're 've 'll` starting with
/// the apostrophe at `i`, if there is one. `fold_case` accepts upper-case letters too (the
/// patterns written `(?i:...)`). Only ASCII letters can match: no other character lower-cases
/// to one of these letters.
fn contraction_len(b: &[u8], i: usize, end: usize, fold_case: bool) -> Option<usize> {
    let fold = |c: Option<u8>| c.map(|c| if fold_case { c.to_ascii_lowercase() } else { c });
    let c1 = fold(byte_at(b, i + 1, end))?;
    if matches!(c1, b's' | b't' | b'm' | b'd') {
        return Some(2);
    }
    let c2 = fold(byte_at(b, i + 2, end))?;
    match (c1, c2) {
        (b'r', b'e') | (b'v', b'e') | (b'l', b'l') => Some(3),
        _ => None,
    }
}

/// End of the run of characters from `i` whose flags satisfy `keep`.
#[inline]
fn run_end(b: &[u8], mut i: usize, end: usize, keep: impl Fn(u16) -> bool) -> usize {
    while i < end {
        let (c, n) = decode(b, i);
        if !keep(u16::from(unicode::flags(c)) | PRESENT) {
            break;
        }
        i += n;
    }
    i
}

/// The whitespace run at `i`: (end, start of its last character, end of its last CR or LF,
/// number of characters).
fn whitespace_run(b: &[u8], i: usize, end: usize) -> (usize, usize, Option<usize>, usize) {
    let (mut p, mut last, mut last_crlf, mut count) = (i, i, None, 0);
    while p < end {
        let (c, n) = decode(b, p);
        if !unicode::is_whitespace(c) {
            break;
        }
        if c == '\r' || c == '\n' {
            last_crlf = Some(p + n);
        }
        last = p;
        p += n;
        count += 1;
    }
    (p, last, last_crlf, count)
}

// ---------------------------------------------------------------------------------------------
// Whole-pattern splitters.

fn split_gpt2(b: &[u8], start: usize, end: usize, emit: &mut dyn FnMut(usize, usize)) {
    let mut pos = start;
    while pos < end {
        let (c, clen) = decode(b, pos);
        if c == '\'' {
            if let Some(n) = contraction_len(b, pos, end, false) {
                emit(pos, pos + n);
                pos += n;
                continue;
            }
        }
        // The optional leading space of ` ?\p{L}+`, ` ?\p{N}+` and ` ?[^\s\p{L}\p{N}]+`.
        let (body, f) = if c == ' ' {
            (pos + 1, flags_at(b, pos + 1, end))
        } else {
            (pos, u16::from(unicode::flags(c)) | PRESENT)
        };
        let e = if f & L != 0 {
            run_end(b, body, end, |f| f & L != 0)
        } else if f & N != 0 {
            run_end(b, body, end, |f| f & N != 0)
        } else if f & (WS | L | N) == 0 && f & PRESENT != 0 {
            run_end(b, body, end, |f| f & (WS | L | N) == 0)
        } else {
            let (ws_end, last, _, count) = whitespace_run(b, pos, end);
            if count > 1 && ws_end < end {
                // `\s+(?!\S)`: leave the last space to start the next word.
                last
            } else if count > 0 {
                ws_end
            } else {
                pos + clen
            }
        };
        emit(pos, e);
        pos = e;
    }
}

/// Llama 3 (`digit_group` 3), Qwen 2 (1) and Qwen 3.5 (1, `marks`).
fn split_llama3_like(
    b: &[u8],
    start: usize,
    end: usize,
    digit_group: usize,
    marks: bool,
    emit: &mut dyn FnMut(usize, usize),
) {
    let word = if marks { L | M } else { L };
    let mut pos = start;
    while pos < end {
        let (c, clen) = decode(b, pos);
        let f = u16::from(unicode::flags(c)) | PRESENT;
        if c == '\'' {
            if let Some(n) = contraction_len(b, pos, end, true) {
                emit(pos, pos + n);
                pos += n;
                continue;
            }
        }
        // `[^\r\n\p{L}\p{N}]?\p{L}+`: a letter, or one other character followed by a letter.
        if !(c == '\r' || c == '\n' || f & N != 0)
            && (f & word != 0 || flags_at(b, pos + clen, end) & word != 0)
        {
            let e = run_end(b, pos + clen, end, |f| f & word != 0);
            emit(pos, e);
            pos = e;
            continue;
        }
        // `\p{N}{1,3}` or `\p{N}`: digits in groups, each group its own word.
        if f & N != 0 {
            let mut in_group = 0;
            let mut group_start = pos;
            while pos < end {
                let (c, n) = decode(b, pos);
                if unicode::flags(c) & NUMBER == 0 {
                    break;
                }
                pos += n;
                in_group += 1;
                if in_group == digit_group {
                    emit(group_start, pos);
                    group_start = pos;
                    in_group = 0;
                }
            }
            if group_start < pos {
                emit(group_start, pos);
            }
            continue;
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let other = WS | N | word;
        let (body, f2) = if c == ' ' {
            (pos + 1, flags_at(b, pos + 1, end))
        } else {
            (pos, f)
        };
        if f2 & other == 0 {
            let mut e = run_end(b, body, end, |f| f & other == 0);
            while matches!(byte_at(b, e, end), Some(b'\r' | b'\n')) {
                e += 1;
            }
            emit(pos, e);
            pos = e;
            continue;
        }
        // `\s*[\r\n]+`, then `\s+(?!\S)`, then `\s+`.
        let (ws_end, last, last_crlf, count) = whitespace_run(b, pos, end);
        let e = if let Some(e) = last_crlf {
            e
        } else if count > 1 && ws_end < end {
            last
        } else if count > 0 {
            ws_end
        } else {
            pos + clen
        };
        emit(pos, e);
        pos = e;
    }
}

fn split_newline_runs(b: &[u8], start: usize, end: usize, emit: &mut dyn FnMut(usize, usize)) {
    let mut pos = start;
    while pos < end {
        let newline = b[pos] == b'\n';
        let mut e = pos + 1;
        while e < end && (b[e] == b'\n') == newline {
            e += 1;
        }
        emit(pos, e);
        pos = e;
    }
}

// ---------------------------------------------------------------------------------------------
// Match stages: leftmost matches, each greedy, with the gaps between them kept as pieces.

fn split_matches(
    m: Matcher,
    b: &[u8],
    start: usize,
    end: usize,
    emit: &mut dyn FnMut(usize, usize),
) {
    // One loop per pattern (and class), so the pattern is chosen once per piece, not once per
    // character.
    match m {
        Matcher::PunctRun { backtick } => {
            let member = move |c: char| {
                unicode::flags(c) & PUNCT != 0
                    || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
                    || (backtick && c == '`')
            };
            scan(b, start, end, emit, |b, pos, end| {
                run_at(b, pos, end, member)
            })
        }
        Matcher::Numbers => scan(b, start, end, emit, |b, pos, end| {
            // Fast path: an ASCII byte other than a digit starts no match.
            if b[pos] < 0x80 && !b[pos].is_ascii_digit() {
                return Err(pos + 1);
            }
            run_at(b, pos, end, |c| unicode::flags(c) & NUMBER != 0)
        }),
        Matcher::Number => scan(b, start, end, emit, |b, pos, _| {
            let c0 = b[pos];
            if c0 < 0x80 {
                return if c0.is_ascii_digit() {
                    Ok(pos + 1)
                } else {
                    Err(pos + 1)
                };
            }
            let (c, n) = decode(b, pos);
            if unicode::flags(c) & NUMBER != 0 {
                Ok(pos + n)
            } else {
                Err(pos + n)
            }
        }),
        Matcher::ThreeAsciiDigits => scan(b, start, end, emit, |b, pos, end| {
            if pos + 3 <= end && b[pos..pos + 3].iter().all(u8::is_ascii_digit) {
                Ok(pos + 3)
            } else {
                Err(pos + utf8_len(b[pos]))
            }
        }),
        Matcher::CrOrLf => scan(b, start, end, emit, |b, pos, _| match b[pos] {
            b'\r' | b'\n' => Ok(pos + 1),
            c => Err(pos + utf8_len(c)),
        }),
        Matcher::SpaceThenRun(class) => split_class(class, true, b, start, end, emit),
        Matcher::Run(class) => split_class(class, false, b, start, end, emit),
        Matcher::TrailingSpace => scan(b, start, end, emit, |b, pos, end| {
            let (c, n) = decode(b, pos);
            if !unicode::is_whitespace(c) {
                return Err(pos + n);
            }
            let (ws_end, _, _, _) = whitespace_run(b, pos, end);
            if ws_end == end {
                Ok(end)
            } else {
                // No match can start inside this run either: it ends before the piece does.
                Err(ws_end)
            }
        }),
    }
}

/// The regex-iterator loop: leftmost matches, with the gaps between them kept as pieces.
#[inline]
fn scan(
    b: &[u8],
    start: usize,
    end: usize,
    emit: &mut dyn FnMut(usize, usize),
    matcher: impl Fn(&[u8], usize, usize) -> Result<usize, usize>,
) {
    let (mut pos, mut gap) = (start, start);
    while pos < end {
        match matcher(b, pos, end) {
            Ok(e) => {
                if gap < pos {
                    emit(gap, pos);
                }
                emit(pos, e);
                pos = e;
                gap = e;
            }
            Err(next) => pos = next,
        }
    }
    if gap < end {
        emit(gap, end);
    }
}

/// End of the run of `member` characters from `i`.
#[inline]
fn member_run_end(b: &[u8], mut i: usize, end: usize, member: impl Fn(char) -> bool) -> usize {
    while i < end {
        let (c, n) = decode(b, i);
        if !member(c) {
            break;
        }
        i += n;
    }
    i
}

/// `X+` at `pos`.
#[inline]
fn run_at(b: &[u8], pos: usize, end: usize, member: impl Fn(char) -> bool) -> Result<usize, usize> {
    let e = member_run_end(b, pos, end, &member);
    if e > pos {
        Ok(e)
    } else {
        Err(pos + utf8_len(b[pos]))
    }
}

/// `\s?X+` at `pos`. No class holds a whitespace character, so a leading space either starts a
/// match together with the run after it or no match at all.
#[inline]
fn space_then_run_at(
    b: &[u8],
    pos: usize,
    end: usize,
    member: impl Fn(char) -> bool,
) -> Result<usize, usize> {
    let (c, n) = decode(b, pos);
    let next = pos + n;
    if unicode::is_whitespace(c) {
        if next < end && member(decode(b, next).0) {
            Ok(member_run_end(b, next, end, &member))
        } else {
            Err(next)
        }
    } else if member(c) {
        Ok(member_run_end(b, next, end, &member))
    } else {
        Err(next)
    }
}

fn split_class(
    class: Class,
    space_first: bool,
    b: &[u8],
    start: usize,
    end: usize,
    emit: &mut dyn FnMut(usize, usize),
) {
    fn go(
        space_first: bool,
        b: &[u8],
        start: usize,
        end: usize,
        emit: &mut dyn FnMut(usize, usize),
        member: impl Fn(char) -> bool + Copy,
    ) {
        if space_first {
            scan(b, start, end, emit, |b, pos, end| {
                space_then_run_at(b, pos, end, member)
            })
        } else {
            scan(b, start, end, emit, |b, pos, end| {
                run_at(b, pos, end, member)
            })
        }
    }
    match class {
        Class::Letter => go(space_first, b, start, end, emit, |c| {
            unicode::flags(c) & LETTER != 0
        }),
        Class::Punct => go(space_first, b, start, end, emit, |c| {
            unicode::flags(c) & PUNCT != 0
        }),
        Class::DeepseekLetters => go(space_first, b, start, end, emit, |c| {
            if c.is_ascii() {
                c.is_ascii_alphabetic()
            } else {
                in_ranges(literal_cp(c), &DEEPSEEK_LETTERS)
            }
        }),
        Class::DeepseekPunct => go(space_first, b, start, end, emit, |c| {
            in_ranges(literal_cp(c), &DEEPSEEK_PUNCT)
        }),
        Class::Cjk => go(space_first, b, start, end, emit, |c| {
            in_ranges(literal_cp(c), &CJK)
        }),
    }
}

/// The codepoint a pattern written with literal ranges compares. llama.cpp runs those patterns
/// on text where every non-ASCII whitespace character was replaced by U+000B, so such a
/// character never falls in a literal range (U+3000 in DeepSeek's punctuation range included).
#[inline]
fn literal_cp(c: char) -> u32 {
    if !c.is_ascii() && unicode::is_whitespace(c) {
        0x0B
    } else {
        c as u32
    }
}

/// `ranges` sorted by start, non-overlapping.
fn in_ranges(cp: u32, ranges: &[(u32, u32)]) -> bool {
    let i = ranges.partition_point(|&(lo, _)| lo <= cp);
    i > 0 && cp <= ranges[i - 1].1
}

const DEEPSEEK_LETTERS: [(u32, u32); 87] = [
    (0x41, 0x5A),
    (0x61, 0x7A),
    (0xB5, 0xB5),
    (0xC0, 0xD6),
    (0xD8, 0xF6),
    (0xF8, 0x1BA),
    (0x1BC, 0x1BF),
    (0x1C4, 0x293),
    (0x295, 0x2AF),
    (0x370, 0x373),
    (0x376, 0x376),
    (0x377, 0x377),
    (0x37B, 0x37D),
    (0x37F, 0x37F),
    (0x386, 0x386),
    (0x388, 0x38A),
    (0x38C, 0x38C),
    (0x38E, 0x3A1),
    (0x3A3, 0x3F5),
    (0x3F7, 0x481),
    (0x48A, 0x52F),
    (0x531, 0x556),
    (0x10A0, 0x10C5),
    (0x13A0, 0x13F5),
    (0x13F8, 0x13FD),
    (0x1C90, 0x1CBA),
    (0x1CBD, 0x1CBF),
    (0x1D00, 0x1D2B),
    (0x1D6B, 0x1D77),
    (0x1D79, 0x1D9A),
    (0x1E00, 0x1F15),
    (0x1F18, 0x1F1D),
    (0x1F20, 0x1F45),
    (0x1F48, 0x1F4D),
    (0x1F50, 0x1F57),
    (0x1F59, 0x1F59),
    (0x1F5B, 0x1F5B),
    (0x1F5D, 0x1F5D),
    (0x1F5F, 0x1F7D),
    (0x1F80, 0x1FB4),
    (0x1FB6, 0x1FBC),
    (0x1FBE, 0x1FBE),
    (0x1FC2, 0x1FC4),
    (0x1FC6, 0x1FCC),
    (0x1FD0, 0x1FD3),
    (0x1FD6, 0x1FDB),
    (0x1FE0, 0x1FEC),
    (0x1FF2, 0x1FF4),
    (0x1FF6, 0x1FFC),
    (0x2102, 0x2102),
    (0x2107, 0x2107),
    (0x210A, 0x2113),
    (0x2115, 0x2115),
    (0x2119, 0x211D),
    (0x2124, 0x2124),
    (0x2126, 0x2126),
    (0x2128, 0x2128),
    (0x212A, 0x212D),
    (0x212F, 0x2134),
    (0x2139, 0x2139),
    (0x213C, 0x213F),
    (0x2145, 0x2149),
    (0x214E, 0x214E),
    (0x2183, 0x2183),
    (0x2184, 0x2184),
    (0x2C00, 0x2C7B),
    (0x2C7E, 0x2CE4),
    (0x2CEB, 0x2CEE),
    (0x2CF2, 0x2CF2),
    (0x2CF3, 0x2CF3),
    (0xA640, 0xA66D),
    (0xA680, 0xA69B),
    (0xA722, 0xA76F),
    (0xA771, 0xA787),
    (0xA78B, 0xA78E),
    (0xAB70, 0xABBF),
    (0xFB00, 0xFB06),
    (0xFB13, 0xFB17),
    (0xFF21, 0xFF3A),
    (0xFF41, 0xFF5A),
    (0x10400, 0x1044F),
    (0x104B0, 0x104D3),
    (0x104D8, 0x104FB),
    (0x10C80, 0x10CB2),
    (0x10CC0, 0x10CF2),
    (0x118A0, 0x118DF),
    (0x1E900, 0x1E943),
];

const DEEPSEEK_PUNCT: [(u32, u32); 6] = [
    (0x21, 0x2F),
    (0x3A, 0x7E),
    (0x2018, 0x201F),
    (0x3000, 0x3002),
    (0xFF01, 0xFF0F),
    (0xFF1A, 0xFF5E),
];

/// `[一-龥ࠀ-一가-퟿]`: the first two ranges meet at U+4E00, merged here.
const CJK: [(u32, u32); 2] = [(0x0800, 0x9FA5), (0xAC00, 0xD7FF)];

#[cfg(test)]
mod tests {
    use super::*;

    fn words(stages: &[Stage], text: &str) -> Vec<String> {
        PreTokenizer::new(stages.to_vec())
            .words(text)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn gpt2_pattern() {
        let w = words(&[Stage::Gpt2], "Hello world's   end\n\n  x 123 ?!  ");
        assert_eq!(
            w,
            ["Hello", " world", "'s", "  ", " end", "\n\n ", " x", " 123", " ?!", "  "]
        );
    }

    #[test]
    fn gpt2_contractions_are_case_sensitive() {
        assert_eq!(words(&[Stage::Gpt2], "I'M"), ["I", "'", "M"]);
        assert_eq!(words(&[Stage::Llama3], "I'M"), ["I", "'M"]);
    }

    #[test]
    fn llama3_pattern() {
        let w = words(&[Stage::Llama3], "Hello, 1234567 (x)\n\n  y\t z  ");
        assert_eq!(
            w,
            [
                "Hello", ",", " ", "123", "456", "7", " (", "x", ")\n\n", " ", " y", "\t", " z",
                "  "
            ]
        );
    }

    #[test]
    fn qwen2_single_digits_and_qwen35_marks() {
        assert_eq!(words(&[Stage::Qwen2], "a12"), ["a", "1", "2"]);
        // U+0301 COMBINING ACUTE ACCENT after a letter: Qwen 3.5 keeps it in the word.
        assert_eq!(words(&[Stage::Qwen2], "e\u{301}x"), ["e", "\u{301}x"]);
        assert_eq!(words(&[Stage::Qwen35], "e\u{301}x"), ["e\u{301}x"]);
    }

    #[test]
    fn match_stage_keeps_gaps() {
        let w = words(&[Stage::Match(Matcher::Number)], "ab12c");
        assert_eq!(w, ["ab", "1", "2", "c"]);
        let w = words(&[Stage::Match(Matcher::TrailingSpace)], "a  b  ");
        assert_eq!(w, ["a  b", "  "]);
    }

    #[test]
    fn stages_compose() {
        let w = words(&[Stage::Match(Matcher::Number), Stage::Gpt2], "year 2024!");
        assert_eq!(w, ["year", " ", "2", "0", "2", "4", "!"]);
    }

    #[test]
    fn range_tables_are_sorted_and_disjoint() {
        for t in [&DEEPSEEK_LETTERS[..], &DEEPSEEK_PUNCT, &CJK] {
            assert!(t.iter().all(|&(lo, hi)| lo <= hi));
            assert!(t.windows(2).all(|w| w[0].1 < w[1].0), "{t:?}");
        }
        assert!(in_ranges(0x4E00, &CJK) && in_ranges(0x9FA5, &CJK) && !in_ranges(0x9FA6, &CJK));
        assert!(in_ranges(0x41, &DEEPSEEK_LETTERS) && !in_ranges(0x40, &DEEPSEEK_LETTERS));
    }

    #[test]
    fn newline_runs() {
        assert_eq!(
            words(&[Stage::NewlineRuns], "a b\n\nc\n"),
            ["a b", "\n\n", "c", "\n"]
        );
    }
}
