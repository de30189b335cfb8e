#!/usr/bin/env python3
"""Parity fixtures for the model families beyond Llama/Qwen2/Mistral, made by transformers itself.

What it makes (everything under tests/data/parity_families/, which is deleted and rebuilt):

  models/<family>_base/   a tiny random model of the family (4 layers, so sliding-window, local/global
                          and no-rope layer patterns appear), saved with save_pretrained
  models/<family>_arm_a/  two smaller ARMs of the same family (2 layers, stored in bf16)
  models/<family>_arm_b/
  cases.json              guided greedy generation and teacher-forced scoring, base + both ARMs at
                          weights 1 and -0.5, in the format of tests/data/parity/cases.json
  README.md               what each model exercises, and the checks done

The tokenizers are the trained ones of tests/data/parity (T_qwen for Qwen3, OLMo 2 and SmolLM3; T_llama,
which adds a BOS, for Gemma 2, Gemma 3 and Phi-3), copied from its model folders. The computation
(eager attention, full forward per step without KV cache, GenARM combination, records) is
make_parity_fixtures.py's own, imported from it.

Run from the repository root (CPU only, about a minute):

    PY=$(scripts/python_env.sh) && "$PY" scripts/make_parity_families.py

Deterministic: fixed seeds, one CPU thread, no network.
"""

import argparse
import json
import os
import random
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GenerationConfig,
    Olmo2Config,
    Olmo2ForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    SmolLM3Config,
    SmolLM3ForCausalLM,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixtures as fx  # noqa: E402  (the shared reference computation)

REPO_ROOT = fx.REPO_ROOT
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "data", "parity_families")
TOKENIZERS = os.path.join(REPO_ROOT, "tests", "data", "parity", "models")

QWEN_VOCAB, QWEN_BOS, QWEN_EOS = 443, 440, [442, 440]
LLAMA_VOCAB = 439

# Small shapes shared by every family: hidden 32, 4 heads of 8, 2 KV heads.
SHAPE = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=8)


def qwen_ids():
    return dict(vocab_size=QWEN_VOCAB, bos_token_id=QWEN_BOS, eos_token_id=QWEN_EOS[0], pad_token_id=None)


def llama_ids():
    return dict(vocab_size=LLAMA_VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def qwen3(layers):
    # Window 8 on layers from max_window_layers = 2 on; q/k RMSNorm per head; tied.
    return Qwen3ForCausalLM, Qwen3Config(
        **SHAPE, **qwen_ids(), num_hidden_layers=layers, max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0}, tie_word_embeddings=True,
        use_sliding_window=True, sliding_window=8, max_window_layers=min(2, layers - 1), rms_norm_eps=1e-6,
    )


def gemma2(layers):
    # Alternating sliding (window 8) / full layers, soft-capping that bites, query_pre_attn_scalar != head_dim.
    return Gemma2ForCausalLM, Gemma2Config(
        **SHAPE, **llama_ids(), num_hidden_layers=layers, max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0}, query_pre_attn_scalar=4,
        sliding_window=8, attn_logit_softcapping=1.0, final_logit_softcapping=3.0,
        hidden_activation="gelu_pytorch_tanh",
    )


def gemma3(layers):
    # Local/global pattern of 2 (sliding, full, ...), local rope base 100, linear scaling on global layers.
    cls, cfg = Gemma3ForCausalLM, Gemma3TextConfig(
        **SHAPE, **llama_ids(), num_hidden_layers=layers, max_position_embeddings=256,
        rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
        },
        query_pre_attn_scalar=4, sliding_window=8, sliding_window_pattern=2,
    )
    return cls, cfg


def phi3(layers):
    # LongRoPE with original context 32 (prompts are longer, so the long factors apply), partial
    # rotary 0.5 (4 of 8 dims rotate), window 16 on every layer, fused qkv_proj / gate_up_proj.
    return Phi3ForCausalLM, Phi3Config(
        **{k: v for k, v in SHAPE.items() if k != "head_dim"}, **llama_ids(), num_hidden_layers=layers,
        max_position_embeddings=256, original_max_position_embeddings=32,
        rope_parameters={"rope_type": "longrope", "rope_theta": 1000.0, "partial_rotary_factor": 0.5,
                         "short_factor": [1.0, 1.5], "long_factor": [2.0, 5.0]},
        sliding_window=16, tie_word_embeddings=False, rms_norm_eps=1e-5,
    )


