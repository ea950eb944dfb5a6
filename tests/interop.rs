//! `cardbench trace import` on logs written by the real tools (tests/data/interop/README.md),
//! a live session through a private pcscd `--apdu` with scriptor and cardbench as clients,
//! and `cardbench trace export --pcapng` read back by tshark.

use cardbench::event::{Exchange, RowKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "common/pcscd.rs"]
mod pcscd;
use pcscd::{available, bin, wait_readers_with_cards, Bridge, Pcscd, ROOT};

fn data(name: &str) -> PathBuf {
    Path::new(ROOT).join("tests/data/interop").join(name)
}

/// `cardbench trace import`, the trace it wrote read back with the library.
fn import(format: &str, log: &Path, dir: &Path) -> Vec<Exchange> {
    let out = dir.join(format!("{}.csv", log.file_name().unwrap().to_string_lossy()));
    let r = bin().args(["trace", "import", "--from", format]).arg(log).arg("-o").arg(&out).output().unwrap();
    assert!(r.status.success(), "import {}: {}", log.display(), String::from_utf8_lossy(&r.stderr));
    let t = cardbench::trace::read_trace(&out).unwrap_or_else(|e| panic!("imported trace: {e}"));
    assert_eq!(t.cut_last_row, None);
    t.rows
}

/// What two captures of one session must agree on: the bytes and the row kinds.
fn wire(rows: &[Exchange]) -> Vec<(String, String, u16, RowKind)> {
    rows.iter()
        .filter(|r| r.kind.is_wire())
        .map(|r| (hex::encode_upper(&r.command), hex::encode_upper(&r.response), r.sw, r.kind))
        .collect()
}

/// The masks of dynamic response bytes (what a replay compares), row by row. Compared only
/// with a trace cardbench writes in the same test: the card spec's table of dynamic bytes may
/// change, and the committed samples keep the masks of the day they were recorded.
fn masks(rows: &[Exchange]) -> Vec<String> {
    rows.iter().filter(|r| r.kind.is_wire()).map(|r| r.mask.to_string()).collect()
}

fn events(rows: &[Exchange]) -> Vec<(RowKind, String)> {
    rows.iter().filter(|r| !r.kind.is_wire()).map(|r| (r.kind, hex::encode_upper(&r.atr))).collect()
}

#[test]
fn a_pcscd_apdu_log_imports_as_the_rows_cardbench_traced_in_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let imported = import("pcscd-apdu", &data("pcscd-apdu-run.log"), dir.path());
    let traced = cardbench::trace::read_trace(&data("pcscd-apdu-run.trace.csv")).unwrap().rows;
    assert_eq!(wire(&imported), wire(&traced));
    // The card IDs the cards told (READ FIELD ID, GET CARD INFO), from the same rows on.
    let ids = |rows: &[Exchange]| -> Vec<String> {
        rows.iter().filter(|r| r.kind.is_wire()).map(|r| r.card_id.clone()).collect()
    };
    assert_eq!(ids(&imported), ids(&traced));
    // The T=0 card's procedure rows are recognised, with the link's own notes.
    assert!(imported.iter().any(|r| r.kind == RowKind::GetResponse && r.note == "GET RESPONSE"));
    assert!(imported.iter().any(|r| r.kind == RowKind::Resend6C && r.note == "re-sent with Le=22 after 6C16"));
    // Durations come from pcscd's time field; rows are numbered densely from 1.
    assert!(imported.iter().all(|r| r.duration_ns > 0));
    assert_eq!(imported.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=imported.len() as u64).collect::<Vec<_>>());
}

