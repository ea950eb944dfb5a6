#!/usr/bin/env bash
# Per-APDU round trip through pcscd + the vpcd bridge (median and p99 over N exchanges,
# default 5000), for cardbench's PC/SC head and for a bare pcsc-crate loop, same card.
# Needs root (it starts its own pcscd) and the packages of scripts/deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages test
dir=$(mktemp -d)
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
cargo bench --locked --quiet --bench pcsc_roundtrip -- --bench
