//! `cardbench batch` as a lab runs it: parallel DUT heads, verdicts naming the defective cards,
//! reports, and a killed batch resumed with every card certified exactly once.

#[path = "common/batch_lab.rs"]
mod batch_lab;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn profile(service_us: u32) -> String {
    let head =
        "\nname = \"batch-test\"\n[keyset]\nseed = \"batch test\"\n[defaults]\nclock = \"2026-06-01T12:00:00Z\"\n";
    format!(
        "{head}{}{}",
        batch_lab::dut_heads(&["D1", "D2", "D3"], Some(service_us)),
        batch_lab::cards_and_batch(None, 7, 3)
    )
}

fn setup(dir: &Path, service_us: u32) {
    std::fs::write(dir.join("lab.toml"), profile(service_us)).unwrap();
    std::fs::write(dir.join("plan.toml"), batch_lab::MINI_PLAN).unwrap();
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch R has 3 cards (batch.json), not 4; drop --count"));
}

/// Every file under `dir` with its bytes, for "nothing was written" checks. `batch.lock`
/// is left out: it holds the pid of the last run that held the batch, whatever it did.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name() == Some(std::ffi::OsStr::new("batch.lock")) {
                continue;
            }
            if p.is_dir() {
                out.insert(p.clone(), Vec::new());
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// SIGSTOP, then wait until every thread of the process is stopped (the signal is delivered
/// asynchronously), so its files hold still.
fn freeze(pid: u32) {
    signal(pid, "-STOP");
    let stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().all(|t| {
            let stat = std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap_or_default();
            // The state follows the ")" that ends the command name.
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        })
    };
    let t0 = Instant::now();
    while !stopped() {
        assert!(t0.elapsed() < Duration::from_secs(30), "process {pid} did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_second_batch_on_the_same_folder_is_refused_at_once_and_touches_nothing() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), 500);
    let folder = d.path().join("logs/L");
    let journal = folder.join("journal.jsonl");
    let mut first = batch(d.path(), "L", 40).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Wait for the first batch to be under way (a card journaled), then freeze it so the
    // folder holds still while the second one tries.
    let t0 = Instant::now();
    while std::fs::read_to_string(&journal).map(|s| s.lines().count()).unwrap_or(0) < 1 {
        assert!(t0.elapsed() < Duration::from_secs(120), "first batch made no progress");
        assert!(first.try_wait().unwrap().is_none(), "first batch ended before the test could start a second");
        std::thread::sleep(Duration::from_millis(5));
    }
    freeze(first.id());
    let before = snapshot(&folder);
    let second = batch(d.path(), "L", 40).output().unwrap();
    let after = snapshot(&folder);
    signal(first.id(), "-CONT");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("logs/L is in use by another cardbench"), "{stderr}");
    assert!(stderr.contains(&format!("(pid {})", first.id())), "names the holder: {stderr}");
    let changed: Vec<_> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(before.len() == after.len() && changed.is_empty(), "the refused batch changed the folder: {changed:?}");
    assert!(second.stdout.is_empty());
    // The first batch carries on undisturbed: every card once.
    let st = first.wait().unwrap();
    assert_eq!(st.code(), Some(1), "cards 3, 10, … fail by their seeded defect");
    let mut seen = std::collections::BTreeSet::new();
    for l in std::fs::read_to_string(&journal).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(seen.insert(v["index"].as_u64().unwrap()), "card journaled twice: {l}");
    }
    assert_eq!(seen, (1..=40).collect());
    // The lock goes with the process: the same batch resumes (nothing left to do).
    let again = batch(d.path(), "L", 40).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("(0 certified now)"));
}

/// A finished batch of 6 cards whose journal the test then damages.
fn journaled_batch(id: &str) -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), 0);
    let out = batch(d.path(), id, 6).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "card 3 fails: {}", String::from_utf8_lossy(&out.stderr));
    let journal = d.path().join("logs").join(id).join("journal.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&journal).unwrap().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 6);
    (d, journal, lines)
}

fn index_of(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["index"].as_u64().unwrap()
}

fn indices(journal: &Path) -> Vec<u64> {
    std::fs::read_to_string(journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["index"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_corrupt_journal_line_before_the_last_is_refused_with_its_line_number() {
    let (d, journal, mut lines) = journaled_batch("C");
    lines[2] = lines[2].replacen("\"verdict\":", "\"verdict\"", 1);
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let folder = d.path().join("logs/C");
    let before = snapshot(&folder);
    let out = batch(d.path(), "C", 6).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("journal.jsonl:3: not a card result"), "{stderr}");
    assert!(snapshot(&folder) == before, "nothing written");
}

#[test]
fn a_cut_last_journal_line_is_dropped_once_and_that_card_certified_again() {
    let (d, journal, lines) = journaled_batch("T");
    // A kill in the middle of the last append: the line's start, no newline.
    let cut = format!("{}\n{}", lines[..5].join("\n"), &lines[5][..lines[5].len() / 2]);
    std::fs::write(&journal, cut).unwrap();
    let out = batch(d.path(), "T", 6).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("6 cards (1 certified now)"), "{stdout}");
    assert!(
        stderr.contains("journal.jsonl:6: dropped a cut last line")
            && stderr.contains(&format!("card #{}, which is certified again", index_of(&lines[5]))),
        "reported: {stderr}"
    );
    let mut got = indices(&journal);
    got.sort();
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.starts_with(&(lines[..5].join("\n") + "\n")), "earlier lines kept as they were");
    // Reported once: the next resume finds a whole journal.
    let again = batch(d.path(), "T", 6).output().unwrap();
    assert!(!String::from_utf8_lossy(&again.stderr).contains("cut"), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stdout).contains("6 cards (0 certified now)"));
}

