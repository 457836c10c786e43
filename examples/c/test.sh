#!/usr/bin/env bash
# Builds the C API's static library, links the C examples with the system compiler (chat.c
# also as C++, which checks the header's C++ side), runs them against SmolLM2-135M-Instruct
# and all-MiniLM-L6-v2, installs under a temporary prefix and links chat.c through pkg-config
# and CMake's find_package, then cross-builds for aarch64 and runs chat.c under qemu.
#
# Needs the models of tools/fetch-models.sh (converted by tools/test-models.sh) and, for the
# aarch64 part, the toolchain of targets/aarch64/setup-cross.sh (SKIP_AARCH64=1 skips it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
log() { printf '==> %s\n' "$*" >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

log "building libedgelm.a (release)"
cargo build --release -q -p edgelm-capi
. tools/test-models.sh

cflags=(-O2 -Wall -Wextra -Werror -Iinclude)
libs=(-lpthread -ldl -lm)
log "cc: chat.c (C11 and C++17), errors.c"
cc -std=c11 "${cflags[@]}" examples/c/chat.c target/release/libedgelm.a "${libs[@]}" -o "$tmp/chat"
c++ -std=c++17 -x c++ "${cflags[@]}" examples/c/chat.c -x none target/release/libedgelm.a "${libs[@]}" -o "$tmp/chat-cxx"
cc -std=c11 "${cflags[@]}" examples/c/errors.c target/release/libedgelm.a "${libs[@]}" -o "$tmp/errors"

log "errors: null, foreign and bad arguments, small buffers, stopping callbacks"
"$tmp/errors" "$smollm" "$minilm"

question="What is the capital of France?"
for exe in chat chat-cxx; do
  log "$exe: a greedy answer"
  answer=$("$tmp/$exe" "$smollm" "$question" 24)
  printf '%s\n' "$answer"
  [ -n "${answer//[[:space:]]/}" ] || { echo "examples/c/test.sh: $exe printed no answer" >&2; exit 1; }
done

log "install under a prefix; link chat.c through pkg-config and through CMake's find_package"
bash capi/install.sh "$tmp/prefix" >&2
PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
# shellcheck disable=SC2046 # word splitting of pkg-config's flags is intended
# (the shared library here; CMake links the static one)
cc -std=c11 -Wall -Werror examples/c/chat.c $(PKG_CONFIG_PATH=$PKG_CONFIG_PATH pkg-config --cflags --libs edgelm) \
  -Wl,-rpath,"$tmp/prefix/lib" -o "$tmp/chat-pc"
"$tmp/chat-pc" "$smollm" "$question" 4 >/dev/null
if command -v cmake >/dev/null; then
  cmake -S examples/c -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$tmp/cmake" >/dev/null
  "$tmp/cmake/chat" "$smollm" "$question" 4 >/dev/null
else
  log "cmake not installed: find_package(edgelm) not checked"
fi

if [ "${SKIP_AARCH64:-0}" = 1 ]; then exit 0; fi
log "aarch64: libedgelm.a with the cross toolchain, chat.c with aarch64-linux-gnu-gcc, run under qemu"
# As in targets/aarch64/test.sh: Debian's cargo with the aarch64 std, its own target folder.
PATH=/usr/bin:$PATH CARGO_TARGET_DIR=${CARGO_TARGET_DIR_AARCH64:-$root/target-aarch64} \
  cargo build --release -q -p edgelm-capi --target aarch64-unknown-linux-gnu
lib=${CARGO_TARGET_DIR_AARCH64:-$root/target-aarch64}/aarch64-unknown-linux-gnu/release/libedgelm.a
aarch64-linux-gnu-gcc -std=c11 "${cflags[@]}" examples/c/chat.c "$lib" "${libs[@]}" -o "$tmp/chat-aarch64"
unset QEMU_LD_PREFIX
answer=$(qemu-aarch64 -cpu cortex-a76 "$tmp/chat-aarch64" "$smollm" "$question" 4)
printf '%s\n' "$answer"
[ -n "${answer//[[:space:]]/}" ] || { echo "examples/c/test.sh: the aarch64 chat printed no answer" >&2; exit 1; }
log "C API tests passed"
