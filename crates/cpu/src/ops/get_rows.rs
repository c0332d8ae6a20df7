//! Embedding lookup: rows of a weight matrix of any type, dequantized to f32.

use crate::error::{check_len, CpuError};
use crate::matmul::WeightView;

/// `out[i] = dequantize(w[ids[i]])` (`out` is `ids.len() × w.cols`). Any type
/// `formats::dequantize` reads works.
pub fn get_rows(w: &WeightView<'_>, ids: &[u32], out: &mut [f32]) -> Result<(), CpuError> {
    const OP: &str = "get_rows";
    let bs = w.ty.block_size();
    if !w.cols.is_multiple_of(bs) {
        return Err(CpuError::NotMultiple {
            op: OP,
            what: "row length",
            value: w.cols,
            multiple: bs,
        });
    }
    let row_bytes = w.cols / bs * w.ty.block_bytes();
    check_len(
        OP,
        "weight bytes",
        w.bytes.len(),
        row_bytes.saturating_mul(w.rows),
    )?;
    check_len(
        OP,
        "output length",
        out.len(),
        ids.len().saturating_mul(w.cols),
    )?;
    if w.cols == 0 {
        return Ok(());
    }
    for (&id, dst) in ids.iter().zip(out.chunks_exact_mut(w.cols)) {
        let r = id as usize;
        if r >= w.rows {
            return Err(CpuError::BadArgument {
                op: OP,
                what: format!("row id {id} out of range (matrix has {} rows)", w.rows),
            });
        }
        formats::dequantize(w.ty, &w.bytes[r * row_bytes..(r + 1) * row_bytes], dst).map_err(
            |e| CpuError::BadArgument {
                op: OP,
                what: e.to_string(),
            },
        )?;
    }
    Ok(())
}
