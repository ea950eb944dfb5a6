//! The operator at a real reader: what each head of a batch is doing and what the operator
//! must do for it (insert the next card, take a card out), for the headless console and the
//! TUI alike, with the counts per head.

use crate::event::Event;
use crate::report::{CardResult, Verdict};
use crate::sinks::Sink;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What a head of a batch is doing, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadState {
    /// A real reader waits for the operator to insert the next card. `next`: the index the
    /// batch would hand out now (`None` when a shared store hands them out); the card gets
    /// its index only when a head detects it, so another head may take that one first.
    Waiting { next: Option<u64> },
    /// A card is in the head and the plan runs on it (the case in progress comes with the
    /// run's `StepStarted` events).
    Testing { index: u64, card_id: String },
    /// The card has its verdict; a real reader waits for the operator to take it out.
    Remove { index: u64, card_id: String, verdict: String },
    /// No more cards for this head.
    Done,
    /// The head's worker stopped: why.
    Fault(String),
}

impl HeadState {
    /// One word for tables and tests.
    pub fn word(&self) -> &'static str {
        match self {
            HeadState::Waiting { .. } => "waiting",
            HeadState::Testing { .. } => "testing",
            HeadState::Remove { .. } => "remove",
            HeadState::Done => "done",
            HeadState::Fault(_) => "fault",
        }
    }

    /// What the operator must do now, naming the head and its reader; `None` when nothing.
    pub fn prompt(&self, head: &str, reader: &str) -> Option<String> {
        match self {
            HeadState::Waiting { .. } => Some(format!("insert the next card in {head} (reader {reader})")),
            HeadState::Remove { card_id, verdict, .. } => {
                Some(format!("remove card {card_id} ({verdict}) from {head} (reader {reader})"))
            }
            _ => None,
        }
    }

    /// The state as one line (without the prompt's reader).
    pub fn describe(&self, case: &str) -> String {
        match self {
            HeadState::Waiting { next: Some(next) } => format!("waiting for card #{next}"),
            HeadState::Waiting { next: None } => "waiting for a card".into(),
            HeadState::Testing { card_id, .. } if case.is_empty() => format!("testing card {card_id}"),
            HeadState::Testing { card_id, .. } => format!("testing card {card_id} at {case}"),
            HeadState::Remove { card_id, verdict, .. } => format!("card {card_id} {verdict}: remove it"),
            HeadState::Done => "done".into(),
            HeadState::Fault(why) => format!("fault: {why}"),
        }
    }
}

/// Cards certified on one head in this run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadCounts {
    pub pass: u64,
    pub fail: u64,
    pub aborted: u64,
}

impl HeadCounts {
    pub fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Pass => self.pass += 1,
            Verdict::Fail { .. } => self.fail += 1,
            Verdict::Aborted { .. } => self.aborted += 1,
        }
    }
}

/// The headless side: operator lines on stderr for heads that need an operator (real
/// readers), the optional bell with each prompt, and the counts per head.
pub struct Console {
    /// Ring the terminal bell with each prompt.
    pub bell: bool,
    counts: Mutex<BTreeMap<String, HeadCounts>>,
}

impl Console {
    pub fn new(bell: bool) -> Console {
        Console { bell, counts: Mutex::new(BTreeMap::new()) }
    }

    /// The line to print for `state` of a real head, if any: prompts, the card detected, the
    /// head done or in fault.
    pub fn line(&self, head: &str, reader: &str, state: &HeadState) -> Option<String> {
        let bell = if self.bell { "\x07" } else { "" };
        match state {
            HeadState::Waiting { .. } | HeadState::Remove { .. } => {
                state.prompt(head, reader).map(|p| format!("[{head}] {p}{bell}"))
            }
            HeadState::Testing { index, card_id } => {
                Some(format!("[{head}] card {card_id} detected: testing (#{index})"))
            }
            HeadState::Done => {
                let c = self.counts(head);
                Some(format!("[{head}] done: {} pass, {} fail, {} aborted", c.pass, c.fail, c.aborted))
            }
            HeadState::Fault(why) => Some(format!("[{head}] fault: {why}")),
        }
    }

    pub fn card(&self, c: &CardResult) {
        self.counts.lock().expect("counts lock").entry(c.head.clone()).or_default().add(&c.verdict);
    }

    pub fn counts(&self, head: &str) -> HeadCounts {
        self.counts.lock().expect("counts lock").get(head).copied().unwrap_or_default()
    }

    /// `E 3 pass 1 fail 0 aborted` per head that certified a card in this run.
    pub fn summary(&self) -> Vec<String> {
        self.counts
            .lock()
            .expect("counts lock")
            .iter()
            .map(|(h, c)| format!("head {h}: {} pass, {} fail, {} aborted", c.pass, c.fail, c.aborted))
            .collect()
    }
}

/// The real heads' states, with the case under test, as one line under the progress bar on a
/// terminal (`E: testing card CB… at PURSE-CTR-01  |  F: waiting for card #4`).
#[derive(Clone)]
pub struct Board {
    bar: indicatif::ProgressBar,
    heads: Arc<Mutex<BTreeMap<String, (HeadState, String)>>>,
}

impl Board {
    /// The bar's template must show `{prefix}` (the line this board writes).
    pub fn new(bar: indicatif::ProgressBar) -> Board {
        Board { bar, heads: Arc::default() }
    }

    pub fn state(&self, head: &str, state: &HeadState) {
        let mut m = self.heads.lock().expect("board lock");
        m.insert(head.to_string(), (state.clone(), String::new()));
        self.redraw(&m);
    }

    fn case(&self, head: &str, case: &str) {
        let mut m = self.heads.lock().expect("board lock");
        if let Some((_, c)) = m.get_mut(head) {
            c.clear();
            c.push_str(case);
        }
        self.redraw(&m);
    }

    fn redraw(&self, m: &BTreeMap<String, (HeadState, String)>) {
        let line: Vec<String> = m.iter().map(|(h, (s, c))| format!("{h}: {}", s.describe(c))).collect();
        self.bar.set_prefix(line.join("  |  "));
    }

    /// A sink for a card's run on `head`: each case started shows on the board.
    pub fn sink(&self, head: &str) -> Box<dyn Sink> {
        Box::new(CaseSink { board: self.clone(), head: head.to_string() })
    }
}

struct CaseSink {
    board: Board,
    head: String,
}

impl Sink for CaseSink {
    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        if let Event::StepStarted { test_step, engine, .. } = e {
            if engine == "case" {
                self.board.case(&self.head, test_step);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_name_the_head_and_its_reader() {
        let w = HeadState::Waiting { next: Some(3) };
        assert_eq!(
            w.prompt("E", "cardbench vpcd 4 00 00").unwrap(),
            "insert the next card in E (reader cardbench vpcd 4 00 00)"
        );
        let r = HeadState::Remove { index: 3, card_id: "CB01".into(), verdict: "pass".into() };
        assert_eq!(r.prompt("E", "R").unwrap(), "remove card CB01 (pass) from E (reader R)");
        assert_eq!(HeadState::Done.prompt("E", "R"), None);
        let t = HeadState::Testing { index: 1, card_id: "CB01".into() };
        assert_eq!(t.describe("PURSE-01"), "testing card CB01 at PURSE-01");
    }

    #[test]
    fn the_bell_rings_with_prompts_only() {
        let c = Console::new(true);
        assert!(c.line("E", "R", &HeadState::Waiting { next: Some(1) }).unwrap().ends_with('\x07'));
        let t = HeadState::Testing { index: 1, card_id: "X".into() };
        assert!(!c.line("E", "R", &t).unwrap().contains('\x07'));
    }
}
