//! The operator at a real reader and the bench's exit codes, through real pcscd and vpcd:
//! - pcscd down (stopped for real, the lock still held): `run`, `batch`, `time`, `replay`,
//!   `recover` and `heads` exit 2 naming the head, its reader and the hint, and create nothing;
//! - `heads --profile` exits 2 when one listed head is unusable (its reader is missing) while
//!   the others are listed;
//! - pcscd stopped while a batch waits for a card, or during a run: exit 2 naming the head;
//! - a PN532 head whose port does not answer: `run` and `heads` exit 2 the same way;
//! - a headless batch on one vpcd head prompts the operator (insert / remove, with the reader),
//!   counts per head, and a card's time starts when it is detected, not while the head waited.

#[path = "common/operator_lab.rs"]
mod operator_lab;
#[path = "common/pcscd.rs"]
mod pcscd;

use operator_lab::{insert, one_head_lab};
use pcscd::{available, bin, lines_of, Bridge, Pcscd};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

const HINT: &str = "is pcscd running? (`scripts/pcscd-lab.sh start";

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Exit 2 with the head, its reader and the hint on stderr, and no `nothing` created.
#[track_caller]
fn refused(what: &str, o: &Output, head: &str, reader: &str, nothing: &Path) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(2), "{what}: exit 2\n{out}{err}");
    let line = err.lines().find(|l| l.starts_with("cardbench: error:")).unwrap_or_else(|| panic!("{what}: {err}"));
    for x in [&format!("head {head} "), &format!("'{reader}'"), "reader service stopped", HINT] {
        assert!(line.contains(x), "{what}: {x:?} in {line:?}");
    }
    assert!(!nothing.exists(), "{what}: {} was created", nothing.display());
}

#[test]
fn pcscd_down_is_exit_2_everywhere_and_creates_nothing() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A trace to replay, from the in-process lab (needs no pcscd).
    let src = tmp.path().join("src");
    let o = bin()
        .args([
            "run",
            "test-plans/smoke.toml",
            "-q",
            "--profile",
            "profiles/virtual-lab.toml",
            "--run-id",
            "S",
            "--logs",
        ])
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let trace = src.join("S/trace.csv");

    let pcscd = Pcscd::start(6, &tmp.path().join("pcscd"));
    pcscd.stop();
    let logs = tmp.path().join("logs");
    let lab = "profiles/vpcd-lab.toml";
    let run = |args: &[&str]| bin().args(args).arg("--logs").arg(&logs).output().unwrap();

    let o = run(&["run", "test-plans/smoke.toml", "--profile", lab]);
    refused("run", &o, "A", "cardbench vpcd 0 00 00", &logs);
    let o = run(&["batch", "--profile", lab, "--plan", "test-plans/certification.toml", "--batch-id", "P1"]);
    refused("batch", &o, "E", "cardbench vpcd 4 00 00", &logs);
    let o = run(&["time", "test-plans/timing/hot-path.toml", "--profile", lab, "--head", "E"]);
    // E and its peer, the spec's C: the first unusable one is named.
    refused("time", &o, "C", "cardbench vpcd 2 00 00", &logs);
    let o = run(&["replay", trace.to_str().unwrap(), "--profile", lab]);
    refused("replay", &o, "A", "cardbench vpcd 0 00 00", &logs);
    let o = run(&["replay", trace.to_str().unwrap(), "--profile", lab, "--mode", "session"]);
    refused("replay --mode session", &o, "A", "cardbench vpcd 0 00 00", &logs);
    let o = run(&["recover", "--profile", lab, "--head", "A"]);
    refused("recover", &o, "A", "cardbench vpcd 0 00 00", &logs);

    // heads --profile: every head listed, each unusable one named on stderr, exit 2.
    let o = bin().args(["heads", "--profile", lab]).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    for h in ["A", "B", "C", "D", "E", "F"] {
        assert!(out.lines().any(|l| l.starts_with(&format!("{h} ")) && l.contains("?")), "{h} listed:\n{out}");
        assert!(err.contains(&format!("head {h} (pcsc reader")), "{h} named:\n{err}");
    }
    assert!(err.contains(HINT), "{err}");
    // heads without a profile, and --watch: pcscd itself is the head.
    for args in [&["heads"][..], &["heads", "--watch", "--seconds", "1"]] {
        let o = bin().args(args).output().unwrap();
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(err.contains("PC/SC: reader service stopped") && err.contains(HINT), "{args:?}: {err}");
    }
}

