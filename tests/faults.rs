//! Faults provoked for real and what the record says about them: a command that got no
//! answer, a head that failed in the middle of a run, a trace disk that filled up, a trace
//! file cut or damaged.

use cardbench::card::Protocol;
use cardbench::cmds;
use cardbench::event::{Event, Recorder, RowKind};
use cardbench::head::tap::{Hook, Tapped};
use cardbench::head::virtual_head::{CutPoint, PowerCut, VirtualHead};
use cardbench::head::{Head, HeadError};
use cardbench::issuance::CardPlan;
use cardbench::keys::Keyset;
use cardbench::lab::{personalize_virtual, Lab};
use cardbench::link::Link;
use cardbench::report::CaseStatus;
use cardbench::sinks::{self, Sink};
use cardbench::trace::{self, TraceCsv};
use std::path::{Path, PathBuf};
use std::process::Command as Proc;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn purse_head(keys: &Keyset) -> VirtualHead {
    let plan = CardPlan::new([0xCB, 0, 0, 0, 0, 0, 0xFA, 1]);
    let mut h = VirtualHead::new("A");
    h.insert(personalize_virtual(&plan, Protocol::T1, keys).unwrap());
    h.power_on().unwrap();
    h
}

fn counter(h: &mut VirtualHead) -> u32 {
    h.card().unwrap().image().purse.counter
}

#[test]
fn an_unanswered_command_is_on_disk_as_in_doubt_before_its_error_returns() {
    let keys = Keyset::from_seed("faults", vec![]);
    let mut h = purse_head(&keys);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    let (rec, rx) = Recorder::new("faults");
    let sink: Box<dyn Sink> = Box::new(TraceCsv::create(&path, "R1", "faults").unwrap());
    let thread = sinks::spawn(rx, vec![sink]);
    let before = counter(&mut h);
    {
        let mut l = Link::new(&mut h, &rec);
        l.card_id = "CB000000000000FA01".into();
        l.test_step = "torn-write".into();
        assert!(l.exec("S1", &cmds::select(&cardbench::card::ins::AID_PURSE)).unwrap().is_ok());
        // The card runs WRITE VALUE and commits, then loses power before answering.
        l.head.as_virtual().unwrap().cut_power(Some(PowerCut { at: 1, point: CutPoint::AfterCommand }));
        let write = cmds::purse_write_value(1000, 1_780_315_200);
        let err = l.exec("S2", &write).unwrap_err();
        assert_eq!(err, HeadError::Mute);
        // Nothing else has happened yet: the row must already be readable from the file.
        let rows = trace::read(&path).unwrap();
        let last = rows.last().expect("rows on disk");
        assert_eq!(last.kind, RowKind::InDoubt);
        assert_eq!(last.command, write.to_bytes().unwrap());
        assert!(last.response.is_empty());
        assert!(last.error.contains("mute"), "{}", last.error);
        assert_eq!(last.protocol_step, "S2");
    }
    assert_eq!(counter(&mut h), before - 1, "in doubt means the card may well have run it");
    drop(rec);
    assert!(thread.join().unwrap().is_empty());
    // The CSV row itself: empty response and SW, kind and error filled in.
    let mut r = csv::Reader::from_path(&path).unwrap();
    let last = r.records().last().unwrap().unwrap();
    assert_eq!((&last[10], &last[11], &last[15]), ("", "", "in-doubt"));
    assert_eq!(&last[14], "WRITE VALUE");
}

