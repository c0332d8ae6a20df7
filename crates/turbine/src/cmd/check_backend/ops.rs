//! Per-op checks: every CUDA op on fresh random data against a scalar f64 reference built on
//! the `formats` crate (reference dequantizers, quantizers and the turbo rotation), including
//! shapes that are not multiples of the block sizes.

use anyhow::{Context, Result};
use formats::GgmlType;
use turbine_core::{
    AttnParams, AttnShape, Backend, BufferSpec, GluActivation, HostBytes, KvLayerShape, KvSpec,
    Role, RopeParams, TokenPos,
};
use turbine_cuda::{CudaBackend, CudaBuffer, CudaWeight, WEIGHT_TYPES};

use super::report::{Measure, Report};
use super::rng::Rng;

pub struct Ctx<'a> {
    pub be: &'a CudaBackend,
    pub rng: Rng,
    pub report: Report,
}

pub(super) fn spec(be: &CudaBackend, name: &str, bytes: u64) -> BufferSpec {
    BufferSpec {
        name: name.to_string(),
        device: be.device().to_string(),
        role: Role::Compute,
        bytes,
        formula: String::new(),
    }
}

/// A device buffer of `floats` values filled with `data`, the rest NaN (so unwritten outputs
/// show up).
pub(super) fn buffer(
    be: &CudaBackend,
    name: &str,
    floats: usize,
    data: &[f32],
) -> Result<CudaBuffer> {
    let mut b = be.alloc(&spec(be, name, floats as u64 * 4))?;
    let mut init = vec![f32::NAN; floats];
    init[..data.len()].copy_from_slice(data);
    be.write_f32(&mut b, &init)?;
    Ok(b)
}

pub(super) fn read(be: &CudaBackend, b: &CudaBuffer, n: usize) -> Result<Vec<f32>> {
    let mut out = vec![0.0f32; n];
    be.read(b, 0, &mut out)?;
    Ok(out)
}

/// `Σ_i w[o][i] · x[r][i]` in f64 for every (row, output).
fn reference_products(wd: &[f32], x: &[f32], k: usize, n_out: usize, rows: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; rows * n_out];
    for r in 0..rows {
        for o in 0..n_out {
            out[r * n_out + o] = (0..k)
                .map(|i| wd[o * k + i] as f64 * x[r * k + i] as f64)
                .sum();
        }
    }
    out
}

/// The fused products of a decode step (`matmul3`: q, k, v of one input; `matmul_glu`: gate and
/// up with the activation applied) against f64 products of the dequantized weights, for q4_K
/// (fused kernels at one row) and q8_0 (the unfused fallback), one and three rows.
pub fn fused_matmuls(c: &mut Ctx) -> Result<()> {
    for ty in [GgmlType::Q4K, GgmlType::Q8_0] {
        let k = if ty == GgmlType::Q4K { 512 } else { 96 };
        for rows in [1usize, 3] {
            let n_outs = [4101usize, 1027, 1027];
            let mut ws = Vec::new();
            for (i, &n) in n_outs.iter().enumerate() {
                ws.push(weight(c.be, &mut c.rng, &format!("w{i}"), ty, k, n)?);
            }
            let x = c.rng.normals(rows * k, 1.0);
            let xb = buffer(c.be, "x", rows * k, &x)?;
            let mut o0 = buffer(c.be, "o0", rows * n_outs[0], &[])?;
            let mut o1 = buffer(c.be, "o1", rows * n_outs[1], &[])?;
            let mut o2 = buffer(c.be, "o2", rows * n_outs[2], &[])?;
            let mut scratch = c.be.alloc(&spec(
                c.be,
                "scratch",
                c.be.matmul_scratch_bytes(ty, k, rows).max(4),
            ))?;
            c.be.matmul3(
                [&ws[0].0, &ws[1].0, &ws[2].0],
                &xb,
                rows,
                [&mut o0, &mut o1, &mut o2],
                &mut scratch,
            )?;
            for (i, ob) in [&o0, &o1, &o2].into_iter().enumerate() {
                let out = read(c.be, ob, rows * n_outs[i])?;
                let r = reference_products(&ws[i].1, &x, k, n_outs[i], rows);
                c.report.measured(
                    "matmul3",
                    format!(
                        "{} k={k} n_out={} rows={rows} (product {i})",
                        ty.name(),
                        n_outs[i]
                    ),
                    Measure::of(&out, &r),
                    1e-4,
                    1e-9,
                );
            }

            let n_ff = 8195;
            let k_ff = if ty == GgmlType::Q4K { 768 } else { 96 };
            let (gw, gd) = weight(c.be, &mut c.rng, "gate", ty, k_ff, n_ff)?;
            let (uw, ud) = weight(c.be, &mut c.rng, "up", ty, k_ff, n_ff)?;
            let x = c.rng.normals(rows * k_ff, 1.0);
            let xb = buffer(c.be, "x", rows * k_ff, &x)?;
            let g_ref = reference_products(&gd, &x, k_ff, n_ff, rows);
            let u_ref = reference_products(&ud, &x, k_ff, n_ff, rows);
            let mut scratch = c.be.alloc(&spec(
                c.be,
                "scratch",
                c.be.matmul_scratch_bytes(ty, k_ff, rows).max(4),
            ))?;
            for (act, name, f) in [
                (GluActivation::Silu, "silu", silu as fn(f64) -> f64),
                (GluActivation::GeluTanh, "gelu_tanh", gelu_tanh),
            ] {
                let mut gb = buffer(c.be, "gate", rows * n_ff, &[])?;
                let mut ub = buffer(c.be, "up", rows * n_ff, &[])?;
                c.be.matmul_glu(
                    &gw,
                    &uw,
                    &xb,
                    rows,
                    n_ff,
                    act,
                    &mut gb,
                    &mut ub,
                    &mut scratch,
                )?;
                let r: Vec<f64> = g_ref.iter().zip(&u_ref).map(|(&g, &u)| f(g) * u).collect();
                let scale = g_ref
                    .iter()
                    .zip(&u_ref)
                    .map(|(g, u)| (g * u).abs())
                    .fold(0.0, f64::max);
                c.report.measured(
                    "matmul_glu",
                    format!("{} {name} k={k_ff} n_ff={n_ff} rows={rows}", ty.name()),
                    Measure::of_scaled(&read(c.be, &gb, rows * n_ff)?, &r, scale),
                    1e-4,
                    1e-9,
                );
            }
        }
    }
    Ok(())
}

