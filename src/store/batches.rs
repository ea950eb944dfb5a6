//! Batches in the store: the batch row, the card claims through which stations share a batch,
//! each certified card with its case results, and the batch read back as a `BatchResult` (for
//! `cardbench report --db URL --batch ID`).

use super::sql::{Db, Dialect, Row, Value};
use super::{now, Store, StoreError};
use crate::report::{BatchResult, CardResult, CaseResult, CaseStatus, Failure, Verdict};

/// What a batch was started with, as the store keeps it.
#[derive(Debug, Clone)]
pub struct BatchRow {
    pub batch_id: String,
    pub plan_id: String,
    pub plan_version: String,
    pub profile: String,
    pub count: u64,
    /// When the batch's first run started (its batch.json).
    pub started: String,
    /// The batch.json of the station that created the row, whole.
    pub meta_json: String,
}

fn text(r: &Row, i: usize) -> String {
    r.get(i).and_then(|v| v.text()).unwrap_or_default().to_string()
}

fn int(r: &Row, i: usize) -> i64 {
    r.get(i).and_then(|v| v.int()).unwrap_or_default()
}

fn opt_text(r: &Row, i: usize) -> Option<String> {
    r.get(i).and_then(|v| v.text()).map(str::to_string)
}

/// The case status a stored word stands for (the words are the journal's).
fn status_of(word: &str) -> Option<CaseStatus> {
    [
        CaseStatus::Passed,
        CaseStatus::Failed,
        CaseStatus::Skipped,
        CaseStatus::Error,
        CaseStatus::Blocked,
        CaseStatus::NotRun,
    ]
    .into_iter()
    .find(|s| crate::runner::status_word(s) == word)
}

/// Lock the batch row for the rest of the transaction (SQLite's IMMEDIATE transaction already
/// holds the whole database).
fn lock_batch(db: &mut Db, batch_id: &str) -> Result<Option<Row>, StoreError> {
    let sql = match db.dialect() {
        Dialect::Sqlite => "SELECT next_index, card_count FROM batches WHERE batch_id = $1",
        Dialect::Postgres => "SELECT next_index, card_count FROM batches WHERE batch_id = $1 FOR UPDATE",
    };
    Ok(db.query(sql, &[batch_id.into()])?.into_iter().next())
}

fn delete_batch(db: &mut Db, batch_id: &str) -> Result<(), StoreError> {
    for t in ["case_results", "cards", "card_claims", "batches"] {
        db.exec(&format!("DELETE FROM {t} WHERE batch_id = $1"), &[batch_id.into()])?;
    }
    Ok(())
}

/// Insert (or replace) one card and its cases; its claim is marked done.
pub(super) fn put_card(db: &mut Db, batch_id: &str, station: &str, c: &CardResult) -> Result<(), StoreError> {
    let idx = c.index as i64;
    let key = [Value::from(batch_id), Value::Int(idx)];
    db.exec("DELETE FROM case_results WHERE batch_id = $1 AND idx = $2", &key)?;
    db.exec("DELETE FROM cards WHERE batch_id = $1 AND idx = $2", &key)?;
    let (failing, reason) = match &c.verdict {
        Verdict::Pass => (Vec::new(), String::new()),
        Verdict::Fail { failing } => (failing.clone(), String::new()),
        Verdict::Aborted { reason } => (Vec::new(), reason.clone()),
    };
    db.exec(
        "INSERT INTO cards (batch_id, idx, card_id, station, head, verdict, failing, reason, trace, started, duration_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            batch_id.into(),
            Value::Int(idx),
            (&c.card_id).into(),
            station.into(),
            (&c.head).into(),
            c.verdict.word().into(),
            serde_json::to_string(&failing).unwrap_or_default().into(),
            reason.into(),
            (&c.trace).into(),
            (&c.started).into(),
            c.duration_ms.into(),
        ],
    )?;
    let rows: Vec<Vec<Value>> = c
        .cases
        .iter()
        .enumerate()
        .map(|(pos, k)| {
            let mut p = vec![batch_id.into(), Value::Int(idx), Value::Int(pos as i64)];
            p.extend(case_values(k));
            p
        })
        .collect();
    db.insert_rows(
        "INSERT INTO case_results (batch_id, idx, position, case_id, title, reference, status, message,
                                   failure_step, failure_expected, failure_actual, duration_ms) VALUES",
        &rows,
    )?;
    let claimed = now();
    let claim = [batch_id.into(), Value::Int(idx), station.into(), (&c.card_id).into(), claimed.into()];
    db.exec(
        "INSERT INTO card_claims (batch_id, idx, station, state, card_id, claimed) VALUES ($1, $2, $3, 'done', $4, $5)
         ON CONFLICT (batch_id, idx) DO UPDATE SET station = excluded.station, state = 'done', card_id = excluded.card_id",
        &claim,
    )?;
    Ok(())
}

