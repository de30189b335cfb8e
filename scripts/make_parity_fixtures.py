#!/usr/bin/env python3
"""Build Hugging Face `transformers` reference fixtures for genarm's parity tests.

What it makes (everything under tests/data/parity/, which is deleted and rebuilt):

  models/<name>/     tiny, randomly initialised causal LMs in the Hugging Face layout
                     (config.json, generation_config.json, tokenizer.json,
                     tokenizer_config.json, weights)
  cases.json         guided greedy decoding and teacher-forced scoring results
                     computed with transformers (eager attention, no KV cache)
  README.md          how it was made, versions, the format of cases.json, statistics

GenARM guidance at each step (L = smallest logit length over the models of a case):

    guided = log_softmax( log_softmax(base[:L]) + sum_i w_i * log_softmax(arm_i[:L]) )

Run from the repository root (CPU only, takes about 15 seconds):

    /work/pyenv/bin/python scripts/make_parity_fixtures.py

The script is deterministic: fixed seeds, one CPU thread, no network.
"""

import argparse
import copy
import json
import math
import os
import platform
import random
import shutil

import numpy as np
import torch

import safetensors
import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "data", "parity")
COMMAND = "/work/pyenv/bin/python scripts/make_parity_fixtures.py"

F32_TOLERANCE = 1e-4
MIN_MARGIN = 1e-3  # required gap between the top-1 and top-2 guided log-probs at every generated step

# --------------------------------------------------------------------------------------------
# Training corpus (written for this script).  It contains some non-ASCII words so that the
# tokenizers learn a few multi-byte characters; rare characters (emoji, CJK) stay out of the
# learned alphabet so that the Llama tokenizer has to use byte fallback for them.
# --------------------------------------------------------------------------------------------

SENTENCES = """
Hello world, how are you today?
Hello wörld, this is a small test of the tokenizer.
The quick brown fox jumps over the lazy dog.
How do I bake bread at home?
To bake bread, mix flour, water and salt, then add yeast.
Knead the dough for ten minutes and let it rest for an hour.
The oven should be hot before you put the bread inside.
She ordered a café au lait and a croissant at the small café.
The café in Zürich serves crème brûlée every Sunday.
He was naïve to think the façade would hide the cracks.
My résumé lists three jobs and two languages.
The piñata broke and sweets fell on the floor.
We flew from São Paulo to Zürich in the spring.
The Größe of the shoe was wrong, so she returned it.
The children sang a song über the mountains.
A jalapeño makes the sauce spicy and bright.
The smörgåsbord had fish, bread, cheese and fruit.
It felt like déjà vu when we returned to the old town.
His fiancée works as a nurse in the city hospital.
The distance is measured in ångström units in physics.
The price is 5 € for a coffee and 3 € for water.
Please be helpful, honest and harmless when you answer.
I am happy to help you with your question.
Sure, here is a simple recipe for bread.
Sure: mix flour, water and salt, then wait.
Thank you for your help, that was very kind.
I cannot help with that request, but I can suggest something else.
It is important to be safe when you use a sharp knife.
Always wash your hands before you cook.
The weather is nice today, so we walk to the park.
The river runs through the valley and into the sea.
The stars above the mountains were bright and clear.
The wind was cold and the sea was grey.
A short poem about the sea: waves rise, waves fall, the sea keeps them all.
In the small village near the river, the baker woke early every morning.
The baker prepared fresh bread for the travellers who passed through.
Travellers often stop at the village to buy bread and cheese.
The teacher explained the lesson with patience and care.
Students read books, write essays and solve problems.
The library is open from nine in the morning until six in the evening.
Learning a new language takes time, practice and patience.
The computer program reads a file and prints the result.
The model predicts the next token from the previous tokens.
A reward model scores each answer and guides the decoding.
The base model and the reward model share one tokenizer.
Guided decoding combines the scores of several models.
We tested the program with short and long sentences.
The answer should be clear, correct and polite.
Tell me a story about a dragon who loved to read.
Once upon a time, a little dragon lived in a cave near the sea.
The dragon read every book in the village library.
The king asked the dragon for advice about the harvest.
Write a short letter to a friend about your holiday.
Dear friend, the holiday was wonderful and the food was great.
We visited the museum, the old church and the market.
The market sold apples, pears, grapes and fresh herbs.
My favourite colour is blue, but I also like green.
The cat sleeps on the sofa while the dog plays outside.
The dog barked at the postman every morning.
Can you explain how a rainbow forms?
A rainbow forms when sunlight passes through drops of rain.
Light bends as it enters the water and splits into colours.
What is the capital of France? The capital of France is Paris.
What is the capital of Japan? The capital of Japan is Tokyo.
Berlin is the capital of Germany and a large city.
The train leaves at seven and arrives at noon.
Please close the door when you leave the room.
The meeting was moved to Tuesday afternoon.
He plays the piano and she plays the violin.
The garden is full of roses, tulips and daisies.
Water boils at one hundred degrees at sea level.
Ice melts when the temperature rises above zero.
The moon moves around the earth once a month.
The earth moves around the sun once a year.
Plants need light, water and air to grow.
Exercise and sleep are good for your health.
Drink enough water on a hot summer day.
Do not share your password with anyone.
It is not safe to leave a candle burning at night.
If you feel sick, please see a doctor.
The doctor said the child should rest for a few days.
The new bridge connects the two parts of the town.
Engineers measure the size and weight of every part.
The factory makes chairs, tables and small boxes.
Our team won the match after a long and hard game.
The crowd cheered when the ball went into the net.
The recipe needs two eggs, a cup of milk and some sugar.
Mix the eggs with the sugar, then add the milk slowly.
Bake the cake for thirty minutes in a warm oven.
Let the cake cool before you cut it.
Fresh bread smells wonderful in the morning.
He bought a loaf of bread and a bottle of milk.
The shop on the corner sells bread, milk and newspapers.
Please answer the question in a friendly way.
A helpful answer explains the steps one by one.
A harmless answer avoids danger and respects people.
An honest answer admits when it does not know.
I do not know the answer, but I can look for it.
Let me think about the problem step by step.
First, read the question. Second, plan the answer. Third, write it down.
The naïve approach is slow, but it is easy to understand.
The résumé was short, clear and well written.
The façade of the old building was painted white.
In Zürich, the lake is calm and the streets are clean.
The crème brûlée was sweet, cold and smooth.
The café served coffee, tea and cake to the guests.
The wörld is big, and there is much to learn.
She said hello to the wörld with a big smile.
We met a naïve young man at the café.
Schön, the word means beautiful in German.
The über fast train goes from Berlin to München.
Mañana means tomorrow in Spanish.
The señor and the señora walked to the plaza.
Ça va? Oui, ça va très bien, merci.
Noël is a time for family and food.
The Ærø island is small and quiet.
Ølstykke is a town in Denmark.
Straße is the German word for street.
The smile on her face said more than words.
Big data, small models and careful tests.
Rust programs are fast and safe.
Python scripts are easy to write and to read.
The fixture files are small and easy to check.
Numbers like 1, 2, 3 and 42 appear in the text.
The year 2024 was warm, and 2025 was warmer.
Call me at 555 0100 after 6 pm.
It costs 12 dollars and 50 cents.
The room is 4 metres wide and 5 metres long.
Use a sharp pencil and a clean sheet of paper.
Good morning! Good evening! Good night!
Why is the sky blue? Because air scatters blue light more than red light.
Where is the station? It is two streets away.
When does the shop open? It opens at eight.
Who wrote this book? A woman from the north wrote it.
Which road goes to the sea? The road on the left.
""".strip().splitlines()

SUBJECTS = ["The baker", "My friend", "The old man", "A young girl", "The teacher", "Our neighbour",
            "The dragon", "The doctor", "A traveller", "The cook", "The student", "Her brother"]
VERBS = ["bakes", "reads", "writes", "finds", "likes", "cleans", "paints", "sells", "carries", "opens",
         "helps with", "talks about"]
OBJECTS = ["fresh bread", "a long letter", "the old book", "a small café", "the crème brûlée", "the river map",
           "a red apple", "the wooden door", "a warm coat", "the naïve plan", "the résumé", "a cup of tea"]
PLACES = ["in the morning", "at the market", "near the river", "in Zürich", "after dinner", "at home",
          "in the village", "before noon", "in the garden", "at the station"]


def training_corpus():
    """A few hundred English sentences: the hand-written ones above plus seeded combinations."""
    rng = random.Random(1234)
    lines = [s.strip() for s in SENTENCES if s.strip()]
    for _ in range(220):
        lines.append(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}.")
    return lines


# --------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------

