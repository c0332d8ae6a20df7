#!/usr/bin/env python3
"""Reference tokenizations from llama.cpp itself (the prebuilt `xllamacpp` package, through
its server's /tokenize and /detokenize endpoints on 127.0.0.1) for the real models, written
to tests/data/tokenizer_llamacpp.json for tokenizer_models.rs.

usage: .venv/bin/python crates/text/tests/tokenizer_llamacpp_golden.py ROOT > OUT.json
(ROOT: the repository root, where models/ and fixtures/ are.)
"""
import json
import sys
import urllib.request

import xllamacpp as xlc

MODELS = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "qwen2.5-coder-0.5b-instruct.gguf",
    "gemma-3-270m-q4_k_m.gguf",
]

EXTRA = [
    "The capital of France is 12345 héllo 🦙",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text after bos</s> and <eos> <pad> <unk>",
    "<|endoftext|>  <|endoftext|>x",
    "def fib(n):\r\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\r\n\r\n\tpass  \n",
    "人工知能（じんこうちのう、英: artificial intelligence）は、「計算」という概念と「コンピュータ」という道具を用いて",
    "Ünïcödé: naïve café, Straße, İstanbul, ǅ, ﬁ ligature, ½ ⅓ ² ³, ١٢٣ Arabic digits, १२३ Devanagari",
    "e\u0301 combining, क्षत्रिय, 한국어 텍스트, ภาษาไทย, עברית, Ελληνικά, русский текст",
    "emoji: 👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 🤖🚀✨ and ZWJ\u200dhere, NBSP\u00a0here, tab\there",
    " " * 100 + "x" + "\n" * 50 + "y" + "\t" * 20,
    "1234567890 3.14159 1,000,000 0x1F 1e-9 $100 50% #1 @user",
    "don't I'M you'RE they've we'll she'd it's O'Neil's",
    "https://example.com/path?query=1&b=2#frag user@mail.org",
    "   leading and trailing spaces   ",
    "\n\n\nnewlines first",
    "",
]


def main():
    root = sys.argv[1]
    inp = open(f"{root}/fixtures/llama.cpp/models/ggml-vocab-llama-bpe.gguf.inp", encoding="utf-8").read()
    strings = [s for s in inp.split("\n__ggml_vocab_test__\n") if s != ""] + EXTRA
    botchan = open(f"{root}/fixtures/botchan.txt", encoding="utf-8").read()
    strings.append(botchan[:3000])
    # A long text: exercises word caches and the piecewise SentencePiece merge.
    strings.append(botchan[3000:40000])
    out = {"strings": strings, "models": {}}
    for model in MODELS:
        p = xlc.CommonParams()
        p.model.path = f"{root}/models/{model}"
        p.n_ctx = 256
        p.cpuparams.n_threads = 1
        p.cpuparams_batch.n_threads = 1
        server = xlc.Server(p)

        def post(path, body):
            req = urllib.request.Request(server.listening_address + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.load(r)

        cases = []
        for s in strings:
            plain = post("/tokenize", {"content": s, "add_special": False, "parse_special": False})["tokens"]
            special = post("/tokenize", {"content": s, "add_special": True, "parse_special": True})["tokens"]
            text = post("/detokenize", {"tokens": plain})["content"]
            cases.append({"plain": plain, "special": special, "detokenized": text})
        out["models"][model] = cases
        del server
    # One line per string and per model case: readable diffs without one id per line.
    w = sys.stdout.write
    w('{"strings": [\n')
    w(",\n".join(json.dumps(x, ensure_ascii=False) for x in out["strings"]))
    w('\n],\n"models": {\n')
    models = []
    for name, cases in out["models"].items():
        body = ",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases)
        models.append(json.dumps(name) + ": [\n" + body + "\n]")
    w(",\n".join(models))
    w("\n}}\n")


if __name__ == "__main__":
    main()