/// A case's columns from `case_id` on (also the run_cases table's).
pub(super) fn case_values(k: &CaseResult) -> Vec<Value> {
    let f = k.failure.as_ref();
    vec![
        (&k.id).into(),
        (&k.title).into(),
        (&k.reference).into(),
        crate::runner::status_word(&k.status).into(),
        (&k.message).into(),
        f.map(|f| f.step.as_str()).into(),
        f.map(|f| f.expected.as_str()).into(),
        f.map(|f| f.actual.as_str()).into(),
        k.duration_ms.into(),
    ]
}

/// A case back from its columns (`case_id` … `duration_ms`, from column `at`).
pub(super) fn case_of(r: &Row, at: usize) -> Result<CaseResult, StoreError> {
    let word = text(r, at + 3);
    let status = status_of(&word).ok_or_else(|| StoreError::Query(format!("unknown case status '{word}'")))?;
    let failure = match (opt_text(r, at + 5), opt_text(r, at + 6), opt_text(r, at + 7)) {
        (Some(step), Some(expected), Some(actual)) => Some(Failure { step, expected, actual }),
        _ => None,
    };
    Ok(CaseResult {
        id: text(r, at),
        title: text(r, at + 1),
        reference: text(r, at + 2),
        status,
        message: text(r, at + 4),
        failure,
        duration_ms: r.get(at + 8).and_then(|v| v.real()).unwrap_or_default(),
        // From the stored batch.json's matrix when the reports are made.
        verifies: Vec::new(),
    })
}

