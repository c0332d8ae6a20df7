//! Comparison of a model's logits with a PyTorch `transformers` reference file, on any backend.
//!
//! A reference (`<arch>.ref.gguf`, written by `scripts/reference/hf_tiny_models.py`) holds the
//! logits transformers computed for a prompt and its greedy continuation: tensor `logits`
//! `[n_vocab, n_tokens]`, the tokens in `ref.tokens`, the prompt length in `ref.n_prompt`.
//! [`compare`] runs the prompt in ubatches of [`UBATCH`] rows (so recurrent state and KV carry
//! across prefill chunks), then every continuation token one decode step at a time, and reports
//! the worst row's relative difference (max |Δ| / max |ref|) and how many greedy choices agree.
//! The CPU test (`tests/hf_reference.rs`) and `turbine check-backend --hf-ref` share it.

use std::path::Path;

use formats::GgmlType;
use gguf::GgufFile;
use turbine_core::Backend;

use crate::config::RunConfig;
use crate::error::{ModelError, Result};
use crate::model::Model;

/// Prefill rows per forward call.
pub const UBATCH: usize = 16;

/// transformers' logits for one token sequence.
pub struct HfReference {
    pub tokens: Vec<u32>,
    pub n_prompt: usize,
    pub n_vocab: usize,
    pub logits: Vec<f32>,
}

impl HfReference {
    pub fn open(path: &Path) -> Result<HfReference> {
        let bad = |reason: String| ModelError::Config(format!("{}: {reason}", path.display()));
        let f = GgufFile::open(path).map_err(|e| bad(e.to_string()))?;
        let md = f.metadata();
        let tokens: Vec<u32> = md
            .get_i32_array("ref.tokens")
            .ok_or_else(|| bad("no ref.tokens".into()))?
            .iter()
            .map(|&t| t as u32)
            .collect();
        let n_prompt = md
            .get_u32("ref.n_prompt")
            .ok_or_else(|| bad("no ref.n_prompt".into()))? as usize;
        let t = f
            .tensor("logits")
            .ok_or_else(|| bad("no logits tensor".into()))?;
        if t.ty != GgmlType::F32 || t.dims.len() != 2 {
            return Err(bad(format!(
                "logits are {} {:?}, expected f32 [n_vocab, n_tokens]",
                t.ty.name(),
                t.dims
            )));
        }
        let n_vocab = t.dims[0] as usize;
        let logits: Vec<f32> = f
            .tensor_data(t)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if logits.len() != n_vocab * tokens.len() || n_prompt > tokens.len() {
            return Err(bad(format!(
                "{} logits for {} tokens of {n_vocab} (prompt {n_prompt})",
                logits.len(),
                tokens.len()
            )));
        }
        Ok(HfReference {
            tokens,
            n_prompt,
            n_vocab,
            logits,
        })
    }

    /// The reference logits after token `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.logits[i * self.n_vocab..(i + 1) * self.n_vocab]
    }
}

/// The run configuration of the comparison: f32 KV, one sequence, every prefill row's logits.
pub fn run_config() -> RunConfig {
    RunConfig {
        n_ctx: 256,
        n_batch: UBATCH,
        n_ubatch: UBATCH,
        n_seq: 1,
        type_k: GgmlType::F32,
        type_v: GgmlType::F32,
        logits_all: true,
    }
}

/// max |ours − theirs| / max |theirs|; infinite where `ours` has a NaN or infinity or a
/// different length (f64::max would pass over a NaN).
pub fn rel_diff(ours: &[f32], theirs: &[f32]) -> f64 {
    if ours.len() != theirs.len() || ours.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let scale = theirs.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    diff / scale.max(1e-30)
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (j, &x)| if x > b.1 { (j, x) } else { b },
        )
        .0
}

/// The outcome of one [`compare`].
#[derive(Clone, Copy, Debug)]
pub struct HfComparison {
    /// Largest per-row relative difference and its row.
    pub worst: f64,
    pub worst_row: usize,
    /// Decode steps whose greedy token equals transformers'.
    pub argmax_agree: usize,
    pub n_decode: usize,
}

/// Runs `r`'s tokens through sequence 0 of `model` (loaded with [`run_config`]) and compares
/// every row of logits.
pub fn compare<B: Backend>(model: &mut Model<B>, r: &HfReference) -> Result<HfComparison> {
    if model.hparams().n_vocab != r.n_vocab {
        return Err(ModelError::Config(format!(
            "the model has {} vocabulary entries, the reference {}",
            model.hparams().n_vocab,
            r.n_vocab
        )));
    }
    let mut c = HfComparison {
        worst: 0.0,
        worst_row: 0,
        argmax_agree: 0,
        n_decode: r.tokens.len() - r.n_prompt,
    };
    let mut note = |d: f64, i: usize| {
        if d > c.worst {
            c.worst = d;
            c.worst_row = i;
        }
    };
    let mut pos = 0;
    for chunk in r.tokens[..r.n_prompt].chunks(UBATCH) {
        model.forward(0, chunk, true)?;
        for j in 0..chunk.len() {
            note(rel_diff(model.logits(j)?, r.row(pos + j)), pos + j);
        }
        pos += chunk.len();
    }
    // Decode: feed the token transformers chose, compare the next row.
    let mut agree = 0;
    for i in r.n_prompt..r.tokens.len() {
        model.forward(0, &[r.tokens[i]], false)?;
        let ours = model.logits(0)?;
        note(rel_diff(ours, r.row(i)), i);
        agree += usize::from(argmax(ours) == argmax(r.row(i)));
    }
    c.argmax_agree = agree;
    Ok(c)
}
