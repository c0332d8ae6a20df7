//! Hyperparameters from GGUF metadata (`{arch}.*` keys), validated with clear errors.

use gguf::{GgufFile, Metadata, Value};
use turbine_core::{DeltaNetParams, MoeParams, RopeParams};

use crate::error::{ModelError, Result};

/// Architecture families with a forward pass here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    /// Qwen3 with a mixture-of-experts FFN.
    Qwen3Moe,
    /// Qwen3.5 dense: Gated DeltaNet layers with every n-th layer gated full attention.
    Qwen35,
    /// Qwen3.5 with a mixture-of-experts FFN and a gated shared expert.
    Qwen35Moe,
}

impl Arch {
    pub fn from_name(name: &str) -> Result<Arch> {
        Ok(match name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            "qwen3moe" => Arch::Qwen3Moe,
            "qwen35" => Arch::Qwen35,
            "qwen35moe" => Arch::Qwen35Moe,
            other => return Err(ModelError::UnsupportedArch(other.to_string())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
            Arch::Qwen3Moe => "qwen3moe",
            Arch::Qwen35 => "qwen35",
            Arch::Qwen35Moe => "qwen35moe",
        }
    }

    /// Families whose FFN is a mixture of experts.
    pub fn is_moe(self) -> bool {
        matches!(self, Arch::Qwen3Moe | Arch::Qwen35Moe)
    }

    /// Qwen3.5 families: Gated DeltaNet layers, gated attention, `post_attention_norm` as the
    /// FFN norm.
    pub fn is_qwen35(self) -> bool {
        matches!(self, Arch::Qwen35 | Arch::Qwen35Moe)
    }
}

/// Mixture-of-experts hyperparameters (`{arch}.expert_*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeHParams {
    pub n_expert: usize,
    pub n_expert_used: usize,
    pub n_ff_exp: usize,
    /// Shared expert width (`expert_shared_feed_forward_length`); 0 for none.
    pub n_ff_shexp: usize,
    pub norm_topk: bool,
    pub weights_scale: f32,
}

impl MoeHParams {
    pub fn params(&self) -> MoeParams {
        MoeParams {
            n_expert: self.n_expert,
            n_expert_used: self.n_expert_used,
            n_ff_exp: self.n_ff_exp,
            norm_topk: self.norm_topk,
            weights_scale: self.weights_scale,
        }
    }
}

/// Gated DeltaNet hyperparameters (`{arch}.ssm.*`, `{arch}.full_attention_interval`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SsmHParams {
    pub d_conv: usize,
    /// `n_v_heads × head_v_dim`.
    pub d_inner: usize,
    /// Key head size.
    pub d_state: usize,
    pub n_v_heads: usize,
    pub n_k_heads: usize,
    /// Layer `il` is full attention when `(il + 1) % interval == 0`, else recurrent.
    pub full_attention_interval: usize,
}

impl SsmHParams {
    pub fn head_v_dim(&self) -> usize {
        self.d_inner / self.n_v_heads
    }

    pub fn key_dim(&self) -> usize {
        self.n_k_heads * self.d_state
    }

    pub fn conv_channels(&self) -> usize {
        2 * self.key_dim() + self.d_inner
    }
}

/// Sliding-window attention on some layers (gemma3: 5 local layers, then 1 global).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    /// A query at position `p` sees keys at positions `> p - window`.
    pub window: usize,
    /// Layer `il` is local when `il % pattern < pattern - 1`.
    pub pattern: usize,
    /// RoPE of local layers.
    pub rope_base: f32,
    pub rope_freq_scale: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HParams {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    /// Context length the model was trained with.
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// 1 / linear scaling factor.
    pub rope_freq_scale: f32,
    pub n_rot: usize,
    pub rope_neox: bool,
    pub swa: Option<SlidingWindow>,
    /// Multiplies `q·k` (1/√head_dim, or gemma's query_pre_attn_scalar rule).
    pub attn_scale: f32,
    /// Multiplies the token embeddings (gemma: √n_embd).
    pub embed_scale: Option<f32>,
    /// `c·tanh(logits/c)` on the output.
    pub final_softcap: Option<f32>,
    pub moe: Option<MoeHParams>,
    pub ssm: Option<SsmHParams>,
    /// The query projection also yields a per-head output gate (`x · sigmoid(gate)` after
    /// attention): qwen35, qwen35moe.
    pub attn_output_gate: bool,
}

/// Typed access to `{arch}.{suffix}` keys with errors that name the key.
struct Keys<'a> {
    md: &'a Metadata,
    arch: &'a str,
}

