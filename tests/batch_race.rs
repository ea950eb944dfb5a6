//! The batch worker race, through real pcscd and vpcd: one card, two DUT heads (E and F),
//! `--count 1`. A worker that took card #1 before its head had a card would wait out the
//! presence timeout while the card sits in the other head, which then had no index left and
//! stopped: the card was never certified. Each run here makes that interleaving happen for
//! sure: the card is inserted only after BOTH heads are waiting for one, once in E and once
//! in F, and the card must be certified in the head it was put in every time.

#[path = "common/operator_lab.rs"]
mod operator_lab;
#[path = "common/pcscd.rs"]
mod pcscd;

use operator_lab::{insert_in, two_head_lab};
use pcscd::{available, bin, lines_of, wait_readers_with_cards, Pcscd};
use std::process::{Child, Stdio};
use std::time::Duration;

/// The batch, killed if the test fails before it ended.
struct Batch(Child);

impl Drop for Batch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next line of `rx` (kept in `seen`); the bound only turns a hang into a failure.
fn next_line(rx: &crossbeam_channel::Receiver<String>, seen: &mut Vec<String>) -> String {
    match rx.recv_timeout(Duration::from_secs(300)) {
        Ok(l) => {
            seen.push(l.clone());
            l
        }
        Err(e) => panic!("no more lines ({e}); so far:\n{}", seen.join("\n")),
    }
}

/// Read until every head of `heads` has prompted for a card. A head that says it is done
/// before it prompted took no part in the race (the old worker: its sibling held the card
/// index while waiting), which is the bug.
fn both_waiting(rx: &crossbeam_channel::Receiver<String>, seen: &mut Vec<String>, heads: &[(&str, u32)]) {
    let mut waiting = vec![false; heads.len()];
    while waiting.iter().any(|w| !w) {
        let l = next_line(rx, seen);
        for (i, (h, r)) in heads.iter().enumerate() {
            if l == format!("[{h}] insert the next card in {h} (reader cardbench vpcd {r} 00 00)") {
                waiting[i] = true;
            }
            assert!(
                waiting[i] || !l.starts_with(&format!("[{h}] done")),
                "head {h} stopped before the card came:\n{}",
                seen.join("\n")
            );
        }
    }
}

