//! apdu4j's logs (GlobalPlatformPro writes the same), in the three shapes its sources write:
//!
//! - the `--dump` file of `LoggingCardTerminal`: a header (`# Generated on <date> by
//!   apdu4j/<v>`, `# Using <reader>`, `# ATR: <hex>`, `# PROTOCOL: T=1`, `#`), then
//!   `# Sent` / command hex / `# Received in 12ms` / answer hex;
//! - the dump of the newer `DumpingBIBO`: command hex, `# 12ms`, answer hex (`# 12ms <error>`
//!   and no answer when the transmit failed);
//! - the verbose log: `SCardConnect("<reader>", T=*) -> T=1, <ATR>`, then
//!   `A>> T=1 (4+0012) 00A40400 0C <data> 00` and `A<< (0024+2) (12ms) <data> 9000` (or
//!   `B>> T=1 (5) <hex>` / `B<< (2) <hex>` for raw transmits, `<< <error>` on a failure).
//!
//! A connect with its ATR becomes a `power-on` row. Times: the dump's `Generated on` date is
//! the start; the rows follow each other by their durations.

use super::{packed_hex, LineError, Log, Record, What};
use crate::event::RowKind;

pub fn parse(text: &str) -> Result<Log, LineError> {
    let mut log = Log::default();
    let mut reader = String::new();
    let mut now_ns: u64 = 0;
    // A command waiting for its answer: (line, bytes, duration when already known).
    let mut pending: Option<(u64, Vec<u8>, Option<u64>)> = None;
    let push = |log: &mut Log, now: &mut u64, reader: &str, line: u64, dur: u64, what: What| {
        log.records.push(Record { line, reader: reader.into(), at_ns: *now, duration_ns: dur, what });
        *now = now.saturating_add(dur);
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        if let Some(c) = l.strip_prefix('#') {
            let c = c.trim();
            if let Some(date) = c.strip_prefix("Generated on ") {
                let date = date.split(" by ").next().unwrap_or(date);
                log.started = chrono::DateTime::parse_from_str(date, "%a, %d %b %Y %H:%M:%S %z")
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .ok();
            } else if let Some(r) = c.strip_prefix("Using ") {
                reader = r.trim().to_string();
            } else if let Some(atr) = c.strip_prefix("ATR:") {
                let atr = packed_hex(line, atr)?;
                push(&mut log, &mut now_ns, &reader, line, 0, What::Event { kind: RowKind::PowerOn, atr });
            } else if c == "Received" {
                // `transmit(ByteBuffer, …)` dumps carry no time.
                if let Some(p) = pending.as_mut() {
                    p.2 = Some(0);
                }
            } else if let Some(t) = c.strip_prefix("Received in ") {
                if let Some(p) = pending.as_mut() {
                    p.2 = Some(millis(line, t.trim())?);
                }
            } else if c.ends_with("ms") || c.contains("ms ") {
                // DumpingBIBO: `# 12ms` before the answer, `# 12ms <error>` instead of it.
                let (t, err) = c.split_once(' ').unwrap_or((c, ""));
                if let (Ok(ms), Some(p)) = (millis(line, t), pending.as_mut()) {
                    if err.is_empty() {
                        p.2 = Some(ms);
                    } else {
                        let (pl, command, _) = pending.take().unwrap_or_default();
                        let what = What::NoAnswer { command, error: err.trim().into() };
                        push(&mut log, &mut now_ns, &reader, pl, ms, what);
                    }
                }
            }
            continue;
        }
        if let Some(rest) = l.strip_prefix("SCardConnect(\"") {
            // SCardConnect("reader", T=*) -> T=1, 3B…
            let (name, tail) = rest.split_once("\", ").ok_or((line, "SCardConnect line without its reader".into()))?;
            reader = name.to_string();
            if let Some(atr) = tail.split_once("-> ").and_then(|(_, r)| r.split_once(", ")).map(|(_, a)| a) {
                let atr = packed_hex(line, atr)?;
                push(&mut log, &mut now_ns, &reader, line, 0, What::Event { kind: RowKind::PowerOn, atr });
            }
            continue;
        }
        if let Some(rest) = l.strip_prefix("A>>").or_else(|| l.strip_prefix("B>>")) {
            if let Some((pl, command, _)) = pending.take() {
                let what = What::NoAnswer { command, error: "no answer in the log".into() };
                push(&mut log, &mut now_ns, &reader, pl, 0, what);
            }
            // `T=1 (4+0012) 00A40400 0C …` / `T=1 (5) 00A4…`: the hex after the length group.
            let hex = rest.split_once(')').map(|(_, h)| h).ok_or((line, "command line without its length".into()))?;
            pending = Some((line, packed_hex(line, &hex.split_whitespace().collect::<String>())?, None));
            continue;
        }
        if let Some(rest) = l.strip_prefix("A<<").or_else(|| l.strip_prefix("B<<")) {
            let Some((pl, command, _)) = pending.take() else {
                return Err((line, "an answer (`<<`) without a command (`>>`) before it".into()));
            };
            // `(0024+2) (12ms) <data> 9000` / `(2) 9000`
            let mut groups = rest.trim();
            let mut ms = 0;
            while let Some(g) = groups.strip_prefix('(') {
                let (inner, after) = g.split_once(')').ok_or((line, "unclosed `(` in the answer line".into()))?;
                if let Ok(t) = millis(line, inner) {
                    ms = t;
                }
                groups = after.trim_start();
            }
            let answer = packed_hex(line, &groups.split_whitespace().collect::<String>())?;
            push(&mut log, &mut now_ns, &reader, pl, ms, What::Exchange { command, answer });
            continue;
        }
        if let Some(err) = l.strip_prefix("<< ") {
            if let Some((pl, command, _)) = pending.take() {
                push(&mut log, &mut now_ns, &reader, pl, 0, What::NoAnswer { command, error: err.trim().into() });
            }
            continue;
        }
        if l.starts_with("SCard") || l.starts_with("[") {
            // SCardDisconnect(…), SCardBeginTransaction(…), log noise: nothing on the wire.
            continue;
        }
        // A dump's hex line: a command, or the answer to the pending one.
        let bytes = packed_hex(line, l)?;
        match pending.take() {
            Some((pl, command, Some(ms))) => {
                push(&mut log, &mut now_ns, &reader, pl, ms, What::Exchange { command, answer: bytes })
            }
            Some((pl, _, None)) => {
                return Err((line, format!("two commands in a row (no `# Received` or `# <n>ms` after line {pl})")))
            }
            None => pending = Some((line, bytes, None)),
        }
    }
    if let Some((pl, command, _)) = pending {
        push(
            &mut log,
            &mut now_ns,
            &reader,
            pl,
            0,
            What::NoAnswer { command, error: "the log ends before the answer".into() },
        );
    }
    Ok(log)
}

