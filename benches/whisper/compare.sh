#!/usr/bin/env bash
# Whisper base, whole transcription and encoder alone, edgelm against faster-whisper (CTranslate2 int8) and
# whisper.cpp (v1.8.5, AVX2-only build, the same weights converted to ggml f16), interleaved in one sitting:
# every repetition runs each system in turn for each clip, thread count and beam size.
#
#   benches/whisper/compare.sh [EDGELM_BIN EDGELM_MODEL]
#
# Without EDGELM_BIN the peers alone are measured. Environment: REPS (3), THREADS ("1 2"), BEAMS ("1"; "1 5" for
# beam 5 as well), CLIPS (jfk.wav clip60.wav, under $EDGELM_MODELS/audio: tools/fetch-models.sh,
# benches/whisper/make_speech.sh), WCPP_TYPE (whisper.cpp weights: f16, or q8_0 ... made with whisper-quantize),
# AUTO (1: also edgelm with --audio-ctx auto, as the system "edgelm-auto"; 0: not), WCPP (1: whisper.cpp too;
# 0: faster-whisper alone, when building whisper.cpp would take too long).
#
# Per run: wall time and peak RSS of the whole process (/usr/bin/time -v: load + mel + encoder + decoding, and
# for faster-whisper the Python interpreter and imports too), plus the encoder's time where the system reports
# it: whisper.cpp's "encode time" (its total over the windows), faster-whisper's one extra encoder pass over the
# first window timed in the process after the transcription (benches/whisper/fw_run.py; its time, mel included,
# is subtracted from the wall time, and the in-process load + transcription time is reported too), edgelm's
# first stderr line matching "encode...: N ms|s" (its total over the windows). Language fixed to English.
#
# Output: the rows in benches/results/whisper-compare-TIME.csv, then per configuration the medians (wall,
# in-process, encoder) and the largest peak RSS with edgelm's speed-up over each peer (peer wall / edgelm
# wall) and its RSS ratio, as JSON (…-TIME.json: {"machine", "rows": [...], "summary": [...]}) and as a
# markdown table (…-TIME.md, also printed). Defaults: 3 reps × 2 clips × 2 thread counts × 4 systems,
# about 10 minutes on a quiet 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/whisper/whispercpp.sh
EDGELM=${1:-}
EDGELM_MODEL=${2:-}
REPS=${REPS:-3}
THREADS=${THREADS:-"1 2"}
BEAMS=${BEAMS:-1}
AUTO=${AUTO:-1}
CLIPS=${CLIPS:-"jfk.wav clip60.wav"}
WCPP_TYPE=${WCPP_TYPE:-f16}
WCPP=${WCPP:-1}
[ -z "$EDGELM" ] || [ -x "$EDGELM" ] || { echo "$EDGELM is not an executable" >&2; exit 1; }
[ -z "$EDGELM" ] || [ -f "$EDGELM_MODEL" ] || { echo "give the edgelm model file after the binary" >&2; exit 1; }
for clip in $CLIPS; do
  [ -f "$MODELS/audio/$clip" ] || { echo "$MODELS/audio/$clip is missing (tools/fetch-models.sh, benches/whisper/make_speech.sh)" >&2; exit 1; }
