//! Tokenizers from GGUF metadata and chat templates.
pub mod template;
pub mod tokenizer;

pub use tokenizer::{StreamDecoder, Tokenizer, TokenizerError};
