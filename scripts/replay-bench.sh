#!/usr/bin/env bash
# Memory of `cardbench replay --mode bytes` on a long trace: writes a trace of ROWS exchanges
# (default 1,000,000), replays it on a fresh virtual card in a process of its own, and prints
# that process's peak RSS, the rows replayed, the time and the load average.
#   bash scripts/replay-bench.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages build
cargo bench --locked --bench replay_memory -- "${1:-1000000}"
