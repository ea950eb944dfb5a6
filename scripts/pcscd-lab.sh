#!/usr/bin/env bash
# Start or stop a private pcscd (no systemd) with N vsmartcard vpcd readers.
#
#   scripts/pcscd-lab.sh start [N] [DIR]   N readers "cardbench vpcd <i>" (default 2), state in DIR
#   scripts/pcscd-lab.sh stop [DIR]
#   PCSCD_ARGS="--apdu" scripts/pcscd-lab.sh start ...   extra pcscd options
# Tests take turns through an flock on /tmp/cardbench-pcscd.lock (tests/common/pcscd.rs); by
# hand: flock /tmp/cardbench-pcscd.lock bash scripts/pcscd-lab.sh ...
#
# Reader i listens for a virtual card (`cardbench sim vpcd --port P`) on TCP port
# P = 35963 + 2*i; pcscd names its first slot "cardbench vpcd <i> 00 00". Every reader entry
# has its own copy of the driver: a shared copy would share one driver state between readers.
# vpcd listens on all interfaces, not only loopback: run this on a trusted network only.
set -euo pipefail
cmd=${1:-}
DRIVER=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
SOCKET=/run/pcscd/pcscd.comm

start() {
  local n=${1:-2} dir=${2:-/tmp/cardbench-pcscd}
  command -v pcscd >/dev/null || { echo "pcscd is not installed (apt-get install pcscd)" >&2; exit 2; }
  [ -e "$DRIVER" ] || { echo "vpcd driver missing: $DRIVER (apt-get install vsmartcard-vpcd)" >&2; exit 2; }
  if pgrep -x pcscd >/dev/null; then
    echo "a pcscd is already running (pid $(pgrep -x pcscd | tr '\n' ' ')); stop it first" >&2
    exit 2
  fi
  # The vpcd ports lie in Linux's ephemeral range: an outgoing connection that happens to get
  # one as its local port makes that reader fail to listen, and pcscd then starts without it.
  # Reserve them (root only; reserved ports are only kept out of the ephemeral pool).
  local reserved=/proc/sys/net/ipv4/ip_local_reserved_ports
  if [ -w "$reserved" ]; then
    local want="35963-$((35963 + 2 * n))" have
    have=$(cat "$reserved")
    case ",$have," in
      *",$want,"*) ;;
      *) echo "${have:+$have,}$want" >"$reserved" ;;
    esac
  fi
  # A pcscd killed with SIGKILL leaves its socket and pid file behind.
  rm -rf /run/pcscd
  mkdir -p "$dir/conf" "$dir/drivers"
  : >"$dir/conf/readers"
  for ((i = 0; i < n; i++)); do
    local port=$((35963 + 2 * i))
    cp "$DRIVER" "$dir/drivers/libifdvpcd-$i.so"
    cat >>"$dir/conf/readers" <<CONF
FRIENDLYNAME "cardbench vpcd $i"
DEVICENAME   /dev/null:$port
LIBPATH      $dir/drivers/libifdvpcd-$i.so
CHANNELID    $port

CONF
  done
  # shellcheck disable=SC2086 # PCSCD_ARGS: extra options, word-split on purpose (e.g. "--apdu --debug")
  setsid pcscd --foreground --config "$dir/conf" ${PCSCD_ARGS:-} >"$dir/pcscd.log" 2>&1 </dev/null &
  echo $! >"$dir/pcscd.pid"
  for _ in $(seq 100); do
    [ -S "$SOCKET" ] && { echo "pcscd $(cat "$dir/pcscd.pid") with $n vpcd readers (ports from 35963)"; return 0; }
    sleep 0.05
  done
  echo "pcscd did not come up; see $dir/pcscd.log" >&2
  exit 1
}

stop() {
  local dir=${1:-/tmp/cardbench-pcscd}
  [ -f "$dir/pcscd.pid" ] || return 0
  local pid
  pid=$(cat "$dir/pcscd.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/pcscd.pid"
  rm -rf /run/pcscd
}

case "$cmd" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: $0 start [N] [DIR] | stop [DIR]" >&2; exit 2 ;;
esac
