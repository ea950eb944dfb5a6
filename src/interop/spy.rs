//! The output of pcsc-lite's `pcsc-spy` (`-n` or coloured, `-t` thread tags, `-d` diffable):
//! one block per PC/SC call, its name alone on a line, ` i `/` o ` parameter lines, buffers as
//! hex dumps (`i  0000 00 A4 04 00 …  ascii`), and `=> text (CODE [0x…])  [sec.usec]` with
//! the call's duration.
//!
//! Rows: `SCardTransmit` (an exchange, or a command without an answer when the call failed),
//! `SCardReconnect` with SCARD_RESET_CARD (warm reset) or SCARD_UNPOWER_CARD (power-on after
//! a power cut), `SCardDisconnect` with SCARD_UNPOWER_CARD (power-off). The ATR of a reset is
//! the next `SCardStatus` answer on the same card handle; heads are the readers named in
//! `SCardConnect`. The log has durations but no clock: times are the sum of the durations.

use super::{strip_ansi, LineError, Log, Record, What};
use crate::event::RowKind;
use std::collections::HashMap;

#[derive(Default)]
struct Call {
    name: String,
    line: u64,
    fields: HashMap<String, String>,
    send: Vec<u8>,
    recv: Vec<u8>,
}

pub fn parse(text: &str) -> Result<Log, LineError> {
    let mut log = Log::default();
    let mut readers: HashMap<String, String> = HashMap::new();
    let mut call: Option<Call> = None;
    // Which buffer the hex-dump lines fill, and how many bytes it still expects.
    let mut filling: Option<(bool, usize)> = None;
    // A reset whose ATR the next SCardStatus on the handle gives: (record index, handle).
    let mut awaiting_atr: Option<(usize, String)> = None;
    let mut now_ns: u64 = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let clean = strip_ansi(raw);
        let mut l = clean.trim();
        // `-t`: ` (t1) ` before every line of a thread.
        if let Some(rest) = l.strip_prefix("(t").and_then(|r| r.split_once(") ")) {
            if rest.0.bytes().all(|b| b.is_ascii_digit()) {
                l = rest.1.trim();
            }
        }
        if l.starts_with("SCard") && !l.contains(' ') {
            call = Some(Call { name: l.to_string(), line, ..Default::default() });
            filling = None;
            continue;
        }
        let Some(c) = call.as_mut() else { continue };
        if let Some(p) = l.strip_prefix("i ").or_else(|| l.strip_prefix("o ")) {
            let input = l.starts_with('i');
            let p = p.trim_start();
            if let Some((want_in, left)) = filling {
                if want_in == input && left > 0 && p.len() > 5 && p.as_bytes()[4] == b' ' && is_hex(&p[..4]) {
                    let take = left.min(16);
                    let bytes = dump_line(line, &p[5..], take)?;
                    if input {
                        c.send.extend(bytes);
                    } else {
                        c.recv.extend(bytes);
                    }
                    filling = Some((want_in, left - take));
                    continue;
                }
            }
            filling = None;
            match p {
                "bSendBuffer" => filling = Some((true, length(line, c.fields.get("bSendLength"))?)),
                "bRecvBuffer" => filling = Some((false, length(line, c.fields.get("o:bRecvLength"))?)),
                _ => {
                    let (k, v) = p.split_once([' ', ':']).unwrap_or((p, ""));
                    c.fields.insert(
                        format!("{}{k}", if input { "" } else { "o:" }),
                        v.trim_start_matches(':').trim().into(),
                    );
                }
            }
            continue;
        }
        if let Some(result) = l.strip_prefix("=>") {
            let c = call.take().unwrap_or_default();
            filling = None;
            let duration_ns = duration(result);
            let ok = result.contains("SCARD_S_SUCCESS");
            let at_ns = now_ns;
            now_ns = now_ns.saturating_add(duration_ns);
            let handle = c.fields.get("hCard").cloned().unwrap_or_default();
            let reader = readers.get(&handle).cloned().unwrap_or_default();
            match c.name.as_str() {
                "SCardConnect" => {
                    if let (true, Some(h), Some(r)) = (ok, c.fields.get("o:phCard"), c.fields.get("szReader")) {
                        readers.insert(first_word(h).to_string(), r.clone());
                    }
                }
                "SCardTransmit" => {
                    if c.send.is_empty() {
                        return Err((c.line, "SCardTransmit without a bSendBuffer".into()));
                    }
                    let what = if ok {
                        What::Exchange { command: c.send, answer: c.recv }
                    } else {
                        What::NoAnswer { command: c.send, error: error_text(result) }
                    };
                    log.records.push(Record { line: c.line, reader, at_ns, duration_ns, what });
                }
                "SCardReconnect" if ok => {
                    let kind = match c.fields.get("dwInitialization").map(|v| first_word(v)) {
                        Some("0x00000001") => Some(RowKind::WarmReset),
                        Some("0x00000002") => Some(RowKind::PowerOn),
                        _ => None,
                    };
                    if let Some(kind) = kind {
                        awaiting_atr = Some((log.records.len(), handle.clone()));
                        log.records.push(Record {
                            line: c.line,
                            reader,
                            at_ns,
                            duration_ns,
                            what: What::Event { kind, atr: Vec::new() },
                        });
                    }
                }
                "SCardStatus" if ok => {
                    if let (Some((idx, h)), Some(atr)) = (&awaiting_atr, c.fields.get("o:bAtr")) {
                        if *h == handle && atr != "NULL" {
                            let bytes = super::spaced_hex(c.line, atr)?;
                            if let What::Event { atr, .. } = &mut log.records[*idx].what {
                                *atr = bytes;
                            }
                            awaiting_atr = None;
                        }
                    }
                }
                "SCardDisconnect" if ok => {
                    if c.fields.get("dwDisposition").is_some_and(|v| v.contains("SCARD_UNPOWER_CARD")) {
                        log.records.push(Record {
                            line: c.line,
                            reader,
                            at_ns,
                            duration_ns,
                            what: What::Event { kind: RowKind::PowerOff, atr: Vec::new() },
                        });
                    }
                    readers.remove(&handle);
                }
                _ => {}
            }
        }
    }
    if let Some(c) = call.filter(|c| c.name == "SCardTransmit" && !c.send.is_empty()) {
        // The log ends inside a transmit: the command went out, its answer is not in the log.
        log.records.push(Record {
            line: c.line,
            reader: readers.get(c.fields.get("hCard").map_or("", |s| s)).cloned().unwrap_or_default(),
            at_ns: now_ns,
            duration_ns: 0,
            what: What::NoAnswer { command: c.send, error: "the log ends before the answer".into() },
        });
    }
    Ok(log)
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

