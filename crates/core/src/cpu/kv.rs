//! The CPU KV cache: the `kvcache` crate's paged cache, configured from a [`KvSpec`].

use kvcache::{KvCache, KvConfig, KvType, LayerKind};

use crate::backend::KvSpec;
use crate::error::CoreError;

/// Tokens per page: llama.cpp pads its cache to 256 cells, so `-c` values people use are whole
/// pages.
pub const PAGE_SIZE: usize = 256;

pub fn kv_err(e: kvcache::KvError) -> CoreError {
    CoreError::Kv(e.to_string())
}

/// The `kvcache` configuration of `spec`. Every layer must share one KV geometry.
/// `refined_turbo`: pack 64-wide turbo heads into shared rotation groups and center turbo
/// keys (the CPU's default); off, turbo rows are stored as the CUDA kernels store them.
pub fn kv_config(spec: &KvSpec, refined_turbo: bool) -> Result<KvConfig, CoreError> {
    let first = spec
        .layers
        .first()
        .ok_or_else(|| CoreError::Kv("a model without layers has no KV cache".into()))?;
    if spec.layers.iter().any(|l| {
        (l.n_head_kv, l.head_dim_k, l.head_dim_v)
            != (first.n_head_kv, first.head_dim_k, first.head_dim_v)
    }) {
        return Err(CoreError::Kv(
            "layers with different KV head counts or sizes are not supported".into(),
        ));
    }
    let layers = spec
        .layers
        .iter()
        .map(|l| match l.window {
            Some(window) => LayerKind::Sliding { window },
            None => LayerKind::Full,
        })
        .collect();
    Ok(KvConfig {
        layers,
        n_kv_heads: first.n_head_kv,
        head_dim_k: first.head_dim_k,
        head_dim_v: first.head_dim_v,
        k_type: KvType::from_ggml(spec.type_k).map_err(kv_err)?,
        v_type: KvType::from_ggml(spec.type_v).map_err(kv_err)?,
        page_size: PAGE_SIZE,
        n_pages: KvConfig::pages_for_context(spec.n_ctx, spec.n_seq, PAGE_SIZE),
        max_seqs: spec.n_seq,
        // The CPU kernels place each head in its part of a shared rotation group, so 64-wide
        // turbo heads cost what their bits imply instead of being padded to 128.
        pack_turbo_heads: refined_turbo,
        center_turbo_keys: refined_turbo,
    })
}

pub struct CpuKvCache {
    pub cache: KvCache,
}
