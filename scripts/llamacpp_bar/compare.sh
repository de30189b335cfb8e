#!/usr/bin/env bash
# Side-by-side speed bar: genarm bench and the llama.cpp guided loop, run ALTERNATELY
# (genarm, llama.cpp, genarm, llama.cpp, ...) for ROUNDS rounds, each printing its table
# with the load average just before it starts, then a summary of guided decode tokens/s
# per format and the genarm / llama.cpp ratio (median over the rounds).
#
# Environment (defaults in brackets):
#   GENARM   genarm binary                    [this checkout's target/release/genarm]
#   MODELS   folder with the HF model folders [/tmp/m38]  (base m1, ARMs m2 m3)
#   GGUF     folder with the GGUF files       [$MODELS/gguf]  (make_gguf.py output)
#   PY       python with llama-cpp-python     [/tmp/lcvenv/bin/python]
#   ROUNDS   rounds                           [3]
#   THREADS  threads on both sides            [2]
#   REPEATS  repeats per run (median inside)  [3]
#   PROMPT_TOKENS / DECODE_TOKENS             [64 / 64]
#   OUT      folder for the raw JSON          [a new mktemp folder]
#   GGUF_TOO also run genarm on the q8_0 and q4_k_m GGUF files themselves [1] (GGUF_TOO= to skip)
#   CLOOP    the C loop binary (guided_loop.c); run after the Python loop in every round
#            when it exists, to show what the Python layer costs [/tmp/guided_loop_c]
#            (CLOOP= to skip)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GENARM="${GENARM:-$here/../../target/release/genarm}"
MODELS="${MODELS:-/tmp/m38}"
GGUF="${GGUF:-$MODELS/gguf}"
PY="${PY:-/tmp/lcvenv/bin/python}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-2}"
REPEATS="${REPEATS:-3}"
PROMPT_TOKENS="${PROMPT_TOKENS:-64}"
DECODE_TOKENS="${DECODE_TOKENS:-64}"
OUT="${OUT:-$(mktemp -d /tmp/llamacpp_bar.XXXXXX)}"
CLOOP="${CLOOP-/tmp/guided_loop_c}"
GGUF_TOO="${GGUF_TOO-1}"
mkdir -p "$OUT"

for f in f32 f16 q8_0 q4_k_m; do
  for m in m1 m2 m3; do
    [ -f "$GGUF/$m-$f.gguf" ] || { echo "missing $GGUF/$m-$f.gguf: run make_gguf.py first (see README.md)" >&2; exit 1; }
  done
done

echo "# $(date -Is)  host $(hostname)  $(nproc) CPUs  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# genarm: $GENARM ($(stat -c '%y' "$GENARM" | cut -d. -f1))"
echo "# llama-cpp-python: $("$PY" -c 'import llama_cpp; print(llama_cpp.__version__)')"
[ -n "$CLOOP" ] && [ -x "$CLOOP" ] && echo "# C loop: $CLOOP"
echo "# threads $THREADS, prompt $PROMPT_TOKENS, decode $DECODE_TOKENS, repeats $REPEATS, rounds $ROUNDS; raw JSON in $OUT"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

for r in $(seq 1 "$ROUNDS"); do
  echo
  echo "=== round $r/$ROUNDS: genarm bench   load average before: $(loadavg)"
  (cd "$MODELS" && RAYON_NUM_THREADS="$THREADS" "$GENARM" bench --base m1 --arm a=m2 --arm b=m3 \
      --dtypes f32,f16,q8_0,q4_k --prompt-tokens "$PROMPT_TOKENS" --decode-tokens "$DECODE_TOKENS" \
      --repeats "$REPEATS" --json) | tee "$OUT/genarm.$r.jsonl" | "$PY" "$here/table.py" genarm
  # genarm reading llama.cpp's own files too (Q4_K_M keeps some tensors in Q6_K), so the
  # quantized rows compare the same bytes; the table tags each line with the file's format.
  if [ -n "$GGUF_TOO" ]; then
    echo "=== round $r/$ROUNDS: genarm bench on the GGUF files   load average before: $(loadavg)"
    : > "$OUT/genarm_gguf.$r.jsonl"
    for f in q8_0 q4_k_m; do
      (cd "$MODELS" && RAYON_NUM_THREADS="$THREADS" "$GENARM" bench --base "$GGUF/m1-$f.gguf" \
          --arm "a=$GGUF/m2-$f.gguf" --arm "b=$GGUF/m3-$f.gguf" --tokenizer m1/tokenizer.json \
          --prompt-tokens "$PROMPT_TOKENS" --decode-tokens "$DECODE_TOKENS" --repeats "$REPEATS" --json) \
        | sed "s/^{/{\"format\":\"$f\",/" | tee -a "$OUT/genarm_gguf.$r.jsonl" | "$PY" "$here/table.py" genarm
    done
  fi
  echo "=== round $r/$ROUNDS: llama.cpp loop   load average before: $(loadavg)"
  "$PY" "$here/guided_loop.py" --gguf-dir "$GGUF" --base m1 --arm m2 --arm m3 \
      --formats f32,f16,q8_0,q4_k_m --prompt-tokens "$PROMPT_TOKENS" --decode-tokens "$DECODE_TOKENS" \
      --repeats "$REPEATS" --threads "$THREADS" --json | tee "$OUT/llamacpp.$r.jsonl" | "$PY" "$here/table.py" llamacpp
  if [ -n "$CLOOP" ] && [ -x "$CLOOP" ]; then
    echo "=== round $r/$ROUNDS: llama.cpp loop in C   load average before: $(loadavg)"
    "$CLOOP" "$GGUF" f32,f16,q8_0,q4_k_m "$PROMPT_TOKENS" "$DECODE_TOKENS" "$REPEATS" "$THREADS" m1 m2 m3 \
      | tee "$OUT/llamacpp_c.$r.jsonl" | "$PY" "$here/table.py" llamacpp
  fi
done

echo
"$PY" "$here/table.py" summary "$OUT" "$ROUNDS"
