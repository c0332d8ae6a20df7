//! The forward-pass ops against f64 references written out here, on every kernel path, on
//! small inputs (calling thread only) and large ones (split over the pool).

mod common;

use common::*;
use cpu::{Cpu, CpuConfig, RopeMode, RopeParams, WeightView};
use formats::GgmlType;

fn cpus() -> Vec<Cpu> {
    let mut v = Vec::new();
    for path in available_paths() {
        for n_threads in [1, 3] {
            v.push(
                Cpu::new(&CpuConfig {
                    n_threads,
                    kernel_path: Some(path),
                })
                .unwrap(),
            );
        }
    }
    v
}

fn close(got: f32, want: f64, rel: f64, abs: f64) -> bool {
    (got as f64 - want).abs() <= rel * want.abs() + abs
}

/// Sizes below and above the parallel threshold.
const SHAPES: [(usize, usize); 3] = [(1, 576), (3, 100), (40, 1024)];

#[test]
fn rms_norm_matches_f64() {
    let mut rng = Rng::new(21);
    for cpu in cpus() {
        for (rows, dim) in SHAPES {
            let x = rng.vec(rows * dim, 2.0);
            let w = rng.vec(dim, 1.0);
            let mut out = vec![0f32; x.len()];
            cpu::rms_norm(&cpu, &x, dim, Some(&w), 1e-5, &mut out).unwrap();
            let mut inplace = x.clone();
            cpu::rms_norm_inplace(&cpu, &mut inplace, dim, Some(&w), 1e-5).unwrap();
            assert_eq!(out, inplace);
            for r in 0..rows {
                let row = &x[r * dim..(r + 1) * dim];
                let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / dim as f64;
                let s = 1.0 / (ms + 1e-5).sqrt();
                for i in 0..dim {
                    let want = row[i] as f64 * s * w[i] as f64;
                    assert!(
                        close(out[r * dim + i], want, 1e-6, 1e-7),
                        "{:?} row {r} {i}",
                        cpu.path()
                    );
                }
            }
        }
    }
}

#[test]
fn layer_norm_matches_f64() {
    let mut rng = Rng::new(22);
    for cpu in cpus() {
        for (rows, dim) in SHAPES {
            let x: Vec<f32> = rng.vec(rows * dim, 2.0).iter().map(|v| v + 3.0).collect();
            let (w, b) = (rng.vec(dim, 1.0), rng.vec(dim, 1.0));
            let mut out = x.clone();
            cpu::layer_norm_inplace(&cpu, &mut out, dim, Some(&w), Some(&b), 1e-6).unwrap();
            for r in 0..rows {
                let row = &x[r * dim..(r + 1) * dim];
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
                for i in 0..dim {
                    let want =
                        (row[i] as f64 - mean) / (var + 1e-6).sqrt() * w[i] as f64 + b[i] as f64;
                    assert!(close(out[r * dim + i], want, 1e-5, 1e-5), "row {r} {i}");
                }
            }
        }
    }
}

/// f64 RoPE with θ formed exactly as the spec says (f32 repeated multiplication, which is
/// what ggml does), everything after it in f64.
fn rope_ref(
    x: &[f32],
    n_heads: usize,
    head_dim: usize,
    pos: &[i32],
    p: &RopeParams,
    ff: Option<&[f32]>,
) -> Vec<f64> {
    let mut out: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let theta_scale = p.freq_base.powf(-2.0 / p.n_rot as f32);
    for (t, &ps) in pos.iter().enumerate() {
        let mut theta = ps as f32;
        for k in 0..p.n_rot / 2 {
            let th = (p.freq_scale * (theta / ff.map_or(1.0, |f| f[k]))) as f64;
            let (s, c) = th.sin_cos();
            let (s, c) = (s * p.attn_factor as f64, c * p.attn_factor as f64);
            for h in 0..n_heads {
                let base = (t * n_heads + h) * head_dim;
                let (i, j) = match p.mode {
                    RopeMode::Normal => (base + 2 * k, base + 2 * k + 1),
                    RopeMode::Neox => (base + k, base + k + p.n_rot / 2),
                };
                let (x0, x1) = (x[i] as f64, x[j] as f64);
                out[i] = x0 * c - x1 * s;
                out[j] = x0 * s + x1 * c;
            }
            theta *= theta_scale;
        }
    }
    out
}

