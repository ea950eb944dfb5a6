//! Consumers of run events: the CSV trace, the console, later the TUI. One thread drains
//! the channel and hands every event to each sink in order.

use crate::event::Event;
use crossbeam_channel::Receiver;
use std::io::Write;
use std::thread::JoinHandle;

pub trait Sink: Send {
    fn event(&mut self, e: &Event) -> std::io::Result<()>;

    /// The last sink of the list gets each event by value, so a sink that forwards events
    /// (to a front end) does not copy every exchange.
    fn event_owned(&mut self, e: Event) -> std::io::Result<()> {
        self.event(&e)
    }
}

/// Drain `rx` until every sender is gone. A sink that fails is reported once and dropped;
/// the others carry on.
pub fn spawn(rx: Receiver<Event>, sinks: Vec<Box<dyn Sink>>) -> JoinHandle<Vec<String>> {
    std::thread::Builder::new()
        .name("cardbench-sinks".into())
        .spawn(move || {
            let mut sinks: Vec<Option<Box<dyn Sink>>> = sinks.into_iter().map(Some).collect();
            let mut errors = Vec::new();
            for e in rx {
                let Some(last) = sinks.iter().rposition(Option::is_some) else { continue };
                let (before, rest) = sinks.split_at_mut(last);
                for slot in before.iter_mut() {
                    if let Some(s) = slot {
                        if let Err(err) = s.event(&e) {
                            errors.push(err.to_string());
                            *slot = None;
                        }
                    }
                }
                if let Some(s) = &mut rest[0] {
                    if let Err(err) = s.event_owned(e) {
                        errors.push(err.to_string());
                        rest[0] = None;
                    }
                }
            }
            errors
        })
        .expect("spawn sink thread")
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
                    (false, _) => "FAIL",
                };
                let what = if engine == "case" { String::new() } else { format!("{engine} ") };
                writeln!(self.out, "{mark} {test_step:<28} {what}[{head}] {detail}")?;
            }
            Event::HeadError { head, error } => writeln!(self.out, "     head {head}: {error}")?,
            _ => {}
        }
        self.out.flush()
    }
}
