//! Protocol engines end to end on virtual cards: every rejection the seeds imply, named by
//! the seed step where the terminal stops, and the state of the cards afterwards.

use cardbench::apdu::Command;
use cardbench::card::image::CardImage;
use cardbench::card::Protocol;
use cardbench::cmds;
use cardbench::engine::key_update::{key_update, UpdateMode};
use cardbench::engine::purse::{charge, pay, Record};
use cardbench::engine::transfer::value_transfer;
use cardbench::engine::{cpay::card_signed_payment, Outcome, RejectKind, Terminal};
use cardbench::event::Recorder;
use cardbench::head::tap::{Hook, Tapped};
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::{Head, HeadError, Wire};
use cardbench::issuance::CardPlan;
use cardbench::keys::{card_serial, Keyset};
use cardbench::lab::personalize_virtual;
use cardbench::link::Link;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::OnceLock;

/// 2026-06-01T12:00:00Z
const NOW: u32 = 1_780_315_200;

fn keys() -> &'static Keyset {
    static K: OnceLock<Keyset> = OnceLock::new();
    K.get_or_init(|| Keyset::from_seed("engine-tests", vec![]))
}

fn id(n: u8) -> [u8; 8] {
    [0xCB, 0, 0, 0, 0, 0, 0xEE, n]
}

fn head_for(plan: &CardPlan, keys: &Keyset) -> VirtualHead {
    let mut h = VirtualHead::new(&format!("H{:02X}", plan.card_id[7]));
    h.insert(personalize_virtual(plan, Protocol::T0, keys).unwrap());
    h.power_on().unwrap();
    h
}

fn head(plan: CardPlan) -> VirtualHead {
    head_for(&plan, keys())
}

fn term(keys: &Keyset) -> Terminal<'_> {
    Terminal::new(keys, NOW, ChaCha20Rng::seed_from_u64(7))
}

fn image(h: &mut VirtualHead) -> CardImage {
    h.card().unwrap().image().clone()
}

fn rejected(o: &Outcome) -> (&str, &RejectKind) {
    match o {
        Outcome::Rejected(r) => (r.step.as_str(), &r.kind),
        other => panic!("expected a rejection, got {other}"),
    }
}

fn raw(h: &mut VirtualHead, cmd: &Command) -> cardbench::apdu::Response {
    let rec = Recorder::disabled();
    Link::new(h, &rec).exec("raw", cmd).unwrap()
}

fn record(h: &mut VirtualHead) -> Record {
    raw(h, &cmds::select(&cardbench::card::ins::AID_PURSE));
    Record::parse(&raw(h, &cmds::purse_read_all()).data).unwrap()
}

/// The attacker's tools on a crypto-less purse: write any value, signature, certificate.
fn forge(h: &mut VirtualHead, amount: u32, date: u32, sig: &[u8], cert: &[u8]) {
    raw(h, &cmds::select(&cardbench::card::ins::AID_PURSE));
    assert!(raw(h, &cmds::purse_write_value(amount, date)).is_ok());
    assert!(raw(h, &cmds::purse_write_signature(sig)).is_ok());
    assert!(raw(h, &cmds::purse_write_certificate(cert)).is_ok());
}

fn run_charge(h: &mut VirtualHead, t: &mut Terminal, amount: u32) -> Outcome {
    let rec = Recorder::disabled();
    charge(&mut Link::new(h, &rec), t, amount).unwrap()
}

fn run_pay(h: &mut VirtualHead, t: &mut Terminal, price: u32) -> Outcome {
    let rec = Recorder::disabled();
    pay(&mut Link::new(h, &rec), t, price).unwrap()
}

// ---------------------------------------------------------------- seed 000: charge / pay

#[test]
fn charge_then_pays_keep_a_verifiable_chain() {
    let mut h = head(CardPlan::new(id(1)));
    let mut t = term(keys());
    assert_eq!(run_charge(&mut h, &mut t, 5000).verdict(), "success");
    let r = record(&mut h);
    assert_eq!((r.amount, r.counter, r.date), (5000, 999, NOW));
    assert_eq!(r.certificate, keys().charge.cert.encode());
    assert_eq!(run_pay(&mut h, &mut t, 1200).verdict(), "success");
    let r = record(&mut h);
    assert_eq!((r.amount, r.counter), (3800, 998));
    // S18: the payment machine re-signed as the new writer.
    assert_eq!(r.certificate, keys().payment.cert.encode());
    assert_eq!(run_pay(&mut h, &mut t, 800).verdict(), "success");
    assert_eq!(record(&mut h).amount, 3000);
    // A second charge verifies the record and adds to it.
    assert_eq!(run_charge(&mut h, &mut t, 1000).verdict(), "success");
    assert_eq!((record(&mut h).amount, record(&mut h).counter), (4000, 996));
}

