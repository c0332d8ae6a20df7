//! Generation (prefill, sampling with penalties and top-k/p, decode) allocates nothing after
//! warm-up: the sampler and token history were planned and allocated once.

use std::path::PathBuf;
use std::sync::Arc;

use engine::{Generator, SamplerParams};
use gguf::GgufFile;
use models::{Model, RunConfig};
use turbine_core::cpu::CpuBackend;

#[path = "../../models/tests/support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::counted;

// Own harness (`harness = false` in Cargo.toml): libtest's main thread does its bookkeeping
// (the map of running tests) while the test thread runs, and on a loaded machine that lands
// inside a counted region of this process-wide counter.
fn main() {
    generation_does_not_allocate();
    println!("test generation_does_not_allocate ... ok");
}

fn generation_does_not_allocate() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        assert!(
            std::env::var("TURBINE_REQUIRE_ASSETS").as_deref() != Ok("1"),
            "{} missing: run scripts/fetch-models.sh",
            path.display()
        );
        eprintln!("skipped: {} missing", path.display());
        return;
    }
    let file = Arc::new(GgufFile::open(&path).unwrap());
    let backend = Arc::new(CpuBackend::new(2).unwrap());
    let cfg = RunConfig {
        n_ctx: 512,
        n_ubatch: 16,
        n_batch: 16,
        ..RunConfig::default()
    };
    let model = Model::load(backend, file, cfg).unwrap();
    let params = SamplerParams {
        repeat_penalty: 1.1,
        presence_penalty: 0.2,
        seed: 9,
        ..SamplerParams::default()
    };
    let mut g = Generator::new(model, params);
    g.generate(&[504, 3575, 282, 4649, 314], 2, |_| false, |_| true)
        .unwrap();
    let prompt: Vec<u32> = (200..240).collect();
    let (_, n, bytes) = counted(|| {
        g.generate(&prompt, 20, |_| false, |_| true).unwrap();
    });
    assert_eq!((n, bytes), (0, 0), "generation allocated");
}
