//! Tiny random-weight models of every supported architecture (`make_tiny_model.py`: llama.cpp
//! names and keys, all weights f32) against the float64 reference forward pass. With f32
//! weights the matmuls read f32 activations, so the whole forward pass is exact up to f32
//! rounding: the bound is tight, and the f16 KV cache's own error shows end to end.
//! Covers what no shipped model does: qwen3 (Q/K norms), llama 3 `rope_freqs`, and gemma3's
//! sliding window (window 5 over 12 tokens) with a global layer.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use formats::GgmlType;
use models::RunConfig;

const TOKENS: [u32; 12] = [1, 7, 42, 99, 3, 250, 17, 8, 64, 128, 5, 200];

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("TURBINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    if p.exists() {
        return Some(p);
    }
    if std::env::var("TURBINE_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!(
            "{} missing: run scripts/test.sh to create the venv",
            p.display()
        );
    }
    eprintln!("skipped: {} missing", p.display());
    None
}

fn script(name: &str) -> String {
    format!("{}/tests/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Builds the model and returns its path and the reference logits of every token.
fn build(py: &PathBuf, variant: &str) -> (PathBuf, Vec<Vec<f64>>) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("synthetic-models");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{variant}.gguf"));
    let st = Command::new(py)
        .arg(script("make_tiny_model.py"))
        .arg(variant)
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success(), "make_tiny_model.py {variant}");
    let out = Command::new(py)
        .arg(script("reference_forward.py"))
        .arg("--all")
        .arg(&path)
        .args(TOKENS.iter().map(|t| t.to_string()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    (path, rows)
}

/// Our logits for every token, prefilled in chunks of 4 (later chunks read cached K/V).
fn ours(path: &std::path::Path, tk: GgmlType, tv: GgmlType) -> Vec<Vec<f64>> {
    let cfg = RunConfig {
        n_ctx: 64,
        n_ubatch: 4,
        n_batch: 4,
        type_k: tk,
        type_v: tv,
        logits_all: true,
        ..RunConfig::default()
    };
    let mut m = load(path, cfg, 2);
    let mut rows = Vec::new();
    for chunk in TOKENS.chunks(4) {
        m.forward(0, chunk, true).unwrap();
        for r in 0..chunk.len() {
            rows.push(m.logits(r).unwrap().iter().map(|&x| x as f64).collect());
        }
    }
    rows
}

/// Largest |a − b| over all rows, relative to the largest |b|.
fn rel_err(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let scale = b
        .iter()
        .flatten()
        .map(|x| x.abs())
        .fold(0.0, f64::max)
        .max(1e-9);
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

fn check(variant: &str) {
    let Some(py) = python() else { return };
    let (path, want) = build(&py, variant);
    let f32_kv = ours(&path, GgmlType::F32, GgmlType::F32);
    let e = rel_err(&f32_kv, &want);
    let f16_kv = ours(&path, GgmlType::F16, GgmlType::F16);
    let e16 = rel_err(&f16_kv, &f32_kv);
    eprintln!("{variant}: f32 KV vs float64 reference {e:.2e}; f16 KV vs f32 KV {e16:.2e}");
    assert!(e < 1e-4, "{variant}: {e:.2e} from the float64 reference");
    assert!(e16 < 1e-3, "{variant}: f16 KV {e16:.2e} from the f32 KV");
}

#[test]
fn llama() {
    check("llama");
}

#[test]
fn llama_with_rope_freqs() {
    check("llama-rope-freqs");
}

#[test]
fn qwen2() {
    check("qwen2");
}

#[test]
fn qwen3() {
    check("qwen3");
}

#[test]
fn gemma3_sliding_window() {
    check("gemma3");
}

/// Several sequences in one `forward_batch` (mixed prefill, then one decode row each) give
/// the logits each sequence gets alone.
#[test]
#[allow(clippy::needless_range_loop)] // steps index several per-sequence arrays at once
fn batched_sequences_match_one_at_a_time() {
    use models::BatchRow;
    let Some(py) = python() else { return };
    let (path, _) = build(&py, "gemma3");
    let prompts: [&[u32]; 3] = [&[1, 7, 42, 99, 3], &[250, 17], &[8, 64, 128, 5, 200, 9, 11]];
    let steps = 4;
    let cfg = RunConfig {
        n_ctx: 3 * 32,
        n_seq: 3,
        n_ubatch: 16,
        n_batch: 16,
        type_k: GgmlType::F32,
        type_v: GgmlType::F32,
        ..RunConfig::default()
    };
    // One sequence at a time (each in its own slot of the same model).
    let mut m = load(&path, cfg.clone(), 2);
    let mut alone: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut chosen: Vec<Vec<u32>> = Vec::new();
    for (s, p) in prompts.iter().enumerate() {
        m.forward(s, p, false).unwrap();
        let mut lg = vec![m.logits(0).unwrap().to_vec()];
        let mut toks = Vec::new();
        for _ in 0..steps {
            let t = argmax(lg.last().unwrap());
            toks.push(t);
            m.forward(s, &[t], false).unwrap();
            lg.push(m.logits(0).unwrap().to_vec());
        }
        alone.push(lg);
        chosen.push(toks);
    }
    // All together: one batch of the three prompts, then one row per sequence per step.
    let mut m = load(&path, cfg, 2);
    let mut batch = Vec::new();
    for (s, p) in prompts.iter().enumerate() {
        for (i, &t) in p.iter().enumerate() {
            batch.push(BatchRow {
                seq: s,
                token: t,
                logits: i + 1 == p.len(),
            });
        }
    }
    let mut worst = 0.0f32;
    let compare = |m: &models::Model<_>, step: usize, worst: &mut f32| {
        for (s, runs) in alone.iter().enumerate() {
            let got = m.logits(s).unwrap();
            let want = &runs[step];
            let scale = want.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
            for (g, w) in got.iter().zip(want) {
                *worst = worst.max((g - w).abs() / scale);
            }
        }
    };
    m.forward_batch(&batch).unwrap();
    compare(&m, 0, &mut worst);
    for step in 0..steps {
        let rows: Vec<BatchRow> = (0..3)
            .map(|s| BatchRow {
                seq: s,
                token: chosen[s][step],
                logits: true,
            })
            .collect();
        m.forward_batch(&rows).unwrap();
        compare(&m, step + 1, &mut worst);
    }
    eprintln!("batched vs one at a time: {worst:.2e} relative");
    assert!(worst < 1e-5, "{worst}");
    for (s, p) in prompts.iter().enumerate() {
        assert_eq!(m.seq_len(s), p.len() + steps);
    }
    // A row after a sequence's logits row is refused, and nothing is appended.
    let bad = [
        BatchRow {
            seq: 0,
            token: 1,
            logits: true,
        },
        BatchRow {
            seq: 0,
            token: 2,
            logits: false,
        },
    ];
    assert!(m.forward_batch(&bad).is_err());
    assert_eq!(m.seq_len(0), prompts[0].len() + steps);
}
