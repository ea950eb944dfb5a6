//! The settlement terminal (seed 002: key update "before performing value transfer", with
//! equal IDs "proceeds to value transfer processing immediately") and the charge machine
//! after an interrupted payment (seed 000 S1-S4). Assertions are on the trace a run writes
//! and on the cards' state read back.

use cardbench::card::image::CardImage;
use cardbench::card::Protocol;
use cardbench::engine::key_update::UpdateMode;
use cardbench::engine::purse::{charge, charge_with, pay, record_verifies, ChargeMode};
use cardbench::engine::recover::recover;
use cardbench::engine::settle::settle;
use cardbench::engine::Terminal;
use cardbench::event::Recorder;
use cardbench::head::virtual_head::{CutPoint, PowerCut, VirtualHead};
use cardbench::head::Head;
use cardbench::issuance::CardPlan;
use cardbench::keys::{card_serial, Keyset};
use cardbench::lab::personalize_virtual;
use cardbench::link::Link;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::Path;
use std::process::Command as Proc;
use std::sync::OnceLock;

/// 2026-06-01T12:00:00Z, the virtual lab's clock.
const NOW: u32 = 1_780_315_200;

fn bin() -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// The settle step's rows of a run's trace: (head, card_id, protocol_step, kind, step).
fn rows(path: &Path) -> Vec<[String; 5]> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (head, card, ps, kind, step) = (col("head"), col("card_id"), col("protocol_step"), col("kind"), col("step"));
    r.records()
        .map(|x| x.unwrap())
        .map(|x| [&x[head], &x[card], &x[ps], &x[kind], &x[step]].map(String::from))
        .collect()
}

/// A plan on the virtual lab: reference cards inserted in heads C and D, one `settle` step
/// from C to D, the state of both read back and asserted.
fn plan(c: &str, d: &str, amount: u32, after: &str) -> String {
    format!(
        r#"[plan]
id = "settle-test"
version = "1.0.0"
title = "settle"
applet = "xfer"

[[case]]
id = "SETTLE"
title = "settle C -> D"
[[case.step]]
do = "insert_card"
head = "C"
card = {c}
[[case.step]]
do = "insert_card"
head = "D"
card = {d}
[[case.step]]
do = "read"
head = "C"
state = "xfer"
as = "c0"
[[case.step]]
do = "read"
head = "D"
state = "xfer"
as = "d0"
[[case.step]]
do = "engine"
engine = "settle"
from = "C"
to = "D"
amount = {amount}
[[case.step]]
do = "read"
head = "C"
state = "xfer"
as = "c1"
[[case.step]]
do = "read"
head = "D"
state = "xfer"
as = "d1"
[[case.step]]
do = "assert"
that = "c1.balance == c0.balance - {amount} && d1.balance == d0.balance + {amount}"
message = "the amount moved from C to D"
[[case.step]]
do = "assert"
that = "{after}"
message = "transfer key IDs after the settlement"
"#
    )
}

