//! pcscd's log with `--apdu` (pcsc-lite `debuglog.c`): every line is
//! `<8-digit µs since the previous line> [<thread>] <text>`, the thread only with `--color`.
//! `APDU: 00 A4 …` is a command as pcscd sent it to the reader driver, `SW: … 90 00` its
//! whole answer. With `--debug` the log also names the reader a client connects to, card
//! insertions and removals with their ATR (`Card ATR: …`), power-ups and resets.
//!
//! pcscd does not name the reader on APDU lines: rows go to the reader of the last
//! `SCardConnect`/event seen, which is right for one client at a time.

use super::{spaced_hex, strip_ansi, LineError, Log, Record, What};
use crate::event::RowKind;

pub fn parse(text: &str) -> Result<Log, LineError> {
    let mut log = Log::default();
    let mut now_us: u64 = 0;
    // The command waiting for its `SW:` line: (line, µs since the log's start, bytes).
    let mut pending: Option<(u64, u64, Vec<u8>)> = None;
    let mut reader = String::new();
    // What the next `Card ATR:` line belongs to.
    let mut atr_for: Option<(u64, RowKind, String)> = None;
    let mut saw_pcscd_line = false;
    // The last ATR seen in each reader: names the reader of a reset that the log does not.
    let mut atrs: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let clean = strip_ansi(raw);
        let Some((delta, rest)) = split_prefix(&clean) else { continue };
        saw_pcscd_line = true;
        now_us += delta;
        if let Some(hex) = rest.strip_prefix("APDU:") {
            // pcscd logs an `SW:` line after every transmit, failed or not: two commands in a
            // row are transmits on several readers at once, which this log cannot pair.
            if let Some((l, _, _)) = pending {
                return Err((
                    line,
                    format!("a second command before the answer to line {l}: concurrent transmits cannot be paired"),
                ));
            }
            pending = Some((line, now_us, spaced_hex(line, hex)?));
        } else if let Some(hex) = rest.strip_prefix("SW:") {
            let Some((l, at, command)) = pending.take() else {
                return Err((line, "an answer (`SW:`) without a command (`APDU:`) before it".into()));
            };
            let answer = spaced_hex(line, hex)?;
            let what = if answer.len() < 2 {
                let error = format!("pcscd logged an answer of {} bytes", answer.len());
                What::NoAnswer { command, error }
            } else {
                What::Exchange { command, answer }
            };
            let duration_ns = (now_us - at) * 1000;
            log.records.push(Record { line: l, reader: reader.clone(), at_ns: at * 1000, duration_ns, what });
        } else if let Some(code) = after(rest, "Card not transacted: ") {
            // The transmit just logged failed (ifdwrapper.c): whatever its `SW:` line showed,
            // the card's answer is unknown.
            if let Some(Record { what, .. }) = log.records.last_mut() {
                if let What::Exchange { command, .. } | What::NoAnswer { command, .. } = what {
                    let command = std::mem::take(command);
                    *what = What::NoAnswer { command, error: format!("Card not transacted: {code}") };
                }
            }
        } else if let Some(hex) = rest.strip_prefix("Card ATR:") {
            if let Some((l, kind, mut r)) = atr_for.take() {
                let atr = if hex.trim() == "(NULL)" { Vec::new() } else { spaced_hex(line, hex)? };
                // A reset in SCardDisconnect/SCardReconnect does not name its reader: when the
                // ATR is the card of exactly one reader, it is that reader's.
                let mut owners = atrs.iter().filter(|(_, a)| !atr.is_empty() && *a == atr);
                if let (Some((owner, _)), None) = (owners.next(), owners.next()) {
                    r = owner.clone();
                }
                atrs.retain(|(name, _)| *name != r);
                atrs.push((r.clone(), atr.clone()));
                log.records.push(event(l, &r, now_us, kind, atr));
            }
        } else if let Some(name) = after(rest, "Card inserted into ") {
            reader = name.to_string();
            atr_for = Some((line, RowKind::Insert, reader.clone()));
        } else if let Some(name) = after(rest, "Card Removed From ") {
            log.records.push(event(line, name, now_us, RowKind::Remove, Vec::new()));
        } else if let Some(name) = after(rest, "Attempting Connect to ") {
            reader = name.split(" using protocol").next().unwrap_or(name).to_string();
        } else if rest.ends_with("power up complete.") {
            atr_for = Some((line, RowKind::PowerOn, reader.clone()));
        } else if rest.ends_with("Reset complete.") {
            atr_for = Some((line, RowKind::WarmReset, reader.clone()));
        } else if rest.ends_with("powerState: POWER_STATE_UNPOWERED") {
            log.records.push(event(line, &reader, now_us, RowKind::PowerOff, Vec::new()));
        }
    }
    if let Some((l, at, command)) = pending.take() {
        log.records.push(no_answer(l, &reader, at, command));
    }
    if !saw_pcscd_line && !text.trim().is_empty() {
        return Err((1, "not a pcscd log: no line starts with pcscd's 8-digit time field".into()));
    }
    Ok(log)
}

