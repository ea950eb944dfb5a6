//! Seed 000: the charge machine (S1-S4) and the payment machine (S11-S18).

use super::journal::{Intent, Writer};
use super::{
    journaled, no_open_intent, ok_data, ok_empty, parsed, reject, EngineError, Flow, Outcome, RejectKind, Stop,
    Terminal,
};
use crate::cmds;
use crate::crypto::cert::{Certificate, Role};
use crate::crypto::sig;
use crate::keys::Party;
use crate::link::Link;
use crate::spec::codes::AID_PURSE;
pub use crate::spec::layout::purse::Record;
use crate::spec::layout::u32_answer;
pub use crate::spec::message::record_message;

/// Whether a record verifies as S11-S16 check it: a center-issued charge or payment machine
/// certificate (not expired at `now`) whose key signed ID, counter, date and amount.
pub fn record_verifies(t: &Terminal, rec: &Record) -> bool {
    let Ok(cert) = Certificate::parse(&rec.certificate) else { return false };
    if cert.verify_signature(&t.keys.center_public()).is_err()
        || !matches!(cert.body.role, Role::ChargeMachine | Role::PaymentMachine)
        || cert.is_expired(t.now)
        || writer_revoked(t, &cert)
    {
        return false;
    }
    let Ok(writer) = cert.public_key() else { return false };
    sig::verify(&writer, &record_message(&rec.card_id, rec.counter, rec.date, rec.amount), &rec.signature).is_ok()
}

/// Is the writer's certificate on the center's machine CRL? A cardbench addition at S12
/// (card-spec 9.7): seed 000 names no revocation of machines.
pub fn writer_revoked(t: &Terminal, cert: &Certificate) -> bool {
    t.keys.machine_crl.is_revoked(cert.body.serial)
}

pub(crate) fn read_record(link: &mut Link, step: &str) -> Flow<Record> {
    let data = ok_data(link, step, &cmds::purse_read_all())?;
    let r = parsed(step, Record::parse(&data))?;
    link.card_id = hex::encode_upper(r.card_id);
    Ok(r)
}

/// S11-S16: check the writer's certificate with the center key, then the record signature
/// with the writer's key. `prefix` labels the steps when a charge machine re-verifies.
fn verify_record(link: &mut Link, t: &Terminal, prefix: &str) -> Flow<Record> {
    let s = |n: &str| format!("{prefix}{n}");
    let rec = read_record(link, &s("S11-S14"))?;
    if rec.is_blank() {
        return reject(&s("S11"), RejectKind::NoRecord, "card holds no signed value record");
    }
    let Ok(cert) = Certificate::parse(&rec.certificate) else {
        return reject(&s("S12"), RejectKind::CertificateInvalid, "writer certificate does not parse (S13)");
    };
    if cert.verify_signature(&t.keys.center_public()).is_err()
        || !matches!(cert.body.role, Role::ChargeMachine | Role::PaymentMachine)
    {
        return reject(&s("S12"), RejectKind::CertificateInvalid, "writer certificate not signed by the center (S13)");
    }
    if cert.is_expired(t.now) {
        return reject(&s("S12"), RejectKind::CertificateExpired, "writer certificate expired (S13)");
    }
    if writer_revoked(t, &cert) {
        return reject(
            &s("S12"),
            RejectKind::CertificateRevoked,
            format!("writer certificate serial {:08X} is on the center's machine CRL (S13)", cert.body.serial),
        );
    }
    let Ok(writer) = cert.public_key() else {
        return reject(&s("S12"), RejectKind::CertificateInvalid, "writer public key invalid (S13)");
    };
    link.note_step(&s("S12"), "writer certificate verified with the center key");
    let msg = record_message(&rec.card_id, rec.counter, rec.date, rec.amount);
    if sig::verify(&writer, &msg, &rec.signature).is_err() {
        return reject(
            &s("S15"),
            RejectKind::RecordSignatureInvalid,
            "signature over ID, counter, date and amount does not verify: tampered, cloned or rolled back (S16)",
        );
    }
    link.note_step(&s("S15"), "record signature verified with the writer key");
    Ok(rec)
}

