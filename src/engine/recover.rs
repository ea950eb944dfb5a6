//! Terminal recovery: read the cards' state after an interrupted operation and settle it,
//! never by re-sending the command that got no answer (card-spec 9.3, 9.4, 6.7, 7.6).
//!
//! What the terminal knows of the interrupted run is its journal (`Terminal::journal`):
//! the intents its engines recorded before each state-changing command, kept in memory by
//! the runner for a `recover` step of the same run, or rebuilt from the trace of an earlier
//! run with `Journal::from_trace(&trace::read(path)?)` (`cardbench recover --trace`). The
//! cards' own records do the rest:
//!
//! * **Value transfer.** A pending credit (READ TRANSFER STATE 01) whose reception random is
//!   the sending card's last debit (READ TRANSFER STATE 02) is completed with the recorded
//!   reception challenge; failing that, with the reception challenge of the VALUE SEND answer
//!   in the journal. Otherwise the sending card is asked for a cancel proof (CANCEL PROOF,
//!   which it gives only for a send session of its own that never debited) and the credit is
//!   cancelled with it. Anything else is reported, never guessed.
//! * **Purse (seed 000).** A record that does not verify is re-signed (WRITE SIGNATURE, WRITE
//!   CERTIFICATE) only when it is exactly the record the journal says this terminal wrote:
//!   same card, amount and date, and the counter that write answered (or, unanswered, the
//!   counter read before it minus one). Otherwise it is reported when a write of this
//!   terminal to the card is in doubt, or when it is a value with no signature at all (a
//!   first write cut short); a signed record that merely fails to verify, with nothing of
//!   ours in doubt, is tampering for payment to refuse (S15), not a recovery matter. Either
//!   way a record nobody may re-sign is put back into use by the seed's charge machine,
//!   `purse::charge_with(.., ChargeMode::Write)`, with a value the lab settled off-line.
//! * **Card-signed payment.** A DEBIT that got no answer took effect if the card's value is
//!   the signed value minus the price (with the DEBIT's date), and did not if the value is
//!   still the signed one; recovery reports which and never debits.
//!
//! On return the journal's intents for the recovered heads are dropped: their outcome is now
//! known (or reported as unrecoverable).

use super::journal::{Intent, Writer};
use super::key_update::CardInfo;
use super::purse::{record_message, record_verifies, Record};
use super::{be32, exec, EngineError, Flow, Stop, Terminal};
use crate::apdu::{Command, Response};
use crate::cmds;
use crate::crypto::sig;
use crate::link::Link;
use crate::spec::codes::*;
use crate::sw;
use std::fmt;

/// Where a completed credit's reception challenge came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeSource {
    /// The sending card's last-debit record (READ TRANSFER STATE 02).
    SenderRecord,
    /// The answer to VALUE SEND in the journal (trace or memory of the interrupted run).
    Journal,
}

/// One thing recovery found on a card, and what it did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The card's state is settled and no interrupted operation concerns it.
    NothingToDo { head: String, what: String },
    /// The interrupted operation had taken effect on the card (its answer was lost): it must
    /// not be run again.
    AlreadyDone { head: String, what: String },
    /// The interrupted operation had not taken effect: the card is as before it.
    NotApplied { head: String, what: String },
    /// A pending credit was completed with VALUE RECEIVE.
    CreditCompleted { head: String, card_id: String, paid: u32, balance: u32, source: ChallengeSource },
    /// A pending credit was cancelled with the sending card's proof that it never debited.
    CreditCancelled { head: String, card_id: String, paid: u32, sender: String },
    /// The signature and certificate of a record this terminal wrote were written again.
    RecordResigned { head: String, card_id: String, counter: u32, amount: u32 },
    /// A state recovery cannot settle: `step` is the seed / spec step it concerns.
    Unrecoverable { head: String, step: String, detail: String },
}

