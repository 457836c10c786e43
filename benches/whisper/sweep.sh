#!/usr/bin/env bash
# Odd clips through `edgelm transcribe` and faster-whisper (int8, beam 5, no VAD) side by side: silence,
# noise, a tone, chords, clipping, 0.05 s, 29.99 / 30 / 30 s + 1 sample, -40 dBFS, speech then 60 s of
# silence, other rates, widths and channel counts, and espeak-ng sentences in de, fr, es, it, ru.
#
#   benches/whisper/sweep.sh EDGELM_BIN EDGELM_WHISPER_MODEL
#
# Prints one line per clip: the detected languages and whether the normalized texts agree, then both
# texts where they differ. Needs sox, espeak-ng, jfk.wav (tools/fetch-models.sh) and the faster-whisper
# venv. About 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/whisper/whispercpp.sh
EDGELM=${1:?give the edgelm binary}
MODEL=${2:?give the packed Whisper model}
JFK=$MODELS/audio/jfk.wav
for tool in sox espeak-ng; do command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 1; }; done
[ -f "$JFK" ] || { echo "$JFK is missing (tools/fetch-models.sh)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
c=$tmp/clips
mkdir -p "$c"
gen() { sox "$@" 2>/dev/null; }
gen -n -r 16000 -c 1 -b 16 "$c/zero.wav" trim 0 5
gen -n -r 16000 -c 1 -b 16 "$c/floor-60dB.wav" synth 5 whitenoise vol -60dB
gen -n -r 16000 -c 1 -b 16 "$c/white.wav" synth 5 whitenoise vol 0.3
gen -n -r 16000 -c 1 -b 16 "$c/pink.wav" synth 5 pinknoise vol 0.3
gen -n -r 16000 -c 1 -b 16 "$c/tone.wav" synth 5 sine 440 vol 0.5
gen -n -r 16000 -c 1 -b 16 "$c/chords.wav" synth 6 pl C3 pl E3 pl G3 remix - fade 0 6 0.1
gen "$JFK" "$c/clipped.wav" gain 20
gen "$JFK" "$c/short.wav" trim 0 0.05
gen "$JFK" "$c/30s.wav" pad 0 30 trim 0 30
gen "$c/30s.wav" "$c/30s+1.wav" pad 0 1s
gen "$c/30s.wav" "$c/29.99s.wav" trim 0 29.99
gen "$JFK" "$c/then-60s-silence.wav" pad 0 60
gen "$JFK" "$c/quiet-40dBFS.wav" gain -n -40
gen "$JFK" -r 8000 "$c/8k.wav"
gen "$JFK" -r 44100 -c 2 "$c/44k-stereo.wav"
gen "$JFK" -b 24 "$c/24bit-extensible.wav"
gen "$JFK" -e floating-point -b 32 "$c/float-fact.wav"
gen "$JFK" -b 8 -e unsigned "$c/u8.wav"
while IFS='|' read -r lang text; do
  espeak-ng -v "$lang" -s 150 -w "$tmp/raw.wav" "$text"
  gen "$tmp/raw.wav" -r 16000 "$c/$lang.wav"
done <<'TEXT'
de|Guten Morgen. Wie spät ist es? Ich möchte heute nach Berlin fahren und dort meine Freunde besuchen.
fr|Bonjour, je voudrais réserver une table pour deux personnes ce soir à huit heures.
es|Hola, ¿dónde está la estación de tren? Necesito comprar un billete para Madrid.
it|Buongiorno, vorrei un caffè e un cornetto, per favore. Quanto costa?
ru|Добрый день. Сегодня очень хорошая погода, давайте пойдём гулять в парк.
TEXT
clips=$(cd "$c" && ls *.wav)
for clip in $clips; do
  "$EDGELM" transcribe "$MODEL" "$c/$clip" --json -t "$(nproc)" 2>/dev/null > "$tmp/$clip.edgelm.json" || echo '{}' > "$tmp/$clip.edgelm.json"
done
"$WHISPER_VENV/bin/python" - "$WHISPER_CT2" "$c" "$tmp" $clips <<'PY'
import json, os, re, sys
from faster_whisper import WhisperModel
ct2, clips_dir, tmp, *clips = sys.argv[1:]
model = WhisperModel(ct2, device="cpu", compute_type="int8", cpu_threads=os.cpu_count())
norm = lambda t: " ".join(re.sub(r"[^\w' ]", " ", t.lower()).split())
for clip in clips:
    segments, info = model.transcribe(os.path.join(clips_dir, clip), beam_size=5)
    fw = "".join(s.text for s in segments)
    e = json.load(open(os.path.join(tmp, clip + ".edgelm.json")))
    ours = e.get("text", "<error>")
    same = norm(fw) == norm(ours)
    print(f"{clip:24} language edgelm {e.get('language', '-'):3} faster-whisper {info.language:3} text {'same' if same else 'DIFFERS'}")
    if not same:
        print(f"    edgelm:         {ours.strip()[:150]}\n    faster-whisper: {fw.strip()[:150]}")
PY