impl Store {
    /// A batch run starts at a station: the batch row is made or checked, the cards this
    /// station's journal has and the store lacks are written (a store write that a kill cut
    /// off, or a batch begun with files only), and in a shared store the cards this station
    /// had claimed in an earlier run are given back to the pool. Returns notes for the operator.
    pub fn begin_batch(&self, b: &BatchRow, station: &str, journal: &[CardResult]) -> Result<Vec<String>, StoreError> {
        let shared = self.shared;
        let location = self.location.clone();
        self.db().transaction(|db| {
            let mut notes = Vec::new();
            let have = db.query(
                "SELECT plan_id, plan_version, card_count, started, meta_json FROM batches WHERE batch_id = $1",
                &[(&b.batch_id).into()],
            )?;
            if let Some(r) = have.first() {
                let (plan_id, plan_version, count, started) = (text(r, 0), text(r, 1), int(r, 2) as u64, text(r, 3));
                if shared {
                    // Stations join a batch with its parameters; the profile path is theirs.
                    if (&plan_id, &plan_version, count) != (&b.plan_id, &b.plan_version, b.count) {
                        return Err(StoreError::Batch {
                            location,
                            msg: format!(
                                "batch {} is certified with plan {plan_id} {plan_version}, count {count}; \
                                 this station has plan {} {}, count {}",
                                b.batch_id, b.plan_id, b.plan_version, b.count
                            ),
                        });
                    }
                    if let Some(what) = identity_differs(&text(r, 4), &b.meta_json) {
                        return Err(StoreError::Batch {
                            location,
                            msg: format!("batch {}: this station's {what}; every station certifies with the same", b.batch_id),
                        });
                    }
                } else if started != b.started {
                    // One station, and its batch folder is new: the batch ID was used before
                    // by a batch whose folder is gone. The files are the record; follow them.
                    delete_batch(db, &b.batch_id)?;
                    notes.push(format!(
                        "results store {location}: batch {} of {started} replaced by the batch of {} (its folder was new)",
                        b.batch_id, b.started
                    ));
                }
            }
            db.exec(
                "INSERT INTO batches (batch_id, plan_id, plan_version, profile, card_count, started, finished, next_index,
                                      meta_json, recertified_json)
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, 1, $7, '[]') ON CONFLICT (batch_id) DO NOTHING",
                &[
                    (&b.batch_id).into(),
                    (&b.plan_id).into(),
                    (&b.plan_version).into(),
                    (&b.profile).into(),
                    b.count.into(),
                    (&b.started).into(),
                    (&b.meta_json).into(),
                ],
            )?;
            let stored: std::collections::HashSet<i64> = db
                .query("SELECT idx FROM cards WHERE batch_id = $1", &[(&b.batch_id).into()])?
                .iter()
                .map(|r| int(r, 0))
                .collect();
            let mut filled = 0;
            for c in journal.iter().filter(|c| !stored.contains(&(c.index as i64))) {
                put_card(db, &b.batch_id, station, c)?;
                filled += 1;
            }
            if filled > 0 && !stored.is_empty() {
                notes.push(format!("results store {location}: {filled} cards of the journal written (the store missed them)"));
            }
            if shared {
                db.exec(
                    "UPDATE card_claims SET state = 'released' WHERE batch_id = $1 AND station = $2 AND state = 'active'",
                    &[(&b.batch_id).into(), station.into()],
                )?;
            }
            Ok(notes)
        })
    }

    /// A shared batch: the next card index for `station`, `None` when every card of the batch
    /// is certified or being certified somewhere. Released indices (a station's worker gave
    /// its card back) go first, in order, then indices never handed out.
    pub fn claim_next(&self, batch_id: &str, station: &str) -> Result<Option<u64>, StoreError> {
        self.db().transaction(|db| {
            let Some(row) = lock_batch(db, batch_id)? else {
                return Err(StoreError::Query(format!("batch {batch_id} is not in the store")));
            };
            let (mut next, count) = (int(&row, 0), int(&row, 1));
            let released = db.query(
                "SELECT idx FROM card_claims WHERE batch_id = $1 AND state = 'released' ORDER BY idx LIMIT 1",
                &[batch_id.into()],
            )?;
            if let Some(r) = released.first() {
                let idx = int(r, 0);
                db.exec(
                    "UPDATE card_claims SET state = 'active', station = $3, card_id = NULL, claimed = $4
                     WHERE batch_id = $1 AND idx = $2",
                    &[batch_id.into(), Value::Int(idx), station.into(), now().into()],
                )?;
                return Ok(Some(idx as u64));
            }
            // Indices written without a claim (a journal filled in) are skipped.
            while next <= count {
                let taken = db.query(
                    "SELECT 1 FROM card_claims WHERE batch_id = $1 AND idx = $2",
                    &[batch_id.into(), Value::Int(next)],
                )?;
                if taken.is_empty() {
                    break;
                }
                next += 1;
            }
            let got = if next <= count {
                db.exec(
                    "INSERT INTO card_claims (batch_id, idx, station, state, card_id, claimed)
                     VALUES ($1, $2, $3, 'active', NULL, $4)",
                    &[batch_id.into(), Value::Int(next), station.into(), now().into()],
                )?;
                Some(next as u64)
            } else {
                None
            };
            db.exec(
                "UPDATE batches SET next_index = $2 WHERE batch_id = $1",
                &[batch_id.into(), Value::Int(next + i64::from(got.is_some()))],
            )?;
            Ok(got)
        })
    }

    /// A station's worker gives a claimed card index back (its head stopped, the card was
    /// refused, the batch stops): another station, or this one, takes it next.
    pub fn release(&self, batch_id: &str, idx: u64, station: &str) -> Result<(), StoreError> {
        self.db().exec(
            "UPDATE card_claims SET state = 'released', card_id = NULL
             WHERE batch_id = $1 AND idx = $2 AND station = $3 AND state = 'active'",
            &[batch_id.into(), Value::Int(idx as i64), station.into()],
        )?;
        Ok(())
    }

    /// Whether a shared batch has card indices left to hand out.
    pub fn has_free(&self, batch_id: &str) -> Result<bool, StoreError> {
        let r = self.db().query(
            "SELECT (SELECT COUNT(*) FROM card_claims WHERE batch_id = $1 AND state = 'released'),
                    (SELECT COUNT(*) FROM card_claims WHERE batch_id = $1),
                    card_count
             FROM batches WHERE batch_id = $1",
            &[batch_id.into()],
        )?;
        Ok(r.first().is_some_and(|r| int(r, 0) > 0 || int(r, 1) < int(r, 2)))
    }

    /// The card in `station`'s head has been identified as `card_id` (card index `idx`): refused
    /// when another station certified it in this batch or is certifying it now; otherwise the
    /// claim records the card, so that the other stations refuse it in turn.
    pub fn card_identified(&self, batch_id: &str, idx: u64, card_id: &str, station: &str) -> Result<(), StoreError> {
        self.db().transaction(|db| {
            lock_batch(db, batch_id)?;
            let p = [batch_id.into(), card_id.into(), station.into()];
            let done = db.query(
                "SELECT station, idx FROM cards WHERE batch_id = $1 AND card_id = $2 AND station <> $3 ORDER BY idx LIMIT 1",
                &p,
            )?;
            if let Some(r) = done.first() {
                return Err(StoreError::Refused {
                    card_id: card_id.into(),
                    what: format!("was certified in batch {batch_id} (as #{})", int(r, 1)),
                    station: text(r, 0),
                });
            }
            let busy = db.query(
                "SELECT station FROM card_claims
                 WHERE batch_id = $1 AND card_id = $2 AND station <> $3 AND state = 'active' LIMIT 1",
                &p,
            )?;
            if let Some(r) = busy.first() {
                return Err(StoreError::Refused {
                    card_id: card_id.into(),
                    what: format!("is being certified in batch {batch_id}"),
                    station: text(r, 0),
                });
            }
            db.exec(
                "INSERT INTO card_claims (batch_id, idx, station, state, card_id, claimed) VALUES ($1, $2, $3, 'active', $4, $5)
                 ON CONFLICT (batch_id, idx) DO UPDATE SET card_id = excluded.card_id
                 WHERE card_claims.station = excluded.station",
                &[batch_id.into(), Value::Int(idx as i64), station.into(), card_id.into(), now().into()],
            )?;
            Ok(())
        })
    }

    /// A certified card, written after its journal line (the same `CardResult`).
    pub fn record_card(&self, batch_id: &str, station: &str, c: &CardResult) -> Result<(), StoreError> {
        self.db().transaction(|db| put_card(db, batch_id, station, c))
    }

    /// A run of the batch ended: its batch.json as it now stands (runs, the heads' ATRs), its
    /// re-certified cards, its finish time. One station: they replace the stored ones, so the
    /// store gives back the station's very reports. Shared: this station's runs and
    /// re-certifications join the others', and `finished` is the latest of the stations'.
    pub fn finish_batch(
        &self,
        batch_id: &str,
        finished: &str,
        meta_json: &str,
        recertified_json: &str,
    ) -> Result<(), StoreError> {
        let shared = self.shared;
        self.db().transaction(|db| {
            lock_batch(db, batch_id)?;
            let (meta, recertified) = if shared {
                let r = db
                    .query("SELECT meta_json, recertified_json FROM batches WHERE batch_id = $1", &[batch_id.into()])?;
                let (old_meta, old_re) = r.first().map(|r| (text(r, 0), text(r, 1))).unwrap_or_default();
                (merge_runs(&old_meta, meta_json), merge_recertified(&old_re, recertified_json))
            } else {
                (meta_json.to_string(), recertified_json.to_string())
            };
            db.exec(
                "UPDATE batches SET meta_json = $2, recertified_json = $3 WHERE batch_id = $1",
                &[batch_id.into(), meta.into(), recertified.into()],
            )?;
            db.exec(
                "UPDATE batches SET finished = $2 WHERE batch_id = $1 AND (finished IS NULL OR finished < $2)",
                &[batch_id.into(), finished.into()],
            )?;
            Ok(())
        })
    }

    /// Card indices of a shared batch that no station has certified and none is certifying
    /// (a card `station` itself holds counts as missing: its run is ending).
    pub fn missing(&self, batch_id: &str, station: &str) -> Result<Vec<u64>, StoreError> {
        let mut db = self.db();
        let count = db.query("SELECT card_count FROM batches WHERE batch_id = $1", &[batch_id.into()])?;
        let count = count.first().map(|r| int(r, 0)).unwrap_or(0);
        let busy: std::collections::HashSet<i64> = db
            .query(
                "SELECT idx FROM cards WHERE batch_id = $1
                 UNION SELECT idx FROM card_claims WHERE batch_id = $1 AND state = 'active' AND station <> $2",
                &[batch_id.into(), station.into()],
            )?
            .iter()
            .map(|r| int(r, 0))
            .collect();
        Ok((1..=count).filter(|i| !busy.contains(i)).map(|i| i as u64).collect())
    }

    /// The whole batch as every station certified it, in card order, with the header of its
    /// batch.json: what `cardbench report --db URL --batch ID` writes its reports from. It is
    /// made as the batch's own reports are (`batch::reports::result_of`), so a batch of one
    /// station gives back its very bytes.
    pub fn load_batch(&self, batch_id: &str) -> Result<BatchResult, StoreError> {
        let mut db = self.db();
        let head =
            db.query("SELECT meta_json, recertified_json FROM batches WHERE batch_id = $1", &[batch_id.into()])?;
        let Some(h) = head.first() else {
            return Err(StoreError::Batch { location: self.location.clone(), msg: format!("no batch {batch_id}") });
        };
        let bad = |what: &str, e: serde_json::Error| StoreError::Batch {
            location: self.location.clone(),
            msg: format!("batch {batch_id}: its stored {what} cannot be read ({e})"),
        };
        let meta: crate::batch::journal::BatchMeta =
            serde_json::from_str(&text(h, 0)).map_err(|e| bad("batch.json", e))?;
        let recertified: Vec<crate::batch::header::Recertified> =
            serde_json::from_str(&text(h, 1)).map_err(|e| bad("re-certifications", e))?;
        let cards = db.query(
            "SELECT idx, card_id, head, verdict, failing, reason, trace, started, duration_ms
             FROM cards WHERE batch_id = $1 ORDER BY idx",
            &[batch_id.into()],
        )?;
        let cases = db.query(
            "SELECT idx, case_id, title, reference, status, message, failure_step, failure_expected, failure_actual, duration_ms
             FROM case_results WHERE batch_id = $1 ORDER BY idx, position",
            &[batch_id.into()],
        )?;
        let mut by_card: std::collections::HashMap<i64, Vec<CaseResult>> = std::collections::HashMap::new();
        for r in &cases {
            by_card.entry(int(r, 0)).or_default().push(case_of(r, 1)?);
        }
        let mut out = Vec::with_capacity(cards.len());
        for r in &cards {
            let idx = int(r, 0);
            let verdict = match text(r, 3).as_str() {
                "pass" => Verdict::Pass,
                "fail" => Verdict::Fail { failing: serde_json::from_str(&text(r, 4)).unwrap_or_default() },
                _ => Verdict::Aborted { reason: text(r, 5) },
            };
            out.push(CardResult {
                index: idx as u64,
                card_id: text(r, 1),
                head: text(r, 2),
                verdict,
                cases: by_card.remove(&idx).unwrap_or_default(),
                trace: text(r, 6),
                started: text(r, 7),
                duration_ms: r.get(8).and_then(|v| v.real()).unwrap_or_default(),
            });
        }
        Ok(crate::batch::reports::result_of(&meta, out, recertified))
    }
}

