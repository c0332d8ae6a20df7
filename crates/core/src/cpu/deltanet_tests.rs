//! The chunked delta rule against the row-by-row recurrence and an f64 recurrence.

use super::*;
use cpu::CpuConfig;

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn uniform(n: usize, lo: f32, hi: f32, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| lo + (hi - lo) * 0.5 * (lcg(seed) + 1.0))
        .collect()
}

struct Case {
    p: DeltaNetParams,
    rows: Vec<TokenPos>,
    qkv: Vec<f32>,
    alpha: Vec<f32>,
    beta: Vec<f32>,
    dt_bias: Vec<f32>,
    a: Vec<f32>,
    state: Vec<f32>,
}

/// Random inputs with realistic gates: `a = −e^{A_log}` in [−4, −0.5] and softplus inputs in
/// [−4, 2], so per-row log-decays lie in about [−8.5, −0.01] (a chunk's cumulative decay spans
/// from almost none to underflow); β = sigmoid of [−3, 3]; a nonzero initial state.
fn case(dk: usize, dv: usize, seqs: &[(usize, usize)], seed: u64) -> Case {
    let mut seed = seed;
    let p = DeltaNetParams {
        n_k_heads: 2,
        n_v_heads: 4,
        head_k_dim: dk,
        head_v_dim: dv,
        d_conv: 4,
        n_layers: 2,
        n_seq: 2,
    };
    let rows: Vec<TokenPos> = seqs
        .iter()
        .flat_map(|&(seq, len)| (0..len).map(move |i| TokenPos { seq, pos: i }))
        .collect();
    let n = rows.len();
    let nv = p.n_v_heads;
    let qkv = uniform(n * p.conv_channels(), -1.0, 1.0, &mut seed);
    let alpha = uniform(n * nv, -4.0, 2.0, &mut seed);
    let beta = uniform(n * nv, -3.0, 3.0, &mut seed);
    let dt_bias = uniform(nv, -0.5, 0.5, &mut seed);
    let a = uniform(nv, -4.0, -0.5, &mut seed);
    let state = uniform(p.state_floats(), -0.5, 0.5, &mut seed);
    Case {
        p,
        rows,
        qkv,
        alpha,
        beta,
        dt_bias,
        a,
        state,
    }
}

/// Runs layer 1 of the case with the given chunking threshold: (outputs, state).
fn run(c: &Case, cpu: &Cpu, min_chunked_rows: usize) -> (Vec<f32>, Vec<f32>) {
    run_with(c, cpu, min_chunked_rows, &ChunkScratch::default())
}

fn run_with(
    c: &Case,
    cpu: &Cpu,
    min_chunked_rows: usize,
    scratch: &ChunkScratch,
) -> (Vec<f32>, Vec<f32>) {
    let mut state = c.state.clone();
    let mut out = vec![0.0; c.rows.len() * c.p.n_v_heads * c.p.head_v_dim];
    check(&c.p, 1, &c.rows, state.len()).expect("shapes");
    delta_rule_runs(
        cpu,
        scratch,
        &c.p,
        1,
        &c.rows,
        &c.qkv,
        [&c.alpha, &c.beta, &c.dt_bias, &c.a],
        &mut state,
        &mut out,
        min_chunked_rows,
    )
    .expect("delta rule");
    (out, state)
}