/// S1-S4 as one machine writes them: value + date, counter step checked, sign, certificate.
/// The WRITE VALUE is recorded in the journal before it is sent: if S3/S4 never happen,
/// recovery may re-sign exactly this record and no other. `read` is the record as read
/// before the write: the S3 read-back must show the same card with only the value, the date
/// and the counter changed (card-spec 6.4: the signature and certificate areas stay).
fn write_signed_value(
    link: &mut Link,
    t: &mut Terminal,
    who: Writer,
    me: &Party,
    amount: u32,
    read: &Record,
    p: &str,
) -> Flow<u32> {
    let before = read.counter;
    let step = |n: &str| format!("{p}{n}");
    let at = t.journal.record(Intent::PurseWrite {
        head: link.head_name(),
        card_id: link.card_id.clone(),
        writer: who,
        counter_before: Some(before),
        counter_after: None,
        amount,
        date: t.now,
    });
    let data = ok_data(link, &step("S1/S2"), &cmds::purse_write_value(amount, t.now))?;
    let counter = parsed(&step("S2"), u32_answer("WRITE VALUE", &data))?;
    if let Some(Intent::PurseWrite { counter_after, .. }) = t.journal.get_mut(at) {
        *counter_after = Some(counter);
    }
    if before.checked_sub(1) != Some(counter) {
        return reject(
            &step("S2"),
            RejectKind::StateMismatch,
            format!("counter {before} → {counter}, expected one less"),
        );
    }
    link.note_step(&step("S2"), &format!("card decremented its counter to {counter}"));
    let rec = read_record(link, &step("S3"))?;
    if (rec.counter, rec.amount, rec.date) != (counter, amount, t.now) {
        return reject(&step("S3"), RejectKind::StateMismatch, "card does not hold the value just written");
    }
    if rec.card_id != read.card_id {
        return reject(
            &step("S3"),
            RejectKind::StateMismatch,
            format!(
                "card ID {} after the write, {} before",
                hex::encode_upper(rec.card_id),
                hex::encode_upper(read.card_id)
            ),
        );
    }
    if (&rec.signature, &rec.certificate) != (&read.signature, &read.certificate) {
        return reject(
            &step("S3"),
            RejectKind::StateMismatch,
            "WRITE VALUE changed the signature or certificate area (only value, date and counter may change)",
        );
    }
    let signature = sig::sign(&me.key, &record_message(&rec.card_id, counter, t.now, amount));
    ok_empty(link, &step("S3"), &cmds::purse_write_signature(&signature), "WRITE SIGNATURE")?;
    ok_empty(link, &step("S4"), &cmds::purse_write_certificate(me.cert.encode()), "WRITE CERTIFICATE")?;
    Ok(counter)
}

/// What a charge machine does with the value already on the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChargeMode {
    /// Verify the card's record (S11-S15) and add to its value: cardbench's default, a
    /// deviation from the seed (card-spec 6.7).
    #[default]
    Add,
    /// The seed's charge machine (000 [0015], S1-S4): write the money data it is given as
    /// the purse's value and sign it, whatever record the card held. How a lab puts a purse
    /// no payment machine accepts (an interrupted payment nobody can re-sign) back into use.
    Write,
}

impl ChargeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeMode::Add => "add",
            ChargeMode::Write => "write",
        }
    }

    /// The mode's name in plans (`add`, `write`).
    pub fn parse(s: &str) -> Option<ChargeMode> {
        match s {
            "add" => Some(ChargeMode::Add),
            "write" => Some(ChargeMode::Write),
            _ => None,
        }
    }
}

/// Charge machine: adds `amount` to the purse (a blank card starts at zero).
pub fn charge(link: &mut Link, t: &mut Terminal, amount: u32) -> Result<Outcome, EngineError> {
    let keys = t.keys;
    charge_as(link, t, amount, ChargeMode::Add, &keys.charge)
}

/// Charge machine C1 in `mode`: add `amount` to the verified value, or write it as the value.
pub fn charge_with(link: &mut Link, t: &mut Terminal, amount: u32, mode: ChargeMode) -> Result<Outcome, EngineError> {
    let keys = t.keys;
    charge_as(link, t, amount, mode, &keys.charge)
}

/// `charge` by the keyset's charge machine `machine` (C1 when `None`).
pub fn charge_by(
    link: &mut Link,
    t: &mut Terminal,
    amount: u32,
    machine: Option<&str>,
) -> Result<Outcome, EngineError> {
    charge_machine(link, t, amount, ChargeMode::Add, machine)
}

/// `charge` in `mode` by the keyset's charge machine `machine` (C1 when `None`).
pub fn charge_machine(
    link: &mut Link,
    t: &mut Terminal,
    amount: u32,
    mode: ChargeMode,
    machine: Option<&str>,
) -> Result<Outcome, EngineError> {
    let me = super::acting(t, Role::ChargeMachine, machine, "charge")?;
    charge_as(link, t, amount, mode, me)
}

