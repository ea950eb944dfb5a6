//! The live trace as the UI keeps it: a bounded window of recent exchanges (the full trace is
//! in each card's CSV; a filter reads those too, `scan`), the filters and the `/` search,
//! and which exchange a failed case failed on.

use crate::event::{Exchange, RowKind};
use crate::sw::{self, SwClass};
use std::collections::VecDeque;
use std::sync::Arc;

/// Rows kept in memory; older ones are in the per-card trace CSVs.
pub const DEFAULT_WINDOW: usize = 10_000;

#[derive(Debug, Clone)]
pub struct TraceRow {
    /// Position in the UI's stream, increasing; survives eviction of earlier rows.
    pub id: u64,
    /// The card under test this exchange belongs to (for a peer head too).
    pub card: Arc<str>,
    /// The DUT head (worker) the exchange ran for.
    pub worker: Arc<str>,
    pub x: Box<Exchange>,
    /// The test case this exchange ran in failed.
    pub failed: bool,
    /// The exchange its failed case failed on (marked ✗).
    pub failing: bool,
    /// The row ends its command: no GET RESPONSE or re-send row follows it, so its SW is the
    /// command's final one. False for power, card and step rows.
    pub final_sw: bool,
    /// Not an exchange: this many exchanges before it were not shown live (`batch::forward`).
    pub gap: u64,
}

impl TraceRow {
    pub fn command_name(&self) -> &'static str {
        command_name(&self.x.command)
    }

    pub fn class(&self) -> SwClass {
        sw::class(self.x.sw)
    }

    /// A wire row whose SW is its command's final one.
    pub fn is_final(&self) -> bool {
        self.x.kind.is_wire() && self.final_sw
    }

    /// The card the row's own head talked to: the exchange's card ID (a peer head's rows name
    /// the peer card), else the card under test of its worker (rows before identification).
    pub fn card_shown(&self) -> &str {
        if self.x.card_id.is_empty() {
            &self.card
        } else {
            &self.x.card_id
        }
    }

    /// A row as read back from a card's trace file.
    pub fn from_file(id: u64, worker: Arc<str>, card: Arc<str>, x: Exchange) -> TraceRow {
        let final_sw = x.kind.is_wire();
        TraceRow { id, card, worker, x: Box::new(x), failed: false, failing: false, final_sw, gap: 0 }
    }
}

pub fn command_name(cmd: &[u8]) -> &'static str {
    match cmd {
        [cla, ins, ..] => crate::cmds::name(*cla, *ins),
        _ => "UNKNOWN",
    }
}

fn gap_note(n: u64) -> String {
    format!("… {n} exchanges of passed cases not shown live (too fast to follow): in the card's trace CSV; filters and / read them")
}

#[derive(Debug, Clone)]
pub struct TraceLog {
    rows: VecDeque<TraceRow>,
    cap: usize,
    next_id: u64,
    /// Exchanges seen since the UI started (kept or not).
    pub total: u64,
    /// Per worker: its name and its current card, shared by its rows (no allocation per
    /// row), and the id of the card's first row.
    names: Vec<(Arc<str>, Arc<str>, u64)>,
}

impl Default for TraceLog {
    fn default() -> Self {
        TraceLog::with_window(DEFAULT_WINDOW)
    }
}

impl TraceLog {
    pub fn with_window(cap: usize) -> TraceLog {
        TraceLog {
            rows: VecDeque::with_capacity(cap.min(4096)),
            cap: cap.max(1),
            next_id: 0,
            total: 0,
            names: Vec::new(),
        }
    }

    pub fn window(&self) -> usize {
        self.cap
    }

    pub fn push(&mut self, worker: &str, card: &str, x: Box<Exchange>) {
        self.total += 1;
        if matches!(x.kind, RowKind::GetResponse | RowKind::Resend6C) {
            // The command it continues no longer holds the final SW.
            if let Some(p) = self.rows.iter_mut().rev().take(FOLD_BACK).find(|r| r.x.head == x.head) {
                p.final_sw = false;
            }
        }
        let final_sw = x.kind.is_wire();
        self.append(worker, card, 1, x, final_sw, 0);
    }

    /// `n` exchanges of `worker`'s card that were not handed over (`batch::forward`): counted,
    /// and a row in the window says where they were.
    pub fn skipped(&mut self, worker: &str, card: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.total += n;
        if let Some(last) = self.rows.back_mut().filter(|r| r.gap > 0 && &*r.worker == worker) {
            last.gap += n;
            last.x.note = gap_note(last.gap);
            self.next_id += n;
            return;
        }
        let x = Box::new(Exchange {
            head: worker.to_string(),
            kind: RowKind::Step,
            note: gap_note(n),
            ..Exchange::default()
        });
        self.append(worker, card, n, x, false, n);
    }