/// `cardbench report --db URL --batch ID --out DIR`: the batch's reports (summary.csv,
/// junit.xml, results.json) written from the store into `out`, covering every station.
pub fn write_reports(store: &Store, batch_id: &str, out: &std::path::Path) -> anyhow::Result<BatchResult> {
    use anyhow::Context;
    let b = store.load_batch(batch_id)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    crate::report::files::write_reports(out, &b)
        .with_context(|| format!("writing the reports into {}", out.display()))?;
    Ok(b)
}

/// batch.json of the store with the `runs` of `station_meta` joined: a run the store has (the
/// same host, start and readers) is replaced, since a run's entry grows while it runs (the
/// heads' ATRs); others are appended (stations sharing a batch each add their runs).
/// Unreadable JSON on either side leaves the other.
fn merge_runs(stored: &str, station_meta: &str) -> String {
    let (Ok(mut a), Ok(b)) =
        (serde_json::from_str::<serde_json::Value>(stored), serde_json::from_str::<serde_json::Value>(station_meta))
    else {
        return if stored.is_empty() { station_meta.to_string() } else { stored.to_string() };
    };
    let key = |r: &serde_json::Value| {
        let readers: Vec<&serde_json::Value> =
            r["heads"].as_array().map(|h| h.iter().map(|x| &x["reader"]).collect()).unwrap_or_default();
        serde_json::json!([r["host"], r["started"], readers]).to_string()
    };
    let theirs = b.get("runs").and_then(|r| r.as_array()).cloned().unwrap_or_default();
    if let Some(runs) = a.get_mut("runs").and_then(|r| r.as_array_mut()) {
        for r in theirs {
            match runs.iter().position(|x| key(x) == key(&r)) {
                Some(i) => runs[i] = r,
                None => runs.push(r),
            }
        }
    }
    a.to_string()
}

