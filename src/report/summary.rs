//! Summary CSV: one row per card. Columns are described in docs/reports.md.

use std::io;
use std::path::Path;

use super::atomic::write_atomically;
use super::{BatchResult, CardResult, CaseResult, CaseStatus, Verdict};

/// The header row of the summary CSV, in column order: the card's columns, then the batch
/// header's (`crate::batch::header::CARD_FIELDS`).
pub const SUMMARY_COLUMNS: [&str; 28] = [
    "batch_id",
    "index",
    "card_id",
    "head",
    "verdict",
    "failing_tests",
    "reason",
    "cases_passed",
    "cases_failed",
    "cases_skipped",
    "cases_error",
    "duration_ms",
    "started",
    "trace",
    "cases_blocked",
    "cases_not_run",
    "first_failure",
    "failure_step",
    "expected",
    "actual",
    "tool",
    "host",
    "profile_sha256",
    "plan_sha256",
    "keyset",
    "clock",
    "reader",
    "atr",
];

/// How many cases of a card ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CaseCounts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub error: usize,
    pub blocked: usize,
    pub not_run: usize,
}

impl CaseCounts {
    pub fn of(cases: &[CaseResult]) -> Self {
        let mut n = CaseCounts::default();
        for c in cases {
            match c.status {
                CaseStatus::Passed => n.passed += 1,
                CaseStatus::Failed => n.failed += 1,
                CaseStatus::Skipped => n.skipped += 1,
                CaseStatus::Error => n.error += 1,
                CaseStatus::Blocked => n.blocked += 1,
                CaseStatus::NotRun => n.not_run += 1,
            }
        }
        n
    }

    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped + self.error + self.blocked + self.not_run
    }
}

/// Write the summary CSV of `b` to `path` atomically (via `path.tmp`, fsync, rename).
/// The header row is written even when the batch has no cards.
pub fn write_summary_csv(path: &Path, b: &BatchResult) -> io::Result<()> {
    write_atomically(path, |out| {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(SUMMARY_COLUMNS)?;
        for card in &b.cards {
            let head = b.header.as_ref().map_or_else(Default::default, |h| h.card_fields(&card.head));
            w.write_record(row(&b.batch_id, card).iter().chain(head.iter()))?;
        }
        w.flush()
    })
}

fn row(batch_id: &str, card: &CardResult) -> [String; 20] {
    let (failing, reason) = match &card.verdict {
        Verdict::Pass => (String::new(), String::new()),
        Verdict::Fail { failing } => (failing.join(";"), String::new()),
        Verdict::Aborted { reason } => (String::new(), reason.clone()),
    };
    let n = CaseCounts::of(&card.cases);
    let first = card.first_failure();
    let detail = first.as_ref().and_then(|f| f.failure);
    let field = |get: fn(&super::Failure) -> &String| detail.map_or(String::new(), |f| get(f).clone());
    [
        batch_id.to_string(),
        card.index.to_string(),
        card.card_id.clone(),
        card.head.clone(),
        card.verdict.word().to_string(),
        failing,
        reason,
        n.passed.to_string(),
        n.failed.to_string(),
        n.skipped.to_string(),
        n.error.to_string(),
        format!("{:.3}", card.duration_ms),
        card.started.clone(),
        card.trace.clone(),
        n.blocked.to_string(),
        n.not_run.to_string(),
        first.as_ref().map_or(String::new(), |f| f.case.to_string()),
        field(|f| &f.step),
        field(|f| &f.expected),
        // An error has no expected/actual: what went wrong stands as what the bench saw.
        match (detail, &first) {
            (Some(f), _) => f.actual.clone(),
            (None, Some(f)) => f.message.to_string(),
            (None, None) => String::new(),
        },
    ]
}
