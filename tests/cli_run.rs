//! The headless run as a user sees it: exit codes, the trace on disk, errors for bad input.

use cardbench::apdu::{Command, Response};
use cardbench::keys::Keyset;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command as Proc;

fn bin() -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn rows(path: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        cardbench::trace::HEADER.to_vec(),
        "trace header follows docs/trace-format.md"
    );
    r.records().map(|x| x.unwrap()).collect()
}

#[test]
fn smoke_plan_runs_green_and_leaves_a_schema_conformant_trace() {
    let logs = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", "profiles/virtual-lab.toml", "--run-id", "R1", "--logs"])
        .arg(logs.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("13 cases, 13 passed, 0 failed"), "{stdout}");
    let rows = rows(&logs.path().join("R1/trace.csv"));
    assert!(rows.len() > 100, "{} rows", rows.len());
    let mut steps = BTreeSet::new();
    let mut last_seq = 0;
    let mut last_mono = 0;
    let mut steps_opened = 0;
    for r in &rows {
        assert_eq!(&r[0], "R1");
        let seq: u64 = r[1].parse().unwrap();
        assert_eq!(seq, last_seq + 1, "sequence numbers are dense and ordered");
        last_seq = seq;
        chrono::DateTime::parse_from_rfc3339(&r[2]).expect("wall time is RFC 3339");
        assert_eq!(r[2].split('.').nth(1).map(|f| f.len()), Some(7), "microseconds + Z: {}", &r[2]);
        let mono: u64 = r[3].parse().unwrap();
        assert!(mono >= last_mono, "monotonic offsets never go back");
        last_mono = mono;
        assert!(["A", "B", "C", "D"].contains(&&r[4]));
        assert_eq!(r.len(), 21, "21 columns");
        match &r[15] {
            // A plan step opens with its resolved parameters; power rows carry the ATR.
            "step" => {
                assert!(r[13].starts_with("do="), "step parameters: {:?}", r);
                assert!(r[18].starts_with('#') && r[19].parse::<u32>().unwrap() >= 1, "{r:?}");
                steps_opened += 1;
                continue;
            }
            "power-on" | "warm-reset" => {
                assert!(r[17].starts_with("3B") && r[9].is_empty() && r[11].is_empty(), "{r:?}");
                continue;
            }
            "power-off" | "insert" | "remove" => {
                assert!(r[9].is_empty() && r[11].is_empty(), "{r:?}");
                continue;
            }
            k => assert!(["command", "get-response", "resend-6c"].contains(&k), "{r:?}"),
        }
        // The identify rows are how the runner learns the card ID.
        assert!(r[5].len() == 16 || &r[7] == "identify", "card id on every row after identification");
        assert_eq!(&r[6], "smoke");
        let cmd = Command::parse(&hex::decode(&r[9]).unwrap()).expect("command parses as an APDU");
        let mut resp = hex::decode(&r[10]).unwrap();
        resp.extend(hex::decode(&r[11]).unwrap());
        let resp = Response::parse(&resp).expect("response parses as an APDU");
        assert_eq!(&r[14], cardbench::cmds::name(cmd.cla, cmd.ins));
        let _ = resp;
        let d: u64 = r[12].parse().unwrap();
        assert!(d > 0, "duration > 0 on row {seq}");
        steps.insert(r[8].to_string());
    }
    let expected = [
        "select",
        "S1",
        "S1/S2",
        "S3",
        "S4",
        "S11-S14",
        "S18.S1/S2",
        "S18.S3",
        "S18.S4",
        "S21",
        "S31",
        "S34/S24",
        "S38",
        "S1001",
        "S1002/S1101A",
        "S1002/S1101B",
        "S1004/S1102A",
        "S1005/S1102B",
        "S1006/S1103A",
        "S1104A",
        "S3001",
        "S3004/S3102A",
        "S3005/S3102B-S3103B",
        "S3006/S3103A-S3104A",
        "S3105A",
        "S6004/S6102A",
        "S6005/S6102B",
        "S6006/S6103A",
        "S6104A",
        "S8004/S8102A",
        "S8005/S8102B-S8103B",
        "S8006/S8103A-S8104A",
        "S8105A",
        "S5004/S5102A",
        "S5006/S5103A-S5104A",
        "S5105A",
        "S4004/S4102A",
        "S4006/S4103A",
        "S4104A",
        "S7001",
        "S2001/S2101A-S2102A",
        "S2002/S2101B-S2103B",
        "S2003/S2103A-S2105A",
        "S2004/S2104B-S2105B",
    ];
    assert!(steps_opened >= 13, "every case's steps open with a step row");
    let missing: Vec<_> = expected.iter().filter(|s| !steps.contains(**s)).collect();
    assert!(missing.is_empty(), "protocol steps missing from the trace: {missing:?}\nseen: {steps:?}");
    // Procedure bytes were exercised: 6Cxx re-sends and 61xx GET RESPONSE rows.
    assert!(rows.iter().any(|r| r[11].starts_with("6C")));
    assert!(rows.iter().any(|r| &r[14] == "GET RESPONSE"));
}

