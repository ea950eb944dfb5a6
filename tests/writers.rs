//! Several charge and payment machines (issue 14, point 3; card-spec 9.7): a keyset holds
//! named machine identities, plan steps choose which one acts, a chain of different writers
//! verifies (seed 000 [0025]), and a writer the center revoked or let expire is refused at S12
//! with nothing written to the card.

use cardbench::card::image::CardImage;
use cardbench::card::Protocol;
use cardbench::cmds;
use cardbench::crypto::cert::Role;
use cardbench::engine::cpay::card_signed_payment_by;
use cardbench::engine::purse::{charge_by, pay_by, Record};
use cardbench::engine::{EngineError, Outcome, RejectKind, Terminal};
use cardbench::event::Recorder;
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::Head;
use cardbench::issuance::CardPlan;
use cardbench::keys::{Keyset, MachineError};
use cardbench::lab::personalize_virtual;
use cardbench::link::Link;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::sync::OnceLock;

/// 2026-06-01T12:00:00Z, the labs' clock.
const NOW: u32 = 1_780_315_200;

fn keys() -> &'static Keyset {
    static K: OnceLock<Keyset> = OnceLock::new();
    K.get_or_init(|| Keyset::from_seed("writer-tests", vec![]))
}

fn head(n: u8) -> VirtualHead {
    let mut plan = CardPlan::new([0xCB, 0, 0, 0, 0, 0x14, 0x03, n]);
    plan.cpay_amount = 1000;
    let mut h = VirtualHead::new(&format!("W{n:02X}"));
    h.insert(personalize_virtual(&plan, Protocol::T0, keys()).unwrap());
    h.power_on().unwrap();
    h
}

fn term() -> Terminal<'static> {
    Terminal::new(keys(), NOW, ChaCha20Rng::seed_from_u64(14))
}

fn charge(h: &mut VirtualHead, t: &mut Terminal, amount: u32, machine: &str) -> Outcome {
    let rec = Recorder::disabled();
    charge_by(&mut Link::new(h, &rec), t, amount, Some(machine)).unwrap()
}

fn pay(h: &mut VirtualHead, t: &mut Terminal, price: u32, machine: &str) -> Outcome {
    let rec = Recorder::disabled();
    pay_by(&mut Link::new(h, &rec), t, price, Some(machine)).unwrap()
}

fn record(h: &mut VirtualHead) -> Record {
    let rec = Recorder::disabled();
    let mut l = Link::new(h, &rec);
    l.exec("raw", &cmds::select(&cardbench::card::ins::AID_PURSE)).unwrap();
    Record::parse(&l.exec("raw", &cmds::purse_read_all()).unwrap().data).unwrap()
}

fn image(h: &mut VirtualHead) -> CardImage {
    h.card().unwrap().image().clone()
}

/// Everything of the purse that survives power-off.
fn purse(h: &mut VirtualHead) -> (u32, u32, u32, Vec<u8>, Vec<u8>) {
    let p = image(h).purse;
    (p.counter, p.amount, p.date, p.signature, p.certificate)
}

fn cert_of(name: &str) -> Vec<u8> {
    keys().machine(name).unwrap_or_else(|| panic!("no machine {name}")).cert.encode().to_vec()
}

fn rejected(o: &Outcome) -> (&str, &RejectKind) {
    match o {
        Outcome::Rejected(r) => (r.step.as_str(), &r.kind),
        other => panic!("expected a rejection, got {other}"),
    }
}

#[test]
fn a_record_written_by_p1_is_verified_debited_and_resigned_by_p2_then_by_p1_again() {
    let mut h = head(1);
    let mut t = term();
    assert_eq!(charge(&mut h, &mut t, 1000, "C1").verdict(), "success");
    let o = pay(&mut h, &mut t, 100, "P1");
    assert_eq!(o.verdict(), "success", "{o}");
    let r = record(&mut h);
    assert_eq!((r.amount, r.counter, r.certificate.clone()), (900, 998, cert_of("P1")));
    // P2 verifies P1's record (S11-S16), takes its price and signs as the new writer (S18).
    let o = pay(&mut h, &mut t, 200, "P2");
    assert_eq!(o.verdict(), "success", "{o}");
    assert!(o.detail().contains("as P2"), "{o}");
    let r = record(&mut h);
    assert_eq!((r.amount, r.counter, r.certificate.clone()), (700, 997, cert_of("P2")));
    assert_ne!(cert_of("P2"), cert_of("P1"));
    // And P1 verifies P2's.
    assert_eq!(pay(&mut h, &mut t, 300, "P1").verdict(), "success");
    let r = record(&mut h);
    assert_eq!((r.amount, r.counter, r.certificate.clone()), (400, 996, cert_of("P1")));
    // A second charge machine verifies the payment record and adds to it.
    assert_eq!(charge(&mut h, &mut t, 50, "C2").verdict(), "success");
    let r = record(&mut h);
    assert_eq!((r.amount, r.counter, r.certificate), (450, 995, cert_of("C2")));
    assert_eq!(pay(&mut h, &mut t, 50, "P3").verdict(), "success");
    assert_eq!(record(&mut h).certificate, cert_of("P3"));
}

