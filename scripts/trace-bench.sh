#!/usr/bin/env bash
# Memory and lag of the trace path: 1M exchanges on an in-process card through the link, the
# bounded event queue and the CSV writer. Prints peak RSS, the rows not yet on disk when the
# last command returned, and how long after that the file was complete.
#   bash scripts/trace-bench.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages build
cargo bench --locked --bench trace_memory -- "${1:-1000000}"
