#!/usr/bin/env bash
# Figures of `cardbench time` through pcscd + vpcd (docs/timing.md, "Figures"), release build:
#   1. accuracy: card-b behind vpcd modelled with SIGN PAYMENT = 40.000 ms and READ FIELD =
#      1.000 ms ([[card.service]], applied by `cardbench sim vpcd`); card time (op − baseline)
#      should be 39.000 ms ± 2 %, with its 95 % CI;
#   2. overhead: wall time per timed exchange of `cardbench time` (READ FIELD, no model) against
#      the bare C loop on libpcsclite (benches/c/pcsc_bare_loop.c) on the same vpcd card, in one
#      run (C loop, cardbench, C loop); goal ≤ 1.05;
#   3. scaling: 1 vs 4 heads through pcscd, every card modelled at 1 ms per command; goal ≥ 3.6;
#   4. `cardbench time compare` of the accuracy run against the same card again (other seed:
#      no significant difference) and against SIGN PAYMENT at 40.800 ms (+2 %: slower).
# Needs root (starts its own pcscd under /tmp/cardbench-pcscd.lock), gcc, pcscd, vpcd.
#   bash scripts/timing-pcsc-figures.sh        N=200 (accuracy), OVER_N=5000, SCALE_N=1000
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARDBENCH:-target/release/cardbench}
[ -x "$BIN" ] || cargo build --release --locked --quiet
N=${N:-200} OVER_N=${OVER_N:-5000} SCALE_N=${SCALE_N:-1000}
W=$(mktemp -d)
gcc -O2 -Wall -o "$W/c_loop" benches/c/pcsc_bare_loop.c $(pkg-config --cflags --libs libpcsclite)
python3 - "$W" "$N" "$OVER_N" "$SCALE_N" <<'PY'
import sys
w, n, over_n, scale_n = sys.argv[1:]
lab = open("profiles/vpcd-lab.toml").read()
i = lab.index('name = "card-b"'); j = lab.index("slots = [3, 4]\n", i) + len("slots = [3, 4]\n")
for name, seed, sign in [("model", 1, 40000), ("model2", 2, 40000), ("slow", 3, 40800)]:
    open(f"{w}/{name}.toml", "w").write(lab[:j] + f'service_seed = {seed}\n[[card.service]]\nins = "88"\n'
        f'us = {sign}\n[[card.service]]\nins = "B2"\nus = 1000\n' + lab[j:])
ms = lab
for c in ["card-a", "card-b", "card-c", "card-d"]:
    ms = ms.replace(f'name = "{c}"\n', f'name = "{c}"\nservice_time_us = 1000\n', 1)
open(f"{w}/1ms.toml", "w").write(ms)
open(f"{w}/sign.toml", "w").write(f'''[timing]
id = "sign-accuracy"
version = "1"
iterations = {n}
warmup = 5
[heads]
dut = "signer"
[[op]]
name = "cpay.sign_payment"
prepare = [{{ select = "cpay" }}, {{ apdu = "00 2A 00 BE BA ${{payment_cert}}" }}]
apdu = "80 88 00 00 10 ${{rnd16}} 00"
baseline = "80 B2 01 00 08"
''')
for name, k in [("over", over_n), ("read", scale_n)]:
    open(f"{w}/{name}.toml", "w").write(f'''[timing]
id = "read-{name}"
version = "1"
iterations = {k}
warmup = 5
[[op]]
name = "read_field"
prepare = [{{ select = "purse" }}]
apdu = "80 B2 01 00 08"
''')
PY

exec 9>/tmp/cardbench-pcscd.lock
flock 9
bridges=()
stop_bridges() { for b in "${bridges[@]}"; do kill "$b" 2>/dev/null || true; wait "$b" 2>/dev/null || true; done; bridges=(); }
trap 'stop_bridges; bash scripts/pcscd-lab.sh stop "$W/pcscd"; [ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
bash scripts/pcscd-lab.sh start 4 "$W/pcscd" >/dev/null
bridge() { # profile card reader
  "$BIN" sim vpcd --profile "$1" --card "$2" --port $((35963 + 2 * $3)) 2>/dev/null &
  bridges+=($!)
}
wait_cards() {
  for _ in $(seq 200); do [ "$("$BIN" heads | grep -c ' card ')" = "$1" ] && return 0; sleep 0.1; done
  echo "cards did not appear" >&2; exit 1
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) CPUs)"

# 1. accuracy
bridge "$W/model.toml" card-b 1
wait_cards 1
"$BIN" time "$W/sign.toml" --profile "$W/model.toml" --logs "$W/logs" --run-id acc 2>/dev/null | grep -A1 " card  "
stop_bridges
wait_cards 0
# 4. compare: the same card again (other seed), and with SIGN PAYMENT 2 % slower (40.800 ms)
for m in model2 slow; do
  bridge "$W/$m.toml" card-b 1
  wait_cards 1
  "$BIN" time "$W/sign.toml" --profile "$W/$m.toml" --logs "$W/logs" --run-id "$m" >/dev/null 2>&1
  stop_bridges
  wait_cards 0