#[test]
fn a_writer_the_center_revoked_is_refused_at_s12_and_nothing_is_written() {
    let mut h = head(2);
    let mut t = term();
    assert_eq!(charge(&mut h, &mut t, 1000, "C1").verdict(), "success");
    // The bench acts as the revoked machine (as such a machine would go on writing)...
    assert_eq!(pay(&mut h, &mut t, 100, "P-REVOKED").verdict(), "success");
    assert_eq!(record(&mut h).certificate, cert_of("P-REVOKED"));
    assert!(keys().machine_crl.is_revoked(keys().machine("P-REVOKED").unwrap().cert.body.serial));
    // ...and the next machine, payment or charge, refuses its record at S12.
    let before = purse(&mut h);
    let o = pay(&mut h, &mut t, 10, "P1");
    assert_eq!(rejected(&o), ("S12", &RejectKind::CertificateRevoked), "{o}");
    assert!(o.detail().contains("00000006"), "the serial is named: {o}");
    assert_eq!(purse(&mut h), before, "a refused payment writes nothing");
    let o = charge(&mut h, &mut t, 10, "C2");
    assert_eq!(rejected(&o), ("charge.S12", &RejectKind::CertificateRevoked), "{o}");
    assert_eq!(purse(&mut h), before, "a refused charge writes nothing");
}

#[test]
fn a_writer_whose_certificate_expired_is_refused_at_s12_and_nothing_is_written() {
    let mut h = head(3);
    let mut t = term();
    assert_eq!(charge(&mut h, &mut t, 1000, "C1").verdict(), "success");
    assert_eq!(pay(&mut h, &mut t, 100, "P-EXPIRED").verdict(), "success");
    assert!(keys().machine("P-EXPIRED").unwrap().cert.is_expired(NOW));
    let before = purse(&mut h);
    let o = pay(&mut h, &mut t, 10, "P2");
    assert_eq!(rejected(&o), ("S12", &RejectKind::CertificateExpired), "{o}");
    assert_eq!(purse(&mut h), before);
    let o = charge(&mut h, &mut t, 10, "C1");
    assert_eq!(rejected(&o), ("charge.S12", &RejectKind::CertificateExpired), "{o}");
    assert_eq!(purse(&mut h), before);
}

#[test]
fn card_signed_payment_acts_as_the_named_payment_machine() {
    let mut h = head(4);
    let mut t = term();
    let rec = Recorder::disabled();
    let o = card_signed_payment_by(&mut Link::new(&mut h, &rec), &mut t, 100, false, Some("P2")).unwrap();
    assert_eq!(o.verdict(), "success", "{o}");
    assert_eq!(image(&mut h).cpay.amount, 900);
}

#[test]
fn an_unknown_machine_or_one_of_the_other_role_is_a_bench_error_and_nothing_is_sent() {
    let mut h = head(5);
    let mut t = term();
    let before = purse(&mut h);
    let rec = Recorder::disabled();
    let e = pay_by(&mut Link::new(&mut h, &rec), &mut t, 1, Some("P22")).unwrap_err();
    assert!(matches!(e, EngineError::Machine(MachineError::Unknown { .. })), "{e}");
    assert!(e.to_string().contains("no machine 'P22'") && e.to_string().contains("did you mean 'P2'"), "{e}");
    let e = charge_by(&mut Link::new(&mut h, &rec), &mut t, 1, Some("P2")).unwrap_err();
    assert_eq!(e.to_string(), "machine 'P2' is a payment machine, and a charge step needs a charge machine");
    assert_eq!(purse(&mut h), before);
}

#[test]
fn seeded_keysets_derive_the_standard_machines_and_keep_c1_and_p1() {
    let a = Keyset::from_seed("writer-tests", vec![]);
    let names: Vec<&str> = a.all_machines().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["C1", "P1", "C2", "P2", "P3", "P-REVOKED", "P-EXPIRED"]);
    for p in a.all_machines() {
        p.cert.verify_signature(&a.center_public()).unwrap();
        assert_eq!(p.role() == Role::ChargeMachine, p.name.starts_with('C'), "{}", p.name);
    }
    // C1 and P1 are the `charge` and `payment` identities, with their subjects.
    assert_eq!(&a.machine("C1").unwrap().cert.body.subject, b"CHARGE01");
    assert_eq!(&a.machine("P1").unwrap().cert.body.subject, b"PAYMNT01");
    assert_eq!(a.machine_crl.revoked, [6]);
    a.machine_crl.verify_signature(&a.center_public()).unwrap();
    // Deterministic: the same seed gives the same machines.
    assert_eq!(a.fingerprint(), Keyset::from_seed("writer-tests", vec![]).fingerprint());
}

