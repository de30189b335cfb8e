#!/usr/bin/env python3
"""SentencePiece model folders (`tokenizer.model`, no tokenizer.json) and the ids transformers
gives for them. Writes tests/data/sentencepiece/. Not run by CI:

    PY=$(scripts/python_env.sh) && "$PY" scripts/make_sentencepiece_fixtures.py

Two SentencePiece models are trained here with the `sentencepiece` trainer on a small corpus the
script generates from a fixed seed (one thread, no input sampling, so the files are the same on
every run): a BPE model (Llama's settings: byte fallback, digits split, identity normalization,
extra whitespace kept, user-defined `<think>`) and a unigram model (byte fallback, the trainer's
default NFKC normalization, a control symbol `<|end|>`). Folders:

- `bpe/`: the BPE model with a tokenizer_config.json as Llama 2's (LlamaTokenizer, legacy false,
  add_bos_token true) plus one special token added past the vocabulary (`<|assistant|>`).
- `bpe_legacy/`: the same with `legacy: true` (every chunk between added tokens gets a `▁`).
- `bpe_no_prefix/`: the same with `add_prefix_space: false`.
- `bpe_llama_old_class/`: the same named `LLaMATokenizer`, as early Llama folders (Alpaca-7B) are:
  no class transformers 5 knows, so it converts the file generically.
- `unigram/`: the unigram model, LlamaTokenizer, `add_eos_token: true`.
- `unigram_plain/`: the unigram model with a tokenizer_config.json that names no class (and no
  config.json): transformers' generic conversion, which follows the SentencePiece model's own
  settings (a Unigram model, its precompiled NFKC normalizer, extra whitespace removed, `legacy`
  true), with add_bos_token true.
- `arm_llama/`: the GenARM ARM layout: config.json (a tiny random Llama), `pytorch_model.bin`
  (torch.save of its state dict) and only `tokenizer.model` (the BPE one) - no tokenizer_config.json,
  so transformers picks LlamaTokenizer from config.json's model_type with its defaults.

expected.json records, per folder and text, what `AutoTokenizer.from_pretrained(folder)` gives:
`ids` (tokenizer(text)), `ids_without_special` (add_special_tokens=False) and `decoded` (decode of
the latter, skip_special_tokens=True); `spm_ids` is SentencePiece's own encoding, for information
only (transformers' conversion is the reference; it rebuilds even a unigram model as a BPE over the
same pieces, so the two may differ). For arm_llama it also records greedy generation ids from
transformers' LlamaForCausalLM on one prompt.
"""
import json
import pathlib
import random
import shutil
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
import torch
import transformers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/data/sentencepiece"

WORDS = (
    "the a dragon carries book home river stone light garden quiet morning evening people "
    "said about here there where when which while under over again never always think "
    "help harm kind answer question small large 2024 1234 3.14 42 naïve café résumé "
    "Straße über Ärger 日本語 東京 😀 ☕ don't it's we'll I'M THEY'RE"
).split()

TEXTS = [
    "Hello world",
    "The dragon carries the book home.",
    " Sure, here is how.",
    "  two leading spaces",
    "many    inner     spaces",
    "trailing space ",
    "line one\nline two",
    "\n\nblank lines\n\n\n",
    "tabs\tand\r\nCRLF",
    "naïve café 😀 日本語 Straße",
    "digits 1234567 and 3.14, 42!",
    "she's here, we'll see, I'M DONE",
    "a<s>b</s> <unk>",
    "x<think>y </think>",
    "<|assistant|> Hi<|end|>",
    "▁already escaped",
    "ｆｕｌｌｗｉｄｔｈ ①",
    "",
    " ",
]

PROMPT = "The dragon carries"


