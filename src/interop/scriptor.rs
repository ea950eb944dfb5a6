//! pcsc-tools' `scriptor` output: `> 00 A4 …` for a command sent, `< … 90 00 : text` for its
//! answer (wrapped after every 16 bytes, the SW's meaning after ` : `), `> RESET` /
//! `< OK: <ATR>` for a warm reset. Everything else (the script echoed back, `Using …` lines,
//! comments) is skipped; `Using given card reader: NAME` names the head. scriptor keeps no
//! clock: rows get no durations.

use super::{spaced_hex, LineError, Log, Record, What};
use crate::event::RowKind;

pub fn parse(text: &str) -> Result<Log, LineError> {
    let mut log = Log::default();
    let mut reader = String::new();
    // The command sent and not yet answered: (line, bytes).
    let mut sent: Option<(u64, Vec<u8>)> = None;
    // An answer being read across wrapped lines: (line of its command, command, bytes so far).
    let mut reading: Option<(u64, Vec<u8>, Vec<u8>)> = None;
    let mut reset_line: Option<u64> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let l = raw.trim_end();
        if let Some((cl, command, mut bytes)) = reading.take() {
            // A wrapped answer goes on until the ` : meaning` that ends it.
            let (hex, done) = match l.split_once(" : ").or_else(|| l.strip_prefix(": ").map(|m| ("", m))) {
                Some((h, _)) => (h, true),
                None => (l, false),
            };
            bytes.extend(spaced_hex(line, hex)?);
            if done {
                log.records.push(exchange(cl, &reader, command, bytes));
            } else {
                reading = Some((cl, command, bytes));
            }
            continue;
        }
        if let Some(name) = l.strip_prefix("Using given card reader: ") {
            reader = name.trim().to_string();
        } else if let Some(name) = l.strip_prefix("No reader given: using ") {
            reader = name.trim().to_string();
        } else if l == "> RESET" {
            flush_unanswered(&mut log, &reader, &mut sent, "");
            reset_line = Some(line);
        } else if let Some(cmd) = l.strip_prefix("> ") {
            flush_unanswered(&mut log, &reader, &mut sent, "");
            sent = Some((line, spaced_hex(line, cmd)?));
        } else if let Some(atr) = l.strip_prefix("< OK: ") {
            let Some(rl) = reset_line.take() else {
                return Err((line, "a reset answer (`< OK:`) without `> RESET` before it".into()));
            };
            log.records.push(Record {
                line: rl,
                reader: reader.clone(),
                at_ns: 0,
                duration_ns: 0,
                what: What::Event { kind: RowKind::WarmReset, atr: spaced_hex(line, atr)? },
            });
        } else if l.starts_with("< KO: ") {
            // A reset that failed changed nothing we can row; the next command shows the card.
            reset_line = None;
        } else if let Some(ans) = l.strip_prefix("< ") {
            let Some((cl, command)) = sent.take() else {
                return Err((line, "an answer (`<`) without a command (`>`) before it".into()));
            };
            match ans.split_once(" : ") {
                Some((hex, _)) => log.records.push(exchange(cl, &reader, command, spaced_hex(line, hex)?)),
                None => reading = Some((cl, command, spaced_hex(line, ans)?)),
            }
        } else if let Some(why) = l.strip_prefix("Can't get info: ") {
            // scriptor dies on a failed transmit, saying why.
            flush_unanswered(&mut log, &reader, &mut sent, why.trim());
        }
    }
    if let Some((cl, _, _)) = reading {
        return Err((cl, "the answer to this command is cut short (no ` : ` after its status word)".into()));
    }
    flush_unanswered(&mut log, &reader, &mut sent, "");
    Ok(log)
}

fn exchange(line: u64, reader: &str, command: Vec<u8>, answer: Vec<u8>) -> Record {
    Record { line, reader: reader.into(), at_ns: 0, duration_ns: 0, what: What::Exchange { command, answer } }
}

fn flush_unanswered(log: &mut Log, reader: &str, sent: &mut Option<(u64, Vec<u8>)>, error: &str) {
    if let Some((line, command)) = sent.take() {
        let error = if error.is_empty() { "scriptor printed no answer".to_string() } else { error.to_string() };
        log.records.push(Record {
            line,
            reader: reader.into(),
            at_ns: 0,
            duration_ns: 0,
            what: What::NoAnswer { command, error },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_answers_and_resets() {
        let text = "Using given card reader: R 0\n> 80 B0 00 00 16\n< CB 00 00 00 00 00 0A 01 00 00 03 E8 00 00 00 00 \n00 00 90 00 : Normal processing.\n> RESET\n< OK: 3B 89 00 \n";
        let log = parse(text).unwrap();
        assert_eq!(log.records.len(), 2);
        match &log.records[0].what {
            What::Exchange { answer, .. } => assert_eq!(answer.len(), 20),
            w => panic!("{w:?}"),
        }
        assert_eq!(log.records[0].reader, "R 0");
        assert!(
            matches!(&log.records[1].what, What::Event { kind: RowKind::WarmReset, atr } if atr == &[0x3B, 0x89, 0])
        );
    }

    #[test]
    fn an_answer_wrapped_at_exactly_16_bytes_ends_on_the_meaning_line() {
        let text = "> 00 B0 00 00 0E\n< 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 90 00 \n : Normal processing.\n";
        let log = parse(text).unwrap();
        assert!(matches!(&log.records[0].what, What::Exchange { answer, .. } if answer.len() == 16));
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("< 90 00 : Normal processing.\n").unwrap_err().0, 1);
        assert_eq!(parse("> 00 A4\n< 9Z 00 : x\n").unwrap_err(), (2, "`9Z` is not a hex byte".into()));
        assert_eq!(parse("> 00 A4 00 00\n< 90 \n").unwrap_err().0, 1);
    }
}