/// `00000123 [140…] text` → (123, "text"); None for lines pcscd did not write.
fn split_prefix(line: &str) -> Option<(u64, &str)> {
    let (num, rest) = line.split_at_checked(8)?;
    if !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = rest.strip_prefix(' ')?;
    let rest = match rest.strip_prefix('[') {
        Some(t) => t.split_once("] ").map_or(rest, |(_, r)| r),
        None => rest,
    };
    Some((num.parse().ok()?, rest.trim_end()))
}

/// The text after `marker` anywhere in the line (debug lines start with `file.c:123:fn()`).
fn after<'a>(rest: &'a str, marker: &str) -> Option<&'a str> {
    rest.find(marker).map(|i| rest[i + marker.len()..].trim())
}

fn event(line: u64, reader: &str, at_us: u64, kind: RowKind, atr: Vec<u8>) -> Record {
    Record { line, reader: reader.into(), at_ns: at_us * 1000, duration_ns: 0, what: What::Event { kind, atr } }
}

fn no_answer(line: u64, reader: &str, at_us: u64, command: Vec<u8>) -> Record {
    Record {
        line,
        reader: reader.into(),
        at_ns: at_us * 1000,
        duration_ns: 0,
        what: What::NoAnswer { command, error: "the log ends before the answer".into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_transmit_is_a_command_without_an_answer() {
        let t = "00000000 APDU: 80 D0 00 00 00 \n00000100 SW: \n\
                 00000001 ifdwrapper.c:1:IFDTransmit() Card not transacted: 612\n\
                 00000001 APDU: 80 D0 00 00 00 \n00000100 SW: 90 00 \n\
                 00000001 ifdwrapper.c:1:IFDTransmit() Card not transacted: 606\n";
        let log = parse(t).unwrap();
        assert!(matches!(&log.records[0].what, What::NoAnswer { error, .. } if error == "Card not transacted: 612"));
        assert!(
            matches!(&log.records[1].what, What::NoAnswer { error, command } if error == "Card not transacted: 606" && command.len() == 5)
        );
    }

    #[test]
    fn interleaved_transmits_are_refused() {
        let t = "00000000 APDU: 00 A4 04 00 \n00000001 APDU: 00 B0 00 00 \n00000100 SW: 90 00 \n";
        assert_eq!(parse(t).unwrap_err().0, 2);
    }

    #[test]
    fn apdu_and_sw_lines_pair_with_their_times() {
        let log =
            parse("00000000 APDU: 00 A4 04 00 01 AA \n00000159 SW: 90 00 \n00000035 APDU: 80 B2 01 00 08 \n").unwrap();
        assert_eq!(log.records.len(), 2);
        assert_eq!(log.records[0].duration_ns, 159_000);
        assert!(matches!(&log.records[0].what, What::Exchange { answer, .. } if answer == &[0x90, 0]));
        assert_eq!(log.records[1].at_ns, 194_000);
        assert!(matches!(log.records[1].what, What::NoAnswer { .. }));
    }

    #[test]
    fn colour_and_thread_ids_are_read() {
        let log = parse("\u{1b}[36m00000010\u{1b}[0m [140234] \u{1b}[34mAPDU: 00 B0 00 00 02 \u{1b}[0m\n\u{1b}[36m00000020\u{1b}[0m [140234] \u{1b}[34mSW: 01 02 90 00 \u{1b}[0m\n").unwrap();
        assert!(matches!(&log.records[0].what, What::Exchange { command, .. } if command == &[0, 0xB0, 0, 0, 2]));
    }

    #[test]
    fn bad_bytes_and_orphan_answers_name_the_line() {
        assert_eq!(parse("00000000 APDU: 00 A4 0X 00\n").unwrap_err(), (1, "`0X` is not a hex byte".into()));
        assert_eq!(parse("00000000 APDU: 00 A4 00 00\n00000001 SW: 90 00\n00000001 SW: 90 00\n").unwrap_err().0, 3);
        assert_eq!(parse("hello\n").unwrap_err().0, 1);
    }
}
