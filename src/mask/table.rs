//! The reference card's dynamic bytes, command by command (docs/card-spec.md section
//! 13, "Dynamic bytes"): which bytes of a response, and of a command, come from a random,
//! a signature, a MAC or a ciphertext, so that two correct sessions of the same protocol
//! differ exactly there. Everything else (IDs, counters, balances, key IDs, dates,
//! certificates, status words) is the same in every correct replay of a session that starts
//! from the same card state, so replays compare it.
//!
//! Ranges are inclusive `(first, last)` byte offsets. Response ranges are over the whole
//! response data of the command (every chunk concatenated); `Mask::window` cuts them down to
//! the bytes one wire exchange carried. Command ranges are over the whole command APDU as sent
//! (header, Lc, data, Le).

use crate::apdu::Command;
use crate::spec::codes::*;

pub(crate) type Ranges = Vec<(usize, usize)>;

/// `first..=first+len-1`, cut to `total` bytes; nothing when it is empty.
fn span(first: usize, len: usize, total: usize) -> Ranges {
    let end = (first + len).min(total);
    if first < end {
        vec![(first, end - 1)]
    } else {
        Vec::new()
    }
}

/// Dynamic bytes of the response data `response` to `command` (the command as the terminal
/// first sent it, not a GET RESPONSE or a re-send: the layout depends on CLA/INS/P1 only, and
/// a re-send has the same header). A response may be shorter than its layout (a prefix while
/// chunks arrive, or a refusal): ranges are cut to its length.
pub(crate) fn response(command: &[u8], response: &[u8]) -> Ranges {
    let n = response.len();
    let (cla, ins, p1) = match command {
        [cla, ins, p1, _, ..] => (*cla, *ins, *p1),
        _ => return Vec::new(),
    };
    if n == 0 {
        return Vec::new();
    }
    match (cla, ins) {
        // READ ALL: the signature area (offset 21, length s at offset 20) holds the writer's
        // ECDSA signature; the certificate after it is the writer's, static.
        (CLA_PROP, PURSE_READ_ALL) if n > 20 => span(21, response[20] as usize, n),
        // READ FIELD 04: the PURSE signature area alone.
        (CLA_PROP, READ_FIELD) if p1 == FIELD_SIGNATURE => span(0, n, n),
        // SIGN PAYMENT: card ID, date, amount static; card nonce (16) and the card's signature
        // over the reader's random (64).
        (CLA_PROP, CPAY_SIGN) => span(16, 16 + 64, n),
        // KEY UPDATE PERMISSION: the update random.
        (CLA_PROP, XFER_UPDATE_PERMISSION) => span(0, n, n),
        // GET TRANSFER KEY: AE blob (IV, ciphertext, tag) or ECIES ciphertext (ephemeral key,
        // IV, ciphertext, tag) and signature: all of it.
        (CLA_PROP, XFER_GET_TRANSFER_KEY) => span(0, n, n),
        // VALUE SEND PERMISSION: rnd_send.
        (CLA_PROP, XFER_SEND_PERMISSION) => span(0, n, n),
        // VALUE RECEIVE PERMISSION: transmission challenge (a MAC over rnd_send) and rnd_recv.
        (CLA_PROP, XFER_RECEIVE_PERMISSION) => span(0, n, n),
        // VALUE SEND: the reception challenge (a MAC over rnd_recv).
        (CLA_PROP, XFER_SEND) => span(0, n, n),
        // READ TRANSFER STATE: paid and date static, then the randoms (and the challenge).
        (CLA_PROP, XFER_READ_STATE) => span(8, n, n),
        // CANCEL PROOF: a MAC over both randoms.
        (CLA_PROP, XFER_CANCEL_PROOF) => span(0, n, n),
        _ => Vec::new(),
    }
}