/// The recurrence in f64 from the same f32 inputs (the transformers recurrent form).
fn reference(c: &Case) -> (Vec<f64>, Vec<f64>) {
    let p = &c.p;
    let (nk, nv, dk, dv, ch) = (
        p.n_k_heads,
        p.n_v_heads,
        p.head_k_dim,
        p.head_v_dim,
        p.conv_channels(),
    );
    let mut state: Vec<f64> = c.state.iter().map(|&x| x as f64).collect();
    let mut out = vec![0.0f64; c.rows.len() * nv * dv];
    for (r, tp) in c.rows.iter().enumerate() {
        let row: Vec<f64> = c.qkv[r * ch..(r + 1) * ch]
            .iter()
            .map(|&x| x as f64)
            .collect();
        for h in 0..nv {
            let kh = h % nk;
            let q = &row[kh * dk..(kh + 1) * dk];
            let k = &row[nk * dk + kh * dk..nk * dk + (kh + 1) * dk];
            let v = &row[2 * nk * dk + h * dv..2 * nk * dk + (h + 1) * dv];
            let qs = 1.0 / (q.iter().map(|x| x * x).sum::<f64>() + 1e-6).sqrt();
            let ks = 1.0 / (k.iter().map(|x| x * x).sum::<f64>() + 1e-6).sqrt();
            let qn: Vec<f64> = q.iter().map(|x| x * qs / (dk as f64).sqrt()).collect();
            let kn: Vec<f64> = k.iter().map(|x| x * ks).collect();
            let x = (c.alpha[r * nv + h] + c.dt_bias[h]) as f64;
            let g = c.a[h] as f64 * (1.0 + x.exp()).ln();
            let b = 1.0 / (1.0 + (-(c.beta[r * nv + h] as f64)).exp());
            let base = p.ssm_state_offset(1, tp.seq) + h * dk * dv;
            let s = &mut state[base..base + dk * dv];
            for x in s.iter_mut() {
                *x *= g.exp();
            }
            for j in 0..dv {
                let mem: f64 = (0..dk).map(|i| s[i * dv + j] * kn[i]).sum();
                let d = b * (v[j] - mem);
                for i in 0..dk {
                    s[i * dv + j] += kn[i] * d;
                }
                out[(r * nv + h) * dv + j] = (0..dk).map(|i| s[i * dv + j] * qn[i]).sum();
            }
        }
    }
    (out, state)
}

/// max |x − ref| / max |ref|.
fn rel(x: &[f32], r: &[f64]) -> f64 {
    let scale = r.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    let diff = x
        .iter()
        .zip(r)
        .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b).abs()));
    diff / scale
}

/// Each sequence layout through both forms. Bounds (max-abs relative): the f32 recurrence
/// itself lies ~5e-7 from f64; the chunked form reorders sums over up to 64 rows and d_k terms
/// and forms decays as e^{Γ_t − Γ_s}, and lies within ~3e-6. Each form must be within 2e-5 of
/// f64 (so within 4e-5 < 1e-4 of each other): about 8× headroom over rounding, while any
/// slip in the algebra (an index, a decay, a missing β) shows up as 1e-3 or more.
fn compare(dk: usize, dv: usize, seqs: &[(usize, usize)], cpu: &Cpu) {
    let c = case(dk, dv, seqs, 7 + seqs.len() as u64 * 31 + dk as u64);
    let (ro, rs) = reference(&c);
    let (out_rec, st_rec) = run(&c, cpu, usize::MAX);
    let (out_chk, st_chk) = run(&c, cpu, 1);
    let errs = [
        ("recurrent output", rel(&out_rec, &ro)),
        ("recurrent state", rel(&st_rec, &rs)),
        ("chunked output", rel(&out_chk, &ro)),
        ("chunked state", rel(&st_chk, &rs)),
    ];
    eprintln!("dk {dk} dv {dv} runs {seqs:?}: {errs:?}");
    for (what, e) in errs {
        assert!(e <= 2e-5, "{seqs:?}: {what} off by {e:.3e} relative to f64");
    }
    let to64 = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<_>>();
    assert!(rel(&out_chk, &to64(&out_rec)) <= 1e-4);
    assert!(rel(&st_chk, &to64(&st_rec)) <= 1e-4);
    // The untouched layer and the conv states are left alone.
    let l0 = c.p.ssm_state_offset(1, 0);
    assert_eq!(
        st_chk[..l0 - c.p.conv_state_floats()],
        c.state[..l0 - c.p.conv_state_floats()]
    );
}

fn cpu(threads: usize, path: KernelPath) -> Option<Cpu> {
    if !path.is_supported() {
        eprintln!("skipped: {} not supported here", path.name());
        return None;
    }
    Some(
        Cpu::new(&CpuConfig {
            n_threads: threads,
            kernel_path: Some(path),
        })
        .expect("cpu"),
    )
}

