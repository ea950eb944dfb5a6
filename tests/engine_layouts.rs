//! The engines check every byte of every response against the spec's layouts (issue 12
//! point 2): a card answering off its layout, or answering values the command cannot have
//! produced, is rejected naming the step and the field, and nothing more is sent to it.
//! Each test rewrites one response of a correct card in transit (T=1, so a response is one
//! wire exchange) and looks at the outcome and the cards.

use cardbench::card::image::CardImage;
use cardbench::card::Protocol;
use cardbench::engine::cpay::card_signed_payment;
use cardbench::engine::key_update::{key_update, UpdateMode};
use cardbench::engine::purse::charge;
use cardbench::engine::transfer::value_transfer;
use cardbench::engine::{Outcome, RejectKind, Terminal};
use cardbench::event::Recorder;
use cardbench::head::tap::{Hook, Tapped};
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::{Head, HeadError, Wire};
use cardbench::issuance::CardPlan;
use cardbench::keys::Keyset;
use cardbench::lab::personalize_virtual;
use cardbench::link::Link;
use cardbench::spec::codes::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::OnceLock;

/// 2026-06-01T12:00:00Z.
const NOW: u32 = 1_780_315_200;

fn keys() -> &'static Keyset {
    static K: OnceLock<Keyset> = OnceLock::new();
    K.get_or_init(|| Keyset::from_seed("engine-layout-tests", vec![]))
}

fn plan(n: u8, tk: u32) -> CardPlan {
    let mut p = CardPlan::new([0xCB, 0, 0, 0, 0, 0, 0xDD, n]);
    p.transfer_key = tk;
    p.update_key = 1;
    p.balance = 1000;
    p.cpay_amount = 500;
    p
}

fn head(n: u8, tk: u32) -> VirtualHead {
    let mut h = VirtualHead::new(&format!("H{n:02X}"));
    h.insert(personalize_virtual(&plan(n, tk), Protocol::T1, keys()).unwrap());
    h.power_on().unwrap();
    h
}

fn term() -> Terminal<'static> {
    Terminal::new(keys(), NOW, ChaCha20Rng::seed_from_u64(12))
}

fn image(h: &mut dyn Head) -> CardImage {
    h.as_virtual().unwrap().card().unwrap().image().clone()
}

fn rejected(o: &Outcome) -> (&str, &RejectKind, &str) {
    match o {
        Outcome::Rejected(r) => (r.step.as_str(), &r.kind, r.detail.as_str()),
        other => panic!("expected a rejection, got {other}"),
    }
}

/// Rewrites the response data of the `nth` (from 1) command with `ins` (and `p1`, if given).
struct Rewrite {
    ins: u8,
    p1: Option<u8>,
    nth: usize,
    seen: usize,
    f: fn(&mut Vec<u8>),
}

impl Hook for Rewrite {
    fn transmit(&mut self, inner: &mut dyn Head, apdu: &[u8]) -> Result<Wire, HeadError> {
        let mut w = inner.transmit(apdu)?;
        if apdu.len() >= 4 && apdu[1] == self.ins && self.p1.is_none_or(|p| apdu[2] == p) {
            self.seen += 1;
            if self.seen == self.nth {
                let sw = w.response.split_off(w.response.len() - 2);
                (self.f)(&mut w.response);
                w.response.extend(sw);
            }
        }
        Ok(w)
    }
}

fn rewrite(h: VirtualHead, ins: u8, p1: Option<u8>, nth: usize, f: fn(&mut Vec<u8>)) -> Tapped<'static, Rewrite> {
    Tapped::owned(Box::new(h), Rewrite { ins, p1, nth, seen: 0, f })
}

fn transfer(a: &mut dyn Head, b: &mut dyn Head, amount: u32) -> Outcome {
    let rec = Recorder::disabled();
    value_transfer(&mut Link::new(a, &rec), &mut Link::new(b, &rec), &mut term(), amount).unwrap()
}

#[test]
fn a_value_receive_answering_another_balance_is_a_state_mismatch() {
    let mut a = head(1, 3);
    let mut b = rewrite(head(2, 3), XFER_RECEIVE, None, 1, |d| d[3] ^= 1);
    let o = transfer(&mut a, &mut b, 100);
    let (step, kind, detail) = rejected(&o);
    assert_eq!((step, kind), ("S2105B", &RejectKind::StateMismatch), "{detail}");
    assert!(detail.contains("answered balance 1101"), "{detail}");
}

#[test]
fn a_value_receive_answering_five_bytes_is_malformed() {
    let mut a = head(3, 3);
    let mut b = rewrite(head(4, 3), XFER_RECEIVE, None, 1, |d| d.push(0));
    let o = transfer(&mut a, &mut b, 100);
    let (step, kind, detail) = rejected(&o);
    assert_eq!((step, kind), ("S2105B", &RejectKind::MalformedResponse));
    assert_eq!(detail, "VALUE RECEIVE: length: 5 bytes, expected 4");
}

#[test]
fn card_info_with_a_reserved_flag_bit_stops_the_transfer_before_anything_moves() {
    let mut a = rewrite(head(5, 3), XFER_GET_INFO, Some(0), 1, |d| d[32] |= 0x40);
    let mut b = head(6, 3);
    let o = transfer(&mut a, &mut b, 100);
    let (step, kind, detail) = rejected(&o);
    assert_eq!((step, kind), ("info", &RejectKind::MalformedResponse));
    assert!(detail.starts_with("GET CARD INFO: flags (offset 32)"), "{detail}");
    assert_eq!((image(&mut a).xfer.balance, image(&mut b).xfer.balance), (1000, 1000));
    assert!(image(&mut b).xfer.pending_credit.is_none());
}

