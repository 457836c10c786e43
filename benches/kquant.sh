#!/usr/bin/env bash
# K-quant GGUFs as they are: SmolLM2-135M's Q4_K_M, Q5_K_M and Q6_K made by llama-quantize from its
# F16 GGUF (benches/llamacpp.sh), and Gemma 3 270M's Q4_K_M as shipped, each converted with
# `edgelm-convert --quant keep`. Prints per file: the GGUF's tensor types, the GGUF's size and the
# packed file's (whole file, and weights only), and perplexity on GPL-3 at -c 256 by
# llama-perplexity and by `edgelm perplexity` (llama.cpp's method, same text, same windows).
# Speed against llama-bench: benches/compare-llamacpp.sh with TYPES="Q4_K_M Q5_K_M Q6_K" (and
# MODEL=gemma3).
#
# Usage: benches/kquant.sh        Env: TYPES="Q4_K_M Q5_K_M Q6_K"  CTX=256  THREADS=2  GEMMA=1
# (a TYPES entry such as Q2_K-pure is llama-quantize --pure: see smollm2_gguf; GEMMA=0 skips Gemma)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/llamacpp.sh
. benches/llamacpp.sh
CTX=${CTX:-256}
THREADS=${THREADS:-2}
TEXT=/usr/share/common-licenses/GPL-3
llamacpp_build llama-quantize llama-perplexity
cargo build --release -q -p edgelm -p edgelm-tools
bin=${CARGO_TARGET_DIR:-target}/release
work=$PEERS/kquant
mkdir -p "$work"
files=()
for ty in ${TYPES:-Q4_K_M Q5_K_M Q6_K}; do files+=("smollm2-$ty=$(smollm2_gguf "$ty")"); done
[ "${GEMMA:-1}" = 0 ] || files+=("gemma3-Q4_K_M=$MODELS/gemma3/gemma-3-270m-q4_k_m.gguf")
printf 'file\ttypes\tgguf_bytes\tpacked_bytes\tratio\tpacked_weights\tllama_ppl\tedgelm_ppl\tdiff\n'
for entry in "${files[@]}"; do
  name=${entry%%=*} gguf=${entry#*=}
  packed=$work/$name.edgelm
  "$bin/edgelm-convert" "$gguf" -o "$packed" --quant keep >"$work/$name.convert.log"
  types=$(awk '$1 ~ /^(f32|f16|q[0-9])/ && $2 ~ /^[0-9]+$/ {printf "%s%s:%s", sep, $1, $2; sep=","}' "$work/$name.convert.log")
  weights=$(awk '$1 == "total" {print $4}' "$work/$name.convert.log")
  gbytes=$(stat -c %s "$gguf") pbytes=$(stat -c %s "$packed")
  llamacpp_log "$name: llama-perplexity"
  "$LLAMA_BIN/llama-perplexity" -m "$gguf" -f "$TEXT" -c "$CTX" -t "$THREADS" >"$work/$name.llama-ppl.log" 2>&1
  lp=$(grep -o 'Final estimate: PPL = [0-9.]*' "$work/$name.llama-ppl.log" | awk '{print $NF}')
  llamacpp_log "$name: edgelm perplexity"
  ep=$("$bin/edgelm" perplexity "$packed" "$TEXT" -c "$CTX" -b "$CTX" -t "$THREADS" 2>&1 | tee "$work/$name.edgelm-ppl.log" |
    grep -o 'perplexity[^0-9]*[0-9.]*' | tail -1 | grep -o '[0-9.]*$')
  printf '%s\t%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%+.2f%%\n' "$name" "$types" "$gbytes" "$pbytes" \
    "$(echo "$pbytes / $gbytes" | bc -l)" "$weights" "$lp" "$ep" "$(echo "($ep / $lp - 1) * 100" | bc -l)"
done
