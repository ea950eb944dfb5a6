//! What the batch reports, applied to the app: heads, trace window, timing, results, events.

use super::app::{App, HeadRow, LogKind, Phase};
use crate::batch::operator::HeadState;
use crate::batch::BatchEvent;
use crate::event::Event;
use crate::report::Verdict;

impl App {
    pub(super) fn batch_event(&mut self, e: BatchEvent) {
        match e {
            BatchEvent::Started { total, done, heads, earlier } => {
                // A resumed batch: its earlier verdicts belong in Results and the counts.
                // The heads count the whole batch too: each earlier card on the head that
                // certified it (a head no longer in the profile is listed, to keep the sums).
                for card in earlier {
                    match card.verdict {
                        Verdict::Pass => self.batch.pass += 1,
                        Verdict::Fail { .. } => self.batch.fail += 1,
                        Verdict::Aborted { .. } => self.batch.aborted += 1,
                    }
                    if self.head_mut(&card.head).is_none() {
                        self.heads.push(HeadRow { name: card.head.clone(), role: "dut".into(), ..HeadRow::default() });
                    }
                    if let Some(h) = self.head_mut(&card.head) {
                        match card.verdict {
                            Verdict::Pass => h.pass += 1,
                            Verdict::Fail { .. } => h.fail += 1,
                            Verdict::Aborted { .. } => h.aborted += 1,
                        }
                    }
                    let at = self.results.partition_point(|c| c.index < card.index);
                    if self.results.get(at).is_none_or(|c| c.index != card.index) {
                        self.results.insert(at, card);
                    }
                }
                if matches!(self.batch.phase, Phase::Idle | Phase::Starting) {
                    self.batch.phase = Phase::Running;
                }
                self.batch.total = total;
                self.batch.done_before = done;
                self.batch.started = Some(self.now.mono);
                for h in &heads {
                    if self.head_mut(h).is_none() {
                        self.heads.push(HeadRow { name: h.clone(), role: "dut".into(), ..HeadRow::default() });
                    }
                }
                let resumed = if done > 0 { format!(", {done} certified earlier (resumed)") } else { String::new() };
                self.log(
                    LogKind::Batch,
                    format!("batch {} started: {total} cards on {}{resumed}", self.batch.id, heads.join(", ")),
                );
            }
            BatchEvent::CardInserted { head, index, card_id, atr } => {
                let line = format!("card {card_id} #{index} in {head}");
                let mut hold = false;
                if let Some(h) = self.head_mut(&head) {
                    h.present = Some(true);
                    h.card_id = card_id.clone();
                    h.atr = (!atr.is_empty()).then_some(atr);
                    h.case.clear();
                    h.step.clear();
                    // The previous card's verdict comes after this insertion (the engine
                    // journals it first): its removal line goes first.
                    hold = !h.in_flight.is_empty();
                    h.in_flight.push(index);
                }
                if hold {
                    self.held_inserts.push((head, line));
                } else {
                    self.log(LogKind::Inserted, line);
                }
            }
            BatchEvent::Run { head, card_id, event } => self.run_event(&head, &card_id, event),
            BatchEvent::Skipped { head, card_id, skipped } => {
                if let (Some(h), Some(step)) = (self.head_mut(&head), skipped.protocol_step) {
                    h.step = step;
                }
                for (head, cmd, ns) in &skipped.times {
                    self.timing.record_all(head, cmd, ns);
                }
                self.trace.skipped(&head, &card_id, skipped.exchanges);
            }
            BatchEvent::CardDone(card) => {
                let card = *card;
                self.batch.certified += 1;
                let (word, detail) = match &card.verdict {
                    Verdict::Pass => {
                        self.batch.pass += 1;
                        ("pass", String::new())
                    }
                    Verdict::Fail { failing } => {
                        self.batch.fail += 1;
                        ("fail", format!(" ({})", failing.join(", ")))
                    }
                    Verdict::Aborted { reason } => {
                        self.batch.aborted += 1;
                        ("aborted", format!(" ({reason})"))
                    }
                };
                let mut release = false;
                if let Some(h) = self.head_mut(&card.head) {
                    h.in_flight.retain(|i| *i != card.index);
                    // A virtual head's card is taken out by the feeder; a real reader's stays
                    // until the operator takes it (the presence watch says when). A verdict
                    // that comes after the next card went in leaves that card shown.
                    let next_in = !h.in_flight.is_empty();
                    release = next_in;
                    if !h.real() && !next_in {
                        h.present = Some(false);
                        h.atr = None;
                    }
                    if !next_in {
                        h.case.clear();
                        h.step.clear();
                    }
                    // A card with a verdict leaves the head in order: a head error the plan
                    // provoked and expected (a mute card) is no fault of the head.
                    match &card.verdict {
                        Verdict::Pass => {
                            h.pass += 1;
                            h.fault.clear();
                        }
                        Verdict::Fail { .. } => {
                            h.fail += 1;
                            h.fault.clear();
                        }
                        Verdict::Aborted { reason } => {
                            h.aborted += 1;
                            h.fault = reason.clone();
                        }
                    }
                }
                self.log(
                    LogKind::Removed,
                    format!("card {} #{} out of {}: {word}{detail}", card.card_id, card.index, card.head),
                );
                if release {
                    if let Some(i) = self.held_inserts.iter().position(|(h, _)| *h == card.head) {
                        let (_, line) = self.held_inserts.remove(i);
                        self.log(LogKind::Inserted, line);
                    }
                }
                let at = self.results.partition_point(|c| c.index < card.index);
                if self.results.get(at).is_some_and(|c| c.index == card.index) {
                    self.results[at] = card;
                } else {
                    self.results.insert(at, card);
                }
            }
            BatchEvent::Notice(msg) => self.log(LogKind::Info, msg),
            BatchEvent::Head { head, reader, real, state } => self.head_state(head, reader, real, state),
            BatchEvent::Finished { stopped } => {
                self.batch.workers_done = true;
                for (_, line) in std::mem::take(&mut self.held_inserts) {
                    self.log(LogKind::Inserted, line);
                }
                let how = if stopped { "stopped by the operator" } else { "every card done" };
                self.log(LogKind::Batch, format!("workers finished ({how}); writing reports"));
            }
        }
    }

