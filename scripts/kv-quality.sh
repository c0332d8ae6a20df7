#!/usr/bin/env bash
# KV-cache quality table: perplexity and KL divergence against an f16 KV run, per cache type.
#   scripts/kv-quality.sh [MODEL] [TEXT] [CHUNKS] [THREADS]
# TEXT: fixtures/botchan.txt (default) or fixtures/enwiki.txt (Wikipedia; scripts/fetch-models.sh
# fixtures makes both).
# Environment:
#   KV_CONFIGS  K/V pairs to compare (default below); `auto` is allowed as K.
#   KV_BASE_DIR keep the f16 base run here and reuse it when it exists (default: a temp dir).
#   TURBINE_BIN the turbine binary (default: target/release/turbine).
# The PPL column is followed by its change against f16 KV.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}
text=${2:-$root/fixtures/botchan.txt}
chunks=${3:-8}
threads=${4:-2}
bin=${TURBINE_BIN:-$root/target/release/turbine}
configs=${KV_CONFIGS:-q8_0/q8_0 q4_0/q4_0 turbo4/turbo4 turbo3/turbo3 turbo2/turbo2 q8_0/turbo4 q8_0/turbo3 q8_0/turbo2 auto/turbo3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
base_dir=${KV_BASE_DIR:-$tmp}
mkdir -p "$base_dir"
base=$base_dir/base-$(basename "$model" .gguf)-$(basename "$text")-$chunks

common=(-m "$model" -f "$text" -c 512 --chunks "$chunks" -t "$threads")
if [[ ! -s $base || ! -s $base.out ]]; then
  "$bin" perplexity "${common[@]}" --save-logits "$base" > "$base.out" 2>/dev/null
fi
base_ppl=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$base.out")
echo "| K / V | PPL | ΔPPL | mean KLD vs f16 | same top-1 |"
echo "|---|---|---|---|---|"
echo "| f16 / f16 | $base_ppl | 0 | 0 | 100% |"
for kv in $configs; do
  k=${kv%/*}; v=${kv#*/}
  "$bin" perplexity "${common[@]}" -ctk "$k" -ctv "$v" --kl-base "$base" > "$tmp/out" 2>/dev/null
  ppl=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$tmp/out")
  # What `auto` resolved to, as the run printed it.
  used=$(sed -n 's/.*-ctk \([a-z0-9_]*\) -ctv \([a-z0-9_]*\),.*/\1 \/ \2/p' "$tmp/out")
  kld=$(sed -n 's/^  mean KLD *= \(.*\)/\1/p' "$tmp/out")
  top=$(sed -n 's/^  same top-1 *= \([0-9.]*%\).*/\1/p' "$tmp/out")
  delta=$(awk -v a="$ppl" -v b="$base_ppl" 'BEGIN { printf "%+.2f%%", (a / b - 1) * 100 }')
  label="$k / $v"
  [[ $label != "$used" && -n $used ]] && label="$label ($used)"
  echo "| $label | $ppl | $delta | $kld | $top |"
done
