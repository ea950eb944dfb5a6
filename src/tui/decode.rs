//! What an exchange means, for the detail pane: the command header in hex, the applet an
//! AID names, the data fields of the reference card's commands (docs/card-spec.md) and a
//! hex + ASCII dump. Only what the card spec defines is decoded; anything else stays hex.

use crate::apdu::{Case, Command};
use crate::spec::codes as ins;

/// Decoded header fields of a command APDU, every value in hex as on the wire:
/// ("CLA", "80"), ("INS", "D0"), ("P1", "00"), ("P2", "00"), ("Lc", "08"), ("Le", "04").
pub fn header_fields(cmd: &[u8]) -> Vec<(&'static str, String)> {
    match Command::parse(cmd) {
        Ok(c) => {
            let ext = c.is_extended();
            let len = |n: usize| if ext { format!("{n:04X}") } else { format!("{n:02X}") };
            let mut v = vec![
                ("CLA", format!("{:02X}", c.cla)),
                ("INS", format!("{:02X}", c.ins)),
                ("P1", format!("{:02X}", c.p1)),
                ("P2", format!("{:02X}", c.p2)),
            ];
            if !c.data.is_empty() {
                v.push(("Lc", len(c.data.len())));
            }
            if let Some(le) = c.le {
                // Le 00 on the wire asks for up to 256 (65536 extended): say so, still in hex.
                let shown = match (le, ext) {
                    (256, false) => "00 (any, up to 100)".to_string(),
                    (65536, true) => "0000 (any, up to 10000)".to_string(),
                    (n, _) => len(n),
                };
                v.push(("Le", shown));
            }
            v.push(("case", case_word(c.case()).into()));
            if ext {
                v.push(("length", "extended".into()));
            }
            v
        }
        Err(e) => vec![("parse", e.to_string())],
    }
}

fn case_word(c: Case) -> &'static str {
    match c {
        Case::One => "1 (no data, no Le)",
        Case::Two => "2 (Le only)",
        Case::Three => "3 (data, no Le)",
        Case::Four => "4 (data and Le)",
    }
}

/// The applet of a reference-card AID (card-spec 1.1).
pub fn applet_name(aid: &[u8]) -> Option<&'static str> {
    match aid {
        a if a == ins::AID_PURSE => Some("PURSE"),
        a if a == ins::AID_CPAY => Some("CPAY"),
        a if a == ins::AID_XFER => Some("XFER"),
        _ => None,
    }
}

/// One decoded field: its name and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
}

fn field(name: &str, value: String) -> Field {
    Field { name: name.into(), value }
}

