//! Cards that differ from the reference card only where card-spec.md lets a card choose
//! (docs/card-variants.md): protocol T=0 or T=1 (and with it the 61xx / 6Cxx delivery of
//! section 2.3), other ATRs, slow answers, their own randoms. The whole certification suite
//! must pass on each, in process and through real pcscd + vpcd: a case that fails one of
//! them is a false failure, and the count is printed and must be 0.

#[path = "common/pcscd.rs"]
mod pcscd;

use pcscd::{available, bin, lines_of, Pcscd};
use std::path::{Path, PathBuf};

/// An allowed variant: its name, protocol, the `[[card]]` keys and tables that make it, and
/// the ATR a head sees after power-on.
struct Variant {
    name: &'static str,
    protocol: &'static str,
    keys: String,
    atr: &'static str,
}

const REF_T0: &str = "3B89004341524442454E4348";
const REF_T1: &str = "3B89014341524442454E4348DE";
/// T=0 with TA1 = 11 (Fi 372, Di 1) and ten historical bytes "VARIANTATR".
const ATR_T0: &str = "3B9A110056415249414E54415452";
/// A T=1 ATR like a JavaCard's: TB1 TC1, TD1 and TD2 announcing T=1, IFSC FE and BWI/CWI 45
/// in TA3/TB3, nine historical bytes "JCOPVARIA", TCK.
const ATR_T1: &str = "3BE900008131FE454A434F505641524941B9";

fn variants() -> Vec<Variant> {
    let v = |name, protocol, keys: &str, atr| Variant { name, protocol, keys: keys.to_string(), atr };
    vec![
        v("t0", "T=0", "", REF_T0),
        v("t1", "T=1", "", REF_T1),
        v("t0-atr", "T=0", &format!("atr = \"{ATR_T0}\"\n"), ATR_T0),
        v("t1-atr", "T=1", &format!("atr = \"{ATR_T1}\"\n"), ATR_T1),
        // Slow answers: 2 ms per command, 400 ms per SIGN PAYMENT, 150 ms per VALUE SEND.
        v(
            "t0-slow",
            "T=0",
            "service_time_us = 2000\n\n[[card.service]]\nins = \"88\"\nus = 400000\n\n\
             [[card.service]]\nins = \"34\"\nus = 150000\n",
            REF_T0,
        ),
        v("t0-os-rng", "T=0", "card_rng = \"os\"\n", REF_T0),
        v("t1-os-rng", "T=1", "card_rng = \"os\"\n", REF_T1),
    ]
}

/// A DUT card of the certification template (test-plans/certification.toml) as variant `v`.
fn dut_card(name: &str, id: &str, v: &Variant) -> String {
    format!(
        "[[card]]\nname = \"{name}\"\nid = \"{id}\"\nprotocol = \"{}\"\npurse_counter = 50\ncpay_amount = 5000\n\
         balance = 10000\nmax_balance = 100000\nvalidity = \"2030-12-31\"\nupdate_key = 1\ntransfer_key = 2\n\
         transfer_key_limit = 6\nupdate_key_limit = 3\nslots = [3, 4]\ncert_expiry = \"2035-12-31\"\n{}\n",
        v.protocol, v.keys
    )
}

const LAB_HEAD: &str = "[keyset]\nseed = \"cardbench cert lab\"\nrevoked = [0x0003EE01]\n\n\
    [defaults]\nlogs = \"logs\"\nclock = \"2026-06-01T12:00:00Z\"\n\n";

const PEER_CARD: &str = "[[card]]\nname = \"peer-ref\"\nid = \"CB00000000000E01\"\nprotocol = \"T=1\"\n\
    balance = 5000\nupdate_key = 1\ntransfer_key = 1\n\n";

/// The in-process certification lab with its DUT as variant `v`.
fn inproc_lab(dir: &Path, v: &Variant) -> PathBuf {
    let text = format!(
        "name = \"variant-{}\"\n{LAB_HEAD}\
         [[head]]\nname = \"peer\"\ndriver = \"virtual\"\nrole = \"peer\"\ncard = \"peer-ref\"\n\n\
         [[head]]\nname = \"D1\"\ndriver = \"virtual\"\nrole = \"dut\"\ncard = \"dut-1\"\n\n{PEER_CARD}{}",
        v.name,
        dut_card("dut-1", "CB0000000000D001", v)
    );
    let p = dir.join(format!("variant-{}.toml", v.name));
    std::fs::write(&p, text).unwrap();
    p
}

/// `(cases, passed)` from a run's summary line, and the whole output for messages.
fn summary(o: &std::process::Output) -> ((u32, u32), String) {
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let line = text.lines().find(|l| l.starts_with("certification: ")).unwrap_or_else(|| panic!("{text}"));
    let num = |after: &str| -> u32 {
        let w: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let i = w.iter().position(|x| *x == after).unwrap_or_else(|| panic!("{line}"));
        w[i - 1].parse().unwrap()
    };
    ((num("cases"), num("passed")), text)
}

