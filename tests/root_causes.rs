//! Root causes in batch reports: a failure that follows from an earlier one (a case the
//! failing case `needs`, or the plan's set-up) is `blocked by <root>` (JUnit skipped with a
//! message), not a failure; the console line and summary.csv name the first real failure
//! with what was expected and what the card did; "not run" cases of an aborted card are
//! skipped in JUnit and counted apart, not errors.

use cardbench::card::defects::{Defect, Defects};
use cardbench::event::Recorder;
use cardbench::lab::Lab;
use cardbench::report::{CaseResult, CaseStatus};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The standard suite on cert-lab's first DUT, carrying `defect`.
fn suite_with(defect: Defect) -> Vec<CaseResult> {
    let loaded = cardbench::profile::load(&root().join("profiles/cert-lab.toml")).unwrap();
    let mut lab = Lab::from_profile(&loaded).unwrap();
    let plan = cardbench::plan::load(&root().join("test-plans/certification.toml")).unwrap();
    plan.bind(|n| lab.head_index(n).is_some()).unwrap();
    let i = lab.head_index("D1").unwrap();
    lab.heads[i].head.as_virtual().unwrap().card_mut().unwrap().set_defects(Defects::from(defect));
    let clock = lab.clock.unwrap();
    cardbench::runner::run_plan(&plan, &mut lab.heads, &Recorder::disabled(), &lab.keyset, clock, [0u8; 32])
}

fn ids(results: &[CaseResult], status: CaseStatus) -> Vec<&str> {
    results.iter().filter(|r| r.status == status).map(|r| r.id.as_str()).collect()
}

#[test]
fn one_root_cause_in_the_suite_is_one_failure_and_its_knock_ons_are_blocked() {
    // A counter that WRITE VALUE does not decrement: the first charge's record is never
    // signed, so every case that needs a signed record fails after it.
    let r = suite_with(Defect::CounterNotDecremented);
    assert_eq!(
        ids(&r, CaseStatus::Failed),
        ["PURSE-CHG-01", "PURSE-CTR-01", "PURSE-ATOM-01", "PURSE-EXH-01"],
        "the real failures are the cases that see the counter itself"
    );
    let blocked: Vec<(&str, &str)> = r.iter().filter_map(|c| Some((c.id.as_str(), c.blocked_by()?))).collect();
    let by_chg: Vec<&str> = blocked.iter().filter(|(_, root)| *root == "PURSE-CHG-01").map(|(id, _)| *id).collect();
    assert_eq!(
        by_chg,
        [
            "PURSE-PAY-01",
            "PURSE-PAY-02",
            "PURSE-CHG-02",
            "PURSE-READ-01",
            "PURSE-WRITE-01",
            "PURSE-INSUF-01",
            "PURSE-TAMP-SIG-01",
            "PURSE-CERT-ROGUE-01",
            "PURSE-CERT-SWAP-01",
            "PURSE-CHAIN-01",
            "PURSE-ROLLBACK-01",
            "PURSE-TAMP-AMT-01",
            "PURSE-CLONE-01",
            "PURSE-TORN-01"
        ]
    );
    assert_eq!(blocked.iter().find(|(id, _)| *id == "CERT-END-01").map(|(_, r)| *r), Some("PURSE-EXH-01"));
    // What a blocked case saw is kept as evidence.
    let pay = r.iter().find(|c| c.id == "PURSE-PAY-01").unwrap();
    assert_eq!(pay.message, "blocked by PURSE-CHG-01");
    assert!(pay.failure.as_ref().is_some_and(|f| f.actual.contains("no-record")), "{pay:?}");
    assert!(ids(&r, CaseStatus::Error).is_empty() && ids(&r, CaseStatus::NotRun).is_empty());
}

