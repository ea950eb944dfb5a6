#!/usr/bin/env bash
# Fuzz every target for a bounded time, one after the other (docs/fuzzing.md):
#   scripts/fuzz.sh [seconds-per-target] [target...]      (default 60 s, every target)
# Builds the targets with cargo-fuzz on nightly (installing both when missing), makes the
# seed corpora from the shipped plans and profiles and from a smoke run and a small batch
# (scripts/fuzz-seeds.py), then prints per target: runs, runs/s, coverage (cov, ft) from
# libFuzzer's final stats, and crashes found. Exit 1 when a target crashed (the input is in
# fuzz/artifacts/<target>/), 2 when the fuzzers could not be built or run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
all=(apdu card plan profile trace_read journal pn532_frame pn532_sim vpcd)
targets=("$@")
[ $# -eq 0 ] && targets=("${all[@]}")

. scripts/deps.sh
need_packages build
if ! cargo +nightly --version >/dev/null 2>&1; then
  command -v rustup >/dev/null || { echo "fuzzing needs a nightly toolchain (rustup toolchain install nightly)" >&2; exit 2; }
  rustup toolchain install nightly --profile minimal
fi
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Seeds from what the tool really writes: a smoke-run trace and a batch journal.
cargo build --locked --quiet --bin cardbench
target/debug/cardbench run test-plans/smoke.toml --profile profiles/virtual-lab.toml \
  --logs "$work/logs" --run-id smoke -q >/dev/null
target/debug/cardbench batch --profile profiles/virtual-lab.toml --plan test-plans/certification.toml \
  --batch-id seeds --count 3 --logs "$work/logs" -q >/dev/null || true
rm -rf fuzz/seeds
python3 scripts/fuzz-seeds.py fuzz/seeds "$work/logs/smoke/trace.csv" "$work/logs/seeds/journal.jsonl"

# Release build with debug assertions and overflow checks (cargo-fuzz's default). No
# sanitizer: the library is safe Rust, and ASan would rebuild every dependency for nothing.
(cd fuzz && cargo +nightly fuzz build -s none)
bin=fuzz/target/x86_64-unknown-linux-gnu/release

crashed=0
printf '%-12s %12s %9s %7s %7s %8s %s\n' target runs runs/s cov ft corpus crashes
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" fuzz/logs
  log=fuzz/logs/$t.log
  before=$(ls "fuzz/artifacts/$t" | wc -l)
  rc=0
  "$bin/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -max_total_time="$secs" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
  found=$(($(ls "fuzz/artifacts/$t" | wc -l) - before))
  [ $rc -ne 0 ] && [ $found -eq 0 ] && found=1
  [ $found -gt 0 ] && crashed=1
  runs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")
  rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | awk '{print $2}')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | awk '{print $2}')
  corp=$(grep -o 'corp: [0-9]*' <<<"$last" | awk '{print $2}')
  printf '%-12s %12s %9s %7s %7s %8s %s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
    "$found$([ $found -gt 0 ] && echo " (see $log, fuzz/artifacts/$t/)")"
done
exit $crashed
