//! Results of a batch and the files they are written to: summary CSV, JUnit XML, JSON.
//! The batch runner fills these types; the writers only read them.

pub(crate) mod atomic;
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
}

impl BatchResult {
    pub fn count(&self, word: &str) -> usize {
        self.cards.iter().filter(|c| c.verdict.word() == word).count()
    }
}
