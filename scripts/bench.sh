#!/usr/bin/env bash
# Runs the criterion benchmarks and prints the median of every benchmark from criterion's
# estimates (target/criterion/<group>/<name>/new/estimates.json), one line each.
set -euo pipefail
cd "$(dirname "$0")/.."
log=target/bench.log
mkdir -p target
if ! cargo bench --locked --bench exchange --bench engines -- "$@" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion")
rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    name = str(est.parent.parent.relative_to(root))
    med = json.loads(est.read_text())["median"]["point_estimate"]
    rows.append((name, med))
def fmt(ns):
    return f"{ns/1e6:.3f} ms" if ns >= 1e6 else f"{ns/1e3:.2f} µs" if ns >= 1e3 else f"{ns:.0f} ns"
w = max(len(n) for n, _ in rows)
for n, m in rows:
    print(f"{n:<{w}}  median {fmt(m)}")
PY
