#!/usr/bin/env bash
# The test command of the README: installs what the tests need (as root), builds everything
# (tests, benches, doc examples) and runs the whole suite, PC/SC and PN532 interop included.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages test
cargo build --locked --all-targets
cargo test --locked --doc
cargo test --locked --all-targets