#[test]
fn a_case_whose_needs_passed_fails_on_its_own() {
    // The counter cannot be set after LOCK: PURSE-CTR-SET-01 is the root cause; the cases
    // that need the record intact after it are blocked by it, and nothing else is. The
    // general and robustness cases that send PERSO PUT after LOCK catch the same defect on
    // their own.
    let r = suite_with(Defect::CounterSettableAfterLock);
    assert_eq!(ids(&r, CaseStatus::Failed), ["GEN-PERSO-01", "PURSE-CTR-SET-01", "RB-PERSO-01"]);
    let blocked: Vec<(&str, &str)> = r.iter().filter_map(|c| Some((c.id.as_str(), c.blocked_by()?))).collect();
    // The end state is blocked by the robustness case, whose PERSO PUT set the counter again.
    let (end, rest): (Vec<_>, Vec<_>) = blocked.iter().partition(|(id, _)| *id == "CERT-END-01");
    assert_eq!(end, [("CERT-END-01", "RB-PERSO-01")], "{blocked:?}");
    assert!(!rest.is_empty() && rest.iter().all(|(_, b)| *b == "PURSE-CTR-SET-01"), "{blocked:?}");
}

// ---- through `cardbench batch`: reports and the console line ---------------------------

const PROFILE: &str = r#"
name = "root-causes"
[keyset]
seed = "root causes"
[defaults]
clock = "2026-06-01T12:00:00Z"
[[head]]
name = "D1"
driver = "virtual"
role = "dut"
[[card]]
name = "dut"
id = "CB0000000000D000"
update_key = 1
transfer_key = 2
[[card]]
name = "reference"
id = "CB00000000000EEE"
protocol = "T=1"
update_key = 1
transfer_key = 3
[batch]
dut_card = "dut"
peer_card = "reference"
id_prefix = "CB00B000"
[[batch.defect]]
every = 2
offset = 0
defects = ["counter-not-decremented"]
"#;

/// Case A charges and checks the counter; B and C need the record A signs; D is on its own.
const PLAN: &str = r#"
[plan]
id = "roots"
version = "1"
roles = ["dut", "peer"]

[[case]]
id = "A-CHARGE"
title = "Charge: counter down by one, record signed"
[[case.step]]
do = "engine"
engine = "charge"
head = "dut"
amount = 100

[[case]]
id = "B-PAY"
needs = ["A-CHARGE"]
[[case.step]]
do = "engine"
engine = "pay"
head = "dut"
amount = 10

[[case]]
id = "C-PAY"
needs = ["B-PAY"]
[[case.step]]
do = "engine"
engine = "pay"
head = "dut"
amount = 10

[[case]]
id = "D-SELECT"
[[case.step]]
do = "select"
head = "dut"
applet = "xfer"
"#;

fn batch(dir: &Path, plan: &str, id: &str, count: u32) -> std::process::Output {
    std::fs::write(dir.join("lab.toml"), PROFILE).unwrap();
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    Command::new(env!("CARGO_BIN_EXE_cardbench"))
        .current_dir(dir)
        .args(["batch", "--profile", "lab.toml", "--plan", "plan.toml", "--batch-id", id, "--logs", "logs"])
        .args(["--count", &count.to_string()])
        .output()
        .unwrap()
}

