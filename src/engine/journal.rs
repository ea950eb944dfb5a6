//! What the terminal knows it asked cards to do: the intent of every state-changing command,
//! recorded before the command is sent (as an EMV terminal records a torn transaction).
//!
//! Engines record an intent in `Terminal::journal` before each command that changes a card
//! (WRITE VALUE, DEBIT, the value-transfer commands) and drop their intents when they end
//! with an answer from every card; an engine that stops on a head error leaves them, so the
//! journal then holds exactly the operations whose outcome is unknown. `engine::recover`
//! settles them by reading the cards, and engines refuse to start on a head that still has
//! one. A journal can also be rebuilt from the trace of an interrupted run
//! (`Journal::from_trace`), which is how a later process learns what the terminal did.

use crate::event::{Exchange, RowKind};
use crate::spec::codes::*;

/// Which of the terminal's keys wrote a purse record (S1-S4 charge, S18 payment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Charge,
    Payment,
}

/// One state-changing operation the terminal started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// WRITE VALUE of a charge or payment (seed 000 S1/S18). `counter_after` is the counter
    /// the card answered; `None` when the answer never came, and then the write, if it took
    /// effect, left `counter_before - 1`.
    PurseWrite {
        head: String,
        card_id: String,
        writer: Writer,
        counter_before: Option<u32>,
        counter_after: Option<u32>,
        amount: u32,
        date: u32,
    },
    /// DEBIT of a card-signed payment (S38), with the value the card signed just before.
    CpayDebit { head: String, card_id: String, price: u32, date: u32, amount_before: u32, date_before: u32 },
    /// A value transfer from the moment the receiving card may hold a pending credit.
    /// `rnd_recv` is known once VALUE RECEIVE PERMISSION answered, `challenge` once VALUE
    /// SEND did.
    Transfer {
        from_head: String,
        to_head: String,
        from_card: String,
        to_card: String,
        paid: u32,
        date: u32,
        rnd_send: [u8; 16],
        rnd_recv: Option<[u8; 16]>,
        challenge: Option<[u8; 16]>,
    },
}

impl Intent {
    /// Heads the operation talks to.
    pub fn heads(&self) -> Vec<&str> {
        match self {
            Intent::PurseWrite { head, .. } | Intent::CpayDebit { head, .. } => vec![head],
            Intent::Transfer { from_head, to_head, .. } => vec![from_head, to_head],
        }
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        match self {
            Intent::PurseWrite { card_id, amount, date, writer, .. } => {
                let who = if *writer == Writer::Charge { "charge" } else { "payment" };
                format!("{who} WRITE VALUE amount {amount} date {date} to card {card_id}")
            }
            Intent::CpayDebit { card_id, price, .. } => format!("DEBIT of {price} from card {card_id}"),
            Intent::Transfer { from_card, to_card, paid, .. } => {
                format!("transfer of {paid} from card {from_card} to card {to_card}")
            }
        }
    }
}

/// The terminal's open intents, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journal {
    intents: Vec<Intent>,
}

impl Journal {
    pub fn new() -> Journal {
        Journal::default()
    }

    pub fn intents(&self) -> &[Intent] {
        &self.intents
    }

    pub fn is_empty(&self) -> bool {
        self.intents.is_empty()
    }

    /// Record an intent; the index lets the engine complete it as answers arrive.
    pub fn record(&mut self, i: Intent) -> usize {
        self.intents.push(i);
        self.intents.len() - 1
    }

    pub fn get_mut(&mut self, at: usize) -> Option<&mut Intent> {
        self.intents.get_mut(at)
    }

    /// Position to come back to with `truncate` when an engine ends with every answer.
    pub fn mark(&self) -> usize {
        self.intents.len()
    }

    pub fn truncate(&mut self, mark: usize) {
        self.intents.truncate(mark);
    }

    /// The first open intent that involves `head`: an operation on it whose outcome is unknown.
    pub fn open_on(&self, head: &str) -> Option<&Intent> {
        self.intents.iter().find(|i| i.heads().contains(&head))
    }

    /// Forget the intents that involve any of `heads` (after recovery read their cards).
    pub fn settle(&mut self, heads: &[String]) {
        self.intents.retain(|i| !i.heads().iter().any(|h| heads.iter().any(|x| x == h)));
    }

