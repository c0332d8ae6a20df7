#!/usr/bin/env python3
"""Writes a tiny random-weight GGUF model with llama.cpp's tensor names and metadata keys, all
weights f32, for exact end-to-end checks against reference_forward.py.

usage: make_tiny_model.py VARIANT OUT.gguf
VARIANT: llama, llama-rope-freqs, qwen2, qwen3, gemma3
"""
import sys

import numpy as np
import gguf


def main():
    variant, out = sys.argv[1], sys.argv[2]
    arch = variant.split("-")[0]
    rng = np.random.default_rng(abs(hash(variant)) % 2**32)
    gemma = arch == "gemma3"
    n_layer = 7 if gemma else 3  # gemma: layers 0-4 local, 5 global, 6 local
    n_embd, n_head, n_kv, hd, n_ff, n_vocab = 64, 4, 2, 32, 96, 256
    if gemma:
        hd = 48  # head size independent of n_embd / n_head, as in gemma
    w = gguf.GGUFWriter(out, arch)
    w.add_block_count(n_layer)
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0 if arch == "llama" else 1000000.0)
    if gemma:
        w.add_sliding_window(5)

    def mat(n_out, n_in):
        return (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    def vec(n):
        return (0.3 * rng.standard_normal(n)).astype(np.float32)

    w.add_tensor("token_embd.weight", rng.standard_normal((n_vocab, n_embd)).astype(np.float32))
    w.add_tensor("output_norm.weight", norm(n_embd))
    if arch != "gemma3":
        w.add_tensor("output.weight", mat(n_vocab, n_embd))
    if variant == "llama-rope-freqs":
        w.add_tensor("rope_freqs.weight", (1.0 + 3.0 * rng.random(hd // 2)).astype(np.float32))
    for il in range(n_layer):
        p = f"blk.{il}."
        w.add_tensor(p + "attn_norm.weight", norm(n_embd))
        w.add_tensor(p + "attn_q.weight", mat(n_head * hd, n_embd))
        w.add_tensor(p + "attn_k.weight", mat(n_kv * hd, n_embd))
        w.add_tensor(p + "attn_v.weight", mat(n_kv * hd, n_embd))
        w.add_tensor(p + "attn_output.weight", mat(n_embd, n_head * hd))
        if arch == "qwen2":
            w.add_tensor(p + "attn_q.bias", vec(n_head * hd))
            w.add_tensor(p + "attn_k.bias", vec(n_kv * hd))
            w.add_tensor(p + "attn_v.bias", vec(n_kv * hd))
        if arch in ("qwen3", "gemma3"):
            w.add_tensor(p + "attn_q_norm.weight", norm(hd))
            w.add_tensor(p + "attn_k_norm.weight", norm(hd))
        if gemma:
            w.add_tensor(p + "post_attention_norm.weight", norm(n_embd))
            w.add_tensor(p + "post_ffw_norm.weight", norm(n_embd))
        w.add_tensor(p + "ffn_norm.weight", norm(n_embd))
        w.add_tensor(p + "ffn_gate.weight", mat(n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", mat(n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
