//! Seed 002 Fig. 4: card-to-card value transfer, S2001-S2004 with card steps S2101A-S2105B.

use super::journal::Intent;
use super::key_update::{read_info, read_info_selected, CardInfo};
use super::revocation::check_pair;
use super::{
    exec, journaled, no_open_intent, ok_data, parsed, reject, EngineError, Flow, Outcome, RejectKind, Terminal,
};
use crate::apdu::Response;
use crate::cmds;
use crate::link::Link;
use crate::spec::layout::xfer::ReceivePermission;
use crate::spec::layout::{block16, u32_answer};
use crate::spec::message::pending_credit;
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
    let rnd_send = parsed("S2102A", block16("VALUE SEND PERMISSION", &rnd_send))?;
    // From here B may hold a pending credit: the intent is recorded before the command goes.
    let at = t.journal.record(Intent::Transfer {
        from_head: a.head_name(),
        to_head: b.head_name(),
        from_card: hex::encode_upper(ia.card_id),
        to_card: hex::encode_upper(ib.card_id),
        paid,
        date: t.now,
        rnd_send,
        rnd_recv: None,
        challenge: None,
    });
    // S2002 → B: tentative credit, transmission challenge, reception random (S2101B-S2103B).
    let rb = ok_data(b, "S2002/S2101B-S2103B", &cmds::xfer_receive_permission(paid, t.now, &rnd_send))?;
    let rb = parsed("S2103B", ReceivePermission::parse(&rb))?;
    if let Some(Intent::Transfer { rnd_recv, .. }) = t.journal.get_mut(at) {
        *rnd_recv = Some(rb.rnd_recv);
    }
    // S2003 → A: checks the transmission challenge, commits, answers the reception challenge.
    let r: Response = exec(a, "S2003/S2103A-S2105A", &cmds::xfer_send(&rb.challenge, &rb.rnd_recv))?;
    if r.sw != sw::OK {
        // Nothing was debited: A proves it and B releases its pending credit, so neither
        // card changes. B's pending credit is what A's proof is computed over.
        let pending = pending_credit(paid, t.now, &rnd_send, &rb.rnd_recv);
        let p: Response = exec(a, "S2003/cancel-proof", &cmds::xfer_cancel_proof(&pending))?;
        let cancelled = if p.sw != sw::OK || p.data.len() != 16 {
            format!("sending card refused the cancel proof ({:04X}): credit left pending", p.sw)
        } else {
            let c: Response = exec(b, "S2003/cancel", &cmds::xfer_cancel_pending(&p.data))?;
            if c.sw == sw::OK && c.data.is_empty() {
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
    let reception = parsed("S2105A", block16("VALUE SEND", &r.data))?;
    if let Some(Intent::Transfer { challenge, .. }) = t.journal.get_mut(at) {
        *challenge = Some(reception);
    }
    // S2004 → B: checks the reception challenge, commits the credit.
    let r: Response = exec(b, "S2004/S2104B-S2105B", &cmds::xfer_receive(&reception))?;
    if r.sw != sw::OK {
        // A has committed its debit; B keeps the pending credit for recovery.
        return reject(
            "S2104B",
            RejectKind::CardRefused(r.sw),
            format!("receiving card refused the reception challenge: {}; credit left pending", sw::describe(r.sw)),
        );
    }
    // VALUE RECEIVE answers B's new balance (8.10).
    let told = parsed("S2105B", u32_answer("VALUE RECEIVE", &r.data))?;
    if Some(told) != ib.balance.checked_add(paid) {
        return reject(
            "S2105B",
            RejectKind::StateMismatch,
            format!("receiving card answered balance {told} after a credit of {paid} to {}", ib.balance),
        );
    }
    let after_a = read_info_selected(a, "verify")?;
    let after_b = read_info_selected(b, "verify")?;
    unchanged_but_balance("S2105A", &ia, &after_a, true)?;
    unchanged_but_balance("S2105B", &ib, &after_b, false)?;
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

/// After a transfer each card is the same card with the same keys, limits and slots; only
/// the balance moved, the sender records its last debit (8.9) and the receiver holds no
/// pending credit (8.10). `sender` says which of the two `before` was.
fn unchanged_but_balance(step: &str, before: &CardInfo, after: &CardInfo, sender: bool) -> Flow<()> {
    use crate::spec::layout::xfer::{FLAG_LAST_DEBIT, FLAG_PENDING_CREDIT};
    let flags = if sender { before.flags | FLAG_LAST_DEBIT } else { before.flags & !FLAG_PENDING_CREDIT };
    let same = |i: &CardInfo| (i.card_id, i.validity, i.ukid, i.tkid, i.ukid_limit, i.tkid_limit, i.slots.clone());
    let what = if same(before) != same(after) {
        "card ID, validity, key IDs, limits or slots changed"
    } else if after.flags != flags {
        if sender {
            "flags: the sender must record its last debit and change nothing else"
        } else {
            "flags: the receiver must clear its pending credit and change nothing else"
        }
    } else {
        return Ok(());
    };
    reject(
        step,
        RejectKind::StateMismatch,
        format!(
            "card {} after the transfer: {what} (flags {:02X} → {:02X})",
            hex::encode_upper(before.card_id),
            before.flags,
            after.flags
        ),
    )
}
