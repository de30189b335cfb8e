#!/usr/bin/env python3
"""Reference tokenizations of tokenizers stored as GGUF metadata (`tokenizer.ggml.*`), made by
transformers itself: `AutoTokenizer.from_pretrained(dir, gguf_file=...)` rebuilds a tokenizer from
that metadata as genarm must. Writes tests/data/gguf_tokenizers/. Not run by CI:

    python3 -m venv /tmp/tokvenv
    /tmp/tokvenv/bin/pip install transformers tokenizers gguf sentencepiece torch
    /tmp/tokvenv/bin/python scripts/make_gguf_tokenizer_fixtures.py

The vocabularies are those of the parity models (tests/data/parity/models): `llama_base` (a
Llama-style BPE with byte fallback `<0xNN>`, 439 tokens) and `qwen2_base` (a Qwen2 byte-level
BPE, 440 tokens + 3 special). Each is written the way llama.cpp's `convert_hf_to_gguf.py` lays
out the keys, with the `gguf` package's own writer (not candle's, which the Rust tests use):

- `llama.gguf`: `tokenizer.ggml.model = "llama"`, as `_set_vocab_sentencepiece` writes a
  SentencePiece BPE model: tokens, a score per token (a SentencePiece BPE trainer gives the piece
  made by the i-th merge the score -i and the single characters lower scores still; unknown,
  control and byte pieces score 0), token types (2 unknown, 3 control, 6 byte, 1 normal, 4 for a
  user-defined `<think>` added on top, as an `added_tokens_decoder` entry that is not special
  becomes), no merges (readers derive them from the scores), bos/eos/unk ids, add_bos_token.
  llama_base ships no `tokenizer.model`, so the scores are the ones SentencePiece would have
  given its merges.
- `llama_hf_scores.gguf`: the same vocabulary as `_set_vocab_llama_hf` writes it when there is
  only a tokenizer.json: every score -1000 and the unknown token typed control. With no score to
  rank them, the recovered merges are ordered by the tie-breaks alone (longer left piece, longer
  right piece, then vocabulary order), which this file pins; its ids need not be the source's.
- `qwen2.gguf`: `tokenizer.ggml.model = "gpt2"`, `tokenizer.ggml.pre = "qwen2"`, as
  `_set_vocab_gpt2` writes it: tokens (added special tokens typed 3 control), merges as "a b",
  bos/eos/padding ids (bos from config.json, as SpecialVocab falls back to it), add_bos_token
  false, and Qwen2.5-Instruct's published chat template as `tokenizer.chat_template`.
- `bytes_qwen2.gguf`, `bytes_llama_bpe.gguf`, `bytes_gpt2.gguf`: one more byte-level BPE, trained
  here on a small corpus *without* a splitting regex, so that its merges cross the boundaries the
  three regexes draw differently (digit runs, contractions, punctuation before letters, blank
  lines), written with `tokenizer.ggml.pre` "qwen2", "llama-bpe" (Llama 3) and "gpt-2". The script
  checks that the three give different ids, so a test that passes with one regex for another
  would be caught. (qwen2_base's own 440 tokens have no merges across those boundaries.)

The files hold only metadata (the model config keys transformers needs, no tensors).
expected.json records, per file and text, the ids transformers gives with and without special
tokens, its decoding of the latter (skip_special_tokens=True), and for comparison the ids the
original tokenizer folder gives (`source_ids`, llama and qwen2 only: a correct conversion
reproduces them; the script prints any text where it does not). For qwen2.gguf it also records
`apply_chat_template` ids.

transformers 5.24's GGUF reader imports torch at module level, even to read only metadata, so
torch is needed after all (`/tmp/tokvenv/bin/pip install torch`, CPU use only; the rest of the
GGUF tokenizer code does not touch it).
"""
import json
import pathlib
import shutil

import gguf
import tokenizers
import transformers
from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests/data/parity/models"
OUT = ROOT / "tests/data/gguf_tokenizers"
QWEN_TEMPLATE = ROOT / "tests/data/chat_templates/Qwen2.5-0.5B-Instruct/tokenizer_config.json"