/// Dynamic bytes of a command APDU: the terminal's own randoms, and what it computes over the
/// card's randoms (challenges, signatures, ciphertexts it forwards). A command that does not
/// parse has none.
pub(crate) fn command(command: &[u8]) -> Ranges {
    let Ok(c) = Command::parse(command) else {
        return Vec::new();
    };
    let d = c.data.len();
    if d == 0 {
        return Vec::new();
    }
    // Where the data field starts: after the header and a 1- or 3-byte Lc.
    let at = if c.is_extended() { 7 } else { 5 };
    let field = |first: usize, len: usize| span(at + first, len.min(d.saturating_sub(first)), at + d);
    match (c.cla, c.ins) {
        // WRITE SIGNATURE: the writer's ECDSA signature over the record.
        (CLA_PROP, PURSE_WRITE_SIGNATURE) => field(0, d),
        // SIGN PAYMENT: the reader's random (S34).
        (CLA_PROP, CPAY_SIGN) => field(0, d),
        // DEBIT: price and date static, the reader's signature over the card nonce.
        (CLA_PROP, CPAY_DEBIT) => field(8, d),
        // GET TRANSFER KEY: A's update random, then A's certificate (static).
        (CLA_PROP, XFER_GET_TRANSFER_KEY) => field(0, 16),
        // UPDATE TRANSFER KEY: B's key blob.
        (CLA_PROP, XFER_UPDATE_TRANSFER_KEY) => field(0, d),
        // VALUE RECEIVE PERMISSION: paid and date static, rnd_send.
        (CLA_PROP, XFER_RECEIVE_PERMISSION) => field(8, d),
        // VALUE SEND: B's transmission challenge and rnd_recv.
        (CLA_PROP, XFER_SEND) => field(0, d),
        // VALUE RECEIVE: A's reception challenge.
        (CLA_PROP, XFER_RECEIVE) => field(0, d),
        // CANCEL PENDING CREDIT: A's cancel proof.
        (CLA_PROP, XFER_CANCEL_PENDING) => field(0, d),
        // CANCEL PROOF: paid and date static, the two randoms.
        (CLA_PROP, XFER_CANCEL_PROOF) => field(8, d),
        _ => Vec::new(),
    }
}