/// A weight of `rows` rows of `k` random values, quantized to `ty`; returns it with its
/// dequantized values (the reference's view of the weight).
fn weight(
    be: &CudaBackend,
    rng: &mut Rng,
    name: &str,
    ty: GgmlType,
    k: usize,
    rows: usize,
) -> Result<(CudaWeight, Vec<f32>)> {
    let vals = rng.normals(k * rows, 1.0);
    let bytes = ty.bytes_for((k * rows) as u64).context("weight size")? as usize;
    let mut data = vec![0u8; bytes];
    formats::quantize(ty, &vals, &mut data).with_context(|| format!("quantize {}", ty.name()))?;
    let mut deq = vec![0.0f32; k * rows];
    formats::dequantize(ty, &data, &mut deq)?;
    let dims = if rows == 1 {
        vec![k as u64]
    } else {
        vec![k as u64, rows as u64]
    };
    let w = be.load_weight("check.weights", name, ty, &dims, HostBytes::from_vec(data))?;
    Ok((w, deq))
}

fn f32_weight(be: &CudaBackend, name: &str, vals: &[f32]) -> Result<CudaWeight> {
    let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(be.load_weight(
        "check.weights",
        name,
        GgmlType::F32,
        &[vals.len() as u64],
        HostBytes::from_vec(data),
    )?)
}

// ---- matmul and get_rows ----------------------------------------------------------------------

fn inner_sizes(ty: GgmlType) -> [usize; 3] {
    match ty.block_size() {
        1 => [33, 100, 256],
        32 => [32, 96, 288],
        _ => [256, 512, 768],
    }
}

pub fn matmul(c: &mut Ctx) -> Result<()> {
    for ty in WEIGHT_TYPES {
        let ks = inner_sizes(ty);
        // (k, n_out, rows): n_out and rows deliberately odd; rows straddle the matvec limit.
        let mut cases = vec![
            (ks[0], 37, 1),
            (ks[1], 130, 3),
            (ks[2], 37, turbine_cuda::MATVEC_MAX_ROWS),
            (ks[0], 130, turbine_cuda::MATVEC_MAX_ROWS + 1),
            (ks[1], 67, 70),
        ];
        if ty == GgmlType::Q8_0 {
            // More output rows than one dequantized f16 chunk of the cuBLAS path.
            cases.push((32, turbine_cuda::gemm_chunk_rows(32) + 37, 9));
        }
        if ty == GgmlType::Q4K {
            // The multi-row q4_K matvec takes 2 and 4 output rows per warp from 4096 and 8192
            // output rows on; odd counts leave a partial warp.
            cases.push((256, 4097, 1));
            cases.push((768, 8199, 1));
        }
        for (k, n_out, rows) in cases {
            let (w, mut wd) = weight(c.be, &mut c.rng, "w", ty, k, n_out)?;
            let mut x = c.rng.normals(rows * k, 1.0);
            let xb = buffer(c.be, "x", rows * k, &x)?;
            let mut ob = buffer(c.be, "out", rows * n_out, &[])?;
            let scratch_bytes = c.be.matmul_scratch_bytes(ty, k, rows);
            let mut scratch = c.be.alloc(&spec(c.be, "scratch", scratch_bytes))?;
            c.be.matmul(&w, &xb, rows, &mut ob, &mut scratch)?;
            if c.be.matmul_rounds_to_f16(ty, k, rows) {
                // The tensor-core path multiplies f16 operands (f32 sums): so does the reference.
                for v in wd.iter_mut().chain(x.iter_mut()) {
                    *v = half::f16::from_f32(*v).to_f32();
                }
            }
            let out = read(c.be, &ob, rows * n_out)?;
            let mut reference = vec![0.0f64; rows * n_out];
            for r in 0..rows {
                for o in 0..n_out {
                    reference[r * n_out + o] = (0..k)
                        .map(|i| wd[o * k + i] as f64 * x[r * k + i] as f64)
                        .sum();
                }
            }
            c.report.measured(
                "matmul",
                format!("{} k={k} n_out={n_out} rows={rows}", ty.name()),
                Measure::of(&out, &reference),
                1e-4,
                1e-9,
            );
        }
    }
    Ok(())
}