#[test]
fn a_repeated_journal_line_counts_once_and_a_conflicting_one_is_refused() {
    let (d, journal, lines) = journaled_batch("D");
    let mut text = lines.join("\n") + "\n";
    text += &format!("{}\n", lines[1]);
    std::fs::write(&journal, &text).unwrap();
    let out = batch(d.path(), "D", 6).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("6 cards (0 certified now), 5 pass, 1 fail"), "counted once: {stdout}");
    let repeated = format!("journal.jsonl:7 repeats line 2 (card #{}); counted once", index_of(&lines[1]));
    assert!(stderr.contains(&repeated), "{stderr}");
    assert_eq!(summary(d.path(), "D").len(), 6);
    // The same card with another result: two runs certified it; which one counts is not
    // the bench's to guess.
    let other = lines[3].replacen("\"duration_ms\":", "\"duration_ms\":1", 1);
    assert_ne!(other, lines[3]);
    text += &format!("{other}\n");
    std::fs::write(&journal, &text).unwrap();
    let before = snapshot(&d.path().join("logs/D"));
    let out = batch(d.path(), "D", 6).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let conflict = format!("journal.jsonl:4 and line 8: two different results for card #{}", index_of(&lines[3]));
    assert!(stderr.contains(&conflict), "{stderr}");
    assert!(snapshot(&d.path().join("logs/D")) == before, "nothing written");
}

#[test]
fn a_batch_whose_reader_never_gets_the_next_card_is_incomplete_and_exits_1() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    setup(dir, 0);
    // One real DUT head: the PN532 simulator (its own process, on a pseudo-terminal) with a
    // card in its field that nobody takes out, so the next card never comes.
    let link = dir.join("pn532");
    let mut lab = String::from("name = \"pn532-batch\"\n[keyset]\nseed = \"batch test\"\n[defaults]\n");
    lab += "clock = \"2026-06-01T12:00:00Z\"\n";
    lab += &format!("[[head]]\nname = \"N1\"\ndriver = \"pn532\"\nrole = \"dut\"\nport = \"{}\"\n", link.display());
    lab += &batch_lab::cards_and_batch(None, 7, 3);
    lab = lab.replace("[batch]\n", "[batch]\npresence_timeout_s = 1\n");
    std::fs::write(dir.join("pn532-lab.toml"), lab).unwrap();
    let mut sim = Command::new(env!("CARGO_BIN_EXE_cardbench"))
        .current_dir(dir)
        .args(["sim", "pn532", "--profile", "pn532-lab.toml", "--card", "dut", "--link"])
        .arg(&link)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The simulator prints its device once it serves.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(sim.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("/dev/"), "simulator device: {line:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_cardbench"))
        .current_dir(dir)
        .args(["batch", "--profile", "pn532-lab.toml", "--plan", "plan.toml", "--batch-id", "P"])
        .args(["--logs", "logs", "-q", "--count", "3"])
        .output()
        .unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "incomplete is not a pass:\n{stdout}{stderr}");
    assert!(stdout.contains("1 cards (1 certified now), 1 pass"), "{stdout}");
    assert!(
        stderr.contains("batch P is incomplete: 2 of 3 cards have no verdict: #2, #3")
            && stderr.contains("head N1: card not taken out within 1 s"),
        "{stderr}"
    );
    assert_eq!(summary(dir, "P").len(), 1, "the reports cover the certified card");
}

