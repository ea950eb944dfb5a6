#!/usr/bin/env bash
# The test command of the README: installs what the tests need (as root), builds everything
# (tests, benches, doc examples) and runs the whole suite, PC/SC and PN532 interop included.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages test
cargo build --locked --all-targets
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --doc 2>&1 | tee "$log"
cargo test --locked --all-targets 2>&1 | tee -a "$log"
# One closing line over every test binary (cargo prints one result line per binary).
passed=$(grep -E '^test result:' "$log" | grep -Eo '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(grep -E '^test result:' "$log" | grep -Eo '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
echo "tests: $passed passed, $failed failed"
