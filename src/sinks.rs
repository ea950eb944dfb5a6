//! Consumers of run events: the CSV trace, the console, the TUI. One thread drains the
//! queue batch by batch (`crate::queue`) and hands every event to each sink in order, then
//! flushes every sink once per batch.

use crate::event::Event;
use crate::queue::Receiver;
use std::io::Write;
use std::thread::JoinHandle;

pub trait Sink: Send {
    fn event(&mut self, e: &Event) -> std::io::Result<()>;

    /// Make everything handed over so far durable (called once per batch).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    /// An essential sink's failure stops the bench: the trace is the record a lab signs,
    /// so no card may be sent a command once its exchanges cannot be written.
    fn essential(&self) -> bool {
        false
    }

    /// The last sink of the list gets each event by value, so a sink that forwards events
    /// (to a front end) does not copy every exchange.
    fn event_owned(&mut self, e: Event) -> std::io::Result<()> {
        self.event(&e)
    }
}

/// Drain `rx` until every sender is gone. A sink that fails is reported once and dropped;
/// the others carry on. When an essential sink fails, the queue is marked failed so links
/// stop sending to cards.
pub fn spawn(rx: Receiver, sinks: Vec<Box<dyn Sink>>) -> JoinHandle<Vec<String>> {
    rx.drained_by_thread();
    std::thread::Builder::new()
        .name("cardbench-sinks".into())
        .spawn(move || {
            let mut sinks: Vec<Option<Box<dyn Sink>>> = sinks.into_iter().map(Some).collect();
            let mut errors = Vec::new();
            let mut batch = Vec::with_capacity(crate::queue::CAPACITY);
            let fail = |slot: &mut Option<Box<dyn Sink>>, err: std::io::Error, errors: &mut Vec<String>| {
                if slot.as_ref().is_some_and(|s| s.essential()) {
                    rx.fail(err.to_string());
                }
                errors.push(err.to_string());
                *slot = None;
            };
            while let Some(upto) = rx.recv_batch(&mut batch) {
                for e in batch.drain(..) {
                    let Some(last) = sinks.iter().rposition(Option::is_some) else { continue };
                    let (before, rest) = sinks.split_at_mut(last);
                    for slot in before.iter_mut() {
                        if let Some(Err(err)) = slot.as_mut().map(|s| s.event(&e)) {
                            fail(slot, err, &mut errors);
                        }
                    }
                    if let Some(Err(err)) = rest[0].as_mut().map(|s| s.event_owned(e)) {
                        fail(&mut rest[0], err, &mut errors);
                    }
                }
                for slot in sinks.iter_mut() {
                    if let Some(Err(err)) = slot.as_mut().map(|s| s.flush()) {
                        fail(slot, err, &mut errors);
                    }
                }
                rx.done(upto);
            }
            errors
        })
        .expect("spawn sink thread")
}

/// Hands every event to a front end (the TUI watching a replay) over a channel; a front end
/// that went away never stops the bench.
pub struct Forward(pub crossbeam_channel::Sender<Event>);

impl Sink for Forward {
    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        self.event_owned(e.clone())
    }

    fn event_owned(&mut self, e: Event) -> std::io::Result<()> {
        let _ = self.0.send(e);
        Ok(())
    }
}

/// Human progress on stdout: one line per step, errors of heads as they happen.
pub struct Console<W: Write + Send> {
    out: W,
    quiet: bool,
}

impl<W: Write + Send> Console<W> {
    pub fn new(out: W, quiet: bool) -> Self {
        Console { out, quiet }
    }
}

impl<W: Write + Send> Sink for Console<W> {
    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        match e {
            Event::RunStarted { run_id, plan, profile } => {
                writeln!(self.out, "run {run_id}: plan {plan} on {profile}")?;
            }
            Event::StepEnded { head, test_step, engine, verdict, passed, detail } => {
                let mark = match (*passed, verdict.as_str()) {
                    (true, "skipped") => "SKIP",
                    (true, _) => "PASS",
                    (false, "error") => "ERR ",
                    (false, "blocked") => "BLKD",
                    (false, "not-run") => "NRUN",
                    (false, _) => "FAIL",
                };
                let what = if engine == "case" { String::new() } else { format!("{engine} ") };
                writeln!(self.out, "{mark} {test_step:<28} {what}[{head}] {detail}")?;
            }
            Event::HeadError { head, error } => writeln!(self.out, "     head {head}: {error}")?,
            Event::Recovered { head, detail, settled } => {
                let what = if *settled { "settled" } else { "not settled, head stays blocked" };
                writeln!(self.out, "     head {head}: recovery {what}: {detail}")?
            }
            _ => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
