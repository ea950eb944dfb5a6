//! The tear invariants, judged on the card states before the sequence, after a fault-free
//! run ("complete") and after the fault and settling.

use super::settle::Settled;
use super::state::{CardState, RecordCheck};
use std::fmt;

/// Outcome of one fault point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The cards are as before the sequence.
    NoEffect,
    /// The cards are as after a fault-free run, with nothing done by settling.
    Completed,
    /// Settling finished or undid the sequence; the cards are as before or as after it.
    Recovered,
    /// A settlement's key update took effect and its transfer did not (or settling undid
    /// it): the cards are as a key update alone leaves them, and the next settlement
    /// transfers at once. Only `settle` sequences have this state.
    Updated,
    /// A partial state that settling reported for the operator (e.g. a torn purse record).
    Reported,
    /// An invariant does not hold.
    Violation,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::NoEffect,
        Verdict::Completed,
        Verdict::Recovered,
        Verdict::Updated,
        Verdict::Reported,
        Verdict::Violation,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Verdict::NoEffect => "no effect",
            Verdict::Completed => "completed",
            Verdict::Recovered => "recovered",
            Verdict::Updated => "updated",
            Verdict::Reported => "reported",
            Verdict::Violation => "VIOLATION",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// The states a judgement compares; one entry per head of the sequence, in the same order.
pub struct States<'a> {
    pub before: &'a [CardState],
    pub complete: &'a [CardState],
    /// A settlement's cards after its key update alone (its first committed part).
    pub midway: Option<&'a [CardState]>,
}

/// Every invariant broken by `after` (empty when they all hold).
pub fn violations(s: &States, after: &[CardState], settled: &Settled) -> Vec<String> {
    let mut v = Vec::new();
    let reported = matches!(settled, Settled::Reported(_));
    for ((b, c), x) in s.before.iter().zip(s.complete).zip(after) {
        let h = &x.head;
        let (pb, pc, px) = (&b.purse, &c.purse, &x.purse);
        if px.counter > pb.counter {
            v.push(format!("{h}: PURSE counter went up {} → {}", pb.counter, px.counter));
        } else if pb.counter - px.counter > pb.counter.saturating_sub(pc.counter) {
            v.push(format!(
                "{h}: PURSE counter stepped {} times where the sequence writes {} (double effect)",
                pb.counter - px.counter,
                pb.counter.saturating_sub(pc.counter)
            ));
        }
        if px.amount != pb.amount && px.amount != pc.amount {
            v.push(format!(
                "{h}: PURSE value {} is neither {} (before) nor {} (after)",
                px.amount, pb.amount, pc.amount
            ));
        }
        if let RecordCheck::Invalid(why) = &px.record {
            if !reported {
                v.push(format!("{h}: PURSE record no terminal accepts ({why}), not reported"));
            }
        }
        if px.record == RecordCheck::Blank && px.amount != pb.amount && !reported {
            v.push(format!("{h}: PURSE value {} written without a signed record, not reported", px.amount));
        }
        if x.cpay_amount != b.cpay_amount && x.cpay_amount != c.cpay_amount {
            v.push(format!(
                "{h}: CPAY value {} is neither {} (before) nor {} (after): double debit",
                x.cpay_amount, b.cpay_amount, c.cpay_amount
            ));
        }
        let (xb, xc, xx) = (&b.xfer, &c.xfer, &x.xfer);
        if xx.balance != xb.balance && xx.balance != xc.balance {
            v.push(format!(
                "{h}: balance {} is neither {} (before) nor {} (after)",
                xx.balance, xb.balance, xc.balance
            ));
        }
        if xx.tkid != xb.tkid && xx.tkid != xc.tkid {
            v.push(format!("{h}: transfer key ID {} is neither old ({}) nor new ({})", xx.tkid, xb.tkid, xc.tkid));
        }
        if xx.ukid != xb.ukid && xx.ukid != xc.ukid {
            v.push(format!("{h}: update key ID {} is neither old ({}) nor new ({})", xx.ukid, xb.ukid, xc.ukid));
        }
        if x.keys_match == Some(false) {
            v.push(format!("{h}: key bytes are not the keyset's keys for IDs {}/{}", xx.ukid, xx.tkid));
        }
        if let Some(p) = &xx.pending {
            if xb.pending.is_none() {
                v.push(format!("{h}: blocked: a credit of {} is left pending", p.paid));
            }
        }
    }
    let total = |st: &[CardState]| st.iter().map(|c| u64::from(c.xfer.balance)).sum::<u64>();
    let (tb, tx) = (total(s.before), total(after));
    if tx != tb {
        let what = if tx < tb { "stranded or lost" } else { "created" };
        v.push(format!("value not conserved: total balance {tb} → {tx} ({} {what})", tb.abs_diff(tx)));
    }
    v
}

/// The verdict for a fault point whose invariants hold (`broken` empty) or not.
pub fn verdict(s: &States, after: &[CardState], settled: &Settled, broken: &mut Vec<String>) -> Verdict {
    if !broken.is_empty() {
        return Verdict::Violation;
    }
    let same = |a: &[CardState], b: &[CardState]| a.iter().zip(b).all(|(x, y)| x.view() == y.view());
    let (as_before, as_complete) = (same(after, s.before), same(after, s.complete));
    let as_midway = s.midway.is_some_and(|m| same(after, m));
    match settled {
        _ if as_before && !settled.acted() => Verdict::NoEffect,
        _ if as_complete && !settled.acted() => Verdict::Completed,
        _ if (as_before || as_complete) && settled.acted() => Verdict::Recovered,
        _ if as_midway => Verdict::Updated,
        Settled::Reported(_) => Verdict::Reported,
        _ => {
            let diff: Vec<String> = after
                .iter()
                .zip(s.before)
                .filter(|(x, b)| x.view() != b.view())
                .map(|(x, b)| format!("{}: {}", x.head, x.view().diff(&b.view())))
                .collect();
            broken.push(format!("partial effect, neither before nor after, not reported: {}", diff.join("; ")));
            Verdict::Violation
        }
    }
}
