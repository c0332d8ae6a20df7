//! The scalar dequantizers and activation quantizers against ggml's own reference bytes
//! (`testdata/quant-ref`, produced by ggml's `from_float_ref` / `to_float`).

mod common;

use common::*;
use formats::GgmlType;

const TYPES: [(GgmlType, &str); 11] = [
    (GgmlType::Q4_0, "q4_0"),
    (GgmlType::Q4_1, "q4_1"),
    (GgmlType::Q5_0, "q5_0"),
    (GgmlType::Q5_1, "q5_1"),
    (GgmlType::Q8_0, "q8_0"),
    (GgmlType::Iq4Nl, "iq4_nl"),
    (GgmlType::Q2K, "q2_K"),
    (GgmlType::Q3K, "q3_K"),
    (GgmlType::Q4K, "q4_K"),
    (GgmlType::Q5K, "q5_K"),
    (GgmlType::Q6K, "q6_K"),
];

#[test]
fn dequantize_matches_ggml_bit_exactly() {
    let Some(dir) = quant_ref_dir() else { return };
    for (ty, name) in TYPES {
        let bytes = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
        let want = read_f32(&dir.join(format!("{name}.dequant.f32")));
        let got = dequant(ty, &bytes, want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{name}: value {i}: got {g}, ggml {w}"
            );
        }
    }
}

/// Our q8_0 quantizer is ggml's x86 run-time one (`x * (127 / amax)`, ties to even). The
/// reference bytes come from `quantize_row_q8_0_ref` (`x * (1 / d)`, ties away from zero):
/// scales must match exactly, quants may differ by one step only where the scaled value is
/// within rounding error of a half-integer.
#[test]
fn q8_0_activation_quantizer_matches_ggml_reference_up_to_ties() {
    let Some(dir) = quant_ref_dir() else { return };
    let input = read_f32(&dir.join("input.f32"));
    let want = std::fs::read(dir.join("q8_0.bin")).unwrap();
    for path in available_paths() {
        let mut got = vec![0u8; want.len()];
        cpu::quantize_row(path, GgmlType::Q8_0, &input, &mut got).unwrap();
        let mut near_ties = 0;
        for (b, (g, w)) in got.chunks_exact(34).zip(want.chunks_exact(34)).enumerate() {
            assert_eq!(g[0..2], w[0..2], "{path}: block {b} scale");
            let x = &input[32 * b..32 * b + 32];
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            for j in 0..32 {
                let (gq, wq) = (g[2 + j] as i8 as i32, w[2 + j] as i8 as i32);
                if gq != wq {
                    let scaled = x[j] as f64 * 127.0 / amax as f64;
                    let frac = scaled.abs().fract();
                    assert!(
                        (gq - wq).abs() == 1 && (frac - 0.5).abs() < 1e-5,
                        "{path}: block {b} value {j}: got {gq}, ggml ref {wq}, scaled {scaled}"
                    );
                    near_ties += 1;
                }
            }
        }
        eprintln!("{path}: q8_0 differs from the _ref quantizer on {near_ties} near-tie values");
    }
}
