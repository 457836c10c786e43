#!/usr/bin/env bash
# Fails if a binary calls a `core::arch` intrinsic as a function. The x86 kernels are generic
# code instantiated inside `#[target_feature]` functions; anything left out of line there (a
# closure the inliner skipped, a helper without `#[inline(always)]`) is compiled for the x86_64
# baseline, where `_mm256_fmadd_ps` and its kind cannot be inlined and become calls: results
# stay right and speed halves (docs/BENCHMARKS.md, the reverted loop rewrite). `__xgetbv` is
# the one legitimate call (CPU detection, outside any kernel).
#
# Usage: targets/x86_64/check-inlined.sh [BINARY...]   (default target/release/edgelm; needs
#        objdump and the binary's symbols, i.e. not a stripped release build)
set -euo pipefail
[ $# -gt 0 ] || set -- target/release/edgelm
status=0
for bin in "$@"; do
  calls=$(objdump -d --no-show-raw-insn "$bin" | grep -E '\bcall[q]? ' | grep -E 'core_arch' | grep -v 'xgetbv' |
    sed -E 's/.*<(.*)>.*/\1/; s/\+0x[0-9a-f]+$//' | sort | uniq -c | sort -rn) || true
  if [ -n "$calls" ]; then
    echo "$bin: intrinsics called out of line (a kernel lost its target features):" >&2
    echo "$calls" | head -20 >&2
    status=1
  else
    echo "$bin: no intrinsic is called out of line"
  fi
done
exit $status
