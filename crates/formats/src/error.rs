//! The crate's error type.

use crate::types::GgmlType;

/// Which conversion an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Quantize,
    Dequantize,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Quantize => "quantize",
            Direction::Dequantize => "dequantize",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("{direction} {ty}: not supported for this type")]
    Unsupported { ty: GgmlType, direction: Direction },

    #[error(
        "{direction} {ty}: {values} values is not a whole number of {block_size}-value blocks"
    )]
    PartialBlock {
        ty: GgmlType,
        direction: Direction,
        values: usize,
        block_size: usize,
    },

    #[error("{direction} {ty}: {values} values need {expected} bytes, got {actual}")]
    ByteLength {
        ty: GgmlType,
        direction: Direction,
        values: usize,
        expected: usize,
        actual: usize,
    },
}
