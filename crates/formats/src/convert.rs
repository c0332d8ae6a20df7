//! `quantize` / `dequantize`: whole-buffer conversions dispatched on the element type.

use crate::blocks::Block;
use crate::error::{Direction, FormatError};
use crate::types::GgmlType;
use crate::{float, iquants, kquants, mxfp4, simple, ternary, turbo};

/// True if [`dequantize`] supports `ty`.
pub fn can_dequantize(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16
            | Bf16
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q8_1
            | Q2K
            | Q3K
            | Q4K
            | Q5K
            | Q6K
            | Q8K
            | Iq4Nl
            | Iq4Xs
            | Mxfp4
            | Tq1_0
            | Tq2_0
            | Turbo2
            | Turbo3
            | Turbo4
    )
}

/// True if [`quantize`] supports `ty`: every type [`dequantize`] reads except iq4_xs, whose
/// reference quantizer has no independent check here yet.
pub fn can_quantize(ty: GgmlType) -> bool {
    can_dequantize(ty) && ty != GgmlType::Iq4Xs
}

/// Checks that `values` f32s and `bytes` encoded bytes describe the same whole blocks.
fn check_lengths(
    ty: GgmlType,
    direction: Direction,
    values: usize,
    bytes: usize,
) -> Result<(), FormatError> {
    let block_size = ty.block_size();
    if !values.is_multiple_of(block_size) {
        return Err(FormatError::PartialBlock {
            ty,
            direction,
            values,
            block_size,
        });
    }
    let expected = (values / block_size).checked_mul(ty.block_bytes());
    if expected != Some(bytes) {
        return Err(FormatError::ByteLength {
            ty,
            direction,
            values,
            expected: expected.unwrap_or(usize::MAX),
            actual: bytes,
        });
    }
    Ok(())
}

/// Decodes `src` (whole blocks of `ty`) into `dst`; `dst.len()` values must be exactly what
/// `src` holds.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), FormatError> {
    use GgmlType::*;
    let direction = Direction::Dequantize;
    if !can_dequantize(ty) {
        return Err(FormatError::Unsupported { ty, direction });
    }
    check_lengths(ty, direction, dst.len(), src.len())?;
    match ty {
        F32 => float::dequantize_f32(src, dst),
        F16 => float::dequantize_f16(src, dst),
        Bf16 => float::dequantize_bf16(src, dst),
        Q4_0 => each_block(src, dst, simple::dequantize_block_q4_0),
        Q4_1 => each_block(src, dst, simple::dequantize_block_q4_1),
        Q5_0 => each_block(src, dst, simple::dequantize_block_q5_0),
        Q5_1 => each_block(src, dst, simple::dequantize_block_q5_1),
        Q8_0 => each_block(src, dst, simple::dequantize_block_q8_0),
        Q8_1 => each_block(src, dst, simple::dequantize_block_q8_1),
        Q2K => each_block(src, dst, kquants::dequantize_block_q2_k),
        Q3K => each_block(src, dst, kquants::dequantize_block_q3_k),
        Q4K => each_block(src, dst, kquants::dequantize_block_q4_k),
        Q5K => each_block(src, dst, kquants::dequantize_block_q5_k),
        Q6K => each_block(src, dst, kquants::dequantize_block_q6_k),
        Q8K => each_block(src, dst, kquants::dequantize_block_q8_k),
        Iq4Nl => each_block(src, dst, iquants::dequantize_block_iq4_nl),
        Iq4Xs => each_block(src, dst, iquants::dequantize_block_iq4_xs),
        Mxfp4 => each_block(src, dst, mxfp4::dequantize_block_mxfp4),
        Tq1_0 => each_block(src, dst, ternary::dequantize_block_tq1_0),
        Tq2_0 => each_block(src, dst, ternary::dequantize_block_tq2_0),
        Turbo2 => each_block(src, dst, turbo::dequantize_block_turbo2),
        Turbo3 => each_block(src, dst, turbo::dequantize_block_turbo3),
        Turbo4 => each_block(src, dst, turbo::dequantize_block_turbo4),
        _ => return Err(FormatError::Unsupported { ty, direction }),
    }
    Ok(())
}

