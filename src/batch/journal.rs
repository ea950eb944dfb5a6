//! The batch journal: one JSON line per certified card, appended and fsynced as each card
//! finishes. It is the batch's memory: a resumed batch certifies exactly the cards not in it.

use crate::report::CardResult;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// What a batch was started with; a resume with other parameters is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub batch_id: String,
    pub plan_id: String,
    pub plan_version: String,
    pub plan_path: String,
    pub profile: String,
    pub count: u64,
    pub started: String,
}

pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Open (creating) the journal and return the results already in it. A last line cut by
    /// a kill is dropped (that card is certified again); the file is truncated back to the
    /// last complete line so later appends stay parseable.
    pub fn open(path: &Path) -> std::io::Result<(Journal, Vec<CardResult>)> {
        let mut done = Vec::new();
        let mut good_len = 0u64;
        if path.exists() {
            let f = BufReader::new(File::open(path)?);
            let mut offset = 0u64;
            for line in f.split(b'\n') {
                let line = line?;
                let len = line.len() as u64 + 1;
                match serde_json::from_slice::<JournalLine>(&line) {
                    Ok(l) => {
                        done.push(l.into_result());
                        offset += len;
                        good_len = offset;
                    }
                    Err(_) => break,
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).read(true).open(path)?;
        if file.metadata()?.len() > good_len {
            file.set_len(good_len)?;
        }
        Ok((Journal { path: path.to_path_buf(), file }, done))
    }

    pub fn append(&mut self, r: &CardResult) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&JournalLine::from(r)).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// CardResult as stored: the report types serialize only; the journal needs both ways.
#[derive(Serialize, Deserialize)]
struct JournalLine {
    index: u64,
    card_id: String,
    head: String,
    verdict: String,
    failing: Vec<String>,
    reason: String,
    cases: Vec<JournalCase>,
    trace: String,
    started: String,
    duration_ms: f64,
}

#[derive(Serialize, Deserialize)]
struct JournalCase {
    id: String,
    title: String,
    reference: String,
    status: String,
    message: String,
    failure: Option<(String, String, String)>,
    duration_ms: f64,
}

impl From<&CardResult> for JournalLine {
    fn from(r: &CardResult) -> Self {
        use crate::report::Verdict;
        let (failing, reason) = match &r.verdict {
            Verdict::Pass => (vec![], String::new()),
            Verdict::Fail { failing } => (failing.clone(), String::new()),
            Verdict::Aborted { reason } => (vec![], reason.clone()),
        };
        JournalLine {
            index: r.index,
            card_id: r.card_id.clone(),
            head: r.head.clone(),
            verdict: r.verdict.word().into(),
            failing,
            reason,
            cases: r
                .cases
                .iter()
                .map(|c| JournalCase {
                    id: c.id.clone(),
                    title: c.title.clone(),
                    reference: c.reference.clone(),
                    status: crate::runner::status_word(&c.status).into(),
                    message: c.message.clone(),
                    failure: c.failure.as_ref().map(|f| (f.step.clone(), f.expected.clone(), f.actual.clone())),
                    duration_ms: c.duration_ms,
                })
                .collect(),
            trace: r.trace.clone(),
            started: r.started.clone(),
            duration_ms: r.duration_ms,
        }
    }
}

impl JournalLine {
    fn into_result(self) -> CardResult {
        use crate::report::{CaseResult, CaseStatus, Failure, Verdict};
        let verdict = match self.verdict.as_str() {
            "pass" => Verdict::Pass,
            "fail" => Verdict::Fail { failing: self.failing },
            _ => Verdict::Aborted { reason: self.reason },
        };
        CardResult {
            index: self.index,
            card_id: self.card_id,
            head: self.head,
            verdict,
            cases: self
                .cases
                .into_iter()
                .map(|c| CaseResult {
                    id: c.id,
                    title: c.title,
                    reference: c.reference,
                    status: match c.status.as_str() {
                        "passed" => CaseStatus::Passed,
                        "failed" => CaseStatus::Failed,
                        "skipped" => CaseStatus::Skipped,
                        _ => CaseStatus::Error,
                    },
                    message: c.message,
                    failure: c.failure.map(|(step, expected, actual)| Failure { step, expected, actual }),
                    duration_ms: c.duration_ms,
                })
                .collect(),
            trace: self.trace,
            started: self.started,
            duration_ms: self.duration_ms,
        }
    }
}
