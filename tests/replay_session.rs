//! Session replay (`replay::session`, docs/replay.md "Session replay"): a traced public-key
//! key update and value transfer, captured through pcscd + vpcd (and in process), re-run on
//! virtual cards and a terminal that draw other randoms. It matches outside the masks; a
//! card with a seeded defect diverges at the row the defect changes; a byte-for-byte replay
//! of the same trace on the same cards diverges, which is why the session mode exists.

#[path = "common/pcscd.rs"]
mod pcscd;

use cardbench::card::Protocol;
use cardbench::event::{Exchange, Recorder, RowKind};
use cardbench::lab::{card_plan, personalize_virtual_seeded, Lab};
use cardbench::replay::session::{self, SessionOptions, SessionOutcome};
use pcscd::{available, bin, wait_readers_with_cards, Bridge, Pcscd, ROOT};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A public-key key update (card C, update key 1, transfer key 3, gets D's key 4 through
/// ECIES and D's signature) then a value transfer D → C on the new key.
const PLAN: &str = r#"
[plan]
id = "replay-session"
version = "1.0.0"
title = "A public-key key update and a value transfer"
roles = ["C", "D"]

[[case]]
id = "xfer.update-public"
ref = "002 S3001-S3105A"
[[case.step]]
do = "engine"
engine = "key_update"
heads = ["C", "D"]
mode = "public"

[[case]]
id = "xfer.transfer-d-to-c"
ref = "002 S2001-S2105B"
[[case.step]]
do = "engine"
engine = "value_transfer"
from = "D"
to = "C"
amount = 300
"#;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cardbench-replay-session-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `cardbench run` of the plan on `profile`; the trace it wrote.
fn capture(dir: &Path, profile: &str) -> PathBuf {
    std::fs::write(dir.join("plan.toml"), PLAN).unwrap();
    let out = bin()
        .args(["run"])
        .arg(dir.join("plan.toml"))
        .args(["--profile", profile, "--run-id", "capture", "--logs"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    dir.join("capture/trace.csv")
}

/// The virtual lab with cards C and D personalized as the profile says but with random
/// generators seeded otherwise (`defect`: seeded defects of card D).
fn other_randoms_lab(defects: &[&str]) -> Lab {
    other_cards_lab(defects, false)
}

/// `other_randoms_lab`, with C and D on the other transmission protocol when `swap`.
fn other_cards_lab(defects: &[&str], swap: bool) -> Lab {
    let loaded = cardbench::profile::load(&Path::new(ROOT).join("profiles/virtual-lab.toml")).unwrap();
    let mut lab = Lab::from_profile(&loaded).unwrap();
    for (head, card, seed) in [("C", "card-c", 0xC7), ("D", "card-d", 0xD7)] {
        let spec = loaded.profile.cards.iter().find(|c| c.get_ref().name == card).unwrap();
        let plan = card_plan(&loaded, spec).unwrap();
        let protocol = match (spec.get_ref().protocol, swap) {
            (p, false) => p,
            (Protocol::T0, true) => Protocol::T1,
            (Protocol::T1, true) => Protocol::T0,
        };
        let mut c = personalize_virtual_seeded(&plan, protocol, &lab.keyset, Some([seed; 32])).unwrap();
        if head == "D" {
            c.set_defects(cardbench::card::defects::Defects::parse(defects).unwrap());
        }
        let i = lab.head_index(head).unwrap();
        lab.heads[i].head.as_virtual().unwrap().insert(c);
    }
    lab
}

fn rows(trace: &Path) -> Vec<(u64, Exchange)> {
    session::numbered(cardbench::trace::read_trace(trace).unwrap().rows)
}

fn identity_map(lab: &Lab) -> HashMap<String, usize> {
    ["C", "D"].iter().map(|h| (h.to_string(), lab.head_index(h).unwrap())).collect()
}

fn replay_session(trace: &Path, lab: &mut Lab, keep_going: bool) -> SessionOutcome {
    let opts = SessionOptions { keep_going, terminal_seed: Some([0x5E; 32]), ..Default::default() };
    let map = identity_map(lab);
    session::run(trace, &rows(trace), lab, &map, &opts, &Recorder::disabled()).unwrap()
}

fn report(o: &SessionOutcome, trace: &Path) -> String {
    o.divergences.iter().map(|d| d.render(trace)).collect::<Vec<_>>().join("\n")
}

/// The line of the first captured command row named `name` (by `cmds::name`).
fn line_of(rows: &[(u64, Exchange)], name: &str) -> u64 {
    rows.iter()
        .find(|(_, r)| r.kind == RowKind::Command && cardbench::cmds::name(r.command[0], r.command[1]) == name)
        .map(|(l, _)| *l)
        .unwrap_or_else(|| panic!("no {name} row"))
}

/// Bytes mode (`replay::bytes`) of the trace on `lab`: its first divergence (line, what).
fn bytes_replay_first_divergence(trace: &Path, lab: &mut Lab) -> Option<(u64, String)> {
    let survey = cardbench::replay::stream::Survey::of(trace).unwrap();
    let opts = cardbench::replay::bytes::BytesOptions {
        map: identity_map(lab),
        card: None,
        keep_going: false,
        timing_threshold: 20.0,
        defects: HashMap::new(),
        quiet: true,
        watched: false,
        stop: None,
    };
    let o = cardbench::replay::bytes::replay(trace, &survey, lab, &Recorder::disabled(), &opts).unwrap();
    o.divergence_rows.first().map(|d| (d.line, format!("{}: {}", d.command_name, d.what)))
}

/// The three claims on one captured trace.
fn check_trace(trace: &Path) {
    let captured = rows(trace);
    assert!(captured.iter().any(|(_, r)| r.kind == RowKind::Step), "the trace has step rows");

    // Other card randoms, another terminal seed: the session matches outside the masks.
    let o = replay_session(trace, &mut other_randoms_lab(&[]), false);
    assert!(o.matched_all(), "{}", report(&o, trace));
    assert_eq!(o.exit_code(), 0);
    assert_eq!(o.units, 2, "both steps re-run");
    let wire = captured.iter().filter(|(_, r)| r.kind.is_wire() && r.test_step != "identify").count() as u64;
    assert!(o.rows_compared >= wire, "{} rows compared, {wire} wire rows", o.rows_compared);
    assert_eq!(o.rows_compared, o.rows_matched);

    // The same cards on the other protocol: T=0 answers come with 61xx and GET RESPONSE
    // where T=1 answers at once, so commands are compared with their whole answers; the
    // ATRs differ and are reported, not judged.
    let o = replay_session(trace, &mut other_cards_lab(&[], true), false);
    assert!(o.matched_all(), "{}", report(&o, trace));
    assert!(o.notes.iter().any(|n| n.what.contains("ATR")), "{:?}", o.notes);

    // The sender MACs its challenges without the date: it refuses the receiver's transmission
    // challenge, so VALUE SEND answers 6982 where the capture has 9000 and the reception
    // challenge.
    let o = replay_session(trace, &mut other_randoms_lab(&["challenge-omits-date"]), false);
    assert_eq!(o.exit_code(), 1, "{}", report(&o, trace));
    assert_eq!(o.divergences.len(), 1, "stopped at the first divergence");
    let d = &o.divergences[0];
    eprintln!("{}", d.render(trace));
    assert_eq!(o.stopped_at_line, Some(d.line));
    assert_eq!(d.line, line_of(&captured, "VALUE SEND"), "{}", d.render(trace));
    assert_eq!((d.trace_head.as_str(), d.command_name.as_str()), ("D", "VALUE SEND"));
    assert!(d.what.starts_with("SW 9000 expected, 6982 received"), "{}", d.what);
    assert!(d.step_verdict.contains("rejected:card-refused-6982"), "{}", d.step_verdict);
    assert!(d.render(trace).contains(&format!("{}:{}", trace.display(), d.line)));
    // With --keep-going the replay goes on after it: the key update before matched, nothing
    // comes after the transfer, so the same single divergence and no stop.
    let k = replay_session(trace, &mut other_randoms_lab(&["challenge-omits-date"]), true);
    assert_eq!((k.divergences.len(), k.stopped_at_line, k.units), (1, None, 2), "{}", report(&k, trace));

    // Bytes mode on the cards with other randoms: the key update's
    // UPDATE TRANSFER KEY carries D's ciphertext and signature over the capture's random,
    // which this card C did not draw.
    let (line, what) = bytes_replay_first_divergence(trace, &mut other_randoms_lab(&[])).expect("bytes diverge");
    assert_eq!(line, line_of(&captured, "UPDATE TRANSFER KEY"), "{what}");
    assert!(what.starts_with("UPDATE TRANSFER KEY: SW 9000 expected, 6982 received"), "{what}");
}

#[test]
fn session_replay_of_an_in_process_capture() {
    let dir = tmp("virtual");
    let trace = capture(&dir, "profiles/virtual-lab.toml");
    check_trace(&trace);

    // A card filter keeps the steps that involve the card; a card no step involves, or a
    // trace without step rows, leaves nothing to re-run: an error naming the trace (exit 2).
    let all = rows(&trace);
    let map = identity_map(&other_randoms_lab(&[]));
    let run = |rows: &[(u64, Exchange)], card: Option<&str>| {
        let opts = SessionOptions { card: card.map(str::to_string), ..Default::default() };
        session::run(&trace, rows, &mut other_randoms_lab(&[]), &map, &opts, &Recorder::disabled())
    };
    let o = run(&all, Some("CB00000000000C03")).unwrap();
    assert!(o.matched_all() && o.units == 2, "{}", report(&o, &trace));
    let e = run(&all, Some("CB00000000000A01")).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: no plan step of the trace involves card CB00000000000A01: nothing to replay in session mode",
            trace.display()
        )
    );
    let no_steps: Vec<(u64, Exchange)> = all.iter().filter(|(_, r)| r.kind != RowKind::Step).cloned().collect();
    let e = run(&no_steps, None).unwrap_err().to_string();
    assert!(e.contains("the trace has no step rows to re-run"), "{e}");

    // The replay's own trace (every exchange it made, with the step rows) is a trace like any
    // other: it replays in session mode on cards with yet other randoms.
    let again = dir.join("replay.csv");
    let (rec, rx) = Recorder::new("replay-session");
    let sinks = cardbench::sinks::spawn(
        rx,
        vec![Box::new(cardbench::trace::TraceCsv::create(&again, "replay", "replay-session").unwrap())],
    );
    let mut lab = other_randoms_lab(&[]);
    let map = identity_map(&lab);
    let opts = SessionOptions::default();
    let o = session::run(&trace, &rows(&trace), &mut lab, &map, &opts, &rec).unwrap();
    assert!(o.matched_all(), "{}", report(&o, &trace));
    drop(rec);
    assert!(sinks.join().unwrap().is_empty());
    let mut lab =
        Lab::from_profile(&cardbench::profile::load(&Path::new(ROOT).join("profiles/virtual-lab.toml")).unwrap())
            .unwrap();
    let o = replay_session(&again, &mut lab, false);
    assert!(o.matched_all(), "{}", report(&o, &again));
    assert_eq!(o.units, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn session_replay_of_a_capture_through_pcscd_and_vpcd() {
    if !available() {
        return;
    }
    let dir = tmp("pcsc");
    let trace = {
        let _pcscd = Pcscd::start(4, &dir.join("pcscd"));
        let _bridges = [Bridge::start("card-c", 2, 0), Bridge::start("card-d", 3, 0)];
        wait_readers_with_cards(2);
        capture(&dir, "profiles/vpcd-lab.toml")
    };
    let captured = rows(&trace);
    assert!(captured.iter().all(|(_, r)| r.head != "C" || r.kind != RowKind::Insert), "cards were in the readers");
    check_trace(&trace);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Steps of every kind that talk to a card, re-run from their `step` rows: a card made by
/// `insert_card` (rebuilt from its `insert` row's card plan), a raw APDU, a read, power
/// steps and a transfer to the made card.
const KINDS_PLAN: &str = r#"
[plan]
id = "replay-session-kinds"
version = "1.0.0"
title = "Every step kind that talks to a card"
roles = ["C", "E"]

[[case]]
id = "made-peer"
[[case.step]]
do = "insert_card"
head = "E"
card = { id = "CB00000000000E07", protocol = "T=0", update_key = 1, transfer_key = 3, balance = 500 }
[[case.step]]
do = "apdu"
head = "E"
command = "00 A4 04 00 07 A0000007770003"
[[case.step]]
do = "read"
head = "E"
state = "xfer"
as = "e"
[[case.step]]
do = "assert"
that = "e.balance == 500"
[[case.step]]
do = "engine"
engine = "value_transfer"
from = "C"
to = "E"
amount = 50
repeat = 2
[[case.step]]
do = "warm_reset"
head = "E"
[[case.step]]
do = "power_off"
head = "C"
[[case.step]]
do = "read"
head = "C"
state = "xfer"
as = "c"
"#;

/// Run `plan` on the virtual lab in `dir`: the captured trace.
fn capture_on_the_virtual_lab(dir: &Path, plan: &str) -> PathBuf {
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let out = bin()
        .args(["run"])
        .arg(dir.join("plan.toml"))
        .args(["--profile", "profiles/virtual-lab.toml", "--run-id", "capture", "--logs"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    dir.join("capture/trace.csv")
}

#[test]
fn every_step_kind_that_talks_to_a_card_is_re_run() {
    let dir = tmp("kinds");
    let trace = capture_on_the_virtual_lab(&dir, KINDS_PLAN);
    let captured = rows(&trace);
    assert!(captured.iter().any(|(_, r)| r.kind == RowKind::Insert && r.note.contains("card_plan")));
    let mut lab = other_randoms_lab(&[]);
    let map = ["C", "E"].iter().map(|h| (h.to_string(), lab.head_index(h).unwrap())).collect();
    let opts = SessionOptions { keep_going: true, ..Default::default() };
    let o = session::run(&trace, &captured, &mut lab, &map, &opts, &Recorder::disabled()).unwrap();
    assert!(o.matched_all(), "{}", report(&o, &trace));
    // insert_card, apdu, read, 2 × value_transfer, warm_reset, power_off, read (assert: none).
    assert_eq!(o.units, 8, "{o:?}");
    assert_eq!(o.rows_compared, o.rows_matched);
    assert!(o.rows_compared > 40, "{} rows compared", o.rows_compared);
    assert!(o.not_rerun.is_empty(), "{:?}", o.not_rerun);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A torn transfer and its recovery: the cut is armed again at the same commit of the
/// re-run engine step, the in-doubt row matches, and recovery settles the cards the same way.
const TEAR_PLAN: &str = r#"
[plan]
id = "replay-session-tear"
version = "1.0.0"
title = "A torn transfer and its recovery"
roles = ["C", "D"]

[[case]]
id = "update"
[[case.step]]
do = "engine"
engine = "key_update"
heads = ["C", "D"]
mode = "public"

[[case]]
id = "torn-transfer"
[[case.step]]
do = "tear"
head = "C"
commit = 1
[[case.step]]
do = "engine"
engine = "value_transfer"
from = "D"
to = "C"
amount = 100
expect = "in-doubt"
[[case.step]]
do = "recover"
heads = ["D", "C"]
expect = "settled"
[[case.step]]
do = "read"
head = "C"
state = "xfer"
as = "c"
"#;

#[test]
fn a_torn_transfer_and_its_recovery_replay() {
    let dir = tmp("tear");
    let trace = capture_on_the_virtual_lab(&dir, TEAR_PLAN);
    let captured = rows(&trace);
    assert!(captured.iter().any(|(_, r)| r.kind == RowKind::InDoubt), "the capture has the torn command");
    let o = replay_session(&trace, &mut other_randoms_lab(&[]), false);
    assert!(o.matched_all(), "{}", report(&o, &trace));
    // key_update, tear, value_transfer, recover, read.
    assert_eq!(o.units, 5, "{o:?}");
    assert_eq!(o.rows_compared, o.rows_matched);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A batch trace of the certification suite (the DUT and its peers made through the link,
/// every case of the suite: transfers, key updates in every mode, tears, recoveries)
/// replays in session mode on the virtual lab with a terminal that draws other randoms.
#[test]
fn a_batch_trace_of_the_certification_suite_replays() {
    let dir = tmp("batch");
    let out = bin()
        .args(["batch", "--profile", "profiles/virtual-lab.toml", "--plan", "test-plans/certification.toml"])
        .args(["--batch-id", "B1", "--count", "1", "--logs"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let trace = dir.join("B1/cards/00001-CB00B00000000001/trace.csv");
    let captured = rows(&trace);
    let loaded = cardbench::profile::load(&Path::new(ROOT).join("profiles/virtual-lab.toml")).unwrap();
    let mut lab = Lab::from_profile(&loaded).unwrap();
    let mut heads: Vec<String> = captured.iter().map(|(_, r)| r.head.clone()).filter(|h| !h.is_empty()).collect();
    heads.sort();
    heads.dedup();
    // The DUT head is whichever worker took the card (D, E or F); its peer head is
    // `<head>.peer`, whose cards the lab's head C takes.
    assert_eq!(heads.len(), 2, "{heads:?}");
    let dut = heads[0].clone();
    assert_eq!(heads[1], format!("{dut}.peer"));
    let map = [(dut.clone(), lab.head_index(&dut).unwrap()), (heads[1].clone(), lab.head_index("C").unwrap())].into();
    let opts = SessionOptions { keep_going: true, terminal_seed: Some([0x77; 32]), ..Default::default() };
    let o = session::run(&trace, &captured, &mut lab, &map, &opts, &Recorder::disabled()).unwrap();
    assert!(o.matched_all(), "{}", report(&o, &trace));
    eprintln!("{} units, {} rows compared, {} not re-run", o.units, o.rows_compared, o.not_rerun.len());
    assert!(o.units > 100, "{o:?}");
    assert_eq!(o.rows_compared, o.rows_matched);

    // The DUT made again with a seeded defect: its WRITE VALUE leaves the counter as it was,
    // and the first charge's answer (the counter, in the GET RESPONSE after 6104) diverges.
    let mut lab = Lab::from_profile(&loaded).unwrap();
    let defects = cardbench::card::defects::Defects::parse(&["counter-not-decremented"]).unwrap();
    let opts = SessionOptions {
        defects: [("CB00B00000000001".to_string(), defects)].into(),
        terminal_seed: Some([0x77; 32]),
        ..Default::default()
    };
    let o = session::run(&trace, &captured, &mut lab, &map, &opts, &Recorder::disabled()).unwrap();
    assert_eq!(o.divergences.len(), 1, "{}", report(&o, &trace));
    let d = &o.divergences[0];
    eprintln!("{}", d.render(&trace));
    let row = &captured.iter().find(|(l, _)| *l == d.line).unwrap().1;
    assert_eq!((row.kind, row.protocol_step.as_str()), (RowKind::GetResponse, "S1/S2"), "{}", d.render(&trace));
    assert_eq!(d.what, "response bytes 3 differ", "{}", d.render(&trace));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `cardbench replay --mode session`: exit 0 when the session matched, 1 on a divergence
/// (printed with the trace's file and line), 2 when there is nothing it can re-run.
#[test]
fn the_cli_replays_a_session() {
    let dir = tmp("cli");
    let trace = capture(&dir, "profiles/virtual-lab.toml");
    let replay = |profile: &Path, trace: &Path, run_id: &str| {
        bin()
            .arg("replay")
            .arg(trace)
            .arg("--profile")
            .arg(profile)
            .args(["--mode", "session", "--run-id", run_id, "--logs"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    let lab = Path::new(ROOT).join("profiles/virtual-lab.toml");
    let out = replay(&lab, &trace, "r1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("(session): 2 steps re-run") && stdout.contains(" 0 diverged"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r1/replay.json")).unwrap()).unwrap();
    assert_eq!((json["mode"].as_str(), json["result"].as_str()), (Some("session"), Some("match")));
    let again = rows(&dir.join("r1/trace.csv"));
    assert_eq!(again.iter().filter(|(_, r)| r.kind == RowKind::Step).count(), 2, "the replay's trace has the steps");

    // Card D of the profile with a seeded defect: the replay stops at its VALUE SEND.
    let text = std::fs::read_to_string(&lab).unwrap();
    let defective = text.replacen(
        "update_key = 2\ntransfer_key = 4\n",
        "update_key = 2\ntransfer_key = 4\ndefects = [\"challenge-omits-date\"]\n",
        1,
    );
    assert_ne!(text, defective);
    let profile = dir.join("defective-lab.toml");
    std::fs::write(&profile, defective).unwrap();
    let out = replay(&profile, &trace, "r2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = line_of(&rows(&trace), "VALUE SEND");
    assert!(stdout.contains(&format!("DIVERGED  {}:{line} ", trace.display())), "{stdout}");
    assert!(stdout.contains("SW 9000 expected, 6982 received"), "{stdout}");

    // A trace without step rows (written before them, or by another tool): exit 2, one line.
    let old = dir.join("no-steps.csv");
    let text = std::fs::read_to_string(&trace).unwrap();
    // The header names a `step` column too: only data rows of kind `step` go.
    let kept: Vec<&str> =
        text.lines().enumerate().filter(|(i, l)| *i == 0 || !l.contains(",step,")).map(|(_, l)| l).collect();
    std::fs::write(&old, kept.join("\n") + "\n").unwrap();
    let out = replay(&lab, &old, "r3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-steps.csv: the trace has no step rows to re-run"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