#[test]
fn pay_on_blank_card_is_no_record() {
    let mut h = head(CardPlan::new(id(2)));
    let o = run_pay(&mut h, &mut term(keys()), 1);
    assert_eq!(rejected(&o), ("S11", &RejectKind::NoRecord));
}

#[test]
fn tampered_amount_is_rejected_at_s15() {
    let mut h = head(CardPlan::new(id(3)));
    let mut t = term(keys());
    run_charge(&mut h, &mut t, 100);
    let r = record(&mut h);
    forge(&mut h, 100_000, r.date, &r.signature, &r.certificate);
    let before = image(&mut h);
    let o = run_pay(&mut h, &mut t, 10);
    assert_eq!(rejected(&o), ("S15", &RejectKind::RecordSignatureInvalid));
    assert_eq!(image(&mut h).purse.amount, before.purse.amount, "a rejected pay writes nothing");
    assert_eq!(image(&mut h).purse.counter, before.purse.counter);
}

#[test]
fn record_cloned_onto_another_card_is_rejected() {
    let mut t = term(keys());
    let mut src = head(CardPlan::new(id(4)));
    // Same counter as the source card, so only the card ID differs.
    let mut dst = head(CardPlan::new(id(5)));
    run_charge(&mut src, &mut t, 700);
    let r = record(&mut src);
    forge(&mut dst, r.amount, r.date, &r.signature, &r.certificate);
    assert_eq!(record(&mut dst).counter, r.counter, "clone shares the counter value");
    let o = run_pay(&mut dst, &mut t, 10);
    assert_eq!(rejected(&o), ("S15", &RejectKind::RecordSignatureInvalid));
}

#[test]
fn rollback_to_an_earlier_record_is_rejected() {
    let mut h = head(CardPlan::new(id(6)));
    let mut t = term(keys());
    run_charge(&mut h, &mut t, 1000);
    let rich = record(&mut h);
    run_pay(&mut h, &mut t, 900);
    // Restore the earlier, richer record: the counter has moved on and cannot be set back.
    forge(&mut h, rich.amount, rich.date, &rich.signature, &rich.certificate);
    let now = record(&mut h);
    assert_eq!(now.amount, 1000);
    assert!(now.counter < rich.counter);
    let o = run_pay(&mut h, &mut t, 10);
    assert_eq!(rejected(&o), ("S15", &RejectKind::RecordSignatureInvalid));
}

#[test]
fn writer_certificate_not_signed_by_the_center_is_rejected_at_s12() {
    let rogue = Keyset::from_seed("rogue center", vec![]);
    let mut h = head(CardPlan::new(id(7)));
    run_charge(&mut h, &mut term(&rogue), 5000);
    let o = run_pay(&mut h, &mut term(keys()), 10);
    assert_eq!(rejected(&o), ("S12", &RejectKind::CertificateInvalid));
}

#[test]
fn insufficient_value_is_rejected_at_s18_and_nothing_is_written() {
    let mut h = head(CardPlan::new(id(8)));
    let mut t = term(keys());
    run_charge(&mut h, &mut t, 50);
    let before = record(&mut h);
    let o = run_pay(&mut h, &mut t, 51);
    assert_eq!(rejected(&o), ("S18", &RejectKind::InsufficientValue));
    assert_eq!(record(&mut h), before);
}

#[test]
fn exhausted_counter_stops_the_charge_machine_at_s1() {
    let mut plan = CardPlan::new(id(9));
    plan.purse_counter = 1;
    let mut h = head(plan);
    let mut t = term(keys());
    assert_eq!(run_charge(&mut h, &mut t, 10).verdict(), "success");
    let o = run_charge(&mut h, &mut t, 10);
    assert_eq!(rejected(&o), ("S1/S2", &RejectKind::CardRefused(0x6A84)));
    assert_eq!(record(&mut h).amount, 10);
}

