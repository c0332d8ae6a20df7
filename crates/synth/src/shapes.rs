//! Architectures and named model shapes (the hyperparameters of real models, from their
//! published configs), plus small `tiny` shapes for tests.

use crate::error::SynthError;

/// An architecture as llama.cpp names it in `general.architecture`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Qwen3Moe,
    Qwen35,
    Qwen35Moe,
}

pub const ALL_ARCHES: [Arch; 6] = [
    Arch::Llama,
    Arch::Qwen2,
    Arch::Qwen3,
    Arch::Qwen3Moe,
    Arch::Qwen35,
    Arch::Qwen35Moe,
];

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Qwen3Moe => "qwen3moe",
            Arch::Qwen35 => "qwen35",
            Arch::Qwen35Moe => "qwen35moe",
        }
    }

    pub fn from_name(name: &str) -> Result<Arch, SynthError> {
        ALL_ARCHES
            .iter()
            .copied()
            .find(|a| a.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = ALL_ARCHES.iter().map(|a| a.name()).collect();
                SynthError::Input(format!(
                    "unknown architecture `{name}` (known: {})",
                    known.join(", ")
                ))
            })
    }

    /// The Qwen family uses NeoX-style RoPE and the Qwen2 pre-tokenizer.
    pub fn is_qwen(self) -> bool {
        self != Arch::Llama
    }
}

/// Routed experts (and an optional shared expert) replacing the dense FFN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moe {
    pub n_expert: usize,
    pub n_expert_used: usize,
    /// Hidden size of each routed expert.
    pub n_ff_exp: usize,
    /// Hidden size of the shared expert; 0 = none.
    pub n_ff_shexp: usize,
}

/// Gated DeltaNet linear attention (Qwen3-Next / Qwen3.5): every `full_attention_interval`-th
/// layer is full (gated) attention, the others are linear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    pub full_attention_interval: usize,
    pub conv_kernel: usize,
    /// Key heads (`ssm.group_count`).
    pub n_k_heads: usize,
    /// Value heads (`ssm.time_step_rank`).
    pub n_v_heads: usize,
    /// Key and value head size (`ssm.state_size`; llama.cpp requires them equal).
    pub head_dim: usize,
}

impl Linear {
    pub fn key_dim(&self) -> usize {
        self.n_k_heads * self.head_dim
    }

    pub fn value_dim(&self) -> usize {
        self.n_v_heads * self.head_dim
    }

    /// Channels of the causal convolution: q, k and v.
    pub fn conv_dim(&self) -> usize {
        2 * self.key_dim() + self.value_dim()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub name: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Dense FFN hidden size (0 where the model has none: MoE-only layers).
    pub n_ff: usize,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub rope_base: f32,
    /// Rotated dimensions per head (partial RoPE where smaller than `head_dim`).
    pub n_rot: usize,
    /// M-RoPE sections (Qwen3.5), written as `rope.dimension_sections`.
    pub rope_sections: Option<[i32; 4]>,
    pub rms_eps: f32,
    /// No `output.weight`: the head reuses `token_embd`.
    pub tied_output: bool,
    pub moe: Option<Moe>,
    pub linear: Option<Linear>,
}

impl Shape {
    /// True if layer `il` is a linear-attention layer.
    pub fn is_linear_layer(&self, il: usize) -> bool {
        match &self.linear {
            Some(l) => !(il + 1).is_multiple_of(l.full_attention_interval),
            None => false,
        }
    }
}

/// Starting point for the builders below (fields overwritten per shape).
#[allow(clippy::too_many_arguments)]
fn dense(
    name: &str,
    n_layer: usize,
    n_embd: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    n_ff: usize,
    n_vocab: usize,
) -> Shape {
    Shape {
        name: name.to_string(),
        n_layer,
        n_embd,
        n_head,
        n_head_kv,
        head_dim,
        n_ff,
        n_vocab,
        n_ctx_train: 4096,
        rope_base: 10000.0,
        n_rot: head_dim,
        rope_sections: None,
        rms_eps: 1e-6,
        tied_output: false,
        moe: None,
        linear: None,
    }
}

/// Shape names per architecture (for `--help` and error messages).
pub fn shape_names(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::Llama => &["tiny", "smollm2-135m", "llama-8b"],
        Arch::Qwen2 => &["tiny", "0.5b", "7b"],
        Arch::Qwen3 => &["tiny", "0.6b", "8b"],
        Arch::Qwen3Moe => &["tiny", "30b-a3b"],
        Arch::Qwen35 => &["tiny", "27b"],
        Arch::Qwen35Moe => &["tiny", "35b-a3b"],
    }
}

