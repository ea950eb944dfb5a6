//! What an exchange means, for the detail pane: the command header in hex, the applet an
//! AID names, the data fields of the reference card's commands (docs/card-spec.md) and a
//! hex + ASCII dump. Only what the card spec defines is decoded; anything else stays hex.

use crate::apdu::{Case, Command};
use crate::crypto::cert::Certificate;
use crate::spec::codes as ins;
use crate::spec::layout::purse::Record;
use crate::spec::layout::xfer::{CardInfo, LastDebit, PendingCredit};

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
        Some(n) => date_value(n),
        None => "(missing)".into(),
    }
}

fn date_value(n: u32) -> String {
    let when = chrono::DateTime::from_timestamp(n as i64, 0)
        .map_or(String::new(), |d| d.format(" (%Y-%m-%dT%H:%M:%SZ)").to_string());
    format!("{n:08X}{when}")
}

fn num_value(n: u32) -> String {
    format!("{n:08X} ({n})")
}

/// The fields of a certificate (crypto.md: tags 42, 5F20, 5F4C, 86, 5F24, C1), or why it is
/// not one. A malformed certificate is shown as such, never hidden: it is what a lab hunts.
fn certificate_fields(v: &mut Vec<Field>, what: &str, b: &[u8]) {
    if b.is_empty() {
        v.push(field(what, "empty".into()));
        return;
    }
    match Certificate::parse(b) {
        Ok(c) => {
            let body = &c.body;
            v.push(field(what, format!("{} bytes, role {} ({})", b.len(), body.role as u8, body.role.name())));
            v.push(field("  subject", hex(&body.subject)));
            v.push(field("  issuer", hex(&body.issuer)));
            v.push(field("  serial", num_value(body.serial)));
            v.push(field("  expiry", date_value(body.expiry)));
            v.push(field("  public key", format!("{}…", hex(&body.public_key[..9]))));
        }
        Err(e) => v.push(field(what, format!("{} bytes, not a certificate: {e}", b.len()))),
    }
}

const FLAG_NAMES: [(u8, &str); 4] =
    [(0x01, "update key"), (0x02, "card key"), (0x04, "credit pending"), (0x08, "last debit")];

fn card_info_fields(v: &mut Vec<Field>, r: &[u8]) {
    match CardInfo::parse(r) {
        Ok(i) => {
            v.push(field("card ID", hex(&i.card_id)));
            v.push(field("validity", date_value(i.validity)));
            v.push(field("balance", num_value(i.balance)));
            v.push(field("update key ID", num_value(i.ukid)));
            v.push(field("transfer key ID", num_value(i.tkid)));
            v.push(field("update key ID limit", num_value(i.ukid_limit)));
            v.push(field("transfer key ID limit", num_value(i.tkid_limit)));
            let set: Vec<&str> = FLAG_NAMES.iter().filter(|(b, _)| i.flags & b != 0).map(|(_, n)| *n).collect();
            let set = if set.is_empty() { "none".to_string() } else { set.join(", ") };
            v.push(field("flags", format!("{:02X} ({set})", i.flags)));
            let slots: Vec<String> = i.slots.iter().map(|s| s.to_string()).collect();
            v.push(field("preloaded keys", format!("{:02X} ({})", i.slots.len(), slots.join(", "))));
        }
        Err(e) => v.push(field("card info", e.to_string())),
    }
}

fn record_fields(v: &mut Vec<Field>, r: &[u8]) {
    match Record::parse(r) {
        Ok(rec) => {
            v.push(field("card ID", hex(&rec.card_id)));
            v.push(field("counter", num_value(rec.counter)));
            v.push(field("amount", num_value(rec.amount)));
            v.push(field("date", date_value(rec.date)));
            v.push(field("signature", format!("{} bytes", rec.signature.len())));
            certificate_fields(v, "certificate", &rec.certificate);
        }
        Err(e) => v.push(field("record", e.to_string())),
    }
}