def corpus(path):
    rng = random.Random(1234)
    lines = []
    for _ in range(3000):
        n = rng.randint(3, 14)
        line = " ".join(rng.choice(WORDS) for _ in range(n))
        if rng.random() < 0.3:
            line = line.capitalize() + "."
        lines.append(line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train(corpus_path, prefix, **options):
    spm.SentencePieceTrainer.train(
        input=str(corpus_path),
        model_prefix=str(prefix),
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        character_coverage=1.0,
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        **options,
    )
    model = pathlib.Path(f"{prefix}.model")
    # The trainer records its input and output paths (a temporary folder): blank them, so that
    # every run writes the same bytes.
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.read_bytes())
    proto.trainer_spec.input[:] = ["corpus.txt"]
    proto.trainer_spec.model_prefix = prefix.name
    model.write_bytes(proto.SerializeToString())
    return model


def llama_config(**extra):
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
        "clean_up_tokenization_spaces": False,
    }
    config.update(extra)
    return config


def added(vocab_size):
    return {
        "added_tokens_decoder": {
            str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for i, c in [(0, "<unk>"), (1, "<s>"), (2, "</s>"), (vocab_size, "<|assistant|>")]
        }
    }


def folder(name, model, config):
    out = OUT / name
    out.mkdir(parents=True)
    shutil.copy(model, out / "tokenizer.model")
    if config is not None:
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


def cases(out, model):
    tok = AutoTokenizer.from_pretrained(out)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    result = []
    for text in TEXTS:
        plain = tok(text, add_special_tokens=False)["input_ids"]
        result.append({
            "text": text,
            "ids": tok(text)["input_ids"],
            "ids_without_special": plain,
            "decoded": tok.decode(plain, skip_special_tokens=True),
            "spm_ids": sp.encode(text),
        })
    return type(tok).__name__, result


def arm_folder(model, vocab_size):
    out = folder("arm_llama", model, None)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    torch.manual_seed(7)
    lm = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in lm.parameters():
            p.normal_(0.0, 0.3)
    config.save_pretrained(out)
    torch.save(lm.state_dict(), out / "pytorch_model.bin")
    tok = AutoTokenizer.from_pretrained(out)
    prompt = tok(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        generated = lm.generate(prompt, max_new_tokens=12, do_sample=False, eos_token_id=None)
    return {"prompt": PROMPT, "prompt_ids": prompt[0].tolist(),
            "greedy_ids": generated[0, prompt.shape[1]:].tolist()}


def main():
    # Everything but the README is remade.
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.name != "README.md":
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    work = pathlib.Path(tempfile.mkdtemp())
    text = work / "corpus.txt"
    corpus(text)
    bpe = train(
        text, work / "bpe", model_type="bpe", vocab_size=600, split_digits=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        user_defined_symbols=["<think>", "</think>"],
    )
    unigram = train(
        text, work / "unigram", model_type="unigram", vocab_size=420,
        control_symbols=["<|end|>"],
    )
    bpe_size = spm.SentencePieceProcessor(model_file=str(bpe)).get_piece_size()
    expected = {"transformers": transformers.__version__, "sentencepiece": spm.__version__,
                "folders": {}}
    layouts = [
        ("bpe", bpe, llama_config(**added(bpe_size))),
        ("bpe_legacy", bpe, llama_config(legacy=True, **added(bpe_size))),
        ("bpe_no_prefix", bpe, llama_config(add_prefix_space=False, **added(bpe_size))),
        ("bpe_llama_old_class", bpe, llama_config(tokenizer_class="LLaMATokenizer")),
        ("unigram", unigram, llama_config(add_eos_token=True)),
        ("unigram_plain", unigram, {"add_bos_token": True, "model_max_length": 128}),
    ]
    for name, model, config in layouts:
        out = folder(name, model, config)
        cls, result = cases(out, model)
        expected["folders"][name] = {"class": cls, "cases": result}
    expected["generation"] = arm_folder(bpe, bpe_size)
    cls, result = cases(OUT / "arm_llama", bpe)
    expected["folders"]["arm_llama"] = {"class": cls, "cases": result}
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    for name, entry in expected["folders"].items():
        differ = sum(c["ids_without_special"] != c["spm_ids"] for c in entry["cases"])
        print(f"{name}: {entry['class']}, {differ} of {len(entry['cases'])} texts differ from sentencepiece")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
