//! `cardbench time` through the real PC/SC stack: pcscd with vsmartcard vpcd readers, the card
//! served by `cardbench sim vpcd` with the service-time model of its `[[card]]` entry, and a
//! second PC/SC client that tries to use the reader while the run holds it (`Head::exclusive`,
//! SCardBeginTransaction). pcscd is one per machine: everything that needs it is one test.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

#[path = "common/pcscd.rs"]
mod pcscd;
use pcscd::{available, bin, vpcd_port, wait_readers_with_cards, Bridge, Pcscd, ROOT};

/// Modelled card times of card-b (SIGN PAYMENT, READ FIELD), microseconds.
const SIGN_US: u64 = 8000;
const READ_US: u64 = 1000;
const ITERATIONS: usize = 150;

/// profiles/vpcd-lab.toml with a service-time model on card-b (the signer's card).
fn modelled_lab(dir: &Path) -> PathBuf {
    let lab = std::fs::read_to_string(Path::new(ROOT).join("profiles/vpcd-lab.toml")).unwrap();
    let at = lab.find("name = \"card-b\"").unwrap();
    let end = at + lab[at..].find("slots = [3, 4]\n").unwrap() + "slots = [3, 4]\n".len();
    let model = format!(
        "service_seed = 1\n[[card.service]]\nins = \"88\"\nus = {SIGN_US}\n[[card.service]]\nins = \"B2\"\nus = {READ_US}\n"
    );
    let p = dir.join("lab.toml");
    std::fs::write(&p, format!("{}{model}{}", &lab[..end], &lab[end..])).unwrap();
    p
}

fn spec(dir: &Path) -> PathBuf {
    let p = dir.join("sign.toml");
    std::fs::write(
        &p,
        format!(
            r#"[timing]
id = "sign-pcsc"
version = "1"
iterations = {ITERATIONS}
warmup = 2
[heads]
dut = "signer"
[[op]]
name = "cpay.sign_payment"
prepare = [{{ select = "cpay" }}, {{ apdu = "00 2A 00 BE BA ${{payment_cert}}" }}]
apdu = "80 88 00 00 10 ${{rnd16}} 00"
baseline = "80 B2 01 00 08"
[[op]]
name = "purse.read_field"
prepare = [{{ select = "purse" }}]
apdu = "80 B2 01 00 08"
"#
        ),
    )
    .unwrap();
    p
}