impl Keys<'_> {
    fn key(&self, suffix: &str) -> String {
        format!("{}.{}", self.arch, suffix)
    }

    fn bad(&self, key: &str, v: &Value, want: &str) -> ModelError {
        ModelError::BadValue {
            key: key.to_string(),
            reason: format!("expected {want}, found {}", v.value_type()),
        }
    }

    fn opt_usize(&self, suffix: &str) -> Result<Option<usize>> {
        let key = self.key(suffix);
        match self.md.get(&key) {
            None => Ok(None),
            Some(Value::Array(_)) => Err(ModelError::BadValue {
                key,
                reason: "per-layer values are not supported".into(),
            }),
            Some(v) => match v.as_i128() {
                Some(n) if (0..=(u32::MAX as i128)).contains(&n) => Ok(Some(n as usize)),
                Some(n) => Err(ModelError::BadValue {
                    key,
                    reason: format!("{n} is out of range"),
                }),
                None => Err(self.bad(&key, v, "an integer")),
            },
        }
    }

    fn usize(&self, suffix: &str) -> Result<usize> {
        self.opt_usize(suffix)?
            .ok_or_else(|| ModelError::MissingKey(self.key(suffix)))
    }

    /// A required count that must be at least 1.
    fn count(&self, suffix: &str) -> Result<usize> {
        let n = self.usize(suffix)?;
        if n == 0 {
            return Err(ModelError::BadValue {
                key: self.key(suffix),
                reason: "must be at least 1".into(),
            });
        }
        Ok(n)
    }

    fn opt_f32(&self, suffix: &str) -> Result<Option<f32>> {
        let key = self.key(suffix);
        match self.md.get(&key) {
            None => Ok(None),
            Some(v) => match self.md.get_f32(&key) {
                Some(x) if x.is_finite() => Ok(Some(x)),
                Some(x) => Err(ModelError::BadValue {
                    key,
                    reason: format!("{x} is not finite"),
                }),
                None => Err(self.bad(&key, v, "a float")),
            },
        }
    }

    fn opt_str(&self, suffix: &str) -> Result<Option<&str>> {
        let key = self.key(suffix);
        match self.md.get(&key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.bad(&key, v, "a string")),
        }
    }
}

fn positive(key: String, x: f32) -> Result<f32> {
    if x > 0.0 {
        Ok(x)
    } else {
        Err(ModelError::BadValue {
            key,
            reason: format!("{x} must be positive"),
        })
    }
}

impl HParams {
    pub fn from_gguf(file: &GgufFile) -> Result<HParams> {
        let md = file.metadata();
        let arch_name = md
            .get_str("general.architecture")
            .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?;
        let arch = Arch::from_name(arch_name)?;
        let k = Keys {
            md,
            arch: arch_name,
        };

        let n_layer = k.count("block_count")?;
        let n_embd = k.count("embedding_length")?;
        // MoE families may have no dense FFN width (qwen35moe has none).
        let n_ff = if arch.is_moe() {
            k.opt_usize("feed_forward_length")?.unwrap_or(0)
        } else {
            k.count("feed_forward_length")?
        };
        let n_head = k.count("attention.head_count")?;
        let n_head_kv = k.opt_usize("attention.head_count_kv")?.unwrap_or(n_head);
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(ModelError::BadValue {
                key: k.key("attention.head_count_kv"),
                reason: format!("{n_head_kv} does not divide the {n_head} query heads"),
            });
        }
        let default_head = if n_embd % n_head == 0 {
            Some(n_embd / n_head)
        } else {
            None
        };
        let head_dim_k = match k.opt_usize("attention.key_length")?.or(default_head) {
            Some(d) if d > 0 => d,
            _ => {
                return Err(ModelError::BadValue {
                    key: k.key("attention.key_length"),
                    reason: format!("missing, and {n_embd} is not a multiple of {n_head} heads"),
                })
            }
        };
        let head_dim_v = match k.opt_usize("attention.value_length")? {
            Some(0) => {
                return Err(ModelError::BadValue {
                    key: k.key("attention.value_length"),
                    reason: "must be at least 1".into(),
                })
            }
            Some(d) => d,
            None => head_dim_k,
        };
        let n_ctx_train = k.count("context_length")?;
        let rms_eps = positive(
            k.key("attention.layer_norm_rms_epsilon"),
            k.opt_f32("attention.layer_norm_rms_epsilon")?
                .ok_or_else(|| ModelError::MissingKey(k.key("attention.layer_norm_rms_epsilon")))?,
        )?;
        let rope_base = positive(
            k.key("rope.freq_base"),
            k.opt_f32("rope.freq_base")?.unwrap_or(10000.0),
        )?;
        let n_rot = k.opt_usize("rope.dimension_count")?.unwrap_or(head_dim_k);
        if n_rot == 0 || n_rot % 2 != 0 || n_rot > head_dim_k {
            return Err(ModelError::BadValue {
                key: k.key("rope.dimension_count"),
                reason: format!("{n_rot} must be even and at most the head size {head_dim_k}"),
            });
        }
        let rope_freq_scale = rope_scale(&k)?;

