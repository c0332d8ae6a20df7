//! turbine's OpenAI-compatible HTTP server: endpoints, the continuous-batching scheduler that
//! runs on its own engine thread, router mode (several models loaded on demand), metrics.
//!
//! - [`api`]: routes, request parsing with field-naming errors, SSE streaming.
//! - [`scheduler`]: slots, continuous batching and chunked prefill on a dedicated thread.
//! - [`router`]: the model registry (single model or router mode), presets, `--models-dir`.
//! - [`model`]: loading one model (tokenizer, template, memory plan, engine).
//! - [`cli`]: `turbine serve` flags, start-up and graceful shutdown.

pub mod api;
pub mod cli;
pub mod error;
pub mod metrics;
pub mod mlock;
pub mod model;
pub mod router;
pub mod scheduler;

pub use cli::{run, Args};