fn bin(dir: &Path) -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(dir);
    c
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn keys_init_writes_the_machines_and_a_keyset_without_them_still_loads() {
    let d = tempfile::tempdir().unwrap();
    let out = bin(d.path()).args(["keys", "init", "keys"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let file = d.path().join("keys/keyset.toml");
    let ks = Keyset::load(&file).unwrap();
    let names: Vec<&str> = ks.all_machines().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["C1", "P1", "C2", "P2", "P3", "P-REVOKED", "P-EXPIRED"]);
    assert_eq!(ks.machine_crl.revoked, [6]);
    assert!(ks.machine("P-EXPIRED").unwrap().cert.is_expired(NOW));
    // The public files beside it: each machine's certificate and the machine CRL.
    let p2 = std::fs::read(d.path().join("keys/machine-P2.cvc")).unwrap();
    assert_eq!(p2, ks.machine("P2").unwrap().cert.encode());
    let crl = cardbench::crypto::cert::Crl::parse(&std::fs::read(d.path().join("keys/machine-crl.bin")).unwrap());
    assert_eq!(crl.unwrap().revoked, [6]);
    let shown = text(&bin(d.path()).args(["keys", "show", "keys"]).output().unwrap());
    assert!(shown.contains("machine P2") && shown.contains("revoked machine serials: 00000006"), "{shown}");

    // A keyset written before machines existed: no [[machine]], no revoked_machines.
    let text_now = std::fs::read_to_string(&file).unwrap();
    let old: String = text_now.split("\n[[machine]]").next().unwrap().replace("revoked_machines = [0x00000006]\n", "");
    let old_file = write_keyset(d.path(), "old", &old);
    let o = Keyset::load(&old_file).unwrap();
    assert_eq!(o.all_machines().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["C1", "P1"]);
    assert!(o.machine_crl.revoked.is_empty());
    let e = o.machine_for(Role::PaymentMachine, Some("P2"), "pay").unwrap_err().to_string();
    assert!(e.contains("it has C1, P1") && e.contains("predates named machines"), "{e}");
    // Its public parts (so its fingerprint) are what they were: center, ca, charge, payment, crl.
    assert_eq!(
        o.public_parts().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["center", "ca", "charge", "payment", "crl"]
    );
    assert_eq!(o.charge.cert.encode(), ks.charge.cert.encode());

    // A [[machine]] that would be ambiguous or unusable is refused, naming it.
    for (from, to, want) in [
        ("name = \"P3\"", "name = \"P2\"", "[[machine]] 'P2': this name is taken"),
        ("name = \"P3\"", "name = \"P1\"", "[[machine]] 'P1': this name is taken"),
        ("role = \"charge\"", "role = \"center\"", "role 'center': charge or payment"),
        ("subject = \"PAYMNT03\"", "subject = \"PAY3\"", "subject 'PAY3': exactly 8 ASCII characters"),
        ("serial = 5", "serial = 4", "serial 4: taken"),
        ("expiry = \"2025-01-01T00:00:00Z\"", "expiry = \"soon\"", "expiry 'soon'"),
    ] {
        assert!(text_now.contains(from), "{from}");
        let bad = write_keyset(d.path(), "bad", &text_now.replacen(from, to, 1));
        let e = Keyset::load(&bad).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("bad/keyset.toml"), "{to}: {e}");
    }
    // More revoked machines than a CRL holds: refused, not a panic.
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let over =
        text_now.replace("revoked_machines = [0x00000006]", &format!("revoked_machines = [{}]", many.join(", ")));
    let e = Keyset::load(&write_keyset(d.path(), "many", &over)).unwrap_err().to_string();
    assert!(e.contains("revoked_machines: a CRL lists at most 1000 serials"), "{e}");
}