#[test]
fn rope_matches_f64_reference() {
    let mut rng = Rng::new(23);
    for cpu in cpus() {
        for mode in [RopeMode::Normal, RopeMode::Neox] {
            for (n_tok, n_heads, head_dim, n_rot) in
                [(1, 9, 64, 64), (5, 3, 128, 64), (40, 8, 64, 32)]
            {
                let pos: Vec<i32> = (0..n_tok as i32).map(|i| i * 37 + 3).collect();
                let mut p = RopeParams::new(n_rot, mode, 100000.0);
                p.freq_scale = 0.5;
                p.attn_factor = 0.9;
                let ff: Vec<f32> = (0..n_rot / 2).map(|k| 1.0 + k as f32 * 0.1).collect();
                for factors in [None, Some(ff.as_slice())] {
                    let x = rng.vec(n_tok * n_heads * head_dim, 1.0);
                    let mut got = x.clone();
                    cpu::rope_inplace(&cpu, &mut got, n_heads, head_dim, &pos, &p, factors)
                        .unwrap();
                    let want = rope_ref(&x, n_heads, head_dim, &pos, &p, factors);
                    for i in 0..x.len() {
                        assert!(
                            close(got[i], want[i], 1e-5, 1e-6),
                            "{mode:?} {n_tok}x{n_heads}x{head_dim} rot {n_rot} at {i}: {} vs {}",
                            got[i],
                            want[i]
                        );
                    }
                    // Dimensions past n_rot are untouched.
                    for (g, v) in got.chunks(head_dim).zip(x.chunks(head_dim)) {
                        assert_eq!(g[n_rot..], v[n_rot..]);
                    }
                }
            }
        }
    }
}

#[test]
fn rope_theta_is_position_times_inverse_frequency() {
    // Independent of the f32 recurrence: small positions against exact f64 powers.
    let cpu = Cpu::new(&CpuConfig::default()).unwrap();
    let p = RopeParams::new(64, RopeMode::Normal, 10000.0);
    let pos = [0, 1, 7];
    let mut x = vec![0f32; 3 * 64];
    for t in 0..3 {
        for k in 0..32 {
            x[t * 64 + 2 * k] = 1.0; // rotating (1, 0) gives (cos θ, sin θ)
        }
    }
    cpu::rope_inplace(&cpu, &mut x, 1, 64, &pos, &p, None).unwrap();
    for (t, &ps) in pos.iter().enumerate() {
        for k in 0..32 {
            let th = ps as f64 * 10000f64.powf(-2.0 * k as f64 / 64.0);
            assert!((x[t * 64 + 2 * k] as f64 - th.cos()).abs() < 2e-6);
            assert!((x[t * 64 + 2 * k + 1] as f64 - th.sin()).abs() < 2e-6);
        }
    }
}

#[test]
fn rope_yarn_ramp_extrapolates_high_frequencies() {
    // With YaRN, pairs below the correction range keep the unscaled angle (extrapolation),
    // pairs above it use the scaled one, and cos/sin carry the magnitude correction.
    let cpu = Cpu::new(&CpuConfig::default()).unwrap();
    let mut p = RopeParams::new(128, RopeMode::Neox, 10000.0);
    p.freq_scale = 0.25;
    p.ext_factor = 1.0;
    p.n_ctx_orig = 4096;
    let mscale = 1.0 + 0.1 * (4.0f64).ln();
    let pos = [1000];
    let mut x = vec![0f32; 128];
    x[..64].fill(1.0);
    cpu::rope_inplace(&cpu, &mut x, 1, 128, &pos, &p, None).unwrap();
    let angle = |k: usize, scale: f64| 1000.0 * scale * 10000f64.powf(-2.0 * k as f64 / 128.0);
    for (k, scale) in [(0usize, 1.0), (1, 1.0), (62, 0.25), (63, 0.25)] {
        let th = angle(k, scale);
        let r = ((x[k] as f64).powi(2) + (x[k + 64] as f64).powi(2)).sqrt();
        assert!((r - mscale).abs() < 1e-4, "pair {k} magnitude {r}");
        let got = (x[k + 64] as f64).atan2(x[k] as f64);
        let want = th.sin().atan2(th.cos());
        assert!((got - want).abs() < 2e-3, "pair {k}: angle {got} vs {want}");
    }
}

#[test]
fn silu_and_swiglu_match_f64() {
    let mut rng = Rng::new(24);
    for cpu in cpus() {
        for n in [7, 1000, 40000] {
            let mut x = rng.vec(n, 4.0);
            x[0] = -100.0;
            x[1] = 100.0;
            x[2] = -88.5;
            let up = rng.vec(n, 1.0);
            let mut s = x.clone();
            cpu::silu_inplace(&cpu, &mut s);
            let mut g = x.clone();
            cpu::swiglu_inplace(&cpu, &mut g, &up).unwrap();
            for i in 0..n {
                let xv = x[i] as f64;
                let want = xv / (1.0 + (-xv).exp());
                assert!(
                    close(s[i], want, 1e-6, 1e-37),
                    "{} silu({xv}) = {} vs {want}",
                    cpu.path(),
                    s[i]
                );
                assert!(
                    close(g[i], want * up[i] as f64, 2e-6, 1e-37),
                    "swiglu at {i}"
                );
            }
        }
    }
}