    /// A row at the end of the window (the oldest goes when it is full); ids advance by
    /// `advance`, the exchanges it stands for.
    fn append(&mut self, worker: &str, card: &str, advance: u64, x: Box<Exchange>, final_sw: bool, gap: u64) {
        if self.rows.len() == self.cap {
            self.rows.pop_front();
        }
        self.next_id += advance;
        let (worker, card) = self.names(worker, card);
        self.rows.push_back(TraceRow {
            id: self.next_id,
            card,
            worker,
            x,
            failed: false,
            failing: false,
            final_sw,
            gap,
        });
    }

    fn names(&mut self, worker: &str, card: &str) -> (Arc<str>, Arc<str>) {
        let id = self.next_id;
        match self.names.iter_mut().find(|(w, _, _)| &**w == worker) {
            Some((w, c, first)) => {
                if &**c != card {
                    *c = Arc::from(card);
                    *first = id;
                }
                (w.clone(), c.clone())
            }
            None => {
                let (w, c) = (Arc::<str>::from(worker), Arc::<str>::from(card));
                self.names.push((w.clone(), c.clone(), id));
                (w, c)
            }
        }
    }

    /// Mark the kept exchanges of a failed case, and the one it failed on (only the card's
    /// own rows are looked at).
    pub fn mark_failed(&mut self, card: &str, test_step: &str) {
        let first = self.names.iter().find(|(_, c, _)| &**c == card).map_or(0, |(_, _, f)| *f);
        let n = self.rows.len();
        let mut case_rows: Vec<usize> = Vec::new();
        for (back, r) in self.rows.iter_mut().rev().enumerate().take_while(|(_, r)| r.id >= first) {
            if &*r.card == card && r.x.test_step == test_step {
                r.failed = true;
                case_rows.push(n - 1 - back);
            }
        }
        let mut pick = Pick::default();
        for &i in case_rows.iter().rev() {
            let r = &self.rows[i];
            pick.see(i, &r.x, r.final_sw);
        }
        if let Some(r) = pick.best().and_then(|i| self.rows.get_mut(i)) {
            r.failing = true;
        }
    }