/// The named shape of `arch`.
pub fn shape(arch: Arch, name: &str) -> Result<Shape, SynthError> {
    let s = match (arch, name) {
        // Tiny shapes: every row a whole number of 256-value K-quant blocks, so any type works.
        (Arch::Llama, "tiny") => Shape {
            rms_eps: 1e-5,
            ..dense(name, 2, 256, 4, 2, 64, 512, 512)
        },
        // HuggingFaceTB/SmolLM2-135M (ASSETS.md facts).
        (Arch::Llama, "smollm2-135m") => Shape {
            n_ctx_train: 8192,
            rope_base: 100000.0,
            rms_eps: 1e-5,
            tied_output: true,
            ..dense(name, 30, 576, 9, 3, 64, 1536, 49152)
        },
        // Meta Llama 3.1 8B.
        (Arch::Llama, "llama-8b") => Shape {
            n_ctx_train: 131072,
            rope_base: 500000.0,
            rms_eps: 1e-5,
            ..dense(name, 32, 4096, 32, 8, 128, 14336, 128256)
        },
        (Arch::Qwen2, "tiny") => dense(name, 2, 256, 4, 2, 64, 512, 512),
        // Qwen2.5-0.5B.
        (Arch::Qwen2, "0.5b") => Shape {
            n_ctx_train: 32768,
            rope_base: 1e6,
            tied_output: true,
            ..dense(name, 24, 896, 14, 2, 64, 4864, 151936)
        },
        // Qwen2.5-7B.
        (Arch::Qwen2, "7b") => Shape {
            n_ctx_train: 32768,
            rope_base: 1e6,
            ..dense(name, 28, 3584, 28, 4, 128, 18944, 152064)
        },
        (Arch::Qwen3, "tiny") => dense(name, 2, 256, 4, 2, 64, 512, 512),
        // Qwen3-0.6B.
        (Arch::Qwen3, "0.6b") => Shape {
            n_ctx_train: 40960,
            rope_base: 1e6,
            tied_output: true,
            ..dense(name, 28, 1024, 16, 8, 128, 3072, 151936)
        },
        // Qwen3-8B.
        (Arch::Qwen3, "8b") => Shape {
            n_ctx_train: 40960,
            rope_base: 1e6,
            ..dense(name, 36, 4096, 32, 8, 128, 12288, 151936)
        },
        (Arch::Qwen3Moe, "tiny") => Shape {
            moe: Some(Moe {
                n_expert: 8,
                n_expert_used: 2,
                n_ff_exp: 256,
                n_ff_shexp: 0,
            }),
            ..dense(name, 2, 256, 4, 2, 64, 512, 512)
        },
        // Qwen3-30B-A3B.
        (Arch::Qwen3Moe, "30b-a3b") => Shape {
            n_ctx_train: 40960,
            rope_base: 1e6,
            moe: Some(Moe {
                n_expert: 128,
                n_expert_used: 8,
                n_ff_exp: 768,
                n_ff_shexp: 0,
            }),
            ..dense(name, 48, 2048, 32, 4, 128, 6144, 151936)
        },
        (Arch::Qwen35, "tiny") => Shape {
            n_rot: 16,
            rope_sections: Some([3, 3, 2, 0]),
            linear: Some(tiny_linear()),
            ..dense(name, 4, 256, 4, 2, 64, 512, 512)
        },
        // Qwen3.5-27B: 64 layers, 3 of 4 Gated DeltaNet (16 key / 48 value heads of 128);
        // gated full attention with 24 query heads, 4 KV heads of 256, partial RoPE as 35B-A3B.
        (Arch::Qwen35, "27b") => Shape {
            n_ctx_train: 262144,
            rope_base: 1e7,
            n_rot: 64,
            rope_sections: Some([11, 11, 10, 0]),
            linear: Some(Linear {
                full_attention_interval: 4,
                conv_kernel: 4,
                n_k_heads: 16,
                n_v_heads: 48,
                head_dim: 128,
            }),
            ..dense(name, 64, 5120, 24, 4, 256, 17408, 248320)
        },
        (Arch::Qwen35Moe, "tiny") => Shape {
            n_rot: 16,
            rope_sections: Some([3, 3, 2, 0]),
            moe: Some(Moe {
                n_expert: 8,
                n_expert_used: 2,
                n_ff_exp: 256,
                n_ff_shexp: 256,
            }),
            linear: Some(tiny_linear()),
            ..dense(name, 4, 256, 4, 2, 64, 0, 512)
        },
        // Qwen3.5-35B-A3B: 40 layers, 3 of 4 Gated DeltaNet; gated full attention with 16
        // query heads, 2 KV heads of 256, partial RoPE (factor 0.25, M-RoPE sections
        // [11, 11, 10]); 256 experts of 512, 8 routed + 1 shared of 512.
        (Arch::Qwen35Moe, "35b-a3b") => Shape {
            n_ctx_train: 262144,
            rope_base: 1e7,
            n_rot: 64,
            rope_sections: Some([11, 11, 10, 0]),
            moe: Some(Moe {
                n_expert: 256,
                n_expert_used: 8,
                n_ff_exp: 512,
                n_ff_shexp: 512,
            }),
            linear: Some(Linear {
                full_attention_interval: 4,
                conv_kernel: 4,
                n_k_heads: 16,
                n_v_heads: 32,
                head_dim: 128,
            }),
            ..dense(name, 40, 2048, 16, 2, 256, 0, 248320)
        },
        _ => {
            return Err(SynthError::Input(format!(
                "unknown shape `{name}` for {} (known: {})",
                arch.name(),
                shape_names(arch).join(", ")
            )))
        }
    };
    Ok(s)
}