/// Every card's trace holds the making of the cards it used (so a replay can make them
/// again): for the DUT and the peer an `insert` row with the card plan, then the
/// personalization with every key-bearing command redacted; no key of the lab appears.
#[test]
fn a_card_trace_records_how_its_cards_were_made_without_secrets() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), 0);
    let out = batch(d.path(), "M", 2).output().unwrap();
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1), "{out:?}");
    let keys = cardbench::keys::Keyset::from_seed("batch test", vec![]);
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    secrets.extend(keys.update_keys.values().map(|k| k.expose().to_vec()));
    secrets.extend(keys.transfer_keys.values().map(|k| k.expose().to_vec()));
    for k in [&keys.center, &keys.ca, &keys.charge.key, &keys.payment.key] {
        secrets.push(k.to_bytes().to_vec());
    }
    let mut traces = 0;
    for card in summary(d.path(), "M") {
        let path = d.path().join("logs/M").join(&card[13]);
        let path = if path.extension().is_some_and(|e| e == "csv") { path } else { path.join("trace.csv") };
        let rows = cardbench::trace::read(&path).unwrap();
        let dut_id = card[2].to_string();
        let inserts: Vec<_> = rows.iter().filter(|r| r.kind == cardbench::event::RowKind::Insert).collect();
        assert_eq!(inserts.len(), 2, "DUT and peer made: {inserts:?}");
        for ins in &inserts {
            let made: cardbench::lab::InsertedCard = serde_json::from_str(&ins.note).unwrap();
            let id: [u8; 8] = made.card_plan.card_id;
            secrets.push(keys.card_key(&id, "cpay").to_bytes().to_vec());
            secrets.push(keys.card_key(&id, "xfer").to_bytes().to_vec());
            // Its personalization follows: power-on, PERSO PUT..., PERSO LOCK, power-off.
            let at = rows.iter().position(|r| r.seq == ins.seq).unwrap();
            assert_eq!(rows[at + 1].kind, cardbench::event::RowKind::PowerOn);
            let perso: Vec<_> =
                rows[at + 2..].iter().take_while(|r| r.protocol_step == "perso" || r.kind.is_wire()).collect();
            assert!(perso.iter().any(|r| r.note.contains("data redacted")), "keys redacted");
            assert!(perso.iter().all(|r| r.protocol_step == "perso" && r.sw == 0x9000));
        }
        assert!(inserts.iter().any(|r| r.card_id == dut_id));
        let text = std::fs::read_to_string(&path).unwrap().to_uppercase();
        for s in &secrets {
            for w in s.windows(8) {
                assert!(!text.contains(&hex::encode_upper(w)), "secret bytes in {}", path.display());
            }
        }
        traces += 1;
    }
    assert_eq!(traces, 2);
}

/// A card that stops answering (seeded defect `mute-after-select`, docs/defects.md "A mute
/// card") ends its own run: the command that got no answer is an in-doubt row, the case an
/// error, the card `aborted` with the reason; every other card, on both heads and after it on
/// its own head, is certified, and the reports name every card.
#[test]
fn a_mute_card_is_aborted_and_the_batch_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let head =
        "\nname = \"mute-test\"\n[keyset]\nseed = \"batch test\"\n[defaults]\nclock = \"2026-06-01T12:00:00Z\"\n";
    let lab = format!(
        "{head}{}{}\n[[batch.defect]]\nevery = 5\noffset = 2\ndefects = [\"mute-after-select\"]\n",
        batch_lab::dut_heads(&["D1", "D2"], None),
        batch_lab::cards_and_batch(None, 7, 3)
    );
    std::fs::write(d.path().join("lab.toml"), lab).unwrap();
    std::fs::write(d.path().join("plan.toml"), batch_lab::MINI_PLAN).unwrap();
    let out = batch(d.path(), "M", 10).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "aborted cards: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("10 cards (10 certified now), 6 pass, 2 fail, 2 aborted"), "{stdout}");
    let rows = summary(d.path(), "M");
    assert_eq!(rows.len(), 10, "every card has a verdict: {rows:?}");
    for r in &rows {
        let index: u64 = r[1].parse().unwrap();
        let want = match index {
            2 | 7 => "aborted",
            3 | 10 => "fail",
            _ => "pass",
        };
        assert_eq!(&r[4], want, "card {index}: {r:?}");
        if want == "aborted" {
            assert!(
                r[6].contains("PURSE-CTR-01") && r[6].contains("card is mute"),
                "reason names case and silence: {r:?}"
            );
            // The silent command is on record as in doubt: the one after the SELECT. After it
            // only the runner's single recovery attempt (docs/architecture.md, "In doubt,
            // never retried") reached the card, and got no answer either.
            let mut t = csv::Reader::from_path(d.path().join("logs/M").join(&r[13])).unwrap();
            let trace: Vec<csv::StringRecord> = t.records().map(|x| x.unwrap()).collect();
            let wire: Vec<_> = trace
                .iter()
                .filter(|x| x[4] == r[3] && ["command", "get-response", "resend-6c", "in-doubt"].contains(&&x[15]))
                .collect();
            let silent = wire.iter().position(|x| &x[15] == "in-doubt").expect("an in-doubt row");
            assert!(
                silent > 0 && &wire[silent - 1][9] == "00A4040007A0000007770001" && &wire[silent - 1][11] == "9000"
            );
            assert!(wire[silent][16].contains("mute"), "{:?}", wire[silent]);
            let after = &wire[silent + 1..];
            assert!(
                after.len() <= 1 && after.iter().all(|x| &x[15] == "in-doubt"),
                "one recovery attempt at most: {after:?}"
            );
        }
    }
    let junit = std::fs::read_to_string(d.path().join("logs/M/junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 10);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("logs/M/results.json")).unwrap()).unwrap();
    assert_eq!(json["cards"].as_array().unwrap().len(), 10);
}
