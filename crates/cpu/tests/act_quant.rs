//! Activation quantizers: every SIMD path bit-identical to the scalar path, and the rounding
//! rules the module documents (q8_0/q8_1 ties to even with 127/amax scaling; q8_K exactly
//! ggml's reference, including which extreme value sets the sign).

mod common;

use common::*;
use cpu::KernelPath;
use formats::GgmlType;

const FORMATS: [GgmlType; 4] = [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8K, GgmlType::F16];

fn quantize(path: KernelPath, ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.bytes_for(x.len() as u64).unwrap() as usize];
    cpu::quantize_row(path, ty, x, &mut out).unwrap();
    out
}

fn test_rows(rng: &mut Rng) -> Vec<Vec<f32>> {
    let mut rows = vec![
        vec![0.0; 512],
        (0..512).map(|i| (i as f32 - 255.5) * 0.5).collect(),
        (0..512)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect(),
        (0..512).map(|i| (i % 7) as f32 * 0.25 - 0.75).collect(),
    ];
    // Equal magnitudes of both signs: q8_K must take the first one's sign.
    let mut ties = rng.vec(512, 0.1);
    ties[3] = -2.0;
    ties[100] = 2.0;
    ties[300] = 2.0;
    ties[301] = -2.0;
    rows.push(ties);
    for scale in [1e-6, 1e-2, 1.0, 30.0, 1e4] {
        rows.push(rng.vec(512, scale));
    }
    rows
}

#[test]
fn simd_quantizers_are_bit_identical_to_scalar() {
    let mut rng = Rng::new(7);
    let rows = test_rows(&mut rng);
    for path in available_paths() {
        for ty in FORMATS {
            for (k, x) in rows.iter().enumerate() {
                for len in [256, 512] {
                    let want = quantize(KernelPath::Scalar, ty, &x[..len]);
                    let got = quantize(path, ty, &x[..len]);
                    assert_eq!(got, want, "{path} {ty} row {k} len {len}");
                }
            }
        }
        let odd = rng.vec(37, 1.0);
        assert_eq!(
            quantize(path, GgmlType::F16, &odd),
            quantize(KernelPath::Scalar, GgmlType::F16, &odd)
        );
    }
}

#[test]
fn q8_0_rounds_halves_to_even() {
    // amax 127 makes the scale exactly 1, so x * 127 / amax is x itself.
    let mut x = vec![0f32; 32];
    x[0] = 127.0;
    x[1] = 0.5;
    x[2] = 1.5;
    x[3] = 2.5;
    x[4] = -2.5;
    for path in available_paths() {
        let q = quantize(path, GgmlType::Q8_0, &x);
        let v: Vec<i8> = q[2..7].iter().map(|&b| b as i8).collect();
        assert_eq!(v, [127, 0, 2, 2, -2], "{path}");
    }
}

#[test]
fn q8_k_follows_ggml_reference_rules() {
    let mut x: Vec<f32> = (0..256)
        .map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5)
        .collect();
    x[10] = -3.0;
    x[20] = 3.0;
    for path in available_paths() {
        let q = quantize(path, GgmlType::Q8K, &x);
        let d = f32::from_le_bytes([q[0], q[1], q[2], q[3]]);
        // iscale = -127 / max with max = x[10] = -3 (the first of largest magnitude).
        let iscale = -127.0f32 / -3.0;
        assert_eq!(d, 1.0 / iscale, "{path}");
        assert_eq!(q[4 + 10] as i8, -127);
        assert_eq!(q[4 + 20] as i8, 127);
        for (j, &v) in x.iter().enumerate() {
            assert_eq!(
                q[4 + j] as i8 as i32,
                ((iscale * v).round_ties_even() as i32).min(127)
            );
        }
        for g in 0..16 {
            let s: i32 = q[4 + 16 * g..4 + 16 * g + 16]
                .iter()
                .map(|&b| b as i8 as i32)
                .sum();
            assert_eq!(
                i16::from_le_bytes([q[260 + 2 * g], q[261 + 2 * g]]) as i32,
                s
            );
        }
    }
}

/// Scaled value `x * 127 / amax` is within rounding error of a half-integer.
fn near_tie(x: f32, amax: f32) -> bool {
    let scaled = x as f64 * 127.0 / amax as f64;
    (scaled.abs().fract() - 0.5).abs() < 1e-5
}

/// q8_0 / q8_1 against ggml's reference quantizer (formats::quantize): scales identical,
/// quants identical except one step at near-ties (ggml's x86 quantizer, which ours follows,
/// scales by 127/amax and rounds ties to even; the reference multiplies by 1/d and rounds ties
/// away from zero). q8_1's sum field must match whenever the quants do.
#[test]
fn q8_0_and_q8_1_match_ggml_reference_up_to_ties() {
    let mut rng = Rng::new(11);
    let mut rows = test_rows(&mut rng);
    if let Some(dir) = quant_ref_dir() {
        rows.push(read_f32(&dir.join("input.f32")));
    }
    for path in available_paths() {
        let mut near = 0;
        for x in &rows {
            for (ty, bytes, qs) in [(GgmlType::Q8_0, 34, 2), (GgmlType::Q8_1, 36, 4)] {
                let got = quantize(path, ty, x);
                let want = reference_quantize(ty, x);
                for (b, (g, w)) in got
                    .chunks_exact(bytes)
                    .zip(want.chunks_exact(bytes))
                    .enumerate()
                {
                    assert_eq!(g[0..2], w[0..2], "{path} {ty} block {b} scale");
                    let xb = &x[32 * b..32 * b + 32];
                    let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                    for j in 0..32 {
                        let (gq, wq) = (g[qs + j] as i8 as i32, w[qs + j] as i8 as i32);
                        if gq != wq {
                            assert!(
                                (gq - wq).abs() == 1 && near_tie(xb[j], amax),
                                "{path} {ty} block {b} value {j}: {gq} vs reference {wq}"
                            );
                            near += 1;
                        }
                    }
                    if ty == GgmlType::Q8_1 && g[qs..] == w[qs..] {
                        assert_eq!(g[2..4], w[2..4], "{path} q8_1 block {b} sum");
                    }
                }
            }
        }
        eprintln!("{path}: {near} near-tie quants differ from ggml's reference quantizer");
    }
}

/// ggml runs the reference q8_K quantizer on x86: ours must give the same bytes.
#[test]
fn q8_k_is_bit_identical_to_ggml_reference() {
    let mut rng = Rng::new(12);
    let mut rows = test_rows(&mut rng);
    if let Some(dir) = quant_ref_dir() {
        rows.push(read_f32(&dir.join("input.f32")));
    }
    for path in available_paths() {
        for (k, x) in rows.iter().enumerate() {
            assert_eq!(
                quantize(path, GgmlType::Q8K, x),
                reference_quantize(GgmlType::Q8K, x),
                "{path} row {k}"
            );
        }
    }
}

#[test]
fn f16_conversion_matches_reference() {
    let mut rng = Rng::new(13);
    let mut x = rng.vec(1000, 3.0);
    x.extend([0.0, -0.0, 65504.0, 70000.0, 1e-8, -1e-5, f32::INFINITY]);
    for path in available_paths() {
        assert_eq!(
            quantize(path, GgmlType::F16, &x),
            reference_quantize(GgmlType::F16, &x),
            "{path}"
        );
    }
}
