//! The batch journal: one JSON line per certified card, appended and fsynced as each card
//! finishes. It is the batch's memory: a resumed batch certifies exactly the cards not in it.

use super::header::{Identity, Recertified, ReportHeader, Run};
use crate::report::CardResult;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// `batch.json`: what a batch was started with (a resume takes its parameters from here),
/// the identity a resume must match, and every run on the folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub batch_id: String,
    pub plan_id: String,
    pub plan_version: String,
    pub plan_path: String,
    pub profile: String,
    pub count: u64,
    pub started: String,
    /// Absent in a batch.json written before cardbench recorded it: such a batch resumes
    /// only with `--force-changed`.
    #[serde(default)]
    pub header: Option<Identity>,
    #[serde(default)]
    pub runs: Vec<Run>,
    /// The plan's requirement matrix as of the last run (absent before cardbench kept it):
    /// the batch's coverage.csv and each case's `verifies` in the reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::coverage::Coverage>,
}

impl BatchMeta {
    /// The batch.json of the batch folder `dir`, if there is one.
    pub fn read(dir: &Path) -> anyhow::Result<Option<BatchMeta>> {
        use anyhow::Context;
        let path = dir.join("batch.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{}: not a batch description", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::from(e).context(format!("reading {}", path.display()))),
        }
    }

    /// The header the reports carry: identity and runs from here, the re-certified cards
    /// from the journal. None for a batch.json without a header (an older cardbench).
    pub fn report_header(&self, recertified: Vec<Recertified>) -> Option<ReportHeader> {
        let header = self.header.clone()?;
        Some(ReportHeader { header, runs: self.runs.clone(), recertified })
    }

    /// The batch.json of a new batch (no header or run yet).
    pub fn new(batch_id: &str, plan: &crate::plan::Plan, profile: &Path, count: u64) -> BatchMeta {
        BatchMeta {
            batch_id: batch_id.to_string(),
            plan_id: plan.id.clone(),
            plan_version: plan.version.clone(),
            plan_path: plan.path.display().to_string(),
            profile: profile.display().to_string(),
            count,
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            header: None,
            runs: Vec::new(),
            coverage: crate::spec::requirements::Requirements::spec()
                .ok()
                .map(|reqs| crate::coverage::Coverage::of(plan, reqs)),
        }
    }

    /// Whether this batch may be resumed by a run with `identity` (and `--count`, when
    /// given): the changes it lets through with `force_changed`, else the one-line reason.
    pub fn resume_check(
        &self,
        identity: &Identity,
        count: Option<u64>,
        force_changed: bool,
    ) -> anyhow::Result<Vec<String>> {
        if let Some(c) = count.filter(|c| *c != self.count) {
            anyhow::bail!(
                "batch {} has {} cards (batch.json), not {c}; drop --count to resume it",
                self.batch_id,
                self.count
            );
        }
        let changes = match &self.header {
            Some(h) => identity.changes_since(h),
            None => vec![format!(
                "batch.json of batch {} records no plan hash, profile hash or keyset (an older cardbench wrote it)",
                self.batch_id
            )],
        };
        if !changes.is_empty() && !force_changed {
            anyhow::bail!(
                "batch {} cannot resume: {}; resume with the batch's plan, profile and keyset, or pass \
                 --force-changed (recorded in batch.json and the reports)",
                self.batch_id,
                changes.join("; ")
            );
        }
        Ok(changes)
    }

    /// Write batch.json atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        crate::report::atomic::write_atomically(&dir.join("batch.json"), |w| {
            serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })
    }
}

pub struct Journal {
    path: PathBuf,
    file: File,
}

/// A batch folder opened for a run: batch.json with this run's entry written, the journal
/// checked and open for appending, the cards it holds.
pub struct OpenBatch {
    pub dir: PathBuf,
    pub meta: BatchMeta,
    pub journal: Journal,
    pub done: Vec<CardResult>,
    pub recertified: Vec<Recertified>,
    /// For the operator: what opening the journal repaired or counted once.
    pub notes: Vec<String>,
}

/// Open the batch folder `dir` (its lock held) for a run with `identity`: a resume is checked
/// against batch.json (`BatchMeta::resume_check`) and takes its count from there; a new
/// batch is `new`. The journal is checked before batch.json is written, so a refused resume
/// or journal leaves the folder as it was.
pub fn open_batch(
    dir: &Path,
    new: BatchMeta,
    identity: Identity,
    mut run: Run,
    count: Option<u64>,
    force_changed: bool,
) -> anyhow::Result<OpenBatch> {
    use anyhow::Context;
    let old = BatchMeta::read(dir)?;
    if let Some(old) = &old {
        run.changes = old.resume_check(&identity, count, force_changed)?;
    }
    // The reports show the matrix of the plan this run certifies with.
    let coverage = new.coverage.clone();
    let mut meta = old.unwrap_or(new);
    meta.coverage = coverage;
    if meta.count == 0 || meta.count > u32::MAX as u64 {
        anyhow::bail!("--count must be between 1 and {}", u32::MAX);
    }
    let (journal, opened) = Journal::open(&dir.join("journal.jsonl"), meta.count)?;
    // From here on the batch is certified under this identity (changed only with
    // --force-changed, which this run's entry records).
    meta.header = Some(identity);
    meta.runs.push(run);
    meta.write(dir).with_context(|| format!("writing {}", dir.join("batch.json").display()))?;
    Ok(OpenBatch {
        dir: dir.to_path_buf(),
        meta,
        journal,
        done: opened.done,
        recertified: opened.recertified,
        notes: opened.notes,
    })
}