    pub fn rows(&self) -> &VecDeque<TraceRow> {
        &self.rows
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn clear(&mut self) {
        self.rows.clear();
    }

    /// Indices (into `rows()`) of the rows the filter lets through, oldest first.
    pub fn visible(&self, f: &TraceFilter) -> Vec<usize> {
        self.rows.iter().enumerate().filter(|(_, r)| f.matches(r)).map(|(i, _)| i).collect()
    }

    /// Heads seen in the window, in name order.
    pub fn heads(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rows.iter().map(|r| r.x.head.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// What the Trace panel shows: every field is one more condition (all must hold). Status-word
/// conditions look at a command's *final* status word, the one of the last row of its
/// exchange (after the link's GET RESPONSE rounds on 61xx and re-send on 6Cxx), so `61xx`
/// and the `6Cxx` answers the link retries are never taken for a command's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFilter {
    pub head: Option<String>,
    pub card: Option<String>,
    pub class: Option<SwClass>,
    /// Final SW other than 9000 (a command in doubt has none: it counts).
    pub not_ok: bool,
    /// Final SW equal to this value.
    pub sw: Option<u16>,
    /// Command name (`cmds::name`), exact.
    pub command: Option<String>,
    /// Test case, exact.
    pub case: Option<String>,
    /// Only the exchanges a failed case failed on (marked ✗).
    pub failures_only: bool,
    /// The `/` search as typed; `terms` is it parsed.
    pub text: String,
    terms: Vec<Term>,
}

/// One word of a `/` search.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    /// Upper-cased text found in any column (head, card, case, seed step, command, SW, meaning).
    Any(String),
    Head(String),
    Card(String),
    Case(String),
    Step(String),
    Command(String),
    /// Final SW: `9000`, `6Axx` (x any digit), `!9000` (anything else).
    Sw {
        pattern: String,
        negated: bool,
    },
}

impl Term {
    fn parse(word: &str) -> Term {
        let up = word.to_uppercase();
        let Some((key, value)) = up.split_once(':') else { return Term::Any(up) };
        let v = value.to_string();
        match key {
            "HEAD" | "H" => Term::Head(v),
            "CARD" => Term::Card(v),
            "CASE" => Term::Case(v),
            "STEP" | "SEED" => Term::Step(v),
            "CMD" | "COMMAND" => Term::Command(v),
            "SW" => match v.strip_prefix('!') {
                Some(p) => Term::Sw { pattern: p.to_string(), negated: true },
                None => Term::Sw { pattern: v, negated: false },
            },
            _ => Term::Any(up),
        }
    }

    fn matches(&self, r: &TraceRow) -> bool {
        let has = |field: &str, want: &str| field.to_uppercase().contains(want);
        match self {
            Term::Any(t) => {
                has(&r.x.head, t)
                    || has(r.card_shown(), t)
                    || has(&r.x.test_step, t)
                    || has(&r.x.protocol_step, t)
                    || has(r.command_name(), t)
                    || (r.x.kind.is_wire()
                        && r.x.kind != RowKind::InDoubt
                        && format!("{:04X}", r.x.sw).contains(t.as_str()))
                    || (r.x.kind.is_wire() && has(&sw::describe(r.x.sw), t))
            }
            Term::Head(t) => has(&r.x.head, t),
            Term::Card(t) => has(r.card_shown(), t),
            Term::Case(t) => has(&r.x.test_step, t),
            Term::Step(t) => has(&r.x.protocol_step, t),
            Term::Command(t) => has(r.command_name(), t),
            Term::Sw { pattern, negated } => r.is_final() && (sw_pattern(pattern, r) != *negated),
        }
    }
}

/// `9000`, `6A82`, `6Axx` / `6A..` (any last digits) against a row's SW; an in-doubt row has
/// no SW and matches no pattern.
fn sw_pattern(pattern: &str, r: &TraceRow) -> bool {
    if r.x.kind == RowKind::InDoubt {
        return false;
    }
    let sw = format!("{:04X}", r.x.sw);
    pattern.len() == 4 && pattern.chars().zip(sw.chars()).all(|(p, c)| p == c || p == 'X' || p == '.')
}

impl TraceFilter {
    pub fn matches(&self, r: &TraceRow) -> bool {
        let x = &r.x;
        (r.gap == 0 || self.is_empty())
            && self.head.as_ref().is_none_or(|h| *h == x.head)
            // A card's own rows and the rows made for it (its peer's).
            && self.card.as_deref().is_none_or(|c| c == r.card_shown() || c == &*r.card)
            && self.class.is_none_or(|c| r.is_final() && x.kind != RowKind::InDoubt && c == r.class())
            && (!self.not_ok || (r.is_final() && (x.kind == RowKind::InDoubt || x.sw != sw::OK)))
            && self.sw.is_none_or(|s| r.is_final() && x.kind != RowKind::InDoubt && x.sw == s)
            && self.command.as_deref().is_none_or(|c| x.kind.is_wire() && c == r.command_name())
            && self.case.as_deref().is_none_or(|c| c == x.test_step)
            && (!self.failures_only || r.failing)
            && self.terms.iter().all(|t| t.matches(r))
    }

    pub fn is_empty(&self) -> bool {
        *self == TraceFilter::default()
    }

    /// Set the `/` search text (words: free text, or `head:` `card:` `case:` `step:` `cmd:`
    /// `sw:` conditions, all of which must hold).
    pub fn set_text(&mut self, text: &str) {
        self.text = text.to_string();
        self.terms = text.split_whitespace().map(Term::parse).collect();
    }

    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(h) = &self.head {
            v.push(format!("head={h}"));
        }
        if let Some(c) = &self.card {
            v.push(format!("card={c}"));
        }
        if let Some(c) = &self.case {
            v.push(format!("case={c}"));
        }
        if let Some(c) = &self.command {
            v.push(format!("cmd={c}"));
        }
        if let Some(c) = self.class {
            v.push(format!("sw={}", c.name()));
        }
        if self.not_ok {
            v.push("sw≠9000".into());
        }
        if let Some(s) = self.sw {
            v.push(format!("sw={s:04X}"));
        }
        if self.failures_only {
            v.push("failures".into());
        }
        if !self.text.trim().is_empty() {
            v.push(format!("/{}", self.text.trim()));
        }
        v.join(" ")
    }
}

/// The SW classes a filter cycles through, after "all".
pub const CLASSES: [SwClass; 5] =
    [SwClass::Normal, SwClass::Warning, SwClass::ExecutionError, SwClass::CheckingError, SwClass::Proprietary];

/// Work out, over the rows of one card's trace in file order, which rows end their command
/// (`final_sw`) and which exchange each failed case failed on (`failing`; every row of such
/// a case gets `failed`).
pub fn settle(rows: &mut [TraceRow], failed_cases: &[String]) {
    let xs: Vec<&Exchange> = rows.iter().map(|r| &*r.x).collect();
    let finals = finals(&xs);
    let failing = failing_rows(&xs, &finals, failed_cases);
    for (i, r) in rows.iter_mut().enumerate() {
        r.final_sw = finals[i];
        r.failed = failed_cases.contains(&r.x.test_step);
        r.failing = failing.contains(&i);
    }
}

/// Per row of a trace in file order: whether it is a wire row whose SW is its command's
/// final one (no GET RESPONSE or re-send row of its head continues it).
pub fn finals(xs: &[&Exchange]) -> Vec<bool> {
    let mut v: Vec<bool> = xs.iter().map(|x| x.kind.is_wire()).collect();
    for i in 0..xs.len() {
        if matches!(xs[i].kind, RowKind::GetResponse | RowKind::Resend6C) {
            let from = i.saturating_sub(FOLD_BACK);
            if let Some(p) = (from..i).rev().find(|&p| xs[p].head == xs[i].head) {
                v[p] = false;
            }
        }
    }
    v
}

/// The rows (indices) each failed case failed on: the case's last command whose final SW is
/// not normal (or that got no answer), else its last command (a check on the answer's
/// content failed).
pub fn failing_rows(xs: &[&Exchange], finals: &[bool], failed_cases: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    for case in failed_cases {
        let mut pick = Pick::default();
        for (i, x) in xs.iter().enumerate() {
            if x.test_step == *case {
                pick.see(i, x, finals[i]);
            }
        }
        out.extend(pick.best());
    }
    out
}

/// How far back a GET RESPONSE or re-send row looks for the command it continues (rows of
/// other heads may come between).
const FOLD_BACK: usize = 64;

#[derive(Default)]
struct Pick {
    last_bad: Option<usize>,
    last: Option<usize>,
}

impl Pick {
    fn see(&mut self, i: usize, x: &Exchange, final_sw: bool) {
        if !x.kind.is_wire() || !final_sw {
            return;
        }
        self.last = Some(i);
        if x.kind == RowKind::InDoubt || sw::class(x.sw) != SwClass::Normal {
            self.last_bad = Some(i);
        }
    }

