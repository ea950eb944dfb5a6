#!/usr/bin/env bash
# The same batch run headless (`cardbench batch -q`) and through the TUI (driven by keystrokes
# in a detached tmux session, drawing all along), alternately; prints the wall times and the
# ratio TUI / headless of their medians (target <= 1.05). See docs/tui.md.
#
#   scripts/tui-bench.sh [COUNT] [RUNS]        defaults: 200 cards, 3 runs of each
#   PROFILE=... PLAN=... scripts/tui-bench.sh  defaults: the virtual lab, the certification suite
#   PANEL=3 scripts/tui-bench.sh               the panel shown while the batch runs (a key,
#                                              e.g. 3 for the live trace; default: Batch)
#
# A batch's wall time is measured from its batch.json (written as the batch starts) to its
# summary.csv (written once the last card is journaled): the same span in both modes, without
# process start-up or the time it takes to type the keys. The CPU time (user + system) of the
# whole process is printed too (the TUI's includes its idle seconds before and after): it is
# steadier than wall time on a machine that is busy with other work.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-200}
RUNS=${2:-3}
PROFILE=$PWD/${PROFILE:-profiles/virtual-lab.toml}
PLAN=$PWD/${PLAN:-test-plans/certification.toml}
command -v tmux >/dev/null || { echo "tui-bench: tmux is required (apt-get install -y tmux)" >&2; exit 2; }
export TERM=${TERM:-xterm-256color}

cargo build --release --quiet
BIN=$PWD/target/release/cardbench
work=$(mktemp -d)
sock=$work/tmux.sock
cleanup() {
    tmux -S "$sock" kill-server 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Seconds from batch.json to summary.csv in a batch folder.
span() {
    awk -v a="$(stat -c %.9Y "$1/batch.json")" -v b="$(stat -c %.9Y "$1/summary.csv")" 'BEGIN { printf "%.3f", b - a }'
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Poll until "$@" succeeds, at most $1 seconds.
until_ok() {
    local limit=$1
    shift
    local t0=$SECONDS
    until "$@"; do
        if ((SECONDS - t0 > limit)); then
            echo "tui-bench: timed out waiting for: $*" >&2
            tmux -S "$sock" capture-pane -p -t tui 2>/dev/null >&2 || true
            exit 1
        fi
        sleep 0.1
    done
}

screen_has() { tmux -S "$sock" capture-pane -p -t tui | grep -qF -- "$1"; }
done_files() { compgen -G "$1/logs/*/results.json" >/dev/null; }

# "<wall> <cpu>" of a headless batch.
headless() {
    local d=$work/h$1 rc=0 TIMEFORMAT='%U %S'
    mkdir -p "$d"
    { time "$BIN" batch --profile "$PROFILE" --plan "$PLAN" --batch-id B --count "$COUNT" --logs "$d/logs" -q >"$d/out" || rc=$?; } 2>"$d/time"
    if ((rc > 1)); then
        echo "tui-bench: headless batch failed (exit $rc)" >&2
        cat "$d/out" >&2
        exit 1
    fi
    echo "$(span "$d/logs/B") $(awk '{ printf "%.2f", $1 + $2 }' "$d/time")"
}

# CPU seconds (user + system) of a running process.
cpu_of() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

tui() {
    local d=$work/t$1
    mkdir -p "$d"
    tmux -S "$sock" new-session -d -s tui -x 100 -y 30 \
        "cd '$d' && '$BIN' tui --profile '$PROFILE' --plan '$PLAN'; echo \$? > '$d/exit'"
    until_ok 30 screen_has "● idle"
    local keys=(j j j Enter C-u)
    local i
    for ((i = 0; i < ${#COUNT}; i++)); do keys+=("${COUNT:i:1}"); done
    keys+=(Enter)
    for k in "${keys[@]}"; do
        tmux -S "$sock" send-keys -t tui "$k"
        sleep 0.05
    done
    until_ok 10 screen_has "Card count $COUNT "
    tmux -S "$sock" send-keys -t tui s
    if [[ -n ${PANEL:-} ]]; then
        tmux -S "$sock" send-keys -t tui "$PANEL"
    fi
    until_ok 3600 done_files "$d"
    until_ok 60 screen_has "● finished"
    local pid cpu
    pid=$(pgrep -P "$(tmux -S "$sock" list-panes -t tui -F '#{pane_pid}')" -x cardbench)
    cpu=$(cpu_of "$pid")
    tmux -S "$sock" send-keys -t tui q
    until_ok 30 test -s "$d/exit"
    [[ $(cat "$d/exit") == 0 ]] || { echo "tui-bench: the TUI exited $(cat "$d/exit")" >&2; exit 1; }
    echo "$(span "$(dirname "$(compgen -G "$d/logs/*/summary.csv")")") $cpu"
}

echo "tui-bench: $COUNT cards of $(basename "$PLAN") on $(basename "$PROFILE"), $RUNS runs each, $(nproc) CPUs"
hs=() ts=() hc=() tc=()
for ((r = 1; r <= RUNS; r++)); do
    out=$(headless "$r")
    read -r h hcpu <<<"$out"
    out=$(tui "$r")
    read -r t tcpu <<<"$out"
    echo "  run $r: headless ${h}s (cpu ${hcpu}s)  tui ${t}s (cpu ${tcpu}s)"
    hs+=("$h") ts+=("$t") hc+=("$hcpu") tc+=("$tcpu")
done
mh=$(median "${hs[@]}")
mt=$(median "${ts[@]}")
echo "headless median ${mh}s wall, $(median "${hc[@]}")s cpu"
echo "tui      median ${mt}s wall, $(median "${tc[@]}")s cpu"
awk -v t="$mt" -v h="$mh" 'BEGIN { printf "ratio TUI/headless %.3f (wall time; target <= 1.05)\n", t / h }'
awk -v t="$(median "${tc[@]}")" -v h="$(median "${hc[@]}")" 'BEGIN { printf "ratio TUI/headless %.3f (cpu time)\n", t / h }'
