//! Mixture-of-experts FFN on the CPU: softmax router, top-k, optional renormalisation, then
//! one grouped SwiGLU per selected expert over the rows that chose it. Only the selected
//! experts' quantized weights are read; each expert's matmuls run on the whole thread pool.
//!
//! Workspace (f32 slots, see [`moe_workspace_floats`]): per row the chosen expert ids (stored as
//! exact small floats) and weights, then per expert the gathered rows, their weights, the
//! gathered inputs, the gate/up activations and the down output.

use cpu::{Cpu, WeightView};

use super::weight::CpuWeight;
use crate::error::CoreError;
use crate::hybrid::{MoeParams, MoeShape};

/// Floats of the workspace for `shape`.
pub fn moe_workspace_floats(s: &MoeShape) -> usize {
    let sel = s.rows * s.n_expert_used;
    // ids + weights per (row, slot); row list + weight list per expert; gathered x; gate;
    // up; down output.
    2 * sel + 2 * s.rows + s.rows * s.n_embd + 2 * s.rows * s.n_ff_exp + s.rows * s.n_embd
}

fn err(msg: String) -> CoreError {
    CoreError::Kernel(format!("moe_ffn: {msg}"))
}

/// Expert `e` of a 3-D expert tensor `[k, n, n_expert]`: `n` rows of `k`.
fn expert_view(w: &CpuWeight, e: usize, n_expert: usize) -> Result<WeightView<'_>, CoreError> {
    if w.dims.len() != 3 || w.dims[2] as usize != n_expert {
        return Err(err(format!(
            "{}: shape {:?} is not [k, n, {n_expert}]",
            w.name, w.dims
        )));
    }
    let rows = w.dims[1] as usize;
    let bytes = rows * w.row_bytes;
    let all = w.data.as_slice();
    Ok(WeightView {
        ty: w.ty,
        bytes: &all[e * bytes..(e + 1) * bytes],
        rows,
        cols: w.row_len,
    })
}

/// Writes the top-k expert ids and routing weights of one row of router logits.
fn route_row(logits: &[f32], p: &MoeParams, ids: &mut [f32], weights: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let mut chosen_sum = 0.0f32;
    for slot in 0..p.n_expert_used {
        // Largest remaining probability; ties go to the lower expert id.
        let mut best = usize::MAX;
        let mut best_l = f32::NEG_INFINITY;
        for (e, &l) in logits.iter().enumerate() {
            if ids[..slot].iter().any(|&id| id as usize == e) {
                continue;
            }
            if best == usize::MAX || l > best_l {
                best = e;
                best_l = l;
            }
        }
        let prob = (best_l - max).exp() / sum;
        ids[slot] = best as f32;
        weights[slot] = prob;
        chosen_sum += prob;
    }
    for w in weights.iter_mut() {
        if p.norm_topk && chosen_sum > 0.0 {
            *w /= chosen_sum;
        }
        *w *= p.weights_scale;
    }
}

