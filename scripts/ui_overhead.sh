#!/usr/bin/env bash
# Measure what the playground costs: headless `genarm generate` versus the playground in tmux on
# the same three random models (vocab 32000, hidden 256, 4 layers; greedy, 400 tokens, 8
# alternatives per token as the playground keeps), interleaved, with keys pressed during each
# playground run. Prints every run, the medians and their ratio, and the playground's
# input-to-frame latency (GENARM_PLAY_STATS). Usage: scripts/ui_overhead.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
command -v tmux >/dev/null || { echo "ui_overhead: needs tmux (scripts/tui_smoke.sh installs it)"; exit 1; }
cargo build --release --quiet --bin genarm
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/genarm"
WORK="$(mktemp -d)"
S="genarm-overhead-$$"
trap 'tmux kill-session -t "$S" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for i in 1 2 3; do "$BIN" random-model --out "$WORK/m$i" --seed "$i" >/dev/null; done
MODELS="--base $WORK/m1 --arm helpful=$WORK/m2 --arm harmless=$WORK/m3"
PROMPT="w5 w6 w7"

headless() {
    "$BIN" generate $MODELS --prompt "$PROMPT" --max-new-tokens 400 --top-alternatives 8 --json |
        tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_second"])'
}
playground() {
    local stats="$WORK/stats.json"
    rm -f "$stats"
    tmux new-session -d -s "$S" -x 120 -y 40 \
        "GENARM_PLAY_STATS=$stats $BIN $MODELS --max-new-tokens 400 --prompt '$PROMPT'"
    sleep 1
    tmux send-keys -t "$S" r
    # Keys while it runs: slider moves (steer the next token), token selection, lens.
    for key in j + - k Left Left c c c c Right; do sleep 0.1; tmux send-keys -t "$S" "$key"; done
    for _ in $(seq 600); do
        tmux capture-pane -p -t "$S" | grep -q ' done ' && break
        sleep 0.1
    done
    tmux send-keys -t "$S" q
    for _ in $(seq 100); do [ -f "$stats" ] && break; sleep 0.1; done
    tmux kill-session -t "$S" 2>/dev/null || true
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ui_tokens_per_second_last_run"], d["input_to_frame_ms_p50"], d["input_to_frame_ms_p95"], d["input_to_frame_ms_max"], d["frames"])' "$stats"
}

: > "$WORK/h"; : > "$WORK/p"
for run in $(seq "$RUNS"); do
    h=$(headless); p=$(playground)
    echo "run $run: headless $h tok/s; playground tok/s, key-to-frame p50/p95/max ms, frames: $p"
    echo "$h" >> "$WORK/h"; echo "$p" >> "$WORK/p"
done
python3 - "$WORK/h" "$WORK/p" <<'PY'
import statistics, sys
h = [float(l) for l in open(sys.argv[1])]
p = [l.split() for l in open(sys.argv[2])]
ui = [float(r[0]) for r in p]
mh, mp = statistics.median(h), statistics.median(ui)
print(f"median headless {mh:.1f} tok/s, playground {mp:.1f} tok/s: the UI costs {100 * (1 - mp / mh):.1f} %")
print("key-to-frame ms, median over runs: p50 %.2f, p95 %.2f, max %.2f" % tuple(
    statistics.median(float(r[i]) for r in p) for i in (1, 2, 3)))
PY
