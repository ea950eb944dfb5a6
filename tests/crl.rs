//! The terminal's CRL on transfer cards (card-spec 8.14): a revoked card is refused before
//! every key update, in every mode, and before every value transfer, at the seed step, with
//! nothing sent that could change either card; a card without a certificate is checked by
//! its ID; a stale CRL is a bench error unless the profile accepts it; `keys crl` dates it.

use cardbench::card::image::CardImage;
use cardbench::card::Protocol;
use cardbench::engine::key_update::{key_update, UpdateMode};
use cardbench::engine::transfer::value_transfer;
use cardbench::engine::{EngineError, Outcome, RejectKind, Terminal};
use cardbench::event::{Exchange, Recorder};
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::Head;
use cardbench::issuance::CardPlan;
use cardbench::keys::{card_serial, Keyset};
use cardbench::lab::personalize_virtual;
use cardbench::link::Link;
use cardbench::sinks::{self, Sink};
use cardbench::trace::{self, TraceCsv};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::Path;
use std::process::Command as Proc;

/// 2026-06-01T12:00:00Z
const NOW: u32 = 1_780_315_200;
/// The revoked card of these tests, and a good one.
const REVOKED: u8 = 0x0E;

fn id(n: u8) -> [u8; 8] {
    [0xCB, 0, 0, 0, 0, 0x0C, 0x01, n]
}

/// The lab keyset with `REVOKED`'s serial on its CRL, and the same keys with an empty CRL.
fn keys_revoking() -> Keyset {
    Keyset::from_seed("crl-tests", vec![card_serial(&id(REVOKED))])
}

fn keys_clean() -> Keyset {
    Keyset::from_seed("crl-tests", vec![])
}

fn xfer(n: u8, tk: u32, uk: u32) -> CardPlan {
    let mut p = CardPlan::new(id(n));
    p.transfer_key = tk;
    p.update_key = uk;
    p.update_key_limit = 4;
    p.balance = 1000;
    p.max_balance = 100_000;
    p
}

fn head(plan: &CardPlan, keys: &Keyset) -> VirtualHead {
    let mut h = VirtualHead::new(&format!("H{:02X}", plan.card_id[7]));
    h.insert(personalize_virtual(plan, Protocol::T0, keys).unwrap());
    h.power_on().unwrap();
    h
}

/// A card issued without an XFER certificate (card-spec 8.14: allowed; GET CARD INFO P1=01
/// answers 6A88).
fn head_without_cert(plan: &CardPlan, keys: &Keyset) -> VirtualHead {
    let mut card = personalize_virtual(plan, Protocol::T0, keys).unwrap();
    card.nvm_mut()
        .update(|img| {
            img.xfer.certificate.clear();
            Ok(())
        })
        .unwrap();
    let mut h = VirtualHead::new(&format!("H{:02X}", plan.card_id[7]));
    h.insert(card);
    h.power_on().unwrap();
    h
}

fn image(h: &mut VirtualHead) -> CardImage {
    h.card().unwrap().image().clone()
}

/// Everything the card holds, as one comparable value.
fn state(h: &mut VirtualHead) -> String {
    format!("{:?}", image(h))
}

fn term(keys: &Keyset) -> Terminal<'_> {
    Terminal::new(keys, NOW, ChaCha20Rng::seed_from_u64(14))
}

/// Run `f` with both heads behind links that write a real trace file, and return what it
/// returned with the trace's rows.
fn traced<R>(
    a: &mut VirtualHead,
    b: &mut VirtualHead,
    f: impl FnOnce(&mut Link, &mut Link) -> R,
) -> (R, Vec<Exchange>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    let (rec, rx) = Recorder::new("crl");
    let sink: Box<dyn Sink> = Box::new(TraceCsv::create(&path, "R1", "crl").unwrap());
    let thread = sinks::spawn(rx, vec![sink]);
    let r = {
        let mut la = Link::new(a, &rec);
        let mut lb = Link::new(b, &rec);
        f(&mut la, &mut lb)
    };
    drop(rec);
    assert!(thread.join().unwrap().is_empty());
    (r, trace::read(&path).unwrap())
}

