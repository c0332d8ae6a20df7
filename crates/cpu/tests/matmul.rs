//! Matmul on every weight type and kernel path: the scalar path against an f64 reference built
//! from dequantized weights and quantized-then-dequantized activations, every SIMD path against
//! the scalar path, over many row lengths, 1–7 tokens (so the 4-token blocked kernels and their
//! 1–3-token remainders all run) and several thread counts.

#![allow(clippy::needless_range_loop)] // index loops compare three parallel arrays

mod common;

use common::*;
use cpu::{Cpu, CpuConfig, KernelPath, WeightView};
use formats::GgmlType;

fn cpu_with(path: KernelPath, n_threads: usize) -> Cpu {
    Cpu::new(&CpuConfig {
        n_threads,
        kernel_path: Some(path),
    })
    .unwrap()
}

fn row_lengths(ty: GgmlType) -> Vec<usize> {
    match ty.block_size() {
        1 => vec![1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 576],
        32 => vec![32, 64, 96, 160, 576, 1024],
        _ => vec![256, 512, 768, 1536],
    }
}

fn run(
    cpu: &Cpu,
    ty: GgmlType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let view = WeightView {
        ty,
        bytes: w,
        rows,
        cols,
    };
    let mut out = vec![f32::NAN; n * rows];
    let mut scratch = vec![0u8; cpu::matmul_scratch_bytes(ty, cols, n)];
    cpu::matmul(cpu, &view, x, n, &mut out, &mut scratch).unwrap();
    out
}

/// f64 reference and the tolerance scale for output (t, r).
struct Reference {
    value: Vec<f64>,
    tol: Vec<f64>,
}

fn reference(ty: GgmlType, w: &[u8], rows: usize, cols: usize, x: &[f32], n: usize) -> Reference {
    let comp = cpu::companion_type(ty).unwrap();
    let wd = dequant(ty, w, rows * cols);
    let row_bytes = w.len() / rows;
    let mut value = vec![0f64; n * rows];
    let mut tol = vec![0f64; n * rows];
    for t in 0..n {
        let xr = &x[t * cols..(t + 1) * cols];
        let (xq, qbytes) = if comp == GgmlType::F32 {
            (xr.to_vec(), Vec::new())
        } else {
            let mut q = vec![0u8; comp.bytes_for(cols as u64).unwrap() as usize];
            cpu::quantize_row(KernelPath::Scalar, comp, xr, &mut q).unwrap();
            (dequant(comp, &q, cols), q)
        };
        for r in 0..rows {
            let wr = &wd[r * cols..(r + 1) * cols];
            value[t * rows + r] = dot_f64(wr, &xq);
            let abs: f64 = wr
                .iter()
                .zip(&xq)
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            let mut tl = 2e-6 * abs + 1e-6;
            if comp == GgmlType::Q8_1 {
                // The kernel uses q8_1's f16 `s = d * Σq` (rounded) times the weight min.
                let wrow = &w[r * row_bytes..(r + 1) * row_bytes];
                for (wb, ab) in wrow
                    .chunks_exact(ty.block_bytes())
                    .zip(qbytes.chunks_exact(36))
                {
                    let f = |b: &[u8], o: usize| {
                        half::f16::from_bits(u16::from_le_bytes([b[o], b[o + 1]])).to_f64()
                    };
                    tl += f(wb, 2).abs() * (f(ab, 2).abs() * 1e-3 + 1e-7);
                }
            }
            tol[t * rows + r] = tl;
        }
    }
    Reference { value, tol }
}

#[test]
fn scalar_path_matches_f64_reference() {
    let cpu = cpu_with(KernelPath::Scalar, 1);
    let mut rng = Rng::new(1);
    for ty in cpu::MATMUL_TYPES {
        for cols in row_lengths(ty) {
            let rows = 5;
            let w = random_blocks(&mut rng, ty, rows * cols);
            for n in [1, 3, 4, 7] {
                let x = rng.vec(n * cols, 1.0);
                let got = run(&cpu, ty, &w, rows, cols, &x, n);
                let want = reference(ty, &w, rows, cols, &x, n);
                for i in 0..n * rows {
                    let err = (got[i] as f64 - want.value[i]).abs();
                    assert!(
                        err <= want.tol[i],
                        "{ty} cols {cols} n {n} out {i}: got {}, f64 {}, err {err:e} > {:e}",
                        got[i],
                        want.value[i],
                        want.tol[i]
                    );
                }
            }
        }
    }
}

