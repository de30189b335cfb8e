#!/usr/bin/env bash
# Real-terminal smoke test of the playground: start the release binary in tmux on the fixture
# models, press keys, read the screen with capture-pane, and check that the terminal is back in
# cooked mode after `q` and after SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v tmux >/dev/null; then
    echo "tmux is missing; installing it"
    if [ "$(id -u)" = 0 ]; then apt-get install -y tmux >/dev/null; else sudo apt-get install -y tmux >/dev/null; fi
fi
cargo build --release --quiet --bin genarm

M=tests/data/parity/models
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/genarm"
ARGS="--base $M/llama_base --arm helpful=$M/llama_arm_helpful --arm harmless=$M/llama_arm_harmless --weight harmless=0.5 --max-new-tokens 40 --prompt 'Hello there'"
S="genarm-smoke-$$"
WORK="$(mktemp -d)"
trap 'tmux kill-session -t "$S" 2>/dev/null || true; rm -rf "$WORK"' EXIT

screen() { tmux capture-pane -p -t "$S"; }
fail() { echo "tui_smoke: FAIL: $1"; echo "---- screen ----"; screen || true; exit 1; }
# wait_for REGEX WHAT: poll the screen for up to 20 s.
wait_for() {
    for _ in $(seq 200); do
        if screen | grep -Eq -- "$1"; then return 0; fi
        sleep 0.1
    done
    fail "$2"
}
# The marker is split in the command so only its output matches, not the typed line.
check_cooked() {
    tmux send-keys -t "$S" "stty -a | grep -Eq '(^|[ ;])icanon' && stty -a | grep -Eq '(^|[ ;])echo([ ;]|$)' && echo COOKED_\"OK\" || echo STILL_\"RAW\"" Enter
    wait_for 'COOKED_OK|STILL_RAW' "no answer from stty ($1)"
    screen | grep -q 'COOKED_OK' || fail "terminal left in raw mode ($1)"
    tmux send-keys -t "$S" "clear" Enter
    sleep 0.3
}

tmux new-session -d -s "$S" -x 120 -y 40 "env PS1='smoke\$ ' bash --norc --noprofile"
# A broken config file is a message on the screen, not a refusal to start.
printf '[theme]\naccent = "ultraviolet"\n' > "$WORK/config.toml"
tmux send-keys -t "$S" "cd '$PWD' && GENARM_CONFIG='$WORK/config.toml' GENARM_DATA='$WORK/data' $BIN $ARGS" Enter
wait_for 'Steering' "the playground did not open"
screen | grep -q 'config.toml:2' || fail "the config error and its line are not shown"
screen | grep -q 'helpful' || fail "no helpful slider"
screen | grep -q 'harmless' || fail "no harmless slider"

tmux send-keys -t "$S" r
wait_for '(done|running).*[1-9][0-9]* tokens' "no tokens were generated"
screen | grep -q 'Inspector' || fail "no inspector"
tmux send-keys -t "$S" w
wait_for 'exported to' "the export did not report its file"
ls "$WORK"/data/session-*.jsonl >/dev/null 2>&1 || fail "no export file in GENARM_DATA"
tmux send-keys -t "$S" +
wait_for '\+1\.25' "the helpful slider did not move"
tmux send-keys -t "$S" '?'
wait_for 'Keys \(esc or \? closes\)' "no help overlay"
tmux send-keys -t "$S" Escape

# The profile picker reads the file when it opens, so profiles written now are listed: a broken
# one (its error is one line, the old models stay) and one on other fixture models.
cat > "$WORK/config.toml" <<EOF
[profiles.broken]
base = "/nowhere/model"
[profiles.qwen]
base = "$PWD/$M/qwen2_base"
arms = { steer = "$PWD/$M/qwen2_arm" }
weights = { steer = 1.5 }
EOF
tmux send-keys -t "$S" M
wait_for 'Profiles \(enter loads' "no profile picker"
screen | grep -q 'qwen2_base' || fail "the picker does not list the qwen profile"
tmux send-keys -t "$S" Down Enter
wait_for 'profile broken not loaded: --base /nowhere/model' "a broken profile was not reported"
screen | grep -q '│  harmless ' || fail "the old models did not stay after a broken profile"
tmux send-keys -t "$S" M
wait_for 'Profiles \(enter loads' "no profile picker the second time"
tmux send-keys -t "$S" Down Down Enter
wait_for 'profile qwen loaded' "the qwen profile did not load"
screen | grep -q 'qwen2_base + steer' || fail "the status line does not show the qwen models"
screen | grep -q '+1\.50' || fail "the steer slider is not at the profile's weight"
tmux send-keys -t "$S" r
wait_for '(done|running).*[1-9][0-9]* tokens' "no tokens from the qwen profile"
tmux send-keys -t "$S" q
wait_for '^smoke\$ ?$' "the playground did not quit"
check_cooked "after q"

# SIGTERM: the binary replaces a shell that wrote its pid first.
tmux send-keys -t "$S" "bash -c 'echo \$\$ > $WORK/pid; exec $BIN $ARGS'" Enter
wait_for 'Steering' "the playground did not open a second time"
tmux send-keys -t "$S" r
sleep 0.3
kill -TERM "$(cat "$WORK/pid")"
wait_for '^smoke\$ ?$' "the playground did not end on SIGTERM"
check_cooked "after SIGTERM"

# Ctrl-Z suspends to the shell with the terminal restored; `fg` brings the playground back.
tmux send-keys -t "$S" "$BIN $ARGS" Enter
wait_for 'Steering' "the playground did not open for Ctrl-Z"
tmux send-keys -t "$S" C-z
wait_for 'Stopped' "Ctrl-Z did not suspend the playground"
check_cooked "after Ctrl-Z"
tmux send-keys -t "$S" "fg" Enter
wait_for 'Steering' "fg did not bring the playground back"
# A bracketed paste of 40 KB on the main screen opens the prompt line and lands there at once,
# one line, cut to the field's 32,768 characters; the playground still answers at once.
python3 -c "import sys; sys.stdout.write(('pasted line\n' * 3400) + 'PASTE_END')" > "$WORK/paste.txt"
tmux load-buffer -b genarm-paste "$WORK/paste.txt"
tmux paste-buffer -p -b genarm-paste -t "$S"
wait_for 'pasted text cut: a field holds 32768 characters' "the long paste was not taken as one paste"
tmux send-keys -t "$S" Escape
sleep 0.2
tmux send-keys -t "$S" q
wait_for '^smoke\$ ?$' "the playground did not quit after a paste"
check_cooked "after a paste"

# SIGQUIT quits like SIGTERM; SIGABRT (what a failed allocation raises) still restores the
# terminal before the process dies of it.
for signal in QUIT ABRT; do
    tmux send-keys -t "$S" "bash -c 'echo \$\$ > $WORK/pid; exec $BIN $ARGS'" Enter
    wait_for 'Steering' "the playground did not open for SIG$signal"
    kill "-$signal" "$(cat "$WORK/pid")"
    wait_for '^smoke\$ ?$' "the playground did not end on SIG$signal"
    check_cooked "after SIG$signal"
done

# A missing model is one line and a non-zero exit, before the terminal is touched.
if out=$("$BIN" --base /nonexistent/model 2>&1); then fail "a missing model exited 0"; fi
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "a missing model printed more than one line: $out"
if out=$("$BIN" --max-new-tokens 0 2>&1); then fail "--max-new-tokens 0 opened the playground"; fi
printf '%s\n' "$out" | grep -q -- '--max-new-tokens must be at least 1' || fail "--max-new-tokens 0: $out"

echo "tui_smoke: ok"
