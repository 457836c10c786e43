#!/usr/bin/env bash
# Release artifacts: one static, stripped `edgelm` and `edgelm-convert` per architecture, built
# for the architecture's baseline (x86-64 v1, Armv8.0-A) — the kernels pick AVX2/VNNI or
# SDOT/SMMLA at run time, so one file serves a Pi 4 and a Graviton — packed as
#   dist/edgelm-VERSION-x86_64-linux.tar.gz    dist/edgelm-VERSION-aarch64-linux.tar.gz
# with dist/SHA256SUMS and dist/SIZES, and the sizes and checksums written into docs/RELEASE.md.
# Then targets/smoke-release.sh runs the packed binaries themselves (x86 with an empty
# environment and in a chroot, aarch64 under qemu as a Cortex-A72, a Cortex-A76 and `max`).
#
# Usage: targets/release.sh [ARCH...]        (default: x86_64 aarch64)
# Needs: Debian's cargo/rustc 1.96 with the aarch64 std, gcc-aarch64-linux-gnu and
# libc6-dev-arm64-cross (libc.a), qemu-user: targets/aarch64/setup-cross.sh installs them all.
# Environment:
#   SKIP_SMOKE=1      only build and pack
#   DIST=DIR          output folder (default: <repo>/dist, git-ignored)
# Idempotent: cargo rebuilds nothing that is up to date (target/dist-ARCH, kept apart from the
# test builds), and dist/edgelm-VERSION-* is replaced.
set -euo pipefail

log() { printf '==> [release %4ss] %s\n' "$SECONDS" "$*"; }
die() { printf 'release: error: %s\n' "$*" >&2; exit 1; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
SECONDS=0

# What each tarball holds besides the notes: the executables (cargo --bin targets, at the
# tarball's top, each checked to be static and stripped) ...
bins=(edgelm edgelm-convert)
bin_pkgs=(-p edgelm -p edgelm-tools)
# ... and "SOURCE:DEST" files, SOURCE in the cargo output folder of lib_build (cargo arguments,
# built without crt-static, which drops cdylib crate types, in target/dist-ARCH-lib) or else in
# the repository: the C library and its header (docs/C_API.md).
lib_build=(-p edgelm-capi --lib)
extra=(libedgelm.a:lib/ libedgelm.so:lib/ include/edgelm.h:include/)

archs=("$@")
[ "${#archs[@]}" -gt 0 ] || archs=(x86_64 aarch64)
for arch in "${archs[@]}"; do
  case $arch in x86_64 | aarch64) ;; *) die "unknown architecture '$arch' (x86_64 or aarch64)" ;; esac
done

version=$(awk '/^\[workspace\.package\]/ { s = 1; next } /^\[/ { s = 0 }
  s && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' Cargo.toml)
[ -n "$version" ] || die "no version in [workspace.package] of Cargo.toml"
DIST=${DIST:-$root/dist}

# One toolchain for both architectures: Debian's rustc-web (it has the aarch64 std; rustup's
# stable, if first on PATH, has not). An x86_64-only run may use whatever cargo is on PATH.
if [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ]; then
  export PATH=/usr/bin:$PATH
elif [[ " ${archs[*]} " == *" aarch64 "* ]]; then
  die "/usr/bin/cargo missing: run targets/aarch64/setup-cross.sh (as root) first"
fi
for tool in cargo rustc readelf sha256sum tar gzip; do
  command -v "$tool" >/dev/null || die "$tool missing"
done

# The baseline: nothing may raise the target CPU (no -C target-cpu, no +avx2 or +lse). RUSTFLAGS
# set here replaces every rustflags of .cargo/config*, but one in the repository's would apply to
# everyone's other builds: refuse it. targets/smoke-release.sh proves it on baseline CPU models.
# (A user's ~/.cargo/config.toml cannot: RUSTFLAGS takes precedence over every config file.)
if grep -rsnE '^[^#]*(target-cpu|target-feature|rustflags)' .cargo/; then
  die "the repository's .cargo/ config sets rustflags: every build (and users') must stay at the baseline CPU"
fi
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET
# crt-static: glibc linked in (x86_64: a static PIE; aarch64: a static executable).
# --remap-path-prefix: no build-machine paths in panic messages, and the same bytes from any checkout.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$root=edgelm --remap-path-prefix=$cargo_home=cargo"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# What the artifacts are made of. Tarball mtimes: the last commit that changed it (not docs), so
# the tarballs' checksums change only with their contents.
sources=(Cargo.toml Cargo.lock .cargo src kernels tools targets/release.sh)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct -- "${sources[@]}" 2>/dev/null || echo 0)}
unset QEMU_LD_PREFIX # never: two glibc builds (targets/aarch64/README.md)

