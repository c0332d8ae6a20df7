//! qwen3, qwen3moe, qwen35 and qwen35moe against PyTorch `transformers` (5.17, f32, CPU, eager).
//!
//! `tests/data/<arch>.gguf` are tiny random-weight models written by
//! `scripts/reference/hf_tiny_models.py` with llama.cpp's tensor names and metadata keys;
//! `<arch>.ref.gguf` holds the logits transformers computed for a 40-token prompt and 64
//! greedy decode steps (tensor `logits` [n_vocab, 104], tokens in `ref.tokens`). Committed
//! because CI has no torch; the reference is independent of turbine.
//!
//! turbine runs the prompt in ubatches of 16 rows (so the recurrent state and the KV cache
//! carry across three prefill chunks), then the 64 decode steps one token at a time, and every
//! row of logits must match within 1e-3 relative (max |Δ| / max |ref| per row); dense qwen3
//! within 1e-4 (issue 4's bound: plain attention and FFN in f32, nothing approximated).
//! transformers' own f32 logits are within 8e-7 of the same model run in float64 (printed by
//! the script's torch stage), so the bound measures turbine, not the reference.

use std::path::PathBuf;
use std::sync::Arc;

use formats::GgmlType;
use gguf::GgufFile;
use models::hf_ref::{self, rel_diff, HfReference};
use models::{BatchRow, Model, RunConfig};
use turbine_core::cpu::CpuBackend;

const TOL: f64 = 1e-3;
/// Dense qwen3 at f32: issue 4 asks for 1e-4 relative.
const TOL_DENSE: f64 = 1e-4;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn reference(arch: &str) -> HfReference {
    HfReference::open(&data(&format!("{arch}.ref.gguf"))).expect("open reference")
}

fn check(arch: &str, threads: usize, tol: f64) {
    let r = reference(arch);
    let file = Arc::new(GgufFile::open(data(&format!("{arch}.gguf"))).expect("open model"));
    let backend = Arc::new(CpuBackend::new(threads).expect("backend"));
    let mut model = Model::load(backend, file, hf_ref::run_config()).expect("load model");
    let c = hf_ref::compare(&mut model, &r).expect("forward");
    eprintln!(
        "{arch}: worst row rel diff {:.2e} at row {}; decode argmax agrees {}/{}",
        c.worst, c.worst_row, c.argmax_agree, c.n_decode
    );
    assert!(
        c.worst <= tol,
        "{arch}: logits of row {} differ by {:.3e} relative (tolerance {tol})",
        c.worst_row,
        c.worst
    );
    assert_eq!(c.argmax_agree, c.n_decode, "{arch}: greedy choices differ");

    let prompt = &r.tokens[..r.n_prompt];
    // A cleared sequence starts over: the first prompt row again.
    model.truncate(0, 0).expect("truncate");
    model.forward(0, &prompt[..1], true).expect("restart");
    assert!(rel_diff(model.logits(0).expect("logits"), r.row(0)) <= tol);
    // Rewinding a recurrent model into the middle is an error, not stale state.
    if arch.starts_with("qwen35") {
        model.forward(0, &prompt[1..3], false).expect("prefill");
        assert!(model.truncate(0, 1).is_err());
    }
}

#[test]
fn qwen3_matches_transformers() {
    check("qwen3", 2, TOL_DENSE);
}

#[test]
fn qwen3moe_matches_transformers() {
    check("qwen3moe", 2, TOL);
}

#[test]
fn qwen35_matches_transformers() {
    check("qwen35", 2, TOL);
}

#[test]
fn qwen35moe_matches_transformers() {
    check("qwen35moe", 1, TOL);
}

/// Two sequences in one batch, rows interleaved, the second one chunk behind the first (so
/// their recurrent states and KV differ at every step): each must still match the reference.
fn batched_two_sequences(arch: &str, tol: f64) {
    let r = reference(arch);
    let file = Arc::new(GgufFile::open(data(&format!("{arch}.gguf"))).expect("open model"));
    let backend = Arc::new(CpuBackend::new(2).expect("backend"));
    let cfg = RunConfig {
        n_ctx: 512,
        n_batch: 32,
        n_ubatch: 32,
        n_seq: 2,
        type_k: GgmlType::F32,
        type_v: GgmlType::F32,
        logits_all: false,
    };
    let mut model = Model::load(backend, file, cfg).expect("load model");
    // Chunks of 8 over the prompt, then single tokens (decode) up to 64 tokens.
    let mut chunks: Vec<(usize, usize)> = (0..r.n_prompt)
        .step_by(8)
        .map(|s| (s, (s + 8).min(r.n_prompt)))
        .collect();
    chunks.extend((r.n_prompt..64).map(|s| (s, s + 1)));
    let mut worst = 0f64;
    for t in 0..=chunks.len() {
        let parts = [
            chunks.get(t).copied(),
            t.checked_sub(1).and_then(|u| chunks.get(u).copied()),
        ];
        let mut batch = Vec::new();
        let longest = parts.iter().flatten().map(|c| c.1 - c.0).max().unwrap_or(0);
        for j in 0..longest {
            for (seq, part) in parts.iter().enumerate() {
                if let Some((a, b)) = part {
                    if a + j < *b {
                        batch.push(BatchRow {
                            seq,
                            token: r.tokens[a + j],
                            logits: a + j + 1 == *b,
                        });
                    }
                }
            }
        }
        model.forward_batch(&batch).expect("batch");
        let mut i = 0;
        for br in &batch {
            if br.logits {
                let (_, end) = parts[br.seq].expect("part");
                worst = worst.max(rel_diff(model.logits(i).expect("logits"), r.row(end - 1)));
                i += 1;
            }
        }
    }
    eprintln!("{arch} batched: worst rel diff {worst:.2e}");
    assert!(worst <= tol, "{arch}: batched logits differ by {worst:.3e}");
}

#[test]
fn qwen35_batched_sequences_match_transformers() {
    batched_two_sequences("qwen35", TOL);
}

#[test]
fn qwen35moe_batched_sequences_match_transformers() {
    batched_two_sequences("qwen35moe", TOL);
}

#[test]
fn qwen3moe_batched_sequences_match_transformers() {
    batched_two_sequences("qwen3moe", TOL);
}

#[test]
fn qwen3_batched_sequences_match_transformers() {
    batched_two_sequences("qwen3", TOL_DENSE);
}
