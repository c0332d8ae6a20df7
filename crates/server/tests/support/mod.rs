//! The default model for the server's model-level tests, and loading it on the CPU backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use formats::GgmlType;
use gguf::GgufFile;
use models::{Model, RunConfig};
use turbine_core::cpu::CpuBackend;

/// SmolLM2's path, or `None` (with a message) when assets are absent and not required.
pub fn model_path() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("TURBINE_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!("{} is missing and TURBINE_REQUIRE_ASSETS=1", p.display());
    }
    eprintln!(
        "skipped: {} not found (run scripts/fetch-models.sh)",
        p.display()
    );
    None
}

/// The model with `n_seq` sequences over a 512-token context, ubatch 32, two threads.
pub fn load(path: &Path, n_seq: usize, type_k: GgmlType, type_v: GgmlType) -> Model<CpuBackend> {
    let file = Arc::new(GgufFile::open(path).expect("open model"));
    let cfg = RunConfig {
        n_ctx: 512,
        n_seq,
        n_ubatch: 32,
        n_batch: 32,
        type_k,
        type_v,
        ..RunConfig::default()
    };
    Model::load(Arc::new(CpuBackend::new(2).expect("backend")), file, cfg).expect("load")
}
