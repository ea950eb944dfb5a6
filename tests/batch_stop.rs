//! Stopping a headless `cardbench batch` with real signals sent to a real child process:
//! SIGINT / SIGTERM finish the cards in the heads and write every report (exit 130 / 143), a
//! second SIGINT aborts at once with a whole journal, and `cardbench report` rebuilds the
//! reports byte for byte. The tests wait for states (journal lines, card folders, stderr
//! lines), never for time.

#[path = "common/batch_lab.rs"]
mod batch_lab;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Three virtual DUT heads; every card command takes `service_us` on the card.
fn profile(service_us: u32) -> String {
    let head = "name = \"stop-test\"\n[keyset]\nseed = \"batch test\"\n[defaults]\nclock = \"2026-06-01T12:00:00Z\"\n";
    format!(
        "{head}{}{}",
        batch_lab::dut_heads(&["D1", "D2", "D3"], Some(service_us)),
        batch_lab::cards_and_batch(None, 7, 3)
    )
}

fn setup(service_us: u32) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("lab.toml"), profile(service_us)).unwrap();
    std::fs::write(d.path().join("plan.toml"), batch_lab::MINI_PLAN).unwrap();
    d
}

fn batch(dir: &Path, id: &str, count: u32) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(dir)
        .args(["batch", "--profile", "lab.toml", "--plan", "plan.toml", "--batch-id", id, "--logs", "logs", "-q"])
        .args(["--count", &count.to_string()]);
    c
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// Poll `done` until it holds; the deadline only turns a hang into a failure.
fn wait_until(what: &str, child: &mut Child, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(child.try_wait().unwrap().is_none(), "the batch ended before {what}");
        assert!(t0.elapsed() < Duration::from_secs(300), "no {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn journal_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

/// Every journal line is whole (ends with a newline, parses) and names a different card.
fn journaled(journal: &Path) -> BTreeSet<u64> {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "the journal ends inside a line");
    let mut seen = BTreeSet::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}"));
        assert!(seen.insert(v["index"].as_u64().unwrap()), "card journaled twice: {l}");
    }
    seen
}

/// Card indices of the card folders (`cards/<index>-<id>`) in a batch folder.
fn card_folders(folder: &Path) -> BTreeSet<u64> {
    let Ok(rd) = std::fs::read_dir(folder.join("cards")) else { return BTreeSet::new() };
    rd.map(|e| e.unwrap().file_name().to_string_lossy().split('-').next().unwrap().parse().unwrap()).collect()
}

const REPORTS: [&str; 3] = ["summary.csv", "junit.xml", "results.json"];

/// The reports cover exactly the journaled cards.
fn assert_reports_cover(folder: &Path, cards: &BTreeSet<u64>) {
    let mut r = csv::Reader::from_path(folder.join("summary.csv")).unwrap();
    let rows: BTreeSet<u64> = r.records().map(|x| x.unwrap()[1].parse().unwrap()).collect();
    assert_eq!(&rows, cards, "summary.csv rows");
    let junit = std::fs::read_to_string(folder.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), cards.len(), "junit.xml suites");
    assert!(junit.trim_end().ends_with("</testsuites>"), "junit.xml is whole");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("results.json")).unwrap()).unwrap();
    let got: BTreeSet<u64> = json["cards"].as_array().unwrap().iter().map(|c| c["index"].as_u64().unwrap()).collect();
    assert_eq!(&got, cards, "results.json cards");
}

fn report(folder: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cardbench")).arg("report").arg(folder).output().unwrap()
}

/// Rebuild the reports (after deleting or damaging them) and compare with the batch's bytes.
fn assert_rebuilt_identically(folder: &Path) {
    let written: Vec<Vec<u8>> = REPORTS.iter().map(|f| std::fs::read(folder.join(f)).unwrap()).collect();
    std::fs::remove_file(folder.join("summary.csv")).unwrap();
    std::fs::write(folder.join("junit.xml"), b"<damaged").unwrap();
    let out = report(folder);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for (f, bytes) in REPORTS.iter().zip(&written) {
        assert!(std::fs::read(folder.join(f)).unwrap() == *bytes, "{f} rebuilt differs from what the batch wrote");
    }
}

