#!/usr/bin/env python3
"""One byte-level BPE vocabulary as a GGUF file, and the ids each `tokenizer.ggml.pre` split gives
on it. Writes tests/data/gguf_pretokenizers/. Not run by CI:

    PY=$(scripts/python_env.sh) && "$PY" scripts/make_gguf_pretokenizer_fixtures.py

The vocabulary is trained here (the `tokenizers` BPE trainer, no split regex, so that merges cross
every boundary the splits draw) on a fixed corpus with digit runs, contractions in any case,
punctuation, whitespace runs, CamelCase, accents, CJK, Korean and full-width text. `base.gguf` holds
it as llama.cpp's converter lays a byte-level vocabulary out (`tokenizer.ggml.model = "gpt2"`,
tokens, types, merges), written with the `gguf` package; the Rust test swaps `tokenizer.ggml.pre`.

The families come from llama.cpp itself: the script reads `src/llama-vocab.cpp` of the cached
llama.cpp source (`scripts/llama_cpp_source.sh`): which `tokenizer.ggml.pre` names map to which
pre-tokenizer type, the regex list each type splits with, and where it sets `ignore_merges`.
Names that share both form one family; the first name stands for it. Types whose split is custom
code or not byte-level (kimi-k2, afmoe, superbpe, gemma4, sarvam-moe, whitespace) are left out.

For each family expected.json records, per text:
- `ids`: the reference. Where transformers 5.24's GGUF reader knows the name (its
  `GGUF_PRE_TOKENIZER_SPLITS`, or GPT-2's split, which it uses for any other name), the ids of
  `AutoTokenizer.from_pretrained(dir, gguf_file=...)` on the file with that name (`source:
  transformers`); else the ids of a Hub-style tokenizer.json pipeline built here with the
  `tokenizers` package from llama.cpp's own regexes: a `Split` per regex in order (isolated),
  byte-level, the BPE with llama.cpp's `ignore_merges` (`source: llama.cpp regexes`).
- `llama_cpp_regex_ids`: that pipeline's ids for every family; the script prints where
  transformers and it disagree.
- `decoded`: the decoding of `ids` (byte-level, nothing dropped).

27 families give 21 distinct sets of ids. Not told apart on this vocabulary: llama-bpe, dbrx and
minicpm5 (the same split; llama-bpe's and minicpm5's `ignore_merges` changes nothing when every
token of the vocabulary is what its own merges make), default and falcon, qwen2, bailingmoe and
ufakzeka, gpt-4o and granite-embed-multi-97m (their regexes differ only on text this vocabulary has
no merges across).
"""
import ast
import json
import pathlib
import re
import shutil
import subprocess
import tempfile

import gguf
import tokenizers
import transformers
from tokenizers import Regex, decoders, pre_tokenizers
from tokenizers.models import BPE
from transformers import AutoTokenizer
from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/data/gguf_pretokenizers"
CONFIG = ROOT / "tests/data/parity/models/qwen2_base/config.json"
SKIPPED_TYPES = {"KIMI_K2", "AFMOE", "SUPERBPE", "GEMMA4", "SARVAM_MOE", "WHITESPACE"}

TEXTS = [
    "Hello world",
    "In 2024, 1234567 people (about 3.14%) said: \"THEY'RE here\"\n\n\tok?",
    "x = [1,22,333]; y=(a+b)*4096 // don't\n \n  end",
    " Sure, here is how.",
    "   three leading spaces and    four inside",
    "trailing space ",
    "line one\nline two\r\nline three",
    "\n\nblank lines\n\n\n",
    "naïve café 😀 日本語 東京 한국어 ｆｕｌｌ！",
    "she's here, we'll see, I'M DONE, You'Re",
    "HelloWorld XMLHttpRequest getHTTPResponse iPhone",
    "1000000 12345678 9",
    "a...b!!c??d,e;f:g",
    "<sentinel:12> IMGIMGABZ $x+y<=z^2~|w`",
    "Ärger über Straße, Élan, ǅemal",
    "cafe\u0301 nai\u0308ve Ame\u0301lie",
    "ok?\n\nyes!\r\nno",
    "`code` ``x`` a`b",
    "",
]


def corpus():
    words = ["the", "dragon", "carries", "book", "people", "here", "said", "about", "end", "ok",
             "café", "naïve", "日本", "東京", "한국어", "😀", "world", "Hello", "THEY", "don", "we",
             "she", "HelloWorld", "XMLHttp", "Straße", "ｆｕｌｌ", "Élan", "cafe\u0301",
             "nai\u0308ve", "`code`", "a`b", "``x``", "東京タワー"]
    lines = []
    for i in range(400):
        w = [words[(i * k + 3) % len(words)] for k in (1, 3, 7, 11)]
        n = (i * 7919) % 10000000
        lines.append(f"In {1900 + i % 130}, {n} {w[0]} ({w[1]} {i % 10}.{i % 7}%) said: \"{w[2].upper()}'RE {w[3]}\"")
        lines.append(f"x = [{i},{i * 11},{i * 333}]; y=({w[0]}+{w[1]})*{n} // don't, she's, I'M, we'll\n \n  {w[2]}")
        lines.append(f"\t{w[3]}?\n\n{w[1]}'s {w[0]}'ll {w[2]}'VE ... (({w[3]})) -{w[0]}- {n}{i}")
        lines.append(f"   {w[1]}{w[2]}    {w[3]}！{w[0]}。 {w[2]}'Re <sentinel:{i}> a...b!!{w[1]}\r\n")
    return lines


