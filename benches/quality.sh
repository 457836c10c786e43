#!/usr/bin/env bash
# The quality table of docs/BENCHMARKS.md: size, bits per weight and perplexity of SmolLM2-135M
# quantized by llama.cpp's llama-quantize and by edgelm-convert from one F16 source, without and
# with an importance matrix computed on a calibration text (llama-imatrix / edgelm-convert
# --calibrate) that is not the evaluation text.
#   - source: SmolLM2's F16 GGUF (derived from the shipped Q4_1 by benches/llamacpp.sh);
#   - evaluation: perplexity on GPL-3 at -c 256 (llama.cpp's method), every file scored by the
#     same engine: edgelm, after `edgelm-convert --quant f32` of each llama.cpp file (its values
#     exactly) and `--simulate` of each edgelm mix (its quantized values decoded to f32); also
#     llama-perplexity on llama.cpp's own files;
#   - calibration: Debian's Apache-2.0, MPL-2.0 and GFDL-1.3 license texts, concatenated.
# Prints one tab-separated line per file: name, bytes, bits per weight of the matrices, ppl.
#
# Usage: benches/quality.sh        Env: CTX=256  EVAL=/usr/share/common-licenses/GPL-3
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/llamacpp.sh
. benches/llamacpp.sh
CTX=${CTX:-256}
EVAL=${EVAL:-/usr/share/common-licenses/GPL-3}
llamacpp_build llama-quantize llama-perplexity llama-imatrix
cargo build --release -q -p edgelm -p edgelm-tools
bin=${CARGO_TARGET_DIR:-target}/release
work=$PEERS/quality
mkdir -p "$work"
calib=$work/calibration.txt
cat /usr/share/common-licenses/{Apache-2.0,MPL-2.0,GFDL-1.3} >"$calib"
f16=$(smollm2_gguf F16)
log() { llamacpp_log "$*"; }

# llama.cpp: an importance matrix on the calibration text, then Q4_0 and Q4_K_M without and with it.
imatrix=$work/imatrix.gguf
[ -s "$imatrix" ] || { log "llama-imatrix"; "$LLAMA_BIN/llama-imatrix" -m "$f16" -f "$calib" -c 512 -t "$(nproc)" -o "$imatrix" >"$work/imatrix.log" 2>&1; }
quantize() { # NAME TYPE [--imatrix FILE]
  local out=$work/llama-$1.gguf
  [ -s "$out" ] || { log "llama-quantize $1"; "$LLAMA_BIN/llama-quantize" "${@:3}" "$f16" "$out" "$2" >"$work/llama-$1.log" 2>&1; }
  echo "$out"
}
declare -A gguf=(
  [Q8_0]=$(quantize Q8_0 Q8_0)
  [Q4_0]=$(quantize Q4_0 Q4_0)
  [Q4_K_M]=$(quantize Q4_K_M Q4_K_M)
  [Q4_K_M+imatrix]=$(quantize Q4_K_M-imatrix Q4_K_M --imatrix "$imatrix")
)

# edgelm's files: f16, q8_0, q4 (its own types, run as they are) and the mixes, simulated.
convert() { # NAME ARGS...
  local out=$work/edgelm-$1.edgelm
  [ -s "$out" ] && [ "$out" -nt "$bin/edgelm-convert" ] || { log "edgelm-convert $1"; "$bin/edgelm-convert" "$f16" -o "$out" "${@:2}" >"$work/edgelm-$1.log"; }
  echo "$out"
}
# Bits per weight of the stored matrices (tokenizer tables excluded), from a llama-quantize log
# or from an edgelm-convert report; the sizes of simulated files are those of their mixes.
llama_bpw() { python3 - "$1" <<'EOF'
import sys
sys.path.insert(0, "benches")
from random_gguf import read_gguf_tensors  # noqa: E402
EOF
}
rows=()
ppl_edgelm() { "$bin/edgelm" perplexity "$1" -f "$EVAL" -c "$CTX" 2>&1 | grep -o 'perplexity [0-9.]*' | tail -1 | cut -d' ' -f2; }
ppl_llama() { "$LLAMA_BIN/llama-perplexity" -m "$1" -f "$EVAL" -c "$CTX" -t "$(nproc)" 2>&1 | grep -o 'Final estimate: PPL = [0-9.]*' | awk '{print $NF}'; }
gguf_bpw() { python3 benches/gguf_bpw.py "$1"; }

printf 'file\tbytes\tbpw\tppl(edgelm)\tppl(llama.cpp)\n'
for name in Q8_0 Q4_0 Q4_K_M Q4_K_M+imatrix; do
  g=${gguf[$name]}
  f32=$(convert "llama-$name-f32" --quant f32 --embed-type f32)
  [ "$g" -nt "$f32" ] && { rm -f "$f32"; f32=$(convert "llama-$name-f32" --quant f32 --embed-type f32); }
  sed -i '' /dev/null 2>/dev/null || true
  printf 'llama.cpp %s\t%s\t%s\t%s\t%s\n' "$name" "$(stat -c %s "$g")" "$(gguf_bpw "$g")" \
    "$(ppl_edgelm "$f32")" "$(ppl_llama "$g")"
done
for spec in "f16:--quant f16 --embed-type f16" "q8_0:--quant q8_0" "q4:--quant q4_0" \
  "q4_k_m:--quant q4_k_m --simulate" "q4_k_m+calibrate:--quant q4_k_m --simulate --calibrate $calib"; do
  name=${spec%%:*}
  # shellcheck disable=SC2086
  f=$(convert "$name" ${spec#*:})
  printf 'edgelm %s\t%s\t%s\t%s\t-\n' "$name" "$(stat -c %s "$f")" \
    "$(grep -o '[0-9.]* bits per weight' "$work/edgelm-$name.log" | cut -d' ' -f1)" "$(ppl_edgelm "$f")"
done
