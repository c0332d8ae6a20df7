//! Quantization of activation rows to the companion format of a weight type, done once per
//! matmul call so every dot product runs on packed integer blocks, as ggml does.
//!
//! Rounding follows what ggml computes at run time on x86:
//! - q8_0 / q8_1: `d = amax / 127`, values `round_half_even(x * (127 / amax))`. This is
//!   ggml's AVX2 `quantize_row_q8_0`/`_q8_1`; it is *not* bit-identical to the reference
//!   `quantize_row_q8_0_ref` (which uses `x * (1 / d)` and rounds halves away from zero):
//!   the two differ by one step on values that sit within a rounding error of a half-integer.
//!   The tests check exactly that against ggml's reference bytes.
//! - q8_K: identical to `quantize_row_q8_K_ref` (ggml uses the reference on x86):
//!   `iscale = -127 / max` where `max` is the first value of largest magnitude, values
//!   `min(127, round_half_even(iscale * x))`, `d = 1 / iscale`, plus the sums of each 16.
//! - f16: round to nearest even (F16C and `half` agree).

#[cfg(target_arch = "x86_64")]
mod avx2;
mod scalar;

use formats::GgmlType;

use crate::blocks::*;
use crate::error::{check_len, CpuError};
use crate::path::{Avx2, KernelPath};

/// The activation format a weight type's dot product consumes (`F32` means plain f32 rows
/// read directly, no conversion).
pub fn companion_type(weight: GgmlType) -> Option<GgmlType> {
    use GgmlType::*;
    Some(match weight {
        F32 | Bf16 => F32,
        F16 => F16,
        Q4_0 | Q5_0 | Q8_0 | Iq4Nl => Q8_0,
        Q4_1 | Q5_1 => Q8_1,
        Q2K | Q3K | Q4K | Q5K | Q6K => Q8K,
        _ => return None,
    })
}

/// Quantizes one row `x` into `dst` in format `ty` (q8_0, q8_1, q8_K or f16) with the kernels
/// of `path`, in ggml's block layout. `x.len()` must be a whole number of blocks and `dst`
/// exactly its packed size. All paths give identical bytes.
///
/// Rounding is ggml's x86 run-time rounding: q8_0/q8_1 scale by `127 / amax` and round ties
/// to even (ggml's AVX2 `quantize_row_q8_0`; the reference `quantize_row_q8_0_ref` instead
/// multiplies by `1 / d` and rounds ties away from zero, so the two differ by one step on
/// values within rounding error of a half-integer); q8_K is bit-identical to
/// `quantize_row_q8_K_ref` (ggml uses the reference on x86); f16 rounds to nearest even.
pub fn quantize_row(
    path: KernelPath,
    ty: GgmlType,
    x: &[f32],
    dst: &mut [u8],
) -> Result<(), CpuError> {
    const OP: &str = "quantize_row";
    let (block, bytes) = match ty {
        GgmlType::Q8_0 => (QK, Q8_0_BYTES),
        GgmlType::Q8_1 => (QK, Q8_1_BYTES),
        GgmlType::Q8K => (QK_K, Q8_K_BYTES),
        GgmlType::F16 => (1, 2),
        _ => return Err(CpuError::UnsupportedType { op: OP, ty }),
    };
    if !x.len().is_multiple_of(block) {
        return Err(CpuError::NotMultiple {
            op: OP,
            what: "row length",
            value: x.len(),
            multiple: block,
        });
    }
    check_len(OP, "destination bytes", dst.len(), x.len() / block * bytes)?;
    let path = KernelPath::resolve(Some(path))?;
    let simd = match path {
        KernelPath::Scalar => None,
        KernelPath::Avx2 | KernelPath::Avx512 => Avx2::new(),
    };
    quantize_row_unchecked(simd, ty, x, dst);
    Ok(())
}

/// [`quantize_row`] after validation; `ty` must be one of the four activation formats.
pub(crate) fn quantize_row_unchecked(simd: Option<Avx2>, ty: GgmlType, x: &[f32], dst: &mut [u8]) {
    match (ty, simd) {
        #[cfg(target_arch = "x86_64")]
        (GgmlType::Q8_0, Some(t)) => avx2::q8_0(t, x, dst),
        #[cfg(target_arch = "x86_64")]
        (GgmlType::Q8_1, Some(t)) => avx2::q8_1(t, x, dst),
        #[cfg(target_arch = "x86_64")]
        (GgmlType::Q8K, Some(t)) => avx2::q8_k(t, x, dst),
        #[cfg(target_arch = "x86_64")]
        (GgmlType::F16, Some(t)) => avx2::f16(t, x, dst),
        (GgmlType::Q8_0, _) => scalar::q8_0(x, dst),
        (GgmlType::Q8_1, _) => scalar::q8_1(x, dst),
        (GgmlType::Q8K, _) => scalar::q8_k(x, dst),
        (GgmlType::F16, _) => scalar::f16(x, dst),
        _ => unreachable!("quantize_row_unchecked: {ty} is not an activation format"),
    }
}

/// Writes the scale tail of a matmul activation row (see `matmul::act_row_bytes`) for the
/// q8_0 / q8_1 blocks in `packed`: every block's `d` as f32, then every block's `s` as f32
/// (q8_1: the stored f16 `s` widened, as ggml uses it; q8_0: `d · Σ q`, exact in f32).
/// Other formats have no tail.
pub(crate) fn append_f32_scales(ty: GgmlType, packed: &[u8], tail: &mut [u8]) {
    let bytes = match ty {
        GgmlType::Q8_0 => Q8_0_BYTES,
        GgmlType::Q8_1 => Q8_1_BYTES,
        _ => return,
    };
    let nb = packed.len() / bytes;
    let (d_out, s_out) = tail[..8 * nb].split_at_mut(4 * nb);
    let blocks = packed.chunks_exact(bytes);
    for ((b, d), s) in blocks
        .zip(d_out.chunks_exact_mut(4))
        .zip(s_out.chunks_exact_mut(4))
    {
        let dv = f16_at(b, 0);
        let sv = if ty == GgmlType::Q8_1 {
            f16_at(b, 2)
        } else {
            dv * b[2..].iter().map(|&q| q as i8 as i32).sum::<i32>() as f32
        };
        d.copy_from_slice(&dv.to_le_bytes());
        s.copy_from_slice(&sv.to_le_bytes());
    }
}
