//! The `general.*` and `{arch}.*` keys llama.cpp's converter writes for each architecture.

use formats::GgmlType;
use gguf::{Array, Metadata};

use crate::shapes::{Arch, Shape};

/// llama.cpp's `general.file_type` (`enum llama_ftype`) for a model whose matrices are all
/// `ty`; `None` where no file type names it.
fn file_type(ty: GgmlType) -> Option<u32> {
    use GgmlType::*;
    Some(match ty {
        F32 => 0,
        F16 => 1,
        Q4_0 => 2,
        Q4_1 => 3,
        Q8_0 => 7,
        Q5_0 => 8,
        Q5_1 => 9,
        Q2K => 10,
        Q3K => 11, // Q3_K_S
        Q4K => 14, // Q4_K_S
        Q5K => 16, // Q5_K_S
        Q6K => 18,
        Iq4Nl => 25,
        Iq4Xs => 30,
        Bf16 => 32,
        _ => return None,
    })
}

/// Metadata for `shape` (everything but the tokenizer).
pub fn model_metadata(arch: Arch, shape: &Shape, ty: GgmlType, seed: u64) -> Metadata {
    let mut md = Metadata::new();
    let a = arch.name();
    let k = |suffix: &str| format!("{a}.{suffix}");
    md.insert("general.architecture", a);
    md.insert(
        "general.name",
        format!("turbine synth {a} {} {ty} seed {seed}", shape.name),
    );
    md.insert(
        "general.description",
        "random weights (turbine synth): for speed and memory measurements only",
    );
    if let Some(ft) = file_type(ty) {
        md.insert("general.file_type", ft);
    }
    md.insert("general.quantization_version", 2u32);
    md.insert(k("vocab_size"), shape.n_vocab as u32);
    md.insert(k("context_length"), shape.n_ctx_train as u32);
    md.insert(k("embedding_length"), shape.n_embd as u32);
    md.insert(k("block_count"), shape.n_layer as u32);
    if shape.n_ff > 0 {
        md.insert(k("feed_forward_length"), shape.n_ff as u32);
    }
    md.insert(k("attention.head_count"), shape.n_head as u32);
    md.insert(k("attention.head_count_kv"), shape.n_head_kv as u32);
    md.insert(k("attention.key_length"), shape.head_dim as u32);
    md.insert(k("attention.value_length"), shape.head_dim as u32);
    md.insert(k("attention.layer_norm_rms_epsilon"), shape.rms_eps);
    md.insert(k("rope.freq_base"), shape.rope_base);
    md.insert(k("rope.dimension_count"), shape.n_rot as u32);
    if let Some(sections) = shape.rope_sections {
        md.insert(k("rope.dimension_sections"), Array::I32(sections.to_vec()));
    }
    if let Some(m) = shape.moe {
        md.insert(k("expert_count"), m.n_expert as u32);
        md.insert(k("expert_used_count"), m.n_expert_used as u32);
        md.insert(k("expert_feed_forward_length"), m.n_ff_exp as u32);
        if m.n_ff_shexp > 0 {
            md.insert(k("expert_shared_feed_forward_length"), m.n_ff_shexp as u32);
        }
    }
    if let Some(l) = shape.linear {
        md.insert(k("ssm.conv_kernel"), l.conv_kernel as u32);
        md.insert(k("ssm.state_size"), l.head_dim as u32);
        md.insert(k("ssm.group_count"), l.n_k_heads as u32);
        md.insert(k("ssm.time_step_rank"), l.n_v_heads as u32);
        md.insert(k("ssm.inner_size"), l.value_dim() as u32);
        md.insert(
            k("full_attention_interval"),
            l.full_attention_interval as u32,
        );
    }
    md
}
