//! The element types a KV cache side (K or V) can be stored in, and the per-head geometry each
//! one implies.

use std::fmt;

use formats::GgmlType;

use crate::error::{KvError, Result};

/// Values per TurboQuant rotation group (one block).
pub const TURBO_GROUP: usize = 128;

/// A KV cache element type, chosen separately for K and V (`-ctk`, `-ctv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvType {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Iq4Nl,
    Turbo2,
    Turbo3,
    Turbo4,
}

/// Every KV type, cheapest-to-read last.
pub const ALL_KV_TYPES: [KvType; 12] = [
    KvType::F32,
    KvType::F16,
    KvType::Bf16,
    KvType::Q8_0,
    KvType::Q4_0,
    KvType::Q4_1,
    KvType::Q5_0,
    KvType::Q5_1,
    KvType::Iq4Nl,
    KvType::Turbo2,
    KvType::Turbo3,
    KvType::Turbo4,
];

impl KvType {
    /// The ggml element type the rows are stored in (same block bytes, same layout).
    pub fn ggml(self) -> GgmlType {
        match self {
            KvType::F32 => GgmlType::F32,
            KvType::F16 => GgmlType::F16,
            KvType::Bf16 => GgmlType::Bf16,
            KvType::Q8_0 => GgmlType::Q8_0,
            KvType::Q4_0 => GgmlType::Q4_0,
            KvType::Q4_1 => GgmlType::Q4_1,
            KvType::Q5_0 => GgmlType::Q5_0,
            KvType::Q5_1 => GgmlType::Q5_1,
            KvType::Iq4Nl => GgmlType::Iq4Nl,
            KvType::Turbo2 => GgmlType::Turbo2,
            KvType::Turbo3 => GgmlType::Turbo3,
            KvType::Turbo4 => GgmlType::Turbo4,
        }
    }

    /// The KV type stored as `ty`, or an error naming it if the cache cannot store it.
    pub fn from_ggml(ty: GgmlType) -> Result<KvType> {
        ALL_KV_TYPES
            .iter()
            .copied()
            .find(|k| k.ggml() == ty)
            .ok_or_else(|| KvError::UnsupportedType(ty.name().to_string()))
    }

    /// Parses a name as typed on the command line (`q8_0`, `turbo3`), case-insensitive.
    pub fn from_name(name: &str) -> Result<KvType> {
        let ty =
            GgmlType::from_name(name).ok_or_else(|| KvError::UnsupportedType(name.to_string()))?;
        KvType::from_ggml(ty).map_err(|_| KvError::UnsupportedType(name.to_string()))
    }

    pub fn name(self) -> &'static str {
        self.ggml().name()
    }

    /// True for turbo2/3/4: rows are stored rotated, in 128-value groups.
    pub fn is_turbo(self) -> bool {
        self.ggml().is_turbo()
    }

    /// Values per block.
    pub fn block_size(self) -> usize {
        self.ggml().block_size()
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.ggml().block_bytes()
    }

    /// The number of values one head of `head_dim` occupies in this type: turbo types pad to a
    /// multiple of 128 with zeros; the 32-value block types need `head_dim % 32 == 0`, because
    /// a block that straddled two heads would share one scale between them.
    pub fn padded_head_dim(self, head_dim: usize) -> Result<usize> {
        if head_dim == 0 {
            return Err(KvError::Config("head size is 0".into()));
        }
        let bs = self.block_size();
        if self.is_turbo() {
            Ok(head_dim.div_ceil(TURBO_GROUP) * TURBO_GROUP)
        } else if !head_dim.is_multiple_of(bs) {
            Err(KvError::Config(format!(
                "KV type {} stores {bs}-value blocks, so the head size must be a multiple of {bs}, got {head_dim}",
                self.name()
            )))
        } else {
            Ok(head_dim)
        }
    }

    /// Bytes one head of `head_dim` values occupies (after padding).
    pub fn head_bytes(self, head_dim: usize) -> Result<usize> {
        let padded = self.padded_head_dim(head_dim)?;
        Ok(padded / self.block_size() * self.block_bytes())
    }
}

impl fmt::Display for KvType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for t in ALL_KV_TYPES {
            assert_eq!(KvType::from_name(t.name()), Ok(t));
        }
        assert_eq!(KvType::from_name("Q8_0"), Ok(KvType::Q8_0));
        assert!(matches!(
            KvType::from_name("q4_K"),
            Err(KvError::UnsupportedType(_))
        ));
        assert!(matches!(
            KvType::from_name("nonsense"),
            Err(KvError::UnsupportedType(_))
        ));
    }

    #[test]
    fn head_geometry() {
        assert_eq!(KvType::Turbo3.padded_head_dim(64), Ok(128));
        assert_eq!(KvType::Turbo3.padded_head_dim(96), Ok(128));
        assert_eq!(KvType::Turbo3.padded_head_dim(192), Ok(256));
        assert_eq!(KvType::Turbo4.head_bytes(256), Ok(132));
        assert_eq!(KvType::Turbo2.head_bytes(64), Ok(34));
        assert_eq!(KvType::Q8_0.head_bytes(128), Ok(136));
        assert_eq!(KvType::F16.head_bytes(80), Ok(160));
        assert_eq!(KvType::F32.head_bytes(80), Ok(320));
        assert!(KvType::Q4_0.padded_head_dim(80).is_err());
        assert!(KvType::F16.padded_head_dim(0).is_err());
    }
}
