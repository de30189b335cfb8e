#!/usr/bin/env bash
# Peak memory, prefill and guided decoding of two genarm binaries (before/after a change),
# interleaved: each round runs every model form with each binary in turn, one process per run,
# so each run's peak resident set (/usr/bin/time) is its own. Medians over the rounds. The
# figures in docs/performance.md ("Memory and prefill") come from this script.
#
# Usage: scripts/memory_bench.sh HF32 HF16 GGUF BEFORE_BIN AFTER_BIN
#   HF32, HF16  folders with m1 m2 m3 (f32 and f16 safetensors of the same models);
#   GGUF        m{1,2,3}-{f16,q8_0,q4_k_m}.gguf (see scripts/llamacpp_bar/side_by_side.sh)
# Environment: ROUNDS (3), THREADS (2), PROMPT (64), DECODE (32).
set -euo pipefail
hf32=$1 hf16=$2 gguf=$3 before=$4 after=$5
rounds=${ROUNDS:-3} threads=${THREADS:-2} prompt=${PROMPT:-64} decode=${DECODE:-32}
out=$(mktemp /tmp/memory_bench.XXXXXX.jsonl)
echo "raw JSON lines: $out" >&2

# FORM: a label, the --base/--arm paths' prefix and suffix, and the --dtype.
forms=(
    "hf-f32|$hf32/|f32" "hf-f16|$hf16/|f16" "hf-q8_0|$hf32/|q8_0"
    "gguf-f16|$gguf/|f16|-f16.gguf" "gguf-q8_0|$gguf/|f32|-q8_0.gguf"
    "gguf-q4_k_m|$gguf/|f32|-q4_k_m.gguf"
)
for round in $(seq "$rounds"); do
    for form in "${forms[@]}"; do
        IFS='|' read -r label pre dtype suf <<< "$form"
        for side in before after; do
            bin=$before
            [[ $side == after ]] && bin=$after
            load=$(cut -d' ' -f1 /proc/loadavg)
            json=$(RAYON_NUM_THREADS=$threads /usr/bin/time -f "RSS %M" -o /tmp/memory_bench.time \
                "$bin" bench --base "${pre}m1$suf" --arm "a=${pre}m2$suf" --arm "b=${pre}m3$suf" \
                --dtype "$dtype" --prompt-tokens "$prompt" --decode-tokens "$decode" --repeats 1 --json)
            rss=$(sed -n 's/^RSS //p' /tmp/memory_bench.time)
            echo "{\"form\":\"$label\",\"side\":\"$side\",\"load\":$load,\"rss_kib\":$rss,\"run\":$json}" >> "$out"
            echo "$(date -u +%H:%M:%S) round $round $label $side load $load rss $((rss / 1024)) MiB" >&2
        done
    done
done

python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cells = {}
for r in rows:
    g = r["run"]["guided"]
    cells.setdefault((r["form"], r["side"]), []).append(
        (r["rss_kib"] / 1024, g["prompt_tokens_per_second"], g["decode_tokens_per_second"]))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print("| model form | peak RSS MiB before / after | guided prefill t/s before / after | guided decode t/s before / after |")
print("| --- | --- | --- | --- |")
forms = []
for r in rows:
    if r["form"] not in forms:
        forms.append(r["form"])
for f in forms:
    b, a = cells[(f, "before")], cells[(f, "after")]
    print(f"| {f} | {med(b, 0):.0f} / {med(a, 0):.0f} ({med(a, 0) / med(b, 0):.2f}) "
          f"| {med(b, 1):.0f} / {med(a, 1):.0f} ({med(a, 1) / med(b, 1):.2f}) "
          f"| {med(b, 2):.1f} / {med(a, 2):.1f} ({med(a, 2) / med(b, 2):.2f}) |")
EOF
