//! Card state as a terminal reads it back after a fault: PURSE record (and whether a
//! terminal would accept it), CPAY value, XFER balances, key IDs and transfer records.
//!
//! Everything is read through ordinary commands, so the same snapshot works on any head;
//! on a virtual head the campaign also checks the transfer key bytes against the keyset.

use crate::cmds;
use crate::crypto::cert::{Certificate, Role};
use crate::crypto::sig;
use crate::engine::key_update::CardInfo;
use crate::engine::purse::{record_message, Record};
use crate::event::Recorder;
use crate::head::Head;
use crate::keys::Keyset;
use crate::link::Link;
use crate::spec::codes as ins;
use crate::spec::layout::xfer::{LastDebit, PendingCredit};
use crate::sw;

/// Whether the PURSE record is one a payment machine accepts (card-spec 6.1, S11-S16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordCheck {
    /// Signature and certificate areas empty: a card never charged.
    Blank,
    Verified,
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurseState {
    pub counter: u32,
    pub amount: u32,
    pub date: u32,
    pub certificate: Vec<u8>,
    pub record: RecordCheck,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XferState {
    pub balance: u32,
    pub ukid: u32,
    pub tkid: u32,
    pub pending: Option<PendingCredit>,
    pub last_debit: Option<LastDebit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardState {
    pub head: String,
    pub card_id: [u8; 8],
    pub purse: PurseState,
    pub cpay_amount: u32,
    pub xfer: XferState,
    /// Virtual cards: whether the transfer (and update) key bytes are the keyset's keys for
    /// the IDs the card reports. `None` on real heads, which never show a key.
    pub keys_match: Option<bool>,
}

impl CardState {
    /// The parts a sequence's effect is judged on: equal views mean the same state for the
    /// holder, even when randoms inside the transfer records differ between runs.
    pub fn view(&self) -> StateView {
        StateView {
            counter: self.purse.counter,
            amount: self.purse.amount,
            date: self.purse.date,
            certificate: self.purse.certificate.clone(),
            record_ok: !matches!(self.purse.record, RecordCheck::Invalid(_)),
            cpay_amount: self.cpay_amount,
            balance: self.xfer.balance,
            ukid: self.xfer.ukid,
            tkid: self.xfer.tkid,
            pending: self.xfer.pending.as_ref().map(|p| p.paid),
            debit: self.xfer.last_debit.as_ref().map(|d| d.paid),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateView {
    pub counter: u32,
    pub amount: u32,
    pub date: u32,
    pub certificate: Vec<u8>,
    pub record_ok: bool,
    pub cpay_amount: u32,
    pub balance: u32,
    pub ukid: u32,
    pub tkid: u32,
    pub pending: Option<u32>,
    pub debit: Option<u32>,
}

impl StateView {
    /// The fields that differ from `from`, as `name a → b`.
    pub fn diff(&self, from: &StateView) -> String {
        let mut d = Vec::new();
        let mut f = |name: &str, a: String, b: String| {
            if a != b {
                d.push(format!("{name} {a} → {b}"));
            }
        };
        f("counter", from.counter.to_string(), self.counter.to_string());
        f("value", from.amount.to_string(), self.amount.to_string());
        f("date", from.date.to_string(), self.date.to_string());
        f("writer certificate", hex_len(&from.certificate), hex_len(&self.certificate));
        f("record verifies", from.record_ok.to_string(), self.record_ok.to_string());
        f("CPAY value", from.cpay_amount.to_string(), self.cpay_amount.to_string());
        f("balance", from.balance.to_string(), self.balance.to_string());
        f("update key ID", from.ukid.to_string(), self.ukid.to_string());
        f("transfer key ID", from.tkid.to_string(), self.tkid.to_string());
        f("pending credit", format!("{:?}", from.pending), format!("{:?}", self.pending));
        f("last debit", format!("{:?}", from.debit), format!("{:?}", self.debit));
        d.join(", ")
    }
}

fn hex_len(b: &[u8]) -> String {
    if b.is_empty() {
        "none".into()
    } else {
        format!("{} bytes {}…", b.len(), hex::encode_upper(&b[..b.len().min(4)]))
    }
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Power the card (cold reset if it is off) and read its whole state.
pub fn snapshot(head: &mut dyn Head, keys: &Keyset, now: u32) -> Result<CardState, String> {
    let name = head.info().name.clone();
    if head.atr().is_none() {
        head.power_on().map_err(|e| format!("head {name}: power-on: {e}"))?;
    }
    let rec = Recorder::disabled();
    let mut l = Link::new(head, &rec);
    let mut ok = |step: &str, cmd: &crate::apdu::Command| -> Result<Vec<u8>, String> {
        let r = l.exec(step, cmd).map_err(|e| format!("head {name}: {step}: {e}"))?;
        if r.sw == sw::OK {
            Ok(r.data)
        } else {
            Err(format!("head {name}: {step}: card answered {:04X}", r.sw))
        }
    };
    ok("select purse", &cmds::select(&ins::AID_PURSE))?;
    let d = ok("READ ALL", &cmds::purse_read_all())?;
    let rec = Record::parse(&d).map_err(|e| format!("head {name}: {e}"))?;
    let record = check_record(&rec, keys, now);
    ok("select cpay", &cmds::select(&ins::AID_CPAY))?;
    let v = ok("READ FIELD value", &cmds::read_field(ins::FIELD_VALUE, 8))?;
    if v.len() != 8 {
        return Err(format!("head {name}: CPAY value field is {} bytes", v.len()));
    }
    ok("select xfer", &cmds::select(&ins::AID_XFER))?;
    let i = ok("GET CARD INFO", &cmds::xfer_info())?;
    let info = CardInfo::parse(&i).map_err(|e| format!("head {name}: {e}"))?;
    let mut optional = |which: u8| -> Result<Option<Vec<u8>>, String> {
        let r =
            l.exec("READ TRANSFER STATE", &cmds::xfer_read_state(which)).map_err(|e| format!("head {name}: {e}"))?;
        match r.sw {
            sw::OK => Ok(Some(r.data)),
            sw::REF_DATA_NOT_FOUND => Ok(None),
            other => Err(format!("head {name}: READ TRANSFER STATE {which:02X}: {other:04X}, {} bytes", r.data.len())),
        }
    };
    let pending =
        optional(1)?.map(|p| PendingCredit::parse(&p)).transpose().map_err(|e| format!("head {name}: {e}"))?;
    let last_debit = optional(2)?.map(|p| LastDebit::parse(&p)).transpose().map_err(|e| format!("head {name}: {e}"))?;
    let keys_match = l.head.as_virtual().and_then(|v| v.card()).map(|c| {
        let x = &c.image().xfer;
        let same = |have: &Option<crate::secret::Key16>, want: Option<&crate::secret::Key16>| match (have, want) {
            (Some(h), Some(w)) => h.expose() == w.expose(),
            _ => false,
        };
        same(&x.tk, keys.transfer_key(x.tkid)) && same(&x.uk, keys.update_key(x.ukid))
    });
    Ok(CardState {
        head: name.clone(),
        card_id: rec.card_id,
        purse: PurseState {
            counter: rec.counter,
            amount: rec.amount,
            date: rec.date,
            certificate: rec.certificate.clone(),
            record,
        },
        cpay_amount: be32(&v, 0),
        xfer: XferState { balance: info.balance, ukid: info.ukid, tkid: info.tkid, pending, last_debit },
        keys_match,
    })
}

/// The payment machine's checks (S11-S16): writer certificate from the center, record
/// signature by the writer over ID, counter, date and amount.
pub fn check_record(rec: &Record, keys: &Keyset, now: u32) -> RecordCheck {
    if rec.is_blank() {
        return RecordCheck::Blank;
    }
    let Ok(cert) = Certificate::parse(&rec.certificate) else {
        return RecordCheck::Invalid("writer certificate does not parse".into());
    };
    if cert.verify_signature(&keys.center_public()).is_err()
        || !matches!(cert.body.role, Role::ChargeMachine | Role::PaymentMachine)
    {
        return RecordCheck::Invalid("writer certificate not issued by the center".into());
    }
    if cert.is_expired(now) {
        return RecordCheck::Invalid("writer certificate expired".into());
    }
    let Ok(writer) = cert.public_key() else {
        return RecordCheck::Invalid("writer public key invalid".into());
    };
    let msg = record_message(&rec.card_id, rec.counter, rec.date, rec.amount);
    match sig::verify(&writer, &msg, &rec.signature) {
        Ok(()) => RecordCheck::Verified,
        Err(_) => RecordCheck::Invalid("record signature does not verify".into()),
    }
}