        let token_embd = file
            .tensor("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?;
        let n_vocab = match token_embd.dims.as_slice() {
            [d0, d1] if *d0 == n_embd as u64 && *d1 > 0 => *d1 as usize,
            dims => {
                return Err(ModelError::BadTensor {
                    name: "token_embd.weight".into(),
                    reason: format!("shape {dims:?}, expected [{n_embd}, n_vocab]"),
                })
            }
        };

        let mut hp = HParams {
            arch,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_ff,
            n_vocab,
            n_ctx_train,
            rms_eps,
            rope_base,
            rope_freq_scale,
            n_rot,
            rope_neox: arch != Arch::Llama,
            swa: None,
            attn_scale: 1.0 / (head_dim_k as f32).sqrt(),
            embed_scale: None,
            final_softcap: None,
            moe: None,
            ssm: None,
            attn_output_gate: arch.is_qwen35(),
        };
        if arch.is_moe() {
            hp.moe = Some(moe_hparams(&k, n_ff)?);
        }
        if arch.is_qwen35() {
            hp.ssm = Some(ssm_hparams(&k, n_layer)?);
        }

        if arch == Arch::Gemma3 {
            // llama.cpp's gemma3 rules: every 6th layer is global, local layers use RoPE base
            // 10000 unscaled; embeddings are scaled by √n_embd; the query scale is
            // 1/√head_dim except for the 27B (62 layers), which uses 1/√(n_embd/n_head).
            if let Some(window) = k.opt_usize("attention.sliding_window")? {
                if window > 0 {
                    hp.swa = Some(SlidingWindow {
                        window,
                        pattern: 6,
                        rope_base: 10000.0,
                        rope_freq_scale: 1.0,
                    });
                }
            }
            hp.embed_scale = Some((n_embd as f32).sqrt());
            if n_layer == 62 {
                hp.attn_scale = 1.0 / ((n_embd / n_head) as f32).sqrt();
            }
            if hp.swa.is_none() {
                hp.final_softcap = k.opt_f32("final_logit_softcapping")?.filter(|&c| c > 0.0);
            }
        }
        Ok(hp)
    }

    /// True if layer `il` uses the sliding window.
    pub fn is_swa_layer(&self, il: usize) -> bool {
        match &self.swa {
            Some(s) => il % s.pattern < s.pattern - 1,
            None => false,
        }
    }

    pub fn layer_window(&self, il: usize) -> Option<usize> {
        if self.is_swa_layer(il) {
            self.swa.map(|s| s.window)
        } else {
            None
        }
    }

    pub fn layer_rope(&self, il: usize) -> RopeParams {
        let (base, freq_scale) = match &self.swa {
            Some(s) if self.is_swa_layer(il) => (s.rope_base, s.rope_freq_scale),
            _ => (self.rope_base, self.rope_freq_scale),
        };
        RopeParams {
            n_rot: self.n_rot,
            base,
            freq_scale,
            neox: self.rope_neox,
        }
    }

    /// True if layer `il` is a Gated DeltaNet (recurrent) layer rather than attention.
    pub fn is_recurrent(&self, il: usize) -> bool {
        match &self.ssm {
            Some(s) => !(il + 1).is_multiple_of(s.full_attention_interval),
            None => false,
        }
    }

    /// Index of layer `il` among the attention layers (its KV cache layer), `None` for a
    /// recurrent layer.
    pub fn kv_layer(&self, il: usize) -> Option<usize> {
        if self.is_recurrent(il) {
            None
        } else {
            Some((0..il).filter(|&l| !self.is_recurrent(l)).count())
        }
    }

    /// Index of layer `il` among the recurrent layers (its state slot).
    pub fn recurrent_layer(&self, il: usize) -> Option<usize> {
        if self.is_recurrent(il) {
            Some((0..il).filter(|&l| self.is_recurrent(l)).count())
        } else {
            None
        }
    }

    /// Layers with a KV cache.
    pub fn n_attn_layers(&self) -> usize {
        (0..self.n_layer).filter(|&l| !self.is_recurrent(l)).count()
    }

    pub fn n_recurrent_layers(&self) -> usize {
        self.n_layer - self.n_attn_layers()
    }

