//! State drift on real heads: the same cards see every fault point, so each point is judged
//! against the state read just before it, its expected end state is that state moved by what
//! the fault-free run changed, and the campaign stops a sequence once the cards cannot run it
//! any more (a PURSE backward counter is finite, value is spent).

use super::state::{CardState, RecordCheck};

/// What one run of a sequence (setup and body) takes from a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    pub head: String,
    pub counter: u32,
    pub amount: u32,
    pub cpay: u32,
    pub balance: u32,
}

/// What the fault-free run took from each card: `start` before its setup, `end` after it.
pub fn drain(start: &[CardState], end: &[CardState]) -> Vec<Drain> {
    start
        .iter()
        .zip(end)
        .map(|(s, e)| Drain {
            head: s.head.clone(),
            counter: s.purse.counter.saturating_sub(e.purse.counter),
            amount: s.purse.amount.saturating_sub(e.purse.amount),
            cpay: s.cpay_amount.saturating_sub(e.cpay_amount),
            balance: s.xfer.balance.saturating_sub(e.xfer.balance),
        })
        .collect()
}

/// Why the cards cannot run the sequence once more, if they cannot.
pub fn exhausted(now: &[CardState], drain: &[Drain]) -> Option<String> {
    for (c, d) in now.iter().zip(drain) {
        let short = |what: &str, have: u32, need: u32| {
            (have < need).then(|| format!("card {}: {what} exhausted ({have} left, a point takes {need})", c.head))
        };
        let why = short("PURSE counter", c.purse.counter, d.counter)
            .or_else(|| short("PURSE value", c.purse.amount, d.amount))
            .or_else(|| short("CPAY value", c.cpay_amount, d.cpay))
            .or_else(|| short("transfer balance", c.xfer.balance, d.balance));
        if why.is_some() {
            return why;
        }
    }
    None
}

/// A card state an earlier point left and nothing settled: judging the next point on it would
/// blame that point for it.
pub fn unsettled(now: &[CardState]) -> Option<String> {
    now.iter().find_map(|c| {
        if let Some(p) = &c.xfer.pending {
            Some(format!("card {}: left with a pending credit of {}", c.head, p.paid))
        } else if let RecordCheck::Invalid(why) = &c.purse.record {
            Some(format!("card {}: left with a PURSE record no terminal accepts ({why})", c.head))
        } else {
            None
        }
    })
}

/// The state a fault-free run would leave from `now`: counters and values moved as they moved
/// from `before` to `complete` in the fault-free run; dates, records, key IDs and transfer
/// records set as it set them.
pub fn expected(now: &[CardState], before: &[CardState], complete: &[CardState]) -> Vec<CardState> {
    now.iter().zip(before).zip(complete).map(|((n, b), c)| moved(n, b, c)).collect()
}

fn moved(n: &CardState, b: &CardState, c: &CardState) -> CardState {
    let shift = |v: u32, from: u32, to: u32| {
        (i64::from(v) + i64::from(to) - i64::from(from)).clamp(0, i64::from(u32::MAX)) as u32
    };
    fn set<T: Clone + PartialEq>(x: &mut T, from: &T, to: &T) {
        if from != to {
            *x = to.clone();
        }
    }
    let mut x = n.clone();
    x.purse.counter = shift(n.purse.counter, b.purse.counter, c.purse.counter);
    x.purse.amount = shift(n.purse.amount, b.purse.amount, c.purse.amount);
    set(&mut x.purse.date, &b.purse.date, &c.purse.date);
    set(&mut x.purse.certificate, &b.purse.certificate, &c.purse.certificate);
    set(&mut x.purse.record, &b.purse.record, &c.purse.record);
    x.cpay_amount = shift(n.cpay_amount, b.cpay_amount, c.cpay_amount);
    x.xfer.balance = shift(n.xfer.balance, b.xfer.balance, c.xfer.balance);
    set(&mut x.xfer.ukid, &b.xfer.ukid, &c.xfer.ukid);
    set(&mut x.xfer.tkid, &b.xfer.tkid, &c.xfer.tkid);
    set(&mut x.xfer.pending, &b.xfer.pending, &c.xfer.pending);
    set(&mut x.xfer.last_debit, &b.xfer.last_debit, &c.xfer.last_debit);
    x
}
