# llama.cpp cross-built for aarch64, one static llama-bench per NEON level, as the peer of
# edgelm's neon / dotprod / i8mm kernel paths. Source this file (after benches/llamacpp.sh); it
# defines functions and runs nothing.
#
# One full build at the baseline (armv8-a: plain NEON); the dotprod and i8mm variants rebuild only
# ggml-cpu (the one library whose flags change, GGML_CPU_ARM_ARCH) and relink llama-bench with
# the baseline's other libraries. No OpenMP (ggml's own thread pool), static, so it runs under
# qemu-aarch64 with no sysroot and qemu sees every symbol. Needs g++-aarch64-linux-gnu and cmake.

LLAMA_ARM_BUILD=${LLAMA_ARM_BUILD:-$PEERS/build/llama-aarch64}

# -march of each level, as ggml's GGML_CPU_ALL_VARIANTS names them.
llamacpp_arm_march() {
  case $1 in
    neon) echo armv8-a ;;
    dotprod) echo armv8.2-a+dotprod ;;
    i8mm) echo armv8.6-a+dotprod+i8mm ;;
    *) echo "unknown NEON level $1 (neon, dotprod, i8mm)" >&2; return 1 ;;
  esac
}

# Path of llama-bench for aarch64 at a level (neon, dotprod, i8mm); builds it when missing.
llamacpp_arm_bench() {
  local level=$1 march dir base=$LLAMA_ARM_BUILD/neon
  march=$(llamacpp_arm_march "$level") || return 1
  dir=$LLAMA_ARM_BUILD/$level
  if [ ! -x "$dir/llama-bench" ]; then
    llamacpp_fetch || return 1
    command -v aarch64-linux-gnu-g++ >/dev/null ||
      { echo "aarch64-linux-gnu-g++ missing (apt-get install g++-aarch64-linux-gnu)" >&2; return 1; }
    [ "$level" = neon ] || llamacpp_arm_bench neon >/dev/null || return 1
    llamacpp_log "building llama.cpp llama-bench for aarch64 -march=$march into $dir/build"
    cmake -S "$LLAMA_SRC/vendor/llama.cpp" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
      -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
      -DCMAKE_EXE_LINKER_FLAGS=-static -DBUILD_SHARED_LIBS=OFF \
      -DLLAMA_BUILD_COMMIT="$(llamacpp_commit)" -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
      -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DGGML_CCACHE=OFF -DGGML_OPENMP=OFF \
      -DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH="$march" >"$dir.cmake.log" 2>&1 ||
      { tail -20 "$dir.cmake.log" >&2; return 1; }
    if [ "$level" = neon ]; then
      cmake --build "$dir/build" -j "${JOBS:-2}" --target llama-bench >"$dir.build.log" 2>&1 ||
        { tail -20 "$dir.build.log" >&2; return 1; }
      cp "$dir/build/bin/llama-bench" "$dir/llama-bench"
    else
      # Only ggml-cpu differs: build it here and link llama-bench with it and the baseline's rest.
      cmake --build "$dir/build" -j "${JOBS:-2}" --target ggml-cpu >"$dir.build.log" 2>&1 ||
        { tail -20 "$dir.build.log" >&2; return 1; }
      local cpu_lib link
      cpu_lib=$(find "$dir/build" -name libggml-cpu.a | head -1)
      link=$(cd "$base/build/tools/llama-bench" && sed "s#[^ ]*libggml-cpu\.a#$cpu_lib#; s#-o [^ ]*#-o $dir/llama-bench#" CMakeFiles/llama-bench.dir/link.txt)
      (cd "$base/build/tools/llama-bench" && eval "$link") || return 1
    fi
  fi
  echo "$dir/llama-bench"
}