fn summary(dir: &Path, id: &str) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(dir.join("logs").join(id).join("summary.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let want = ["cases_blocked", "cases_not_run", "first_failure", "failure_step", "expected", "actual"];
    assert_eq!(h.iter().skip(14).take(6).collect::<Vec<_>>(), want, "new columns after the first 14");
    r.records().map(|x| x.unwrap()).collect()
}

#[test]
fn the_batch_reports_a_dependent_failure_as_blocked_and_names_the_first_real_failure() {
    let d = tempfile::tempdir().unwrap();
    // Card 2 carries the counter defect (2 % 2 == 0); card 1 is good.
    let out = batch(d.path(), PLAN, "R", 2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.contains("card CB00B00000000002")).expect("a line for card 2");
    assert!(
        line.contains("fail A-CHARGE #1 engine: expected success, got rejected:state-mismatch")
            && line.contains("2 blocked"),
        "{line}"
    );
    let rows = summary(d.path(), "R");
    let bad = &rows[1];
    assert_eq!(&bad[4], "fail");
    assert_eq!(&bad[5], "A-CHARGE", "blocked cases are not failing tests");
    assert_eq!((&bad[8], &bad[9], &bad[14]), ("1", "0", "2"), "1 failed, 0 skipped, 2 blocked");
    assert_eq!(&bad[16], "A-CHARGE");
    assert_eq!(&bad[17], "A-CHARGE #1 engine");
    assert_eq!(&bad[18], "success");
    assert!(bad[19].starts_with("rejected:state-mismatch"), "{:?}", &bad[19]);
    assert_eq!((&rows[0][4], &rows[0][16]), ("pass", ""));

    let junit = std::fs::read_to_string(d.path().join("logs/R/junit.xml")).unwrap();
    assert!(junit.contains(r#"<testsuites name="R" tests="8" failures="1" errors="0" skipped="2""#), "{junit}");
    assert!(junit.contains(r#"<skipped message="blocked by A-CHARGE">step: B-PAY #1 engine"#), "{junit}");
    assert!(junit.contains(r#"<property name="cases_blocked" value="2"/>"#), "{junit}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("logs/R/results.json")).unwrap()).unwrap();
    let c = &json["cards"][1]["cases"];
    assert_eq!((c[1]["status"].as_str(), c[1]["message"].as_str()), (Some("blocked"), Some("blocked by A-CHARGE")));
    assert_eq!(c[2]["message"], "blocked by A-CHARGE", "the root cause, not the case in between");
    assert_eq!(c[3]["status"], "passed");
}

#[test]
fn a_failed_set_up_blocks_every_case_and_is_the_first_failure() {
    let d = tempfile::tempdir().unwrap();
    let plan = PLAN.replace(
        "roles = [\"dut\", \"peer\"]\n",
        "roles = [\"dut\", \"peer\"]\n\n[[setup]]\ndo = \"apdu\"\nhead = \"dut\"\ncommand = \"00A4040005F000000099\"\nsw = \"9000\"\n",
    );
    let out = batch(d.path(), &plan, "S", 1);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = summary(d.path(), "S");
    let r = &rows[0];
    assert_eq!((&r[4], &r[5], &r[14], &r[16]), ("fail", "setup", "4", "setup"));
    assert_eq!(&r[18], "SW 9000");
    let junit = std::fs::read_to_string(d.path().join("logs/S/junit.xml")).unwrap();
    assert_eq!(junit.matches(r#"<skipped message="blocked by setup">"#).count(), 4, "{junit}");
}

#[test]
fn not_run_cases_of_an_aborted_card_are_skipped_and_counted_apart() {
    let d = tempfile::tempdir().unwrap();
    // The card is taken out after the first case: the next case on it is the error that
    // aborts the card, the two after it are not run.
    let plan = PLAN.replace(
        "[[case]]\nid = \"B-PAY\"",
        "[[case.step]]\ndo = \"remove\"\nhead = \"dut\"\n\n[[case]]\nid = \"B-PAY\"",
    );
    let out = batch(d.path(), &plan, "X", 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("0 pass, 0 fail, 1 aborted"), "{stdout}");
    let rows = summary(d.path(), "X");
    let r = &rows[0];
    assert_eq!(&r[4], "aborted", "{r:?}");
    assert_eq!((&r[9], &r[10], &r[15]), ("0", "1", "2"), "0 skipped, 1 error, 2 not run");
    assert_eq!(&r[16], "B-PAY");
    let junit = std::fs::read_to_string(d.path().join("logs/X/junit.xml")).unwrap();
    // The one case that hit the error, and the certification that could not be completed.
    assert!(junit.contains(r#"tests="5" failures="0" errors="2" skipped="2""#), "{junit}");
    assert_eq!(junit.matches(r#"<skipped message="not run: "#).count(), 2, "{junit}");
    assert!(junit.contains(r#"<property name="cases_not_run" value="2"/>"#), "{junit}");
}

#[test]
fn needs_must_name_an_earlier_case() {
    let d = tempfile::tempdir().unwrap();
    let later = PLAN.replace("needs = [\"A-CHARGE\"]", "needs = [\"C-PAY\"]");
    std::fs::write(d.path().join("plan.toml"), &later).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cardbench"))
        .current_dir(d.path())
        .args(["check", "plan.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = later.lines().position(|l| l.contains("needs = [\"C-PAY\"]")).unwrap() + 1;
    assert!(err.contains(&format!("plan.toml:{line}:")), "located at the needs entry: {err}");
    assert!(err.contains("needs 'C-PAY', which runs after 'B-PAY': a case can only need the cases before it"), "{err}");
}