#[test]
fn heads_exits_2_when_a_listed_head_is_unusable() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Two vpcd readers: heads A and B have theirs, C-F name readers pcscd does not have.
    let _pcscd = Pcscd::start(2, &tmp.path().join("pcscd"));
    let _a = Bridge::start("card-a", 0, 0);
    pcscd::wait_readers_with_cards(1);
    let o = bin().args(["heads", "--profile", "profiles/vpcd-lab.toml"]).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    let line = |h: &str| out.lines().find(|l| l.starts_with(&format!("{h} "))).unwrap_or_else(|| panic!("{h}:\n{out}"));
    assert!(line("A").contains("yes") && line("A").contains("3B89004341524442454E4348"), "{out}");
    assert!(line("B").contains(" no "), "{out}");
    assert!(line("C").contains("no reader matches"), "{out}");
    assert!(err.contains("head C (pcsc reader 'cardbench vpcd 2 00 00'): reader gone"), "{err}");
    assert!(err.contains("`cardbench heads` lists the readers"), "{err}");
    assert!(!err.contains("head A ") && !err.contains("head B "), "{err}");
}

/// Read lines until one contains `what` (every line read is kept in `seen`).
#[track_caller]
fn expect_line(rx: &crossbeam_channel::Receiver<String>, seen: &mut Vec<String>, what: &str) -> String {
    loop {
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(what) {
                    return l;
                }
            }
            Err(e) => panic!("no line with {what:?} ({e}); so far:\n{}", seen.join("\n")),
        }
    }
}

fn ms_floor(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}

fn rfc3339(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
}