/// The words of `Finding::word`, in rank order: what a plan's `recover` step may expect
/// besides `SETTLED`.
pub const WORDS: &[&str] = &[NOTHING_TO_DO, NOT_APPLIED, ALREADY_DONE, RE_SIGNED, CANCELLED, COMPLETED, UNRECOVERABLE];
const NOTHING_TO_DO: &str = "nothing-to-do";
const ALREADY_DONE: &str = "already-done";
const NOT_APPLIED: &str = "not-applied";
const COMPLETED: &str = "completed";
const CANCELLED: &str = "cancelled";
const RE_SIGNED: &str = "re-signed";
const UNRECOVERABLE: &str = "unrecoverable";
/// A `recover` step's default expectation: nothing was reported unrecoverable.
pub const SETTLED: &str = "settled";

impl Finding {
    /// The word plans compare against (`expect = "..."` of a `recover` step).
    pub fn word(&self) -> &'static str {
        match self {
            Finding::NothingToDo { .. } => NOTHING_TO_DO,
            Finding::AlreadyDone { .. } => ALREADY_DONE,
            Finding::NotApplied { .. } => NOT_APPLIED,
            Finding::CreditCompleted { .. } => COMPLETED,
            Finding::CreditCancelled { .. } => CANCELLED,
            Finding::RecordResigned { .. } => RE_SIGNED,
            Finding::Unrecoverable { .. } => UNRECOVERABLE,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Finding::Unrecoverable { .. } => 6,
            Finding::CreditCompleted { .. } => 5,
            Finding::CreditCancelled { .. } => 4,
            Finding::RecordResigned { .. } => 3,
            Finding::AlreadyDone { .. } => 2,
            Finding::NotApplied { .. } => 1,
            Finding::NothingToDo { .. } => 0,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::NothingToDo { head, what } => write!(f, "[{head}] nothing to do: {what}"),
            Finding::AlreadyDone { head, what } => write!(f, "[{head}] had taken effect: {what}"),
            Finding::NotApplied { head, what } => write!(f, "[{head}] had not taken effect: {what}"),
            Finding::CreditCompleted { head, card_id, paid, balance, source } => {
                let from = match source {
                    ChallengeSource::SenderRecord => "the sending card's last debit",
                    ChallengeSource::Journal => "the interrupted run's VALUE SEND answer",
                };
                write!(f, "[{head}] completed the pending credit of {paid} on card {card_id} (balance {balance}) with the reception challenge from {from}")
            }
            Finding::CreditCancelled { head, card_id, paid, sender } => write!(
                f,
                "[{head}] cancelled the pending credit of {paid} on card {card_id} with card {sender}'s proof that it never debited"
            ),
            Finding::RecordResigned { head, card_id, counter, amount } => write!(
                f,
                "[{head}] re-signed the purse record this terminal wrote on card {card_id} (counter {counter}, amount {amount})"
            ),
            Finding::Unrecoverable { head, step, detail } => write!(f, "[{head}] unrecoverable at {step}: {detail}"),
        }
    }
}

/// Everything recovery found, card by card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub findings: Vec<Finding>,
}

impl Recovery {
    /// The most significant finding's word: `unrecoverable` over `completed`, `cancelled`,
    /// `re-signed`, `already-done`, `not-applied`, `nothing-to-do`.
    pub fn verdict(&self) -> &'static str {
        self.findings.iter().max_by_key(|f| f.rank()).map_or("nothing-to-do", Finding::word)
    }

    /// Whether every card is settled (nothing was reported unrecoverable).
    pub fn settled(&self) -> bool {
        !self.findings.iter().any(|f| matches!(f, Finding::Unrecoverable { .. }))
    }

    /// Whether some finding has this word (a plan may expect any of them).
    pub fn has(&self, word: &str) -> bool {
        self.findings.iter().any(|f| f.word() == word)
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.findings.iter().map(ToString::to_string).collect();
        write!(f, "{}: {}", self.verdict(), parts.join("; "))
    }
}

