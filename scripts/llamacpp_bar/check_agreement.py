#!/usr/bin/env python3
"""Check that the GGUF conversion matches genarm: same log-probabilities, same greedy tokens.

1. `genarm score --json` teacher-forces a response after a prompt under the base and every
   ARM and prints, per response token, the log-prob of that token and of the top-5 guided
   alternatives under every model. The same ids are run through llama.cpp (the GGUF files)
   and the same log-probs compared (max absolute / relative difference, top-1 agreement).
2. `genarm generate --json` (greedy, guided) vs the same guided greedy loop over llama.cpp.

Usage:
  check_agreement.py --genarm target/release/genarm --models /tmp/m38 \
      --gguf-dir /tmp/m38/gguf --base m1 --arm m2 --arm m3 [--formats f32,f16,q8_0,q4_k_m]
(genarm's dtype for a GGUF format: f32->f32, f16->f16, q8_0->q8_0, q4_k_m->q4_k; only f32
is expected to agree to rounding: llama.cpp rounds activations to f16/q8 for the other
formats and Q4_K_M is a mix of Q4_K/Q6_K, genarm's q4_k is not.)
"""

from pathlib import Path
import argparse
import ctypes
import json
import os
import subprocess
import sys

import numpy as np

import llama_cpp

GENARM_DTYPE = {"f32": "f32", "f16": "f16", "q8_0": "q8_0", "q4_k_m": "q4_k"}


@llama_cpp.llama_log_callback
def _quiet_log(level, text, user_data):
    pass


def log_softmax(x):
    x = x.astype(np.float64)
    y = x - x.max()
    return y - np.log(np.exp(y).sum())


def genarm_json(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def all_logits(path, ids, threads):
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=threads, n_threads_batch=threads,
                          logits_all=True, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32), llm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--genarm", default=str(Path(__file__).resolve().parents[2] / "target/release/genarm"))
    ap.add_argument("--models", default="/tmp/m38", help="folder holding the HF model folders")
    ap.add_argument("--gguf-dir", default="/tmp/m38/gguf")
    ap.add_argument("--base", default="m1")
    ap.add_argument("--arm", action="append", default=None)
    ap.add_argument("--formats", default="f32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--response-tokens", type=int, default=24)
    ap.add_argument("--new-tokens", type=int, default=16)
    args = ap.parse_args()
    arms = args.arm or ["m2", "m3"]
    names = [args.base] + arms
    llama_cpp.llama_log_set(_quiet_log, ctypes.c_void_p(0))
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    rng = np.random.default_rng(1)
    words = lambda n: " ".join(f"w{i}" for i in rng.integers(3, 2000, size=n))
    prompt, response = words(12), words(args.response_tokens)

    for fmt in [f.strip() for f in args.formats.split(",")]:
        gdt = GENARM_DTYPE[fmt]
        base_cmd = [args.genarm]
        model_args = ["--base", os.path.join(args.models, args.base), "--dtype", gdt]
        for i, a in enumerate(arms):
            model_args += ["--arm", f"a{i}={os.path.join(args.models, a)}"]
        recs = genarm_json(base_cmd + ["score"] + model_args +
                           ["--prompt", prompt, "--response", response, "--json"], env)
        start = recs[0]
        ids = start["prompt_token_ids"] + start["response_token_ids"]
        p0 = len(start["prompt_token_ids"])
        toks = [r for r in recs if r["type"] == "token"]

        lps, llms = [], []
        for n in names:
            lg, llm = all_logits(os.path.join(args.gguf_dir, f"{n}-{fmt}.gguf"), ids, args.threads)
            lps.append(np.stack([log_softmax(lg[p0 - 1 + i]) for i in range(len(toks))]))
            llms.append(llm)
        # Compare every log-prob genarm printed: scored token + top alternatives, every model.
        ga, lc = [], []
        top1_same = 0
        for i, r in enumerate(toks):
            pairs = [(r["token_id"], [r["base_logprob"]] + [r["arms"][f"a{j}"]["logprob"] for j in range(len(arms))])]
            for t in r["top"]:
                pairs.append((t["token_id"], [t["base_logprob"]] + [t["arms"][f"a{j}"] for j in range(len(arms))]))
            for tid, vals in pairs:
                for m, v in enumerate(vals):
                    ga.append(v)
                    lc.append(lps[m][i][tid])
            guided = sum(lp[i] for lp in lps)  # weights 1
            top1_same += int(np.argmax(guided) == r["top"][0]["token_id"])
        ga, lc = np.array(ga), np.array(lc)
        diff = np.abs(ga - lc)
        rel = diff / np.maximum(np.abs(ga), 1e-3)
        print(f"[{fmt}] genarm --dtype {gdt} vs llama.cpp {fmt}.gguf: {len(ga)} log-probs "
              f"(|values| {np.abs(ga).min():.1f}..{np.abs(ga).max():.1f}); max |diff| {diff.max():.4g}, "
              f"median |diff| {np.median(diff):.3g}, max rel {rel.max():.3g}; "
              f"guided top-1 same at {top1_same}/{len(toks)} positions")

        # Greedy guided generation, both sides.
        gen = genarm_json(base_cmd + ["generate"] + model_args +
                          ["--prompt", prompt, "--max-new-tokens", str(args.new_tokens), "--json"], env)
        g_ids = [r["token_id"] for r in gen if r["type"] == "token"]
        for llm in llms:
            llm.reset()
        lg = []
        for llm in llms:
            llm.eval(start["prompt_token_ids"])
            lg.append(np.array(llm.scores[llm.n_tokens - 1]))
        l_ids = []
        for _ in range(len(g_ids)):
            t = int(np.argmax(sum(log_softmax(x) for x in lg)))
            l_ids.append(t)
            lg = []
            for llm in llms:
                llm.eval([t])
                lg.append(np.array(llm.scores[llm.n_tokens - 1]))
        same = sum(a == b for a, b in zip(g_ids, l_ids))
        print(f"[{fmt}] greedy guided, {len(g_ids)} tokens: genarm {g_ids}\n"
              f"[{fmt}]                      llama.cpp {l_ids}  ({same}/{len(g_ids)} equal)")


if __name__ == "__main__":
    main()
