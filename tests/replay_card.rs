//! A card played from a trace (docs/replay.md): the smoke plan captured on the virtual lab
//! runs again against `replay` heads, behind `cardbench sim replay` on PN532 ptys and behind
//! vpcd with a real pcscd; a plan that strays gets 6F00 and a recorded mismatch.

use cardbench::event::{Event, Exchange, Recorder, RowKind};
use cardbench::lab::Lab;
use cardbench::replay::card::{recorded_terminal_seed, TraceCard, MISMATCH_SW};
use cardbench::report::CaseResult;
use cardbench::sim::card::SimCard;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

#[path = "common/pcscd.rs"]
mod pcscd;
use pcscd::{bin, ROOT};

/// The cards of profiles/virtual-lab.toml the smoke plan uses, by head.
const CARDS: [(&str, &str); 4] =
    [("A", "CB00000000000A01"), ("B", "CB00000000000B02"), ("C", "CB00000000000C03"), ("D", "CB00000000000D04")];

/// Run `plan` with `cardbench run`; (exit code, stdout + stderr, trace path).
fn run_cli(plan: &Path, profile: &Path, logs: &Path, id: &str) -> (Option<i32>, String, PathBuf) {
    let out = bin()
        .arg("run")
        .arg(plan)
        .arg("--profile")
        .arg(profile)
        .args(["-q", "--run-id", id, "--logs"])
        .arg(logs)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text, logs.join(id).join("trace.csv"))
}

/// The smoke plan's trace on the virtual lab.
fn capture(dir: &Path) -> PathBuf {
    let smoke = Path::new(ROOT).join("test-plans/smoke.toml");
    let (code, out, trace) = run_cli(&smoke, &Path::new(ROOT).join("profiles/virtual-lab.toml"), dir, "capture");
    assert_eq!(code, Some(0), "{out}");
    trace
}

/// A profile whose heads A-D play the smoke capture, each writing its mismatches to
/// `mm-<head>.jsonl` beside the profile.
fn replay_profile(dir: &Path, trace: &Path) -> PathBuf {
    let mut p = String::from(
        "name = \"replay-lab\"\n[keyset]\nseed = \"cardbench virtual lab\"\nrevoked = [0x0000EE05, 0x0003EE01]\n\
         [defaults]\nclock = \"2026-06-01T12:00:00Z\"\n",
    );
    for (head, card) in CARDS {
        p += &format!(
            "[[head]]\nname = \"{head}\"\ndriver = \"replay\"\ntrace = \"{}\"\ncard = \"{card}\"\nmismatches = \"mm-{head}.jsonl\"\n",
            trace.display()
        );
    }
    let path = dir.join("replay-lab.toml");
    std::fs::write(&path, p).unwrap();
    path
}

fn read(trace: &Path) -> Vec<Exchange> {
    cardbench::trace::read(trace).unwrap()
}

/// What two runs of one plan must share on the wire: head, card, step, command, answer, kind.
fn wire(rows: &[Exchange]) -> Vec<(String, String, String, String, String, u16, &'static str)> {
    rows.iter()
        .filter(|r| r.kind.is_wire())
        .map(|r| {
            (
                r.head.clone(),
                r.card_id.clone(),
                r.test_step.clone(),
                hex::encode_upper(&r.command),
                hex::encode_upper(&r.response),
                r.sw,
                r.kind.as_str(),
            )
        })
        .collect()
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn smoke_plan_passes_on_replay_heads_with_the_captured_exchanges() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = capture(tmp.path());
    let profile = replay_profile(tmp.path(), &trace);
    let smoke = Path::new(ROOT).join("test-plans/smoke.toml");
    let (code, out, replayed) = run_cli(&smoke, &profile, tmp.path(), "replayed");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("13 cases, 13 passed, 0 failed"), "{out}");
    let (a, b) = (wire(&read(&trace)), wire(&read(&replayed)));
    assert!(a.len() > 100, "{} exchanges", a.len());
    assert_eq!(a, b, "the replay run sends the captured commands and gets the captured answers");
    for (head, _) in CARDS {
        let mm = tmp.path().join(format!("mm-{head}.jsonl"));
        assert_eq!(std::fs::read_to_string(&mm).unwrap(), "", "no mismatch on head {head}");
    }
    // The terminal drew the captured run's randoms again (run.json of the trace).
    let rng = |t: &Path| std::fs::read_to_string(t.parent().unwrap().join("run.json")).unwrap();
    let line = |s: String| s.lines().find(|l| l.contains("terminal_rng")).unwrap().to_string();
    assert_eq!(line(rng(&trace)), line(rng(&replayed)));
    assert!(line(rng(&replayed)).contains("seeded:"));
}