pub fn get_rows(c: &mut Ctx) -> Result<()> {
    for ty in WEIGHT_TYPES {
        let k = inner_sizes(ty)[1];
        let n_rows = 50;
        let (w, wd) = weight(c.be, &mut c.rng, "table", ty, k, n_rows)?;
        let mut ids: Vec<u32> = (0..6).map(|_| c.rng.below(n_rows) as u32).collect();
        ids.push(ids[0]);
        ids.push(n_rows as u32 - 1);
        let mut ob = buffer(c.be, "out", ids.len() * k, &[])?;
        c.be.get_rows(&w, &ids, &mut ob)?;
        let out = read(c.be, &ob, ids.len() * k)?;
        let reference: Vec<f64> = ids
            .iter()
            .flat_map(|&id| wd[id as usize * k..(id as usize + 1) * k].to_vec())
            .map(|v| v as f64)
            .collect();
        c.report.measured(
            "get_rows",
            format!("{} row={k} ids={}", ty.name(), ids.len()),
            Measure::of(&out, &reference),
            1e-6,
            1e-12,
        );
    }
    Ok(())
}

// ---- norms, rope, element-wise --------------------------------------------------------------

fn rms_ref(x: &[f32], w: &[f32], eps: f32) -> Vec<f64> {
    let ms = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + eps as f64).sqrt();
    x.iter()
        .zip(w)
        .map(|(&v, &g)| v as f64 * s * g as f64)
        .collect()
}

pub fn rms_norm(c: &mut Ctx) -> Result<()> {
    let eps = 1e-6f32;
    for n in [1usize, 33, 256, 1000] {
        for (rows, row0, total) in [(1usize, 0usize, 1usize), (5, 2, 7)] {
            let x = c.rng.normals(total * n, 2.0);
            let g = c.rng.normals(n, 1.0);
            let w = f32_weight(c.be, "norm", &g)?;
            let xb = buffer(c.be, "x", total * n, &x)?;
            let mut ob = buffer(c.be, "out", rows * n, &[])?;
            c.be.rms_norm(&xb, row0, rows, n, &w, eps, &mut ob)?;
            let out = read(c.be, &ob, rows * n)?;
            let reference: Vec<f64> = (row0..row0 + rows)
                .flat_map(|r| rms_ref(&x[r * n..(r + 1) * n], &g, eps))
                .collect();
            c.report.measured(
                "rms_norm",
                format!("n={n} rows={rows} from row {row0}"),
                Measure::of(&out, &reference),
                1e-5,
                1e-10,
            );
            // In place (per-head norms use this form).
            let mut xb = buffer(c.be, "x", rows * n, &x[..rows * n])?;
            c.be.rms_norm_inplace(&mut xb, rows, n, &w, eps)?;
            let out = read(c.be, &xb, rows * n)?;
            let reference: Vec<f64> = (0..rows)
                .flat_map(|r| rms_ref(&x[r * n..(r + 1) * n], &g, eps))
                .collect();
            c.report.measured(
                "rms_norm",
                format!("n={n} rows={rows} in place"),
                Measure::of(&out, &reference),
                1e-5,
                1e-10,
            );
        }
    }
    Ok(())
}

