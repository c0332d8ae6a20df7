//! The memory plan of a model run: every buffer, sized by formula from the GGUF header, the
//! run configuration and the backend's workspace formulas, before anything is allocated.
//!
//! Shape classes: prefill runs `n_ubatch` rows, decode one row per sequence. Activation
//! buffers are sized at the larger row count; workspaces at the maximum of the classes.
//! Nothing in `compute` grows with the context length: attention workspaces are per-worker
//! tiles (see [`context_growth_allowance`] for the formula the tests assert).

use formats::GgmlType;
use gguf::GgufFile;
use turbine_core::{AttnShape, Backend, KvLayerShape, KvSpec, MemoryPlan, MoeShape, Role};

use crate::config::RunConfig;
use crate::error::{ModelError, Result};
use crate::hparams::HParams;
use crate::weights::{check_weights, WEIGHTS_BUFFER};

/// Names of the planned buffers the forward pass uses.
pub mod names {
    pub const KV: &str = "kv";
    /// Residual stream: rows × n_embd.
    pub const X: &str = "act.x";
    /// Normed input / projection output: rows × max(n_embd, …).
    pub const XN: &str = "act.xn";
    pub const Q: &str = "act.q";
    pub const K: &str = "act.k";
    pub const V: &str = "act.v";
    pub const ATTN: &str = "act.attn";
    pub const GATE: &str = "act.gate";
    pub const UP: &str = "act.up";
    pub const LOGITS: &str = "logits";
    pub const MATMUL_SCRATCH: &str = "matmul.scratch";
    pub const ATTN_WORKSPACE: &str = "attn.workspace";
    /// RoPE positions of the rows of a forward pass.
    pub const POSITIONS: &str = "host.positions";
    /// (sequence, position) of the rows of a forward pass, for the KV cache.
    pub const ROWS: &str = "host.rows";
    /// Token ids of the rows of a forward pass, in row order.
    pub const IDS: &str = "host.ids";
    /// Per-sequence bookkeeping of a batch (next length, a flag).
    pub const SEQS: &str = "host.seqs";
    pub const HOST_LOGITS: &str = "host.logits";
    /// Gated attention: the query projection's output, `n_head × [q | gate]`.
    pub const QG: &str = "act.qg";
    /// Gated attention: the output gate split from `act.qg`.
    pub const ATTN_GATE: &str = "act.attn_gate";
    /// DeltaNet: Q, K, V before and after the conv.
    pub const SSM_QKV: &str = "act.ssm_qkv";
    /// DeltaNet: the output gate z, then the gated, normed output.
    pub const SSM_Z: &str = "act.ssm_z";
    pub const SSM_ALPHA: &str = "act.ssm_alpha";
    pub const SSM_BETA: &str = "act.ssm_beta";
    /// DeltaNet: the delta-rule output before the gated norm.
    pub const SSM_OUT: &str = "act.ssm_out";
    /// MoE router logits: rows × n_expert.
    pub const ROUTER: &str = "act.router";
    /// Shared-expert gate logit: rows × 1.
    pub const SHEXP_GATE: &str = "act.shexp_gate";
    pub const MOE_WORKSPACE: &str = "moe.workspace";
    /// Recurrent (DeltaNet) state of every sequence: conv windows and delta-rule matrices.
    pub const RECURRENT: &str = "recurrent";
}

/// The KV cache geometry of `hp` under `cfg`: one cache layer per attention layer (recurrent
/// layers keep no KV; layer `il` is cache layer [`HParams::kv_layer`]).
pub fn kv_spec(hp: &HParams, cfg: &RunConfig) -> KvSpec {
    KvSpec {
        layers: (0..hp.n_layer)
            .filter(|&il| !hp.is_recurrent(il))
            .map(|il| KvLayerShape {
                n_head_kv: hp.n_head_kv,
                head_dim_k: hp.head_dim_k,
                head_dim_v: hp.head_dim_v,
                window: hp.layer_window(il),
            })
            .collect(),
        n_ctx: cfg.n_ctx,
        n_seq: cfg.n_seq,
        type_k: cfg.type_k,
        type_v: cfg.type_v,
    }
}

fn overflow(what: &str) -> ModelError {
    ModelError::Config(format!("{what}: size overflows"))
}

fn f32_bytes(dims: &[usize], what: &str) -> Result<u64> {
    dims.iter()
        .try_fold(4u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| overflow(what))
}