#[test]
fn with_debug_the_pcscd_log_names_each_rows_reader_as_cardbench_named_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let imported = import("pcscd-apdu", &data("pcscd-apdu-debug-run.log"), dir.path());
    let traced = cardbench::trace::read_trace(&data("pcscd-apdu-debug-run.trace.csv")).unwrap().rows;
    assert_eq!(wire(&imported), wire(&traced));
    // Reader and head are one-to-one, row by row; the card IDs are the same.
    let pairs: std::collections::BTreeSet<(String, String)> = imported
        .iter()
        .filter(|r| r.kind.is_wire())
        .zip(traced.iter().filter(|r| r.kind.is_wire()))
        .map(|(i, t)| (i.head.clone(), t.head.clone()))
        .collect();
    assert_eq!(
        pairs.into_iter().collect::<Vec<_>>(),
        [
            ("cardbench vpcd 0 00 00".to_string(), "A".to_string()),
            ("cardbench vpcd 1 00 00".to_string(), "B".to_string())
        ]
    );
    let ids = |rows: &[Exchange]| -> Vec<String> {
        rows.iter().filter(|r| r.kind.is_wire()).map(|r| r.card_id.clone()).collect()
    };
    assert_eq!(ids(&imported), ids(&traced));
    // pcscd saw the cards inserted, and cardbench's disconnects reset each card in its reader.
    let ev: Vec<_> = imported.iter().filter(|r| !r.kind.is_wire()).map(|r| (r.kind, r.head.as_str())).collect();
    assert_eq!(
        ev,
        [
            (RowKind::Insert, "cardbench vpcd 1 00 00"),
            (RowKind::Insert, "cardbench vpcd 0 00 00"),
            (RowKind::WarmReset, "cardbench vpcd 0 00 00"),
            (RowKind::WarmReset, "cardbench vpcd 1 00 00")
        ]
    );
    // And it replays on the virtual lab, byte for byte under the masks: `cardbench replay`
    // sends every imported command to fresh virtual cards A and B (the readers mapped to them).
    let trace = dir.path().join("pcscd-apdu-debug-run.log.csv");
    let r = bin()
        .arg("replay")
        .arg(&trace)
        .args(["--profile", "profiles/virtual-lab.toml", "--run-id", "replayed", "-q"])
        .args(["--map", "cardbench vpcd 0 00 00=A", "--map", "cardbench vpcd 1 00 00=B", "--logs"])
        .arg(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "replay: {out}{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.contains("21 commands, 21 matched, 0 diverged"), "{out}");
}

#[test]
fn one_scriptor_session_seen_by_scriptor_pcsc_spy_pcscd_and_apdu4j_imports_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let scriptor = import("scriptor", &data("scriptor-session.txt"), dir.path());
    let spy = import("pcsc-spy", &data("pcsc-spy-scriptor.txt"), dir.path());
    let pcscd = import("pcscd-apdu", &data("pcscd-apdu-debug-scriptor.log"), dir.path());
    assert_eq!(wire(&scriptor).len(), 7);
    assert_eq!(wire(&spy), wire(&scriptor));
    assert_eq!(wire(&pcscd), wire(&scriptor));
    // The reset with its ATR, from each tool that logs it; pcscd --debug also saw the insertions.
    let reset = (RowKind::WarmReset, "3B89004341524442454E4348".to_string());
    assert_eq!(events(&scriptor), std::slice::from_ref(&reset));
    assert_eq!(events(&spy), std::slice::from_ref(&reset));
    assert_eq!(
        events(&pcscd),
        [
            (RowKind::Insert, "3B89014341524442454E4348DE".to_string()),
            (RowKind::Insert, "3B89004341524442454E4348".to_string()),
            reset
        ]
    );
    assert!(scriptor.iter().all(|r| r.head == "cardbench vpcd 0 00 00"));
    assert!(spy.iter().all(|r| r.head == "cardbench vpcd 0 00 00"));
    // The three apdu4j shapes (written by hand from apdu4j's sources) agree with each other.
    let dump = import("apdu4j", &data("apdu4j-dump.txt"), dir.path());
    assert_eq!(wire(&import("apdu4j", &data("apdu4j-verbose.txt"), dir.path())), wire(&dump));
    assert_eq!(wire(&import("apdu4j", &data("apdu4j-bibo-dump.txt"), dir.path())), wire(&dump));
    assert_eq!(events(&dump), [(RowKind::PowerOn, "3B89004341524442454E4348".to_string())]);
    assert_eq!(dump[0].wall.to_rfc3339(), "2026-12-01T12:30:05+00:00");
    assert_eq!(
        dump.iter().filter(|r| r.kind.is_wire()).map(|r| r.kind).collect::<Vec<_>>(),
        [
            RowKind::Command,
            RowKind::Command,
            RowKind::Command,
            RowKind::Resend6C,
            RowKind::Command,
            RowKind::GetResponse
        ]
    );
}

