//! The report files of a batch folder, written together from one `BatchResult`. The result
//! is a function of what the batch folder keeps (batch.json and the journal), so that
//! `cardbench report` rebuilds the very bytes the batch wrote.

use std::io;
use std::path::Path;

use super::{BatchResult, CardResult};

/// Every report a batch writes, by file name in the batch folder.
pub const REPORT_FILES: [&str; 3] = ["summary.csv", "junit.xml", "results.json"];
/// The requirement matrix of the batch's plan (`coverage::render::csv`), beside the reports
/// when batch.json keeps one.
pub const COVERAGE_FILE: &str = "coverage.csv";

/// What a batch was started with, as batch.json keeps it.
pub struct BatchInfo<'a> {
    pub batch_id: &'a str,
    pub plan_id: &'a str,
    pub plan_version: &'a str,
    pub profile: &'a str,
    pub started: &'a str,
}

/// The result of a batch from its description and its journaled cards (any order). Its
/// `finished` is when the last card finished (its start plus its duration), not the wall
/// clock at writing, so the same journal always gives the same reports.
pub fn batch_result(
    info: &BatchInfo,
    mut cards: Vec<CardResult>,
    header: Option<crate::batch::header::ReportHeader>,
) -> BatchResult {
    cards.sort_by_key(|c| c.index);
    let finished = cards.iter().filter_map(card_end).max().map_or_else(|| info.started.to_string(), rfc3339);
    BatchResult {
        batch_id: info.batch_id.to_string(),
        plan_id: info.plan_id.to_string(),
        plan_version: info.plan_version.to_string(),
        profile: info.profile.to_string(),
        started: info.started.to_string(),
        finished,
        cards,
        header,
        coverage: None,
    }
}

/// Give the result its requirement matrix and each case the requirements it verifies, from
/// the matrix alone (a case without an entry verifies none), so that the reports of a batch
/// are the same whether a card was journaled or certified in this run.
pub fn attach_coverage(b: &mut BatchResult, coverage: Option<crate::coverage::Coverage>) {
    {
        let by_case = coverage.as_ref().map(|c| c.by_case()).unwrap_or_default();
        for case in b.cards.iter_mut().flat_map(|c| c.cases.iter_mut()) {
            let ids = by_case.get(crate::coverage::written_id(&case.id));
            case.verifies = ids.map(|v| v.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
        }
    }
    b.coverage = coverage;
}

fn card_end(c: &CardResult) -> Option<chrono::DateTime<chrono::Utc>> {
    let start = chrono::DateTime::parse_from_rfc3339(&c.started).ok()?.with_timezone(&chrono::Utc);
    let ms = if c.duration_ms.is_finite() && c.duration_ms > 0.0 { c.duration_ms } else { 0.0 };
    Some(start + chrono::Duration::microseconds((ms * 1e3).round() as i64))
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Write every report of `b` into the batch folder `dir`, each atomically.
pub fn write_reports(dir: &Path, b: &BatchResult) -> io::Result<()> {
    super::summary::write_summary_csv(&dir.join(REPORT_FILES[0]), b)?;
    super::junit::write_junit(&dir.join(REPORT_FILES[1]), b)?;
    super::json::write_json(&dir.join(REPORT_FILES[2]), b)?;
    if let Some(c) = &b.coverage {
        let text = crate::coverage::render::csv(c);
        super::atomic::write_atomically(&dir.join(COVERAGE_FILE), |w| w.write_all(text.as_bytes()))?;
    }
    Ok(())
}