#[test]
fn a_cut_before_the_command_is_in_doubt_too_and_changes_nothing() {
    let keys = Keyset::from_seed("faults", vec![]);
    let mut h = purse_head(&keys);
    let before = counter(&mut h);
    let (rec, rx) = Recorder::new("faults");
    let mut l = Link::new(&mut h, &rec);
    l.exec("S1", &cmds::select(&cardbench::card::ins::AID_PURSE)).unwrap();
    l.head.as_virtual().unwrap().cut_power(Some(PowerCut { at: 1, point: CutPoint::BeforeCommand }));
    assert_eq!(l.exec("S2", &cmds::purse_write_value(1, 1)).unwrap_err(), HeadError::Mute);
    // A command on the unpowered card never leaves the host: a case error, no row.
    assert_eq!(l.exec("S3", &cmds::purse_read_all()).unwrap_err(), HeadError::Unpowered);
    drop(l);
    drop(rec);
    let kinds: Vec<RowKind> = rx
        .try_iter()
        .filter_map(|e| match e {
            cardbench::event::Event::Exchange(x) => Some(x.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [RowKind::Command, RowKind::InDoubt]);
    assert_eq!(counter(&mut h), before);
}

/// A reader that dies for good after `left` more transmits (pulled cable, dead driver).
struct Dying {
    left: u64,
}

impl Dying {
    fn alive(&self) -> Result<(), HeadError> {
        if self.left == 0 {
            return Err(HeadError::ReaderGone("reader unplugged".into()));
        }
        Ok(())
    }
}

impl Hook for Dying {
    fn transmit(&mut self, inner: &mut dyn Head, apdu: &[u8]) -> Result<cardbench::head::Wire, HeadError> {
        self.alive()?;
        self.left -= 1;
        if self.left == 0 {
            // The command went out; the answer never comes back.
            let _ = inner.transmit(apdu);
            return Err(HeadError::ReaderGone("reader unplugged".into()));
        }
        inner.transmit(apdu)
    }
    fn power_on(&mut self, inner: &mut dyn Head) -> Result<Vec<u8>, HeadError> {
        self.alive()?;
        inner.power_on()
    }
    fn power_off(&mut self, inner: &mut dyn Head) -> Result<(), HeadError> {
        self.alive()?;
        inner.power_off()
    }
    fn card_present(&mut self, inner: &mut dyn Head) -> Result<bool, HeadError> {
        self.alive()?;
        inner.card_present()
    }
    fn atr(&self, inner: &dyn Head) -> Option<Vec<u8>> {
        self.alive().ok().and_then(|_| inner.atr())
    }
}

struct SmokeCase {
    id: String,
    status: CaseStatus,
    message: String,
    heads: Vec<String>,
}

/// The smoke plan on the virtual lab with head `head` changed by `fault`; results and events.
fn smoke_with(head: &str, fault: impl FnOnce(&mut cardbench::lab::LabHead)) -> (Vec<SmokeCase>, Vec<Event>) {
    let plan = cardbench::plan::load(&Path::new(ROOT).join("test-plans/smoke.toml")).unwrap();
    let loaded = cardbench::profile::load(&Path::new(ROOT).join("profiles/virtual-lab.toml")).unwrap();
    let mut lab = Lab::from_profile(&loaded).unwrap();
    plan.bind(|n| cardbench::lab::find_head(&lab.heads, n).is_some()).unwrap();
    let i = cardbench::lab::find_head(&lab.heads, head).unwrap();
    fault(&mut lab.heads[i]);
    let (rec, rx) = Recorder::new("smoke");
    let results = cardbench::runner::run_plan(&plan, &mut lab.heads, &rec, &lab.keyset, lab.clock.unwrap(), [7; 32]);
    drop(rec);
    let events = rx.try_iter().collect();
    let cases = plan
        .cases
        .iter()
        .zip(results)
        .map(|(c, r)| SmokeCase {
            heads: c.steps.iter().flat_map(|s| s.kind.heads()).map(str::to_string).collect(),
            id: r.id,
            status: r.status,
            message: r.message,
        })
        .collect();
    (cases, events)
}

fn uses(c: &SmokeCase, head: &str) -> bool {
    c.heads.iter().any(|h| h == head)
}

#[test]
fn a_head_fault_ends_only_the_cases_that_use_that_head() {
    // Head B's reader dies at its 6th transmit: inside the card-signed payment (B's first case).
    let (results, events) = smoke_with("B", |h| {
        let inner = std::mem::replace(&mut h.head, Box::new(VirtualHead::new("placeholder")));
        h.head = Box::new(Tapped::owned(inner, Dying { left: 6 }));
    });
    let hit = results.iter().position(|r| uses(r, "B")).unwrap();
    let first = &results[hit];
    assert_eq!(first.status, CaseStatus::Error, "{}: {}", first.id, first.message);
    assert!(first.message.contains("reader unplugged"), "{}", first.message);
    let mut later_on_b = 0;
    for c in &results[hit + 1..] {
        if uses(c, "B") {
            later_on_b += 1;
            assert_eq!(c.status, CaseStatus::NotRun, "{}", c.id);
            assert!(c.message.starts_with("not run:") && c.message.contains("head B"), "{}: {}", c.id, c.message);
            assert!(c.message.contains("recovery:"), "recovery was tried once and failed: {}", c.message);
        } else {
            assert_eq!(c.status, CaseStatus::Passed, "{} does not use B and must run: {}", c.id, c.message);
        }
    }
    assert!(later_on_b > 0, "the plan has later cases on B");
    assert!(results[..hit].iter().all(|r| r.status == CaseStatus::Passed));
    let tries = events.iter().filter(|e| matches!(e, Event::Recovered { settled: false, .. })).count();
    assert_eq!(tries, 1, "one recovery attempt, not one per case");
}

#[test]
fn an_in_doubt_head_is_read_and_settled_before_it_is_used_again() {
    // B's card loses power after running its 6th command, inside the card-signed payment.
    let (results, events) = smoke_with("B", |h| {
        h.head.as_virtual().unwrap().cut_power(Some(PowerCut { at: 6, point: CutPoint::AfterCommand }));
    });
    let hit = results.iter().position(|r| uses(r, "B")).unwrap();
    assert_eq!(results[hit].status, CaseStatus::Error, "{}", results[hit].message);
    assert!(results[hit].message.contains("mute"), "{}", results[hit].message);
    let recovered: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::Recovered { .. })).collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert!(matches!(recovered[0], Event::Recovered { settled: true, .. }), "{recovered:?}");
    for c in results.iter().filter(|c| c.id != results[hit].id) {
        assert_eq!(c.status, CaseStatus::Passed, "{}: {}", c.id, c.message);
    }
    // The recovery read the card before anything else was sent to it.
    let rows: Vec<&cardbench::event::Exchange> = events
        .iter()
        .filter_map(|e| match e {
            Event::Exchange(x) if x.head == "B" => Some(&**x),
            _ => None,
        })
        .collect();
    let doubt = rows.iter().position(|x| x.kind == RowKind::InDoubt).expect("in-doubt row");
    assert_eq!(rows[doubt + 1].test_step, "recover", "first command after the doubt is recovery's");
}

