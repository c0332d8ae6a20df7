//! Weights by llama.cpp tensor name, checked against the hyperparameters, made resident by the
//! backend (on the CPU: the memory-mapped bytes in place).

use std::collections::HashSet;
use std::sync::Arc;

use gguf::GgufFile;
use turbine_core::{Backend, HostBytes};

use crate::error::{ModelError, Result};
use crate::hparams::{Arch, HParams};

/// The plan buffer every weight is counted under.
pub const WEIGHTS_BUFFER: &str = "weights";

/// A tensor the model reads: its name, expected shape (ggml order) and whether it must exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightDesc {
    pub name: String,
    pub dims: Vec<u64>,
    pub required: bool,
}

fn desc(name: String, dims: &[usize], required: bool) -> WeightDesc {
    WeightDesc {
        name,
        dims: dims.iter().map(|&d| d as u64).collect(),
        required,
    }
}

/// Every tensor the forward pass of `hp.arch` reads.
pub fn weight_descs(hp: &HParams) -> Vec<WeightDesc> {
    let (e, v, ff) = (hp.n_embd, hp.n_vocab, hp.n_ff);
    let q = hp.n_head * hp.head_dim_k;
    let kd = hp.n_head_kv * hp.head_dim_k;
    let vd = hp.n_head_kv * hp.head_dim_v;
    let o = hp.n_head * hp.head_dim_v;
    let qk_norm = matches!(
        hp.arch,
        Arch::Qwen3 | Arch::Gemma3 | Arch::Qwen3Moe | Arch::Qwen35 | Arch::Qwen35Moe
    );
    let gemma = hp.arch == Arch::Gemma3;
    // Gated attention: the query projection also yields the per-head output gate.
    let q_out = if hp.attn_output_gate { 2 * q } else { q };
    let mut out = vec![
        desc("token_embd.weight".into(), &[e, v], true),
        desc("output_norm.weight".into(), &[e], true),
        // Absent means tied to token_embd.
        desc("output.weight".into(), &[e, v], false),
        desc("rope_freqs.weight".into(), &[hp.n_rot / 2], false),
    ];
    for il in 0..hp.n_layer {
        let n = |s: &str| format!("blk.{il}.{s}");
        out.push(desc(n("attn_norm.weight"), &[e], true));
        if let (true, Some(s)) = (hp.is_recurrent(il), hp.ssm.as_ref()) {
            let nv = s.n_v_heads;
            out.push(desc(n("attn_qkv.weight"), &[e, s.conv_channels()], true));
            out.push(desc(n("attn_gate.weight"), &[e, s.d_inner], true));
            out.push(desc(n("ssm_beta.weight"), &[e, nv], true));
            out.push(desc(n("ssm_alpha.weight"), &[e, nv], true));
            out.push(desc(
                n("ssm_conv1d.weight"),
                &[s.d_conv, s.conv_channels()],
                true,
            ));
            out.push(desc(n("ssm_dt.bias"), &[nv], true));
            out.push(desc(n("ssm_a"), &[nv], true));
            out.push(desc(n("ssm_norm.weight"), &[s.head_v_dim()], true));
            out.push(desc(n("ssm_out.weight"), &[s.d_inner, e], true));
        } else {
            out.push(desc(n("attn_q.weight"), &[e, q_out], true));
            out.push(desc(n("attn_k.weight"), &[e, kd], true));
            out.push(desc(n("attn_v.weight"), &[e, vd], true));
            out.push(desc(n("attn_output.weight"), &[o, e], true));
            // Biases: qwen2 has them; any arch may.
            out.push(desc(n("attn_q.bias"), &[q_out], hp.arch == Arch::Qwen2));
            out.push(desc(n("attn_k.bias"), &[kd], hp.arch == Arch::Qwen2));
            out.push(desc(n("attn_v.bias"), &[vd], hp.arch == Arch::Qwen2));
            if qk_norm {
                out.push(desc(n("attn_q_norm.weight"), &[hp.head_dim_k], true));
                out.push(desc(n("attn_k_norm.weight"), &[hp.head_dim_k], true));
            }
        }
        if gemma {
            out.push(desc(n("post_attention_norm.weight"), &[e], true));
            out.push(desc(n("post_ffw_norm.weight"), &[e], true));
        }
        out.push(desc(n(ffn_norm_name(hp)), &[e], true));
        match &hp.moe {
            Some(m) => {
                let (ne, fe) = (m.n_expert, m.n_ff_exp);
                out.push(desc(n("ffn_gate_inp.weight"), &[e, ne], true));
                out.push(desc(n("ffn_gate_exps.weight"), &[e, fe, ne], true));
                out.push(desc(n("ffn_up_exps.weight"), &[e, fe, ne], true));
                out.push(desc(n("ffn_down_exps.weight"), &[fe, e, ne], true));
                if m.n_ff_shexp > 0 {
                    let fs = m.n_ff_shexp;
                    out.push(desc(n("ffn_gate_inp_shexp.weight"), &[e], true));
                    out.push(desc(n("ffn_gate_shexp.weight"), &[e, fs], true));
                    out.push(desc(n("ffn_up_shexp.weight"), &[e, fs], true));
                    out.push(desc(n("ffn_down_shexp.weight"), &[fs, e], true));
                }
            }
            None => {
                out.push(desc(n("ffn_gate.weight"), &[e, ff], true));
                out.push(desc(n("ffn_up.weight"), &[e, ff], true));
                out.push(desc(n("ffn_down.weight"), &[ff, e], true));
            }
        }
    }
    out
}

