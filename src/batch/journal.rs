//! The batch journal: one JSON line per certified card, appended and fsynced as each card
//! finishes. It is the batch's memory: a resumed batch certifies exactly the cards not in it.

use crate::report::CardResult;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

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

/// Why a journal cannot be trusted; each names the file and line so the operator can look.
#[derive(Debug, Error)]
pub enum JournalError {
    #[error("{}:{line}: {msg}; the batch cannot resume until this line is repaired or removed", path.display())]
    Corrupt { path: PathBuf, line: u64, msg: String },
    #[error(
        "{}:{first} and line {second}: two different results for card #{index}; the batch cannot resume \
         until one of them is removed",
        path.display()
    )]
    Conflict { path: PathBuf, index: u64, first: u64, second: u64 },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// What opening a journal found: the certified cards, and notes for the operator about
/// what was repaired (a cut last line) or counted once (a repeated line).
pub struct Opened {
    pub done: Vec<CardResult>,
    pub notes: Vec<String>,
}

impl Journal {
    /// Open (creating) the journal of a batch of `count` cards and return the results already
    /// in it, one per card index.
    ///
    /// Every line that ends with a newline must be a whole result for a card of the batch: a
    /// bad one is refused with its line number and nothing is written, because the lines
    /// after it are certified cards that would otherwise be silently certified again. Only a
    /// last line without its newline can come from a kill during the append; it is cut away
    /// (that card is certified again). A card journaled twice with the same line counts
    /// once; twice with different results is refused (two runs certified it, one of them
    /// without the batch lock).
    pub fn open(path: &Path, count: u64) -> Result<(Journal, Opened), JournalError> {
        let io = |source| JournalError::Io { path: path.to_path_buf(), source };
        let mut done = Vec::new();
        let mut notes = Vec::new();
        let mut good_len = 0u64;
        let mut needs_newline = false;
        let mut cut = None;
        if path.exists() {
            let mut f = BufReader::new(File::open(path).map_err(io)?);
            // Card index → (line, digest of the line), to tell a repeat from a conflict
            // without keeping every line in memory.
            let mut seen: HashMap<u64, (u64, [u8; 32])> = HashMap::new();
            let mut buf = Vec::new();
            let mut line = 0u64;
            loop {
                buf.clear();
                let n = f.read_until(b'\n', &mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                line += 1;
                let whole = buf.last() == Some(&b'\n');
                let body = if whole { &buf[..n - 1] } else { &buf[..] };
                let parsed = serde_json::from_slice::<JournalLine>(body);
                let entry = match (parsed, whole) {
                    (Ok(l), _) => l,
                    (Err(_), false) => {
                        cut = Some((line, n, cut_index(body)));
                        break;
                    }
                    (Err(e), true) => {
                        return Err(JournalError::Corrupt {
                            path: path.to_path_buf(),
                            line,
                            msg: format!("not a card result ({e})"),
                        })
                    }
                };
                if entry.index == 0 || entry.index > count {
                    return Err(JournalError::Corrupt {
                        path: path.to_path_buf(),
                        line,
                        msg: format!("card #{} is not in this batch of {count} cards", entry.index),
                    });
                }
                let digest: [u8; 32] = Sha256::digest(body).into();
                match seen.get(&entry.index) {
                    Some((first, d)) if *d == digest => {
                        notes.push(format!(
                            "{}:{line} repeats line {first} (card #{}); counted once",
                            path.display(),
                            entry.index
                        ));
                    }
                    Some((first, _)) => {
                        return Err(JournalError::Conflict {
                            path: path.to_path_buf(),
                            index: entry.index,
                            first: *first,
                            second: line,
                        })
                    }
                    None => {
                        seen.insert(entry.index, (line, digest));
                        done.push(entry.into_result());
                    }
                }
                good_len += n as u64;
                // A whole result whose newline was lost: keep it, and end it before appending.
                needs_newline = !whole;
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).read(true).open(path).map_err(io)?;
        if let Some((line, bytes, index)) = cut {
            file.set_len(good_len).map_err(io)?;
            file.sync_data().map_err(io)?;
            let card = index.map_or(String::new(), |i| format!(" (card #{i}, which is certified again)"));
            notes.push(format!(
                "{}:{line}: dropped a cut last line of {bytes} bytes{card}: a run was killed while writing it",
                path.display()
            ));
        }
        if needs_newline {
            file.write_all(b"\n").and_then(|_| file.sync_data()).map_err(io)?;
        }
        Ok((Journal { path: path.to_path_buf(), file }, Opened { done, notes }))
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

/// The card index of a cut line, when its start survived (`{"index":12,...`).
fn cut_index(body: &[u8]) -> Option<u64> {
    let rest = body.strip_prefix(b"{\"index\":")?;
    let digits: Vec<u8> = rest.iter().copied().take_while(u8::is_ascii_digit).collect();
    // Only when the number visibly ended: a cut inside it says nothing.
    if digits.len() == rest.len() {
        return None;
    }
    std::str::from_utf8(&digits).ok()?.parse().ok()
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
                        "blocked" => CaseStatus::Blocked,
                        "not-run" => CaseStatus::NotRun,
                        // Journals written before not-run had a status of its own.
                        "error" if c.message.starts_with("not run: ") => CaseStatus::NotRun,
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
