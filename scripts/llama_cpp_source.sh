#!/usr/bin/env bash
# Fetches (once) llama.cpp's source tree as the PyPI sdist of llama-cpp-python vendors it, and
# prints its path: the converter scripts (convert_hf_to_gguf.py) of the GGUF fixture makers and
# the source scripts/llama_server.sh builds.
#   scripts/make_gguf_families.py   (calls this itself)
# Cached in $GENARM_LLAMA_CPP_SRC (default ~/.cache/genarm/llama-cpp-src/<version>).
set -euo pipefail
version="0.3.36"
root="${GENARM_LLAMA_CPP_SRC:-${XDG_CACHE_HOME:-$HOME/.cache}/genarm/llama-cpp-src}/$version"
tree="$root/llama_cpp_python-$version/vendor/llama.cpp"
if [[ ! -f "$tree/convert_hf_to_gguf.py" ]]; then
    mkdir -p "$root"
    echo "llama_cpp_source: downloading llama-cpp-python $version (sdist) into $root" >&2
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$version" -d "$root" >&2
    tar xzf "$root/llama_cpp_python-$version.tar.gz" -C "$root"
fi
echo "$tree"