    /// Rebuild what the terminal did from the trace of a run: for each card, its last WRITE
    /// VALUE (with the counter read before it and the counter answered), its last DEBIT that
    /// got no answer (with the value the card signed before it) and its last VALUE SEND as a
    /// sender (with the transfer's randoms and, when answered, the reception challenge).
    /// Rows of any other kind are ignored.
    pub fn from_trace(rows: &[Exchange]) -> Journal {
        let ex = logical(rows);
        let mut j = Journal::new();
        let key = |x: &Logical| if x.card_id.is_empty() { x.head.clone() } else { x.card_id.clone() };
        let mut last_write: Vec<(String, Intent)> = Vec::new();
        let mut last_debit: Vec<(String, Intent)> = Vec::new();
        let mut last_send: Vec<(String, Intent)> = Vec::new();
        let put = |v: &mut Vec<(String, Intent)>, k: String, i: Intent| match v.iter_mut().find(|(x, _)| *x == k) {
            Some(slot) => slot.1 = i,
            None => v.push((k, i)),
        };
        for (n, x) in ex.iter().enumerate() {
            let before = &ex[..n];
            let same_head = |y: &&Logical| y.head == x.head;
            match (x.cla, x.ins) {
                (CLA_PROP, PURSE_WRITE_VALUE) if x.data.len() == 8 => {
                    let counter_before = before
                        .iter()
                        .rev()
                        .filter(same_head)
                        .find(|y| y.ins == PURSE_READ_ALL && y.answered_ok())
                        .and_then(|y| (y.response.len() >= 12).then(|| be32(&y.response, 8)));
                    let counter_after = (x.answered_ok() && x.response.len() == 4).then(|| be32(&x.response, 0));
                    if !x.answered_ok() && !x.in_doubt {
                        continue; // refused: nothing was written
                    }
                    let writer = if x.step.starts_with("S18.") { Writer::Payment } else { Writer::Charge };
                    let i = Intent::PurseWrite {
                        head: x.head.clone(),
                        card_id: x.card_id.clone(),
                        writer,
                        counter_before,
                        counter_after,
                        amount: be32(&x.data, 0),
                        date: be32(&x.data, 4),
                    };
                    put(&mut last_write, key(x), i);
                }
                (CLA_PROP, CPAY_DEBIT) if x.data.len() == 72 => {
                    if !x.in_doubt {
                        continue; // answered: the terminal knows what happened
                    }
                    let signed = before
                        .iter()
                        .rev()
                        .filter(same_head)
                        .find(|y| y.ins == CPAY_SIGN && y.answered_ok() && y.response.len() >= 16);
                    if let Some(s) = signed {
                        let i = Intent::CpayDebit {
                            head: x.head.clone(),
                            card_id: x.card_id.clone(),
                            price: be32(&x.data, 0),
                            date: be32(&x.data, 4),
                            amount_before: be32(&s.response, 12),
                            date_before: be32(&s.response, 8),
                        };
                        put(&mut last_debit, key(x), i);
                    }
                }
                (CLA_PROP, XFER_SEND) if x.data.len() == 32 => {
                    if !x.answered_ok() && !x.in_doubt {
                        continue; // refused: no debit
                    }
                    // The receive permission whose answer carried this rnd_recv names the
                    // receiving head and the transfer's randoms.
                    let rnd_recv: [u8; 16] = x.data[16..32].try_into().expect("length checked");
                    let Some(perm) = before.iter().rev().find(|y| {
                        y.ins == XFER_RECEIVE_PERMISSION && y.response.len() == 32 && y.response[16..] == rnd_recv
                    }) else {
                        continue;
                    };
                    if perm.data.len() != 24 {
                        continue;
                    }
                    let challenge = (x.answered_ok() && x.response.len() == 16)
                        .then(|| x.response[..16].try_into().expect("length checked"));
                    let i = Intent::Transfer {
                        from_head: x.head.clone(),
                        to_head: perm.head.clone(),
                        from_card: x.card_id.clone(),
                        to_card: perm.card_id.clone(),
                        paid: be32(&perm.data, 0),
                        date: be32(&perm.data, 4),
                        rnd_send: perm.data[8..24].try_into().expect("length checked"),
                        rnd_recv: Some(rnd_recv),
                        challenge,
                    };
                    put(&mut last_send, key(x), i);
                }
                _ => {}
            }
        }
        for v in [last_write, last_debit, last_send] {
            for (_, i) in v {
                j.record(i);
            }
        }
        j
    }
}

/// One command as the terminal meant it: the command row with its GET RESPONSE / 6Cxx
/// re-send rows folded in.
#[derive(Debug, Clone)]
struct Logical {
    head: String,
    card_id: String,
    step: String,
    cla: u8,
    ins: u8,
    data: Vec<u8>,
    response: Vec<u8>,
    sw: u16,
    /// Some row of it got no answer: the card may or may not have run it.
    in_doubt: bool,
}

impl Logical {
    fn answered_ok(&self) -> bool {
        !self.in_doubt && self.sw == 0x9000
    }
}

fn logical(rows: &[Exchange]) -> Vec<Logical> {
    let mut out: Vec<Logical> = Vec::new();
    for r in rows.iter().filter(|r| r.kind.is_wire()) {
        let Ok(cmd) = crate::apdu::Command::parse(&r.command) else { continue };
        let follow = matches!(r.kind, RowKind::GetResponse | RowKind::Resend6C)
            || (r.kind == RowKind::InDoubt && cmd.cla == CLA_ISO && cmd.ins == GET_RESPONSE);
        let open = out.iter_mut().rev().find(|x| x.head == r.head);
        match (follow, open) {
            (true, Some(x)) => {
                if r.kind == RowKind::Resend6C {
                    x.response.clear();
                }
                x.response.extend_from_slice(&r.response);
                x.sw = r.sw;
                x.in_doubt |= r.kind == RowKind::InDoubt;
            }
            _ => out.push(Logical {
                head: r.head.clone(),
                card_id: r.card_id.clone(),
                step: r.protocol_step.clone(),
                cla: cmd.cla,
                ins: cmd.ins,
                data: cmd.data.clone(),
                response: r.response.clone(),
                sw: r.sw,
                in_doubt: r.kind == RowKind::InDoubt,
            }),
        }
    }
    out
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
