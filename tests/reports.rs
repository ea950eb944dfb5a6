//! Report writers: summary CSV, JUnit XML and JSON are written atomically and read back
//! with ordinary parsers (csv, quick-xml, serde_json).

use std::fs;
use std::path::Path;

use cardbench::report::json::{to_json_string, write_json};
use cardbench::report::junit::write_junit;
use cardbench::report::summary::write_summary_csv;
use cardbench::report::{BatchResult, CardResult, CaseResult, CaseStatus, Failure, Verdict};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Fixture

const T02_STEP: &str = "SELECT <AID> & check";
const T02_EXPECTED: &str = r#"SW=9000 & FCI="6F<..>""#;
const T02_ACTUAL: &str = r#"SW=6A82 "file not found" <none>"#;
const T04_STEP: &str = "READ BALANCE";
const T04_EXPECTED: &str = "balance <= 100 & > 0";
const T04_ACTUAL: &str = r#"balance = "-1" ('signed')"#;
const T03_ERROR: &str = "head lost: reader \"R2\" <removed> & gone\nsecond line";
const SKIP_REASON: &str = "not applicable: contact-only card";
const ABORT_REASON: &str = r#"card removed at step 4 <PAY> & "mute""#;
const BATCH_ID: &str = "B-2026-11-22 & co";

fn case(id: &str, title: &str, status: CaseStatus, ms: f64) -> CaseResult {
    CaseResult {
        id: id.into(),
        title: title.into(),
        reference: format!("card-spec §{}", &id[1..]),
        status,
        message: String::new(),
        failure: None,
        duration_ms: ms,
        verifies: vec![],
    }
}

fn failed(id: &str, title: &str, step: &str, expected: &str, actual: &str) -> CaseResult {
    CaseResult {
        failure: Some(Failure { step: step.into(), expected: expected.into(), actual: actual.into() }),
        ..case(id, title, CaseStatus::Failed, 40.0)
    }
}

fn card(index: u64, id: &str, head: &str, verdict: Verdict, cases: Vec<CaseResult>) -> CardResult {
    CardResult {
        index,
        card_id: id.into(),
        head: head.into(),
        verdict,
        cases,
        trace: format!("traces/{id}.csv"),
        started: format!("2026-11-22T10:0{index}:00Z"),
        duration_ms: 0.0,
    }
}

fn batch() -> BatchResult {
    let mut skipped = case("T03", "Contactless select", CaseStatus::Skipped, 0.0);
    skipped.message = SKIP_REASON.into();
    let mut pass = card(
        1,
        "C001",
        "head-1",
        Verdict::Pass,
        vec![
            case("T01", "Answer to reset", CaseStatus::Passed, 12.0),
            case("T02", "Select application", CaseStatus::Passed, 30.0),
            skipped,
        ],
    );
    pass.duration_ms = 1200.0;

    let mut errored = case("T03", "Contactless select", CaseStatus::Error, 5.0);
    errored.message = T03_ERROR.into();
    let mut fail = card(
        2,
        "C002",
        "head B, slot 2",
        Verdict::Fail { failing: vec!["T02".into(), "T04".into()] },
        vec![
            case("T01", "Answer to reset", CaseStatus::Passed, 11.0),
            failed("T02", "Select application", T02_STEP, T02_EXPECTED, T02_ACTUAL),
            errored,
            failed("T04", "Read balance", T04_STEP, T04_EXPECTED, T04_ACTUAL),
        ],
    );
    fail.duration_ms = 2000.0;

    let mut aborted = card(
        3,
        "C003",
        "head-1",
        Verdict::Aborted { reason: ABORT_REASON.into() },
        vec![case("T01", "Answer to reset", CaseStatus::Passed, 10.0)],
    );
    aborted.duration_ms = 500.25;

    BatchResult {
        batch_id: BATCH_ID.into(),
        plan_id: "cpay-cert".into(),
        plan_version: "1.4.2".into(),
        profile: "lab-a".into(),
        started: "2026-11-22T10:00:00Z".into(),
        finished: "2026-11-22T10:05:00Z".into(),
        header: None,
        cards: vec![pass, fail, aborted],
        coverage: None,
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn assert_no_tmp(dir: &Path) {
    let names = file_names(dir);
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "temporary file left behind: {names:?}");
}

// ---------------------------------------------------------------------------------------------
// A small DOM built from quick-xml's reader; reading fails on ill-formed XML.

#[derive(Debug, Default)]
struct El {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<El>,
}

impl El {
    fn attr(&self, key: &str) -> &str {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("<{}> has no attribute {key}: {:?}", self.name, self.attrs))
    }

    fn has_attr(&self, key: &str) -> bool {
        self.attrs.iter().any(|(k, _)| k == key)
    }

    fn all(&self, name: &str) -> Vec<&El> {
        self.children.iter().filter(|c| c.name == name).collect()
    }

    fn one(&self, name: &str) -> &El {
        let found = self.all(name);
        assert_eq!(found.len(), 1, "<{}> should have one <{name}>", self.name);
        found[0]
    }

    fn counts(&self) -> [&str; 4] {
        [self.attr("tests"), self.attr("failures"), self.attr("errors"), self.attr("skipped")]
    }

    fn property(&self, name: &str) -> &str {
        self.one("properties")
            .all("property")
            .into_iter()
            .find(|p| p.attr("name") == name)
            .unwrap_or_else(|| panic!("no property {name}"))
            .attr("value")
    }

    fn testcase(&self, name: &str) -> &El {
        self.all("testcase")
            .into_iter()
            .find(|t| t.attr("name") == name)
            .unwrap_or_else(|| panic!("no testcase {name}"))
    }
}

