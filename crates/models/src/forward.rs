//! The decoder forward pass shared by llama, qwen2, qwen3 and gemma3.
//!
//! One block per layer: `x += attn(norm(x))`, `x += ffn(norm(x))`. The families differ only in
//! details, each decided by the weights or hyperparameters present:
//! - qwen2: biases on Q/K/V; qwen3 and gemma3: per-head RMS norm of Q and K before RoPE;
//! - RoPE layout: adjacent pairs for llama (its converter permutes Q/K), NeoX for the others;
//! - gemma3: embeddings × √n_embd, RMS norm of the attention and FFN outputs before the
//!   residual add, GeGLU (tanh GELU), sliding-window layers with their own RoPE base, and a
//!   query scale from its config.

use turbine_core::{AttnParams, Backend, GluActivation, TokenPos};

use crate::error::Result;
use crate::hparams::{Arch, HParams};
use crate::weights::{LayerWeights, Weights};

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
}

fn glu_activation(arch: Arch) -> GluActivation {
    match arch {
        Arch::Gemma3 => GluActivation::GeluTanh,
        Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => GluActivation::Silu,
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

    // ---- attention ----
    b.rms_norm(&act.x, 0, n, e, &lw.attn_norm, eps, &mut act.xn)?;
    b.matmul(&lw.wq, &act.xn, n, &mut act.q, &mut act.scratch)?;
    b.matmul(&lw.wk, &act.xn, n, &mut act.k, &mut act.scratch)?;
    b.matmul(&lw.wv, &act.xn, n, &mut act.v, &mut act.scratch)?;
    if let Some(bias) = &lw.bq {
        b.add_bias(&mut act.q, n, bias)?;
    }
    if let Some(bias) = &lw.bk {
        b.add_bias(&mut act.k, n, bias)?;
    }
    if let Some(bias) = &lw.bv {
        b.add_bias(&mut act.v, n, bias)?;
    }
    if let Some(qn) = &lw.q_norm {
        b.rms_norm_inplace(&mut act.q, n * hp.n_head, hp.head_dim_k, qn, eps)?;
    }
    if let Some(kn) = &lw.k_norm {
        b.rms_norm_inplace(&mut act.k, n * hp.n_head_kv, hp.head_dim_k, kn, eps)?;
    }
    let rope = hp.layer_rope(il);
    let freqs = w.rope_freqs.as_ref();
    b.rope(
        &mut act.q,
        hp.n_head,
        hp.head_dim_k,
        step.positions,
        &rope,
        freqs,
    )?;
    b.rope(
        &mut act.k,
        hp.n_head_kv,
        hp.head_dim_k,
        step.positions,
        &rope,
        freqs,
    )?;
    b.kv_store(kv, il, step.rows, &act.k, &act.v)?;
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
        il,
        step.rows,
        &act.q,
        &params,
        &mut act.attn,
        &mut act.workspace,
    )?;
    b.matmul(&lw.wo, &act.attn, n, &mut act.xn, &mut act.scratch)?;
    if let Some(pn) = &lw.post_attn_norm {
        b.rms_norm_inplace(&mut act.xn, n, e, pn, eps)?;
    }
    b.add(&mut act.x, &act.xn, n * e)?;

    // ---- feed-forward ----
    b.rms_norm(&act.x, 0, n, e, &lw.ffn_norm, eps, &mut act.xn)?;
    b.matmul(&lw.gate, &act.xn, n, &mut act.gate, &mut act.scratch)?;
    b.matmul(&lw.up, &act.xn, n, &mut act.up, &mut act.scratch)?;
    b.glu(&mut act.gate, &act.up, n * hp.n_ff, glu_activation(hp.arch))?;
    b.matmul(&lw.down, &act.gate, n, &mut act.xn, &mut act.scratch)?;
    if let Some(pn) = &lw.post_ffn_norm {
        b.rms_norm_inplace(&mut act.xn, n, e, pn, eps)?;
    }
    b.add(&mut act.x, &act.xn, n * e)?;
    Ok(())
}
