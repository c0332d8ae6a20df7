#!/usr/bin/env python3
"""Independent float64 forward pass of a GGUF model (llama, qwen2, qwen3, gemma3), written from
the architectures' published definitions with numpy and the `gguf` package's own dequantizers.

usage: reference_forward.py [--all] [--q8] MODEL.gguf TOKEN_ID [TOKEN_ID ...]
Prints JSON {"logits": [...]} for the last token (with --all: {"logits": [[...], ...]} for every
token). No activation quantization, no f16 anywhere: the exact function the quantized weights
define, to check an engine's math against. --q8 rounds every matmul input to 8 bits per
32-value block as ggml-style kernels do, to measure what that rounding alone changes.
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main():
    args = sys.argv[1:]
    all_rows = "--all" in args
    q8 = "--q8" in args
    args = [a for a in args if a not in ("--all", "--q8")]
    path, ids = args[0], [int(x) for x in args[1:]]
    r = GGUFReader(path)
    fields = {k: f for k, f in r.fields.items()}

    def meta(key, default=None):
        f = fields.get(key)
        if f is None:
            return default
        v = f.contents()
        return v

    arch = meta("general.architecture")
    a = lambda k, d=None: meta(f"{arch}.{k}", d)
    tensors = {t.name: t for t in r.tensors}

    def W(name):
        t = tensors.get(name)
        if t is None:
            return None
        return dequantize(t.data, t.tensor_type).astype(np.float64).reshape(
            [int(d) for d in reversed(t.shape)])

    n_layer = a("block_count")
    n_embd = a("embedding_length")
    n_head = a("attention.head_count")
    n_kv = a("attention.head_count_kv", n_head)
    hd = a("attention.key_length", n_embd // n_head)
    eps = a("attention.layer_norm_rms_epsilon")
    base = a("rope.freq_base", 10000.0)
    n_rot = a("rope.dimension_count", hd)
    neox = arch != "llama"
    gemma = arch == "gemma3"
    window = a("attention.sliding_window") if gemma else None
    scale = 1.0 / np.sqrt(hd)

    def act_q8(x):
        # ggml-style activation quantization (q8_0/q8_1: 32-value blocks, d = amax/127).
        if not q8:
            return x
        shp = x.shape
        b = x.reshape(-1, 32)
        d = np.abs(b).max(axis=1, keepdims=True) / 127.0
        inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
        return (np.round(b * inv) * d).reshape(shp)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    freq_factors = W("rope_freqs.weight")

    def rope(x, pos, b):
        # x: [T, H, hd]
        half = n_rot // 2
        inv = b ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)
        if freq_factors is not None:
            inv = inv / freq_factors
        ang = np.outer(pos, inv)[:, None, :]
        c, s = np.cos(ang), np.sin(ang)
        y = x.copy()
        if neox:
            x0, x1 = x[..., :half], x[..., half:n_rot]
            y[..., :half] = x0 * c - x1 * s
            y[..., half:n_rot] = x0 * s + x1 * c
        else:
            x0, x1 = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
            y[..., 0:n_rot:2] = x0 * c - x1 * s
            y[..., 1:n_rot:2] = x0 * s + x1 * c
        return y

    emb_t = tensors["token_embd.weight"]
    emb_rows = dequantize(emb_t.data, emb_t.tensor_type)
    x = emb_rows[ids].astype(np.float64)
    if gemma:
        x = x * np.sqrt(n_embd)
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    for il in range(n_layer):
        p = f"blk.{il}."
        h = rms(x, W(p + "attn_norm.weight"))
        hq = act_q8(h)
        q = hq @ W(p + "attn_q.weight").T
        k = hq @ W(p + "attn_k.weight").T
        v = hq @ W(p + "attn_v.weight").T
        for name, m in (("attn_q.bias", "q"), ("attn_k.bias", "k"), ("attn_v.bias", "v")):
            b = W(p + name)
            if b is not None:
                if m == "q":
                    q = q + b
                elif m == "k":
                    k = k + b
                else:
                    v = v + b
        q = q.reshape(T, n_head, hd)
        k = k.reshape(T, n_kv, hd)
        v = v.reshape(T, n_kv, -1)
        qn, kn = W(p + "attn_q_norm.weight"), W(p + "attn_k_norm.weight")
        if qn is not None:
            q = rms(q, qn)
            k = rms(k, kn)
        local = gemma and window and (il % 6 < 5)
        b = 10000.0 if local else base
        q = rope(q, pos, b)
        k = rope(k, pos, b)
        group = n_head // n_kv
        out = np.zeros((T, n_head, v.shape[-1]))
        for hh in range(n_head):
            kh = hh // group
            s = q[:, hh, :] @ k[:, kh, :].T * scale
            for t in range(T):
                lo = max(0, t + 1 - window) if local else 0
                s[t, :lo] = -np.inf
                s[t, t + 1:] = -np.inf
            s = s - s.max(axis=1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=1, keepdims=True)
            out[:, hh, :] = pr @ v[:, kh, :]
        o = act_q8(out.reshape(T, -1)) @ W(p + "attn_output.weight").T
        pn = W(p + "post_attention_norm.weight")
        if pn is not None:
            o = rms(o, pn)
        x = x + o
        h = rms(x, W(p + "ffn_norm.weight"))
        hq = act_q8(h)
        g = hq @ W(p + "ffn_gate.weight").T
        u = hq @ W(p + "ffn_up.weight").T
        if gemma:
            act = 0.5 * g * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (g + 0.044715 * g ** 3)))
        else:
            act = g / (1.0 + np.exp(-g))
        d = act_q8(act * u) @ W(p + "ffn_down.weight").T
        fn = W(p + "post_ffw_norm.weight")
        if fn is not None:
            d = rms(d, fn)
        x = x + d
    h = rms(x if all_rows else x[-1:], W("output_norm.weight"))
    out_t = tensors.get("output.weight", emb_t)
    wo = dequantize(out_t.data, out_t.tensor_type).astype(np.float64)
    logits = act_q8(h) @ wo.T
    json.dump({"logits": logits.tolist() if all_rows else logits[0].tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
