//! Checks of the hybrid / MoE ops (qwen3moe, qwen35, qwen35moe): `moe_ffn`, `delta_net`,
//! `recurrent_reset`, `split_q_gate` and `sigmoid_mul` on CUDA against the CPU backend with the
//! same weights and inputs, and `moe_ffn` for every weight type against an f64 reference over
//! the `formats`-dequantized experts (the CPU's quantized products round activations to 8 bits,
//! so it is no tight reference there). Fresh random data; awkward shapes: expert counts from 4
//! to 160, top-k 1–8, rows on both sides of the decode/grouped switch, row lengths that are not
//! multiples of 32 or of the grouped tiles, key heads 16–256, value heads that are not
//! multiples of 32, several sequences interleaved, state carried across calls and reset.

use anyhow::{Context, Result};
use formats::GgmlType;
use turbine_core::cpu::{CpuBackend, CpuBuffer, CpuWeight};
use turbine_core::{
    Backend, DeltaNetParams, DeltaNetWeights, HostBytes, MoeExperts, MoeParams, TokenPos,
};
use turbine_cuda::{CudaWeight, MOE_VEC_MAX_ROWS, WEIGHT_TYPES};

use super::ops::{buffer, read, spec, Ctx};
use super::report::Measure;

fn cpu_backend() -> Result<CpuBackend> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    Ok(CpuBackend::new(threads.min(8))?)
}

fn cpu_buffer(cpu: &CpuBackend, name: &str, floats: usize, data: &[f32]) -> Result<CpuBuffer> {
    let mut b = cpu.alloc(&turbine_core::BufferSpec {
        name: name.to_string(),
        device: cpu.device().to_string(),
        role: turbine_core::Role::Compute,
        bytes: floats as u64 * 4,
        formula: String::new(),
    })?;
    b.f32_mut()[..data.len()].copy_from_slice(data);
    Ok(b)
}

/// One weight on both backends: `vals` quantized to `ty` with `dims` (ggml order); returns the
/// dequantized values too.
fn both_weight(
    c: &Ctx,
    cpu: &CpuBackend,
    name: &str,
    ty: GgmlType,
    dims: &[u64],
    vals: &[f32],
) -> Result<(CudaWeight, CpuWeight, Vec<f32>)> {
    let bytes = ty.bytes_for(vals.len() as u64).context("weight size")? as usize;
    let mut data = vec![0u8; bytes];
    formats::quantize(ty, vals, &mut data).with_context(|| format!("quantize {}", ty.name()))?;
    let mut deq = vec![0.0f32; vals.len()];
    formats::dequantize(ty, &data, &mut deq)?;
    let g = c.be.load_weight(
        "check.weights",
        name,
        ty,
        dims,
        HostBytes::from_vec(data.clone()),
    )?;
    let h = cpu.load_weight("check.weights", name, ty, dims, HostBytes::from_vec(data))?;
    Ok((g, h, deq))
}

// ---- moe_ffn ----------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct MoeCase {
    ty: GgmlType,
    n_embd: usize,
    n_ff: usize,
    n_expert: usize,
    k: usize,
    rows: usize,
    norm_topk: bool,
    scale: f32,
}

fn moe_cases() -> Vec<MoeCase> {
    let base = MoeCase {
        ty: GgmlType::F32,
        n_embd: 100,
        n_ff: 72,
        n_expert: 8,
        k: 2,
        rows: 1,
        norm_topk: true,
        scale: 1.0,
    };
    let big = MOE_VEC_MAX_ROWS + 1;
    let mut v = Vec::new();
    // Shapes at f32 (checked against the CPU backend too): expert counts, top-k 1..8, rows on
    // both sides of the vector/grouped switch, routing options.
    for (n_expert, k) in [(4, 1), (8, 2), (8, 8), (60, 4), (128, 8), (160, 3)] {
        for rows in [1, 3, MOE_VEC_MAX_ROWS, big, 70] {
            v.push(MoeCase {
                n_expert,
                k,
                rows,
                ..base
            });
        }
    }
    v.push(MoeCase {
        norm_topk: false,
        scale: 2.5,
        rows: 5,
        ..base
    });
    v.push(MoeCase {
        norm_topk: false,
        scale: 2.5,
        rows: 40,
        ..base
    });
    v.push(MoeCase {
        n_embd: 64,
        n_ff: 32,
        n_expert: 8,
        k: 3,
        rows: 300,
        ..base
    });
    // Every weight type, decode and grouped, rows of whole blocks.
    for ty in WEIGHT_TYPES {
        let (n_embd, n_ff) = match ty.block_size() {
            1 | 32 => (96, 160),
            _ => (256, 512),
        };
        for rows in [1, 2, 37] {
            v.push(MoeCase {
                ty,
                n_embd,
                n_ff,
                n_expert: 16,
                k: 4,
                rows,
                ..base
            });
        }
    }
    v
}