/// What `-ctk auto` resolves to for a requested V type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoKv {
    pub type_k: GgmlType,
    pub type_v: GgmlType,
    /// Set when the requested V type was raised, saying why.
    pub note: Option<String>,
}

/// The smallest turbo V type that stays within 2% of f16 perplexity (with q8_0 K) for this
/// model's head size. Measured with `scripts/kv-quality.sh` (botchan.txt, ctx 512, q8_0 K):
/// 64-wide heads are packed two to a rotation group, so each head's error is relative to the
/// pair's norm: turbo4 V costs +0.8% (SmolLM2-135M) and +1.4% (Qwen2.5-0.5B), turbo3 V +2.3%
/// and +2.8%. Heads of 128 and more keep their groups to themselves: on Gemma-3-270M (256)
/// turbo4 V costs −0.1% and turbo3 V +0.8%.
fn smallest_safe_turbo_v(hp: &HParams) -> GgmlType {
    if hp.head_dim_v < 128 {
        GgmlType::Turbo4
    } else {
        GgmlType::Turbo3
    }
}

fn turbo_bits(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::Turbo2 => 2,
        GgmlType::Turbo3 => 3,
        GgmlType::Turbo4 => 4,
        _ => 0,
    }
}

/// Query heads per KV head from which `-ctk auto` keeps K in f16 (see [`auto_kv_types`]).
pub const WIDE_GQA: usize = 6;

/// `-ctk auto`: the K type for V type `type_v`, and V raised where the requested turbo type
/// would cost more than 2% perplexity.
///
/// The rule, and why:
/// - **K is q8_0 whenever V is compressed below 8 bits**, and K = V for f32/f16/bf16/q8_0 V.
///   K is what low-bit caches hurt: an error in a key moves every score of that key and the
///   softmax amplifies it, while V errors are averaged over the attended positions. turbo4 K
///   (with turbo4 V) costs +5% perplexity on SmolLM2, +7% on Gemma-3 and +18% on Qwen2.5 even
///   with key centering; q8_0 K with turbo4 V at most +1.4% on the same models.
/// - **A turbo V is raised to the smallest turbo type measured within 2%** of f16 perplexity
///   for the model's head size ([`smallest_safe_turbo_v`]): turbo4 for 64-wide heads, turbo3
///   for heads of 128 and more. turbo2 V is always raised.
///
/// - **K stays f16 when [`WIDE_GQA`] or more query heads share a KV head**: each key error then
///   moves that many heads' scores. Qwen2.5-0.5B (GQA 7), botchan.txt, 8 chunks: q8_0 K with
///   f16 V alone costs +2.23% (q8_0/turbo4 +2.42%), f16 K with turbo4 V +0.39%.
///
/// Measured on SmolLM2-135M (64-wide heads, GQA 3), Qwen2.5-0.5B (64-wide, GQA 7) and
/// Gemma-3-270M (256-wide, GQA 4); the numbers are in the README's KV quality table.
pub fn auto_kv_types(hp: &HParams, type_v: GgmlType) -> AutoKv {
    let type_k = match type_v {
        GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => type_v,
        _ if hp.n_head >= WIDE_GQA * hp.n_head_kv => GgmlType::F16,
        GgmlType::Q8_0 => type_v,
        _ => GgmlType::Q8_0,
    };
    let safe = smallest_safe_turbo_v(hp);
    if type_v.is_turbo() && turbo_bits(type_v) < turbo_bits(safe) {
        let note = format!(
            "-ctk auto: V {} raised to {}: {} V costs more than 2% perplexity with {}-wide heads",
            type_v.name(),
            safe.name(),
            type_v.name(),
            hp.head_dim_v
        );
        return AutoKv {
            type_k,
            type_v: safe,
            note: Some(note),
        };
    }
    AutoKv {
        type_k,
        type_v,
        note: None,
    }
}

/// The compressed cache `turbine plan` recommends: what `-ctk auto -ctv turbo3` resolves to,
/// the smallest turbo cache measured within 2% of f16 perplexity (see [`auto_kv_types`]).
pub fn recommended_kv(hp: &HParams) -> AutoKv {
    auto_kv_types(hp, GgmlType::Turbo3)
}