/// RoPE reference: the angle recurrence in f32 exactly as ggml builds it (so both sides rotate
/// by the same angles), the rotation in f64.
fn rope_ref(
    x: &[f32],
    n_head: usize,
    head_dim: usize,
    positions: &[i32],
    p: &RopeParams,
    ff: Option<&[f32]>,
) -> Vec<f64> {
    let half = p.n_rot / 2;
    let theta_scale = p.base.powf(-2.0 / p.n_rot as f32);
    let mut out: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (r, &pos) in positions.iter().enumerate() {
        let mut theta_base = pos as f32;
        let mut angles = vec![0.0f32; half];
        for (i, a) in angles.iter_mut().enumerate() {
            let f = ff.map_or(1.0, |f| f[i]);
            *a = p.freq_scale * theta_base / f;
            theta_base *= theta_scale;
        }
        for h in 0..n_head {
            let base = (r * n_head + h) * head_dim;
            for (i, &a) in angles.iter().enumerate() {
                let (ia, ib) = if p.neox {
                    (i, i + half)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (x0, x1) = (x[base + ia] as f64, x[base + ib] as f64);
                let (s, co) = (a as f64).sin_cos();
                out[base + ia] = x0 * co - x1 * s;
                out[base + ib] = x0 * s + x1 * co;
            }
        }
    }
    out
}

pub fn rope(c: &mut Ctx) -> Result<()> {
    let n_head = 3;
    for head_dim in [64usize, 128, 256] {
        for neox in [false, true] {
            for (n_rot, scattered, factors, freq_scale) in [
                (head_dim, false, false, 1.0f32),
                (head_dim / 2, true, false, 0.5),
                (head_dim, true, true, 1.0),
            ] {
                let positions: Vec<i32> = if scattered {
                    vec![5, 900, 3, 4000, 77]
                } else {
                    (17..22).collect()
                };
                let rows = positions.len();
                let p = RopeParams {
                    n_rot,
                    base: 10000.0,
                    freq_scale,
                    neox,
                };
                let ffv: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + (i % 7) as f32 * 0.5).collect();
                let ffw = if factors {
                    Some(f32_weight(c.be, "rope_freqs", &ffv)?)
                } else {
                    None
                };
                let x = c.rng.normals(rows * n_head * head_dim, 1.0);
                let mut xb = buffer(c.be, "x", x.len(), &x)?;
                c.be.rope(&mut xb, n_head, head_dim, &positions, &p, ffw.as_ref())?;
                let out = read(c.be, &xb, x.len())?;
                let reference = rope_ref(
                    &x,
                    n_head,
                    head_dim,
                    &positions,
                    &p,
                    factors.then_some(ffv.as_slice()),
                );
                c.report.measured(
                    "rope",
                    format!(
                        "{} d={head_dim} rot={n_rot} {}{}{}",
                        if neox { "neox" } else { "normal" },
                        if scattered {
                            "scattered pos"
                        } else {
                            "pos 17.."
                        },
                        if factors { " +freq factors" } else { "" },
                        if freq_scale != 1.0 { " scale 0.5" } else { "" }
                    ),
                    Measure::of(&out, &reference),
                    1e-5,
                    1e-10,
                );
            }
        }
    }
    Ok(())
}

/// The residual add + RMS norm: the updated stream (exact f32 sums) and the normed rows.
pub fn add_rms_norm(c: &mut Ctx) -> Result<()> {
    for (rows, n) in [(1usize, 4096usize), (7, 896), (3, 100)] {
        let x = c.rng.normals(rows * n, 1.0);
        let y = c.rng.normals(rows * n, 1.0);
        let wv = c.rng.normals(n, 1.0);
        let w = f32_weight(c.be, "norm", &wv)?;
        let mut xb = buffer(c.be, "x", x.len(), &x)?;
        let mut yb = buffer(c.be, "y", y.len(), &y)?;
        c.be.add_rms_norm(&mut xb, &mut yb, rows, n, &w, 1e-6)?;
        let sum: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        let sum_d: Vec<f64> = sum.iter().map(|&v| v as f64).collect();
        c.report.measured(
            "add_rms_norm",
            format!("residual rows={rows} n={n}"),
            Measure::of(&read(c.be, &xb, x.len())?, &sum_d),
            0.0,
            0.0,
        );
        let reference: Vec<f64> = sum.chunks(n).flat_map(|r| rms_ref(r, &wv, 1e-6)).collect();
        c.report.measured(
            "add_rms_norm",
            format!("normed rows={rows} n={n}"),
            Measure::of(&read(c.be, &yb, y.len())?, &reference),
            1e-5,
            1e-10,
        );
    }
    Ok(())
}