/// Trace rows (as string records) of `head` with `kind`.
fn rows(trace: &Path, head: &str, kind: &str) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(trace).unwrap();
    r.records().map(|x| x.unwrap()).filter(|x| &x[4] == head && &x[15] == kind).collect()
}

#[test]
fn the_certification_suite_passes_on_every_allowed_variant_in_process() {
    let tmp = tempfile::tempdir().unwrap();
    let mut false_failures = Vec::new();
    let mut responses = std::collections::BTreeMap::new();
    let all = variants();
    for v in &all {
        let lab = inproc_lab(tmp.path(), v);
        let logs = tmp.path().join("logs");
        let o = bin()
            .args(["run", "test-plans/certification.toml", "-q", "--profile", lab.to_str().unwrap()])
            .args(["--run-id", v.name, "--logs"])
            .arg(&logs)
            .output()
            .unwrap();
        let ((cases, passed), text) = summary(&o);
        if cases != passed || !o.status.success() {
            false_failures.push(format!("{}: {} of {cases} cases did not pass\n{text}", v.name, cases - passed));
        }
        // The variant is the card that answered: its ATR, its latency.
        let trace = logs.join(v.name).join("trace.csv");
        let atrs: std::collections::BTreeSet<String> =
            rows(&trace, "D1", "power-on").iter().map(|r| r[17].to_string()).collect();
        assert_eq!(atrs, [v.atr.to_string()].into_iter().collect(), "{}: the DUT's ATR", v.name);
        let commands = rows(&trace, "D1", "command");
        if v.name == "t0-slow" {
            // The modelled service time is a floor of every exchange (never a ceiling).
            let ns = |r: &csv::StringRecord| r[12].parse::<u64>().unwrap();
            assert!(commands.iter().all(|r| ns(r) >= 2_000_000), "every answer takes 2 ms or more");
            let sign: Vec<_> = commands.iter().filter(|r| r[9].starts_with("808800")).collect();
            assert!(!sign.is_empty() && sign.iter().all(|r| ns(r) >= 400_000_000), "SIGN PAYMENT takes 400 ms");
        }
        responses.insert(v.name, commands.iter().map(|r| r[10].to_string()).collect::<Vec<_>>());
    }
    // A card with its own randoms answers other bytes than the seeded reference card (the
    // terminal's randoms are seeded in process): the suite passed on other random values.
    assert_ne!(responses["t0-os-rng"], responses["t0"], "card_rng = os changes the card's randoms");
    assert_ne!(responses["t1-os-rng"], responses["t1"], "card_rng = os changes the card's randoms");
    eprintln!("allowed variants: {}, false failures: {}", all.len(), false_failures.len());
    assert!(false_failures.is_empty(), "false failures:\n{}", false_failures.join("\n"));
}

/// A plan with one case: a `tear` step with `tear`'s keys, then a DEBIT engine step.
fn tear_plan(tear: &str) -> String {
    format!(
        "[plan]\nid = \"t\"\nversion = \"1\"\nroles = [\"dut\"]\n[[case]]\nid = \"T-01\"\ntitle = \"t\"\n\
         [[case.step]]\ndo = \"tear\"\nhead = \"dut\"\n{tear}\n\
         [[case.step]]\ndo = \"engine\"\nengine = \"card_signed_payment\"\nhead = \"dut\"\namount = 1\n\
         expect = \"in-doubt\"\n"
    )
}

#[test]
fn a_tear_names_its_command_by_ins_so_t0_and_t1_cut_the_same_command() {
    use cardbench::head::virtual_head::CutPoint;
    use cardbench::plan::{StepKind, TearAt};
    let p = Path::new("t.toml");
    let plan = cardbench::plan::parse_str(p, &tear_plan("ins = \"D6\"\npoint = \"after-command\"")).unwrap();
    let at = |plan: &cardbench::plan::Plan| match &plan.cases[0].steps[0].kind {
        StepKind::Tear { at, .. } => *at,
        k => panic!("{k:?}"),
    };
    assert_eq!(at(&plan), TearAt::Command { ins: 0xD6, n: 1, point: CutPoint::AfterCommand });
    let plan = cardbench::plan::parse_str(p, &tear_plan("ins = \"34\"\nat = 2\npoint = \"before-command\"")).unwrap();
    assert_eq!(at(&plan), TearAt::Command { ins: 0x34, n: 2, point: CutPoint::BeforeCommand });
    let e = cardbench::plan::parse_str(p, &tear_plan("ins = \"D\"\npoint = \"before-command\"")).unwrap_err();
    assert!(e.to_string().contains("t.toml:11:7: ins 'D' is not one hex byte"), "{e}");
    let e = cardbench::plan::parse_str(p, &tear_plan("ins = \"D6\"\ncommit = 1")).unwrap_err();
    assert!(e.to_string().contains("`tear` needs `at` and `point` (a wire exchange), `ins` and `point`"), "{e}");

    // The cut counts only the transmits of its INS: GET RESPONSE (00 C0) passes through.
    use cardbench::head::virtual_head::counts;
    assert!(!counts(Some(0xD6), &[0x00, 0xC0, 0x00, 0x00, 0x04]));
    assert!(counts(Some(0xD6), &[0x80, 0xD6, 0x00, 0x00]));
    assert!(counts(None, &[0x00, 0xC0, 0x00, 0x00, 0x04]));
}

