//! The engine's memory plan: the model's buffers plus the sampler and the token history.

use gguf::GgufFile;
use models::{plan_memory, HParams, RunConfig};
use turbine_core::{Backend, MemoryPlan, Role};

use crate::sampler::sampler_bytes;

pub mod names {
    /// Sampler candidates and penalty counts (n_vocab each).
    pub const SAMPLER: &str = "sampler";
    /// Token ids of the cached sequences.
    pub const TOKENS: &str = "host.tokens";
}

/// Every buffer a one-sequence generation run holds (`-np` must be 1 until slots exist).
pub fn plan_engine<B: Backend>(
    backend: &B,
    file: &GgufFile,
    hp: &HParams,
    cfg: &RunConfig,
) -> models::Result<MemoryPlan> {
    let cfg = cfg.clone().validated()?;
    let mut plan = plan_memory(backend, file, hp, &cfg)?;
    let host = backend.host_device().to_string();
    plan.add(
        names::SAMPLER,
        &host,
        Role::Compute,
        sampler_bytes(hp.n_vocab),
        format!("{} vocab × (12 B candidate + 4 B count)", hp.n_vocab),
    )?;
    let per_seq = cfg.n_ctx / cfg.n_seq;
    plan.add(
        names::TOKENS,
        &host,
        Role::Context,
        (cfg.n_seq * per_seq) as u64 * 4,
        format!("{} sequences × {per_seq} tokens × 4 B", cfg.n_seq),
    )?;
    Ok(plan)
}