fn charge_as(
    link: &mut Link,
    t: &mut Terminal,
    amount: u32,
    mode: ChargeMode,
    me: &Party,
) -> Result<Outcome, EngineError> {
    match mode {
        ChargeMode::Add => journaled(t, |t| charge_flow(link, t, amount, me)),
        ChargeMode::Write => journaled(t, |t| write_flow(link, t, amount, me)),
    }
}

fn charge_flow(link: &mut Link, t: &mut Terminal, amount: u32, me: &Party) -> Flow<Outcome> {
    no_open_intent(t, link, "S1")?;
    super::select(link, "select", &AID_PURSE)?;
    let current = read_record(link, "S1")?;
    if current.is_unsigned_value() {
        return reject(
            "S1",
            RejectKind::RecordUnsettled,
            format!(
                "record holds value {} (counter {}) but no signature or certificate: an interrupted \
                 write; run recovery, or charge with mode = \"write\" the value settled off-line",
                current.amount, current.counter
            ),
        );
    }
    let old = if current.is_blank() {
        0
    } else {
        let r = verify_record(link, t, "charge.").map_err(|stop| match stop {
            // Adding needs a value the machine can trust; a record that does not verify
            // (tampered, or an interrupted payment nobody re-signed) is put back into use
            // only by writing a value settled off-line (card-spec 6.7).
            Stop::Reject(mut r) if r.kind == RejectKind::RecordSignatureInvalid => {
                r.detail.push_str(
                    "; if an interrupted write left it, run recovery on the terminal that wrote it, or \
                     charge with mode = \"write\" the value settled off-line",
                );
                Stop::Reject(r)
            }
            other => other,
        })?;
        r.amount
    };
    let Some(new) = old.checked_add(amount) else {
        return reject("S1", RejectKind::InsufficientValue, "charge would overflow the value field");
    };
    let counter = write_signed_value(link, t, Writer::Charge, me, new, &current, "")?;
    Ok(Outcome::Success(format!("charged {amount} as {}: value {new}, counter {counter}", me.name)))
}

/// The seed's charge machine: S1-S4 with `value` as the money data. The record is read for
/// the counter only (S2 is checked against it); its value and signature are not used, so a
/// record no payment machine accepts is replaced by one that verifies.
fn write_flow(link: &mut Link, t: &mut Terminal, value: u32, me: &Party) -> Flow<Outcome> {
    no_open_intent(t, link, "S1")?;
    super::select(link, "select", &AID_PURSE)?;
    let current = read_record(link, "S1")?;
    let replaced = if current.is_blank() && current.amount == 0 && current.date == 0 {
        "blank record".to_string()
    } else if record_verifies(t, &current) {
        format!("verified value {}", current.amount)
    } else {
        format!("unverified value {} (counter {})", current.amount, current.counter)
    };
    link.note_step("S1", &format!("charge machine writes value {value} over the {replaced}"));
    let counter = write_signed_value(link, t, Writer::Charge, me, value, &current, "")?;
    Ok(Outcome::Success(format!("wrote value {value} over the {replaced} as {}: counter {counter}", me.name)))
}

/// Payment machine: verifies the record, takes `price`, re-signs as the new writer.
pub fn pay(link: &mut Link, t: &mut Terminal, price: u32) -> Result<Outcome, EngineError> {
    let keys = t.keys;
    pay_as(link, t, price, &keys.payment)
}

/// `pay` by the keyset's payment machine `machine` (P1 when `None`): seed 000 [0025], the next
/// payment machine verifies the record the previous one wrote.
pub fn pay_by(link: &mut Link, t: &mut Terminal, price: u32, machine: Option<&str>) -> Result<Outcome, EngineError> {
    let me = super::acting(t, Role::PaymentMachine, machine, "pay")?;
    pay_as(link, t, price, me)
}

fn pay_as(link: &mut Link, t: &mut Terminal, price: u32, me: &Party) -> Result<Outcome, EngineError> {
    journaled(t, |t| pay_flow(link, t, price, me))
}

fn pay_flow(link: &mut Link, t: &mut Terminal, price: u32, me: &Party) -> Flow<Outcome> {
    no_open_intent(t, link, "S11")?;
    super::select(link, "select", &AID_PURSE)?;
    let rec = verify_record(link, t, "")?;
    if rec.amount < price {
        return reject("S18", RejectKind::InsufficientValue, format!("value {} < price {price}", rec.amount));
    }
    link.note_step("S18", &format!("service provided, {price} subtracted"));
    let new = rec.amount - price;
    let counter = write_signed_value(link, t, Writer::Payment, me, new, &rec, "S18.")?;
    Ok(Outcome::Success(format!("paid {price} as {}: value {new}, counter {counter}", me.name)))
}
