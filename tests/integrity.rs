//! Batch integrity on virtual heads: the header batch.json and the reports carry (tool, host,
//! profile and plan hashes over every include, keyset fingerprint, clock, readers and ATRs),
//! a resume that refuses a changed plan, profile or keyset unless forced (and records what it
//! was forced through), a resume that takes its parameters from batch.json; and the keys a
//! lab makes with `cardbench keys init`, used as the README says, certifying good cards.

#[path = "common/batch_lab.rs"]
mod batch_lab;

use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

const PLAN: &str = r#"
[plan]
id = "mini"
version = "1"
roles = ["dut", "peer"]
include = ["charge.toml"]

[[case]]
id = "XFER-UPD-01"
title = "Common-key update from the reference card"
ref = "002 S1001-S1104A"
[[case.step]]
do = "engine"
engine = "key_update"
heads = ["dut", "peer"]
mode = "common"
"#;

const INCLUDED: &str = r#"
[plan]
id = "charge"
version = "1"
roles = ["dut"]

[vars]
charged = 3000

[[case]]
id = "PURSE-CTR-01"
title = "Counter decrements by exactly one"
ref = "000 S2"
[[case.step]]
do = "read"
head = "dut"
state = "purse"
as = "before"
[[case.step]]
do = "engine"
engine = "charge"
head = "dut"
amount = "${charged}"
[[case.step]]
do = "read"
head = "dut"
state = "purse"
as = "after"
[[case.step]]
do = "assert"
that = "after.counter == before.counter - 1"
"#;

fn profile() -> String {
    let head = "\nname = \"integrity-test\"\n[keyset]\nseed = \"integrity test\"\n[defaults]\nclock = \"2026-06-01T12:00:00Z\"\n";
    format!("{head}{}{}", batch_lab::dut_heads(&["D1", "D2"], None), batch_lab::cards_and_batch(Some(50), 5, 3))
}

fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(dir);
    c
}

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("lab.toml"), profile()).unwrap();
    std::fs::write(d.path().join("plan.toml"), PLAN).unwrap();
    std::fs::write(d.path().join("charge.toml"), INCLUDED).unwrap();
    d
}

fn batch(dir: &Path, args: &[&str]) -> std::process::Output {
    bin(dir).args(["batch", "--batch-id", "B", "--logs", "logs", "-q"]).args(args).output().unwrap()
}

