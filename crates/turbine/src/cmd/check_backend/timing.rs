//! `turbine check-backend --time`: device time of the matmul kernels on real model shapes
//! (Qwen3-8B's projections and output), as microseconds per call and the weight bandwidth
//! they reach. Weights are random bytes with finite block scales: the kernels' speed does not
//! depend on the values, and random bytes make a 150k-row weight instantly. Then one layer's
//! attention (Qwen3-8B: 32 query heads over 8 KV heads of 128) over a cache filled to depth,
//! for each KV type: decode (one row) with the bandwidth of the packed K/V it reads, and a
//! 512-row prefill at the end of the context.

use std::time::Instant;

use anyhow::{Context as _, Result};
use formats::GgmlType;
use turbine_core::{
    AttnParams, AttnShape, Backend, BufferSpec, HostBytes, KvLayerShape, KvSpec, Role, TokenPos,
};
use turbine_cuda::CudaBackend;

use super::rng::Rng;

fn spec(be: &CudaBackend, name: &str, bytes: u64) -> BufferSpec {
    BufferSpec {
        name: name.into(),
        device: be.device().to_string(),
        role: Role::Compute,
        bytes,
        formula: String::new(),
    }
}

/// Random weight bytes of `ty` whose f16 block scales are small finite numbers.
fn random_weight_bytes(rng: &mut Rng, ty: GgmlType, n: usize) -> Result<Vec<u8>> {
    let bytes = ty.bytes_for(n as u64).context("weight size")? as usize;
    let mut data: Vec<u8> = (0..bytes).map(|_| rng.below(256) as u8).collect();
    let scale = half::f16::from_f32(0.01).to_le_bytes();
    let block = ty.block_bytes();
    // Offsets of the f16 scale fields in each block (ggml layouts).
    let fields: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q8_0 | GgmlType::Iq4Nl | GgmlType::Q5_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        _ => &[],
    };
    if ty == GgmlType::F16 {
        for c in data.chunks_exact_mut(2) {
            c.copy_from_slice(&half::f16::from_f32(rng.below(1000) as f32 * 1e-4).to_le_bytes());
        }
    }
    for b in data.chunks_exact_mut(block) {
        for &f in fields {
            b[f..f + 2].copy_from_slice(&scale);
        }
    }
    Ok(data)
}

/// Times what `only` names (`matmul`, `attention`; everything when `None`).
pub fn run(be: &CudaBackend, seed: u64, only: Option<&str>) -> Result<()> {
    let wanted = |name: &str| only.is_none_or(|o| name.contains(o));
    if wanted("matmul") {
        matmuls(be, seed)?;
    }
    if wanted("attention") {
        attention(be, seed)?;
    }
    Ok(())
}

fn matmuls(be: &CudaBackend, seed: u64) -> Result<()> {
    let mut rng = Rng::new(seed);
    let shapes: [(&str, usize, usize); 4] = [
        ("q/o 4096x4096", 4096, 4096),
        ("gate/up 4096x12288", 4096, 12288),
        ("down 12288x4096", 12288, 4096),
        ("output 4096x151936", 4096, 151936),
    ];
    let types = [
        GgmlType::Q4K,
        GgmlType::Q6K,
        GgmlType::Q8_0,
        GgmlType::Q4_1,
        GgmlType::Q4_0,
        GgmlType::F16,
    ];
    println!(
        "| type | shape | rows | us/call | weight GB/s | TFLOP/s |\n|---|---|---|---|---|---|"
    );
    for ty in types {
        for &(label, k, n_out) in &shapes {
            let data = random_weight_bytes(&mut rng, ty, k * n_out)?;
            let w_bytes = data.len() as f64;
            let w = be.load_weight(
                "time.weights",
                label,
                ty,
                &[k as u64, n_out as u64],
                HostBytes::from_vec(data),
            )?;
            for rows in [1usize, 4, 512] {
                if rows == 512 && n_out > 20000 {
                    continue;
                }
                let mut x = be.alloc(&spec(be, "time.x", (rows * k * 4) as u64))?;
                let xs: Vec<f32> = (0..rows * k)
                    .map(|i| ((i % 97) as f32 - 48.0) * 0.01)
                    .collect();
                be.write_f32(&mut x, &xs)?;
                let mut out = be.alloc(&spec(be, "time.out", (rows * n_out * 4) as u64))?;
                let mut scratch = be.alloc(&spec(
                    be,
                    "time.scratch",
                    be.matmul_scratch_bytes(ty, k, rows).max(4),
                ))?;
                be.matmul(&w, &x, rows, &mut out, &mut scratch)?;
                be.synchronize()?;
                let reps = if rows >= 512 { 5 } else { 50 };
                let t0 = Instant::now();
                for _ in 0..reps {
                    be.matmul(&w, &x, rows, &mut out, &mut scratch)?;
                }
                be.synchronize()?;
                let dt = t0.elapsed().as_secs_f64() / reps as f64;
                println!(
                    "| {} | {label} | {rows} | {:.1} | {:.0} | {:.1} |",
                    ty.name(),
                    dt * 1e6,
                    w_bytes / dt / 1e9,
                    2.0 * (k * n_out * rows) as f64 / dt / 1e12
                );
            }
        }
    }
    Ok(())
}