/// Batch invariance of SwiGLU: a row's values are bit-identical whether it is activated alone
/// or inside a large input that the pool splits at arbitrary element boundaries.
#[test]
fn swiglu_rows_are_identical_alone_and_in_a_split_batch() {
    let mut rng = Rng::new(25);
    // 17 000 values: three threads split at 5666 and 11333, inside 8-value vectors.
    let row = 1000;
    let rows = 17;
    let x = rng.vec(rows * row, 4.0);
    let up = rng.vec(rows * row, 1.0);
    for path in available_paths() {
        let one = Cpu::new(&CpuConfig {
            n_threads: 1,
            kernel_path: Some(path),
        })
        .unwrap();
        let three = Cpu::new(&CpuConfig {
            n_threads: 3,
            kernel_path: Some(path),
        })
        .unwrap();
        // Short slices (all tail, no full vector) against the same values inside a long one.
        let mut long = x[..256].to_vec();
        cpu::swiglu_inplace(&one, &mut long, &up[..256]).unwrap();
        for start in 0..16 {
            for len in 1..8 {
                let mut short = x[start..start + len].to_vec();
                cpu::swiglu_inplace(&one, &mut short, &up[start..start + len]).unwrap();
                for (i, v) in short.iter().enumerate() {
                    assert_eq!(v.to_bits(), long[start + i].to_bits(), "{path} {start}+{i}");
                }
            }
        }
        let mut batch = x.clone();
        cpu::swiglu_inplace(&three, &mut batch, &up).unwrap();
        for r in 0..rows {
            let span = r * row..(r + 1) * row;
            let mut alone = x[span.clone()].to_vec();
            cpu::swiglu_inplace(&one, &mut alone, &up[span.clone()]).unwrap();
            for (i, (a, b)) in alone.iter().zip(&batch[span]).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{path} row {r} value {i}");
            }
        }
    }
}

#[test]
fn gelu_and_geglu_follow_ggml_f16_table() {
    let mut rng = Rng::new(25);
    let gelu64 = |x: f64| {
        0.5 * x
            * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * x * (1.0 + 0.044715 * x * x)).tanh())
    };
    let f16r = |v: f64| half::f16::from_f64(v).to_f64();
    for cpu in cpus() {
        let mut x = rng.vec(30000, 4.0);
        x.extend([-10.0, -10.5, 10.0, 12.0, 9.99, 0.0, -0.0]);
        let up = rng.vec(x.len(), 1.0);
        let mut y = x.clone();
        cpu::gelu_inplace(&cpu, &mut y);
        let mut gg = x.clone();
        cpu::geglu_inplace(&cpu, &mut gg, &up).unwrap();
        for i in 0..x.len() {
            let xv = x[i] as f64;
            // The f32 tanh formula itself (what the table holds before rounding to f16);
            // tight enough to tell it from the erf form (they differ by ~1e-4 near |x| = 1).
            let f = cpu::gelu_tanh_f32(x[i]) as f64;
            assert!(
                (f - gelu64(xv)).abs() <= 1e-6 * gelu64(xv).abs() + xv.abs() * 1.2e-7,
                "gelu_tanh_f32({xv})"
            );
            let want = if xv <= -10.0 {
                0.0
            } else if xv >= 10.0 {
                xv
            } else {
                f16r(gelu64(f16r(xv)))
            };
            // ggml's table is f16(gelu_f32(x)), and gelu_f32 loses up to ~|x|·6e-8 in
            // `1 + tanh(·)` for negative x: allow that plus two f16 steps.
            let ulp = (want.abs() * 2f64.powi(-10)).max(2f64.powi(-24));
            let tol = 2.0 * ulp + xv.abs() * 1.2e-7;
            assert!(
                (y[i] as f64 - want).abs() <= tol,
                "gelu({xv}) = {} vs {want}",
                y[i]
            );
            assert_eq!(gg[i], y[i] * up[i], "geglu at {i}");
        }
    }
}