/// The table against real sessions of the reference card: the same protocol run twice, on
/// cards and terminals with other randoms, differs only inside the masks, and each command's
/// masks are exactly the ranges of its layout in docs/card-spec.md.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::key_update::UpdateMode;
    use crate::engine::{self, Terminal};
    use crate::event::{Event, Exchange, Recorder, RowKind};
    use crate::head::virtual_head::VirtualHead;
    use crate::head::Head;
    use crate::issuance::CardPlan;
    use crate::keys::Keyset;
    use crate::link::Link;
    use crate::mask::{Mask, RowMasks};
    use crate::spec::Protocol;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use std::collections::HashMap;

    const NOW: u32 = 0x6A1D_7440;

    fn card(keys: &Keyset, id: u64, protocol: Protocol, f: impl FnOnce(&mut CardPlan), seed: u8) -> VirtualHead {
        let mut plan = CardPlan::new(id.to_be_bytes());
        f(&mut plan);
        let c = crate::lab::personalize_virtual_seeded(&plan, protocol, keys, Some([seed; 32])).unwrap();
        let mut h = VirtualHead::new(&format!("{id:016X}"));
        h.insert(c);
        h.power_on().unwrap();
        h
    }

    /// Every exchange of one session of every protocol step that has dynamic bytes (and the
    /// static ones around them), on four cards whose randoms come from `seed`.
    fn session(seed: u8) -> Vec<Exchange> {
        let keys = Keyset::from_seed("cardbench virtual lab", vec![]);
        let (rec, rx) = Recorder::new("mask-table");
        let mut a = card(&keys, 0xA1, Protocol::T0, |p| p.balance = 10000, seed);
        let mut b = card(
            &keys,
            0xB2,
            Protocol::T1,
            |p| {
                p.cpay_amount = 20000;
                p.transfer_key = 2;
                p.slots = vec![3, 4];
            },
            seed.wrapping_add(1),
        );
        let mut c = card(
            &keys,
            0xC3,
            Protocol::T0,
            |p| {
                p.balance = 5000;
                p.transfer_key = 3;
                p.slots = vec![3, 4];
            },
            seed.wrapping_add(2),
        );
        let mut d = card(
            &keys,
            0xD4,
            Protocol::T1,
            |p| {
                p.balance = 8000;
                p.update_key = 2;
                p.transfer_key = 4;
            },
            seed.wrapping_add(3),
        );
        let mut t = Terminal::new(&keys, NOW, ChaCha20Rng::from_seed([seed; 32]));
        let ok = |o: Result<engine::Outcome, engine::EngineError>| {
            let o = o.unwrap();
            assert_eq!(o.verdict(), "success", "{o}");
        };
        {
            let mut la = Link::new(&mut a, &rec);
            ok(engine::purse::charge(&mut la, &mut t, 5000));
            ok(engine::purse::pay(&mut la, &mut t, 1200));
            la.exec("t", &crate::cmds::read_field(FIELD_SIGNATURE, 64)).unwrap();
        }
        ok(engine::cpay::card_signed_payment(&mut Link::new(&mut b, &rec), &mut t, 300));
        // Common (A tk 1 ← B tk 2), multi (B tk 2 ← C tk 3), public (C tk 3 ← D tk 4, UK 1 ≠ 2).
        ok(engine::key_update::key_update(
            &mut Link::new(&mut a, &rec),
            &mut Link::new(&mut b, &rec),
            &mut t,
            UpdateMode::Common,
        ));
        ok(engine::key_update::key_update(
            &mut Link::new(&mut b, &rec),
            &mut Link::new(&mut c, &rec),
            &mut t,
            UpdateMode::Multi,
        ));
        ok(engine::key_update::key_update(
            &mut Link::new(&mut c, &rec),
            &mut Link::new(&mut d, &rec),
            &mut t,
            UpdateMode::Public,
        ));
        ok(engine::transfer::value_transfer(&mut Link::new(&mut d, &rec), &mut Link::new(&mut c, &rec), &mut t, 100));
        {
            // A credit left pending, read back and cancelled with the sender's proof.
            let (mut ld, mut lc) = (Link::new(&mut d, &rec), Link::new(&mut c, &rec));
            ld.exec("t", &crate::cmds::xfer_read_state(2)).unwrap();
            let rnd_send = ld.exec("t", &crate::cmds::xfer_send_permission(50, NOW)).unwrap().data;
            lc.exec("t", &crate::cmds::xfer_receive_permission(50, NOW, &rnd_send)).unwrap();
            let pending = lc.exec("t", &crate::cmds::xfer_read_state(1)).unwrap();
            let proof = ld.exec("t", &crate::cmds::xfer_cancel_proof(&pending.data)).unwrap();
            assert!(lc.exec("t", &crate::cmds::xfer_cancel_pending(&proof.data)).unwrap().is_ok());
        }
        drop(rec);
        rx.try_iter()
            .filter_map(|e| match e {
                Event::Exchange(x) if x.kind.is_wire() => Some(*x),
                _ => None,
            })
            .collect()
    }

    fn masked_eq(a: &[u8], b: &[u8], m: &Mask) -> bool {
        a.len() == b.len() && a.iter().zip(b).enumerate().all(|(i, (x, y))| x == y || m.covers(i))
    }

    #[test]
    fn two_sessions_with_other_randoms_differ_only_inside_the_masks() {
        let (one, two) = (session(1), session(9));
        assert_eq!(one.len(), two.len());
        let mut groups: HashMap<String, (RowMasks, RowMasks)> = HashMap::new();
        let mut differed = 0;
        for (x, y) in one.iter().zip(&two) {
            let g = groups.entry(x.head.clone()).or_default();
            let (cm, rm) = g.0.row(x.kind, &x.command, &x.response);
            assert_eq!(x.mask, rm, "the link's mask column agrees with the row grouping");
            assert_eq!(g.1.row(y.kind, &y.command, &y.response), (cm.clone(), rm.clone()));
            let name = crate::cmds::name(x.command[0], x.command[1]);
            assert_eq!((x.kind, x.sw, x.protocol_step.as_str()), (y.kind, y.sw, y.protocol_step.as_str()), "{name}");
            assert!(
                masked_eq(&x.command, &y.command, &cm),
                "{name} command {} vs {} under {cm}",
                hex::encode_upper(&x.command),
                hex::encode_upper(&y.command)
            );
            assert!(
                masked_eq(&x.response, &y.response, &rm),
                "{name} response {} vs {} under {rm}",
                hex::encode_upper(&x.response),
                hex::encode_upper(&y.response)
            );
            differed += usize::from(x.response != y.response || x.command != y.command);
        }
        assert!(differed > 10, "the two sessions drew other randoms ({differed} rows differ)");
    }

    /// The masks each command got in a real session, by command name and P1.
    fn masks_seen() -> HashMap<(&'static str, u8), (String, String)> {
        let rows = session(3);
        let mut groups: HashMap<String, RowMasks> = HashMap::new();
        let mut first: HashMap<String, Vec<u8>> = HashMap::new();
        let mut out = HashMap::new();
        for x in &rows {
            let (cm, rm) = groups.entry(x.head.clone()).or_default().row(x.kind, &x.command, &x.response);
            if x.kind == RowKind::Command {
                first.insert(x.head.clone(), x.command.clone());
            }
            let f = &first[&x.head];
            let key = (crate::cmds::name(f[0], f[1]), f[2]);
            // The command as first sent, and the row that carried the data: the whole response
            // (T=1, or a 6Cxx re-send) or its GET RESPONSE.
            let e = out.entry(key).or_insert((String::new(), String::new()));
            if x.kind == RowKind::Command {
                e.0 = cm.to_string();
            }
            if !x.response.is_empty() {
                e.1 = rm.to_string();
            }
        }
        out
    }

    #[test]
    fn each_command_masks_the_ranges_of_its_layout() {
        let seen = masks_seen();
        let want: &[((&str, u8), &str, &str)] = &[
            (("SELECT", 0x04), "", ""),
            // Signed record: 22 + 64 + 186 bytes on T=0 = 256 + GET RESPONSE of 16; the
            // signature area is bytes 21-84 of the first chunk.
            (("READ ALL", 0x00), "", ""),
            (("READ FIELD", FIELD_SIGNATURE), "", "0-63"),
            (("WRITE VALUE", 0x00), "", ""),
            (("WRITE SIGNATURE", 0x00), "5-68", ""),
            (("WRITE CERTIFICATE", 0x00), "", ""),
            (("PSO VERIFY CERTIFICATE", 0x00), "", ""),
            (("SIGN PAYMENT", 0x00), "5-20", "16-95"),
            (("DEBIT", 0x00), "13-76", ""),
            (("GET CARD INFO", 0x00), "", ""),
            (("GET CARD INFO", 0x01), "", ""),
            (("KEY UPDATE PERMISSION", MODE_COMMON), "", "0-15"),
            (("KEY UPDATE PERMISSION", MODE_PUBLIC), "", "0-15"),
            (("KEY UPDATE PERMISSION", MODE_MULTI), "", "0-15"),
            (("GET TRANSFER KEY", MODE_COMMON), "5-20", "0-67"),
            (("GET TRANSFER KEY", MODE_MULTI), "5-20", "0-51"),
            (("GET TRANSFER KEY", MODE_PUBLIC), "5-20", "0-180"),
            (("UPDATE TRANSFER KEY", MODE_COMMON), "5-72", ""),
            (("UPDATE TRANSFER KEY", MODE_MULTI), "5-56", ""),
            (("UPDATE TRANSFER KEY", MODE_PUBLIC), "5-185", ""),
            (("VALUE SEND PERMISSION", 0x00), "", "0-15"),
            (("VALUE RECEIVE PERMISSION", 0x00), "13-28", "0-31"),
            (("VALUE SEND", 0x00), "5-36", "0-15"),
            (("VALUE RECEIVE", 0x00), "5-20", ""),
            (("READ TRANSFER STATE", 0x01), "", "8-39"),
            (("READ TRANSFER STATE", 0x02), "", "8-55"),
            (("CANCEL PROOF", 0x00), "13-44", "0-15"),
            (("CANCEL PENDING CREDIT", 0x00), "5-20", ""),
        ];
        for (key, cmd, resp) in want {
            let got = seen.get(key).unwrap_or_else(|| panic!("{key:?} not in the session"));
            assert_eq!((got.0.as_str(), got.1.as_str()), (*cmd, *resp), "{key:?}");
        }
    }

    #[test]
    fn read_all_masks_the_signature_area_across_chunks() {
        // A signed record on T=0 comes as 256 bytes ‖ 61 10 and a GET RESPONSE of 16: the
        // signature (bytes 21-84) is in the first chunk, the certificate tail in the second.
        let rows = session(5);
        let mut g: HashMap<String, RowMasks> = HashMap::new();
        let mut found = false;
        for (i, x) in rows.iter().enumerate() {
            let (_, rm) = g.entry(x.head.clone()).or_default().row(x.kind, &x.command, &x.response);
            if x.command[..2] == [CLA_PROP, PURSE_READ_ALL] && x.response.len() == 256 {
                assert_eq!(x.response[20], 0x40);
                assert_eq!(rm.to_string(), "21-84");
                let next = &rows[i + 1];
                assert_eq!(next.kind, RowKind::GetResponse);
                let (_, rm2) = g.get_mut(&x.head).unwrap().row(next.kind, &next.command, &next.response);
                assert_eq!(rm2.to_string(), "");
                found = true;
                break;
            }
        }
        assert!(found, "a 272-byte READ ALL on T=0 in the session");
        // Whole responses and cut prefixes: a blank record has no signature area.
        let read_all = [CLA_PROP, PURSE_READ_ALL, 0, 0, 0];
        assert_eq!(response(&read_all, &[0u8; 22]), vec![]);
        assert_eq!(crate::mask::dynamic_chunk(&read_all, &[0u8; 16], &[0, 0, 0, 0, 0x40, 1, 2]).to_string(), "5-6");
        assert_eq!(response(&[0x00, 0xC0, 0, 0, 0x10], &[1; 16]), vec![], "GET RESPONSE alone has no layout");
    }

    #[test]
    fn refusals_and_short_answers_mask_only_what_is_there() {
        assert_eq!(response(&[CLA_PROP, CPAY_SIGN, 0, 0], &[]), vec![]);
        assert_eq!(response(&[CLA_PROP, CPAY_SIGN, 0, 0], &[0; 20]), vec![(16, 19)]);
        assert_eq!(command(&[CLA_PROP, XFER_SEND]), vec![], "no header: nothing");
        assert_eq!(command(&[CLA_PROP, CPAY_DEBIT, 0, 0, 0x04, 1, 2, 3, 4]), vec![], "data shorter than the layout");
    }
}