/// Read the cards in `links` (one or two heads; for a transfer, both cards) and settle what
/// an interrupted run left, using what `t.journal` knows of that run. `Err` only when a head
/// fails during recovery itself (then run it again: recovery sends only reads and commands
/// that are safe to repeat).
pub fn recover(links: &mut [&mut Link], t: &mut Terminal) -> Result<Recovery, EngineError> {
    let mut out = Recovery::default();
    let r = run(links, t, &mut out);
    match r {
        Ok(()) => {
            let heads: Vec<String> = links.iter().map(|l| l.head_name()).collect();
            t.journal.settle(&heads);
            Ok(out)
        }
        Err(Stop::Head { head, source }) => Err(EngineError::Head { head, source }),
        Err(Stop::Bench(e)) => Err(e),
        // Rejections are reported as findings inside; none escapes.
        Err(Stop::Reject(r)) => {
            out.findings.push(Finding::Unrecoverable { head: String::new(), step: r.step, detail: r.detail });
            Ok(out)
        }
    }
}

fn run(links: &mut [&mut Link], t: &mut Terminal, out: &mut Recovery) -> Flow<()> {
    let before = out.findings.len();
    transfers(links, t, out)?;
    for l in links.iter_mut() {
        purse(l, t, out)?;
        cpay(l, t, out)?;
    }
    if out.findings.len() == before {
        for l in links.iter() {
            out.findings.push(Finding::NothingToDo {
                head: l.head_name(),
                what: "no pending credit, purse record verifies or is blank, no DEBIT in doubt".into(),
            });
        }
    }
    Ok(())
}

/// A command whose status word recovery looks at itself.
fn send(link: &mut Link, step: &str, cmd: &Command) -> Flow<Response> {
    exec(link, step, cmd)
}

fn head_card(link: &Link) -> (String, String) {
    (link.head_name(), link.card_id.clone())
}

/// An intent's card is this card: the same ID, or no ID recorded (then the head decides).
fn same_card(intent_card: &str, card: &str) -> bool {
    intent_card.is_empty() || intent_card.eq_ignore_ascii_case(card)
}

// ---------------------------------------------------------------- value transfer (9.4)

/// XFER state of one card: its ID and its pending credit (READ TRANSFER STATE 01), if any.
struct XferState {
    card_id: String,
    pending: Option<Vec<u8>>,
}

fn read_xfer(link: &mut Link) -> Flow<Option<XferState>> {
    if send(link, "recover.select", &cmds::select(&AID_XFER))?.sw != sw::OK {
        return Ok(None);
    }
    let r = send(link, "recover.info", &cmds::xfer_info())?;
    let Some(info) = (r.sw == sw::OK).then(|| CardInfo::parse(&r.data).ok()).flatten() else {
        return Ok(None);
    };
    link.card_id = hex::encode_upper(info.card_id);
    let pending = if info.has_pending_credit() {
        let r = send(link, "recover.pending", &cmds::xfer_read_state(0x01))?;
        (r.sw == sw::OK && r.data.len() == 40).then_some(r.data)
    } else {
        None
    };
    Ok(Some(XferState { card_id: hex::encode_upper(info.card_id), pending }))
}

fn transfers(links: &mut [&mut Link], t: &mut Terminal, out: &mut Recovery) -> Flow<()> {
    let mut states = Vec::new();
    for l in links.iter_mut() {
        states.push(read_xfer(l)?);
    }
    let mut settled_any = false;
    for recv in 0..links.len() {
        let Some(pending) = states[recv].as_ref().and_then(|s| s.pending.clone()) else { continue };
        settled_any = true;
        let sender = (0..links.len()).find(|&j| j != recv && states[j].is_some());
        settle_credit(links, recv, sender, &pending, t, out)?;
    }
    // Journal transfers with no pending credit left: did the interrupted one happen? A card
    // is found by its ID (it may sit in another reader now), else by the head it was in.
    let heads: Vec<String> = links.iter().map(|l| l.head_name()).collect();
    let find = |card: &str, head: &str| {
        states
            .iter()
            .position(|s| !card.is_empty() && s.as_ref().is_some_and(|s| s.card_id.eq_ignore_ascii_case(card)))
            .or_else(|| heads.iter().position(|h| h == head))
    };
    let intents: Vec<Intent> = t.journal.intents().to_vec();
    for i in intents {
        let Intent::Transfer { from_head, to_head, from_card, to_card, paid, rnd_send, challenge, .. } = &i else {
            continue;
        };
        let (Some(a), Some(b)) = (find(from_card, from_head), find(to_card, to_head)) else { continue };
        if a == b || settled_any || states[b].as_ref().is_some_and(|s| s.pending.is_some()) {
            continue; // settled above
        }
        let last = last_debit(links[a])?;
        let head = links[b].head_name();
        // The sender debited for it (its last debit, or VALUE SEND answered) and the receiver
        // holds no credit for it any more: the transfer went through.
        if challenge.is_some() || last.as_ref().is_some_and(|d| d[8..24] == rnd_send[..]) {
            out.findings.push(Finding::AlreadyDone {
                head,
                what: format!("the interrupted transfer of {paid} had completed (sender debited, receiver credited)"),
            });
        } else {
            out.findings.push(Finding::NotApplied {
                head,
                what: format!("the interrupted transfer of {paid} never debited the sender and left no credit"),
            });
        }
    }
    Ok(())
}

