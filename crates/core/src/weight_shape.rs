//! The row geometry of a weight tensor, checked once for every backend's `load_weight`.

use formats::GgmlType;

use crate::error::CoreError;

/// Rows of a weight: `dims[0]` values each (whole blocks of its type), `n_rows` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightShape {
    pub row_len: usize,
    pub n_rows: usize,
    pub row_bytes: usize,
    /// Bytes of the whole tensor.
    pub total: u64,
}

impl WeightShape {
    /// Checks that `data_len` bytes hold a `ty` tensor of `dims` (ggml order) made of whole
    /// blocks per row; the error names the weight.
    pub fn of(
        name: &str,
        ty: GgmlType,
        dims: &[u64],
        data_len: usize,
    ) -> Result<WeightShape, CoreError> {
        let err = |reason: String| CoreError::Weight {
            name: name.to_string(),
            reason,
        };
        let row_len = *dims
            .first()
            .ok_or_else(|| err("has no dimensions".into()))?;
        let n_rows: u64 = dims[1..].iter().product();
        if row_len % ty.block_size() as u64 != 0 {
            return Err(err(format!(
                "row length {row_len} is not a multiple of the {} block size {}",
                ty.name(),
                ty.block_size()
            )));
        }
        let row_bytes = ty
            .bytes_for(row_len)
            .ok_or_else(|| err("row size overflows".into()))?;
        let total = row_bytes
            .checked_mul(n_rows)
            .ok_or_else(|| err("size overflows".into()))?;
        if total != data_len as u64 {
            return Err(err(format!(
                "{data_len} bytes of data for {dims:?} {} (expected {total})",
                ty.name()
            )));
        }
        let usize_of = |v: u64| usize::try_from(v).map_err(|_| err("size overflows".into()));
        Ok(WeightShape {
            row_len: usize_of(row_len)?,
            n_rows: usize_of(n_rows)?,
            row_bytes: usize_of(row_bytes)?,
            total,
        })
    }
}