def train():
    tok = tokenizers.Tokenizer(BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=900, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    tj = json.loads(tok.to_str())
    by_id = {i: t for t, i in tj["model"]["vocab"].items()}
    tokens = [by_id[i] for i in range(len(by_id))]
    merges = [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]
    return tokens, merges


def write_gguf(path, tokens, merges, pre):
    config = json.loads(CONFIG.read_text())
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("pretokenizer_fixture")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config["rope_parameters"]["rope_theta"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    types = [gguf.TokenType.CONTROL if t == "<|endoftext|>" else gguf.TokenType.NORMAL for t in tokens]
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    eos = tokens.index("<|endoftext|>")
    writer.add_bos_token_id(eos)
    writer.add_eos_token_id(eos)
    writer.add_add_bos_token(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama_cpp_families():
    """[(type, [names], [regexes], ignore_merges)] read from llama.cpp's llama-vocab.cpp."""
    src = subprocess.run([str(ROOT / "scripts/llama_cpp_source.sh")], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    text = (pathlib.Path(src) / "src/llama-vocab.cpp").read_text()
    body = text[text.index("struct llm_tokenizer_bpe : llm_tokenizer {"):]
    body = body[:body.index("std::vector<std::string> regex_exprs;")]
    regexes, pending, current = {}, [], []
    literal = re.compile(r'^\s*("(?:[^"\\]|\\.)*")\s*,?\s*(//.*)?$')
    for line in body.splitlines():
        if m := re.search(r"case LLAMA_VOCAB_PRE_TYPE_(\w+):", line):
            pending.append(m.group(1))
        elif line.strip() == "default:":
            pending.append("DEFAULT")
        elif m := literal.match(line):
            current.append(ast.literal_eval(m.group(1)))
        elif line.strip() == "break;" or (line.strip() == "}" and pending and current):
            for t in pending:
                regexes[t] = current
            pending, current = [], []
    if pending:
        for t in pending:
            regexes[t] = current
    chain = text[text.index('} else if (tokenizer_pre == "default") {'):]
    chain = chain[:chain.index("} else if (type == LLAMA_VOCAB_TYPE_SPM) {")]
    names, ignore, types = [], {}, {}
    block_names, block_type = [], None
    for line in chain.splitlines():
        block_names += re.findall(r'tokenizer_pre == "([^"]+)"', line)
        if m := re.search(r"pre_type = LLAMA_VOCAB_PRE_TYPE_(\w+);", line):
            block_type = m.group(1)
            for n in block_names:
                types[n] = block_type
                names.append(n)
            last = block_names
            block_names = []
        if "ignore_merges = true" in line:
            for n in last:
                ignore[n] = True
    families = {}
    for n in names:
        t = types[n]
        if t in SKIPPED_TYPES:
            continue
        key = (tuple(regexes[t]), ignore.get(n, False))
        families.setdefault(key, []).append(n)
    return [(list(k[0]), v, k[1]) for k, v in families.items()], len(names)


def pipeline(tokens, merges, splits, ignore_merges):
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = tokenizers.Tokenizer(BPE(vocab, [tuple(m.split(" ")) for m in merges],
                                   ignore_merges=ignore_merges))
    steps = [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in splits]
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([tokenizers.AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tok


def main():
    # Everything but the README is remade.
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.name != "README.md":
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    tokens, merges = train()
    write_gguf(OUT / "base.gguf", tokens, merges, "gpt-2")
    families, mapped = llama_cpp_families()
    gpt2_split = None
    work = pathlib.Path(tempfile.mkdtemp())
    expected = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                "llama_cpp_names": mapped, "families": []}
    for splits, names, ignore_merges in families:
        if "gpt-2" in names:
            gpt2_split = splits
    for splits, names, ignore_merges in families:
        name = names[0]
        known = name in GGUF_PRE_TOKENIZER_SPLITS or splits == gpt2_split
        write_gguf(work / f"{name}.gguf", tokens, merges, name)
        hf = AutoTokenizer.from_pretrained(work, gguf_file=f"{name}.gguf") if known else None
        ours = pipeline(tokens, merges, splits, ignore_merges)
        cases, disagree = [], 0
        for text in TEXTS:
            regex_ids = ours.encode(text).ids
            ids = hf(text, add_special_tokens=False)["input_ids"] if known else regex_ids
            disagree += ids != regex_ids
            cases.append({"text": text, "ids": ids, "llama_cpp_regex_ids": regex_ids,
                          "decoded": ours.decode(ids, skip_special_tokens=False)})
        expected["families"].append({
            "names": names, "ignore_merges": ignore_merges, "splits": splits,
            "source": "transformers" if known else "llama.cpp regexes", "cases": cases})
        print(f"{name}: {len(names)} names, {len(splits)} regexes, ignore_merges={ignore_merges}, "
              f"{'transformers' if known else 'regexes'}; transformers/regex disagree on {disagree}")
    shutil.rmtree(work)
    distinct = {tuple(tuple(c["ids"]) for c in f["cases"]) for f in expected["families"]}
    print(f"{len(expected['families'])} families, {len(distinct)} distinct id sets, "
          f"{sum(len(f['names']) for f in expected['families'])} of {mapped} names")
    (OUT / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
