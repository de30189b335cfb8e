#!/usr/bin/env bash
# genarm against llama.cpp's guided loop (guided_loop.c, static libllama from
# scripts/llama_cpp_tools.sh), base + 2 ARMs, format by format, interleaved: each round runs,
# for every format, genarm on llama.cpp's file, genarm quantizing the HF folder at load, and the
# C loop on llama.cpp's file, one process each, so that each gets its own peak RSS
# (/usr/bin/time's maximum resident set). Medians over the rounds, ratios genarm / llama.cpp.
#
# Usage: scripts/llamacpp_bar/side_by_side.sh MODELS GGUF GENARM TOOLS [avx2]
#   MODELS  HF folders m1 (base), m2, m3 (genarm random-model output, f32 safetensors)
#   GGUF    m{1,2,3}-{f16,q8_0,q4_0,q4_k_m,q5_k_m}.gguf: make_gguf.py's f16 and f32 files, the
#           others made from the f32 file by TOOLS/llama-quantize (Q8_0 Q4_0 Q4_K_M Q5_K_M)
#   GENARM  genarm binary;  TOOLS  scripts/llama_cpp_tools.sh's output folder (native, avx2, avx512)
#   avx2    also forces genarm's AVX2 kernels (GENARM_QUANT_KERNEL=avx2)
# Environment: ROUNDS (5), THREADS (2), REPEATS (1, per run), PROMPT (64), DECODE (32),
#   FORMATS (f16,q8_0,q4_0,q4_k_m,q5_k_m), OUT (a new folder for the raw JSON lines).
set -euo pipefail
models=$1 gguf=$2 genarm=$3 tools=$4 isa=${5:-native}
rounds=${ROUNDS:-5} threads=${THREADS:-2} repeats=${REPEATS:-1}
prompt=${PROMPT:-64} decode=${DECODE:-32}
formats=${FORMATS:-f16,q8_0,q4_0,q4_k_m,q5_k_m}
out=${OUT:-$(mktemp -d /tmp/side_by_side.XXXXXX)}
kernel=""
[[ $isa == avx2 ]] && kernel=avx2
mkdir -p "$out"
raw="$out/runs.jsonl"
: > "$raw"
echo "raw JSON lines: $raw" >&2

# genarm's --dtype for llama.cpp's file type (q4_k/q5_k follow llama.cpp's _M mixes).
dtype_of() { case $1 in q4_k_m) echo q4_k ;; q5_k_m) echo q5_k ;; *) echo "$1" ;; esac; }

# TAG FORMAT COMMAND...: one run, its JSON line tagged, its peak RSS (KiB) added.
run() {
    local tag=$1 fmt=$2
    shift 2
    local load json rss
    load=$(cut -d' ' -f1 /proc/loadavg)
    json=$(/usr/bin/time -f "RSS %M" -o "$out/time.txt" "$@" | tail -n 1)
    rss=$(sed -n 's/^RSS //p' "$out/time.txt")
    echo "{\"side\":\"$tag\",\"format\":\"$fmt\",\"isa\":\"$isa\",\"load\":$load,\"rss_kib\":$rss,\"run\":$json}" >> "$raw"
    echo "$(date -u +%H:%M:%S) $isa $tag $fmt load $load rss $((rss / 1024)) MiB" >&2
}

for round in $(seq "$rounds"); do
    echo "round $round/$rounds" >&2
    for fmt in ${formats//,/ }; do
        dt=$(dtype_of "$fmt")
        g=(bench --prompt-tokens "$prompt" --decode-tokens "$decode" --repeats "$repeats" --json)
        run genarm-file "$fmt" env GENARM_QUANT_KERNEL="$kernel" RAYON_NUM_THREADS="$threads" \
            "$genarm" "${g[@]}" --base "$gguf/m1-$fmt.gguf" --arm "a=$gguf/m2-$fmt.gguf" \
            --arm "b=$gguf/m3-$fmt.gguf" --dtype "$( [[ $fmt == f16 ]] && echo f16 || echo f32)"
        run genarm-hf "$fmt" env GENARM_QUANT_KERNEL="$kernel" RAYON_NUM_THREADS="$threads" \
            "$genarm" "${g[@]}" --base "$models/m1" --arm "a=$models/m2" --arm "b=$models/m3" \
            --dtype "$dt"
        run llamacpp "$fmt" "$tools/guided_loop" "$gguf" "$fmt" "$prompt" "$decode" "$repeats" \
            "$threads" m1 m2 m3
    done
done

python3 - "$raw" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cell = {}
for r in rows:
    g = r["run"]["guided"]
    cell.setdefault((r["isa"], r["format"], r["side"]), []).append(
        (g["decode_tokens_per_second"], g["prompt_tokens_per_second"], r["rss_kib"] / 1024, r["load"]))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print("| kernels | format | genarm reads | guided decode t/s genarm / llama.cpp (ratio) "
      "| prefill t/s genarm / llama.cpp (ratio) | peak RSS MiB genarm / llama.cpp (ratio) | rounds | load |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (isa, fmt, side), xs in sorted(cell.items()):
    if side == "llamacpp":
        continue
    ll = cell.get((isa, fmt, "llamacpp"))
    if not ll:
        continue
    what = "llama.cpp's file" if side == "genarm-file" else "HF folder, quantized at load"
    if fmt == "f16" and side == "genarm-hf":
        what = "HF folder (f32), f16 at load"
    parts = []
    for i, unit in ((0, "{:.1f}"), (1, "{:.0f}"), (2, "{:.0f}")):
        a, b = med(xs, i), med(ll, i)
        parts.append(f"{unit.format(a)} / {unit.format(b)} ({a / b:.2f})")
    loads = [x[3] for x in xs + ll]
    print(f"| {isa} | {fmt} | {what} | " + " | ".join(parts)
          + f" | {len(xs)} | {min(loads):.1f}-{max(loads):.1f} |")
EOF