#[test]
fn softmax_matches_f64() {
    let mut rng = Rng::new(26);
    for cpu in cpus() {
        for (rows, len) in [(1, 49152), (4, 37), (64, 512)] {
            let mut x = rng.vec(rows * len, 3.0);
            x[1] = f32::NEG_INFINITY;
            let mut y = x.clone();
            cpu::softmax_inplace(&cpu, &mut y, len, 0.7).unwrap();
            for r in 0..rows {
                let row = &x[r * len..(r + 1) * len];
                let m = row
                    .iter()
                    .map(|&v| v as f64 * 0.7)
                    .fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = row.iter().map(|&v| (v as f64 * 0.7 - m).exp()).sum();
                for i in 0..len {
                    let want = (row[i] as f64 * 0.7 - m).exp() / s;
                    assert!(close(y[r * len + i], want, 2e-6, 1e-30), "row {r} {i}");
                }
            }
            assert_eq!(y[1], 0.0);
        }
        let mut all_masked = vec![f32::NEG_INFINITY; 8];
        cpu::softmax_inplace(&cpu, &mut all_masked, 8, 1.0).unwrap();
        assert!(all_masked.iter().all(|&v| v == 0.0));
    }
}

#[test]
fn elementwise_broadcasts_rows() {
    let mut rng = Rng::new(27);
    for cpu in cpus() {
        for n in [10, 40000] {
            let x = rng.vec(n * 4, 1.0);
            let full = rng.vec(n * 4, 1.0);
            let row = rng.vec(n, 1.0);
            let mut a = x.clone();
            cpu::add_inplace(&cpu, &mut a, &full).unwrap();
            assert!(a.iter().enumerate().all(|(i, &v)| v == x[i] + full[i]));
            let mut m = x.clone();
            cpu::mul_inplace(&cpu, &mut m, &row).unwrap();
            assert!(m.iter().enumerate().all(|(i, &v)| v == x[i] * row[i % n]));
            let mut s = x.clone();
            cpu::scale_inplace(&cpu, &mut s, 0.25);
            assert!(s.iter().enumerate().all(|(i, &v)| v == x[i] * 0.25));
            let mut o = vec![0f32; x.len()];
            cpu::add(&cpu, &x, &full, &mut o).unwrap();
            assert_eq!(o, a);
        }
        let mut x = vec![0f32; 10];
        assert!(cpu::add_inplace(&cpu, &mut x, &[1.0; 3]).is_err());
    }
}

#[test]
fn conversions_round_to_nearest_even() {
    let mut rng = Rng::new(28);
    let mut x = rng.vec(1003, 100.0);
    x.extend([0.0, -0.0, 65520.0, 1e-8, f32::INFINITY, f32::NAN]);
    for cpu in cpus() {
        let mut h = vec![0u16; x.len()];
        cpu::f32_to_f16(&cpu, &x, &mut h).unwrap();
        let mut back = vec![0f32; x.len()];
        cpu::f16_to_f32(&cpu, &h, &mut back).unwrap();
        for i in 0..x.len() {
            let want = half::f16::from_f32(x[i]);
            assert_eq!(h[i], want.to_bits(), "f16 of {}", x[i]);
            assert_eq!(back[i].to_bits(), want.to_f32().to_bits());
        }
    }
    let mut b = vec![0u16; x.len()];
    cpu::f32_to_bf16(&x, &mut b).unwrap();
    let mut back = vec![0f32; x.len()];
    cpu::bf16_to_f32(&b, &mut back).unwrap();
    for i in 0..x.len() {
        assert_eq!(b[i], half::bf16::from_f32(x[i]).to_bits());
        assert_eq!(
            back[i].to_bits(),
            half::bf16::from_bits(b[i]).to_f32().to_bits()
        );
    }
}

#[test]
fn get_rows_dequantizes_selected_rows() {
    let mut rng = Rng::new(29);
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q4_1,
        GgmlType::Q6K,
        GgmlType::F16,
        GgmlType::F32,
    ] {
        let (rows, cols) = (7, 256);
        let w = random_blocks(&mut rng, ty, rows * cols);
        let all = dequant(ty, &w, rows * cols);
        let view = WeightView {
            ty,
            bytes: &w,
            rows,
            cols,
        };
        let ids = [6u32, 0, 3, 3];
        let mut out = vec![0f32; ids.len() * cols];
        cpu::get_rows(&view, &ids, &mut out).unwrap();
        for (k, &id) in ids.iter().enumerate() {
            let id = id as usize;
            assert_eq!(
                out[k * cols..(k + 1) * cols],
                all[id * cols..(id + 1) * cols],
                "{ty}"
            );
        }
        let e = cpu::get_rows(&view, &[7], &mut out[..cols]).unwrap_err();
        assert!(e.to_string().contains("row id 7"), "{e}");
    }
}