/// The FFN input norm: qwen3.5 names it `post_attention_norm` (llama.cpp's ATTN_POST_NORM).
fn ffn_norm_name(hp: &HParams) -> &'static str {
    if hp.arch.is_qwen35() {
        "post_attention_norm.weight"
    } else {
        "ffn_norm.weight"
    }
}

/// Checks that every required tensor exists with its expected shape and every optional one
/// that exists has its expected shape. Returns the descriptors of the tensors present.
pub fn check_weights(file: &GgufFile, hp: &HParams) -> Result<Vec<WeightDesc>> {
    let mut present = Vec::new();
    for d in weight_descs(hp) {
        match file.tensor(&d.name) {
            None if d.required => return Err(ModelError::MissingTensor(d.name)),
            None => {}
            Some(t) => {
                // Trailing 1-dims are equivalent (ggml pads shapes with 1).
                let mut dims = t.dims.clone();
                while dims.len() > d.dims.len() && dims.last() == Some(&1) {
                    dims.pop();
                }
                if dims != d.dims {
                    return Err(ModelError::BadTensor {
                        name: d.name,
                        reason: format!("shape {:?}, expected {:?}", t.dims, d.dims),
                    });
                }
                present.push(d);
            }
        }
    }
    Ok(present)
}

/// Full (softmax) attention of one layer.
pub struct AttnWeights<W> {
    pub wq: W,
    pub wk: W,
    pub wv: W,
    pub wo: W,
    pub bq: Option<W>,
    pub bk: Option<W>,
    pub bv: Option<W>,
    pub q_norm: Option<W>,
    pub k_norm: Option<W>,
}

/// Gated DeltaNet (linear attention) of one layer.
pub struct DeltaNetLayerWeights<W> {
    /// `[n_embd, conv_channels]`: Q, K, V before the conv.
    pub qkv: W,
    /// `[n_embd, d_inner]`: the output gate z.
    pub z: W,
    pub beta: W,
    pub alpha: W,
    pub conv1d: W,
    pub dt_bias: W,
    pub a: W,
    pub norm: W,
    pub out: W,
}

/// The token mixer of a layer.
pub enum Mixer<W> {
    Attention(AttnWeights<W>),
    DeltaNet(DeltaNetLayerWeights<W>),
}

/// The shared expert of a qwen35moe layer, scaled by `sigmoid(gate_inp · x)`.
pub struct SharedExpert<W> {
    pub gate_inp: W,
    pub gate: W,
    pub up: W,
    pub down: W,
}

pub struct MoeWeights<W> {
    pub router: W,
    pub gate_exps: W,
    pub up_exps: W,
    pub down_exps: W,
    pub shared: Option<SharedExpert<W>>,
}

pub enum Ffn<W> {
    Dense { gate: W, up: W, down: W },
    Moe(MoeWeights<W>),
}

/// Weight bytes one decode token reads (as stored in the file): every tensor, except that of
/// each 3-D routed-expert stack only the `n_expert_used / n_expert` share a row uses. For
/// bandwidth figures of MoE models (a dense model reads everything).
pub fn decode_weight_bytes(file: &GgufFile, hp: &HParams) -> Result<u64> {
    let mut total = 0u64;
    for d in check_weights(file, hp)? {
        let t = file
            .tensor(&d.name)
            .ok_or_else(|| ModelError::MissingTensor(d.name.clone()))?;
        let bytes = t.n_bytes;
        total += match (&hp.moe, t.dims.len()) {
            (Some(m), 3) => bytes / m.n_expert as u64 * m.n_expert_used as u64,
            _ => bytes,
        };
    }
    Ok(total)
}

pub struct LayerWeights<W> {
    pub attn_norm: W,
    pub mixer: Mixer<W>,
    pub post_attn_norm: Option<W>,
    pub ffn_norm: W,
    pub ffn: Ffn<W>,
    pub post_ffn_norm: Option<W>,
}

pub struct Weights<W> {
    pub tok_embd: W,
    pub output_norm: W,
    /// `None`: the output projection is `tok_embd` (tied).
    pub output: Option<W>,
    pub rope_freqs: Option<W>,
    pub layers: Vec<LayerWeights<W>>,
}

impl<W> Weights<W> {
    pub fn output(&self) -> &W {
        self.output.as_ref().unwrap_or(&self.tok_embd)
    }
}

