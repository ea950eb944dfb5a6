//! What a card's run tells a front end watching the batch (the TUI): every event but the
//! exchanges as they come, and the exchanges as many as a person can follow.
//!
//! A virtual card answers tens of thousands of exchanges a second; handing each one to the
//! UI thread cost the batch 8-10 % of its time on a two-core machine, for rows that scroll
//! past unseen (the card's trace CSV holds every one, and the UI's filters read it). So rows
//! go live within a budget of `RATE` a second per card, which a real card never reaches.
//! Past it, the rest of the case's rows are held back: if the case fails they all go (its
//! last `CASE_KEEP`, failing exchange included, so a failure is never missing from the live
//! view); if it passes they are summed up in a [`Skipped`]: how many, their command times
//! (the Timing panel still counts every command), the last seed step.

use super::BatchEvent;
use crate::event::{Event, Exchange};
use crossbeam_channel::Sender;
use std::collections::VecDeque;
use std::time::Instant;

/// Rows per second and card that go live (a real card answers a few hundred commands a
/// second at most), and the burst a card may spend at once.
pub const RATE: f64 = 1_000.0;
const BURST: f64 = 100.0;
/// Rows of a held-back case kept for its failure.
pub const CASE_KEEP: usize = 256;

/// Exchanges not shown live, in the order they happened: what a front end needs of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub exchanges: u64,
    /// Per head (the DUT's, its peers') and command: the durations of the timed commands
    /// among them, in order.
    pub times: Vec<(String, &'static str, Vec<u64>)>,
    /// The last seed step among them, when one was named.
    pub protocol_step: Option<String>,
}

impl Skipped {
    fn add(&mut self, x: &Exchange) {
        self.exchanges += 1;
        if let Some((cmd, ns)) = x.command_time() {
            // Command names are static: the pointer tells them apart.
            match self.times.iter_mut().find(|(h, c, _)| std::ptr::eq(*c, cmd) && *h == x.head) {
                Some((_, _, v)) => v.push(ns),
                None => self.times.push((x.head.clone(), cmd, vec![ns])),
            }
        }
        if !x.protocol_step.is_empty() && self.protocol_step.as_deref() != Some(&x.protocol_step) {
            self.protocol_step = Some(x.protocol_step.clone());
        }
    }
}

/// Token bucket of live rows.
struct Budget {
    tokens: f64,
    at: Instant,
    /// Tokens a second (`RATE`), and at most (`BURST`).
    rate: f64,
    burst: f64,
}

impl Budget {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The sink on a card's sinks thread that feeds the front end.
pub struct Forward {
    tx: Sender<BatchEvent>,
    head: String,
    card_id: String,
    budget: Budget,
    /// The current case went over budget: its rows wait for its end.
    holding: bool,
    held: VecDeque<Box<Exchange>>,
    skipped: Skipped,
}

impl Forward {
    pub fn new(tx: Sender<BatchEvent>, head: &str, card_id: &str) -> Forward {
        Forward {
            tx,
            head: head.into(),
            card_id: card_id.into(),
            budget: Budget { tokens: BURST, at: Instant::now(), rate: RATE, burst: BURST },
            holding: false,
            held: VecDeque::new(),
            skipped: Skipped::default(),
        }
    }

    fn send(&self, event: Event) {
        // A front end that went away must not stop the batch.
        let _ = self.tx.send(BatchEvent::Run { head: self.head.clone(), card_id: self.card_id.clone(), event });
    }

    /// Hand over the summary of the rows dropped so far, before anything that came after them.
    fn send_skipped(&mut self) {
        if self.skipped.exchanges > 0 {
            let skipped = std::mem::take(&mut self.skipped);
            let _ =
                self.tx.send(BatchEvent::Skipped { head: self.head.clone(), card_id: self.card_id.clone(), skipped });
        }
    }

    /// The held-back case ended: its rows go live (failed) or are summed up (passed).
    fn release(&mut self, failed: bool) {
        self.holding = false;
        if failed {
            self.send_skipped();
            for x in std::mem::take(&mut self.held) {
                self.send(Event::Exchange(x));
            }
        } else {
            for x in std::mem::take(&mut self.held) {
                self.skipped.add(&x);
            }
        }
    }
}

impl crate::sinks::Sink for Forward {
    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        self.event_owned(e.clone())
    }