fn bin() -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(ROOT);
    c
}

/// A real tmpfs of `kb` KiB (needs root); unmounted on drop, before its folder goes.
struct SmallDisk(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl SmallDisk {
    fn mount(kb: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Proc::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kb}k"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(std::env::var_os("CI").is_none(), "CI runs as root and must mount a small tmpfs");
            eprintln!("NOTICE: full-disk test skipped (mounting a tmpfs needs root)");
            return None;
        }
        Some(SmallDisk(dir.path().to_path_buf(), dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Proc::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_trace_disk_stops_the_run_with_exit_2() {
    let Some(disk) = SmallDisk::mount(24) else { return };
    // The results store is off here: this test fills the disk under the trace (the store on
    // a full disk is the next test).
    let out = bin()
        .args(["run", "test-plans/certification.toml", "--profile", "profiles/virtual-lab.toml", "--run-id", "R1"])
        .args(["--db", "none", "--logs"])
        .arg(&disk.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
    // Once the failure is known nothing more runs: every later case says why.
    let lines: Vec<&str> =
        stdout.lines().filter(|l| ["PASS", "ERR", "NRUN"].iter().any(|m| l.starts_with(m))).collect();
    let first = lines.iter().position(|l| l.contains("the trace cannot be written")).expect("cases stopped");
    assert!(lines[first + 1..].iter().all(|l| l.contains("not run: the trace cannot be written")), "{stdout}");
    assert!(first < lines.len() / 2, "stopped early, not after the whole plan: {stdout}");
}

#[test]
fn nothing_is_sent_to_a_card_once_its_trace_cannot_be_written() {
    let Some(disk) = SmallDisk::mount(16) else { return };
    let keys = Keyset::from_seed("faults", vec![]);
    let mut h = purse_head(&keys);
    let path = disk.0.join("trace.csv");
    let (rec, rx) = Recorder::new("faults");
    let thread = sinks::spawn(rx, vec![Box::new(TraceCsv::create(&path, "R1", "faults").unwrap())]);
    let mut l = Link::new(&mut h, &rec);
    l.exec("select", &cmds::select(&cardbench::card::ins::AID_PURSE)).unwrap();
    let mut refused = None;
    for n in 0..1_000_000u32 {
        match l.exec("read", &cmds::purse_read_all()) {
            Ok(_) => {}
            Err(HeadError::NotSent(why)) => {
                refused = Some((n, why));
                break;
            }
            Err(e) => panic!("{e}"),
        }
        if n % 64 == 0 {
            // Let the sinks catch up now and then, as a real head's latency does.
            rec.sync();
        }
    }
    let (n, why) = refused.expect("the link refuses once the trace fails");
    assert!(why.contains("No space left on device"), "{why}");
    let sent = l.head.as_virtual().unwrap().transmits();
    for _ in 0..10 {
        assert!(matches!(l.exec("read", &cmds::purse_read_all()), Err(HeadError::NotSent(_))));
    }
    assert_eq!(l.head.as_virtual().unwrap().transmits(), sent, "no transmit after the failure is known");
    drop(l);
    drop(rec);
    let errors = thread.join().unwrap();
    assert!(errors.iter().any(|e| e.contains("No space left")), "{errors:?}");
    // What reached the disk is a readable trace up to a possibly cut last row.
    let t = trace::read_trace(&path).unwrap();
    assert!(!t.rows.is_empty() && (t.rows.len() as u64) < u64::from(n) + 2);
}

fn smoke_trace(dir: &Path) -> PathBuf {
    let out = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", "profiles/virtual-lab.toml", "--run-id", "R1", "-q"])
        .arg("--logs")
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    dir.join("R1/trace.csv")
}

#[test]
fn the_trace_reader_names_the_line_of_a_bad_field_and_keeps_the_rows_before_a_cut_last_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = smoke_trace(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let whole = trace::read_trace(&path).unwrap();
    assert!(whole.cut_last_row.is_none());
    let n = whole.rows.len();
    let lines: Vec<&str> = text.lines().collect();

    // A kill in the middle of the last row: every whole row is still read.
    let cut = &text[..text.len() - lines[lines.len() - 1].len() / 2 - 1];
    let t = trace::read_bytes(Path::new("cut.csv"), cut.as_bytes()).unwrap();
    assert_eq!(t.rows.len(), n - 1);
    assert_eq!(t.cut_last_row, Some(lines.len() as u64));

    // A damaged field of a command row in the middle is an error naming file, line and column.
    let k = (5..lines.len()).find(|&i| lines[i].split(',').nth(15) == Some("command")).unwrap();
    let damage = |col: usize, value: &str| {
        let mut ls: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let mut f: Vec<String> = ls[k].split(',').map(str::to_string).collect();
        f[col] = value.into();
        ls[k] = f.join(",");
        let e = trace::read_bytes(Path::new("bad.csv"), (ls.join("\n") + "\n").as_bytes()).unwrap_err();
        e.to_string()
    };
    let at = format!("bad.csv:{}:", k + 1);
    assert_eq!(damage(9, "80B"), format!("{at} command `80B` is not hex bytes"));
    assert_eq!(damage(11, "90X0"), format!("{at} sw `90X0` is not 4 hex digits"));
    assert_eq!(damage(2, "yesterday"), format!("{at} wall_time `yesterday` is not an RFC 3339 time"));
    assert_eq!(damage(15, "sideways"), format!("{at} kind `sideways` is not a row kind"));
    assert!(damage(1, "-3").starts_with(&format!("{at} seq `-3`")));
    assert_eq!(damage(17, "3B8"), format!("{at} atr `3B8` is not hex bytes"));
    assert_eq!(damage(19, "two"), format!("{at} repeat `two` is not a whole number"));
    assert_eq!(damage(20, "9-2"), format!("{at} mask `9-2` is not byte ranges like `0-15 32`"));

    // A trace written before the kind and error columns existed still reads.
    // (Old traces had only wire rows: no power, card or step rows.)
    let old: Vec<String> = lines
        .iter()
        .filter(|l| !["step", "power-on", "power-off", "insert", "remove"].contains(&l.split(',').nth(15).unwrap()))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[..15].join(",")
        })
        .collect();
    let t = trace::read_bytes(Path::new("old.csv"), (old.join("\n") + "\n").as_bytes()).unwrap();
    assert_eq!(t.rows.len(), old.len() - 1);
    assert!(t.rows.len() < n);
    assert!(t.rows.iter().any(|r| r.kind == RowKind::Resend6C || r.kind == RowKind::GetResponse));
}

#[test]
fn a_virtual_lab_run_records_its_terminal_seed() {
    let dir = tempfile::tempdir().unwrap();
    smoke_trace(dir.path());
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("R1/run.json")).unwrap()).unwrap();
    assert_eq!(header["plan"], "smoke");
    let rng = header["terminal_rng"].as_str().unwrap();
    assert!(rng.starts_with("seeded:") && rng.len() == 7 + 64, "{rng}");
}