fn hex(b: &[u8]) -> String {
    hex::encode_upper(b)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

/// A `u32` shown as the card spec uses it: hex on the wire, its value beside it.
fn num(b: &[u8], at: usize) -> String {
    match u32_at(b, at) {
        Some(n) => format!("{} ({n})", hex(&b[at..at + 4])),
        None => "(missing)".into(),
    }
}

/// A card-spec date: seconds since 1970, UTC.
fn date(b: &[u8], at: usize) -> String {
    match u32_at(b, at) {
        Some(n) => {
            let when = chrono::DateTime::from_timestamp(n as i64, 0)
                .map_or(String::new(), |d| d.format(" (%Y-%m-%dT%H:%M:%SZ)").to_string());
            format!("{}{when}", hex(&b[at..at + 4]))
        }
        None => "(missing)".into(),
    }
}

fn bytes(b: &[u8], at: usize, n: usize) -> String {
    match b.get(at..at + n) {
        Some(x) => hex(x),
        None => "(missing)".into(),
    }
}

/// The fields of a command's data and of its response, as card-spec sections 1.7, 6, 7 and 8
/// define them. Empty for a command the spec does not lay out (or whose data does not fit
/// the layout: the hex dump shows it as it is).
pub fn fields(cmd: &[u8], response: &[u8]) -> Vec<Field> {
    let Ok(c) = Command::parse(cmd) else { return Vec::new() };
    let d = &c.data[..];
    let r = response;
    let mut v = Vec::new();
    match (c.cla, c.ins) {
        (ins::CLA_ISO, ins::SELECT) => {
            let name = applet_name(d).map_or("not a reference-card applet".to_string(), |n| format!("applet {n}"));
            v.push(field("AID", format!("{} ({name})", hex(d))));
        }
        (ins::CLA_PROP, ins::READ_FIELD) => {
            let what = match c.p1 {
                ins::FIELD_ID => "card ID",
                ins::FIELD_COUNTER => "counter",
                ins::FIELD_VALUE => "value (amount, date)",
                ins::FIELD_SIGNATURE => "signature area",
                ins::FIELD_CERTIFICATE => "certificate area",
                _ => "no such field",
            };
            v.push(field("P1 field", format!("{:02X} ({what})", c.p1)));
            match c.p1 {
                ins::FIELD_ID if r.len() == 8 => v.push(field("card ID", hex(r))),
                ins::FIELD_COUNTER if r.len() == 4 => v.push(field("counter", num(r, 0))),
                ins::FIELD_VALUE if r.len() == 8 => {
                    v.push(field("amount", num(r, 0)));
                    v.push(field("date", date(r, 4)));
                }
                _ => {}
            }
        }
        (ins::CLA_PROP, ins::PURSE_WRITE_VALUE) if d.len() == 8 => {
            v.push(field("amount", num(d, 0)));
            v.push(field("date", date(d, 4)));
            if r.len() == 4 {
                v.push(field("counter after", num(r, 0)));
            }
        }
        (ins::CLA_PROP, ins::PURSE_WRITE_SIGNATURE) if d.len() == 64 => {
            v.push(field("signature", format!("{} bytes (r ‖ s)", d.len())));
        }
        (ins::CLA_PROP, ins::CPAY_SIGN) if d.len() == 16 => {
            v.push(field("reader random", hex(d)));
            if r.len() == 96 {
                v.push(field("card ID", bytes(r, 0, 8)));
                v.push(field("date", date(r, 8)));
                v.push(field("amount", num(r, 12)));
                v.push(field("card nonce", bytes(r, 16, 16)));
                v.push(field("signature", "64 bytes (r ‖ s)".into()));
            }
        }
        (ins::CLA_PROP, ins::CPAY_DEBIT) if d.len() == 72 => {
            v.push(field("price", num(d, 0)));
            v.push(field("date", date(d, 4)));
            v.push(field("signature", "64 bytes (r ‖ s)".into()));
            if r.len() == 4 {
                v.push(field("amount left", num(r, 0)));
            }
        }
        (ins::CLA_PROP, ins::XFER_SEND_PERMISSION) if d.len() == 8 => {
            v.push(field("paid", num(d, 0)));
            v.push(field("date", date(d, 4)));
            if r.len() == 16 {
                v.push(field("rnd_send", hex(r)));
            }
        }
        (ins::CLA_PROP, ins::XFER_RECEIVE_PERMISSION) if d.len() == 24 => {
            v.push(field("paid", num(d, 0)));
            v.push(field("date", date(d, 4)));
            v.push(field("rnd_send", bytes(d, 8, 16)));
            if r.len() == 32 {
                v.push(field("transmission challenge", bytes(r, 0, 16)));
                v.push(field("rnd_recv", bytes(r, 16, 16)));
            }
        }
        (ins::CLA_PROP, ins::XFER_SEND) if d.len() == 32 => {
            v.push(field("transmission challenge", bytes(d, 0, 16)));
            v.push(field("rnd_recv", bytes(d, 16, 16)));
            if r.len() == 16 {
                v.push(field("reception challenge", hex(r)));
            }
        }
        (ins::CLA_PROP, ins::XFER_RECEIVE) if d.len() == 16 => {
            v.push(field("reception challenge", hex(d)));
            if r.len() == 4 {
                v.push(field("balance", num(r, 0)));
            }
        }
        (ins::CLA_PROP, ins::XFER_UPDATE_PERMISSION | ins::XFER_GET_TRANSFER_KEY | ins::XFER_UPDATE_TRANSFER_KEY) => {
            let mode = match c.p1 {
                ins::MODE_COMMON => "common update key",
                ins::MODE_PUBLIC => "card key pairs (public)",
                ins::MODE_MULTI => "preloaded multi-key slots",
                ins::MODE_PUBLIC_UK => "public, update-key rollover",
                _ => "unknown mode",
            };
            v.push(field("P1 mode", format!("{:02X} ({mode})", c.p1)));
        }
        _ => {}
    }
    v
}

/// Hex + ASCII dump lines, `per_line` bytes each:
/// `0000  80 D0 00 00 08 00 00 00  |........|` (non-printable bytes as `.`).
pub fn dump(bytes: &[u8], per_line: usize) -> Vec<String> {
    if bytes.is_empty() {
        return vec!["(none)".into()];
    }
    let per_line = per_line.max(1);
    bytes
        .chunks(per_line)
        .enumerate()
        .map(|(i, c)| {
            let mut hex: Vec<String> = c.iter().map(|b| format!("{b:02X}")).collect();
            hex.resize(per_line, "  ".into());
            let ascii: String =
                c.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect();
            format!("{:04X}  {}  |{ascii}|", i * per_line, hex.join(" "))
        })
        .collect()
}

/// Bytes per dump line that fit in `width` columns: a multiple of 4, 4 to 16.
pub fn per_line(width: usize) -> usize {
    // "0000  " + 3 per byte + "  |" + 1 per byte + "|" = 4n + 10 columns.
    (width.saturating_sub(10) / 4 / 4 * 4).clamp(4, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_hex_throughout() {
        let f = header_fields(&[0x80, 0x30, 0x00, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x16]);
        assert!(f.contains(&("Lc", "08".into())));
        assert!(f.contains(&("Le", "16".into())), "{f:?}");
        assert!(f.contains(&("case", "4 (data and Le)".into())));
    }

    #[test]
    fn aid_and_fields() {
        let sel = [0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x03];
        assert_eq!(fields(&sel, &[])[0].value, "A0000007770003 (applet XFER)");
        let wv = [0x80, 0xD0, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x64, 0x6A, 0x1D, 0x74, 0x40, 0x04];
        let f = fields(&wv, &[0, 0, 0, 9]);
        assert_eq!(f[0].value, "00000064 (100)");
        assert_eq!(f[1].value, "6A1D7440 (2026-06-01T12:00:00Z)");
        assert_eq!(f[2].value, "00000009 (9)");
    }

    #[test]
    fn dump_has_ascii() {
        assert_eq!(dump(b"AB\x01", 4), vec!["0000  41 42 01     |AB.|"]);
        assert_eq!(per_line(80), 16);
        assert_eq!(per_line(40), 4);
    }
}
