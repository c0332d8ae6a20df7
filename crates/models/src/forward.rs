//! The decoder forward pass shared by llama, qwen2, qwen3 and gemma3.
//!
//! One block per layer: `x += attn(norm(x))`, `x += ffn(norm(x))`. The families differ only in
//! details, each decided by the weights or hyperparameters present:
//! - qwen2: biases on Q/K/V; qwen3 and gemma3: per-head RMS norm of Q and K before RoPE;
//! - RoPE layout: adjacent pairs for llama (its converter permutes Q/K), NeoX for the others;
//! - gemma3: embeddings × √n_embd, RMS norm of the attention and FFN outputs before the
//!   residual add, GeGLU (tanh GELU), sliding-window layers with their own RoPE base, and a
//!   query scale from its config;
//! - qwen3moe: a mixture-of-experts FFN (softmax router, top-k, renormalised);
//! - qwen35 / qwen35moe: most layers are Gated DeltaNet (linear attention with a recurrent
//!   state), every `full_attention_interval`-th is attention with a per-head sigmoid output
//!   gate; the FFN norm is `post_attention_norm`; qwen35moe adds a shared expert scaled by
//!   `sigmoid(w · x)`. Their RoPE is llama.cpp's IMRoPE, which for text positions (all
//!   sections at the same position) is NeoX RoPE over the first `n_rot` dims.

use turbine_core::{AttnParams, Backend, DeltaNetWeights, GluActivation, MoeExperts, TokenPos};

use crate::error::{ModelError, Result};
use crate::hparams::{Arch, HParams};
use crate::weights::{
    AttnWeights, DeltaNetLayerWeights, Ffn, LayerWeights, Mixer, MoeWeights, Weights,
};

/// The planned buffers one forward pass runs on (see `plan::names`).
pub struct Activations<Buf> {
    pub x: Buf,
    pub xn: Buf,
    pub q: Buf,
    pub k: Buf,
    pub v: Buf,
    pub attn: Buf,
    pub gate: Buf,
    pub up: Buf,
    pub logits: Buf,
    pub scratch: Buf,
    pub workspace: Buf,
    /// Buffers only some families plan (see `plan::names`).
    pub extra: ExtraActivations<Buf>,
}

/// Planned buffers of gated attention, DeltaNet and MoE layers; `None` where the model's
/// plan has none.
pub struct ExtraActivations<Buf> {
    pub qg: Option<Buf>,
    pub attn_gate: Option<Buf>,
    pub ssm_qkv: Option<Buf>,
    pub ssm_z: Option<Buf>,
    pub ssm_alpha: Option<Buf>,
    pub ssm_beta: Option<Buf>,
    pub ssm_out: Option<Buf>,
    pub router: Option<Buf>,
    pub shexp_gate: Option<Buf>,
    pub moe_workspace: Option<Buf>,
    /// Recurrent state (context memory), persistent across calls.
    pub recurrent: Option<Buf>,
}

fn need<'a, Buf>(b: &'a mut Option<Buf>, name: &str) -> Result<&'a mut Buf> {
    b.as_mut()
        .ok_or_else(|| ModelError::Config(format!("buffer `{name}` is not in the plan")))
}

/// What one `forward` call works on.
pub struct Step<'a> {
    pub tokens: &'a [u32],
    /// Sequence and position of every row.
    pub rows: &'a [TokenPos],
    /// The same positions for RoPE.
    pub positions: &'a [i32],
    /// The last `n_out` rows produce logits.
    pub n_out: usize,
    /// Sequences the recurrent state is planned for (`-np`).
    pub n_seq: usize,
}

fn glu_activation(arch: Arch) -> GluActivation {
    match arch {
        Arch::Gemma3 => GluActivation::GeluTanh,
        Arch::Llama
        | Arch::Qwen2
        | Arch::Qwen3
        | Arch::Qwen3Moe
        | Arch::Qwen35
        | Arch::Qwen35Moe => GluActivation::Silu,
    }
}

