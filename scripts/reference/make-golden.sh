#!/usr/bin/env bash
# Writes fixtures/golden/<model>.json: llama.cpp's greedy outputs (via xllamacpp) on the real
# models, the references of crates/models/tests/golden.rs. Regenerated when missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py=${TURBINE_PYTHON:-$root/.venv/bin/python}
out=$root/fixtures/golden
mkdir -p "$out"

golden() { # golden MODEL_FILE PROMPT...
  local model=$1; shift
  local dest=$out/${model%.gguf}.json
  [ -s "$dest" ] && { echo "ok  $dest"; return; }
  "$py" "$root/scripts/reference/llamacpp_golden.py" "$root/models/$model" 16 5 "$@" \
    > "$dest.part" 2> "$dest.log" || { cat "$dest.log" >&2; exit 1; }
  mv "$dest.part" "$dest"
  rm -f "$dest.log"
  echo "got $dest"
}

golden SmolLM2-135M-Instruct.Q4_1.gguf "The capital of France is" "Once upon a time" \
  "chat:What is the capital of France? Answer in one sentence."
golden qwen2.5-coder-0.5b-instruct.gguf "The capital of France is" "def fibonacci(n):"
golden gemma-3-270m-q4_k_m.gguf "The capital of France is" "Once upon a time"
