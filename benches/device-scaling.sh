#!/usr/bin/env bash
# Thread scaling on a many-core x86_64 machine with no network: llama.cpp and edgelm on
# bit-identical random weights at SmolLM2-135M and TinyLlama-1.1B shapes, 1 to 16 threads,
# plus edgelm's generation as a fraction of measured read bandwidth.
#
# Everything it runs is carried in $CARRY (built elsewhere): edgelm, edgelm-convert,
# llama-bench (+ libgomp.so.1), and a wheel of the `gguf` Python package; numpy must be
# installed there. Results (llama-<model>-r<round>.json, edgelm-<model>-r<round>.json,
# machine.txt) go to $OUT.
#
#   CARRY=.device OUT=/tmp/out benches/device-scaling.sh
# Env: THREADS=1,2,4,8,16  MODELS="smollm2-135m:q4_0 smollm2-135m:q8_0 tinyllama-1.1b:q4_0"  REPS=3
#      ROUNDS=2 (files are named <program>-<model>-r<round>.json)
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=${CARRY:-.device}
OUT=${OUT:?set OUT to the results folder}
THREADS=${THREADS:-1,2,4,8,16}
MODELS=${MODELS:-smollm2-135m:q4_0 smollm2-135m:q8_0 tinyllama-1.1b:q4_0}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
# Like for like: llama.cpp is built AVX2-only, so edgelm runs its AVX2 kernels too (not the
# VNNI ones it would pick on a CPU that has them); EDGELM_ISA=auto lifts that.
export EDGELM_ISA=${EDGELM_ISA:-avx2}
work=${TMPDIR:-/tmp}/edgelm-scaling
mkdir -p "$OUT" "$work"
export LD_LIBRARY_PATH=$PWD/$CARRY${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
python3 -m pip install -q --no-index --no-deps --target "$work/site" "$CARRY"/gguf-*.whl >/dev/null
export PYTHONPATH=$work/site
{ grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'; nproc; free -g | head -2; lscpu || true; } >"$OUT/machine.txt"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# Convert every model first, then run ROUNDS rounds; each round alternates which program goes
# first, so a drift in the machine's speed during the sitting lands on both.
for entry in $MODELS; do
  preset=${entry%%:*} ty=${entry#*:} name=${entry/:/-}
  log "random $preset $ty"
  python3 benches/random_gguf.py "$preset" "$ty" "$work/$name.gguf"
  "$CARRY/edgelm-convert" "$work/$name.gguf" -o "$work/$name.edgelm" --quant keep >/dev/null
done
llama() { "$CARRY/llama-bench" -m "$work/$1.gguf" -p 128 -n 64 -t "$THREADS" -r "$REPS" -o json >"$OUT/llama-$1-r$2.json"; }
edgelm() { "$CARRY/edgelm" bench "$work/$1.edgelm" -p 128 -n 64 -t "$THREADS" -r "$REPS" --bandwidth --json >"$OUT/edgelm-$1-r$2.json"; }
for round in $(seq 1 "$ROUNDS"); do
  for entry in $MODELS; do
    name=${entry/:/-}
    log "round $round $name -t $THREADS"
    if ((round % 2)); then llama "$name" "$round"; edgelm "$name" "$round"
    else edgelm "$name" "$round"; llama "$name" "$round"; fi
  done
done
for entry in $MODELS; do rm -f "$work/${entry/:/-}".{gguf,edgelm}; done
log "done"
