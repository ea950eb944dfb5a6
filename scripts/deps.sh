#!/usr/bin/env bash
# Debian packages cardbench needs beyond the Rust toolchain. Sourced by run.sh and test.sh:
#   need_packages build   # to build (the pcsc crate links libpcsclite)
#   need_packages test    # to run the whole test suite (real pcscd, vpcd, libnfc, tmux, tshark)
# As root, missing packages are installed with apt-get; otherwise the script names them.

BUILD_PACKAGES=(libpcsclite-dev pkg-config)
# tshark reads back `cardbench trace export --pcapng` (tests/interop.rs).
# postgresql: tests/store.rs starts a throwaway server (initdb in a temp dir, private socket).
TEST_PACKAGES=(pcscd vsmartcard-vpcd pcsc-tools libnfc-bin tmux tshark postgresql)

need_packages() {
  local want=("${BUILD_PACKAGES[@]}")
  [ "${1:-build}" = test ] && want+=("${TEST_PACKAGES[@]}")
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing[*]}" >&2
    # The package lists of a fresh machine may be empty or stale.
    apt-get update -qq >/dev/null
    # wireshark-common (pulled in by tshark) asks whether non-root users may capture: no.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}" >&2
    exit 2
  fi
}
