#!/usr/bin/env python3
"""Tiny random-weight qwen3 / qwen3moe / qwen35 / qwen35moe models: transformers computes the reference
logits, and the same weights are written as GGUF with llama.cpp's tensor names, layouts and
metadata keys (all f32).

Two stages, because PyTorch lives on the GPU machine and the `gguf` package here:

  hf_tiny_models.py torch OUTDIR [ARCH...]      # needs torch + transformers (>= 5 with qwen3_5, qwen3_5_moe)
      For each architecture: builds the config, randomises every parameter from a fixed seed,
      runs a 40-token prompt through the model (f32, CPU, eager attention, KV/recurrent cache),
      then 64 greedy decode steps with the cache, and saves OUTDIR/<arch>.npz with the state
      dict (HF names), the config, the tokens and the logits of every prompt row and step.

  hf_tiny_models.py gguf OUTDIR DATADIR [ARCH...]   # needs numpy + gguf
      Writes DATADIR/<arch>.gguf (the model) and DATADIR/<arch>.ref.gguf (tensor `logits`
      [n_vocab, 40 + 64] f32 and metadata `ref.tokens` = prompt + decoded tokens,
      `ref.n_prompt` = 40), the reference the Rust test compares against.

Conversion rules (facts from llama.cpp's converter, re-implemented here):
- qwen35/qwen35moe RMS norms compute x·(1 + w): every `*norm.weight` except the gated
  `linear_attn.norm.weight` is stored as 1 + w;
- `A_log` is stored as `ssm_a` = -exp(A_log), `dt_bias` as `ssm_dt.bias`, the depthwise
  conv1d weight [C, 1, K] squeezed to [C, K] (ggml [K, C]);
- when there are fewer key heads than value heads, value heads are reordered from grouped
  (v = k·r + j) to tiled (v = j·n_k + k) order in in_proj_qkv's V rows, in_proj_z, in_proj_a/b,
  A_log, dt_bias, the conv1d V channels and out_proj's columns, so value head v reads key head
  v mod n_k;
- fused experts `gate_up_proj` [E, 2F, H] split into ffn_gate_exps / ffn_up_exps ([H, F, E] in
  ggml order), `down_proj` [E, H, F] is ffn_down_exps ([F, H, E]).
"""
import json
import os
import sys

import numpy as np

N_PROMPT = 40
N_DECODE = 64
SEED = 1234

COMMON = dict(
    vocab_size=256,
    hidden_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-6,
    max_position_embeddings=512,
    tie_word_embeddings=False,
    hidden_act="silu",
)

LINEAR = dict(
    linear_conv_kernel_dim=4,
    linear_key_head_dim=16,
    linear_value_head_dim=16,
    linear_num_key_heads=2,
    linear_num_value_heads=4,
)



def layer_types(n_layer, interval):
    """transformers' rule for `full_attention_interval` (and llama.cpp's)."""
    return ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(n_layer)]


MODELS = {
    # Dense qwen3 (QK-norm): the CPU engine's qwen3 path, checked at 1e-4 relative.
    "qwen3": dict(
        hf_classes=("Qwen3Config", "Qwen3ForCausalLM"),
        cfg=dict(
            **COMMON,
            num_hidden_layers=3,
            head_dim=16,
            intermediate_size=96,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0),
        ),
    ),
    "qwen3moe": dict(
        hf_classes=("Qwen3MoeConfig", "Qwen3MoeForCausalLM"),
        cfg=dict(
            **COMMON,
            num_hidden_layers=3,
            head_dim=16,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            decoder_sparse_step=1,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0),
        ),
    ),
    "qwen35": dict(
        hf_classes=("Qwen3_5TextConfig", "Qwen3_5ForCausalLM"),
        cfg=dict(
            **COMMON,
            **LINEAR,
            num_hidden_layers=8,
            head_dim=32,
            intermediate_size=96,
            layer_types=layer_types(8, 4),  # full attention at layers 3 and 7
            rope_parameters=dict(
                rope_type="default",
                rope_theta=10000.0,
                partial_rotary_factor=0.25,
                mrope_section=[2, 1, 1],
                mrope_interleaved=True,
            ),
        ),
    ),
    "qwen35moe": dict(
        hf_classes=("Qwen3_5MoeTextConfig", "Qwen3_5MoeForCausalLM"),
        cfg=dict(
            **COMMON,
            **LINEAR,
            num_hidden_layers=4,
            layer_types=layer_types(4, 2),  # full attention at layers 1 and 3
            head_dim=32,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=48,
            num_experts=8,
            num_experts_per_tok=3,
            full_attention_interval=2,
            rope_parameters=dict(
                rope_type="default",
                rope_theta=10000.0,
                partial_rotary_factor=0.25,
                mrope_section=[2, 1, 1],
                mrope_interleaved=True,
            ),
        ),
    ),
}


