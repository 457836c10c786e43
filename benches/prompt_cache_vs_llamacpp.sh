#!/usr/bin/env bash
# Time to first token (wall time of a 1-token run) and peak RSS (KiB) with and without a prompt cache,
# edgelm `run --prompt-cache FILE --prompt-cache-ro` against llama.cpp `llama-completion --prompt-cache FILE
# --prompt-cache-ro`, same SmolLM2 Q8_0 weights (edgelm: the GGUF converted with --quant keep), 2 threads,
# -c 4096, prefixes of 200/1000/3000 tokens; the cache is written by a first run with another question.
# Needs: benches/llamacpp.sh (llamacpp_build llama-completion; smollm2_gguf Q8_0). Prints "N tool mode seconds KiB".
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/llamacpp.sh
llamacpp_build llama-completion
G=$(smollm2_gguf Q8_0); L=$LLAMA_BIN/llama-completion
E=$(realpath target/release/edgelm); M=$(mktemp -d)/smollm2-q8_0.edgelm
target/release/edgelm-convert "$G" -o "$M" --quant keep >/dev/null
W=$(mktemp -d); cd "$W"
python3 -c "print(\"The lighthouse keeper wrote in his log every evening: the wind, the colour of the sea, the ships that passed and the birds that rested on the rail. Years later his daughter read the logs and found a quiet history of the coast. \" * 200, end=\"\")" > base.txt
t() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
for n in 200 1000 3000; do
  chars=$(python3 -c "print(int($n*4.69))"); P="$(head -c $chars base.txt)"
  Q1="$P Question one: who kept the log?"; Q2="$P Question two: what did his daughter find?"
  rm -f e$n.cache l$n.cache
  $E run $M --raw -p "$Q1" -n 1 --temp 0 -t 2 -c 4096 --prompt-cache e$n.cache >/dev/null 2>&1
  $L -m $G -p "$Q1" -n 1 --temp 0 -t 2 -c 4096 -no-cnv --prompt-cache l$n.cache >/dev/null 2>&1 </dev/null
  for rep in 1 2; do
    echo "$n edgelm uncached $(t $E run $M --raw -p "$Q2" -n 1 --temp 0 -t 2 -c 4096)"
    echo "$n edgelm cached   $(t $E run $M --raw -p "$Q2" -n 1 --temp 0 -t 2 -c 4096 --prompt-cache e$n.cache --prompt-cache-ro)"
    echo "$n llama  uncached $(t $L -m $G -p "$Q2" -n 1 --temp 0 -t 2 -c 4096 -no-cnv </dev/null)"
    echo "$n llama  cached   $(t $L -m $G -p "$Q2" -n 1 --temp 0 -t 2 -c 4096 -no-cnv --prompt-cache l$n.cache --prompt-cache-ro </dev/null)"
  done
done