LLAMA_SPECIALS = ["<unk>", "<s>", "</s>"]
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def build_llama_tokenizer(corpus):
    """Llama-2 style SentencePiece-like BPE with byte fallback.

    ids: <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF> = 3..258, then the learned alphabet and merges.
    """
    # Characters seen only once are removed from the training text, so they are not in the learned alphabet
    # and need byte fallback.  (Done here rather than with BpeTrainer(limit_alphabet=...), whose tie-breaking
    # between equally frequent characters is not deterministic.)
    counts = {}
    for line in corpus:
        for ch in line:
            counts[ch] = counts.get(ch, 0) + 1
    rare = {ch for ch, n in counts.items() if n < 2}
    train_text = ["".join(ch for ch in line if ch not in rare) for line in corpus]
    # Train with a splitting Metaspace so that no merge crosses a word boundary (as in SentencePiece).
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=180, special_tokens=[], show_progress=False)
    trainer_tok.train_from_iterator(train_text, trainer=trainer)
    learned = json.loads(trainer_tok.to_str())["model"]
    learned_vocab = sorted(learned["vocab"].items(), key=lambda kv: kv[1])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]

    vocab = {}
    for t in LLAMA_SPECIALS:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in learned_vocab:
        assert t not in vocab, t
        vocab[t] = len(vocab)

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(content=" ", left=1, right=0)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA_SPECIALS])
    tok.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", vocab["<s>"])]
    )
    assert [tok.token_to_id(t) for t in LLAMA_SPECIALS] == [0, 1, 2]
    assert tok.token_to_id("<0x00>") == 3 and tok.token_to_id("<0xFF>") == 258
    return tok


def llama_plus_pad(tok):
    t = Tokenizer.from_str(tok.to_str())
    n = t.get_vocab_size(with_added_tokens=True)
    t.add_special_tokens([AddedToken("<pad>", special=True, normalized=False)])
    assert t.token_to_id("<pad>") == n
    return t


def build_qwen_tokenizer(corpus):
    """Qwen2 style byte-level BPE: NFC, Qwen2 split regex, ByteLevel(add_prefix_space=False), no BOS."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=440, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[], show_progress=False
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    n = tok.get_vocab_size(with_added_tokens=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIALS])
    assert [tok.token_to_id(t) for t in QWEN_SPECIALS] == [n, n + 1, n + 2]
    return tok


def added_tokens_decoder(tok):
    out = {}
    for tid, at in sorted(tok.get_added_tokens_decoder().items()):
        out[str(tid)] = {
            "content": at.content,
            "lstrip": at.lstrip,
            "normalized": at.normalized,
            "rstrip": at.rstrip,
            "single_word": at.single_word,
            "special": at.special,
        }
    return out


def llama_tokenizer_config(tok, with_pad):
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": added_tokens_decoder(tok),
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": 256,
        "pad_token": "<pad>" if with_pad else None,
        "padding_side": "left",
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
    }
    return cfg


def qwen_tokenizer_config(tok):
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added_tokens_decoder(tok),
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 256,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def dumps_compact_records(obj, indent=0):
    """JSON with 2-space indentation, except that token records and short lists sit on one line each."""
    pad, pad1 = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if "token_id" in obj or not obj:
            return json.dumps(obj, ensure_ascii=False)
        items = [f"{pad1}{json.dumps(k, ensure_ascii=False)}: {dumps_compact_records(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if not obj or all(not isinstance(v, (dict, list)) for v in obj):
            return json.dumps(obj, ensure_ascii=False)
        items = [pad1 + dumps_compact_records(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_tokenizer(folder, tok, tok_cfg):
    tok.save(os.path.join(folder, "tokenizer.json"), pretty=True)
    write_json(os.path.join(folder, "tokenizer_config.json"), tok_cfg)


TOKENIZER_PROBES = [
    "Hello wörld 😀, how do I bake bread?",
    " Sure: mix flour, wätér and salt — 日本 😀.",
    "Hello",
    " Hello",
    "  two leading spaces",
    "trailing space ",
    "line one\nline two\n\n  indented",
    "<s>literal special</s> text <unk>",
    "<|im_start|>user\nhi<|im_end|>",
    "Numbers 12345 and 3.14159!",
    "Größe über Zürich café naïve façade crème brûlée ÆØÅ æøå",
    "Emoji 😀👍🏽 and CJK 日本語 and Cyrillic Москва",
    "tab\tseparated\tvalues",
    "",
]


def check_tokenizer_folder(folder, tok, expect_bos):
    """AutoTokenizer (as transformers 5 builds it from the folder) must agree with the raw tokenizer.json."""
    raw = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    assert raw.to_str() == tok.to_str()
    hf = AutoTokenizer.from_pretrained(folder)
    # the generic class loads tokenizer.json verbatim (AutoTokenizer picks the model-specific class, which rebuilds)
    generic = PreTrainedTokenizerFast.from_pretrained(folder)
    assert len(hf) == tok.get_vocab_size(with_added_tokens=True), (folder, len(hf))
    for s in TOKENIZER_PROBES:
        for special in (True, False):
            a = hf(s, add_special_tokens=special)["input_ids"]
            b = raw.encode(s, add_special_tokens=special).ids
            assert a == b, (folder, s, special, a, b)
            assert generic(s, add_special_tokens=special)["input_ids"] == b, (folder, s, special)
            if special and expect_bos:
                assert a[:1] == [hf.bos_token_id] and hf.bos_token_id == 1, (folder, a)
            if not expect_bos:
                assert hf.bos_token_id is None
            da = hf.decode(a, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            db = raw.decode(b, skip_special_tokens=True)
            assert da == db, (folder, s, da, db)
    return type(hf).__name__


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

# Seeds of the random weights (chosen so that no case has a near-tie or an accidental eos).
SEEDS = {"llama_base": 1008, "llama_arm_helpful": 1002, "llama_arm_harmless": 1003, "llama3_scaled": 1004,
         "qwen2_base": 2001, "qwen2_arm": 2002, "mistral_base": 3001, "mistral_arm": 3002}

PAD_ROW_SCALE = 3.0  # llama_arm_harmless: its lm_head row for <pad> is multiplied by this

INIT = {"embed": 1.0, "proj": 0.1, "lm_head": 0.5, "norm_jitter": 0.1, "bias": 0.1}


@torch.no_grad()
def randomize(model, seed):
    """Overwrite every parameter (biases and norm weights included) with seeded random values."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith(".bias"):
            v = torch.randn(p.shape, generator=g) * INIT["bias"]
        elif "norm" in name:
            v = 1.0 + torch.randn(p.shape, generator=g) * INIT["norm_jitter"]
        elif "embed_tokens" in name:
            # a tied embedding is also the output projection: give it the lm_head scale
            scale = INIT["lm_head"] if model.config.tie_word_embeddings else INIT["embed"]
            v = torch.randn(p.shape, generator=g) * scale
        elif name == "lm_head.weight":
            v = torch.randn(p.shape, generator=g) * INIT["lm_head"]
        else:
            v = torch.randn(p.shape, generator=g) * INIT["proj"]
        p.copy_(v.to(p.dtype))


def llama_config(vocab_size, **over):
    kw = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        hidden_act="silu",
    )
    kw.update(over)
    return LlamaConfig(**kw)


def mistral_config(vocab_size):
    return MistralConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        sliding_window=8,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )


def qwen2_config(vocab_size, tie, eos_id, bos_id):
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=tie,
        use_sliding_window=False,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )


def build_model(cls, config, seed):
    torch.manual_seed(seed)
    model = cls(config)
    randomize(model, seed)
    model.eval()
    return model


def save_model(model, folder, gen_cfg, **kw):
    model.save_pretrained(folder, **kw)
    gen_cfg.save_pretrained(folder)