# ---------------------------------------------------------------------------------------------
# stage 1: transformers
# ---------------------------------------------------------------------------------------------


def randomise(model, torch, gen):
    """Weights with structure: unit-variance activations, varied routing, decays in (0, 1)."""
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if name.endswith("A_log"):
            v = torch.log(torch.empty(shape).uniform_(0.5, 8.0, generator=gen))
        elif name.endswith("dt_bias"):
            v = torch.randn(shape, generator=gen) * 0.5
        elif "conv1d" in name:
            v = torch.randn(shape, generator=gen) * 0.5
        elif name.endswith("norm.weight"):
            # qwen3.5 norms are 1 + w (w zero-initialised); gated norm and qwen3 norms are w.
            zero_centered = "qwen3_5" in type(model).__module__ and not name.endswith(
                "linear_attn.norm.weight"
            )
            v = torch.randn(shape, generator=gen) * 0.2 + (0.0 if zero_centered else 1.0)
        elif "embed_tokens" in name:
            v = torch.randn(shape, generator=gen)
        elif len(shape) >= 2:
            fan_in = shape[-1]
            scale = 2.0 if name.endswith("mlp.gate.weight") else 1.0
            v = torch.randn(shape, generator=gen) * (scale / fan_in**0.5)
        else:
            v = torch.randn(shape, generator=gen) * 0.1
        with torch.no_grad():
            p.copy_(v.to(p.dtype))


def run_torch(outdir, only=None):
    import torch
    import transformers

    torch.set_grad_enabled(False)
    print("torch", torch.__version__, "transformers", transformers.__version__)
    os.makedirs(outdir, exist_ok=True)
    for arch, spec in MODELS.items():
        if only and arch not in only:
            continue
        try:
            run_one(torch, transformers, arch, spec, outdir)
        except Exception:
            import traceback

            traceback.print_exc()


def run_one(torch, transformers, arch, spec, outdir):
    cfg_cls, model_cls = (getattr(transformers, n) for n in spec["hf_classes"])
    cfg = cfg_cls(**spec["cfg"])
    cfg._attn_implementation = "eager"
    torch.manual_seed(SEED)
    model = model_cls(cfg).float().eval()
    gen = torch.Generator().manual_seed(SEED)
    randomise(model, torch, gen)

    tokens = torch.randint(0, cfg.vocab_size, (1, N_PROMPT), generator=gen)
    out = model(input_ids=tokens, use_cache=True)
    logits = [out.logits[0].float()]
    past = out.past_key_values
    seq = tokens[0].tolist()
    nxt = int(out.logits[0, -1].argmax())
    for _ in range(N_DECODE):
        seq.append(nxt)
        out = model(
            input_ids=torch.tensor([[nxt]]),
            past_key_values=past,
            use_cache=True,
        )
        past = out.past_key_values
        logits.append(out.logits[0].float())
        nxt = int(out.logits[0, -1].argmax())
    logits = torch.cat(logits, 0).numpy().astype(np.float32)
    # Check the cached path against one uncached pass over the whole sequence.
    full = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0].numpy()
    drift = np.abs(full - logits).max() / np.abs(full).max()
    print(f"{arch}: cached vs uncached max rel diff {drift:.2e}; logits std {logits.std():.3f}")

    state = {k: v.float().numpy() for k, v in model.state_dict().items()}
    # The same weights in float64, one uncached pass: how far transformers' own f32 result is
    # from exact, the floor under any f32 comparison (kept in the .npz for diagnosis only).
    model.double()
    full64 = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0].double().numpy()
    row_rel = np.abs(logits - full64).max(1) / np.abs(full64).max(1)
    print(f"{arch}: f32 (cached) vs f64 worst row rel diff {row_rel.max():.2e}")
    np.savez(
        os.path.join(outdir, f"{arch}.npz"),
        config=cfg.to_json_string(),
        tokens=np.array(seq, dtype=np.int32),
        logits=logits,
        logits_f64=full64,
        **{"w." + k: v for k, v in state.items()},
    )
    print(arch, "saved", sum(v.size for v in state.values()), "parameters")