def olmo2(layers):
    # Norms after attention and MLP only, q/k RMSNorm over the whole projection; untied.
    return Olmo2ForCausalLM, Olmo2Config(
        **SHAPE, **qwen_ids(), num_hidden_layers=layers, max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0}, tie_word_embeddings=False, rms_norm_eps=1e-5,
    )


def smollm3(layers):
    # Every 2nd layer without rope; those layers slide (window 8), as SmolLM3Config derives it.
    return SmolLM3ForCausalLM, SmolLM3Config(
        **SHAPE, **qwen_ids(), num_hidden_layers=layers, max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0}, no_rope_layer_interval=2,
        use_sliding_window=True, sliding_window=8, tie_word_embeddings=True,
    )


FAMILIES = {"qwen3": (qwen3, "qwen"), "gemma2": (gemma2, "llama"), "gemma3": (gemma3, "llama"),
            "phi3": (phi3, "llama"), "olmo2": (olmo2, "qwen"), "smollm3": (smollm3, "qwen")}
SEEDS = {"base": 11, "arm_a": 12, "arm_b": 13}
BASE_LAYERS, ARM_LAYERS = 4, 2
MAX_NEW_TOKENS = 12

# Candidate prompts (the first whose guided generation has no near-tie is used); all are longer than
# every window and than Phi-3's original context of 32 tokens.
LONG_PROMPTS = [
    "In the small village near the river, the baker woke early every morning. The baker prepared fresh "
    "bread for the travellers who passed through. Travellers often stop at the village to buy bread.",
    "Once upon a time, a little dragon lived in a cave near the sea. The dragon read every book in the "
    "village library. The king asked the dragon for advice about the harvest.",
    "The teacher explained the lesson with patience and care. Students read books, write essays and solve "
    "problems. The library is open from nine in the morning until six in the evening.",
]
SHORT_PROMPTS = ["How do I bake bread?", "Tell me a story.", "Good morning!"]
RESPONSE = " Sure: mix flour, wätér and salt, then knead the dough for ten minutes and let it rest."


def build(family, role):
    make, tok_kind = FAMILIES[family]
    cls, cfg = make(BASE_LAYERS if role == "base" else ARM_LAYERS)
    model = fx.build_model(cls, cfg, SEEDS[role] + 100 * list(FAMILIES).index(family))
    return model, tok_kind


def save(model, tok_kind, folder):
    if tok_kind == "qwen":
        gen = GenerationConfig(bos_token_id=QWEN_BOS, pad_token_id=QWEN_BOS, eos_token_id=QWEN_EOS)
        src = os.path.join(TOKENIZERS, "qwen2_base")
    else:
        gen = GenerationConfig(bos_token_id=1, eos_token_id=2)
        src = os.path.join(TOKENIZERS, "llama_base")
    fx.save_model(model, folder, gen)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, name), os.path.join(folder, name))


