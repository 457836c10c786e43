#!/usr/bin/env bash
# Prepare a Debian 12 (bookworm) amd64 machine to cross-build edgelm for aarch64-unknown-linux-gnu
# and run its tests under qemu user-mode emulation, from Debian packages only:
#   rustc-web + cargo-web 1.96 (bookworm-security) with libstd-rust-web-dev:arm64 (the aarch64 std),
#   rust-web-clippy (lints the aarch64-only code), gcc-aarch64-linux-gnu + libc6-dev-arm64-cross
#   (linker and libc), qemu-user (qemu-aarch64).
# Run as root; non-interactive and idempotent (a second run only checks, ~10 s). Then use
# targets/aarch64/test.sh. Notes per board: targets/aarch64/README.md.
#
# Options (environment):
#   QEMU_BACKPORTS=1  qemu-user 10.0 from bookworm-backports (adds -cpu cortex-a55, cortex-a710,
#                     neoverse-n2, neoverse-v1); default is bookworm's qemu 7.2
#   SKIP_SMOKE=1      skip the final cross-compile-and-run check
set -euo pipefail

log() { printf '==> %s\n' "$*"; }
die() { printf 'setup-cross: error: %s\n' "$*" >&2; exit 1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
# grep -s: /etc/apt/sources.list may not exist
has_suite() { grep -rqsE "^[^#]*$1" /etc/apt/sources.list /etc/apt/sources.list.d/; }
add_suite() { # $1 suite, $2 URI
  log "adding $1 to the apt sources"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$2" "$1" /usr/share/keyrings/debian-archive-keyring.gpg >"/etc/apt/sources.list.d/$1.sources"
}

[ "$(id -u)" -eq 0 ] || die "run as root"
[ "$(dpkg --print-architecture)" = amd64 ] || die "the host must be amd64 (x86_64)"
# shellcheck disable=SC1091
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || log "warning: written for Debian 12 bookworm, this is ${PRETTY_NAME:-unknown}"
export DEBIAN_FRONTEND=noninteractive
SECONDS=0

pkgs=(rustc-web cargo-web libstd-rust-web-dev libstd-rust-web-dev:arm64 rust-web-clippy
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
# cargo needs CA certificates for crates.io; install them only if missing.
installed ca-certificates || pkgs+=(ca-certificates)

missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -eq 0 ] && [ "${QEMU_BACKPORTS:-0}" != 1 ]; then
  log "all packages already installed"
else
  # rustc-web 1.96 lives in bookworm-security.
  has_suite bookworm-security || add_suite bookworm-security http://deb.debian.org/debian-security
  if [ "${QEMU_BACKPORTS:-0}" = 1 ]; then
    has_suite bookworm-backports || add_suite bookworm-backports http://deb.debian.org/debian
  fi
  # arm64 as a foreign architecture, for libstd-rust-web-dev:arm64 (Multi-Arch: same).
  dpkg --print-foreign-architectures | grep -qx arm64 || { log "dpkg --add-architecture arm64"; dpkg --add-architecture arm64; }
  log "apt-get update"
  apt-get update -q
  cand=$(apt-cache policy rustc-web | awk '/Candidate:/ {print $2}')
  { [ -n "$cand" ] && [ "$cand" != "(none)" ]; } || die "rustc-web not found in the apt sources"
  dpkg --compare-versions "$cand" ge 1.96 || log "warning: rustc-web candidate is $cand (< 1.96)"
  # The amd64 and arm64 libstd-rust-web-dev must be the very same version; apt enforces it.
  log "apt-get install ${pkgs[*]}"
  apt-get install -y -q --no-install-recommends "${pkgs[@]}"
  if [ "${QEMU_BACKPORTS:-0}" = 1 ]; then
    apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-user
  fi
fi

# The aarch64 std must sit in the sysroot of /usr/bin/rustc (/usr).
libdir=$(/usr/bin/rustc --print target-libdir --target aarch64-unknown-linux-gnu)
ls "$libdir"/libstd-*.rlib >/dev/null 2>&1 || die "no aarch64 libstd in $libdir"
log "ready in ${SECONDS}s: $(/usr/bin/rustc -V); $(/usr/bin/cargo -V); $(qemu-aarch64 --version | head -1)"

# Smoke test: run-time feature detection, cross-compiled and run under the three CPU models
# that targets/aarch64/test.sh uses.
if [ "${SKIP_SMOKE:-0}" != 1 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cat >"$tmp/smoke.rs" <<'RS'
use std::arch::is_aarch64_feature_detected as has;
fn main() {
    println!("dotprod={} i8mm={}", has!("dotprod"), has!("i8mm"));
}
RS
  /usr/bin/rustc -O --edition 2021 --target aarch64-unknown-linux-gnu -C linker=aarch64-linux-gnu-gcc \
    -o "$tmp/smoke" "$tmp/smoke.rs"
  for cpu in cortex-a72 cortex-a76 max; do
    printf '    qemu-aarch64 -cpu %-10s %s\n' "$cpu" "$(qemu-aarch64 -cpu "$cpu" "$tmp/smoke")"
  done
fi