fn transfer_state_fields(v: &mut Vec<Field>, p1: u8, r: &[u8]) {
    let (paid, date, rnd_send, rnd_recv, challenge) = match p1 {
        0x01 => match PendingCredit::parse(r) {
            Ok(p) => (p.paid, p.date, p.rnd_send, p.rnd_recv, None),
            Err(e) => return v.push(field("pending credit", e.to_string())),
        },
        0x02 => match LastDebit::parse(r) {
            Ok(d) => (d.paid, d.date, d.rnd_send, d.rnd_recv, Some(d.challenge)),
            Err(e) => return v.push(field("last debit", e.to_string())),
        },
        _ => return,
    };
    v.push(field("paid", num_value(paid)));
    v.push(field("date", date_value(date)));
    v.push(field("rnd_send", hex(&rnd_send)));
    v.push(field("rnd_recv", hex(&rnd_recv)));
    if let Some(c) = challenge {
        v.push(field("reception challenge", hex(&c)));
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
                ins::FIELD_SIGNATURE if !r.is_empty() => v.push(field("signature", format!("{} bytes", r.len()))),
                ins::FIELD_CERTIFICATE if !r.is_empty() => certificate_fields(&mut v, "certificate", r),
                _ => {}
            }
        }
        (ins::CLA_PROP, ins::PURSE_READ_ALL) if !r.is_empty() => record_fields(&mut v, r),
        (ins::CLA_PROP, ins::PURSE_WRITE_CERTIFICATE) => certificate_fields(&mut v, "certificate", d),
        (ins::CLA_ISO, ins::CPAY_VERIFY_READER) => certificate_fields(&mut v, "reader certificate", d),
        (ins::CLA_PROP, ins::XFER_GET_INFO) => {
            let what = match c.p1 {
                0x00 => "card information",
                0x01 => "certificate",
                _ => "not defined",
            };
            v.push(field("P1", format!("{:02X} ({what})", c.p1)));
            match c.p1 {
                0x00 if !r.is_empty() => card_info_fields(&mut v, r),
                0x01 if !r.is_empty() => certificate_fields(&mut v, "certificate", r),
                _ => {}
            }
        }
        (ins::CLA_PROP, ins::XFER_READ_STATE) => {
            let what = match c.p1 {
                0x01 => "pending credit",
                0x02 => "last debit",
                _ => "not defined",
            };
            v.push(field("P1", format!("{:02X} ({what})", c.p1)));
            if !r.is_empty() {
                transfer_state_fields(&mut v, c.p1, r);
            }
        }
        (ins::CLA_PROP, ins::XFER_CANCEL_PENDING) if d.len() == 16 => v.push(field("cancel proof", hex(d))),
        (ins::CLA_PROP, ins::XFER_CANCEL_PROOF) if d.len() == 40 => {
            v.push(field("paid", num(d, 0)));
            v.push(field("date", date(d, 4)));
            v.push(field("rnd_send", bytes(d, 8, 16)));
            v.push(field("rnd_recv", bytes(d, 24, 16)));
            if r.len() == 16 {
                v.push(field("cancel proof", hex(r)));
            }
        }
        (ins::CLA_PROP, ins::PERSO_STATUS) if r.len() == 1 => {
            let state = if r[0] == 1 { "locked" } else { "not locked" };
            v.push(field("state", format!("{:02X} ({state})", r[0])));
        }
        (ins::CLA_PROP, ins::PERSO_PUT) => {
            // Secret objects reach the trace redacted; say so instead of decoding the mask.
            let shown = if ins::perso_object_is_secret(c.p1) { "secret: data not shown" } else { "data in the dump" };
            v.push(field("P1 object", format!("{:02X} ({shown})", c.p1)));
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
            if c.ins == ins::XFER_UPDATE_PERMISSION && !d.is_empty() {
                certificate_fields(&mut v, "peer certificate", d);
            }
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
    fn card_info_is_decoded_field_by_field_and_a_bad_layout_says_why() {
        let mut r = hex::decode("CB00000000000A0172BD0BFF000027100000000100000001000000040000000803").unwrap();
        r.extend([0x02, 0, 0, 0, 3, 0, 0, 0, 4]);
        let f = fields(&[0x80, 0x10, 0x00, 0x00, 0x00], &r);
        let get = |n: &str| f.iter().find(|x| x.name == n).map(|x| x.value.clone()).unwrap_or_default();
        assert_eq!(get("balance"), "00002710 (10000)");
        assert_eq!(get("flags"), "03 (update key, card key)");
        assert_eq!(get("preloaded keys"), "02 (3, 4)");
        assert_eq!(get("validity"), "72BD0BFF (2030-12-31T23:59:59Z)");
        // Slot IDs out of order: the pane names the field at fault.
        r[37] = 5;
        let f = fields(&[0x80, 0x10, 0x00, 0x00, 0x00], &r);
        assert!(f.iter().any(|x| x.name == "card info" && x.value.contains("slot IDs")), "{f:?}");
    }

    #[test]
    fn transfer_state_and_secret_perso_objects() {
        let mut r = vec![0, 0, 0, 100, 0x6A, 0x1D, 0x74, 0x40];
        r.extend([0x11; 32]);
        let f = fields(&[0x80, 0x38, 0x01, 0x00, 0x00], &r);
        assert_eq!(f[0].value, "01 (pending credit)");
        assert_eq!(f[1].value, "00000064 (100)");
        assert_eq!(f[3].value, "11".repeat(16));
        let f = fields(&[0x80, 0xE0, 0x33, 0x00, 0x02, 0x00, 0x00], &[]);
        assert_eq!(f[0].value, "33 (secret: data not shown)");
        let f = fields(&[0x80, 0xEC, 0x00, 0x00, 0x01], &[1]);
        assert_eq!(f[0].value, "01 (locked)");
    }

    #[test]
    fn certificate_fields_are_named() {
        use crate::crypto::cert::{CertBody, Role};
        let ca = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let holder = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let mut public_key = [0u8; 65];
        public_key.copy_from_slice(holder.verifying_key().to_encoded_point(false).as_bytes());
        let body = CertBody {
            issuer: *b"CBCA0001",
            subject: [0xCB, 0, 0, 0, 0, 0, 0x0A, 0x01],
            role: Role::XferCard,
            public_key,
            expiry: 0x7A0D_8C7F,
            serial: 0x0A01,
        };
        let cert = Certificate::issue(body, &ca);
        let f = fields(&[0x80, 0x10, 0x01, 0x00, 0x00], cert.encode());
        let get = |n: &str| f.iter().find(|x| x.name == n).map(|x| x.value.clone()).unwrap_or_default();
        assert!(get("certificate").contains("(transfer card)"), "{f:?}");
        assert_eq!(get("  subject"), "CB00000000000A01");
        assert_eq!(get("  serial"), "00000A01 (2561)");
    }

    #[test]
    fn certificate_that_does_not_parse_is_shown_as_such() {
        let f = fields(&[0x80, 0x10, 0x01, 0x00, 0x00], &[0x7F, 0x21, 0x01]);
        assert!(f[1].value.starts_with("3 bytes, not a certificate"), "{f:?}");
    }

    #[test]
    fn dump_has_ascii() {
        assert_eq!(dump(b"AB\x01", 4), vec!["0000  41 42 01     |AB.|"]);
        assert_eq!(per_line(80), 16);
        assert_eq!(per_line(40), 4);
    }
}