#[test]
fn chunked_matches_recurrent_at_chunk_edges() {
    for path in [KernelPath::Scalar, KernelPath::detect()] {
        let Some(cpu) = cpu(2, path) else { continue };
        for len in [1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
            compare(128, 128, &[(0, len)], &cpu);
        }
    }
}

#[test]
fn chunked_matches_recurrent_for_odd_heads_and_interleaved_sequences() {
    for path in [KernelPath::Scalar, KernelPath::detect()] {
        let Some(cpu) = cpu(2, path) else { continue };
        // Head sizes that leave edges in every register block.
        compare(24, 20, &[(0, CHUNK + 7)], &cpu);
        compare(8, 40, &[(1, 2 * CHUNK + 3)], &cpu);
        // Runs of two sequences: each run from the state its sequence's previous run left.
        compare(
            32,
            16,
            &[(0, CHUNK + 3), (1, 17), (0, 5), (1, CHUNK), (0, 1)],
            &cpu,
        );
    }
}

#[test]
fn workspaces_are_reused_and_remade_for_other_heads() {
    // One backend's scratch across passes of different head sizes: the same results as
    // fresh workspaces (stale rows of an earlier, longer chunk must not leak in).
    let cpu = cpu(2, KernelPath::detect()).expect("cpu");
    let scratch = ChunkScratch::default();
    for (dk, dv, seqs) in [
        (32, 32, vec![(0, 2 * CHUNK + 9)]),
        (32, 32, vec![(1, 7), (0, 3)]),
        (16, 48, vec![(0, 20)]),
        (32, 32, vec![(0, 30)]),
    ] {
        let c = case(dk, dv, &seqs, 17);
        assert_eq!(run_with(&c, &cpu, 2, &scratch), run(&c, &cpu, 2));
    }
}

#[test]
fn production_threshold_gives_recurrent_decode() {
    // Runs below MIN_CHUNKED_ROWS take the recurrence bit for bit.
    let cpu = cpu(1, KernelPath::detect()).expect("cpu");
    let c = case(32, 32, &[(0, MIN_CHUNKED_ROWS - 1), (1, 1)], 3);
    assert_eq!(run(&c, &cpu, MIN_CHUNKED_ROWS), run(&c, &cpu, usize::MAX));
}

/// Measurement harness, not a check: one layer of a Qwen3.5-sized delta rule (16 key heads,
/// 32 value heads of 128) over a prompt of `DELTANET_ROWS` rows (default 512) on one thread, in
/// the form named by `DELTANET_FORM` (`recurrent`, `chunked` (from one row), or `setup` for the
/// input generation alone, to subtract). Run under `valgrind --tool=callgrind` or
/// `perf stat -e instructions` with `--ignored --exact`.
#[test]
#[ignore]
fn prefill_cost() {
    let form = std::env::var("DELTANET_FORM").unwrap_or_else(|_| "chunked".into());
    let n: usize = std::env::var("DELTANET_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let mut c = case(128, 128, &[(0, n)], 11);
    c.p.n_k_heads = 16;
    c.p.n_v_heads = 32;
    let mut seed = 5;
    c.qkv = uniform(n * c.p.conv_channels(), -1.0, 1.0, &mut seed);
    c.alpha = uniform(n * 32, -4.0, 2.0, &mut seed);
    c.beta = uniform(n * 32, -3.0, 3.0, &mut seed);
    c.dt_bias = uniform(32, -0.5, 0.5, &mut seed);
    c.a = uniform(32, -4.0, -0.5, &mut seed);
    c.state = vec![0.0; c.p.state_floats()];
    let cpu = cpu(1, KernelPath::detect()).expect("cpu");
    let min_rows = match form.as_str() {
        "setup" => return,
        "recurrent" => usize::MAX,
        _ => 1,
    };
    let t = std::time::Instant::now();
    let (out, _) = run(&c, &cpu, min_rows);
    eprintln!(
        "{form}: {:.1} ms (checksum {:.4})",
        t.elapsed().as_secs_f64() * 1e3,
        out.iter().map(|&x| x as f64).sum::<f64>()
    );
}
