//! Errors from building a tokenizer out of GGUF metadata.

/// Why a tokenizer could not be built. Every message names the metadata key or the value at
/// fault, on one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer: metadata key `{0}` is missing")]
    MissingKey(&'static str),
    #[error("tokenizer: metadata key `{key}` is {found}, expected {expected}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("tokenizer: unknown tokenizer model `{0}` in `tokenizer.ggml.model` (known: gpt2, llama, bert, gemma4)")]
    UnknownModel(String),
    #[error(
        "tokenizer: tokenizer model `{0}` in `tokenizer.ggml.model` is not supported by turbine"
    )]
    UnsupportedModel(String),
    #[error("tokenizer: unknown pre-tokenizer `{0}` in `tokenizer.ggml.pre`")]
    UnknownPreTokenizer(String),
    #[error("tokenizer: {0}")]
    Invalid(String),
}
