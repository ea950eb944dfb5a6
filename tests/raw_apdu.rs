//! The `raw = true` apdu step (docs/plan-language.md 6.1): the rendered bytes go on the wire as
//! they are, in one exchange, and the card's `61xx` / `6Cxx` is the step's answer. Checked on
//! the bytes of the trace a `cardbench run` leaves, on a T=0 and a T=1 card of the virtual lab.

use std::path::Path;
use std::process::Command as Proc;

fn bin() -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

const PLAN: &str = r#"
[plan]
id = "raw"
version = "1"
title = "raw apdu steps"
applet = "purse"
roles = ["purse"]

[[case]]
id = "RAW-T-01"
title = "raw steps on head HEAD"
[[case.step]]
do = "select"
head = "HEAD"
applet = "purse"
[[case.step]]
do = "apdu"
name = "case 1 read"
head = "HEAD"
raw = true
command = "80 B2 01 00"
sw = "6108"
len = 0
capture = { s = "sw" }
[[case.step]]
do = "assert"
that = "s == 24840"
message = "the capture holds the 61 08 itself"
[[case.step]]
do = "apdu"
name = "does not parse"
head = "HEAD"
raw = true
command = "80 B2 01 00 05 01"
sw = "6700"
len = 0
[[case.step]]
do = "apdu"
name = "get response"
head = "HEAD"
raw = true
command = "00 C0 00 00 08"
data = "XXXXXXXXXXXXXXXX"
[[case.step]]
do = "apdu"
name = "extended"
head = "HEAD"
raw = true
command = "80 B2 01 00 00 00 08"
len = 8
[[case.step]]
do = "apdu"
name = "followed"
head = "HEAD"
command = "80 B2 01 00"
len = 8
"#;

/// (test_step, command, response, sw, kind, note) of every row of the run.
fn rows(trace: &Path) -> Vec<[String; 6]> {
    let mut r = csv::Reader::from_path(trace).unwrap();
    r.records()
        .map(|x| {
            let x = x.unwrap();
            [&x[18], &x[9], &x[10], &x[11], &x[15], &x[13]].map(str::to_string)
        })
        .collect()
}

fn run_on(head: &str) -> Vec<[String; 6]> {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("raw.toml");
    std::fs::write(&plan, PLAN.replace("HEAD", head)).unwrap();
    let logs = dir.path().join("logs");
    let out = bin()
        .arg("run")
        .arg(&plan)
        .args(["--profile", "profiles/virtual-lab.toml", "--run-id", "R", "--logs"])
        .arg(&logs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    rows(&logs.join("R/trace.csv"))
}

/// The wire rows (command, response data, SW, kind) of the step labelled `#n`.
fn step(rows: &[[String; 6]], n: u32) -> Vec<(String, String, String, String)> {
    let label = format!("#{n}");
    rows.iter()
        .filter(|r| r[0].starts_with(&label) && r[4] != "step")
        .map(|r| (r[1].clone(), r[2].clone(), r[3].clone(), r[4].clone()))
        .collect()
}

fn check(head: &str) {
    let rows = run_on(head);
    let one = |c: &str, d: &str, sw: &str| vec![(c.to_string(), d.to_string(), sw.to_string(), "command".to_string())];
    // One exchange each, the bytes as written, the procedure bytes returned, not followed.
    assert_eq!(step(&rows, 2), one("80B20100", "", "6108"), "{head}");
    assert_eq!(step(&rows, 4), one("80B201000501", "", "6700"), "{head}: bytes that are no APDU reach the card");
    let gr = step(&rows, 5);
    assert_eq!(gr.len(), 1, "{head}: {gr:?}");
    assert_eq!((gr[0].0.as_str(), gr[0].1.len(), gr[0].2.as_str()), ("00C0000008", 16, "9000"), "{head}: still kept");
    let ext = step(&rows, 6);
    assert_eq!(ext.len(), 1, "{head}: {ext:?}");
    assert_eq!(
        (ext[0].0.as_str(), ext[0].1.as_str()),
        ("80B20100000008", gr[0].1.as_str()),
        "{head}: extended stays extended"
    );
    // The same command without `raw`: the link fetches the data with GET RESPONSE.
    let followed = step(&rows, 7);
    assert_eq!(followed.len(), 2, "{head}: {followed:?}");
    assert_eq!((followed[1].0.as_str(), followed[1].3.as_str()), ("00C0000008", "get-response"), "{head}");
    // The step row says how the step was sent, for a replay.
    let note = rows.iter().find(|r| r[0].starts_with("#2") && r[4] == "step").map(|r| r[5].clone()).unwrap();
    assert!(note.contains("raw=true"), "{note}");
}

#[test]
fn raw_steps_send_the_bytes_as_written_and_return_procedure_bytes_on_t0() {
    check("A");
}

#[test]
fn raw_steps_send_the_bytes_as_written_and_return_procedure_bytes_on_t1() {
    check("B");
}