/// SIGINT or SIGTERM once a few cards are journaled: the batch stops like the TUI's stop.
fn stop_with(sig: &str, code: i32, id: &str) -> (tempfile::TempDir, PathBuf) {
    let d = setup(300);
    let folder = d.path().join("logs").join(id);
    let journal = folder.join("journal.jsonl");
    let mut child = batch(d.path(), id, 400).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("3 cards were journaled", &mut child, || journal_lines(&journal) >= 3);
    signal(child.id(), sig);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    let name = &sig[1..];
    assert!(stderr.contains(&format!("stopped by SIG{name}")), "{stderr}");
    assert!(stderr.contains("have no verdict") && stderr.contains("run the same command again to resume"), "{stderr}");
    let done = journaled(&journal);
    assert!(done.len() >= 3 && done.len() < 400, "stopped mid-batch after {} cards", done.len());
    // The cards in the heads finished: every card begun has its verdict in the journal.
    assert_eq!(card_folders(&folder), done, "a card folder without a journal line: a card was cut off");
    assert_reports_cover(&folder, &done);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{} cards ({} certified now)", done.len(), done.len())), "{stdout}");
    (d, folder)
}

#[test]
fn sigint_finishes_the_cards_in_the_heads_writes_every_report_and_exits_130() {
    let (d, folder) = stop_with("-INT", 130, "I");
    assert_rebuilt_identically(&folder);
    // The same command resumes: every card exactly once, and the reports cover the batch.
    let out = batch(d.path(), "I", 400).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "cards 3, 10, … fail: {}", String::from_utf8_lossy(&out.stderr));
    let all = journaled(&folder.join("journal.jsonl"));
    assert_eq!(all, (1..=400).collect());
    assert_reports_cover(&folder, &all);
    assert_rebuilt_identically(&folder);
}

#[test]
fn sigterm_stops_the_batch_the_same_way_and_exits_143() {
    stop_with("-TERM", 143, "T");
}

#[test]
fn a_second_sigint_aborts_at_once_with_a_whole_journal() {
    // Slow cards (every command takes 20 ms on the card): the second SIGINT lands while the
    // three heads are in the middle of their cards.
    let d = setup(20_000);
    let folder = d.path().join("logs/A");
    let journal = folder.join("journal.jsonl");
    let mut child = batch(d.path(), "A", 9).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for l in std::io::BufReader::new(stderr).lines() {
            let _ = tx.send(l.unwrap());
        }
    });
    // A card is under way once its trace exists.
    wait_until("a card was started", &mut child, || !card_folders(&folder).is_empty());
    signal(child.id(), "-INT");
    let first = rx.recv_timeout(Duration::from_secs(300)).expect("a line saying the batch is stopping");
    assert!(first.contains("SIGINT: stopping"), "{first}");
    signal(child.id(), "-INT");
    let st = child.wait().unwrap();
    reader.join().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(st.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("SIGINT: aborted") && l.contains("cardbench report")), "{rest:?}");
    assert!(!rest.iter().any(|l| l.contains("stopped by SIGINT")), "aborted, not stopped: {rest:?}");
    let done = journaled(&journal);
    assert!(done.len() < 9, "the batch was aborted before its end");
    // Cards begun but not journaled were cut off by the abort; the resume certifies them.
    assert!(card_folders(&folder).len() > done.len(), "no card was in progress at the abort");
    // The reports are rebuilt from the whole journal.
    let out = report(&folder);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_reports_cover(&folder, &done);
    let out = batch(d.path(), "A", 9).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "card 3 fails: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(journaled(&journal), (1..=9).collect());
}

#[test]
fn report_refuses_a_folder_that_is_not_a_batch() {
    let d = tempfile::tempdir().unwrap();
    let out = report(d.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no batch.json: not a batch folder"), "{stderr}");
}

#[test]
fn report_refuses_a_folder_a_batch_is_running_in() {
    let d = setup(300);
    let folder = d.path().join("logs/W");
    let journal = folder.join("journal.jsonl");
    let mut child = batch(d.path(), "W", 400).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until("a card was journaled", &mut child, || journal_lines(&journal) >= 1);
    let out = report(&folder);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is in use by another cardbench"), "{stderr}");
    signal(child.id(), "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert_rebuilt_identically(&folder);
}
