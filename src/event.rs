//! What a run reports, as events on a channel. The CSV trace, the console and the TUI are
//! consumers; engines and the link only send.

use crate::queue::{self, Delivery, Receiver, Sender};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What a trace row records (docs/trace-format.md, column `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RowKind {
    /// A command the terminal asked for, answered.
    #[default]
    Command,
    /// GET RESPONSE sent by the link after `61xx`.
    GetResponse,
    /// The same command re-sent by the link with the Le of a `6Cxx` answer.
    Resend6C,
    /// A command that may have reached the card but got no (complete) answer: its outcome is
    /// unknown. `error` says what happened; `response` and `sw` are empty.
    InDoubt,
    PowerOn,
    PowerOff,
    WarmReset,
    Insert,
    Remove,
    /// A plan step started: no command; `note` holds its resolved parameters.
    Step,
}

impl RowKind {
    pub const ALL: [RowKind; 10] = [
        RowKind::Command,
        RowKind::GetResponse,
        RowKind::Resend6C,
        RowKind::InDoubt,
        RowKind::PowerOn,
        RowKind::PowerOff,
        RowKind::WarmReset,
        RowKind::Insert,
        RowKind::Remove,
        RowKind::Step,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Command => "command",
            RowKind::GetResponse => "get-response",
            RowKind::Resend6C => "resend-6c",
            RowKind::InDoubt => "in-doubt",
            RowKind::PowerOn => "power-on",
            RowKind::PowerOff => "power-off",
            RowKind::WarmReset => "warm-reset",
            RowKind::Insert => "insert",
            RowKind::Remove => "remove",
            RowKind::Step => "step",
        }
    }

    pub fn parse(s: &str) -> Option<RowKind> {
        RowKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Rows that carry a command APDU (the others are card and power events).
    pub fn is_wire(self) -> bool {
        matches!(self, RowKind::Command | RowKind::GetResponse | RowKind::Resend6C | RowKind::InDoubt)
    }
}

/// One wire exchange (or card/power event), exactly as the trace stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exchange {
    pub seq: u64,
    pub wall: DateTime<Utc>,
    /// Nanoseconds since the run started, on the monotonic clock.
    pub mono_ns: u64,
    pub head: String,
    pub card_id: String,
    pub test_step: String,
    pub protocol_step: String,
    pub command: Vec<u8>,
    /// Response data without the status word.
    pub response: Vec<u8>,
    pub sw: u16,
    pub duration_ns: u64,
    pub note: String,
    pub kind: RowKind,
    /// Why an in-doubt row got no answer (the head error); empty otherwise.
    pub error: String,
    /// ATR after a power-on, warm reset or insertion; empty otherwise.
    pub atr: Vec<u8>,
    /// The plan step inside the case (`#<n> <kind>[ <name>]`); empty outside plan steps.
    pub step: String,
    /// 1-based repeat index of `step`; 0 when there is no step.
    pub repeat: u32,
    /// Response bytes that are dynamic by nature (`crate::mask::dynamic`).
    pub mask: crate::mask::Mask,
}

impl Exchange {
    /// The command's name (`UNKNOWN` for fewer than two bytes).
    pub fn command_name(&self) -> &'static str {
        match self.command.as_slice() {
            [cla, ins, ..] => crate::cmds::name(*cla, *ins),
            _ => "UNKNOWN",
        }
    }

    /// (command name, duration) of a row that times a command: a wire row that got its
    /// answer. An in-doubt row's duration is the time until the failure, and power, card and
    /// step rows carry no command.
    pub fn command_time(&self) -> Option<(&'static str, u64)> {
        (self.kind.is_wire() && self.kind != RowKind::InDoubt).then(|| (self.command_name(), self.duration_ns))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    RunStarted {
        run_id: String,
        plan: String,
        profile: String,
    },
    Exchange(Box<Exchange>),
    StepStarted {
        head: String,
        test_step: String,
        engine: String,
    },
    /// A seed step the terminal performed without an exchange (a check, a signature).
    ProtocolStep {
        head: String,
        test_step: String,
        protocol_step: String,
        what: String,
    },
    StepEnded {
        head: String,
        test_step: String,
        engine: String,
        verdict: String,
        passed: bool,
        detail: String,
    },
    HeadError {
        head: String,
        error: String,
    },
    /// The runner read and settled the cards of a head whose command was left in doubt (or
    /// whose card went away) before using it again; `settled` false keeps the head blocked.
    Recovered {
        head: String,
        detail: String,
        settled: bool,
    },
    RunEnded {
        passed: usize,
        failed: usize,
    },
    /// A replay compared what the card answered now with rows of the captured trace
    /// (`crate::replay::compare`). One per unit the replayer judged: a command with the GET
    /// RESPONSE / re-send rows folded into it, or a power/card event; none for rows it only
    /// re-sent (in doubt in the capture) or skipped.
    ReplayChecked {
        /// Lines of the captured trace file (the header is line 1) of the rows covered, as
        /// `csv::Position::line` gives them; the first is the command's.
        lines: Vec<u64>,
        matched: bool,
        /// `RowCheck::describe()` (one line); empty when the rows matched.
        detail: String,
        /// `replay::compare::hexdiff` of expected against actual; empty when they matched.
        diff: String,
    },
}

/// Cheap handle given to every link and engine. A disabled recorder drops everything
/// (benchmarks with tracing off).
#[derive(Clone)]
pub struct Recorder {
    tx: Option<Sender>,
    seq: Arc<AtomicU64>,
    epoch: Instant,
    pub plan: String,
}

impl Recorder {
    pub fn new(plan: &str) -> (Recorder, Receiver) {
        let (tx, rx) = queue::bounded();
        (Recorder { tx: Some(tx), seq: Arc::new(AtomicU64::new(0)), epoch: Instant::now(), plan: plan.into() }, rx)
    }

    pub fn disabled() -> Recorder {
        Recorder { tx: None, seq: Arc::new(AtomicU64::new(0)), epoch: Instant::now(), plan: String::new() }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Hand an event to the sinks (written within `queue::GATHER`). A consumer that went
    /// away must not stop the bench.
    pub fn send(&self, e: Event) {
        if let Some(tx) = &self.tx {
            tx.send(e, Delivery::Normal);
        }
    }

    /// Hand an event over and wait until the sinks have written and flushed it.
    pub fn send_durable(&self, e: Event) {
        if let Some(tx) = &self.tx {
            tx.send(e, Delivery::Durable);
        }
    }

    /// Hand an event over and wake the sinks now (front ends see it at once).
    pub fn send_urgent(&self, e: Event) {
        if let Some(tx) = &self.tx {
            tx.send(e, Delivery::Urgent);
        }
    }

    /// Wait until everything sent so far is written and flushed.
    pub fn sync(&self) {
        if let Some(tx) = &self.tx {
            tx.sync();
        }
    }

    /// Set once an essential sink (the trace file) failed: nothing more may be sent to a
    /// card, since its exchanges could not be recorded.
    pub fn failure(&self) -> Option<String> {
        self.tx.as_ref().and_then(|t| t.failure())
    }

    /// Events sent but not yet written and flushed (how far the trace lags behind).
    pub fn backlog(&self) -> u64 {
        self.tx.as_ref().map_or(0, |t| t.backlog())
    }

    pub fn failed(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.failed())
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn mono_ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}
