//! Seed 002's settlement terminal as one sequence: two cards in heads A and B, checked,
//! brought to the same transfer key if they differ, then value moves from the first to the
//! second (002: the key update runs "before performing value transfer"; with equal IDs the
//! terminal "proceeds to value transfer processing immediately").
//!
//! The parts are the separate engines' own (`key_update::update_older`, `transfer::flow`), so
//! a settlement sends the same commands, with the same step labels, as `key_update` followed
//! by `value_transfer`; what it adds is the order and the checks between them. The separate
//! plan actions stay for conformance cases that drive one part alone.

use super::key_update::{self, read_info, CardInfo, UpdateMode};
use super::revocation::{self, read_certificate, CardCert};
use super::{journaled, no_open_intent, reject, transfer, EngineError, Flow, Outcome, RejectKind, Terminal};
use crate::link::Link;

/// Settle `amount` from the card in `from` to the card in `to`, updating the card with the
/// older transfer key first (in `mode`: the embodiment the terminal runs).
pub fn settle(
    from: &mut Link,
    to: &mut Link,
    t: &mut Terminal,
    mode: UpdateMode,
    amount: u32,
) -> Result<Outcome, EngineError> {
    journaled(t, |t| flow(from, to, t, mode, amount))
}

/// The embodiment's step-number prefix (S1001, S3001, …) for the reads and the checks.
fn embodiment(mode: UpdateMode) -> u32 {
    match mode {
        UpdateMode::Common => 1,
        UpdateMode::Public => 3,
        UpdateMode::Auto => 4,
        UpdateMode::Multi => 6,
        UpdateMode::Rollover => 7,
    }
}

fn flow(a: &mut Link, b: &mut Link, t: &mut Terminal, mode: UpdateMode, amount: u32) -> Flow<Outcome> {
    let e = embodiment(mode);
    let check = format!("S{e}003");
    no_open_intent(t, a, &check)?;
    no_open_intent(t, b, &check)?;
    // S?001/S?002: both cards' information and certificates, read before anything changes.
    let ia = read_info(a, &format!("S{e}001"), &format!("S{e}002/S{e}101A"))?;
    let ib = read_info(b, &format!("S{e}001"), &format!("S{e}002/S{e}101B"))?;
    let ca = read_certificate(a, &format!("S{e}002/S{e}101A"))?;
    let cb = read_certificate(b, &format!("S{e}002/S{e}101B"))?;
    // A pending credit's reception challenge is a MAC under the transfer key the transfer
    // ran with: updating either card first would leave a credit no challenge can complete.
    for i in [&ia, &ib] {
        if i.has_pending_credit() {
            return reject(
                &check,
                RejectKind::CreditPending,
                format!(
                    "card {} holds a pending credit from an interrupted transfer: run recovery before settling",
                    hex::encode_upper(i.card_id)
                ),
            );
        }
    }
    check_both(t, a, &check, (&ia, &ca), (&ib, &cb))?;
    let update = if ia.tkid == ib.tkid {
        a.note_step(&check, &format!("same transfer key ID {}: value transfer at once", ia.tkid));
        None
    } else if ia.tkid < ib.tkid {
        Some(key_update::update_older(a, b, mode, (&ia, &ca), (&ib, &cb))?)
    } else {
        Some(key_update::update_older(b, a, mode, (&ib, &cb), (&ia, &ca))?)
    };
    let transferred = transfer::flow(a, b, t, amount)?;
    Ok(match (update, transferred) {
        (None, Outcome::Success(x)) => Outcome::Success(format!("same transfer key: {x}")),
        (Some(Outcome::Success(u)), Outcome::Success(x)) => Outcome::Success(format!("{u}; {x}")),
        // The transfer engine ends in success or a rejection (an `Err` here); nothing else.
        (_, other) => other,
    })
}

/// The settlement terminal's checks on both cards before it changes either: term of
/// validity, then the CRL and each certificate as every key update and transfer checks them
/// (`revocation::check_cards`, card-spec 8.14: a card without a certificate is checked by its
/// ID's serial, and a public key-update path refuses it later).
pub(crate) fn check_both(
    t: &Terminal,
    note: &Link,
    step: &str,
    a: (&CardInfo, &CardCert),
    b: (&CardInfo, &CardCert),
) -> Flow<()> {
    for (info, _) in [a, b] {
        if t.now > info.validity {
            return reject(
                step,
                RejectKind::CardExpired,
                format!("card {} expired (validity {})", hex::encode_upper(info.card_id), info.validity),
            );
        }
    }
    revocation::check_cards(t, note, step, [(a.0, a.1.as_deref()), (b.0, b.1.as_deref())])
}