/// The fused per-head norm + RoPE of q and k against the f64 norm and [`rope_ref`].
pub fn norm_rope_qk(c: &mut Ctx) -> Result<()> {
    let (n_head, n_head_kv) = (5usize, 2usize);
    for head_dim in [64usize, 128, 256] {
        for (neox, normed, scattered) in [
            (true, true, false),
            (false, false, true),
            (true, true, true),
        ] {
            let positions: Vec<i32> = if scattered {
                vec![5, 900, 3, 4000]
            } else {
                (30..34).collect()
            };
            let rows = positions.len();
            let p = RopeParams {
                n_rot: head_dim,
                base: 1_000_000.0,
                freq_scale: 1.0,
                neox,
            };
            let q = c.rng.normals(rows * n_head * head_dim, 2.0);
            let k = c.rng.normals(rows * n_head_kv * head_dim, 2.0);
            let qnv: Vec<f32> = c.rng.normals(head_dim, 1.0);
            let knv: Vec<f32> = c.rng.normals(head_dim, 1.0);
            let (qn, kn) = (
                f32_weight(c.be, "q_norm", &qnv)?,
                f32_weight(c.be, "k_norm", &knv)?,
            );
            let mut qb = buffer(c.be, "q", q.len(), &q)?;
            let mut kb = buffer(c.be, "k", k.len(), &k)?;
            let norms = if normed {
                (Some(&qn), Some(&kn))
            } else {
                (None, None)
            };
            c.be.norm_rope_qk(
                &mut qb, n_head, &mut kb, n_head_kv, head_dim, norms, 1e-6, &positions, &p, None,
            )?;
            for (name, x, w, heads, b) in [
                ("q", &q, &qnv, n_head, &qb),
                ("k", &k, &knv, n_head_kv, &kb),
            ] {
                let normed_x: Vec<f32> = if normed {
                    x.chunks(head_dim)
                        .flat_map(|h| rms_ref(h, w, 1e-6))
                        .map(|v| v as f32)
                        .collect()
                } else {
                    x.clone()
                };
                let reference = rope_ref(&normed_x, heads, head_dim, &positions, &p, None);
                c.report.measured(
                    "norm_rope_qk",
                    format!(
                        "{name} d={head_dim} {}{}{}",
                        if neox { "neox" } else { "normal" },
                        if normed { " +norm" } else { "" },
                        if scattered { " scattered pos" } else { "" }
                    ),
                    Measure::of(&read(c.be, b, x.len())?, &reference),
                    1e-5,
                    1e-10,
                );
            }
        }
    }
    Ok(())
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

fn gelu_tanh(x: f64) -> f64 {
    0.5 * x * (1.0 + (0.797_884_560_802_865_4 * x * (1.0 + 0.044715 * x * x)).tanh())
}

pub fn elementwise(c: &mut Ctx) -> Result<()> {
    for n in [1usize, 1000, 70001] {
        let x = c.rng.normals(n, 3.0);
        let y = c.rng.normals(n, 3.0);
        let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let yd: Vec<f64> = y.iter().map(|&v| v as f64).collect();
        let yb = buffer(c.be, "y", n, &y)?;

        let mut xb = buffer(c.be, "x", n, &x)?;
        c.be.add(&mut xb, &yb, n)?;
        let r: Vec<f64> = xd.iter().zip(&yd).map(|(a, b)| a + b).collect();
        c.report.measured(
            "add",
            format!("n={n}"),
            Measure::of(&read(c.be, &xb, n)?, &r),
            1e-6,
            1e-12,
        );

        let mut xb = buffer(c.be, "x", n, &x)?;
        c.be.scale(&mut xb, n, 0.37)?;
        let r: Vec<f64> = xd.iter().map(|a| a * 0.37f32 as f64).collect();
        c.report.measured(
            "scale",
            format!("n={n}"),
            Measure::of(&read(c.be, &xb, n)?, &r),
            1e-6,
            1e-12,
        );

        for (act, name, f) in [
            (GluActivation::Silu, "glu silu", silu as fn(f64) -> f64),
            (GluActivation::GeluTanh, "glu gelu_tanh", gelu_tanh),
        ] {
            let mut xb = buffer(c.be, "gate", n, &x)?;
            c.be.glu(&mut xb, &yb, n, act)?;
            let r: Vec<f64> = xd.iter().zip(&yd).map(|(&g, &u)| f(g) * u).collect();
            let scale = xd
                .iter()
                .zip(&yd)
                .map(|(g, u)| (g * u).abs())
                .fold(0.0, f64::max);
            c.report.measured(
                name,
                format!("n={n}"),
                Measure::of_scaled(&read(c.be, &xb, n)?, &r, scale),
                1e-5,
                1e-10,
            );
        }

        let mut xb = buffer(c.be, "x", n, &x)?;
        c.be.softcap(&mut xb, n, 2.5)?;
        let r: Vec<f64> = xd.iter().map(|&a| 2.5 * (a / 2.5).tanh()).collect();
        c.report.measured(
            "softcap",
            format!("n={n}"),
            Measure::of(&read(c.be, &xb, n)?, &r),
            1e-5,
            1e-10,
        );
    }
    for (rows, width) in [(1usize, 1usize), (3, 37), (7, 896)] {
        let x = c.rng.normals(rows * width, 1.0);
        let b = c.rng.normals(width, 1.0);
        let bw = f32_weight(c.be, "bias", &b)?;
        let mut xb = buffer(c.be, "x", x.len(), &x)?;
        c.be.add_bias(&mut xb, rows, &bw)?;
        let r: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f64 + b[i % width] as f64)
            .collect();
        c.report.measured(
            "add_bias",
            format!("rows={rows} width={width}"),
            Measure::of(&read(c.be, &xb, x.len())?, &r),
            1e-6,
            1e-12,
        );
    }
    Ok(())
}

// ---- KV store and attention -----------------------------------------------------------------

/// One head zero-padded to whole blocks, encoded by the reference quantizer.
fn encode_head(ty: GgmlType, x: &[f32]) -> Result<Vec<u8>> {
    let pad = turbine_cuda::kv::padded_dim(ty, x.len());
    let mut padded = x.to_vec();
    padded.resize(pad, 0.0);
    let mut out = vec![0u8; turbine_cuda::kv::head_bytes(ty, x.len())];
    formats::quantize(ty, &padded, &mut out).with_context(|| format!("quantize {}", ty.name()))?;
    Ok(out)
}

/// The reference's view of a stored head: decoded values (rotated domain for turbo).
fn decode_head(ty: GgmlType, bytes: &[u8], pad: usize) -> Result<Vec<f32>> {
    let mut out = vec![0.0f32; pad];
    formats::dequantize(ty, bytes, &mut out)?;
    Ok(out)
}

fn kv_spec(n_head_kv: usize, dk: usize, dv: usize, tk: GgmlType, tv: GgmlType) -> KvSpec {
    KvSpec {
        layers: vec![KvLayerShape {
            n_head_kv,
            head_dim_k: dk,
            head_dim_v: dv,
            window: None,
        }],
        n_ctx: 2 * 1024,
        n_seq: 2,
        type_k: tk,
        type_v: tv,
    }
}

