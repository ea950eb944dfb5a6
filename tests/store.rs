//! The results store (docs/results-store.md): batches, runs and timing runs land in SQLite by
//! default and in a shared PostgreSQL for a lab of stations; the batch report comes back from
//! the database; the documented questions answer. The PostgreSQL tests start their own
//! throwaway server (tests/common/postgres.rs).

#[path = "common/postgres.rs"]
mod postgres_server;

use cardbench::report::{CardResult, CaseResult, CaseStatus, Verdict};
use cardbench::store::sql::Value;
use cardbench::store::{Store, StoreError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtual lab with one more seeded defect: every 4th card (index 2, 6, 10 …) accepts a
/// transfer key with its current ID, which KU-TK-EQ-01 catches.
fn lab(dir: &Path) -> PathBuf {
    let mut p = std::fs::read_to_string(root().join("profiles/virtual-lab.toml")).unwrap();
    p.push_str("\n[[batch.defect]]\nevery = 4\noffset = 2\ndefects = [\"tkid-accepts-current\"]\n");
    let path = dir.join("lab.toml");
    std::fs::write(&path, p).unwrap();
    path
}

fn cardbench(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(dir).env_remove("CARDBENCH_DB");
    c
}

fn batch(dir: &Path, logs: &str, id: &str, count: u32, db: Option<&str>) -> Command {
    let mut c = cardbench(dir);
    c.args(["batch", "--profile", "lab.toml", "--plan"]).arg(root().join("test-plans/certification.toml")).args([
        "--batch-id",
        id,
        "--count",
        &count.to_string(),
        "--logs",
        logs,
        "-q",
    ]);
    if let Some(db) = db {
        c.args(["--db", db]);
    }
    c
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(matches!(o.status.code(), Some(0 | 1)), "exit {:?}: {err}", o.status.code());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// How many cards of a summary.csv failed `case`.
fn failing(path: &Path, case: &str) -> i64 {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records().filter(|r| r.as_ref().unwrap()[5].split(';').any(|c| c == case)).count() as i64
}

/// (index, card id) of every row of a summary.csv.
fn summary_cards(path: &Path) -> Vec<(u64, String)> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records().map(|r| r.unwrap()).map(|r| (r[1].parse().unwrap(), r[2].to_string())).collect()
}

#[test]
fn sqlite_by_default_holds_the_batch_and_its_reports_come_back_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    lab(d.path());
    let out = batch(d.path(), "logs", "LOT-A", 8, None).output().unwrap();
    ok(&out);
    let db = d.path().join("logs/cardbench.sqlite");
    assert!(db.exists(), "no default store under logs/");
    let store = Store::open(Some(db.to_str().unwrap()), d.path()).unwrap().unwrap();
    let back = d.path().join("from-db");
    let o = cardbench(d.path())
        .args(["report", "--db", "logs/cardbench.sqlite", "--batch", "LOT-A", "--out", "from-db"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("batch LOT-A: 8 cards"), "{o:?}");
    for f in ["summary.csv", "junit.xml", "results.json", "coverage.csv"] {
        let file = std::fs::read(d.path().join("logs/LOT-A").join(f)).unwrap();
        let from_db = std::fs::read(back.join(f)).unwrap();
        assert!(file == from_db, "{f} from the store differs from the batch's file");
    }
    // Resuming the finished batch writes nothing twice.
    ok(&batch(d.path(), "logs", "LOT-A", 8, None).output().unwrap());
    let n = store.query("SELECT COUNT(*) FROM cards WHERE batch_id = 'LOT-A'", &[]).unwrap();
    assert_eq!(n[0][0], Value::Int(8));
}

/// "Which lots failed KU-TK-EQ-01 this month", as docs/results-store.md writes it.
const LOTS_FAILED_THIS_MONTH: &str = "\
SELECT b.batch_id, COUNT(DISTINCT c.idx) AS cards
FROM case_results r
JOIN cards c ON c.batch_id = r.batch_id AND c.idx = r.idx
JOIN batches b ON b.batch_id = r.batch_id
WHERE r.case_id = $1 AND r.status = 'failed' AND c.started >= $2
GROUP BY b.batch_id
ORDER BY b.batch_id";

/// "SIGN PAYMENT median per lot over time", as docs/results-store.md writes it.
const MEDIAN_PER_LOT: &str = "\
WITH s AS (
  SELECT r.lot, r.started, t.duration_ns,
         ROW_NUMBER() OVER (PARTITION BY r.lot ORDER BY t.duration_ns) AS k,
         COUNT(*) OVER (PARTITION BY r.lot) AS n
  FROM timing_samples t JOIN timing_runs r ON r.run_id = t.run_id
  WHERE t.op = $1 AND t.baseline = 0
)
SELECT lot, MIN(started) AS first_run, AVG(CAST(duration_ns AS DOUBLE PRECISION)) / 1e6 AS median_ms
FROM s
WHERE k IN ((n + 1) / 2, (n + 2) / 2)
GROUP BY lot
ORDER BY first_run";

