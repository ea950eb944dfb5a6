//! The PC/SC path through the real stack: a private pcscd with vsmartcard vpcd readers, the
//! reference card served by `cardbench sim vpcd`, and cardbench (and pcsc-tools' scriptor)
//! as PC/SC clients. pcscd is one per machine, so everything runs in one test, in order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/pcscd.rs"]
mod pcscd;
use pcscd::{available, bin, wait_readers_with_cards, Bridge, Pcscd, ROOT};

fn trace_rows(p: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(p).unwrap();
    // Everything but run id, wall time, monotonic offset and duration; of the command and the
    // response only the header and the lengths, because a lab with a real head draws the
    // terminal's randoms from the OS (S34, challenges), so data derived from them differs.
    r.records()
        .map(|x| x.unwrap())
        .map(|x| {
            let mut row: Vec<String> = [4, 5, 6, 7, 8, 11, 13, 14, 15, 16].iter().map(|i| x[*i].to_string()).collect();
            row.push(x[9].get(..8).unwrap_or(&x[9]).to_string());
            row.push(format!("command {} bytes, response {} bytes", x[9].len() / 2, x[10].len() / 2));
            row
        })
        .collect()
}

/// A plan whose cases alternate between heads A and B, `rounds` cases each: READ (select
/// and read the purse) and an assertion on the counter.
fn alternating_plan(rounds: usize) -> String {
    let mut p = String::from("[plan]\nid = \"alternate\"\nversion = \"1.0.0\"\nroles = [\"A\", \"B\"]\n");
    for i in 1..=rounds {
        for h in ["A", "B"] {
            p += &format!(
                "\n[[case]]\nid = \"{h}-{i}\"\ntitle = \"purse on {h}\"\n[[case.step]]\ndo = \"read\"\nhead = \"{h}\"\n\
                 state = \"purse\"\nas = \"p\"\n[[case.step]]\ndo = \"assert\"\nthat = \"p.counter > 0\"\n"
            );
        }
    }
    p
}

/// profiles/vpcd-lab.toml with `timeout_ms` on every PC/SC head.
fn lab_with_timeout(dir: &Path, ms: u64) -> PathBuf {
    let lab = std::fs::read_to_string(Path::new(ROOT).join("profiles/vpcd-lab.toml")).unwrap();
    let lab = lab.replace("\nreader = \"cardbench vpcd", &format!("\ntimeout_ms = {ms}\nreader = \"cardbench vpcd"));
    let p = dir.join("lab-timeout.toml");
    std::fs::write(&p, lab).unwrap();
    p
}

/// Wait for a child, failing only if it is truly hung (the guard is not a timing assertion:
/// the run takes a few seconds).
fn wait_guarded(mut child: Child, what: &str) -> std::process::Output {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn pcsc_timeout_ms_is_validated_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = lab_with_timeout(dir.path(), 0);
    let text = std::fs::read_to_string(&p).unwrap();
    let line = text.lines().position(|l| l.starts_with("timeout_ms = 0")).unwrap() + 1;
    let out = bin().args(["check", "test-plans/smoke.toml", "--profile"]).arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&format!("lab-timeout.toml:{line}:14: timeout_ms 0 is out of range (1 to 600000 milliseconds)")),
        "{err}"
    );
}