#[test]
fn a_plan_that_strays_gets_6f00_and_a_recorded_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = capture(tmp.path());
    let profile = replay_profile(tmp.path(), &trace);
    // The same plan with another charge amount: the WRITE VALUE of the charge differs.
    let smoke = std::fs::read_to_string(Path::new(ROOT).join("test-plans/smoke.toml")).unwrap();
    let stray = tmp.path().join("stray.toml");
    std::fs::write(&stray, smoke.replacen("amount = 5000", "amount = 4000", 1)).unwrap();
    let (code, out, replayed) = run_cli(&stray, &profile, tmp.path(), "stray");
    assert_eq!(code, Some(1), "{out}");

    let captured = read(&trace);
    let expected = captured
        .iter()
        .find(|r| r.head == "A" && r.kind == RowKind::Command && r.command.starts_with(&[0x80, 0xD0]))
        .expect("the charge's WRITE VALUE in the capture");
    let rows = read(&replayed);
    let refused = rows.iter().find(|r| r.head == "A" && r.sw == MISMATCH_SW).expect("a 6F00 row on head A");
    assert_eq!(refused.kind, RowKind::Command);
    assert!(refused.response.is_empty());
    assert_eq!(&refused.command[..5], &expected.command[..5], "the same WRITE VALUE header");
    assert_eq!(&refused.command[5..9], &4000u32.to_be_bytes(), "with the new amount");
    // Everything before it on head A was the capture's.
    let before: Vec<_> = rows.iter().take_while(|r| r.seq < refused.seq).filter(|r| r.head == "A").cloned().collect();
    let cap_a: Vec<_> = captured.iter().filter(|r| r.head == "A").take(before.len()).cloned().collect();
    assert_eq!(wire(&before), wire(&cap_a));

    let mm = json_lines(&tmp.path().join("mm-A.jsonl"));
    assert!(mm.len() >= 2, "{mm:?}");
    let first = &mm[0];
    assert_eq!(first["expected_seq"], expected.seq, "{first}");
    assert_eq!(first["expected"], hex::encode_upper(&expected.command));
    assert_eq!(first["received"], hex::encode_upper(&refused.command));
    assert_eq!(first["answered"], "6F00");
    assert_eq!(first["after_desync"], false);
    assert_eq!(first["card"], "CB00000000000A01");
    assert_eq!(first["trace_head"], "A");
    // The card stays desynchronised: later commands are refused against the same row.
    assert_eq!(mm[1]["after_desync"], true);
    assert_eq!(mm[1]["expected_seq"], expected.seq);
    assert!(out.contains(&format!("row {} expected {}", expected.seq, hex::encode_upper(&expected.command))), "{out}");
}

