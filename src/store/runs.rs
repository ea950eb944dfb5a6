//! Plan runs (`cardbench run`) and timing runs (`cardbench time`) in the store. A run ID
//! written again (the same `--run-id`) replaces the earlier rows, like its folder's files.

use super::batches::case_values;
use super::sql::{Db, Value};
use super::{Store, StoreError};
use crate::report::CaseResult;
use crate::timing::sample::Sample;

/// One `cardbench run`, from the results it printed.
pub struct RunRecord<'a> {
    pub run_id: &'a str,
    pub plan_id: &'a str,
    pub plan_version: &'a str,
    pub profile: &'a str,
    pub started: &'a str,
    pub finished: &'a str,
    /// The trace file, as the run printed it.
    pub trace: &'a str,
    pub cases: &'a [CaseResult],
}

/// One `cardbench time` run and its samples (samples.csv's rows).
pub struct TimingRecord<'a> {
    pub run_id: &'a str,
    /// The folder the run folder sits in: `time compare` pools a lot folder's runs, and the
    /// store groups them the same way.
    pub lot: &'a str,
    pub spec_id: &'a str,
    pub spec_version: &'a str,
    pub profile: &'a str,
    pub started: &'a str,
    pub finished: &'a str,
    pub folder: &'a str,
    pub samples: &'a [Sample],
}

fn delete_run(db: &mut Db, run_id: &str) -> Result<(), StoreError> {
    db.exec("DELETE FROM run_cases WHERE run_id = $1", &[run_id.into()])?;
    db.exec("DELETE FROM runs WHERE run_id = $1", &[run_id.into()])?;
    Ok(())
}

impl Store {
    pub fn record_run(&self, r: &RunRecord, station: &str) -> Result<(), StoreError> {
        self.db().transaction(|db| {
            delete_run(db, r.run_id)?;
            db.exec(
                "INSERT INTO runs (run_id, plan_id, plan_version, profile, station, started, finished, trace)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    r.run_id.into(),
                    r.plan_id.into(),
                    r.plan_version.into(),
                    r.profile.into(),
                    station.into(),
                    r.started.into(),
                    r.finished.into(),
                    r.trace.into(),
                ],
            )?;
            let rows: Vec<Vec<Value>> = r
                .cases
                .iter()
                .enumerate()
                .map(|(pos, k)| {
                    let mut p = vec![r.run_id.into(), Value::Int(pos as i64)];
                    p.extend(case_values(k));
                    p
                })
                .collect();
            db.insert_rows(
                "INSERT INTO run_cases (run_id, position, case_id, title, reference, status, message,
                                        failure_step, failure_expected, failure_actual, duration_ms) VALUES",
                &rows,
            )?;
            Ok(())
        })
    }

    pub fn record_timing_run(&self, t: &TimingRecord, station: &str) -> Result<(), StoreError> {
        self.db().transaction(|db| {
            db.exec("DELETE FROM timing_samples WHERE run_id = $1", &[t.run_id.into()])?;
            db.exec("DELETE FROM timing_runs WHERE run_id = $1", &[t.run_id.into()])?;
            db.exec(
                "INSERT INTO timing_runs (run_id, lot, spec_id, spec_version, profile, station, started, finished, folder)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    t.run_id.into(),
                    t.lot.into(),
                    t.spec_id.into(),
                    t.spec_version.into(),
                    t.profile.into(),
                    station.into(),
                    t.started.into(),
                    t.finished.into(),
                    t.folder.into(),
                ],
            )?;
            let rows: Vec<Vec<Value>> = t
                .samples
                .iter()
                .map(|s| {
                    vec![
                        t.run_id.into(),
                        (&s.op).into(),
                        (&s.head).into(),
                        (&s.card_id).into(),
                        Value::Int(s.iteration.into()),
                        Value::Int(s.baseline.into()),
                        Value::Int(s.duration_ns.min(i64::MAX as u64) as i64),
                    ]
                })
                .collect();
            db.insert_rows(
                "INSERT INTO timing_samples (run_id, op, head, card_id, iteration, baseline, duration_ns) VALUES",
                &rows,
            )?;
            Ok(())
        })
    }
}

/// A timing run's folder into the store (`cardbench time` and the TUI's Timing panel); its lot
/// is the folder its run folder sits in (the lot folder `time compare` pools).
pub fn record_timing(
    store: &Store,
    spec: &crate::timing::spec::Spec,
    profile: &std::path::Path,
    dir: &std::path::Path,
    run_id: &str,
    started: &str,
    samples: &[Sample],
) -> Result<(), StoreError> {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let lot = abs.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let t = TimingRecord {
        run_id,
        lot: &lot,
        spec_id: &spec.id,
        spec_version: &spec.version,
        profile: &profile.display().to_string(),
        started,
        finished: &super::now(),
        folder: &dir.display().to_string(),
        samples,
    };
    store.record_timing_run(&t, &super::station_name(dir))
}
