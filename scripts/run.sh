#!/usr/bin/env bash
# Build cardbench (installing its build dependencies when run as root) and run it with the
# given arguments: scripts/run.sh run test-plans/smoke.toml --profile profiles/virtual-lab.toml
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages build
cargo build --release --locked --quiet
exec target/release/cardbench "$@"