TEXTS = [
    "Hello world",
    "In 2024, 1234567 people (about 3.14%) said: \"THEY'RE here\"\n\n\tok?",
    "x = [1,22,333]; y=(a+b)*4096 // don't\n \n  end",
    "The dragon carries the book home.",
    " Sure, here is how.",
    "  two leading spaces",
    "trailing space ",
    "line one\nline two",
    "\n\nblank lines\n\n\n",
    "tabs\tand\r\nCRLF",
    "naïve café 😀 日本",
    "digits 1234567 and 3.14, 42!",
    "she's here, we'll see, I'M DONE",
    "a<s>b</s> <unk>",
    "x<think>y",
    "<|im_start|>user\nHi<|im_end|>",
    # Found by a seeded search over joined llama_base pieces: with llama_hf_scores.gguf's equal
    # scores, merges ordered without the longer-left-piece (or longer-right-piece) tie-break
    # tokenize these differently, so they pin that order.
    "ingy",
    "ningñ cr",
    "ing carries and youeaden",
    "",
    " ",
]

CHAT = [
    [{"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Tell me 1 joke 😀"}],
]

USER_DEFINED = "<think>"

# Files whose ids need not equal the source folder's: equal scores lose the merge order.
NOT_LIKE_SOURCE = {"llama_hf_scores.gguf"}


def config_keys(writer, config, arch):
    writer.add_name(f"{arch}_fixture")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config["rope_parameters"]["rope_theta"])


def write(path, arch, fill):
    writer = gguf.GGUFWriter(str(path), arch)
    fill(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama_gguf(path, hf_scores=False):
    folder = MODELS / "llama_base"
    tj = json.loads((folder / "tokenizer.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    vocab = tj["model"]["vocab"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]
    specials = {t["id"]: t["content"] for t in tj["added_tokens"]}
    unk_id = vocab[tj["model"]["unk_token"]]
    rank = {m.replace(" ", ""): i for i, m in reversed(list(enumerate(merges)))}
    tokens, scores, types = [], [], []
    singles = 0
    for token, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        assert i == len(tokens)
        tokens.append(token)
        if i == unk_id:
            scores.append(0.0)
            types.append(gguf.TokenType.UNKNOWN)
        elif i in specials:
            scores.append(0.0)
            types.append(gguf.TokenType.CONTROL)
        elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            scores.append(0.0)
            types.append(gguf.TokenType.BYTE)
        elif token in rank:
            scores.append(-float(rank[token]))
            types.append(gguf.TokenType.NORMAL)
        else:
            scores.append(-float(len(merges) + singles))
            singles += 1
            types.append(gguf.TokenType.NORMAL)
    tokens.append(USER_DEFINED)
    scores.append(0.0)
    types.append(gguf.TokenType.USER_DEFINED)
    if hf_scores:
        # What `_set_vocab_llama_hf` writes from a tokenizer.json alone: every score -1000, and
        # every special token (unk included) typed control.
        scores = [-1000.0] * len(scores)
        types = [gguf.TokenType.CONTROL if t == gguf.TokenType.UNKNOWN else t for t in types]

    def fill(w):
        config_keys(w, config, "llama")
        w.add_vocab_size(len(tokens))
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(vocab["<s>"])
        w.add_eos_token_id(vocab["</s>"])
        w.add_unk_token_id(unk_id)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)

    write(path, "llama", fill)
    source = AutoTokenizer.from_pretrained(folder)
    source.add_tokens([USER_DEFINED])
    return source


def byte_level_gguf(path, config, arch, tokens, types, merges, pre, bos, eos, pad, add_bos, template):
    def fill(w):
        config_keys(w, config, arch)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(bos)
        w.add_eos_token_id(eos)
        if pad is not None:
            w.add_pad_token_id(pad)
        w.add_add_bos_token(add_bos)
        if template is not None:
            w.add_chat_template(template)

    write(path, arch, fill)


def tokens_of(tj):
    """Tokens by id, special ones, and merges as "a b", from a tokenizer.json."""
    by_id = {i: t for t, i in tj["model"]["vocab"].items()}
    by_id.update({t["id"]: t["content"] for t in tj["added_tokens"]})
    special = {t["id"] for t in tj["added_tokens"] if t["special"]}
    tokens = [by_id[i] for i in range(len(by_id))]
    types = [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))]
    merges = [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]
    return tokens, types, merges


