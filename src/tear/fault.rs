//! Fault points of a tear campaign, and a power cut any head can take at an exchange
//! boundary.
//!
//! A virtual head cuts power itself (`VirtualHead::cut_power`) and its card can lose an NVM
//! commit (`Nvm::tear_after`). A real reader can do neither inside a command: what the host
//! controls is when it powers the card off. `CutHead` wraps any head and powers it off at the
//! n-th exchange, before sending the command or after the card answered it (the answer is
//! dropped, so the terminal sees the same in-doubt command as after a torn answer).

use crate::head::tap::{Hook, Tapped};
use crate::head::virtual_head::{CutPoint, PowerCut};
use crate::head::{Head, HeadError, Wire};
use std::fmt;

/// Where a campaign injects one fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Power cut at the `n`-th wire exchange (1-based, counted from the start of the faulted
    /// part) on head `head`.
    Exchange { head: String, n: u64, point: CutPoint },
    /// The `k`-th NVM commit (1-based) of the card in head `head` is torn: lost, card mute.
    Commit { head: String, k: u64 },
}

/// A fault with the command it falls on, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPoint {
    pub fault: Fault,
    /// Name of the command at that exchange (or whose commit is torn).
    pub command: String,
}

impl fmt::Display for FaultPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fault {
            Fault::Exchange { head, n, point } => write!(f, "{head}#{n} {} {}", self.command, point_name(*point)),
            Fault::Commit { head, k } => write!(f, "{head} commit {k} ({})", self.command),
        }
    }
}

pub fn point_name(p: CutPoint) -> &'static str {
    match p {
        CutPoint::BeforeCommand => "before-command",
        CutPoint::AfterCommand => "after-command",
    }
}

pub fn parse_point(s: &str) -> Option<CutPoint> {
    match s {
        "before-command" => Some(CutPoint::BeforeCommand),
        "after-command" => Some(CutPoint::AfterCommand),
        _ => None,
    }
}

/// One exchange seen by a `CutHead`: the command's name and, on a virtual head, the card's
/// NVM commit count after it (so commits can be named by the command that made them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub command: String,
    pub commits_after: Option<u64>,
}

/// A power cut at an exchange boundary and a log of the exchanges, on any head
/// (`CutHead::new`).
pub struct CutLog {
    cut: Option<PowerCut>,
    fired: bool,
    seen: Vec<Seen>,
}

/// Any head, with an optional power cut at an exchange boundary and a log of the exchanges.
pub type CutHead<'a> = Tapped<'a, CutLog>;

impl<'a> Tapped<'a, CutLog> {
    pub fn new(inner: &'a mut dyn Head, cut: Option<PowerCut>) -> Self {
        Tapped::borrowed(inner, CutLog { cut: cut.filter(|c| c.at > 0), fired: false, seen: Vec::new() })
    }

    /// Whether the armed cut has fired.
    pub fn fired(&self) -> bool {
        self.hook.fired
    }

    pub fn seen(&self) -> &[Seen] {
        &self.hook.seen
    }
}

impl Hook for CutLog {
    fn transmit(&mut self, inner: &mut dyn Head, apdu: &[u8]) -> Result<Wire, HeadError> {
        let command = match apdu {
            [cla, ins, ..] => crate::cmds::name(*cla, *ins).to_string(),
            _ => "UNKNOWN".to_string(),
        };
        let r = cut_transmit(inner, &mut self.cut, None, &mut self.fired, apdu);
        // Commits are named by the command that made them.
        let commits_after = inner.as_virtual().and_then(|v| v.card().map(|c| c.nvm().commits()));
        self.seen.push(Seen { command, commits_after });
        r
    }
}

/// One transmit through `inner`, cutting power when `cut` falls on it.
fn cut_transmit(
    inner: &mut dyn Head,
    cut: &mut Option<PowerCut>,
    ins: Option<u8>,
    fired: &mut bool,
    apdu: &[u8],
) -> Result<Wire, HeadError> {
    let now = match cut.as_mut() {
        Some(_) if !crate::head::virtual_head::counts(ins, apdu) => None,
        Some(c) if c.at == 1 => cut.take().map(|c| c.point),
        Some(c) => {
            c.at -= 1;
            None
        }
        None => None,
    };
    match now {
        Some(CutPoint::BeforeCommand) => {
            *fired = true;
            inner.power_off()?;
            Err(HeadError::Mute)
        }
        Some(CutPoint::AfterCommand) => {
            *fired = true;
            let r = inner.transmit(apdu);
            inner.power_off()?;
            // The answer (if any) never reaches the terminal.
            r.and(Err(HeadError::Mute))
        }
        None => inner.transmit(apdu),
    }
}

/// The state a plan's `tear` step shares with the head it armed.
#[derive(Debug, Default)]
pub struct CutControl {
    pub cut: Option<PowerCut>,
    pub fired: bool,
    /// Count only the commands with this INS (`virtual_head::counts`).
    pub ins: Option<u8>,
}

/// The hook of a lab head (any driver) that a plan can arm with a power cut at an exchange
/// boundary; transparent while nothing is armed.
pub struct Armed(pub std::sync::Arc<std::sync::Mutex<CutControl>>);

/// A lab head wrapped once so a plan's `tear` step can arm it (`ArmedHead::owned`).
pub type ArmedHead = Tapped<'static, Armed>;

impl Hook for Armed {
    fn transmit(&mut self, inner: &mut dyn Head, apdu: &[u8]) -> Result<Wire, HeadError> {
        let mut ctl = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let CutControl { cut, fired, ins } = &mut *ctl;
        cut_transmit(inner, cut, *ins, fired, apdu)
    }
}