#[test]
fn a_run_killed_mid_trace_leaves_a_trace_that_reads_up_to_the_kill() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("long.toml");
    std::fs::write(
        &plan,
        r#"[plan]
id = "long"
version = "1"
title = "Reads until killed"
roles = ["A"]

[[case]]
id = "reads"
title = "many reads"
[[case.step]]
do = "apdu"
head = "A"
command = "00 A4 04 00 07 A0 00 00 07 77 00 01"
sw = "9000"
[[case.step]]
do = "apdu"
head = "A"
command = "80 B2 01 00 08"
sw = "9000"
repeat = 100000
"#,
    )
    .unwrap();
    let logs = dir.path().join("logs");
    let mut child = bin()
        .args(["run"])
        .arg(&plan)
        .args(["--profile", "profiles/virtual-lab.toml", "--run-id", "K", "-q", "--logs"])
        .arg(&logs)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let path = logs.join("K/trace.csv");
    // Wait for a state: the trace holds a good number of rows (or the run ended first).
    loop {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len > 200_000 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::yield_now();
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    let t = trace::read_trace(&path).unwrap();
    assert!(!status.success() || t.rows.len() > 100_000, "killed or finished");
    assert!(t.rows.len() > 1000, "{} rows", t.rows.len());
    for (i, r) in t.rows.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "dense sequence up to the kill");
    }
}

#[test]
fn a_results_store_on_a_full_disk_stops_the_run_before_it_starts() {
    let Some(disk) = SmallDisk::mount(24) else { return };
    // Fill the disk first, so that not even the store's first page fits.
    let filler = disk.0.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 24 * 1024]);
    let out = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", "profiles/virtual-lab.toml", "--run-id", "R2"])
        .arg("--logs")
        .arg(&disk.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
    assert!(stderr.contains("results store"), "{stderr}");
    assert!(!stdout.lines().any(|l| l.starts_with("PASS")), "no case ran: {stdout}");
}
