#!/usr/bin/env bash
# edgelm against llama.cpp on SmolLM2-135M-Instruct (or, MODEL=gemma3, Gemma 3 270M's Q4_K_M GGUF),
# same machine, same weights, one sitting:
#   - llama.cpp built from the PyPI sdist of llama-cpp-python, AVX2 only (benches/llamacpp.sh);
#   - Q8_0 and Q4_0 derived from the shipped Q4_1 with llama-quantize, then each GGUF converted
#     with `edgelm-convert --quant keep`, so both programs multiply bit-identical weights (Gemma 3:
#     the GGUF as shipped; K-quant mixes such as Q4_K_M, Q5_K_M, Q6_K are made from SmolLM2's F16);
#   - llama-bench and `edgelm bench` interleaved (A B A B ...), pp128 and tg64 at 1 and 2 threads;
#   - time to first token and peak RSS of a short generation, each program as a fresh process.
# Prints a table of ratios (edgelm / llama.cpp) and writes benches/results/compare-<date-time>.json
# (to the second: back-to-back runs keep their own files).
#
# Usage: benches/compare-llamacpp.sh [ROUNDS]     (default 5)
# Env:   MODEL=smollm2|gemma3  TYPES="Q8_0 Q4_0 Q4_1" (SmolLM2 types; "gemma3" in the list adds
#        Gemma's Q4_K_M to the same sitting)  THREADS=1,2  PP=128  TG=64
#        STARTUP=0  skip the time-to-first-token and RSS runs (and llama-completion)
#        DEPTH=512,2048,4096  tests after that many tokens of context (implies STARTUP=0)  KV=f16|q8
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/llamacpp.sh
. benches/llamacpp.sh
ROUNDS=${1:-5}
# Like for like: llama.cpp is built AVX2-only, so edgelm runs its AVX2 kernels too (not the
# VNNI ones it would pick on a CPU that has them); EDGELM_ISA=auto lifts that.
export EDGELM_ISA=${EDGELM_ISA:-avx2}
TYPES=${TYPES:-Q8_0 Q4_0 Q4_1}
command -v /usr/bin/time >/dev/null || { apt-get install -y -q time >/dev/null 2>&1 || true; }

STARTUP=${STARTUP:-1}
[ -n "${DEPTH:-}" ] && STARTUP=0
if [ "$STARTUP" = 0 ]; then llamacpp_build llama-bench llama-quantize; else llamacpp_build llama-bench llama-quantize llama-completion; fi
cargo build --release -q -p edgelm -p edgelm-tools
bin=${CARGO_TARGET_DIR:-target}/release
work=$PEERS/compare
mkdir -p "$work" benches/results
pairs=()
[ "${MODEL:-smollm2}" = gemma3 ] && TYPES=Q4_K_M
for ty in $TYPES; do
  if [ "${MODEL:-smollm2}" = gemma3 ] || [ "$ty" = gemma3 ]; then
    gguf=$MODELS/gemma3/gemma-3-270m-q4_k_m.gguf
    packed=$work/gemma-3-270m.Q4_K_M.edgelm
  else
    gguf=$(smollm2_gguf "$ty")
    packed=$work/SmolLM2-135M-Instruct.$ty.edgelm
  fi
  if [ ! -s "$packed" ] || [ "$gguf" -nt "$packed" ] || [ "$bin/edgelm-convert" -nt "$packed" ]; then
    llamacpp_log "edgelm-convert $ty (keep: the GGUF's own values)"
    "$bin/edgelm-convert" "$gguf" -o "$packed" --quant keep >/dev/null
  fi
  pairs+=("$ty=$gguf=$packed")
done

out=benches/results/compare-${MODEL:-smollm2}-$(date +%Y%m%d-%H%M%S).json
python3 benches/compare_llamacpp.py --rounds "$ROUNDS" --threads "${THREADS:-1,2}" --pp "${PP:-128}" \
  --tg "${TG:-64}" --depth "${DEPTH:-0}" --kv "${KV:-f16}" --llama-bin "$LLAMA_BIN" --edgelm "$bin/edgelm" \
  --llama-commit "$(llamacpp_commit)" --out "$out" $([ "$STARTUP" = 0 ] && echo --no-startup) "${pairs[@]}"
