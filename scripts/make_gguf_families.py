#!/usr/bin/env python3
"""GGUF files of the family parity models, written by llama.cpp's own converter.

Writes under tests/data/parity_families/gguf/ (rebuilt, all but its README.md):

  qwen3.gguf, olmo2.gguf   f16, converted from tests/data/parity_families/models/<family>_base, with a
                           copy of their tokenizer.json beside them (both use T_qwen)
  <family>/                for gemma2, gemma3, smollm3 and phi3: a tiny random model of the family
                           saved by transformers (f32), shaped as llama.cpp assumes (see below), its
                           GGUF <family>/<family>.gguf (f32, so that it is the same model bit for bit)
                           beside its tokenizer.json
  cases.json               transformers' guided generation and scoring of those four models, with the
                           family's two ARMs of tests/data/parity_families/models (weights 1, -0.5), in
                           the format of tests/data/parity/cases.json (bases named relative to models/)

llama.cpp does not read everything from the file: src/models/<arch>.cpp hard-codes some values, and
genarm's GGUF loader supplies the same ones. A model only runs the same in both when its config has
those values, so the four models here are the families' parity models with: Gemma 2
query_pre_attn_scalar = head_dim (llama.cpp scales by 1/sqrt(head_dim) below 27B) and rope base 10000
(its converter writes none); Gemma 3 six layers, every 6th global (llama.cpp's pattern) and
query_pre_attn_scalar = head_dim; SmolLM3 rope left out on every 4th layer (llama.cpp's interval) and
no sliding window; Phi-3 no sliding window (llama.cpp runs Phi-3 without one). The parity models
themselves (pattern 2, interval 2, ...) keep testing the general case against transformers.

The llama.cpp source tree comes from the PyPI sdist of llama-cpp-python 0.3.36 (vendor/llama.cpp),
fetched and cached by scripts/llama_cpp_source.sh; the converter runs against its own gguf-py:

    PY=$(scripts/python_env.sh) && "$PY" scripts/make_gguf_families.py [LLAMA_CPP_TREE]

One change to the converter, made here at run time: its vocabulary step is skipped (every
architecture's, Phi-3's own `set_vocab` included, which otherwise wants a sentencepiece
tokenizer.model). It only accepts tokenizers whose pre-tokenizer hash it knows (or a sentencepiece
tokenizer.model), and the fixtures' trained tokenizers are neither; genarm reads the tokenizer.json
beside the file instead. The weights and model metadata it writes are untouched.

Deterministic: fixed seeds, one CPU thread, no network once the source is cached.
"""

import os
import runpy
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO_ROOT, "tests", "data", "parity_families")
FAMILIES = ["qwen3", "olmo2"]
LLAMA_CPP_SHAPED = ["gemma2", "gemma3", "smollm3", "phi3"]


def shaped_config(family):
    """The family's parity config with the values llama.cpp hard-codes (see the docstring)."""
    import make_parity_families as pf
    from transformers import Gemma2Config, Gemma3TextConfig, Phi3Config, SmolLM3Config

    common = dict(**pf.SHAPE, max_position_embeddings=256)
    if family == "gemma2":
        return Gemma2Config(
            **common, **pf.llama_ids(), num_hidden_layers=4, query_pre_attn_scalar=8,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, sliding_window=8,
            attn_logit_softcapping=1.0, final_logit_softcapping=3.0, hidden_activation="gelu_pytorch_tanh")
    if family == "gemma3":
        return Gemma3TextConfig(
            **common, **pf.llama_ids(), num_hidden_layers=6, query_pre_attn_scalar=8, sliding_window=8,
            sliding_window_pattern=6,
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
            })
    if family == "smollm3":
        return SmolLM3Config(
            **common, **pf.qwen_ids(), num_hidden_layers=4, no_rope_layer_interval=4,
            rope_parameters={"rope_type": "default", "rope_theta": 1000.0}, use_sliding_window=False,
            tie_word_embeddings=True)
    assert family == "phi3"
    return Phi3Config(
        **{k: v for k, v in common.items() if k != "head_dim"}, **pf.llama_ids(), num_hidden_layers=4,
        original_max_position_embeddings=32,
        rope_parameters={"rope_type": "longrope", "rope_theta": 1000.0, "partial_rotary_factor": 0.5,
                         "short_factor": [1.0, 1.5], "long_factor": [2.0, 5.0]},
        sliding_window=None, tie_word_embeddings=False, rms_norm_eps=1e-5)


