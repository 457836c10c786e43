#!/usr/bin/env bash
# Whisper base, whole transcription and encoder alone, edgelm against faster-whisper (CTranslate2 int8) and
# whisper.cpp (v1.8.5, AVX2-only build, the same weights converted to ggml f16), interleaved in one sitting:
# every repetition runs each system in turn for each clip, thread count and beam size.
#
#   benches/whisper/compare.sh [EDGELM_BIN EDGELM_MODEL]
#
# Without EDGELM_BIN the peers alone are measured. Environment: REPS (3), THREADS ("1 2"), BEAMS ("1 5"),
# CLIPS (jfk.wav clip60.wav, under $EDGELM_MODELS/audio: tools/fetch-models.sh, benches/whisper/make_speech.sh),
# WCPP_TYPE (whisper.cpp weights: f16, or q8_0 ... made with whisper-quantize).
#
# Per run: wall time and peak RSS of the whole process (/usr/bin/time -v: load + mel + encoder + decoding, and
# for faster-whisper the Python interpreter and imports too), plus the encoder's time where the system reports
# it: whisper.cpp's "encode time" (its total over the windows), faster-whisper's one extra encoder pass over the
# first window timed in the process (benches/whisper/fw_run.py, which also reports its in-process transcription
# time), edgelm's first stderr line matching "encode...: N ms|s". Language fixed to English for all.
# Rows go to benches/results/whisper-compare-TIME.csv; medians per configuration are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/whisper/whispercpp.sh
EDGELM=${1:-}
EDGELM_MODEL=${2:-}
REPS=${REPS:-3}
THREADS=${THREADS:-"1 2"}
BEAMS=${BEAMS:-"1 5"}
CLIPS=${CLIPS:-"jfk.wav clip60.wav"}
WCPP_TYPE=${WCPP_TYPE:-f16}
[ -z "$EDGELM" ] || [ -x "$EDGELM" ] || { echo "$EDGELM is not an executable" >&2; exit 1; }
[ -z "$EDGELM" ] || [ -f "$EDGELM_MODEL" ] || { echo "give the edgelm model file after the binary" >&2; exit 1; }
for clip in $CLIPS; do
  [ -f "$MODELS/audio/$clip" ] || { echo "$MODELS/audio/$clip is missing (tools/fetch-models.sh, benches/whisper/make_speech.sh)" >&2; exit 1; }
done
[ -x "$WHISPER_VENV/bin/python" ] || { echo "faster-whisper venv missing: python -m venv $WHISPER_VENV && $WHISPER_VENV/bin/pip install faster-whisper" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "/usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
whispercpp_build whisper-cli
GGML=$(whispercpp_model "$WCPP_TYPE")

mkdir -p benches/results
CSV=benches/results/whisper-compare-$(date +%Y%m%d-%H%M%S).csv
echo "system,clip,threads,beam,rep,wall_s,rss_mb,encode_s,inproc_s,text" > "$CSV"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run SYSTEM CLIP THREADS BEAM: one timed transcription; appends a CSV row.
run() {
  local system=$1 clip=$2 t=$3 beam=$4 audio=$MODELS/audio/$2 encode="" inproc="" text
  case $system in
    edgelm)
      /usr/bin/time -v -o "$tmp/time" "$EDGELM" transcribe "$EDGELM_MODEL" "$audio" -t "$t" --beam "$beam" \
        --language en >"$tmp/out" 2>"$tmp/err"
      encode=$(grep -i -m1 -oE 'encode[a-z]*[^0-9]*[0-9.]+ ?m?s' "$tmp/err" | sed -E 's/.*[^0-9.]([0-9.]+) ?(m?s)$/\1 \2/' |
        awk '{ printf "%.3f", ($2 == "ms" ? $1 / 1000 : $1) }' || true)
      text=$(tr '\n' ' ' < "$tmp/out") ;;
    faster-whisper)
      /usr/bin/time -v -o "$tmp/time" "$WHISPER_VENV/bin/python" benches/whisper/fw_run.py "$WHISPER_CT2" "$audio" \
        "$t" "$beam" int8 >"$tmp/out" 2>"$tmp/err"
      read -r encode inproc text < <("$WHISPER_VENV/bin/python" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%.3f %.3f %s" % (r["encode_s"], r["load_s"] + r["transcribe_s"], r["text"]))' "$tmp/out") ;;
    whisper.cpp)
      /usr/bin/time -v -o "$tmp/time" "$WHISPER_BIN/whisper-cli" -m "$GGML" -f "$audio" -t "$t" -bs "$beam" \
        -l en -nt >"$tmp/out" 2>"$tmp/err"
      encode=$(awk '/encode time/ { for (i = 1; i < NF; i++) if ($i == "=") { printf "%.3f", $(i + 1) / 1000; exit } }' "$tmp/err")
      text=$(tr '\n' ' ' < "$tmp/out") ;;
  esac
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$tmp/time")
  rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tmp/time")
  text=$(echo "$text" | tr -s ' ' | sed 's/^ //; s/ $//; s/"/""/g')
  echo "$system,$clip,$t,$beam,$rep,$wall,$rss,$encode,$inproc,\"$text\"" >> "$CSV"
  printf '%-15s %-10s t=%s beam=%s rep=%s  wall %6ss  rss %7s MB  encode %6ss\n' \
    "$system" "$clip" "$t" "$beam" "$rep" "$wall" "$rss" "${encode:--}" >&2
}

systems=(faster-whisper whisper.cpp)
[ -z "$EDGELM" ] || systems=(edgelm "${systems[@]}")
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); whisper.cpp weights $WCPP_TYPE; $CSV" >&2
for rep in $(seq 1 "$REPS"); do
  for clip in $CLIPS; do
    for t in $THREADS; do
      for beam in $BEAMS; do
        for system in "${systems[@]}"; do run "$system" "$clip" "$t" "$beam"; done
      done
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$CSV" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
groups = {}
for r in rows:
    groups.setdefault((r["clip"], r["threads"], r["beam"], r["system"]), []).append(r)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs) if all(r[k] for r in rs) else None
fmt = lambda v: "-" if v is None else f"{v:.2f}"
print(f"{'clip':11} {'t':>2} {'beam':>4} {'system':15} {'wall s':>7} {'in-proc s':>9} {'encode s':>8} {'RSS MB':>7}")
for (clip, t, beam, system), rs in sorted(groups.items()):
    print(f"{clip:11} {t:>2} {beam:>4} {system:15} {fmt(med(rs, 'wall_s')):>7} {fmt(med(rs, 'inproc_s')):>9} "
          f"{fmt(med(rs, 'encode_s')):>8} {fmt(max(float(r['rss_mb']) for r in rs)):>7}")
EOF
