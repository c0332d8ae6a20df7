//! Bit-exact comparison against ggml's own reference quantizers and dequantizers
//! (`shared/testdata/quant-ref`, see its README): quantizing `input.f32` must give `TYPE.bin`
//! byte for byte, and dequantizing `TYPE.bin` must give `TYPE.dequant.f32` bit for bit.

mod common;

use std::path::Path;

use formats::blocks::{Block, BlockTurbo2, BlockTurbo3, BlockTurbo4};
use formats::{can_quantize, dequantize, quantize, GgmlType};

/// Every reference file and its type.
const REFERENCE_TYPES: &[(&str, GgmlType)] = &[
    ("q4_0", GgmlType::Q4_0),
    ("q4_1", GgmlType::Q4_1),
    ("q5_0", GgmlType::Q5_0),
    ("q5_1", GgmlType::Q5_1),
    ("q8_0", GgmlType::Q8_0),
    ("iq4_nl", GgmlType::Iq4Nl),
    ("q2_K", GgmlType::Q2K),
    ("q3_K", GgmlType::Q3K),
    ("q4_K", GgmlType::Q4K),
    ("q5_K", GgmlType::Q5K),
    ("q6_K", GgmlType::Q6K),
    ("turbo2", GgmlType::Turbo2),
    ("turbo3", GgmlType::Turbo3),
    ("turbo4", GgmlType::Turbo4),
];

const ROW: usize = 128;
/// The row whose turbo norm overflows f16 (reference: inf; turbine: 65504).
const SATURATED_ROW: usize = 51;

fn first_block_mismatch(ty: GgmlType, got: &[u8], want: &[u8]) -> Option<String> {
    assert_eq!(got.len(), want.len());
    let bb = ty.block_bytes();
    for (i, (g, w)) in got.chunks(bb).zip(want.chunks(bb)).enumerate() {
        if g != w {
            return Some(format!(
                "{ty}: block {i} (values {}..) differs\n  got  {g:02x?}\n  want {w:02x?}",
                i * ty.block_size()
            ));
        }
    }
    None
}

fn check_quantize(dir: &Path, name: &str, ty: GgmlType, input: &[f32]) -> Result<(), String> {
    let want = common::read(&dir.join(format!("{name}.bin")));
    let mut got = vec![0u8; want.len()];
    quantize(ty, input, &mut got).map_err(|e| e.to_string())?;
    if ty.is_turbo() {
        // Row 51 is the documented deviation: compare it on its own below.
        let row_bytes = ty.block_bytes(); // one 128-value block per row
        let r = SATURATED_ROW * row_bytes..(SATURATED_ROW + 1) * row_bytes;
        check_saturated_turbo_row(ty, &got[r.clone()], &want[r.clone()])?;
        got[r.clone()].copy_from_slice(&want[r]);
    }
    match first_block_mismatch(ty, &got, &want) {
        Some(msg) => Err(format!("quantize {msg}")),
        None => Ok(()),
    }
}

/// The reference stores an infinite norm; turbine must store 65504 and the same indices.
fn check_saturated_turbo_row(ty: GgmlType, got: &[u8], want: &[u8]) -> Result<(), String> {
    let norm = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
    if norm(want) != 0x7c00 {
        return Err(format!(
            "{ty}: reference row 51 norm is {:#06x}, expected inf",
            norm(want)
        ));
    }
    if norm(got) != 0x7bff {
        return Err(format!(
            "{ty}: row 51 norm {:#06x}, expected saturation to 65504",
            norm(got)
        ));
    }
    if got[2..] != want[2..] {
        return Err(format!("{ty}: row 51 indices differ from the reference"));
    }
    // Dequantizing turbine's block gives finite values.
    let mut out = vec![0.0f32; ROW];
    dequantize(ty, got, &mut out).map_err(|e| e.to_string())?;
    if !out.iter().all(|v| v.is_finite()) {
        return Err(format!(
            "{ty}: saturated row dequantizes to non-finite values"
        ));
    }
    Ok(())
}

fn check_dequantize(dir: &Path, name: &str, ty: GgmlType) -> Result<(), String> {
    let bytes = common::read(&dir.join(format!("{name}.bin")));
    let want = common::read_f32(&dir.join(format!("{name}.dequant.f32")));
    let mut got = vec![0.0f32; want.len()];
    dequantize(ty, &bytes, &mut got).map_err(|e| e.to_string())?;
    // Includes turbo row 51: decoding the reference's inf norm reproduces its inf values.
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if g.to_bits() != w.to_bits() {
            return Err(format!(
                "dequantize {ty}: value {i} is {g:e} ({:#010x}), want {w:e} ({:#010x})",
                g.to_bits(),
                w.to_bits()
            ));
        }
    }
    Ok(())
}

#[test]
fn dequantize_matches_ggml_reference_bit_for_bit() {
    let Some(dir) = common::quant_ref_dir() else {
        return;
    };
    let mut tested = Vec::new();
    let failures: Vec<String> = REFERENCE_TYPES
        .iter()
        .filter(|&&(_, ty)| formats::can_dequantize(ty))
        .filter_map(|&(name, ty)| {
            tested.push(name);
            check_dequantize(&dir, name, ty).err()
        })
        .collect();
    eprintln!("dequantize checked against ggml: {tested:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn quantize_matches_ggml_reference_bit_for_bit() {
    let Some(dir) = common::quant_ref_dir() else {
        return;
    };
    let input = common::read_f32(&dir.join("input.f32"));
    assert_eq!(input.len(), 64 * ROW);
    let mut tested = Vec::new();
    let failures: Vec<String> = REFERENCE_TYPES
        .iter()
        .filter(|&&(_, ty)| can_quantize(ty))
        .filter_map(|&(name, ty)| {
            tested.push(name);
            check_quantize(&dir, name, ty, &input).err()
        })
        .collect();
    eprintln!("quantize checked against ggml: {tested:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn saturated_turbo_row_is_finite_in_turbine() {
    let Some(dir) = common::quant_ref_dir() else {
        return;
    };
    let input = common::read_f32(&dir.join("input.f32"));
    let row: &[f32; ROW] = input[SATURATED_ROW * ROW..][..ROW].try_into().unwrap();
    let norms = [
        formats::turbo::quantize_block_turbo2(row).norm,
        formats::turbo::quantize_block_turbo3(row).norm,
        formats::turbo::quantize_block_turbo4(row).norm,
    ];
    for n in norms {
        assert_eq!(n, half::f16::MAX);
    }
    // The block types read the norm from the first two bytes, as the raw check above assumes.
    assert_eq!(
        BlockTurbo2::BYTES + BlockTurbo3::BYTES + BlockTurbo4::BYTES,
        34 + 50 + 66
    );
}
