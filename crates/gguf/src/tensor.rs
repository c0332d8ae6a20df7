//! Tensor descriptors as stored in a GGUF header.

use formats::GgmlType;

/// ggml's limit on tensor dimensions (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// One tensor of a GGUF file. Validated at open: the type is known, the row length is a whole
/// number of blocks, and `[file_offset, file_offset + n_bytes)` lies inside its file (unless the
/// file was opened header-only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous row length.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data relative to its file's data section, as stored in the header.
    pub offset: u64,
    /// Size of the data in bytes.
    pub n_bytes: u64,
    /// Which file of a split model holds the data (0 for single-file models).
    pub part: usize,
    /// Absolute byte offset of the data in its file.
    pub file_offset: u64,
}

impl TensorInfo {
    /// Number of elements (product of dims; 1 for zero dims). Cannot overflow: checked at open.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Shape in ggml order as `[a, b, ...]`.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        format!("[{}]", dims.join(", "))
    }
}