/// Computes the plan. Reads only the GGUF header (tensor names, types, shapes).
pub fn plan_memory<B: Backend>(
    backend: &B,
    file: &GgufFile,
    hp: &HParams,
    cfg: &RunConfig,
) -> Result<MemoryPlan> {
    let dev = backend.device().to_string();
    let mut plan = MemoryPlan::new();

    // ---- model ----
    let present = check_weights(file, hp)?;
    let mut weight_bytes = 0u64;
    let mut matmuls: Vec<(GgmlType, usize)> = Vec::new();
    for d in &present {
        let t = file
            .tensor(&d.name)
            .ok_or_else(|| ModelError::MissingTensor(d.name.clone()))?;
        weight_bytes += backend.weight_bytes(t.ty, t.n_elements());
        // Matrices, 3-D expert stacks (one matmul per expert), and the 1-D shared-expert gate
        // (a matmul with one output).
        let is_matmul = match t.dims.len() {
            2 => d.name != "token_embd.weight",
            3 => true,
            1 => d.name.ends_with("ffn_gate_inp_shexp.weight"),
            _ => false,
        };
        if is_matmul {
            matmuls.push((t.ty, t.dims[0] as usize));
        }
    }
    if file.tensor("output.weight").is_none() {
        // Tied output: token_embd is also a matmul weight.
        if let Some(t) = file.tensor("token_embd.weight") {
            matmuls.push((t.ty, t.dims[0] as usize));
        }
    }
    plan.add(
        WEIGHTS_BUFFER,
        &dev,
        Role::Model,
        weight_bytes,
        format!("{} tensors as stored in the file", present.len()),
    )?;

    // ---- context ----
    let kv = kv_spec(hp, cfg);
    let kv_bytes = backend.kv_cache_bytes(&kv)?;
    plan.add(
        names::KV,
        &dev,
        Role::Context,
        kv_bytes,
        format!(
            "{} layers × {} cells × {} KV heads × (K {} [{}] + V {} [{}])",
            kv.layers.len(),
            cfg.n_ctx,
            hp.n_head_kv,
            cfg.type_k.name(),
            hp.head_dim_k,
            cfg.type_v.name(),
            hp.head_dim_v
        ),
    )?;

    if let Some(dn) = hp.delta_net(cfg.n_seq) {
        plan.add(
            names::RECURRENT,
            &dev,
            Role::Context,
            dn.state_bytes(),
            format!(
                "{} recurrent layers × {} seqs × ({} conv × {} channels + {} heads × {} × {}) × 4 B",
                dn.n_layers,
                dn.n_seq,
                dn.d_conv - 1,
                dn.conv_channels(),
                dn.n_v_heads,
                dn.head_k_dim,
                dn.head_v_dim
            ),
        )?;
    }

    // ---- compute ----
    let rows = cfg.max_rows();
    let out_rows = cfg.max_output_rows();
    let q_dim = hp.n_head * hp.head_dim_k;
    let kv_k = hp.n_head_kv * hp.head_dim_k;
    let kv_v = hp.n_head_kv * hp.head_dim_v;
    let attn_dim = hp.n_head * hp.head_dim_v;
    let ffn_w = hp.n_ff.max(hp.moe.map_or(0, |m| m.n_ff_shexp));
    let mut acts: Vec<(&str, usize, &str)> = vec![
        (names::X, hp.n_embd, "n_embd"),
        (names::XN, hp.n_embd, "n_embd"),
        (names::Q, q_dim, "n_head × head_dim_k"),
        (names::K, kv_k, "n_head_kv × head_dim_k"),
        (names::V, kv_v, "n_head_kv × head_dim_v"),
        (names::ATTN, attn_dim, "n_head × head_dim_v"),
        (names::GATE, ffn_w, "max(n_ff, n_ff_shexp)"),
        (names::UP, ffn_w, "max(n_ff, n_ff_shexp)"),
    ];
    if hp.attn_output_gate {
        acts.push((names::QG, 2 * q_dim, "n_head × 2 × head_dim_k"));
        acts.push((names::ATTN_GATE, q_dim, "n_head × head_dim_k"));
    }
    if let Some(s) = &hp.ssm {
        acts.push((names::SSM_QKV, s.conv_channels(), "conv channels"));
        acts.push((names::SSM_Z, s.d_inner, "d_inner"));
        acts.push((names::SSM_ALPHA, s.n_v_heads, "value heads"));
        acts.push((names::SSM_BETA, s.n_v_heads, "value heads"));
        acts.push((names::SSM_OUT, s.d_inner, "d_inner"));
    }
    if let Some(m) = &hp.moe {
        acts.push((names::ROUTER, m.n_expert, "n_expert"));
        if m.n_ff_shexp > 0 {
            acts.push((names::SHEXP_GATE, 1, "1"));
        }
    }
    for (name, width, what) in acts {
        plan.add(
            name,
            &dev,
            Role::Compute,
            f32_bytes(&[rows, width], name)?,
            format!("{rows} rows × {width} ({what}) × 4 B"),
        )?;
    }
    plan.add(
        names::LOGITS,
        &dev,
        Role::Compute,
        f32_bytes(&[out_rows, hp.n_vocab], "logits")?,
        format!("{out_rows} rows × {} vocab × 4 B", hp.n_vocab),
    )?;

    // Matmul scratch: the largest over every weight at every shape class.
    let classes = [cfg.n_ubatch, cfg.n_seq];
    let mut scratch = 0u64;
    for &(ty, k) in &matmuls {
        for &r in &classes {
            scratch = scratch.max(backend.matmul_scratch_bytes(ty, k, r));
        }
    }
    plan.add(
        names::MATMUL_SCRATCH,
        &dev,
        Role::Compute,
        scratch,
        format!("max over weights and row classes {classes:?} of the backend formula"),
    )?;

    // Attention workspace: the largest over the shape classes (prefill: n_ubatch query rows;
    // decode: one row per sequence), each with up to cells-per-sequence keys.
    let mut ws = 0u64;
    for &r in &classes {
        let shape = AttnShape {
            rows: r,
            n_kv: kv.cells_per_seq(),
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim_k: hp.head_dim_k,
            head_dim_v: hp.head_dim_v,
        };
        ws = ws.max(backend.attention_workspace_bytes(cfg.type_k, cfg.type_v, &shape)?);
    }
    plan.add(
        names::ATTN_WORKSPACE,
        &dev,
        Role::Compute,
        ws,
        format!("max over row classes {classes:?} of the backend formula"),
    )?;

    if let Some(m) = &hp.moe {
        let mut moe_ws = 0u64;
        for &r in &classes {
            let shape = MoeShape {
                rows: r,
                n_embd: hp.n_embd,
                n_ff_exp: m.n_ff_exp,
                n_expert: m.n_expert,
                n_expert_used: m.n_expert_used,
            };
            moe_ws = moe_ws.max(backend.moe_workspace_bytes(&shape));
        }
        plan.add(
            names::MOE_WORKSPACE,
            &dev,
            Role::Compute,
            moe_ws,
            format!("max over row classes {classes:?} of the backend formula (no context term)"),
        )?;
    }

    let host = backend.host_device().to_string();
    plan.add(
        names::POSITIONS,
        &host,
        Role::Compute,
        rows as u64 * 4,
        format!("{rows} rows × 4 B"),
    )?;
    let row_bytes = std::mem::size_of::<turbine_core::TokenPos>();
    plan.add(
        names::ROWS,
        &host,
        Role::Compute,
        (rows * row_bytes) as u64,
        format!("{rows} rows × {row_bytes} B"),
    )?;
    plan.add(
        names::IDS,
        &host,
        Role::Compute,
        rows as u64 * 4,
        format!("{rows} rows × 4 B"),
    )?;
    let seq_bytes = std::mem::size_of::<usize>() + 1;
    plan.add(
        names::SEQS,
        &host,
        Role::Compute,
        (cfg.n_seq * seq_bytes) as u64,
        format!("{} sequences × {seq_bytes} B", cfg.n_seq),
    )?;
    if !backend.host_visible() {
        plan.add(
            names::HOST_LOGITS,
            &host,
            Role::Compute,
            f32_bytes(&[out_rows, hp.n_vocab], "host logits")?,
            format!("{out_rows} rows × {} vocab × 4 B", hp.n_vocab),
        )?;
    }
    plan.notes.push(format!(
        "shape classes: prefill {} rows, decode {} row(s); activations sized at {rows} rows",
        cfg.n_ubatch, cfg.n_seq
    ));
    Ok(plan)
}

/// Compute bytes allowed to grow when the context grows from `n_ctx_small` to `n_ctx_large`
/// with everything else fixed. For this planner the formula is **0**: activations scale with
/// rows (ubatch, sequences), logits with rows × vocab, matmul scratch with rows × width, and
/// attention workspaces are per-worker tiles; the context only sizes the KV cache, which is
/// `context`, not `compute`. A backend whose attention keeps per-key scores would add
/// `rows × n_head × (n_ctx_large − n_ctx_small) × 4` here, and the test would show it.
/// Recurrent (DeltaNet) layers add nothing either: their state is `context` and sized by
/// sequences, and the MoE workspace by rows.
pub fn context_growth_allowance(_hp: &HParams, _n_ctx_small: usize, _n_ctx_large: usize) -> u64 {
    0
}
