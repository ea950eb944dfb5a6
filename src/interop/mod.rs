//! Other tools' APDU logs in, Wireshark out (docs/trace-interop.md).
//!
//! Each reader module turns one tool's log into `Record`s (an exchange, an exchange that got
//! no answer, or a card event, each with the log line it came from); `assemble` turns those
//! into trace rows the way cardbench's own link would have written them (T=0 procedure rows
//! recognised, masks from the card spec), and `write_trace` writes them atomically.

pub mod apdu4j;
pub mod pcapng;
pub mod pcscd;
pub mod scriptor;
pub mod spy;

use crate::event::{Exchange, RowKind};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The log formats `cardbench trace import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// pcscd's own log with `--apdu` (optionally `--debug` for readers, ATRs, resets).
    PcscdApdu,
    /// The output of pcsc-lite's `pcsc-spy` (with or without `-n`).
    PcscSpy,
    /// apdu4j / GlobalPlatformPro: the `--dump` file or the verbose `A>>`/`A<<` log.
    Apdu4j,
    /// The output of pcsc-tools' `scriptor`.
    Scriptor,
}

impl Format {
    pub const NAMES: &'static str = "pcscd-apdu, pcsc-spy, apdu4j, scriptor";

    pub fn name(self) -> &'static str {
        match self {
            Format::PcscdApdu => "pcscd-apdu",
            Format::PcscSpy => "pcsc-spy",
            Format::Apdu4j => "apdu4j",
            Format::Scriptor => "scriptor",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        [Format::PcscdApdu, Format::PcscSpy, Format::Apdu4j, Format::Scriptor]
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown log format `{s}` (one of {})", Format::NAMES))
    }
}

/// A log that cannot be imported, located.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {what}", path.display())]
    Bad { path: PathBuf, line: u64, what: String },
    #[error("{}: no APDU exchange found in this {format} log", path.display())]
    Empty { path: PathBuf, format: &'static str },
}

/// What one place in a log says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A command and its whole answer (data followed by the two status bytes).
    Exchange { command: Vec<u8>, answer: Vec<u8> },
    /// A command the log shows sent but not answered (the tool's error, if it gave one).
    NoAnswer { command: Vec<u8>, error: String },
    /// A card event: `power-on`, `power-off`, `warm-reset`, `insert` or `remove`.
    Event { kind: RowKind, atr: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line of the log where the record starts.
    pub line: u64,
    /// Reader (or terminal) name from the log; empty when the log does not say.
    pub reader: String,
    /// Time since the start of the log, when the log tells it.
    pub at_ns: u64,
    pub duration_ns: u64,
    pub what: What,
}

/// A parsed log: its records and, when the log says it, the wall-clock time it started.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub records: Vec<Record>,
    pub started: Option<DateTime<Utc>>,
}

/// A parse error before it is tied to a file: (line, what is wrong).
pub type LineError = (u64, String);

/// How imported rows are labelled.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Head name for every row (default: the reader named in the log, else `A`).
    pub head: Option<String>,
}

/// Parse `path` as a `format` log and assemble trace rows.
pub fn import(format: Format, path: &Path, opts: &ImportOptions) -> Result<Vec<Exchange>, ImportError> {
    let io = |source| ImportError::Io { path: path.into(), source };
    let bytes = std::fs::read(path).map_err(io)?;
    let text = String::from_utf8_lossy(&bytes);
    let parsed = match format {
        Format::PcscdApdu => pcscd::parse(&text),
        Format::PcscSpy => spy::parse(&text),
        Format::Apdu4j => apdu4j::parse(&text),
        Format::Scriptor => scriptor::parse(&text),
    };
    let log = parsed.map_err(|(line, what)| ImportError::Bad { path: path.into(), line, what })?;
    if !log.records.iter().any(|r| !matches!(r.what, What::Event { .. })) {
        return Err(ImportError::Empty { path: path.into(), format: format.name() });
    }
    let started = match log.started {
        Some(t) => t,
        None => {
            // Logs without a clock: the last record ends at the file's modification time.
            let span = log.records.iter().map(|r| r.at_ns.saturating_add(r.duration_ns)).max().unwrap_or(0);
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).map_err(io)?;
            let span = chrono::Duration::nanoseconds(span.min(i64::MAX as u64) as i64);
            DateTime::<Utc>::from(mtime).checked_sub_signed(span).unwrap_or(DateTime::UNIX_EPOCH)
        }
    };
    assemble(&log.records, started, opts.head.as_deref()).map_err(|(line, what)| ImportError::Bad {
        path: path.into(),
        line,
        what,
    })
}

/// Trace rows from records, in log order: sequence numbers from 1, T=0 procedure rows
/// recognised per head (a GET RESPONSE after `61xx`, the same command re-sent with the Le of
/// a `6Cxx`), masks from the card spec.
pub fn assemble(records: &[Record], started: DateTime<Utc>, head: Option<&str>) -> Result<Vec<Exchange>, LineError> {
    let mut rows: Vec<Exchange> = Vec::with_capacity(records.len());
    // Per head, the command chain the next procedure row would continue, and the masks of the
    // chain's chunks (as the link masks its own rows).
    let mut chains: std::collections::HashMap<String, Chain> = Default::default();
    let mut masks: std::collections::HashMap<String, crate::mask::RowMasks> = Default::default();
    // Per head, the card ID the card last told (as the runner's identify reads it).
    let mut card_ids: std::collections::HashMap<String, String> = Default::default();
    // Per head, the row of its last SELECT: where a card that turns out to be another began.
    let mut selects: std::collections::HashMap<String, usize> = Default::default();
    for r in records {
        let head = match head {
            Some(h) => h.to_string(),
            None if r.reader.is_empty() => "A".to_string(),
            None => r.reader.clone(),
        };
        let mut x = Exchange {
            seq: rows.len() as u64 + 1,
            wall: started
                .checked_add_signed(chrono::Duration::nanoseconds(r.at_ns.min(i64::MAX as u64) as i64))
                .unwrap_or(started),
            mono_ns: r.at_ns,
            head: head.clone(),
            card_id: card_ids.get(&head).cloned().unwrap_or_default(),
            test_step: "import".into(),
            duration_ns: r.duration_ns,
            ..Default::default()
        };
        match &r.what {
            What::Exchange { command, answer } => {
                check_command(r.line, command)?;
                let [data @ .., sw1, sw2] = answer.as_slice() else {
                    return Err((
                        r.line,
                        format!("answer `{}` is shorter than a status word", hex::encode_upper(answer)),
                    ));
                };
                let sw = u16::from_be_bytes([*sw1, *sw2]);
                let prev = chains.remove(&head);
                let (kind, note) = procedure(prev.as_ref(), command);
                let (origin, before) = match (kind, prev) {
                    (RowKind::GetResponse, Some(p)) => (p.origin, p.data),
                    (RowKind::Resend6C, Some(p)) => (p.origin, Vec::new()),
                    _ => (command.clone(), Vec::new()),
                };
                // A procedure row is masked as part of the command it completes.
                x.mask = masks.entry(head.clone()).or_default().row(kind, command, data).1;
                x.kind = kind;
                x.note = note;
                x.command = command.clone();
                x.response = data.to_vec();
                x.sw = sw;
                let data = [before.as_slice(), data].concat();
                if command.get(1) == Some(&0xA4) && kind == RowKind::Command {
                    selects.insert(head.clone(), rows.len());
                }
                if let Some(id) = told_card_id(&origin, &data, sw) {
                    if card_ids.get(&head).is_some_and(|old| *old != id) {
                        // Another card answers (a log that does not name readers): the rows
                        // since its SELECT are its identification, not the old card's.
                        let from = selects.get(&head).copied().unwrap_or(rows.len());
                        rows[from..].iter_mut().filter(|r| r.head == head).for_each(|r| r.card_id.clear());
                        x.card_id.clear();
                    }
                    card_ids.insert(head.clone(), id);
                }
                chains.insert(head, Chain { command: command.clone(), sw, origin, data });
            }
            What::NoAnswer { command, error } => {
                check_command(r.line, command)?;
                x.kind = RowKind::InDoubt;
                x.command = command.clone();
                x.error = if error.is_empty() { "no answer in the log".into() } else { error.clone() };
                chains.remove(&head);
            }
            What::Event { kind, atr } => {
                x.kind = *kind;
                x.atr = atr.clone();
                chains.remove(&head);
                if matches!(kind, RowKind::Insert | RowKind::Remove) {
                    card_ids.remove(&head);
                }
            }
        }
        rows.push(x);
    }
    Ok(rows)
}

/// The card ID in a complete answer, when the command is one the runner identifies cards by
/// (READ FIELD ID of the purse, GET CARD INFO of the transfer applet: card-spec).
fn told_card_id(origin: &[u8], data: &[u8], sw: u16) -> Option<String> {
    use crate::spec::codes::{CLA_PROP, FIELD_ID, READ_FIELD, XFER_GET_INFO};
    if sw != 0x9000 {
        return None;
    }
    match origin {
        [CLA_PROP, READ_FIELD, FIELD_ID, ..] if data.len() == 8 => Some(hex::encode_upper(data)),
        [CLA_PROP, XFER_GET_INFO, 0, ..] => {
            crate::engine::key_update::CardInfo::parse(data).ok().map(|i| hex::encode_upper(i.card_id))
        }
        _ => None,
    }
}

/// The last answered command of a head and the command chain it belongs to.
struct Chain {
    command: Vec<u8>,
    sw: u16,
    /// The command the terminal asked for (before GET RESPONSE / re-send rows).
    origin: Vec<u8>,
    /// The data received so far in the chain.
    data: Vec<u8>,
}

fn check_command(line: u64, command: &[u8]) -> Result<(), LineError> {
    if command.len() < 4 {
        return Err((line, format!("command `{}` is shorter than a header (4 bytes)", hex::encode_upper(command))));
    }
    Ok(())
}

/// The kind and note cardbench's link gives a row, from the row before it on the same head.
fn procedure(prev: Option<&Chain>, command: &[u8]) -> (RowKind, String) {
    let Some(Chain { command: prev_cmd, sw: prev_sw, .. }) = prev else { return (RowKind::Command, String::new()) };
    let [sw1, sw2] = prev_sw.to_be_bytes();
    if sw1 == 0x61 && command.len() == 5 && command[1] == 0xC0 && command[2] == 0 && command[3] == 0 {
        return (RowKind::GetResponse, "GET RESPONSE".into());
    }
    if sw1 == 0x6C
        && command.len() == prev_cmd.len()
        && command.len() >= 5
        && command[..command.len() - 1] == prev_cmd[..prev_cmd.len() - 1]
        && command[command.len() - 1] == sw2
    {
        let le = if sw2 == 0 { 256 } else { sw2 as usize };
        return (RowKind::Resend6C, format!("re-sent with Le={le} after 6C{sw2:02X}"));
    }
    (RowKind::Command, String::new())
}

/// Hex bytes written with spaces between them (`00 A4 04 00`), as the logs do.
pub(crate) fn spaced_hex(line: u64, s: &str) -> Result<Vec<u8>, LineError> {
    s.split_whitespace()
        .map(|t| {
            if t.len() == 2 {
                u8::from_str_radix(t, 16).map_err(|_| (line, format!("`{t}` is not a hex byte")))
            } else {
                Err((line, format!("`{t}` is not a hex byte")))
            }
        })
        .collect()
}

/// Hex bytes written without spaces (`00A40400`), as apdu4j does.
pub(crate) fn packed_hex(line: u64, s: &str) -> Result<Vec<u8>, LineError> {
    hex::decode(s.trim()).map_err(|_| (line, format!("`{}` is not hex bytes", s.trim())))
}

/// A log line without terminal colour codes (pcscd `--color`, pcsc-spy without `-n`).
pub(crate) fn strip_ansi(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\u{1b}') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates up to the final byte (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Write rows as a trace CSV at `out`, all or nothing: a temp file beside it, linked to `out`
/// at the end (which fails when `out` exists: a trace is never overwritten), so a failed
/// import never leaves a half-written trace.
pub fn write_trace(rows: &[Exchange], out: &Path, run_id: &str, plan: &str) -> std::io::Result<()> {
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "trace.csv".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut w = crate::trace::TraceCsv::create(&tmp, run_id, plan)?;
        for x in rows {
            w.write(x)?;
        }
        w.flush()?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::hard_link(&tmp, out)
    })();
    let _ = std::fs::remove_file(&tmp);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(line: u64, cmd: &str, ans: &str) -> Record {
        Record {
            line,
            reader: String::new(),
            at_ns: line * 1000,
            duration_ns: 10,
            what: What::Exchange { command: hex::decode(cmd).unwrap(), answer: hex::decode(ans).unwrap() },
        }
    }

    #[test]
    fn procedure_rows_are_recognised_per_head() {
        let recs = [
            ex(1, "80B0000000", "6C16"),
            ex(2, "80B0000016", "00119000"),
            ex(3, "80D00000080000138866B5E2C004", "6104"),
            ex(4, "00C0000004", "000003E79000"),
            ex(5, "00C0000004", "000003E79000"),
        ];
        let rows = assemble(&recs, DateTime::UNIX_EPOCH, None).unwrap();
        let kinds: Vec<_> = rows.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [RowKind::Command, RowKind::Resend6C, RowKind::Command, RowKind::GetResponse, RowKind::Command]
        );
        assert_eq!(rows[1].note, "re-sent with Le=22 after 6C16");
        assert_eq!(rows[1].response, [0x00, 0x11]);
        assert_eq!(rows[1].sw, 0x9000);
        assert_eq!(rows[0].head, "A");
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn short_answers_and_commands_name_their_line() {
        let e = assemble(&[ex(7, "80B0000000", "90")], DateTime::UNIX_EPOCH, None).unwrap_err();
        assert_eq!(e, (7, "answer `90` is shorter than a status word".into()));
        let e = assemble(&[ex(9, "80B0", "9000")], DateTime::UNIX_EPOCH, None).unwrap_err();
        assert_eq!(e.0, 9);
    }

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[36m00000012\u{1b}[0m APDU: 00"), "00000012 APDU: 00");
    }
}
