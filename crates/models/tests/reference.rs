//! Our forward pass against an independent float64 one (`reference_forward.py`: numpy and the
//! `gguf` package's dequantizers, written from the architectures' definitions). The reference
//! has no activation quantization and no f16, so it checks the math of each architecture
//! (norm conventions, RoPE layout and bases, GQA, biases, gemma's scales and post-norms) apart
//! from kernel rounding. Needs `<root>/.venv/bin/python` (or TURBINE_PYTHON) with gguf + numpy.

mod common;

use std::process::Command;

use common::*;
use formats::GgmlType;
use models::RunConfig;
use text::tokenizer::Tokenizer;

fn python() -> Option<std::path::PathBuf> {
    let p = std::env::var_os("TURBINE_PYTHON")
        .map(std::path::PathBuf::from)
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

/// Allowed |Δ log-prob| for a token the reference gives `lp`: our 8-bit activation
/// quantization moves likely tokens by a few hundredths, unlikely ones more (float summation
/// order alone, e.g. a different add order in the AVX2 matmul, moves SmolLM2's p ≈ 0.01
/// tokens by up to 0.3 nat through it).
fn tolerance(lp: f64) -> f64 {
    0.1 + 0.08 * lp.abs()
}

fn check(model: &str, prompt: &str) {
    let Some(path) = model_path(model) else {
        return;
    };
    let Some(py) = python() else { return };
    let file = gguf::GgufFile::open(&path).unwrap();
    let ids = Tokenizer::from_gguf(&file)
        .unwrap()
        .encode(prompt, true, true);
    let out = Command::new(py)
        .arg(env!("CARGO_MANIFEST_DIR").to_string() + "/tests/reference_forward.py")
        .arg(&path)
        .args(ids.iter().map(|i| i.to_string()))
        .output()
        .expect("run reference_forward.py");
    assert!(
        out.status.success(),
        "reference_forward.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<f32> = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let want_lp = log_softmax(&want);

    let cfg = RunConfig {
        n_ctx: 256,
        n_ubatch: 64,
        n_batch: 64,
        type_k: GgmlType::F32,
        type_v: GgmlType::F32,
        ..RunConfig::default()
    };
    let mut m = load(&path, cfg, 2);
    m.forward(0, &ids, false).unwrap();
    let got_lp = log_softmax(m.logits(0).unwrap());
    assert_eq!(got_lp.len(), want_lp.len());
    let mut order: Vec<usize> = (0..want_lp.len()).collect();
    order.sort_by(|&a, &b| want_lp[b].total_cmp(&want_lp[a]));
    assert_eq!(
        argmax(m.logits(0).unwrap()) as usize,
        order[0],
        "{model}: top token differs from the reference"
    );
    for &id in &order[..10] {
        let d = (got_lp[id] - want_lp[id]).abs();
        eprintln!(
            "{model}: token {id}: ours {:.4}, reference {:.4}",
            got_lp[id], want_lp[id]
        );
        assert!(
            d < tolerance(want_lp[id]),
            "{model} token {id}: log-prob {:.4}, reference {:.4}",
            got_lp[id],
            want_lp[id]
        );
    }
}

#[test]
fn llama_smollm2_matches_float64_reference() {
    check(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "The capital of France is",
    );
}

// The larger vocabularies make the Python side take minutes: run with `--ignored`.
#[test]
#[ignore]
fn qwen2_matches_float64_reference() {
    check("qwen2.5-coder-0.5b-instruct.gguf", "def fibonacci(n):");
}

#[test]
#[ignore]
fn gemma3_matches_float64_reference() {
    check("gemma-3-270m-q4_k_m.gguf", "The capital of France is");
}