/// What differs between the identity (batch.json's header) a shared batch was created with
/// and a joining station's: the plan's content (its hash over every include, not its path)
/// or the keyset (the fingerprint of its public parts). Either side without a header says
/// nothing.
fn identity_differs(stored: &str, station: &str) -> Option<String> {
    let (a, b): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(stored).ok()?, serde_json::from_str(station).ok()?);
    let short = |v: &serde_json::Value| {
        v.as_str().unwrap_or("?").trim_start_matches("sha256:").chars().take(12).collect::<String>()
    };
    for (path, what) in [(["plan", "sha256"], "plan"), (["keyset", "fingerprint"], "keyset")] {
        let (x, y) = (&a["header"][path[0]][path[1]], &b["header"][path[0]][path[1]]);
        if !x.is_null() && !y.is_null() && x != y {
            return Some(format!("{what} differs from the batch's ({} here, {} in the batch)", short(y), short(x)));
        }
    }
    None
}

/// The stored re-certifications with a station's joined (by card index, the station's last).
fn merge_recertified(stored: &str, station: &str) -> String {
    use crate::batch::header::Recertified;
    let mut all: Vec<Recertified> = serde_json::from_str(stored).unwrap_or_default();
    for r in serde_json::from_str::<Vec<Recertified>>(station).unwrap_or_default() {
        all.retain(|x| x.index != r.index);
        all.push(r);
    }
    all.sort_by_key(|r| r.index);
    serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
}
