#!/usr/bin/env bash
# The test command of the README: builds everything (tests, benches, docs examples) and runs
# the whole suite. Installs missing Debian packages when run as root; otherwise names them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build and tests need beyond the Rust toolchain.
NEEDED=()

missing=()
for p in "${NEEDED[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})" >&2
    exit 2
  fi
fi

cargo build --locked --all-targets
cargo test --locked --all-targets
cargo test --locked --doc
