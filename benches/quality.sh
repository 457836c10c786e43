#!/usr/bin/env bash
# The quality table of docs/BENCHMARKS.md: size, bits per weight and perplexity of SmolLM2-135M
# quantized by llama.cpp's llama-quantize and by edgelm-convert from one F16 source, without and
# with an importance matrix from a calibration text (llama-imatrix / edgelm-convert --calibrate).
#   - source: SmolLM2's F16 GGUF (benches/llamacpp.sh derives it from the shipped Q4_1);
#   - evaluation: perplexity on GPL-3 at -c 256 (llama.cpp's method). Every file is scored by the
#     same engine, edgelm at f32: llama.cpp's files after `edgelm-convert --quant f32` (their
#     values exactly), edgelm's mixes with `--simulate` (their quantized values decoded to f32);
#     edgelm's own f16/q8_0/q4_0 files run as they are. LLAMA_PPL=1 adds llama-perplexity on
#     llama.cpp's files, REAL=1 edgelm's mixes run by the K-quant kernels;
#   - calibration (not the evaluation text): Debian's Apache-2.0, MPL-2.0 and GFDL-1.3 texts.
# Prints one tab-separated line per file: name, MiB of weights, bits per weight, perplexity.
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

ppl() { "$bin/edgelm" perplexity "$1" "$EVAL" -c "$CTX" 2>/dev/null | awk '/^perplexity:/ {print $2}'; }
row() { printf '%s\t%s\t%s\t%s\n' "$@"; }
printf 'file\tweights (MiB)\tbits/weight\tperplexity\n'

# llama.cpp: an importance matrix of the calibration text (windows of 512, its default), then
# llama-quantize from the F16 source; scored as f32 copies by edgelm.
imatrix=$work/imatrix.gguf
[ -s "$imatrix" ] || "$LLAMA_BIN/llama-imatrix" -m "$f16" -f "$calib" -c 512 -o "$imatrix" >"$work/imatrix.log" 2>&1
for spec in Q8_0 Q4_0 Q4_K_M "Q4_K_M+imatrix:Q4_K_M --imatrix $imatrix"; do
  name=${spec%%:*}
  read -r ty args <<<"${spec#*:}"
  gguf=$work/llama-$name.gguf
  # shellcheck disable=SC2086
  [ -s "$gguf" ] || "$LLAMA_BIN/llama-quantize" $args "$f16" "$gguf" "$ty" >"$work/llama-$name.log" 2>&1
  "$bin/edgelm-convert" "$gguf" -o "$work/f32.edgelm" --quant f32 --embed-type f32 >/dev/null
  bytes=$(sed -n 's/.*quant size  = *\([0-9.]*\) MiB (\([0-9.]*\) BPW).*/\1 \2/p' "$work/llama-$name.log")
  row "llama.cpp $name" "${bytes% *}" "${bytes#* }" "$(ppl "$work/f32.edgelm")"
  if [ "${LLAMA_PPL:-0}" = 1 ]; then
    row "  (llama-perplexity)" - - "$("$LLAMA_BIN/llama-perplexity" -m "$gguf" -f "$EVAL" -c "$CTX" 2>&1 |
      sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')"
  fi
done

# edgelm: its own types as they are, and the mixes simulated (REAL=1: also as K-quant files).
for spec in "f16:--quant f16 --embed-type f16" "q8_0:--quant q8_0" "q4:--quant q4_0" \
  "q4_k_m:--quant q4_k_m --simulate" "q4_k_m+calibrate:--quant q4_k_m --simulate --calibrate $calib"; do
  name=${spec%%:*}
  # shellcheck disable=SC2086
  "$bin/edgelm-convert" "$f16" -o "$work/edgelm.edgelm" ${spec#*:} >"$work/edgelm-$name.log"
  if grep -q '^simulated mix' "$work/edgelm-$name.log"; then
    read -r bytes bpw < <(sed -n 's/^simulated mix: \([0-9]*\) bytes.*, \([0-9.]*\) bits per weight/\1 \2/p' "$work/edgelm-$name.log")
  else
    read -r bytes bpw < <(awk '$1 == "total" {print $4, $5}' "$work/edgelm-$name.log")
  fi
  row "edgelm $name" "$(awk '{printf "%.2f", $1 / 1048576}' <<<"$bytes")" "$bpw" "$(ppl "$work/edgelm.edgelm")"
  if [ "${REAL:-0}" = 1 ] && [[ $spec == *--simulate* ]]; then
    real=${spec#*:}
    # shellcheck disable=SC2086
    "$bin/edgelm-convert" "$f16" -o "$work/edgelm.edgelm" ${real/--simulate/} >/dev/null
    row "  (K-quant kernels)" - - "$(ppl "$work/edgelm.edgelm")"
  fi
done
rm -f "$work/f32.edgelm" "$work/edgelm.edgelm"
