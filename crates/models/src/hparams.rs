//! Hyperparameters from GGUF metadata (`{arch}.*` keys), validated with clear errors.

use gguf::{GgufFile, Metadata, Value};
use turbine_core::RopeParams;

use crate::error::{ModelError, Result};

/// Architecture families with a forward pass here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
}

impl Arch {
    pub fn from_name(name: &str) -> Result<Arch> {
        Ok(match name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            other => return Err(ModelError::UnsupportedArch(other.to_string())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
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
        let n_ff = k.count("feed_forward_length")?;
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
        };

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

    /// The `general.architecture` name.
    pub fn arch_name(&self) -> &'static str {
        self.arch.name()
    }
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
