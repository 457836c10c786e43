#!/usr/bin/env bash
# Synthesizes the in-car sentences of tests/fixtures/whisper/sentences.txt with espeak-ng (US English
# voice, 160 words per minute) as 16 kHz mono 16-bit WAV files, and a 60 s clip (whisper.cpp's JFK
# sample, then the sentences twice, 0.6 s of silence between, cut at 60.0 s) for the speed comparisons.
# Deterministic for a given espeak-ng and sox (no dither). Idempotent; writes under $EDGELM_MODELS/audio
# (default ~/.cache/edgelm/models/audio), next to jfk.wav from tools/fetch-models.sh:
#
#   audio/sentences/01.wav .. 14.wav     one sentence each (line N of sentences.txt)
#   audio/clip60.wav                     the 60 s clip
#
# Needs espeak-ng and sox: installed with apt-get (through sudo unless root) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${EDGELM_MODELS:-$HOME/.cache/edgelm/models}
OUT=$MODELS/audio
SENTENCES=tests/fixtures/whisper/sentences.txt
missing=()
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "make_speech.sh: installing ${missing[*]} (apt-get)" >&2
  "${sudo[@]}" apt-get update -q >&2
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
[ -f "$OUT/jfk.wav" ] || { echo "$OUT/jfk.wav is missing: run tools/fetch-models.sh" >&2; exit 1; }
mkdir -p "$OUT/sentences"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=0
while IFS= read -r line; do
  [ -n "$line" ] || continue
  n=$((n + 1))
  wav=$OUT/sentences/$(printf '%02d' "$n").wav
  if [ ! -f "$wav" ]; then
    espeak-ng -v en-us -s 160 -w "$tmp/raw.wav" "$line"
    sox -R -D "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$wav.part.wav"
    mv "$wav.part.wav" "$wav"
  fi
done < "$SENTENCES"

clip=$OUT/clip60.wav
if [ ! -f "$clip" ]; then
  sox -R -n -r 16000 -c 1 -b 16 "$tmp/gap.wav" trim 0 0.6
  parts=("$OUT/jfk.wav")
  for round in 1 2; do   # the sentences once are 43 s
    for wav in "$OUT"/sentences/*.wav; do parts+=("$tmp/gap.wav" "$wav"); done
  done
  sox -R -D "${parts[@]}" "$tmp/long.wav"
  sox -R -D "$tmp/long.wav" "$clip.part.wav" trim 0 60
  mv "$clip.part.wav" "$clip"
fi
echo "sentences: $OUT/sentences ($n files)"
echo "60 s clip: $clip ($(soxi -D "$clip") s)"