# check_static FILE MACHINE: an ELF executable of that machine, without an interpreter or
# shared-library dependencies, and stripped.
check_static() {
  local f=$1 machine=$2 hdr
  hdr=$(readelf -h "$f") || die "$f: not an ELF file"
  grep -qE "Machine: +$machine" <<<"$hdr" || die "$f: not a $machine executable: $(grep Machine <<<"$hdr")"
  if readelf -lW "$f" | grep -q 'INTERP'; then die "$f: has a program interpreter (dynamically linked)"; fi
  if readelf -dW "$f" | grep -q '(NEEDED)'; then die "$f: needs shared libraries: $(readelf -dW "$f" | grep NEEDED)"; fi
  if readelf -SW "$f" | grep -qE '\.symtab|\.debug_'; then die "$f: not stripped"; fi
  # ldd only understands the host's binaries: "not a dynamic executable" (static) or
  # "statically linked" (static PIE); anything else lists libraries.
  if [ "$machine" = "Advanced Micro Devices X86-64" ] && [ "$(uname -m)" = x86_64 ] && command -v ldd >/dev/null; then
    local l
    l=$(ldd "$f" 2>&1 || true)
    grep -qE 'not a dynamic executable|statically linked' <<<"$l" || die "$f: ldd lists libraries: $l"
  fi
}

