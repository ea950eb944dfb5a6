//! What a run reports, as events on a channel. The CSV trace, the console and the TUI are
//! consumers; engines and the link only send.

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One wire exchange, exactly as the trace stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    RunEnded {
        passed: usize,
        failed: usize,
    },
}

/// Cheap handle given to every link and engine. A disabled recorder drops everything
/// (benchmarks with tracing off).
#[derive(Clone)]
pub struct Recorder {
    tx: Option<Sender<Event>>,
    seq: Arc<AtomicU64>,
    epoch: Instant,
    pub plan: String,
}

impl Recorder {
    pub fn new(plan: &str) -> (Recorder, Receiver<Event>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Recorder { tx: Some(tx), seq: Arc::new(AtomicU64::new(0)), epoch: Instant::now(), plan: plan.into() }, rx)
    }

    pub fn disabled() -> Recorder {
        Recorder { tx: None, seq: Arc::new(AtomicU64::new(0)), epoch: Instant::now(), plan: String::new() }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn send(&self, e: Event) {
        if let Some(tx) = &self.tx {
            // A consumer that went away must not stop the bench.
            let _ = tx.send(e);
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn mono_ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}