done
echo "compare, identical cards:"
"$BIN" time compare "$W/logs/acc" "$W/logs/model2" --threshold 1% | grep -m2 -E "OP|cpay.sign_payment" || true
echo "compare, SIGN PAYMENT 40.000 vs 40.800 ms:"
rc=0; "$BIN" time compare "$W/logs/acc" "$W/logs/slow" --threshold 1% | grep -m2 -E "OP|cpay.sign_payment" || rc=$?
echo "(exit $rc; 1 = slower beyond the threshold)"

# 2. overhead: the same unmodelled card for both clients, READ FIELD of the whole 8-byte card
#    ID (Le = 08: one wire exchange; a shorter Le leaves 61xx and a GET RESPONSE, which both
#    clients follow, and the trace shows)
bridge profiles/vpcd-lab.toml card-b 1
wait_cards 1
c1=$("$W/c_loop" "cardbench vpcd 1 00 00" 00A4040007A0000007770001 80B2010008 "$OVER_N")
"$BIN" time "$W/over.toml" --profile profiles/vpcd-lab.toml --head B --logs "$W/logs" --run-id over >/dev/null
c2=$("$W/c_loop" "cardbench vpcd 1 00 00" 00A4040007A0000007770001 80B2010008 "$OVER_N")
stop_bridges
wait_cards 0

# 3. scaling: four cards at 1 ms per command
cards=(card-a card-b card-c card-d)
for i in 0 1 2 3; do bridge "$W/1ms.toml" "${cards[$i]}" "$i"; done
wait_cards 4
"$BIN" time "$W/read.toml" --profile "$W/1ms.toml" --head A --logs "$W/logs" --run-id one >/dev/null
"$BIN" time "$W/read.toml" --profile "$W/1ms.toml" --head A --head B --head C --head D --logs "$W/logs" --run-id four >/dev/null
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$W/logs" "$c1" "$c2" <<'PY'
import csv, json, statistics, sys
logs, c1, c2 = sys.argv[1:]
t = json.load(open(f"{logs}/acc/timing.json"))["ops"][0]["card_time"]
d, lo, hi = t["median"] / 1e6, t["ci"]["lo"] / 1e6, t["ci"]["hi"] / 1e6
print(f"accuracy through pcscd + vpcd: card time {d:.4f} ms [{lo:.4f}, {hi:.4f}] for 39.000 ms modelled "
      f"({(d - 39) / 39 * 100:+.3f} %, CI {'contains' if lo <= 39 <= hi else 'misses'} 39.000), n = {t['pairs']}")
def cfig(s, k):
    return float(next(x.split("=")[1] for x in s.split() if x.startswith(k + "="))) / 1e3
cmean = lambda s: cfig(s, "wall_mean_ns")
cmed = lambda s: cfig(s, "wall_median_ns")
def span(run):
    rows = [r for r in csv.DictReader(open(f"{logs}/{run}/trace.csv")) if r["step"] == "op" and r["kind"] == "command"]
    per_head = {}
    for r in rows:
        per_head.setdefault(r["head"], []).append((int(r["mono_ns"]), int(r["duration_ns"])))
    out = []
    for h, v in per_head.items():
        first, last = min(v)[0], max(v)
        out.append((len(v), (last[0] + last[1] - first) / 1e9))
    return out
(n, s), = span("over")
tool = s / n * 1e6
samples = [int(r["duration_ns"]) for r in csv.DictReader(open(f"{logs}/over/samples.csv"))]
bare = (cmean(c1) + cmean(c2)) / 2
smed = statistics.median(samples) / 1e3
print(f"overhead: cardbench time {tool:.1f} µs per timed exchange (wall, trace span / {n}) vs bare C loop "
      f"{cmean(c1):.1f} / {cmean(c2):.1f} µs (mean): ratio {tool / bare:.3f} (goal <= 1.05); "
      f"median sample {smed:.1f} µs vs C loop median {cmed(c1):.1f} / {cmed(c2):.1f} µs: "
      f"ratio {smed / ((cmed(c1) + cmed(c2)) / 2):.3f}")
rate = {}
for run in ["one", "four"]:
    sp = span(run)
    rate[run] = sum(k / sec for k, sec in sp)
    print(f"{run} head(s) through pcscd: {sum(k for k, _ in sp)} wire exchanges, {rate[run]:.0f}/s "
          "(T=0 cards answer READ FIELD in two)")
print(f"scaling through pcscd: 4 heads = {rate['four'] / rate['one']:.2f} x one head (goal >= 3.6)")
PY