fn kv_cache(be: &CudaBackend, spec: &KvSpec) -> Result<turbine_cuda::CudaKvCache> {
    let bytes = be.kv_cache_bytes(spec)?;
    let s = BufferSpec {
        name: "kv".into(),
        device: be.device().to_string(),
        role: Role::Context,
        bytes,
        formula: String::new(),
    };
    Ok(be.alloc_kv(&s, spec)?)
}

pub fn kv_store(c: &mut Ctx) -> Result<()> {
    let n_head_kv = 2;
    for ty in turbine_cuda::kv::KV_TYPES {
        for hd in [64usize, 80, 128, 256] {
            let spec = kv_spec(n_head_kv, hd, hd, ty, ty);
            let mut kv = kv_cache(c.be, &spec)?;
            // Five contiguous rows of sequence 0, then three scattered rows over both sequences.
            let batches: [Vec<TokenPos>; 2] = [
                (0..5).map(|pos| TokenPos { seq: 0, pos }).collect(),
                vec![
                    TokenPos { seq: 1, pos: 0 },
                    TokenPos { seq: 0, pos: 5 },
                    TokenPos { seq: 1, pos: 1 },
                ],
            ];
            c.be.kv_reserve(&mut kv, 0, 6)?;
            c.be.kv_reserve(&mut kv, 1, 2)?;
            let (mut differ, mut total) = (0usize, 0usize);
            for rows in &batches {
                let n = rows.len() * n_head_kv * hd;
                let k = c.rng.normals(n, 1.5);
                let v = c.rng.normals(n, 0.5);
                let kb = buffer(c.be, "k", n, &k)?;
                let vb = buffer(c.be, "v", n, &v)?;
                c.be.kv_store(&mut kv, 0, rows, &kb, &vb)?;
                for (i, t) in rows.iter().enumerate() {
                    for h in 0..n_head_kv {
                        for (src, is_v) in [(&k, false), (&v, true)] {
                            let row = &src[(i * n_head_kv + h) * hd..][..hd];
                            let want = encode_head(ty, row)?;
                            let got = c.be.kv_cell_bytes(&kv, 0, t.seq, h, t.pos, is_v)?;
                            total += want.len();
                            differ += want.iter().zip(&got).filter(|(a, b)| a != b).count();
                        }
                    }
                }
            }
            c.report.push(
                "kv_store",
                format!("{} head={hd} (contiguous + scattered rows)", ty.name()),
                format!("bytes differing {differ}/{total}"),
                differ == 0,
            );
        }
    }
    Ok(())
}

struct AttnCase {
    tk: GgmlType,
    tv: GgmlType,
    hd: usize,
    gqa: usize,
    n_kv: usize,
    window: Option<usize>,
    softcap: Option<f32>,
}

/// The (K, V) type pairs checked: every type on each side (with f16 on the other), the
/// symmetric turbo pairs and two mixed ones.
fn attention_cases() -> Vec<AttnCase> {
    use GgmlType::*;
    let mut pairs: Vec<(GgmlType, GgmlType)> = Vec::new();
    for t in turbine_cuda::kv::KV_TYPES {
        pairs.push((t, F16));
        if t != F16 {
            pairs.push((F16, t));
        }
    }
    pairs.extend([
        (Turbo2, Turbo2),
        (Turbo3, Turbo3),
        (Turbo4, Turbo4),
        (Q8_0, Turbo4),
        (Turbo3, Q4_0),
    ]);
    let dims = [64usize, 128, 256];
    let gqas = [1usize, 2, 4, 8];
    let n_kvs = [1usize, 37, 300, 700];
    let mut cases: Vec<AttnCase> = pairs
        .into_iter()
        .enumerate()
        .map(|(i, (tk, tv))| AttnCase {
            tk,
            tv,
            hd: dims[i % 3],
            gqa: gqas[i % 4],
            n_kv: n_kvs[(i / 2) % 4],
            window: None,
            softcap: None,
        })
        .collect();
    cases.push(AttnCase {
        tk: Q8_0,
        tv: Q8_0,
        hd: 128,
        gqa: 4,
        n_kv: 300,
        window: Some(50),
        softcap: None,
    });
    cases.push(AttnCase {
        tk: Turbo4,
        tv: Turbo4,
        hd: 128,
        gqa: 2,
        n_kv: 300,
        window: Some(50),
        softcap: Some(30.0),
    });
    cases.push(AttnCase {
        tk: F16,
        tv: F16,
        hd: 256,
        gqa: 8,
        n_kv: 1,
        window: None,
        softcap: Some(20.0),
    });
    // Shapes of the tensor-core prefill beyond the rotation above: Qwen2.5-0.5B's group of 7
    // (64-row blocks of 7 heads × 9 positions, one row padding) with 64-wide heads; 256-wide
    // turbo heads (two 128-groups each) with a window; q8_0 K with turbo4 V at 128 (the auto
    // choice), GQA 4 as Qwen3-8B.
    cases.push(AttnCase {
        tk: Q8_0,
        tv: Q8_0,
        hd: 64,
        gqa: 7,
        n_kv: 300,
        window: None,
        softcap: None,
    });
    cases.push(AttnCase {
        tk: Turbo3,
        tv: Turbo3,
        hd: 256,
        gqa: 4,
        n_kv: 700,
        window: Some(200),
        softcap: None,
    });
    cases.push(AttnCase {
        tk: Q8_0,
        tv: Turbo4,
        hd: 128,
        gqa: 4,
        n_kv: 300,
        window: None,
        softcap: None,
    });
    cases
}