/// Encodes `src` into `dst` (whole blocks of `ty`) with the reference quantizer.
pub fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), FormatError> {
    use GgmlType::*;
    let direction = Direction::Quantize;
    if !can_quantize(ty) {
        return Err(FormatError::Unsupported { ty, direction });
    }
    check_lengths(ty, direction, src.len(), dst.len())?;
    match ty {
        F32 => float::quantize_f32(src, dst),
        F16 => float::quantize_f16(src, dst),
        Bf16 => float::quantize_bf16(src, dst),
        Q4_0 => each_chunk(src, dst, simple::quantize_block_q4_0),
        Q4_1 => each_chunk(src, dst, simple::quantize_block_q4_1),
        Q5_0 => each_chunk(src, dst, simple::quantize_block_q5_0),
        Q5_1 => each_chunk(src, dst, simple::quantize_block_q5_1),
        Q8_0 => each_chunk(src, dst, simple::quantize_block_q8_0),
        Q8_1 => each_chunk(src, dst, simple::quantize_block_q8_1),
        Q2K => each_chunk(src, dst, kquants::quantize_block_q2_k),
        Q3K => each_chunk(src, dst, kquants::quantize_block_q3_k),
        Q4K => each_chunk(src, dst, kquants::quantize_block_q4_k),
        Q5K => each_chunk(src, dst, kquants::quantize_block_q5_k),
        Q6K => each_chunk(src, dst, kquants::quantize_block_q6_k),
        Q8K => each_chunk(src, dst, kquants::quantize_block_q8_k),
        Mxfp4 => each_chunk(src, dst, mxfp4::quantize_block_mxfp4),
        Tq1_0 => each_chunk(src, dst, ternary::quantize_block_tq1_0),
        Tq2_0 => each_chunk(src, dst, ternary::quantize_block_tq2_0),
        Iq4Nl => {
            // One quantizer for the whole buffer: it carries codes across all-zero blocks.
            let mut q = iquants::Iq4NlQuantizer::new();
            each_chunk(src, dst, |x| q.quantize_block(x))
        }
        Turbo2 => each_chunk(src, dst, turbo::quantize_block_turbo2),
        Turbo3 => each_chunk(src, dst, turbo::quantize_block_turbo3),
        Turbo4 => each_chunk(src, dst, turbo::quantize_block_turbo4),
        _ => return Err(FormatError::Unsupported { ty, direction }),
    }
    Ok(())
}

/// Runs a per-block decoder over lengths already checked by [`check_lengths`].
fn each_block<B: Block, const N: usize>(
    src: &[u8],
    dst: &mut [f32],
    decode: fn(&B, &mut [f32; N]),
) {
    debug_assert_eq!(N, B::VALUES);
    for (bytes, out) in src.chunks_exact(B::BYTES).zip(dst.chunks_exact_mut(N)) {
        let out: &mut [f32; N] = out.try_into().expect("chunks_exact_mut yields N values");
        decode(&B::read(bytes), out);
    }
}

/// Runs a per-block encoder over lengths already checked by [`check_lengths`].
fn each_chunk<B: Block, const N: usize>(
    src: &[f32],
    dst: &mut [u8],
    mut encode: impl FnMut(&[f32; N]) -> B,
) {
    debug_assert_eq!(N, B::VALUES);
    for (values, out) in src.chunks_exact(N).zip(dst.chunks_exact_mut(B::BYTES)) {
        let values: &[f32; N] = values.try_into().expect("chunks_exact yields N values");
        encode(values).write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_lengths_and_types_are_errors() {
        let mut out = [0.0f32; 32];
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0u8; 17], &mut out),
            Err(FormatError::ByteLength {
                expected: 18,
                actual: 17,
                ..
            })
        ));
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0u8; 18], &mut out[..31]),
            Err(FormatError::PartialBlock { .. })
        ));
        assert!(matches!(
            quantize(GgmlType::Iq2Xxs, &[0.0; 256], &mut [0u8; 66]),
            Err(FormatError::Unsupported { .. })
        ));
        let msg = dequantize(GgmlType::Q8_0, &[0u8; 3], &mut out)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "dequantize q8_0: 32 values need 34 bytes, got 3");
    }
}
