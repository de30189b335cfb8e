#!/usr/bin/env bash
# Decode speed of the 4- and 5-bit formats before and after genarm's own kernels for them,
# interleaved: each round runs every variant once, in turn, so that all see the same machine
# load. The figures in docs/performance.md ("Quant types") come from this script.
#
# Usage: scripts/quant_bench.sh MODELS_DIR NEW_BIN OLD_BIN [OUT.jsonl]
#   MODELS_DIR holds m1 (the base), m2 and m3 (the ARMs), e.g. made by
#     for i in 1 2 3; do genarm random-model --out MODELS_DIR/m$i --hidden 576 --layers 30 \
#       --heads 9 --kv-heads 3 --intermediate 1536 --vocab 49152 --tie-embeddings --seed $i; done
#   (a 135M Llama of SmolLM's shape, random weights). NEW_BIN is genarm with the kernels,
#   OLD_BIN genarm before them (for `--dtype q4_k`, whose 576-wide rows it kept in f32).
# Environment: ROUNDS (default 3), REPEATS (bench --repeats, default 3), THREADS (default 2),
#   TOKENS (prompt and decode tokens, default 64).
#
# Variants (GENARM_QUANT_KERNEL, see src/engine/model/linear.rs and qgemv/mod.rs):
#   after       NEW_BIN, --dtypes q4_0,q5_0,q5_k,q4_k
#   before      NEW_BIN with candle:q4_0,q4_1,q5_0,q5_1,q5_k (the formats new here back on
#               candle's kernels; Q4_K, Q6_K and Q8_0 stay packed, as before), --dtypes
#               q4_0,q5_0,q5_k; and OLD_BIN --dtypes q4_k
#   after-avx2  as after, with the AVX2 kernels forced (avx2)
#   before-avx2 as before's NEW_BIN run, with avx2+candle:...
set -euo pipefail
models=$1 new=$2 old=$3
out=${4:-$(mktemp /tmp/quant_bench.XXXXXX.jsonl)}
rounds=${ROUNDS:-3} repeats=${REPEATS:-3} threads=${THREADS:-2} tokens=${TOKENS:-64}
new_formats=candle:q4_0,q4_1,q5_0,q5_1,q5_k
echo "raw JSON lines: $out"
: > "$out"

run() { # TAG BIN KERNEL DTYPES
    local tag=$1 bin=$2 kernel=$3 dtypes=$4
    echo "$(date -u +%H:%M:%S) $tag $dtypes (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    (cd "$models" && GENARM_QUANT_KERNEL=$kernel RAYON_NUM_THREADS=$threads "$bin" bench \
        --base m1 --arm a=m2 --arm b=m3 --dtypes "$dtypes" --prompt-tokens "$tokens" \
        --decode-tokens "$tokens" --repeats "$repeats" --json) |
        sed "s/^{/{\"variant\":\"$tag\",/" >> "$out"
}

for round in $(seq "$rounds"); do
    echo "round $round" >&2
    run after "$new" "" q4_0,q5_0,q5_k,q4_k
    run before "$new" "$new_formats" q4_0,q5_0,q5_k
    run before "$old" "" q4_k
    run after-avx2 "$new" avx2 q4_0,q5_0,q5_k,q4_k
    run before-avx2 "$new" "avx2+$new_formats" q4_0,q5_0,q5_k
done

python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
table = {}
for r in rows:
    key = (r["variant"], r["dtype"])
    table.setdefault(key, []).append(r)
def med(key, part):
    runs = table.get(key, [])
    return statistics.median(r[part]["decode_tokens_per_second"] for r in runs) if runs else None
print("| dtype | kernels | formats (base) | guided before | guided after | ratio | base-only before | base-only after | ratio |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for isa, suffix in (("AVX-512 VNNI", ""), ("AVX2", "-avx2")):
    for dtype in ("q4_0", "q5_0", "q5_k", "q4_k"):
        b, a = ("before" + suffix, dtype), ("after" + suffix, dtype)
        if a not in table:
            continue
        formats = table[a][0]["weight_formats"]["base"]
        cells = []
        for part in ("guided", "base_only"):
            x, y = med(b, part), med(a, part)
            cells += [f"{x:.1f}" if x else "-", f"{y:.1f}", f"{y / x:.2f}" if x else "-"]
        print(f"| {dtype} | {isa} | {formats} | " + " | ".join(cells) + " |")
print(f"rounds: {len(table.get(('after', 'q4_0'), []))}")
EOF