    fn event_owned(&mut self, e: Event) -> std::io::Result<()> {
        match e {
            Event::Exchange(x) if !self.holding && self.budget.take() => {
                self.send_skipped();
                self.send(Event::Exchange(x));
            }
            Event::Exchange(x) => {
                self.holding = true;
                if self.held.len() == CASE_KEEP {
                    if let Some(old) = self.held.pop_front() {
                        self.skipped.add(&old);
                    }
                }
                self.held.push_back(x);
            }
            e => {
                if let Event::StepEnded { passed, .. } = &e {
                    self.release(!passed);
                } else if self.holding && matches!(e, Event::StepStarted { .. } | Event::RunEnded { .. }) {
                    // Rows held outside a case (none expected) are summed up.
                    self.release(false);
                }
                self.send_skipped();
                self.send(e);
            }
        }
        Ok(())
    }

    /// After each batch the sinks thread handles: the counts and times of rows dropped so far
    /// reach the front end now, not at the case's end.
    fn flush(&mut self) -> std::io::Result<()> {
        self.send_skipped();
        Ok(())
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.release(false);
        self.send_skipped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RowKind;
    use crate::sinks::Sink;

    fn row(seq: u64, ins: u8, ns: u64) -> Event {
        Event::Exchange(Box::new(Exchange {
            seq,
            head: "D1".into(),
            test_step: "CASE".into(),
            protocol_step: format!("S{seq}"),
            command: vec![0x80, ins, 0, 0],
            sw: 0x9000,
            duration_ns: ns,
            kind: RowKind::Command,
            ..Exchange::default()
        }))
    }

    fn case(f: &mut Forward, rows: u64, passed: bool) {
        let head = "D1".to_string();
        f.event_owned(Event::StepStarted { head: head.clone(), test_step: "CASE".into(), engine: "plan".into() })
            .unwrap();
        for i in 1..=rows {
            f.event_owned(row(i, 0xB0, i)).unwrap();
        }
        let ended = Event::StepEnded {
            head,
            test_step: "CASE".into(),
            engine: "plan".into(),
            verdict: if passed { "pass" } else { "fail" }.into(),
            passed,
            detail: String::new(),
        };
        f.event_owned(ended).unwrap();
        f.flush().unwrap();
    }

    /// What reached the front end: live rows (their seq), and the skipped summaries.
    fn received(rx: &crossbeam_channel::Receiver<BatchEvent>) -> (Vec<u64>, Vec<Skipped>) {
        let (mut live, mut skipped) = (Vec::new(), Vec::new());
        for e in rx.try_iter() {
            match e {
                BatchEvent::Run { event: Event::Exchange(x), .. } => live.push(x.seq),
                BatchEvent::Skipped { skipped: s, .. } => skipped.push(s),
                _ => {}
            }
        }
        (live, skipped)
    }

    #[test]
    fn a_passing_case_past_the_budget_is_summed_up_with_every_command_time() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut f = Forward::new(tx, "D1", "CARD");
        (f.budget.tokens, f.budget.rate) = (10.0, 0.0);
        case(&mut f, 1000, true);
        let (live, skipped) = received(&rx);
        assert_eq!(live, (1..=10).collect::<Vec<_>>());
        let n: u64 = skipped.iter().map(|s| s.exchanges).sum();
        assert_eq!(n, 990);
        let times: Vec<u64> = skipped.iter().flat_map(|s| s.times.iter().flat_map(|t| t.2.clone())).collect();
        assert_eq!(times, (11..=1000).collect::<Vec<_>>(), "every skipped command's duration, in order");
        assert!(skipped.iter().all(|s| s.times.iter().all(|t| t.0 == "D1" && t.1 == crate::cmds::name(0x80, 0xB0))));
        assert_eq!(skipped.last().unwrap().protocol_step.as_deref(), Some("S1000"));
    }

    #[test]
    fn a_failing_case_past_the_budget_hands_over_its_last_rows_failing_one_included() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut f = Forward::new(tx, "D1", "CARD");
        (f.budget.tokens, f.budget.rate) = (10.0, 0.0);
        case(&mut f, 1000, false);
        let (live, skipped) = received(&rx);
        let held = 1000 - CASE_KEEP as u64 + 1;
        assert_eq!(live, (1..=10).chain(held..=1000).collect::<Vec<_>>());
        assert_eq!(skipped.iter().map(|s| s.exchanges).sum::<u64>(), held - 11);
    }

    #[test]
    fn a_card_within_the_budget_goes_live_row_by_row() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut f = Forward::new(tx, "D1", "CARD");
        (f.budget.tokens, f.budget.burst) = (1e18, 1e18);
        case(&mut f, 500, true);
        let (live, skipped) = received(&rx);
        assert_eq!(live, (1..=500).collect::<Vec<_>>());
        assert!(skipped.is_empty());
    }
}