#[test]
fn pcsc_through_pcscd_and_vpcd() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pcscd = Pcscd::start(6, &tmp.path().join("pcscd"));

    // 0. Presence events: readers at start, then a card inserted and removed (a bridge started
    //    and stopped), as `cardbench heads --watch` reports them.
    {
        let watch = bin().args(["heads", "--watch", "--seconds", "5"]).stdout(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(800));
        let b = Bridge::start("card-a", 3, 0);
        wait_readers_with_cards(1);
        drop(b);
        wait_readers_with_cards(0);
        let out = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
        let pos = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("'{needle}' not in:\n{out}"));
        let added = pos("reader added    cardbench vpcd 3 00 00");
        let inserted = pos("card inserted   cardbench vpcd 3 00 00  3B89004341524442454E4348");
        let removed = pos("card removed    cardbench vpcd 3 00 00");
        assert!(added < inserted && inserted < removed, "events in order:\n{out}");
    }

    // 1. The smoke plan through PC/SC gives the same rows as in process, apart from timing.
    let bridges: Vec<Bridge> = ["card-a", "card-b", "card-c", "card-d"]
        .iter()
        .enumerate()
        .map(|(i, c)| Bridge::start(c, i as u32, 0))
        .collect();
    let listing = wait_readers_with_cards(4);
    assert!(listing.contains("cardbench vpcd 0 00 00"), "{listing}");
    assert!(listing.contains("3B89004341524442454E4348"), "heads lists the vpcd readers with ATRs:\n{listing}");
    let logs = tmp.path().join("logs");
    for (profile, id) in [("profiles/vpcd-lab.toml", "pcsc"), ("profiles/virtual-lab.toml", "inproc")] {
        let out = bin()
            .args(["run", "test-plans/smoke.toml", "-q", "--profile", profile, "--run-id", id, "--logs"])
            .arg(&logs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{profile}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (a, b) = (trace_rows(&logs.join("pcsc/trace.csv")), trace_rows(&logs.join("inproc/trace.csv")));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "row {} differs between PC/SC and in-process", i + 1);
    }
    let rng = |id: &str| std::fs::read_to_string(logs.join(id).join("run.json")).unwrap();
    assert!(rng("pcsc").contains("\"terminal_rng\": \"os\""), "{}", rng("pcsc"));
    assert!(rng("inproc").contains("\"terminal_rng\": \"seeded:"), "{}", rng("inproc"));

    // 2. pcsc-tools' scriptor talks to the vpcd-bridged reference card.
    if Path::new("/usr/bin/scriptor").exists() {
        let mut child = Command::new("scriptor")
            .args(["-r", "cardbench vpcd 0 00 00"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"00A4040007A0000007770001\n80B2010008\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).to_uppercase();
        assert!(s.contains("< CB 00 00 00 00 00 0A 01 90 00 : NORMAL PROCESSING"), "scriptor:\n{s}");
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI installs pcsc-tools for the interop test");
    }
    drop(bridges);
    wait_readers_with_cards(0);

    // 3. The standard suite through PC/SC on two vpcd slots at once (batch heads E and F).
    let plan_arg = "test-plans/certification.toml";
    {
        let _e = Bridge::start("dut-e", 4, 0);
        let _f = Bridge::start("dut-f", 5, 0);
        wait_readers_with_cards(2);
        let out = bin()
            .args([
                "batch",
                "--profile",
                "profiles/vpcd-lab.toml",
                "--plan",
                plan_arg,
                "--batch-id",
                "P1",
                "--count",
                "2",
                "-q",
                "--logs",
            ])
            .arg(&logs)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let mut r = csv::Reader::from_path(logs.join("P1/summary.csv")).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        let heads: std::collections::BTreeSet<&str> = rows.iter().map(|x| &x[3]).collect();
        assert_eq!(heads, ["E", "F"].into_iter().collect(), "both PC/SC heads certified a card");
        assert!(rows.iter().all(|x| &x[4] == "pass"), "{rows:?}");
    }
    wait_readers_with_cards(0);

    // 4. A bridge stopped mid-plan: that card is 'card removed', the other card finishes.
    {
        let _e = Bridge::start("dut-e", 4, 1000);
        let mut f = Bridge::start("dut-f", 5, 1000);
        wait_readers_with_cards(2);
        let mut child = bin()
            .args([
                "batch",
                "--profile",
                "profiles/vpcd-lab.toml",
                "--plan",
                plan_arg,
                "--batch-id",
                "P2",
                "--count",
                "2",
                "-q",
                "--logs",
            ])
            .arg(&logs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Let both cards get well into the plan, then pull F's card.
        let f_trace = |logs: &Path| -> usize {
            std::fs::read_dir(logs.join("P2/cards"))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| {
                            std::fs::read_to_string(e.path().join("trace.csv")).map(|s| s.lines().count()).unwrap_or(0)
                        })
                        .min()
                        .unwrap_or(0)
                })
                .unwrap_or(0)
        };
        let t0 = Instant::now();
        while f_trace(&logs) < 30 {
            assert!(t0.elapsed() < Duration::from_secs(30), "batch did not start");
            assert!(child.try_wait().unwrap().is_none(), "batch ended before a card could be pulled");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = f.0.kill();
        let _ = f.0.wait();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "a card was aborted: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let mut r = csv::Reader::from_path(logs.join("P2/summary.csv")).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        let by_head = |h: &str| {
            rows.iter().find(|x| &x[3] == h).unwrap_or_else(|| panic!("no card on head {h}: {rows:?}")).clone()
        };
        let (e, f) = (by_head("E"), by_head("F"));
        assert_eq!(&e[4], "pass", "the other head's card finished: {e:?}");
        assert_eq!(&f[4], "aborted", "{f:?}");
        assert!(f[6].contains("card removed") || f[6].contains("no card"), "reason names the removal: {:?}", &f[6]);
        // Its trace stays parseable.
        let t = logs.join("P2").join(&f[13]);
        let mut tr = csv::Reader::from_path(&t).unwrap();
        assert!(tr.records().all(|x| x.is_ok()), "{} parses", t.display());
    }

    wait_readers_with_cards(0);

    // 5. A stalled card (the bridge stops answering, connection open) on head A of a run over
    //    heads A and B: A's exchange ends at the profile's deadline with a timeout, B goes on.
    let timeout_ms = 1500;
    let lab = lab_with_timeout(tmp.path(), timeout_ms);
    let plan = tmp.path().join("alternate.toml");
    std::fs::write(&plan, alternating_plan(4)).unwrap();
    {
        // Head A answers identify (2 APDUs) and case A-1 (3: SELECT, READ ALL, its 6C re-send).
        let _a = Bridge::start_with("card-a", 0, &["--stall-after", "5"]);
        let _b = Bridge::start("card-b", 1, 0);
        wait_readers_with_cards(2);
        let child = bin()
            .args(["run", plan.to_str().unwrap(), "--profile", lab.to_str().unwrap(), "--run-id", "stall", "--logs"])
            .arg(&logs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_guarded(child, "a run with a stalled card");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let line = |id: &str| {
            stdout
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(id))
                .unwrap_or_else(|| panic!("{id}:\n{stdout}"))
        };
        assert!(line("A-1").starts_with("PASS"), "{stdout}");
        let a2 = line("A-2");
        assert!(a2.starts_with("ERR") && a2.contains("head A: timeout after"), "{stdout}");
        // It waited the deadline out (not less) before giving up.
        let secs: f64 = a2.rsplit("timeout after ").next().unwrap().trim_end_matches('s').parse().unwrap();
        assert!(secs >= timeout_ms as f64 / 1000.0, "{a2}");
        for id in ["B-1", "B-2", "B-3", "B-4"] {
            assert!(line(id).starts_with("PASS"), "head B goes on: {stdout}");
        }
        // A's later cases are not run (its card's state is unknown), B's are.
        for id in ["A-3", "A-4"] {
            assert!(line(id).contains("not run"), "{stdout}");
        }
        // The stalled command is an in-doubt row naming the timeout, A's last; B's rows go on.
        let mut r = csv::Reader::from_path(logs.join("stall/trace.csv")).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        let wire = |x: &csv::StringRecord| ["command", "get-response", "resend-6c", "in-doubt"].contains(&&x[15]);
        let a_rows: Vec<_> = rows.iter().filter(|x| &x[4] == "A" && wire(x)).collect();
        assert_eq!(a_rows.len(), 6, "A's 5 answered exchanges and the stalled one: {a_rows:?}");
        // Recovery's attempt to power the stalled card again is a row too, with its error.
        let a_power: Vec<_> = rows.iter().filter(|x| &x[4] == "A" && &x[15] == "power-on").collect();
        assert!(a_power.last().is_some_and(|x| &x[7] == "recover" && x[16].contains("timeout")), "{a_power:?}");
        let stalled = a_rows[5];
        assert_eq!(
            (&stalled[7], &stalled[9], &stalled[10], &stalled[11], &stalled[15]),
            ("A-2", "00A4040007A0000007770001", "", "", "in-doubt"),
            "{stalled:?}"
        );
        assert!(stalled[16].contains("timeout after"), "{stalled:?}");
        assert!(a_rows[..5].iter().all(|x| &x[15] != "in-doubt"), "{a_rows:?}");
        assert_eq!(rows.iter().filter(|x| &x[4] == "B" && x[7].starts_with("B-") && wire(x)).count(), 8, "{rows:?}");
    }
    wait_readers_with_cards(0);

    // 6. The same through the head itself: after the timeout the card takes no command until
    //    it has been reset; the reset waits for the stuck reader, which frees up when the
    //    stalled card goes away; a fresh card is then powered and answers.
    {
        use cardbench::head::{pcsc_head::PcscHead, pcsc_head::Share, Head, HeadError};
        let select = hex::decode("00A4040007A0000007770001").unwrap();
        let a = Bridge::start_with("card-a", 0, &["--stall-after", "1"]);
        wait_readers_with_cards(1);
        let mut head = PcscHead::new("A", "cardbench vpcd 0 00 00", Share::Shared, pcsc::Protocols::ANY)
            .with_timeout(Duration::from_millis(500));
        head.power_on().unwrap();
        assert_eq!(head.transmit(&select).unwrap().response, [0x90, 0x00]);
        match head.transmit(&select) {
            Err(HeadError::Timeout(d)) => assert!(d >= Duration::from_millis(500), "{d:?}"),
            other => panic!("stalled exchange: {other:?}"),
        }
        let e = head.transmit(&select).unwrap_err();
        assert!(!e.maybe_delivered() && e.to_string().contains("not been reset"), "no command before a reset: {e}");
        assert!(matches!(head.power_on(), Err(HeadError::Timeout(_))), "the reader is still stuck");
        assert!(matches!(head.power_off(), Err(HeadError::Timeout(_))), "unpowering needs the reader too");
        drop(a);
        wait_readers_with_cards(0);
        let _a = Bridge::start("card-a", 0, 0);
        wait_readers_with_cards(1);
        assert_eq!(head.power_on().unwrap(), hex::decode("3B89004341524442454E4348").unwrap());
        assert_eq!(head.transmit(&select).unwrap().response, [0x90, 0x00]);

        // 7. pcscd dies: the head is gone (service stopped), also while pcscd is down; when
        //    pcscd is back, the next power_on reconnects (new context, reader, card).
        pcscd.kill();
        assert_eq!(head.transmit(&select).unwrap_err(), HeadError::ServiceStopped);
        assert_eq!(head.power_on().unwrap_err(), HeadError::ServiceStopped);
        pcscd.start_again();
        wait_readers_with_cards(1);
        head.power_on().unwrap();
        assert_eq!(head.transmit(&select).unwrap().response, [0x90, 0x00]);
        // The head lets the card go before its bridge stops: in the other order (a reset sent
        // to a card already gone) pcscd did not see the next bridge's card on that reader.
        drop(head);
    }
    wait_readers_with_cards(0);

    // 8. pcscd dies in the middle of a run: the head is gone (the case ends with "reader service
    //    stopped" and nothing more is sent to that card), not a per-case error.
    {
        let _a = Bridge::start("card-a", 0, 20_000);
        let _b = Bridge::start("card-b", 1, 20_000);
        wait_readers_with_cards(2);
        let plan = tmp.path().join("alternate-long.toml");
        std::fs::write(&plan, alternating_plan(20)).unwrap();
        let child = bin()
            .args(["run", plan.to_str().unwrap(), "--profile", lab.to_str().unwrap(), "--run-id", "kill", "--logs"])
            .arg(&logs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let trace = logs.join("kill/trace.csv");
        let t0 = Instant::now();
        while std::fs::read_to_string(&trace).map(|s| s.lines().count()).unwrap_or(0) < 10 {
            assert!(t0.elapsed() < Duration::from_secs(30), "run did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        pcscd.kill();
        let out = wait_guarded(child, "a run whose pcscd died");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The bench could not run, not the cards failed: exit 2 naming a head and the hint.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
        assert!(
            stderr.contains("run kill could not finish: head ") && stderr.contains("is pcscd running?"),
            "{stderr}"
        );
        let errs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ERR")).collect();
        assert!(!errs.is_empty() && errs[0].contains("reader service stopped"), "{stdout}");
        // The head whose exchange met the dead service runs nothing more: its later cases are
        // "not run", not sent and failed one by one.
        let gone = errs[0].split_whitespace().nth(2).unwrap().to_string();
        let after: Vec<&str> = stdout.lines().skip_while(|l| *l != errs[0]).skip(1).collect();
        assert!(after.iter().filter(|l| l.contains(&gone)).all(|l| l.contains("not run")), "{stdout}");
        assert!(!after.iter().any(|l| l.starts_with("PASS")), "{stdout}");
    }
    drop(pcscd);
}

/// The template DUT of profiles/vpcd-lab.toml under another name and ID, with extra lines.
fn dut_card(name: &str, id: &str, extra: &str) -> String {
    format!(
        "\n[[card]]\nname = \"{name}\"\nid = \"{id}\"\nprotocol = \"T=0\"\npurse_counter = 50\ncpay_amount = 5000\n\
         balance = 10000\nmax_balance = 100000\nvalidity = \"2030-12-31\"\nupdate_key = 1\ntransfer_key = 2\n\
         transfer_key_limit = 6\nupdate_key_limit = 3\nslots = [3, 4]\ncert_expiry = \"2035-12-31\"\n{extra}"
    )
}

/// A batch over PC/SC heads E and F (profile `timeout_ms` 1500) with cards that stop
/// answering (docs/defects.md, "A mute card"). E's first card hangs in the middle of the
/// plan (bridge `--stall-after`): that case ends at the deadline (`timeout after`, in-doubt
/// row), the card's verdict is `aborted`, and the operator is asked to take it out. E's next
/// card hangs right after its first SELECT (seeded defect `mute-after-select`), before it
/// could be identified: it is refused with a notice, not a bench failure. E's third card and
/// F's card pass, and the reports name every card that got a verdict.
#[test]
fn a_mute_card_through_pcscd_ends_at_the_deadline_and_the_batch_goes_on() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pcscd = Pcscd::start(6, &tmp.path().join("pcscd"));
    let timeout_ms = 1500;
    let lab = lab_with_timeout(tmp.path(), timeout_ms);
    let mut profile = std::fs::read_to_string(&lab).unwrap();
    profile += &dut_card("dut-mute", "CB00C000000000AD", "defects = [\"mute-after-select\"]\n");
    profile += &dut_card("dut-g", "CB00C00000000010", "");
    std::fs::write(&lab, profile).unwrap();
    let lab_arg = lab.to_str().unwrap().to_string();
    let bridge = |card: &str, reader: u32, extra: &[&str]| {
        let port = pcscd::vpcd_port(reader).to_string();
        let mut args = vec!["sim", "vpcd", "--profile", &lab_arg, "--card", card, "--port", &port];
        args.extend_from_slice(extra);
        Bridge::spawn(&args)
    };
    // E's card answers identification and the first reads, then never again.
    let mut e = bridge("dut-e", 4, &["--stall-after", "30"]);
    let f = bridge("dut-f", 5, &[]);
    wait_readers_with_cards(2);
    let logs = tmp.path().join("logs");
    let mut child = bin()
        .args(["batch", "--profile", &lab_arg, "--plan", "test-plans/robustness.toml", "--batch-id", "MUTE"])
        .args(["--count", "3", "-q", "--logs"])
        .arg(&logs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The operator's console (stderr) tells when to swap E's card.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let t0 = Instant::now();
    // Until `n` console lines contain `what`.
    let wait_for = |what: &str, n: usize, seen: &mut Vec<String>| {
        while seen.iter().filter(|l| l.contains(what)).count() < n {
            // A guard against a hung batch, not a timing assertion.
            assert!(t0.elapsed() < Duration::from_secs(180), "no '{what}' #{n} on the console:\n{}", seen.join("\n"));
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push(l);
            }
        }
    };
    let next = "[E] insert the next card in E";
    wait_for("[E] remove card CB00C0000000000E (aborted) from E", 1, &mut seen);
    drop(e);
    // E's first prompt came before it saw its first card; the second asks for the next one.
    wait_for(next, 2, &mut seen);
    e = bridge("dut-mute", 4, &[]);
    wait_for("[E] remove card unidentified (refused) from E", 1, &mut seen);
    drop(e);
    wait_for(next, 3, &mut seen);
    let _g = bridge("dut-g", 4, &[]);
    wait_for("[E] done:", 1, &mut seen);
    // F waited for its certified card to be taken out while E's cards came and went.
    drop(f);
    let status = {
        let t = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "batch did not end:\n{}", seen.join("\n"));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    reader.join().unwrap();
    seen.extend(rx.try_iter());
    let console = seen.join("\n");
    assert_eq!(status.code(), Some(1), "an aborted card: {console}");
    assert!(
        console.contains("the card in head E (cardbench vpcd 4 00 00) does not answer (timeout after"),
        "the silent card is named, not a bench failure: {console}"
    );
    let mut r = csv::Reader::from_path(logs.join("MUTE/summary.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let by_id = |id: &str| rows.iter().find(|x| &x[2] == id).unwrap_or_else(|| panic!("no {id}: {rows:?}")).clone();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let stalled = by_id("CB00C0000000000E");
    assert_eq!((&stalled[3], &stalled[4]), ("E", "aborted"), "{stalled:?}");
    // The case met the silence and waited the deadline out, not less.
    let reason = &stalled[6];
    let secs: f64 = reason
        .split("timeout after ")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("reason names the timeout: {reason}"));
    assert!(reason.starts_with("RB-") && secs >= timeout_ms as f64 / 1000.0, "{reason}");
    for (id, head) in [("CB00C0000000000F", "F"), ("CB00C00000000010", "E")] {
        let x = by_id(id);
        assert_eq!((&x[3], &x[4]), (head, "pass"), "{x:?}");
    }
    // The stalled command is on record, in doubt, naming the timeout; after it at most the
    // runner's one recovery attempt reached the card.
    let mut t = csv::Reader::from_path(logs.join("MUTE").join(&stalled[13])).unwrap();
    let trace: Vec<csv::StringRecord> = t.records().map(|x| x.unwrap()).collect();
    let wire: Vec<_> = trace
        .iter()
        .filter(|x| &x[4] == "E" && ["command", "get-response", "resend-6c", "in-doubt"].contains(&&x[15]))
        .collect();
    let silent = wire.iter().position(|x| &x[15] == "in-doubt").expect("an in-doubt row");
    assert!(wire[silent][16].contains("timeout after"), "{:?}", wire[silent]);
    let after = &wire[silent + 1..];
    assert!(after.len() <= 1 && after.iter().all(|x| &x[15] == "in-doubt"), "{after:?}");
    let junit = std::fs::read_to_string(logs.join("MUTE/junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 3);
    drop(pcscd);
}
