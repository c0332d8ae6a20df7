//! The engine: sampling and the generation loop (one sequence for now; slots and continuous
//! batching arrive with the server).

pub mod generate;
pub mod plan;
mod rng;
pub mod sampler;

pub use generate::{GenStats, Generator, StopReason};
pub use plan::plan_engine;
pub use sampler::{Sampler, SamplerParams};
