#!/usr/bin/env python3
"""Chat-template renders of the model families, made by transformers' apply_chat_template.

The templates are the published ones llama.cpp's source tree carries in models/templates/ (fetched and
cached by scripts/llama_cpp_source.sh; not copied into this repository). For each template and each
conversation below, transformers renders the text (apply_chat_template(tokenize=False) on a tokenizer
whose bos/eos tokens are the model's), and tests/data/chat_families/expected.json records it with the
template's sha256, so a changed template is a clear failure rather than a silent mismatch. A template
that refuses a conversation (Gemma 2: no system role) is recorded as an error.

    PY=$(scripts/python_env.sh) && "$PY" scripts/make_chat_family_fixtures.py [LLAMA_CPP_TREE]

Deterministic (no dates in these templates, no network once the source is cached).
"""

import hashlib
import json
import os
import subprocess
import sys

from transformers import PreTrainedTokenizerFast

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO_ROOT, "tests", "data", "chat_families")
TOKENIZER = os.path.join(REPO_ROOT, "tests", "data", "parity", "models", "llama_base", "tokenizer.json")

# template file, the model's bos/eos tokens (its tokenizer_config.json on the Hub), template variables
# worth rendering with (besides none).
TEMPLATES = {
    "qwen3": ("Qwen-Qwen3-0.6B.jinja", None, "<|im_end|>", [{"enable_thinking": False}]),
    "smollm3": ("HuggingFaceTB-SmolLM3-3B.jinja", None, "<|im_end|>", [{"enable_thinking": False}]),
    "gemma2": ("google-gemma-2-2b-it.jinja", "<bos>", "<eos>", []),
    "phi3": ("microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>", []),
}
# Looked for and not in llama.cpp's models/templates: Gemma 3 and OLMo 2 (listed in the README).
MISSING = ["Gemma 3 (google-gemma-3-*-it)", "OLMo 2 (allenai-OLMo-2-*-Instruct)"]

SYSTEM = {"role": "system", "content": "You are a careful assistant. Answer briefly."}
USER = {"role": "user", "content": "How do I bake bread?"}
ASSISTANT = {"role": "assistant", "content": "Mix flour, water and salt; knead; let it rise; bake."}
USER2 = {"role": "user", "content": "  And with \"rye\" flour?\n"}
CONVERSATIONS = [
    ("user", [USER], True),
    ("system_user", [SYSTEM, USER], True),
    ("multi_turn", [SYSTEM, USER, ASSISTANT, USER2], True),
    ("multi_turn_no_system", [USER, ASSISTANT, USER2], True),
    ("no_generation_prompt", [USER, ASSISTANT], False),
]


def main():
    if len(sys.argv) == 2:
        tree = os.path.abspath(sys.argv[1])
    else:
        script = os.path.join(REPO_ROOT, "scripts", "llama_cpp_source.sh")
        tree = subprocess.check_output(["bash", script], text=True).strip()
    renders = []
    for family, (file, bos, eos, kwargs_list) in TEMPLATES.items():
        with open(os.path.join(tree, "models", "templates", file), "rb") as f:
            raw = f.read()
        source = raw.decode("utf-8")
        tok = PreTrainedTokenizerFast(tokenizer_file=TOKENIZER, bos_token=bos, eos_token=eos)
        for kwargs in [{}] + kwargs_list:
            for name, messages, gen in CONVERSATIONS:
                entry = {"family": family, "template": file, "sha256": hashlib.sha256(raw).hexdigest(),
                         "bos_token": bos or "", "eos_token": eos or "", "conversation": name,
                         "messages": messages, "add_generation_prompt": gen, "kwargs": kwargs}
                try:
                    entry["text"] = tok.apply_chat_template(messages, chat_template=source, tokenize=False,
                                                            add_generation_prompt=gen, **kwargs)
                except Exception as e:  # the template's raise_exception
                    entry["error"] = str(e)
                renders.append(entry)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"renders": renders}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(renders)} renders ({sum('error' in r for r in renders)} refused)")


if __name__ == "__main__":
    main()