#[test]
fn trace_card_plays_rows_in_order_and_records_what_strays() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = read(&capture(tmp.path()));
    let mine: Vec<&Exchange> = rows.iter().filter(|r| r.head == "D" && r.kind.is_wire()).collect();
    let power = rows.iter().find(|r| r.head == "D" && r.kind == RowKind::PowerOn).unwrap();

    // Whole capture, then one command too many.
    let mut card = TraceCard::from_rows(&rows, "cb00000000000d04", None).unwrap();
    assert_eq!(card.trace_head(), "D");
    assert_eq!(card.commands(), mine.len());
    assert_eq!(card.process(&mine[0].command), None, "an unpowered card does not answer");
    assert_eq!(card.power_on(), power.atr, "the ATR of the captured power-on");
    for r in &mine {
        let mut want = r.response.clone();
        want.extend(r.sw.to_be_bytes());
        assert_eq!(card.process(&r.command), Some(want), "row {}", r.seq);
    }
    assert_eq!(card.remaining(), 0);
    assert_eq!(card.process(&mine[0].command), Some(vec![0x6F, 0x00]));
    let m = &card.mismatches()[0];
    assert_eq!((m.expected_seq, m.expected.as_ref()), (None, None), "past the last captured row");

    // A wrong command mid-way: 6F00, recorded, and the card stays desynchronised.
    let mut card = TraceCard::from_rows(&rows, "CB00000000000D04", Some("D")).unwrap();
    card.power_on();
    card.process(&mine[0].command).unwrap();
    let wrong = [0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00];
    assert_eq!(card.process(&wrong), Some(vec![0x6F, 0x00]));
    assert_eq!(card.process(&mine[1].command), Some(vec![0x6F, 0x00]), "no resynchronisation");
    assert!(card.desynchronised());
    assert_eq!(card.refused(), 2);
    let m = card.mismatches();
    assert_eq!(m[0].expected_seq, Some(mine[1].seq));
    assert_eq!(m[0].expected.as_deref(), Some(mine[1].command.as_slice()));
    assert_eq!(m[0].received, wrong);
    assert!(!m[0].after_desync && m[1].after_desync);
    assert_eq!(m[1].received, mine[1].command);
    assert_eq!(
        m[0].to_string(),
        format!("row {} expected {}, received 00A40400023F00", mine[1].seq, hex::encode_upper(&mine[1].command))
    );

    // A captured in-doubt row is a mute card; power rows never desynchronise.
    let mut doubt = rows.clone();
    let i = doubt.iter().position(|r| r.seq == mine[2].seq).unwrap();
    doubt[i].kind = RowKind::InDoubt;
    let mut card = TraceCard::from_rows(&doubt, "CB00000000000D04", None).unwrap();
    card.power_on();
    card.process(&mine[0].command).unwrap();
    card.power_off();
    card.power_on();
    card.process(&mine[1].command).unwrap();
    assert_eq!(card.process(&mine[2].command), None);
    assert!(card.process(&mine[3].command).is_some_and(|a| a.ends_with(&mine[3].sw.to_be_bytes())));
    assert!(!card.desynchronised());
    // An in-doubt row the terminal never sends (its power was cut before the command) is
    // passed over when the card is powered again.
    let j = doubt.iter().position(|r| r.seq == mine[3].seq).unwrap();
    doubt[j].kind = RowKind::InDoubt;
    let mut card = TraceCard::from_rows(&doubt, "CB00000000000D04", None).unwrap();
    card.power_on();
    for r in &mine[..2] {
        card.process(&r.command).unwrap();
    }
    card.power_off();
    card.power_on();
    assert!(card.process(&mine[4].command).is_some_and(|a| a.ends_with(&mine[4].sw.to_be_bytes())));
    assert!(!card.desynchronised());

    // Traces written before the `atr` column: the reference card's ATR, T=0 when the stream
    // has procedure bytes (card A), T=1 otherwise (card B).
    let mut old = rows.clone();
    old.iter_mut().for_each(|r| r.atr.clear());
    let atr_of = |head: &str| rows.iter().find(|r| r.head == head && r.kind == RowKind::PowerOn).unwrap().atr.clone();
    for (head, card) in [CARDS[0], CARDS[1]] {
        assert_eq!(TraceCard::from_rows(&old, card, None).unwrap().power_on(), atr_of(head), "card {card}");
    }
    assert_ne!(atr_of("A"), atr_of("B"));

    // Procedure bytes replay as captured: 6Cxx, then the re-sent command is the next one.
    let a: Vec<&Exchange> = rows.iter().filter(|r| r.head == "A" && r.kind.is_wire()).collect();
    let k = a.iter().position(|r| r.kind == RowKind::Resend6C).unwrap();
    let mut card = TraceCard::from_rows(&rows, "CB00000000000A01", None).unwrap();
    card.power_on();
    for r in &a[..k - 1] {
        card.process(&r.command).unwrap();
    }
    assert_eq!(card.process(&a[k - 1].command).unwrap()[0], 0x6C);
    assert!(card.process(&a[k].command).unwrap().ends_with(&[0x90, 0x00]));
}