fn write_keyset(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("keyset.toml");
    std::fs::write(&f, text).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

const PLAN: &str = r#"
[plan]
id = "writers"
version = "1"
roles = ["dut"]

[[case]]
id = "W-CHAIN-01"
ref = "000 [0025]"
tags = ["purse"]
[[case.step]]
do = "engine"
engine = "charge"
head = "dut"
amount = 100
[[case.step]]
do = "engine"
engine = "pay"
head = "dut"
amount = 10
machine = "P2"
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(dir: &Path, plan: &str) -> std::process::Output {
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    bin(dir).args(["check", "plan.toml", "--profile"]).arg(repo().join("profiles/cert-lab.toml")).output().unwrap()
}

#[test]
fn check_validates_the_machine_a_step_names_against_the_keyset_with_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let out = check(d.path(), PLAN);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let line = PLAN.lines().position(|l| l.starts_with("machine")).unwrap() + 1;
    for (to, want) in [
        ("machine = \"P7\"", "no machine 'P7'"),
        ("machine = \"C2\"", "machine 'C2' is a charge machine, and a pay step needs a payment machine"),
        ("machine = \"P 2\"", "machine 'P 2' is not a machine name"),
    ] {
        let out = check(d.path(), &PLAN.replace("machine = \"P2\"", to));
        assert_eq!(out.status.code(), Some(2), "{to}: {}", text(&out));
        assert!(text(&out).contains(want), "{to}: {}", text(&out));
        assert!(text(&out).contains(&format!("plan.toml:{line}:")), "{to}: {}", text(&out));
    }
    // On an engine that acts as no machine, the field is refused.
    let ku = PLAN
        .replace("engine = \"pay\"\nhead = \"dut\"\namount = 10", "engine = \"key_update\"\nheads = [\"dut\", \"D2\"]");
    let out = check(d.path(), &ku);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("field `machine` does not apply to engine key_update"), "{}", text(&out));
}

// ---- card-spec 9.8: an addition documented there, the "no limit" upper limit ----------------

#[test]
fn an_upper_limit_of_ffffffff_is_no_limit_and_a_lower_one_still_binds() {
    use cardbench::engine::key_update::{key_update, UpdateMode};
    let xfer = |n: u8, tk: u32, uk: u32, tk_limit: u32, uk_limit: u32| {
        let mut plan = CardPlan::new([0xCB, 0, 0, 0, 0, 0x14, 0x05, n]);
        (plan.transfer_key, plan.update_key) = (tk, uk);
        (plan.transfer_key_limit, plan.update_key_limit) = (tk_limit, uk_limit);
        let mut h = VirtualHead::new(&format!("L{n:02X}"));
        h.insert(personalize_virtual(&plan, Protocol::T0, keys()).unwrap());
        h.power_on().unwrap();
        h
    };
    let rec = Recorder::disabled();
    let mut t = term();
    // Both IDs move (rollover, different update-key IDs): limits FFFFFFFF let any newer ID in.
    let (mut a, mut b) = (xfer(1, 1, 1, u32::MAX, u32::MAX), xfer(2, 8, 4, 8, 4));
    let o = key_update(&mut Link::new(&mut a, &rec), &mut Link::new(&mut b, &rec), &mut t, UpdateMode::Rollover);
    assert_eq!(o.unwrap().verdict(), "success");
    let x = &image(&mut a).xfer;
    assert_eq!((x.tkid, x.ukid), (8, 4));
    // The same update onto a card whose limit is 7 is refused by the card (6984).
    let (mut a, mut b) = (xfer(3, 1, 1, 7, u32::MAX), xfer(4, 8, 4, 8, 4));
    let o = key_update(&mut Link::new(&mut a, &rec), &mut Link::new(&mut b, &rec), &mut t, UpdateMode::Rollover);
    assert_eq!(o.unwrap().verdict(), "rejected:card-refused-6984");
    assert_eq!(image(&mut a).xfer.tkid, 1);
}

#[test]
fn keys_revoke_machine_puts_its_serial_on_the_center_machine_crl() {
    let d = tempfile::tempdir().unwrap();
    assert!(bin(d.path()).args(["keys", "init", "keys"]).output().unwrap().status.success());
    let before = Keyset::load(&d.path().join("keys/keyset.toml")).unwrap();
    let out = bin(d.path()).args(["keys", "revoke-machine", "P2", "--keyset", "keys"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("machine P2 (serial 00000004) revoked"), "{}", text(&out));
    let ks = Keyset::load(&d.path().join("keys/keyset.toml")).unwrap();
    assert_eq!(ks.machine_crl.revoked, [6, 4]);
    ks.machine_crl.verify_signature(&ks.center_public()).unwrap();
    let file = std::fs::read(d.path().join("keys/machine-crl.bin")).unwrap();
    assert_eq!(file, ks.machine_crl.encode());
    assert_ne!(ks.fingerprint(), before.fingerprint(), "the machine CRL is a public part");
    // Every secret stays what it was.
    assert_eq!(ks.machine("P2").unwrap().cert.encode(), before.machine("P2").unwrap().cert.encode());
    let out = bin(d.path()).args(["keys", "revoke-machine", "P2", "--keyset", "keys"]).output().unwrap();
    assert!(text(&out).contains("was already revoked"), "{}", text(&out));
    let out = bin(d.path()).args(["keys", "revoke-machine", "P22", "--keyset", "keys"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no machine 'P22'") && text(&out).contains("did you mean 'P2'"), "{}", text(&out));
}