#[allow(clippy::too_many_arguments)]
pub fn moe_ffn(
    cpu: &Cpu,
    x: &[f32],
    rows: usize,
    n_embd: usize,
    logits: &[f32],
    gate: &CpuWeight,
    up: &CpuWeight,
    down: &CpuWeight,
    p: &MoeParams,
    out: &mut [f32],
    ws: &mut [f32],
    scratch: &mut [u8],
) -> Result<(), CoreError> {
    let (k, ne, ff) = (p.n_expert_used, p.n_expert, p.n_ff_exp);
    if k == 0 || k > ne {
        return Err(err(format!("top-{k} of {ne} experts")));
    }
    let need = moe_workspace_floats(&p.shape(rows, n_embd));
    if ws.len() < need {
        return Err(err(format!(
            "workspace of {} floats, need {need}",
            ws.len()
        )));
    }
    if x.len() < rows * n_embd || out.len() < rows * n_embd || logits.len() < rows * ne {
        return Err(err("input, output or logits buffer too small".into()));
    }
    let (ids, rest) = ws.split_at_mut(rows * k);
    let (wts, rest) = rest.split_at_mut(rows * k);
    let (row_list, rest) = rest.split_at_mut(rows);
    let (row_w, rest) = rest.split_at_mut(rows);
    let (xg, rest) = rest.split_at_mut(rows * n_embd);
    let (g, rest) = rest.split_at_mut(rows * ff);
    let (u, rest) = rest.split_at_mut(rows * ff);
    let d = &mut rest[..rows * n_embd];

    for r in 0..rows {
        route_row(
            &logits[r * ne..(r + 1) * ne],
            p,
            &mut ids[r * k..(r + 1) * k],
            &mut wts[r * k..(r + 1) * k],
        );
    }

    let kerr = |e: cpu::CpuError| CoreError::Kernel(format!("moe_ffn: {e}"));
    for e in 0..ne {
        // The rows that chose expert e (each row chooses an expert at most once).
        let mut n = 0;
        for r in 0..rows {
            if let Some(slot) = ids[r * k..(r + 1) * k]
                .iter()
                .position(|&id| id as usize == e)
            {
                row_list[n] = r as f32;
                row_w[n] = wts[r * k + slot];
                n += 1;
            }
        }
        if n == 0 {
            continue;
        }
        for i in 0..n {
            let r = row_list[i] as usize;
            xg[i * n_embd..(i + 1) * n_embd].copy_from_slice(&x[r * n_embd..(r + 1) * n_embd]);
        }
        let (gv, uv, dv) = (
            expert_view(gate, e, ne)?,
            expert_view(up, e, ne)?,
            expert_view(down, e, ne)?,
        );
        if gv.rows != ff || uv.rows != ff || dv.rows != n_embd || dv.cols != ff {
            return Err(err(format!(
                "expert shapes gate {}×{}, up {}×{}, down {}×{} do not match n_embd {n_embd}, n_ff_exp {ff}",
                gv.rows, gv.cols, uv.rows, uv.cols, dv.rows, dv.cols
            )));
        }
        cpu::matmul(cpu, &gv, &xg[..n * n_embd], n, &mut g[..n * ff], scratch).map_err(kerr)?;
        cpu::matmul(cpu, &uv, &xg[..n * n_embd], n, &mut u[..n * ff], scratch).map_err(kerr)?;
        cpu::swiglu_inplace(cpu, &mut g[..n * ff], &u[..n * ff]).map_err(kerr)?;
        cpu::matmul(cpu, &dv, &g[..n * ff], n, &mut d[..n * n_embd], scratch).map_err(kerr)?;
        for i in 0..n {
            let r = row_list[i] as usize;
            let w = row_w[i];
            let dst = &mut out[r * n_embd..(r + 1) * n_embd];
            for (o, &v) in dst.iter_mut().zip(&d[i * n_embd..(i + 1) * n_embd]) {
                *o += w * v;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_bytes::HostBytes;
    use formats::GgmlType;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// A 3-D expert tensor `[k, n, n_expert]` of `ty` and its dequantized values.
    fn expert_tensor(
        name: &str,
        ty: GgmlType,
        k: usize,
        n: usize,
        ne: usize,
        seed: &mut u64,
    ) -> (CpuWeight, Vec<f32>) {
        let vals: Vec<f32> = (0..k * n * ne)
            .map(|_| lcg(seed) / (k as f32).sqrt())
            .collect();
        let bytes_len = ty.bytes_for((k * n * ne) as u64).unwrap() as usize;
        let mut bytes = vec![0u8; bytes_len];
        formats::quantize(ty, &vals, &mut bytes).unwrap();
        let mut deq = vec![0f32; vals.len()];
        formats::dequantize(ty, &bytes, &mut deq).unwrap();
        let w = CpuWeight::new(
            name,
            ty,
            &[k as u64, n as u64, ne as u64],
            HostBytes::from_vec(bytes),
        )
        .unwrap();
        (w, deq)
    }

    /// Quantized expert stacks: each selected expert's slice of the 3-D tensor, against an f64
    /// reference over the dequantized weights (the kernel quantizes activations to 8 bits, so
    /// the bound is loose but far below the output scale).
    #[test]
    fn quantized_experts_match_dequantized_reference() {
        let cpu = Cpu::new(&cpu::CpuConfig {
            n_threads: 2,
            kernel_path: None,
        })
        .unwrap();
        for ty in [GgmlType::Q8_0, GgmlType::Q4K, GgmlType::F32] {
            let (e, ff, ne, k, rows) = (256, 512, 6, 2, 5);
            let mut seed = 7u64;
            let (gate, gd) = expert_tensor("gate", ty, e, ff, ne, &mut seed);
            let (up, ud) = expert_tensor("up", ty, e, ff, ne, &mut seed);
            let (down, dd) = expert_tensor("down", ty, ff, e, ne, &mut seed);
            let x: Vec<f32> = (0..rows * e).map(|_| lcg(&mut seed)).collect();
            let logits: Vec<f32> = (0..rows * ne).map(|_| 3.0 * lcg(&mut seed)).collect();
            let p = MoeParams {
                n_expert: ne,
                n_expert_used: k,
                n_ff_exp: ff,
                norm_topk: true,
                weights_scale: 1.0,
            };
            let shape = MoeShape {
                rows,
                n_embd: e,
                n_ff_exp: ff,
                n_expert: ne,
                n_expert_used: k,
            };
            let mut ws = vec![0f32; moe_workspace_floats(&shape)];
            let scratch_len = [e, ff]
                .iter()
                .map(|&c| cpu::matmul_scratch_bytes(ty, c, rows))
                .max()
                .unwrap();
            let mut scratch = vec![0u8; scratch_len];
            let mut out = vec![0.5f32; rows * e];
            moe_ffn(
                &cpu,
                &x,
                rows,
                e,
                &logits,
                &gate,
                &up,
                &down,
                &p,
                &mut out,
                &mut ws,
                &mut scratch,
            )
            .unwrap();

            let mut worst = 0f64;
            for r in 0..rows {
                let (mut ids, mut wts) = ([0f32; 2], [0f32; 2]);
                route_row(&logits[r * ne..(r + 1) * ne], &p, &mut ids, &mut wts);
                let xr = &x[r * e..(r + 1) * e];
                let mut want = vec![0.5f64; e];
                for (&id, &w) in ids.iter().zip(&wts) {
                    let ex = id as usize;
                    let h: Vec<f64> = (0..ff)
                        .map(|j| {
                            let row = |m: &[f32]| -> f64 {
                                let o = (ex * ff + j) * e;
                                m[o..o + e]
                                    .iter()
                                    .zip(xr)
                                    .map(|(&a, &b)| a as f64 * b as f64)
                                    .sum()
                            };
                            let g = row(&gd);
                            g / (1.0 + (-g).exp()) * row(&ud)
                        })
                        .collect();
                    for (i, wv) in want.iter_mut().enumerate() {
                        let o = (ex * e + i) * ff;
                        let d: f64 = dd[o..o + ff]
                            .iter()
                            .zip(&h)
                            .map(|(&a, &b)| a as f64 * b)
                            .sum();
                        *wv += w as f64 * d;
                    }
                }
                let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
                for (i, &wv) in want.iter().enumerate() {
                    worst = worst.max((out[r * e + i] as f64 - wv).abs() / scale);
                }
            }
            let bound = if ty == GgmlType::F32 { 1e-5 } else { 2e-2 };
            assert!(
                worst < bound,
                "{}: worst relative error {worst:.2e}",
                ty.name()
            );
        }
    }

    #[test]
    fn routes_top_k_with_renormalisation() {
        let p = MoeParams {
            n_expert: 4,
            n_expert_used: 2,
            n_ff_exp: 1,
            norm_topk: true,
            weights_scale: 1.0,
        };
        let logits = [0.0f32, 2.0, 1.0, -1.0];
        let (mut ids, mut w) = ([0.0f32; 2], [0.0f32; 2]);
        route_row(&logits, &p, &mut ids, &mut w);
        assert_eq!(ids, [1.0, 2.0]);
        // softmax restricted to {2.0, 1.0}: e/(e+1), 1/(e+1)
        let e = std::f32::consts::E;
        assert!((w[0] - e / (e + 1.0)).abs() < 1e-6);
        assert!((w[1] - 1.0 / (e + 1.0)).abs() < 1e-6);
        let p2 = MoeParams {
            norm_topk: false,
            ..p
        };
        route_row(&logits, &p2, &mut ids, &mut w);
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        assert!((w[0] - 2f32.exp() / z).abs() < 1e-6);
    }
}