    /// A DUT head's operator state: shown in Heads, prompts logged (and the bell rung).
    fn head_state(&mut self, head: String, reader: String, real: bool, state: HeadState) {
        let bell = self.bell;
        let Some(h) = self.head_mut(&head) else { return };
        if real && !reader.is_empty() {
            h.reader = reader;
        }
        match &state {
            HeadState::Testing { card_id, .. } => {
                h.present = Some(true);
                h.card_id.clone_from(card_id);
                h.case.clear();
                h.step.clear();
                h.fault.clear();
            }
            HeadState::Fault(why) => h.fault.clone_from(why),
            // Waiting after a removal: the worker saw the card go (PN532 heads have no
            // presence watch during a batch; this is how their row learns it).
            HeadState::Waiting { .. } if matches!(h.state, Some(HeadState::Remove { .. })) => {
                h.present = Some(false);
                h.atr = None;
            }
            _ => {}
        }
        let changed = h.state.as_ref() != Some(&state);
        h.state = Some(state);
        let prompt = h.prompt();
        if let (true, Some(p)) = (changed, prompt) {
            self.ring |= bell;
            self.log(LogKind::Info, format!("{head}: {p}"));
        }
    }

    fn run_event(&mut self, head: &str, card_id: &str, event: Event) {
        match event {
            Event::Exchange(x) => {
                if let Some(h) = self.head_mut(head) {
                    if h.step != x.protocol_step {
                        h.step.clone_from(&x.protocol_step);
                    }
                }
                if let Some((cmd, ns)) = x.command_time() {
                    self.timing.record(&x.head, cmd, ns);
                }
                self.trace.push(head, card_id, x);
            }
            Event::StepStarted { test_step, .. } => {
                if let Some(h) = self.head_mut(head) {
                    h.case = test_step;
                    h.step.clear();
                }
            }
            Event::ProtocolStep { protocol_step, .. } => {
                if let Some(h) = self.head_mut(head) {
                    h.step = protocol_step;
                }
            }
            Event::StepEnded { test_step, passed, .. } => {
                if !passed {
                    self.trace.mark_failed(card_id, &test_step);
                }
            }
            Event::HeadError { head: which, error } => {
                if let Some(h) = self.head_mut(head) {
                    h.fault = if which == head { error.clone() } else { format!("{which}: {error}") };
                }
                self.log(LogKind::Error, format!("head {which} (card {card_id}): {error}"));
            }
            Event::Recovered { head: which, detail, settled } => {
                let kind = if settled { LogKind::Info } else { LogKind::Error };
                self.log(kind, format!("head {which} (card {card_id}): recovery: {detail}"));
            }
            Event::RunStarted { .. } | Event::RunEnded { .. } | Event::ReplayChecked { .. } => {}
        }
    }
}