/// The acceptance case for a real card in CI: a DUT certified in a batch, played from its
/// per-card trace, passes the whole certification suite again (its tear cases included) with
/// a fresh virtual peer, without a single command off the capture.
#[test]
fn a_batch_cards_trace_replays_the_certification_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["batch", "--profile", "profiles/virtual-lab.toml", "--plan", "test-plans/certification.toml"])
        .args(["--batch-id", "B1", "--count", "1", "-q", "--logs"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let trace = tmp.path().join("B1/cards/00001-CB00B00000000001/trace.csv");
    let profile = tmp.path().join("cert-replay.toml");
    std::fs::write(
        &profile,
        format!(
            "name = \"cert-replay\"\n[keyset]\nseed = \"cardbench virtual lab\"\nrevoked = [0x0000EE05, 0x0003EE01]\n\
             [defaults]\nclock = \"2026-06-01T12:00:00Z\"\n\
             [[head]]\nname = \"E\"\ndriver = \"replay\"\nrole = \"dut\"\ntrace = \"{}\"\ncard = \"CB00B00000000001\"\n\
             mismatches = \"mm.jsonl\"\n\
             [[head]]\nname = \"E.peer\"\ndriver = \"virtual\"\nrole = \"peer\"\n",
            trace.display()
        ),
    )
    .unwrap();
    let plan = Path::new(ROOT).join("test-plans/certification.toml");
    let (code, out, _) = run_cli(&plan, &profile, tmp.path(), "cert");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("148 cases, 148 passed, 0 failed"), "{out}");
    assert_eq!(std::fs::read_to_string(tmp.path().join("mm.jsonl")).unwrap(), "");
}

#[test]
fn replay_heads_are_checked_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = capture(tmp.path());
    let check_driver = |driver: &str, head_lines: &str| -> String {
        let text = format!(
            "name = \"x\"\n[keyset]\nseed = \"s\"\n\n[[head]]\nname = \"A\"\ndriver = \"{driver}\"\n{head_lines}"
        );
        let path = tmp.path().join("lab.toml");
        let loaded = cardbench::profile::parse_str(&path, text).unwrap();
        match Lab::from_profile(&loaded) {
            Ok(_) => panic!("accepted: {head_lines}"),
            Err(e) => e.to_string().replace(&format!("{}:", path.display()), "lab.toml:"),
        }
    };
    let check = |head_lines: &str| check_driver("replay", head_lines);
    let t = trace.display();
    let e = check(&format!("trace = \"{t}\"\ncard = \"CB0000000000FFFF\"\n"));
    assert!(e.starts_with("lab.toml:9:8: card CB0000000000FFFF is not in the trace (cards: "), "{e}");
    assert!(e.contains("CB00000000000A01"), "{e}");
    let e = check("trace = \"nowhere/trace.csv\"\ncard = \"CB00000000000A01\"\n");
    assert!(e.starts_with("lab.toml:8:9: trace: ") && e.contains("nowhere/trace.csv"), "{e}");
    let e = check(&format!("trace = \"{t}\"\ncard = \"CB00000000000A01\"\nhead = \"Z\"\n"));
    assert!(e.starts_with("lab.toml:10:8: head 'Z' is not in the trace (heads: A, B, C, D)"), "{e}");
    let e = check(&format!("trace = \"{t}\"\ncard = \"CB00000000000A01\"\nhead = \"B\"\n"));
    assert!(e.starts_with("lab.toml:10:8: card CB00000000000A01 has no rows on head B"), "{e}");
    let e = check(&format!("trace = \"{t}\"\ncard = \"A01\"\n"));
    assert!(e.starts_with("lab.toml:9:8: card 'A01' is not a card ID"), "{e}");
    let e = check("card = \"CB00000000000A01\"\n");
    assert!(e.starts_with("lab.toml:5:1: a replay head needs `trace`"), "{e}");
    let e = check(&format!("trace = \"{t}\"\n"));
    assert!(e.starts_with("lab.toml:5:1: a replay head needs `card`"), "{e}");
    let e = check(&format!("trace = \"{t}\"\ncard = \"CB00000000000A01\"\nmismatches = \"no/such/dir/mm.jsonl\"\n"));
    assert!(e.starts_with("lab.toml:10:14: cannot write mismatches to "), "{e}");
    let e = check_driver("virtual", &format!("trace = \"{t}\"\n"));
    assert!(e.starts_with("lab.toml:8:9: `trace`, `head` and `mismatches` are for replay heads"), "{e}");

    // Replay heads of one lab play one run: traces of runs with other terminal seeds clash.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(&trace, other.join("trace.csv")).unwrap();
    let run_json = std::fs::read_to_string(trace.parent().unwrap().join("run.json")).unwrap();
    let seeded = run_json.lines().find(|l| l.contains("terminal_rng")).unwrap();
    let reseeded = format!("  \"terminal_rng\": \"seeded:{}\",", "AB".repeat(32));
    std::fs::write(other.join("run.json"), run_json.replace(seeded, &reseeded)).unwrap();
    let e = check(&format!(
        "trace = \"{t}\"\ncard = \"CB00000000000A01\"\n\n[[head]]\nname = \"B\"\ndriver = \"replay\"\n\
         trace = \"{}\"\ncard = \"CB00000000000B02\"\n",
        other.join("trace.csv").display()
    ));
    assert!(e.starts_with("lab.toml:14:9: the run of this trace drew other terminal randoms than the run of "), "{e}");

    // `sim replay` refuses the same way before serving anything: one line, exit 2.
    let out = bin()
        .args(["sim", "replay", "--via", "pn532", "--card", "CB0000000000FFFF", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no device printed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "cardbench: error: {t}: card CB0000000000FFFF is not in the trace (cards: CB00000000000A01, \
             CB00000000000B02, CB00000000000C03, CB00000000000D04)"
        )
    );
}