fn rows(p: &Path) -> Vec<csv::StringRecord> {
    match csv::Reader::from_path(p) {
        Ok(mut r) => r.records().filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

/// Wait for a state of a running child, failing only if it never comes (not a timing
/// assertion: the run lasts seconds, the guard is a minute).
fn wait_for(child: &mut Child, what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before {what}");
        assert!(t0.elapsed() < Duration::from_secs(60), "{what}: never happened");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wall(s: &str) -> SystemTime {
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_nanos(t.timestamp_nanos_opt().unwrap() as u64)
}

#[test]
fn time_through_pcscd_holds_the_reader_and_the_bridge_applies_the_cards_model() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = modelled_lab(dir.path());
    let spec = spec(dir.path());
    let _pcscd = Pcscd::start(2, &dir.path().join("pcscd"));
    let port = vpcd_port(1).to_string();
    let lab_s = lab.to_str().unwrap();
    let _bridge = Bridge::spawn(&["sim", "vpcd", "--profile", lab_s, "--card", "card-b", "--port", &port]);
    wait_readers_with_cards(1);

    let logs = dir.path().join("logs");
    let mut run = bin()
        .args(["time", spec.to_str().unwrap(), "--profile", lab_s, "--run-id", "t", "--logs"])
        .arg(&logs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The transaction is taken before the first op's prepare: once a timed exchange is in the
    // trace (flushed batch by batch), the run holds the reader.
    let trace = logs.join("t/trace.csv");
    wait_for(&mut run, "a timed exchange reached the trace", || rows(&trace).iter().any(|r| &r[18] == "op"));

    // Another application on the same reader, shared, as the run's head is.
    assert!(run.try_wait().unwrap().is_none(), "the run is still going when the other client starts");
    let sent = SystemTime::now();
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let reader = ctx
        .list_readers_owned()
        .unwrap()
        .into_iter()
        .find(|r| r.to_string_lossy() == "cardbench vpcd 1 00 00")
        .expect("reader 1");
    let card = ctx.connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY).unwrap();
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
    // SELECT PURSE: pcsc-lite does not refuse the connection or the command (no
    // SCARD_E_SHARING_VIOLATION): it holds them until the transaction ends.
    let answer =
        card.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0, 0, 0x07, 0x77, 0, 0x01], &mut buf).map(<[u8]>::to_vec);
    let answered = SystemTime::now();

    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(answer.as_deref(), Ok(&[0x90, 0x00][..]), "the other client's SELECT");

    // Its exchange came only after the run's last timed exchange (wall clock, both processes).
    let trace = rows(&trace);
    let last = trace.iter().rev().find(|r| matches!(&r[18], "op" | "baseline")).unwrap();
    let last_end = wall(&last[2]) + Duration::from_nanos(last[12].parse().unwrap());
    let first = trace.iter().find(|r| &r[18] == "op").unwrap();
    assert!(wall(&first[2]) < sent, "the other client sent while the run was timing");
    assert!(answered >= last_end, "the other client's answer came before the run's last timed exchange ended");

    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(logs.join("t/run.json")).unwrap()).unwrap();
    assert_eq!(run_json["heads"][0]["exclusive"], true, "{run_json}");

    // Samples for every op; the bridge's model is each command's least time on the wire.
    let samples = rows(&logs.join("t/samples.csv"));
    let of = |op: &str, base: &str| -> Vec<u64> {
        samples.iter().filter(|r| &r[0] == op && &r[6] == base).map(|r| r[5].parse().unwrap()).collect()
    };
    let (sign, base, read) =
        (of("cpay.sign_payment", "false"), of("cpay.sign_payment", "true"), of("purse.read_field", "false"));
    assert_eq!((sign.len(), base.len(), read.len()), (ITERATIONS, ITERATIONS, ITERATIONS));
    assert!(sign.iter().all(|&ns| ns >= SIGN_US * 1000), "SIGN PAYMENT under its modelled time");
    assert!(base.iter().chain(&read).all(|&ns| ns >= READ_US * 1000), "READ FIELD under its modelled time");
    let timing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(logs.join("t/timing.json")).unwrap()).unwrap();
    let ops: Vec<&str> = timing["ops"].as_array().unwrap().iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["cpay.sign_payment", "purse.read_field"]);
    assert!(timing["ops"][0]["card_time"]["median"].as_f64().unwrap() > 0.0);
}

/// `cardbench check` of the smoke plan on a profile; its exit code and stderr.
fn check_profile(dir: &Path, text: &str) -> (Option<i32>, String) {
    let p = dir.join("bad.toml");
    std::fs::write(&p, text).unwrap();
    let out = bin().args(["check", "test-plans/smoke.toml", "--profile"]).arg(&p).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn card_service_models_are_checked_with_their_line_and_belong_on_cards() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(modelled_lab(dir.path())).unwrap();
    // A card no head holds is checked too: the bridges serve any [[card]].
    let bad = good.replacen("ins = \"88\"", "ins = \"8\"", 1);
    let line = bad.lines().position(|l| l == "ins = \"8\"").unwrap();
    let (code, err) = check_profile(dir.path(), &bad);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("bad.toml:{line}:")), "the [[card.service]] entry's line: {err}");
    assert!(err.contains("service ins '8' is not one hex byte"), "{err}");
    // On a pcsc head the keys would do nothing: refused, pointing at them.
    let on_head = good.replacen(
        "reader = \"cardbench vpcd 1 00 00\"\n",
        "reader = \"cardbench vpcd 1 00 00\"\n[[head.service]]\nins = \"88\"\nus = 5\n",
        1,
    );
    let line = on_head.lines().position(|l| l == "[[head.service]]").unwrap() + 1;
    let (code, err) = check_profile(dir.path(), &on_head);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(err.contains("service times are for virtual heads"), "{err}");
}