fn month_start() -> String {
    chrono::Utc::now().format("%Y-%m-01").to_string()
}

#[test]
fn the_documented_questions_answer_across_batches_and_timing_lots() {
    let d = tempfile::tempdir().unwrap();
    lab(d.path());
    ok(&batch(d.path(), "logs", "LOT-1", 3, None).output().unwrap());
    ok(&batch(d.path(), "logs", "LOT-2", 1, None).output().unwrap());
    ok(&batch(d.path(), "logs", "LOT-3", 7, None).output().unwrap());
    for (lot, run) in [("lot6", "r1"), ("lot7", "r2")] {
        let o = cardbench(d.path())
            .args(["time"])
            .arg(root().join("test-plans/timing/hot-path.toml"))
            .args(["--profile", "lab.toml", "-n", "5", "--warmup", "1", "--logs"])
            .arg(format!("logs/{lot}"))
            .args(["--run-id", run, "--db"])
            .arg(d.path().join("logs/cardbench.sqlite"))
            .output()
            .unwrap();
        ok(&o);
    }
    let store = Store::open(None, &d.path().join("logs")).unwrap().unwrap();
    // Cards 2 and 6 carry the defect: LOT-1 (3 cards) has card 2, LOT-3 (7 cards) 2 and 6.
    let n = |lot: &str| failing(&d.path().join("logs").join(lot).join("summary.csv"), "KU-TK-EQ-01");
    assert_eq!((n("LOT-1"), n("LOT-2"), n("LOT-3")), (1, 0, 2));
    let rows = store.query(LOTS_FAILED_THIS_MONTH, &["KU-TK-EQ-01".into(), month_start().into()]).unwrap();
    assert_eq!(
        rows,
        vec![vec![Value::from("LOT-1"), Value::Int(1)], vec![Value::from("LOT-3"), Value::Int(2)]],
        "lots failing KU-TK-EQ-01"
    );
    let rows = store.query(MEDIAN_PER_LOT, &["cpay.sign_payment".into()]).unwrap();
    let lots: Vec<&str> = rows.iter().map(|r| r[0].text().unwrap()).collect();
    assert_eq!(lots, ["lot6", "lot7"]);
    // The median is one of the lot's samples (odd n) or the mean of the middle two.
    for r in &rows {
        let lot = r[0].text().unwrap();
        let samples = store
            .query(
                "SELECT t.duration_ns FROM timing_samples t JOIN timing_runs r ON r.run_id = t.run_id
                 WHERE r.lot = $1 AND t.op = 'cpay.sign_payment' AND t.baseline = 0 ORDER BY t.duration_ns",
                &[lot.into()],
            )
            .unwrap();
        let v: Vec<i64> = samples.iter().map(|s| s[0].int().unwrap()).collect();
        assert!(!v.is_empty());
        let n = v.len();
        let median = (v[(n - 1) / 2] + v[n / 2]) as f64 / 2.0 / 1e6;
        assert!((r[2].real().unwrap() - median).abs() < 1e-9, "{lot}: {:?} vs {median}", r[2]);
    }
}

#[test]
fn a_plan_run_is_stored_with_its_cases() {
    let d = tempfile::tempdir().unwrap();
    lab(d.path());
    let o = cardbench(d.path())
        .arg("run")
        .arg(root().join("test-plans/smoke.toml"))
        .args(["--profile", "lab.toml", "--logs", "logs", "--run-id", "R1", "-q"])
        .output()
        .unwrap();
    ok(&o);
    let store = Store::open(None, &d.path().join("logs")).unwrap().unwrap();
    let runs = store.query("SELECT plan_id, trace FROM runs WHERE run_id = 'R1'", &[]).unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0][1].text().unwrap().ends_with("R1/trace.csv"));
    let cases = store.query("SELECT COUNT(*) FROM run_cases WHERE run_id = 'R1'", &[]).unwrap();
    assert!(cases[0][0].int().unwrap() > 0);
}

#[test]
fn files_only_with_db_none() {
    let d = tempfile::tempdir().unwrap();
    lab(d.path());
    ok(&batch(d.path(), "logs", "B", 1, Some("none")).output().unwrap());
    assert!(!d.path().join("logs/cardbench.sqlite").exists());
}