// ------------------------------------------------------------- seed 000 prior art: CPAY

fn run_cpay(h: &mut VirtualHead, t: &mut Terminal, price: u32) -> Outcome {
    let rec = Recorder::disabled();
    card_signed_payment(&mut Link::new(h, &rec), t, price).unwrap()
}

#[test]
fn card_signed_payment_debits_and_rejects_overspend() {
    let mut plan = CardPlan::new(id(10));
    plan.cpay_amount = 1000;
    let mut h = head(plan);
    let mut t = term(keys());
    assert_eq!(run_cpay(&mut h, &mut t, 400).verdict(), "success");
    assert_eq!(image(&mut h).cpay.amount, 600);
    let o = run_cpay(&mut h, &mut t, 601);
    assert_eq!(rejected(&o), ("S38", &RejectKind::InsufficientValue));
    assert_eq!(image(&mut h).cpay.amount, 600);
}

#[test]
fn card_rejects_a_reader_certified_by_another_center_at_s22() {
    let mut plan = CardPlan::new(id(11));
    plan.cpay_amount = 1000;
    let mut h = head(plan);
    let rogue = Keyset::from_seed("rogue center", vec![]);
    let o = run_cpay(&mut h, &mut term(&rogue), 1);
    assert_eq!(rejected(&o), ("S22", &RejectKind::CardRefused(0x6982)));
}

#[test]
fn reader_rejects_a_card_certified_by_another_center_at_s32() {
    let rogue = Keyset::from_seed("rogue center", vec![]);
    let mut plan = CardPlan::new(id(12));
    plan.cpay_amount = 1000;
    // The card trusts our center (so it accepts our reader) but its own key is rogue-certified.
    let mut h = head_for(&plan, &rogue);
    let center = cardbench::crypto::sig::encode_point(&keys().center_public());
    let card = h.as_virtual().unwrap();
    card.card_mut()
        .unwrap()
        .nvm_mut()
        .update(|img| {
            img.cpay.center_key = Some(center);
            Ok(())
        })
        .unwrap();
    let o = run_cpay(&mut h, &mut term(keys()), 1);
    assert_eq!(rejected(&o), ("S32", &RejectKind::CertificateInvalid));
}

// ------------------------------------------------------------- seed 002: key update

fn xfer(n: u8, tk: u32, uk: u32) -> CardPlan {
    let mut p = CardPlan::new(id(n));
    p.transfer_key = tk;
    p.update_key = uk;
    p.balance = 1000;
    p
}

fn run_update(a: &mut VirtualHead, b: &mut VirtualHead, t: &mut Terminal, mode: UpdateMode) -> Outcome {
    let rec = Recorder::disabled();
    key_update(&mut Link::new(a, &rec), &mut Link::new(b, &rec), t, mode).unwrap()
}

#[test]
fn every_mode_brings_the_older_card_up_in_either_direction() {
    let cases = [
        (UpdateMode::Common, 1, 1, "S1"),
        (UpdateMode::Public, 1, 2, "S3"),
        (UpdateMode::Auto, 1, 1, "S4"),
        (UpdateMode::Auto, 1, 2, "S5"),
        (UpdateMode::Rollover, 1, 1, "S7"),
        (UpdateMode::Rollover, 1, 2, "S8"),
    ];
    for (i, (mode, uka, ukb, series)) in cases.into_iter().enumerate() {
        for newer_first in [false, true] {
            let n = 0x20 + (i as u8) * 2;
            let mut a = head(xfer(n, 2, uka));
            let mut b = head(xfer(n + 1, 5, ukb));
            let mut t = term(keys());
            let o = if newer_first {
                run_update(&mut b, &mut a, &mut t, mode)
            } else {
                run_update(&mut a, &mut b, &mut t, mode)
            };
            assert_eq!(o.verdict(), "success", "{mode:?} {series}: {o}");
            assert!(o.detail().contains(&format!("({series}xxx)")), "{o}");
            let ia = image(&mut a);
            assert_eq!(ia.xfer.tkid, 5, "{mode:?}");
            assert_eq!(ia.xfer.tk.as_ref().unwrap().expose(), keys().transfer_key(5).unwrap().expose());
            let expect_uk = if series == "S8" { ukb } else { uka };
            assert_eq!(ia.xfer.ukid, expect_uk, "{mode:?} {series}");
            assert_eq!(image(&mut b).xfer.tkid, 5);
        }
    }
}

