#!/usr/bin/env bash
# ARM cost model without a board: guest instructions executed per prompt token and per generated
# token, edgelm against llama.cpp, both cross-built for aarch64 and run under qemu-aarch64 with a
# TCG plugin that counts instructions (icount-plugin.c), on bit-identical SmolLM2-135M weights
# (the Q8_0 / Q4_0 GGUFs of benches/llamacpp.sh; edgelm converts the same files with --quant keep).
# One thread each, one CPU model per NEON level:
#   neon     -cpu cortex-a72   (Pi 4)            llama.cpp built -march=armv8-a
#   dotprod  -cpu cortex-a76   (Pi 5, Orin)      llama.cpp built -march=armv8.2-a+dotprod
#   i8mm     -cpu max          (Armv8.6+ cores)  llama.cpp built -march=armv8.6-a+dotprod+i8mm
# Per token = (count with -r 2 − count with -r 1) ÷ tokens: exactly one more repetition of the
# benchmark's test (`edgelm bench`, `llama-bench --no-warmup`), so loading, conversion of weights
# (llama.cpp's Q4_0 repacking) and warm-up cancel. Instructions, not cycles: see docs/BENCHMARKS.md.
#
# Usage: targets/aarch64/icount.sh          (Debian 12 host with setup-cross.sh's toolchain,
#                                            g++-aarch64-linux-gnu and cmake; 48 emulated runs of 1-5 min each:
#                                            1-2 h on 2 busy cores, plus ~40 min of builds the first time)
# Env:   TYPES="Q8_0 Q4_0"  LEVELS="neon:cortex-a72 dotprod:cortex-a76 i8mm:max"  PP=64  TG=16
#        TESTS="pp tg" (prompt and generation; either alone for a partial table)
#        PEER=0 counts edgelm only (llama.cpp's counts do not change while its build and the
#        weights stay the same: reuse an earlier sitting's; the table shows "—" for them)
#        OUT=benches/results/icount-DATE   raw counts (per symbol) and summary.md
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=benches/llamacpp.sh
. benches/llamacpp.sh
# shellcheck source=targets/aarch64/llamacpp-cross.sh
. targets/aarch64/llamacpp-cross.sh
TYPES=${TYPES:-Q8_0 Q4_0}
LEVELS=${LEVELS:-neon:cortex-a72 dotprod:cortex-a76 i8mm:max}
PP=${PP:-64}
TG=${TG:-16}
TESTS=${TESTS:-pp tg}
OUT=${OUT:-benches/results/icount-$(date +%Y%m%d-%H%M)}
work=$PEERS/arm
mkdir -p "$work" "$OUT/raw"
SECONDS=0

# The host converter with the default toolchain, then the aarch64 binary with Debian's (the one
# with the aarch64 std, as in targets/aarch64/test.sh).
cargo build --release -q -p edgelm-tools --bin edgelm-convert
convert=${CARGO_TARGET_DIR:-target}/release/edgelm-convert
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_AARCH64:-$root/target-aarch64}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
PATH=/usr/bin:$PATH cargo build --release -q --target aarch64-unknown-linux-gnu -p edgelm --bin edgelm
edgelm=$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/release/edgelm
unset QEMU_LD_PREFIX
plugin=$work/icount-plugin.so
gcc -O2 -shared -fPIC -o "$plugin" targets/aarch64/icount-plugin.c

# count NAME CPU PROGRAM ARGS...: runs PROGRAM under qemu, writes the plugin's counts to raw/NAME.
count() {
  local name=$1 cpu=$2
  shift 2
  [ -s "$OUT/raw/$name" ] && return 0
  qemu-aarch64 -cpu "$cpu" -plugin "$plugin,out=$OUT/raw/$name.tmp" "$@" >"$OUT/raw/$name.log" 2>&1 ||
    { tail -5 "$OUT/raw/$name.log" >&2; return 1; }
  mv "$OUT/raw/$name.tmp" "$OUT/raw/$name"
  llamacpp_log "$name: $(head -1 "$OUT/raw/$name")"
}

for ty in $TYPES; do
  gguf=$(smollm2_gguf "$ty")
  packed=$work/SmolLM2-135M-Instruct.$ty.edgelm
  if [ ! -s "$packed" ] || [ "$gguf" -nt "$packed" ] || [ "$convert" -nt "$packed" ]; then
    "$convert" "$gguf" -o "$packed" --quant keep >/dev/null
  fi
  for entry in $LEVELS; do
    level=${entry%%:*}
    cpu=${entry#*:}
    llama=
    [ "${PEER:-1}" = 0 ] || llama=$(llamacpp_arm_bench "$level")
    for test in $TESTS; do
      case $test in
        pp) args=(-p "$PP" -n 0) ;;
        tg) args=(-p 0 -n "$TG") ;;
        *) echo "unknown test $test (pp, tg)" >&2; exit 1 ;;
      esac
      for r in 1 2; do
        EDGELM_ISA=$level count "$ty.$level.edgelm.$test.r$r" "$cpu" "$edgelm" bench "$packed" -t 1 -r $r "${args[@]}"
        [ "${PEER:-1}" = 0 ] ||
          count "$ty.$level.llama.$test.r$r" "$cpu" "$llama" -m "$gguf" -t 1 -r $r --no-warmup "${args[@]}"
      done
    done
  done
done
python3 targets/aarch64/icount_table.py "$OUT/raw" --pp "$PP" --tg "$TG" --types "$TYPES" \
  --levels "$(for e in $LEVELS; do printf '%s ' "${e%%:*}"; done)" | tee "$OUT/summary.md"
echo "icount: done in ${SECONDS}s; raw counts in $OUT/raw"