/// Decode and prefill attention of one Qwen3-8B layer at depths 8192 and 32768, per KV type.
fn attention(be: &CudaBackend, seed: u64) -> Result<()> {
    let mut rng = Rng::new(seed ^ 0xa77e);
    let (n_head, n_head_kv, hd) = (32usize, 8usize, 128usize);
    let pairs = [
        (GgmlType::F16, GgmlType::F16),
        (GgmlType::Q8_0, GgmlType::Q8_0),
        (GgmlType::Q8_0, GgmlType::Turbo4),
        (GgmlType::Turbo4, GgmlType::Turbo4),
        (GgmlType::Turbo3, GgmlType::Turbo3),
        (GgmlType::Turbo2, GgmlType::Turbo2),
    ];
    println!(
        "\n| K / V | depth | decode us | KV GB/s | prefill 512 rows ms |\n|---|---|---|---|---|"
    );
    for (tk, tv) in pairs {
        for depth in [8192usize, 32768] {
            let spec = KvSpec {
                layers: vec![KvLayerShape {
                    n_head_kv,
                    head_dim_k: hd,
                    head_dim_v: hd,
                    window: None,
                }],
                n_ctx: depth,
                n_seq: 1,
                type_k: tk,
                type_v: tv,
            };
            let kv_bytes = be.kv_cache_bytes(&spec)?;
            let mut kv = be.alloc_kv(
                &BufferSpec {
                    name: "time.kv".into(),
                    device: be.device().to_string(),
                    role: Role::Context,
                    bytes: kv_bytes,
                    formula: String::new(),
                },
                &spec,
            )?;
            be.kv_reserve(&mut kv, 0, depth)?;
            // Fill the cache in chunks with random normal keys and values.
            let chunk = 2048usize;
            let n = chunk * n_head_kv * hd;
            let mut kb = be.alloc(&spec_of(be, "time.k", n as u64 * 4))?;
            let mut vb = be.alloc(&spec_of(be, "time.v", n as u64 * 4))?;
            for c0 in (0..depth).step_by(chunk) {
                let rows: Vec<TokenPos> = (c0..(c0 + chunk).min(depth))
                    .map(|pos| TokenPos { seq: 0, pos })
                    .collect();
                let m = rows.len() * n_head_kv * hd;
                be.write_f32(&mut kb, &rng.normals(m, 1.0))?;
                be.write_f32(&mut vb, &rng.normals(m, 1.0))?;
                be.kv_store(&mut kv, 0, &rows, &kb, &vb)?;
            }
            let params = AttnParams {
                n_head,
                n_head_kv,
                head_dim_k: hd,
                head_dim_v: hd,
                scale: 1.0 / (hd as f32).sqrt(),
                window: None,
                softcap: None,
            };
            let mut time = |rows: Vec<TokenPos>, reps: usize| -> Result<f64> {
                let nr = rows.len();
                let shape = AttnShape {
                    rows: nr,
                    n_kv: depth,
                    n_head,
                    n_head_kv,
                    head_dim_k: hd,
                    head_dim_v: hd,
                };
                let ws_bytes = be.attention_workspace_bytes(tk, tv, &shape)?;
                let mut ws = be.alloc(&spec_of(be, "time.ws", ws_bytes.max(4)))?;
                let mut q = be.alloc(&spec_of(be, "time.q", (nr * n_head * hd * 4) as u64))?;
                be.write_f32(&mut q, &rng.normals(nr * n_head * hd, 1.0))?;
                let mut out = be.alloc(&spec_of(be, "time.o", (nr * n_head * hd * 4) as u64))?;
                be.attention(&kv, 0, &rows, &q, &params, &mut out, &mut ws)?;
                be.synchronize()?;
                let t0 = Instant::now();
                for _ in 0..reps {
                    be.attention(&kv, 0, &rows, &q, &params, &mut out, &mut ws)?;
                }
                be.synchronize()?;
                Ok(t0.elapsed().as_secs_f64() / reps as f64)
            };
            let decode = time(
                vec![TokenPos {
                    seq: 0,
                    pos: depth - 1,
                }],
                50,
            )?;
            let prefill = time(
                (depth - 512..depth)
                    .map(|pos| TokenPos { seq: 0, pos })
                    .collect(),
                3,
            )?;
            println!(
                "| {} / {} | {depth} | {:.1} | {:.0} | {:.2} |",
                tk.name(),
                tv.name(),
                decode * 1e6,
                kv_bytes as f64 / decode / 1e9,
                prefill * 1e3
            );
        }
    }
    Ok(())
}

fn spec_of(be: &CudaBackend, name: &str, bytes: u64) -> BufferSpec {
    spec(be, name, bytes)
}
