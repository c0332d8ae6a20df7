//! Does a sequence's decode row give the same logits alone and inside a batch with other
//! sequences? The server's "same text as alone at temperature 0" promise needs it exactly.
//!
//!     cargo run --release -p server --example batch_invariance -- models/SmolLM2-135M-Instruct.Q4_1.gguf

use std::sync::Arc;

use gguf::GgufFile;
use models::{BatchRow, Model, RunConfig};
use turbine_core::cpu::CpuBackend;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    let file = Arc::new(GgufFile::open(&path)?);
    let cfg = RunConfig {
        n_ctx: 1024,
        n_seq: 4,
        n_ubatch: 64,
        n_batch: 64,
        ..RunConfig::default()
    };
    let backend = Arc::new(CpuBackend::new(2)?);
    let mut m = Model::load(backend, file, cfg)?;
    let prompts: [&[u32]; 4] = [
        &[504, 3575, 282, 4649, 314],
        &[1, 2, 3],
        &[40, 41, 42, 43],
        &[7],
    ];
    for (s, p) in prompts.iter().enumerate() {
        m.forward(s, p, false)?;
    }
    // Each sequence decodes token 30 alone...
    let mut alone = Vec::new();
    for (s, p) in prompts.iter().enumerate() {
        m.forward(s, &[30], false)?;
        alone.push(m.logits(0)?.to_vec());
        m.truncate(s, p.len())?;
    }
    // ...and beside the others' rows.
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    for n in 2..=4 {
        let batch: Vec<BatchRow> = (0..n)
            .map(|seq| BatchRow {
                seq,
                token: 30,
                logits: true,
            })
            .collect();
        m.forward_batch(&batch)?;
        let diffs: Vec<String> = (0..n)
            .map(|s| Ok(format!("{:.2e}", max_diff(&alone[s], m.logits(s)?))))
            .collect::<anyhow::Result<_>>()?;
        println!("{n} decode rows in one pass: max |Δlogit| per row vs alone = {diffs:?}");
        for (s, p) in prompts.iter().enumerate().take(n) {
            m.truncate(s, p.len())?;
        }
    }
    Ok(())
}