done
[ -x "$WHISPER_VENV/bin/python" ] || { echo "faster-whisper venv missing: python -m venv $WHISPER_VENV && $WHISPER_VENV/bin/pip install faster-whisper" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "/usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
PEER_NOTE="whisper.cpp not run"
if [ "$WCPP" = 1 ]; then
  whispercpp_build whisper-cli
  GGML=$(whispercpp_model "$WCPP_TYPE")
  PEER_NOTE="whisper.cpp $WCPP_TYPE"
fi

mkdir -p benches/results
CSV=benches/results/whisper-compare-$(date +%Y%m%d-%H%M%S).csv
echo "system,clip,threads,beam,rep,wall_s,rss_mb,encode_s,inproc_s,text" > "$CSV"
MACHINE="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load before $(cut -d' ' -f1-3 /proc/loadavg)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run SYSTEM CLIP THREADS BEAM: one timed transcription; appends a CSV row.
run() {
  local system=$1 clip=$2 t=$3 beam=$4 audio=$MODELS/audio/$2 encode="" inproc="" extra=0 text
  local flags=()
  flags+=(--beam "$beam")
  [ "$system" != edgelm-auto ] || flags+=(--audio-ctx auto)
  case $system in
    edgelm | edgelm-auto)
      /usr/bin/time -v -o "$tmp/time" "$EDGELM" transcribe "$EDGELM_MODEL" "$audio" -t "$t" "${flags[@]}" \
        --language en >"$tmp/out" 2>"$tmp/err"
      encode=$(grep -i -m1 -oE 'encode[a-z]*[^0-9]*[0-9.]+ ?m?s' "$tmp/err" | sed -E 's/.*[^0-9.]([0-9.]+) ?(m?s)$/\1 \2/' |
        awk '{ printf "%.3f", ($2 == "ms" ? $1 / 1000 : $1) }' || true)
      text=$(tr '\n' ' ' < "$tmp/out") ;;
    faster-whisper)
      /usr/bin/time -v -o "$tmp/time" "$WHISPER_VENV/bin/python" benches/whisper/fw_run.py "$WHISPER_CT2" "$audio" \
        "$t" "$beam" int8 >"$tmp/out" 2>"$tmp/err"
      read -r encode inproc extra text < <("$WHISPER_VENV/bin/python" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%.3f %.3f %.3f %s" % (r["encode_s"], r["load_s"] + r["transcribe_s"], r["extra_s"], r["text"]))' "$tmp/out") ;;
    whisper.cpp)
      /usr/bin/time -v -o "$tmp/time" "$WHISPER_BIN/whisper-cli" -m "$GGML" -f "$audio" -t "$t" -bs "$beam" \
        -l en -nt >"$tmp/out" 2>"$tmp/err"
      encode=$(awk '/encode time/ { for (i = 1; i < NF; i++) if ($i == "=") { printf "%.3f", $(i + 1) / 1000; exit } }' "$tmp/err")
      text=$(tr '\n' ' ' < "$tmp/out") ;;
  esac
  local wall rss
  wall=$(awk -F': ' -v extra="$extra" '/Elapsed \(wall clock\)/ {
    n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s - extra }' "$tmp/time")
  rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tmp/time")
  text=$(echo "$text" | tr -s ' ' | sed 's/^ //; s/ $//; s/"/""/g')
  echo "$system,$clip,$t,$beam,$rep,$wall,$rss,$encode,$inproc,\"$text\"" >> "$CSV"
  printf '%-15s %-10s t=%s beam=%s rep=%s  wall %6ss  rss %7s MB  encode %6ss\n' \
    "$system" "$clip" "$t" "$beam" "$rep" "$wall" "$rss" "${encode:--}" >&2
}

systems=(faster-whisper)
[ "$WCPP" != 1 ] || systems+=(whisper.cpp)
[ -z "$EDGELM" ] || { [ "$AUTO" = 1 ] && systems=(edgelm edgelm-auto "${systems[@]}") || systems=(edgelm "${systems[@]}"); }
echo "machine: $MACHINE; $PEER_NOTE; $CSV" >&2
for rep in $(seq 1 "$REPS"); do
  for clip in $CLIPS; do
    for t in $THREADS; do
      for beam in $BEAMS; do
        for system in "${systems[@]}"; do run "$system" "$clip" "$t" "$beam"; done
      done
    done
  done
done
MACHINE="$MACHINE, after $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $MACHINE" >&2
python3 benches/whisper/compare_summary.py "$CSV" "$MACHINE; $PEER_NOTE"
