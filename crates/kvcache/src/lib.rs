//! turbine's paged KV cache and the CPU attention kernels that read it.
//!
//! The cache and its kernels live in one crate because a page's format and the kernel that
//! reads it are one unit: the kernel's speed and correctness depend on exactly how rows are
//! packed (head-major pages, padded turbo groups, rotated domain), and neither side can change
//! without the other. Keeping them together keeps that contract private.
//!
//! - [`KvConfig`] / [`KvLayout`]: geometry and the exact byte formula
//!   ([`KvCache::bytes_required`]) the memory planner uses; [`KvCache::new`] allocates exactly
//!   that ([`KvCache::allocated_bytes`]).
//! - [`KvCache::reserve`] / [`KvCache::truncate`] / [`KvCache::free_sequence`]: pages from a
//!   fixed pool, a page table per sequence; a full pool is [`KvError::OutOfPages`].
//! - [`KvCache::write`] / [`KvCache::write_with`]: K/V rows of a batch into one layer,
//!   quantized exactly as the `formats` reference quantizers do. Turbo K rows are stored minus
//!   their sequence's key center (the mean of its first batch's keys per layer and head): the
//!   softmax cannot see a per-query constant, and the turbo error shrinks with what is stored.
//! - 64-wide turbo heads share 128-value rotation groups ([`KvConfig::pack_turbo_heads`]).
//! - [`KvCache::attend`]: causal (optionally sliding-window) GQA attention straight from the
//!   packed pages, on a caller-supplied [`Executor`] and workspace
//!   ([`attention_workspace_bytes`], independent of the context length).
//!
//! Every K/V type pair works: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, turbo2,
//! turbo3, turbo4 (see `TURBO-KV.md` for the turbo formats).
//!
//! ```
//! use kvcache::*;
//!
//! let config = KvConfig {
//!     layers: vec![LayerKind::Full, LayerKind::Sliding { window: 512 }],
//!     n_kv_heads: 2,
//!     head_dim_k: 64,
//!     head_dim_v: 64,
//!     k_type: KvType::from_name("q8_0")?,
//!     v_type: KvType::from_name("turbo4")?,
//!     page_size: 256,
//!     n_pages: KvConfig::pages_for_context(4096, 4, 256), // -c 4096, 4 sequences
//!     max_seqs: 4,
//!     pack_turbo_heads: true, // two 64-wide turbo4 V heads per 128-value group
//!     center_turbo_keys: true,
//! };
//! let planned = KvCache::bytes_required(&config)?;
//! let mut cache = KvCache::new(&config)?;
//! assert_eq!(cache.allocated_bytes(), planned);
//!
//! // Workspace for calls of up to 512 rows with 14 query heads, on one thread.
//! let exec = Sequential;
//! let shape = AttentionShape::for_layout(cache.layout(), 14, 512, exec.n_workers());
//! let mut workspace = vec![0.0f32; attention_workspace_floats(&shape)?];
//!
//! // A 3-token prompt of sequence 0: reserve, then per layer write K/V and attend.
//! let rows: Vec<TokenPos> = (0..3).map(|pos| TokenPos { seq: 0, pos }).collect();
//! cache.reserve(0, 3)?;
//! let k = vec![0.1f32; 3 * 2 * 64]; // rows × KV heads × head size, after RoPE
//! let v = vec![0.2f32; 3 * 2 * 64];
//! let q = vec![0.3f32; 3 * 14 * 64]; // rows × query heads × head size
//! let mut out = vec![0.0f32; 3 * 14 * 64];
//! for layer in 0..2 {
//!     cache.write_with(layer, &rows, &k, &v, &exec)?;
//!     let input = AttentionInput { layer, tokens: &rows, q: &q, n_heads: 14, scale: 0.125 };
//!     cache.attend(&input, &mut out, &exec, &mut workspace)?;
//! }
//! cache.free_sequence(0)?;
//! # Ok::<(), KvError>(())
//! ```

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