/// `12ms`, `1s234ms` → nanoseconds.
fn millis(line: u64, t: &str) -> Result<u64, LineError> {
    let bad = || (line, format!("`{t}` is not a duration in ms"));
    let t = t.strip_suffix("ms").ok_or_else(bad)?;
    let (s, ms) = match t.split_once('s') {
        Some((s, ms)) => (s.parse::<u64>().map_err(|_| bad())?, ms),
        None => (0, t),
    };
    let ms = ms.parse::<u64>().map_err(|_| bad())?;
    Ok(s.saturating_mul(1000).saturating_add(ms).saturating_mul(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_dump() {
        let t = "# Generated on Tue, 1 Dec 2026 12:00:00 +0000 by apdu4j/19.05\n# Using R 0\n# ATR: 3B8900\n# PROTOCOL: T=0\n#\n# Sent\n80B0000000\n# Received in 3ms\n6C16\n# Sent\n80B0000016\n# Received in 1s2ms\n00119000\n";
        let log = parse(t).unwrap();
        assert_eq!(log.started.unwrap().to_rfc3339(), "2026-12-01T12:00:00+00:00");
        assert_eq!(log.records.len(), 3);
        assert!(matches!(&log.records[0].what, What::Event { kind: RowKind::PowerOn, atr } if atr == &[0x3B, 0x89, 0]));
        assert_eq!((log.records[1].line, log.records[1].duration_ns), (7, 3_000_000));
        assert_eq!(log.records[2].duration_ns, 1_002_000_000);
        assert_eq!(log.records[2].reader, "R 0");
    }

    #[test]
    fn bibo_dump_and_verbose_log() {
        let log = parse("80B0000000\n# 2ms\n6C16\n80D0000000\n# 5ms card removed\n").unwrap();
        assert!(matches!(&log.records[1].what, What::NoAnswer { error, .. } if error == "card removed"));
        let v = "SCardConnect(\"R 1\", T=*) -> T=1, 3B8901\nA>> T=1 (4+0007) 00A40400 07 A0000007770001\nA<< (0000+2) (1ms) 9000\nA>> T=1 (4+0000) 80B00000 00\nA<< (0022+2) (12ms) CB00000000000A01000003E800000000000000000000 9000\n";
        let log = parse(v).unwrap();
        assert_eq!(log.records.len(), 3);
        match &log.records[2].what {
            What::Exchange { command, answer } => {
                assert_eq!(command, &[0x80, 0xB0, 0, 0, 0]);
                assert_eq!(answer.len(), 24);
            }
            w => panic!("{w:?}"),
        }
        assert_eq!(log.records[2].duration_ns, 12_000_000);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("# Sent\n80B0000000\n# Received in 3ms\n6C1G\n").unwrap_err().0, 4);
        assert_eq!(parse("A<< (0000+2) (1ms) 9000\n").unwrap_err().0, 1);
        assert_eq!(parse("80B0000000\n80B0000000\n").unwrap_err().0, 2);
    }
}
