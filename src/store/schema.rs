//! The store's schema as numbered migrations (docs/results-store.md describes every table).
//! A database records the migrations it has in `schema_version`; opening it applies the
//! missing ones in order, in one transaction each. A database from a newer cardbench (a
//! version this one does not know) is refused rather than written with an old idea of it.
//!
//! The column types are the ones both databases understand the same way: BIGINT, DOUBLE
//! PRECISION and TEXT (times are RFC 3339 UTC text, which sorts as time does).

use super::sql::{Db, Dialect, Value};
use super::StoreError;

/// Migration `i + 1` is `MIGRATIONS[i]`. Never edit a released one: add the next.
pub const MIGRATIONS: &[&str] = &[
    // 1: batches, their cards and case results, the stations' card claims, runs, timing runs.
    r#"
CREATE TABLE batches (
    batch_id     TEXT PRIMARY KEY,
    plan_id      TEXT NOT NULL,
    plan_version TEXT NOT NULL,
    profile      TEXT NOT NULL,
    card_count   BIGINT NOT NULL,
    started      TEXT NOT NULL,
    finished     TEXT,
    next_index   BIGINT NOT NULL,
    meta_json    TEXT NOT NULL,
    recertified_json TEXT NOT NULL
);
CREATE TABLE card_claims (
    batch_id TEXT NOT NULL REFERENCES batches (batch_id),
    idx      BIGINT NOT NULL,
    station  TEXT NOT NULL,
    state    TEXT NOT NULL,
    card_id  TEXT,
    claimed  TEXT NOT NULL,
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX card_claims_state ON card_claims (batch_id, state, idx);
CREATE INDEX card_claims_card ON card_claims (batch_id, card_id);
CREATE TABLE cards (
    batch_id    TEXT NOT NULL REFERENCES batches (batch_id),
    idx         BIGINT NOT NULL,
    card_id     TEXT NOT NULL,
    station     TEXT NOT NULL,
    head        TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    failing     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    trace       TEXT NOT NULL,
    started     TEXT NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX cards_card_id ON cards (batch_id, card_id);
CREATE INDEX cards_started ON cards (started);
CREATE TABLE case_results (
    batch_id         TEXT NOT NULL,
    idx              BIGINT NOT NULL,
    position         BIGINT NOT NULL,
    case_id          TEXT NOT NULL,
    title            TEXT NOT NULL,
    reference        TEXT NOT NULL,
    status           TEXT NOT NULL,
    message          TEXT NOT NULL,
    failure_step     TEXT,
    failure_expected TEXT,
    failure_actual   TEXT,
    duration_ms      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (batch_id, idx, position),
    FOREIGN KEY (batch_id, idx) REFERENCES cards (batch_id, idx)
);
CREATE INDEX case_results_case ON case_results (case_id, status);
CREATE TABLE runs (
    run_id       TEXT PRIMARY KEY,
    plan_id      TEXT NOT NULL,
    plan_version TEXT NOT NULL,
    profile      TEXT NOT NULL,
    station      TEXT NOT NULL,
    started      TEXT NOT NULL,
    finished     TEXT NOT NULL,
    trace        TEXT NOT NULL
);
CREATE TABLE run_cases (
    run_id           TEXT NOT NULL REFERENCES runs (run_id),
    position         BIGINT NOT NULL,
    case_id          TEXT NOT NULL,
    title            TEXT NOT NULL,
    reference        TEXT NOT NULL,
    status           TEXT NOT NULL,
    message          TEXT NOT NULL,
    failure_step     TEXT,
    failure_expected TEXT,
    failure_actual   TEXT,
    duration_ms      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, position)
);
CREATE TABLE timing_runs (
    run_id       TEXT PRIMARY KEY,
    lot          TEXT NOT NULL,
    spec_id      TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    profile      TEXT NOT NULL,
    station      TEXT NOT NULL,
    started      TEXT NOT NULL,
    finished     TEXT NOT NULL,
    folder       TEXT NOT NULL
);
CREATE INDEX timing_runs_lot ON timing_runs (lot, started);
CREATE TABLE timing_samples (
    run_id      TEXT NOT NULL REFERENCES timing_runs (run_id),
    op          TEXT NOT NULL,
    head        TEXT NOT NULL,
    card_id     TEXT NOT NULL,
    iteration   BIGINT NOT NULL,
    baseline    BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL,
    PRIMARY KEY (run_id, head, op, iteration, baseline)
);
CREATE INDEX timing_samples_op ON timing_samples (op, baseline);
"#,
];

/// Bring `db` up to the last migration. Several stations may open a fresh PostgreSQL
/// database at once: the first takes the lock and migrates, the others wait and find it done.
pub fn migrate(db: &mut Db) -> Result<u64, StoreError> {
    if db.dialect() == Dialect::Postgres {
        // One number for "cardbench schema": a session lock, held until the end of migrate.
        db.batch("SELECT pg_advisory_lock(7152030641)")?;
    }
    let r = migrate_locked(db);
    if db.dialect() == Dialect::Postgres {
        let _ = db.batch("SELECT pg_advisory_unlock(7152030641)");
    }
    r
}

fn migrate_locked(db: &mut Db) -> Result<u64, StoreError> {
    db.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied TEXT NOT NULL)")?;
    let have = db.query("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])?;
    let have = have.first().and_then(|r| r[0].int()).unwrap_or(0) as usize;
    if have > MIGRATIONS.len() {
        return Err(StoreError::Newer { have: have as u64, known: MIGRATIONS.len() as u64 });
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(have) {
        let version = (i + 1) as i64;
        db.transaction(|db| {
            db.batch(m)?;
            db.exec(
                "INSERT INTO schema_version (version, applied) VALUES ($1, $2)",
                &[Value::Int(version), Value::Text(super::now())],
            )?;
            Ok(())
        })?;
    }
    Ok(MIGRATIONS.len() as u64)
}