/// `0x0000000C (12)` → 12.
fn length(line: u64, v: Option<&String>) -> Result<usize, LineError> {
    let v = v.ok_or((line, "a buffer without its length line before it".to_string()))?;
    let hex = first_word(v).trim_start_matches("0x");
    usize::from_str_radix(hex, 16).map_err(|_| (line, format!("buffer length `{v}` is not a number")))
}

/// The `take` bytes of one hex-dump line (`00 A4 04 …   ascii`): the ascii column may hold
/// anything, so exactly as many bytes as the buffer still needs are read.
fn dump_line(line: u64, s: &str, take: usize) -> Result<Vec<u8>, LineError> {
    let mut out = Vec::with_capacity(take);
    let b = s.as_bytes();
    for k in 0..take {
        let at = k * 3;
        let tok = s.get(at..at + 2).filter(|t| is_hex(t) && b.get(at + 2).is_none_or(|c| *c == b' '));
        let Some(tok) = tok else {
            return Err((line, format!("hex dump line has {k} bytes, {take} expected")));
        };
        out.push(u8::from_str_radix(tok, 16).map_err(|_| (line, format!("`{tok}` is not a hex byte")))?);
    }
    Ok(out)
}

/// `… [0.000165]` → 165 µs in ns; 0 when the log hides times (`-d`).
fn duration(result: &str) -> u64 {
    let Some(t) = result.rsplit_once('[').map(|(_, t)| t.trim_end_matches(']')) else { return 0 };
    let Some((s, us)) = t.split_once('.') else { return 0 };
    match (s.parse::<u64>(), us.parse::<u64>()) {
        (Ok(s), Ok(us)) if us < 1_000_000 => s.saturating_mul(1_000_000_000).saturating_add(us * 1000),
        _ => 0,
    }
}

/// `=> Transaction failed. (SCARD_E_NOT_TRANSACTED [0x80100016])  [0.1]` → the text part.
fn error_text(result: &str) -> String {
    let r = result.trim();
    r.rsplit_once("  [").map_or(r, |(t, _)| t).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "SCardConnect
 i hContext: 0x1
 i szReader R 0
 o phCard 0x254F66B8 (625960632)
 => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000181]
SCardTransmit
 i hCard: 0x254F66B8
 i bSendLength 0x00000005 (5)
 i bSendBuffer
 i  0000 80 B2 01 00 08                                  .....
 o bRecvLength 0x00000012 (18)
 o bRecvBuffer
 o  0000 CB 00 00 00 00 00 0A 01 00 00 03 E8 00 00 00 00 AB CD EF 01
 o  0010 90 00                                           ..
 => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000165]
SCardTransmit
 i hCard: 0x254F66B8
 i bSendLength 0x00000005 (5)
 i bSendBuffer
 i  0000 80 B2 01 00 08                                  .....
 o bRecvLength 0x00000000 (0)
 o bRecvBuffer
 => Transaction failed. (SCARD_E_NOT_TRANSACTED [0x80100016])  [0.002000]
";

    #[test]
    fn transmits_with_their_reader_and_time() {
        let log = parse(T).unwrap();
        assert_eq!(log.records.len(), 2);
        let r = &log.records[0];
        assert_eq!((r.reader.as_str(), r.at_ns, r.duration_ns, r.line), ("R 0", 181_000, 165_000, 6));
        match &r.what {
            What::Exchange { command, answer } => {
                assert_eq!(command, &[0x80, 0xB2, 1, 0, 8]);
                assert_eq!(answer.len(), 18);
                assert_eq!(answer[16..], [0x90, 0]);
            }
            w => panic!("{w:?}"),
        }
        assert!(
            matches!(&log.records[1].what, What::NoAnswer { error, .. } if error == "Transaction failed. (SCARD_E_NOT_TRANSACTED [0x80100016])")
        );
    }

    #[test]
    fn a_short_dump_line_names_its_line() {
        let bad = T.replace(" i  0000 80 B2 01 00 08     ", " i  0000 80 B2 01 00       ");
        assert_eq!(parse(&bad).unwrap_err().0, 10);
    }
}
