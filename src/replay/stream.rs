//! A trace as replay units, read row by row (`trace::Rows`): card and power events, plan step
//! markers, and commands grouped with the rows the link added to get their answer (GET
//! RESPONSE after `61xx`, the re-send after `6Cxx`). Memory holds at most one open group per
//! head, whatever the length of the trace.

use crate::event::{Exchange, RowKind};
use crate::trace::{Rows, TraceError};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Read;
use std::path::Path;

/// One thing to do again on a head.
#[derive(Debug, Clone)]
pub enum Unit {
    /// `power-on`, `power-off`, `warm-reset`, `insert` or `remove`.
    Event { line: u64, row: Exchange },
    /// A `step` row: where the plan was; nothing to send.
    Step { line: u64, row: Exchange },
    /// A command row and the procedure-byte rows that followed it on its head, in wire order
    /// (`lines[i]` is the trace line of `rows[i]`). The last row has the final status word,
    /// or is `in-doubt`.
    Command { lines: Vec<u64>, rows: Vec<Exchange> },
}

impl Unit {
    /// Trace line of the unit's first row.
    pub fn line(&self) -> u64 {
        match self {
            Unit::Event { line, .. } | Unit::Step { line, .. } => *line,
            Unit::Command { lines, .. } => lines[0],
        }
    }

    pub fn head(&self) -> &str {
        match self {
            Unit::Event { row, .. } | Unit::Step { row, .. } => &row.head,
            Unit::Command { rows, .. } => &rows[0].head,
        }
    }
}

/// What a first pass over a trace found: every row checked, the heads in order of first
/// appearance and the cards seen on each. Small whatever the trace length.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub rows: u64,
    pub heads: Vec<String>,
    pub cards: BTreeMap<String, BTreeSet<String>>,
    /// The first card ID seen on each head (card-less rows before it belong to it).
    pub first_card: BTreeMap<String, String>,
    pub cut_last_row: Option<u64>,
}

impl Survey {
    /// Read the whole trace once; the first bad field is the error.
    pub fn of(path: &Path) -> Result<Survey, TraceError> {
        let mut rows = Rows::open(path)?;
        let mut s = Survey::default();
        for row in rows.by_ref() {
            let row = row?;
            s.rows += 1;
            // Steps on no head (assertions) have an empty head: nothing to map.
            if !row.head.is_empty() && !s.heads.contains(&row.head) {
                s.heads.push(row.head.clone());
            }
            if !row.card_id.is_empty() {
                s.first_card.entry(row.head.clone()).or_insert_with(|| row.card_id.clone());
                s.cards.entry(row.head.clone()).or_default().insert(row.card_id);
            }
        }
        s.cut_last_row = rows.cut_last_row();
        Ok(s)
    }

    /// Heads on which `card` appears.
    pub fn heads_of(&self, card: &str) -> BTreeSet<String> {
        self.cards.iter().filter(|(_, c)| c.contains(card)).map(|(h, _)| h.clone()).collect()
    }
}

/// Which rows a replay takes: every row of the kept heads, and with a card filter only the
/// rows of that card. A row without a card ID (power, identify) belongs to the card in its
/// head at that point: the last card ID seen on the head (an `insert` row names the card it
/// puts in), or before any, the head's first card.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub heads: Option<BTreeSet<String>>,
    pub card: Option<String>,
    /// `Survey::first_card`, needed with a card filter.
    pub first_card: BTreeMap<String, String>,
    current: HashMap<String, String>,
}

impl Selection {
    pub fn new(heads: Option<BTreeSet<String>>, card: Option<String>, first_card: BTreeMap<String, String>) -> Self {
        Selection { heads, card, first_card, current: HashMap::new() }
    }