fn element(e: &BytesStart) -> El {
    let attrs = e
        .attributes()
        .map(|a| {
            let a = a.expect("well-formed attribute");
            let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
            (key, a.unescape_value().expect("attribute value").into_owned())
        })
        .collect();
    El { name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(), attrs, ..El::default() }
}

fn parse_xml(xml: &str) -> El {
    let mut r = Reader::from_str(xml);
    let mut stack = vec![El::default()];
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Decl(d) => {
                assert_eq!(&*d.version().unwrap(), b"1.0");
            }
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(element(&e)),
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().expect("balanced tags").children.push(el);
            }
            Event::Text(t) => stack.last_mut().unwrap().text.push_str(&t.xml_content().unwrap()),
            Event::GeneralRef(g) => {
                let s = match g.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => {
                        let name = g.decode().unwrap();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .unwrap_or_else(|| panic!("undefined entity &{name};"))
                            .to_string()
                    }
                };
                stack.last_mut().unwrap().text.push_str(&s);
            }
            Event::Eof => break,
            other => panic!("unexpected XML event {other:?}"),
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut doc = stack.pop().unwrap();
    assert!(doc.text.trim().is_empty(), "text outside the root: {:?}", doc.text);
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Summary CSV

#[test]
fn summary_csv_has_one_row_per_card() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.csv");
    write_summary_csv(&path, &batch()).unwrap();
    assert_no_tmp(dir.path());

    let mut r = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "batch_id",
            "index",
            "card_id",
            "head",
            "verdict",
            "failing_tests",
            "reason",
            "cases_passed",
            "cases_failed",
            "cases_skipped",
            "cases_error",
            "duration_ms",
            "started",
            "trace",
            "cases_blocked",
            "cases_not_run",
            "first_failure",
            "failure_step",
            "expected",
            "actual",
            "tool",
            "host",
            "profile_sha256",
            "plan_sha256",
            "keyset",
            "clock",
            "reader",
            "atr"
        ]
    );
    // The batch header's columns are empty for a result that has none (tests/integrity.rs
    // checks them filled); the card's columns come first.
    let rows: Vec<Vec<String>> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert!(rec.iter().skip(20).all(str::is_empty), "{rec:?}");
            rec.iter().take(20).map(String::from).collect()
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![
                BATCH_ID,
                "1",
                "C001",
                "head-1",
                "pass",
                "",
                "",
                "2",
                "0",
                "1",
                "0",
                "1200.000",
                "2026-11-22T10:01:00Z",
                "traces/C001.csv",
                "0",
                "0",
                "",
                "",
                "",
                "",
            ],
            vec![
                BATCH_ID,
                "2",
                "C002",
                "head B, slot 2",
                "fail",
                "T02;T04",
                "",
                "1",
                "2",
                "0",
                "1",
                "2000.000",
                "2026-11-22T10:02:00Z",
                "traces/C002.csv",
                "0",
                "0",
                "T02",
                T02_STEP,
                T02_EXPECTED,
                T02_ACTUAL,
            ],
            vec![
                BATCH_ID,
                "3",
                "C003",
                "head-1",
                "aborted",
                "",
                ABORT_REASON,
                "1",
                "0",
                "0",
                "0",
                "500.250",
                "2026-11-22T10:03:00Z",
                "traces/C003.csv",
                "0",
                "0",
                "",
                "",
                "",
                "",
            ],
        ]
    );
}

#[test]
fn summary_csv_of_an_empty_batch_is_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.csv");
    let mut b = batch();
    b.cards.clear();
    write_summary_csv(&path, &b).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("batch_id,index,card_id,"));
}

// ---------------------------------------------------------------------------------------------
// JUnit XML

