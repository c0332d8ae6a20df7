//! GGUF v2/v3 reader and writer.
//!
//! [`GgufFile::open`] memory-maps a model (all parts of a split one) and validates it fully
//! before returning: hostile or damaged files give a one-line [`GgufError`] naming the problem
//! and its byte offset, never a panic or an out-of-bounds read.

mod cursor;
mod error;
mod file;
mod parse;
pub mod split;
mod tensor;
mod value;
mod writer;

pub use error::{ErrorKind, GgufError};
pub use file::{GgufFile, Part};
pub use parse::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH};
pub use tensor::{TensorInfo, MAX_DIMS};
pub use value::{Array, Metadata, Value, ValueType};
pub use writer::GgufWriter;
