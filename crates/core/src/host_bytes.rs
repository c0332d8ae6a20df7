//! Borrowed host bytes that keep their owner alive: how a memory-mapped GGUF tensor becomes a
//! CPU weight without a copy.

use std::any::Any;
use std::sync::Arc;

/// A byte slice inside something reference-counted (typically the memory-mapped GGUF file).
///
/// The owner is immutable behind its `Arc` and lives as long as this value, so the slice stays
/// valid: a mapped file never moves, and data inside the `Arc` allocation never moves either.
#[derive(Clone)]
pub struct HostBytes {
    _owner: Arc<dyn Any + Send + Sync>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes are immutable and owned by a `Send + Sync` owner kept alive by `_owner`.
unsafe impl Send for HostBytes {}
// SAFETY: as above; shared access to immutable bytes is thread safe.
unsafe impl Sync for HostBytes {}

impl HostBytes {
    /// Borrows `select(&owner)` for as long as the returned value lives.
    pub fn new<O: Any + Send + Sync>(owner: Arc<O>, select: impl FnOnce(&O) -> &[u8]) -> HostBytes {
        let (ptr, len) = {
            let s = select(&owner);
            (s.as_ptr(), s.len())
        };
        HostBytes {
            _owner: owner,
            ptr,
            len,
        }
    }

    /// Owned bytes (tests, small synthesized tensors).
    pub fn from_vec(v: Vec<u8>) -> HostBytes {
        HostBytes::new(Arc::new(v), |v| v.as_slice())
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr`/`len` came from a live slice of the owner, which `_owner` keeps alive
        // and which is never mutated (see the type's documentation).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for HostBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostBytes({} bytes)", self.len)
    }
}
