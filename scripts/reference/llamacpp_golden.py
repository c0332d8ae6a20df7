#!/usr/bin/env python3
"""Golden outputs from llama.cpp (the prebuilt `xllamacpp` package) for whole-model tests.

usage: llamacpp_golden.py MODEL.gguf N_TOKENS N_TOP PROMPT [PROMPT ...] > golden.json

For each prompt (raw completion, no BOS unless the model's metadata adds one, greedy) prints
the generated token ids, text, and for every step the chosen token's log-prob and the top
N_TOP alternatives. A prompt prefixed with "chat:" is sent as one user message through the
model's chat template instead. Output: one JSON object {"model": ..., "runs": [...]}.

Environment (for measuring llama.cpp against itself, see compare_golden.py):
  LLAMACPP_FLASH_ATTN=on|off|auto   flash attention (default auto: on for the CPU)
  LLAMACPP_NO_REPACK=1              no repacked weight layouts (CPU "extra" buffer types)
"""
import json
import os
import sys

import xllamacpp as xlc


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    model, n_tokens, n_top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    prompts = sys.argv[4:]
    p = xlc.CommonParams()
    p.model.path = model
    p.n_ctx = 1024
    # xllamacpp slows down 25x with 2 threads on 2-core machines (ASSETS.md).
    p.cpuparams.n_threads = 1
    p.cpuparams_batch.n_threads = 1
    fa = os.environ.get("LLAMACPP_FLASH_ATTN", "auto")
    p.flash_attn_type = {
        "on": xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED,
        "off": xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED,
        "auto": xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_AUTO,
    }[fa]
    if os.environ.get("LLAMACPP_NO_REPACK") == "1":
        p.no_extra_bufts = True
    server = xlc.Server(p)
    runs = []
    for prompt in prompts:
        if prompt.startswith("chat:"):
            req = {"messages": [{"role": "user", "content": prompt[5:]}], "max_tokens": n_tokens,
                   "temperature": 0.0, "logprobs": True, "top_logprobs": n_top}
            r = server.handle_chat_completions(req)
            choice = r["choices"][0]
            text = choice["message"]["content"]
        else:
            req = {"prompt": prompt, "max_tokens": n_tokens, "temperature": 0.0, "logprobs": n_top}
            r = server.handle_completions(req)
            choice = r["choices"][0]
            text = choice["text"]
        steps = choice["logprobs"]["content"]
        runs.append({
            "prompt": prompt,
            "text": text,
            "prompt_tokens": r["usage"]["prompt_tokens"],
            "ids": [s["id"] for s in steps],
            "logprobs": [s["logprob"] for s in steps],
            "top": [[[t["id"], t["logprob"]] for t in s["top_logprobs"]] for s in steps],
        })
    json.dump({"model": model, "runs": runs}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