/// `cardbench batch --count 1` of the certification plan on `lab`, its stderr and stdout
/// lines.
fn race_batch(
    lab: &std::path::Path,
    logs: &std::path::Path,
) -> (Batch, crossbeam_channel::Receiver<String>, crossbeam_channel::Receiver<String>) {
    let mut child = Batch(
        bin()
            .args(["batch", "--profile", lab.to_str().unwrap(), "--plan", "test-plans/certification.toml"])
            .args(["--batch-id", "RACE", "--count", "1", "--logs"])
            .arg(logs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = lines_of(child.0.stderr.take().unwrap());
    let out = lines_of(child.0.stdout.take().unwrap());
    (child, err, out)
}

/// The batch ended with exit 0 and its journal holds card #1 certified in `head`, passed.
fn certified_once_in(
    mut child: Batch,
    out: &crossbeam_channel::Receiver<String>,
    seen: &[String],
    logs: &std::path::Path,
    head: &str,
) {
    let status = child.0.wait().unwrap();
    let stdout: Vec<String> = out.iter().collect();
    assert_eq!(status.code(), Some(0), "{}\n{}", stdout.join("\n"), seen.join("\n"));
    let journal = std::fs::read_to_string(logs.join("RACE/journal.jsonl")).unwrap();
    let cards: Vec<serde_json::Value> = journal.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(cards.len(), 1, "{journal}");
    assert_eq!((cards[0]["index"].as_u64(), cards[0]["head"].as_str()), (Some(1), Some(head)), "{journal}");
    assert_eq!(cards[0]["verdict"], "pass", "{journal}");
}

/// One batch: both heads wait, then the card goes into `into`; it must be certified there.
fn one_card_two_heads(dir: &std::path::Path, into: &str) {
    let heads = [("E", 4), ("F", 5)];
    let lab = two_head_lab(dir);
    let logs = dir.join(format!("logs-{into}"));
    let (child, err, out) = race_batch(&lab, &logs);
    let mut seen = Vec::new();
    both_waiting(&err, &mut seen, &heads);
    let reader = heads.iter().find(|(h, _)| *h == into).unwrap().1;
    let other = heads.iter().find(|(h, _)| *h != into).unwrap().0;
    let _card = insert_in(&lab, "card-1", reader);
    let (mut tested, mut done_into, mut done_other) = (false, false, false);
    while !(done_into && done_other) {
        let l = next_line(&err, &mut seen);
        tested |= l == format!("[{into}] card CB00C00000000011 detected: testing (#1)");
        assert!(!l.starts_with(&format!("[{other}] card ")), "the card was put in {into}:\n{}", seen.join("\n"));
        assert!(!l.contains("fault"), "{}", seen.join("\n"));
        done_into |= l == format!("[{into}] done: 1 pass, 0 fail, 0 aborted");
        // The other head stops waiting once no card is left for it, without a timeout.
        done_other |= l == format!("[{other}] done: 0 pass, 0 fail, 0 aborted");
    }
    assert!(tested, "{}", seen.join("\n"));
    certified_once_in(child, &out, &seen, &logs, into);
    // The next batch starts with both readers empty, as an operator would leave them.
    drop(_card);
    wait_readers_with_cards(0);
}

#[test]
fn one_card_in_either_of_two_heads_is_certified_with_count_1() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let _pcscd = Pcscd::start(6, &tmp.path().join("pcscd"));
    for into in ["F", "E"] {
        one_card_two_heads(tmp.path(), into);
    }
}

/// The other half of the race: F takes the only index for a card that then does not answer
/// at identification, and gives the index back. E, waiting all along, must not conclude in
/// the meantime that no card is left: the good card then goes into E and is certified there.
#[test]
fn a_waiting_head_keeps_waiting_while_its_sibling_holds_an_index_it_gives_back() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let _pcscd = Pcscd::start(6, &tmp.path().join("pcscd"));
    let heads = [("E", 4), ("F", 5)];
    let lab = two_head_lab(tmp.path());
    let logs = tmp.path().join("logs");
    let (child, err, out) = race_batch(&lab, &logs);
    let mut seen = Vec::new();
    both_waiting(&err, &mut seen, &heads);
    let port = pcscd::vpcd_port(5).to_string();
    let lab_s = lab.to_str().unwrap();
    let mute = pcscd::Bridge::spawn(&[
        "sim",
        "vpcd",
        "--profile",
        lab_s,
        "--card",
        "card-1",
        "--port",
        &port,
        "--stall-after",
        "0",
    ]);
    // F refuses the silent card and asks for it to be taken out.
    loop {
        let l = next_line(&err, &mut seen);
        assert!(!l.starts_with("[E] done"), "E stopped while F held the index it gave back:\n{}", seen.join("\n"));
        if l.starts_with("[F] remove card unidentified (refused)") {
            break;
        }
    }
    drop(mute);
    wait_readers_with_cards(0);
    let _card = insert_in(&lab, "card-1", 4);
    let (mut tested, mut done_e, mut done_f) = (false, false, false);
    while !(done_e && done_f) {
        let l = next_line(&err, &mut seen);
        tested |= l == "[E] card CB00C00000000011 detected: testing (#1)";
        assert!(tested || !l.starts_with("[E] done"), "E stopped before the card came:\n{}", seen.join("\n"));
        done_e |= l == "[E] done: 1 pass, 0 fail, 0 aborted";
        done_f |= l == "[F] done: 0 pass, 0 fail, 0 aborted";
    }
    certified_once_in(child, &out, &seen, &logs, "E");
}