/// The vpcd lab: DUT head E on vpcd reader 4 and one DUT card per variant (IDs differ: the
/// batch refuses a card it certified already).
fn vpcd_lab(dir: &Path, all: &[Variant]) -> PathBuf {
    let cards: String =
        all.iter().enumerate().map(|(i, v)| dut_card(v.name, &format!("CB00C0000000A{:03X}", i + 1), v)).collect();
    let text = format!(
        "name = \"variants-vpcd\"\n{LAB_HEAD}\
         [[head]]\nname = \"E\"\ndriver = \"pcsc\"\nrole = \"dut\"\nreader = \"cardbench vpcd 4 00 00\"\n\n\
         {PEER_CARD}{cards}\
         [batch]\ndut_card = \"{}\"\npeer_card = \"peer-ref\"\nid_prefix = \"CB00C000\"\ncount = {}\n",
        all[0].name,
        all.len()
    );
    let p = dir.join("variants-vpcd.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Read lines until one contains `what` (kept in `seen`); the bound turns a hang into a failure.
fn expect_line(rx: &crossbeam_channel::Receiver<String>, seen: &mut Vec<String>, what: &str) -> String {
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(300)) {
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

/// The batch, killed if the test fails before it ended.
struct Batch(std::process::Child);

impl Drop for Batch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One batch on head E through pcscd + vpcd: the operator puts each card of `all` in E in
/// turn (`cardbench sim vpcd` serves it with its ATR, protocol, latency, randoms and seeded
/// defects), as a lab certifies a lot. The journal's cards, the logs folder, the exit status
/// and the console lines.
fn vpcd_batch(
    dir: &Path,
    all: &[Variant],
    batch: &str,
) -> (Vec<serde_json::Value>, PathBuf, std::process::ExitStatus, Vec<String>) {
    let _pcscd = Pcscd::start(6, &dir.join("pcscd"));
    let lab = vpcd_lab(dir, all);
    let logs = dir.join("logs");
    let mut child = Batch(
        bin()
            .args(["batch", "--profile", lab.to_str().unwrap(), "--plan", "test-plans/certification.toml"])
            .args(["--batch-id", batch, "-q", "--logs"])
            .arg(&logs)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = lines_of(child.0.stderr.take().unwrap());
    let mut seen = Vec::new();
    let insert = "[E] insert the next card in E (reader cardbench vpcd 4 00 00)";
    for (i, v) in all.iter().enumerate() {
        expect_line(&err, &mut seen, insert);
        let port = pcscd::vpcd_port(4).to_string();
        let _card = pcscd::Bridge::spawn(&[
            "sim",
            "vpcd",
            "--profile",
            lab.to_str().unwrap(),
            "--card",
            v.name,
            "--port",
            &port,
        ]);
        let id = format!("CB00C0000000A{:03X}", i + 1);
        expect_line(&err, &mut seen, &format!("[E] card {id} detected: testing (#{})", i + 1));
        if i + 1 < all.len() {
            expect_line(&err, &mut seen, &format!("[E] remove card {id} ("));
        } else {
            // The last card: no removal prompt, the batch is complete.
            expect_line(&err, &mut seen, "[E] done: ");
        }
        // The bridge stops here: the card is taken out.
    }
    let status = child.0.wait().unwrap();
    let journal = std::fs::read_to_string(logs.join(batch).join("journal.jsonl")).unwrap();
    let cards: Vec<serde_json::Value> = journal.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(cards.len(), all.len(), "{journal}");
    (cards, logs, status, seen)
}

#[test]
fn the_certification_suite_passes_on_every_allowed_variant_through_pcscd_and_vpcd() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let all = variants();
    let (cards, logs, status, seen) = vpcd_batch(tmp.path(), &all, "VARIANTS");
    let mut false_failures = Vec::new();
    for (i, v) in all.iter().enumerate() {
        let c = cards.iter().find(|c| c["index"] == i as u64 + 1).unwrap();
        let cases = c["cases"].as_array().unwrap();
        let bad: Vec<String> = cases
            .iter()
            .filter(|k| k["status"] != "passed")
            .map(|k| format!("{} {}: {}", k["id"], k["status"], k["message"]))
            .collect();
        if c["verdict"] != "pass" || !bad.is_empty() {
            false_failures.push(format!(
                "{}: {} of {} cases did not pass: {}",
                v.name,
                bad.len(),
                cases.len(),
                bad.join("; ")
            ));
        }
        // The card that answered was the variant: its ATR is in its trace.
        let trace = logs.join("VARIANTS").join(c["trace"].as_str().unwrap());
        let atrs: std::collections::BTreeSet<String> =
            rows(&trace, "E", "power-on").iter().map(|r| r[17].to_string()).filter(|a| !a.is_empty()).collect();
        assert_eq!(
            atrs,
            [v.atr.to_string()].into_iter().collect(),
            "{}: the ATR through pcscd\n{}",
            v.name,
            std::fs::read_to_string(&trace)
                .unwrap()
                .lines()
                .filter(|l| l.contains(",E,"))
                .take(8)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The slow variant was slow through pcscd too (`cardbench sim vpcd` applies the card's model).
    let slow = cards.iter().find(|c| c["card_id"] == "CB00C0000000A005").unwrap();
    let sign = rows(&logs.join("VARIANTS").join(slow["trace"].as_str().unwrap()), "E", "command")
        .into_iter()
        .filter(|r| r[9].starts_with("808800"))
        .collect::<Vec<_>>();
    assert!(!sign.is_empty() && sign.iter().all(|r| r[12].parse::<u64>().unwrap() >= 400_000_000), "{sign:?}");
    eprintln!("allowed variants through pcscd + vpcd: {}, false failures: {}", all.len(), false_failures.len());
    assert!(false_failures.is_empty(), "false failures:\n{}", false_failures.join("\n"));
    assert_eq!(status.code(), Some(0), "{}", seen.join("\n"));
}

#[test]
fn a_variant_atr_that_is_malformed_or_announces_another_protocol_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    for (keys, want) in [
        ("atr = \"3B89014341524442454E4348DE\"\n", "atr: the ATR announces T=1 and the card follows T=0"),
        ("atr = \"3B89004341524442454E43\"\n", "atr: T0 announces 9 historical bytes, the ATR has 8 bytes"),
        ("atr = \"3B8900ZZ\"\n", "atr '3B8900ZZ' is not hex"),
        ("card_rng = \"dev\"\n", "card_rng 'dev' is not seeded or os"),
    ] {
        let v = Variant { name: "bad", protocol: "T=0", keys: keys.into(), atr: "" };
        let lab = inproc_lab(tmp.path(), &v);
        let text = std::fs::read_to_string(&lab).unwrap();
        let line = text.lines().position(|l| l == keys.trim_end()).unwrap() + 1;
        let o = bin()
            .args(["check", "test-plans/certification.toml", "--profile", lab.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{keys}: {err}");
        let at = format!("variant-bad.toml:{line}:");
        assert!(err.contains(&at) && err.contains(want), "{keys}: {at} … {want} in {err}");
    }
}

#[test]
fn every_seeded_defect_fails_the_suite_through_pcscd_and_vpcd() {
    // The in-process matrix (tests/suite.rs) names the cases that catch each defect; through
    // real pcscd every defect must still make its card fail, so that no rule's check depends
    // on the in-process head (delivery, GET RESPONSE, extended APDUs are the transport's).
    // The mute card is the one defect that is not a failure: docs/defects.md, "A mute card".
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    use cardbench::card::defects::Defect;
    let defects: Vec<Defect> = Defect::ALL.iter().copied().filter(|d| *d != Defect::MuteAfterSelect).collect();
    let all: Vec<Variant> = defects
        .iter()
        .map(|d| Variant {
            name: d.name(),
            protocol: "T=0",
            keys: format!("defects = [\"{}\"]\n", d.name()),
            atr: REF_T0,
        })
        .collect();
    let (cards, _logs, status, seen) = vpcd_batch(tmp.path(), &all, "DEFECTS");
    let mut escaped = Vec::new();
    for (i, d) in defects.iter().enumerate() {
        let c = cards.iter().find(|c| c["index"] == i as u64 + 1).unwrap();
        // A defective card fails cases; an aborted verdict would be the bench giving up.
        if c["verdict"] != "fail" {
            escaped.push(format!("{}: verdict {} ({})", d.name(), c["verdict"], c["reason"]));
        }
    }
    eprintln!("seeded defects through pcscd + vpcd: {}, not failed: {}", defects.len(), escaped.len());
    assert!(escaped.is_empty(), "defects the suite did not fail through PC/SC:\n{}", escaped.join("\n"));
    assert_eq!(status.code(), Some(1), "{}", seen.join("\n"));
}