#[test]
fn a_database_that_cannot_be_reached_is_one_line_and_exit_2_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    lab(d.path());
    let o = batch(d.path(), "logs", "B", 2, Some("postgres://lab:s3cret@%2Fnonexistent%2Fsocket/cardbench"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("cardbench: error: cannot reach the results store postgres://lab:***@"), "{err}");
    assert!(!err.contains("s3cret"));
    assert!(!d.path().join("logs/B").exists(), "the batch folder was made before the store was reached");
}

#[test]
fn a_newer_schema_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.sqlite");
    drop(Store::open(Some(path.to_str().unwrap()), d.path()).unwrap());
    // As a future cardbench would leave it.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("INSERT INTO schema_version (version, applied) VALUES (99, 'future')", []).unwrap();
    drop(c);
    let e = Store::open(Some(path.to_str().unwrap()), d.path()).err().expect("a newer schema opened");
    assert!(matches!(e, StoreError::Newer { have: 99, .. }), "{e}");
}

// ---- PostgreSQL: a lab of stations ----------------------------------------------------------

fn card(index: u64, id: &str) -> CardResult {
    CardResult {
        index,
        card_id: id.into(),
        head: "E".into(),
        verdict: Verdict::Pass,
        cases: vec![CaseResult {
            id: "PURSE-CHG-01".into(),
            title: "charge".into(),
            reference: "S1".into(),
            status: CaseStatus::Passed,
            message: String::new(),
            failure: None,
            duration_ms: 1.5,
            verifies: vec![],
        }],
        trace: format!("cards/{index:05}-{id}/trace.csv"),
        started: "2026-12-01T00:00:00.000Z".into(),
        duration_ms: 2.0,
    }
}

#[test]
fn postgres_a_card_certified_at_one_station_is_refused_at_another() {
    let pg = postgres_server::Postgres::start();
    let url = pg.database("refusal");
    let a = Store::open(Some(&url), Path::new("unused")).unwrap().unwrap();
    let b = Store::open(Some(&url), Path::new("unused")).unwrap().unwrap();
    assert!(a.shared());
    let row = cardbench::store::batches::BatchRow {
        batch_id: "LAB".into(),
        plan_id: "certification".into(),
        plan_version: "1.0.0".into(),
        profile: "lab.toml".into(),
        count: 4,
        started: "2026-12-01T00:00:00.000Z".into(),
        meta_json: "{}".into(),
    };
    a.begin_batch(&row, "station-a", &[]).unwrap();
    // The second station's own batch.json has its own start: it joins the same batch.
    b.begin_batch(&cardbench::store::batches::BatchRow { started: "later".into(), ..row.clone() }, "station-b", &[])
        .unwrap();
    let ia = a.claim_next("LAB", "station-a").unwrap().unwrap();
    let ib = b.claim_next("LAB", "station-b").unwrap().unwrap();
    assert_ne!(ia, ib);
    a.card_identified("LAB", ia, "CB000000000000AA", "station-a").unwrap();
    // The same card in station B's reader while A certifies it ...
    let e = b.card_identified("LAB", ib, "CB000000000000AA", "station-b").unwrap_err();
    assert!(matches!(&e, StoreError::Refused { station, .. } if station == "station-a"), "{e}");
    assert!(e.to_string().contains("is being certified"), "{e}");
    a.record_card("LAB", "station-a", &card(ia, "CB000000000000AA")).unwrap();
    // ... and after A certified it.
    let e = b.card_identified("LAB", ib, "CB000000000000AA", "station-b").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("card CB000000000000AA was certified in batch LAB (as #{ia}) at station station-a; take it out, it is not certified here")
    );
    // B gives its index back; another card goes in.
    b.release("LAB", ib, "station-b").unwrap();
    assert_eq!(b.claim_next("LAB", "station-b").unwrap(), Some(ib));
    b.card_identified("LAB", ib, "CB000000000000BB", "station-b").unwrap();
    // A station with another plan (its content, whatever its path) cannot join.
    let with_plan = |h: &str| format!(r#"{{"header":{{"plan":{{"sha256":"{h}"}},"keyset":{{"fingerprint":"k"}}}}}}"#);
    let first =
        cardbench::store::batches::BatchRow { batch_id: "LAB2".into(), meta_json: with_plan("aaaa"), ..row.clone() };
    a.begin_batch(&first, "station-a", &[]).unwrap();
    b.begin_batch(
        &cardbench::store::batches::BatchRow { meta_json: with_plan("aaaa"), ..first.clone() },
        "station-b",
        &[],
    )
    .unwrap();
    let e = b
        .begin_batch(
            &cardbench::store::batches::BatchRow { meta_json: with_plan("bbbb"), ..first.clone() },
            "station-c",
            &[],
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("this station's plan differs from the batch's (bbbb here, aaaa in the batch)"),
        "{e}"
    );
    // A station whose run ended gives back what it held when it begins again.
    b.begin_batch(&row, "station-b", &[]).unwrap();
    assert_eq!(a.claim_next("LAB", "station-a").unwrap(), Some(ib));
}