/// Routing of one row in f64: ids in (logit descending, id ascending) order and weights.
fn route_f64(logits: &[f32], m: &MoeCase) -> Vec<(usize, f64)> {
    let mx = logits
        .iter()
        .fold(f64::NEG_INFINITY, |a, &l| a.max(l as f64));
    let z: f64 = logits.iter().map(|&l| (l as f64 - mx).exp()).sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let chosen: Vec<(usize, f64)> = order[..m.k]
        .iter()
        .map(|&e| (e, (logits[e] as f64 - mx).exp() / z))
        .collect();
    let sum: f64 = chosen.iter().map(|c| c.1).sum();
    chosen
        .into_iter()
        .map(|(e, p)| {
            let p = if m.norm_topk { p / sum } else { p };
            (e, p * m.scale as f64)
        })
        .collect()
}

/// `out0 + Σ w_e down_e(silu(gate_e x) · up_e x)` in f64 over dequantized experts.
fn moe_ref(
    m: &MoeCase,
    x: &[f32],
    logits: &[f32],
    out0: &[f32],
    gate: &[f32],
    up: &[f32],
    down: &[f32],
) -> Vec<f64> {
    let (e, ff) = (m.n_embd, m.n_ff);
    let dot = |w: &[f32], v: &[f64]| -> f64 { w.iter().zip(v).map(|(&a, &b)| a as f64 * b).sum() };
    let mut out: Vec<f64> = out0.iter().map(|&v| v as f64).collect();
    for r in 0..m.rows {
        let xr: Vec<f64> = x[r * e..(r + 1) * e].iter().map(|&v| v as f64).collect();
        for (ex, w) in route_f64(&logits[r * m.n_expert..(r + 1) * m.n_expert], m) {
            let h: Vec<f64> = (0..ff)
                .map(|j| {
                    let o = (ex * ff + j) * e;
                    let g = dot(&gate[o..o + e], &xr);
                    g / (1.0 + (-g).exp()) * dot(&up[o..o + e], &xr)
                })
                .collect();
            for i in 0..e {
                let o = (ex * e + i) * ff;
                out[r * e + i] += w * dot(&down[o..o + ff], &h);
            }
        }
    }
    out
}