def make_shaped(out_dir, llama_cpp):
    """The four llama.cpp-shaped models, their GGUF files and transformers' cases."""
    import make_parity_families as pf
    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    ctx = pf.fx.Ctx(FIXTURES)
    cases = []
    for i, family in enumerate(LLAMA_CPP_SHAPED):
        cls = dict(pf.FAMILIES)[family][0](2)[0]
        tok_kind = dict(pf.FAMILIES)[family][1]
        folder = os.path.join(out_dir, family)
        model = pf.fx.build_model(cls, shaped_config(family), 500 + i)
        pf.save(model, tok_kind, folder)
        run_converter(llama_cpp, folder, os.path.join(folder, f"{family}.gguf"), "f32")
        spec = {
            "name": f"{family}_gguf",
            "base": os.path.join("..", "gguf", family),
            "arms": [("arm_a", f"{family}_arm_a", 1.0), ("arm_b", f"{family}_arm_b", -0.5)],
            "response": pf.RESPONSE,
            "max_new_tokens": pf.MAX_NEW_TOKENS,
            "min_prompt_tokens": 33,
        }
        case, st, _, _ = pf.first_clean_case(ctx, spec, pf.LONG_PROMPTS)
        print(family, st)
        cases.append(case)
    pf.fx.write_json(os.path.join(out_dir, "cases.json"), {"cases": cases})


def run_converter(llama_cpp, src, out, outtype):
    env = dict(os.environ, LLAMA_CPP=llama_cpp)
    subprocess.run([sys.executable, __file__, "--one", src, out, outtype], check=True, env=env)


def convert(llama_cpp, src, out, outtype):
    """Run convert_hf_to_gguf.py (as __main__) with its vocabulary step skipped."""
    sys.path.insert(0, llama_cpp)
    sys.path.insert(1, os.path.join(llama_cpp, "gguf-py"))
    import conversion.base as base  # the converter's own package
    import conversion.phi as phi

    for name in dir(base.TextModel):
        if name.startswith("_set_vocab") or name == "set_vocab":
            setattr(base.TextModel, name, lambda self, *a, **k: None)
    # Phi-3 has a set_vocab of its own (it reads tokenizer.model).
    phi.Phi3MiniModel.set_vocab = lambda self, *a, **k: None
    sys.argv = ["convert_hf_to_gguf.py", src, "--outfile", out, "--outtype", outtype]
    runpy.run_path(os.path.join(llama_cpp, "convert_hf_to_gguf.py"), run_name="__main__")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        # Child process: one conversion (the converter keeps module state between runs).
        _, _, src, out, outtype = sys.argv
        convert(os.environ["LLAMA_CPP"], src, out, outtype)
        return
    if len(sys.argv) == 1:
        script = os.path.join(REPO_ROOT, "scripts", "llama_cpp_source.sh")
        llama_cpp = subprocess.check_output(["bash", script], text=True).strip()
    elif len(sys.argv) == 2:
        llama_cpp = os.path.abspath(sys.argv[1])
    else:
        raise SystemExit(__doc__)
    out_dir = os.path.join(FIXTURES, "gguf")
    # Everything but the (hand-written) README.md is rebuilt.
    os.makedirs(out_dir, exist_ok=True)
    for entry in os.listdir(out_dir):
        path = os.path.join(out_dir, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif entry != "README.md":
            os.remove(path)
    for family in FAMILIES:
        src = os.path.join(FIXTURES, "models", f"{family}_base")
        out = os.path.join(out_dir, f"{family}.gguf")
        run_converter(llama_cpp, src, out, "f16")
    shutil.copy(os.path.join(FIXTURES, "models", "qwen3_base", "tokenizer.json"), out_dir)
    make_shaped(out_dir, llama_cpp)
    print("wrote", sorted(os.listdir(out_dir)))


if __name__ == "__main__":
    main()