def write_tf4_config(src_folder, dst_folder):
    """Rewrite a transformers-5 config.json in the transformers-4 style (rope_theta/rope_scaling/torch_dtype)."""
    with open(os.path.join(src_folder, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    assert rope["rope_type"] == "default", rope
    cfg["rope_theta"] = rope["rope_theta"]
    cfg["rope_scaling"] = None
    cfg["torch_dtype"] = cfg.pop("dtype")
    cfg["transformers_version"] = "4.46.3"
    write_json(os.path.join(dst_folder, "config.json"), dict(sorted(cfg.items())))


def save_bin_shards(model, folder, n_shards):
    """Sharded PyTorch pickle checkpoint + pytorch_model.bin.index.json (transformers 5 only writes safetensors)."""
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    names = list(sd.keys())
    per = math.ceil(len(names) / n_shards)
    weight_map, total = {}, 0
    for i in range(n_shards):
        fname = f"pytorch_model-{i + 1:05d}-of-{n_shards:05d}.bin"
        shard = {k: sd[k] for k in names[i * per : (i + 1) * per]}
        torch.save(shard, os.path.join(folder, fname))
        for k, v in shard.items():
            weight_map[k] = fname
            total += v.numel() * v.element_size()
    write_json(os.path.join(folder, "pytorch_model.bin.index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})


# --------------------------------------------------------------------------------------------
# Reference computation
# --------------------------------------------------------------------------------------------


def load(folder, dtype):
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager")
    m.eval()
    return m


@torch.no_grad()
def forward_logits(model, ids):
    """Full forward without KV cache; returns float32 logits [seq, vocab]."""
    x = torch.tensor([ids], dtype=torch.long)
    out = model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False)
    return out.logits[0].float()


def guide(base_logits, arm_logits, weights):
    """The GenARM combination on one position.  All float32."""
    L = min([base_logits.shape[-1]] + [a.shape[-1] for a in arm_logits])
    base_lp = torch.log_softmax(base_logits[:L].float(), dim=-1)
    arm_lps = [torch.log_softmax(a[:L].float(), dim=-1) for a in arm_logits]
    combined = base_lp.clone()
    for w, lp in zip(weights, arm_lps):
        combined = combined + w * lp
    guided = torch.log_softmax(combined, dim=-1)
    return base_lp, arm_lps, guided


def token_record(tok, base_lp, arm_lps, arm_names, guided):
    top_v, top_i = torch.topk(guided, 5)
    return {
        "token_id": int(tok),
        "base_logprob": float(base_lp[tok]),
        "arms": {n: float(lp[tok]) for n, lp in zip(arm_names, arm_lps)},
        "guided_logprob": float(guided[tok]),
        "top": [{"token_id": int(i), "guided_logprob": float(v)} for v, i in zip(top_v, top_i)],
    }


def guided_generate(base, arms, arm_names, weights, prompt_ids, max_new_tokens, eos_ids):
    seq = list(prompt_ids)
    records, margins, full = [], [], []
    reason = "max_tokens"
    for _ in range(max_new_tokens):
        base_logits = forward_logits(base, seq)[-1]
        arm_logits = [forward_logits(a, seq)[-1] for a in arms]
        base_lp, arm_lps, guided = guide(base_logits, arm_logits, weights)
        top2 = torch.topk(guided, 2).values
        tok = int(torch.argmax(guided))
        margins.append(float(top2[0] - top2[1]))
        records.append(token_record(tok, base_lp, arm_lps, arm_names, guided))
        full.append((base_lp, arm_lps, guided))
        seq.append(tok)
        if tok in eos_ids:
            reason = "eos"
            break
    return records, reason, margins, full


def score(base, arms, arm_names, weights, prompt_ids, response_ids):
    seq = list(prompt_ids) + list(response_ids)
    base_logits = forward_logits(base, seq)
    arm_logits = [forward_logits(a, seq) for a in arms]
    records, full = [], []
    for j, tok in enumerate(response_ids):
        pos = len(prompt_ids) + j - 1
        base_lp, arm_lps, guided = guide(base_logits[pos], [a[pos] for a in arm_logits], weights)
        records.append(token_record(tok, base_lp, arm_lps, arm_names, guided))
        full.append((base_lp, arm_lps, guided))
    return records, full


def eos_ids_of(folder):
    with open(os.path.join(folder, "generation_config.json"), encoding="utf-8") as f:
        e = json.load(f).get("eos_token_id")
    if e is None:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            e = json.load(f).get("eos_token_id")
    return sorted(e) if isinstance(e, list) else [e]


def max_abs_diff_full(a_full, b_full):
    """Max |a-b| over the whole shared vocabulary for base, every ARM, and guided, over all positions."""
    d = 0.0
    for (ab, aa, ag), (bb, ba, bg) in zip(a_full, b_full):
        d = max(d, float((ab - bb).abs().max()), float((ag - bg).abs().max()))
        for x, y in zip(aa, ba):
            d = max(d, float((x - y).abs().max()))
    return d


def max_abs_diff_records(a_recs, b_recs):
    """Max |a-b| over the recorded fields of token records whose token ids agree."""
    d = 0.0
    for a, b in zip(a_recs, b_recs):
        if a["token_id"] != b["token_id"]:
            break
        d = max(d, abs(a["base_logprob"] - b["base_logprob"]), abs(a["guided_logprob"] - b["guided_logprob"]))
        for k in a["arms"]:
            d = max(d, abs(a["arms"][k] - b["arms"][k]))
        bt = {t["token_id"]: t["guided_logprob"] for t in b["top"]}
        for t in a["top"]:
            if t["token_id"] in bt:
                d = max(d, abs(t["guided_logprob"] - bt[t["token_id"]]))
    return d


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

GUIDED_PROMPT = "Hello wörld 😀, how do I bake bread?"
GUIDED_RESPONSE = " Sure: mix flour, wätér and salt — 日本 😀."

CASES = [
    dict(name="llama_guided", base="llama_base", arms=[("helpful", "llama_arm_helpful", 1.0), ("harmless", "llama_arm_harmless", 0.5)],
         prompt=GUIDED_PROMPT, response=GUIDED_RESPONSE, max_new_tokens=16),
    dict(name="llama_tf4_guided", base="llama_base_tf4", arms=[("helpful", "llama_arm_helpful", 1.0), ("harmless", "llama_arm_harmless", 0.5)],
         prompt=GUIDED_PROMPT, response=GUIDED_RESPONSE, max_new_tokens=16, same_as="llama_guided"),
    dict(name="llama_negative", base="llama_base", arms=[("helpful", "llama_arm_helpful", -0.7)],
         prompt="Tell me a story about the café in Zürich.", response=" Once upon a time, a naïve dragon ordered crème brûlée.",
         max_new_tokens=16),
    dict(name="llama_base_only", base="llama_base", arms=[],
         prompt="The quick brown fox jumps over the lazy dog.", response=" The dog barked at the fox — ça va?",
         max_new_tokens=16, check_generate=True),
    dict(name="llama_bin_guided", base="llama_base_bin", arms=[("helpful", "llama_arm_helpful", 1.0), ("harmless", "llama_arm_harmless", 0.5)],
         prompt=GUIDED_PROMPT, response=GUIDED_RESPONSE, max_new_tokens=16, same_as="llama_guided"),
    dict(name="llama_sharded_guided", base="llama_base_sharded", arms=[("helpful", "llama_arm_helpful", 1.0), ("harmless", "llama_arm_harmless", 0.5)],
         prompt=GUIDED_PROMPT, response=GUIDED_RESPONSE, max_new_tokens=16, same_as="llama_guided"),
    dict(name="llama_bf16_disk", base="llama_base_bf16", arms=[("helpful", "llama_arm_helpful", 1.0)],
         prompt=None, response=GUIDED_RESPONSE, max_new_tokens=16),  # prompt: see select_bf16_prompt
    dict(name="llama_bf16_compute", base="llama_base_bf16", arms=[("helpful", "llama_arm_helpful", 1.0)],
         prompt=None, response=GUIDED_RESPONSE, max_new_tokens=16, dtype="bf16", f32_twin="llama_bf16_disk"),
    dict(name="llama3_scaled_base_only", base="llama3_scaled", arms=[],
         prompt="In the small village near the river, the baker woke early every morning to prepare fresh bread "
                "for the naïve travellers who passed through Zürich.",
         response=" The travellers bought bread, cheese and 😀 apples.", max_new_tokens=16, check_generate=True,
         min_prompt_tokens=20),
    dict(name="qwen2_guided", base="qwen2_base", arms=[("arm", "qwen2_arm", 1.5)],
         prompt="Hello wörld 😀! Explain crème brûlée in 日本 style.",
         response=" Of course — crème brûlée is a café favourite 😀.", max_new_tokens=16),
    dict(name="mistral_guided", base="mistral_base", arms=[("arm", "mistral_arm", 1.0)],
         prompt="Please write a short poem about the sea, the wind and the stars above Zürich.",
         response=" The sea is calm; the wind is cold — the stars are bright 😀.", max_new_tokens=16,
         min_prompt_tokens=12),
    # Extra: a guided case that stops on eos.  The prompt is the first training sentence for which guided
    # decoding emits </s> (see select_eos_prompt); random models rarely do, so it has to be searched for.
    dict(name="llama_eos_stop", base="llama_base", arms=[("helpful", "llama_arm_helpful", 1.0), ("harmless", "llama_arm_harmless", 0.5)],
         prompt=None, response=" Sure.</s>", max_new_tokens=16, expect_eos=True),
]

# Candidate prompts for the bf16 pair of cases, tried before the training sentences (see select_bf16_prompt).
# bf16 logits are quantised (a step of 1/16..1/8 at |logit| 8..32), so bf16 and f32 greedy decoding often
# disagree, or nearly tie, somewhere in 16 steps; the search finds a prompt where they robustly agree.
BF16_PROMPT_CANDIDATES = [
    GUIDED_PROMPT,
    "Hello wörld 😀, please tell me how to bake bread.",
    "Hello wörld 😀, what is the capital of France?",
    "Hello wörld 😀, how do I make crème brûlée?",
    "Hello wörld 😀, why is the sky blue?",
    "Hello wörld 😀, can you explain how a rainbow forms?",
    "Hello wörld 😀, write a short poem about the sea.",
    "Hello wörld 😀, tell me a story about a dragon.",
]


class Ctx:
    """Loaded models and tokenizers, each loaded once from the written folders."""

    def __init__(self, out_dir):
        self.mdir = os.path.join(out_dir, "models")
        self.models, self.toks, self.cases = {}, {}, {}
        self.bf16_search = []

    def model(self, name, dtype):
        key = (name, dtype)
        if key not in self.models:
            self.models[key] = load(os.path.join(self.mdir, name), torch.bfloat16 if dtype == "bf16" else torch.float32)
        return self.models[key]

    def tok(self, name):
        if name not in self.toks:
            self.toks[name] = AutoTokenizer.from_pretrained(os.path.join(self.mdir, name))
        return self.toks[name]

    def setup(self, spec, dtype=None):
        dtype = dtype or spec.get("dtype", "f32")
        base = self.model(spec["base"], dtype)
        arm_names = [a[0] for a in spec["arms"]]
        arms = [self.model(a[1], dtype) for a in spec["arms"]]
        weights = [a[2] for a in spec["arms"]]
        eos_ids = eos_ids_of(os.path.join(self.mdir, spec["base"]))
        return base, arm_names, arms, weights, eos_ids


def run_case(spec, ctx):
    dtype = spec.get("dtype", "f32")
    hf_tok = ctx.tok(spec["base"])
    base, arm_names, arms, weights, eos_ids = ctx.setup(spec)

    prompt_ids = hf_tok(spec["prompt"])["input_ids"]
    assert len(prompt_ids) >= spec.get("min_prompt_tokens", 1), (spec["name"], len(prompt_ids))
    response_ids = hf_tok(spec["response"], add_special_tokens=False)["input_ids"]

    n_new = spec["max_new_tokens"]
    recs, reason, margins, gen_full = guided_generate(base, arms, arm_names, weights, prompt_ids, n_new, eos_ids)
    gen_ids = [r["token_id"] for r in recs]
    if spec.get("expect_eos"):
        assert reason == "eos", (spec["name"], "expected eos", gen_ids)
    else:
        assert reason == "max_tokens", (spec["name"], "unexpected eos", gen_ids)
    if dtype == "f32":
        assert min(margins) > MIN_MARGIN, (spec["name"], "near tie", margins)

    # Sanity: teacher-forcing the generated tokens in one forward reproduces the step-by-step numbers.
    tf_recs, _ = score(base, arms, arm_names, weights, prompt_ids, gen_ids)
    if dtype == "f32":
        assert max_abs_diff_records(recs, tf_recs) < 1e-5, spec["name"]

    stats = {"min_margin": min(margins), "n_generated": len(gen_ids), "prompt_len": len(prompt_ids)}
    if spec.get("check_generate"):
        x = torch.tensor([prompt_ids])
        with torch.no_grad():
            out = base.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                                max_new_tokens=n_new, pad_token_id=eos_ids[0])
        hf_ids = out[0, len(prompt_ids):].tolist()
        assert hf_ids == gen_ids, (spec["name"], hf_ids, gen_ids)
        stats["hf_generate_matches"] = True

    s_recs, s_full = score(base, arms, arm_names, weights, prompt_ids, response_ids)
    L = min([base.config.vocab_size] + [a.config.vocab_size for a in arms])
    case = {
        "name": spec["name"],
        "base": spec["base"],
        "arms": [{"name": n, "path": p} for n, p, _ in spec["arms"]],
        "weights": {n: w for n, _, w in spec["arms"]},
        "dtype": dtype,
        "tolerance": F32_TOLERANCE,
        "prompt": spec["prompt"],
        "max_new_tokens": n_new,
        "eos_token_ids": eos_ids,
        "shared_vocab_size": L,
        "generate": {
            "prompt_token_ids": prompt_ids,
            "tokens": recs,
            "reason": reason,
            "text": hf_tok.decode(gen_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False),
        },
        "score": {
            "response": spec["response"],
            "response_token_ids": response_ids,
            "tokens": s_recs,
            "base_logprob_sum": float(sum(r["base_logprob"] for r in s_recs)),
            "arm_logprob_sums": {n: float(sum(r["arms"][n] for r in s_recs)) for n in arm_names},
        },
    }
    if stats.get("hf_generate_matches"):
        case["generate"]["hf_generate_matches"] = True
    return case, stats, gen_full, s_full


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    out = os.path.abspath(args.out)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if os.path.isdir(out):
        shutil.rmtree(out)
    mdir = os.path.join(out, "models")
    os.makedirs(mdir)

    # ---- tokenizers
    corpus = training_corpus()
    t_llama = build_llama_tokenizer(corpus)
    t_llama_pad = llama_plus_pad(t_llama)
    t_qwen = build_qwen_tokenizer(corpus)
    n_llama = t_llama.get_vocab_size(with_added_tokens=True)
    n_qwen = t_qwen.get_vocab_size(with_added_tokens=True)
    qwen_eot, qwen_im_start, qwen_im_end = (t_qwen.token_to_id(t) for t in QWEN_SPECIALS)

    llama_gen = GenerationConfig(bos_token_id=1, eos_token_id=2)
    qwen_gen = GenerationConfig(bos_token_id=qwen_eot, pad_token_id=qwen_eot, eos_token_id=[qwen_im_end, qwen_eot])

    def folder(name):
        p = os.path.join(mdir, name)
        os.makedirs(p, exist_ok=True)
        return p

    def llama_tok_files(name, pad=False):
        t = t_llama_pad if pad else t_llama
        write_tokenizer(folder(name), t, llama_tokenizer_config(t, pad))

    # ---- llama family
    llama_base = build_model(LlamaForCausalLM, llama_config(n_llama), seed=SEEDS["llama_base"])
    save_model(llama_base, folder("llama_base"), llama_gen)
    llama_tok_files("llama_base")

    for fname in os.listdir(folder("llama_base")):
        if fname != "config.json":
            shutil.copy(os.path.join(mdir, "llama_base", fname), os.path.join(folder("llama_base_tf4"), fname))
    write_tf4_config(folder("llama_base"), folder("llama_base_tf4"))

    helpful = build_model(LlamaForCausalLM, llama_config(n_llama), seed=SEEDS["llama_arm_helpful"])
    save_model(helpful, folder("llama_arm_helpful"), llama_gen)
    llama_tok_files("llama_arm_helpful")

    harmless = build_model(LlamaForCausalLM, llama_config(n_llama + 1, pad_token_id=n_llama), seed=SEEDS["llama_arm_harmless"])
    with torch.no_grad():
        # Make the extra <pad> logit large so that cutting before log_softmax (the vocabulary rule) matters a lot.
        harmless.lm_head.weight[n_llama] *= PAD_ROW_SCALE
    save_model(harmless, folder("llama_arm_harmless"), GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=n_llama))
    llama_tok_files("llama_arm_harmless", pad=True)

    bf16 = copy.deepcopy(llama_base).to(torch.bfloat16)
    save_model(bf16, folder("llama_base_bf16"), llama_gen)
    llama_tok_files("llama_base_bf16")

    llama_base.config.save_pretrained(folder("llama_base_bin"))
    llama_gen.save_pretrained(folder("llama_base_bin"))
    save_bin_shards(llama_base, folder("llama_base_bin"), n_shards=3)
    llama_tok_files("llama_base_bin")

    save_model(llama_base, folder("llama_base_sharded"), llama_gen, max_shard_size="200KB")
    llama_tok_files("llama_base_sharded")

    llama3 = build_model(
        LlamaForCausalLM,
        llama_config(
            n_llama,
            max_position_embeddings=512,
            rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        ),
        seed=SEEDS["llama3_scaled"],
    )
    save_model(llama3, folder("llama3_scaled"), llama_gen)
    llama_tok_files("llama3_scaled")

    # ---- qwen2
    qwen_tok_cfg = qwen_tokenizer_config(t_qwen)
    qb = build_model(Qwen2ForCausalLM, qwen2_config(n_qwen, True, qwen_im_end, qwen_eot), seed=SEEDS["qwen2_base"])
    assert qb.lm_head.weight.data_ptr() == qb.model.embed_tokens.weight.data_ptr()
    save_model(qb, folder("qwen2_base"), qwen_gen)
    write_tokenizer(folder("qwen2_base"), t_qwen, qwen_tok_cfg)
    qa = build_model(Qwen2ForCausalLM, qwen2_config(n_qwen, False, qwen_im_end, qwen_eot), seed=SEEDS["qwen2_arm"])
    save_model(qa, folder("qwen2_arm"), qwen_gen)
    write_tokenizer(folder("qwen2_arm"), t_qwen, qwen_tok_cfg)

    # ---- mistral
    mb = build_model(MistralForCausalLM, mistral_config(n_llama), seed=SEEDS["mistral_base"])
    save_model(mb, folder("mistral_base"), llama_gen)
    llama_tok_files("mistral_base")
    ma = build_model(MistralForCausalLM, mistral_config(n_llama), seed=SEEDS["mistral_arm"])
    save_model(ma, folder("mistral_arm"), llama_gen)
    llama_tok_files("mistral_arm")

    # ---- checks on the written folders
    notes = check_folders(mdir, t_llama, t_llama_pad, t_qwen)

    # ---- cases
    ctx = Ctx(out)
    select_bf16_prompt(ctx, corpus)
    select_eos_prompt(ctx, corpus)
    cases, stats = [], {}
    for spec in CASES:
        case, st, gen_full, s_full = run_case(spec, ctx)
        if "same_as" in spec:
            ref = next(c for c in cases if c["name"] == spec["same_as"])
            for part in ("generate", "score"):
                a, b = ref[part]["tokens"], case[part]["tokens"]
                assert [r["token_id"] for r in a] == [r["token_id"] for r in b], spec["name"]
                d = max_abs_diff_records(a, b)
                assert d <= 1e-6, (spec["name"], part, d)
                st[f"max_diff_vs_{spec['same_as']}"] = max(st.get(f"max_diff_vs_{spec['same_as']}", 0.0), d)
        if "f32_twin" in spec:
            bf16_postprocess(spec, case, st, ctx)
        cases.append(case)
        ctx.cases[spec["name"]] = case
        stats[spec["name"]] = st
        print(f"{spec['name']:28s} prompt={st['prompt_len']:3d} gen={st['n_generated']:3d} "
              f"min_margin={st['min_margin']:.4f} text={case['generate']['text']!r}")

    with open(os.path.join(out, "cases.json"), "w", encoding="utf-8") as f:
        f.write(dumps_compact_records({"cases": cases}) + "\n")
    with open(os.path.join(out, "cases.json"), encoding="utf-8") as f:
        assert json.load(f) == {"cases": cases}

    # ---- reload everything once more (fresh loads) and re-check one step of each case
    recheck_cases(out, cases)
    notes["kv_cache_checks"] = check_kv_cache_generate(ctx, cases)
    notes["bf16_search"] = ctx.bf16_search
    notes["vocab_rule_effect"] = vocab_rule_effect(ctx, cases)
    np_worst = numpy_crosscheck(out, cases)
    print(f"numpy float64 re-implementation: max |diff| to the fixtures = {np_worst:.3g}")
    notes["numpy_crosscheck"] = np_worst

    for root, _, files in os.walk(out):
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    sizes = {name: dir_size(os.path.join(mdir, name)) for name in sorted(os.listdir(mdir))}
    write_readme(out, cases, stats, notes, sizes, n_llama, n_qwen)
    total = dir_size(out)
    print(f"total size of {out}: {total / 1e6:.2f} MB")


def robust_prefix(ids_a, margins_a, ids_b, margins_b, min_margin):
    """Length of the common greedy prefix on which both runs agree and have top1-top2 margins > min_margin."""
    n = 0
    while (n < min(len(ids_a), len(ids_b)) and ids_a[n] == ids_b[n]
           and margins_a[n] > min_margin and margins_b[n] > min_margin):
        n += 1
    return n


def bf16_vs_f32(ctx, spec, prompt, n_new):
    """Guided greedy decoding of the same models in f32 and in bf16; returns what select/postprocess need."""
    ids = ctx.tok(spec["base"])(prompt)["input_ids"]
    resp = ctx.tok(spec["base"])(spec["response"], add_special_tokens=False)["input_ids"]
    runs = {}
    for dt in ("f32", "bf16"):
        base, arm_names, arms, weights, eos_ids = ctx.setup(spec, dt)
        recs, reason, margins, full = guided_generate(base, arms, arm_names, weights, ids, n_new, eos_ids)
        _, s_full = score(base, arms, arm_names, weights, ids, resp)
        runs[dt] = ([r["token_id"] for r in recs], margins, full, s_full, reason)
    (ia, ma, fa, sa, ra), (ib, mb, fb, sb, rb) = runs["f32"], runs["bf16"]
    agree = 0
    while agree < min(len(ia), len(ib)) and ia[agree] == ib[agree]:
        agree += 1
    dev = max(max_abs_diff_full(fa[:agree], fb[:agree]), max_abs_diff_full(sa, sb))
    return {"f32_ids": ia, "bf16_ids": ib, "f32_margins": ma, "bf16_margins": mb, "agree": agree, "dev": dev,
            "robust": robust_prefix(ia, ma, ib, mb, 2 * dev), "reasons": (ra, rb)}


def select_bf16_prompt(ctx, corpus):
    """Pick the first candidate prompt whose bf16 greedy run stays robustly equal to the f32 run for all
    max_new_tokens steps (same ids, every top1-top2 margin > 2x the bf16 deviation), else the longest one."""
    spec = next(c for c in CASES if c["name"] == "llama_bf16_compute")
    best = None
    for prompt in BF16_PROMPT_CANDIDATES + list(corpus):
        r = bf16_vs_f32(ctx, spec, prompt, spec["max_new_tokens"])
        if r["reasons"] != ("max_tokens", "max_tokens"):
            continue
        ctx.bf16_search.append({"prompt": prompt, "agree": r["agree"], "robust": r["robust"], "dev": r["dev"],
                                "min_bf16_margin": min(r["bf16_margins"]), "reasons": r["reasons"]})
        if best is None or r["robust"] > best[1]["robust"]:
            best = (prompt, r)
        if r["robust"] == spec["max_new_tokens"]:
            break
    assert best is not None and best[1]["robust"] >= 4, best
    for c in CASES:
        if c["name"] in ("llama_bf16_disk", "llama_bf16_compute"):
            c["prompt"] = best[0]


def select_eos_prompt(ctx, corpus):
    spec = next(c for c in CASES if c["name"] == "llama_eos_stop")
    base, arm_names, arms, weights, eos_ids = ctx.setup(spec)
    tok = ctx.tok(spec["base"])
    for prompt in corpus:
        recs, reason, margins, _ = guided_generate(base, arms, arm_names, weights, tok(prompt)["input_ids"],
                                                   spec["max_new_tokens"], eos_ids)
        if reason == "eos" and len(recs) >= 4 and min(margins) > MIN_MARGIN:
            spec["prompt"] = prompt
            return
    raise AssertionError("no training sentence makes the guided llama decoding stop on eos")


def bf16_postprocess(spec, case, st, ctx):
    """Compare the bf16 computation with the f32 computation of the same weights; set tolerance and length."""
    r = bf16_vs_f32(ctx, spec, case["prompt"], spec["max_new_tokens"])
    assert r["bf16_ids"] == [t["token_id"] for t in case["generate"]["tokens"]]
    twin = ctx.cases[spec["f32_twin"]]
    assert r["f32_ids"] == [t["token_id"] for t in twin["generate"]["tokens"]]
    dev_rec = max(max_abs_diff_records(case["generate"]["tokens"], twin["generate"]["tokens"]),
                  max_abs_diff_records(case["score"]["tokens"], twin["score"]["tokens"]))
    # Tolerance: 3x the largest deviation seen over the full vocabulary, rounded up to 2 significant digits.
    tol = 3.0 * r["dev"]
    mag = 10 ** math.floor(math.log10(tol))
    tol = math.ceil(tol / mag * 10) / 10 * mag
    case["tolerance"] = float(f"{tol:.2g}")
    n = r["robust"]
    st.update({
        "bf16_dev_full_vocab": r["dev"], "bf16_dev_recorded": dev_rec, "bf16_tolerance": case["tolerance"],
        "bf16_ids_agree_prefix": r["agree"], "bf16_robust_prefix": n, "bf16_full_ids": r["bf16_ids"],
        "f32_full_ids": r["f32_ids"], "bf16_margins": r["bf16_margins"], "f32_margins": r["f32_margins"],
    })
    if n < len(case["generate"]["tokens"]):
        case["max_new_tokens"] = n
        case["generate"]["tokens"] = case["generate"]["tokens"][:n]
        st["n_generated"] = n
        st["bf16_truncated"] = True
    st["min_margin"] = min(r["bf16_margins"][:n])
    case["generate"]["text"] = ctx.tok(case["base"]).decode(
        [t["token_id"] for t in case["generate"]["tokens"]], skip_special_tokens=True, clean_up_tokenization_spaces=False)


def check_folders(mdir, t_llama, t_llama_pad, t_qwen):
    """Load every folder back with transformers and check structure, tokenizers and weight identity."""
    notes = {}
    ref = load(os.path.join(mdir, "llama_base"), torch.float32).state_dict()
    for name in sorted(os.listdir(mdir)):
        folder = os.path.join(mdir, name)
        files = sorted(os.listdir(folder))
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        tok = {"qwen2_base": t_qwen, "qwen2_arm": t_qwen, "llama_arm_harmless": t_llama_pad}.get(name, t_llama)
        tok_class = check_tokenizer_folder(folder, tok, expect_bos=not name.startswith("qwen"))
        assert cfg["vocab_size"] == tok.get_vocab_size(with_added_tokens=True), name
        m = load(folder, torch.float32)
        assert m.config.vocab_size == cfg["vocab_size"]
        if name in ("llama_base_tf4", "llama_base_bin", "llama_base_sharded"):
            sd = m.state_dict()
            assert sd.keys() == ref.keys(), name
            for k in ref:
                assert torch.equal(sd[k], ref[k]), (name, k)
            assert m.config.rope_parameters["rope_theta"] == 1000.0, (name, m.config.rope_parameters)
        if name == "llama_base_bf16":
            sd = m.state_dict()
            for k in ref:
                assert torch.equal(sd[k], ref[k].to(torch.bfloat16).float()), k
        if name == "qwen2_base":
            assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
            from safetensors import safe_open
            with safe_open(os.path.join(folder, "model.safetensors"), "pt") as f:
                keys = list(f.keys())
            notes["qwen2_base_has_lm_head_tensor"] = "lm_head.weight" in keys
            assert float(m.model.layers[0].self_attn.q_proj.bias.detach().abs().min()) > 0
        if name.startswith("mistral"):
            notes["mistral_sliding_effect"] = max(notes.get("mistral_sliding_effect", 0.0), sliding_window_effect(folder))
        n_shards = len([f for f in files if f.endswith(".safetensors") or f.endswith(".bin")])
        notes[name] = {"files": files, "tokenizer_class_loaded": tok_class, "n_weight_files": n_shards,
                       "config_keys": sorted(cfg.keys())}
        if name in ("llama_base_bin", "llama_base_sharded"):
            assert n_shards >= 2, name
    return notes


@torch.no_grad()
def sliding_window_effect(folder):
    """Max |logit change| from disabling the sliding window on a 30-token sequence (must be > 0)."""
    m = load(folder, torch.float32)
    ids = list(range(5, 35))
    a = forward_logits(m, ids)
    m.config.sliding_window = None
    for layer in m.model.layers:
        layer.self_attn.sliding_window = None
    b = forward_logits(m, ids)
    m_win = a[:8]
    assert torch.allclose(m_win, b[:8], atol=1e-5), "window must not matter for the first 8 positions"
    eff = float((a - b).abs().max())
    assert eff > 1e-2, f"sliding window has no effect in {folder}"
    return eff


def vocab_rule_effect(ctx, cases):
    """How much the harmless ARM's recorded log-probs would change if it were normalised over its full vocabulary
    (including <pad>) and cut afterwards.  Must be far above the tolerance, so the rule is really tested."""
    c = next(c for c in cases if c["name"] == "llama_guided")
    m = ctx.model("llama_arm_harmless", "f32")
    worst = 0.0
    for part in ("generate", "score"):
        prefix = c["generate"]["prompt_token_ids"]
        toks = c[part]["tokens"]
        lg = forward_logits(m, list(prefix) + [t["token_id"] for t in toks])
        wrong = torch.log_softmax(lg, dim=-1)
        for j, t in enumerate(toks):
            worst = max(worst, abs(float(wrong[len(prefix) + j - 1, t["token_id"]]) - t["arms"]["harmless"]))
    assert worst > 100 * F32_TOLERANCE, worst
    return worst


def check_kv_cache_generate(ctx, cases):
    """For every f32 case: the base model alone, HF generate() (KV cache) == no-cache greedy loop."""
    done = set()
    for c in cases:
        key = (c["base"], c["prompt"])
        if c["dtype"] != "f32" or key in done:
            continue
        done.add(key)
        base = ctx.model(c["base"], "f32")
        ids = c["generate"]["prompt_token_ids"]
        eos = c["eos_token_ids"]
        recs, _, _, _ = guided_generate(base, [], [], [], ids, 16, eos)
        x = torch.tensor([ids])
        with torch.no_grad():
            o = base.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=16,
                              pad_token_id=eos[0])
        assert o[0, len(ids):].tolist() == [r["token_id"] for r in recs], c["name"]
    return len(done)