pub fn moe_ffn(c: &mut Ctx) -> Result<()> {
    let cpu = cpu_backend()?;
    for m in moe_cases() {
        let (e, ff, ne) = (m.n_embd, m.n_ff, m.n_expert);
        let scale = 1.0 / (e as f32).sqrt();
        let gv = c.rng.normals(e * ff * ne, scale);
        let uv = c.rng.normals(e * ff * ne, scale);
        let dv = c.rng.normals(e * ff * ne, 1.0 / (ff as f32).sqrt());
        let up_dims = [e as u64, ff as u64, ne as u64];
        let down_dims = [ff as u64, e as u64, ne as u64];
        let (g_gpu, g_cpu, gd) = both_weight(c, &cpu, "gate_exps", m.ty, &up_dims, &gv)?;
        let (u_gpu, u_cpu, ud) = both_weight(c, &cpu, "up_exps", m.ty, &up_dims, &uv)?;
        let (d_gpu, d_cpu, dd) = both_weight(c, &cpu, "down_exps", m.ty, &down_dims, &dv)?;
        let x = c.rng.normals(m.rows * e, 1.0);
        let logits = c.rng.normals(m.rows * ne, 2.0);
        let out0 = c.rng.normals(m.rows * e, 1.0);
        let p = MoeParams {
            n_expert: ne,
            n_expert_used: m.k,
            n_ff_exp: ff,
            norm_topk: m.norm_topk,
            weights_scale: m.scale,
        };
        let shape = p.shape(m.rows, e);

        let xb = buffer(c.be, "x", x.len(), &x)?;
        let lb = buffer(c.be, "logits", logits.len(), &logits)?;
        let mut ob = buffer(c.be, "out", out0.len(), &out0)?;
        let mut ws = c.be.alloc(&spec(
            c.be,
            "moe.workspace",
            c.be.moe_workspace_bytes(&shape),
        ))?;
        let mut scratch = c.be.alloc(&spec(c.be, "scratch", 0))?;
        let experts = MoeExperts {
            gate: &g_gpu,
            up: &u_gpu,
            down: &d_gpu,
        };
        c.be.moe_ffn(
            &xb,
            m.rows,
            &lb,
            &experts,
            &p,
            &mut ob,
            &mut ws,
            &mut scratch,
        )?;
        let out = read(c.be, &ob, out0.len())?;
        let label = format!(
            "{} e={e} ff={ff} experts={ne} top{} rows={}{}",
            m.ty.name(),
            m.k,
            m.rows,
            if m.norm_topk {
                String::new()
            } else {
                format!(" no-norm x{}", m.scale)
            }
        );
        let reference = moe_ref(&m, &x, &logits, &out0, &gd, &ud, &dd);
        c.report.measured(
            "moe_ffn",
            format!("{label} vs f64"),
            Measure::of(&out, &reference),
            1e-4,
            1e-9,
        );

        if m.ty == GgmlType::F32 {
            let xc = cpu_buffer(&cpu, "x", x.len(), &x)?;
            let lc = cpu_buffer(&cpu, "logits", logits.len(), &logits)?;
            let mut oc = cpu_buffer(&cpu, "out", out0.len(), &out0)?;
            let mut wsc = cpu_buffer(
                &cpu,
                "ws",
                (cpu.moe_workspace_bytes(&shape) / 4) as usize,
                &[],
            )?;
            let sb = [e, ff]
                .iter()
                .map(|&k| cpu.matmul_scratch_bytes(m.ty, k, m.rows))
                .max()
                .unwrap_or(0);
            let mut sc = cpu_buffer(&cpu, "scratch", (sb as usize).div_ceil(4), &[])?;
            let ce = MoeExperts {
                gate: &g_cpu,
                up: &u_cpu,
                down: &d_cpu,
            };
            cpu.moe_ffn(&xc, m.rows, &lc, &ce, &p, &mut oc, &mut wsc, &mut sc)?;
            let want: Vec<f64> = oc.f32()[..out0.len()].iter().map(|&v| v as f64).collect();
            c.report.measured(
                "moe_ffn",
                format!("{label} vs CPU"),
                Measure::of(&out, &want),
                1e-4,
                1e-9,
            );
        }
    }
    Ok(())
}

// ---- delta_net, recurrent_reset ---------------------------------------------------------------

/// Rows of one call: `(seq, n)` runs, interleaved row by row when `interleave`.
fn call_rows(runs: &[(usize, usize)], next_pos: &mut [usize], interleave: bool) -> Vec<TokenPos> {
    let mut rows = Vec::new();
    if interleave {
        let longest = runs.iter().map(|r| r.1).max().unwrap_or(0);
        for j in 0..longest {
            for &(seq, n) in runs {
                if j < n {
                    rows.push(TokenPos {
                        seq,
                        pos: next_pos[seq],
                    });
                    next_pos[seq] += 1;
                }
            }
        }
    } else {
        for &(seq, n) in runs {
            for _ in 0..n {
                rows.push(TokenPos {
                    seq,
                    pos: next_pos[seq],
                });
                next_pos[seq] += 1;
            }
        }
    }
    rows
}

