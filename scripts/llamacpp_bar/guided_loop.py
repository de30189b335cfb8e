#!/usr/bin/env python3
"""The llama.cpp side of genarm's speed bar: a reward-guided greedy loop over llama.cpp.

One base model plus N ARMs (GGUF files, loaded with llama-cpp-python). For each weight
format: feed the same prompt of token ids to every model, then decode greedily; each
step takes the last logits of every model, combines
    log_softmax(base) + w * log_softmax(arm_1) + ... + w * log_softmax(arm_N)
with numpy, picks the argmax and evaluates that token on every model. Reported: decode
tokens/s of that guided loop and of a base-only greedy loop (median over --repeats), the
prompt-processing rate, the time spent in the numpy combine step, and llama.cpp's
forward time per model, so the Python share is visible.

Mirrors `genarm bench` (random prompt of ids with a fixed seed, warm-up, base-only and
guided runs of all formats interleaved, medians). The prompt ids differ from genarm's
(different RNG); speed does not depend on them.

Usage:
  guided_loop.py --gguf-dir /tmp/m38/gguf --base m1 --arm m2 --arm m3 \
      --formats f32,f16,q8_0,q4_k_m --prompt-tokens 64 --decode-tokens 64 --repeats 3
"""

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

import llama_cpp


@llama_cpp.llama_log_callback
def _quiet_log(level, text, user_data):  # silence llama.cpp's load chatter
    pass


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    y = x - m
    return y - np.log(np.exp(y).sum())


class Model:
    """One GGUF model with its own context. `api`:
    low  - llama_decode on a llama_batch_get_one of the token, logits read as a zero-copy
           numpy view of llama_get_logits_ith(ctx, -1) (the thinnest Python path);
    high - llama_cpp.Llama.eval([token]) (the high-level wrapper; more Python per call)."""

    def __init__(self, path: str, threads: int, n_ctx: int, api: str):
        self.path = path
        self.api = api
        self.llm = llama_cpp.Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=0,
            logits_all=False,
            verbose=False,
        )
        self.ctx = self.llm._ctx.ctx
        self.n_vocab = self.llm.n_vocab()
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.tok = (llama_cpp.llama_token * n_ctx)()
        self.forward_s = 0.0

    def reset(self) -> None:
        if self.api == "high":
            self.llm.reset()
        llama_cpp.llama_memory_clear(self.mem, True)

    def eval(self, tokens) -> np.ndarray:
        t0 = time.perf_counter()
        if self.api == "high":
            self.llm.eval(tokens)
        else:
            n = len(tokens)
            for i, t in enumerate(tokens):
                self.tok[i] = t
            rc = llama_cpp.llama_decode(self.ctx, llama_cpp.llama_batch_get_one(self.tok, n))
            if rc != 0:
                raise RuntimeError(f"llama_decode failed: {rc}")
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, -1)
        self.forward_s += time.perf_counter() - t0
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))


