#!/usr/bin/env python3
"""The GGUF that tests/it/remote_llamacpp.rs serves with a real llama-server.

Usage: make_remote_fixtures.py   (PY=$(scripts/python_env.sh); run from the repository root)

llama-server needs a vocabulary in the file (its /tokenize and its detokenizer read it), and the
exactness test wants f32 weights (llama.cpp's f16 path rounds activations to f16). The source is
tests/data/parity_families/gguf/qwen3.gguf (llama.cpp's converter, f16, no vocabulary): every
tensor is widened to f32 (exact) and the tokenizer of tokenizer.json beside it is added as
llama.cpp's converter writes a Qwen2-style byte-level BPE tokenizer (model gpt2, pre qwen2,
tokens, token types, merges, special ids). Deterministic: the same bytes on every run.
"""

import json
import os
import sys

import numpy as np

import gguf

SRC_DIR = "tests/data/parity_families/gguf"
OUT = "tests/data/remote/qwen3-f32.gguf"


def tokenizer_fields(writer: gguf.GGUFWriter, tokenizer: dict, config: dict) -> None:
    model = tokenizer["model"]
    if model["type"] != "BPE":
        sys.exit("expected a BPE tokenizer.json")
    vocab = dict(model["vocab"])
    specials = {t["id"]: t["content"] for t in tokenizer["added_tokens"]}
    for id_, content in specials.items():
        vocab[content] = id_
    size = config["vocab_size"]
    if sorted(vocab.values()) != list(range(size)):
        sys.exit("token ids are not 0..vocab_size-1")
    tokens = [""] * size
    for text, id_ in vocab.items():
        tokens[id_] = text
    types = [
        gguf.TokenType.CONTROL if i in specials else gguf.TokenType.NORMAL
        for i in range(size)
    ]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_add_bos_token(False)


def main() -> None:
    reader = gguf.GGUFReader(os.path.join(SRC_DIR, "qwen3.gguf"))
    with open(os.path.join(SRC_DIR, "tokenizer.json")) as f:
        tokenizer = json.load(f)
    with open("tests/data/parity_families/models/qwen3_base/config.json") as f:
        config = json.load(f)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    writer = gguf.GGUFWriter(OUT + ".tmp", "qwen3")
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key == "general.file_type":
            writer.add_file_type(gguf.LlamaFileType.ALL_F32)
            continue
        value = field.contents()
        writer.add_key_value(key, value, field.types[0], sub_type=field.types[-1] if len(field.types) > 1 else None)
    tokenizer_fields(writer, tokenizer, config)
    for tensor in reader.tensors:
        data = np.asarray(tensor.data, dtype=np.float32)
        # GGUF lists dimensions innermost first; numpy wants them outermost first.
        writer.add_tensor(tensor.name, data.reshape(list(reversed(tensor.shape.tolist()))))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(OUT + ".tmp", OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
