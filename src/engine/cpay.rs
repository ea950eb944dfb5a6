//! Seed 000 prior art (\[0006\]-\[0008\]): card-signed payment, S21-S38.

use super::journal::Intent;
use super::{
    exec, journaled, no_data, no_open_intent, ok_data, parsed, reject, EngineError, Flow, Outcome, RejectKind, Terminal,
};
use crate::apdu::Response;
use crate::cmds;
use crate::crypto::cert::{Certificate, Role};
use crate::crypto::sig;
use crate::keys::Party;
use crate::link::Link;
use crate::spec::codes::{AID_CPAY, FIELD_CERTIFICATE};
use crate::spec::layout::{self, cpay::SignedPayment};
use crate::spec::message::{debit_message, sign_message};
use crate::sw;

pub fn card_signed_payment(link: &mut Link, t: &mut Terminal, price: u32) -> Result<Outcome, EngineError> {
    card_signed_payment_with(link, t, price, false)
}

/// As `card_signed_payment`; with `unchecked` the terminal skips its own value check at S38
/// and sends the authorized DEBIT anyway, so a conformance plan can test the card's check.
pub fn card_signed_payment_with(
    link: &mut Link,
    t: &mut Terminal,
    price: u32,
    unchecked: bool,
) -> Result<Outcome, EngineError> {
    let keys = t.keys;
    card_signed_payment_as(link, t, price, unchecked, &keys.payment)
}

/// `card_signed_payment_with` by the keyset's payment machine `machine` (P1 when `None`).
pub fn card_signed_payment_by(
    link: &mut Link,
    t: &mut Terminal,
    price: u32,
    unchecked: bool,
    machine: Option<&str>,
) -> Result<Outcome, EngineError> {
    let me = super::acting(t, Role::PaymentMachine, machine, "card_signed_payment")?;
    card_signed_payment_as(link, t, price, unchecked, me)
}

fn card_signed_payment_as(
    link: &mut Link,
    t: &mut Terminal,
    price: u32,
    unchecked: bool,
    me: &Party,
) -> Result<Outcome, EngineError> {
    journaled(t, |t| flow(link, t, price, unchecked, me))
}

fn flow(link: &mut Link, t: &mut Terminal, price: u32, unchecked: bool, me: &Party) -> Flow<Outcome> {
    no_open_intent(t, link, "S21")?;
    super::select(link, "select", &AID_CPAY)?;
    // S21-S23 run on the card: it checks our certified key with the center key.
    let r: Response = exec(link, "S21", &cmds::cpay_verify_reader(me.cert.encode()))?;
    if r.sw != sw::OK {
        return reject("S22", RejectKind::CardRefused(r.sw), "card rejected the reader certificate (S23)");
    }
    no_data("S22", &r.data, "PSO VERIFY CERTIFICATE")?;
    // S31-S33: we check the card's certified key.
    let cert_bytes = ok_data(link, "S31", &cmds::read_field(FIELD_CERTIFICATE, 256))?;
    let cert_bytes = parsed("S32", layout::certificate("READ FIELD 05", &cert_bytes))?;
    let Ok(cert) = Certificate::parse(&cert_bytes) else {
        return reject("S32", RejectKind::CertificateInvalid, "card certificate does not parse (S33)");
    };
    if cert.verify_signature(&t.keys.center_public()).is_err() || cert.body.role != Role::SigningCard {
        return reject("S32", RejectKind::CertificateInvalid, "card certificate not signed by the center (S33)");
    }
    if cert.is_expired(t.now) {
        return reject("S32", RejectKind::CertificateExpired, "card certificate expired (S33)");
    }
    let Ok(card_key) = cert.public_key() else {
        return reject("S32", RejectKind::CertificateInvalid, "card public key invalid (S33)");
    };
    // S34: our random; S24 on the card: it signs ID, date, amount and the random.
    let random = t.random16();
    let data = ok_data(link, "S34/S24", &cmds::cpay_sign(&random))?;
    let SignedPayment { card_id: id, date, amount, nonce, signature } = parsed("S35", SignedPayment::parse(&data))?;
    link.card_id = hex::encode_upper(id);
    if id != cert.body.subject {
        return reject(
            "S36",
            RejectKind::CardSignatureInvalid,
            "signed card ID differs from the certificate subject (S37)",
        );
    }
    if sig::verify(&card_key, &sign_message(&id, date, amount, &random), &signature).is_err() {
        return reject(
            "S36",
            RejectKind::CardSignatureInvalid,
            "card signature over ID, date, amount, random fails (S37)",
        );
    }
    link.note_step("S35", "card signature verified");
    // S38: amount remitted to the host; the service is paid by debiting the card.
    if amount < price && !unchecked {
        return reject("S38", RejectKind::InsufficientValue, format!("card value {amount} < price {price}"));
    }
    let auth = sig::sign(&me.key, &debit_message(&id, price, t.now, &nonce));
    // Recorded before it goes: if the answer is lost, recovery compares the card's value
    // with the signed one instead of debiting again.
    t.journal.record(Intent::CpayDebit {
        head: link.head_name(),
        card_id: hex::encode_upper(id),
        price,
        date: t.now,
        amount_before: amount,
        date_before: date,
    });
    let left = ok_data(link, "S38", &cmds::cpay_debit(price, t.now, &auth))?;
    let left = parsed("S38", layout::u32_answer("DEBIT", &left))?;
    if Some(left) != amount.checked_sub(price) {
        return reject(
            "S38",
            RejectKind::StateMismatch,
            format!("card reports {left} after a debit of {price} from {amount}"),
        );
    }
    Ok(Outcome::Success(format!("card-signed payment of {price}: value {left}")))
}
