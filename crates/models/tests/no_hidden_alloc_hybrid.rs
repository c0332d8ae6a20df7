//! The hybrid and MoE families allocate nothing behind the plan's back either: after a
//! warm-up pass, prefill, decode and batched passes of qwen3moe, qwen35 and qwen35moe (MoE
//! routing and expert grouping, DeltaNet conv and delta rule, gated attention) make no heap
//! allocation on any thread. Own test binary: the counting allocator sees the whole process.

use std::path::PathBuf;
use std::sync::Arc;

use formats::GgmlType;
use gguf::GgufFile;
use models::{BatchRow, Model, RunConfig};
use turbine_core::cpu::CpuBackend;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::counted;

// Own harness (`harness = false` in Cargo.toml): libtest's main thread does its bookkeeping
// (the map of running tests) while the test thread runs, and on a loaded machine that lands
// inside a counted region of this process-wide counter.
fn main() {
    hybrid_forward_passes_do_not_allocate();
    println!("test hybrid_forward_passes_do_not_allocate ... ok");
}

fn hybrid_forward_passes_do_not_allocate() {
    for arch in ["qwen3moe", "qwen35", "qwen35moe"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(format!("{arch}.gguf"));
        let file = Arc::new(GgufFile::open(path).expect("open model"));
        let backend = Arc::new(CpuBackend::new(2).expect("backend"));
        let cfg = RunConfig {
            n_ctx: 512,
            n_ubatch: 32,
            n_batch: 32,
            n_seq: 2,
            type_k: GgmlType::F16,
            type_v: GgmlType::Turbo3,
            ..RunConfig::default()
        };
        let mut m = Model::load(backend, file, cfg).expect("load");
        m.forward(0, &[5, 6, 7], false).unwrap();
        let prompt: Vec<u32> = (100..130).collect();
        let (_, n, bytes) = counted(|| m.forward(1, &prompt, false).unwrap());
        assert_eq!((n, bytes), (0, 0), "{arch}: prefill allocated");
        let (_, n, bytes) = counted(|| {
            for t in 0..5 {
                m.forward(0, &[t + 10], false).unwrap();
            }
        });
        assert_eq!((n, bytes), (0, 0), "{arch}: decode allocated");
        let rows = [
            BatchRow {
                seq: 0,
                token: 5,
                logits: true,
            },
            BatchRow {
                seq: 1,
                token: 6,
                logits: true,
            },
        ];
        let (_, n, bytes) = counted(|| m.forward_batch(&rows).unwrap());
        assert_eq!((n, bytes), (0, 0), "{arch}: batched decode allocated");
        let (_, n, bytes) = counted(|| m.truncate(1, 0).unwrap());
        assert_eq!((n, bytes), (0, 0), "{arch}: clearing a sequence allocated");
    }
}
