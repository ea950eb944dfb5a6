//! The live trace as the UI keeps it: a bounded window of recent exchanges (the full trace is
//! in each card's CSV), filters, and the decoding shown in rows and in the detail view.

use crate::event::Exchange;
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
}

impl TraceRow {
    pub fn command_name(&self) -> &'static str {
        command_name(&self.x.command)
    }

    pub fn class(&self) -> SwClass {
        sw::class(self.x.sw)
    }
}

pub fn command_name(cmd: &[u8]) -> &'static str {
    match cmd {
        [cla, ins, ..] => crate::cmds::name(*cla, *ins),
        _ => "UNKNOWN",
    }
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
        if self.rows.len() == self.cap {
            self.rows.pop_front();
        }
        self.next_id += 1;
        self.total += 1;
        let (worker, card) = self.names(worker, card);
        self.rows.push_back(TraceRow { id: self.next_id, card, worker, x, failed: false });
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

    /// Mark the kept exchanges of a failed case (only the card's own rows are looked at).
    pub fn mark_failed(&mut self, card: &str, test_step: &str) {
        let first = self.names.iter().find(|(_, c, _)| &**c == card).map_or(0, |(_, _, f)| *f);
        for r in self.rows.iter_mut().rev().take_while(|r| r.id >= first) {
            if &*r.card == card && r.x.test_step == test_step {
                r.failed = true;
            }
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFilter {
    pub head: Option<String>,
    pub card: Option<String>,
    pub class: Option<SwClass>,
    pub failures_only: bool,
}

impl TraceFilter {
    pub fn matches(&self, r: &TraceRow) -> bool {
        self.head.as_ref().is_none_or(|h| *h == r.x.head)
            && self.card.as_deref().is_none_or(|c| c == &*r.card)
            && self.class.is_none_or(|c| r.x.kind.is_wire() && c == r.class())
            && (!self.failures_only || r.failed)
    }

    pub fn is_empty(&self) -> bool {
        *self == TraceFilter::default()
    }

    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(h) = &self.head {
            v.push(format!("head={h}"));
        }
        if let Some(c) = &self.card {
            v.push(format!("card={c}"));
        }
        if let Some(c) = self.class {
            v.push(format!("sw={}", c.name()));
        }
        if self.failures_only {
            v.push("failures".into());
        }
        v.join(" ")
    }
}

/// The SW classes a filter cycles through, after "all".
pub const CLASSES: [SwClass; 5] =
    [SwClass::Normal, SwClass::Warning, SwClass::ExecutionError, SwClass::CheckingError, SwClass::Proprietary];

/// Decoded header fields of a command APDU: ("CLA", "80"), ("INS", "D2"), … ("Lc", "8").
pub fn header_fields(cmd: &[u8]) -> Vec<(&'static str, String)> {
    match crate::apdu::Command::parse(cmd) {
        Ok(c) => {
            let mut v = vec![
                ("CLA", format!("{:02X}", c.cla)),
                ("INS", format!("{:02X}", c.ins)),
                ("P1", format!("{:02X}", c.p1)),
                ("P2", format!("{:02X}", c.p2)),
            ];
            if !c.data.is_empty() {
                v.push(("Lc", c.data.len().to_string()));
            }
            if let Some(le) = c.le {
                v.push(("Le", le.to_string()));
            }
            v.push(("case", format!("{:?}", c.case()).to_lowercase()));
            if c.is_extended() {
                v.push(("length", "extended".into()));
            }
            v
        }
        Err(e) => vec![("parse", e.to_string())],
    }
}

/// Hex dump lines: "0000  80 D2 00 00 …", `per_line` bytes each.
pub fn hex_lines(bytes: &[u8], per_line: usize) -> Vec<String> {
    if bytes.is_empty() {
        return vec!["(none)".into()];
    }
    bytes
        .chunks(per_line.max(1))
        .enumerate()
        .map(|(i, c)| {
            let hex: Vec<String> = c.iter().map(|b| format!("{b:02X}")).collect();
            format!("{:04X}  {}", i * per_line, hex.join(" "))
        })
        .collect()
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
        assert_eq!(t.visible(&f), vec![0]);
        t.mark_failed("C1", "T1");
        let f = TraceFilter { failures_only: true, ..Default::default() };
        assert_eq!(t.visible(&f), vec![1]);
        assert_eq!(t.heads(), vec!["D1", "D1.peer", "D2"]);
    }

    #[test]
    fn header_decoding() {
        let f = header_fields(&[0x80, 0xD2, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x04]);
        assert!(f.contains(&("INS", "D2".into())));
        assert!(f.contains(&("Lc", "2".into())));
        assert!(f.contains(&("Le", "4".into())));
        assert_eq!(hex_lines(&[1, 2, 3], 2), vec!["0000  01 02", "0002  03"]);
    }
}
