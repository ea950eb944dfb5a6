#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/fuzz_targets), made from shipped files and from
the files a real run writes: scripts/fuzz.sh calls it with a smoke-run trace and a batch journal.

    fuzz-seeds.py OUT_DIR TRACE_CSV JOURNAL_JSONL

Writes OUT_DIR/<target>/<name> for every target; input formats are the ones documented at
the top of each target (docs/fuzzing.md)."""

import csv
import glob
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAD_CARD = {"A": 0, "B": 1, "C": 2, "D": 3}  # profiles/virtual-lab.toml heads -> lab cards

# PN532 command codes (UM0701-02 §7) and frame identifiers.
TFI_HOST, TFI_PN532 = 0xD4, 0xD5
GET_FIRMWARE_VERSION, SAM_CONFIGURATION, RF_CONFIGURATION = 0x02, 0x14, 0x32
IN_LIST_PASSIVE_TARGET, IN_DATA_EXCHANGE, IN_RELEASE, DIAGNOSE = 0x4A, 0x40, 0x52, 0x00
DATA_EXCHANGE_MAX = 262
ACK = bytes([0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00])
NACK = bytes([0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00])
ERROR_FRAME = bytes([0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00])


def frame(tfi, pd):
    """A PN532 information frame: normal form up to LEN 255, extended beyond."""
    body = bytes([tfi]) + pd
    dcs = (-sum(body)) & 0xFF
    n = len(body)
    if n <= 255:
        head = bytes([0x00, 0x00, 0xFF, n, (-n) & 0xFF])
    else:
        m, l = n >> 8, n & 0xFF
        head = bytes([0x00, 0x00, 0xFF, 0xFF, 0xFF, m, l, (-(m + l)) & 0xFF])
    return head + body + bytes([dcs, 0x00])


def data_exchange(apdu):
    """InDataExchange frames for one APDU, chained with MI when it does not fit one frame."""
    out = []
    while len(apdu) > DATA_EXCHANGE_MAX:
        out.append(frame(TFI_HOST, bytes([IN_DATA_EXCHANGE, 0x41]) + apdu[:DATA_EXCHANGE_MAX]))
        apdu = apdu[DATA_EXCHANGE_MAX:]
    out.append(frame(TFI_HOST, bytes([IN_DATA_EXCHANGE, 0x01]) + apdu))
    return out


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    out, trace, journal = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(trace, newline="") as f:
        rows = list(csv.DictReader(f))
    exchanges = [(r["head"], bytes.fromhex(r["command"]), bytes.fromhex(r["response"] + r["sw"])) for r in rows]

    # apdu: every distinct command and response of the smoke run.
    seen = set()
    for _, cmd, resp in exchanges:
        for b in (cmd, resp):
            if b not in seen:
                seen.add(b)
                write(out, "apdu", "trace-%03d" % len(seen), b)

    # card: the whole smoke run replayed on the four lab cards, one card alone, and the run
    # with power cycles and a torn commit in it.
    def apdu_rec(head, cmd):
        return bytes([HEAD_CARD[head]]) + struct.pack(">H", len(cmd)) + cmd

    recs = [apdu_rec(h, c) for h, c, _ in exchanges if h in HEAD_CARD]
    write(out, "card", "smoke-run", b"".join(recs))
    write(out, "card", "smoke-run-card-a", b"".join(apdu_rec(h, c) for h, c, _ in exchanges if h == "A"))
    half = len(recs) // 2
    cycles = bytes([0x40, 0x41, 0x42, 0x43])
    write(out, "card", "smoke-run-power-cycles", b"".join(recs[:half]) + cycles + b"".join(recs[half:]))
    write(out, "card", "smoke-run-torn", b"".join(recs[:half]) + bytes([0x80, 1, 0x81, 1, 0x82, 1, 0x83, 1])
          + b"".join(recs[half:]) + cycles + b"".join(recs[half:]))

    # plan, profile: the shipped files.
    for p in sorted(glob.glob(os.path.join(ROOT, "test-plans", "*.toml"))):
        write(out, "plan", os.path.basename(p), open(p, "rb").read())
    for p in sorted(glob.glob(os.path.join(ROOT, "profiles", "*.toml"))):
        write(out, "profile", os.path.basename(p), open(p, "rb").read())

    # trace_read: the smoke trace, its first rows, and the same cut inside its last row.
    raw = open(trace, "rb").read()
    lines = raw.splitlines(keepends=True)
    write(out, "trace_read", "smoke", raw)
    write(out, "trace_read", "smoke-head", b"".join(lines[:6]))
    write(out, "trace_read", "smoke-cut", b"".join(lines[:6])[:-25])

    # journal: the batch journal, each line alone, and the journal cut inside its last line.
    jraw = open(journal, "rb").read()
    jlines = jraw.splitlines(keepends=True)
    write(out, "journal", "batch", jraw)
    for i, l in enumerate(jlines):
        write(out, "journal", "line-%d" % (i + 1), l)
    write(out, "journal", "batch-cut", jraw[:-40])
    write(out, "journal", "batch-no-last-newline", jraw.rstrip(b"\n"))

    # PN532 session of a host with card A: wake-up, SAM configuration, firmware version,
    # RF field, list the target, card A's APDUs of the smoke run, release.
    a_cmds = [c for h, c, _ in exchanges if h == "A"]
    a_resps = [r for h, _, r in exchanges if h == "A"]
    host = [
        frame(TFI_HOST, bytes([SAM_CONFIGURATION, 0x01, 0x14, 0x01])),
        frame(TFI_HOST, bytes([GET_FIRMWARE_VERSION])),
        frame(TFI_HOST, bytes([RF_CONFIGURATION, 0x01, 0x01])),
        frame(TFI_HOST, bytes([IN_LIST_PASSIVE_TARGET, 0x01, 0x00])),
    ]
    for c in a_cmds:
        host += data_exchange(c)
    host += [frame(TFI_HOST, bytes([DIAGNOSE, 0x06])), frame(TFI_HOST, bytes([IN_RELEASE, 0x00]))]
    # pn532_frame: first byte = chunk length - 1; host frames, PN532 answers, ACK/NACK/error.
    answers = [frame(TFI_PN532, bytes([IN_DATA_EXCHANGE + 1, 0x00]) + r) for r in a_resps]
    write(out, "pn532_frame", "host-session", bytes([6]) + b"\x55\x55\x00\x00" + b"".join(host))
    write(out, "pn532_frame", "answers", bytes([0]) + b"".join(ACK + a for a in answers[:40]))
    write(out, "pn532_frame", "control", bytes([2]) + ACK + NACK + ERROR_FRAME + b"\x00\xff" + ACK)
    ext = frame(TFI_HOST, bytes([IN_DATA_EXCHANGE, 0x01]) + bytes(range(256)) + bytes(6))
    write(out, "pn532_frame", "extended", bytes([17]) + ext + ACK)
    # pn532_sim: records [op][len][bytes] feeding the host session, with time passing.
    recs = [bytes([0, 1, 0x55])]
    for f in host:
        for i in range(0, len(f), 255):
            part = f[i:i + 255]
            recs.append(bytes([0, len(part)]) + part)
        recs.append(bytes([4, 1]))
    write(out, "pn532_sim", "host-session", b"".join(recs))
    write(out, "pn532_sim", "stall-and-remove", b"".join(recs[:6]) + bytes([5]) + b"".join(recs[6:10])
          + bytes([4, 100, 5, 4, 1, 6]) + b"".join(recs[10:14]) + bytes([7]) + b"".join(recs[14:20]))

    # vpcd: power on, ATR, card A's APDUs of the smoke run, reset, power off.
    def msg(b):
        return struct.pack(">H", len(b)) + b

    stream = msg(b"\x01") + msg(b"\x04") + b"".join(msg(c) for c in a_cmds) + msg(b"\x02") + msg(b"\x00")
    write(out, "vpcd", "session", stream)


if __name__ == "__main__":
    main()
