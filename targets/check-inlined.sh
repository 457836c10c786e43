#!/usr/bin/env bash
# Fails if a binary's kernels call, out of line, what must be inlined into them. The SIMD
# kernels are generic code instantiated inside `#[target_feature]` functions; what is left out
# of line there loses speed without losing correctness:
#   - a `core::arch` intrinsic called as a function (generic code compiled for the baseline, where
#     `_mm256_fmadd_ps` and its kind cannot be inlined): x86 prompt speed halved once that way
#     (docs/BENCHMARKS.md, the reverted loop rewrite);
#   - `core::array`'s `map`/`try_map`/`from_fn` called from a kernel (a function of the x86_64,
#     aarch64 or simd modules): their closures carry the kernel's target features, so they cannot
#     be inlined into `core::array`'s functions, which have none (the aarch64 i8mm decode ran 7x
#     its instructions that way).
# A closure a kernel calls out of line is reported but does not fail the check: whether the
# inliner keeps one changes with the codegen-unit split and the number of callers (e.g. the
# AVX2 Q6_K and Q3_K four-token tile closures, which run only for rows too long for the
# groups of x86_64/avx2/groups.rs). Calls to the crate's own kernel helpers are not checked.
# `__xgetbv` is the one legitimate intrinsic call (CPU detection, outside any kernel). Only
# edgelm's own functions are checked: a dependency's out-of-line intrinsics (rustfft's SSE
# butterflies call `_mm_blend_ps` and `_mm_addsub_ps`, depending on how its generics are split
# into codegen units) are reported as notes.
#
# Usage: targets/check-inlined.sh [BINARY...]   (default target/release/edgelm)
#   x86_64 or aarch64 ELF files with symbols (not a stripped release build), e.g. the aarch64
#   kernel tests' binary target-aarch64/aarch64-unknown-linux-gnu/release/deps/matmul-*; aarch64
#   ones need aarch64-linux-gnu-objdump (binutils-aarch64-linux-gnu, with the cross toolchain).
#   The kernels are not generic and there is no LTO, so every binary has the same kernel code.
set -euo pipefail
[ $# -gt 0 ] || set -- target/release/edgelm
status=0
for bin in "$@"; do
  # ELF e_machine (offset 18): 0xb7 aarch64, 0x3e x86_64.
  case $(od -An -tx1 -j18 -N1 "$bin" | tr -d ' ') in
    b7) objdump=aarch64-linux-gnu-objdump call=bl ;;
    3e) objdump=objdump call=call ;;
    *) echo "$bin: not an x86_64 or aarch64 ELF file" >&2; exit 2 ;;
  esac
  calls=$("$objdump" -d --no-show-raw-insn "$bin" | awk -v call="$call" '
    /^[0-9a-f]+ <.*>:$/ { fn = $2; next }
    $2 == call || $2 == call "q" {
      target = $NF
      if (target ~ /core_arch/ && target !~ /xgetbv/) {
        if (fn ~ /edgelm/) print "error " target
        else print "note " fn " -> " target
      }
      else if (fn ~ /edgelm_kernels[0-9]+(x86_64|aarch64|simd)/) {
        if (target ~ /core5array.*(3map|7try_map|7from_fn)/) print "error " fn " -> " target
        else if (target ~ /closure/) print "note " fn " -> " target
      }
    }' | sed -E 's/17h[0-9a-f]{16}E//g; s/\+0x[0-9a-f]+//g; s/\.llvm\.[0-9]+//g' | sort | uniq -c | sort -rn)
  if grep -q ' note ' <<<"$calls"; then
    echo "$bin: note, closures called out of line by kernels, or intrinsics by dependencies:"
    grep ' note ' <<<"$calls" | head -10
  fi
  if grep -q ' error ' <<<"$calls"; then
    echo "$bin: called out of line in kernels (a kernel lost its target features, or maps an array through a closure):" >&2
    grep ' error ' <<<"$calls" | head -20 >&2
    status=1
  else
    echo "$bin: kernels call no intrinsic and no array map out of line"
  fi
done
exit $status