declare -A triple=([x86_64]=x86_64-unknown-linux-gnu [aarch64]=aarch64-unknown-linux-gnu)
declare -A machine=([x86_64]="Advanced Micro Devices X86-64" [aarch64]=AArch64)
mkdir -p "$DIST"
sizes=()
for arch in "${archs[@]}"; do
  t=${triple[$arch]}
  tdir=$root/target/dist-$arch
  out=$tdir/$t/dist
  bin_args=()
  for b in "${bins[@]}"; do bin_args+=(--bin "$b"); done
  log "$arch: cargo build --profile dist --target $t ($(rustc -V))"
  CARGO_TARGET_DIR=$tdir cargo build --locked --profile dist --target "$t" "${bin_pkgs[@]}" "${bin_args[@]}"
  if [ "${#lib_build[@]}" -gt 0 ]; then
    log "$arch: cargo build --profile dist --target $t ${lib_build[*]} (without crt-static)"
    RUSTFLAGS=${RUSTFLAGS/-C target-feature=+crt-static /} CARGO_TARGET_DIR=$tdir-lib \
      cargo build --locked --profile dist --target "$t" "${lib_build[@]}"
  fi

  name=edgelm-$version-$arch-linux
  stage=$tdir/stage
  rm -rf "$stage" "$DIST/$name.tar.gz"
  mkdir -p "$stage"
  for b in "${bins[@]}"; do
    check_static "$out/$b" "${machine[$arch]}"
    cp "$out/$b" "$stage/$b"
    # Static glibc's NSS (getaddrinfo of names, getpwnam) needs that glibc's libnss_*.so at run
    # time; numeric addresses (the coming loopback server) do not. Say whether it is linked in.
    if grep -qaE 'libnss_|nsswitch\.conf' "$out/$b"; then
      log "$arch/$b: static, stripped; NSS code linked in: resolve numeric addresses only (docs/RELEASE.md)"
    else
      log "$arch/$b: static, stripped; no NSS code"
    fi
  done
  for e in "${extra[@]}"; do
    src=${e%%:*} dest=${e#*:}
    if [ -e "$tdir-lib/$t/dist/$src" ]; then src=$tdir-lib/$t/dist/$src; elif [ -e "$root/$src" ]; then src=$root/$src; else die "$src: not built and not in the repository"; fi
    mkdir -p "$stage/$dest"
    cp "$src" "$stage/$dest"
  done
  glibc=$(dpkg-query -W -f='${Version}' "$([ "$arch" = x86_64 ] && echo libc6-dev || echo libc6-dev-arm64-cross)" 2>/dev/null || echo unknown)
  cat >"$stage/README.txt" <<EOF
edgelm $version for $arch Linux ($t), static: no shared libraries, no toolchain needed.
Built for the architecture's baseline (x86-64 v1 / Armv8.0-A); the kernels pick their path at run
time (x86_64: scalar, avx2, avxvnni, avx512vnni; aarch64: neon on a Pi 4, dotprod on a Pi 5 or a
Jetson Orin, i8mm on Armv8.6+ cores). \`edgelm inspect MODEL\` prints the path this CPU gets;
EDGELM_ISA=<path> forces one.

  edgelm           run, chat, inspect, bench, embed, search (edgelm --help)
  edgelm-convert   Hugging Face folders and GGUF files to packed .edgelm files (usually run on a PC)

Install on a board:  sudo tar -xzf $name.tar.gz -C /usr/local/bin edgelm
Then:                edgelm run model.edgelm -p "Hello" -n 64
SHA256SUMS lists the checksums of the files here. Details: docs/RELEASE.md in the repository.

Licence: edgelm is Apache-2.0 ($(awk -F'"' '$1 ~ /^repository/ { print $2; exit }' Cargo.toml)).
The executables contain the GNU C Library (glibc $glibc, Debian 12), linked statically, under the
LGPL-2.1-or-later (source: Debian's glibc package), and Rust crates under MIT and/or Apache-2.0
terms (listed in Cargo.lock of the source at this version).
EOF
  (cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
  # The files at the tarball's top (no folder): `tar -xzf T -C /usr/local/bin edgelm` installs.
  find "$stage" -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort |
    tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
      -C "$stage" -cf - -T - | gzip -9n >"$DIST/$name.tar.gz"
  for f in "${bins[@]}" "$name.tar.gz"; do
    path=$stage/$f
    [ "$f" != "$name.tar.gz" ] || path=$DIST/$f
    bytes=$(stat -c %s "$path")
    sizes+=("$(printf '%-8s %-32s %10d bytes %8s' "$arch" "$f" "$bytes" "$(numfmt --to=iec-i --suffix=B --format=%.1f "$bytes")")")
  done
  sed "s|  |  $arch/|" "$stage/SHA256SUMS" >"$tdir/bin-sums"
done

# dist/SHA256SUMS: the tarballs (of every architecture built so far for this version), for
# `sha256sum -c`; the executables' sums are in each tarball's SHA256SUMS (and below).
(cd "$DIST" && find . -maxdepth 1 -type f -name "edgelm-$version-*.tar.gz" -printf '%P\n' |
  LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
printf '%s\n' "${sizes[@]}" >"$DIST/SIZES"
bin_sums=$(for arch in "${archs[@]}"; do cat "$root/target/dist-$arch/bin-sums"; done)
log "sizes (stripped, static)"
cat "$DIST/SIZES"
log "SHA-256 of the tarballs ($DIST/SHA256SUMS) and of the files in them"
cat "$DIST/SHA256SUMS"
printf '%s\n' "$bin_sums"

# docs/RELEASE.md: the part between the markers is this run's (the build of the commit named there).
doc=docs/RELEASE.md
if [ -f "$doc" ] && grep -q '<!-- release.sh: begin -->' "$doc" && [ "${#archs[@]}" -eq 2 ]; then
  commit=$(git log -1 --format=%h -- "${sources[@]}" 2>/dev/null || echo unknown)
  dirty=$(git status --porcelain --untracked-files=no -- "${sources[@]}" 2>/dev/null |
    grep -q . && echo " with uncommitted changes to the sources" || true)
  gen=$(mktemp)
  {
    echo '<!-- release.sh: begin -->'
    echo "Built by \`targets/release.sh\` from the sources of commit $commit$dirty with $(rustc -V | cut -d' ' -f1-2) (Debian), glibc static:"
    echo
    echo '| architecture | file | bytes | size |'
    echo '|---|---|---:|---:|'
    awk '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $5 }' "$DIST/SIZES"
    echo
    echo 'SHA-256 (`dist/SHA256SUMS`; the files inside each tarball: its `SHA256SUMS`):'
    echo
    sed 's/^/    /' "$DIST/SHA256SUMS"
    printf '%s\n' "$bin_sums" | sed 's/^/    /'
    echo '<!-- release.sh: end -->'
  } >"$gen"
  awk -v gen="$gen" '
    /<!-- release.sh: begin -->/ { while ((getline l < gen) > 0) print l; skip = 1; next }
    /<!-- release.sh: end -->/ { skip = 0; next }
    !skip' "$doc" >"$doc.tmp"
  mv "$doc.tmp" "$doc"
  rm -f "$gen"
  log "wrote the sizes and checksums into $doc"
fi
log "built ${archs[*]} in ${SECONDS}s: $(for arch in "${archs[@]}"; do printf '%s ' "$DIST/edgelm-$version-$arch-linux.tar.gz"; done)"

if [ "${SKIP_SMOKE:-0}" != 1 ]; then
  bash "$root/targets/smoke-release.sh" "${archs[@]}"
fi