fn update(
    a: &mut VirtualHead,
    b: &mut VirtualHead,
    keys: &Keyset,
    mode: UpdateMode,
) -> (Result<Outcome, EngineError>, Vec<Exchange>) {
    traced(a, b, |la, lb| key_update(la, lb, &mut term(keys), mode))
}

fn transfer(
    a: &mut VirtualHead,
    b: &mut VirtualHead,
    keys: &Keyset,
    amount: u32,
) -> (Result<Outcome, EngineError>, Vec<Exchange>) {
    traced(a, b, |la, lb| value_transfer(la, lb, &mut term(keys), amount))
}

fn rejected(o: &Outcome) -> (&str, &RejectKind) {
    match o {
        Outcome::Rejected(r) => (r.step.as_str(), &r.kind),
        other => panic!("expected a rejection, got {other}"),
    }
}

/// The trace holds reads only: SELECT (00 A4) and GET CARD INFO (80 10) with P1 00 (the
/// information) and 01 (the certificate) on both cards, and nothing that could change a card.
fn only_reads(rows: &[Exchange], labels: &[&str]) {
    assert!(!rows.is_empty());
    for r in rows.iter().filter(|r| r.kind.is_wire()) {
        let (cla, ins) = (r.command[0], r.command[1]);
        assert!(
            (cla, ins) == (0x00, 0xA4) || (cla, ins) == (0x80, 0x10) || (cla, ins) == (0x00, 0xC0),
            "a command that is not a read went to {}: {} ({})",
            r.card_id,
            hex::encode_upper(&r.command),
            r.protocol_step
        );
        assert!(labels.contains(&r.protocol_step.as_str()), "unexpected label {}", r.protocol_step);
    }
    let heads: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.head.as_str()).collect();
    assert_eq!(heads.len(), 2, "{heads:?}");
    for head in heads {
        let cert_read = rows.iter().any(|r| r.head == head && r.command.starts_with(&[0x80, 0x10, 0x01]));
        assert!(cert_read, "head {head}: the certificate was not read");
    }
}

fn s(e: u32, n: &str) -> String {
    format!("S{e}{n}")
}

/// The labels of a key update's reads in embodiment `e`.
fn update_labels(e: u32) -> Vec<String> {
    vec![s(e, "001"), format!("S{e}002/S{e}101A"), format!("S{e}002/S{e}101B")]
}

#[test]
fn a_revoked_card_is_refused_at_the_check_step_before_every_key_update_mode_and_no_card_changes() {
    let revoking = keys_revoking();
    let clean = keys_clean();
    // (mode, good card, revoked card, embodiment of the reads, step of the check)
    let cases: Vec<(UpdateMode, CardPlan, CardPlan, u32, &str)> = vec![
        (UpdateMode::Common, xfer(0x01, 2, 1), xfer(REVOKED, 3, 1), 1, "S1003"),
        (UpdateMode::Multi, CardPlan { slots: vec![3], ..xfer(0x02, 2, 1) }, xfer(REVOKED, 3, 1), 6, "S6003"),
        (UpdateMode::Public, xfer(0x03, 2, 1), xfer(REVOKED, 3, 2), 3, "S3003"),
        (UpdateMode::Auto, xfer(0x04, 2, 1), xfer(REVOKED, 3, 1), 4, "S4003"),
        (UpdateMode::Auto, xfer(0x05, 2, 1), xfer(REVOKED, 3, 2), 4, "S5003"),
        (UpdateMode::Rollover, xfer(0x06, 2, 1), xfer(REVOKED, 3, 1), 7, "S7003"),
        (UpdateMode::Rollover, xfer(0x07, 2, 1), xfer(REVOKED, 3, 2), 7, "S8003"),
    ];
    for (mode, good, bad, e, step) in cases {
        let labels = update_labels(e);
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        // The revoked card as the one to be updated (older key) and as the one holding the
        // newer key, in either head order.
        let revoked_older = CardPlan { transfer_key: 4, ..bad.clone() };
        let good_newer = CardPlan { transfer_key: 5, ..good.clone() };
        for (older, newer) in [(&good, &bad), (&revoked_older, &good_newer)] {
            for swap in [false, true] {
                let mut x = head(older, &revoking);
                let mut y = head(newer, &revoking);
                let (hx, hy) = if swap { (&mut y, &mut x) } else { (&mut x, &mut y) };
                let before = (state(hx), state(hy));
                let (o, rows) = update(hx, hy, &revoking, mode);
                let o = o.unwrap();
                let what = format!("{mode:?} {} swap {swap}", hex::encode_upper(older.card_id));
                assert_eq!(rejected(&o), (step, &RejectKind::CertificateRevoked), "{what}");
                assert!(o.detail().contains(&format!("{:08X} is on the CRL", card_serial(&id(REVOKED)))), "{o}");
                assert_eq!((state(hx), state(hy)), before, "{what}: a card changed");
                only_reads(&rows, &labels);
            }
        }
        // The same cards with a CRL that does not list the card: the update goes through (the
        // refusal above is the CRL's, nothing else). Multi needs the newer key in a slot.
        if mode != UpdateMode::Multi {
            let mut x = head(&good, &clean);
            let mut y = head(&bad, &clean);
            let (o, _) = update(&mut x, &mut y, &clean, mode);
            assert_eq!(o.unwrap().verdict(), "success", "{mode:?}");
            assert_eq!(image(&mut x).xfer.tkid, 3);
        }
    }
}