#[test]
fn card_info_with_slot_ids_out_of_order_is_malformed() {
    // Two slots 3, 4 answered as 4, 3.
    let mut p = plan(7, 3);
    p.slots = vec![3, 4];
    let mut h = VirtualHead::new("H07");
    h.insert(personalize_virtual(&p, Protocol::T1, keys()).unwrap());
    h.power_on().unwrap();
    let mut a = rewrite(h, XFER_GET_INFO, Some(0), 1, |d| {
        let (x, y) = (d[34..38].to_vec(), d[38..42].to_vec());
        d[34..38].copy_from_slice(&y);
        d[38..42].copy_from_slice(&x);
    });
    let mut b = head(8, 3);
    let o = transfer(&mut a, &mut b, 100);
    let (_, kind, detail) = rejected(&o);
    assert_eq!(kind, &RejectKind::MalformedResponse);
    assert!(detail.contains("slot IDs (offset 34): 4 then 3"), "{detail}");
}

#[test]
fn a_sender_that_does_not_flag_its_last_debit_is_a_state_mismatch() {
    // The second GET CARD INFO of A (the read-back after the transfer) without flag 08.
    let mut a = rewrite(head(9, 3), XFER_GET_INFO, Some(0), 2, |d| d[32] &= !0x08);
    let mut b = head(10, 3);
    let o = transfer(&mut a, &mut b, 100);
    let (step, kind, detail) = rejected(&o);
    assert_eq!((step, kind), ("S2105A", &RejectKind::StateMismatch), "{detail}");
    assert!(detail.contains("last debit"), "{detail}");
}

#[test]
fn a_short_transfer_key_blob_stops_the_update_before_card_a_sees_it() {
    let mut a = head(11, 1);
    let mut b = rewrite(head(12, 2), XFER_GET_TRANSFER_KEY, None, 1, |d| {
        d.pop();
    });
    let rec = Recorder::disabled();
    let o = key_update(&mut Link::new(&mut a, &rec), &mut Link::new(&mut b, &rec), &mut term(), UpdateMode::Common)
        .unwrap();
    let (step, kind, detail) = rejected(&o);
    assert_eq!((step, kind), ("S1102B", &RejectKind::MalformedResponse));
    assert_eq!(detail, "GET TRANSFER KEY: length: 67 bytes, expected 68");
    assert_eq!(image(&mut a).xfer.tkid, 1, "card A never received the blob");
}

#[test]
fn an_update_transfer_key_answering_data_is_malformed() {
    let mut a = rewrite(head(13, 1), XFER_UPDATE_TRANSFER_KEY, None, 1, |d| d.push(0x90));
    let mut b = head(14, 2);
    let rec = Recorder::disabled();
    let o = key_update(&mut Link::new(&mut a, &rec), &mut Link::new(&mut b, &rec), &mut term(), UpdateMode::Common)
        .unwrap();
    let (step, kind, _) = rejected(&o);
    assert_eq!((step, kind), ("S1104A", &RejectKind::MalformedResponse));
}

fn pay(h: &mut dyn Head, price: u32) -> Outcome {
    let rec = Recorder::disabled();
    card_signed_payment(&mut Link::new(h, &rec), &mut term(), price).unwrap()
}

#[test]
fn a_sign_payment_answer_of_97_bytes_is_malformed_and_nothing_is_debited() {
    let mut h = rewrite(head(15, 1), CPAY_SIGN, None, 1, |d| d.push(0));
    let o = pay(&mut h, 10);
    let (step, kind, detail) = rejected(&o);
    assert_eq!((step, kind), ("S35", &RejectKind::MalformedResponse));
    assert_eq!(detail, "SIGN PAYMENT: length: 97 bytes, expected 96");
    assert_eq!(image(&mut h).cpay.amount, 500);
}

#[test]
fn a_pso_verify_certificate_answering_data_is_malformed() {
    let mut h = rewrite(head(16, 1), CPAY_VERIFY_READER, None, 1, |d| d.extend([1, 2]));
    let o = pay(&mut h, 10);
    let (step, kind, _) = rejected(&o);
    assert_eq!((step, kind), ("S22", &RejectKind::MalformedResponse));
}

#[test]
fn a_select_answering_data_is_malformed() {
    let mut h = rewrite(head(17, 1), SELECT, None, 1, |d| d.extend([0x6F, 0x00]));
    let rec = Recorder::disabled();
    let o = charge(&mut Link::new(&mut h, &rec), &mut term(), 100).unwrap();
    let (step, kind, detail) = rejected(&o);
    assert_eq!((step, kind), ("select", &RejectKind::MalformedResponse));
    assert_eq!(detail, "SELECT: 2 bytes of response data, expected none");
}

#[test]
fn a_write_value_that_clears_the_signature_area_is_a_state_mismatch() {
    // A charged purse, charged again: the READ ALL after WRITE VALUE (the 3rd READ ALL of the
    // second charge: S1, charge.S11-S14, S3) shows an empty signature area.
    let mut h = head(18, 1);
    let rec = Recorder::disabled();
    assert!(matches!(charge(&mut Link::new(&mut h, &rec), &mut term(), 100).unwrap(), Outcome::Success(_)));
    let mut h = rewrite(h, PURSE_READ_ALL, None, 3, |d| {
        let s = d[20] as usize;
        d.drain(21..21 + s);
        d[20] = 0;
    });
    let o = charge(&mut Link::new(&mut h, &rec), &mut term(), 100).unwrap();
    let (step, kind, detail) = rejected(&o);
    assert_eq!((step, kind), ("S3", &RejectKind::StateMismatch), "{detail}");
    assert!(detail.contains("signature or certificate area"), "{detail}");
}
