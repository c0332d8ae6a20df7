#!/usr/bin/env python3
"""llama.cpp's prompt and generation speed on a GGUF file (via xllamacpp), for the README's
ratio against `turbine bench` on the same machine.

usage: llamacpp_speed.py MODEL.gguf THREADS TEXT_FILE [N_PROMPT=512] [N_GEN=128] [REPS=3]
Prints pp (with the prompt's exact token count) and tg tokens/s (mean over REPS; the first, warm-up request is discarded).
"""
import statistics
import sys

import xllamacpp as xlc


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    model, threads, text_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    n_prompt = int(sys.argv[4]) if len(sys.argv) > 4 else 512
    n_gen = int(sys.argv[5]) if len(sys.argv) > 5 else 128
    reps = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    p = xlc.CommonParams()
    p.model.path = model
    p.n_ctx = n_prompt + n_gen + 16
    p.n_batch = 512
    p.n_ubatch = 512
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    server = xlc.Server(p)
    words = open(text_file, encoding="utf-8").read().split()
    pp, tg = [], []
    for rep in range(reps + 1):
        # A different slice each time so the prompt cache never helps.
        start = rep * 2000
        # About 1.3 tokens per word in English prose; the timings report the exact count.
        prompt = " ".join(words[start:start + int(n_prompt / 1.3)])
        r = server.handle_completions({"prompt": prompt, "max_tokens": n_gen, "temperature": 0.0,
                                       "ignore_eos": True, "cache_prompt": False})
        t = r["timings"]
        if rep > 0:
            n_prompt_seen = t["prompt_n"]
            pp.append(t["prompt_per_second"])
            tg.append(t["predicted_per_second"])
    print(f"llama.cpp pp{n_prompt_seen}: {statistics.mean(pp):.2f} t/s  tg{n_gen}: {statistics.mean(tg):.2f} t/s "
          f"(threads {threads}, {reps} reps)")


if __name__ == "__main__":
    main()
