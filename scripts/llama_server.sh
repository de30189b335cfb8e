#!/usr/bin/env bash
# Builds (once) llama.cpp's `llama-server` from source and prints the binary's path: the real
# server the remote-base tests (tests/it/remote_llamacpp.rs) start on 127.0.0.1. `.ci/run` calls
# it before the tests; the tests call it too (a no-op once built).
#   SERVER=$(scripts/llama_server.sh)
# Source: llama.cpp as the PyPI sdist of llama-cpp-python vendors it (scripts/llama_cpp_source.sh).
# Build tools: cmake and ninja from PyPI, in a small venv of their own. Target `llama-server` only,
# CPU backend, no web UI, no TLS, static. About 10 minutes on 2 cores, then cached in
# $GENARM_LLAMA_SERVER_DIR (default ~/.cache/genarm/llama-server/<version>).
set -euo pipefail
version="0.3.36"
here="$(cd "$(dirname "$0")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/genarm"
out="${GENARM_LLAMA_SERVER_DIR:-$cache/llama-server/$version}"
binary="$out/build/bin/llama-server"
# The build is native (-march=native): a cache made on a CPU with more features would die with
# SIGILL on a lesser one, so the build records the CPU flags it was made for, and a cache made
# for other flags is rebuilt. A cache from before this record is taken as made here.
stamp="$out/build/cpu-flags"
flags="$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || echo unknown) | md5sum | cut -c1-16)"
cached_here() {
    [[ -x "$binary" ]] || return 1
    [[ -f "$stamp" ]] || echo "$flags" > "$stamp"
    [[ "$(cat "$stamp")" == "$flags" ]]
}
if cached_here; then
    echo "$binary"
    exit 0
fi
# One build at a time: test processes (nextest runs each test in its own) may all ask at once.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if cached_here; then
    echo "$binary"
    exit 0
fi
[[ -x "$binary" ]] && echo "llama_server: the cached build was made for a CPU with other features; rebuilding" >&2
src="$("$here/llama_cpp_source.sh")"
tools="$cache/buildenv"
if [[ ! -x "$tools/bin/cmake" || ! -x "$tools/bin/ninja" ]]; then
    echo "llama_server: installing cmake and ninja into $tools" >&2
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet cmake ninja >&2
fi
export PATH="$tools/bin:$PATH"
jobs="$(nproc 2>/dev/null || echo 2)"
echo "llama_server: building llama-server ($version) in $out (about 10 minutes on 2 cores)" >&2
# Built in a scratch folder, moved into place whole: an interrupted build leaves no binary that
# looks finished.
scratch="$out/build.partial"
rm -rf "$scratch"
cmake -S "$src" -B "$scratch" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DGGML_NATIVE=ON -DGGML_OPENMP=OFF >&2
cmake --build "$scratch" --target llama-server -j "$jobs" >&2
echo "$flags" > "$scratch/cpu-flags"
rm -rf "$out/build"
mv "$scratch" "$out/build"
echo "$binary"
