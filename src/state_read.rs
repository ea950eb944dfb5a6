//! What a plan's `read` step defines: every field of an applet's state, read with ordinary
//! commands and parsed with the spec's layouts (docs/plan-language.md 6.4). A response off
//! its layout, or two responses that disagree (a flag without its record), fail the step.

use crate::apdu::{Command, Response};
use crate::cmds;
use crate::plan::template::Value;
use crate::plan::StateKind;
use crate::spec::codes::{AID_CPAY, AID_PURSE, AID_XFER, FIELD_CERTIFICATE, FIELD_ID, FIELD_VALUE};
use crate::spec::layout::purse::{Record, Value as AmountDate};
use crate::spec::layout::xfer::{CardInfo, LastDebit, PendingCredit, MAX_SLOTS};
use crate::spec::layout::{self, LayoutError};
use crate::sw;

/// Fields a `read` step defines, per state, in the order the step defines them.
pub fn fields(s: StateKind) -> &'static [&'static str] {
    match s {
        StateKind::Purse => &["card_id", "counter", "amount", "date", "signature", "certificate"],
        StateKind::Cpay => &["card_id", "amount", "date", "certificate"],
        StateKind::Xfer => &[
            "card_id",
            "validity",
            "balance",
            "ukid",
            "tkid",
            "ukid_limit",
            "tkid_limit",
            "flags",
            "update_key",
            "card_key",
            "pending",
            "debit",
            "slots",
            "slot_ids",
            "slot1",
            "slot2",
            "slot3",
            "slot4",
            "slot5",
            "slot6",
            "slot7",
            "slot8",
            "certificate",
            "pending_paid",
            "pending_date",
            "pending_rnd_send",
            "pending_rnd_recv",
            "debit_paid",
            "debit_date",
            "debit_rnd_send",
            "debit_rnd_recv",
            "debit_challenge",
        ],
    }
}

/// Whether a field holds bytes or text (compared as strings) rather than an integer.
pub fn is_string_field(field: &str) -> bool {
    matches!(
        field,
        "card_id"
            | "signature"
            | "certificate"
            | "slot_ids"
            | "pending_rnd_send"
            | "pending_rnd_recv"
            | "debit_rnd_send"
            | "debit_rnd_recv"
            | "debit_challenge"
    )
}

/// Why a read failed: what the spec wants and what the card answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: String,
    pub actual: String,
}

/// How a read reaches the card: a head failure comes back as the caller's own error.
pub enum ReadError<E> {
    Exchange(E),
    Card(Mismatch),
}

impl<E> From<E> for ReadError<E> {
    fn from(e: E) -> Self {
        ReadError::Exchange(e)
    }
}

