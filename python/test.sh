#!/usr/bin/env bash
# Builds the abi3 wheel with maturin, installs it into a virtual environment and runs the
# pytest tests against SmolLM2-135M-Instruct and all-MiniLM-L6-v2; then compares generation
# speed through Python with the command's.
#
# Environment: EDGELM_PYVENV (default ~/.cache/edgelm/pyvenv), EDGELM_MODELS.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
log() { printf '==> %s\n' "$*" >&2; }
venv=${EDGELM_PYVENV:-$HOME/.cache/edgelm/pyvenv}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
log "pip install maturin pytest numpy"
"$venv/bin/pip" install -q --disable-pip-version-check maturin pytest numpy
. tools/test-models.sh

log "maturin build --release (abi3 wheel)"
# The workspace's target folder: the edgelm crate built for the C API is reused.
(cd python && "$venv/bin/maturin" build --release -q --target-dir "$root/target" -o "$wheels")
"$venv/bin/pip" install -q --force-reinstall --no-deps "$wheels"/edgelm-*.whl

log "pytest"
# From the tests folder, so that the installed wheel is imported, not python/edgelm.
(cd python/tests && EDGELM_SMOLLM=$smollm EDGELM_MINILM=$minilm "$venv/bin/python" -m pytest -q -p no:cacheprovider .)

log "generation speed: Python against the command (SmolLM2, 128 greedy tokens, 2 threads)"
cargo build --release -q -p edgelm
"$venv/bin/python" - "$smollm" <<'PY'
import sys, edgelm
model = edgelm.Model(sys.argv[1], threads=2)
best = 0.0
for _ in range(3):
    s = model.generate("Once upon a time", max_tokens=128, temperature=0)
    for _ in s:
        pass
    best = max(best, s.stats["generated_tokens"] / s.stats["generation_seconds"])
print(f"python: {best:.1f} tok/s (best of 3)")
PY
for _ in 1 2 3; do
  ./target/release/edgelm run "$smollm" --raw -p "Once upon a time" -n 128 --temp 0 -t 2 2>&1 >/dev/null |
    sed -n 's/.*generation [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p'
done | sort -n | tail -1 | sed 's/^/command: /; s/$/ tok\/s (best of 3)/'
log "Python package tests passed"
