#!/usr/bin/env python3
"""Reference tokenizations by transformers for Llama tokenizers saved in the transformers-4 Hub
style (a Prepend("▁") normalizer instead of a Metaspace pre-tokenizer), with and without
`legacy`. transformers 5 rebuilds the pipeline of a LlamaTokenizer from its vocabulary, so the ids
differ from running tokenizer.json as saved for text that starts with a space; genarm must match
transformers. Writes tests/data/tokenizers/. Not run by CI:

    /work/pyenv/bin/python scripts/make_tokenizer_fixtures.py
"""
import json
import pathlib
import shutil

from transformers import AutoTokenizer
import transformers

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests/data/parity/models/llama_base"
OUT = ROOT / "tests/data/tokenizers"

TEXTS = [
    "Hello world",
    " Sure, here is how.",
    "  two leading spaces",
    "line one\nline two",
    "naïve café 😀 日本",
    "",
    " ",
]


def hub_style(tokenizer_json):
    t = json.loads(json.dumps(tokenizer_json))
    t["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ],
    }
    t["pre_tokenizer"] = None
    return t


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    base_json = json.loads((SOURCE / "tokenizer.json").read_text())
    base_config = json.loads((SOURCE / "tokenizer_config.json").read_text())
    expected = {"transformers": transformers.__version__, "cases": []}
    for name, legacy in [("llama_hub_style", False), ("llama_hub_style_legacy", True)]:
        folder = OUT / name
        folder.mkdir(parents=True)
        (folder / "tokenizer.json").write_text(json.dumps(hub_style(base_json), ensure_ascii=False, indent=2))
        config = dict(base_config)
        config["tokenizer_class"] = "LlamaTokenizer"
        config["legacy"] = legacy
        (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2))
        tok = AutoTokenizer.from_pretrained(folder)
        for text in TEXTS:
            with_special = tok(text)["input_ids"]
            without = tok(text, add_special_tokens=False)["input_ids"]
            expected["cases"].append({
                "tokenizer": name,
                "text": text,
                "ids": with_special,
                "ids_without_special": without,
                "decoded": tok.decode(without, skip_special_tokens=True, clean_up_tokenization_spaces=False),
            })
    (OUT / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