def qwen2_gguf(path):
    folder = MODELS / "qwen2_base"
    tj = json.loads((folder / "tokenizer.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    tc = json.loads((folder / "tokenizer_config.json").read_text())
    tokens, types, merges = tokens_of(tj)
    ids = {t: i for i, t in enumerate(tokens)}
    template = json.loads(QWEN_TEMPLATE.read_text())["chat_template"]
    byte_level_gguf(path, config, "qwen2", tokens, types, merges, "qwen2", config["bos_token_id"],
                    ids[tc["eos_token"]], ids[tc["pad_token"]], tc["add_bos_token"], template)
    return AutoTokenizer.from_pretrained(folder)


def corpus():
    """Lines with what the split regexes treat differently: digit runs, contractions in any case,
    punctuation before letters, whitespace runs and blank lines, non-ASCII."""
    words = ["the", "dragon", "carries", "book", "people", "here", "said", "about", "end", "ok",
             "café", "naïve", "日本", "😀", "world", "Hello", "THEY", "don", "we", "she"]
    lines = []
    for i in range(400):
        w = [words[(i * k + 3) % len(words)] for k in (1, 3, 7, 11)]
        n = (i * 7919) % 100000
        lines.append(f"In {1900 + i % 130}, {n} {w[0]} ({w[1]} {i % 10}.{i % 7}%) said: \"{w[2].upper()}'RE {w[3]}\"")
        lines.append(f"x = [{i},{i * 11},{i * 333}]; y=({w[0]}+{w[1]})*{n} // don't, she's, I'M, we'll\n \n  {w[2]}")
        lines.append(f"\t{w[3]}?\n\n{w[1]}'s {w[0]}'ll {w[2]}'VE ... (({w[3]})) -{w[0]}- {n}{i}")
    return lines


def bytes_tokenizer():
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=700, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    return json.loads(tok.to_str())


def bytes_gguf(path, tj, pre):
    config = json.loads((MODELS / "qwen2_base" / "config.json").read_text())
    tokens, types, merges = tokens_of(tj)
    eos = tokens.index("<|endoftext|>")
    byte_level_gguf(path, config, "qwen2", tokens, types, merges, pre, eos, eos, None, False, None)
    return None


def chat_ids(tok, messages):
    out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    trained = bytes_tokenizer()
    files = {
        "llama.gguf": llama_gguf,
        "llama_hf_scores.gguf": lambda p: llama_gguf(p, hf_scores=True),
        "qwen2.gguf": qwen2_gguf,
        "bytes_qwen2.gguf": lambda p: bytes_gguf(p, trained, "qwen2"),
        "bytes_llama_bpe.gguf": lambda p: bytes_gguf(p, trained, "llama-bpe"),
        "bytes_gpt2.gguf": lambda p: bytes_gguf(p, trained, "gpt-2"),
    }
    expected = {
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "files": {},
    }
    for name, make in files.items():
        source = make(OUT / name)
        tok = AutoTokenizer.from_pretrained(OUT, gguf_file=name)
        cases = []
        agree = 0
        for text in TEXTS:
            ids = tok(text)["input_ids"]
            without = tok(text, add_special_tokens=False)["input_ids"]
            case = {
                "text": text,
                "ids": ids,
                "ids_without_special": without,
                "decoded": tok.decode(without, skip_special_tokens=True),
            }
            if source is not None:
                source_ids = source(text)["input_ids"]
                agree += ids == source_ids
                if name not in NOT_LIKE_SOURCE:
                    case["source_ids"] = source_ids
            cases.append(case)
        entry = {
            "class": type(tok).__name__,
            "bos_token": tok.bos_token,
            "eos_token": tok.eos_token,
            "cases": cases,
        }
        if source is not None:
            entry["agree_with_source"] = f"{agree}/{len(TEXTS)}"
        if name == "qwen2.gguf":
            entry["chat"] = [{"messages": m, "ids": chat_ids(tok, m)} for m in CHAT]
        expected["files"][name] = entry
        print(f"{name}: {(OUT / name).stat().st_size} bytes, {type(tok).__name__}, "
              f"{entry.get('agree_with_source', '-')} texts tokenized as the source folder does")
        for case in cases:
            if "source_ids" in case and case["ids"] != case["source_ids"]:
                print(f"  differs: {case['text']!r}: gguf {case['ids']} source {case['source_ids']}")
    variants = [expected["files"][f"bytes_{pre}.gguf"]["cases"] for pre in ("qwen2", "llama_bpe", "gpt2")]
    for a in range(3):
        for b in range(a + 1, 3):
            differ = sum(x["ids"] != y["ids"] for x, y in zip(variants[a], variants[b]))
            print(f"bytes variants {a} and {b} differ on {differ} texts")
            assert differ > 0, "the split regexes must give different ids on some text"
    (OUT / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
