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

/// Rows per INSERT of samples: one round trip per chunk instead of per sample.
const CHUNK: usize = 200;

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
            for (pos, k) in r.cases.iter().enumerate() {
                let mut p = vec![r.run_id.into(), Value::Int(pos as i64)];
                p.extend(case_values(k));
                db.exec(
                    "INSERT INTO run_cases (run_id, position, case_id, title, reference, status, message,
                                            failure_step, failure_expected, failure_actual, duration_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    &p,
                )?;
            }
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
            for chunk in t.samples.chunks(CHUNK) {
                let mut sql = String::from(
                    "INSERT INTO timing_samples (run_id, op, head, card_id, iteration, baseline, duration_ns) VALUES ",
                );
                let mut p = Vec::with_capacity(chunk.len() * 7);
                for (i, s) in chunk.iter().enumerate() {
                    let b = i * 7;
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7
                    ));
                    p.extend([
                        t.run_id.into(),
                        (&s.op).into(),
                        (&s.head).into(),
                        (&s.card_id).into(),
                        Value::Int(s.iteration.into()),
                        Value::Int(s.baseline.into()),
                        Value::Int(s.duration_ns.min(i64::MAX as u64) as i64),
                    ]);
                }
                db.exec(&sql, &p)?;
            }
            Ok(())
        })
    }
}
