//! `cardbench batch` as a lab runs it: parallel DUT heads, verdicts naming the defective cards,
//! reports, and a killed batch resumed with every card certified exactly once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PLAN: &str = r#"
[plan]
id = "mini"
version = "1"
roles = ["dut", "peer"]

[[case]]
id = "PURSE-CTR-01"
title = "Counter decrements by exactly one"
ref = "000 S2"
[[case.step]]
do = "read"
head = "dut"
state = "purse"
as = "before"
[[case.step]]
do = "engine"
engine = "charge"
head = "dut"
amount = 100
[[case.step]]
do = "read"
head = "dut"
state = "purse"
as = "after"
[[case.step]]
do = "assert"
that = "after.counter == before.counter - 1"

[[case]]
id = "XFER-UPD-01"
title = "Common-key update from the reference card"
ref = "002 S1001-S1104A"
[[case.step]]
do = "engine"
engine = "key_update"
heads = ["dut", "peer"]
mode = "common"
"#;

fn profile(service_us: u32) -> String {
    let mut s = String::from(
        r#"
name = "batch-test"
[keyset]
seed = "batch test"
[defaults]
clock = "2026-06-01T12:00:00Z"
"#,
    );
    for h in ["D1", "D2", "D3"] {
        s += &format!(
            "[[head]]\nname = \"{h}\"\ndriver = \"virtual\"\nrole = \"dut\"\nservice_time_us = {service_us}\n"
        );
    }
    s += r#"
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
every = 7
offset = 3
defects = ["counter-not-decremented"]
"#;
    s
}

fn setup(dir: &Path, service_us: u32) {
    std::fs::write(dir.join("lab.toml"), profile(service_us)).unwrap();
    std::fs::write(dir.join("plan.toml"), PLAN).unwrap();
}

fn batch(dir: &Path, id: &str, count: u32) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(dir)
        .args(["batch", "--profile", "lab.toml", "--plan", "plan.toml", "--batch-id", id, "--logs", "logs", "-q"])
        .args(["--count", &count.to_string()]);
    c
}

fn summary(dir: &Path, id: &str) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(dir.join("logs").join(id).join("summary.csv")).unwrap();
    r.records().map(|x| x.unwrap()).collect()
}

#[test]
fn batch_names_exactly_the_defective_cards_across_three_heads() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), 0);
    let out = batch(d.path(), "B1", 30).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "some cards fail: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("30 cards (30 certified now), 26 pass, 4 fail, 0 aborted"), "{stdout}");
    let rows = summary(d.path(), "B1");
    assert_eq!(rows.len(), 30);
    let heads: std::collections::BTreeSet<&str> = rows.iter().map(|r| &r[3]).collect();
    assert_eq!(heads.len(), 3, "cards were certified on all three heads: {heads:?}");
    for r in &rows {
        let index: u64 = r[1].parse().unwrap();
        let defective = index % 7 == 3;
        assert_eq!(&r[4], if defective { "fail" } else { "pass" }, "card {index}");
        assert_eq!(&r[5], if defective { "PURSE-CTR-01" } else { "" }, "card {index}");
        assert_eq!(&r[2], &format!("CB00B000{index:08X}"));
        let trace = d.path().join("logs/B1").join(&r[13]);
        assert!(trace.exists(), "per-card trace {}", trace.display());
    }
    let junit = std::fs::read_to_string(d.path().join("logs/B1/junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 30);
    assert_eq!(junit.matches("<failure ").count(), 4);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("logs/B1/results.json")).unwrap()).unwrap();
    assert_eq!(json["cards"].as_array().unwrap().len(), 30);
}

#[test]
fn killed_batch_resumes_with_every_card_certified_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    // A modelled card service time makes the batch long enough to be killed in the middle.
    setup(d.path(), 500);
    let journal = d.path().join("logs/K/journal.jsonl");
    let mut child = batch(d.path(), "K", 60).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&journal).map(|s| s.lines().count()).unwrap_or(0);
        if lines >= 6 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "batch made no progress");
        assert!(child.try_wait().unwrap().is_none(), "batch finished before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = std::fs::read_to_string(&journal).unwrap();
    let kept: Vec<&str> = before.lines().filter(|l| l.ends_with('}')).collect();
    assert!(kept.len() >= 6 && kept.len() < 60, "killed mid-batch after {} cards", kept.len());
    let out = batch(d.path(), "K", 60).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("60 cards ("), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let after = std::fs::read_to_string(&journal).unwrap();
    // Earlier results are kept as they were; each card appears once.
    for l in &kept {
        assert!(after.contains(l), "an earlier result was lost or rewritten");
    }
    let mut seen = std::collections::BTreeSet::new();
    for l in after.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(seen.insert(v["index"].as_u64().unwrap()), "card certified twice: {l}");
    }
    assert_eq!(seen, (1..=60).collect());
    let rows = summary(d.path(), "K");
    assert_eq!(rows.len(), 60);
    assert_eq!(rows.iter().filter(|r| &r[4] == "fail").count(), (1..=60).filter(|i| i % 7 == 3).count());
    // Resuming a finished batch certifies nothing more.
    let again = batch(d.path(), "K", 60).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("(0 certified now)"));
}

#[test]
fn resume_with_other_parameters_is_refused() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), 0);
    batch(d.path(), "R", 3).output().unwrap();
    let out = batch(d.path(), "R", 4).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resume it with the same parameters"));
}
