//! Results of a batch and the files they are written to: summary CSV, JUnit XML, JSON.
//! The batch runner fills these types; the writers only read them.

pub(crate) mod atomic;
pub mod files;
pub mod json;
pub mod junit;
pub mod summary;

use serde::Serialize;

/// Outcome of one test case on one card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    Passed,
    Failed,
    Skipped,
    /// The bench could not run the case (head error, card removed).
    Error,
    /// A failure that follows from an earlier one: a case this one `needs` (or the plan's
    /// set-up) did not pass. `message` is `blocked by <root case>`; `failure`, if any, is what
    /// this case saw. Not a failure of the card of its own.
    Blocked,
    /// Not run: the card or its head was lost before this case (the card is aborted), the
    /// set-up could not run, or the trace could no longer be written. `message` says why.
    #[serde(rename = "not-run")]
    NotRun,
}

/// Why a case failed: the step, what the plan expected and what the card did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub step: String,
    pub expected: String,
    pub actual: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub title: String,
    /// Seed step or card-spec section the case is traced to.
    pub reference: String,
    pub status: CaseStatus,
    /// Skip reason, or error text.
    pub message: String,
    pub failure: Option<Failure>,
    pub duration_ms: f64,
    /// Requirement IDs of docs/card-spec.md the case verifies (its plan's `verifies`); in a
    /// batch's reports, from the matrix batch.json keeps (`BatchResult::coverage`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verifies: Vec<String>,
}

/// The prefix of a blocked case's message, before the root cause's case ID.
pub const BLOCKED_BY: &str = "blocked by ";

impl CaseResult {
    /// The case whose failure this one follows from, for a `Blocked` case.
    pub fn blocked_by(&self) -> Option<&str> {
        if self.status != CaseStatus::Blocked {
            return None;
        }
        self.message.strip_prefix(BLOCKED_BY)
    }
}

/// The first real failure of a card: the case (or `setup`), and what it expected and saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstFailure<'a> {
    pub case: &'a str,
    pub failure: Option<&'a Failure>,
    /// The case's message (for an error: what went wrong).
    pub message: &'a str,
}

impl FirstFailure<'_> {
    /// `CASE #2 engine: expected X, got Y`, or `CASE: message` without failure details.
    pub fn line(&self) -> String {
        match self.failure {
            // A step's label starts with its case ID (`CASE #2 engine`); the set-up's does not.
            Some(f) if f.step.starts_with(self.case) => {
                format!("{}: expected {}, got {}", f.step, f.expected, f.actual)
            }
            Some(f) => format!("{} {}: expected {}, got {}", self.case, f.step, f.expected, f.actual),
            None if self.message.is_empty() => self.case.to_string(),
            None => format!("{}: {}", self.case, self.message),
        }
    }
}

/// Verdict of one card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    /// Failed test case IDs, in plan order.
    Fail {
        failing: Vec<String>,
    },
    /// The card could not be certified (removed, mute, reader lost): why.
    Aborted {
        reason: String,
    },
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail { .. } => "fail",
            Verdict::Aborted { .. } => "aborted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CardResult {
    /// Position of the card in the batch (1-based), stable across resumes.
    pub index: u64,
    pub card_id: String,
    pub head: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub cases: Vec<CaseResult>,
    /// Path of this card's trace CSV, relative to the batch folder.
    pub trace: String,
    /// RFC 3339 UTC.
    pub started: String,
    pub duration_ms: f64,
}

impl CardResult {
    /// The first real failure in plan order: a failed or erred case; else the root cause
    /// that blocked cases name when it is no case of the card (`setup`). `None` for a card
    /// with neither (a pass, or an abort before any case ran).
    pub fn first_failure(&self) -> Option<FirstFailure<'_>> {
        let real = self.cases.iter().find(|c| matches!(c.status, CaseStatus::Failed | CaseStatus::Error));
        if let Some(c) = real {
            return Some(FirstFailure { case: &c.id, failure: c.failure.as_ref(), message: &c.message });
        }
        self.cases.iter().find_map(|c| {
            let root = c.blocked_by()?;
            Some(FirstFailure { case: root, failure: c.failure.as_ref(), message: &c.message })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchResult {
    pub batch_id: String,
    pub plan_id: String,
    pub plan_version: String,
    pub profile: String,
    pub started: String,
    pub finished: String,
    /// What the verdicts were made with (batch.json's header and runs); None for results
    /// made outside a batch folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<crate::batch::header::ReportHeader>,
    pub cards: Vec<CardResult>,
    /// The plan's requirement matrix, written to coverage.csv (not into results.json, where
    /// each case carries its own `verifies`). None for a batch.json from before the matrix.
    #[serde(skip)]
    pub coverage: Option<crate::coverage::Coverage>,
}

impl BatchResult {
    pub fn count(&self, word: &str) -> usize {
        self.cards.iter().filter(|c| c.verdict.word() == word).count()
    }
}