#[test]
fn trace_never_contains_a_secret() {
    let logs = tempfile::tempdir().unwrap();
    let st = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", "profiles/virtual-lab.toml", "-q", "--run-id", "S"])
        .arg("--logs")
        .arg(logs.path())
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(logs.path().join("S/trace.csv")).unwrap().to_uppercase();
    let keys = Keyset::from_seed("cardbench virtual lab", vec![]);
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    secrets.extend(keys.update_keys.values().map(|k| k.expose().to_vec()));
    secrets.extend(keys.transfer_keys.values().map(|k| k.expose().to_vec()));
    for k in [&keys.center, &keys.ca, &keys.charge.key, &keys.payment.key] {
        secrets.push(k.to_bytes().to_vec());
    }
    for id in ["CB00000000000A01", "CB00000000000B02", "CB00000000000C03", "CB00000000000D04"] {
        let id: [u8; 8] = hex::decode(id).unwrap().try_into().unwrap();
        secrets.push(keys.card_key(&id, "cpay").to_bytes().to_vec());
        secrets.push(keys.card_key(&id, "xfer").to_bytes().to_vec());
    }
    for s in secrets {
        // Any 8-byte window of a key would be a leak.
        for w in s.windows(8) {
            assert!(!text.contains(&hex::encode_upper(w)), "secret bytes in the trace");
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn expect_bad_input(args: &[&str], logs: &Path, needle: &str) {
    let out = bin().args(args).arg("--logs").arg(logs).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert_eq!(std::fs::read_dir(logs).unwrap().count(), 0, "no run folder for bad input");
}

#[test]
fn plan_typos_give_file_line_col_exit_2_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let smoke = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("test-plans/smoke.toml")).unwrap();
    let cases = [
        ("engine = \"charge\"", "engine = \"chrage\"", "unknown engine 'chrage'"),
        ("head = \"B\"", "head = \"Z\"", "no head or role 'Z'"),
        ("mode = \"public\"", "mode = \"publik\"", "unknown key_update mode 'publik'"),
        ("amount = 5000", "amount = \"5000\"", "variable '5000' is not defined"),
        ("expect = \"skipped\"", "expect = \"skip\"", "expect 'skip'"),
        ("title = \"Charge machine", "tittle = \"Charge machine", "unknown field `tittle`"),
    ];
    for (from, to, needle) in cases {
        assert!(smoke.contains(from), "{from}");
        let bad = smoke.replacen(from, to, 1);
        let line = bad.lines().position(|l| l.contains(to)).unwrap() + 1;
        let p = write(dir.path(), "bad.toml", &bad);
        let ps = p.to_str().unwrap();
        let loc = format!("{ps}:{line}:");
        expect_bad_input(&["run", ps, "--profile", "profiles/virtual-lab.toml"], logs.path(), needle);
        let out = bin()
            .args(["run", ps, "--profile", "profiles/virtual-lab.toml"])
            .arg("--logs")
            .arg(logs.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&loc), "'{to}' should be located at {loc}: {err}");
    }
}

#[test]
fn profile_errors_are_located_too() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let lab = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/virtual-lab.toml")).unwrap();
    let bad = lab.replacen("id = \"CB00000000000B02\"", "id = \"CB0000000000B02\"", 1);
    let p = write(dir.path(), "lab.toml", &bad);
    let line = bad.lines().position(|l| l.contains("CB0000000000B02")).unwrap() + 1;
    expect_bad_input(
        &["run", "test-plans/smoke.toml", "--profile", p.to_str().unwrap()],
        logs.path(),
        &format!("lab.toml:{line}:6: card id 'CB0000000000B02' is not 16 hex digits"),
    );
    let bad = lab.replacen("driver = \"virtual\"", "driver = \"usb\"", 1);
    let p = write(dir.path(), "lab2.toml", &bad);
    expect_bad_input(
        &["run", "test-plans/smoke.toml", "--profile", p.to_str().unwrap()],
        logs.path(),
        "unknown head driver 'usb'",
    );
    expect_bad_input(
        &["run", "test-plans/smoke.toml", "--profile", "profiles/does-not-exist.toml"],
        logs.path(),
        "does-not-exist.toml:1:1: cannot read",
    );
}