/// Tolerances of the f16 tensor-core prefill (rows ≥ turbine_cuda::ATTENTION_TC_MIN_ROWS): Q,
/// the decoded K and V and the softmax weights P are each rounded to f16 once (unit roundoff
/// u = 2⁻¹¹ ≈ 4.9e-4; an f16 cache's K and V exactly). A score's error is a sum of d
/// independent roundings of about u·|q_i·k_i| each, so typically u·√2·‖q‖‖k‖/√d·scale ≈ 1.4u
/// for unit-variance data (‖q‖‖k‖ ≈ d, scale = 1/√d) at any head size, and it moves the key's
/// weight by the same relative amount; with P's and V's own rounding an output is off by a few
/// u relative to the outputs' magnitude, and the mean squared error sits near u² ≈ 2.4e-7. The bounds are about 5u and 8u²; on an H100 every case stayed within
/// rel 7.4e-4 and nmse 2e-7. (The f32 kernels keep 1e-4.)
const TC_REL: f64 = 2.5e-3;
const TC_NMSE: f64 = 2e-6;

/// f64 attention of one query row over decoded keys/values (`keys[t]`, `vals[t]` padded heads
/// of the row's KV head), following TURBO-KV.md for turbo sides.
#[allow(clippy::too_many_arguments)]
fn attend_ref(
    q: &[f32],
    keys: &[Vec<f32>],
    vals: &[Vec<f32>],
    tk: GgmlType,
    tv: GgmlType,
    hdv: usize,
    scale: f32,
    lo: usize,
    hi: usize,
    softcap: Option<f32>,
) -> Vec<f64> {
    let pad_k = keys.first().map_or(q.len(), |k| k.len());
    let mut qr = q.to_vec();
    qr.resize(pad_k, 0.0);
    if tk.is_turbo() {
        for blk in qr.chunks_exact_mut(128) {
            if let Ok(b) = <&mut [f32; 128]>::try_from(blk) {
                formats::rotation::rotate(b);
            }
        }
    }
    let scores: Vec<f64> = (lo..hi)
        .map(|t| {
            let s: f64 = qr
                .iter()
                .zip(&keys[t])
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>()
                * scale as f64;
            match softcap {
                Some(c) => c as f64 * (s / c as f64).tanh(),
                None => s,
            }
        })
        .collect();
    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
    let l: f64 = w.iter().sum();
    let pad_v = vals.first().map_or(hdv, |v| v.len());
    let mut acc = vec![0.0f64; pad_v];
    for (i, t) in (lo..hi).enumerate() {
        for (a, &v) in acc.iter_mut().zip(&vals[t]) {
            *a += w[i] * v as f64;
        }
    }
    let mut out: Vec<f64> = acc.iter().map(|a| a / l).collect();
    if tv.is_turbo() {
        // R⁻¹ is linear; apply it in f64 through its definition: S1 · H/√128 · S2.
        for blk in out.chunks_exact_mut(128) {
            inverse_rotate_f64(blk);
        }
    }
    out.truncate(hdv);
    out
}

fn inverse_rotate_f64(y: &mut [f64]) {
    use formats::rotation::{sign, SIGNS_1, SIGNS_2};
    for (i, v) in y.iter_mut().enumerate() {
        *v *= sign(&SIGNS_2, i) as f64;
    }
    let mut h = 1;
    while h < 128 {
        for base in (0..128).step_by(2 * h) {
            for j in base..base + h {
                let (a, b) = (y[j], y[j + h]);
                y[j] = a + b;
                y[j + h] = a - b;
            }
        }
        h *= 2;
    }
    let s = 1.0 / 128f64.sqrt();
    for (i, v) in y.iter_mut().enumerate() {
        *v *= s * sign(&SIGNS_1, i) as f64;
    }
}

