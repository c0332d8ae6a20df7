//! turbine's paged KV cache and the CPU attention kernels that read it.
//!
//! The cache and its kernels live in one crate because a page's format and the kernel that
//! reads it are one unit: the kernel's speed and correctness depend on exactly how rows are
//! packed (head-major pages, padded turbo groups, rotated domain), and neither side can change
//! without the other. Keeping them together keeps that contract private.
//!
//! - [`KvConfig`] / [`KvLayout`]: geometry and the exact byte formula
//!   ([`KvCache::bytes_required`]) the memory planner uses; [`KvCache::new`] allocates exactly
//!   that.
//! - [`KvCache::reserve`] / [`KvCache::truncate`] / [`KvCache::free_sequence`]: pages from a
//!   fixed pool, a page table per sequence.
//! - [`KvCache::write`]: K/V rows of a batch into one layer, quantized by the `formats`
//!   reference quantizers.
//! - [`KvCache::attend`]: causal (optionally sliding-window) GQA attention straight from the
//!   packed pages, on a caller-supplied [`Executor`] and workspace
//!   ([`attention_workspace_bytes`]).
//!
//! Every K/V type pair works: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, turbo2,
//! turbo3, turbo4 (see `TURBO-KV.md` for the turbo formats).

mod attention;
mod cache;
mod codec;
mod error;
mod exec;
mod layout;
mod pool;
#[cfg(target_arch = "x86_64")]
mod turbo_encode;
mod types;

pub use attention::{
    attention_workspace_bytes, attention_workspace_floats, AttentionInput, AttentionShape,
    KernelPath, CHUNK, MAX_VECS,
};
pub use cache::{KvCache, TokenPos};
pub use error::{KvError, Result};
pub use exec::{Executor, RayonExecutor, Sequential};
pub use layout::{KvConfig, KvLayout, LayerKind};
pub use types::{KvType, ALL_KV_TYPES, TURBO_GROUP};
