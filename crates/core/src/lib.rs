//! The engine's core: the [`Backend`] trait every device implements, the [`MemoryPlan`] that
//! sizes every buffer before anything is allocated, the allocation log that proves the two
//! agree, and the CPU backend.
//!
//! Memory rules (see DESIGN.md): every byte a backend holds is **model** (weights),
//! **context** (KV cache) or **compute** (activations and workspaces); each buffer is planned
//! by a formula of the model shape and the run configuration, and allocated exactly as planned.

pub mod alloc_log;
pub mod backend;
pub mod cpu;
pub mod error;
pub mod host_bytes;
pub mod hybrid;
pub mod memory;
pub mod plan;
pub mod weight_shape;

pub use alloc_log::{AllocationLog, AllocationRecord};
pub use backend::{
    AttnParams, AttnShape, Backend, GluActivation, KvLayerShape, KvSpec, RopeParams, TokenPos,
};
pub use error::CoreError;
pub use host_bytes::HostBytes;
pub use hybrid::{DeltaNetParams, DeltaNetWeights, MoeExperts, MoeParams, MoeShape};
pub use memory::{mib, DeviceMemory};
pub use plan::{BufferSpec, MemoryPlan, Role};
pub use weight_shape::WeightShape;
