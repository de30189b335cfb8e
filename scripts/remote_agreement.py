#!/usr/bin/env python3
"""How often guidance over a served base's top K picks what exact (local) decoding picks.

Usage (standard library only; llama-server from scripts/llama_server.sh):
  scripts/remote_agreement.py --gguf BASE.gguf --local BASE --arm NAME=PATH [--arm ...]
      [--weight NAME=W ...] [--prompts FILE] [--ks 5,20,100] [--tokens 32]
      [--prompt-template TEXT] [--genarm target/release/genarm]

llama-server serves BASE.gguf on 127.0.0.1 (f32 KV cache, flash attention off: its log-probs then
equal genarm's own to ~1e-5 on f32 weights). Exact decoding is `genarm generate --base LOCAL`
(the same weights loaded here: the GGUF itself or the folder it was made from); each K is
`genarm generate --base URL --remote-top-k K` (and with --exact-greedy also with
`--remote-exact-greedy`, rows "K+eg"); greedy, the same ARMs and weights. Per K it prints
how many outputs are identical to exact decoding, the share of exact tokens reproduced before the
first difference, the steps marked exact, the mean candidate count and the wall time per token (process start and model load included).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(gguf: str) -> tuple[subprocess.Popen, str]:
    binary = subprocess.run(
        [os.path.join(HERE, "llama_server.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-m", gguf, "--host", "127.0.0.1", "--port", str(port), "-t", "1",
         "-c", "4096", "-ctk", "f32", "-ctv", "f32", "-fa", "off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"llama-server did not start on {gguf}")


def generate(genarm: str, base: str, args, prompt: str, extra: list[str]) -> tuple[list[dict], float]:
    cmd = [genarm, "generate", "--base", base, "--prompt", prompt,
           "--max-new-tokens", str(args.tokens), "--json"]
    for arm in args.arm:
        cmd += ["--arm", arm]
    for w in args.weight:
        cmd += ["--weight", w]
    if args.prompt_template:
        cmd += ["--prompt-template", args.prompt_template]
    started = time.monotonic()
    out = subprocess.run(cmd + extra, capture_output=True, text=True)
    wall = time.monotonic() - started
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd + extra)}: {out.stderr.strip()}")
    records = [json.loads(line) for line in out.stdout.splitlines()]
    return [r for r in records if r["type"] == "token"], wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--local", required=True)
    ap.add_argument("--arm", action="append", default=[])
    ap.add_argument("--weight", action="append", default=[])
    ap.add_argument("--prompts", help="a file, one prompt a line (default: the demo's)")
    ap.add_argument("--ks", default="5,20,100")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--prompt-template")
    ap.add_argument("--exact-greedy", action="store_true",
                    help="also run each K with --remote-exact-greedy")
    ap.add_argument("--genarm", default=os.path.join(HERE, "..", "target", "release", "genarm"))
    args = ap.parse_args()
    if args.prompts:
        prompts = [p for p in open(args.prompts).read().splitlines() if p.strip()]
    else:
        listing = subprocess.run([args.genarm, "demo", "prompts"], check=True,
                                 capture_output=True, text=True).stdout
        prompts = [line[20:].strip() for line in listing.splitlines() if line.strip()]
    ks = [int(k) for k in args.ks.split(",")]
    proc, url = start_server(args.gguf)
    try:
        exact = {p: generate(args.genarm, args.local, args, p, [])[0] for p in prompts}
        print(f"{len(prompts)} prompts, {args.tokens} tokens, base {args.gguf}, ARMs {args.arm} "
              f"{args.weight}")
        print("K       identical   exact tokens before the first difference   steps exact   "
              "candidates   ms/token")
        runs = [(str(k), ["--remote-top-k", str(k)]) for k in ks]
        if args.exact_greedy:
            runs += [(f"{k}+eg", ["--remote-top-k", str(k), "--remote-exact-greedy"]) for k in ks]
        for label, flags in runs:
            same = reproduced = total = exact_steps = steps = candidates = 0
            wall_total = tokens_total = 0.0
            for p in prompts:
                got, wall = generate(args.genarm, url, args, p, flags)
                want = [r["token_id"] for r in exact[p]]
                ids = [r["token_id"] for r in got]
                same += ids == want
                prefix = 0
                while prefix < min(len(ids), len(want)) and ids[prefix] == want[prefix]:
                    prefix += 1
                reproduced += prefix
                total += len(want)
                steps += len(got)
                exact_steps += sum(r["exact"] for r in got)
                candidates += sum(r["candidates"] for r in got)
                wall_total += wall
                tokens_total += max(len(got), 1)
            print(f"{label:<7} {same:>3}/{len(prompts):<5} {reproduced:>6}/{total:<6} "
                  f"({100 * reproduced / max(total, 1):5.1f}%)                    "
                  f"{100 * exact_steps / max(steps, 1):5.1f}%      "
                  f"{candidates / max(steps, 1):8.1f}   {1e3 * wall_total / tokens_total:8.2f}")
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