/// scriptor stops at procedure bytes (it prints `6C16` and `6104` and goes on): the replay
/// sends those commands as they were, one exchange each, and the card answers them the same.
#[test]
fn a_scriptor_session_imports_and_replays_on_the_virtual_lab() {
    let dir = tempfile::tempdir().unwrap();
    let rows = import("scriptor", &data("scriptor-session.txt"), dir.path());
    assert!(rows.iter().any(|r| r.sw == 0x6C16) && rows.iter().any(|r| r.sw == 0x6104), "{rows:?}");
    let r = bin()
        .arg("replay")
        .arg(dir.path().join("scriptor-session.txt.csv"))
        .args(["--profile", "profiles/virtual-lab.toml", "--run-id", "replayed"])
        .args(["--map", "cardbench vpcd 0 00 00=A", "--logs"])
        .arg(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "replay: {out}{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.contains("7 commands, 7 matched, 0 diverged"), "{out}");
    // scriptor records no times: the timing table says so instead of a 0 ns baseline.
    assert!(out.contains("(no captured time)") && !out.contains("+0.0%"), "{out}");
    // The replay's own trace holds the procedure-byte answers as answers, not followed.
    let replayed = cardbench::trace::read(&dir.path().join("replayed/trace.csv")).unwrap();
    let wire: Vec<u16> = replayed.iter().filter(|r| r.kind.is_wire()).map(|r| r.sw).collect();
    assert_eq!(wire, rows.iter().filter(|r| r.kind.is_wire()).map(|r| r.sw).collect::<Vec<_>>());
}

#[test]
fn cut_and_garbled_logs_never_panic_the_import() {
    use cardbench::interop::{apdu4j, assemble, pcscd, scriptor, spy, Log};
    type Parse = fn(&str) -> Result<Log, (u64, String)>;
    let parsers: [(&str, Parse); 8] = [
        ("pcscd-apdu-run.log", pcscd::parse),
        ("pcscd-apdu-debug-scriptor.log", pcscd::parse),
        ("pcscd-apdu-debug-run.log", pcscd::parse),
        ("scriptor-session.txt", scriptor::parse),
        ("pcsc-spy-scriptor.txt", spy::parse),
        ("apdu4j-dump.txt", apdu4j::parse),
        ("apdu4j-verbose.txt", apdu4j::parse),
        ("apdu4j-bibo-dump.txt", apdu4j::parse),
    ];
    for (sample, parse) in parsers {
        let text = std::fs::read_to_string(data(sample)).unwrap();
        // About 500 places per sample: every byte of the small ones, spread over the large ones.
        for cut in (0..text.len()).step_by((text.len() / 500).max(1)) {
            // A log cut anywhere, and the same log with one byte garbled there.
            let mut garbled = text.clone().into_bytes();
            garbled[cut] = b"Z9 >:#\n("[cut % 8];
            for t in [text[..cut].to_string(), String::from_utf8_lossy(&garbled).into_owned()] {
                if let Ok(log) = parse(&t) {
                    let _ = assemble(&log.records, chrono::DateTime::UNIX_EPOCH, None);
                }
            }
        }
    }
}

#[test]
fn a_bad_log_exits_2_naming_file_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("pcscd-apdu", "pcscd-apdu-run.log", 4, " SW: CB 00 00 00 00 00 0A 01 90 00 ", " SW: CB 00 0G"),
        (
            "scriptor",
            "scriptor-session.txt",
            10,
            "< CB 00 00 00 00 00 0A 01 90 00 : N",
            "< CB 00 00 00 00 00 0A 01 9 00 : N",
        ),
        ("pcsc-spy", "pcsc-spy-scriptor.txt", 40, " o  0000 CB 00 00 00 00 00 0A 01 90 00  ", " o  0000 CB 00 00 "),
        ("apdu4j", "apdu4j-dump.txt", 13, "CB00000000000A019000", "CB00000000000A01900"),
    ];
    for (format, sample, line, from, to) in cases {
        let text = std::fs::read_to_string(data(sample)).unwrap();
        assert!(text.contains(from), "{sample} has no `{from}`");
        let bad = dir.path().join(sample);
        std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
        let out = dir.path().join(format!("{sample}.csv"));
        let r = bin().args(["trace", "import", "--from", format]).arg(&bad).arg("-o").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{sample}: {err}");
        assert_eq!(err.lines().count(), 1, "{sample}: {err}");
        assert!(err.contains(&format!("{}:{line}: ", bad.display())), "{sample}: {err}");
        assert!(!out.exists(), "{sample}: a trace was written");
    }
    // Nothing half-written is left beside the outputs.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // An existing trace is never overwritten.
    let out = dir.path().join("exists.csv");
    std::fs::write(&out, "keep").unwrap();
    let r = bin()
        .args(["trace", "import", "--from", "scriptor"])
        .arg(data("scriptor-session.txt"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep");
}

#[test]
fn a_bad_trace_stops_the_export_naming_its_line_and_writes_no_capture() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(data("pcscd-apdu-run.trace.csv")).unwrap();
    let bad = dir.path().join("bad.csv");
    // Line 4 is a wire row: spoil its status word.
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    assert!(lines[3].contains(",9000,"), "{}", lines[3]);
    lines[3] = lines[3].replacen(",9000,", ",90X0,", 1);
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("bad.pcapng");
    let r = bin().args(["trace", "export", "--pcapng"]).arg(&out).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:4: ", bad.display())), "{err}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temp file was left");
    // The good trace exports; an existing capture is never overwritten.
    let r =
        bin().args(["trace", "export", "--pcapng"]).arg(&out).arg(data("pcscd-apdu-run.trace.csv")).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r =
        bin().args(["trace", "export", "--pcapng"]).arg(&out).arg(data("pcscd-apdu-run.trace.csv")).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
}

