#!/usr/bin/env python3
"""Write llama.cpp GGUF files for a small Hugging Face LlamaForCausalLM folder.

Usage: make_gguf.py MODEL_DIR OUT_DIR [--name NAME]
Writes OUT_DIR/NAME-f32.gguf, NAME-f16.gguf, and (via llama.cpp's own quantizer,
llama_cpp.llama_model_quantize, from the f32 file) NAME-q8_0.gguf and NAME-q4_k_m.gguf.

Why not llama.cpp's convert_hf_to_gguf.py: it imports torch + transformers, and the
models made by `genarm random-model` carry a WordLevel/WhitespaceSplit tokenizer that
the converter does not know. The benchmark only feeds token ids, so the GGUF gets a
plain "llama" (SentencePiece-type) vocabulary holding the same token strings and
special ids (a byte-level BPE tokenizer, as the demo's, is written as llama.cpp writes
GPT-2's, so that llama-server tokenizes as genarm does); the tensors are converted exactly as convert_hf_to_gguf.py does for the
llama architecture (q/k rows permuted from HF's rotate-half order to llama.cpp's
interleaved RoPE order, norms kept f32, tied embeddings -> no output.weight).
"""

import argparse
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file

import gguf


def permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    # Same as LlamaModel.permute in llama.cpp's convert_hf_to_gguf.py.
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


HF_TO_GGUF = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def rope_theta(cfg: dict) -> float:
    if "rope_theta" in cfg:
        return float(cfg["rope_theta"])
    rp = cfg.get("rope_parameters") or {}
    if rp.get("rope_type", "default") != "default":
        sys.exit(f"unsupported rope_parameters {rp}")
    return float(rp.get("rope_theta", 10000.0))


def is_byte_level_bpe(tok: dict) -> bool:
    """A BPE tokenizer.json whose pre-tokenizer is GPT-2's byte-level split."""
    pre = tok.get("pre_tokenizer") or {}
    return (
        tok["model"]["type"] == "BPE"
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True)
    )


def write_gguf(model_dir: str, out_path: str, dtype: str) -> None:
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    if cfg.get("architectures", ["LlamaForCausalLM"])[0] != "LlamaForCausalLM":
        sys.exit("only LlamaForCausalLM is supported")
    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_head_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or n_embd // n_head
    n_layer = cfg["num_hidden_layers"]
    n_vocab = cfg["vocab_size"]
    tied = cfg.get("tie_word_embeddings", False)

    tensors = load_file(os.path.join(model_dir, "model.safetensors"))

    w = gguf.GGUFWriter(out_path, "llama")
    w.add_name(os.path.basename(os.path.abspath(model_dir)))
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(rope_theta(cfg))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-5)))
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)

    # Vocabulary: the token strings of tokenizer.json, ordered by id.
    tok = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    id_to_tok = {i: t for t, i in tok["model"]["vocab"].items()}
    special = set()
    for a in tok.get("added_tokens", []):
        id_to_tok[a["id"]] = a["content"]
        if a.get("special"):
            special.add(a["id"])
    tokens, types = [], []
    for i in range(n_vocab):
        tokens.append(id_to_tok.get(i, f"[PAD{i}]"))
        if i in special:
            types.append(gguf.TokenType.CONTROL)
        elif i in id_to_tok:
            types.append(gguf.TokenType.NORMAL)
        else:
            types.append(gguf.TokenType.UNUSED)
    if is_byte_level_bpe(tok):
        # A byte-level BPE tokenizer (the demo's; GPT-2's split): written as llama.cpp's
        # converter writes one, so llama-server tokenizes as genarm does (remote-base runs).
        merges = tok["model"].get("merges", [])
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    else:
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores([0.0] * n_vocab)
        w.add_token_types(types)
    gen = {}
    gpath = os.path.join(model_dir, "generation_config.json")
    if os.path.exists(gpath):
        gen = json.load(open(gpath))
    for key, fn in (("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id)):
        v = cfg.get(key, gen.get(key))
        if isinstance(v, int):
            fn(v)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def put(name: str, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if dtype == "f16" and arr.ndim == 2:
            arr = arr.astype(np.float16)
        w.add_tensor(name, arr)

    put("token_embd.weight", tensors["model.embed_tokens.weight"])
    for i in range(n_layer):
        for hf, gg in HF_TO_GGUF.items():
            t = tensors[f"model.layers.{i}.{hf}"]
            if hf == "self_attn.q_proj.weight":
                t = permute(t, n_head, n_head)
            elif hf == "self_attn.k_proj.weight":
                t = permute(t, n_head, n_head_kv)
            put(f"blk.{i}.{gg}", t)
    put("output_norm.weight", tensors["model.norm.weight"])
    if not tied:
        put("output.weight", tensors["lm_head.weight"])

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src: str, dst: str, ftype: int) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        sys.exit(f"llama_model_quantize({src} -> {dst}) failed: {rc}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--name", help="file name prefix (default: the model folder's name)")
    ap.add_argument("--formats", default="f32,f16,q8_0,q4_k_m")
    args = ap.parse_args()
    name = args.name or os.path.basename(os.path.abspath(args.model_dir))
    os.makedirs(args.out_dir, exist_ok=True)
    fmts = args.formats.split(",")
    f32 = os.path.join(args.out_dir, f"{name}-f32.gguf")
    write_gguf(args.model_dir, f32, "f32")
    if "f16" in fmts:
        write_gguf(args.model_dir, os.path.join(args.out_dir, f"{name}-f16.gguf"), "f16")
    if "q8_0" in fmts or "q4_k_m" in fmts:
        import llama_cpp

        if "q8_0" in fmts:
            quantize(f32, os.path.join(args.out_dir, f"{name}-q8_0.gguf"), llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)
        if "q4_k_m" in fmts:
            quantize(f32, os.path.join(args.out_dir, f"{name}-q4_k_m.gguf"), llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)
    for f in sorted(os.listdir(args.out_dir)):
        if f.startswith(name + "-") and f.endswith(".gguf"):
            p = os.path.join(args.out_dir, f)
            print(f"{p}\t{os.path.getsize(p) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