fn last_debit(link: &mut Link) -> Flow<Option<Vec<u8>>> {
    if send(link, "recover.select", &cmds::select(&AID_XFER))?.sw != sw::OK {
        return Ok(None);
    }
    let r = send(link, "recover.last-debit", &cmds::xfer_read_state(0x02))?;
    Ok((r.sw == sw::OK && r.data.len() == 56).then_some(r.data))
}

fn settle_credit(
    links: &mut [&mut Link],
    recv: usize,
    sender: Option<usize>,
    pending: &[u8],
    t: &mut Terminal,
    out: &mut Recovery,
) -> Flow<()> {
    let (head, card_id) = head_card(links[recv]);
    let paid = be32(pending, 0);
    let rnd_recv = &pending[24..40];
    // 1. The sending card's last debit is this credit's: complete with its challenge.
    if let Some(j) = sender {
        if let Some(d) = last_debit(links[j])? {
            if d[24..40] == *rnd_recv && d[..24] == pending[..24] {
                return complete(links[recv], &d[40..56], paid, ChallengeSource::SenderRecord, out);
            }
        }
    }
    // 2. The interrupted run saw VALUE SEND answer for this credit.
    let from_journal = t.journal.intents().iter().find_map(|i| match i {
        Intent::Transfer { rnd_recv: Some(r), challenge: Some(c), paid: p, date, rnd_send, .. }
            if r[..] == *rnd_recv
                && *p == paid
                && date.to_be_bytes() == pending[4..8]
                && rnd_send[..] == pending[8..24] =>
        {
            Some(*c)
        }
        _ => None,
    });
    if let Some(c) = from_journal {
        return complete(links[recv], &c, paid, ChallengeSource::Journal, out);
    }
    // 3. Cancel, with the sender's proof that this session never debited.
    let Some(j) = sender else {
        out.findings.push(Finding::Unrecoverable {
            head,
            step: "S2104B".into(),
            detail: format!(
                "card {card_id} holds a pending credit of {paid}; give the sending card's head too so that \
                 recovery can complete it or prove that it never debited"
            ),
        });
        return Ok(());
    };
    let (sender_head, sender_card) = head_card(links[j]);
    let p = send(links[j], "recover.cancel-proof", &cmds::xfer_cancel_proof(pending))?;
    if p.sw != sw::OK || p.data.len() != 16 {
        let why = match p.sw {
            0x6986 => "it debited for this credit, but its last-debit record has moved on and the interrupted \
                       run's trace does not hold the reception challenge: complete it from the original trace \
                       (response of the VALUE SEND row) or settle off-line"
                .to_string(),
            0x6A88 => "it has no record of this send session: it is not the sending card, or its send log has \
                       moved on; settle off-line"
                .to_string(),
            sw_ => format!("it answered {sw_:04X} ({})", sw::describe(sw_)),
        };
        out.findings.push(Finding::Unrecoverable {
            head,
            step: "S2103A".into(),
            detail: format!(
                "card {card_id} holds a pending credit of {paid}; card {sender_card} (head {sender_head}) refused \
                 the cancel proof: {why}"
            ),
        });
        return Ok(());
    }
    let c = send(links[recv], "recover.cancel", &cmds::xfer_cancel_pending(&p.data))?;
    if c.sw != sw::OK {
        out.findings.push(Finding::Unrecoverable {
            head,
            step: "S2103A".into(),
            detail: format!(
                "card {card_id} refused CANCEL PENDING CREDIT with card {sender_card}'s proof: {:04X} ({})",
                c.sw,
                sw::describe(c.sw)
            ),
        });
        return Ok(());
    }
    out.findings.push(Finding::CreditCancelled { head, card_id, paid, sender: sender_card });
    Ok(())
}

