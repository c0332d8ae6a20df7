//! Model errors: one line, naming the key or tensor and what is wrong with it.

use turbine_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("architecture `{0}` is not supported (supported: llama, qwen2, qwen3, gemma3, qwen3moe, qwen35, qwen35moe)")]
    UnsupportedArch(String),
    #[error("GGUF metadata key `{0}` is missing")]
    MissingKey(String),
    #[error("GGUF metadata key `{key}`: {reason}")]
    BadValue { key: String, reason: String },
    #[error("tensor `{0}` is missing")]
    MissingTensor(String),
    #[error("tensor `{name}`: {reason}")]
    BadTensor { name: String, reason: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Core(#[from] CoreError),
}

pub type Result<T> = std::result::Result<T, ModelError>;
