//! SIGINT and SIGTERM on a headless batch. The first signal is the operator's stop, as in
//! the TUI: no new card is taken, the cards in the heads finish and are journaled, the
//! reports are written, and the batch exits 128 + the signal (130, 143). A second signal
//! aborts at once; it waits only for a journal append in flight, so the journal stays whole
//! (the cards in progress have no line and are certified again on resume).

use super::Control;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Signal handling for one batch; dropped (or `finish`ed) when the batch has ended.
pub struct Interrupt {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    first: Arc<AtomicI32>,
}

impl Interrupt {
    /// Catch SIGINT and SIGTERM from now on: the first sets `control.stop`; the second
    /// exits the process once no journal append is in flight. `abort_note` is printed then
    /// (on stderr) to say what the operator has and what to run next.
    pub fn install(control: Arc<Control>, abort_note: String) -> std::io::Result<Interrupt> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let first = Arc::new(AtomicI32::new(0));
        let seen = first.clone();
        let thread = std::thread::Builder::new().name("signals".into()).spawn(move || {
            for sig in signals.forever() {
                if seen.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    control.stop.store(true, Ordering::SeqCst);
                    crate::print::err(format_args!(
                        "cardbench: {}: stopping: the cards in the heads finish, then the reports are written \
                         ({} again aborts at once)",
                        name(sig),
                        name(sig)
                    ));
                    continue;
                }
                // Held by the collector while it appends and fsyncs a journal line: once it
                // is ours, every line in the journal is whole and nothing more is appended.
                let _gate = control.journal_gate.lock().unwrap_or_else(|p| p.into_inner());
                crate::print::err(format_args!("cardbench: {}: aborted; {abort_note}", name(sig)));
                std::process::exit(128 + sig);
            }
        })?;
        Ok(Interrupt { handle, thread: Some(thread), first })
    }

    /// The first signal received, if any (SIGINT 2, SIGTERM 15).
    pub fn received(&self) -> Option<i32> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Stop listening; returns the first signal received, if any.
    pub fn finish(mut self) -> Option<i32> {
        self.close();
        self.received()
    }

    fn close(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.close();
    }
}

/// The exit code of a process ended by the operator's signal: 128 + its number.
pub fn exit_code(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