#[test]
fn simd_paths_match_scalar() {
    let scalar = cpu_with(KernelPath::Scalar, 1);
    let mut rng = Rng::new(2);
    for path in available_paths() {
        if path == KernelPath::Scalar {
            continue;
        }
        for threads in [1, 3] {
            let simd = cpu_with(path, threads);
            for ty in cpu::MATMUL_TYPES {
                for cols in row_lengths(ty) {
                    let rows = 37;
                    let w = random_blocks(&mut rng, ty, rows * cols);
                    for n in 1..=7 {
                        let x = rng.vec(n * cols, 1.0);
                        let want = run(&scalar, ty, &w, rows, cols, &x, n);
                        let got = run(&simd, ty, &w, rows, cols, &x, n);
                        let r = reference(ty, &w, rows, cols, &x, n);
                        for i in 0..n * rows {
                            let err = (got[i] - want[i]).abs() as f64;
                            assert!(
                                err <= r.tol[i],
                                "{path} ({threads} threads) {ty} cols {cols} n {n} out {i}: got {}, scalar {}, err {err:e} > {:e}",
                                got[i],
                                want[i],
                                r.tol[i]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn prefill_shape_tiles_tokens_correctly() {
    // Many tokens: several token tiles per thread and the 4-token kernel dominate.
    let scalar = cpu_with(KernelPath::Scalar, 1);
    let best = cpu_with(KernelPath::detect(), 2);
    let mut rng = Rng::new(3);
    for ty in [GgmlType::Q4_0, GgmlType::Q4K, GgmlType::F16] {
        let (rows, cols, n) = (24, 4096, 37);
        let w = random_blocks(&mut rng, ty, rows * cols);
        let x = rng.vec(n * cols, 1.0);
        let want = run(&scalar, ty, &w, rows, cols, &x, n);
        let got = run(&best, ty, &w, rows, cols, &x, n);
        let r = reference(ty, &w, rows, cols, &x, n);
        for i in 0..n * rows {
            assert!(
                ((got[i] - want[i]).abs() as f64) <= r.tol[i],
                "{ty} out {i}"
            );
        }
    }
}

/// Batch invariance: a token's outputs are bit-identical whether it is multiplied alone or
/// together with other tokens (any count, any position in the batch, any thread count), on
/// every path and weight type. The server's outputs at temperature 0 must not depend on what
/// else is being generated at the same time.
#[test]
fn tokens_give_identical_bits_alone_and_in_a_batch() {
    let mut rng = Rng::new(4);
    for path in available_paths() {
        let one = cpu_with(path, 1);
        let three = cpu_with(path, 3);
        for ty in cpu::MATMUL_TYPES {
            for cols in row_lengths(ty) {
                let rows = 21;
                let w = random_blocks(&mut rng, ty, rows * cols);
                let n = 9;
                let x = rng.vec(n * cols, 1.0);
                let alone: Vec<Vec<f32>> = (0..n)
                    .map(|t| run(&one, ty, &w, rows, cols, &x[t * cols..(t + 1) * cols], 1))
                    .collect();
                for (cpu, first, count) in
                    [(&one, 0, 9), (&three, 0, 9), (&one, 2, 3), (&three, 1, 6)]
                {
                    let xs = &x[first * cols..(first + count) * cols];
                    let batch = run(cpu, ty, &w, rows, cols, xs, count);
                    for k in 0..count {
                        let got = &batch[k * rows..(k + 1) * rows];
                        let want = &alone[first + k];
                        for r in 0..rows {
                            assert_eq!(
                                got[r].to_bits(),
                                want[r].to_bits(),
                                "{path} {ty} cols {cols}: token {} of a batch of {count} \
                                 (from {first}), row {r}: {} in the batch, {} alone",
                                k,
                                got[r],
                                want[r]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let cpu = cpu_with(KernelPath::Scalar, 1);
    let w = vec![0u8; 2 * 18];
    let x = vec![0f32; 32];
    let mut out = vec![0f32; 2];
    let need = cpu::matmul_scratch_bytes(GgmlType::Q4_0, 32, 1);
    let mut scratch = vec![0u8; need];
    let ok = WeightView {
        ty: GgmlType::Q4_0,
        bytes: &w,
        rows: 2,
        cols: 32,
    };
    assert!(cpu::matmul(&cpu, &ok, &x, 1, &mut out, &mut scratch).is_ok());
    assert!(cpu::matmul(&cpu, &ok, &x, 1, &mut out, &mut scratch[..need - 1]).is_err());
    assert!(cpu::matmul(&cpu, &ok, &x[..31], 1, &mut out, &mut scratch).is_err());
    assert!(cpu::matmul(&cpu, &ok, &x, 1, &mut out[..1], &mut scratch).is_err());
    let short = WeightView {
        bytes: &w[..35],
        ..ok
    };
    assert!(cpu::matmul(&cpu, &short, &x, 1, &mut out, &mut scratch).is_err());
    let odd = WeightView { cols: 31, ..ok };
    assert!(cpu::matmul(&cpu, &odd, &x[..31], 1, &mut out, &mut scratch).is_err());
    let iq2 = WeightView {
        ty: GgmlType::Iq2Xxs,
        ..ok
    };
    let e = cpu::matmul(&cpu, &iq2, &x, 1, &mut out, &mut scratch).unwrap_err();
    assert!(e.to_string().contains("iq2_xxs"), "{e}");
}
