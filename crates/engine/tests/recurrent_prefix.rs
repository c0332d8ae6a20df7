//! A recurrent model (qwen35: Gated DeltaNet layers) cannot rewind its state to a shared
//! prefix, so a second prompt that only shares a prefix with the cached tokens starts over and
//! must produce exactly what a fresh generator produces. Uses the tiny transformers-checked
//! model committed under crates/models/tests/data.

use std::path::PathBuf;
use std::sync::Arc;

use engine::{Generator, SamplerParams};
use gguf::GgufFile;
use models::{Model, RunConfig};
use turbine_core::cpu::CpuBackend;

fn generator() -> Generator<CpuBackend> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/data/qwen35.gguf");
    let file = Arc::new(GgufFile::open(path).expect("open model"));
    let backend = Arc::new(CpuBackend::new(1).expect("backend"));
    let cfg = RunConfig {
        n_ctx: 256,
        n_ubatch: 16,
        ..RunConfig::default()
    };
    let model = Model::load(backend, file, cfg).expect("load");
    Generator::new(model, SamplerParams::greedy())
}

fn run(g: &mut Generator<CpuBackend>, prompt: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    g.generate(
        prompt,
        8,
        |_| false,
        |t| {
            out.push(t);
            true
        },
    )
    .expect("generate");
    out
}

#[test]
fn second_prompt_with_shared_prefix_starts_over() {
    let first: Vec<u32> = (0..30).map(|i| (i * 37 + 5) % 256).collect();
    let mut second = first[..20].to_vec();
    second.extend((0..7).map(|i| (i * 11 + 3) % 256));

    let mut g = generator();
    run(&mut g, &first);
    let reused = run(&mut g, &second);
    let fresh = run(&mut generator(), &second);
    assert_eq!(reused, fresh);
}
