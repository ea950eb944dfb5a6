#!/usr/bin/env bash
# Figures of `cardbench time` on latency-modelled virtual cards (docs/timing.md, "Figures"):
#   1. accuracy in process: SIGN PAYMENT modelled at 40.000 ms, READ FIELD at 1.000 ms; the
#      card time (op − baseline, median of the paired differences) should be 39.000 ms ± 1 %;
#   2. scaling: 1 vs 4 virtual heads with 1 ms per command (exchanges per second in the
#      measured loop, from the trace's monotonic clock); the goal is ≥ 0.9 × 4.
# Usage: scripts/timing-figures.sh   (CARDBENCH=path/to/cardbench to use another build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARDBENCH:-target/release/cardbench}
[ -x "$BIN" ] || cargo build --release --locked --quiet
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 - "$W" <<'PY'
import sys
w = sys.argv[1]
lab = open("profiles/virtual-lab.toml").read()
model = lab.replace('role = "signer"\ncard = "card-b"\n',
    'role = "signer"\ncard = "card-b"\nservice_seed = 1\n'
    '[[head.service]]\nins = "88"\nus = 40000\n[[head.service]]\nins = "B2"\nus = 1000\n', 1)
open(f"{w}/model.toml", "w").write(model)
for c in ["card-a", "card-b", "card-c", "card-d"]:
    lab = lab.replace(f'card = "{c}"\n', f'card = "{c}"\nservice_time_us = 1000\n', 1)
open(f"{w}/1ms.toml", "w").write(lab)
open(f"{w}/sign.toml", "w").write('''[timing]
id = "sign-accuracy"
version = "1"
iterations = 200
warmup = 5
[heads]
dut = "signer"
[[op]]
name = "cpay.sign_payment"
prepare = [{ select = "cpay" }, { apdu = "00 2A 00 BE BA ${payment_cert}" }]
apdu = "80 88 00 00 10 ${rnd16} 00"
baseline = "80 B2 01 00 08"
''')
open(f"{w}/read.toml", "w").write('''[timing]
id = "read-scaling"
version = "1"
iterations = 1000
warmup = 0
[[op]]
name = "read_field"
prepare = [{ select = "purse" }]
apdu = "80 B2 01 00 08"
''')
PY
"$BIN" time "$W/sign.toml" --profile "$W/model.toml" --logs "$W/logs" --run-id acc >/dev/null
"$BIN" time "$W/read.toml" --profile "$W/1ms.toml" --head A --logs "$W/logs" --run-id one >/dev/null
"$BIN" time "$W/read.toml" --profile "$W/1ms.toml" --head A --head B --head C --head D --logs "$W/logs" --run-id four >/dev/null
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) CPUs)"
python3 - "$W/logs" <<'PY'
import csv, statistics, sys
logs = sys.argv[1]
rows = list(csv.DictReader(open(f"{logs}/acc/samples.csv")))
op = {r["iteration"]: int(r["duration_ns"]) for r in rows if r["baseline"] == "false"}
base = {r["iteration"]: int(r["duration_ns"]) for r in rows if r["baseline"] == "true"}
d = statistics.median(op[i] - base[i] for i in op) / 1e6
import json
t = json.load(open(f"{logs}/acc/timing.json"))["ops"][0]["card_time"]
lo, hi = t["ci"]["lo"] / 1e6, t["ci"]["hi"] / 1e6
print(f"accuracy in process: card time {d:.5f} ms [{lo:.5f}, {hi:.5f}] for 39.000 ms modelled "
      f"({(d - 39) / 39 * 100:+.3f} %, CI {'contains' if lo <= 39 <= hi else 'misses'} 39.000), n = {len(op)}")
rate = {}
for run in ["one", "four"]:
    t = [int(r["mono_ns"]) for r in csv.DictReader(open(f"{logs}/{run}/trace.csv")) if r["step"] == "op"]
    rate[run] = len(t) / ((max(t) - min(t)) / 1e9)
    print(f"{run} head(s): {len(t)} exchanges at {rate[run]:.0f}/s")
print(f"scaling: 4 heads = {rate['four'] / rate['one']:.2f} x one head (goal >= 3.6)")
PY