/// `cardbench sim replay` serving one card of `trace`, killed when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run the smoke plan in process on `lab`'s heads A-D with the capture's terminal seed.
fn smoke_on(lab: &mut Lab, trace: &Path) -> (Vec<CaseResult>, Vec<Exchange>, Vec<cardbench::lab::LabHead>) {
    let plan = cardbench::plan::load(&Path::new(ROOT).join("test-plans/smoke.toml")).unwrap();
    // Heads the plan does not name (vpcd-lab's E and F) are never opened.
    let mut heads = std::mem::take(&mut lab.heads);
    plan.bind(|n| cardbench::lab::find_head(&heads, n).is_some()).unwrap();
    let seed = recorded_terminal_seed(trace).expect("the capture's run.json has its seed");
    let (rec, rx) = Recorder::new(&plan.id);
    let results = cardbench::runner::run_plan(&plan, &mut heads, &rec, &lab.keyset, lab.clock.unwrap(), seed);
    drop(rec);
    let rows = rx
        .iter()
        .filter_map(|e| match e {
            Event::Exchange(x) => Some(*x),
            _ => None,
        })
        .collect();
    (results, rows, heads)
}

fn assert_all_passed(results: &[CaseResult]) {
    assert_eq!(results.len(), 13);
    for r in results {
        assert_eq!(cardbench::runner::status_word(&r.status), "passed", "{}: {}", r.id, r.message);
    }
}

