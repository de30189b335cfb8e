#!/usr/bin/env bash
# Builds (once) the llama.cpp side of the side-by-side measurement (scripts/llamacpp_bar) and
# prints the folder holding it: `llama-quantize` (makes the Q8_0/Q4_0/Q4_K_M/Q5_K_M files from
# make_gguf.py's f32 output) and `guided_loop` (scripts/llamacpp_bar/guided_loop.c linked
# against the static libllama/ggml of the same build).
#   TOOLS=$(scripts/llama_cpp_tools.sh)          # the native build (GGML_NATIVE=ON)
#   TOOLS=$(scripts/llama_cpp_tools.sh avx2)     # AVX2/FMA/F16C only (GGML_NATIVE=OFF)
#   TOOLS=$(scripts/llama_cpp_tools.sh avx512)   # AVX-512 F/BW/VL/VBMI/VNNI/BF16, no AMX
# native: reuses scripts/llama_server.sh's cached build tree (same source, same options), so
# only quantize.cpp and the link are new. On a CPU that lists AMX (Sapphire Rapids and later),
# `-march=native` compiles llama.cpp's AMX kernels in, and in these VMs its Q8_0/Q4_0 runs die
# with SIGILL inside them (tinygemm_kernel_amx): use avx512 there, which is also the instruction
# set genarm's own kernels use. avx2, avx512: a build tree each (a full build, about 10 minutes
# on 2 cores). Cached under ~/.cache/genarm/llama-server/<version>/.
set -euo pipefail
variant="${1:-native}"
version="0.3.36"
here="$(cd "$(dirname "$0")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/genarm"
root="${GENARM_LLAMA_SERVER_DIR:-$cache/llama-server/$version}"
case "$variant" in
    native) build="$root/build" ;;
    avx2) build="$root/build-avx2" isa=(-DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF) ;;
    avx512) build="$root/build-avx512" isa=(-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON
        -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
        -DGGML_AMX_BF16=OFF) ;;
    *) echo "llama_cpp_tools: unknown variant '$variant' (native, avx2 or avx512)" >&2; exit 2 ;;
esac
out="$build/tools-bin"
if [[ -x "$out/llama-quantize" && -x "$out/guided_loop" ]]; then
    echo "$out"
    exit 0
fi
tools="$cache/buildenv"
jobs="$(nproc 2>/dev/null || echo 2)"
case "$variant" in
    native)
        # The server's tree: configured and mostly compiled already.
        "$here/llama_server.sh" >/dev/null
        ;;
    avx2 | avx512)
        src="$("$here/llama_cpp_source.sh")"
        if [[ ! -f "$build/build.ninja" ]]; then
            "$here/llama_server.sh" >/dev/null # installs cmake and ninja if needed
            PATH="$tools/bin:$PATH" cmake -S "$src" -B "$build" -G Ninja \
                -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
                -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON \
                -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
                -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF \
                -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
                -DGGML_BMI2=ON "${isa[@]}" >&2
        fi
        ;;
esac
export PATH="$tools/bin:$PATH"
echo "llama_cpp_tools: building llama-quantize and the static libraries in $build" >&2
cmake --build "$build" --target llama-quantize llama ggml -j "$jobs" >&2
mkdir -p "$out"
cp "$build/bin/llama-quantize" "$out/llama-quantize.partial"
src_tree="$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")"
libs=("$build/src/libllama.a" "$build/ggml/src/libggml.a" "$build/ggml/src/libggml-cpu.a"
    "$build/ggml/src/libggml-base.a")
# Linked as C++ (libllama is C++); the loop itself is C.
gcc -O2 -c -o "$out/guided_loop.o" "$here/llamacpp_bar/guided_loop.c" \
    -I"$src_tree/include" -I"$src_tree/ggml/include"
g++ -o "$out/guided_loop.partial" "$out/guided_loop.o" "${libs[@]}" -lpthread -lm -ldl
mv "$out/llama-quantize.partial" "$out/llama-quantize"
mv "$out/guided_loop.partial" "$out/guided_loop"
echo "$out"