    pub fn keeps(&mut self, row: &Exchange) -> bool {
        if !row.head.is_empty() && self.heads.as_ref().is_some_and(|h| !h.contains(&row.head)) {
            return false;
        }
        let Some(card) = &self.card else { return true };
        if !row.card_id.is_empty() {
            self.current.insert(row.head.clone(), row.card_id.clone());
            return row.card_id == *card;
        }
        let in_head = self.current.get(&row.head).or_else(|| self.first_card.get(&row.head));
        // A step on no head (an assertion) goes with the card filter's case rows.
        row.head.is_empty() || in_head == Some(card)
    }
}

/// Units of a trace, in trace order of their first row (a command's group is handed out once
/// its answer is complete).
pub struct Units<R: Read> {
    rows: Rows<R>,
    sel: Selection,
    open: HashMap<String, (Vec<u64>, Vec<Exchange>)>,
    ready: VecDeque<Unit>,
    done: bool,
}

impl<R: Read> Units<R> {
    pub fn new(rows: Rows<R>, sel: Selection) -> Self {
        Units { rows, sel, open: HashMap::new(), ready: VecDeque::new(), done: false }
    }

    fn close(&mut self, head: &str) {
        if let Some((lines, rows)) = self.open.remove(head) {
            self.ready.push_back(Unit::Command { lines, rows });
        }
    }

    fn take(&mut self, line: u64, row: Exchange) -> Result<(), TraceError> {
        let head = row.head.clone();
        match row.kind {
            RowKind::GetResponse | RowKind::Resend6C => {
                let Some((lines, rows)) = self.open.get_mut(&row.head) else {
                    return Err(TraceError::Bad {
                        path: self.path().into(),
                        line,
                        what: format!("{} row with no command waiting for it on head {}", row.kind.as_str(), row.head),
                    });
                };
                lines.push(line);
                rows.push(row);
            }
            RowKind::InDoubt if self.open.contains_key(&row.head) => {
                let (lines, rows) = self.open.get_mut(&row.head).expect("checked");
                lines.push(line);
                rows.push(row);
            }
            RowKind::Command | RowKind::InDoubt => {
                // A command while another waits for its GET RESPONSE: the link gave up on that
                // one (a bench error); it is replayed as far as it went.
                self.close(&head);
                self.open.insert(head.clone(), (vec![line], vec![row]));
            }
            kind => {
                self.close(&head);
                if kind == RowKind::Step {
                    self.ready.push_back(Unit::Step { line, row });
                } else {
                    self.ready.push_back(Unit::Event { line, row });
                }
                return Ok(());
            }
        }
        if self.open.get(&head).and_then(|(_, rows)| rows.last()).is_some_and(finished) {
            self.close(&head);
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        self.rows.path()
    }

    pub fn cut_last_row(&self) -> Option<u64> {
        self.rows.cut_last_row()
    }
}

/// Whether a group ending with `last` is complete, by the link's own rule: `61xx` asks for a
/// GET RESPONSE and `6Cxx` for one re-send, anything else (or no answer) is final.
fn finished(last: &Exchange) -> bool {
    let sw1 = (last.sw >> 8) as u8;
    match last.kind {
        RowKind::InDoubt => true,
        _ if sw1 == 0x61 => false,
        RowKind::Resend6C => true,
        _ => sw1 != 0x6C,
    }
}

impl<R: Read> Iterator for Units<R> {
    type Item = Result<Unit, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(u) = self.ready.pop_front() {
                return Some(Ok(u));
            }
            if self.done {
                return None;
            }
            match self.rows.next() {
                Some(Ok(row)) => {
                    if !self.sel.keeps(&row) {
                        continue;
                    }
                    let line = self.rows.line();
                    if let Err(e) = self.take(line, row) {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    // Groups still waiting at the end: the trace stopped mid-answer.
                    let mut left: Vec<(u64, String)> = self.open.iter().map(|(h, (l, _))| (l[0], h.clone())).collect();
                    left.sort();
                    for (_, h) in left {
                        self.close(&h);
                    }
                }
            }
        }
    }
}