    fn best(&self) -> Option<usize> {
        self.last_bad.or(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(head: &str, sw: u16) -> Box<Exchange> {
        Box::new(Exchange {
            seq: 1,
            wall: chrono::DateTime::default(),
            mono_ns: 0,
            head: head.into(),
            card_id: String::new(),
            test_step: "T1".into(),
            protocol_step: "S1".into(),
            command: vec![0x80, 0xB2, 0x02, 0x00, 0x04],
            response: vec![],
            sw,
            duration_ns: 1000,
            note: String::new(),
            ..Exchange::default()
        })
    }

    fn view(t: &TraceLog, f: &TraceFilter) -> Vec<u64> {
        t.rows().iter().filter(|r| f.matches(r)).map(|r| r.id).collect()
    }

    #[test]
    fn window_and_filters() {
        let mut t = TraceLog::with_window(3);
        t.push("D1", "C1", x("D1", 0x9000));
        t.push("D2", "C2", x("D2", 0x6A80));
        t.push("D1", "C1", x("D1.peer", 0x9000));
        t.push("D1", "C3", x("D1", 0x9000));
        assert_eq!(t.len(), 3);
        assert_eq!(t.total, 4);
        assert_eq!(t.rows()[0].id, 2);
        let f = TraceFilter { class: Some(SwClass::CheckingError), ..Default::default() };
        assert_eq!(view(&t, &f), vec![2]);
        t.mark_failed("C1", "T1");
        let f = TraceFilter { failures_only: true, ..Default::default() };
        assert_eq!(view(&t, &f), vec![3], "the case's only command is the one it failed on");
        assert_eq!(t.heads(), vec!["D1", "D1.peer", "D2"]);
    }

    #[test]
    fn final_sw_after_61xx_and_6cxx() {
        let mut t = TraceLog::with_window(10);
        let mut gr = x("D1", 0x6A82);
        gr.kind = RowKind::GetResponse;
        t.push("D1", "C1", x("D1", 0x6110));
        t.push("D1", "C1", x("D2", 0x9000));
        t.push("D1", "C1", gr);
        t.push("D1", "C1", x("D1", 0x6C04));
        let mut rs = x("D1", 0x9000);
        rs.kind = RowKind::Resend6C;
        t.push("D1", "C1", rs);
        let f = TraceFilter { not_ok: true, ..Default::default() };
        assert_eq!(view(&t, &f), vec![3], "61xx and 6Cxx are not final; the GET RESPONSE's 6A82 is");
        let mut f = TraceFilter::default();
        f.set_text("sw:6Axx d1");
        assert_eq!(view(&t, &f), vec![3]);
        f.set_text("sw:!9000");
        assert_eq!(view(&t, &f), vec![3]);
        f.set_text("cmd:read");
        assert_eq!(view(&t, &f).len(), 5);
    }
}
