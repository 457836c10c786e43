#!/usr/bin/env bash
# On an aarch64 board (Raspberry Pi 4/5, Jetson Orin, RK3588, Graviton): edgelm against llama.cpp,
# both built natively, on bit-identical SmolLM2-135M weights (Q8_0, Q4_0, Q4_1), llama-bench and
# `edgelm bench` interleaved, pp128 and tg64 at 1 thread and all cores. This is
# benches/compare-llamacpp.sh with llama.cpp built for this CPU (GGML_NATIVE: -mcpu=native, so
# its dotprod / i8mm paths where the core has them) and edgelm on its run-time choice of kernels.
#
# Usage: targets/aarch64/bench.sh [ROUNDS]      (default 5; needs cargo, cmake, g++, python3, curl)
# Env:   THREADS (default 1,<cores>), TYPES, PP, TG, DEPTH, KV as in benches/compare-llamacpp.sh;
#        EDGELM_ISA=neon|dotprod|i8mm forces edgelm's path (default: the best the CPU has).
# Big.LITTLE boards (RK3588): pin to the big cores, e.g. `taskset -c 4-7 targets/aarch64/bench.sh`.
# Prints the ratio table and writes benches/results/compare-smollm2-DATE.json.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
[ "$(uname -m)" = aarch64 ] || { echo "bench.sh runs on an aarch64 board (this is $(uname -m)); see targets/aarch64/icount.sh for the emulated model" >&2; exit 1; }
export LLAMA_BUILD=${LLAMA_BUILD:-${PEERS:-$HOME/.cache/edgelm-peers}/build/llama-native}
# shellcheck source=benches/llamacpp.sh
. benches/llamacpp.sh
tools=(llama-bench llama-quantize llama-completion)
missing=0
for t in "${tools[@]}"; do [ -x "$LLAMA_BIN/$t" ] || missing=1; done
if [ "$missing" = 1 ]; then
  llamacpp_fetch
  llamacpp_log "building llama.cpp ${tools[*]} for this CPU (GGML_NATIVE=ON) into $LLAMA_BUILD"
  cmake -S "$LLAMA_SRC/vendor/llama.cpp" -B "$LLAMA_BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_COMMIT="$(llamacpp_commit)" -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DGGML_CCACHE=OFF -DGGML_NATIVE=ON >/dev/null
  cmake --build "$LLAMA_BUILD" --config Release -j "$(nproc)" --target "${tools[@]}" >/dev/null
fi
export EDGELM_ISA=${EDGELM_ISA:-auto}
export THREADS=${THREADS:-1,$(nproc)}
exec benches/compare-llamacpp.sh "${1:-5}"
