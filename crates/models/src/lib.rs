//! Models: hyperparameters and weights from GGUF, the memory plan, and the forward pass of the
//! llama family (llama, qwen2, qwen3), gemma3, qwen3moe (mixture of experts) and the qwen3.5
//! hybrids qwen35 / qwen35moe (Gated DeltaNet layers with a recurrent state, gated attention).

pub mod config;
pub mod error;
pub mod forward;
pub mod hf_ref;
pub mod hparams;
pub mod model;
pub mod plan;
pub mod weights;

pub use config::{parse_kv_type, RunConfig, KV_TYPES};
pub use error::{ModelError, Result};
pub use hparams::{Arch, HParams, SlidingWindow};
pub use model::{BatchRow, Model};
pub use plan::{context_growth_allowance, kv_spec, plan_memory};
pub use weights::{decode_weight_bytes, weight_descs, Weights};
