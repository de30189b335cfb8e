#!/usr/bin/env python3
"""Tables for compare.sh.

table.py genarm|llamacpp < run.jsonl      one run's table (JSON lines from --json)
table.py summary OUT_DIR ROUNDS           per-format guided decode t/s, all rounds + ratio
"""

import json
import statistics
import sys

# genarm --dtypes name -> llama.cpp GGUF format
FMT = {"f32": "f32", "f16": "f16", "q8_0": "q8_0", "q4_k": "q4_k_m"}


def read(path_or_file):
    f = open(path_or_file) if isinstance(path_or_file, str) else path_or_file
    return [json.loads(l) for l in f if l.startswith("{")]


def one(kind, rows):
    print(f"{'format':<7} {'base-only pp':>12} {'guided pp':>10} {'base-only tg':>12} {'guided tg':>10} "
          f"{'step ms':>8} {'outside fwd':>11}  forward ms/token (guided)" + ("  combine ms" if kind == "llamacpp" else ""))
    for r in rows:
        fmt = r.get("format") or FMT[r["dtype"]]
        outside = r.get("outside_forward", r.get("guidance_overhead"))
        fw = ", ".join(f"{k} {v:.2f}" for k, v in r["forward_ms_per_token"].items())
        line = (f"{fmt:<7} {r['base_only']['prompt_tokens_per_second']:>12.1f} {r['guided']['prompt_tokens_per_second']:>10.1f} "
                f"{r['base_only']['decode_tokens_per_second']:>12.1f} {r['guided']['decode_tokens_per_second']:>10.1f} "
                f"{r['guided_step_ms']:>8.3f} {outside * 100:>10.2f}%  {fw}")
        if kind == "llamacpp":
            line += f"  {r['combine_ms_per_token']:.3f}"
        print(line)


def summary(out, rounds):
    rounds = int(rounds)
    per = {}  # (side, fmt) -> (guided list, base list)
    for side in ("genarm", "genarm_gguf", "llamacpp", "llamacpp_c"):
        for r in range(1, rounds + 1):
            try:
                rows = read(f"{out}/{side}.{r}.jsonl")
            except FileNotFoundError:
                continue
            for row in rows:
                fmt = row.get("format") or FMT[row["dtype"]]
                g, b = per.setdefault((side, fmt), ([], []))
                g.append(row["guided"]["decode_tokens_per_second"])
                b.append(row["base_only"]["decode_tokens_per_second"])
    m = statistics.median
    cell = lambda xs: ("/".join(f"{x:.0f}" for x in xs) + " -> " + f"{m(xs):.1f}") if xs else "-"
    has_c = any(k[0] == "llamacpp_c" for k in per)
    has_gguf = any(k[0] == "genarm_gguf" for k in per)
    for kind, idx in (("guided (base + ARMs)", 0), ("base-only", 1)):
        print(f"decode tokens/s, {kind}: each round, then -> the median of the rounds")
        head = f"{'format':<7} {'genarm':>24} {'llama.cpp (Python)':>24} {'ratio':>6}"
        if has_c:
            head += f" {'llama.cpp (C)':>24} {'ratio':>6}"
        if has_gguf:
            head += f" {'genarm on the GGUF':>24} {'vs Py':>6} {'vs C':>6}"
        print(head)
        for fmt in ("f32", "f16", "q8_0", "q4_k_m"):
            g = per.get(("genarm", fmt), ([], []))[idx]
            lp = per.get(("llamacpp", fmt), ([], []))[idx]
            lc = per.get(("llamacpp_c", fmt), ([], []))[idx]
            if not g and not lp:
                continue
            ratio = lambda a, b: f"{m(a) / m(b):>6.2f}" if a and b else f"{'-':>6}"
            line = f"{fmt:<7} {cell(g):>24} {cell(lp):>24} {ratio(g, lp)}"
            if has_c:
                line += f" {cell(lc):>24} {ratio(g, lc)}"
            if has_gguf:
                gg = per.get(("genarm_gguf", fmt), ([], []))[idx]
                line += f" {cell(gg):>24} {ratio(gg, lp)} {ratio(gg, lc)}"
            print(line)
        print()
    print("ratio = genarm / llama.cpp (above 1: genarm faster)")


if __name__ == "__main__":
    if sys.argv[1] == "summary":
        summary(sys.argv[2], sys.argv[3])
    else:
        one(sys.argv[1], read(sys.stdin))
