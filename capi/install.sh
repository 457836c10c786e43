#!/usr/bin/env bash
# Installs the C API under PREFIX (default /usr/local): lib/libedgelm.{a,so},
# include/edgelm.h, lib/pkgconfig/edgelm.pc and lib/cmake/edgelm/ for find_package.
#
# Usage: capi/install.sh [PREFIX]     (TARGET_DIR: the cargo target folder, default target/release)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=$(realpath -m "${1:-/usr/local}")
build=${TARGET_DIR:-$root/target/release}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
[ -f "$build/libedgelm.a" ] || (cd "$root" && cargo build --release -q -p edgelm-capi)
install -Dm644 "$build/libedgelm.a" "$prefix/lib/libedgelm.a"
install -Dm755 "$build/libedgelm.so" "$prefix/lib/libedgelm.so"
install -Dm644 "$root/include/edgelm.h" "$prefix/include/edgelm.h"
mkdir -p "$prefix/lib/pkgconfig" "$prefix/lib/cmake/edgelm"
sed "s|@PREFIX@|$prefix|; s|@VERSION@|$version|" "$root/capi/dist/edgelm.pc.in" >"$prefix/lib/pkgconfig/edgelm.pc"
install -m644 "$root/capi/dist/edgelmConfig.cmake" "$prefix/lib/cmake/edgelm/"
sed "s|@VERSION@|$version|" "$root/capi/dist/edgelmConfigVersion.cmake" >"$prefix/lib/cmake/edgelm/edgelmConfigVersion.cmake"
echo "edgelm $version installed under $prefix"