#[test]
fn multi_key_moves_only_the_id_to_a_preloaded_slot() {
    let mut pa = xfer(0x40, 2, 1);
    pa.slots = vec![3, 6];
    let mut a = head(pa);
    let mut b = head(xfer(0x41, 6, 1));
    let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Multi);
    assert_eq!(o.verdict(), "success", "{o}");
    let ia = image(&mut a);
    assert_eq!(ia.xfer.tkid, 6);
    assert_eq!(ia.xfer.tk.as_ref().unwrap().expose(), keys().transfer_key(6).unwrap().expose());
}

#[test]
fn multi_key_without_the_slot_is_refused_by_the_card() {
    let mut a = head(xfer(0x42, 2, 1));
    let mut b = head(xfer(0x43, 6, 1));
    let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Multi);
    assert_eq!(rejected(&o), ("S6104A", &RejectKind::CardRefused(0x6984)));
    assert_eq!(image(&mut a).xfer.tkid, 2);
}

#[test]
fn same_id_is_skipped_without_touching_either_card() {
    let mut a = head(xfer(0x44, 3, 1));
    let mut b = head(xfer(0x45, 3, 2));
    let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Rollover);
    assert_eq!(o.verdict(), "skipped");
    assert_eq!(image(&mut a).xfer.ukid, 1);
}

#[test]
fn range_check_boundaries_at_the_upper_limit() {
    // current 2, limit 5: new 5 (= limit) accepted, new 6 (limit + 1) refused.
    for (newer, ok) in [(3u32, true), (5, true), (6, false), (8, false)] {
        let mut pa = xfer(0x46, 2, 1);
        pa.transfer_key_limit = 5;
        let mut a = head(pa);
        let mut b = head(xfer(0x47, newer, 1));
        let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Common);
        if ok {
            assert_eq!(o.verdict(), "success", "new {newer}: {o}");
            assert_eq!(image(&mut a).xfer.tkid, newer);
        } else {
            assert_eq!(rejected(&o), ("S1104A", &RejectKind::CardRefused(0x6984)), "new {newer}");
            assert_eq!(image(&mut a).xfer.tkid, 2);
        }
    }
}

#[test]
fn rollover_checks_the_update_key_range_too() {
    let mut pa = xfer(0x48, 2, 1);
    pa.update_key_limit = 1;
    let mut a = head(pa);
    let mut b = head(xfer(0x49, 4, 2));
    let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Rollover);
    assert_eq!(rejected(&o), ("S8105A", &RejectKind::CardRefused(0x6984)));
    let ia = image(&mut a);
    assert_eq!((ia.xfer.tkid, ia.xfer.ukid), (2, 1), "nothing moves when one range check fails");
}

#[test]
fn wrong_update_key_fails_dynamic_authentication_at_s1103a() {
    // Card B claims the shared update key but holds another: A cannot open its message.
    let mut a = head(xfer(0x4A, 2, 1));
    let mut b = head(xfer(0x4B, 4, 1));
    let other = *keys().update_key(3).unwrap().expose();
    b.card_mut()
        .unwrap()
        .nvm_mut()
        .update(|img| {
            img.xfer.uk = Some(cardbench::secret::Secret::new(other));
            Ok(())
        })
        .unwrap();
    let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Common);
    assert_eq!(rejected(&o), ("S1103A", &RejectKind::CardRefused(0x6982)));
    assert_eq!(image(&mut a).xfer.tkid, 2);
}

#[test]
fn expired_card_stops_the_update_at_s1003() {
    let mut pa = xfer(0x4C, 2, 1);
    pa.validity = NOW - 1;
    let mut a = head(pa);
    let mut b = head(xfer(0x4D, 4, 1));
    let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Common);
    assert_eq!(rejected(&o), ("S1003", &RejectKind::CardExpired));
    assert_eq!(image(&mut a).xfer.tkid, 2);
}

