#!/usr/bin/env bash
# KV-cache quality table: perplexity and KL divergence against an f16 KV run, per cache type.
#   scripts/kv-quality.sh [MODEL] [TEXT] [CHUNKS] [THREADS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}
text=${2:-$root/fixtures/botchan.txt}
chunks=${3:-8}
threads=${4:-2}
bin=${TURBINE_BIN:-$root/target/release/turbine}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

common=(-m "$model" -f "$text" -c 512 --chunks "$chunks" -t "$threads")
"$bin" perplexity "${common[@]}" --save-logits "$tmp/base" > "$tmp/f16.out" 2>/dev/null
base_ppl=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$tmp/f16.out")
echo "| K / V | PPL | mean KLD vs f16 | same top-1 |"
echo "|---|---|---|---|"
echo "| f16 / f16 | $base_ppl | 0 | 100% |"
for kv in q8_0/q8_0 q4_0/q4_0 turbo4/turbo4 turbo3/turbo3 turbo2/turbo2 q8_0/turbo4; do
  k=${kv%/*}; v=${kv#*/}
  "$bin" perplexity "${common[@]}" -ctk "$k" -ctv "$v" --kl-base "$tmp/base" > "$tmp/out" 2>/dev/null
  ppl=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$tmp/out")
  kld=$(sed -n 's/^  mean KLD *= \(.*\)/\1/p' "$tmp/out")
  top=$(sed -n 's/^  same top-1 *= \([0-9.]*%\).*/\1/p' "$tmp/out")
  echo "| $k / $v | $ppl | $kld | $top |"
done
