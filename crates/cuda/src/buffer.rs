//! Planned device buffers and resident weights.

use formats::GgmlType;
use turbine_core::CoreError;

use crate::device::DeviceAlloc;

/// One planned device allocation, exactly the planned size (zeroed).
pub struct CudaBuffer {
    pub(crate) name: String,
    pub(crate) mem: DeviceAlloc,
}

impl CudaBuffer {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bytes(&self) -> usize {
        self.mem.bytes()
    }

    /// Checks that the buffer holds `floats` f32 values and returns its address.
    pub(crate) fn f32_ptr(&self, floats: usize) -> Result<u64, CoreError> {
        let need = floats as u64 * 4;
        if need > self.mem.bytes() as u64 {
            return Err(CoreError::BufferTooSmall {
                name: self.name.clone(),
                have: self.mem.bytes() as u64,
                need,
            });
        }
        Ok(self.mem.ptr())
    }
}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBuffer({}, {} bytes)", self.name, self.bytes())
    }
}

/// A weight tensor in device memory, its bytes exactly as in the GGUF file.
pub struct CudaWeight {
    pub name: String,
    pub ty: GgmlType,
    /// ggml order: `dims[0]` is the contiguous row length.
    pub dims: Vec<u64>,
    pub row_len: usize,
    pub n_rows: usize,
    pub row_bytes: usize,
    pub(crate) mem: DeviceAlloc,
}

impl CudaWeight {
    pub(crate) fn ptr(&self) -> u64 {
        self.mem.ptr()
    }

    /// Checks that this is an f32 vector of `n` values (norm weights, biases, rope factors).
    pub(crate) fn f32_vector(&self, op: &str, n: usize) -> Result<u64, CoreError> {
        if self.ty != GgmlType::F32 {
            return Err(CoreError::Weight {
                name: self.name.clone(),
                reason: format!("{op} needs f32, found {}", self.ty.name()),
            });
        }
        let have = self.row_len * self.n_rows;
        if have != n {
            return Err(CoreError::Shape(format!(
                "{op}: {} has {have} values, expected {n}",
                self.name
            )));
        }
        Ok(self.mem.ptr())
    }
}

impl std::fmt::Debug for CudaWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaWeight({}, {} {:?})",
            self.name,
            self.ty.name(),
            self.dims
        )
    }
}

/// The kernel-name suffix of a weight type the matmul and get_rows kernels read.
pub fn weight_kernel_suffix(ty: GgmlType) -> Option<&'static str> {
    Some(match ty {
        GgmlType::F32 => "f32",
        GgmlType::F16 => "f16",
        GgmlType::Bf16 => "bf16",
        GgmlType::Q4_0 => "q4_0",
        GgmlType::Q4_1 => "q4_1",
        GgmlType::Q5_0 => "q5_0",
        GgmlType::Q5_1 => "q5_1",
        GgmlType::Q8_0 => "q8_0",
        GgmlType::Iq4Nl => "iq4_nl",
        GgmlType::Q4K => "q4_K",
        GgmlType::Q5K => "q5_K",
        GgmlType::Q6K => "q6_K",
        _ => return None,
    })
}

/// Weight types the CUDA matmul and get_rows read directly.
pub const WEIGHT_TYPES: [GgmlType; 12] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Iq4Nl,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// The kernel-name suffix of a KV cache type.
pub fn kv_kernel_suffix(ty: GgmlType) -> Option<&'static str> {
    Some(match ty {
        GgmlType::F32 => "f32",
        GgmlType::F16 => "f16",
        GgmlType::Bf16 => "bf16",
        GgmlType::Q8_0 => "q8_0",
        GgmlType::Q4_0 => "q4_0",
        GgmlType::Q4_1 => "q4_1",
        GgmlType::Q5_0 => "q5_0",
        GgmlType::Q5_1 => "q5_1",
        GgmlType::Iq4Nl => "iq4_nl",
        GgmlType::Turbo2 => "turbo2",
        GgmlType::Turbo3 => "turbo3",
        GgmlType::Turbo4 => "turbo4",
        _ => return None,
    })
}
