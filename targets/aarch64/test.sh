#!/usr/bin/env bash
# Cross-build edgelm's tests for aarch64 and run them under qemu user-mode emulation, once per
# CPU model, asserting which kernel path run-time dispatch picks on each:
#   cortex-a72 (Raspberry Pi 4)            -> neon
#   cortex-a76 (Pi 5, RK3588, Jetson Orin) -> dotprod
#   max        (every feature qemu has)    -> i8mm
# Needs the toolchain of setup-cross.sh (run that first, as root). Non-interactive.
#
# Usage: targets/aarch64/test.sh [PACKAGE...]     (default: edgelm-kernels; "all" = --workspace)
# Environment:
#   CPUS="cortex-a72:neon cortex-a76:dotprod max:i8mm"   models and expected paths
#   CLIPPY=1              also lint the packages for aarch64 (the aarch64-only code) with -D warnings
#   PROFILE=release       cargo profile for the tests (release: the kernel tests compute a lot)
#   CARGO_TARGET_DIR      default: <repo>/target-aarch64 (kept apart from host builds, which
#                         may use another rustc)
set -euo pipefail

die() { printf 'aarch64 test: error: %s\n' "$*" >&2; exit 1; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

# Debian's cargo/rustc 1.96 (with the aarch64 std) must win over rustup's on PATH.
export PATH=/usr/bin:$PATH
for tool in /usr/bin/cargo /usr/bin/rustc qemu-aarch64 aarch64-linux-gnu-gcc; do
  command -v "$tool" >/dev/null || die "$tool missing: run targets/aarch64/setup-cross.sh (as root) first"
done
target=aarch64-unknown-linux-gnu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-aarch64}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# Never QEMU_LD_PREFIX / -L /usr/aarch64-linux-gnu: two glibc builds, threaded programs hang.
unset QEMU_LD_PREFIX

if [ "$#" -eq 0 ]; then set -- edgelm-kernels; fi
pkgs=()
for p in "$@"; do
  if [ "$p" = all ]; then pkgs=(--workspace); break; fi
  pkgs+=(-p "$p")
done
profile=(--profile "${PROFILE:-release}")

SECONDS=0
if [ "${CLIPPY:-0}" = 1 ]; then
  echo "==> cargo clippy --target $target ${pkgs[*]}"
  cargo clippy --target "$target" "${pkgs[@]}" --all-targets -- -D warnings
fi
echo "==> building tests: ${pkgs[*]} (${PROFILE:-release}, $(rustc -V))"
cargo test --target "$target" "${pkgs[@]}" "${profile[@]}" --no-run

for entry in ${CPUS:-cortex-a72:neon cortex-a76:dotprod max:i8mm}; do
  cpu=${entry%%:*}
  expect=${entry#*:}
  echo "==> qemu-aarch64 -cpu $cpu (expecting the $expect path)"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu $cpu" EDGELM_EXPECT_ISA=$expect \
    cargo test --target "$target" "${pkgs[@]}" "${profile[@]}" -q ||
    die "tests failed under -cpu $cpu"
done
echo "==> aarch64 tests passed under ${CPUS:-cortex-a72 cortex-a76 max} in ${SECONDS}s"