/// Runs every layer and the output head; leaves the logits of the last `step.n_out` rows in
/// `act.logits`.
pub fn forward<B: Backend>(
    b: &B,
    hp: &HParams,
    w: &Weights<B::Weight>,
    act: &mut Activations<B::Buffer>,
    kv: &mut B::KvCache,
    step: &Step<'_>,
) -> Result<()> {
    let n = step.tokens.len();
    let e = hp.n_embd;
    b.get_rows(&w.tok_embd, step.tokens, &mut act.x)?;
    if let Some(s) = hp.embed_scale {
        b.scale(&mut act.x, n * e, s)?;
    }
    for (il, lw) in w.layers.iter().enumerate() {
        layer(b, hp, w, lw, il, act, kv, step)?;
    }
    // The last layer's FFN output waits in `act.xn` (see `layer`).
    b.add(&mut act.x, &act.xn, n * e)?;
    let rows = step.n_out.min(n);
    if rows == 0 {
        return Ok(());
    }
    let row0 = n - rows;
    b.rms_norm(
        &act.x,
        row0,
        rows,
        e,
        &w.output_norm,
        hp.rms_eps,
        &mut act.xn,
    )?;
    b.matmul(w.output(), &act.xn, rows, &mut act.logits, &mut act.scratch)?;
    if let Some(c) = hp.final_softcap {
        b.softcap(&mut act.logits, rows * hp.n_vocab, c)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn layer<B: Backend>(
    b: &B,
    hp: &HParams,
    w: &Weights<B::Weight>,
    lw: &LayerWeights<B::Weight>,
    il: usize,
    act: &mut Activations<B::Buffer>,
    kv: &mut B::KvCache,
    step: &Step<'_>,
) -> Result<()> {
    let n = step.tokens.len();
    let e = hp.n_embd;
    let eps = hp.rms_eps;

    // ---- token mixer ----
    // Each layer leaves its FFN output in `act.xn` without adding it to the residual stream:
    // the next layer adds it as it normalizes (one pass), the last one's is added by `forward`.
    if il == 0 {
        b.rms_norm(&act.x, 0, n, e, &lw.attn_norm, eps, &mut act.xn)?;
    } else {
        b.add_rms_norm(&mut act.x, &mut act.xn, n, e, &lw.attn_norm, eps)?;
    }
    match &lw.mixer {
        Mixer::Attention(aw) => attention(b, hp, w, aw, il, act, kv, step)?,
        Mixer::DeltaNet(dw) => delta_net(b, hp, dw, il, act, step)?,
    }
    if let Some(pn) = &lw.post_attn_norm {
        b.rms_norm_inplace(&mut act.xn, n, e, pn, eps)?;
    }

    // ---- feed-forward ----
    b.add_rms_norm(&mut act.x, &mut act.xn, n, e, &lw.ffn_norm, eps)?;
    match &lw.ffn {
        Ffn::Dense { gate, up, down } => {
            b.matmul_glu(
                gate,
                up,
                &act.xn,
                n,
                hp.n_ff,
                glu_activation(hp.arch),
                &mut act.gate,
                &mut act.up,
                &mut act.scratch,
            )?;
            b.matmul(down, &act.gate, n, &mut act.xn, &mut act.scratch)?;
        }
        Ffn::Moe(mw) => moe(b, hp, mw, act, n)?,
    }
    if let Some(pn) = &lw.post_ffn_norm {
        b.rms_norm_inplace(&mut act.xn, n, e, pn, eps)?;
    }
    Ok(())
}

/// Attention over the KV cache; reads `act.xn`, leaves the projected output in `act.xn`.
#[allow(clippy::too_many_arguments)]
fn attention<B: Backend>(
    b: &B,
    hp: &HParams,
    w: &Weights<B::Weight>,
    aw: &AttnWeights<B::Weight>,
    il: usize,
    act: &mut Activations<B::Buffer>,
    kv: &mut B::KvCache,
    step: &Step<'_>,
) -> Result<()> {
    let n = step.tokens.len();
    let eps = hp.rms_eps;
    let kv_layer = hp
        .kv_layer(il)
        .ok_or_else(|| ModelError::Config(format!("layer {il} has no KV cache")))?;
    // q (with its gate, when gated), k and v from the same input, one call.
    let q_out = if hp.attn_output_gate {
        need(&mut act.extra.qg, "act.qg")?
    } else {
        &mut act.q
    };
    b.matmul3(
        [&aw.wq, &aw.wk, &aw.wv],
        &act.xn,
        n,
        [q_out, &mut act.k, &mut act.v],
        &mut act.scratch,
    )?;
    if hp.attn_output_gate {
        let gate = need(&mut act.extra.attn_gate, "act.attn_gate")?;
        let qg = act
            .extra
            .qg
            .as_ref()
            .ok_or_else(|| ModelError::Config("act.qg".into()))?;
        b.split_q_gate(qg, n, hp.n_head, hp.head_dim_k, &mut act.q, gate)?;
    }
    if let Some(bias) = &aw.bq {
        b.add_bias(&mut act.q, n, bias)?;
    }
    if let Some(bias) = &aw.bk {
        b.add_bias(&mut act.k, n, bias)?;
    }
    if let Some(bias) = &aw.bv {
        b.add_bias(&mut act.v, n, bias)?;
    }
    b.norm_rope_qk(
        &mut act.q,
        hp.n_head,
        &mut act.k,
        hp.n_head_kv,
        hp.head_dim_k,
        (aw.q_norm.as_ref(), aw.k_norm.as_ref()),
        eps,
        step.positions,
        &hp.layer_rope(il),
        w.rope_freqs.as_ref(),
    )?;
    b.kv_store(kv, kv_layer, step.rows, &act.k, &act.v)?;
    let params = AttnParams {
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        head_dim_k: hp.head_dim_k,
        head_dim_v: hp.head_dim_v,
        scale: hp.attn_scale,
        window: hp.layer_window(il),
        softcap: None,
    };
    b.attention(
        kv,
        kv_layer,
        step.rows,
        &act.q,
        &params,
        &mut act.attn,
        &mut act.workspace,
    )?;
    if hp.attn_output_gate {
        let gate = act.extra.attn_gate.as_ref().ok_or_else(|| {
            ModelError::Config("buffer `act.attn_gate` is not in the plan".into())
        })?;
        let width = hp.n_head * hp.head_dim_v;
        b.sigmoid_mul(&mut act.attn, gate, n, width, width)?;
    }
    b.matmul(&aw.wo, &act.attn, n, &mut act.xn, &mut act.scratch)?;
    Ok(())
}

/// Gated DeltaNet; reads `act.xn`, leaves the projected output in `act.xn`.
fn delta_net<B: Backend>(
    b: &B,
    hp: &HParams,
    dw: &DeltaNetLayerWeights<B::Weight>,
    il: usize,
    act: &mut Activations<B::Buffer>,
    step: &Step<'_>,
) -> Result<()> {
    let n = step.tokens.len();
    let slot = hp
        .recurrent_layer(il)
        .ok_or_else(|| ModelError::Config(format!("layer {il} is not recurrent")))?;
    let s = hp.ssm.as_ref().ok_or_else(|| {
        ModelError::Config("a recurrent layer without ssm hyperparameters".into())
    })?;
    let n_seq = step.n_seq;
    let params = hp
        .delta_net(n_seq)
        .ok_or_else(|| ModelError::Config("no DeltaNet geometry".into()))?;
    let x = &mut act.extra;
    let qkv = need(&mut x.ssm_qkv, "act.ssm_qkv")?;
    b.matmul(&dw.qkv, &act.xn, n, qkv, &mut act.scratch)?;
    let z = need(&mut x.ssm_z, "act.ssm_z")?;
    b.matmul(&dw.z, &act.xn, n, z, &mut act.scratch)?;
    let alpha = need(&mut x.ssm_alpha, "act.ssm_alpha")?;
    b.matmul(&dw.alpha, &act.xn, n, alpha, &mut act.scratch)?;
    let beta = need(&mut x.ssm_beta, "act.ssm_beta")?;
    b.matmul(&dw.beta, &act.xn, n, beta, &mut act.scratch)?;
    let (Some(qkv), Some(alpha), Some(beta), Some(state), Some(out)) = (
        x.ssm_qkv.as_mut(),
        x.ssm_alpha.as_ref(),
        x.ssm_beta.as_ref(),
        x.recurrent.as_mut(),
        x.ssm_out.as_mut(),
    ) else {
        return Err(ModelError::Config(
            "DeltaNet buffers (act.ssm_*, recurrent) are not in the plan".into(),
        ));
    };
    let weights = DeltaNetWeights {
        conv1d: &dw.conv1d,
        dt_bias: &dw.dt_bias,
        a: &dw.a,
    };
    b.delta_net(
        &params, slot, step.rows, &weights, qkv, alpha, beta, state, out,
    )?;
    // Gated RMS norm per value head: norm(o) · w · silu(z), left in z.
    let dv = s.head_v_dim();
    b.rms_norm_inplace(out, n * s.n_v_heads, dv, &dw.norm, hp.rms_eps)?;
    let z = need(&mut x.ssm_z, "act.ssm_z")?;
    let out = x
        .ssm_out
        .as_ref()
        .ok_or_else(|| ModelError::Config("buffer `act.ssm_out` is not in the plan".into()))?;
    b.glu(z, out, n * s.d_inner, GluActivation::Silu)?;
    b.matmul(&dw.out, z, n, &mut act.xn, &mut act.scratch)?;
    Ok(())
}

/// Mixture-of-experts FFN on `act.xn`: the routed experts are added straight into the
/// residual `act.x`; the shared expert's gated output (qwen35moe), or zeros, is left in
/// `act.xn` for the caller's residual add.
fn moe<B: Backend>(
    b: &B,
    hp: &HParams,
    mw: &MoeWeights<B::Weight>,
    act: &mut Activations<B::Buffer>,
    n: usize,
) -> Result<()> {
    let m = hp
        .moe
        .as_ref()
        .ok_or_else(|| ModelError::Config("an MoE layer without expert hyperparameters".into()))?;
    let x = &mut act.extra;
    let router = need(&mut x.router, "act.router")?;
    b.matmul(&mw.router, &act.xn, n, router, &mut act.scratch)?;
    let (Some(router), Some(ws)) = (x.router.as_ref(), x.moe_workspace.as_mut()) else {
        return Err(ModelError::Config(
            "buffer `moe.workspace` is not in the plan".into(),
        ));
    };
    let experts = MoeExperts {
        gate: &mw.gate_exps,
        up: &mw.up_exps,
        down: &mw.down_exps,
    };
    b.moe_ffn(
        &act.xn,
        n,
        router,
        &experts,
        &m.params(),
        &mut act.x,
        ws,
        &mut act.scratch,
    )?;
    match &mw.shared {
        Some(sh) => {
            let g = need(&mut x.shexp_gate, "act.shexp_gate")?;
            b.matmul(&sh.gate_inp, &act.xn, n, g, &mut act.scratch)?;
            b.matmul(&sh.gate, &act.xn, n, &mut act.gate, &mut act.scratch)?;
            b.matmul(&sh.up, &act.xn, n, &mut act.up, &mut act.scratch)?;
            b.glu(
                &mut act.gate,
                &act.up,
                n * m.n_ff_shexp,
                GluActivation::Silu,
            )?;
            b.matmul(&sh.down, &act.gate, n, &mut act.xn, &mut act.scratch)?;
            let g = x.shexp_gate.as_ref().ok_or_else(|| {
                ModelError::Config("buffer `act.shexp_gate` is not in the plan".into())
            })?;
            b.sigmoid_mul(&mut act.xn, g, n, hp.n_embd, 1)?;
        }
        None => b.scale(&mut act.xn, n * hp.n_embd, 0.0)?,
    }
    Ok(())
}