def recheck_cases(out, cases):
    """Fresh loads from disk; redo the first generate step of every case from cases.json."""
    for c in cases:
        dt = torch.bfloat16 if c["dtype"] == "bf16" else torch.float32
        base = load(os.path.join(out, "models", c["base"]), dt)
        arms = [load(os.path.join(out, "models", a["path"]), dt) for a in c["arms"]]
        ids = c["generate"]["prompt_token_ids"]
        blp, alps, g = guide(forward_logits(base, ids)[-1], [forward_logits(a, ids)[-1] for a in arms],
                             [c["weights"][a["name"]] for a in c["arms"]])
        t0 = c["generate"]["tokens"][0]
        assert int(torch.argmax(g)) == t0["token_id"], c["name"]
        assert abs(float(g[t0["token_id"]]) - t0["guided_logprob"]) < 1e-6, c["name"]


# --------------------------------------------------------------------------------------------
# Independent check: a plain NumPy (float64) forward pass that reads config.json and the weight files
# directly, written from the architecture definitions (not using transformers).  It recomputes every
# f32 case from cases.json; agreement shows that the fixtures mean what the README says they mean.
# --------------------------------------------------------------------------------------------


def np_read_weights(folder):
    files = sorted(os.listdir(folder))
    out = {}
    for f in files:
        path = os.path.join(folder, f)
        if f.endswith(".safetensors"):
            from safetensors import safe_open
            with safe_open(path, "pt") as sf:
                for k in sf.keys():
                    out[k] = sf.get_tensor(k).to(torch.float64).numpy()
        elif f.endswith(".bin"):
            for k, v in torch.load(path, map_location="cpu", weights_only=True).items():
                out[k] = v.to(torch.float64).numpy()
    return out