#[test]
fn postgres_two_stations_certify_one_batch_concurrently_and_one_report_covers_both() {
    let pg = postgres_server::Postgres::start();
    let url = pg.database("lab");
    let d = tempfile::tempdir().unwrap();
    lab(d.path());
    const COUNT: u64 = 24;
    let mut first = batch(d.path(), "station-1", "LAB-7", COUNT as u32, Some(&url))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The second station starts once the first holds cards: a state, not a delay.
    let store = Store::open(Some(&url), d.path()).unwrap().unwrap();
    loop {
        let r = store.query("SELECT COUNT(*) FROM card_claims WHERE batch_id = 'LAB-7'", &[]);
        if r.is_ok_and(|r| r[0][0].int().unwrap_or(0) > 0) {
            break;
        }
        assert!(first.try_wait().unwrap().is_none(), "station 1 ended before it claimed a card");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = batch(d.path(), "station-2", "LAB-7", COUNT as u32, Some(&url)).output().unwrap();
    let first = first.wait_with_output().unwrap();
    ok(&first);
    ok(&second);
    let one = summary_cards(&d.path().join("station-1/LAB-7/summary.csv"));
    let two = summary_cards(&d.path().join("station-2/LAB-7/summary.csv"));
    assert!(!one.is_empty() && !two.is_empty(), "both stations certify: {} and {}", one.len(), two.len());
    let idx1: BTreeSet<u64> = one.iter().map(|c| c.0).collect();
    let idx2: BTreeSet<u64> = two.iter().map(|c| c.0).collect();
    assert!(idx1.is_disjoint(&idx2), "a card certified at both stations: {:?}", idx1.intersection(&idx2));
    assert_eq!(one.len() + two.len(), COUNT as usize);
    // One report from the database covers both stations, every card once.
    let o = cardbench(d.path()).args(["report", "--db", &url, "--batch", "LAB-7"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = d.path().join("LAB-7-report");
    let b = store.load_batch("LAB-7").unwrap();
    let all = summary_cards(&out.join("summary.csv"));
    assert_eq!(all.iter().map(|c| c.0).collect::<Vec<_>>(), (1..=COUNT).collect::<Vec<_>>());
    let ids: BTreeSet<&str> = all.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(ids.len(), COUNT as usize, "a card ID counted twice");
    let mut expected: Vec<(u64, String)> = one.into_iter().chain(two).collect();
    expected.sort();
    assert_eq!(all, expected);
    let fails =
        |p: &Path| csv::Reader::from_path(p).unwrap().records().filter(|r| &r.as_ref().unwrap()[4] == "fail").count();
    assert_eq!(
        b.count("fail"),
        fails(&d.path().join("station-1/LAB-7/summary.csv")) + fails(&d.path().join("station-2/LAB-7/summary.csv"))
    );
    // Its header carries both stations' runs (their heads and readers).
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["header"]["runs"].as_array().map(Vec::len), Some(2), "{}", json["header"]);
    // The stations are named in the store.
    let stations = store.query("SELECT COUNT(DISTINCT station) FROM cards WHERE batch_id = 'LAB-7'", &[]).unwrap();
    assert_eq!(stations[0][0], Value::Int(2));
    // The documented question works on PostgreSQL too.
    let rows = store.query(LOTS_FAILED_THIS_MONTH, &["KU-TK-EQ-01".into(), month_start().into()]).unwrap();
    assert_eq!(failing(&out.join("summary.csv"), "KU-TK-EQ-01"), 6, "cards 2, 6, … 22 carry the defect");
    assert_eq!(rows, vec![vec![Value::from("LAB-7"), Value::Int(6)]]);
    // And the timing question, on a timing run written to the same database.
    let o = cardbench(d.path())
        .args(["time"])
        .arg(root().join("test-plans/timing/hot-path.toml"))
        .args(["--profile", "lab.toml", "-n", "3", "--warmup", "0", "--logs", "station-1/lot9", "--run-id", "t1"])
        .args(["--db", &url])
        .output()
        .unwrap();
    ok(&o);
    let rows = store.query(MEDIAN_PER_LOT, &["cpay.sign_payment".into()]).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], Value::from("lot9"));
    let v: Vec<i64> = store
        .query(
            "SELECT duration_ns FROM timing_samples WHERE op = 'cpay.sign_payment' AND baseline = 0 ORDER BY duration_ns",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r[0].int().unwrap())
        .collect();
    assert_eq!(v.len(), 3);
    assert!((rows[0][2].real().unwrap() - v[1] as f64 / 1e6).abs() < 1e-9, "{rows:?} vs {v:?}");
}
