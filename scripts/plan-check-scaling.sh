#!/usr/bin/env bash
# How `cardbench check` scales with the number of cases (it must stay linear), and what a plan
# over the limits costs (nothing: it is refused before expanding). Prints one line per plan:
# cases, wall seconds, peak RSS. Usage: scripts/plan-check-scaling.sh [path/to/cardbench]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/cardbench}
[ -x "$bin" ] || cargo build --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
measure() { # label, plan
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "$1: exit %x, %e s, peak RSS %M kB" "$bin" check "$2" >/dev/null 2>"$work/err" || true
    tail -1 "$work/err"
  else
    local t0 t1
    t0=$(date +%s.%N); "$bin" check "$2" >/dev/null 2>&1 || true; t1=$(date +%s.%N)
    echo "$1: $(echo "$t1 - $t0" | bc) s"
  fi
}
for n in 20000 40000 80000 100000; do
  python3 - "$n" "$work/p$n.toml" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write('[plan]\nid = "many"\nversion = "1"\n')
    for i in range(n):
        f.write(f'[[case]]\nid = "C{i}"\n[[case.step]]\ndo = "power_on"\nhead = "dut"\n')
PY
  measure "$n cases" "$work/p$n.toml"
done
python3 - "$work/huge.toml" <<'PY'
import sys
vals = ", ".join(str(i) for i in range(10))
fe = ", ".join(f"v{k} = [{vals}]" for k in range(9))
open(sys.argv[1], "w").write(f'[plan]\nid = "huge"\nversion = "1"\n\n[[case]]\nid = "BIG"\nfor_each = {{ {fe} }}\n'
                             '[[case.step]]\ndo = "power_on"\nhead = "dut"\n')
PY
measure "for_each 9 x 10 values (refused)" "$work/huge.toml"