/// Run a plan on the virtual lab; the rows of the settle engine step (the one step whose
/// rows carry seed step labels S?xxx).
fn run(name: &str, text: &str) -> Vec<[String; 5]> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    let out = bin()
        .arg("run")
        .arg(&p)
        .args(["--profile", "profiles/virtual-lab.toml", "--run-id", name, "--logs"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let all = rows(&dir.path().join(name).join("trace.csv"));
    let engine_step =
        all.iter().find(|r| r[2] == "S4001").map(|r| r[4].clone()).expect("the settle step reads both cards at S4001");
    all.into_iter().filter(|r| r[4] == engine_step && r[3] != "step").collect()
}

/// The protocol steps of `rows`, with the card each went to, in trace order, repeats folded.
fn steps(rows: &[[String; 5]]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for r in rows {
        let x = (r[2].clone(), r[1].clone());
        if v.last() != Some(&x) {
            v.push(x);
        }
    }
    v
}

fn pos(s: &[(String, String)], step: &str) -> usize {
    s.iter().position(|(p, _)| p == step).unwrap_or_else(|| panic!("{step} not in {s:?}"))
}

const OLD: &str = "CB00000000050C01";
const NEW: &str = "CB00000000050D02";

#[test]
fn different_key_ids_update_the_older_card_then_transfer_in_one_step() {
    // The receiving card D holds the older key: it is brought up to C's, then C pays D.
    let text = plan(
        &format!(r#"{{ id = "{NEW}", transfer_key = 4, balance = 5000 }}"#),
        &format!(r#"{{ id = "{OLD}", transfer_key = 2, balance = 1000 }}"#),
        700,
        "c1.tkid == 4 && d1.tkid == 4 && d0.tkid == 2",
    );
    let rows = run("U1", &text);
    let s = steps(&rows);
    // Same update key on both cards: the 3rd embodiment's common path, S4004-S4104A.
    let (u_perm, u_key, u_apply, u_check) =
        (pos(&s, "S4004/S4102A"), pos(&s, "S4005/S4102B"), pos(&s, "S4006/S4103A"), pos(&s, "S4104A"));
    let (t1, t2, t3, t4) = (
        pos(&s, "S2001/S2101A-S2102A"),
        pos(&s, "S2002/S2101B-S2103B"),
        pos(&s, "S2003/S2103A-S2105A"),
        pos(&s, "S2004/S2104B-S2105B"),
    );
    assert!(u_perm < u_key && u_key < u_apply && u_apply < u_check && u_check < t1, "{s:?}");
    assert!(t1 < t2 && t2 < t3 && t3 < t4, "{s:?}");
    // The older card (D) is the one updated; the newer one (C) exports its key.
    assert_eq!(s[u_perm].1, OLD);
    assert_eq!(s[u_apply].1, OLD);
    assert_eq!(s[u_key].1, NEW);
    // The transfer runs from C to D whatever the update's direction.
    assert_eq!((s[t1].1.as_str(), s[t2].1.as_str()), (NEW, OLD));
    // The certificate of each card was read before anything changed.
    assert!(s.iter().filter(|(p, _)| p.starts_with("S4002/")).count() >= 2, "{s:?}");
    assert!(rows.iter().all(|r| r[3] != "in-doubt"));
}

#[test]
fn the_older_card_can_be_the_sender() {
    let text = plan(
        &format!(r#"{{ id = "{OLD}", transfer_key = 2, balance = 5000 }}"#),
        &format!(r#"{{ id = "{NEW}", transfer_key = 5, balance = 1000 }}"#),
        300,
        "c1.tkid == 5 && d1.tkid == 5 && c0.tkid == 2",
    );
    let s = steps(&run("U2", &text));
    assert_eq!(s[pos(&s, "S4006/S4103A")].1, OLD);
    assert!(pos(&s, "S4104A") < pos(&s, "S2001/S2101A-S2102A"));
    assert_eq!(s[pos(&s, "S2001/S2101A-S2102A")].1, OLD);
}

#[test]
fn equal_key_ids_transfer_at_once() {
    let text = plan(
        &format!(r#"{{ id = "{OLD}", transfer_key = 3, balance = 5000 }}"#),
        &format!(r#"{{ id = "{NEW}", transfer_key = 3, balance = 1000 }}"#),
        500,
        "c1.tkid == 3 && d1.tkid == 3",
    );
    let rows = run("E1", &text);
    let s = steps(&rows);
    assert!(
        !s.iter().any(|(p, _)| p.starts_with("S4004") || p.starts_with("S4005") || p.starts_with("S4006")),
        "{s:?}"
    );
    // After the reads (S4001, S4002: information and certificates) and the S4003 checks,
    // which send nothing, the next seed-labelled command is the transfer's first.
    let last_read = s.iter().rposition(|(p, _)| p.starts_with("S4002/")).unwrap();
    let first_after = s[last_read + 1..].iter().find(|(p, _)| p.starts_with('S')).unwrap();
    assert_eq!(first_after.0, "S2001/S2101A-S2102A", "{s:?}");
    assert!(pos(&s, "S2004/S2104B-S2105B") > last_read);
}

// ---------------------------------------------------------------- engine level

fn keys() -> &'static Keyset {
    static K: OnceLock<Keyset> = OnceLock::new();
    K.get_or_init(|| Keyset::from_seed("settle-tests", vec![card_serial(&id(0xEE))]))
}

fn id(n: u8) -> [u8; 8] {
    [0xCB, 0, 0, 0, 0, 6, 0, n]
}

fn term() -> Terminal<'static> {
    Terminal::new(keys(), NOW, ChaCha20Rng::seed_from_u64(14))
}

fn xfer_head(n: u8, tk: u32, balance: u32) -> VirtualHead {
    let mut p = CardPlan::new(id(n));
    p.transfer_key = tk;
    p.balance = balance;
    let mut h = VirtualHead::new(&format!("H{n}"));
    h.insert(personalize_virtual(&p, Protocol::T1, keys()).unwrap());
    h.power_on().unwrap();
    h
}

fn image(h: &VirtualHead) -> CardImage {
    h.card().unwrap().image().clone()
}

/// A card's whole state for before / after comparisons (key bytes are redacted in Debug;
/// their IDs are compared).
fn state(h: &VirtualHead) -> String {
    format!("{:?}", image(h))
}

fn run_settle(a: &mut VirtualHead, b: &mut VirtualHead, t: &mut Terminal, amount: u32) -> cardbench::engine::Outcome {
    let rec = Recorder::disabled();
    settle(&mut Link::new(a, &rec), &mut Link::new(b, &rec), t, UpdateMode::Auto, amount).unwrap()
}

#[test]
fn a_revoked_card_stops_the_settlement_before_either_card_changes() {
    for (older_revoked, tk_rev, tk_other) in [(true, 2, 4), (false, 4, 2), (false, 3, 3)] {
        let mut rev = xfer_head(0xEE, tk_rev, 5000);
        let mut ok = xfer_head(1, tk_other, 5000);
        let before = (state(&rev), state(&ok));
        let o = run_settle(&mut ok, &mut rev, &mut term(), 100);
        assert_eq!(o.verdict(), "rejected:certificate-revoked", "older revoked {older_revoked}: {o}");
        assert!(o.detail().starts_with("at S4003"), "{o}");
        assert_eq!((state(&rev), state(&ok)), before, "no state change on either card");
    }
}

#[test]
fn an_expired_card_and_a_pending_credit_stop_it_too() {
    let mut a = xfer_head(1, 2, 5000);
    let mut b = xfer_head(2, 4, 5000);
    let mut t = term();
    t.now = 2_000_000_000; // after the cards' validity (2030-12-31)
    let before = (state(&a), state(&b));
    let o = run_settle(&mut a, &mut b, &mut t, 100);
    assert_eq!(o.verdict(), "rejected:card-expired", "{o}");
    assert_eq!((state(&a), state(&b)), before);

    // An interrupted transfer left B a pending credit: settling first would update its key
    // and strand the credit; the terminal refuses before sending anything that changes state.
    let mut a = xfer_head(1, 3, 5000);
    let mut b = xfer_head(2, 3, 5000);
    b.cut_power(Some(PowerCut { at: 3, point: CutPoint::AfterCommand }));
    let rec = Recorder::disabled();
    let mut t = term();
    let r = cardbench::engine::transfer::value_transfer(
        &mut Link::new(&mut a, &rec),
        &mut Link::new(&mut b, &rec),
        &mut t,
        100,
    );
    assert!(r.is_err(), "{r:?}");
    b.cut_power(None);
    b.power_on().unwrap();
    assert!(image(&b).xfer.pending_credit.is_some(), "the cut left a pending credit");
    let before = (state(&a), state(&b));
    let o = run_settle(&mut a, &mut b, &mut term(), 100);
    assert_eq!(o.verdict(), "rejected:credit-pending", "{o}");
    assert_eq!((state(&a), state(&b)), before);
}

#[test]
fn settle_conserves_value_and_leaves_both_on_the_newer_key() {
    let mut a = xfer_head(1, 5, 5000);
    let mut b = xfer_head(2, 2, 1000);
    let o = run_settle(&mut a, &mut b, &mut term(), 1200);
    assert_eq!(o.verdict(), "success", "{o}");
    let (ia, ib) = (image(&a).xfer, image(&b).xfer);
    assert_eq!((ia.tkid, ib.tkid), (5, 5));
    assert_eq!((ia.balance, ib.balance), (3800, 2200));
    // Equal now: a second settlement transfers at once.
    let o = run_settle(&mut b, &mut a, &mut term(), 200);
    assert_eq!(o.verdict(), "success", "{o}");
    assert!(o.detail().starts_with("same transfer key"), "{o}");
    assert_eq!((image(&a).xfer.balance, image(&b).xfer.balance), (4000, 2000));
}

// ---------------------------------------------------------------- charge after a torn payment

fn purse_head() -> VirtualHead {
    let mut h = VirtualHead::new("P");
    h.insert(personalize_virtual(&CardPlan::new(id(0x50)), Protocol::T0, keys()).unwrap());
    h.power_on().unwrap();
    h
}

#[test]
fn a_payment_cut_after_write_value_is_put_back_into_use_by_the_seeds_charge_machine() {
    let rec = Recorder::disabled();
    let mut h = purse_head();
    charge(&mut Link::new(&mut h, &rec), &mut term(), 5000).unwrap();
    // pay: SELECT, READ ALL (256 bytes + 61 10, GET RESPONSE), then WRITE VALUE is the 4th
    // transmit; its answer and the signature never come.
    h.cut_power(Some(PowerCut { at: 4, point: CutPoint::AfterCommand }));
    assert!(pay(&mut Link::new(&mut h, &rec), &mut term(), 1200).is_err());
    h.cut_power(None);
    h.power_on().unwrap();
    let torn = image(&h).purse;
    assert_eq!((torn.amount, torn.counter), (3800, 998));

    // Another terminal (no journal of that payment): payment and an adding charge refuse the
    // record, and recovery has nothing of its own to re-sign.
    let p = pay(&mut Link::new(&mut h, &rec), &mut term(), 100).unwrap();
    assert_eq!(p.verdict(), "rejected:record-signature-invalid", "{p}");
    let c = charge(&mut Link::new(&mut h, &rec), &mut term(), 100).unwrap();
    assert_eq!(c.verdict(), "rejected:record-signature-invalid", "{c}");
    assert!(c.detail().contains("mode = \"write\""), "the rejection names the recovery path: {c}");
    let out = recover(&mut [&mut Link::new(&mut h, &rec)], &mut term()).unwrap();
    assert!(!out.has("re-signed"), "{out}");
    assert_eq!(format!("{:?}", image(&h).purse), format!("{torn:?}"), "refusals and recovery wrote nothing");

    // The seed's charge machine writes the value the lab settled (the 5000 the verified record
    // held before the cut payment: the service was not provided) and signs it.
    let w = charge_with(&mut Link::new(&mut h, &rec), &mut term(), 5000, ChargeMode::Write).unwrap();
    assert_eq!(w.verdict(), "success", "{w}");
    let r = image(&h).purse;
    assert_eq!((r.amount, r.counter), (5000, 997), "one more counter step");
    assert_eq!(r.certificate, keys().charge.cert.encode().to_vec());
    let rec_now = cardbench::engine::purse::Record {
        card_id: id(0x50),
        counter: r.counter,
        amount: r.amount,
        date: r.date,
        signature: r.signature.clone(),
        certificate: r.certificate.clone(),
    };
    assert!(record_verifies(&term(), &rec_now));
    // Every machine accepts it again.
    assert_eq!(pay(&mut Link::new(&mut h, &rec), &mut term(), 800).unwrap().verdict(), "success");
    assert_eq!(charge(&mut Link::new(&mut h, &rec), &mut term(), 100).unwrap().verdict(), "success");
    assert_eq!(image(&h).purse.amount, 4300);
}

#[test]
fn the_write_mode_also_settles_an_unsigned_first_write_and_a_blank_card() {
    let rec = Recorder::disabled();
    let mut h = purse_head();
    let w = charge_with(&mut Link::new(&mut h, &rec), &mut term(), 700, ChargeMode::Write).unwrap();
    assert_eq!(w.verdict(), "success", "{w}");
    assert_eq!(image(&h).purse.amount, 700);

    let mut h = purse_head();
    h.cut_power(Some(PowerCut { at: 4, point: CutPoint::AfterCommand }));
    assert!(charge(&mut Link::new(&mut h, &rec), &mut term(), 5000).is_err());
    h.cut_power(None);
    h.power_on().unwrap();
    assert!(image(&h).purse.signature.is_empty());
    let c = charge(&mut Link::new(&mut h, &rec), &mut term(), 5000).unwrap();
    assert_eq!(c.verdict(), "rejected:record-unsettled");
    let w = charge_with(&mut Link::new(&mut h, &rec), &mut term(), 5000, ChargeMode::Write).unwrap();
    assert_eq!(w.verdict(), "success", "{w}");
    assert_eq!(pay(&mut Link::new(&mut h, &rec), &mut term(), 5000).unwrap().verdict(), "success");
    assert_eq!(image(&h).purse.amount, 0);
}

#[test]
fn the_write_mode_is_refused_while_this_terminals_own_write_is_in_doubt() {
    // The terminal that wrote the torn record re-signs it through recovery; it must not
    // overwrite it before recovery has read the card.
    let rec = Recorder::disabled();
    let mut h = purse_head();
    let mut t = term();
    charge(&mut Link::new(&mut h, &rec), &mut t, 5000).unwrap();
    h.cut_power(Some(PowerCut { at: 4, point: CutPoint::AfterCommand }));
    assert!(pay(&mut Link::new(&mut h, &rec), &mut t, 1200).is_err());
    h.cut_power(None);
    h.power_on().unwrap();
    let w = charge_with(&mut Link::new(&mut h, &rec), &mut t, 5000, ChargeMode::Write).unwrap();
    assert_eq!(w.verdict(), "rejected:recovery-needed", "{w}");
}

// ---------------------------------------------------------------- tear campaign

#[test]
fn a_tear_campaign_on_a_settlement_finds_no_violation_and_names_the_updated_state() {
    // Power cut at every exchange and NVM commit of a settlement (C on the older key: the
    // update, then the transfer), then `engine::recover` and the invariants (docs/tear.md).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tear-settle.toml");
    std::fs::write(
        &p,
        r#"[plan]
id = "tear-settle"
version = "1.0.0"
title = "settle under power cuts"
applet = "xfer"

[[case]]
id = "SETTLE"
title = "settle C -> D"
[[case.step]]
do = "engine"
engine = "settle"
from = "C"
to = "D"
amount = 700
"#,
    )
    .unwrap();
    let out = bin().arg("tear").arg(&p).args(["--profile", "profiles/virtual-lab.toml", "-q"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap();
    assert!(last.ends_with(", 0 VIOLATION"), "{stdout}");
    // Cuts in the transfer part leave the key update done and no value moved (or a pending
    // credit that recovery cancels): a state of its own, not a violation.
    let updated: usize = last
        .split(", ")
        .find_map(|p| p.strip_suffix(" updated"))
        .and_then(|n| n.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'updated' count in: {last}"));
    assert!(updated > 0, "{last}");
}