#[test]
fn a_revoked_card_is_refused_even_when_no_key_would_move() {
    let keys = keys_revoking();
    for (mode, step) in [(UpdateMode::Common, "S1003"), (UpdateMode::Multi, "S6003"), (UpdateMode::Auto, "S4003")] {
        let mut a = head(&xfer(0x10, 3, 1), &keys);
        let mut b = head(&xfer(REVOKED, 3, 1), &keys);
        let (o, _) = update(&mut a, &mut b, &keys, mode);
        assert_eq!(rejected(&o.unwrap()), (step, &RejectKind::CertificateRevoked), "{mode:?}");
    }
}

#[test]
fn a_revoked_card_is_refused_at_s2001_before_a_transfer_either_way_and_no_balance_moves() {
    let keys = keys_revoking();
    let labels = ["select", "info", "cert"];
    for revoked_sends in [true, false] {
        let mut good = head(&xfer(0x20, 3, 1), &keys);
        let mut bad = head(&xfer(REVOKED, 3, 1), &keys);
        let (from, to) = if revoked_sends { (&mut bad, &mut good) } else { (&mut good, &mut bad) };
        let before = (state(from), state(to));
        let (o, rows) = transfer(from, to, &keys, 100);
        let o = o.unwrap();
        assert_eq!(rejected(&o), ("S2001", &RejectKind::CertificateRevoked), "revoked sends: {revoked_sends}");
        assert_eq!((state(from), state(to)), before);
        assert_eq!((image(from).xfer.balance, image(to).xfer.balance), (1000, 1000));
        only_reads(&rows, &labels);
    }
    // The same two cards transfer when the CRL does not list the card.
    let clean = keys_clean();
    let mut a = head(&xfer(0x20, 3, 1), &clean);
    let mut b = head(&xfer(REVOKED, 3, 1), &clean);
    let (o, rows) = transfer(&mut a, &mut b, &clean, 100);
    assert_eq!(o.unwrap().verdict(), "success");
    assert_eq!((image(&mut a).xfer.balance, image(&mut b).xfer.balance), (900, 1100));
    assert!(rows.iter().any(|r| r.protocol_step == "S2001/S2101A-S2102A"));
}