#[test]
fn a_failing_expectation_exits_1_with_the_step_named() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let plan = r#"
[plan]
id = "overspend"
version = "1"

[[case]]
id = "charge"
[[case.step]]
do = "engine"
engine = "charge"
head = "A"
amount = 10

[[case]]
id = "pay-too-much"
[[case.step]]
do = "engine"
engine = "pay"
head = "A"
amount = 11
"#;
    let p = write(dir.path(), "p.toml", plan);
    let out = bin()
        .args(["run", p.to_str().unwrap(), "--profile", "profiles/virtual-lab.toml", "--logs"])
        .arg(logs.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL pay-too-much"), "{stdout}");
    assert!(stdout.contains("rejected:insufficient-value"), "{stdout}");
    // Expecting the rejection turns it into a pass.
    let p = write(dir.path(), "p2.toml", &format!("{plan}expect = \"rejected:insufficient-value\"\n"));
    let st = bin()
        .args(["run", p.to_str().unwrap(), "--profile", "profiles/virtual-lab.toml", "-q", "--logs"])
        .arg(logs.path())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
}

#[test]
fn keys_init_writes_a_private_keyset_that_profiles_can_load() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let kd = dir.path().join("keys");
    let out = bin().args(["keys", "init"]).arg(&kd).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = std::fs::metadata(kd.join("keyset.toml")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(kd.join("keyset.toml")).unwrap();
    assert!(text.starts_with("# cardbench keyset: TEST KEYS ONLY"));
    assert!(text.contains("test_keys = true"));
    for f in ["center.pub", "ca.pub", "charge.cvc", "payment.cvc", "crl.bin"] {
        assert!(kd.join(f).exists(), "{f}");
    }
    let cvc = std::fs::read(kd.join("charge.cvc")).unwrap();
    let cert = cardbench::crypto::cert::Certificate::parse(&cvc).unwrap();
    let center = cardbench::crypto::sig::decode_point(&std::fs::read(kd.join("center.pub")).unwrap()).unwrap();
    cert.verify_signature(&center).unwrap();
    // Nothing secret on stdout.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ks = Keyset::load(&kd.join("keyset.toml")).unwrap();
    assert!(!stdout.to_uppercase().contains(&hex::encode_upper(ks.center.to_bytes())));
    // A second init refuses to overwrite.
    let again = bin().args(["keys", "init"]).arg(&kd).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    // A profile using the file keyset runs the smoke plan.
    let lab = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/virtual-lab.toml")).unwrap();
    let lab = lab.replacen("seed = \"cardbench virtual lab\"", "path = \"keys/keyset.toml\"", 1).replacen(
        "revoked = [0x0000EE05]",
        "",
        1,
    );
    let p = write(dir.path(), "lab.toml", &lab);
    let logs = dir.path().join("logs");
    let out = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", p.to_str().unwrap(), "-q", "--logs"])
        .arg(&logs)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn heads_lists_the_virtual_lab_with_atrs() {
    let out = bin().args(["heads", "--profile", "profiles/virtual-lab.toml"]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.lines().filter(|l| l.contains("virtual")).count() == 6, "{s}");
    assert!(s.contains("3B89004341524442454E4348"), "T=0 ATR: {s}");
}

#[test]
fn recover_reads_the_cards_reports_and_exits_by_outcome() {
    let logs = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["recover", "--profile", "profiles/virtual-lab.toml", "--head", "A", "--head", "B", "--run-id", "RC"])
        .arg("--logs")
        .arg(logs.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("recover: nothing-to-do"), "{stdout}");
    // The recovery's own exchanges are traced like a run's.
    let rows = rows(&logs.path().join("RC/trace.csv"));
    let steps: BTreeSet<&str> = rows.iter().map(|r| &r[8]).collect();
    assert!(steps.contains("recover.info") && steps.contains("recover.S11-S14"), "{steps:?}");
    // Bad input is a bench error: exit 2, one line naming what is wrong.
    let bad = logs.path().join("bad.csv");
    std::fs::write(&bad, "seq,wall_time\n1,2\n").unwrap();
    for (args, want) in [
        (vec!["--head", "A", "--head", "B", "--head", "C"], "one or two --head"),
        (vec!["--head", "Z"], "no head or role 'Z'"),
        (vec!["--head", "A", "--trace", bad.to_str().unwrap()], "bad.csv:1"),
    ] {
        let out = bin()
            .args(["recover", "--profile", "profiles/virtual-lab.toml"])
            .args(&args)
            .arg("--logs")
            .arg(logs.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want) && stderr.lines().count() == 1, "{args:?}: {stderr}");
    }
}
