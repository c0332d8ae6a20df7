//! The tensor table of each architecture: llama.cpp's tensor names, shapes (ggml order,
//! `dims[0]` = row length) and types, and how each tensor's random contents are drawn.
//!
//! Names and shapes follow llama.cpp's loader (`llama-model.cpp` / `src/models/*.cpp`) and
//! `gguf-py`'s tensor-name table; norms, biases, convolutions and the MoE routers stay f32 as
//! llama.cpp's quantizer keeps them.

use formats::GgmlType;

use crate::shapes::{Arch, Shape};

/// How a tensor's values are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Zero-mean weights with standard deviation `sigma`.
    Random { sigma: f32 },
    /// Every value the same (norm weights = 1, biases = 0).
    Const(f32),
    /// Uniform in `[lo, hi)` (e.g. the negative decay rates `ssm_a`).
    Uniform { lo: f32, hi: f32 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub init: Init,
}

impl TensorSpec {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of data (the table only holds whole-block rows).
    pub fn n_bytes(&self) -> u64 {
        self.ty.bytes_for(self.n_elements()).unwrap_or(0)
    }
}

/// Builds the table: `ty` for the matrices, f32 for the rest.
struct Table {
    ty: GgmlType,
    out: Vec<TensorSpec>,
}

/// Weights of a matrix that maps `n_in` inputs: σ = 1/√n_in keeps unit-variance inputs at unit
/// variance, so activations neither blow up nor vanish through the layers.
fn fan_in(n_in: usize) -> Init {
    Init::Random {
        sigma: 1.0 / (n_in as f32).sqrt(),
    }
}

/// The type a matrix with rows of `row` values gets: `want` if the row is a whole number of its
/// blocks, else the first of q8_0, f16 that fits (llama.cpp's quantizer falls back likewise).
pub fn matrix_type(want: GgmlType, row: u64) -> GgmlType {
    [want, GgmlType::Q8_0, GgmlType::F16]
        .into_iter()
        .find(|t| row.is_multiple_of(t.block_size() as u64))
        .unwrap_or(GgmlType::F32)
}

impl Table {
    fn push(&mut self, name: String, dims: &[usize], ty: GgmlType, init: Init) {
        self.out.push(TensorSpec {
            name,
            dims: dims.iter().map(|&d| d as u64).collect(),
            ty,
            init,
        });
    }

    /// A weight matrix (2-D, or 3-D for stacked experts) in the requested type.
    fn matrix(&mut self, name: String, dims: &[usize]) {
        let ty = matrix_type(self.ty, dims[0] as u64);
        self.push(name, dims, ty, fan_in(dims[0]));
    }

    fn f32(&mut self, name: String, dims: &[usize], init: Init) {
        self.push(name, dims, GgmlType::F32, init);
    }

    fn norm(&mut self, name: String, n: usize) {
        self.f32(name, &[n], Init::Const(1.0));
    }
}

/// Every tensor of `shape` under `arch`, in file order, matrices in `ty`.
pub fn tensor_table(arch: Arch, shape: &Shape, ty: GgmlType) -> Vec<TensorSpec> {
    let mut t = Table {
        ty,
        out: Vec::new(),
    };
    let (e, v) = (shape.n_embd, shape.n_vocab);
    // Embedding rows are looked up, not multiplied: unit variance like a trained model's
    // normalised input.
    let embd_ty = matrix_type(ty, e as u64);
    t.push(
        "token_embd.weight".into(),
        &[e, v],
        embd_ty,
        Init::Random { sigma: 1.0 },
    );
    for il in 0..shape.n_layer {
        layer(&mut t, arch, shape, il);
    }
    t.norm("output_norm.weight".into(), e);
    if !shape.tied_output {
        t.matrix("output.weight".into(), &[e, v]);
    }
    t.out
}