/// One call of the delta_net check: `(sequence, rows)` runs, interleaved or not, and its name.
type DnStep = (Vec<(usize, usize)>, bool, &'static str);

struct DnSide<B: Backend> {
    state: B::Buffer,
    conv1d: B::Weight,
    dt_bias: B::Weight,
    a: B::Weight,
}

pub fn delta_net(c: &mut Ctx) -> Result<()> {
    let cpu = cpu_backend()?;
    // (k heads, v heads, key head, value head, conv width, layers, sequences)
    let cases = [
        (2, 4, 16, 16, 4, 3, 1),
        (1, 2, 64, 64, 4, 1, 2),
        (2, 4, 128, 128, 4, 2, 3),
        (2, 2, 128, 96, 3, 1, 2),
        (4, 8, 100, 40, 4, 2, 2),
        (1, 1, 256, 64, 2, 1, 1),
        (2, 6, 32, 160, 5, 1, 3),
    ];
    for (nk, nv, dk, dv, d_conv, n_layers, n_seq) in cases {
        let p = DeltaNetParams {
            n_k_heads: nk,
            n_v_heads: nv,
            head_k_dim: dk,
            head_v_dim: dv,
            d_conv,
            n_layers,
            n_seq,
        };
        let label = format!("k {nk}x{dk} v {nv}x{dv} conv {d_conv} seqs {n_seq}");
        dn_case(c, &cpu, &p, &label).with_context(|| format!("delta_net {label}"))?;
    }
    Ok(())
}

fn dn_case(c: &mut Ctx, cpu: &CpuBackend, p: &DeltaNetParams, label: &str) -> Result<()> {
    let ch = p.conv_channels();
    let nv = p.n_v_heads;
    let conv = c.rng.normals(ch * p.d_conv, 0.5);
    let dt = c.rng.normals(nv, 0.5);
    let a: Vec<f32> = c.rng.normals(nv, 0.5).iter().map(|v| -v.exp()).collect();
    let mk = |c: &Ctx, cpu: &CpuBackend, name: &str, dims: &[u64], v: &[f32]| {
        both_weight(c, cpu, name, GgmlType::F32, dims, v)
    };
    let (cg, cc, _) = mk(c, cpu, "ssm_conv1d", &[p.d_conv as u64, ch as u64], &conv)?;
    let (dg, dc, _) = mk(c, cpu, "ssm_dt.bias", &[nv as u64], &dt)?;
    let (ag, ac, _) = mk(c, cpu, "ssm_a", &[nv as u64], &a)?;
    let mut gpu = DnSide::<turbine_cuda::CudaBackend> {
        state: buffer(
            c.be,
            "recurrent",
            p.state_floats(),
            &vec![0.0; p.state_floats()],
        )?,
        conv1d: cg,
        dt_bias: dg,
        a: ag,
    };
    let mut host = DnSide::<CpuBackend> {
        state: cpu_buffer(cpu, "recurrent", p.state_floats(), &[])?,
        conv1d: cc,
        dt_bias: dc,
        a: ac,
    };
    let mut next_pos = vec![0usize; p.n_seq];
    // Prefill of sequence 0 (contiguous rows), then every sequence in one interleaved batch,
    // then two decode steps of one row per sequence; a reset of the last sequence; one more
    // batch. Each call on the last layer and, where there are several, layer 0 too.
    let last = p.n_seq - 1;
    let mut steps: Vec<DnStep> = vec![
        (vec![(0, 23)], false, "prefill"),
        (
            (0..p.n_seq).map(|s| (s, 5 + 2 * s)).collect(),
            true,
            "batch",
        ),
        ((0..p.n_seq).map(|s| (s, 1)).collect(), false, "decode"),
        ((0..p.n_seq).map(|s| (s, 1)).collect(), false, "decode"),
    ];
    steps.push(((0..p.n_seq).map(|s| (s, 3)).collect(), true, "after reset"));
    for (i, (runs, interleave, what)) in steps.iter().enumerate() {
        if *what == "after reset" {
            c.be.recurrent_reset(p, &mut gpu.state, last)?;
            cpu.recurrent_reset(p, &mut host.state, last)?;
            let got = read(c.be, &gpu.state, p.state_floats())?;
            compare_state(
                c,
                "recurrent_reset",
                &got,
                host.state.f32(),
                p,
                &format!("{label} seq {last}"),
            );
            next_pos[last] = 0;
        }
        let rows = call_rows(runs, &mut next_pos, *interleave);
        let layers: Vec<usize> = if p.n_layers > 1 {
            vec![p.n_layers - 1, 0]
        } else {
            vec![0]
        };
        for layer in layers {
            let n = rows.len();
            let qkv = c.rng.normals(n * ch, 1.0);
            let alpha = c.rng.normals(n * nv, 1.0);
            let beta = c.rng.normals(n * nv, 1.0);
            let out_n = n * nv * p.head_v_dim;
            let mut qg = buffer(c.be, "qkv", qkv.len(), &qkv)?;
            let ag = buffer(c.be, "alpha", alpha.len(), &alpha)?;
            let bg = buffer(c.be, "beta", beta.len(), &beta)?;
            let mut og = buffer(c.be, "out", out_n, &[])?;
            let wg = DeltaNetWeights {
                conv1d: &gpu.conv1d,
                dt_bias: &gpu.dt_bias,
                a: &gpu.a,
            };
            c.be.delta_net(
                p,
                layer,
                &rows,
                &wg,
                &mut qg,
                &ag,
                &bg,
                &mut gpu.state,
                &mut og,
            )?;
            let mut qc = cpu_buffer(cpu, "qkv", qkv.len(), &qkv)?;
            let acb = cpu_buffer(cpu, "alpha", alpha.len(), &alpha)?;
            let bcb = cpu_buffer(cpu, "beta", beta.len(), &beta)?;
            let mut oc = cpu_buffer(cpu, "out", out_n, &[])?;
            let wc = DeltaNetWeights {
                conv1d: &host.conv1d,
                dt_bias: &host.dt_bias,
                a: &host.a,
            };
            cpu.delta_net(
                p,
                layer,
                &rows,
                &wc,
                &mut qc,
                &acb,
                &bcb,
                &mut host.state,
                &mut oc,
            )?;
            let case = format!(
                "{label} {what} {} rows layer {layer} (step {i})",
                rows.len()
            );
            let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
            let got = read(c.be, &qg, qkv.len())?;
            c.report.measured(
                "delta_net",
                format!("{case} conv"),
                Measure::of(&got, &to64(&qc.f32()[..qkv.len()])),
                1e-5,
                1e-10,
            );
            let got = read(c.be, &og, out_n)?;
            c.report.measured(
                "delta_net",
                format!("{case} out"),
                Measure::of(&got, &to64(&oc.f32()[..out_n])),
                1e-4,
                1e-8,
            );
        }
        let got = read(c.be, &gpu.state, p.state_floats())?;
        compare_state(
            c,
            "delta_net",
            &got,
            host.state.f32(),
            p,
            &format!("{label} {what} state"),
        );
    }
    Ok(())
}

fn compare_state(c: &mut Ctx, op: &str, got: &[f32], want: &[f32], p: &DeltaNetParams, case: &str) {
    let want: Vec<f64> = want[..p.state_floats()].iter().map(|&v| v as f64).collect();
    c.report
        .measured(op, case.to_string(), Measure::of(got, &want), 1e-4, 1e-8);
}

// ---- split_q_gate, sigmoid_mul ---------------------------------------------------------------

pub fn gates(c: &mut Ctx) -> Result<()> {
    let cpu = cpu_backend()?;
    for (rows, n_head, hd) in [(1usize, 4usize, 64usize), (7, 16, 256), (3, 5, 80)] {
        let n = rows * n_head * hd;
        let qg = c.rng.normals(2 * n, 1.0);
        let qgb = buffer(c.be, "qg", qg.len(), &qg)?;
        let mut qb = buffer(c.be, "q", n, &[])?;
        let mut gb = buffer(c.be, "gate", n, &[])?;
        c.be.split_q_gate(&qgb, rows, n_head, hd, &mut qb, &mut gb)?;
        let qgc = cpu_buffer(&cpu, "qg", qg.len(), &qg)?;
        let mut qc = cpu_buffer(&cpu, "q", n, &[])?;
        let mut gc = cpu_buffer(&cpu, "gate", n, &[])?;
        cpu.split_q_gate(&qgc, rows, n_head, hd, &mut qc, &mut gc)?;
        let mut got = read(c.be, &qb, n)?;
        got.extend(read(c.be, &gb, n)?);
        let want: Vec<f64> = qc.f32()[..n]
            .iter()
            .chain(&gc.f32()[..n])
            .map(|&v| v as f64)
            .collect();
        c.report.measured(
            "split_q_gate",
            format!("rows={rows} heads={n_head} d={hd}"),
            Measure::of(&got, &want),
            0.0,
            0.0,
        );
    }
    for (rows, width, gate_width) in [(1usize, 64usize, 64usize), (9, 100, 100), (5, 2048, 1)] {
        let x = c.rng.normals(rows * width, 1.0);
        let g = c.rng.normals(rows * gate_width, 3.0);
        let mut xb = buffer(c.be, "x", x.len(), &x)?;
        let gb = buffer(c.be, "gate", g.len(), &g)?;
        c.be.sigmoid_mul(&mut xb, &gb, rows, width, gate_width)?;
        let mut xc = cpu_buffer(&cpu, "x", x.len(), &x)?;
        let gc = cpu_buffer(&cpu, "gate", g.len(), &g)?;
        cpu.sigmoid_mul(&mut xc, &gc, rows, width, gate_width)?;
        let got = read(c.be, &xb, x.len())?;
        let want: Vec<f64> = xc.f32()[..x.len()].iter().map(|&v| v as f64).collect();
        c.report.measured(
            "sigmoid_mul",
            format!("rows={rows} width={width} gate width {gate_width}"),
            Measure::of(&got, &want),
            1e-6,
            1e-12,
        );
    }
    Ok(())
}