def one_run(models, weights, prompt, decode_tokens, guided):
    """Prefill `prompt` on every model, then `decode_tokens` greedy steps. Returns timings."""
    use = models if guided else models[:1]
    for m in use:
        m.reset()
        m.forward_s = 0.0
    t0 = time.perf_counter()
    logits = [m.eval(prompt) for m in use]
    prefill = time.perf_counter() - t0
    for m in use:
        m.forward_s = 0.0
    combine = 0.0
    out = []
    t0 = time.perf_counter()
    for _ in range(decode_tokens):
        c0 = time.perf_counter()
        if guided:
            score = log_softmax(logits[0])
            for w, lg in zip(weights, logits[1:]):
                score += w * log_softmax(lg)
            tok = int(score.argmax())
        else:
            tok = int(logits[0].argmax())
        combine += time.perf_counter() - c0
        out.append(tok)
        logits = [m.eval([tok]) for m in use]
    decode = time.perf_counter() - t0
    return {
        "prefill": prefill,
        "decode": decode,
        "combine": combine,
        "forward": [m.forward_s for m in use],
        "tokens": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf-dir", required=True, help="folder holding NAME-FORMAT.gguf files")
    ap.add_argument("--base", required=True, help="base model NAME (file NAME-FORMAT.gguf)")
    ap.add_argument("--arm", action="append", default=[], help="ARM NAME (repeatable)")
    ap.add_argument("--weight", type=float, default=1.0, help="weight of every ARM")
    ap.add_argument("--formats", default="f32,f16,q8_0,q4_k_m")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=256)
    ap.add_argument("--api", choices=["low", "high"], default="low")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="one JSON line per format instead of the table")
    args = ap.parse_args()
    if args.prompt_tokens + args.decode_tokens > args.n_ctx:
        sys.exit("--prompt-tokens + --decode-tokens exceeds --n-ctx")

    llama_cpp.llama_log_set(_quiet_log, ctypes.c_void_p(0))
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    names = [args.base] + args.arm
    weights = [args.weight] * len(args.arm)
    subjects = []
    for fmt in formats:
        ms = [
            Model(os.path.join(args.gguf_dir, f"{n}-{fmt}.gguf"), args.threads, args.n_ctx, args.api)
            for n in names
        ]
        subjects.append({"format": fmt, "models": ms, "base": [], "guided": []})
    vocab = subjects[0]["models"][0].n_vocab
    rng = np.random.default_rng(args.seed)
    prompt = [int(x) for x in rng.integers(0, vocab, size=args.prompt_tokens)]

    # Warm-up (page in the weights, allocate compute buffers), then interleaved runs.
    for s in subjects:
        one_run(s["models"], weights, prompt[:8], 2, True)
    for _ in range(args.repeats):
        for s in subjects:
            s["base"].append(one_run(s["models"], weights, prompt, args.decode_tokens, False))
            s["guided"].append(one_run(s["models"], weights, prompt, args.decode_tokens, True))

    med = statistics.median
    rows = []
    for s in subjects:
        b, g = s["base"], s["guided"]
        n = args.decode_tokens
        row = {
            "format": s["format"],
            "threads": args.threads,
            "api": args.api,
            "vocab": vocab,
            "prompt_tokens": args.prompt_tokens,
            "decode_tokens": n,
            "repeats": args.repeats,
            "base_only": {
                "prompt_tokens_per_second": med(args.prompt_tokens / r["prefill"] for r in b),
                "decode_tokens_per_second": med(n / r["decode"] for r in b),
            },
            "guided": {
                "prompt_tokens_per_second": med(args.prompt_tokens / r["prefill"] for r in g),
                "decode_tokens_per_second": med(n / r["decode"] for r in g),
            },
            "guided_step_ms": med(r["decode"] * 1e3 / n for r in g),
            "combine_ms_per_token": med(r["combine"] * 1e3 / n for r in g),
            "forward_ms_per_token": {
                nm: med(r["forward"][i] * 1e3 / n for r in g) for i, nm in enumerate(names)
            },
            # Python + combine share of the guided step (decode time not inside llama_decode).
            "outside_forward": med((r["decode"] - sum(r["forward"])) / r["decode"] for r in g),
            "guided_tokens_head": g[-1]["tokens"][:8],
        }
        rows.append(row)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(
        f"llama.cpp guided loop (llama-cpp-python {llama_cpp.__version__}, api={args.api}): "
        f"base {args.base} + {len(args.arm)} ARM(s) [{', '.join(args.arm)}], vocab {vocab}, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    print(f"{'format':<7} {'prompt (%d) t/s' % args.prompt_tokens:>22} {'decode (%d) t/s' % args.decode_tokens:>22} "
          f"{'guided step':>22} {'combine':>8}  forward ms/token (guided)")
    print(f"{'':<7} {'base-only':>10} {'guided':>11} {'base-only':>10} {'guided':>11} {'ms':>10} {'outside':>11} {'ms/tok':>8}")
    for r in rows:
        fw = ", ".join(f"{k} {v:.2f}" for k, v in r["forward_ms_per_token"].items())
        print(
            f"{r['format']:<7} {r['base_only']['prompt_tokens_per_second']:>10.1f} "
            f"{r['guided']['prompt_tokens_per_second']:>11.1f} "
            f"{r['base_only']['decode_tokens_per_second']:>10.1f} "
            f"{r['guided']['decode_tokens_per_second']:>11.1f} "
            f"{r['guided_step_ms']:>10.3f} {r['outside_forward'] * 100:>10.2f}% "
            f"{r['combine_ms_per_token']:>8.3f}  {fw}"
        )


if __name__ == "__main__":
    main()