fn complete(link: &mut Link, challenge: &[u8], paid: u32, source: ChallengeSource, out: &mut Recovery) -> Flow<()> {
    let (head, card_id) = head_card(link);
    send(link, "recover.select", &cmds::select(&AID_XFER))?;
    let r = send(link, "recover.S2104B-S2105B", &cmds::xfer_receive(challenge))?;
    if r.sw == sw::OK && r.data.len() == 4 {
        let balance = be32(&r.data, 0);
        out.findings.push(Finding::CreditCompleted { head, card_id, paid, balance, source });
    } else {
        out.findings.push(Finding::Unrecoverable {
            head,
            step: "S2104B".into(),
            detail: format!(
                "card {card_id} refused VALUE RECEIVE with the recorded reception challenge: {:04X} ({}); the \
                 sender is debited, the credit stays pending",
                r.sw,
                sw::describe(r.sw)
            ),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- purse (seed 000 S1-S4)

fn purse(link: &mut Link, t: &mut Terminal, out: &mut Recovery) -> Flow<()> {
    if send(link, "recover.select", &cmds::select(&AID_PURSE))?.sw != sw::OK {
        return Ok(());
    }
    let r = send(link, "recover.S11-S14", &cmds::purse_read_all())?;
    let Some(rec) = (r.sw == sw::OK).then(|| Record::parse(&r.data).ok()).flatten() else {
        return Ok(());
    };
    let head = link.head_name();
    let card_id = hex::encode_upper(rec.card_id);
    link.card_id = card_id.clone();
    let intent = t.journal.intents().iter().rev().find_map(|i| match i {
        Intent::PurseWrite { head: h, card_id: c, writer, counter_before, counter_after, amount, date }
            if same_card(c, &card_id) && (!c.is_empty() || *h == head) =>
        {
            Some((*writer, *counter_before, *counter_after, *amount, *date))
        }
        _ => None,
    });
    let blank = rec.is_blank() && rec.amount == 0 && rec.date == 0;
    let valid = blank || record_verifies(t, &rec);
    // The record the terminal wrote, if it took effect: same amount and date, and the counter
    // the write answered (or, unanswered, one below the counter read before it).
    let mine = intent.filter(|(_, before, after, amount, date)| {
        let counter = after.or_else(|| before.and_then(|b| b.checked_sub(1)));
        (rec.amount, rec.date) == (*amount, *date) && counter == Some(rec.counter)
    });
    match (valid, intent, mine) {
        (true, None, _) => {}
        (true, Some(_), Some((_, _, _, amount, _))) => out.findings.push(Finding::AlreadyDone {
            head,
            what: format!("the interrupted write of amount {amount} is on card {card_id}, signed"),
        }),
        (true, Some((_, _, _, amount, _)), None) => out.findings.push(Finding::NotApplied {
            head,
            what: format!("the interrupted write of amount {amount} is not on card {card_id}; its record verifies"),
        }),
        (false, _, Some((writer, ..))) => return resign(link, t, &rec, writer, out),
        // A signed record that does not verify, with no write of ours in doubt, is not an
        // interrupted write: payment refuses it (S15), recovery has nothing to settle.
        (false, None, None) if !rec.is_unsigned_value() => {}
        (false, _, None) => out.findings.push(Finding::Unrecoverable {
            head,
            step: "S15".into(),
            detail: format!(
                "card {card_id}: record counter {} amount {} date {} does not verify, and this terminal has no \
                 record of writing it: not re-signed; a charge with mode = \"write\" of the value settled \
                 off-line puts the purse back into use (card-spec 6.7)",
                rec.counter, rec.amount, rec.date
            ),
        }),
    }
    Ok(())
}

fn resign(link: &mut Link, t: &mut Terminal, rec: &Record, writer: Writer, out: &mut Recovery) -> Flow<()> {
    let head = link.head_name();
    let card_id = hex::encode_upper(rec.card_id);
    let me = match writer {
        Writer::Charge => &t.keys.charge,
        Writer::Payment => &t.keys.payment,
    };
    let (s3, s4) = match writer {
        Writer::Charge => ("recover.S3", "recover.S4"),
        Writer::Payment => ("recover.S18.S3", "recover.S18.S4"),
    };
    let signature = sig::sign(&me.key, &record_message(&rec.card_id, rec.counter, rec.date, rec.amount));
    let a = send(link, s3, &cmds::purse_write_signature(&signature))?;
    let b = send(link, s4, &cmds::purse_write_certificate(me.cert.encode()))?;
    let again = send(link, "recover.S11-S14", &cmds::purse_read_all())?;
    let now = Record::parse(&again.data).ok().filter(|r| record_verifies(t, r) && r.counter == rec.counter);
    if a.sw == sw::OK && b.sw == sw::OK && now.is_some() {
        out.findings.push(Finding::RecordResigned { head, card_id, counter: rec.counter, amount: rec.amount });
    } else {
        out.findings.push(Finding::Unrecoverable {
            head,
            step: "S3".into(),
            detail: format!(
                "card {card_id}: re-writing the signature ({:04X}) and certificate ({:04X}) did not leave a record \
                 that verifies",
                a.sw, b.sw
            ),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- card-signed payment (S38)

fn cpay(link: &mut Link, t: &mut Terminal, out: &mut Recovery) -> Flow<()> {
    let head = link.head_name();
    if !t.journal.intents().iter().any(|i| matches!(i, Intent::CpayDebit { .. })) {
        return Ok(());
    }
    if send(link, "recover.select", &cmds::select(&AID_CPAY))?.sw != sw::OK {
        return Ok(());
    }
    let id = send(link, "recover.S31", &cmds::read_field(FIELD_ID, 8))?;
    let here = if id.sw == sw::OK { hex::encode_upper(&id.data) } else { String::new() };
    let intent = t.journal.intents().iter().rev().find_map(|i| match i {
        Intent::CpayDebit { head: h, card_id, price, date, amount_before, date_before }
            if (!card_id.is_empty() && card_id.eq_ignore_ascii_case(&here)) || (card_id.is_empty() && *h == head) =>
        {
            Some((card_id.clone(), *price, *date, *amount_before, *date_before))
        }
        _ => None,
    });
    let Some((card_id, price, date, amount_before, date_before)) = intent else { return Ok(()) };
    let r = send(link, "recover.S38", &cmds::read_field(FIELD_VALUE, 8))?;
    if r.sw != sw::OK || r.data.len() != 8 {
        out.findings.push(Finding::Unrecoverable {
            head,
            step: "S38".into(),
            detail: format!("card {card_id}: value field unreadable ({:04X})", r.sw),
        });
        return Ok(());
    }
    let (amount, on_card_date) = (be32(&r.data, 0), be32(&r.data, 4));
    if Some(amount) == amount_before.checked_sub(price) && on_card_date == date {
        out.findings.push(Finding::AlreadyDone {
            head,
            what: format!("the DEBIT of {price} took effect on card {card_id} (value {amount_before} → {amount}): do not debit again"),
        });
    } else if (amount, on_card_date) == (amount_before, date_before) {
        out.findings.push(Finding::NotApplied {
            head,
            what: format!("the DEBIT of {price} did not take effect on card {card_id} (value still {amount})"),
        });
    } else {
        out.findings.push(Finding::Unrecoverable {
            head,
            step: "S38".into(),
            detail: format!(
                "card {card_id}: value {amount} date {on_card_date} is neither the signed value {amount_before} nor \
                 it minus the price {price}"
            ),
        });
    }
    Ok(())
}
