#!/usr/bin/env python3
"""Parameter counts transformers reports for the project's model fixtures, the reference for
`genarm inspect`'s count (tests/it/inspect.rs). Writes tests/data/inspect/expected.json. Not run
by CI:

    PY=$(scripts/python_env.sh) && "$PY" scripts/make_inspect_fixtures.py

For each folder: `AutoModelForCausalLM.from_pretrained(folder).num_parameters()` (shared
parameters such as tied embeddings counted once), and the model's `config.tie_word_embeddings`.
Deterministic: it only reads the fixture folders.
"""
import json
import pathlib

import torch
import transformers
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
FOLDERS = [
    "tests/data/parity/models/llama_base",
    "tests/data/parity/models/llama_base_bin",
    "tests/data/parity/models/llama_base_sharded",
    "tests/data/parity/models/llama_base_bf16",
    "tests/data/parity/models/qwen2_base",
    "tests/data/parity/models/mistral_base",
    "tests/data/parity/models/llama3_scaled",
    "tests/data/parity_families/models/gemma2_base",
    "tests/data/parity_families/models/gemma3_base",
    "tests/data/parity_families/models/phi3_base",
    "tests/data/parity_families/models/olmo2_base",
    "tests/data/parity_families/models/qwen3_base",
    "tests/data/parity_families/models/smollm3_base",
    "tests/data/sentencepiece/arm_llama",
]


def main():
    torch.set_num_threads(1)
    out = {}
    for rel in FOLDERS:
        model = AutoModelForCausalLM.from_pretrained(ROOT / rel)
        out[rel] = {
            "num_parameters": model.num_parameters(),
            "tie_word_embeddings": bool(model.config.get_text_config().tie_word_embeddings),
        }
        print(rel, out[rel])
    target = ROOT / "tests/data/inspect"
    target.mkdir(parents=True, exist_ok=True)
    (target / "expected.json").write_text(json.dumps(out, indent=1) + "\n")
    (target / "README.md").write_text(
        "# `genarm inspect` references\n\n"
        "`expected.json`: the parameter count transformers reports (`num_parameters()`, tied\n"
        "embeddings counted once) for each model fixture named by its path, written by\n"
        "`scripts/make_inspect_fixtures.py` (do not edit by hand; rerun it). Made with\n"
        f"transformers {transformers.__version__}, torch {torch.__version__}.\n"
    )


if __name__ == "__main__":
    main()
