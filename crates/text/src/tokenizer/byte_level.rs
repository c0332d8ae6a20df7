//! GPT-2's byte-level alphabet: every byte is written as one printable character, so that BPE
//! vocabularies can hold arbitrary bytes as text. Printable Latin-1 bytes stand for themselves;
//! the other 68 bytes (controls, space, DEL, NBSP, soft hyphen, ...) are mapped in order to
//! U+0100 onwards (space becomes 'Ġ', newline 'Ċ').

use std::sync::OnceLock;

fn stands_for_itself(b: u8) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

struct Tables {
    byte_to_char: [char; 256],
    /// Indexed by codepoint; all mapped codepoints are below 0x144.
    char_to_byte: [i16; 0x144],
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut byte_to_char = ['\0'; 256];
        let mut char_to_byte = [-1i16; 0x144];
        let mut next = 0x100u32;
        for b in 0..=255u8 {
            let cp = if stands_for_itself(b) {
                u32::from(b)
            } else {
                next += 1;
                next - 1
            };
            // All values are below 0x144, valid scalar values.
            byte_to_char[usize::from(b)] = char::from_u32(cp).unwrap_or('\u{FFFD}');
            char_to_byte[cp as usize] = i16::from(b);
        }
        Tables {
            byte_to_char,
            char_to_byte,
        }
    })
}

/// The character that stands for byte `b`.
#[inline]
pub fn byte_to_char(b: u8) -> char {
    tables().byte_to_char[usize::from(b)]
}

/// The byte that character `c` stands for, if it is one of the 256.
#[inline]
pub fn char_to_byte(c: char) -> Option<u8> {
    let t = tables();
    let i = c as usize;
    if i < t.char_to_byte.len() && t.char_to_byte[i] >= 0 {
        Some(t.char_to_byte[i] as u8)
    } else {
        None
    }
}

/// Appends the byte-level form of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        out.push(byte_to_char(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_characters() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'\t'), 'ĉ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        assert_eq!(byte_to_char(0x00), 'Ā');
    }

    #[test]
    fn round_trip_all_bytes() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(char_to_byte('€'), None);
        assert_eq!(char_to_byte(' '), None);
    }
}