pub fn attention(c: &mut Ctx) -> Result<()> {
    let n_head_kv = 2;
    for case in attention_cases() {
        let (hd, n_kv) = (case.hd, case.n_kv);
        let n_head = n_head_kv * case.gqa;
        let spec = kv_spec(n_head_kv, hd, hd, case.tk, case.tv);
        let mut kv = kv_cache(c.be, &spec)?;
        // Sequence 0 holds n_kv tokens; sequence 1 holds 5 (for the mixed-sequence batch).
        let mut keys: [Vec<Vec<Vec<f32>>>; 2] = Default::default();
        let mut vals: [Vec<Vec<Vec<f32>>>; 2] = Default::default();
        for (seq, len) in [(0usize, n_kv), (1, 5)] {
            c.be.kv_reserve(&mut kv, seq, len)?;
            let rows: Vec<TokenPos> = (0..len).map(|pos| TokenPos { seq, pos }).collect();
            let n = len * n_head_kv * hd;
            let k = c.rng.normals(n, 1.0);
            let v = c.rng.normals(n, 1.0);
            let kb = buffer(c.be, "k", n, &k)?;
            let vb = buffer(c.be, "v", n, &v)?;
            c.be.kv_store(&mut kv, 0, &rows, &kb, &vb)?;
            keys[seq] = vec![Vec::new(); n_head_kv];
            vals[seq] = vec![Vec::new(); n_head_kv];
            for t in 0..len {
                for h in 0..n_head_kv {
                    let kr = &k[(t * n_head_kv + h) * hd..][..hd];
                    let vr = &v[(t * n_head_kv + h) * hd..][..hd];
                    let pk = turbine_cuda::kv::padded_dim(case.tk, hd);
                    let pv = turbine_cuda::kv::padded_dim(case.tv, hd);
                    keys[seq][h].push(decode_head(case.tk, &encode_head(case.tk, kr)?, pk)?);
                    vals[seq][h].push(decode_head(case.tv, &encode_head(case.tv, vr)?, pv)?);
                }
            }
        }
        let params = AttnParams {
            n_head,
            n_head_kv,
            head_dim_k: hd,
            head_dim_v: hd,
            scale: 1.0 / (hd as f32).sqrt(),
            window: case.window,
            softcap: case.softcap,
        };
        // Decode (split-K, workspace from the formula), prefill (direct, no workspace), and a
        // batch mixing both sequences (split-K over scattered rows).
        let last = n_kv - 1;
        let prefill_rows = n_kv.min(7);
        let mut modes: Vec<(&str, Vec<TokenPos>, bool)> = vec![
            ("decode", vec![TokenPos { seq: 0, pos: last }], true),
            (
                "prefill",
                (n_kv - prefill_rows..n_kv)
                    .map(|pos| TokenPos { seq: 0, pos })
                    .collect(),
                false,
            ),
            (
                "mixed seqs",
                vec![
                    TokenPos { seq: 1, pos: 4 },
                    TokenPos { seq: 0, pos: last },
                    TokenPos { seq: 1, pos: 2 },
                ],
                true,
            ),
        ];
        // Prefill of many rows (tensor cores): the whole sequence when short, else its last
        // 100 positions (rows starting mid-tile, a partial last block).
        let tc_rows = n_kv.min(100);
        if tc_rows >= turbine_cuda::ATTENTION_TC_MIN_ROWS {
            modes.push((
                "prefill tc",
                (n_kv - tc_rows..n_kv)
                    .map(|pos| TokenPos { seq: 0, pos })
                    .collect(),
                false,
            ));
        }
        for (mode, rows, with_ws) in modes {
            let nr = rows.len();
            let q = c.rng.normals(nr * n_head * hd, 1.0);
            let qb = buffer(c.be, "q", q.len(), &q)?;
            let mut ob = buffer(c.be, "out", nr * n_head * hd, &[])?;
            let ws_bytes = if with_ws {
                let shape = AttnShape {
                    rows: nr,
                    n_kv: spec.cells_per_seq(),
                    n_head,
                    n_head_kv,
                    head_dim_k: hd,
                    head_dim_v: hd,
                };
                c.be.attention_workspace_bytes(case.tk, case.tv, &shape)?
            } else {
                0
            };
            let mut ws = buffer(c.be, "ws", (ws_bytes / 4) as usize, &[])?;
            c.be.attention(&kv, 0, &rows, &qb, &params, &mut ob, &mut ws)?;
            let out = read(c.be, &ob, nr * n_head * hd)?;
            let mut reference = Vec::with_capacity(out.len());
            for (r, t) in rows.iter().enumerate() {
                let lo = case.window.map_or(0, |w| (t.pos + 1).saturating_sub(w));
                for h in 0..n_head {
                    let kvh = h / case.gqa;
                    reference.extend(attend_ref(
                        &q[(r * n_head + h) * hd..][..hd],
                        &keys[t.seq][kvh],
                        &vals[t.seq][kvh],
                        case.tk,
                        case.tv,
                        hd,
                        params.scale,
                        lo,
                        t.pos + 1,
                        case.softcap,
                    ));
                }
            }
            let mut name = format!(
                "K {} V {} d={hd} gqa={} n_kv={n_kv} {mode}",
                case.tk.name(),
                case.tv.name(),
                case.gqa
            );
            if let Some(w) = case.window {
                name.push_str(&format!(" win={w}"));
            }
            if let Some(s) = case.softcap {
                name.push_str(&format!(" cap={s}"));
            }
            let (rel, nmse) = if !with_ws && nr >= turbine_cuda::ATTENTION_TC_MIN_ROWS {
                (TC_REL, TC_NMSE)
            } else {
                (1e-4, 1e-9)
            };
            c.report
                .measured("attention", name, Measure::of(&out, &reference), rel, nmse);
        }
    }
    Ok(())
}
