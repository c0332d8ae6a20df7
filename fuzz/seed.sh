#!/usr/bin/env bash
# Builds the fuzz corpus (git-ignored) in fuzz/corpus/parse: tiny files from our writer
# covering every value type, nested arrays, alignments and tensor layouts, plus the first
# 64 KiB of the real models and vocab files when present (run scripts/fetch-models.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/fuzz/corpus/parse"
mkdir -p "$corpus"
cargo run --quiet --manifest-path "$root/Cargo.toml" -p gguf --example make_fuzz_seeds -- "$corpus"
for f in "$root"/models/*.gguf "$root"/fixtures/llama.cpp/models/ggml-vocab-*.gguf; do
    [ -f "$f" ] || continue
    head -c 65536 "$f" > "$corpus/head-$(basename "$f")"
done
echo "corpus: $(ls "$corpus" | wc -l) files in $corpus"
