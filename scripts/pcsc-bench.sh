#!/usr/bin/env bash
# Per-APDU cost through pcscd + the vpcd bridge (benches/pcsc_roundtrip.rs), same card, release
# build: cardbench's path as `cardbench run` takes it (PcscHead + link + recorder + sink thread
# writing a trace CSV) against a bare pcsc-crate loop (wall time) and a bare C loop on
# libpcsclite (benches/c/pcsc_bare_loop.c; client CPU from getrusage). Prints the figures of
# every round, the ratios and the load average.
#
#   bash scripts/pcsc-bench.sh            N=20000 exchanges per client per round, ROUNDS=3
#
# Needs root (it starts its own pcscd), gcc and the packages of scripts/deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages test
command -v gcc >/dev/null || { echo "gcc is needed for the C baseline (apt-get install gcc)" >&2; exit 2; }
dir=$(mktemp -d)
gcc -O2 -Wall -o "$dir/pcsc_bare_loop" benches/c/pcsc_bare_loop.c $(pkg-config --cflags --libs libpcsclite)
cargo build --release --locked --quiet
cargo bench --locked --bench pcsc_roundtrip --no-run --quiet 2>/dev/null
bash scripts/pcscd-lab.sh start 1 "$dir/pcscd" >/dev/null
target/release/cardbench sim vpcd --profile profiles/vpcd-lab.toml --card card-a --port 35963 2>/dev/null &
bridge=$!
trap 'kill $bridge 2>/dev/null; bash scripts/pcscd-lab.sh stop "$dir/pcscd"; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  target/release/cardbench heads | grep -q "cardbench vpcd 0 00 00 *card" && break
  sleep 0.1
done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) CPUs)"
C_LOOP="$dir/pcsc_bare_loop" cargo bench --locked --quiet --bench pcsc_roundtrip -- --bench
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
