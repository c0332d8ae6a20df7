//! A bounds-checked little-endian reader over a byte slice. Every read checks what is left
//! first, so a hostile file can make parsing fail but never read out of bounds.

use crate::error::{ErrorKind, GgufError};

pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    pub fn pos(&self) -> u64 {
        self.pos as u64
    }

    pub fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// `n` bytes, or a truncation error naming `what` (built only on failure).
    pub fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], GgufError> {
        let have = self.remaining();
        if n > have {
            return Err(GgufError::at(
                self.pos(),
                ErrorKind::Truncated {
                    what: what(),
                    need: n,
                    have,
                },
            ));
        }
        // n <= remaining <= usize::MAX, so the cast is lossless.
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    pub fn array<const N: usize>(
        &mut self,
        what: impl FnOnce() -> String,
    ) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u8(&mut self, what: impl FnOnce() -> String) -> Result<u8, GgufError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: u64 byte length, then UTF-8 bytes (no terminator).
    pub fn string(&mut self, what: impl Fn() -> String) -> Result<&'a str, GgufError> {
        let len = self.u64(|| format!("{} (length)", what()))?;
        let start = self.pos();
        let bytes = self.take(len, &what)?;
        std::str::from_utf8(bytes)
            .map_err(|_| GgufError::at(start, ErrorKind::InvalidUtf8 { what: what() }))
    }

    /// Rejects `count` elements of at least `min_size` bytes each if they cannot fit in what
    /// is left, so no allocation is ever sized by an unchecked count.
    /// `count_at` is where the count field itself starts (for the error message).
    pub fn check_count(
        &self,
        count: u64,
        min_size: u64,
        count_at: u64,
        what: impl FnOnce() -> String,
    ) -> Result<usize, GgufError> {
        let have = self.remaining();
        match count.checked_mul(min_size.max(1)) {
            Some(need) if need <= have => Ok(count as usize),
            _ => Err(GgufError::at(
                count_at,
                ErrorKind::CountTooLarge {
                    what: what(),
                    count,
                    have,
                },
            )),
        }
    }
}