def np_rope_inv_freq(cfg, head_dim):
    if "rope_parameters" in cfg:
        rp = dict(cfg["rope_parameters"])
    else:  # transformers-4 style
        rp = dict(cfg.get("rope_scaling") or {"rope_type": "default"})
        rp["rope_theta"] = cfg.get("rope_theta", 10000.0)
    rope_type = rp.get("rope_type", rp.get("type", "default"))
    inv = 1.0 / (rp["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    if rope_type == "llama3":
        factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
        old = rp["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        mid = (wavelen <= old / lo) & (wavelen >= old / hi)
        inv = np.where(mid, (1 - smooth) * inv / factor + smooth * inv, scaled)
    else:
        assert rope_type == "default", rope_type
    return inv


def np_forward(folder, ids):
    """Logits [seq, vocab] of a Llama / Mistral / Qwen2 folder for one sequence, in float64."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    w = np_read_weights(folder)
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    window = cfg.get("sliding_window") if cfg["model_type"] == "mistral" else (
        cfg.get("sliding_window") if cfg.get("use_sliding_window") else None)
    n = len(ids)
    pos = np.arange(n, dtype=np.float64)
    ang = pos[:, None] * np_rope_inv_freq(cfg, D)[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

    def rope(x):  # x [heads, seq, D]; rotate-half convention
        x1, x2 = x[..., : D // 2], x[..., D // 2 :]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    def lin(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    i_idx, j_idx = np.arange(n)[:, None], np.arange(n)[None, :]
    allowed = j_idx <= i_idx
    if window is not None:
        allowed &= j_idx > i_idx - window
    x = w["model.embed_tokens.weight"][ids]
    for layer in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{layer}."
        h = rms(x, w[pre + "input_layernorm.weight"])
        q = lin(h, pre + "self_attn.q_proj").reshape(n, H, D).transpose(1, 0, 2)
        k = lin(h, pre + "self_attn.k_proj").reshape(n, KV, D).transpose(1, 0, 2)
        v = lin(h, pre + "self_attn.v_proj").reshape(n, KV, D).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        k, v = np.repeat(k, H // KV, axis=0), np.repeat(v, H // KV, axis=0)  # q head h uses kv head h // (H/KV)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(D)
        scores = np.where(allowed[None], scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        att = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + lin(att.transpose(1, 0, 2).reshape(n, H * D), pre + "self_attn.o_proj")
        h = rms(x, w[pre + "post_attention_layernorm.weight"])
        g = lin(h, pre + "mlp.gate_proj")
        x = x + lin(g / (1 + np.exp(-g)) * lin(h, pre + "mlp.up_proj"), pre + "mlp.down_proj")
    x = rms(x, w["model.norm.weight"])
    head = w.get("lm_head.weight")
    if head is None or cfg.get("tie_word_embeddings"):
        head = w["model.embed_tokens.weight"]
    return x @ head.T


def np_log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def numpy_crosscheck(out, cases):
    """Max |numpy - fixture| over every recorded log-prob of every f32 case."""
    worst = 0.0
    for c in cases:
        if c["dtype"] != "f32":
            continue
        mdir = os.path.join(out, "models")
        names = [a["name"] for a in c["arms"]]
        folders = [c["base"]] + [a["path"] for a in c["arms"]]
        weights = [c["weights"][nm] for nm in names]
        for part, prefix, toks in (
            ("generate", c["generate"]["prompt_token_ids"], c["generate"]["tokens"]),
            ("score", c["generate"]["prompt_token_ids"], c["score"]["tokens"]),
        ):
            tok_ids = [t["token_id"] for t in toks]
            seq = list(prefix) + tok_ids
            logits = [np_forward(os.path.join(mdir, f), seq) for f in folders]
            L = min(lg.shape[-1] for lg in logits)
            lps = [np_log_softmax(lg[:, :L]) for lg in logits]
            guided = np_log_softmax(lps[0] + sum(wt * lp for wt, lp in zip(weights, lps[1:])))
            for j, t in enumerate(toks):
                p = len(prefix) + j - 1
                tid = t["token_id"]
                d = max(abs(lps[0][p, tid] - t["base_logprob"]), abs(guided[p, tid] - t["guided_logprob"]))
                for nm, lp in zip(names, lps[1:]):
                    d = max(d, abs(lp[p, tid] - t["arms"][nm]))
                for e in t["top"]:
                    d = max(d, abs(guided[p, e["token_id"]] - e["guided_logprob"]))
                if part == "generate":
                    assert int(np.argmax(guided[p])) == tid, (c["name"], j)
                worst = max(worst, d)
                assert d < F32_TOLERANCE / 5, (c["name"], part, j, d)
    return worst


def fmt(x):
    return f"{x:.3g}"


def write_readme(out, cases, stats, notes, sizes, n_llama, n_qwen):
    import textwrap

    base_cfg = json.load(open(os.path.join(out, "models", "llama_base", "config.json"), encoding="utf-8"))
    tf4_cfg = json.load(open(os.path.join(out, "models", "llama_base_tf4", "config.json"), encoding="utf-8"))
    l3_cfg = json.load(open(os.path.join(out, "models", "llama3_scaled", "config.json"), encoding="utf-8"))
    qb_cfg = json.load(open(os.path.join(out, "models", "qwen2_base", "config.json"), encoding="utf-8"))
    bf_cfg = json.load(open(os.path.join(out, "models", "llama_base_bf16", "config.json"), encoding="utf-8"))
    gen_q = json.load(open(os.path.join(out, "models", "qwen2_base", "generation_config.json"), encoding="utf-8"))
    gen_l = json.load(open(os.path.join(out, "models", "llama_base", "generation_config.json"), encoding="utf-8"))
    bf = stats["llama_bf16_compute"]

    lines = []
    w = lines.append
    w("# Parity fixtures (Hugging Face transformers reference)")
    w("")
    w("Generated by `scripts/make_parity_fixtures.py`. Do not edit by hand: rerun the script, which deletes and")
    w("recreates this whole folder. It is deterministic (fixed seeds, one CPU thread) and needs no network.")
    w("")
    w("```")
    w(f"cd <repo root> && {COMMAND}")
    w("```")
    w("")
    w("Made with:")
    w("")
    w(f"- Python {platform.python_version()}, torch {torch.__version__} (CPU), transformers {transformers.__version__}, "
      f"tokenizers {tokenizers.__version__}, safetensors {safetensors.__version__}, numpy {np.__version__}")
    w("")
    w("## Models (`models/<name>/`)")
    w("")
    w("All models are tiny (hidden 64, 2 layers, intermediate 128) with ALL parameters random: matrices")
    w(f"N(0, {INIT['proj']}), embeddings N(0, {INIT['embed']}), lm_head N(0, {INIT['lm_head']}), RMSNorm weights 1 + N(0, {INIT['norm_jitter']}),")
    w(f"biases N(0, {INIT['bias']}). Each folder has config.json, generation_config.json, tokenizer.json,")
    w("tokenizer_config.json and the weights. Weights are float32 unless noted.")
    w("")
    w("| folder | class | notes | files | size |")
    w("|---|---|---|---|---|")
    desc = {
        "llama_base": f"4 heads / 2 KV heads, untied, rope_theta 1000, seed {SEEDS['llama_base']}, T_llama",
        "llama_base_tf4": "same weights as llama_base; config.json rewritten in transformers-4 style",
        "llama_arm_helpful": f"same architecture, seed {SEEDS['llama_arm_helpful']}, T_llama",
        "llama_arm_harmless": f"seed {SEEDS['llama_arm_harmless']}, T_llama_plus_pad, vocab_size {n_llama + 1} (one extra row for `<pad>`)",
        "llama_base_bf16": "llama_base weights stored as bfloat16 (config dtype bfloat16)",
        "llama_base_bin": "llama_base as 3 sharded PyTorch pickles + pytorch_model.bin.index.json (written with torch.save: transformers 5 ignores safe_serialization=False and always writes safetensors)",
        "llama_base_sharded": "llama_base via save_pretrained(max_shard_size='200KB'): sharded safetensors + model.safetensors.index.json",
        "llama3_scaled": f"rope_type llama3 (theta 500000, factor 8, low 1, high 4, original_max_position_embeddings 64), max_position_embeddings 512, seed {SEEDS['llama3_scaled']}",
        "qwen2_base": f"Qwen2, random q/k/v biases, 4/2 heads, tie_word_embeddings true (no lm_head tensor on disk), rope_theta 1e6, seed {SEEDS['qwen2_base']}, T_qwen",
        "qwen2_arm": f"Qwen2, untied, seed {SEEDS['qwen2_arm']}, T_qwen",
        "mistral_base": f"Mistral, 4 heads / 1 KV head, head_dim 32 (hidden/heads = 16), sliding_window 8, seed {SEEDS['mistral_base']}, T_llama",
        "mistral_arm": f"as mistral_base, seed {SEEDS['mistral_arm']}",
    }
    for name in desc:
        size = sizes[name]
        n = notes[name]
        arch = json.load(open(os.path.join(out, "models", name, "config.json"), encoding="utf-8"))["architectures"][0]
        weight_files = [f for f in n["files"] if f.endswith((".safetensors", ".bin", ".json")) and "token" not in f and "config" not in f]
        w(f"| `{name}` | {arch} | {desc.get(name, '')} | {', '.join(weight_files)} | {size / 1e3:.0f} kB |")
    w("")
    w(f"Total size of the models: {sum(sizes.values()) / 1e6:.2f} MB.")
    w("")
    w("### config.json as transformers 5 writes it")
    w("")
    w("transformers 5 writes `rope_parameters` (an object holding `rope_type`, `rope_theta` and any scaling")
    w("parameters) instead of the transformers-4 top-level `rope_theta` + `rope_scaling`, and `dtype` instead of")
    w("`torch_dtype`. `head_dim` is always written. llama_base/config.json:")
    w("")
    w("```json")
    w(json.dumps(base_cfg, indent=2))
    w("```")
    w("")
    w("llama3_scaled `rope_parameters`: `" + json.dumps(l3_cfg["rope_parameters"]) + "`")
    w("")
    w("llama_base_bf16 `dtype`: `" + json.dumps(bf_cfg["dtype"]) + "`")
    w("")
    w("qwen2_base (note `layer_types`, `use_sliding_window: false`, `sliding_window: null`, `tie_word_embeddings: true`, and")
    w("a `bos_token_id` although the Qwen tokenizer never adds a BOS, as in the real Qwen2 checkpoints):")
    w("")
    w("```json")
    w(json.dumps(qb_cfg, indent=2))
    w("```")
    w("")
    w("llama_base_tf4/config.json (hand-written transformers-4 style; transformers 5 loads it and converts it to")
    w("`rope_parameters` itself):")
    w("")
    w("```json")
    w(json.dumps(tf4_cfg, indent=2))
    w("```")
    w("")
    w("generation_config.json: llama/mistral `" + json.dumps({k: gen_l[k] for k in ('bos_token_id', 'eos_token_id')})
      + "`, qwen `" + json.dumps({k: gen_q[k] for k in ('bos_token_id', 'eos_token_id', 'pad_token_id')}) + "`.")
    w("")
    w("## Tokenizers")
    w("")
    w(f"Trained with the `tokenizers` library on a built-in corpus of {len(training_corpus())} English sentences (some")
    w("with non-ASCII words). Emoji and CJK are not in the learned alphabet.")
    w("")
    w(f"- **T_llama** ({n_llama} tokens): BPE, byte_fallback true, fuse_unk true, unk `<unk>`. ids `<unk>`=0, `<s>`=1,")
    w("  `</s>`=2, `<0x00>`..`<0xFF>` = 3..258, then the learned alphabet and merges. No normalizer; pre-tokenizer")
    w("  `Metaspace(replacement='▁', prepend_scheme='first', split=false)`; decoder `Replace('▁',' ')`, `ByteFallback`,")
    w("  `Fuse`, `Strip(' ', left 1)`; post-processor `TemplateProcessing` that prepends `<s>` (single `<s>:0 $A:0`).")
    w("  tokenizer_config: tokenizer_class LlamaTokenizer, add_bos_token true, add_eos_token false, legacy false.")
    w(f"- **T_llama_plus_pad** ({n_llama + 1} tokens): T_llama plus the added special token `<pad>` = {n_llama}.")
    w(f"- **T_qwen** ({n_qwen} tokens): byte-level BPE, normalizer NFC, pre-tokenizer Sequence[Split(Qwen2 regex,")
    w("  isolated), ByteLevel(add_prefix_space=false, use_regex=false)], decoder ByteLevel, post-processor ByteLevel")
    w(f"  (adds nothing). Added special tokens `<|endoftext|>`={n_qwen - 3}, `<|im_start|>`={n_qwen - 2}, `<|im_end|>`={n_qwen - 1}.")
    w("  tokenizer_config: tokenizer_class Qwen2Tokenizer, bos_token null, eos_token `<|endoftext|>`, add_bos_token false.")
    w("")
    w("Important: transformers 5's `LlamaTokenizer` / `Qwen2Tokenizer` do NOT load tokenizer.json as-is: they take")
    w("vocab + merges (+ post-processor) from it and rebuild normalizer / pre-tokenizer / decoder themselves. The")
    w("tokenizer.json files here were built to match what those classes rebuild, and the script asserts, for a set of")
    w("probe strings (with and without special tokens, leading spaces, newlines, emoji, literal special-token text),")
    w("that `AutoTokenizer` and the raw `tokenizers.Tokenizer.from_file('tokenizer.json')` give identical ids and")
    w("identical decodes (and the same ids from `PreTrainedTokenizerFast`, which loads tokenizer.json verbatim). So a")
    w("Rust engine that just uses tokenizer.json reproduces the HF tokenization. AutoTokenizer loads them as "
      f"`{notes['llama_base']['tokenizer_class_loaded']}` and `{notes['qwen2_base']['tokenizer_class_loaded']}`.")
    w("")
    w("How BOS is added: llama tokenizers add `<s>` (id 1) through the post-processor when `add_special_tokens` is true")
    w("(the prompt); responses for scoring are encoded with `add_special_tokens=False`. The Metaspace pre-tokenizer")
    w("prepends `▁` only if the text does not already start with a space, so the response `' Sure…'` starts with")
    w("`▁Sure` (not `▁▁Sure`). Qwen adds nothing.")
    w("")
    w("## Reference computation")
    w("")
    w("`attn_implementation='eager'`, `model.eval()`, `torch.no_grad()`, weights loaded with `dtype=float32` (or")
    w("`bfloat16` for `dtype: bf16` cases). For every step a full forward over prompt + generated tokens (no KV cache);")
    w("the last position's logits of every model are cut to L = the smallest logit length of the case")
    w("(`shared_vocab_size`; the harmless ARM's `<pad>` logit is dropped before its log_softmax), then")
    w("")
    w("```")
    w("base_lp = log_softmax(base[:L]); arm_lp_i = log_softmax(arm_i[:L])      (float32)")
    w("guided  = log_softmax(base_lp + sum_i w_i * arm_lp_i)")
    w("next    = argmax(guided)")
    w("```")
    w("")
    w("Generation stops after `max_new_tokens` or when the token is in `eos_token_ids` (from the base folder's")
    w("generation_config.json; the eos token is still recorded). Scoring runs ONE forward per model over")
    w("prompt + response and uses the logits at position `len(prompt) + j - 1` for response token j.")
    w("")
    w("Checks done by the script: every folder loads with AutoModelForCausalLM/AutoTokenizer; tf4/bin/sharded weights are")
    w("bit-identical to llama_base; bf16 weights equal llama_base rounded to bf16; qwen2_base has nonzero q/k/v biases and")
    w("its lm_head is tied; for base-only cases `model.generate(do_sample=False)` (with KV cache) gives the same ids;")
    w("teacher-forcing the generated ids in one forward reproduces the per-step numbers (< 1e-5); cases 2, 5, 6 equal")
    w("case 1 (<= 1e-6); the top-1/top-2 guided margin at every generated step is > 1e-3; no case stops on eos")
    w("by accident; after writing, every case's first step is recomputed from fresh loads of the files.")
    w("")
    w("## Cases")
    w("")
    w("| case | base | arms (weight) | dtype | tolerance | prompt tokens | generated | min top1-top2 margin |")
    w("|---|---|---|---|---|---|---|---|")
    for c in cases:
        st = stats[c["name"]]
        arms = ", ".join(f"{a['path']} ({c['weights'][a['name']]})" for a in c["arms"]) or "-"
        w(f"| `{c['name']}` | {c['base']} | {arms} | {c['dtype']} | {c['tolerance']} | {st['prompt_len']} | "
          f"{st['n_generated']} ({c['generate']['reason']}) | {st['min_margin']:.4f} |")
    w("")
    w("### bf16")
    w("")
    w(f"`llama_bf16_disk` runs the bf16-stored base (and the f32 helpful ARM) in float32; `llama_bf16_compute` runs the")
    w("same two models with `dtype=torch.bfloat16` in HF (so the ARM's weights are rounded to bf16 too; logits are cast to")
    w("float32 before the log_softmax). Maximum |bf16 - f32| log-prob difference, same weights:")
    w("")
    w(f"- over the full shared vocabulary (base, ARM and guided log-probs, all scored positions and all generated steps")
    w(f"  where the ids agree): **{fmt(bf['bf16_dev_full_vocab'])}**")
    w(f"- over the recorded fields only: {fmt(bf['bf16_dev_recorded'])}")
    w(f"- tolerance set to 3x the full-vocabulary deviation, rounded up: **{bf['bf16_tolerance']}**. A bf16 engine")
    w("  accumulates differently than PyTorch, so its own deviation from f32 is of the same size and may have the")
    w("  opposite sign; 3x covers that with margin.")
    w("- prompt search (candidates tried in order, the first with a robust prefix of 16 is used):")
    w("")
    w("  | prompt | ids agree | robust prefix | smallest bf16 margin | deviation |")
    w("  |---|---|---|---|---|")
    for r in notes["bf16_search"]:
        w(f"  | `{r['prompt']}` | {r['agree']} | {r['robust']} | {r['min_bf16_margin']:.4f} | {fmt(r['dev'])} |")
    w("")
    w(f"- greedy ids of the bf16 run agree with the f32 run for {bf['bf16_ids_agree_prefix']} of 16 tokens; the")
    w(f"  robust prefix (same ids and every top1-top2 guided margin, in both runs, > 2 x {fmt(bf['bf16_dev_full_vocab'])})")
    w(f"  is {bf['bf16_robust_prefix']} tokens" + (f", so max_new_tokens was cut to {bf['bf16_robust_prefix']}." if bf.get("bf16_truncated") else "."))
    w("  bf16 logits are quantised (steps of 1/16 to 1/8 for |logit| in 8..32), so near-ties and even exact ties")
    w("  (margin 0) occur in bf16; that is why the prompt of this pair of cases was searched for.")
    w(f"- smallest top1-top2 guided margin in the bf16 generation: {bf['min_margin']:.4f}; in the f32 twin")
    w(f"  `llama_bf16_disk`: {min(bf['f32_margins'][:bf['bf16_robust_prefix']]):.4f}")
    w("")
    w("### Other observations")
    w("")
    w(f"- Mistral sliding window: HF masks key j for query i unless i - 8 < j <= i (the window includes the query")
    w("  itself, 8 positions in all). It is applied in the full (no-cache) forward too; disabling it changes logits by up")
    w(f"  to {notes['mistral_sliding_effect']:.3g} on a 30-token sequence and not at all in the first 8 positions.")
    w(f"- qwen2_base is tied: model.safetensors contains `lm_head.weight`: {notes['qwen2_base_has_lm_head_tensor']}.")
    w("  The engine must use `model.embed_tokens.weight` as the output projection.")
    w("- Qwen2 has biases on q/k/v only (o_proj has none). Its config.json has `bos_token_id` 440 and")
    w("  `eos_token_id` 442 (`<|im_end|>`); generation_config.json has eos `[442, 440]`, the list the cases use.")
    w("- llama_base_tf4: transformers 5 reads the transformers-4 keys and builds the same `rope_parameters`")
    w("  (`rope_theta` 1000); the case gives bit-identical results to llama_guided.")
    w("- llama_base_bin: `save_pretrained(safe_serialization=False)` in transformers 5 silently writes safetensors, so")
    w("  the .bin shards are written with `torch.save` (zip-format pickles of plain tensors) plus the standard index;")
    w("  transformers 5 loads them.")
    w("- The generated texts look like noise (random weights; many byte-fallback tokens, which often decode to U+FFFD")
    w("  because a lone byte is not valid UTF-8). That is intended: the decode path is exercised too.")
    w(f"- `llama_eos_stop` (an extra case): guided decoding stops on `</s>`, which is recorded as the last token")
    w("  (`reason: eos`; `text` skips it). Its prompt is the first training sentence for which that happens. Its")
    w("  response `' Sure.</s>'` contains the literal text `</s>`, which the tokenizer turns into the special id 2")
    w("  (added tokens are matched in the input text even with `add_special_tokens=False`), so the eos is scored too.")
    w(f"- Checks beyond the cases: for every f32 case, the base model alone decoded greedily with HF `generate()`")
    w(f"  (KV cache; {notes['kv_cache_checks']} base/prompt pairs, including Mistral past its sliding window) gives")
    w("  the same ids as the no-cache loop.")
    w(f"- Independent check: a float64 NumPy forward pass written in the script from the architecture definitions")
    w("  (reads config.json in both styles and the safetensors/.bin files directly; RMSNorm, rotate-half RoPE incl.")
    w("  llama3 scaling, GQA with q head h using kv head h // (heads/kv_heads), Mistral window, Qwen2 biases,")
    w(f"  tied head) reproduces every recorded f32 log-prob within {fmt(notes['numpy_crosscheck'])} and every greedy argmax.")
    w("- Rust `tokenizers` 0.23.2 (the crate genarm uses), loading these tokenizer.json files, was checked once by hand")
    w("  (outside this script) to give exactly `prompt_token_ids`, `response_token_ids` and `text` of every case.")
    w("- The harmless ARM's vocabulary is larger by one added token; its logits are cut to the shared length L before")
    w(f"  log_softmax, so its log-probs are normalised over the shared vocabulary only. Its `<pad>` lm_head row is")
    w(f"  scaled by {PAD_ROW_SCALE} so that the pad logit is often large: normalising over all {n_llama + 1} logits and cutting")
    w(f"  afterwards would change its recorded log-probs in `llama_guided` by up to {fmt(notes['vocab_rule_effect'])}.")
    w("")
    w("## cases.json format")
    w("")
    w(textwrap.dedent("""\
        ```
        {"cases": [
          {
            "name": str,
            "base": str,                      # folder under models/
            "arms": [{"name": str, "path": str}],   # path = folder under models/
            "weights": {arm name: float},     # {} for base-only cases
            "dtype": "f32" | "bf16",          # compute dtype
            "tolerance": float,               # max abs error allowed on every log-prob
            "prompt": str,
            "max_new_tokens": int,
            "eos_token_ids": [int],           # informative: base generation_config eos ids
            "shared_vocab_size": int,         # informative: L, the length every logit vector is cut to
            "generate": {
              "prompt_token_ids": [int],      # tokenizer(prompt), with BOS for llama tokenizers
              "tokens": [TOKEN],              # one per generated token, in order
              "reason": "max_tokens" | "eos",
              "text": str,                    # decode(generated ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
              "hf_generate_matches": true     # only on base-only cases: HF generate() gave the same ids
            },
            "score": {
              "response": str,
              "response_token_ids": [int],    # tokenizer(response, add_special_tokens=False)
              "tokens": [TOKEN],              # one per response token
              "base_logprob_sum": float,
              "arm_logprob_sums": {arm name: float}
            }
          }
        ]}

        TOKEN = {
          "token_id": int,
          "base_logprob": float,              # log_softmax(base[:L])[token_id]
          "arms": {arm name: float},          # log_softmax(arm_i[:L])[token_id]
          "guided_logprob": float,            # guided[token_id]
          "top": [{"token_id": int, "guided_logprob": float}]   # 5 best guided tokens, best first
        }
        ```"""))
    w("")
    w("Floats are float32 values written as JSON doubles. `base_logprob_sum` / `arm_logprob_sums` are the sums, in")
    w("double precision, of the per-token values listed, so compare them with `tolerance * len(tokens)`.")
    w("A step's `top` list is sorted by guided log-prob (best first); the generated token is always `top[0]`.")
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
