//! Tokenizers from GGUF metadata and chat templates.
pub mod template;
pub mod tokenizer;