#[test]
fn revoked_certificate_stops_the_public_update_at_s3003() {
    let revoked = Keyset::from_seed("engine-tests", vec![card_serial(&id(0x4F))]);
    let mut a = head(xfer(0x4E, 2, 1));
    let mut b = head(xfer(0x4F, 4, 1));
    let o = run_update(&mut a, &mut b, &mut term(&revoked), UpdateMode::Public);
    assert_eq!(rejected(&o), ("S3003", &RejectKind::CertificateRevoked));
    // The same cards update fine with a CRL that does not list B.
    let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Public);
    assert_eq!(o.verdict(), "success");
}

#[test]
fn expired_certificate_stops_the_public_update() {
    let mut pb = xfer(0x51, 4, 1);
    pb.cert_expiry = NOW - 1;
    let mut a = head(xfer(0x50, 2, 1));
    let mut b = head(pb);
    let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Public);
    assert_eq!(rejected(&o), ("S3003", &RejectKind::CertificateExpired));
}

#[test]
fn card_not_certified_by_the_ca_is_refused() {
    let rogue = Keyset::from_seed("rogue ca", vec![]);
    let mut a = head(xfer(0x52, 2, 1));
    let mut pb = xfer(0x53, 4, 1);
    pb.transfer_key = 4;
    let mut b = head_for(&pb, &rogue);
    let o = run_update(&mut a, &mut b, &mut term(keys()), UpdateMode::Public);
    assert_eq!(rejected(&o), ("S3003", &RejectKind::CertificateInvalid));
}

// ------------------------------------------------------------- seed 002: value transfer

fn run_transfer(a: &mut dyn Head, b: &mut dyn Head, t: &mut Terminal, amount: u32) -> Outcome {
    let rec = Recorder::disabled();
    value_transfer(&mut Link::new(a, &rec), &mut Link::new(b, &rec), t, amount).unwrap()
}

#[test]
fn transfer_conserves_the_sum_in_both_directions() {
    let mut a = head(xfer(0x60, 3, 1));
    let mut b = head(xfer(0x61, 3, 2));
    let mut t = term(keys());
    assert_eq!(run_transfer(&mut a, &mut b, &mut t, 250).verdict(), "success");
    assert_eq!((image(&mut a).xfer.balance, image(&mut b).xfer.balance), (750, 1250));
    assert_eq!(run_transfer(&mut b, &mut a, &mut t, 1250).verdict(), "success");
    assert_eq!((image(&mut a).xfer.balance, image(&mut b).xfer.balance), (2000, 0));
    assert!(image(&mut b).xfer.last_debit.is_some());
    assert!(image(&mut a).xfer.pending_credit.is_none());
}

#[test]
fn transfer_refused_when_transfer_keys_differ() {
    let mut a = head(xfer(0x62, 3, 1));
    let mut b = head(xfer(0x63, 4, 1));
    let o = run_transfer(&mut a, &mut b, &mut term(keys()), 1);
    assert_eq!(rejected(&o), ("S2001", &RejectKind::TransferKeysDiffer));
}

#[test]
fn insufficient_balance_and_overflow_change_nothing() {
    let mut a = head(xfer(0x64, 3, 1));
    let mut pb = xfer(0x65, 3, 1);
    pb.max_balance = 1100;
    let mut b = head(pb);
    let mut t = term(keys());
    let o = run_transfer(&mut a, &mut b, &mut t, 1001);
    assert_eq!(rejected(&o), ("S2001", &RejectKind::InsufficientValue));
    let o = run_transfer(&mut a, &mut b, &mut t, 101);
    assert_eq!(rejected(&o), ("S2002/S2101B-S2103B", &RejectKind::CardRefused(0x6A84)));
    assert_eq!((image(&mut a).xfer.balance, image(&mut b).xfer.balance), (1000, 1000));
}

#[test]
fn expired_card_cannot_transfer() {
    let mut pa = xfer(0x66, 3, 1);
    pa.validity = NOW - 1;
    let mut a = head(pa);
    let mut b = head(xfer(0x67, 3, 1));
    let o = run_transfer(&mut a, &mut b, &mut term(keys()), 1);
    assert_eq!(rejected(&o), ("S2001", &RejectKind::CardExpired));
}

/// Corrupts the data of one instruction in transit: the bad challenge a fraudulent card or
/// a man in the middle would produce.
struct FlipBit {
    ins: u8,
}

