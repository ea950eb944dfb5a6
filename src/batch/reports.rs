//! `cardbench report <batch-dir>`: every report of a batch rebuilt from what the folder
//! keeps (batch.json and the journal), byte for byte what the batch itself wrote.

use super::header::Recertified;
use super::journal::{BatchMeta, Journal};
use super::lock::BatchLock;
use crate::report::files::{batch_result, write_reports, BatchInfo};
use crate::report::{BatchResult, CardResult};
use anyhow::{Context, Result};
use std::path::Path;

/// The batch's result as its reports show it: the header from batch.json, the cards from
/// the journal (one per index: a re-certification replaces the earlier result).
pub fn result_of(meta: &BatchMeta, cards: Vec<CardResult>, recertified: Vec<Recertified>) -> BatchResult {
    let by_index: std::collections::BTreeMap<u64, CardResult> = cards.into_iter().map(|c| (c.index, c)).collect();
    let info = BatchInfo {
        batch_id: &meta.batch_id,
        plan_id: &meta.plan_id,
        plan_version: &meta.plan_version,
        profile: &meta.profile,
        started: &meta.started,
    };
    let mut result = batch_result(&info, by_index.into_values().collect(), meta.report_header(recertified));
    crate::report::files::attach_coverage(&mut result, meta.coverage.clone());
    result
}

/// What a rebuild found and wrote.
pub struct Rebuilt {
    pub result: BatchResult,
    /// The batch's size from batch.json: cards without a line are not in the reports.
    pub count: u64,
    /// What opening the journal repaired or counted once, as on a resume.
    pub notes: Vec<String>,
}

/// Rebuild every report of the batch folder `dir`. It takes the folder's lock first (a
/// running batch writes its own reports) and reads the journal as a resume does: a line
/// that is not a card result is refused with its line number, a cut last line is dropped.
pub fn rebuild(dir: &Path) -> Result<Rebuilt> {
    let meta_path = dir.join("batch.json");
    if !meta_path.exists() {
        anyhow::bail!("{}: no batch.json: not a batch folder", dir.display());
    }
    let _lock = BatchLock::acquire(dir)?;
    let meta: BatchMeta =
        serde_json::from_slice(&std::fs::read(&meta_path).with_context(|| format!("reading {}", meta_path.display()))?)
            .with_context(|| format!("{}: not a batch description", meta_path.display()))?;
    let (_journal, opened) = Journal::open(&dir.join("journal.jsonl"), meta.count)?;
    let result = result_of(&meta, opened.done, opened.recertified);
    write_reports(dir, &result).with_context(|| format!("writing the reports in {}", dir.display()))?;
    Ok(Rebuilt { result, count: meta.count, notes: opened.notes })
}