/// tshark, which scripts/test.sh installs (scripts/deps.sh); CI must have it.
fn tshark() -> bool {
    let ok = Command::new("tshark").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "CI must run the pcapng test: tshark is missing");
        eprintln!("NOTICE: pcapng dissection test skipped (tshark not installed; scripts/test.sh installs it)");
    }
    ok
}

#[test]
fn the_pcapng_export_of_a_smoke_trace_is_dissected_apdu_by_apdu_by_tshark() {
    if !tshark() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", "profiles/virtual-lab.toml", "--run-id", "s", "-q"])
        .arg("--logs")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let trace = dir.path().join("s/trace.csv");
    let rows = cardbench::trace::read_trace(&trace).unwrap().rows;
    let pcap = dir.path().join("s.pcapng");
    let r = bin().args(["trace", "export", "--pcapng"]).arg(&pcap).arg(&trace).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = Command::new("tshark").arg("-r").arg(&pcap).arg("-V").output().unwrap();
    assert!(r.status.success(), "tshark: {}", String::from_utf8_lossy(&r.stderr));
    let v = String::from_utf8_lossy(&r.stdout);
    let count = |s: &str| v.lines().filter(|l| l.trim_end() == s).count();
    let wire = rows.iter().filter(|r| r.kind.is_wire()).count();
    let answered = rows.iter().filter(|r| r.kind.is_wire() && r.kind != RowKind::InDoubt).count();
    let atrs = rows.iter().filter(|r| !r.atr.is_empty()).count();
    assert!(wire > 100 && atrs > 0);
    assert_eq!(count("ISO 7816 Command APDU"), wire);
    assert_eq!(count("ISO 7816 Response APDU"), answered);
    assert_eq!(count("    ISO 7816 ATR"), atrs);
    assert!(!v.contains("Malformed"), "tshark found malformed packets");
    // Every row is there, with the command's name from the card spec and its bytes.
    for x in rows.iter().filter(|r| r.kind.is_wire()) {
        let name = cardbench::cmds::name(x.command[0], x.command[1]);
        let tag = format!("cardbench row {} head {} ", x.seq, x.head);
        assert!(v.lines().any(|l| l.trim().starts_with(&tag) && l.contains(name)), "no packet for row {}", x.seq);
    }
    // ISO coded commands show their instruction; CLA 80 ones are "coding is proprietary".
    assert_eq!(
        count("    Instruction: Get response (0xc0)"),
        rows.iter().filter(|r| r.kind == RowKind::GetResponse).count()
    );
    assert!(v.contains("    Instruction: Select file (0xa4)"));
    assert!(v.contains("    Class: structure according to ISO/IEC 7816, coding is proprietary (0x80)"));
    // Answers: the status words of the trace, dissected.
    let sw1 =
        |b: u8| rows.iter().filter(|r| r.kind.is_wire() && r.kind != RowKind::InDoubt && r.sw >> 8 == b as u16).count();
    assert_eq!(count("    Status Word SW1: Checking error (0x6c)"), sw1(0x6C));
    assert_eq!(count("    Status Word SW1: Normal processing (0x61)"), sw1(0x61));
}

