//! `turbine check-backend --time`: device time of the matmul kernels on real model shapes
//! (Qwen3-8B's projections and output), as microseconds per call and the weight bandwidth
//! they reach. Weights are random bytes with finite block scales: the kernels' speed does not
//! depend on the values, and random bytes make a 150k-row weight instantly.

use std::time::Instant;

use anyhow::{Context as _, Result};
use formats::GgmlType;
use turbine_core::{Backend, BufferSpec, HostBytes, Role};
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

pub fn run(be: &CudaBackend, seed: u64) -> Result<()> {
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