fn tiny_linear() -> Linear {
    Linear {
        full_attention_interval: 4,
        conv_kernel: 4,
        n_k_heads: 2,
        n_v_heads: 4,
        head_dim: 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_shape_exists_and_unknown_names_are_errors() {
        for arch in ALL_ARCHES {
            assert_eq!(Arch::from_name(arch.name()).unwrap(), arch);
            for name in shape_names(arch) {
                let s = shape(arch, name).unwrap();
                assert_eq!(s.n_embd % 32, 0, "{name}");
                assert_eq!(s.n_head % s.n_head_kv, 0, "{name}");
            }
        }
        let e = shape(Arch::Qwen3, "9b").unwrap_err().to_string();
        assert!(e.contains("0.6b, 8b"), "{e}");
        assert!(Arch::from_name("gpt5").is_err());
    }

    #[test]
    fn qwen35moe_layer_pattern_is_three_linear_then_one_full() {
        let s = shape(Arch::Qwen35Moe, "35b-a3b").unwrap();
        let full: Vec<usize> = (0..s.n_layer).filter(|&i| !s.is_linear_layer(i)).collect();
        assert_eq!(full, (0..10).map(|k| 4 * k + 3).collect::<Vec<_>>());
        let l = s.linear.unwrap();
        assert_eq!(
            (l.key_dim(), l.value_dim(), l.conv_dim()),
            (2048, 4096, 8192)
        );
    }
}
