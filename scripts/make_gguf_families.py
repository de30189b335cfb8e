#!/usr/bin/env python3
"""GGUF files of the family parity models, written by llama.cpp's own converter.

Writes tests/data/parity_families/gguf/<family>.gguf (f16) for the families whose GGUF genarm reads
(qwen3, olmo2), converted from tests/data/parity_families/models/<family>_base by
`convert_hf_to_gguf.py`, and a copy of their tokenizer.json beside them (both use T_qwen), which
genarm reads in place of the files' tokenizer metadata.

The llama.cpp source tree comes from the PyPI sdist of llama-cpp-python 0.3.36 (vendor/llama.cpp),
fetched and cached by scripts/llama_cpp_source.sh; the converter runs against its own gguf-py:

    PY=$(scripts/python_env.sh) && "$PY" scripts/make_gguf_families.py [LLAMA_CPP_TREE]

One change to the converter, made here at run time: its vocabulary step is skipped. It only accepts
tokenizers whose pre-tokenizer hash it knows (or a sentencepiece tokenizer.model), and the fixtures'
trained tokenizers are neither; the weights and model metadata it writes are untouched.

Not converted, and why (genarm refuses these GGUF architectures): gemma2 (the converter writes no rope
base and no query_pre_attn_scalar, which llama.cpp derives from the model size), gemma3 (no layer
pattern; llama.cpp assumes one), smollm3 (no no-rope interval; llama.cpp assumes 4, the fixture has 2),
phi3 (the converter needs a sentencepiece tokenizer.model even for the weights).
"""

import os
import runpy
import shutil
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO_ROOT, "tests", "data", "parity_families")
FAMILIES = ["qwen3", "olmo2"]


def convert(llama_cpp, src, out):
    """Run convert_hf_to_gguf.py (as __main__) with its vocabulary step skipped."""
    sys.path.insert(0, llama_cpp)
    sys.path.insert(1, os.path.join(llama_cpp, "gguf-py"))
    import conversion.base as base  # the converter's own package

    for name in dir(base.TextModel):
        if name.startswith("_set_vocab") or name == "set_vocab":
            setattr(base.TextModel, name, lambda self, *a, **k: None)
    sys.argv = ["convert_hf_to_gguf.py", src, "--outfile", out, "--outtype", "f16"]
    runpy.run_path(os.path.join(llama_cpp, "convert_hf_to_gguf.py"), run_name="__main__")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        # Child process: one conversion (the converter keeps module state between runs).
        _, _, src, out = sys.argv
        convert(os.environ["LLAMA_CPP"], src, out)
        return
    if len(sys.argv) == 1:
        script = os.path.join(REPO_ROOT, "scripts", "llama_cpp_source.sh")
        llama_cpp = subprocess.check_output(["bash", script], text=True).strip()
    elif len(sys.argv) == 2:
        llama_cpp = os.path.abspath(sys.argv[1])
    else:
        raise SystemExit(__doc__)
    out_dir = os.path.join(FIXTURES, "gguf")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    for family in FAMILIES:
        src = os.path.join(FIXTURES, "models", f"{family}_base")
        out = os.path.join(out_dir, f"{family}.gguf")
        env = dict(os.environ, LLAMA_CPP=llama_cpp)
        subprocess.run([sys.executable, __file__, "--one", src, out], check=True, env=env)
    shutil.copy(os.path.join(FIXTURES, "models", "qwen3_base", "tokenizer.json"), out_dir)
    print("wrote", sorted(os.listdir(out_dir)))


if __name__ == "__main__":
    main()