fn start(dir: &Path, count: u32) -> std::process::Output {
    batch(dir, &["--profile", "lab.toml", "--plan", "plan.toml", "--count", &count.to_string()])
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn sha256(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

fn summary(dir: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(dir.join("logs/B/summary.csv")).unwrap();
    r.records().map(|x| x.unwrap()).collect()
}

/// Keep the first `n` journal lines: the batch as a kill after `n` cards leaves it.
fn cut_journal(dir: &Path, n: usize) {
    let j = dir.join("logs/B/journal.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&j).unwrap().lines().take(n).map(|l| format!("{l}\n")).collect();
    std::fs::write(&j, lines.concat()).unwrap();
}

fn journal_indices(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_to_string(dir.join("logs/B/journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["index"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn batch_json_and_every_report_carry_the_header() {
    let d = setup();
    let out = start(d.path(), 6);
    assert_eq!(out.status.code(), Some(1), "card 3 has a defect: {}", text(&out));
    let meta = json(&d.path().join("logs/B/batch.json"));
    let h = &meta["header"];
    assert_eq!(h["profile"]["sha256"], sha256(&d.path().join("lab.toml")));
    let files: Vec<&str> = h["plan"]["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(files, ["plan.toml", "charge.toml"], "the plan and its include");
    assert_eq!(h["plan"]["files"][1]["sha256"], sha256(&d.path().join("charge.toml")));
    assert_eq!(h["plan"]["sha256"].as_str().unwrap().len(), 64);
    // The keyset's identity is the fingerprint `keys show` prints, and no secret.
    let show = bin(d.path()).args(["keys", "show", "--profile", "lab.toml"]).output().unwrap();
    let fingerprint = h["keyset"]["fingerprint"].as_str().unwrap();
    assert!(fingerprint.starts_with("sha256:"));
    assert!(String::from_utf8_lossy(&show.stdout).contains(fingerprint), "{}", text(&show));
    assert_eq!(h["keyset"]["source"], "seed");
    let run = &meta["runs"][0];
    assert_eq!(run["tool"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(!run["tool"]["git"].as_str().unwrap().is_empty());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(run["host"], host.trim());
    assert_eq!(run["clock"]["at"], "2026-06-01T12:00:00Z");
    assert_eq!(run["clock"]["source"], "profile");
    let heads = run["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 2);
    for head in heads {
        assert_eq!(head["reader"], format!("virtual:{}", head["name"].as_str().unwrap()));
        assert_eq!(head["atr"][0], "3B89004341524442454E4348", "the reference card's ATR");
    }

    // summary.csv: the same values on every row, the row's head's reader and ATR.
    let mut r = csv::Reader::from_path(d.path().join("logs/B/summary.csv")).unwrap();
    let cols: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let col = |name: &str| cols.iter().position(|c| c == name).unwrap_or_else(|| panic!("no column {name}: {cols:?}"));
    let rows = summary(d.path());
    assert_eq!(rows.len(), 6);
    for row in &rows {
        assert_eq!(&row[col("plan_sha256")], h["plan"]["sha256"].as_str().unwrap());
        assert_eq!(&row[col("profile_sha256")], h["profile"]["sha256"].as_str().unwrap());
        assert_eq!(&row[col("keyset")], fingerprint);
        assert_eq!(&row[col("host")], host.trim());
        assert!(row[col("tool")].starts_with(env!("CARGO_PKG_VERSION")));
        assert_eq!(&row[col("clock")], "2026-06-01T12:00:00Z (profile)");
        assert_eq!(row[col("reader")], format!("virtual:{}", &row[3]));
        assert_eq!(&row[col("atr")], "3B89004341524442454E4348");
    }
    // results.json: header and runs as batch.json has them.
    let results = json(&d.path().join("logs/B/results.json"));
    assert_eq!(results["header"]["header"], meta["header"]);
    assert_eq!(results["header"]["runs"], meta["runs"]);
    // junit.xml: each suite's properties.
    let junit = std::fs::read_to_string(d.path().join("logs/B/junit.xml")).unwrap();
    let plan_prop = format!("<property name=\"plan_sha256\" value=\"{}\"/>", h["plan"]["sha256"].as_str().unwrap());
    assert_eq!(junit.matches(&plan_prop).count(), 6, "{junit}");
    assert_eq!(junit.matches(&format!("<property name=\"keyset\" value=\"{fingerprint}\"/>")).count(), 6);
    assert_eq!(junit.matches("<property name=\"atr\" value=\"3B89004341524442454E4348\"/>").count(), 6);
}

#[test]
fn a_resume_after_a_plan_edit_is_refused_with_one_line_unless_forced_and_the_change_is_recorded() {
    let d = setup();
    start(d.path(), 6);
    cut_journal(d.path(), 2);
    let batch_json = d.path().join("logs/B/batch.json");
    let before = std::fs::read(&batch_json).unwrap();
    // The included plan charges another amount: the failure mode a mixed report hid.
    std::fs::write(d.path().join("charge.toml"), INCLUDED.replace("charged = 3000", "charged = 2000")).unwrap();
    let out = batch(d.path(), &["--profile", "lab.toml", "--plan", "plan.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("batch B cannot resume: plan mini 1 changed (charge.toml edited)"), "{stderr}");
    assert!(stderr.contains("--force-changed"), "{stderr}");
    assert_eq!(std::fs::read(&batch_json).unwrap(), before, "a refused resume leaves batch.json as it was");
    assert_eq!(journal_indices(d.path()).len(), 2, "and certifies nothing");

    // Forced: the batch goes on, and batch.json and the reports say through what.
    let out = batch(d.path(), &["--profile", "lab.toml", "--plan", "plan.toml", "--force-changed"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(journal_indices(d.path()), (1..=6).collect::<Vec<_>>());
    let meta = json(&batch_json);
    let runs = meta["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["changes"].as_array().unwrap().len(), 0);
    let change = runs[1]["changes"][0].as_str().unwrap();
    assert!(change.starts_with("plan mini 1 changed (charge.toml edited): sha256 "), "{change}");
    assert_eq!(meta["header"]["plan"]["files"][1]["sha256"], sha256(&d.path().join("charge.toml")));
    let results = json(&d.path().join("logs/B/results.json"));
    assert_eq!(results["header"]["runs"][1]["changes"][0], change);
    // From then on the batch is certified under the new plan: no second --force-changed.
    let out = batch(d.path(), &[]);
    assert!(text(&out).contains("(0 certified now)"), "{}", text(&out));
}

#[test]
fn a_changed_profile_or_keyset_is_refused_too() {
    let d = setup();
    start(d.path(), 3);
    // The profile: another clock.
    let lab = d.path().join("lab.toml");
    std::fs::write(&lab, profile().replace("2026-06-01T12:00:00Z", "2026-07-01T12:00:00Z")).unwrap();
    let out = batch(d.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot resume: profile lab.toml changed: sha256 "), "{}", text(&out));
    // The keyset: another seed changes the keyset too (and the profile).
    std::fs::write(&lab, profile().replace("seed = \"integrity test\"", "seed = \"another\"")).unwrap();
    let out = batch(d.path(), &[]);
    let t = text(&out);
    assert!(t.contains("profile lab.toml changed") && t.contains("; keyset seed changed: fingerprint "), "{t}");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_resume_takes_count_plan_and_profile_from_batch_json() {
    let d = setup();
    start(d.path(), 7);
    cut_journal(d.path(), 3);
    // Neither --count (the profile says 50) nor --plan nor --profile.
    let out = batch(d.path(), &[]);
    assert!(text(&out).contains("batch B: 7 cards (4 certified now)"), "{}", text(&out));
    assert_eq!(journal_indices(d.path()), (1..=7).collect::<Vec<_>>());
    // Another count is refused: it is not this batch.
    let out = batch(d.path(), &["--count", "9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("batch B has 7 cards (batch.json), not 9; drop --count to resume it"),
        "{}",
        text(&out)
    );
    // A batch never started needs its plan and profile.
    let out = bin(d.path()).args(["batch", "--batch-id", "NEW", "--logs", "logs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--profile and --plan are needed to start it"), "{}", text(&out));
}

// ---- keys ----

/// profiles/virtual-lab.toml with the keyset `keys init` made, as the README says: `[keyset]
/// path` instead of `seed`. `keep_revoked` keeps the profile's own revoked list.
fn lab_with_keys(dir: &Path, keep_revoked: bool) -> PathBuf {
    let lab = std::fs::read_to_string(Path::new(REPO).join("profiles/virtual-lab.toml")).unwrap();
    let mut lab = lab.replacen("seed = \"cardbench virtual lab\"", "path = \"keys/keyset.toml\"", 1);
    if !keep_revoked {
        lab = lab.lines().filter(|l| !l.starts_with("revoked")).map(|l| format!("{l}\n")).collect();
    }
    let p = dir.join("lab.toml");
    std::fs::write(&p, lab).unwrap();
    p
}

/// Card indices that carry a seeded defect under the profile's `[[batch.defect]]` rules.
fn defective(profile: &Path, count: u64) -> Vec<u64> {
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(profile).unwrap()).unwrap();
    let rules: Vec<(u64, u64)> = v["batch"]["defect"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["every"].as_integer().unwrap() as u64, r["offset"].as_integer().unwrap() as u64))
        .collect();
    (1..=count).filter(|i| rules.iter().any(|(e, o)| i % e == *o)).collect()
}

fn lab_batch(dir: &Path, id: &str, count: u64) -> Vec<csv::StringRecord> {
    let out = bin(dir)
        .args(["batch", "--profile", "lab.toml", "--plan"])
        .arg(Path::new(REPO).join("test-plans/certification.toml"))
        .args(["--batch-id", id, "--count", &count.to_string(), "--logs", "logs", "-q"])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let mut r = csv::Reader::from_path(dir.join("logs").join(id).join("summary.csv")).unwrap();
    r.records().map(|x| x.unwrap()).collect()
}

#[test]
fn a_keys_init_lab_certifies_the_good_cards_and_fails_the_seeded_defects() {
    let d = tempfile::tempdir().unwrap();
    let init = bin(d.path()).args(["keys", "init", "keys"]).output().unwrap();
    assert!(init.status.success(), "{}", text(&init));
    // Without the profile's revoked list: the keyset's own CRL revokes the suite's revoked
    // reference card, so KU-CERT-REV-01 holds.
    let lab = lab_with_keys(d.path(), false);
    let count = 20;
    let bad = defective(&lab, count);
    assert!(bad.len() >= 5, "the batch covers several seeded defects: {bad:?}");
    let rows = lab_batch(d.path(), "K", count);
    assert_eq!(rows.len(), count as usize);
    for r in &rows {
        let index: u64 = r[1].parse().unwrap();
        let want = if bad.contains(&index) { "fail" } else { "pass" };
        assert_eq!(&r[4], want, "card {index}: {:?}", &r[5]);
    }
    // The same batch on the seeded lab gives the same verdicts.
    let seeded = d.path().join("seeded");
    std::fs::create_dir(&seeded).unwrap();
    std::fs::copy(Path::new(REPO).join("profiles/virtual-lab.toml"), seeded.join("lab.toml")).unwrap();
    let seeded_rows = lab_batch(&seeded, "S", count);
    let verdicts =
        |rows: &[csv::StringRecord]| rows.iter().map(|r| (r[4].to_string(), r[5].to_string())).collect::<Vec<_>>();
    assert_eq!(verdicts(&rows), verdicts(&seeded_rows));
}

#[test]
fn the_profiles_revoked_list_applies_to_a_keyset_file_and_keys_revoke_adds_to_its_own() {
    let d = tempfile::tempdir().unwrap();
    assert!(bin(d.path()).args(["keys", "init", "keys"]).output().unwrap().status.success());
    // A keyset whose own CRL is empty, as `keys init` wrote it before.
    let file = d.path().join("keys/keyset.toml");
    let emptied = std::fs::read_to_string(&file).unwrap().replace("revoked = [0x0003EE01]", "revoked = []");
    std::fs::write(&file, emptied).unwrap();
    // The profile's revoked list applies: good cards pass.
    lab_with_keys(d.path(), true);
    let rows = lab_batch(d.path(), "P", 2);
    assert!(rows.iter().all(|r| &r[4] == "pass"), "{rows:?}");
    // Neither list revokes 0003EE01: the revoked peer is accepted and every card fails.
    lab_with_keys(d.path(), false);
    let rows = lab_batch(d.path(), "N", 2);
    assert!(rows.iter().all(|r| &r[4] == "fail" && r[5].contains("KU-CERT-REV-01")), "{rows:?}");
    // `keys revoke` puts it on the keyset's own CRL (a card ID names its serial).
    let out = bin(d.path()).args(["keys", "revoke", "CB0000000003EE01", "--keyset", "keys"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("serial 0003EE01 revoked"), "{}", text(&out));
    assert!(std::fs::read_to_string(&file).unwrap().contains("revoked = [0x0003EE01]"));
    let crl = cardbench::crypto::cert::Crl::parse(&std::fs::read(d.path().join("keys/crl.bin")).unwrap()).unwrap();
    assert_eq!(crl.revoked, [0x0003_EE01]);
    let rows = lab_batch(d.path(), "R", 2);
    assert!(rows.iter().all(|r| &r[4] == "pass"), "{rows:?}");
    // Again: nothing to do, said so. A decimal or short number is refused.
    let out = bin(d.path()).args(["keys", "revoke", "0x0003EE01", "--profile", "lab.toml"]).output().unwrap();
    assert!(text(&out).contains("was already revoked"), "{}", text(&out));
    let out = bin(d.path()).args(["keys", "revoke", "12345", "--keyset", "keys"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("'12345' is not a certificate serial"), "{}", text(&out));
    // A seeded profile's CRL is its revoked list.
    let seeded = Path::new(REPO).join("profiles/virtual-lab.toml");
    let out = bin(d.path()).args(["keys", "revoke", "0x00000001", "--profile"]).arg(&seeded).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("its CRL is the profile's [keyset] revoked list"), "{}", text(&out));
}

#[test]
fn keys_show_prints_public_parts_and_fingerprints_and_no_secret() {
    let d = tempfile::tempdir().unwrap();
    assert!(bin(d.path()).args(["keys", "init", "keys"]).output().unwrap().status.success());
    let out = bin(d.path()).args(["keys", "show", "keys"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).to_uppercase();
    let ks = cardbench::keys::Keyset::load(&d.path().join("keys/keyset.toml")).unwrap();
    assert!(shown.contains(&ks.fingerprint().to_uppercase()));
    assert!(shown.contains(&hex::encode_upper(cardbench::crypto::sig::encode_point(&ks.center_public()))));
    assert!(shown.contains("REVOKED SERIALS: 0003EE01"), "{shown}");
    // Not one secret value of the file: every hex string of 32 digits or more in it is secret.
    let file = std::fs::read_to_string(d.path().join("keys/keyset.toml")).unwrap();
    for line in file.lines().filter(|l| !l.starts_with('#')) {
        if let Some((_, v)) = line.split_once(" = \"") {
            let v = v.trim_end_matches('"');
            if v.len() >= 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                assert!(!shown.contains(&v.to_uppercase()), "a secret on screen: {line}");
            }
        }
    }
    // A revocation changes the fingerprint: it is part of what verifies.
    assert!(bin(d.path()).args(["keys", "revoke", "00000009", "--keyset", "keys"]).output().unwrap().status.success());
    let again = cardbench::keys::Keyset::load(&d.path().join("keys/keyset.toml")).unwrap();
    assert_ne!(again.fingerprint(), ks.fingerprint());
}

#[test]
fn a_journaled_recertification_replaces_the_earlier_result_and_another_card_in_its_place_is_refused() {
    let d = setup();
    start(d.path(), 4);
    let j = d.path().join("logs/B/journal.jsonl");
    let journal = std::fs::read_to_string(&j).unwrap();
    let first = journal.lines().find(|l| l.starts_with("{\"index\":2,")).unwrap();
    // Card #2 certified again (--recertify), this time slower: the later line stands.
    let mut again: serde_json::Value = serde_json::from_str(first).unwrap();
    again["duration_ms"] = serde_json::json!(98765.0);
    again["trace"] = serde_json::json!("cards/00002-CB00B00000000002-r2/trace.csv");
    again["certification"] = serde_json::json!(2);
    std::fs::write(&j, format!("{journal}{again}\n")).unwrap();
    let out = batch(d.path(), &[]);
    assert!(text_of_ok(&out).contains("batch B: 4 cards (0 certified now)"), "{}", text(&out));
    let rows = summary(d.path());
    assert_eq!(rows.len(), 4, "one row per card");
    assert_eq!(&rows[1][11], "98765.000");
    assert_eq!(&rows[1][13], "cards/00002-CB00B00000000002-r2/trace.csv");
    let results = json(&d.path().join("logs/B/results.json"));
    assert_eq!(
        results["header"]["recertified"],
        serde_json::json!([{"index": 2, "card_id": "CB00B00000000002", "certification": 2}])
    );
    // A later line for #2 naming another card is not a re-certification: refused.
    let mut other = again.clone();
    other["card_id"] = serde_json::json!("CB00B00000000099");
    other["certification"] = serde_json::json!(3);
    let journal = std::fs::read_to_string(&j).unwrap();
    std::fs::write(&j, format!("{journal}{other}\n")).unwrap();
    let out = batch(d.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("two different results for card #2"), "{}", text(&out));
}

fn text_of_ok(o: &std::process::Output) -> String {
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(o));
    text(o)
}