struct Loader<'a, B: Backend> {
    backend: &'a B,
    file: &'a Arc<GgufFile>,
    /// Names `check_weights` found for this architecture; nothing else is loaded.
    present: HashSet<String>,
}

impl<B: Backend> Loader<'_, B> {
    fn opt(&self, name: &str) -> Result<Option<B::Weight>> {
        if !self.present.contains(name) {
            return Ok(None);
        }
        let Some(t) = self.file.tensor(name) else {
            return Ok(None);
        };
        if self.file.try_tensor_data(t).is_none() {
            return Err(ModelError::BadTensor {
                name: name.to_string(),
                reason: "its data lies outside the file (opened header-only, or truncated)".into(),
            });
        }
        let owned = name.to_string();
        let bytes = HostBytes::new(self.file.clone(), move |f: &GgufFile| {
            // Present and in bounds: checked just above on the same immutable file.
            f.tensor(&owned)
                .and_then(|t| f.try_tensor_data(t))
                .unwrap_or(&[])
        });
        let w = self
            .backend
            .load_weight(WEIGHTS_BUFFER, name, t.ty, &t.dims, bytes)?;
        Ok(Some(w))
    }

    fn req(&self, name: &str) -> Result<B::Weight> {
        self.opt(name)?
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
    }
}

impl<W> Weights<W> {
    /// Loads every weight of `hp.arch` (after [`check_weights`]).
    pub fn load<B: Backend<Weight = W>>(
        backend: &B,
        file: &Arc<GgufFile>,
        hp: &HParams,
    ) -> Result<Weights<W>> {
        let present = check_weights(file, hp)?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let ld = Loader {
            backend,
            file,
            present,
        };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for il in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            let mixer = if hp.is_recurrent(il) {
                Mixer::DeltaNet(DeltaNetLayerWeights {
                    qkv: ld.req(&n("attn_qkv.weight"))?,
                    z: ld.req(&n("attn_gate.weight"))?,
                    beta: ld.req(&n("ssm_beta.weight"))?,
                    alpha: ld.req(&n("ssm_alpha.weight"))?,
                    conv1d: ld.req(&n("ssm_conv1d.weight"))?,
                    dt_bias: ld.req(&n("ssm_dt.bias"))?,
                    a: ld.req(&n("ssm_a"))?,
                    norm: ld.req(&n("ssm_norm.weight"))?,
                    out: ld.req(&n("ssm_out.weight"))?,
                })
            } else {
                Mixer::Attention(AttnWeights {
                    wq: ld.req(&n("attn_q.weight"))?,
                    wk: ld.req(&n("attn_k.weight"))?,
                    wv: ld.req(&n("attn_v.weight"))?,
                    wo: ld.req(&n("attn_output.weight"))?,
                    bq: ld.opt(&n("attn_q.bias"))?,
                    bk: ld.opt(&n("attn_k.bias"))?,
                    bv: ld.opt(&n("attn_v.bias"))?,
                    q_norm: ld.opt(&n("attn_q_norm.weight"))?,
                    k_norm: ld.opt(&n("attn_k_norm.weight"))?,
                })
            };
            let ffn = match &hp.moe {
                Some(m) => Ffn::Moe(MoeWeights {
                    router: ld.req(&n("ffn_gate_inp.weight"))?,
                    gate_exps: ld.req(&n("ffn_gate_exps.weight"))?,
                    up_exps: ld.req(&n("ffn_up_exps.weight"))?,
                    down_exps: ld.req(&n("ffn_down_exps.weight"))?,
                    shared: if m.n_ff_shexp > 0 {
                        Some(SharedExpert {
                            gate_inp: ld.req(&n("ffn_gate_inp_shexp.weight"))?,
                            gate: ld.req(&n("ffn_gate_shexp.weight"))?,
                            up: ld.req(&n("ffn_up_shexp.weight"))?,
                            down: ld.req(&n("ffn_down_shexp.weight"))?,
                        })
                    } else {
                        None
                    },
                }),
                None => Ffn::Dense {
                    gate: ld.req(&n("ffn_gate.weight"))?,
                    up: ld.req(&n("ffn_up.weight"))?,
                    down: ld.req(&n("ffn_down.weight"))?,
                },
            };
            layers.push(LayerWeights {
                attn_norm: ld.req(&n("attn_norm.weight"))?,
                mixer,
                post_attn_norm: if hp.arch.is_qwen35() {
                    None
                } else {
                    ld.opt(&n("post_attention_norm.weight"))?
                },
                ffn_norm: ld.req(&n(ffn_norm_name(hp)))?,
                ffn,
                post_ffn_norm: ld.opt(&n("post_ffw_norm.weight"))?,
            });
        }
        Ok(Weights {
            tok_embd: ld.req("token_embd.weight")?,
            output_norm: ld.req("output_norm.weight")?,
            output: ld.opt("output.weight")?,
            rope_freqs: ld.opt("rope_freqs.weight")?,
            layers,
        })
    }
}
