//! Shared helpers for model tests: asset lookup with the skip/require rule of TEAM.md.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use gguf::GgufFile;
use models::{Model, RunConfig};
use turbine_core::cpu::CpuBackend;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model file, or `None` (test skipped) unless TURBINE_REQUIRE_ASSETS=1.
pub fn model_path(file: &str) -> Option<PathBuf> {
    let p = root().join("models").join(file);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("TURBINE_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!("{} missing: run scripts/fetch-models.sh", p.display());
    }
    eprintln!(
        "skipped: {} missing; run scripts/fetch-models.sh",
        p.display()
    );
    None
}

pub fn load(path: &std::path::Path, cfg: RunConfig, threads: usize) -> Model<CpuBackend> {
    let file = Arc::new(GgufFile::open(path).expect("open model"));
    let backend = Arc::new(CpuBackend::new(threads).expect("backend"));
    Model::load(backend, file, cfg).expect("load model")
}

pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    logits.iter().map(|&l| l as f64 - lse).collect()
}

pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy continuation of `prompt` for `n` tokens.
pub fn greedy(model: &mut Model<CpuBackend>, prompt: &[u32], n: usize) -> Vec<u32> {
    model.truncate(0, 0).unwrap();
    let ub = model.config().n_ubatch;
    for chunk in prompt.chunks(ub) {
        model.forward(0, chunk, false).unwrap();
    }
    let mut out = Vec::new();
    for _ in 0..n {
        let t = argmax(model.logits(0).unwrap());
        out.push(t);
        model.forward(0, &[t], false).unwrap();
    }
    out
}