type Fields = Vec<(&'static str, Value)>;

/// Select the applet of `state` and read all of its fields.
pub fn read<E>(
    state: StateKind,
    send: &mut dyn FnMut(&Command) -> Result<Response, E>,
) -> Result<Fields, ReadError<E>> {
    let mut r = Reader { send };
    match state {
        StateKind::Purse => r.purse(),
        StateKind::Cpay => r.cpay(),
        StateKind::Xfer => r.xfer(),
    }
}

fn hex(b: &[u8]) -> Value {
    Value::Hex(hex::encode_upper(b))
}

fn int(v: u32) -> Value {
    Value::Int(v.into())
}

fn layout_fail(e: LayoutError, data: &[u8]) -> Mismatch {
    Mismatch { expected: format!("{} layout", e.layout), actual: format!("{e} (data {})", hex::encode_upper(data)) }
}

/// The comma-separated decimal IDs of the `slot_ids` field (`""` when there are none).
pub fn slot_ids(slots: &[u32]) -> String {
    slots.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

struct Reader<'s, E> {
    send: &'s mut dyn FnMut(&Command) -> Result<Response, E>,
}

impl<E> Reader<'_, E> {
    /// `9000` with data, or the step fails naming the command.
    fn ok(&mut self, what: &str, cmd: &Command) -> Result<Vec<u8>, ReadError<E>> {
        let r = (self.send)(cmd)?;
        if r.sw != sw::OK {
            return Err(ReadError::Card(Mismatch {
                expected: format!("{what}: SW 9000"),
                actual: format!("SW {:04X} ({})", r.sw, sw::describe(r.sw)),
            }));
        }
        Ok(r.data)
    }

    /// `9000` with data, or `None` on `6A88` (nothing recorded / area empty).
    fn maybe(&mut self, what: &str, cmd: &Command) -> Result<Option<Vec<u8>>, ReadError<E>> {
        let r = (self.send)(cmd)?;
        match r.sw {
            sw::OK => Ok(Some(r.data)),
            sw::REF_DATA_NOT_FOUND => Ok(None),
            other => Err(ReadError::Card(Mismatch {
                expected: format!("{what}: SW 9000 or 6A88"),
                actual: format!("SW {other:04X} ({})", sw::describe(other)),
            })),
        }
    }

    fn select(&mut self, name: &str, aid: &[u8]) -> Result<(), ReadError<E>> {
        let d = self.ok(&format!("SELECT {name}"), &cmds::select(aid))?;
        if !d.is_empty() {
            return Err(card(format!("SELECT {name}: no response data"), format!("{} bytes", d.len())));
        }
        Ok(())
    }

    fn purse(&mut self) -> Result<Fields, ReadError<E>> {
        self.select("PURSE", &AID_PURSE)?;
        let d = self.ok("READ ALL", &cmds::purse_read_all())?;
        let r = Record::parse(&d).map_err(|e| ReadError::Card(layout_fail(e, &d)))?;
        Ok(vec![
            ("card_id", hex(&r.card_id)),
            ("counter", int(r.counter)),
            ("amount", int(r.amount)),
            ("date", int(r.date)),
            ("signature", hex(&r.signature)),
            ("certificate", hex(&r.certificate)),
        ])
    }

    fn cpay(&mut self) -> Result<Fields, ReadError<E>> {
        self.select("CPAY", &AID_CPAY)?;
        let d = self.ok("READ FIELD 01", &cmds::read_field(FIELD_ID, 8))?;
        let id = layout::card_id("READ FIELD 01", &d).map_err(|e| ReadError::Card(layout_fail(e, &d)))?;
        let d = self.ok("READ FIELD 03", &cmds::read_field(FIELD_VALUE, 8))?;
        let v = AmountDate::parse("READ FIELD 03", &d).map_err(|e| ReadError::Card(layout_fail(e, &d)))?;
        let cert = self.certificate("READ FIELD 05", &cmds::read_field(FIELD_CERTIFICATE, 256))?;
        Ok(vec![("card_id", hex(&id)), ("amount", int(v.amount)), ("date", int(v.date)), ("certificate", hex(&cert))])
    }

    /// A certificate area: its bytes, or empty on `6A88`.
    fn certificate(&mut self, what: &'static str, cmd: &Command) -> Result<Vec<u8>, ReadError<E>> {
        match self.maybe(what, cmd)? {
            None => Ok(Vec::new()),
            Some(d) => layout::certificate(what, &d).map_err(|e| ReadError::Card(layout_fail(e, &d))),
        }
    }

    fn xfer(&mut self) -> Result<Fields, ReadError<E>> {
        self.select("XFER", &AID_XFER)?;
        let d = self.ok("GET CARD INFO", &cmds::xfer_info())?;
        let i = CardInfo::parse(&d).map_err(|e| ReadError::Card(layout_fail(e, &d)))?;
        let cert = self.certificate("GET CARD INFO 01", &cmds::xfer_certificate())?;
        let pending = self.record("READ TRANSFER STATE 01", 1, i.has_pending_credit(), PendingCredit::parse)?;
        let debit = self.record("READ TRANSFER STATE 02", 2, i.has_last_debit(), LastDebit::parse)?;
        let mut f = vec![
            ("card_id", hex(&i.card_id)),
            ("validity", int(i.validity)),
            ("balance", int(i.balance)),
            ("ukid", int(i.ukid)),
            ("tkid", int(i.tkid)),
            ("ukid_limit", int(i.ukid_limit)),
            ("tkid_limit", int(i.tkid_limit)),
            ("flags", int(i.flags.into())),
            ("update_key", int(i.has_update_key().into())),
            ("card_key", int(i.has_card_key().into())),
            ("pending", int(i.has_pending_credit().into())),
            ("debit", int(i.has_last_debit().into())),
            ("slots", int(i.slots.len() as u32)),
            ("slot_ids", Value::Hex(slot_ids(&i.slots))),
        ];
        const SLOT: [&str; MAX_SLOTS] = ["slot1", "slot2", "slot3", "slot4", "slot5", "slot6", "slot7", "slot8"];
        f.extend(SLOT.iter().enumerate().map(|(n, name)| (*name, int(i.slots.get(n).copied().unwrap_or(0)))));
        f.push(("certificate", hex(&cert)));
        let p = pending.unwrap_or(PendingCredit { paid: 0, date: 0, rnd_send: [0; 16], rnd_recv: [0; 16] });
        let (zero, none) = (pending.is_none(), Value::Hex(String::new()));
        let rnd = |b: &[u8; 16], absent: bool| if absent { none.clone() } else { hex(b) };
        f.extend([
            ("pending_paid", int(p.paid)),
            ("pending_date", int(p.date)),
            ("pending_rnd_send", rnd(&p.rnd_send, zero)),
            ("pending_rnd_recv", rnd(&p.rnd_recv, zero)),
        ]);
        let zero = debit.is_none();
        let l =
            debit.unwrap_or(LastDebit { paid: 0, date: 0, rnd_send: [0; 16], rnd_recv: [0; 16], challenge: [0; 16] });
        f.extend([
            ("debit_paid", int(l.paid)),
            ("debit_date", int(l.date)),
            ("debit_rnd_send", rnd(&l.rnd_send, zero)),
            ("debit_rnd_recv", rnd(&l.rnd_recv, zero)),
            ("debit_challenge", rnd(&l.challenge, zero)),
        ]);
        Ok(f)
    }

    /// A READ TRANSFER STATE record, which must be present exactly when GET CARD INFO flags it.
    fn record<T>(
        &mut self,
        what: &'static str,
        p1: u8,
        flagged: bool,
        parse: fn(&[u8]) -> Result<T, LayoutError>,
    ) -> Result<Option<T>, ReadError<E>> {
        let got = self.maybe(what, &cmds::xfer_read_state(p1))?;
        let flag = if p1 == 1 { "04 (credit pending)" } else { "08 (last debit)" };
        match (got, flagged) {
            (Some(d), true) => parse(&d).map(Some).map_err(|e| ReadError::Card(layout_fail(e, &d))),
            (None, false) => Ok(None),
            (Some(_), false) => Err(card(
                format!("{what}: 6A88, as GET CARD INFO flag {flag} is clear"),
                "SW 9000 with a record".to_string(),
            )),
            (None, true) => Err(card(
                format!("{what}: a record, as GET CARD INFO flag {flag} is set"),
                "SW 6A88 (nothing recorded)".to_string(),
            )),
        }
    }
}

fn card<E>(expected: String, actual: String) -> ReadError<E> {
    ReadError::Card(Mismatch { expected, actual })
}
