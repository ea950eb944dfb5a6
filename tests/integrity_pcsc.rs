//! A card inserted twice in a batch on a real reader path (pcscd + vpcd, the card served by
//! `cardbench sim vpcd`): the batch identifies it through APDUs, refuses it with a message for
//! the operator and takes the next card; with `--recertify` it certifies it again in its own
//! place, recorded as a re-certification. pcscd is one per machine: one test, in order.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[path = "common/pcscd.rs"]
mod pcscd;
use pcscd::{available, bin, wait_readers_with_cards, Bridge, Pcscd, ROOT};

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
"#;

/// profiles/vpcd-lab.toml with one DUT head, E (vpcd reader 4): F is a spare.
fn lab(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(ROOT).join("profiles/vpcd-lab.toml")).unwrap();
    let text = text.replacen(
        "name = \"F\"\ndriver = \"pcsc\"\nrole = \"dut\"",
        "name = \"F\"\ndriver = \"pcsc\"\nrole = \"spare\"",
        1,
    );
    assert!(text.contains("role = \"spare\""));
    let p = dir.join("lab.toml");
    std::fs::write(&p, text).unwrap();
    std::fs::write(dir.join("plan.toml"), PLAN).unwrap();
    p
}

fn start_batch(dir: &Path, id: &str, extra: &[&str]) -> (Child, PathBuf) {
    let err = dir.join(format!("{id}.stderr"));
    let child = bin()
        .args(["batch", "--profile"])
        .arg(dir.join("lab.toml"))
        .arg("--plan")
        .arg(dir.join("plan.toml"))
        .args(["--batch-id", id, "--count", "2", "--logs"])
        .arg(dir.join("logs"))
        .args(extra)
        .stdout(Stdio::from(std::fs::File::create(dir.join(format!("{id}.stdout"))).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    (child, err)
}

/// Wait for a state of the batch: `what` holds, while the batch runs.
fn wait_until(child: &mut Child, what: &str, mut holds: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !holds() {
        assert!(child.try_wait().unwrap().is_none(), "the batch ended before {what}");
        assert!(t0.elapsed() < Duration::from_secs(60), "no {what} within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn journal(dir: &Path, id: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("logs").join(id).join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summary(dir: &Path, id: &str) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(dir.join("logs").join(id).join("summary.csv")).unwrap();
    r.records().map(|x| x.unwrap()).collect()
}

/// The operator takes the card out of E (its bridge stops) and pcscd sees the reader empty.
fn take_out(bridge: Bridge) {
    drop(bridge);
    wait_readers_with_cards(0);
}

#[test]
fn a_card_inserted_twice_is_refused_or_recertified_only_when_asked() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let _pcscd = Pcscd::start(6, &tmp.path().join("pcscd"));
    let dir = tmp.path();
    lab(dir);

    // 1. Refused: card E, then card E again, then card F.
    let e = Bridge::start("dut-e", 4, 0);
    wait_readers_with_cards(1);
    let (mut child, err) = start_batch(dir, "DUP", &[]);
    wait_until(&mut child, "card #1 journaled", || journal(dir, "DUP").len() == 1);
    // The worker asks for the card back only once it waits for its removal.
    let prompt = |verdict: &str| format!("[E] remove card CB00C0000000000E ({verdict}) from E");
    let said = |err: &Path, line: &str| std::fs::read_to_string(err).unwrap().matches(line).count();
    wait_until(&mut child, "the remove prompt", || said(&err, &prompt("pass")) == 1);
    take_out(e);
    let again = Bridge::start("dut-e", 4, 0);
    let refusal = "card CB00C0000000000E in head E (cardbench vpcd 4 00 00) is already certified in this batch \
                   (#1, pass); not certified again: take it out and insert the next card";
    wait_until(&mut child, "the refusal", || std::fs::read_to_string(&err).unwrap().contains(refusal));
    wait_until(&mut child, "the remove prompt", || said(&err, &prompt("refused")) == 1);
    take_out(again);
    let f = Bridge::start("dut-f", 4, 0);
    let st = child.wait().unwrap();
    drop(f);
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(st.code(), Some(0), "{stderr}");
    let rows = summary(dir, "DUP");
    let ids: Vec<(&str, &str)> = rows.iter().map(|r| (&r[1], &r[2])).collect();
    assert_eq!(ids, [("1", "CB00C0000000000E"), ("2", "CB00C0000000000F")], "no card counted twice");
    assert_eq!(journal(dir, "DUP").len(), 2);
    // The reader and the ATR the card answered with are in the header.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logs/DUP/batch.json")).unwrap()).unwrap();
    let head = &meta["runs"][0]["heads"][0];
    assert_eq!((head["name"].as_str(), head["reader"].as_str()), (Some("E"), Some("cardbench vpcd 4 00 00")));
    assert!(!head["atr"][0].as_str().unwrap().is_empty(), "{head}");
    wait_readers_with_cards(0);

    // 2. --recertify: card E twice, then F; E's second result replaces its first, recorded.
    let e = Bridge::start("dut-e", 4, 0);
    wait_readers_with_cards(1);
    let (mut child, err) = start_batch(dir, "RE", &["--recertify"]);
    wait_until(&mut child, "card #1 journaled", || journal(dir, "RE").len() == 1);
    wait_until(&mut child, "the remove prompt", || said(&err, &prompt("pass")) == 1);
    take_out(e);
    let again = Bridge::start("dut-e", 4, 0);
    wait_until(&mut child, "the re-certification", || journal(dir, "RE").len() == 2);
    wait_until(&mut child, "the second remove prompt", || said(&err, &prompt("pass")) == 2);
    take_out(again);
    let f = Bridge::start("dut-f", 4, 0);
    let st = child.wait().unwrap();
    drop(f);
    assert_eq!(st.code(), Some(0), "{}", std::fs::read_to_string(&err).unwrap());
    let lines = journal(dir, "RE");
    let at: Vec<(u64, &str, u64)> = lines
        .iter()
        .map(|l| {
            (l["index"].as_u64().unwrap(), l["card_id"].as_str().unwrap(), l["certification"].as_u64().unwrap_or(1))
        })
        .collect();
    assert_eq!(at, [(1, "CB00C0000000000E", 1), (1, "CB00C0000000000E", 2), (2, "CB00C0000000000F", 1)]);
    let rows = summary(dir, "RE");
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][13], "cards/00001-CB00C0000000000E-r2/trace.csv", "the new trace; the first one is kept");
    assert!(dir.join("logs/RE/cards/00001-CB00C0000000000E/trace.csv").exists());
    let stdout = std::fs::read_to_string(dir.join("RE.stdout")).unwrap();
    assert!(stdout.contains("card CB00C0000000000E on E: pass (re-certified #1; was pass)"), "{stdout}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logs/RE/results.json")).unwrap()).unwrap();
    assert_eq!(
        results["header"]["recertified"],
        serde_json::json!([{"index": 1, "card_id": "CB00C0000000000E", "certification": 2}])
    );
    assert_eq!(results["header"]["runs"][0]["recertify"], true);
    // A resume reads the re-certification back: one result per card.
    let out = bin().args(["batch", "--batch-id", "RE", "--logs"]).arg(dir.join("logs")).args(["-q"]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("batch RE: 2 cards (0 certified now), 2 pass"), "{s}{}", String::from_utf8_lossy(&out.stderr));
}