fn layer(t: &mut Table, arch: Arch, s: &Shape, il: usize) {
    let n = |x: &str| format!("blk.{il}.{x}");
    let e = s.n_embd;
    let (hd, nh, nkv) = (s.head_dim, s.n_head, s.n_head_kv);
    t.norm(n("attn_norm.weight"), e);
    match arch {
        Arch::Llama | Arch::Qwen2 | Arch::Qwen3 | Arch::Qwen3Moe => {
            t.matrix(n("attn_q.weight"), &[e, nh * hd]);
            t.matrix(n("attn_k.weight"), &[e, nkv * hd]);
            t.matrix(n("attn_v.weight"), &[e, nkv * hd]);
            t.matrix(n("attn_output.weight"), &[nh * hd, e]);
            if arch == Arch::Qwen2 {
                t.f32(n("attn_q.bias"), &[nh * hd], Init::Const(0.0));
                t.f32(n("attn_k.bias"), &[nkv * hd], Init::Const(0.0));
                t.f32(n("attn_v.bias"), &[nkv * hd], Init::Const(0.0));
            }
            if matches!(arch, Arch::Qwen3 | Arch::Qwen3Moe) {
                t.norm(n("attn_q_norm.weight"), hd);
                t.norm(n("attn_k_norm.weight"), hd);
            }
            t.norm(n("ffn_norm.weight"), e);
        }
        Arch::Qwen35 | Arch::Qwen35Moe => {
            // Qwen3.5 norms the residual after attention into the FFN (post_attention_norm).
            t.norm(n("post_attention_norm.weight"), e);
            match s.linear {
                Some(l) if s.is_linear_layer(il) => {
                    t.matrix(n("attn_qkv.weight"), &[e, l.conv_dim()]);
                    t.matrix(n("attn_gate.weight"), &[e, l.value_dim()]);
                    t.f32(
                        n("ssm_conv1d.weight"),
                        &[l.conv_kernel, l.conv_dim()],
                        fan_in(l.conv_kernel),
                    );
                    t.f32(n("ssm_dt.bias"), &[l.n_v_heads], Init::Const(1.0));
                    // ssm_a = -exp(A_log): negative decay rates.
                    t.f32(
                        n("ssm_a"),
                        &[l.n_v_heads],
                        Init::Uniform { lo: -8.0, hi: -1.0 },
                    );
                    t.matrix(n("ssm_beta.weight"), &[e, l.n_v_heads]);
                    t.matrix(n("ssm_alpha.weight"), &[e, l.n_v_heads]);
                    t.norm(n("ssm_norm.weight"), l.head_dim);
                    t.matrix(n("ssm_out.weight"), &[l.value_dim(), e]);
                }
                _ => {
                    // Gated attention: attn_q holds each head's query and its output gate.
                    t.matrix(n("attn_q.weight"), &[e, 2 * nh * hd]);
                    t.matrix(n("attn_k.weight"), &[e, nkv * hd]);
                    t.matrix(n("attn_v.weight"), &[e, nkv * hd]);
                    t.matrix(n("attn_output.weight"), &[nh * hd, e]);
                    t.norm(n("attn_q_norm.weight"), hd);
                    t.norm(n("attn_k_norm.weight"), hd);
                }
            }
        }
    }
    match s.moe {
        Some(m) => {
            // Router logits stay f32, like llama.cpp's quantizer leaves ffn_gate_inp.
            t.f32(n("ffn_gate_inp.weight"), &[e, m.n_expert], fan_in(e));
            t.matrix(n("ffn_gate_exps.weight"), &[e, m.n_ff_exp, m.n_expert]);
            t.matrix(n("ffn_up_exps.weight"), &[e, m.n_ff_exp, m.n_expert]);
            t.matrix(n("ffn_down_exps.weight"), &[m.n_ff_exp, e, m.n_expert]);
            if m.n_ff_shexp > 0 {
                t.f32(n("ffn_gate_inp_shexp.weight"), &[e], fan_in(e));
                t.matrix(n("ffn_gate_shexp.weight"), &[e, m.n_ff_shexp]);
                t.matrix(n("ffn_up_shexp.weight"), &[e, m.n_ff_shexp]);
                t.matrix(n("ffn_down_shexp.weight"), &[m.n_ff_shexp, e]);
            }
        }
        None => {
            t.matrix(n("ffn_gate.weight"), &[e, s.n_ff]);
            t.matrix(n("ffn_up.weight"), &[e, s.n_ff]);
            t.matrix(n("ffn_down.weight"), &[s.n_ff, e]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::shape;

    fn dims(t: &[TensorSpec], name: &str) -> Vec<u64> {
        t.iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .dims
            .clone()
    }

    #[test]
    fn qwen3_8b_q4k_is_llama_cpp_reference_size() {
        let s = shape(Arch::Qwen3, "8b").unwrap();
        let t = tensor_table(Arch::Qwen3, &s, GgmlType::Q4K);
        // 1 embd + 36 * 11 + output_norm + output.
        assert_eq!(t.len(), 1 + 36 * 11 + 2);
        let params: u64 = t.iter().map(|x| x.n_elements()).sum();
        assert_eq!(params, 8_190_735_360);
        let bytes: u64 = t.iter().map(|x| x.n_bytes()).sum();
        // llama.cpp reported "4.29 GiB" for the all-q4_K Qwen3-8B-shaped model.
        let gib = bytes as f64 / (1u64 << 30) as f64;
        assert!((gib - 4.29).abs() < 0.005, "{gib}");
        assert_eq!(dims(&t, "blk.35.attn_k_norm.weight"), [128]);
        assert!(t
            .iter()
            .all(|x| x.ty == GgmlType::Q4K || x.ty == GgmlType::F32));
    }

    #[test]
    fn qwen35moe_35b_a3b_tensors_match_llama_cpp() {
        let s = shape(Arch::Qwen35Moe, "35b-a3b").unwrap();
        let t = tensor_table(Arch::Qwen35Moe, &s, GgmlType::Q4K);
        // Linear-attention layer 0 (llama.cpp qwen35moe load_tensors).
        assert_eq!(dims(&t, "blk.0.attn_qkv.weight"), [2048, 8192]);
        assert_eq!(dims(&t, "blk.0.attn_gate.weight"), [2048, 4096]);
        assert_eq!(dims(&t, "blk.0.ssm_conv1d.weight"), [4, 8192]);
        assert_eq!(dims(&t, "blk.0.ssm_dt.bias"), [32]);
        assert_eq!(dims(&t, "blk.0.ssm_a"), [32]);
        assert_eq!(dims(&t, "blk.0.ssm_beta.weight"), [2048, 32]);
        assert_eq!(dims(&t, "blk.0.ssm_alpha.weight"), [2048, 32]);
        assert_eq!(dims(&t, "blk.0.ssm_norm.weight"), [128]);
        assert_eq!(dims(&t, "blk.0.ssm_out.weight"), [4096, 2048]);
        assert!(!t.iter().any(|x| x.name == "blk.0.attn_q.weight"));
        // Full-attention layer 3: query + gate, 2 KV heads of 256.
        assert_eq!(dims(&t, "blk.3.attn_q.weight"), [2048, 8192]);
        assert_eq!(dims(&t, "blk.3.attn_k.weight"), [2048, 512]);
        assert_eq!(dims(&t, "blk.3.attn_v.weight"), [2048, 512]);
        assert_eq!(dims(&t, "blk.3.attn_output.weight"), [4096, 2048]);
        assert_eq!(dims(&t, "blk.3.attn_q_norm.weight"), [256]);
        assert!(!t.iter().any(|x| x.name == "blk.3.ssm_a"));
        // Experts on every layer.
        assert_eq!(dims(&t, "blk.39.ffn_gate_inp.weight"), [2048, 256]);
        assert_eq!(dims(&t, "blk.39.ffn_gate_exps.weight"), [2048, 512, 256]);
        assert_eq!(dims(&t, "blk.39.ffn_down_exps.weight"), [512, 2048, 256]);
        assert_eq!(dims(&t, "blk.39.ffn_gate_inp_shexp.weight"), [2048]);
        assert_eq!(dims(&t, "blk.39.ffn_down_shexp.weight"), [512, 2048]);
        assert_eq!(dims(&t, "blk.39.post_attention_norm.weight"), [2048]);
        assert_eq!(dims(&t, "output.weight"), [2048, 248320]);
        let params: u64 = t.iter().map(|x| x.n_elements()).sum();
        // About 35B parameters in all.
        assert!((34.0e9..36.0e9).contains(&(params as f64)), "{params}");
        for x in &t {
            let f32_kind = x.name.contains("norm")
                || x.name.contains("ssm_conv1d")
                || x.name.ends_with("ssm_a")
                || x.name.ends_with(".bias")
                || x.name.contains("ffn_gate_inp");
            assert_eq!(x.ty == GgmlType::F32, f32_kind, "{}", x.name);
        }
    }

    #[test]
    fn qwen35_27b_is_27b_parameters() {
        let s = shape(Arch::Qwen35, "27b").unwrap();
        let t = tensor_table(Arch::Qwen35, &s, GgmlType::Q4K);
        let params: u64 = t.iter().map(|x| x.n_elements()).sum();
        assert!((26.5e9..27.5e9).contains(&(params as f64)), "{params}");
        assert_eq!(dims(&t, "blk.0.attn_qkv.weight"), [5120, 10240]);
        assert_eq!(dims(&t, "blk.63.attn_q.weight"), [5120, 12288]);
        assert_eq!(dims(&t, "blk.63.ffn_down.weight"), [17408, 5120]);
    }

    #[test]
    fn rows_that_do_not_fit_the_type_fall_back() {
        let s = shape(Arch::Llama, "smollm2-135m").unwrap();
        let t = tensor_table(Arch::Llama, &s, GgmlType::Q4K);
        // 576 is not a multiple of 256: q8_0 instead; 1536-long rows of ffn_down stay q4_K.
        assert_eq!(t[0].ty, GgmlType::Q8_0);
        assert!(!t.iter().any(|x| x.name == "output.weight"));
        let down = t
            .iter()
            .find(|x| x.name == "blk.0.ffn_down.weight")
            .unwrap();
        assert_eq!(down.ty, GgmlType::Q4K);
        assert_eq!(matrix_type(GgmlType::Q4_0, 100), GgmlType::F16);
    }
}
