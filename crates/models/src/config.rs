//! The run configuration that, with the model shape and the backend, fixes every buffer size.

use formats::GgmlType;

use crate::error::{ModelError, Result};

/// llama-server's flags that size memory: `-c`, `-b`, `-ub`, `-np`, `-ctk`, `-ctv`, plus whether
/// every token's logits are kept (perplexity) or only each sequence's last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunConfig {
    /// KV cells in total (`-c`), shared by all sequences.
    pub n_ctx: usize,
    /// Logical batch (`-b`): most tokens submitted in one call.
    pub n_batch: usize,
    /// Physical batch (`-ub`): most rows one forward pass computes.
    pub n_ubatch: usize,
    /// Parallel sequences (`-np`).
    pub n_seq: usize,
    pub type_k: GgmlType,
    pub type_v: GgmlType,
    /// Keep logits for every row of a ubatch (perplexity) instead of one per sequence.
    pub logits_all: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            n_ctx: 4096,
            n_batch: 2048,
            n_ubatch: 512,
            n_seq: 1,
            type_k: GgmlType::F16,
            type_v: GgmlType::F16,
            logits_all: false,
        }
    }
}

/// KV cache types accepted by `-ctk` / `-ctv`.
pub const KV_TYPES: [GgmlType; 12] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Iq4Nl,
    GgmlType::Turbo2,
    GgmlType::Turbo3,
    GgmlType::Turbo4,
];

/// Parses a cache type name (`f16`, `q8_0`, `turbo4`, ...).
pub fn parse_kv_type(name: &str) -> Result<GgmlType> {
    let lower = name.to_ascii_lowercase();
    KV_TYPES
        .iter()
        .copied()
        .find(|t| t.name() == lower)
        .ok_or_else(|| {
            let valid: Vec<&str> = KV_TYPES.iter().map(|t| t.name()).collect();
            ModelError::Config(format!(
                "unknown KV cache type `{name}` (valid: {})",
                valid.join(", ")
            ))
        })
}

impl RunConfig {
    /// Checks the values and applies llama.cpp's rule `n_ubatch = min(n_ubatch, n_batch)`.
    pub fn validated(mut self) -> Result<RunConfig> {
        if self.n_seq == 0 {
            return Err(ModelError::Config("-np must be at least 1".into()));
        }
        if self.n_batch == 0 || self.n_ubatch == 0 {
            return Err(ModelError::Config("-b and -ub must be at least 1".into()));
        }
        if self.n_ctx < self.n_seq {
            return Err(ModelError::Config(format!(
                "-c {} cannot hold {} sequences",
                self.n_ctx, self.n_seq
            )));
        }
        for t in [self.type_k, self.type_v] {
            if !KV_TYPES.contains(&t) {
                return Err(ModelError::Config(format!(
                    "{} is not a KV cache type",
                    t.name()
                )));
            }
        }
        self.n_ubatch = self.n_ubatch.min(self.n_batch);
        Ok(self)
    }

    /// Rows of the largest forward pass: prefill runs `n_ubatch` rows, decode one row per
    /// sequence. Buffers are sized for the larger of the two shape classes, never their sum.
    pub fn max_rows(&self) -> usize {
        self.n_ubatch.max(self.n_seq)
    }

    /// Rows of logits one forward pass produces at most.
    pub fn max_output_rows(&self) -> usize {
        if self.logits_all {
            self.max_rows()
        } else {
            self.n_seq
        }
    }
}
