#!/usr/bin/env bash
# llvm-mca cycle estimates of the hot loops of edgelm's q8_0 / q4_0 NEON, SDOT and SMMLA matmuls and
# of llama.cpp's matching kernels (vec_dot, repacked gemm/gemv), from the binaries and objects that
# targets/aarch64/icount.sh builds. CPU models: cortex-a72 (Pi 4; LLVM models it as a Cortex-A57),
# neoverse-n1 (the Cortex-A76 core of the Pi 5 / RK3588; LLVM's cortex-a76 is the A57 model too),
# neoverse-n2 (an Armv9 core with i8mm). A model: no caches, no memory, no front end.
#
# Usage: targets/aarch64/mca.sh      (after icount.sh; needs llvm-mca >= 19: apt-get install llvm-19)
# Env:   MCA=/usr/lib/llvm-19/bin/llvm-mca  CPUS=cortex-a72,neoverse-n1,neoverse-n2
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=benches/llamacpp.sh
. benches/llamacpp.sh
# shellcheck source=targets/aarch64/llamacpp-cross.sh
. targets/aarch64/llamacpp-cross.sh
MCA=${MCA:-/usr/lib/llvm-19/bin/llvm-mca}
CPUS=${CPUS:-cortex-a72,neoverse-n1,neoverse-n2}
edgelm=${CARGO_TARGET_DIR_AARCH64:-$root/target-aarch64}/aarch64-unknown-linux-gnu/release/edgelm
[ -x "$edgelm" ] || { echo "no $edgelm: run targets/aarch64/icount.sh first" >&2; exit 1; }
mca() { python3 targets/aarch64/mca_loops.py "$@" --cpus "$CPUS" --mca "$MCA"; }
echo "### edgelm (loops of 1024 multiply-adds: 4 tokens × one 8×32 tile, prefill; 256: one token, decode)"
mca "$edgelm" "neon q8_0=matmul_q8_0_neon" "neon q4_0=matmul_q4_0_neon" \
  "dotprod q8_0=matmul_q8_0_dotprod" "dotprod q4_0=matmul_q4_0_dotprod" \
  "i8mm q8_0=matmul_q8_0_i8mm" "i8mm q4_0=matmul_q4_0_i8mm"
for level in neon dotprod i8mm; do
  obj=$LLAMA_ARM_BUILD/$level/build/ggml/src/CMakeFiles/ggml-cpu.dir/ggml-cpu/arch/arm
  echo "### llama.cpp, -march=$(llamacpp_arm_march "$level")"
  mca "$obj/quants.c.o" "$level vec_dot q8_0=ggml_vec_dot_q8_0_q8_0" "$level vec_dot q4_0=ggml_vec_dot_q4_0_q8_0"
  [ "$level" = neon ] && continue
  mca "$obj/repack.cpp.o" \
    "$level repack q4_0=ggml_gemm_q4_0_4x4_q8_0,ggml_gemv_q4_0_4x4_q8_0,ggml_gemm_q4_0_4x8_q8_0,ggml_gemv_q4_0_4x8_q8_0" \
    "$level repack q8_0=ggml_gemm_q8_0_4x4_q8_0,ggml_gemv_q8_0_4x4_q8_0,ggml_gemm_q8_0_4x8_q8_0,ggml_gemv_q8_0_4x8_q8_0"
done
