//! What a terminal does with the cards after a fault, before the campaign checks them.
//!
//! The campaign only needs "settle the cards of this sequence and say what you did"; which
//! procedure does it is a choice (`--settle`), so a broken or naive procedure can be shown
//! to violate the invariants.

use super::sequence::{run_action, Sequence};
use crate::engine::{EngineError, Outcome, Terminal};
use crate::link::Link;

/// What settling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Nothing to do, or nothing done.
    Nothing,
    /// An interrupted sequence was finished (e.g. the credit of a committed debit sent).
    Completed(String),
    /// An interrupted sequence was undone (e.g. a pending credit released).
    Cancelled(String),
    /// Something could not be settled and was reported for the operator (e.g. a purse record
    /// no terminal accepts).
    Reported(String),
}

impl Settled {
    pub fn acted(&self) -> bool {
        matches!(self, Settled::Completed(_) | Settled::Cancelled(_))
    }
}

pub trait Settle {
    fn name(&self) -> &'static str;

    /// Bring the cards (one link per head of `seq`, powered) to a settled state.
    fn settle(&self, seq: &Sequence, links: &mut [Link], t: &mut Terminal) -> Result<Settled, EngineError>;
}

/// The terminal's recovery engine (`engine::recover`): completes or cancels an interrupted
/// transfer, re-signs a purse record this terminal wrote, reports what it cannot settle.
pub struct Recover;

impl Settle for Recover {
    fn name(&self) -> &'static str {
        "recover"
    }

    fn settle(&self, _seq: &Sequence, links: &mut [Link], t: &mut Terminal) -> Result<Settled, EngineError> {
        use crate::engine::recover::Finding;
        let mut refs: Vec<&mut Link> = links.iter_mut().collect();
        let r = crate::engine::recover::recover(&mut refs, t)?;
        let any = |f: fn(&Finding) -> bool| r.findings.iter().any(f);
        Ok(if !r.settled() {
            Settled::Reported(r.to_string())
        } else if any(|f| matches!(f, Finding::CreditCompleted { .. } | Finding::RecordResigned { .. })) {
            Settled::Completed(r.to_string())
        } else if any(|f| matches!(f, Finding::CreditCancelled { .. })) {
            Settled::Cancelled(r.to_string())
        } else {
            Settled::Nothing
        })
    }
}

/// What an operator can do without a recovery engine: read the cards back and leave them.
pub struct ReadBack;

impl Settle for ReadBack {
    fn name(&self) -> &'static str {
        "read-back"
    }

    fn settle(&self, _seq: &Sequence, links: &mut [Link], _t: &mut Terminal) -> Result<Settled, EngineError> {
        for l in links.iter_mut() {
            for aid in [crate::spec::codes::AID_PURSE, crate::spec::codes::AID_XFER] {
                l.exec("settle", &crate::cmds::select(&aid))
                    .map_err(|source| EngineError::Head { head: l.head_name(), source })?;
            }
        }
        Ok(Settled::Nothing)
    }
}

/// Run the interrupted engine step again from a new terminal session (the interrupted run's
/// journal is gone), as an operator does by starting the run again: the naive procedure the
/// tear campaign exists to catch (double charges, double transfers).
pub struct Rerun;

impl Settle for Rerun {
    fn name(&self) -> &'static str {
        "rerun"
    }

    fn settle(&self, seq: &Sequence, links: &mut [Link], t: &mut Terminal) -> Result<Settled, EngineError> {
        let mut fresh = Terminal::new(t.keys, t.now, t.rng.clone());
        // A refused re-run settles nothing and marks nothing on the card.
        Ok(match run_action(seq.action(), links, &mut fresh)? {
            Outcome::Success(s) => Settled::Completed(format!("re-run: {s}")),
            _ => Settled::Nothing,
        })
    }
}

/// The procedure `--settle NAME` names.
pub fn by_name(name: &str) -> Option<Box<dyn Settle>> {
    match name {
        "recover" => Some(Box::new(Recover)),
        "read-back" => Some(Box::new(ReadBack)),
        "rerun" => Some(Box::new(Rerun)),
        _ => None,
    }
}

pub const NAMES: &str = "recover, read-back, rerun";