#[test]
fn sim_replay_behind_pn532_simulators_serves_the_smoke_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = capture(tmp.path());
    let mut served = Vec::new();
    let mut profile = String::from(
        "name = \"pn532-replay\"\n[keyset]\nseed = \"cardbench virtual lab\"\nrevoked = [0x0000EE05, 0x0003EE01]\n\
         [defaults]\nclock = \"2026-06-01T12:00:00Z\"\n",
    );
    for (head, card) in CARDS {
        let link = tmp.path().join(format!("pn532-{head}"));
        let mut child = bin()
            .args(["sim", "replay", "--via", "pn532", "--card", card, "--trace"])
            .arg(&trace)
            .arg("--link")
            .arg(&link)
            .arg("--mismatches")
            .arg(tmp.path().join(format!("mm-{head}.jsonl")))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The simulator prints its device once the pty is served and the link made.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("/dev/"), "sim replay printed '{line}'");
        served.push(Served(child));
        profile += &format!("[[head]]\nname = \"{head}\"\ndriver = \"pn532\"\nport = \"{}\"\n", link.display());
    }
    let path = tmp.path().join("pn532-replay.toml");
    std::fs::write(&path, profile).unwrap();
    let mut lab = Lab::from_profile(&cardbench::profile::load(&path).unwrap()).unwrap();
    let (results, rows, mut heads) = smoke_on(&mut lab, &trace);
    assert_all_passed(&results);
    assert_eq!(wire(&rows), wire(&read(&trace)), "the PN532 carried the captured exchanges");
    for (head, _) in CARDS {
        assert_eq!(std::fs::read_to_string(tmp.path().join(format!("mm-{head}.jsonl"))).unwrap(), "", "head {head}");
    }

    // One command more than the capture holds: 6F00 over the PN532, and the record on disk.
    let a = heads.iter_mut().find(|h| h.name == "A").unwrap();
    let select = [0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x01];
    assert_eq!(a.head.transmit(&select).unwrap().response, [0x6F, 0x00]);
    let mm = json_lines(&tmp.path().join("mm-A.jsonl"));
    assert_eq!(mm.len(), 1, "{mm:?}");
    assert_eq!(mm[0]["expected_seq"], serde_json::Value::Null);
    assert_eq!(mm[0]["received"], "00A4040007A0000007770001");
    assert_eq!(mm[0]["source"], "sim replay");
}

/// One `cardbench sim replay --via vpcd` per captured card, on vpcd readers 0-3.
fn play_behind_vpcd(trace: &str, mismatches: &str) -> Vec<pcscd::Bridge> {
    let mut bridges = Vec::new();
    for (i, (_, card)) in CARDS.iter().enumerate() {
        let port = pcscd::vpcd_port(i as u32).to_string();
        let args = [
            "sim",
            "replay",
            "--via",
            "vpcd",
            "--card",
            card,
            "--trace",
            trace,
            "--port",
            &port,
            "--mismatches",
            mismatches,
        ];
        bridges.push(pcscd::Bridge::spawn(&args));
    }
    bridges
}

#[test]
fn sim_replay_behind_vpcd_serves_the_smoke_plan_through_pcscd() {
    if !pcscd::available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let trace = capture(tmp.path());
    let _pcscd = pcscd::Pcscd::start(4, &tmp.path().join("pcscd"));
    // All four played cards write to one mismatch file (append mode, one line per write).
    let mm = tmp.path().join("mm.jsonl");
    let (t, m) = (trace.display().to_string(), mm.display().to_string());
    let bridges = play_behind_vpcd(&t, &m);
    pcscd::wait_readers_with_cards(4);
    let vpcd_lab = Path::new(ROOT).join("profiles/vpcd-lab.toml");
    let smoke = Path::new(ROOT).join("test-plans/smoke.toml");

    // Without the capture's seed the terminal's randoms come from the OS: the first command
    // carrying one strays.
    let out = bin()
        .arg("run")
        .arg(&smoke)
        .arg("--profile")
        .arg(&vpcd_lab)
        .args(["-q", "--run-id", "os", "--logs"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let strays = json_lines(&mm);
    assert!(!strays.is_empty() && strays.iter().all(|l| l["answered"] == "6F00"));
    drop(bridges);
    pcscd::wait_readers_with_cards(0);

    // Played again from the start, with the capture's seed: the plan passes through pcscd.
    let bridges = play_behind_vpcd(&t, &m);
    pcscd::wait_readers_with_cards(4);
    let out = bin()
        .arg("run")
        .arg(&smoke)
        .arg("--profile")
        .arg(&vpcd_lab)
        .args(["-q", "--run-id", "seeded", "--logs"])
        .arg(tmp.path())
        .arg("--terminal-seed-from")
        .arg(&trace)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("13 cases, 13 passed, 0 failed"), "{text}");
    assert!(text.contains("the terminal's randoms repeat a captured run"), "{text}");
    let replayed = tmp.path().join("seeded/trace.csv");
    assert_eq!(wire(&read(&replayed)), wire(&read(&trace)), "pcscd carried the captured exchanges");
    assert_eq!(std::fs::read_to_string(&mm).unwrap(), "", "no mismatch");
    drop(bridges);
}
