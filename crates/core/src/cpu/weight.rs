//! CPU weights: the GGUF bytes in place (memory-mapped, zero copy).

use formats::GgmlType;

use crate::error::CoreError;
use crate::host_bytes::HostBytes;
use crate::weight_shape::WeightShape;

#[derive(Debug)]
pub struct CpuWeight {
    pub name: String,
    pub ty: GgmlType,
    /// ggml order: `dims[0]` is the contiguous row length.
    pub dims: Vec<u64>,
    /// Values per row (`dims[0]`).
    pub row_len: usize,
    /// Rows (product of the remaining dims).
    pub n_rows: usize,
    pub row_bytes: usize,
    pub data: HostBytes,
}

impl CpuWeight {
    pub fn new(
        name: &str,
        ty: GgmlType,
        dims: &[u64],
        data: HostBytes,
    ) -> Result<CpuWeight, CoreError> {
        let shape = WeightShape::of(name, ty, dims, data.len())?;
        Ok(CpuWeight {
            name: name.to_string(),
            ty,
            dims: dims.to_vec(),
            row_len: shape.row_len,
            n_rows: shape.n_rows,
            row_bytes: shape.row_bytes,
            data,
        })
    }

    pub fn row(&self, i: usize) -> &[u8] {
        &self.data.as_slice()[i * self.row_bytes..(i + 1) * self.row_bytes]
    }

    /// Dequantizes the whole tensor (small tensors only: norms, biases).
    pub fn to_f32(&self) -> Result<Vec<f32>, CoreError> {
        let mut out = vec![0.0f32; self.row_len * self.n_rows];
        formats::dequantize(self.ty, self.data.as_slice(), &mut out).map_err(|e| {
            CoreError::Weight {
                name: self.name.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(out)
    }
}

impl CpuWeight {
    /// The values of an `f32` tensor in place (norm weights, biases).
    pub fn f32_values(&self) -> Result<&[f32], CoreError> {
        let bytes = self.data.as_slice();
        if self.ty != GgmlType::F32 {
            return Err(CoreError::Weight {
                name: self.name.clone(),
                reason: format!("expected f32, found {}", self.ty.name()),
            });
        }
        if bytes.as_ptr().align_offset(std::mem::align_of::<f32>()) != 0 {
            return Err(CoreError::Weight {
                name: self.name.clone(),
                reason: "data is not 4-byte aligned".into(),
            });
        }
        // SAFETY: aligned (checked above), length is a whole number of f32s (checked in `new`:
        // an f32 tensor holds 4 bytes per value), and every bit pattern is a valid f32.
        Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) })
    }
}