    /// The DeltaNet geometry for `n_seq` sequences (`None` without recurrent layers).
    pub fn delta_net(&self, n_seq: usize) -> Option<DeltaNetParams> {
        let s = self.ssm.as_ref()?;
        Some(DeltaNetParams {
            n_k_heads: s.n_k_heads,
            n_v_heads: s.n_v_heads,
            head_k_dim: s.d_state,
            head_v_dim: s.head_v_dim(),
            d_conv: s.d_conv,
            n_layers: self.n_recurrent_layers(),
            n_seq,
        })
    }

    /// The `general.architecture` name.
    pub fn arch_name(&self) -> &'static str {
        self.arch.name()
    }
}

fn moe_hparams(k: &Keys<'_>, n_ff: usize) -> Result<MoeHParams> {
    let n_expert = k.count("expert_count")?;
    let n_expert_used = k.count("expert_used_count")?;
    if n_expert_used > n_expert {
        return Err(ModelError::BadValue {
            key: k.key("expert_used_count"),
            reason: format!("{n_expert_used} exceeds the {n_expert} experts"),
        });
    }
    // llama.cpp's fallback when the key is absent: n_ff / n_expert_used.
    let n_ff_exp = match k.opt_usize("expert_feed_forward_length")? {
        Some(n) if n > 0 => n,
        _ if n_ff > 0 => n_ff / n_expert_used,
        _ => return Err(ModelError::MissingKey(k.key("expert_feed_forward_length"))),
    };
    let n_ff_shexp = k
        .opt_usize("expert_shared_feed_forward_length")?
        .unwrap_or(0);
    // 1 = softmax (the only gating these families use), 2 = sigmoid.
    if let Some(g) = k.opt_usize("expert_gating_func")? {
        if g != 1 {
            return Err(ModelError::BadValue {
                key: k.key("expert_gating_func"),
                reason: format!("gating function {g} is not supported (only softmax, 1)"),
            });
        }
    }
    let norm_topk = match k.md.get(&k.key("expert_weights_norm")) {
        None => true,
        Some(v) => {
            k.md.get_bool(&k.key("expert_weights_norm"))
                .ok_or_else(|| k.bad(&k.key("expert_weights_norm"), v, "a bool"))?
        }
    };
    let weights_scale = match k.opt_f32("expert_weights_scale")? {
        Some(s) if s != 0.0 => s,
        _ => 1.0,
    };
    Ok(MoeHParams {
        n_expert,
        n_expert_used,
        n_ff_exp,
        n_ff_shexp,
        norm_topk,
        weights_scale,
    })
}

fn ssm_hparams(k: &Keys<'_>, n_layer: usize) -> Result<SsmHParams> {
    let s = SsmHParams {
        d_conv: k.count("ssm.conv_kernel")?,
        d_inner: k.count("ssm.inner_size")?,
        d_state: k.count("ssm.state_size")?,
        n_v_heads: k.count("ssm.time_step_rank")?,
        n_k_heads: k.count("ssm.group_count")?,
        full_attention_interval: k.opt_usize("full_attention_interval")?.unwrap_or(4),
    };
    if s.full_attention_interval == 0 || s.full_attention_interval > n_layer.max(1) {
        return Err(ModelError::BadValue {
            key: k.key("full_attention_interval"),
            reason: format!(
                "{} must be between 1 and the {n_layer} layers",
                s.full_attention_interval
            ),
        });
    }
    if !s.n_v_heads.is_multiple_of(s.n_k_heads) || !s.d_inner.is_multiple_of(s.n_v_heads) {
        return Err(ModelError::BadValue {
            key: k.key("ssm.time_step_rank"),
            reason: format!(
                "{} value heads must be a multiple of {} key heads and divide the inner size {}",
                s.n_v_heads, s.n_k_heads, s.d_inner
            ),
        });
    }
    Ok(s)
}

/// `rope.scaling.type` / `rope.scaling.factor` (or the older `rope.scale_linear`) to a linear
/// position scale. Only linear scaling is implemented; YaRN and others are rejected by name.
fn rope_scale(k: &Keys<'_>) -> Result<f32> {
    let kind = k.opt_str("rope.scaling.type")?.unwrap_or("linear");
    let factor = match k.opt_f32("rope.scaling.factor")? {
        Some(f) => Some(f),
        None => k.opt_f32("rope.scale_linear")?,
    };
    match (kind, factor) {
        ("none", _) | (_, None) => Ok(1.0),
        (_, Some(f)) if f == 0.0 || f == 1.0 => Ok(1.0),
        ("linear", Some(f)) => Ok(1.0 / positive(k.key("rope.scaling.factor"), f)?),
        (other, Some(_)) => Err(ModelError::BadValue {
            key: k.key("rope.scaling.type"),
            reason: format!("RoPE scaling `{other}` is not supported (only linear)"),
        }),
    }
}