# ---------------------------------------------------------------------------------------------
# stage 2: GGUF with llama.cpp's names
# ---------------------------------------------------------------------------------------------


def tiled_v_order(n_k, n_v):
    """Position p of the tiled order holds the grouped head perm[p]."""
    r = n_v // n_k
    return [k * r + j for j in range(r) for k in range(n_k)]


def reorder_heads(a, axis, n_k, n_v, head_dim):
    if n_k == n_v:
        return a
    perm = tiled_v_order(n_k, n_v)
    idx = np.concatenate([np.arange(h * head_dim, (h + 1) * head_dim) for h in perm])
    return np.take(a, idx, axis=axis)


def write_gguf(arch, npz, path):
    import gguf

    cfg = json.loads(str(npz["config"]))
    W = {k[2:]: npz[k] for k in npz.files if k.startswith("w.")}
    hybrid = arch in ("qwen35", "qwen35moe")
    moe = arch in ("qwen3moe", "qwen35moe")
    rope = cfg.get("rope_parameters") or {}
    n_layer = cfg["num_hidden_layers"]
    hd = cfg["head_dim"]

    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(n_layer)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    if "intermediate_size" in cfg and cfg["intermediate_size"] and arch != "qwen35moe":
        w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    if moe:
        w.add_expert_count(cfg.get("num_experts") or cfg["num_local_experts"])
        w.add_expert_used_count(cfg["num_experts_per_tok"])
        w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
        if arch == "qwen35moe":
            w.add_expert_shared_feed_forward_length(cfg["shared_expert_intermediate_size"])
    if hybrid:
        n_k, n_v = cfg["linear_num_key_heads"], cfg["linear_num_value_heads"]
        dk, dv = cfg["linear_key_head_dim"], cfg["linear_value_head_dim"]
        w.add_rope_dimension_count(int(hd * rope.get("partial_rotary_factor", 0.25)))
        sections = list(rope.get("mrope_section", [11, 11, 10]))
        w.add_rope_dimension_sections(sections + [0] * (4 - len(sections)))
        w.add_ssm_conv_kernel(cfg["linear_conv_kernel_dim"])
        w.add_ssm_state_size(dk)
        w.add_ssm_group_count(n_k)
        w.add_ssm_time_step_rank(n_v)
        w.add_ssm_inner_size(dv * n_v)
        types = cfg["layer_types"]
        interval = next(i + 1 for i, t in enumerate(types) if t == "full_attention")
        w.add_full_attention_interval(interval)

    def put(name, a):
        w.add_tensor(name, np.ascontiguousarray(a, dtype=np.float32))

    def norm(a):
        # qwen3.5 stores 1 + w (its RMSNorm multiplies by 1 + weight).
        return a + 1.0 if hybrid else a

    p = "model."
    put("token_embd.weight", W[p + "embed_tokens.weight"])
    put("output_norm.weight", norm(W[p + "norm.weight"]))
    put("output.weight", W["lm_head.weight"])
    for il in range(n_layer):
        L = f"{p}layers.{il}."
        b = f"blk.{il}."
        put(b + "attn_norm.weight", norm(W[L + "input_layernorm.weight"]))
        ffn_norm = "post_attention_norm.weight" if hybrid else "ffn_norm.weight"
        put(b + ffn_norm, norm(W[L + "post_attention_layernorm.weight"]))
        if L + "self_attn.q_proj.weight" in W:
            put(b + "attn_q.weight", W[L + "self_attn.q_proj.weight"])
            put(b + "attn_k.weight", W[L + "self_attn.k_proj.weight"])
            put(b + "attn_v.weight", W[L + "self_attn.v_proj.weight"])
            put(b + "attn_output.weight", W[L + "self_attn.o_proj.weight"])
            put(b + "attn_q_norm.weight", norm(W[L + "self_attn.q_norm.weight"]))
            put(b + "attn_k_norm.weight", norm(W[L + "self_attn.k_norm.weight"]))
        else:
            A = L + "linear_attn."
            qkv = W[A + "in_proj_qkv.weight"]
            kd = dk * n_k
            qkv = np.concatenate([qkv[: 2 * kd], reorder_heads(qkv[2 * kd :], 0, n_k, n_v, dv)])
            put(b + "attn_qkv.weight", qkv)
            put(b + "attn_gate.weight", reorder_heads(W[A + "in_proj_z.weight"], 0, n_k, n_v, dv))
            put(b + "ssm_beta.weight", reorder_heads(W[A + "in_proj_b.weight"], 0, n_k, n_v, 1))
            put(b + "ssm_alpha.weight", reorder_heads(W[A + "in_proj_a.weight"], 0, n_k, n_v, 1))
            conv = W[A + "conv1d.weight"].reshape(qkv.shape[0], -1)
            conv = np.concatenate([conv[: 2 * kd], reorder_heads(conv[2 * kd :], 0, n_k, n_v, dv)])
            put(b + "ssm_conv1d.weight", conv)
            put(b + "ssm_dt.bias", reorder_heads(W[A + "dt_bias"], 0, n_k, n_v, 1))
            put(b + "ssm_a", reorder_heads(-np.exp(W[A + "A_log"]), 0, n_k, n_v, 1))
            put(b + "ssm_norm.weight", W[A + "norm.weight"])
            put(b + "ssm_out.weight", reorder_heads(W[A + "out_proj.weight"], 1, n_k, n_v, dv))
        M = L + "mlp."
        if moe:
            put(b + "ffn_gate_inp.weight", W[M + "gate.weight"])
            gu = W[M + "experts.gate_up_proj"]
            f = gu.shape[1] // 2
            put(b + "ffn_gate_exps.weight", gu[:, :f, :])
            put(b + "ffn_up_exps.weight", gu[:, f:, :])
            put(b + "ffn_down_exps.weight", W[M + "experts.down_proj"])
            if M + "shared_expert.gate_proj.weight" in W:
                put(b + "ffn_gate_inp_shexp.weight", W[M + "shared_expert_gate.weight"].reshape(-1))
                put(b + "ffn_gate_shexp.weight", W[M + "shared_expert.gate_proj.weight"])
                put(b + "ffn_up_shexp.weight", W[M + "shared_expert.up_proj.weight"])
                put(b + "ffn_down_shexp.weight", W[M + "shared_expert.down_proj.weight"])
        else:
            put(b + "ffn_gate.weight", W[M + "gate_proj.weight"])
            put(b + "ffn_up.weight", W[M + "up_proj.weight"])
            put(b + "ffn_down.weight", W[M + "down_proj.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_ref(arch, npz, path):
    import gguf

    w = gguf.GGUFWriter(path, "reference")
    w.add_array("ref.tokens", [int(t) for t in npz["tokens"]])
    w.add_uint32("ref.n_prompt", N_PROMPT)
    w.add_string("ref.source", "transformers f32 CPU eager, scripts/reference/hf_tiny_models.py")
    w.add_tensor("logits", np.ascontiguousarray(npz["logits"], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run_gguf(outdir, datadir, only=None):
    os.makedirs(datadir, exist_ok=True)
    for arch in MODELS:
        if only and arch not in only:
            continue
        npz = np.load(os.path.join(outdir, f"{arch}.npz"))
        write_gguf(arch, npz, os.path.join(datadir, f"{arch}.gguf"))
        write_ref(arch, npz, os.path.join(datadir, f"{arch}.ref.gguf"))
        print(arch, "written")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "torch":
        run_torch(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "gguf":
        run_gguf(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
