//! Seed 002 Fig. 4: card-to-card value transfer, S2001-S2004 with card steps S2101A-S2105B.

use super::journal::Intent;
use super::key_update::{read_info, read_info_selected, CardInfo};
use super::revocation::check_pair;
use super::{
    exact_len, exec, journaled, no_open_intent, ok_data, reject, EngineError, Flow, Outcome, RejectKind, Terminal,
};
use crate::apdu::Response;
use crate::cmds;
use crate::link::Link;
use crate::sw;

pub fn value_transfer(from: &mut Link, to: &mut Link, t: &mut Terminal, amount: u32) -> Result<Outcome, EngineError> {
    journaled(t, |t| flow(from, to, t, amount))
}

/// The transfer itself (also the last part of a settlement, `engine::settle`).
pub(crate) fn flow(a: &mut Link, b: &mut Link, t: &mut Terminal, paid: u32) -> Flow<Outcome> {
    no_open_intent(t, a, "S2001")?;
    no_open_intent(t, b, "S2001")?;
    let ia: CardInfo = read_info(a, "select", "info")?;
    let ib: CardInfo = read_info(b, "select", "info")?;
    // A pending credit is an interrupted transfer: starting another one would hide it (the
    // receiver would refuse with a bare 6986) or move value before the first is settled.
    for i in [&ia, &ib] {
        if i.has_pending_credit() {
            return reject(
                "S2001",
                RejectKind::CreditPending,
                format!(
                    "card {} holds a pending credit from an interrupted transfer: run recovery \
                     (cardbench recover, or a `recover` plan step) before a new transfer",
                    hex::encode_upper(i.card_id)
                ),
            );
        }
    }
    for i in [&ia, &ib] {
        if t.now > i.validity {
            return reject("S2001", RejectKind::CardExpired, format!("card {} expired", hex::encode_upper(i.card_id)));
        }
    }
    // Seed 002's CRL "inhibits value transfer to a smart card holding an invalid public key
    // certificate": both cards, before either is asked to move value.
    check_pair(a, b, t, "cert", "S2001", (&ia, &ib))?;
    if ia.tkid != ib.tkid {
        return reject(
            "S2001",
            RejectKind::TransferKeysDiffer,
            format!("transfer key IDs {} and {}: run a key update first", ia.tkid, ib.tkid),
        );
    }
    if ia.balance < paid {
        return reject("S2001", RejectKind::InsufficientValue, format!("balance {} < {paid}", ia.balance));
    }
    // S2001 → A: tentative debit, transmission random (S2101A-S2102A).
    let rnd_send = ok_data(a, "S2001/S2101A-S2102A", &cmds::xfer_send_permission(paid, t.now))?;
    exact_len("S2102A", &rnd_send, 16, "transmission random")?;
    // From here B may hold a pending credit: the intent is recorded before the command goes.
    let at = t.journal.record(Intent::Transfer {
        from_head: a.head_name(),
        to_head: b.head_name(),
        from_card: hex::encode_upper(ia.card_id),
        to_card: hex::encode_upper(ib.card_id),
        paid,
        date: t.now,
        rnd_send: rnd_send.as_slice().try_into().expect("length checked"),
        rnd_recv: None,
        challenge: None,
    });
    // S2002 → B: tentative credit, transmission challenge, reception random (S2101B-S2103B).
    let rb = ok_data(b, "S2002/S2101B-S2103B", &cmds::xfer_receive_permission(paid, t.now, &rnd_send))?;
    exact_len("S2103B", &rb, 32, "transmission challenge + reception random")?;
    if let Some(Intent::Transfer { rnd_recv, .. }) = t.journal.get_mut(at) {
        *rnd_recv = rb[16..32].try_into().ok();
    }
    // S2003 → A: checks the transmission challenge, commits, answers the reception challenge.
    let r: Response = exec(a, "S2003/S2103A-S2105A", &cmds::xfer_send(&rb[..16], &rb[16..]))?;
    if r.sw != sw::OK {
        // Nothing was debited: A proves it and B releases its pending credit, so neither
        // card changes. B's pending credit is what A's proof is computed over.
        let pending = [&paid.to_be_bytes()[..], &t.now.to_be_bytes(), &rnd_send, &rb[16..32]].concat();
        let p: Response = exec(a, "S2003/cancel-proof", &cmds::xfer_cancel_proof(&pending))?;
        let cancelled = if p.sw != sw::OK || p.data.len() != 16 {
            format!("sending card refused the cancel proof ({:04X}): credit left pending", p.sw)
        } else {
            let c: Response = exec(b, "S2003/cancel", &cmds::xfer_cancel_pending(&p.data))?;
            if c.sw == sw::OK {
                "pending credit cancelled with the sender's proof".to_string()
            } else {
                format!("cancel refused ({:04X}): credit left pending", c.sw)
            }
        };
        return reject(
            "S2103A",
            RejectKind::CardRefused(r.sw),
            format!("sending card refused the transmission challenge: {}; {cancelled}", sw::describe(r.sw)),
        );
    }
    exact_len("S2105A", &r.data, 16, "reception challenge")?;
    if let Some(Intent::Transfer { challenge, .. }) = t.journal.get_mut(at) {
        *challenge = r.data[..16].try_into().ok();
    }
    // S2004 → B: checks the reception challenge, commits the credit.
    let r: Response = exec(b, "S2004/S2104B-S2105B", &cmds::xfer_receive(&r.data))?;
    if r.sw != sw::OK {
        // A has committed its debit; B keeps the pending credit for recovery.
        return reject(
            "S2104B",
            RejectKind::CardRefused(r.sw),
            format!("receiving card refused the reception challenge: {}; credit left pending", sw::describe(r.sw)),
        );
    }
    let after_a = read_info_selected(a, "verify")?;
    let after_b = read_info_selected(b, "verify")?;
    if after_a.balance != ia.balance - paid || Some(after_b.balance) != ib.balance.checked_add(paid) {
        return reject(
            "S2105B",
            RejectKind::StateMismatch,
            format!(
                "balances {}→{} and {}→{} do not conserve the transfer of {paid}",
                ia.balance, after_a.balance, ib.balance, after_b.balance
            ),
        );
    }
    Ok(Outcome::Success(format!(
        "transferred {paid}: {} {}→{}, {} {}→{}",
        hex::encode_upper(ia.card_id),
        ia.balance,
        after_a.balance,
        hex::encode_upper(ib.card_id),
        ib.balance,
        after_b.balance
    )))
}