#[test]
fn a_session_logged_by_the_real_pcscd_apdu_and_by_scriptor_imports_as_cardbench_traced_it() {
    if !available() {
        return;
    }
    if !Path::new("/usr/bin/scriptor").exists() {
        assert!(std::env::var_os("CI").is_none(), "CI installs pcsc-tools for the interop test");
        eprintln!("NOTICE: interop pcscd test skipped (scriptor not installed)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcscd_dir = dir.path().join("pcscd");
    let scriptor_stdout;
    let session = {
        let pcscd = Pcscd::start_with_args(2, &pcscd_dir, "--apdu");
        // The cards of tests/data/interop/lab.toml are card-a and card-b of vpcd-lab.toml.
        let _a = Bridge::start("card-a", 0, 0);
        let _b = Bridge::start("card-b", 1, 0);
        wait_readers_with_cards(2);
        let r = bin()
            .args(["run", "tests/data/interop/plan.toml", "--profile", "tests/data/interop/lab.toml"])
            .args(["--run-id", "live", "-q", "--logs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "run: {}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        let r = Command::new("scriptor")
            .args(["-r", "cardbench vpcd 0 00 00"])
            .arg(data("scriptor-in.txt"))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(r.status.success(), "scriptor: {}", String::from_utf8_lossy(&r.stderr));
        scriptor_stdout = String::from_utf8_lossy(&r.stdout).into_owned();
        std::fs::write(dir.path().join("scriptor.txt"), [r.stderr, r.stdout].concat()).unwrap();
        pcscd.log()
    };
    std::fs::write(dir.path().join("pcscd.log"), &session).unwrap();
    let from_pcscd = import("pcscd-apdu", &dir.path().join("pcscd.log"), dir.path());
    let from_scriptor = import("scriptor", &dir.path().join("scriptor.txt"), dir.path());
    let traced = cardbench::trace::read_trace(&dir.path().join("live/trace.csv")).unwrap().rows;
    // pcscd saw cardbench's run, then scriptor's session, in that order and byte for byte.
    let mut expected = wire(&traced);
    expected.extend(wire(&from_scriptor));
    assert_eq!(wire(&from_pcscd), expected);
    let ids = |rows: &[Exchange]| -> Vec<String> {
        rows.iter().filter(|r| r.kind.is_wire()).map(|r| r.card_id.clone()).collect()
    };
    assert_eq!(ids(&from_pcscd)[..ids(&traced).len()], ids(&traced));
    assert_eq!(ids(&from_scriptor).last().unwrap(), "CB00000000000A01");
    assert!(from_pcscd.iter().any(|r| r.kind == RowKind::GetResponse));
    assert!(from_pcscd.iter().any(|r| r.kind == RowKind::Resend6C));
    // Imported rows carry the card spec's masks, as cardbench's own rows do.
    assert_eq!(masks(&from_pcscd)[..masks(&traced).len()], masks(&traced));
    assert!(from_pcscd.iter().any(|r| !r.mask.is_empty()));

    // The same script alone on a fresh card, logged by pcscd --apdu.
    let fresh_stdout;
    let script_log = {
        let pcscd = Pcscd::start_with_args(1, &dir.path().join("pcscd2"), "--apdu");
        let _a = Bridge::start("card-a", 0, 0);
        wait_readers_with_cards(1);
        let r = scriptor();
        assert!(r.status.success(), "scriptor: {}", String::from_utf8_lossy(&r.stderr));
        fresh_stdout = String::from_utf8_lossy(&r.stdout).into_owned();
        pcscd.log()
    };
    std::fs::write(dir.path().join("pcscd-script.log"), script_log).unwrap();
    import("pcscd-apdu", &dir.path().join("pcscd-script.log"), dir.path());

    // Both imports replay: the trace, played as a card behind vpcd (`cardbench sim replay`),
    // answers the same script exactly as the reference card did, and nothing strays.
    assert!(fresh_stdout.contains("< 61 04 : 0x04 bytes of response still available."));
    assert!(scriptor_stdout.contains("\n61 10 : 0x10 bytes of response still available."));
    for (played, captured) in [("scriptor.txt.csv", &scriptor_stdout), ("pcscd-script.log.csv", &fresh_stdout)] {
        let played = dir.path().join(played);
        let mismatches = dir.path().join("mismatches.jsonl");
        let _pcscd = Pcscd::start(1, &pcscd_dir);
        let _card = Bridge::spawn(&[
            "sim",
            "replay",
            "--via",
            "vpcd",
            "--port",
            "35963",
            "--card",
            "CB00000000000A01",
            "--trace",
            played.to_str().unwrap(),
            "--mismatches",
            mismatches.to_str().unwrap(),
        ]);
        wait_readers_with_cards(1);
        let r = scriptor();
        assert!(r.status.success(), "scriptor on {}: {}", played.display(), String::from_utf8_lossy(&r.stderr));
        assert_eq!(&String::from_utf8_lossy(&r.stdout), captured, "played from {}", played.display());
        let strays = std::fs::read_to_string(&mismatches).unwrap_or_default();
        assert_eq!(strays, "", "the script strayed from {}", played.display());
    }
}

/// scriptor runs tests/data/interop/scriptor-in.txt on vpcd reader 0.
fn scriptor() -> std::process::Output {
    Command::new("scriptor").args(["-r", "cardbench vpcd 0 00 00"]).arg(data("scriptor-in.txt")).output().unwrap()
}