def first_clean_case(ctx, spec, prompts):
    """run_case with the first prompt that gives no near-tie (run_case asserts the margins)."""
    errors = []
    for prompt in prompts:
        try:
            return fx.run_case(dict(spec, prompt=prompt), ctx)
        except AssertionError as e:
            errors.append(f"{prompt[:30]}...: {e}"[:200])
    raise SystemExit(f"{spec['name']}: no candidate prompt works: {errors}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    out = os.path.abspath(ap.parse_args().out)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    transformers.logging.set_verbosity_error()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if os.path.isdir(out):
        shutil.rmtree(out)
    mdir = os.path.join(out, "models")
    os.makedirs(mdir)

    for family in FAMILIES:
        for role in SEEDS:
            model, tok_kind = build(family, role)
            if role != "base":
                # Stored in bf16 to keep the fixtures small; both engines compute in f32 from
                # the same bf16 values.
                model = model.to(torch.bfloat16)
            save(model, tok_kind, os.path.join(mdir, f"{family}_{role}"))

    ctx = fx.Ctx(out)
    cases, stats = [], {}
    for family in FAMILIES:
        spec = {
            "name": f"{family}_guided",
            "base": f"{family}_base",
            "arms": [("arm_a", f"{family}_arm_a", 1.0), ("arm_b", f"{family}_arm_b", -0.5)],
            "response": RESPONSE,
            "max_new_tokens": MAX_NEW_TOKENS,
            "min_prompt_tokens": 33,
        }
        variants = [(spec, LONG_PROMPTS)]
        if family == "phi3":
            # Short enough that prompt + generation stay within the original context: short factors.
            short = dict(spec, name="phi3_short_context", response=" Sure.", min_prompt_tokens=1)
            variants.append((short, SHORT_PROMPTS))
        for s, prompts in variants:
            case, st, _, _ = first_clean_case(ctx, s, prompts)
            if s["name"] == "phi3_short_context":
                total = st["prompt_len"] + st["n_generated"]
                assert total + len(case["score"]["response_token_ids"]) <= 32, total
            cases.append(case)
            stats[case["name"]] = st
    fx.write_json(os.path.join(out, "cases.json"), {"cases": cases})
    write_readme(out, cases, stats)
    print(f"wrote {len(cases)} cases, {fx.dir_size(out) / 1e6:.2f} MB")


def write_readme(out, cases, stats):
    lines = [
        "# Parity fixtures: model families",
        "",
        "Made by `scripts/make_parity_families.py` (transformers " + transformers.__version__ + ", torch "
        + torch.__version__ + "); rebuild with `PY=$(scripts/python_env.sh) && \"$PY\" scripts/make_parity_families.py`.",
        "The format of cases.json and the reference computation are those of tests/data/parity/README.md",
        "(full forward per step without KV cache, eager attention, f32; every generated step has a top-1/top-2",
        "guided margin > 1e-3; teacher-forcing the generated ids reproduces the step-by-step numbers).",
        "",
        "Each family has a 4-layer f32 base and two 2-layer ARMs stored in bf16 (weights 1 and -0.5), saved by `save_pretrained`",
        "(config.json exactly as transformers 5 writes it), randomised with make_parity_fixtures.py's `randomize`.",
        "Every case runs in f32 (the bf16 ARMs are widened, by transformers and by genarm alike).",
        "",
        "| family | what the models exercise |",
        "|---|---|",
        "| qwen3 | q/k RMSNorm per head, tied embeddings, window 8 on layers >= max_window_layers (2) |",
        "| gemma2 | (1+w) RMSNorm before and after attention and MLP, embeddings x sqrt(32), GeGLU (tanh), "
        "attention soft-cap 1.0, final soft-cap 3.0, query_pre_attn_scalar 4, sliding (window 8) / full alternating |",
        "| gemma3 | Gemma 2 without soft-capping plus q/k norms; layers sliding/full (pattern 2), local rope base 100, "
        "global rope base 10000 with linear scaling 2 |",
        "| phi3 | fused qkv_proj and gate_up_proj, LongRoPE (original context 32: the long factors apply to the long "
        "prompts, the short ones to `phi3_short_context`), attention factor from max/original context, "
        "partial_rotary_factor 0.5, window 16 |",
        "| olmo2 | norms after attention and after the MLP only, q/k RMSNorm over the whole projection, untied |",
        "| smollm3 | rope left out on every 2nd layer (no_rope_layer_interval 2), those layers slide (window 8) |",
        "",
        "| case | prompt tokens | generated | min top1-top2 margin |",
        "|---|---|---|---|",
    ]
    for c in cases:
        st = stats[c["name"]]
        lines.append(f"| `{c['name']}` | {st['prompt_len']} | {st['n_generated']} | {st['min_margin']:.4f} |")
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