#[test]
fn a_headless_batch_on_a_real_reader_prompts_the_operator_and_times_cards_from_detection() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let _pcscd = Pcscd::start(6, &tmp.path().join("pcscd"));
    let lab = one_head_lab(tmp.path());
    let logs = tmp.path().join("logs");
    let mut child = bin()
        .args(["batch", "--profile", lab.to_str().unwrap(), "--plan", "test-plans/certification.toml"])
        .args(["--batch-id", "OP", "--count", "2", "--logs"])
        .arg(&logs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines_of(child.stderr.take().unwrap());
    let out = lines_of(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let insert_prompt = "[E] insert the next card in E (reader cardbench vpcd 4 00 00)";
    expect_line(&err, &mut seen, insert_prompt);
    // The head waits; the card's time must not include this wait.
    let inserted_1 = chrono::Utc::now();
    let b1 = insert(&lab, "card-1");
    expect_line(&err, &mut seen, "[E] card CB00C00000000011 detected: testing (#1)");
    expect_line(&err, &mut seen, "[E] remove card CB00C00000000011 (pass) from E (reader cardbench vpcd 4 00 00)");
    let judged_1 = chrono::Utc::now();
    drop(b1);
    expect_line(&err, &mut seen, insert_prompt);
    let inserted_2 = chrono::Utc::now();
    let _b2 = insert(&lab, "card-2");
    expect_line(&err, &mut seen, "[E] card CB00C00000000012 detected: testing (#2)");
    expect_line(&err, &mut seen, "[E] done: 2 pass, 0 fail, 0 aborted");
    let status = child.wait().unwrap();
    let stdout: Vec<String> = out.iter().collect();
    assert_eq!(status.code(), Some(0), "{}\n{}", stdout.join("\n"), seen.join("\n"));
    assert!(stdout.iter().any(|l| l == "head E: 2 pass, 0 fail, 0 aborted"), "{stdout:?}");

    // A card's time runs from its detection: it started after the operator inserted it.
    let journal = std::fs::read_to_string(logs.join("OP/journal.jsonl")).unwrap();
    let cards: Vec<serde_json::Value> = journal.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let card = |i: u64| cards.iter().find(|c| c["index"] == i).unwrap();
    let (c1, c2) = (card(1), card(2));
    // `started` is written to the millisecond.
    let (inserted_1, inserted_2) = (ms_floor(inserted_1), ms_floor(inserted_2));
    assert!(rfc3339(c1["started"].as_str().unwrap()) >= inserted_1, "{c1}");
    assert!(rfc3339(c2["started"].as_str().unwrap()) >= inserted_2, "{c2}");
    let ms = c1["duration_ms"].as_f64().unwrap();
    assert!(
        ms <= (judged_1 - inserted_1).num_milliseconds() as f64,
        "card 1 took {ms} ms, within its time in the head"
    );
    // JUnit carries the same time per card.
    let junit = std::fs::read_to_string(logs.join("OP/junit.xml")).unwrap();
    let at = junit.find("name=\"card CB00C00000000011\"").unwrap();
    let from = junit[..at].rfind("<testsuite ").unwrap();
    let suite = &junit[from..from + junit[from..].find('>').unwrap()];
    let t: f64 = suite.split(" time=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    assert!((t * 1000.0 - ms).abs() < 1.0, "{suite} vs {ms} ms");
}

/// Lines of the trace at `p` whose head is `head` and kind a wire exchange.
fn wire_rows(p: &Path, head: &str) -> usize {
    let Ok(mut r) = csv::Reader::from_path(p) else { return 0 };
    r.records()
        .filter_map(|x| x.ok())
        .filter(|x| {
            x.get(4) == Some(head) && ["command", "get-response", "resend-6c"].contains(&x.get(15).unwrap_or(""))
        })
        .count()
}

#[test]
fn pcscd_stopped_during_a_run_or_a_batch_is_exit_2_naming_the_head() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pcscd = Pcscd::start(6, &tmp.path().join("pcscd"));
    let logs = tmp.path().join("logs");

    // A batch whose head waits for the operator's card when pcscd goes away.
    let lab = one_head_lab(tmp.path());
    let mut child = bin()
        .args(["batch", "--profile", lab.to_str().unwrap(), "--plan", "test-plans/certification.toml"])
        .args(["--batch-id", "DOWN", "--count", "1", "-q", "--logs"])
        .arg(&logs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    expect_line(&err, &mut seen, "[E] insert the next card in E (reader cardbench vpcd 4 00 00)");
    pcscd.stop();
    let line = expect_line(&err, &mut seen, "cardbench: error:");
    assert_eq!(child.wait().unwrap().code(), Some(2), "{}", seen.join("\n"));
    for x in ["head E (pcsc reader 'cardbench vpcd 4 00 00')", HINT] {
        assert!(line.contains(x), "{x:?} in {line:?}");
    }

    // A run whose card stops answering (its command stays in pcscd) when pcscd goes away: the
    // cases end in errors, and the run says it is the bench's failure.
    pcscd.start_again();
    let plan = tmp.path().join("a-only.toml");
    let mut p = String::from("[plan]\nid = \"a-only\"\nversion = \"1.0.0\"\nroles = [\"A\"]\n");
    for i in 1..=4 {
        p += &format!(
            "\n[[case]]\nid = \"A-{i}\"\ntitle = \"purse\"\n[[case.step]]\ndo = \"read\"\nhead = \"A\"\n\
             state = \"purse\"\nas = \"p\"\n"
        );
    }
    std::fs::write(&plan, p).unwrap();
    // identify (2 exchanges) and case A-1 (3) are answered; A-2's first command hangs.
    let _a = Bridge::start_with("card-a", 0, &["--stall-after", "5"]);
    pcscd::wait_readers_with_cards(1);
    let child = bin()
        .args(["run", plan.to_str().unwrap(), "--profile", "profiles/vpcd-lab.toml", "--run-id", "R", "--logs"])
        .arg(&logs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let trace = logs.join("R/trace.csv");
    let t0 = std::time::Instant::now();
    while wire_rows(&trace, "A") < 5 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the run did not reach its stalled command");
        std::thread::sleep(Duration::from_millis(20));
    }
    pcscd.stop();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    let line = err.lines().find(|l| l.starts_with("cardbench: error:")).unwrap_or_else(|| panic!("{err}"));
    for x in ["run R could not finish", "head A (pcsc reader 'cardbench vpcd 0 00 00')", HINT] {
        assert!(line.contains(x), "{x:?} in {line:?}");
    }
    // The run's own record is complete: its summary line and trace are there.
    assert!(out.contains("a-only: 4 cases, 1 passed"), "{out}");
    assert!(trace.exists());
}

#[test]
fn a_pn532_head_that_does_not_answer_is_exit_2_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let port = tmp.path().join("no-such-port");
    // profiles/pn532-sim.toml with every head's port somewhere nothing listens.
    let lab = std::fs::read_to_string(Path::new(pcscd::ROOT).join("profiles/pn532-sim.toml")).unwrap();
    let lab = ["a", "b", "c", "d"]
        .iter()
        .fold(lab, |l, c| l.replace(&format!("/tmp/cardbench-pn532-{c}"), port.to_str().unwrap()));
    let profile = tmp.path().join("lab.toml");
    std::fs::write(&profile, lab).unwrap();
    let logs = tmp.path().join("logs");
    let o = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", profile.to_str().unwrap(), "--logs"])
        .arg(&logs)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    let want = format!("cardbench: error: head A (pn532 reader '{}'): reader gone: cannot open", port.display());
    assert!(err.contains(&want) && err.contains("is the PN532 connected to that port?"), "{err}");
    assert!(!logs.exists());
    let o = bin().args(["heads", "--profile", profile.to_str().unwrap()]).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert_eq!(err.lines().filter(|l| l.contains("is the PN532 connected")).count(), 4, "{err}");
}