#[test]
fn junit_counts_and_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    write_junit(&path, &batch()).unwrap();
    assert_no_tmp(dir.path());
    let xml = fs::read_to_string(&path).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    let root = parse_xml(&xml);

    assert_eq!(root.name, "testsuites");
    assert_eq!(root.attr("name"), BATCH_ID);
    // 3 + 4 + (1 completed + 1 certification) test cases; T02, T04 failed; T03 on C002 and
    // the aborted certification are errors; T03 on C001 skipped.
    assert_eq!(root.counts(), ["9", "2", "2", "1"]);
    assert_eq!(root.attr("time"), "3.700");

    let suites = root.all("testsuite");
    assert_eq!(suites.len(), 3);
    let names: Vec<&str> = suites.iter().map(|s| s.attr("name")).collect();
    assert_eq!(names, ["card C001", "card C002", "card C003"]);
    let ids: Vec<&str> = suites.iter().map(|s| s.attr("id")).collect();
    assert_eq!(ids, ["0", "1", "2"]);

    let (pass, fail, aborted) = (suites[0], suites[1], suites[2]);
    assert_eq!(pass.counts(), ["3", "0", "0", "1"]);
    assert_eq!(fail.counts(), ["4", "2", "1", "0"]);
    assert_eq!(aborted.counts(), ["2", "0", "1", "0"]);
    assert_eq!(pass.attr("time"), "1.200");
    assert_eq!(fail.attr("time"), "2.000");
    assert_eq!(aborted.attr("time"), "0.500");
    assert_eq!(fail.attr("hostname"), "head B, slot 2");
    assert_eq!(fail.attr("timestamp"), "2026-11-22T10:02:00Z");

    // Properties come before the test cases.
    assert_eq!(fail.children[0].name, "properties");
    assert_eq!(fail.property("plan"), "cpay-cert");
    assert_eq!(fail.property("plan_version"), "1.4.2");
    assert_eq!(fail.property("verdict"), "fail");
    assert_eq!(fail.property("ref:T02"), "card-spec §02");
    assert_eq!(fail.property("ref:T04"), "card-spec §04");
    assert_eq!(aborted.property("verdict"), "aborted");

    for (suite, card_id) in [(pass, "C001"), (fail, "C002"), (aborted, "C003")] {
        for t in suite.all("testcase") {
            assert_eq!(t.attr("classname"), format!("cpay-cert.{card_id}"));
            assert!(t.has_attr("time"));
        }
    }

    // Passing cases are empty elements; a skipped case carries its reason.
    let t01 = pass.testcase("T01: Answer to reset");
    assert!(t01.children.is_empty());
    assert_eq!(t01.attr("time"), "0.012");
    let skipped = pass.testcase("T03: Contactless select").one("skipped");
    assert_eq!(skipped.attr("message"), SKIP_REASON);
}

#[test]
fn junit_failures_round_trip_escaped_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    write_junit(&path, &batch()).unwrap();
    let xml = fs::read_to_string(&path).unwrap();

    // Markup characters from the results are escaped on disk...
    assert!(!xml.contains("<AID>"));
    assert!(!xml.contains("<none>"));
    assert!(!xml.contains("<PAY>"));
    assert!(xml.contains("&lt;AID&gt;"));
    assert!(xml.contains("&amp;"));

    // ...and come back as they were.
    let root = parse_xml(&xml);
    let fail = root.all("testsuite")[1];
    let failing: Vec<&str> =
        fail.all("testcase").into_iter().filter(|t| !t.all("failure").is_empty()).map(|t| t.attr("name")).collect();
    assert_eq!(failing, ["T02: Select application", "T04: Read balance"]);

    let f = fail.testcase("T02: Select application").one("failure");
    assert_eq!(f.attr("message"), format!("expected {T02_EXPECTED}, got {T02_ACTUAL}"));
    assert_eq!(f.attr("type"), T02_STEP);
    assert_eq!(f.text, format!("step: {T02_STEP}\nexpected: {T02_EXPECTED}\nactual: {T02_ACTUAL}"));

    let f = fail.testcase("T04: Read balance").one("failure");
    assert_eq!(f.attr("message"), format!("expected {T04_EXPECTED}, got {T04_ACTUAL}"));
    assert_eq!(f.attr("type"), T04_STEP);
    assert_eq!(f.text, format!("step: {T04_STEP}\nexpected: {T04_EXPECTED}\nactual: {T04_ACTUAL}"));

    // The error message keeps its line break in the attribute and in the body.
    let e = fail.testcase("T03: Contactless select").one("error");
    assert_eq!(e.attr("message"), T03_ERROR);
    assert_eq!(e.text, T03_ERROR);
}

