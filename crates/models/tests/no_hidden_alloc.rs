//! Nothing allocates behind the plan's back: after the first pass (thread start-up), prefill
//! and decode passes make no heap allocation at all, on any thread. A counting global
//! allocator sees every allocation of the process, kernels and thread pool included.

mod common;

use common::*;
use formats::GgmlType;
use models::{BatchRow, RunConfig};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::counted;

// Own harness (`harness = false` in Cargo.toml): libtest's main thread does its bookkeeping
// (the map of running tests) while the test thread runs, and on a loaded machine that lands
// inside a counted region of this process-wide counter.
fn main() {
    forward_passes_do_not_allocate();
    println!("test forward_passes_do_not_allocate ... ok");
}

fn forward_passes_do_not_allocate() {
    let Some(path) = model_path("SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    for (tk, tv) in [
        (GgmlType::F16, GgmlType::F16),
        (GgmlType::Q8_0, GgmlType::Turbo3),
    ] {
        let cfg = RunConfig {
            n_ctx: 512,
            n_ubatch: 32,
            n_batch: 32,
            n_seq: 2,
            type_k: tk,
            type_v: tv,
            ..RunConfig::default()
        };
        let mut m = load(&path, cfg, 2);
        // Warm-up: the first pass may start threads and fill lazily built tables.
        m.forward(0, &[504, 3575, 282], false).unwrap();
        let prompt: Vec<u32> = (100..130).collect();
        let (_, n, bytes) = counted(|| m.forward(1, &prompt, false).unwrap());
        assert_eq!((n, bytes), (0, 0), "prefill allocated");
        let (_, n, bytes) = counted(|| {
            for t in 0..5 {
                m.forward(0, &[t + 10], false).unwrap();
            }
        });
        assert_eq!((n, bytes), (0, 0), "decode allocated");
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
        assert_eq!((n, bytes), (0, 0), "batched decode allocated");
    }
}