impl OpenBatch {
    /// Journal a card's `certification`-th result (fsynced), note a re-certification, and
    /// write batch.json again when the card's head answered with an ATR new to this run.
    pub fn record(&mut self, card: &CardResult, certification: u32, atr: &[u8]) -> anyhow::Result<()> {
        use anyhow::Context;
        self.journal.append(card, certification).context("appending to the journal")?;
        if certification > 1 {
            self.recertified.retain(|r| r.index != card.index);
            self.recertified.push(Recertified { index: card.index, card_id: card.card_id.clone(), certification });
        }
        let run = self.meta.runs.last_mut().expect("open_batch pushed this run");
        if run.saw_atr(&card.head, atr) {
            self.meta.write(&self.dir).context("writing batch.json")?;
        }
        Ok(())
    }

    /// The header the reports carry.
    pub fn report_header(&self) -> Option<ReportHeader> {
        self.meta.report_header(self.recertified.clone())
    }
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
    /// Cards whose later line, marked as a re-certification, replaced the earlier result.
    pub recertified: Vec<Recertified>,
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
        let Scan { done, mut notes, recertified, good_len, needs_newline, cut } = scan(path, count)?;
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
        Ok((Journal { path: path.to_path_buf(), file }, Opened { done, notes, recertified }))
    }

    /// The results of a journal as `open` finds them, without writing anything (for
    /// rebuilding reports): a cut last line is left out and noted, not cut away.
    pub fn read(path: &Path, count: u64) -> Result<Opened, JournalError> {
        let Scan { done, mut notes, recertified, cut, .. } = scan(path, count)?;
        if let Some((line, bytes, _)) = cut {
            notes.push(format!("{}:{line}: a cut last line of {bytes} bytes is left out", path.display()));
        }
        Ok(Opened { done, notes, recertified })
    }

    /// Append the result of a card's `certification`-th certification in the batch (1 the
    /// first; more only with `--recertify`) and fsync.
    pub fn append(&mut self, r: &CardResult, certification: u32) -> std::io::Result<()> {
        let mut entry = JournalLine::from(r);
        entry.certification = certification;
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What reading a journal found, before anything is repaired.
struct Scan {
    done: Vec<CardResult>,
    notes: Vec<String>,
    recertified: Vec<Recertified>,
    /// Bytes of whole, valid lines.
    good_len: u64,
    /// The last whole result lacks its newline.
    needs_newline: bool,
    /// A cut last line: its number, length and card index if readable.
    cut: Option<(u64, usize, Option<u64>)>,
}

fn scan(path: &Path, count: u64) -> Result<Scan, JournalError> {
    let io = |source| JournalError::Io { path: path.to_path_buf(), source };
    let mut done: Vec<CardResult> = Vec::new();
    let mut notes = Vec::new();
    let mut recertified = Vec::new();
    let mut good_len = 0u64;
    let mut needs_newline = false;
    let mut cut = None;
    if path.exists() {
        let mut f = BufReader::new(File::open(path).map_err(io)?);
        // Card index → (line, digest of the line), to tell a repeat from a conflict
        // without keeping every line in memory.
        let mut seen: HashMap<u64, (u64, [u8; 32], u32, usize)> = HashMap::new();
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
            let certification = entry.certification.max(1);
            match seen.get(&entry.index).copied() {
                Some((first, d, _, _)) if d == digest => {
                    notes.push(format!(
                        "{}:{line} repeats line {first} (card #{}); counted once",
                        path.display(),
                        entry.index
                    ));
                }
                // `--recertify`: the same card certified again, recorded as such; the
                // later result stands.
                Some((_, _, earlier, at)) if certification > earlier && done[at].card_id == entry.card_id => {
                    let index = entry.index;
                    let card_id = entry.card_id.clone();
                    done[at] = entry.into_result();
                    seen.insert(index, (line, digest, certification, at));
                    recertified.retain(|r: &Recertified| r.index != index);
                    recertified.push(Recertified { index, card_id, certification });
                }
                Some((first, _, _, _)) => {
                    return Err(JournalError::Conflict {
                        path: path.to_path_buf(),
                        index: entry.index,
                        first,
                        second: line,
                    })
                }
                None => {
                    seen.insert(entry.index, (line, digest, certification, done.len()));
                    done.push(entry.into_result());
                }
            }
            good_len += n as u64;
            // A whole result whose newline was lost: keep it, and end it before appending.
            needs_newline = !whole;
        }
    }
    Ok(Scan { done, notes, recertified, good_len, needs_newline, cut })
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
    /// 2 and up: a re-certification of the card (`--recertify`); absent for the first.
    #[serde(default, skip_serializing_if = "is_first")]
    certification: u32,
}

fn is_first(n: &u32) -> bool {
    *n <= 1
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
            certification: 1,
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
                    // From batch.json's matrix when the reports are made.
                    verifies: Vec::new(),
                })
                .collect(),
            trace: self.trace,
            started: self.started,
            duration_ms: self.duration_ms,
        }
    }
}