#[test]
fn junit_aborted_card_is_an_error_plus_its_completed_cases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    write_junit(&path, &batch()).unwrap();
    let root = parse_xml(&fs::read_to_string(&path).unwrap());
    let aborted = root.all("testsuite")[2];
    let names: Vec<&str> = aborted.all("testcase").into_iter().map(|t| t.attr("name")).collect();
    assert_eq!(names, ["T01: Answer to reset", "certification"]);
    let e = aborted.testcase("certification").one("error");
    assert_eq!(e.attr("message"), format!("aborted: {ABORT_REASON}"));
    assert_eq!(e.text, ABORT_REASON);
}

#[test]
fn junit_stays_well_formed_with_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    let mut b = batch();
    let f = b.cards[1].cases[1].failure.as_mut().unwrap();
    f.actual = "raw \u{1}\u{1b} bytes\r\n\ttab".into();
    write_junit(&path, &b).unwrap();
    let root = parse_xml(&fs::read_to_string(&path).unwrap());
    let f = root.all("testsuite")[1].testcase("T02: Select application").one("failure");
    assert_eq!(f.attr("message"), format!("expected {T02_EXPECTED}, got raw \\u{{1}}\\u{{1b}} bytes\r\n\ttab"));
    assert!(f.text.ends_with("actual: raw \\u{1}\\u{1b} bytes\r\n\ttab"));
}

#[test]
fn junit_of_an_empty_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    let mut b = batch();
    b.cards.clear();
    write_junit(&path, &b).unwrap();
    let root = parse_xml(&fs::read_to_string(&path).unwrap());
    assert_eq!(root.counts(), ["0", "0", "0", "0"]);
    assert!(root.children.is_empty());
}

// ---------------------------------------------------------------------------------------------
// JSON

#[test]
fn json_report_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.json");
    let b = batch();
    write_json(&path, &b).unwrap();
    assert_no_tmp(dir.path());

    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", to_json_string(&b)));
    let v: Value = serde_json::from_str(&text).unwrap();

    assert_eq!(v["batch_id"], BATCH_ID);
    assert_eq!(v["plan_id"], "cpay-cert");
    assert_eq!(v["plan_version"], "1.4.2");
    let cards = v["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 3);

    let verdicts: Vec<&str> = cards.iter().map(|c| c["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["pass", "fail", "aborted"]);
    assert!(cards[0].get("failing").is_none());
    assert_eq!(cards[1]["failing"], serde_json::json!(["T02", "T04"]));
    assert_eq!(cards[2]["reason"], ABORT_REASON);
    assert_eq!(cards[1]["head"], "head B, slot 2");
    assert_eq!(cards[2]["duration_ms"], 500.25);

    let t02 = &cards[1]["cases"][1];
    assert_eq!(t02["id"], "T02");
    assert_eq!(t02["status"], "failed");
    assert_eq!(t02["failure"]["step"], T02_STEP);
    assert_eq!(t02["failure"]["expected"], T02_EXPECTED);
    assert_eq!(t02["failure"]["actual"], T02_ACTUAL);
    assert_eq!(cards[1]["cases"][2]["status"], "error");
    assert_eq!(cards[1]["cases"][2]["message"], T03_ERROR);
    assert_eq!(cards[0]["cases"][2]["status"], "skipped");
    assert!(cards[0]["cases"][0]["failure"].is_null());
}

// ---------------------------------------------------------------------------------------------
// Atomic writes

#[test]
fn all_three_reports_side_by_side_leave_no_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch();
    write_summary_csv(&dir.path().join("summary.csv"), &b).unwrap();
    write_junit(&dir.path().join("junit.xml"), &b).unwrap();
    write_json(&dir.path().join("batch.json"), &b).unwrap();
    assert_eq!(file_names(dir.path()), ["batch.json", "junit.xml", "summary.csv"]);
}

#[test]
fn rewriting_replaces_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.csv");
    fs::write(&path, "#".repeat(100_000)).unwrap();
    let mut b = batch();
    b.cards.truncate(1);
    write_summary_csv(&path, &b).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(!text.contains('#'));
    assert_no_tmp(dir.path());
}

#[test]
fn a_failed_write_reports_the_error_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    // The target is a directory: the temporary file is written, the rename fails.
    let target = dir.path().join("batch.json");
    fs::create_dir(&target).unwrap();
    assert!(write_json(&target, &batch()).is_err());
    assert!(write_junit(&target, &batch()).is_err());
    assert!(write_summary_csv(&target, &batch()).is_err());
    assert!(target.is_dir());
    assert_eq!(file_names(dir.path()), ["batch.json"]);

    // A missing directory is an error too, and creates nothing.
    let missing = dir.path().join("no/such/dir/summary.csv");
    assert!(write_summary_csv(&missing, &batch()).is_err());
    assert_eq!(file_names(dir.path()), ["batch.json"]);
}
