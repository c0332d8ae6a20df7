//! Host buffers: zeroed, 64-byte aligned (one cache line, any SIMD width), exactly the planned
//! size.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use crate::error::CoreError;

const ALIGN: usize = 64;

/// One planned host allocation.
pub struct CpuBuffer {
    name: String,
    ptr: NonNull<u8>,
    bytes: usize,
}

// SAFETY: the buffer owns its allocation exclusively; access goes through `&`/`&mut self`.
unsafe impl Send for CpuBuffer {}
// SAFETY: shared references only read.
unsafe impl Sync for CpuBuffer {}

impl CpuBuffer {
    pub fn new(name: &str, bytes: u64) -> Result<CpuBuffer, CoreError> {
        let fail = || CoreError::Alloc {
            name: name.to_string(),
            bytes,
            device: "CPU".to_string(),
        };
        let bytes_usize = usize::try_from(bytes).map_err(|_| fail())?;
        let ptr = if bytes_usize == 0 {
            NonNull::<u64>::dangling().cast::<u8>()
        } else {
            let layout = Layout::from_size_align(bytes_usize, ALIGN).map_err(|_| fail())?;
            // SAFETY: the layout has non-zero size.
            NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or_else(fail)?
        };
        Ok(CpuBuffer {
            name: name.to_string(),
            ptr,
            bytes: bytes_usize,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `ptr` points to `bytes` initialized (zeroed) bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.bytes) }
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.bytes) }
    }

    /// The whole floats of the buffer.
    pub fn f32(&self) -> &[f32] {
        // SAFETY: the pointer is 64-byte aligned (or dangling-but-aligned for length 0), every
        // bit pattern is a valid f32, and the length stays within the allocation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<f32>(), self.bytes / 4) }
    }

    pub fn f32_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `f32`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<f32>(), self.bytes / 4) }
    }

    /// The first `n` floats, or an error naming the buffer if it is smaller.
    pub fn f32_prefix(&self, n: usize) -> Result<&[f32], CoreError> {
        let have = self.bytes / 4;
        if n > have {
            return Err(self.too_small(n));
        }
        Ok(&self.f32()[..n])
    }

    pub fn f32_prefix_mut(&mut self, n: usize) -> Result<&mut [f32], CoreError> {
        let have = self.bytes / 4;
        if n > have {
            return Err(self.too_small(n));
        }
        Ok(&mut self.f32_mut()[..n])
    }

    fn too_small(&self, floats: usize) -> CoreError {
        CoreError::BufferTooSmall {
            name: self.name.clone(),
            have: self.bytes as u64,
            need: floats as u64 * 4,
        }
    }
}

impl Drop for CpuBuffer {
    fn drop(&mut self) {
        if self.bytes != 0 {
            // SAFETY: allocated in `new` with this exact layout.
            unsafe {
                dealloc(
                    self.ptr.as_ptr(),
                    Layout::from_size_align_unchecked(self.bytes, ALIGN),
                )
            };
        }
    }
}

impl std::fmt::Debug for CpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuBuffer({}, {} bytes)", self.name, self.bytes)
    }
}