#[test]
fn a_card_without_a_certificate_is_checked_by_its_id_and_kept_off_the_public_paths() {
    let keys = keys_revoking();
    // Not revoked: the common and multi-key paths and a transfer accept it.
    let mut a = head_without_cert(&xfer(0x30, 2, 1), &keys);
    let mut b = head(&xfer(0x31, 3, 1), &keys);
    let (o, rows) = update(&mut a, &mut b, &keys, UpdateMode::Common);
    assert_eq!(o.unwrap().verdict(), "success");
    assert!(rows.iter().any(|r| r.command.starts_with(&[0x80, 0x10, 0x01]) && r.sw == 0x6A88));
    let (o, _) = transfer(&mut a, &mut b, &keys, 50);
    assert_eq!(o.unwrap().verdict(), "success");
    // A public path needs the certificate: refused at its check step, nothing changes.
    for (mode, step) in [(UpdateMode::Public, "S3003"), (UpdateMode::Auto, "S5003"), (UpdateMode::Rollover, "S8003")] {
        let mut a = head_without_cert(&xfer(0x32, 2, 1), &keys);
        let mut b = head(&xfer(0x33, 3, 2), &keys);
        let before = (state(&mut a), state(&mut b));
        let (o, rows) = update(&mut a, &mut b, &keys, mode);
        assert_eq!(rejected(&o.unwrap()), (step, &RejectKind::CertificateMissing), "{mode:?}");
        assert_eq!((state(&mut a), state(&mut b)), before);
        let e = if mode == UpdateMode::Public {
            3
        } else if mode == UpdateMode::Auto {
            4
        } else {
            7
        };
        let labels = update_labels(e);
        only_reads(&rows, &labels.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // Revoked by its ID's serial: refused like a revoked certificate.
    let mut a = head(&xfer(0x34, 2, 1), &keys);
    let mut b = head_without_cert(&xfer(REVOKED, 3, 1), &keys);
    let (o, _) = update(&mut a, &mut b, &keys, UpdateMode::Common);
    let o = o.unwrap();
    assert_eq!(rejected(&o), ("S1003", &RejectKind::CertificateRevoked));
    assert!(o.detail().contains("card without certificate"), "{o}");
    let (o, _) = transfer(&mut b, &mut a, &keys, 10);
    assert_eq!(rejected(&o.unwrap()), ("S2001", &RejectKind::CertificateRevoked));
}

#[test]
fn a_stale_crl_is_a_bench_error_before_any_update_or_transfer_unless_the_profile_accepts_it() {
    // Issued in April, next update a second before the lab clock.
    let stale = keys_clean().reissue_crl(NOW - 60 * 86_400, NOW - 1);
    let mut a = head(&xfer(0x40, 2, 1), &stale);
    let mut b = head(&xfer(0x41, 3, 1), &stale);
    let before = (state(&mut a), state(&mut b));
    for mode in [UpdateMode::Common, UpdateMode::Multi, UpdateMode::Public, UpdateMode::Auto, UpdateMode::Rollover] {
        let (o, rows) = update(&mut a, &mut b, &stale, mode);
        match o {
            Err(EngineError::StaleCrl { step, next_update, now }) => {
                assert!(step.starts_with('S') && step.ends_with("003"), "{mode:?}: {step}");
                assert_eq!((next_update.as_str(), now.as_str()), ("2026-06-01T11:59:59Z", "2026-06-01T12:00:00Z"));
            }
            other => panic!("{mode:?}: expected a stale-CRL bench error, got {other:?}"),
        }
        assert!(rows.iter().filter(|r| r.kind.is_wire()).all(|r| r.command[1] == 0xA4 || r.command[1] == 0x10));
    }
    let (o, _) = transfer(&mut b, &mut a, &stale, 10);
    let e = o.unwrap_err();
    assert!(matches!(&e, EngineError::StaleCrl { step, .. } if step == "S2001"), "{e:?}");
    assert!(e.to_string().contains("cardbench keys crl") && e.to_string().contains("accept_stale_crl"), "{e}");
    assert_eq!((state(&mut a), state(&mut b)), before);
    // Valid during the next-update second itself.
    let edge = keys_clean().reissue_crl(NOW - 60 * 86_400, NOW);
    let (o, _) = update(&mut a, &mut b, &edge, UpdateMode::Common);
    assert_eq!(o.unwrap().verdict(), "success");
    // A lab that accepts its old list runs on it, and it still refuses the revoked card.
    let mut accepting =
        Keyset::from_seed("crl-tests", vec![card_serial(&id(REVOKED))]).reissue_crl(NOW - 90 * 86_400, NOW - 1);
    accepting.accept_stale_crl = true;
    let mut c = head(&xfer(0x42, 3, 1), &accepting);
    let mut d = head(&xfer(0x43, 3, 1), &accepting);
    let (o, _) = transfer(&mut c, &mut d, &accepting, 10);
    assert_eq!(o.unwrap().verdict(), "success");
    let mut r = head(&xfer(REVOKED, 3, 1), &accepting);
    let (o, _) = transfer(&mut c, &mut r, &accepting, 10);
    assert_eq!(rejected(&o.unwrap()), ("S2001", &RejectKind::CertificateRevoked));
}

// ------------------------------------------------------------------ the CLI and the profile

fn bin(dir: &Path) -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(dir);
    c
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn keys_crl_dates_the_list_and_a_run_on_a_stale_one_errs_until_the_profile_accepts_it() {
    let d = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let init = bin(d.path()).args(["keys", "init", "keys"]).output().unwrap();
    assert!(init.status.success(), "{}", text(&init));
    let show = bin(d.path()).args(["keys", "show", "keys"]).output().unwrap();
    assert!(text(&show).contains("next update"), "{}", text(&show));
    // A CRL issued on 2026-01-01 for 30 days is stale at the lab clock (2026-06-01).
    let out = bin(d.path())
        .args(["keys", "crl", "--keyset", "keys", "--issued", "2026-01-01T00:00:00Z", "--days", "30"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("issued 2026-01-01T00:00:00Z, next update 2026-01-31T00:00:00Z"), "{}", text(&out));
    let crl = cardbench::crypto::cert::Crl::parse(&std::fs::read(d.path().join("keys/crl.bin")).unwrap()).unwrap();
    assert_eq!((crl.issued, crl.next_update), (1_767_225_600, 1_769_817_600));
    assert_eq!(crl.revoked, [0x0003_EE01], "the serials are kept");
    let ks = Keyset::load(&d.path().join("keys/keyset.toml")).unwrap();
    assert_eq!(ks.crl, crl);
    assert!(std::fs::read_to_string(d.path().join("keys/keyset.toml"))
        .unwrap()
        .contains("crl_next_update = \"2026-01-31T00:00:00Z\""));
    // Bad dates are refused, naming what is wrong.
    let out = bin(d.path()).args(["keys", "crl", "--keyset", "keys", "--days", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = bin(d.path()).args(["keys", "crl", "--keyset", "keys", "--issued", "yesterday"]).output().unwrap();
    assert!(text(&out).contains("--issued 'yesterday' is not an RFC 3339 time"), "{}", text(&out));

    let lab = std::fs::read_to_string(repo.join("profiles/virtual-lab.toml")).unwrap();
    let lab = lab.replacen("seed = \"cardbench virtual lab\"", "path = \"keys/keyset.toml\"", 1);
    std::fs::write(d.path().join("lab.toml"), &lab).unwrap();
    let plan = repo.join("test-plans/smoke.toml");
    let run = |id: &str| {
        bin(d.path())
            .arg("run")
            .arg(&plan)
            .args(["--profile", "lab.toml", "--logs", "logs", "--run-id", id])
            .output()
            .unwrap()
    };
    let out = run("STALE");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("the terminal CRL is stale (next update 2026-01-31T00:00:00Z"), "{}", text(&out));
    // No card was asked to change by a key update or transfer: no such command in the trace.
    let rows = trace::read(&d.path().join("logs/STALE/trace.csv")).unwrap();
    assert!(
        !rows.iter().any(|r| r.kind.is_wire()
            && r.command[0] == 0x80
            && matches!(r.command[1], 0x20 | 0x22 | 0x24 | 0x30 | 0x32 | 0x34 | 0x36)),
        "a key update or transfer command went out on a stale CRL"
    );
    // The profile accepts the old list: the same plan passes.
    let accepting = lab.replacen("[keyset]\n", "[keyset]\naccept_stale_crl = true\n", 1);
    assert_ne!(accepting, lab);
    std::fs::write(d.path().join("lab.toml"), accepting).unwrap();
    let out = run("ACCEPT");
    assert!(out.status.success(), "{}", text(&out));
    // A fresh CRL (issued now, 90 days) runs without the option.
    std::fs::write(d.path().join("lab.toml"), &lab).unwrap();
    assert!(bin(d.path()).args(["keys", "crl", "--keyset", "keys"]).output().unwrap().status.success());
    let out = run("FRESH");
    assert!(out.status.success(), "{}", text(&out));
}