impl Hook for FlipBit {
    fn transmit(&mut self, inner: &mut dyn Head, apdu: &[u8]) -> Result<Wire, HeadError> {
        let mut a = apdu.to_vec();
        if a.len() > 6 && a[1] == self.ins {
            a[5] ^= 0x01;
        }
        inner.transmit(&a)
    }
}

fn corrupt(h: VirtualHead, ins: u8) -> Tapped<'static, FlipBit> {
    Tapped::owned(Box::new(h), FlipBit { ins })
}

#[test]
fn bad_transmission_challenge_is_refused_and_nothing_moves() {
    let mut a = corrupt(head(xfer(0x68, 3, 1)), cardbench::card::ins::XFER_SEND);
    let mut b = head(xfer(0x69, 3, 1));
    let o = run_transfer(&mut a, &mut b, &mut term(keys()), 100);
    assert_eq!(rejected(&o), ("S2103A", &RejectKind::CardRefused(0x6982)));
    let (ia, ib) = (image(a.as_virtual().unwrap()), image(&mut b));
    assert_eq!((ia.xfer.balance, ib.xfer.balance), (1000, 1000));
    assert!(ib.xfer.pending_credit.is_none(), "the terminal cancels the receiver's pending credit");
}

#[test]
fn bad_reception_challenge_keeps_the_credit_pending_for_recovery() {
    let mut a = head(xfer(0x6A, 3, 1));
    let mut b = corrupt(head(xfer(0x6B, 3, 1)), cardbench::card::ins::XFER_RECEIVE);
    let o = run_transfer(&mut a, &mut b, &mut term(keys()), 100);
    assert_eq!(rejected(&o), ("S2104B", &RejectKind::CardRefused(0x6982)));
    let (ia, ib) = (image(&mut a), image(b.as_virtual().unwrap()));
    assert_eq!(ia.xfer.balance, 900, "the sender committed after the transmission challenge verified");
    assert_eq!(ib.xfer.balance, 1000);
    let pending = ib.xfer.pending_credit.expect("credit kept in NVM");
    let debit = ia.xfer.last_debit.expect("sender keeps its last debit");
    assert_eq!((pending.paid, pending.rnd_recv), (100, debit.rnd_recv));
    // Recovery: deliver the sender's recorded reception challenge to the receiver.
    let r = raw(b.as_virtual().unwrap(), &cmds::xfer_receive(&debit.challenge));
    assert!(r.is_ok(), "{:04X}", r.sw);
    assert_eq!(image(b.as_virtual().unwrap()).xfer.balance + image(&mut a).xfer.balance, 2000);
}

#[test]
fn random_transfers_conserve_the_sum_and_rejections_change_nothing() {
    let mut heads: Vec<VirtualHead> = (0..3u8).map(|i| head(xfer(0x70 + i, 3, 1))).collect();
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let mut t = term(keys());
    let total = |hs: &mut Vec<VirtualHead>| hs.iter_mut().map(|h| image(h).xfer.balance as u64).sum::<u64>();
    let start = total(&mut heads);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..40 {
        let i = (rng.next_u32() % 3) as usize;
        let j = (i + 1 + (rng.next_u32() % 2) as usize) % 3;
        let amount = rng.next_u32() % 1500;
        let before: Vec<u32> = heads.iter_mut().map(|h| image(h).xfer.balance).collect();
        let (l, r) = heads.split_at_mut(i.max(j));
        let (x, y) = if i < j { (&mut l[i], &mut r[0]) } else { (&mut r[0], &mut l[j]) };
        let o = run_transfer(x, y, &mut t, amount);
        let after: Vec<u32> = heads.iter_mut().map(|h| image(h).xfer.balance).collect();
        match o {
            Outcome::Success(_) => {
                ok += 1;
                assert_eq!(after[i], before[i] - amount);
                assert_eq!(after[j], before[j] + amount);
            }
            _ => {
                refused += 1;
                assert_eq!(after, before, "a rejected transfer changes no balance: {o}");
            }
        }
        assert_eq!(total(&mut heads), start);
    }
    assert!(ok > 10 && refused > 0, "the sequence exercised both paths ({ok} ok, {refused} refused)");
}
