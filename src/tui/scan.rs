//! A trace filter over the whole batch: the UI keeps only a window of recent exchanges, so a
//! filter also reads the trace CSV of every card the batch finished (resumed parts included)
//! on a background thread, and the Trace panel shows those matches, in card order, before the
//! live rows of the cards still in the heads.

use super::app::{App, Effect};
use super::trace::{settle, TraceFilter, TraceRow};
use crate::report::CaseStatus;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Matching rows read from disk that are kept; beyond them, matches are only counted (the
/// title says so, and a narrower filter shows them).
pub const MAX_KEPT: usize = 20_000;

/// Ids of rows read from disk start here, far above the live rows' ids.
const DISK_IDS: u64 = 1 << 62;

/// Read these cards' traces and keep the rows `filter` lets through.
#[derive(Debug, Clone)]
pub struct ScanJob {
    pub gen: u64,
    pub filter: TraceFilter,
    pub cards: Vec<ScanCard>,
    /// The newest generation: a scan made stale by a newer filter stops between cards.
    pub latest: Arc<AtomicU64>,
}

impl PartialEq for ScanJob {
    fn eq(&self, o: &Self) -> bool {
        self.gen == o.gen && self.filter == o.filter && self.cards == o.cards
    }
}

impl Eq for ScanJob {}

/// One finished card: where its trace is and which of its cases failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanCard {
    pub index: u64,
    pub card_id: String,
    pub head: String,
    pub path: PathBuf,
    pub failed_cases: Vec<String>,
}

/// What a scan found.
#[derive(Debug)]
pub struct Scanned {
    pub gen: u64,
    /// Matching rows (at most `MAX_KEPT`), each with its card's index, in card and file order.
    pub rows: Vec<(u64, TraceRow)>,
    pub matched: u64,
    /// The cards read (their live rows are no longer needed).
    pub cards: Vec<String>,
    /// Traces that could not be read: the file, line and what is wrong.
    pub errors: Vec<String>,
}

/// Read the cards' traces in turn (one card in memory at a time).
pub fn run(job: ScanJob) -> Scanned {
    let mut out = Scanned { gen: job.gen, rows: Vec::new(), matched: 0, cards: Vec::new(), errors: Vec::new() };
    for c in &job.cards {
        if job.latest.load(Ordering::Relaxed) != job.gen {
            break;
        }
        let rows = match crate::trace::read(&c.path) {
            Ok(rows) => rows,
            Err(e) => {
                out.errors.push(e.to_string());
                continue;
            }
        };
        let (worker, card): (Arc<str>, Arc<str>) = (Arc::from(c.head.as_str()), Arc::from(c.card_id.as_str()));
        let mut rows: Vec<TraceRow> =
            rows.into_iter().map(|x| TraceRow::from_file(0, worker.clone(), card.clone(), x)).collect();
        settle(&mut rows, &c.failed_cases);
        for r in rows.into_iter().filter(|r| job.filter.matches(r)) {
            out.matched += 1;
            if out.rows.len() < MAX_KEPT {
                out.rows.push((c.index, r));
            }
        }
        out.cards.push(c.card_id.clone());
    }
    out
}

/// The App's side of the scans: the rows found so far for the current filter.
#[derive(Debug, Default)]
pub struct BatchScan {
    pub gen: u64,
    latest: Arc<AtomicU64>,
    /// Rows read from disk that match, with their card's index, in card and file order.
    pub rows: Vec<(u64, TraceRow)>,
    pub matched: u64,
    /// Cards whose trace has been read for this filter.
    pub cards: HashSet<String>,
    /// Scans asked for and not yet back.
    pub pending: usize,
    pub errors: Vec<String>,
    next_id: u64,
}

impl App {
    /// The filter changed: forget what the last one found and read every finished card's
    /// trace again (nothing to read without a filter: the live window is the view).
    pub fn rescan(&mut self) -> Vec<Effect> {
        let s = &mut self.scan;
        s.gen += 1;
        s.latest.store(s.gen, Ordering::Relaxed);
        s.rows.clear();
        s.matched = 0;
        s.cards.clear();
        s.pending = 0;
        s.errors.clear();
        if self.filter.is_empty() {
            return Vec::new();
        }
        let cards: Vec<ScanCard> = self.results.iter().map(|c| self.scan_card(c)).collect();
        self.scan_job(cards)
    }

    /// A card finished while a filter is on: read its trace too.
    pub fn scan_finished(&mut self, index: u64) -> Vec<Effect> {
        if self.filter.is_empty() {
            return Vec::new();
        }
        let Some(c) = self.card(index) else { return Vec::new() };
        let card = self.scan_card(c);
        self.scan_job(vec![card])
    }

    fn scan_card(&self, c: &crate::report::CardResult) -> ScanCard {
        ScanCard {
            index: c.index,
            card_id: c.card_id.clone(),
            head: c.head.clone(),
            path: self.trace_path(c),
            failed_cases: c
                .cases
                .iter()
                .filter(|k| matches!(k.status, CaseStatus::Failed | CaseStatus::Error))
                .map(|k| k.id.clone())
                .collect(),
        }
    }

    fn scan_job(&mut self, cards: Vec<ScanCard>) -> Vec<Effect> {
        if cards.is_empty() {
            return Vec::new();
        }
        self.scan.pending += 1;
        let s = &self.scan;
        vec![Effect::Scan(ScanJob { gen: s.gen, filter: self.filter.clone(), cards, latest: s.latest.clone() })]
    }

    /// A scan came back: keep its rows if it is for the current filter.
    pub fn scanned(&mut self, r: Scanned) {
        let s = &mut self.scan;
        if r.gen != s.gen {
            return;
        }
        s.pending = s.pending.saturating_sub(1);
        s.matched += r.matched;
        s.errors.extend(r.errors);
        s.cards.extend(r.cards);
        let room = MAX_KEPT.saturating_sub(s.rows.len());
        for (index, mut row) in r.rows.into_iter().take(room) {
            s.next_id += 1;
            row.id = DISK_IDS + s.next_id;
            s.rows.push((index, row));
        }
        // Stable: a card's rows stay in file order.
        s.rows.sort_by_key(|(index, _)| *index);
    }

    /// The rows the Trace panel lists, oldest first: without a filter the live window; with
    /// one, the matches read from the finished cards' traces, then the live rows of the cards
    /// not read yet.
    pub fn trace_view(&self) -> Vec<&TraceRow> {
        if self.filter.is_empty() {
            return self.trace.rows().iter().collect();
        }
        let disk = self.scan.rows.iter().map(|(_, r)| r);
        let live = self.trace.rows().iter().filter(|r| !self.scan.cards.contains(&*r.card) && self.filter.matches(r));
        disk.chain(live).collect()
    }

    /// Matches of the current filter: read from disk, plus those of the live rows.
    pub fn trace_matches(&self, view: &[&TraceRow]) -> u64 {
        let kept = self.scan.rows.len() as u64;
        self.scan.matched + (view.len() as u64).saturating_sub(kept)
    }
}
