//! The reference card command by command, through `VirtualHead` + `Link` so every byte goes
//! through the real wire path (T=0 / T=1 delivery, 61xx / 6Cxx handling, GET RESPONSE).
//!
//! Every test asserts observable behaviour only: status words, response bytes, the trace rows
//! the recorder sees, and the card's NVM image read back from the head.

use cardbench::apdu::{Command, Response};
use cardbench::card::image::CardImage;
use cardbench::card::ins::*;
use cardbench::card::{cpay, purse, xfer, Protocol, VirtualCard};
use cardbench::cmds;
use cardbench::crypto::cert::{CertBody, Certificate, Role};
use cardbench::crypto::sig;
use cardbench::event::{Event, Exchange, Recorder};
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::{Head, HeadError};
use cardbench::issuance::{self, CardPlan};
use cardbench::keys::{Keyset, CENTER_REF};
use cardbench::lab::personalize_virtual;
use cardbench::link::Link;
use cardbench::queue::Receiver;
use cardbench::secret::{Key16, Scalar32};
use cardbench::sw;
use p256::ecdsa::SigningKey;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

// ---------------------------------------------------------------------------------------------
// Helpers

const OK: u16 = sw::OK;
/// A transaction date well inside the default validity (2030-12-31).
const DATE: u32 = 1_800_000_000;
const ALL_AIDS: [[u8; 7]; 3] = [AID_PURSE, AID_CPAY, AID_XFER];

fn keys() -> Keyset {
    Keyset::from_seed("card-tests", vec![])
}

fn card_id(n: u8) -> [u8; 8] {
    [0xCA, 0x4D, 0xBE, 0x4C, 0x00, 0x00, 0x01, n]
}

/// Profile defaults plus some value on CPAY and XFER.
fn plan(n: u8) -> CardPlan {
    let mut p = CardPlan::new(card_id(n));
    p.cpay_amount = 1000;
    p.balance = 500;
    p
}

fn tk(keys: &Keyset, id: u32) -> [u8; 16] {
    *keys.transfer_key(id).expect("transfer key").expose()
}

fn uk(keys: &Keyset, id: u32) -> [u8; 16] {
    *keys.update_key(id).expect("update key").expose()
}

fn a16(b: &[u8]) -> [u8; 16] {
    b.try_into().unwrap_or_else(|_| panic!("expected 16 bytes, got {}", b.len()))
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

fn hexs(b: &[u8]) -> String {
    hex::encode_upper(b)
}

fn is_public(mode: u8) -> bool {
    mode == MODE_PUBLIC || mode == MODE_PUBLIC_UK
}

/// Everything in the NVM image, secret key bytes included (their Debug form hides them).
fn snap(img: &CardImage) -> String {
    let k16 = |k: &Option<Key16>| k.as_ref().map(|k| hexs(k.expose()));
    let k32 = |k: &Option<Scalar32>| k.as_ref().map(|k| hexs(k.expose()));
    let slots: Vec<String> = img.xfer.slots.iter().map(|(i, k)| format!("{i}:{}", hexs(k.expose()))).collect();
    format!(
        "{img:?} | uk={:?} tk={:?} slots={slots:?} cpay_key={:?} xfer_key={:?}",
        k16(&img.xfer.uk),
        k16(&img.xfer.tk),
        k32(&img.cpay.key),
        k32(&img.xfer.card_key)
    )
}

/// `snap` without the sender's send log: what a test means by "balances, keys and
/// records unchanged" around a VALUE SEND PERMISSION, which logs its session (spec 8.7).
fn snap_no_log(img: &CardImage) -> String {
    let mut i = img.clone();
    i.xfer.sends.clear();
    snap(&i)
}

/// One reader head with one card, a recorder on its link, and every reassembled response.
struct Bench {
    head: VirtualHead,
    rec: Recorder,
    rx: Receiver,
    /// Data of every response `exec` returned (after Link reassembly).
    responses: Vec<Vec<u8>>,
}

impl Bench {
    /// Insert `card` and power it.
    fn new(card: VirtualCard) -> Bench {
        let (rec, rx) = Recorder::new("card-tests");
        Bench::with_recorder(card, rec, rx)
    }

    fn with_recorder(card: VirtualCard, rec: Recorder, rx: Receiver) -> Bench {
        let mut head = VirtualHead::new("A");
        assert!(head.insert(card).is_none());
        head.power_on().expect("power on");
        Bench { head, rec, rx, responses: Vec::new() }
    }

    fn try_exec(&mut self, cmd: &Command) -> Result<Response, HeadError> {
        let mut link = Link::new(&mut self.head, &self.rec);
        let r = link.exec("card-test", cmd);
        if let Ok(r) = &r {
            self.responses.push(r.data.clone());
        }
        r
    }

    fn exec(&mut self, cmd: &Command) -> Response {
        self.try_exec(cmd).unwrap_or_else(|e| panic!("{} ({cmd:?}): head error {e}", cmds::name(cmd.cla, cmd.ins)))
    }

    /// Execute and assert the status word; returns the response data.
    fn sw(&mut self, cmd: &Command, want: u16) -> Vec<u8> {
        let r = self.exec(cmd);
        assert_eq!(
            r.sw,
            want,
            "{} {:02X} {:02X} {:02X} {:02X} (data {} bytes): got SW {:04X}, want {:04X}",
            cmds::name(cmd.cla, cmd.ins),
            cmd.cla,
            cmd.ins,
            cmd.p1,
            cmd.p2,
            cmd.data.len(),
            r.sw,
            want
        );
        r.data
    }

    fn ok(&mut self, cmd: &Command) -> Vec<u8> {
        self.sw(cmd, OK)
    }

    fn select(&mut self, aid: &[u8]) {
        assert!(self.ok(&cmds::select(aid)).is_empty());
    }

    fn transmit(&mut self, bytes: &[u8]) -> Result<Vec<u8>, HeadError> {
        self.head.transmit(bytes).map(|w| w.response)
    }

    /// Raw transmit, split into (data, SW).
    fn raw(&mut self, bytes: &[u8]) -> (Vec<u8>, u16) {
        let r = self.transmit(bytes).expect("raw transmit");
        assert!(r.len() >= 2, "response without status word: {}", hexs(&r));
        let (d, s) = r.split_at(r.len() - 2);
        (d.to_vec(), u16::from_be_bytes([s[0], s[1]]))
    }

    fn image(&mut self) -> CardImage {
        self.head.as_virtual().unwrap().card().expect("card in head").image().clone()
    }

    fn snap(&mut self) -> String {
        snap(&self.image())
    }

    fn card_mut(&mut self) -> &mut VirtualCard {
        self.head.card_mut().expect("card in head")
    }

    fn power_cycle(&mut self) {
        self.head.power_off().unwrap();
        self.head.power_on().unwrap();
    }

    /// Trace rows recorded since the last call.
    fn exchanges(&mut self) -> Vec<Exchange> {
        self.rx
            .try_iter()
            .filter_map(|e| match e {
                Event::Exchange(x) => Some(*x),
                _ => None,
            })
            .collect()
    }
}

/// A powered head holding a card personalized per `plan` (locked), nothing selected.
fn bench(keys: &Keyset, plan: &CardPlan, proto: Protocol) -> Bench {
    Bench::new(personalize_virtual(plan, proto, keys).expect("personalization"))
}

/// Same, with `aid` selected.
fn selected(keys: &Keyset, plan: &CardPlan, proto: Protocol, aid: &[u8]) -> Bench {
    let mut b = bench(keys, plan, proto);
    b.select(aid);
    b
}

/// Two XFER cards (A on T=0, B on T=1), XFER selected on both.
fn xfer_pair(keys: &Keyset, pa: &CardPlan, pb: &CardPlan) -> (Bench, Bench) {
    (selected(keys, pa, Protocol::T0, &AID_XFER), selected(keys, pb, Protocol::T1, &AID_XFER))
}

fn xfer_cert(b: &mut Bench) -> Vec<u8> {
    b.ok(&cmds::xfer_certificate())
}

/// Update card A from card B in `mode`: permission on A, key export on B, update on A.
/// Returns A's answer to UPDATE TRANSFER KEY.
fn update(a: &mut Bench, b: &mut Bench, mode: u8) -> Response {
    let (ca, cb) = if is_public(mode) { (xfer_cert(a), xfer_cert(b)) } else { (Vec::new(), Vec::new()) };
    let random = a.ok(&cmds::xfer_update_permission(mode, &cb));
    assert_eq!(random.len(), 16);
    let blob = b.ok(&cmds::xfer_get_transfer_key(mode, &random, &ca));
    a.exec(&cmds::xfer_update_transfer_key(mode, &blob))
}

/// Permission (random) on A and B's key blob for it.
fn permission_and_blob(a: &mut Bench, b: &mut Bench, mode: u8) -> ([u8; 16], Vec<u8>) {
    let (ca, cb) = if is_public(mode) { (xfer_cert(a), xfer_cert(b)) } else { (Vec::new(), Vec::new()) };
    let random = a16(&a.ok(&cmds::xfer_update_permission(mode, &cb)));
    let blob = b.ok(&cmds::xfer_get_transfer_key(mode, &random, &ca));
    (random, blob)
}

/// The two permissions of a value transfer: (rnd_send, transmission challenge, rnd_recv).
fn permissions(s: &mut Bench, r: &mut Bench, paid: u32, date: u32) -> ([u8; 16], [u8; 16], [u8; 16]) {
    let rnd_send = a16(&s.ok(&cmds::xfer_send_permission(paid, date)));
    let resp = r.ok(&cmds::xfer_receive_permission(paid, date, &rnd_send));
    assert_eq!(resp.len(), 32, "RECEIVE PERMISSION answers challenge ‖ random");
    (rnd_send, a16(&resp[..16]), a16(&resp[16..]))
}

/// A complete transfer; checks both challenges against `tk`; returns the receiver's new balance.
fn transfer(s: &mut Bench, r: &mut Bench, paid: u32, date: u32, tk: &[u8; 16]) -> u32 {
    let (rnd_send, chal_tx, rnd_recv) = permissions(s, r, paid, date);
    assert_eq!(chal_tx, xfer::challenge(tk, TAG_TRANSMISSION, paid, date, &rnd_send));
    let chal_rx = s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv));
    assert_eq!(chal_rx, xfer::challenge(tk, TAG_RECEPTION, paid, date, &rnd_recv));
    let bal = r.ok(&cmds::xfer_receive(&chal_rx));
    assert_eq!(bal.len(), 4);
    be32(&bal, 0)
}

/// Cancel the receiver's pending credit the only way the card allows: with the sending
/// card's proof over it (CANCEL PROOF, then CANCEL PENDING CREDIT).
fn cancel(s: &mut Bench, r: &mut Bench) {
    let pending = r.ok(&cmds::xfer_read_state(0x01));
    let proof = s.ok(&cmds::xfer_cancel_proof(&pending));
    assert!(r.ok(&cmds::xfer_cancel_pending(&proof)).is_empty());
}

fn xfer_info(b: &mut Bench) -> Vec<u8> {
    b.ok(&cmds::xfer_info())
}

/// A certificate with an arbitrary body, signed by an arbitrary key.
fn forged_cert(subject: &[u8; 8], role: Role, holder: &SigningKey, issuer: &SigningKey) -> Vec<u8> {
    Certificate::issue(
        CertBody {
            issuer: CENTER_REF,
            subject: *subject,
            role,
            public_key: sig::encode_point(holder.verifying_key()),
            expiry: 2_082_758_399,
            serial: 77,
        },
        issuer,
    )
    .encode()
    .to_vec()
}

fn foreign_key(label: &str) -> SigningKey {
    sig::key_from_seed(b"not the keyset", label)
}

// ---------------------------------------------------------------------------------------------
// Card transport

#[test]
fn atr_t0_announces_t0_without_tck() {
    let k = keys();
    let mut b = bench(&k, &plan(1), Protocol::T0);
    let atr = b.head.power_on().unwrap();
    let mut want = vec![0x3B, 0x89, 0x00];
    want.extend_from_slice(b"CARDBENCH");
    assert_eq!(atr, want);
    assert_eq!(b.head.atr(), Some(want));
}

#[test]
fn atr_t1_announces_t1_with_valid_tck() {
    let k = keys();
    let mut b = bench(&k, &plan(1), Protocol::T1);
    let atr = b.head.power_on().unwrap();
    assert_eq!(&atr[..3], &[0x3B, 0x89, 0x01]);
    assert_eq!(&atr[3..12], b"CARDBENCH");
    assert_eq!(atr.len(), 13, "T=1 ATR carries TCK");
    assert_eq!(atr[1..].iter().fold(0u8, |a, x| a ^ x), 0, "TCK check");
    assert_eq!(b.head.atr(), Some(atr));
}

#[test]
fn t0_case2_wrong_le_gets_6c_and_link_resends_with_corrected_le() {
    let k = keys();
    let p = plan(1);
    let mut b = selected(&k, &p, Protocol::T0, &AID_PURSE);
    b.exchanges();
    let r = b.exec(&cmds::read_field(FIELD_ID, 4));
    assert_eq!(r.sw, OK);
    assert_eq!(r.data, p.card_id);
    let rows = b.exchanges();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0].command, vec![0x80, 0xB2, 0x01, 0x00, 0x04]);
    assert_eq!(rows[0].sw, 0x6C08);
    assert!(rows[0].response.is_empty());
    assert_eq!(rows[1].command, vec![0x80, 0xB2, 0x01, 0x00, 0x08]);
    assert_eq!(rows[1].sw, OK);
    assert_eq!(rows[1].response, p.card_id);
    assert!(rows[1].note.contains("Le=8"), "note: {}", rows[1].note);
    // Raw: the card itself answers bare 6C08 to the wrong Le, and data to the right one.
    assert_eq!(b.raw(&[0x80, 0xB2, 0x01, 0x00, 0x00]), (vec![], 0x6C08));
    assert_eq!(b.raw(&[0x80, 0xB2, 0x02, 0x00, 0x04]), (1000u32.to_be_bytes().to_vec(), OK));
}

#[test]
fn t1_case2_short_le_is_completed_with_get_response() {
    let k = keys();
    let p = plan(1);
    let mut b = selected(&k, &p, Protocol::T1, &AID_PURSE);
    // Le larger than the data: answered directly, no 6C in T=1.
    b.exchanges();
    assert_eq!(b.ok(&cmds::read_field(FIELD_ID, 0x20)), p.card_id);
    assert_eq!(b.exchanges().len(), 1);
    // Le smaller than the data: Le bytes + 61xx, Link fetches the rest.
    assert_eq!(b.raw(&[0x80, 0xB2, 0x01, 0x00, 0x03]), (p.card_id[..3].to_vec(), 0x6105));
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x05]), (p.card_id[3..].to_vec(), OK));
    assert_eq!(b.ok(&cmds::read_field(FIELD_ID, 3)), p.card_id);
    let rows = b.exchanges();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].sw, 0x6105);
    assert_eq!(rows[1].command, vec![0x00, 0xC0, 0x00, 0x00, 0x05]);
}

#[test]
fn t0_case4_response_comes_via_61xx_and_get_response() {
    let k = keys();
    let p = plan(1);
    let mut b = selected(&k, &p, Protocol::T0, &AID_CPAY);
    b.ok(&cmds::cpay_verify_reader(k.payment.cert.encode()));
    b.exchanges();
    let data = b.ok(&cmds::cpay_sign(&[7; 16]));
    assert_eq!(data.len(), 96);
    let rows = b.exchanges();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0].sw, 0x6160);
    assert!(rows[0].response.is_empty(), "T=0 case 4 sends no data with 61xx");
    assert_eq!(rows[1].command, vec![0x00, 0xC0, 0x00, 0x00, 0x60]);
    assert_eq!(rows[1].sw, OK);
    assert_eq!(rows[1].response, data);

    // WRITE VALUE (case 4) on PURSE, raw: 61 04, then GET RESPONSE in pieces.
    b.select(&AID_PURSE);
    let wv = cmds::purse_write_value(5, 6).to_bytes().unwrap();
    assert_eq!(b.raw(&wv), (vec![], 0x6104));
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x08]), (vec![], 0x6C04));
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x02]), (vec![0, 0], 0x6102));
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x02]), (vec![0x03, 0xE7], OK));
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x02]), (vec![], 0x6986));
}

#[test]
fn t1_case4_answers_directly_and_case3_with_data_uses_61xx() {
    let k = keys();
    let mut b = selected(&k, &plan(1), Protocol::T1, &AID_PURSE);
    b.exchanges();
    assert_eq!(b.ok(&cmds::purse_write_value(1, 2)), 999u32.to_be_bytes());
    assert_eq!(b.exchanges().len(), 1);
    // Same command without Le: the data waits for GET RESPONSE.
    let mut wv = cmds::purse_write_value(1, 2);
    wv.le = None;
    assert_eq!(b.raw(&wv.to_bytes().unwrap()), (vec![], 0x6104));
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x04]), (998u32.to_be_bytes().to_vec(), OK));
}

fn long_read_all(proto: Protocol) {
    let k = keys();
    let p = plan(1);
    let mut b = selected(&k, &p, proto, &AID_PURSE);
    let sigb: Vec<u8> = (0..64).map(|i| i as u8).collect();
    let cert: Vec<u8> = (0..255).map(|i| (i as u8) ^ 0x5A).collect();
    b.ok(&cmds::purse_write_signature(&sigb));
    b.ok(&cmds::purse_write_certificate(&cert));
    b.exchanges();
    let all = b.ok(&cmds::purse_read_all());
    assert_eq!(all.len(), 8 + 12 + 1 + 64 + 1 + 255, "341 bytes > 256");
    let mut want = p.card_id.to_vec();
    want.extend_from_slice(&1000u32.to_be_bytes());
    want.extend_from_slice(&[0; 8]);
    want.push(64);
    want.extend_from_slice(&sigb);
    want.push(255);
    want.extend_from_slice(&cert);
    assert_eq!(all, want);
    let rows = b.exchanges();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0].command, vec![0x80, 0xB0, 0x00, 0x00, 0x00]);
    assert_eq!(rows[0].response.len(), 256);
    assert_eq!(rows[0].sw, 0x6155);
    assert_eq!(rows[1].command, vec![0x00, 0xC0, 0x00, 0x00, 0x55]);
    assert_eq!(rows[1].response.len(), 85);
    assert_eq!(rows[1].sw, OK);
}

#[test]
fn long_read_all_is_reassembled_t0() {
    long_read_all(Protocol::T0);
}

#[test]
fn long_read_all_is_reassembled_t1() {
    long_read_all(Protocol::T1);
}

#[test]
fn get_response_with_nothing_pending_is_6986() {
    let k = keys();
    for proto in [Protocol::T0, Protocol::T1] {
        let mut b = bench(&k, &plan(1), proto);
        // Nothing selected, nothing pending.
        assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x10]), (vec![], 0x6986));
        b.select(&AID_PURSE);
        assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x00]), (vec![], 0x6986));
        // Data left pending is dropped by any other command.
        let wv = cmds::purse_write_value(1, 1).to_bytes().unwrap();
        let (_, first) = b.raw(&wv);
        if proto == Protocol::T0 {
            assert_eq!(first, 0x6104);
        } else {
            assert_eq!(first, OK);
            assert_eq!(b.raw(&[0x80, 0xB2, 0x01, 0x00, 0x02]).1, 0x6106);
        }
        b.ok(&cmds::read_field(FIELD_COUNTER, 4));
        assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x04]), (vec![], 0x6986));
    }
}

#[test]
fn unknown_cla_is_6e00() {
    let k = keys();
    let mut b = bench(&k, &plan(1), Protocol::T1);
    for aid in [None, Some(AID_PURSE), Some(AID_CPAY), Some(AID_XFER)] {
        if let Some(aid) = aid {
            b.select(&aid);
        }
        for cla in [0x01u8, 0x04, 0x0C, 0x10, 0x81, 0x84, 0x90, 0xA0, 0xFF] {
            for ins in [0xA4u8, 0xB0, 0xB2, 0xC0, 0xE0, 0x10, 0x88] {
                assert_eq!(b.exec(&Command::new(cla, ins, 0, 0).le(256)).sw, 0x6E00, "CLA {cla:02X} INS {ins:02X}");
            }
        }
    }
}

#[test]
fn unknown_ins_is_6d00_on_every_applet() {
    let k = keys();
    let mut b = bench(&k, &plan(1), Protocol::T0);
    for aid in ALL_AIDS {
        b.select(&aid);
        for ins in [0x00u8, 0x02, 0x50, 0x7E, 0xCA, 0xF0, 0xFE] {
            b.sw(&Command::new(CLA_PROP, ins, 0, 0), 0x6D00);
            b.sw(&Command::new(CLA_PROP, ins, 0, 0).data(vec![1, 2, 3]), 0x6D00);
        }
    }
    // Instructions of another applet are unknown here.
    b.select(&AID_PURSE);
    b.sw(&cmds::xfer_info(), 0x6D00);
    b.sw(&cmds::cpay_sign(&[0; 16]), 0x6D00);
    b.select(&AID_CPAY);
    b.sw(&cmds::purse_write_value(1, 1), 0x6D00);
    b.sw(&cmds::xfer_send_permission(1, DATE), 0x6D00);
    b.select(&AID_XFER);
    b.sw(&cmds::purse_read_all(), 0x6D00);
    b.sw(&cmds::cpay_debit(1, 1, &[0; 64]), 0x6D00);
}

#[test]
fn no_applet_selected_is_6986() {
    let k = keys();
    let mut b = bench(&k, &plan(1), Protocol::T1);
    let before = b.snap();
    let cmds_ = [
        cmds::purse_read_all(),
        cmds::read_field(FIELD_ID, 8),
        cmds::purse_write_value(1, 1),
        cmds::cpay_verify_reader(k.payment.cert.encode()),
        cmds::cpay_sign(&[0; 16]),
        cmds::xfer_info(),
        cmds::xfer_send_permission(1, DATE),
        cmds::xfer_cancel_pending(&[0; 16]),
        cmds::xfer_cancel_proof(&[0; 40]),
        Command::new(CLA_PROP, 0x55, 0, 0),
    ];
    for c in &cmds_ {
        b.sw(c, 0x6986);
    }
    // A power cycle deselects.
    b.select(&AID_PURSE);
    b.ok(&cmds::read_field(FIELD_ID, 8));
    b.power_cycle();
    b.sw(&cmds::read_field(FIELD_ID, 8), 0x6986);
    assert_eq!(b.snap(), before);
}

#[test]
fn select_unknown_aid_is_6a82_and_keeps_the_current_selection() {
    let k = keys();
    let p = plan(1);
    let mut b = bench(&k, &p, Protocol::T0);
    for aid in [
        vec![0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x04],
        vec![0xA0, 0x00, 0x00, 0x07, 0x77, 0x00],
        vec![0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x01, 0x00],
        vec![0xA0],
    ] {
        b.sw(&cmds::select(&aid), 0x6A82);
    }
    b.sw(&cmds::read_field(FIELD_ID, 8), 0x6986);
    b.select(&AID_PURSE);
    b.sw(&cmds::select(&[0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x09]), 0x6A82);
    assert_eq!(b.ok(&cmds::read_field(FIELD_ID, 8)), p.card_id);
    // SELECT by something else than DF name.
    b.sw(&Command::new(CLA_ISO, SELECT, 0x00, 0x00).data(AID_PURSE.to_vec()), 0x6A86);
    b.sw(&Command::new(CLA_ISO, SELECT, 0x04, 0x01).data(AID_PURSE.to_vec()), 0x6A86);
    for aid in ALL_AIDS {
        b.select(&aid);
    }
}

#[test]
fn malformed_apdu_bytes_are_6700() {
    let k = keys();
    for proto in [Protocol::T0, Protocol::T1] {
        let mut b = selected(&k, &plan(1), proto, &AID_PURSE);
        let before = b.snap();
        let bad: [&[u8]; 8] = [
            &[],
            &[0x80],
            &[0x80, 0xB2, 0x01],
            &[0x80, 0xD0, 0x00, 0x00, 0x08, 1, 2, 3],    // Lc 8, 3 bytes follow
            &[0x80, 0xD0, 0x00, 0x00, 0x02, 1, 2, 3, 4], // 2 bytes after Le
            &[0x80, 0xB2, 0x01, 0x00, 0x00, 0x00],       // truncated extended Le
            &[0x80, 0xD0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01], // extended Lc = 0
            &[0x80, 0xD0, 0x00, 0x00, 0x00, 0x00, 0x08, 1, 2], // extended Lc 8, 2 bytes
        ];
        for apdu in bad {
            assert_eq!(b.raw(apdu), (vec![], 0x6700), "{}", hexs(apdu));
        }
        assert_eq!(b.snap(), before, "a malformed WRITE VALUE changed nothing");
        // The card still works.
        assert_eq!(b.ok(&cmds::read_field(FIELD_COUNTER, 4)), 1000u32.to_be_bytes());
    }
}

#[test]
fn unpowered_card_gives_unpowered() {
    let k = keys();
    let card = personalize_virtual(&plan(1), Protocol::T0, &k).unwrap();
    let mut head = VirtualHead::new("A");
    head.insert(card);
    assert_eq!(head.card_present(), Ok(true));
    assert_eq!(head.atr(), None);
    let sel = cmds::select(&AID_PURSE).to_bytes().unwrap();
    assert_eq!(head.transmit(&sel), Err(HeadError::Unpowered));
    let rec = Recorder::disabled();
    {
        let mut link = Link::new(&mut head, &rec);
        assert_eq!(link.exec("s", &cmds::select(&AID_PURSE)), Err(HeadError::Unpowered));
    }
    head.power_on().unwrap();
    assert_eq!(head.transmit(&sel).unwrap().response, vec![0x90, 0x00]);
    head.power_off().unwrap();
    assert_eq!(head.transmit(&sel), Err(HeadError::Unpowered));
    assert_eq!(head.atr(), None);
}

#[test]
fn removed_card_gives_no_card() {
    let k = keys();
    let mut b = selected(&k, &plan(1), Protocol::T1, &AID_PURSE);
    let card = b.head.remove().expect("card was there");
    assert!(!card.is_powered(), "removing cuts power");
    assert_eq!(b.head.card_present(), Ok(false));
    assert_eq!(b.transmit(&[0x80, 0xB2, 0x01, 0x00, 0x08]), Err(HeadError::NoCard));
    assert_eq!(b.head.power_on(), Err(HeadError::NoCard));
    assert_eq!(b.try_exec(&cmds::read_field(FIELD_ID, 8)), Err(HeadError::NoCard));
    assert_eq!(b.head.atr(), None);
    // Re-inserted, the card answers again (unpowered first, then nothing selected).
    b.head.insert(card);
    assert_eq!(b.transmit(&[0x80, 0xB2, 0x01, 0x00, 0x08]), Err(HeadError::Unpowered));
    b.head.power_on().unwrap();
    b.sw(&cmds::read_field(FIELD_ID, 8), 0x6986);
}

const KNOWN_INS: [u8; 24] = [
    0xA4, 0xC0, 0xE0, 0xEE, 0xEC, 0xB0, 0xB2, 0xD0, 0xD2, 0xD4, 0x2A, 0x88, 0xD6, 0x10, 0x20, 0x22, 0x24, 0x30, 0x32,
    0x34, 0x36, 0x38, 0x3A, 0x3C,
];

fn random_apdu(rng: &mut ChaCha20Rng) -> Vec<u8> {
    let r = |rng: &mut ChaCha20Rng, n: u32| rng.next_u32() % n;
    if r(rng, 10) == 0 {
        // Pure noise.
        let n = r(rng, 24) as usize;
        let mut v = vec![0u8; n];
        rng.fill_bytes(&mut v);
        return v;
    }
    // Three times in four a header an applet accepts: CLA 80, P2 = 00 and P1 = 00 (P1 00-03
    // for the commands that take a field, mode or state there). A random CLA or P1-P2 is
    // refused before any applet code runs (6E00, 6D00 or 6A86).
    let plain = r(rng, 4) > 0;
    let cla = if plain {
        CLA_PROP
    } else {
        match r(rng, 8) {
            0..=3 => CLA_PROP,
            4 | 5 => CLA_ISO,
            _ => rng.next_u32() as u8,
        }
    };
    let ins = if r(rng, 3) > 0 { KNOWN_INS[r(rng, KNOWN_INS.len() as u32) as usize] } else { rng.next_u32() as u8 };
    let (p1, p2) = if plain {
        let takes_p1 = matches!(
            ins,
            READ_FIELD
                | XFER_GET_INFO
                | XFER_UPDATE_PERMISSION
                | XFER_GET_TRANSFER_KEY
                | XFER_UPDATE_TRANSFER_KEY
                | XFER_READ_STATE
        );
        (if takes_p1 { r(rng, 4) as u8 } else { 0 }, 0)
    } else {
        let p1 = if r(rng, 2) == 0 { r(rng, 6) as u8 } else { rng.next_u32() as u8 };
        let p2 = if r(rng, 4) > 0 { 0 } else { rng.next_u32() as u8 };
        (p1, p2)
    };
    let len = match r(rng, 6) {
        0 => 0,
        1 => r(rng, 40) as usize,
        2 => [4usize, 8, 16, 20, 24, 32, 64, 65, 72][r(rng, 9) as usize],
        3 => 150 + r(rng, 130) as usize,
        4 => 186,
        _ => r(rng, 300) as usize,
    };
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    let mut c = Command::new(cla, ins, p1, p2).data(data);
    if r(rng, 2) == 0 {
        c = c.le(1 + r(rng, 300) as usize);
    }
    let mut bytes = c.to_bytes().unwrap();
    match r(rng, 8) {
        0 => {
            let cut = r(rng, bytes.len() as u32 + 1) as usize;
            bytes.truncate(cut);
        }
        1 => bytes.push(rng.next_u32() as u8),
        2 => {
            let i = r(rng, bytes.len() as u32) as usize;
            bytes[i] ^= 1 << r(rng, 8);
        }
        _ => {}
    }
    bytes
}

fn fuzz_applet(aid: [u8; 7], proto: Protocol, seed: u64) {
    let k = keys();
    let p = plan(1);
    let mut b = selected(&k, &p, proto, &aid);
    let start = b.image();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let verify = cmds::cpay_verify_reader(k.payment.cert.encode()).to_bytes().unwrap();
    let send_perm = cmds::xfer_send_permission(10, DATE).to_bytes().unwrap();
    let mut counter = start.purse.counter;
    let mut accepted = 0;
    let mut sws = std::collections::BTreeSet::new();
    for i in 0..2000 {
        if i % 50 == 0 {
            // Open sessions now and then so the deeper states see random input too.
            b.select(&aid);
            if aid == AID_CPAY {
                let _ = b.raw(&verify);
            } else if aid == AID_XFER {
                let _ = b.raw(&send_perm);
            }
        }
        let apdu = random_apdu(&mut rng);
        let resp = b.transmit(&apdu).unwrap_or_else(|e| panic!("APDU #{i} {}: {e}", hexs(&apdu)));
        assert!(resp.len() >= 2, "APDU #{i} {}: no SW", hexs(&apdu));
        let sw = u16::from_be_bytes([resp[resp.len() - 2], resp[resp.len() - 1]]);
        sws.insert(sw);
        // Accepted by an applet (data ready: 9000, 61xx, or 6Cxx for a T=0 Le mismatch);
        // personalization, SELECT and GET RESPONSE do not count.
        let applet_ins =
            apdu.len() >= 4 && !matches!(apdu[1], PERSO_PUT | PERSO_LOCK | PERSO_STATUS | SELECT | GET_RESPONSE);
        if applet_ins && (sw == OK || matches!(sw >> 8, 0x61 | 0x6C)) {
            accepted += 1;
        }
        let img = b.image();
        assert!(img.purse.counter <= counter, "counter increased by {}", hexs(&apdu));
        counter = img.purse.counter;
        assert!(img.locked);
        assert_eq!(img.card_id, start.card_id);
        assert_eq!(img.cpay.amount, start.cpay.amount, "CPAY debited by noise");
        assert_eq!(img.xfer.balance, start.xfer.balance, "XFER balance moved by noise");
        assert_eq!(img.xfer.tkid, start.xfer.tkid);
        assert_eq!(img.xfer.ukid, start.xfer.ukid);
    }
    // The noise reached the applet code, not just the APDU parser.
    // (With these seeds: PURSE 90, CPAY 21, XFER T=0 16, XFER T=1 22.)
    assert!(accepted >= 12, "only {accepted} accepted by the applet; SWs seen {sws:04X?}");
    assert!(sws.len() >= 6, "SWs seen {sws:04X?}");
    for a in ALL_AIDS {
        b.select(&a);
    }
    b.select(&AID_PURSE);
    assert_eq!(b.ok(&cmds::read_field(FIELD_ID, 8)), p.card_id);
}

#[test]
fn fuzz_purse_never_panics() {
    fuzz_applet(AID_PURSE, Protocol::T0, 0x5055_5253);
}

#[test]
fn fuzz_cpay_never_panics() {
    fuzz_applet(AID_CPAY, Protocol::T1, 0x4350_4159);
}

#[test]
fn fuzz_xfer_never_panics() {
    fuzz_applet(AID_XFER, Protocol::T0, 0x5846_4552);
}

#[test]
fn fuzz_xfer_t1_never_panics() {
    fuzz_applet(AID_XFER, Protocol::T1, 7);
}

// ---------------------------------------------------------------------------------------------
// Personalization

fn blank_bench(proto: Protocol) -> Bench {
    Bench::new(VirtualCard::blank(proto, Some([9; 32])))
}

fn perso_status(b: &mut Bench) -> Vec<u8> {
    b.ok(&Command::new(CLA_PROP, PERSO_STATUS, 0, 0).le(1))
}

#[test]
fn perso_script_before_lock_writes_every_object() {
    let k = keys();
    let mut p = plan(3);
    p.purse_counter = 77;
    p.cpay_amount = 4321;
    p.balance = 1234;
    p.max_balance = 99_999;
    p.validity = 1_900_000_000;
    p.update_key = 2;
    p.transfer_key = 5;
    p.transfer_key_limit = 7;
    p.update_key_limit = 3;
    p.slots = vec![2, 6];
    let mut b = blank_bench(Protocol::T0);
    assert_eq!(perso_status(&mut b), vec![0x00]);
    for (cmd, secret) in issuance::script(&p, &k).unwrap() {
        let r = {
            let mut link = Link::new(&mut b.head, &b.rec);
            if secret {
                link.exec_secret("perso", &cmd)
            } else {
                link.exec("perso", &cmd)
            }
        }
        .unwrap();
        assert_eq!(r.sw, OK, "PUT {:02X}", cmd.p1);
        assert!(r.data.is_empty(), "PUT/LOCK return no data");
    }
    assert_eq!(perso_status(&mut b), vec![0x01]);
    // Secret objects went over the wire, but their trace rows have the data zeroed.
    let rows = b.exchanges();
    let secret_rows: Vec<&Exchange> =
        rows.iter().filter(|r| r.command[1] == PERSO_PUT && perso_object_is_secret(r.command[2])).collect();
    assert_eq!(secret_rows.len(), 4 + p.slots.len());
    for r in &secret_rows {
        assert!(r.command[5..].iter().all(|x| *x == 0), "{}", hexs(&r.command));
        assert!(r.note.contains("redacted"));
    }
    for r in &rows {
        for key in [uk(&k, 2).to_vec(), tk(&k, 5).to_vec(), k.card_key(&p.card_id, "xfer").to_bytes().to_vec()] {
            assert!(!leaks(&r.command, &key), "a key in the trace: {}", hexs(&r.command));
        }
    }
    let img = b.image();
    let id = p.card_id;
    assert!(img.locked);
    assert_eq!(img.card_id, id);
    assert_eq!(img.purse.counter, 77);
    assert_eq!((img.purse.amount, img.purse.date), (0, 0));
    assert!(img.purse.signature.is_empty() && img.purse.certificate.is_empty());
    assert_eq!(img.cpay.key.as_ref().unwrap().expose().to_vec(), k.card_key(&id, "cpay").to_bytes().to_vec());
    assert_eq!(img.cpay.certificate, k.card_cert(&id, Role::SigningCard, p.cert_expiry).encode());
    assert_eq!(img.cpay.center_key, Some(sig::encode_point(&k.center_public())));
    assert_eq!((img.cpay.amount, img.cpay.date), (4321, 0));
    assert_eq!(img.xfer.validity, 1_900_000_000);
    assert_eq!(img.xfer.balance, 1234);
    assert_eq!(img.xfer.max_balance, 99_999);
    assert_eq!(img.xfer.ukid, 2);
    assert_eq!(img.xfer.uk.as_ref().unwrap().expose(), &uk(&k, 2));
    assert_eq!(img.xfer.tkid, 5);
    assert_eq!(img.xfer.tk.as_ref().unwrap().expose(), &tk(&k, 5));
    assert_eq!((img.xfer.tkid_limit, img.xfer.ukid_limit), (7, 3));
    assert_eq!(img.xfer.ca_key, Some(sig::encode_point(&k.ca_public())));
    assert_eq!(img.xfer.certificate, k.card_cert(&id, Role::XferCard, p.cert_expiry).encode());
    assert_eq!(img.xfer.card_key.as_ref().unwrap().expose().to_vec(), k.card_key(&id, "xfer").to_bytes().to_vec());
    let slots: Vec<(u32, [u8; 16])> = img.xfer.slots.iter().map(|(i, s)| (*i, *s.expose())).collect();
    assert_eq!(slots, vec![(2, tk(&k, 2)), (6, tk(&k, 6))]);
    assert!(img.xfer.pending_credit.is_none() && img.xfer.last_debit.is_none());
    // The same card personalized in process is identical.
    let lab = personalize_virtual(&p, Protocol::T0, &k).unwrap();
    assert_eq!(snap(lab.image()), snap(&img));
}

#[test]
fn perso_put_works_without_select_and_overwrites_until_lock() {
    let mut b = blank_bench(Protocol::T1);
    b.ok(&cmds::perso_put(PO_PURSE_COUNTER, &5u32.to_be_bytes()));
    assert_eq!(b.image().purse.counter, 5);
    b.ok(&cmds::perso_put(PO_PURSE_COUNTER, &7u32.to_be_bytes()));
    assert_eq!(b.image().purse.counter, 7);
    b.select(&AID_XFER);
    b.ok(&cmds::perso_put(PO_XFER_BALANCE, &10u32.to_be_bytes()));
    b.ok(&cmds::perso_put(PO_XFER_BALANCE, &11u32.to_be_bytes()));
    assert_eq!(b.image().xfer.balance, 11);
    // Slots: same ID replaces, table kept sorted.
    b.ok(&cmds::perso_put(PO_XFER_SLOT, &[&5u32.to_be_bytes()[..], &[1; 16]].concat()));
    b.ok(&cmds::perso_put(PO_XFER_SLOT, &[&3u32.to_be_bytes()[..], &[2; 16]].concat()));
    b.ok(&cmds::perso_put(PO_XFER_SLOT, &[&5u32.to_be_bytes()[..], &[3; 16]].concat()));
    let slots: Vec<(u32, [u8; 16])> = b.image().xfer.slots.iter().map(|(i, s)| (*i, *s.expose())).collect();
    assert_eq!(slots, vec![(3, [2; 16]), (5, [3; 16])]);
    assert_eq!(perso_status(&mut b), vec![0]);
    b.ok(&cmds::perso_lock());
    assert_eq!(perso_status(&mut b), vec![1]);
}

#[test]
fn perso_after_lock_every_put_and_lock_is_6986() {
    let k = keys();
    let p = plan(4);
    let script = issuance::script(&p, &k).unwrap();
    let mut b = bench(&k, &p, Protocol::T0);
    let before = b.snap();
    for aid in [None, Some(AID_PURSE), Some(AID_CPAY), Some(AID_XFER)] {
        if let Some(aid) = aid {
            b.select(&aid);
        }
        for (cmd, _) in &script {
            b.sw(cmd, 0x6986);
        }
        // Attempts to raise value or counters, with fresh data.
        b.sw(&cmds::perso_put(PO_PURSE_COUNTER, &u32::MAX.to_be_bytes()), 0x6986);
        b.sw(&cmds::perso_put(PO_XFER_BALANCE, &u32::MAX.to_be_bytes()), 0x6986);
        b.sw(&cmds::perso_put(PO_CPAY_VALUE, &[0xFF; 8]), 0x6986);
        b.sw(&cmds::perso_put(PO_XFER_LIMITS, &[0xFF; 8]), 0x6986);
        // Wrong lengths and unknown objects: still 6986, lock comes first.
        b.sw(&cmds::perso_put(PO_CARD_ID, &[1; 3]), 0x6986);
        b.sw(&cmds::perso_put(0x7F, &[1; 3]), 0x6986);
        b.sw(&cmds::perso_lock(), 0x6986);
        assert_eq!(perso_status(&mut b), vec![1]);
    }
    assert_eq!(b.snap(), before, "nothing changed after LOCK");
}

#[test]
fn perso_wrong_lengths_are_6700() {
    let fixed: [(u8, usize); 14] = [
        (PO_CARD_ID, 8),
        (PO_PURSE_COUNTER, 4),
        (PO_CPAY_KEY, 32),
        (PO_CPAY_CENTER_KEY, 65),
        (PO_CPAY_VALUE, 8),
        (PO_XFER_VALIDITY, 4),
        (PO_XFER_BALANCE, 4),
        (PO_XFER_MAX_BALANCE, 4),
        (PO_XFER_UPDATE_KEY, 20),
        (PO_XFER_TRANSFER_KEY, 20),
        (PO_XFER_LIMITS, 8),
        (PO_XFER_CA_KEY, 65),
        (PO_XFER_CARD_KEY, 32),
        (PO_XFER_SLOT, 20),
    ];
    let mut b = blank_bench(Protocol::T0);
    let before = b.snap();
    for (obj, len) in fixed {
        for n in [0, 1, len - 1, len + 1, 2 * len] {
            b.sw(&cmds::perso_put(obj, &vec![0x42; n]), 0x6700);
        }
    }
    for obj in [PO_CPAY_CERT, PO_XFER_CERT] {
        b.sw(&cmds::perso_put(obj, &[]), 0x6700);
        b.sw(&cmds::perso_put(obj, &[0x42; 256]), 0x6700);
    }
    assert_eq!(b.snap(), before, "refused PUTs changed nothing");
    // The boundaries that are fine.
    for obj in [PO_CPAY_CERT, PO_XFER_CERT] {
        b.ok(&cmds::perso_put(obj, &[0x42; 1]));
        b.ok(&cmds::perso_put(obj, &[0x43; 255]));
    }
    let img = b.image();
    assert_eq!(img.cpay.certificate, vec![0x43; 255]);
    assert_eq!(img.xfer.certificate, vec![0x43; 255]);
    // Every object at its exact length (keys must also be valid: see
    // perso_invalid_keys_are_6a80_and_store_nothing).
    let point = sig::encode_point(foreign_key("perso").verifying_key()).to_vec();
    for (obj, len) in fixed {
        let d = match obj {
            PO_CPAY_KEY | PO_XFER_CARD_KEY => vec![0x11; 32],
            PO_CPAY_CENTER_KEY | PO_XFER_CA_KEY => point.clone(),
            _ => vec![0x42; len],
        };
        assert_eq!(d.len(), len);
        b.ok(&cmds::perso_put(obj, &d));
    }
    let img = b.image();
    assert_eq!(img.cpay.center_key.map(|p| p.to_vec()), Some(point.clone()));
    assert_eq!(img.xfer.ca_key.map(|p| p.to_vec()), Some(point));
    assert_eq!(img.card_id, [0x42; 8]);
}

#[test]
fn perso_unknown_object_or_p2_is_6a86() {
    let mut b = blank_bench(Protocol::T1);
    let before = b.snap();
    for obj in [0x00u8, 0x02, 0x11, 0x24, 0x2F, 0x3A, 0x40, 0x80, 0xFF] {
        for n in [0usize, 4, 8, 20] {
            b.sw(&cmds::perso_put(obj, &vec![1; n]), 0x6A86);
        }
    }
    let mut c = cmds::perso_put(PO_PURSE_COUNTER, &[0, 0, 0, 9]);
    c.p2 = 1;
    b.sw(&c, 0x6A86);
    assert_eq!(b.snap(), before);
}

#[test]
fn perso_slot_table_holds_eight() {
    let mut b = blank_bench(Protocol::T0);
    let slot = |i: u32| [&i.to_be_bytes()[..], &[i as u8; 16]].concat();
    for i in 1..=8 {
        b.ok(&cmds::perso_put(PO_XFER_SLOT, &slot(i * 10)));
    }
    b.sw(&cmds::perso_put(PO_XFER_SLOT, &slot(99)), 0x6A84);
    // Replacing an existing ID is still fine when full.
    b.ok(&cmds::perso_put(PO_XFER_SLOT, &slot(30)));
    let ids: Vec<u32> = b.image().xfer.slots.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, vec![10, 20, 30, 40, 50, 60, 70, 80]);
}

/// A blank card given the whole issuance script of `p` except the final LOCK.
fn unlocked_card(k: &Keyset, p: &CardPlan, proto: Protocol) -> Bench {
    let mut b = Bench::new(VirtualCard::blank(proto, Some([5; 32])));
    for (cmd, _) in issuance::script(p, k).unwrap() {
        if cmd.ins != PERSO_LOCK {
            b.ok(&cmd);
        }
    }
    assert_eq!(perso_status(&mut b), vec![0x00]);
    b
}

#[test]
fn applet_commands_answer_6985_until_lock() {
    let k = keys();
    let p = plan(8);
    let id = p.card_id;
    let mut b = unlocked_card(&k, &p, Protocol::T1);
    let before = b.snap();
    // Commands that all succeed (or get past their own checks) on the issued card.
    let purse_cmds = vec![
        cmds::purse_read_all(),
        cmds::read_field(FIELD_ID, 8),
        cmds::read_field(FIELD_COUNTER, 4),
        cmds::purse_write_value(1, DATE),
        cmds::purse_write_signature(&[1; 64]),
        cmds::purse_write_certificate(&[2; 10]),
    ];
    let cpay_cmds = vec![
        cmds::read_field(FIELD_ID, 8),
        cmds::read_field(FIELD_CERTIFICATE, 256),
        cmds::cpay_verify_reader(k.payment.cert.encode()),
        cmds::cpay_sign(&[1; 16]),
        cmds::cpay_debit(1, DATE, &[1; 64]),
    ];
    let cert = xfer_cert_of(&k, &plan(9));
    let xfer_cmds = vec![
        cmds::xfer_info(),
        cmds::xfer_certificate(),
        cmds::xfer_update_permission(MODE_COMMON, &[]),
        cmds::xfer_update_permission(MODE_PUBLIC, &cert),
        cmds::xfer_get_transfer_key(MODE_COMMON, &[1; 16], &[]),
        cmds::xfer_get_transfer_key(MODE_PUBLIC, &[1; 16], &cert),
        cmds::xfer_update_transfer_key(MODE_COMMON, &[0; 52]),
        cmds::xfer_send_permission(10, DATE),
        cmds::xfer_receive_permission(10, DATE, &[1; 16]),
        cmds::xfer_send(&[1; 16], &[2; 16]),
        cmds::xfer_receive(&[1; 16]),
        cmds::xfer_read_state(0x01),
        cmds::xfer_read_state(0x02),
        cmds::xfer_cancel_pending(&[0; 16]),
        cmds::xfer_cancel_proof(&[0; 40]),
    ];
    let applets = [(AID_PURSE, &purse_cmds), (AID_CPAY, &cpay_cmds), (AID_XFER, &xfer_cmds)];
    // Nothing selected: still 6986 first.
    b.sw(&cmds::read_field(FIELD_ID, 8), 0x6986);
    for (aid, list) in &applets {
        b.select(aid);
        for c in list.iter() {
            b.sw(c, 0x6985);
        }
        // Unknown instructions too (the applet is not reached at all)...
        b.sw(&Command::new(CLA_PROP, 0x50, 0, 0), 0x6985);
        b.sw(&Command::new(CLA_PROP, GET_RESPONSE, 0, 0).le(4), 0x6985);
        // ...but the CLA and P1-P2 checks come first.
        b.sw(&Command::new(CLA_ISO, READ_FIELD, FIELD_ID, 0).le(8), 0x6D00);
        b.sw(&Command::new(0x84, READ_FIELD, FIELD_ID, 0).le(8), 0x6E00);
        b.sw(&Command::new(CLA_PROP, 0x50, 1, 0), 0x6A86);
        b.sw(&Command::new(CLA_PROP, XFER_CANCEL_PENDING, 0, 1), 0x6A86);
    }
    assert_eq!(b.snap(), before, "nothing ran before LOCK");
    // SELECT, GET RESPONSE and personalization work before LOCK.
    assert_eq!(b.raw(&[0x80, PERSO_STATUS, 0, 0]), (vec![], 0x6101));
    assert_eq!(b.raw(&[0x00, 0xC0, 0, 0, 0x01]), (vec![0x00], OK));
    b.ok(&cmds::perso_put(PO_XFER_BALANCE, &600u32.to_be_bytes()));
    b.ok(&cmds::perso_lock());
    assert_eq!(perso_status(&mut b), vec![0x01]);
    // The same card, issued: the applets answer.
    b.select(&AID_PURSE);
    assert_eq!(b.ok(&cmds::read_field(FIELD_ID, 8)), id);
    assert_eq!(b.ok(&cmds::purse_write_value(1, DATE)), 999u32.to_be_bytes());
    b.sw(&Command::new(CLA_PROP, 0x50, 0, 0), 0x6D00);
    b.select(&AID_CPAY);
    verify_payment(&mut b, &k);
    let nonce = sign(&mut b, &k, &id, &[1; 16]);
    assert_eq!(b.ok(&cmds::cpay_debit(1, DATE, &debit_sig(&k, &id, 1, DATE, &nonce))), 999u32.to_be_bytes());
    b.select(&AID_XFER);
    assert_eq!(be32(&xfer_info(&mut b), 12), 600);
    assert_eq!(xfer_cert(&mut b).len(), 186);
    assert_eq!(b.ok(&cmds::xfer_send_permission(10, DATE)).len(), 16);
    b.sw(&cmds::xfer_read_state(0x01), 0x6A88);
    // Identical to the card the issuance script makes in one go, but for what ran since.
    let mut issued = personalize_virtual(&p, Protocol::T1, &k).unwrap();
    let sends = b.image().xfer.sends.clone();
    assert_eq!(sends.len(), 1, "the send session is logged");
    assert_eq!((sends[0].paid, sends[0].state), (10, cardbench::card::image::SendState::Open));
    issued
        .nvm_mut()
        .update(|img| {
            img.xfer.sends = sends;
            img.xfer.balance = 600;
            img.purse.counter -= 1;
            (img.purse.amount, img.purse.date) = (1, DATE);
            (img.cpay.amount, img.cpay.date) = (999, DATE);
            Ok(())
        })
        .unwrap();
    assert_eq!(snap(issued.image()), b.snap());
}

fn xfer_cert_of(k: &Keyset, p: &CardPlan) -> Vec<u8> {
    k.card_cert(&p.card_id, Role::XferCard, p.cert_expiry).encode().to_vec()
}

/// P-256 group order n.
const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xBC, 0xE6, 0xFA,
    0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// n + d as 32 big-endian bytes (d small, no overflow past 2^256 for these n).
fn n_plus(d: i16) -> [u8; 32] {
    let mut v = P256_N;
    let mut carry = d as i32;
    for b in v.iter_mut().rev() {
        let x = *b as i32 + carry;
        *b = x.rem_euclid(256) as u8;
        carry = x.div_euclid(256);
        if carry == 0 {
            break;
        }
    }
    v
}

#[test]
fn perso_invalid_keys_are_6a80_and_store_nothing() {
    let k = keys();
    let id = card_id(0x70);
    let mut b = blank_bench(Protocol::T0);
    b.ok(&cmds::perso_put(PO_CARD_ID, &id));
    // Private scalars: 0 and n or more are refused; 1 and n - 1 are keys.
    let bad_scalars: Vec<[u8; 32]> = vec![[0; 32], P256_N, n_plus(1), n_plus(0xFF), [0xFF; 32]];
    for obj in [PO_CPAY_KEY, PO_XFER_CARD_KEY] {
        let empty = b.snap();
        for bad in &bad_scalars {
            b.sw(&cmds::perso_put(obj, bad), 0x6A80);
            assert_eq!(b.snap(), empty, "PUT {obj:02X} {} stored", hexs(bad));
        }
        let mut one = [0u8; 32];
        one[31] = 1;
        for good in [one, n_plus(-1)] {
            b.ok(&cmds::perso_put(obj, &good));
            let img = b.image();
            let stored = if obj == PO_CPAY_KEY { img.cpay.key } else { img.xfer.card_key };
            assert_eq!(stored.unwrap().expose(), &good);
        }
        // A refused PUT leaves the key stored before.
        let stored = b.snap();
        for bad in &bad_scalars {
            b.sw(&cmds::perso_put(obj, bad), 0x6A80);
        }
        assert_eq!(b.snap(), stored);
    }
    // Public points: 65 bytes that are not an uncompressed point on the curve.
    let good = sig::encode_point(&k.center_public());
    let mut not_04 = Vec::new();
    for prefix in [0x00u8, 0x02, 0x03, 0x05, 0x06, 0x07] {
        let mut p = good.to_vec();
        p[0] = prefix;
        not_04.push(p);
    }
    let mut y_flipped = good.to_vec();
    y_flipped[64] ^= 1;
    let mut swapped = vec![0x04];
    swapped.extend_from_slice(&good[33..]);
    swapped.extend_from_slice(&good[1..33]);
    let mut bad_points = vec![
        off_curve_point(),
        [&[0x04][..], &[0; 64]].concat(),
        [&[0x04][..], &[0xFF; 64]].concat(),
        vec![0; 65],
        y_flipped,
        swapped,
    ];
    bad_points.extend(not_04);
    for obj in [PO_CPAY_CENTER_KEY, PO_XFER_CA_KEY] {
        let before = b.snap();
        for bad in &bad_points {
            b.sw(&cmds::perso_put(obj, bad), 0x6A80);
            assert_eq!(b.snap(), before, "PUT {obj:02X} {} stored", hexs(bad));
        }
        b.ok(&cmds::perso_put(obj, &good));
        let stored = b.snap();
        assert_ne!(stored, before);
        for bad in &bad_points {
            b.sw(&cmds::perso_put(obj, bad), 0x6A80);
        }
        assert_eq!(b.snap(), stored, "the valid key stays");
    }
    let img = b.image();
    assert_eq!(img.cpay.center_key, Some(good));
    assert_eq!(img.xfer.ca_key, Some(good));
    // Length, P2 and the lock are checked before the content.
    b.sw(&cmds::perso_put(PO_CPAY_KEY, &[0; 33]), 0x6700);
    b.sw(&cmds::perso_put(PO_XFER_CA_KEY, &[0; 64]), 0x6700);
    let mut c = cmds::perso_put(PO_XFER_CARD_KEY, &[0; 32]);
    c.p2 = 1;
    b.sw(&c, 0x6A86);
    b.ok(&cmds::perso_lock());
    b.sw(&cmds::perso_put(PO_CPAY_KEY, &[0; 32]), 0x6986);
    b.sw(&cmds::perso_put(PO_CPAY_CENTER_KEY, &off_curve_point()), 0x6986);
    // The keys that went in work: the center key checks the payment machine.
    b.select(&AID_CPAY);
    verify_payment(&mut b, &k);
}

#[test]
fn perso_limits_are_update_key_limit_then_transfer_key_limit() {
    let k = keys();
    // A: update key 1 (limit 2), transfer key 1 (limit 5).
    let mut a = custom_card(&[
        (PO_XFER_VALIDITY, (DATE + 1000).to_be_bytes().to_vec()),
        (PO_XFER_BALANCE, 100u32.to_be_bytes().to_vec()),
        (PO_XFER_UPDATE_KEY, idk(1, &uk(&k, 1))),
        (PO_XFER_TRANSFER_KEY, idk(1, &tk(&k, 1))),
        (PO_XFER_LIMITS, [2u32.to_be_bytes(), 5u32.to_be_bytes()].concat()),
    ]);
    let img = a.image();
    assert_eq!((img.xfer.ukid_limit, img.xfer.tkid_limit), (2, 5));
    a.select(&AID_XFER);
    let info = xfer_info(&mut a);
    assert_eq!(
        info[16..32],
        [1u32, 1, 2, 5].map(u32::to_be_bytes).concat(),
        "GET CARD INFO: UK ID ‖ TK ID ‖ UK limit ‖ TK limit"
    );
    // The transfer-key range is (1, 5]: 6 is refused, 5 accepted.
    for (tk_id, want) in [(6u32, 0x6984u16), (5, OK)] {
        let mut pb = plan(71);
        pb.transfer_key = tk_id;
        let mut b = selected(&k, &pb, Protocol::T0, &AID_XFER);
        assert_eq!(update(&mut a, &mut b, MODE_COMMON).sw, want, "TK {tk_id}");
    }
    assert_eq!(a.image().xfer.tkid, 5);
}

// ---------------------------------------------------------------------------------------------
// PURSE

#[test]
fn purse_read_all_layout() {
    let k = keys();
    let p = plan(5);
    let mut b = selected(&k, &p, Protocol::T1, &AID_PURSE);
    let all = b.ok(&cmds::purse_read_all());
    let mut want = p.card_id.to_vec();
    want.extend_from_slice(&1000u32.to_be_bytes());
    want.extend_from_slice(&[0; 8]);
    want.extend_from_slice(&[0, 0]);
    assert_eq!(all, want, "ID ‖ counter ‖ amount ‖ date ‖ 00 ‖ 00");
    b.ok(&cmds::purse_write_value(0x0102_0304, 0x0A0B_0C0D));
    b.ok(&cmds::purse_write_signature(&[0xAB; 64]));
    b.ok(&cmds::purse_write_certificate(&[0xCD; 3]));
    let all = b.ok(&cmds::purse_read_all());
    let mut want = p.card_id.to_vec();
    want.extend_from_slice(&[0, 0, 0x03, 0xE7, 1, 2, 3, 4, 0xA, 0xB, 0xC, 0xD, 64]);
    want.extend_from_slice(&[0xAB; 64]);
    want.extend_from_slice(&[3, 0xCD, 0xCD, 0xCD]);
    assert_eq!(all, want);
    assert_eq!(all, purse::encode_record(&b.image()));
    // P1/P2 must be zero.
    b.sw(&Command::new(CLA_PROP, PURSE_READ_ALL, 1, 0).le(256), 0x6A86);
    b.sw(&Command::new(CLA_PROP, PURSE_READ_ALL, 0, 1).le(256), 0x6A86);
}

#[test]
fn purse_read_field_each_p1() {
    let k = keys();
    let p = plan(5);
    let mut b = selected(&k, &p, Protocol::T0, &AID_PURSE);
    assert_eq!(b.ok(&cmds::read_field(FIELD_ID, 8)), p.card_id);
    assert_eq!(b.ok(&cmds::read_field(FIELD_COUNTER, 4)), 1000u32.to_be_bytes());
    assert_eq!(b.ok(&cmds::read_field(FIELD_VALUE, 8)), vec![0; 8]);
    b.sw(&cmds::read_field(FIELD_SIGNATURE, 64), 0x6A88);
    b.sw(&cmds::read_field(FIELD_CERTIFICATE, 256), 0x6A88);
    b.ok(&cmds::purse_write_value(250, DATE));
    let sigb: Vec<u8> = (100..164).collect();
    b.ok(&cmds::purse_write_signature(&sigb));
    b.ok(&cmds::purse_write_certificate(k.charge.cert.encode()));
    assert_eq!(b.ok(&cmds::read_field(FIELD_COUNTER, 4)), 999u32.to_be_bytes());
    assert_eq!(b.ok(&cmds::read_field(FIELD_VALUE, 8)), [250u32.to_be_bytes(), DATE.to_be_bytes()].concat());
    assert_eq!(b.ok(&cmds::read_field(FIELD_SIGNATURE, 64)), sigb);
    assert_eq!(b.ok(&cmds::read_field(FIELD_CERTIFICATE, 256)), k.charge.cert.encode());
    for p1 in [0x00u8, 0x06, 0x10, 0xFF] {
        b.sw(&cmds::read_field(p1, 8), 0x6A86);
    }
    b.sw(&Command::new(CLA_PROP, READ_FIELD, FIELD_ID, 1).le(8), 0x6A86);
}

#[test]
fn purse_write_value_decrements_counter_by_one_atomically() {
    let k = keys();
    let mut b = selected(&k, &plan(5), Protocol::T0, &AID_PURSE);
    for (i, (amount, date)) in [(10u32, 100u32), (20, 200), (0, 0), (u32::MAX, u32::MAX)].into_iter().enumerate() {
        let before = b.image().purse;
        let resp = b.ok(&cmds::purse_write_value(amount, date));
        let after = b.image().purse;
        let want = 1000 - 1 - i as u32;
        assert_eq!(resp, want.to_be_bytes(), "answers the new counter");
        assert_eq!(after.counter, before.counter - 1);
        assert_eq!(after.counter, want);
        assert_eq!((after.amount, after.date), (amount, date));
        assert_eq!(after.signature, before.signature);
        assert_eq!(after.certificate, before.certificate);
    }
    // Counter and value survive a power cycle.
    b.power_cycle();
    b.select(&AID_PURSE);
    assert_eq!(b.ok(&cmds::read_field(FIELD_COUNTER, 4)), 996u32.to_be_bytes());
    assert_eq!(b.ok(&cmds::read_field(FIELD_VALUE, 8)), vec![0xFF; 8]);
}

#[test]
fn purse_write_value_wrong_length_is_6700_and_changes_nothing() {
    let k = keys();
    let mut b = selected(&k, &plan(5), Protocol::T1, &AID_PURSE);
    let before = b.snap();
    for n in [0usize, 1, 4, 7, 9, 16] {
        b.sw(&Command::new(CLA_PROP, PURSE_WRITE_VALUE, 0, 0).data(vec![1; n]).le(4), 0x6700);
    }
    assert_eq!(b.snap(), before);
}

#[test]
fn purse_counter_exhausted_is_6a84_and_nothing_changes() {
    let k = keys();
    let mut p = plan(6);
    p.purse_counter = 2;
    let mut b = selected(&k, &p, Protocol::T0, &AID_PURSE);
    assert_eq!(b.ok(&cmds::purse_write_value(11, 111)), 1u32.to_be_bytes());
    assert_eq!(b.ok(&cmds::purse_write_value(22, 222)), 0u32.to_be_bytes());
    let before = b.snap();
    for _ in 0..3 {
        b.sw(&cmds::purse_write_value(33, 333), 0x6A84);
    }
    assert_eq!(b.snap(), before);
    let img = b.image();
    assert_eq!((img.purse.counter, img.purse.amount, img.purse.date), (0, 22, 222));
    // Signature and certificate areas do not use the counter.
    b.ok(&cmds::purse_write_signature(&[1; 64]));
    b.ok(&cmds::purse_write_certificate(&[2; 10]));
    assert_eq!(b.image().purse.counter, 0);
    b.sw(&cmds::purse_write_value(33, 333), 0x6A84);
}

#[test]
fn purse_write_signature_needs_exactly_64_bytes() {
    let k = keys();
    let mut b = selected(&k, &plan(5), Protocol::T0, &AID_PURSE);
    let before = b.snap();
    for n in [0usize, 1, 32, 63, 65, 72, 128] {
        b.sw(&Command::new(CLA_PROP, PURSE_WRITE_SIGNATURE, 0, 0).data(vec![9; n]), 0x6700);
    }
    assert_eq!(b.snap(), before);
    b.ok(&cmds::purse_write_signature(&[1; 64]));
    b.ok(&cmds::purse_write_signature(&[2; 64]));
    let img = b.image();
    assert_eq!(img.purse.signature, vec![2; 64]);
    assert_eq!(img.purse.counter, 1000, "signature writes do not touch the counter");
}

#[test]
fn purse_write_certificate_accepts_1_to_255_bytes() {
    let k = keys();
    let mut b = selected(&k, &plan(5), Protocol::T1, &AID_PURSE);
    let before = b.snap();
    b.sw(&Command::new(CLA_PROP, PURSE_WRITE_CERTIFICATE, 0, 0), 0x6700);
    b.sw(&cmds::purse_write_certificate(&[7; 256]), 0x6700);
    b.sw(&cmds::purse_write_certificate(&[7; 300]), 0x6700);
    assert_eq!(b.snap(), before);
    b.ok(&cmds::purse_write_certificate(&[1]));
    assert_eq!(b.image().purse.certificate, vec![1]);
    b.ok(&cmds::purse_write_certificate(&[3; 255]));
    assert_eq!(b.image().purse.certificate, vec![3; 255]);
    b.ok(&cmds::purse_write_certificate(k.charge.cert.encode()));
    assert_eq!(b.image().purse.certificate, k.charge.cert.encode());
    assert_eq!(b.image().purse.counter, 1000);
}

#[test]
fn purse_counter_never_increases_and_only_write_value_decrements_it() {
    let k = keys();
    let mut b = selected(&k, &plan(5), Protocol::T0, &AID_PURSE);
    let variants: Vec<(Vec<u8>, Option<usize>)> = vec![
        (vec![], None),
        (vec![], Some(256)),
        (vec![0, 0, 0, 1, 0, 0, 0, 2], None),
        (vec![0, 0, 0, 1, 0, 0, 0, 2], Some(256)),
        (vec![0xFF; 4], None),
        (vec![0xFF; 4], Some(4)),
        (vec![0xFF; 64], None),
        (vec![0x7F; 255], Some(256)),
    ];
    let mut decrements = 0;
    for cla in [CLA_ISO, CLA_PROP] {
        for ins in 0..=255u8 {
            for (p1, p2) in [(0u8, 0u8), (FIELD_COUNTER, 0), (PO_PURSE_COUNTER, 0)] {
                for (data, le) in &variants {
                    let mut c = Command::new(cla, ins, p1, p2).data(data.clone());
                    c.le = *le;
                    let before = b.image().purse.counter;
                    let (_, sw) = b.raw(&c.to_bytes().unwrap());
                    let after = b.image().purse.counter;
                    assert!(after <= before, "{cla:02X} {ins:02X} increased the counter");
                    if after < before {
                        assert_eq!(ins, PURSE_WRITE_VALUE, "{cla:02X} {ins:02X} decremented");
                        assert_eq!(before - after, 1);
                        assert!(sw == OK || sw == 0x6104, "SW {sw:04X}");
                        decrements += 1;
                    }
                }
            }
        }
        // Keep the applet selected whatever the sweep did.
        b.select(&AID_PURSE);
    }
    assert!(decrements > 0);
    assert_eq!(b.image().purse.counter, 1000 - decrements);
}

#[test]
fn purse_nvm_tear_during_write_value_changes_nothing() {
    let k = keys();
    let mut b = selected(&k, &plan(5), Protocol::T1, &AID_PURSE);
    let before = b.snap();
    b.card_mut().nvm_mut().tear_after(Some(1));
    assert_eq!(b.try_exec(&cmds::purse_write_value(5, 5)), Err(HeadError::Mute));
    assert_eq!(b.snap(), before);
    assert_eq!(b.try_exec(&cmds::read_field(FIELD_COUNTER, 4)), Err(HeadError::Unpowered));
    b.head.power_on().unwrap();
    b.select(&AID_PURSE);
    assert_eq!(b.ok(&cmds::purse_write_value(5, 5)), 999u32.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// CPAY

fn cpay_card(k: &Keyset, n: u8, proto: Protocol) -> (Bench, [u8; 8]) {
    let p = plan(n);
    (selected(k, &p, proto, &AID_CPAY), p.card_id)
}

fn verify_payment(b: &mut Bench, k: &Keyset) {
    assert!(b.ok(&cmds::cpay_verify_reader(k.payment.cert.encode())).is_empty());
}

/// SIGN PAYMENT, checked: returns the card nonce.
fn sign(b: &mut Bench, k: &Keyset, id: &[u8; 8], random: &[u8; 16]) -> [u8; 16] {
    let r = b.ok(&cmds::cpay_sign(random));
    assert_eq!(r.len(), 8 + 4 + 4 + 16 + 64);
    let img = b.image();
    assert_eq!(&r[..8], id);
    let (date, amount) = (be32(&r, 8), be32(&r, 12));
    assert_eq!((amount, date), (img.cpay.amount, img.cpay.date));
    let card = k.card_key(id, "cpay");
    sig::verify(card.verifying_key(), &cpay::sign_message(id, date, amount, random), &r[32..])
        .expect("card signature verifies over sign_message");
    a16(&r[16..32])
}

fn debit_sig(k: &Keyset, id: &[u8; 8], price: u32, date: u32, nonce: &[u8; 16]) -> [u8; 64] {
    sig::sign(&k.payment.key, &cpay::debit_message(id, price, date, nonce))
}

#[test]
fn cpay_read_fields() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 10, Protocol::T0);
    assert_eq!(b.ok(&cmds::read_field(FIELD_ID, 8)), id);
    assert_eq!(b.ok(&cmds::read_field(FIELD_VALUE, 8)), [1000u32.to_be_bytes(), 0u32.to_be_bytes()].concat());
    let cert = b.ok(&cmds::read_field(FIELD_CERTIFICATE, 256));
    let c = Certificate::parse(&cert).unwrap();
    c.verify_signature(&k.center_public()).unwrap();
    assert_eq!(c.body.role, Role::SigningCard);
    assert_eq!(c.body.subject, id);
    assert_eq!(c.public_key().unwrap(), *k.card_key(&id, "cpay").verifying_key());
    for p1 in [0u8, FIELD_COUNTER, FIELD_SIGNATURE, 0x06] {
        b.sw(&cmds::read_field(p1, 8), 0x6A86);
    }
    b.sw(&Command::new(CLA_PROP, READ_FIELD, FIELD_ID, 1).le(8), 0x6A86);
}

#[test]
fn cpay_verify_accepts_payment_machine_cert() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 10, Protocol::T1);
    let before = b.snap();
    verify_payment(&mut b, &k);
    sign(&mut b, &k, &id, &[1; 16]);
    assert_eq!(b.snap(), before, "VERIFY and SIGN write nothing");
}

#[test]
fn cpay_verify_rejects_wrong_role_and_wrong_issuer_with_6982() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 10, Protocol::T0);
    let payment_body = k.payment.cert.body.clone();
    let rejected: Vec<(&str, Vec<u8>)> = vec![
        ("charge machine", k.charge.cert.encode().to_vec()),
        ("the card's own signing-card cert", k.card_cert(&id, Role::SigningCard, 2_000_000_000).encode().to_vec()),
        ("payment role signed by the XFER CA", Certificate::issue(payment_body.clone(), &k.ca).encode().to_vec()),
        (
            "payment role signed by a foreign key",
            Certificate::issue(payment_body.clone(), &foreign_key("center")).encode().to_vec(),
        ),
        (
            "payment role, foreign holder, foreign issuer",
            forged_cert(b"PAYMNT99", Role::PaymentMachine, &foreign_key("p"), &foreign_key("c")),
        ),
        ("center-signed center role", forged_cert(b"CBCENTER", Role::Center, &k.center, &k.center)),
    ];
    for (what, cert) in &rejected {
        // Each rejection also drops a reader verified before.
        verify_payment(&mut b, &k);
        let sw = b.exec(&cmds::cpay_verify_reader(cert)).sw;
        assert_eq!(sw, 0x6982, "{what}");
        assert_eq!(b.exec(&cmds::cpay_sign(&[0; 16])).sw, 0x6986, "{what}");
    }
    // A flipped signature bit in the genuine certificate.
    let mut bad = k.payment.cert.encode().to_vec();
    let n = bad.len();
    bad[n - 1] ^= 1;
    b.sw(&cmds::cpay_verify_reader(&bad), 0x6982);
    b.sw(&cmds::cpay_sign(&[0; 16]), 0x6986);
}

#[test]
fn cpay_verify_malformed_is_6a80_and_wrong_p1p2_is_6a86() {
    let k = keys();
    let (mut b, _) = cpay_card(&k, 10, Protocol::T1);
    for junk in [vec![], vec![0x7F], vec![0; 186], k.payment.cert.encode()[..100].to_vec()] {
        b.sw(&cmds::cpay_verify_reader(&junk), 0x6A80);
    }
    let mut trailing = k.payment.cert.encode().to_vec();
    trailing.push(0);
    b.sw(&cmds::cpay_verify_reader(&trailing), 0x6A80);
    for (p1, p2) in [(0x00u8, 0x00u8), (0x00, 0xBF), (0x80, 0xBE), (0x9E, 0x9A)] {
        b.sw(&Command::new(CLA_ISO, CPAY_VERIFY_READER, p1, p2).data(k.payment.cert.encode().to_vec()), 0x6A86);
    }
    b.sw(&cmds::cpay_sign(&[0; 16]), 0x6986);
}

#[test]
fn cpay_sign_before_verify_is_6986() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 10, Protocol::T0);
    b.sw(&cmds::cpay_sign(&[5; 16]), 0x6986);
    // Verification does not survive a power cycle nor a re-SELECT.
    verify_payment(&mut b, &k);
    sign(&mut b, &k, &id, &[5; 16]);
    b.select(&AID_CPAY);
    b.sw(&cmds::cpay_sign(&[5; 16]), 0x6986);
    verify_payment(&mut b, &k);
    b.power_cycle();
    b.select(&AID_CPAY);
    b.sw(&cmds::cpay_sign(&[5; 16]), 0x6986);
}

#[test]
fn cpay_sign_layout_and_signature() {
    let k = keys();
    let mut p = plan(11);
    p.cpay_amount = 0x0102_0304;
    let mut b = selected(&k, &p, Protocol::T1, &AID_CPAY);
    verify_payment(&mut b, &k);
    let random: [u8; 16] = *b"reader-random-01";
    let r = b.ok(&cmds::cpay_sign(&random));
    assert_eq!(r.len(), 96);
    assert_eq!(&r[..8], &p.card_id);
    assert_eq!(&r[8..12], &[0, 0, 0, 0], "date");
    assert_eq!(&r[12..16], &[1, 2, 3, 4], "amount");
    let vk = *k.card_key(&p.card_id, "cpay").verifying_key();
    sig::verify(&vk, &cpay::sign_message(&p.card_id, 0, 0x0102_0304, &random), &r[32..]).unwrap();
    // The signature binds the reader random.
    assert!(sig::verify(&vk, &cpay::sign_message(&p.card_id, 0, 0x0102_0304, &[0; 16]), &r[32..]).is_err());
    // Fresh nonce on every SIGN.
    let n1 = sign(&mut b, &k, &p.card_id, &random);
    let n2 = sign(&mut b, &k, &p.card_id, &random);
    assert_ne!(n1, n2);
    assert_ne!(n1, a16(&r[16..32]));
    // Wrong random length.
    for n in [0usize, 15, 17, 32] {
        b.sw(&Command::new(CLA_PROP, CPAY_SIGN, 0, 0).data(vec![1; n]).le(256), 0x6700);
    }
}

#[test]
fn cpay_debit_with_reader_signature_debits() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 12, Protocol::T0);
    verify_payment(&mut b, &k);
    let nonce = sign(&mut b, &k, &id, &[3; 16]);
    let s = debit_sig(&k, &id, 300, DATE, &nonce);
    assert_eq!(b.ok(&cmds::cpay_debit(300, DATE, &s)), 700u32.to_be_bytes());
    let img = b.image();
    assert_eq!((img.cpay.amount, img.cpay.date), (700, DATE));
    // The nonce was single-use.
    b.sw(&cmds::cpay_debit(300, DATE, &s), 0x6986);
    assert_eq!(b.image().cpay.amount, 700);
    // The next SIGN reports the new value; debiting exactly what is left is fine.
    let nonce = sign(&mut b, &k, &id, &[4; 16]);
    let s = debit_sig(&k, &id, 700, DATE + 1, &nonce);
    assert_eq!(b.ok(&cmds::cpay_debit(700, DATE + 1, &s)), 0u32.to_be_bytes());
    assert_eq!(b.image().cpay.amount, 0);
}

#[test]
fn cpay_debit_wrong_signature_is_6982_and_consumes_the_nonce() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 12, Protocol::T1);
    verify_payment(&mut b, &k);
    let before = b.snap();
    let nonce = sign(&mut b, &k, &id, &[3; 16]);
    let good = debit_sig(&k, &id, 100, DATE, &nonce);
    let mut bad = good;
    bad[10] ^= 0x40;
    b.sw(&cmds::cpay_debit(100, DATE, &bad), 0x6982);
    b.sw(&cmds::cpay_debit(100, DATE, &good), 0x6986);
    assert_eq!(b.snap(), before);
    assert_eq!(b.snap(), before);
}

#[test]
fn cpay_debit_each_forged_field_is_6982() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 13, Protocol::T0);
    verify_payment(&mut b, &k);
    let before = b.snap();
    type Forge = fn(&Keyset, &[u8; 8], &[u8; 16]) -> [u8; 64];
    let forgeries: [(&str, Forge); 6] = [
        ("charge machine key", |k, id, n| sig::sign(&k.charge.key, &cpay::debit_message(id, 100, DATE, n))),
        ("other price", |k, id, n| sig::sign(&k.payment.key, &cpay::debit_message(id, 101, DATE, n))),
        ("other date", |k, id, n| sig::sign(&k.payment.key, &cpay::debit_message(id, 100, DATE + 1, n))),
        ("other card", |k, _, n| sig::sign(&k.payment.key, &cpay::debit_message(&card_id(99), 100, DATE, n))),
        ("other nonce", |k, id, _| sig::sign(&k.payment.key, &cpay::debit_message(id, 100, DATE, &[0; 16]))),
        ("garbage", |_, _, _| [0x11; 64]),
    ];
    for (what, forge) in forgeries {
        let nonce = sign(&mut b, &k, &id, &[3; 16]);
        let s = forge(&k, &id, &nonce);
        assert_eq!(b.exec(&cmds::cpay_debit(100, DATE, &s)).sw, 0x6982, "{what}");
        b.sw(&cmds::cpay_debit(100, DATE, &debit_sig(&k, &id, 100, DATE, &nonce)), 0x6986);
    }
    assert_eq!(b.snap(), before);
}

#[test]
fn cpay_debit_price_above_amount_is_6a84_zero_price_is_6a80() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 14, Protocol::T1);
    verify_payment(&mut b, &k);
    let before = b.snap();
    let nonce = sign(&mut b, &k, &id, &[8; 16]);
    b.sw(&cmds::cpay_debit(1001, DATE, &debit_sig(&k, &id, 1001, DATE, &nonce)), 0x6A84);
    b.sw(&cmds::cpay_debit(1001, DATE, &debit_sig(&k, &id, 1001, DATE, &nonce)), 0x6986);
    let nonce = sign(&mut b, &k, &id, &[8; 16]);
    b.sw(&cmds::cpay_debit(0, DATE, &debit_sig(&k, &id, 0, DATE, &nonce)), 0x6A80);
    let nonce = sign(&mut b, &k, &id, &[8; 16]);
    b.sw(&cmds::cpay_debit(u32::MAX, DATE, &debit_sig(&k, &id, u32::MAX, DATE, &nonce)), 0x6A84);
    assert_eq!(b.snap(), before);
}

#[test]
fn cpay_debit_replayed_after_new_sign_is_6982() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 15, Protocol::T0);
    verify_payment(&mut b, &k);
    let n1 = sign(&mut b, &k, &id, &[1; 16]);
    let s1 = debit_sig(&k, &id, 50, DATE, &n1);
    assert_eq!(b.ok(&cmds::cpay_debit(50, DATE, &s1)), 950u32.to_be_bytes());
    let before = b.snap();
    let _n2 = sign(&mut b, &k, &id, &[1; 16]);
    b.sw(&cmds::cpay_debit(50, DATE, &s1), 0x6982);
    assert_eq!(b.snap(), before);
    // A debit prepared for a nonce that a newer SIGN replaced is refused too.
    let n3 = sign(&mut b, &k, &id, &[1; 16]);
    let _n4 = sign(&mut b, &k, &id, &[1; 16]);
    b.sw(&cmds::cpay_debit(50, DATE, &debit_sig(&k, &id, 50, DATE, &n3)), 0x6982);
    assert_eq!(b.snap(), before);
}

#[test]
fn cpay_debit_without_sign_or_with_wrong_length() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 16, Protocol::T1);
    let before = b.snap();
    b.sw(&cmds::cpay_debit(1, DATE, &[1; 64]), 0x6986);
    verify_payment(&mut b, &k);
    b.sw(&cmds::cpay_debit(1, DATE, &[1; 64]), 0x6986);
    let nonce = sign(&mut b, &k, &id, &[2; 16]);
    let good = debit_sig(&k, &id, 1, DATE, &nonce);
    for n in [0usize, 8, 71, 73] {
        let mut data = [&1u32.to_be_bytes()[..], &DATE.to_be_bytes(), &good].concat();
        data.resize(n, 0);
        b.sw(&Command::new(CLA_PROP, CPAY_DEBIT, 0, 0).data(data).le(4), 0x6700);
    }
    // Wrong lengths did not consume the nonce.
    assert_eq!(b.ok(&cmds::cpay_debit(1, DATE, &good)), 999u32.to_be_bytes());
    assert_ne!(b.snap(), before);
}

#[test]
fn cpay_debit_after_reader_rejection_is_6986() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 17, Protocol::T0);
    verify_payment(&mut b, &k);
    let nonce = sign(&mut b, &k, &id, &[2; 16]);
    // A failed VERIFY drops the verified reader: the pending debit cannot complete.
    b.sw(&cmds::cpay_verify_reader(k.charge.cert.encode()), 0x6982);
    b.sw(&cmds::cpay_debit(1, DATE, &debit_sig(&k, &id, 1, DATE, &nonce)), 0x6986);
    assert_eq!(b.image().cpay.amount, 1000);
}

#[test]
fn cpay_new_verify_clears_the_sign_nonce() {
    let k = keys();
    let (mut b, id) = cpay_card(&k, 19, Protocol::T1);
    verify_payment(&mut b, &k);
    let n1 = sign(&mut b, &k, &id, &[1; 16]);
    let before = b.snap();
    // The same reader verified again: the nonce of the earlier SIGN is gone.
    verify_payment(&mut b, &k);
    b.sw(&cmds::cpay_debit(10, DATE, &debit_sig(&k, &id, 10, DATE, &n1)), 0x6986);
    assert_eq!(b.snap(), before);
    // A new SIGN under the re-verified reader gives a usable nonce.
    let n2 = sign(&mut b, &k, &id, &[1; 16]);
    assert_ne!(n1, n2);
    assert_eq!(b.ok(&cmds::cpay_debit(10, DATE, &debit_sig(&k, &id, 10, DATE, &n2))), 990u32.to_be_bytes());
    // Another payment machine (center-signed) takes over: the first reader's nonce is gone
    // and the new reader's signature is the one that counts.
    let other_key = foreign_key("payment machine 2");
    let other = forged_cert(b"PAYMNT02", Role::PaymentMachine, &other_key, &k.center);
    let n3 = sign(&mut b, &k, &id, &[2; 16]);
    b.ok(&cmds::cpay_verify_reader(&other));
    for key in [&k.payment.key, &other_key] {
        let s = sig::sign(key, &cpay::debit_message(&id, 10, DATE, &n3));
        b.sw(&cmds::cpay_debit(10, DATE, &s), 0x6986);
    }
    let n4 = sign(&mut b, &k, &id, &[3; 16]);
    b.sw(&cmds::cpay_debit(10, DATE, &debit_sig(&k, &id, 10, DATE, &n4)), 0x6982);
    let n5 = sign(&mut b, &k, &id, &[3; 16]);
    let s = sig::sign(&other_key, &cpay::debit_message(&id, 10, DATE, &n5));
    assert_eq!(b.ok(&cmds::cpay_debit(10, DATE, &s)), 980u32.to_be_bytes());
    // A malformed VERIFY clears it too (6A80), a VERIFY with wrong P1-P2 does not (6A86).
    let n6 = sign(&mut b, &k, &id, &[4; 16]);
    b.sw(&cmds::cpay_verify_reader(&[0x7F]), 0x6A80);
    let s6 = sig::sign(&other_key, &cpay::debit_message(&id, 10, DATE, &n6));
    b.sw(&cmds::cpay_debit(10, DATE, &s6), 0x6986);
    verify_payment(&mut b, &k);
    let n7 = sign(&mut b, &k, &id, &[5; 16]);
    b.sw(&with_p1p2(&cmds::cpay_verify_reader(k.payment.cert.encode()), 0x00, 0xBF), 0x6A86);
    assert_eq!(b.ok(&cmds::cpay_debit(10, DATE, &debit_sig(&k, &id, 10, DATE, &n7))), 970u32.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// XFER: card information and key update

#[test]
fn xfer_get_card_info_layout() {
    let k = keys();
    let mut p = plan(20);
    p.validity = 0x7000_0001;
    p.balance = 0x0000_1234;
    p.update_key = 3;
    p.transfer_key = 6;
    p.update_key_limit = 4;
    p.transfer_key_limit = 8;
    p.slots = vec![2, 5, 7];
    let mut b = selected(&k, &p, Protocol::T0, &AID_XFER);
    let info = xfer_info(&mut b);
    let mut want = p.card_id.to_vec();
    for v in [0x7000_0001u32, 0x1234, 3, 6, 4, 8] {
        want.extend_from_slice(&v.to_be_bytes());
    }
    want.push(0x03); // update key and card key present, no pending credit, no last debit
    want.push(3);
    for s in [2u32, 5, 7] {
        want.extend_from_slice(&s.to_be_bytes());
    }
    assert_eq!(info, want);
    assert_eq!(info.len(), 34 + 12);
    // Without slots.
    let mut b = selected(&k, &plan(21), Protocol::T1, &AID_XFER);
    let info = xfer_info(&mut b);
    assert_eq!(info.len(), 34);
    assert_eq!(info[32..], [0x03, 0x00]);
    // P1/P2 other than 00 00 and 01 00.
    for (p1, p2) in [(0x02u8, 0u8), (0x00, 0x01), (0x01, 0x01), (0xFF, 0)] {
        b.sw(&Command::new(CLA_PROP, XFER_GET_INFO, p1, p2).le(256), 0x6A86);
    }
}

#[test]
fn xfer_get_card_info_certificate() {
    let k = keys();
    let p = plan(22);
    let mut b = selected(&k, &p, Protocol::T0, &AID_XFER);
    let cert = xfer_cert(&mut b);
    assert_eq!(cert.len(), 186);
    let c = Certificate::parse(&cert).unwrap();
    c.verify_signature(&k.ca_public()).unwrap();
    assert_eq!(c.body.role, Role::XferCard);
    assert_eq!(c.body.subject, p.card_id);
    assert_eq!(c.public_key().unwrap(), *k.card_key(&p.card_id, "xfer").verifying_key());
    assert_eq!(cert, k.card_cert(&p.card_id, Role::XferCard, p.cert_expiry).encode());
    // An issued card without a certificate answers 6A88 (before LOCK: 6985, not issued).
    let mut blank = blank_bench(Protocol::T1);
    blank.select(&AID_XFER);
    blank.sw(&cmds::xfer_certificate(), 0x6985);
    blank.ok(&cmds::perso_lock());
    blank.sw(&cmds::xfer_certificate(), 0x6A88);
}

#[test]
fn xfer_update_permission_common_and_multi_give_fresh_randoms() {
    let k = keys();
    let mut b = selected(&k, &plan(23), Protocol::T0, &AID_XFER);
    let before = b.snap();
    let mut seen = std::collections::BTreeSet::new();
    for mode in [MODE_COMMON, MODE_MULTI, MODE_COMMON, MODE_MULTI] {
        let r = b.ok(&cmds::xfer_update_permission(mode, &[]));
        assert_eq!(r.len(), 16);
        assert!(seen.insert(r), "randoms are fresh");
        // Common/multi modes take no data.
        b.sw(&cmds::xfer_update_permission(mode, &[0; 16]), 0x6700);
    }
    for (p1, p2) in [(0u8, 0u8), (5, 0), (0xFF, 0), (MODE_COMMON, 1)] {
        b.sw(&Command::new(CLA_PROP, XFER_UPDATE_PERMISSION, p1, p2).le(16), 0x6A86);
    }
    assert_eq!(b.snap(), before, "a permission writes nothing");
}

#[test]
fn xfer_update_permission_public_needs_a_ca_signed_xfer_card_cert() {
    let k = keys();
    let pb = plan(25);
    let mut a = selected(&k, &plan(24), Protocol::T1, &AID_XFER);
    let good = k.card_cert(&pb.card_id, Role::XferCard, pb.cert_expiry).encode().to_vec();
    let holder = k.card_key(&pb.card_id, "xfer");
    let body = Certificate::parse(&good).unwrap().body;
    let wrong: Vec<(&str, Vec<u8>)> = vec![
        (
            "CPAY card cert (center, signing card)",
            k.card_cert(&pb.card_id, Role::SigningCard, pb.cert_expiry).encode().to_vec(),
        ),
        ("payment machine cert", k.payment.cert.encode().to_vec()),
        ("xfer role signed by the center", Certificate::issue(body.clone(), &k.center).encode().to_vec()),
        ("xfer role signed by a foreign key", Certificate::issue(body.clone(), &foreign_key("ca")).encode().to_vec()),
        ("signing-card role signed by the CA", forged_cert(&pb.card_id, Role::SigningCard, &holder, &k.ca)),
        (
            "settlement terminal role signed by the CA",
            forged_cert(&pb.card_id, Role::SettlementTerminal, &holder, &k.ca),
        ),
    ];
    for mode in [MODE_PUBLIC, MODE_PUBLIC_UK] {
        let r = a.ok(&cmds::xfer_update_permission(mode, &good));
        assert_eq!(r.len(), 16);
        for (what, cert) in &wrong {
            assert_eq!(a.exec(&cmds::xfer_update_permission(mode, cert)).sw, 0x6982, "{what}");
        }
        let mut flipped = good.clone();
        flipped[185] ^= 1;
        a.sw(&cmds::xfer_update_permission(mode, &flipped), 0x6982);
        // Missing or malformed certificate.
        a.sw(&cmds::xfer_update_permission(mode, &[]), 0x6A80);
        a.sw(&cmds::xfer_update_permission(mode, &good[..100]), 0x6A80);
    }
}

#[test]
fn xfer_key_update_common_mode() {
    let k = keys();
    let mut pb = plan(31);
    pb.transfer_key = 3;
    let (mut a, mut b) = xfer_pair(&k, &plan(30), &pb);
    let a0 = a.image();
    let b_before = b.snap();
    assert_eq!(update(&mut a, &mut b, MODE_COMMON).sw, OK);
    let a1 = a.image();
    assert_eq!(a1.xfer.tkid, 3);
    assert_eq!(a1.xfer.tk.as_ref().unwrap().expose(), &tk(&k, 3));
    assert_eq!(a1.xfer.ukid, a0.xfer.ukid);
    assert_eq!(a1.xfer.uk, a0.xfer.uk);
    assert_eq!(a1.xfer.balance, a0.xfer.balance);
    assert_eq!(b.snap(), b_before, "the exporting card is unchanged");
    assert_eq!(be32(&xfer_info(&mut a), 20), 3, "GET CARD INFO shows the new ID");
    // The two cards now share a transfer key: a transfer works.
    assert_eq!(transfer(&mut a, &mut b, 10, DATE, &tk(&k, 3)), 510);
}

#[test]
fn xfer_key_update_public_mode() {
    let k = keys();
    let mut pb = plan(33);
    pb.update_key = 2; // different update keys: only the public path works
    pb.transfer_key = 4;
    let (mut a, mut b) = xfer_pair(&k, &plan(32), &pb);
    let a0 = a.image();
    let b_before = b.snap();
    assert_eq!(update(&mut a, &mut b, MODE_PUBLIC).sw, OK);
    let a1 = a.image();
    assert_eq!(a1.xfer.tkid, 4);
    assert_eq!(a1.xfer.tk.as_ref().unwrap().expose(), &tk(&k, 4));
    assert_eq!((a1.xfer.ukid, a1.xfer.uk.clone()), (1, a0.xfer.uk.clone()), "mode 02 leaves the update key");
    assert_eq!(b.snap(), b_before);
    assert_eq!(transfer(&mut b, &mut a, 25, DATE, &tk(&k, 4)), 525);
}

#[test]
fn xfer_key_update_multi_mode_moves_only_the_id() {
    let k = keys();
    let mut pa = plan(34);
    pa.slots = (1..=8).collect();
    let mut pb = plan(35);
    pb.transfer_key = 6;
    let (mut a, mut b) = xfer_pair(&k, &pa, &pb);
    let a0 = a.image();
    assert_eq!(update(&mut a, &mut b, MODE_MULTI).sw, OK);
    let a1 = a.image();
    assert_eq!(a1.xfer.tkid, 6);
    assert_eq!(a1.xfer.tk.as_ref().unwrap().expose(), &tk(&k, 6), "key taken from slot 6");
    assert_eq!(a1.xfer.ukid, a0.xfer.ukid);
    let ids = |i: &CardImage| i.xfer.slots.iter().map(|(n, s)| (*n, *s.expose())).collect::<Vec<_>>();
    assert_eq!(ids(&a1), ids(&a0), "the slots themselves do not change");
    assert_eq!(transfer(&mut a, &mut b, 1, DATE, &tk(&k, 6)), 501);
}

#[test]
fn xfer_multi_mode_blob_does_not_carry_the_key() {
    // In mode 03 B exports only random ‖ ID: a card with the ID in a slot takes its own key.
    let k = keys();
    let mut pa = plan(36);
    pa.update_key = 1;
    // A's slot 5 holds a key that is NOT the keyset's transfer key 5.
    let card = {
        let mut c = VirtualCard::blank(Protocol::T0, Some([3; 32]));
        c.power_on();
        for (cmd, _) in issuance::script(&pa, &k).unwrap() {
            if cmd.ins == PERSO_LOCK {
                let slot = [&5u32.to_be_bytes()[..], &[0x55; 16]].concat();
                let r = c.process(&cmds::perso_put(PO_XFER_SLOT, &slot).to_bytes().unwrap()).unwrap();
                assert_eq!(r, vec![0x90, 0x00]);
            }
            let r = c.process(&cmd.to_bytes().unwrap()).unwrap();
            assert_eq!(r[r.len() - 2..], [0x90, 0x00]);
        }
        c
    };
    let mut a = Bench::new(card);
    a.select(&AID_XFER);
    let mut pb = plan(37);
    pb.transfer_key = 5;
    let mut b = selected(&k, &pb, Protocol::T1, &AID_XFER);
    assert_eq!(update(&mut a, &mut b, MODE_MULTI).sw, OK);
    let img = a.image();
    assert_eq!(img.xfer.tkid, 5);
    assert_eq!(img.xfer.tk.as_ref().unwrap().expose(), &[0x55; 16]);
}

#[test]
fn xfer_key_update_rollover_mode_moves_update_and_transfer_key() {
    let k = keys();
    let mut pa = plan(38);
    pa.update_key = 1;
    pa.update_key_limit = 4;
    let mut pb = plan(39);
    pb.update_key = 3;
    pb.transfer_key = 5;
    let (mut a, mut b) = xfer_pair(&k, &pa, &pb);
    let b_before = b.snap();
    assert_eq!(update(&mut a, &mut b, MODE_PUBLIC_UK).sw, OK);
    let a1 = a.image();
    assert_eq!((a1.xfer.ukid, a1.xfer.tkid), (3, 5));
    assert_eq!(a1.xfer.uk.as_ref().unwrap().expose(), &uk(&k, 3));
    assert_eq!(a1.xfer.tk.as_ref().unwrap().expose(), &tk(&k, 5));
    assert_eq!(b.snap(), b_before);
    // A now shares B's update key: a common-mode update from a newer card works.
    let mut pc = plan(40);
    pc.update_key = 3;
    pc.transfer_key = 7;
    let mut c = selected(&k, &pc, Protocol::T0, &AID_XFER);
    assert_eq!(update(&mut a, &mut c, MODE_COMMON).sw, OK);
    assert_eq!(a.image().xfer.tkid, 7);
}

#[test]
fn xfer_get_transfer_key_checks_lengths_and_peer_cert() {
    let k = keys();
    let pa = plan(41);
    let mut b = selected(&k, &plan(42), Protocol::T0, &AID_XFER);
    let before = b.snap();
    let cert_a = k.card_cert(&pa.card_id, Role::XferCard, pa.cert_expiry).encode().to_vec();
    for mode in [MODE_COMMON, MODE_MULTI] {
        for n in [0usize, 15, 17, 32] {
            b.sw(&cmds::xfer_get_transfer_key(mode, &vec![1; n], &[]), 0x6700);
        }
        b.sw(&cmds::xfer_get_transfer_key(mode, &[1; 16], &cert_a), 0x6700);
        let blob = b.ok(&cmds::xfer_get_transfer_key(mode, &[1; 16], &[]));
        let pt_len = if mode == MODE_COMMON { 36 } else { 20 };
        assert_eq!(blob.len(), 16 + pt_len + 16, "IV ‖ CT ‖ TAG");
    }
    for mode in [MODE_PUBLIC, MODE_PUBLIC_UK] {
        b.sw(&cmds::xfer_get_transfer_key(mode, &[1; 15], &[]), 0x6700);
        b.sw(&cmds::xfer_get_transfer_key(mode, &[1; 16], &[]), 0x6A80);
        b.sw(&cmds::xfer_get_transfer_key(mode, &[1; 16], k.payment.cert.encode()), 0x6982);
        let wrong = Certificate::issue(Certificate::parse(&cert_a).unwrap().body, &k.center);
        b.sw(&cmds::xfer_get_transfer_key(mode, &[1; 16], wrong.encode()), 0x6982);
        let blob = b.ok(&cmds::xfer_get_transfer_key(mode, &[1; 16], &cert_a));
        let pt_len = if mode == MODE_PUBLIC { 20 } else { 40 };
        assert_eq!(blob.len(), 65 + 16 + pt_len + 16 + 64, "ECIES ‖ signature");
    }
    b.sw(&Command::new(CLA_PROP, XFER_GET_TRANSFER_KEY, 0x05, 0).data(vec![0; 16]).le(256), 0x6A86);
    assert_eq!(b.snap(), before, "exporting writes nothing");
}

#[test]
fn xfer_update_without_permission_is_6986() {
    let k = keys();
    let mut pb = plan(44);
    pb.transfer_key = 3;
    let (mut a, mut b) = xfer_pair(&k, &plan(43), &pb);
    let before = a.snap();
    for mode in [MODE_COMMON, MODE_PUBLIC, MODE_MULTI, MODE_PUBLIC_UK] {
        let cert_a = xfer_cert(&mut a);
        let ca = if is_public(mode) { cert_a } else { vec![] };
        let blob = b.ok(&cmds::xfer_get_transfer_key(mode, &[9; 16], &ca));
        a.sw(&cmds::xfer_update_transfer_key(mode, &blob), 0x6986);
    }
    // A permission does not survive a re-SELECT or a power cycle.
    let (_, blob) = permission_and_blob(&mut a, &mut b, MODE_COMMON);
    a.select(&AID_XFER);
    a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob), 0x6986);
    let (_, blob) = permission_and_blob(&mut a, &mut b, MODE_COMMON);
    a.power_cycle();
    a.select(&AID_XFER);
    a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob), 0x6986);
    assert_eq!(a.snap(), before);
}

#[test]
fn xfer_permission_is_single_use() {
    let k = keys();
    for mode in [MODE_COMMON, MODE_PUBLIC] {
        let mut pb = plan(46);
        pb.transfer_key = 3;
        let (mut a, mut b) = xfer_pair(&k, &plan(45), &pb);
        let (_, blob) = permission_and_blob(&mut a, &mut b, mode);
        a.ok(&cmds::xfer_update_transfer_key(mode, &blob));
        let after = a.snap();
        a.sw(&cmds::xfer_update_transfer_key(mode, &blob), 0x6986);
        // Even under a new permission the old blob is refused (its random is stale).
        let cb = if is_public(mode) { xfer_cert(&mut b) } else { vec![] };
        a.ok(&cmds::xfer_update_permission(mode, &cb));
        a.sw(&cmds::xfer_update_transfer_key(mode, &blob), 0x6982);
        assert_eq!(a.snap(), after);
    }
}

#[test]
fn xfer_failed_update_consumes_the_permission() {
    let k = keys();
    let mut pb = plan(48);
    pb.transfer_key = 3;
    let (mut a, mut b) = xfer_pair(&k, &plan(47), &pb);
    let before = a.snap();
    let (_, blob) = permission_and_blob(&mut a, &mut b, MODE_COMMON);
    let mut bad = blob.clone();
    bad[20] ^= 1;
    a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &bad), 0x6982);
    a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob), 0x6986);
    // Mode mismatch also consumes it.
    let (_, blob) = permission_and_blob(&mut a, &mut b, MODE_COMMON);
    a.sw(&cmds::xfer_update_transfer_key(MODE_MULTI, &blob), 0x6986);
    a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob), 0x6986);
    assert_eq!(a.snap(), before);
}

#[test]
fn xfer_blob_for_a_stale_random_is_6982() {
    let k = keys();
    for mode in [MODE_COMMON, MODE_PUBLIC, MODE_MULTI, MODE_PUBLIC_UK] {
        let mut pa = plan(49);
        pa.slots = (1..=8).collect();
        let mut pb = plan(50);
        pb.transfer_key = 3;
        pb.update_key = if is_public(mode) { 2 } else { 1 };
        let (mut a, mut b) = xfer_pair(&k, &pa, &pb);
        let before = a.snap();
        let (r1, stale) = permission_and_blob(&mut a, &mut b, mode);
        let cb = if is_public(mode) { xfer_cert(&mut b) } else { vec![] };
        let r2 = a.ok(&cmds::xfer_update_permission(mode, &cb));
        assert_ne!(r1.to_vec(), r2);
        assert_eq!(a.exec(&cmds::xfer_update_transfer_key(mode, &stale)).sw, 0x6982, "mode {mode}");
        // A blob for a random the card never issued.
        let ca = if is_public(mode) { xfer_cert(&mut a) } else { vec![] };
        a.ok(&cmds::xfer_update_permission(mode, &cb));
        let forged = b.ok(&cmds::xfer_get_transfer_key(mode, &[0xEE; 16], &ca));
        assert_eq!(a.exec(&cmds::xfer_update_transfer_key(mode, &forged)).sw, 0x6982, "mode {mode}");
        assert_eq!(a.snap(), before);
    }
}

#[test]
fn xfer_tampered_blob_is_6982() {
    let k = keys();
    for mode in [MODE_COMMON, MODE_PUBLIC, MODE_MULTI, MODE_PUBLIC_UK] {
        let mut pa = plan(51);
        pa.slots = (1..=8).collect();
        let mut pb = plan(52);
        pb.transfer_key = 3;
        pb.update_key = if mode == MODE_PUBLIC_UK { 2 } else { 1 };
        let (mut a, mut b) = xfer_pair(&k, &pa, &pb);
        let before = a.snap();
        let (_, blob) = permission_and_blob(&mut a, &mut b, mode);
        let n = blob.len();
        for pos in [0, 1, 16, 40, n / 2, n.saturating_sub(65), n - 17, n - 1] {
            let (_, blob) = permission_and_blob(&mut a, &mut b, mode);
            let mut bad = blob.clone();
            bad[pos] ^= 0x80;
            let sw = a.exec(&cmds::xfer_update_transfer_key(mode, &bad)).sw;
            assert_eq!(sw, 0x6982, "mode {mode}, byte {pos} of {n}");
            assert_eq!(a.snap(), before);
        }
        // Truncated / extended.
        let (_, blob) = permission_and_blob(&mut a, &mut b, mode);
        let mut longer = blob.clone();
        longer.push(0);
        assert_eq!(a.exec(&cmds::xfer_update_transfer_key(mode, &longer)).sw, 0x6982, "mode {mode} +1");
        assert_eq!(a.snap(), before);
        // And the genuine one still works afterwards.
        assert_eq!(update(&mut a, &mut b, mode).sw, OK, "mode {mode}");
        assert_eq!(a.image().xfer.tkid, 3);
    }
}

#[test]
fn xfer_public_blob_from_another_card_or_for_another_card_is_6982() {
    let k = keys();
    let mut pb = plan(54);
    pb.transfer_key = 3;
    let mut pc = plan(55);
    pc.transfer_key = 3;
    let (mut a, mut b) = xfer_pair(&k, &plan(53), &pb);
    let mut c = selected(&k, &pc, Protocol::T0, &AID_XFER);
    let before = a.snap();
    let (ca, cb, cc) = (xfer_cert(&mut a), xfer_cert(&mut b), xfer_cert(&mut c));
    // Permission names B as the peer, but C answers.
    let r = a.ok(&cmds::xfer_update_permission(MODE_PUBLIC, &cb));
    let blob = c.ok(&cmds::xfer_get_transfer_key(MODE_PUBLIC, &r, &ca));
    a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &blob), 0x6982);
    // B answers, but encrypts for C.
    let r = a.ok(&cmds::xfer_update_permission(MODE_PUBLIC, &cb));
    let blob = b.ok(&cmds::xfer_get_transfer_key(MODE_PUBLIC, &r, &cc));
    a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &blob), 0x6982);
    assert_eq!(a.snap(), before);
}

#[test]
fn xfer_common_mode_with_different_update_keys_is_6982() {
    let k = keys();
    let mut pb = plan(57);
    pb.update_key = 2;
    pb.transfer_key = 3;
    let (mut a, mut b) = xfer_pair(&k, &plan(56), &pb);
    let before = a.snap();
    for mode in [MODE_COMMON, MODE_MULTI] {
        assert_eq!(update(&mut a, &mut b, mode).sw, 0x6982);
    }
    assert_eq!(a.snap(), before);
}

#[test]
fn xfer_blob_of_another_mode_is_6982() {
    let k = keys();
    let mut pa = plan(58);
    pa.slots = (1..=8).collect();
    let mut pb = plan(59);
    pb.transfer_key = 3;
    let (mut a, mut b) = xfer_pair(&k, &pa, &pb);
    let before = a.snap();
    // Permission and update in mode 03, but the blob was exported in mode 01 (and vice versa).
    for (perm, export) in [(MODE_MULTI, MODE_COMMON), (MODE_COMMON, MODE_MULTI)] {
        let r = a.ok(&cmds::xfer_update_permission(perm, &[]));
        let blob = b.ok(&cmds::xfer_get_transfer_key(export, &r, &[]));
        a.sw(&cmds::xfer_update_transfer_key(perm, &blob), 0x6982);
    }
    assert_eq!(a.snap(), before);
}

/// One key update with fresh cards: A holds `a_tk` with limit `a_limit`, B holds `b_tk`.
fn range_case(k: &Keyset, mode: u8, a_tk: u32, a_limit: u32, b_tk: u32) -> u16 {
    let mut pa = plan(60);
    pa.transfer_key = a_tk;
    pa.transfer_key_limit = a_limit;
    if mode == MODE_MULTI {
        pa.slots = (1..=8).collect();
    }
    let mut pb = plan(61);
    pb.transfer_key = b_tk;
    let (mut a, mut b) = xfer_pair(k, &pa, &pb);
    let a_before = a.snap();
    let b_before = b.snap();
    let sw = update(&mut a, &mut b, mode).sw;
    if sw == OK {
        let img = a.image();
        assert_eq!(img.xfer.tkid, b_tk);
        assert_eq!(img.xfer.tk.as_ref().unwrap().expose(), &tk(k, b_tk));
    } else {
        assert_eq!(a.snap(), a_before, "mode {mode}: a refused update changed A");
    }
    assert_eq!(b.snap(), b_before);
    sw
}

#[test]
fn xfer_range_checks_every_boundary() {
    let k = keys();
    // Current 3, upper limit 6.
    for mode in [MODE_COMMON, MODE_PUBLIC, MODE_MULTI] {
        let cases = [
            (1u32, 0x6984u16, "below current"),
            (2, 0x6984, "just below current"),
            (3, 0x6984, "equal to current"),
            (4, OK, "one above current"),
            (6, OK, "equal to the upper limit"),
            (7, 0x6984, "one above the upper limit"),
            (8, 0x6984, "far above the upper limit"),
        ];
        for (b_tk, want, what) in cases {
            assert_eq!(range_case(&k, mode, 3, 6, b_tk), want, "mode {mode:02X}: new ID {b_tk} {what}");
        }
    }
    // Limit equal to the current ID: nothing can be accepted.
    for b_tk in [4, 5, 8] {
        assert_eq!(range_case(&k, MODE_COMMON, 4, 4, b_tk), 0x6984);
    }
}

#[test]
fn xfer_multi_mode_missing_slot_is_6984() {
    let k = keys();
    let mut pa = plan(62);
    pa.slots = vec![1, 2, 4, 8];
    let mut pb = plan(63);
    pb.transfer_key = 3;
    let (mut a, mut b) = xfer_pair(&k, &pa, &pb);
    let before = a.snap();
    assert_eq!(update(&mut a, &mut b, MODE_MULTI).sw, 0x6984);
    assert_eq!(a.snap(), before);
    // No slots at all.
    let (mut a, mut b) = xfer_pair(&k, &plan(64), &pb);
    let before = a.snap();
    assert_eq!(update(&mut a, &mut b, MODE_MULTI).sw, 0x6984);
    assert_eq!(a.snap(), before);
    // With the slot it works.
    let mut pa = plan(65);
    pa.slots = vec![3];
    let (mut a, mut b) = xfer_pair(&k, &pa, &pb);
    assert_eq!(update(&mut a, &mut b, MODE_MULTI).sw, OK);
    assert_eq!(a.image().xfer.tkid, 3);
}

/// Rollover from B (uk `b_uk`, tk 5) to A (uk 2 with limit `a_uk_limit`, tk 1 limit 8).
fn rollover_case(k: &Keyset, b_uk: u32, a_uk_limit: u32, b_tk: u32) -> u16 {
    let mut pa = plan(66);
    pa.update_key = 2;
    pa.update_key_limit = a_uk_limit;
    pa.transfer_key = 2;
    pa.transfer_key_limit = 6;
    let mut pb = plan(67);
    pb.update_key = b_uk;
    pb.transfer_key = b_tk;
    let (mut a, mut b) = xfer_pair(k, &pa, &pb);
    let before = a.snap();
    let sw = update(&mut a, &mut b, MODE_PUBLIC_UK).sw;
    let img = a.image();
    if sw == OK {
        assert_eq!((img.xfer.ukid, img.xfer.tkid), (b_uk, b_tk));
        assert_eq!(img.xfer.uk.as_ref().unwrap().expose(), &uk(k, b_uk));
        assert_eq!(img.xfer.tk.as_ref().unwrap().expose(), &tk(k, b_tk));
    } else {
        assert_eq!(a.snap(), before, "neither key moved");
    }
    sw
}

#[test]
fn xfer_rollover_checks_the_update_key_range_too() {
    let k = keys();
    // Update key: current 2, limit 3. Transfer key: current 2, limit 6.
    assert_eq!(rollover_case(&k, 1, 3, 4), 0x6984, "update key below current");
    assert_eq!(rollover_case(&k, 2, 3, 4), 0x6984, "update key equal to current");
    assert_eq!(rollover_case(&k, 3, 3, 4), OK, "update key one above = limit");
    assert_eq!(rollover_case(&k, 4, 3, 4), 0x6984, "update key above the limit");
    assert_eq!(rollover_case(&k, 4, 4, 4), OK, "update key equal to a higher limit");
    // Update key fine, transfer key out of range: nothing moves.
    assert_eq!(rollover_case(&k, 3, 3, 2), 0x6984, "transfer key equal to current");
    assert_eq!(rollover_case(&k, 3, 3, 7), 0x6984, "transfer key above the limit");
    assert_eq!(rollover_case(&k, 3, 3, 6), OK, "transfer key at the limit");
}

#[test]
fn xfer_rejected_key_update_steps_change_nothing() {
    let k = keys();
    let mut pb = plan(69);
    pb.transfer_key = 5;
    pb.update_key = 2;
    let (mut a, mut b) = xfer_pair(&k, &plan(68), &pb);
    let a_before = a.snap();
    let b_before = b.snap();
    let cb = xfer_cert(&mut b);
    let ca = xfer_cert(&mut a);
    // A mix of every refusal of the three commands.
    a.sw(&cmds::xfer_update_permission(MODE_PUBLIC, k.charge.cert.encode()), 0x6982);
    a.sw(&cmds::xfer_update_permission(MODE_COMMON, &cb), 0x6700);
    a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &[0; 200]), 0x6986);
    a.ok(&cmds::xfer_update_permission(MODE_PUBLIC, &cb));
    a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &[0; 100]), 0x6700);
    a.ok(&cmds::xfer_update_permission(MODE_PUBLIC, &cb));
    a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &[0; 200]), 0x6982);
    b.sw(&cmds::xfer_get_transfer_key(MODE_PUBLIC, &[1; 16], k.payment.cert.encode()), 0x6982);
    b.sw(&cmds::xfer_get_transfer_key(MODE_COMMON, &[1; 16], &ca), 0x6700);
    assert_eq!(update(&mut a, &mut b, MODE_COMMON).sw, 0x6982);
    assert_eq!(a.snap(), a_before);
    assert_eq!(b.snap(), b_before);
    assert_eq!(update(&mut a, &mut b, MODE_PUBLIC).sw, OK);
}

// ---------------------------------------------------------------------------------------------
// XFER: value transfer (Fig. 4)

/// Sender (T=0) and receiver (T=1) with transfer key 1, balances as given.
fn transfer_pair(k: &Keyset, s_bal: u32, r_bal: u32) -> (Bench, Bench) {
    let mut ps = plan(70);
    ps.balance = s_bal;
    let mut pr = plan(71);
    pr.balance = r_bal;
    xfer_pair(k, &ps, &pr)
}

fn balance(b: &mut Bench) -> u32 {
    b.image().xfer.balance
}

#[test]
fn xfer_value_transfer_full_sequence() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 200);
    let key = tk(&k, 1);
    let (paid, date) = (120u32, DATE);
    let rnd_send = a16(&s.ok(&cmds::xfer_send_permission(paid, date)));
    let resp = r.ok(&cmds::xfer_receive_permission(paid, date, &rnd_send));
    let (chal_tx, rnd_recv) = (a16(&resp[..16]), a16(&resp[16..]));
    assert_eq!(chal_tx, xfer::challenge(&key, TAG_TRANSMISSION, paid, date, &rnd_send));
    assert_eq!(r.image().xfer.pending_credit.as_ref().unwrap().rnd_recv, rnd_recv);
    assert_eq!(xfer_info(&mut r)[32], 0x07, "pending-credit flag");
    let chal_rx = a16(&s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv)));
    assert_eq!(chal_rx, xfer::challenge(&key, TAG_RECEPTION, paid, date, &rnd_recv));
    assert_eq!(balance(&mut s), 380, "sender committed after the transmission challenge");
    assert_eq!(xfer_info(&mut s)[32], 0x0B, "last-debit flag");
    assert_eq!(r.ok(&cmds::xfer_receive(&chal_rx)), 320u32.to_be_bytes());
    assert_eq!((balance(&mut s), balance(&mut r)), (380, 320));
    assert!(r.image().xfer.pending_credit.is_none());
    assert_eq!(xfer_info(&mut r)[32], 0x03);
    assert_eq!(be32(&xfer_info(&mut s), 12), 380);
    assert_eq!(be32(&xfer_info(&mut r), 12), 320);
    // The receiver's VALUE RECEIVE cannot be replayed.
    r.sw(&cmds::xfer_receive(&chal_rx), 0x6986);
    s.sw(&cmds::xfer_send(&chal_tx, &rnd_recv), 0x6986);
    assert_eq!((balance(&mut s), balance(&mut r)), (380, 320));
    // And back again, balances still conserved.
    assert_eq!(transfer(&mut r, &mut s, 320, date, &key), 700);
    assert_eq!((balance(&mut s), balance(&mut r)), (700, 0));
}

#[test]
fn xfer_wrong_transmission_challenge_is_6982_and_sender_unchanged() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let before = snap_no_log(&s.image());
    let key = tk(&k, 1);
    type Wrong = fn(&[u8; 16], &[u8; 16], &[u8; 16]) -> [u8; 16];
    let wrong: [(&str, Wrong); 7] = [
        ("other key", |_, rs, _| xfer::challenge(&[0x42; 16], TAG_TRANSMISSION, 100, DATE, rs)),
        ("reception tag", |k, rs, _| xfer::challenge(k, TAG_RECEPTION, 100, DATE, rs)),
        ("other amount", |k, rs, _| xfer::challenge(k, TAG_TRANSMISSION, 101, DATE, rs)),
        ("other date", |k, rs, _| xfer::challenge(k, TAG_TRANSMISSION, 100, DATE - 1, rs)),
        ("receiver's random", |k, _, rr| xfer::challenge(k, TAG_TRANSMISSION, 100, DATE, rr)),
        ("zeros", |_, _, _| [0; 16]),
        ("one bit off", |k, rs, _| {
            let mut c = xfer::challenge(k, TAG_TRANSMISSION, 100, DATE, rs);
            c[15] ^= 1;
            c
        }),
    ];
    for (what, w) in wrong {
        // Each attempt gets its own session (a failed VALUE SEND consumes it).
        if r.image().xfer.pending_credit.is_some() {
            cancel(&mut s, &mut r);
        }
        let (rnd_send, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 100, DATE);
        let c = w(&key, &rnd_send, &rnd_recv);
        assert_ne!(c, chal_tx, "{what}");
        assert_eq!(s.exec(&cmds::xfer_send(&c, &rnd_recv)).sw, 0x6982, "{what}");
        assert_eq!(snap_no_log(&s.image()), before, "{what}: sender unchanged");
        // The right challenge for that session no longer helps: the session is gone.
        s.sw(&cmds::xfer_send(&chal_tx, &rnd_recv), 0x6986);
        assert_eq!(snap_no_log(&s.image()), before);
    }
    assert!(s.image().xfer.last_debit.is_none());
    assert_eq!(balance(&mut s), 500);
}

#[test]
fn xfer_failed_value_send_consumes_the_session() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 100, DATE);
    let mut bad = chal_tx;
    bad[0] ^= 1;
    s.sw(&cmds::xfer_send(&bad, &rnd_recv), 0x6982);
    s.sw(&cmds::xfer_send(&chal_tx, &rnd_recv), 0x6986);
    assert_eq!(balance(&mut s), 500);
    // Wrong length does not consume it.
    let (_, chal_tx, _) = {
        cancel(&mut s, &mut r);
        permissions(&mut s, &mut r, 100, DATE)
    };
    let rnd_recv = r.image().xfer.pending_credit.unwrap().rnd_recv;
    for n in [0usize, 16, 31, 33] {
        let mut d = [chal_tx, rnd_recv].concat();
        d.resize(n, 0);
        s.sw(&Command::new(CLA_PROP, XFER_SEND, 0, 0).data(d).le(16), 0x6700);
    }
    s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv));
    assert_eq!(balance(&mut s), 400);
}

#[test]
fn xfer_wrong_reception_challenge_is_6982_and_pending_kept() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 50);
    let key = tk(&k, 1);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 100, DATE);
    let chal_rx = a16(&s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv)));
    let before = r.snap();
    let pending = r.image().xfer.pending_credit.clone().unwrap();
    for w in [
        xfer::challenge(&key, TAG_TRANSMISSION, 100, DATE, &rnd_recv),
        xfer::challenge(&key, TAG_RECEPTION, 99, DATE, &rnd_recv),
        xfer::challenge(&key, TAG_RECEPTION, 100, DATE, &pending.rnd_send),
        xfer::challenge(&tk(&k, 2), TAG_RECEPTION, 100, DATE, &rnd_recv),
        chal_tx,
        [0xFF; 16],
    ] {
        r.sw(&cmds::xfer_receive(&w), 0x6982);
        assert_eq!(r.snap(), before, "balance unchanged, pending credit kept");
    }
    for n in [0usize, 15, 17, 32] {
        r.sw(&Command::new(CLA_PROP, XFER_RECEIVE, 0, 0).data(vec![0; n]).le(4), 0x6700);
    }
    assert_eq!(r.snap(), before);
    assert_eq!(r.ok(&cmds::xfer_receive(&chal_rx)), 150u32.to_be_bytes());
    assert_eq!(balance(&mut s) + balance(&mut r), 550);
}

#[test]
fn xfer_insufficient_balance_is_6a84() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 100, 0);
    let before = s.snap();
    s.sw(&cmds::xfer_send_permission(101, DATE), 0x6A84);
    s.sw(&cmds::xfer_send_permission(u32::MAX, DATE), 0x6A84);
    assert_eq!(s.snap(), before);
    // The whole balance is fine.
    assert_eq!(transfer(&mut s, &mut r, 100, DATE, &tk(&k, 1)), 100);
    assert_eq!(balance(&mut s), 0);
    s.sw(&cmds::xfer_send_permission(1, DATE), 0x6A84);
}

#[test]
fn xfer_overflow_is_6a84() {
    let k = keys();
    // Cap set by max_balance.
    let mut ps = plan(72);
    ps.balance = 1000;
    let mut pr = plan(73);
    pr.balance = 900;
    pr.max_balance = 1000;
    let (mut s, mut r) = xfer_pair(&k, &ps, &pr);
    let before = r.snap();
    let rnd = s.ok(&cmds::xfer_send_permission(101, DATE));
    r.sw(&cmds::xfer_receive_permission(101, DATE, &rnd), 0x6A84);
    assert_eq!(r.snap(), before, "no pending credit recorded");
    assert_eq!(transfer(&mut s, &mut r, 100, DATE, &tk(&k, 1)), 1000, "up to the cap exactly");
    let rnd = s.ok(&cmds::xfer_send_permission(1, DATE));
    r.sw(&cmds::xfer_receive_permission(1, DATE, &rnd), 0x6A84);
    // No cap: u32 overflow.
    let mut pr = plan(74);
    pr.balance = u32::MAX - 5;
    let (mut s, mut r) = xfer_pair(&k, &ps, &pr);
    let before = r.snap();
    let rnd = s.ok(&cmds::xfer_send_permission(6, DATE));
    r.sw(&cmds::xfer_receive_permission(6, DATE, &rnd), 0x6A84);
    assert_eq!(r.snap(), before);
    assert_eq!(transfer(&mut s, &mut r, 5, DATE, &tk(&k, 1)), u32::MAX);
}

#[test]
fn xfer_expired_transaction_date_is_6985() {
    let k = keys();
    let mut ps = plan(75);
    ps.validity = DATE;
    let mut pr = plan(76);
    pr.validity = DATE + 10;
    let (mut s, mut r) = xfer_pair(&k, &ps, &pr);
    let (sb, rb) = (s.snap(), r.snap());
    s.sw(&cmds::xfer_send_permission(10, DATE + 1), 0x6985);
    s.sw(&cmds::xfer_send_permission(10, u32::MAX), 0x6985);
    r.sw(&cmds::xfer_receive_permission(10, DATE + 11, &[1; 16]), 0x6985);
    assert_eq!((s.snap(), r.snap()), (sb, rb));
    // The validity date itself is still valid, on both sides.
    assert_eq!(transfer(&mut s, &mut r, 10, DATE, &tk(&k, 1)), 510);
    r.ok(&cmds::xfer_receive_permission(10, DATE + 10, &[1; 16]));
}

#[test]
fn xfer_zero_amount_is_6a80() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (sb, rb) = (s.snap(), r.snap());
    s.sw(&cmds::xfer_send_permission(0, DATE), 0x6A80);
    r.sw(&cmds::xfer_receive_permission(0, DATE, &[1; 16]), 0x6A80);
    assert_eq!((s.snap(), r.snap()), (sb, rb));
}

#[test]
fn xfer_permission_wrong_lengths_are_6700() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (sb, rb) = (s.snap(), r.snap());
    for n in [0usize, 4, 7, 9, 16] {
        s.sw(&Command::new(CLA_PROP, XFER_SEND_PERMISSION, 0, 0).data(vec![1; n]).le(16), 0x6700);
    }
    for n in [0usize, 8, 23, 25, 32] {
        r.sw(&Command::new(CLA_PROP, XFER_RECEIVE_PERMISSION, 0, 0).data(vec![1; n]).le(32), 0x6700);
    }
    assert_eq!((s.snap(), r.snap()), (sb, rb));
}

#[test]
fn xfer_tentative_balances_are_not_committed_early() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 200);
    let (s0, r0) = (s.image(), r.image());
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 150, DATE);
    let (s1, r1) = (s.image(), r.image());
    assert_eq!(snap_no_log(&s1), snap_no_log(&s0), "SEND PERMISSION writes only its send log");
    assert_eq!(s1.xfer.sends.len(), s0.xfer.sends.len() + 1);
    assert_eq!((s1.xfer.balance, r1.xfer.balance), (500, 200));
    assert!(r0.xfer.pending_credit.is_none() && r1.xfer.pending_credit.is_some());
    assert_eq!(r1.xfer.balance, r0.xfer.balance, "the pending credit is not in the balance");
    assert_eq!(be32(&xfer_info(&mut s), 12), 500);
    assert_eq!(be32(&xfer_info(&mut r), 12), 200);
    // Power cycle of the sender: the send session is gone.
    s.power_cycle();
    s.select(&AID_XFER);
    s.sw(&cmds::xfer_send(&chal_tx, &rnd_recv), 0x6986);
    assert_eq!(snap(&s.image()), snap(&s1), "only RAM was lost; the send log keeps the open session");
    assert_eq!(balance(&mut r), 200);
    assert!(r.image().xfer.pending_credit.is_some(), "the receiver still holds its pending credit");
    // Which is what lets the sender prove, after the reset, that it never debited.
    cancel(&mut s, &mut r);
    assert!(r.image().xfer.pending_credit.is_none());
}

#[test]
fn xfer_reselect_or_new_send_permission_ends_the_send_session() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 10, DATE);
    s.select(&AID_XFER);
    s.sw(&cmds::xfer_send(&chal_tx, &rnd_recv), 0x6986);
    // A refused SEND PERMISSION also drops the previous session.
    cancel(&mut s, &mut r);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 10, DATE);
    s.sw(&cmds::xfer_send_permission(0, DATE), 0x6A80);
    s.sw(&cmds::xfer_send(&chal_tx, &rnd_recv), 0x6986);
    assert_eq!(balance(&mut s), 500);
}

#[test]
fn xfer_second_receive_permission_while_pending_is_6986() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (_, _, _) = permissions(&mut s, &mut r, 10, DATE);
    let before = r.snap();
    let pending = r.image().xfer.pending_credit.unwrap();
    let rnd = s.ok(&cmds::xfer_send_permission(20, DATE));
    r.sw(&cmds::xfer_receive_permission(20, DATE, &rnd), 0x6986);
    r.sw(&cmds::xfer_receive_permission(10, DATE, &pending.rnd_send), 0x6986);
    assert_eq!(r.snap(), before);
    // Also after a power cycle: the pending credit is in NVM.
    r.power_cycle();
    r.select(&AID_XFER);
    r.sw(&cmds::xfer_receive_permission(20, DATE, &rnd), 0x6986);
    assert_eq!(r.image().xfer.pending_credit.unwrap(), pending);
}

#[test]
fn xfer_read_transfer_state_layouts() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    for b in [&mut s, &mut r] {
        b.sw(&cmds::xfer_read_state(0x01), 0x6A88);
        b.sw(&cmds::xfer_read_state(0x02), 0x6A88);
        for p1 in [0x00u8, 0x03, 0xFF] {
            b.sw(&cmds::xfer_read_state(p1), 0x6A86);
        }
        b.sw(&Command::new(CLA_PROP, XFER_READ_STATE, 1, 1).le(256), 0x6A86);
    }
    let (paid, date) = (0x0123u32, DATE);
    let (rnd_send, chal_tx, rnd_recv) = permissions(&mut s, &mut r, paid, date);
    let pend = r.ok(&cmds::xfer_read_state(0x01));
    assert_eq!(pend.len(), 40);
    assert_eq!(pend, [&paid.to_be_bytes()[..], &date.to_be_bytes(), &rnd_send, &rnd_recv].concat());
    s.sw(&cmds::xfer_read_state(0x02), 0x6A88);
    let chal_rx = s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv));
    let last = s.ok(&cmds::xfer_read_state(0x02));
    assert_eq!(last.len(), 56);
    assert_eq!(last, [&paid.to_be_bytes()[..], &date.to_be_bytes(), &rnd_send, &rnd_recv, &chal_rx].concat());
    s.sw(&cmds::xfer_read_state(0x01), 0x6A88);
    r.ok(&cmds::xfer_receive(&chal_rx));
    r.sw(&cmds::xfer_read_state(0x01), 0x6A88);
    // The last debit stays readable after the receiver completed, and across power cycles.
    s.power_cycle();
    s.select(&AID_XFER);
    assert_eq!(s.ok(&cmds::xfer_read_state(0x02)), last);
}

#[test]
fn xfer_cancel_pending_clears_it_only_with_the_senders_proof() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 70);
    r.sw(&cmds::xfer_cancel_pending(&[0; 16]), 0x6A88);
    let before = r.snap();
    let (rnd_send, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 30, DATE);
    assert!(r.image().xfer.pending_credit.is_some());
    r.sw(&Command::new(CLA_PROP, XFER_CANCEL_PENDING, 1, 0).data(vec![0; 16]), 0x6A86);
    r.sw(&Command::new(CLA_PROP, XFER_CANCEL_PENDING, 0, 1).data(vec![0; 16]), 0x6A86);
    // The old unauthenticated case-1 form, a short proof, a wrong proof: refused.
    r.sw(&Command::new(CLA_PROP, XFER_CANCEL_PENDING, 0, 0), 0x6700);
    r.sw(&Command::new(CLA_PROP, XFER_CANCEL_PENDING, 0, 0).data(vec![0; 15]), 0x6700);
    let key = tk(&k, 1);
    for wrong in [
        [0u8; 16],
        xfer::cancel_proof(&key, 31, DATE, &rnd_send, &rnd_recv),
        xfer::cancel_proof(&key, 30, DATE + 1, &rnd_send, &rnd_recv),
        xfer::cancel_proof(&key, 30, DATE, &rnd_recv, &rnd_recv),
        xfer::cancel_proof(&key, 30, DATE, &rnd_send, &rnd_send),
        xfer::cancel_proof(&tk(&k, 2), 30, DATE, &rnd_send, &rnd_recv),
        xfer::challenge(&key, TAG_RECEPTION, 30, DATE, &rnd_recv),
    ] {
        r.sw(&cmds::xfer_cancel_pending(&wrong), 0x6982);
    }
    assert!(r.image().xfer.pending_credit.is_some());
    // The sender's proof: CMAC(tk, 03 ‖ paid ‖ date ‖ rnd_send ‖ rnd_recv), also its
    // session is gone (it can never debit for this credit).
    let pending = r.ok(&cmds::xfer_read_state(0x01));
    let proof = s.ok(&cmds::xfer_cancel_proof(&pending));
    assert_eq!(proof, xfer::cancel_proof(&key, 30, DATE, &rnd_send, &rnd_recv));
    s.sw(&cmds::xfer_send(&chal_tx, &rnd_recv), 0x6986);
    // Asked again (its answer lost), the sender gives the same proof without a commit.
    let sb = s.snap();
    assert_eq!(s.ok(&cmds::xfer_cancel_proof(&pending)), proof);
    assert_eq!(s.snap(), sb);
    assert!(r.ok(&cmds::xfer_cancel_pending(&proof)).is_empty());
    assert_eq!(r.snap(), before, "back to the image before RECEIVE PERMISSION");
    r.sw(&cmds::xfer_read_state(0x01), 0x6A88);
    r.sw(&cmds::xfer_cancel_pending(&proof), 0x6A88);
    assert_eq!((balance(&mut s), balance(&mut r)), (500, 70));
    // And a new transfer can start.
    assert_eq!(transfer(&mut s, &mut r, 30, DATE, &key), 100);
}

#[test]
fn xfer_cancel_proof_is_refused_for_a_session_that_debited_or_is_not_the_senders() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 40, DATE);
    let pending = r.ok(&cmds::xfer_read_state(0x01));
    // Length and applet checks.
    for n in [0usize, 39, 41] {
        let mut d = pending.clone();
        d.resize(n, 0);
        s.sw(&Command::new(CLA_PROP, XFER_CANCEL_PROOF, 0, 0).data(d).le(16), 0x6700);
    }
    // Not a session of this card (the receiver's own log is empty): 6A88.
    r.sw(&cmds::xfer_cancel_proof(&pending), 0x6A88);
    // The session's paid value or date altered: 6A80.
    let mut other = pending.clone();
    other[3] ^= 1;
    s.sw(&cmds::xfer_cancel_proof(&other), 0x6A80);
    // Once the sender debited for it, never a proof: complete the credit instead.
    let chal_rx = s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv));
    let sb = s.snap();
    s.sw(&cmds::xfer_cancel_proof(&pending), 0x6986);
    assert_eq!(s.snap(), sb);
    // Still refused after the sender's last-debit record moved on to another transfer.
    let mut pc = plan(72);
    pc.balance = 0;
    let mut c = selected(&k, &pc, Protocol::T0, &AID_XFER);
    assert_eq!(transfer(&mut s, &mut c, 5, DATE, &tk(&k, 1)), 5);
    s.sw(&cmds::xfer_cancel_proof(&pending), 0x6986);
    assert_eq!(r.ok(&cmds::xfer_receive(&chal_rx)), 40u32.to_be_bytes());
    // A session pushed out of the send log (four newer ones) can no longer be proven.
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    permissions(&mut s, &mut r, 10, DATE);
    let old = r.ok(&cmds::xfer_read_state(0x01));
    for _ in 0..4 {
        s.ok(&cmds::xfer_send_permission(1, DATE));
    }
    assert_eq!(s.image().xfer.sends.len(), 4);
    s.sw(&cmds::xfer_cancel_proof(&old), 0x6A88);
    assert!(r.image().xfer.pending_credit.is_some(), "kept for an off-line settlement");
}

#[test]
fn xfer_interrupted_transfer_is_completed_from_the_senders_last_debit() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 200);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 75, DATE);
    let _lost = s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv)); // the answer never reaches B
    assert_eq!(balance(&mut s), 425);
    // Receiver pulled before VALUE RECEIVE.
    r.head.power_off().unwrap();
    assert_eq!(r.try_exec(&cmds::xfer_read_state(1)), Err(HeadError::Unpowered));
    r.head.power_on().unwrap();
    r.select(&AID_XFER);
    assert_eq!(balance(&mut r), 200);
    assert_eq!(xfer_info(&mut r)[32] & 0x04, 0x04, "pending credit survived");
    // Terminal recovery: read both states, match randoms, forward the sender's challenge.
    let pend = r.ok(&cmds::xfer_read_state(0x01));
    let last = s.ok(&cmds::xfer_read_state(0x02));
    assert_eq!(pend[..40], last[..40], "same transfer on both sides");
    let chal_rx = &last[40..56];
    assert_eq!(r.ok(&cmds::xfer_receive(chal_rx)), 275u32.to_be_bytes());
    assert_eq!(balance(&mut s) + balance(&mut r), 700);
    r.sw(&cmds::xfer_receive(chal_rx), 0x6986);
    assert_eq!(balance(&mut r), 275);
}

#[test]
fn xfer_cards_with_different_transfer_keys_cannot_transfer() {
    let k = keys();
    let ps = plan(77);
    let mut pr = plan(78);
    pr.transfer_key = 2;
    let (mut s, mut r) = xfer_pair(&k, &ps, &pr);
    let sb = snap_no_log(&s.image());
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 10, DATE);
    s.sw(&cmds::xfer_send(&chal_tx, &rnd_recv), 0x6982);
    assert_eq!(snap_no_log(&s.image()), sb);
}

#[test]
fn xfer_value_send_or_receive_without_permission_is_6986() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (sb, rb) = (s.snap(), r.snap());
    s.sw(&cmds::xfer_send(&[0; 16], &[0; 16]), 0x6986);
    r.sw(&cmds::xfer_receive(&[0; 16]), 0x6986);
    assert_eq!((s.snap(), r.snap()), (sb, rb));
}

// ---------------------------------------------------------------------------------------------
// NVM tears in XFER

#[test]
fn xfer_tear_during_value_send_makes_the_card_mute_and_changes_nothing() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 60, DATE);
    let before = s.snap();
    s.card_mut().nvm_mut().tear_after(Some(1));
    s.exchanges();
    assert_eq!(s.try_exec(&cmds::xfer_send(&chal_tx, &rnd_recv)), Err(HeadError::Mute));
    assert!(s.rx.try_iter().any(|e| matches!(e, Event::HeadError { ref error, .. } if error.contains("mute"))));
    assert_eq!(s.snap(), before, "balance and last debit unchanged");
    assert!(!s.head.card().unwrap().is_powered());
    assert_eq!(s.try_exec(&cmds::xfer_info()), Err(HeadError::Unpowered));
    s.head.power_on().unwrap();
    s.sw(&cmds::xfer_info(), 0x6986);
    s.select(&AID_XFER);
    s.sw(&cmds::xfer_send(&chal_tx, &rnd_recv), 0x6986);
    assert_eq!(s.snap(), before);
    // The receiver never got value: the sender proves it, the receiver cancels, start again.
    cancel(&mut s, &mut r);
    assert_eq!(transfer(&mut s, &mut r, 60, DATE, &tk(&k, 1)), 60);
    assert_eq!(balance(&mut s), 440);
}

#[test]
fn xfer_tear_during_value_receive_keeps_the_pending_credit() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 10);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 60, DATE);
    let chal_rx = s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv));
    let before = r.snap();
    r.card_mut().nvm_mut().tear_after(Some(1));
    assert_eq!(r.try_exec(&cmds::xfer_receive(&chal_rx)), Err(HeadError::Mute));
    assert_eq!(r.snap(), before);
    r.head.power_on().unwrap();
    r.select(&AID_XFER);
    assert_eq!(r.ok(&cmds::xfer_receive(&chal_rx)), 70u32.to_be_bytes());
    assert_eq!(balance(&mut s) + balance(&mut r), 510);
}

#[test]
fn xfer_tear_during_receive_permission_and_key_update() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 10);
    let rnd = s.ok(&cmds::xfer_send_permission(5, DATE));
    let before = r.snap();
    r.card_mut().nvm_mut().tear_after(Some(1));
    assert_eq!(r.try_exec(&cmds::xfer_receive_permission(5, DATE, &rnd)), Err(HeadError::Mute));
    assert_eq!(r.snap(), before, "no pending credit");
    // Key update torn at its commit.
    let mut pb = plan(79);
    pb.transfer_key = 4;
    let (mut a, mut b) = xfer_pair(&k, &plan(80), &pb);
    let before = a.snap();
    let (_, blob) = permission_and_blob(&mut a, &mut b, MODE_COMMON);
    a.card_mut().nvm_mut().tear_after(Some(1));
    assert_eq!(a.try_exec(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob)), Err(HeadError::Mute));
    assert_eq!(a.snap(), before);
    a.head.power_on().unwrap();
    a.select(&AID_XFER);
    a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob), 0x6986);
    assert_eq!(update(&mut a, &mut b, MODE_COMMON).sw, OK);
}

// ---------------------------------------------------------------------------------------------
// No command returns a secret

/// Every 8-byte window of `secret` searched in `hay`.
fn leaks(hay: &[u8], secret: &[u8]) -> bool {
    secret.windows(8).any(|w| hay.len() >= 8 && hay.windows(8).any(|h| h == w))
}

#[test]
fn no_response_ever_contains_a_secret() {
    let k = keys();
    let (rec, rx) = Recorder::new("secrets");
    let mk =
        |p: &CardPlan, proto| Bench::with_recorder(personalize_virtual(p, proto, &k).unwrap(), rec.clone(), rx.clone());
    let mut pa = plan(90);
    pa.slots = (1..=8).collect();
    let mut pb = plan(91);
    (pb.update_key, pb.transfer_key) = (2, 3);
    let mut pc = plan(92);
    pc.transfer_key = 2;
    let mut pd = plan(93);
    pd.transfer_key = 4;
    let mut pe = plan(94);
    (pe.update_key, pe.transfer_key) = (2, 5);
    let plans = [pa, pb, pc, pd, pe];
    let mut cards: Vec<Bench> =
        plans.iter().enumerate().map(|(i, p)| mk(p, if i % 2 == 0 { Protocol::T0 } else { Protocol::T1 })).collect();
    // Personalization status, PURSE and CPAY on every card, successes and refusals.
    for (b, p) in cards.iter_mut().zip(&plans) {
        let id = p.card_id;
        perso_status(b);
        b.sw(&cmds::perso_put(PO_XFER_TRANSFER_KEY, &[0; 20]), 0x6986);
        b.select(&AID_PURSE);
        b.ok(&cmds::purse_read_all());
        for f in 1..=5 {
            b.exec(&cmds::read_field(f, 256));
        }
        b.ok(&cmds::purse_write_value(1, DATE));
        b.ok(&cmds::purse_write_signature(&[0x33; 64]));
        b.ok(&cmds::purse_write_certificate(k.charge.cert.encode()));
        b.ok(&cmds::purse_read_all());
        b.select(&AID_CPAY);
        for f in 1..=5 {
            b.exec(&cmds::read_field(f, 256));
        }
        b.sw(&cmds::cpay_sign(&[1; 16]), 0x6986);
        verify_payment(b, &k);
        let nonce = sign(b, &k, &id, &[2; 16]);
        b.ok(&cmds::cpay_debit(10, DATE, &debit_sig(&k, &id, 10, DATE, &nonce)));
        sign(b, &k, &id, &[3; 16]);
        b.sw(&cmds::cpay_debit(10, DATE, &[0x44; 64]), 0x6982);
        b.select(&AID_XFER);
        xfer_info(b);
        xfer_cert(b);
        b.exec(&cmds::xfer_read_state(1));
        b.exec(&cmds::xfer_read_state(2));
    }
    // Every export mode from every card.
    let certs: Vec<Vec<u8>> = cards.iter_mut().map(xfer_cert).collect();
    for (i, b) in cards.iter_mut().enumerate() {
        for mode in [MODE_COMMON, MODE_PUBLIC, MODE_MULTI, MODE_PUBLIC_UK] {
            let peer = if is_public(mode) { certs[(i + 1) % 5].clone() } else { vec![] };
            b.ok(&cmds::xfer_get_transfer_key(mode, &[i as u8; 16], &peer));
            b.ok(&cmds::xfer_update_permission(
                mode,
                &if is_public(mode) { certs[(i + 1) % 5].clone() } else { vec![] },
            ));
        }
    }
    // Card A through all four update modes: C (common), B (public), D (multi), E (rollover).
    let (a, rest) = cards.split_first_mut().unwrap();
    let [b, c, d, e] = rest else { unreachable!() };
    assert_eq!(update(a, c, MODE_COMMON).sw, OK);
    assert_eq!(update(a, b, MODE_PUBLIC).sw, OK);
    assert_eq!(update(a, d, MODE_MULTI).sw, OK);
    assert_eq!(update(a, e, MODE_PUBLIC_UK).sw, OK);
    assert_eq!(update(a, e, MODE_COMMON).sw, 0x6984);
    // Value transfers, an interrupted one, a cancelled one, refusals.
    let key5 = tk(&k, 5);
    transfer(a, e, 40, DATE, &key5);
    let (_, chal_tx, rnd_recv) = permissions(e, a, 30, DATE);
    e.ok(&cmds::xfer_send(&chal_tx, &rnd_recv));
    a.ok(&cmds::xfer_read_state(1));
    let last = e.ok(&cmds::xfer_read_state(2));
    a.ok(&cmds::xfer_receive(&last[40..]));
    permissions(a, e, 5, DATE);
    let pending = e.ok(&cmds::xfer_read_state(1));
    let proof = a.ok(&cmds::xfer_cancel_proof(&pending));
    e.ok(&cmds::xfer_cancel_pending(&proof));
    a.sw(&cmds::xfer_send_permission(0, DATE), 0x6A80);
    a.sw(&cmds::xfer_send_permission(u32::MAX, DATE), 0x6A84);
    xfer_info(a);
    xfer_info(e);

    // What a terminal could see: every reassembled response and every wire row.
    let mut seen: Vec<Vec<u8>> = cards.iter().flat_map(|b| b.responses.clone()).collect();
    let rows: Vec<Exchange> = rx
        .try_iter()
        .filter_map(|ev| match ev {
            Event::Exchange(x) => Some(*x),
            _ => None,
        })
        .collect();
    assert!(rows.len() > 200, "{} rows", rows.len());
    seen.extend(rows.into_iter().map(|r| r.response));
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 1..=4 {
        secrets.push((format!("update key {i}"), uk(&k, i).to_vec()));
    }
    for i in 1..=8 {
        secrets.push((format!("transfer key {i}"), tk(&k, i).to_vec()));
    }
    for p in &plans {
        for applet in ["cpay", "xfer"] {
            secrets.push((
                format!("{applet} key of {}", hexs(&p.card_id)),
                k.card_key(&p.card_id, applet).to_bytes().to_vec(),
            ));
        }
    }
    for (name, key) in [("center", &k.center), ("ca", &k.ca), ("charge", &k.charge.key), ("payment", &k.payment.key)] {
        secrets.push((name.to_string(), key.to_bytes().to_vec()));
    }
    for (name, secret) in &secrets {
        for resp in &seen {
            assert!(!leaks(resp, secret), "{name} appears in a response: {}", hexs(resp));
        }
    }
    // The check itself can see a key when there is one.
    assert!(leaks(&[&[1, 2][..], &tk(&k, 3)[4..14], &[3]].concat(), &tk(&k, 3)));
}

// ---------------------------------------------------------------------------------------------
// More transport details

#[test]
fn case1_with_response_data_uses_61xx_on_both_protocols() {
    for proto in [Protocol::T0, Protocol::T1] {
        let k = keys();
        let mut b = bench(&k, &plan(1), proto);
        assert_eq!(b.raw(&[0x80, PERSO_STATUS, 0, 0]), (vec![], 0x6101));
        assert_eq!(b.raw(&[0x00, 0xC0, 0, 0, 0x00]), (vec![], 0x6C01));
        assert_eq!(b.raw(&[0x00, 0xC0, 0, 0, 0x01]), (vec![0x01], OK));
        assert_eq!(b.raw(&[0x00, 0xC0, 0, 0, 0x01]), (vec![], 0x6986));
        // Through the link: same answer, three rows.
        b.exchanges();
        assert_eq!(b.ok(&Command::new(CLA_PROP, PERSO_STATUS, 0, 0)), vec![1]);
        let rows = b.exchanges();
        assert_eq!(rows.len(), 2, "{rows:#?}");
        assert_eq!(rows[0].sw, 0x6101);
        assert_eq!(rows[1].command, vec![0x00, 0xC0, 0x00, 0x00, 0x01]);
    }
}

#[test]
fn long_response_to_case1_and_short_le_is_reassembled() {
    let k = keys();
    for proto in [Protocol::T0, Protocol::T1] {
        let mut b = selected(&k, &plan(1), proto, &AID_PURSE);
        b.ok(&cmds::purse_write_signature(&[0x11; 64]));
        b.ok(&cmds::purse_write_certificate(&[0x22; 255]));
        let want = purse::encode_record(&b.image());
        assert_eq!(want.len(), 341);
        // Case 1: everything waits for GET RESPONSE, 256 at a time.
        assert_eq!(b.raw(&[0x80, 0xB0, 0, 0]), (vec![], 0x6100));
        let (d1, s1) = b.raw(&[0x00, 0xC0, 0, 0, 0x00]);
        assert_eq!((d1.len(), s1), (256, 0x6155));
        let (d2, s2) = b.raw(&[0x00, 0xC0, 0, 0, 0x55]);
        assert_eq!(s2, OK);
        assert_eq!([d1, d2].concat(), want);
        assert_eq!(b.ok(&Command::new(CLA_PROP, PURSE_READ_ALL, 0, 0)), want);
        if proto == Protocol::T1 {
            // T=1 with a short Le: 16 bytes now, then 256, then 69.
            b.exchanges();
            assert_eq!(b.ok(&Command::new(CLA_PROP, PURSE_READ_ALL, 0, 0).le(16)), want);
            let rows = b.exchanges();
            let shape: Vec<(usize, u16)> = rows.iter().map(|r| (r.response.len(), r.sw)).collect();
            assert_eq!(shape, vec![(16, 0x6100), (256, 0x6145), (69, OK)]);
        }
        // An extended Le takes it all at once on T=1, and on T=0 (Na > 256, Ne >= Na).
        let ext = Command::new(CLA_PROP, PURSE_READ_ALL, 0, 0).le(1000);
        assert_eq!(b.raw(&ext.to_bytes().unwrap()), (want.clone(), OK));
    }
}

#[test]
fn malformed_apdu_keeps_the_get_response_buffer_and_cla80_c0_is_not_get_response() {
    let k = keys();
    let mut b = selected(&k, &plan(1), Protocol::T0, &AID_PURSE);
    let wv = cmds::purse_write_value(1, 1).to_bytes().unwrap();
    assert_eq!(b.raw(&wv), (vec![], 0x6104));
    assert_eq!(b.raw(&[0x80, 0xD0, 0x00, 0x00, 0x08, 1]), (vec![], 0x6700));
    assert_eq!(b.raw(&[0x80, 0xC0, 0x00, 0x00, 0x04]), (vec![], 0x6D00), "CLA 80 C0 goes to the applet");
    // ...which was a parsed command, so the buffer is gone now.
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x04]), (vec![], 0x6986));
    assert_eq!(b.raw(&wv), (vec![], 0x6104));
    assert_eq!(b.raw(&[0x80]), (vec![], 0x6700));
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x04]), (998u32.to_be_bytes().to_vec(), OK));
    // A SELECT or a reset drops it too.
    assert_eq!(b.raw(&wv), (vec![], 0x6104));
    b.select(&AID_PURSE);
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x04]), (vec![], 0x6986));
    assert_eq!(b.raw(&wv), (vec![], 0x6104));
    b.power_cycle();
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x04]), (vec![], 0x6986));
}

#[test]
fn refused_p1p2_keeps_sessions() {
    let k = keys();
    // CPAY: a PSO VERIFY with bad P1-P2 keeps the verified reader.
    let (mut c, id) = cpay_card(&k, 18, Protocol::T1);
    verify_payment(&mut c, &k);
    c.sw(&Command::new(CLA_ISO, CPAY_VERIFY_READER, 0, 0).data(k.charge.cert.encode().to_vec()), 0x6A86);
    sign(&mut c, &k, &id, &[1; 16]);
    // XFER: bad P1-P2 on KEY UPDATE PERMISSION / UPDATE TRANSFER KEY keeps the permission.
    let mut pb = plan(19);
    pb.transfer_key = 2;
    let (mut a, mut b) = xfer_pair(&k, &plan(18), &pb);
    let (_, blob) = permission_and_blob(&mut a, &mut b, MODE_COMMON);
    a.sw(&Command::new(CLA_PROP, XFER_UPDATE_PERMISSION, 0x07, 0).le(16), 0x6A86);
    a.sw(&Command::new(CLA_PROP, XFER_UPDATE_TRANSFER_KEY, 0x01, 0x01).data(blob.clone()), 0x6A86);
    a.sw(&Command::new(CLA_PROP, XFER_UPDATE_TRANSFER_KEY, 0x00, 0x00).data(blob.clone()), 0x6A86);
    a.ok(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob));
    assert_eq!(a.image().xfer.tkid, 2);
    // A failed SELECT keeps the send session.
    let (_, chal_tx, rnd_recv) = permissions(&mut a, &mut b, 5, DATE);
    a.sw(&cmds::select(&[0xA0, 0, 0, 0x07, 0x77, 0, 0x09]), 0x6A82);
    a.ok(&cmds::xfer_send(&chal_tx, &rnd_recv));
}

// ---------------------------------------------------------------------------------------------
// CLA and P1-P2 strictness

/// `c` with another CLA.
fn with_cla(c: &Command, cla: u8) -> Command {
    let mut c = c.clone();
    c.cla = cla;
    c
}

/// `c` with other P1-P2.
fn with_p1p2(c: &Command, p1: u8, p2: u8) -> Command {
    let mut c = c.clone();
    c.p1 = p1;
    c.p2 = p2;
    c
}

#[test]
fn cla_00_is_only_select_get_response_and_pso_verify() {
    let k = keys();
    let p = plan(100);
    let id = p.card_id;
    let mut b = bench(&k, &p, Protocol::T1);
    let before = b.snap();
    // Without an applet, CLA 00 on anything but SELECT / GET RESPONSE is 6986 as with 80.
    for ins in [PERSO_PUT, PERSO_LOCK, PERSO_STATUS, READ_FIELD, CPAY_VERIFY_READER] {
        b.sw(&Command::new(CLA_ISO, ins, 0, 0), 0x6986);
    }
    let cert = xfer_cert_of(&k, &plan(101));
    let valid: [(&[u8; 7], Vec<Command>); 3] = [
        (
            &AID_PURSE,
            vec![
                cmds::purse_read_all(),
                cmds::read_field(FIELD_ID, 8),
                cmds::purse_write_value(1, DATE),
                cmds::purse_write_signature(&[1; 64]),
                cmds::purse_write_certificate(&[2; 10]),
            ],
        ),
        (
            &AID_CPAY,
            vec![cmds::read_field(FIELD_ID, 8), cmds::cpay_sign(&[1; 16]), cmds::cpay_debit(1, DATE, &[1; 64])],
        ),
        (
            &AID_XFER,
            vec![
                cmds::xfer_info(),
                cmds::xfer_certificate(),
                cmds::xfer_update_permission(MODE_COMMON, &[]),
                cmds::xfer_update_permission(MODE_PUBLIC, &cert),
                cmds::xfer_get_transfer_key(MODE_COMMON, &[1; 16], &[]),
                cmds::xfer_update_transfer_key(MODE_COMMON, &[0; 52]),
                cmds::xfer_send_permission(10, DATE),
                cmds::xfer_receive_permission(10, DATE, &[1; 16]),
                cmds::xfer_send(&[1; 16], &[2; 16]),
                cmds::xfer_receive(&[1; 16]),
                cmds::xfer_read_state(0x01),
                cmds::xfer_cancel_pending(&[0; 16]),
                cmds::xfer_cancel_proof(&[0; 40]),
            ],
        ),
    ];
    for (aid, list) in &valid {
        b.select(*aid);
        // Every proprietary command of the applet, sent with CLA 00.
        for c in list {
            b.sw(&with_cla(c, CLA_ISO), 0x6D00);
        }
        // Every INS of the card other than SELECT, GET RESPONSE (and PSO VERIFY in CPAY),
        // with CLA 00, whatever P1-P2: personalization included.
        for ins in KNOWN_INS {
            let iso_here = ins == SELECT || ins == GET_RESPONSE || (**aid == AID_CPAY && ins == CPAY_VERIFY_READER);
            if iso_here {
                continue;
            }
            for (p1, p2) in [(0u8, 0u8), (1, 0), (0, 0xBE), (0xFF, 0xFF)] {
                b.sw(&Command::new(CLA_ISO, ins, p1, p2).le(256), 0x6D00);
                b.sw(&Command::new(CLA_ISO, ins, p1, p2).data(vec![0; 20]), 0x6D00);
            }
        }
        b.sw(&Command::new(CLA_ISO, 0x50, 0, 0), 0x6D00);
    }
    // PSO VERIFY CERTIFICATE is CPAY's and CLA 00 only.
    for aid in [AID_PURSE, AID_XFER] {
        b.select(&aid);
        b.sw(&cmds::cpay_verify_reader(k.payment.cert.encode()), 0x6D00);
    }
    assert_eq!(b.snap(), before, "no CLA 00 command ran");
    assert_eq!(perso_status(&mut b), vec![1]);
    b.select(&AID_CPAY);
    let verify80 = with_cla(&cmds::cpay_verify_reader(k.payment.cert.encode()), CLA_PROP);
    b.sw(&verify80, 0x6D00);
    b.sw(&cmds::cpay_sign(&[1; 16]), 0x6986);
    // A refused CLA leaves the CPAY sessions alone: reader and nonce survive.
    verify_payment(&mut b, &k);
    let nonce = sign(&mut b, &k, &id, &[1; 16]);
    b.sw(&verify80, 0x6D00);
    b.sw(&with_cla(&cmds::cpay_sign(&[2; 16]), CLA_ISO), 0x6D00);
    let s = debit_sig(&k, &id, 5, DATE, &nonce);
    b.sw(&with_cla(&cmds::cpay_debit(5, DATE, &s), CLA_ISO), 0x6D00);
    assert_eq!(b.ok(&cmds::cpay_debit(5, DATE, &s)), 995u32.to_be_bytes());
    // Same for an XFER send session.
    let mut pr = plan(102);
    pr.balance = 0;
    let (mut s, mut r) = xfer_pair(&k, &plan(103), &pr);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 10, DATE);
    s.sw(&with_cla(&cmds::xfer_send(&chal_tx, &rnd_recv), CLA_ISO), 0x6D00);
    let chal_rx = s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv));
    r.sw(&with_cla(&cmds::xfer_receive(&chal_rx), CLA_ISO), 0x6D00);
    assert_eq!(r.ok(&cmds::xfer_receive(&chal_rx)), 10u32.to_be_bytes());
}

#[test]
fn commands_without_parameters_need_p1_p2_00() {
    let k = keys();
    let bad = [(1u8, 0u8), (0, 1), (0x80, 0x80), (0xFF, 0xFF), (0x00, 0xBE)];
    // PURSE: everything but READ FIELD.
    let mut b = selected(&k, &plan(104), Protocol::T0, &AID_PURSE);
    let before = b.snap();
    for c in [
        cmds::purse_read_all(),
        cmds::purse_write_value(1, DATE),
        cmds::purse_write_signature(&[1; 64]),
        cmds::purse_write_certificate(&[2; 10]),
        // P1-P2 are checked before the length.
        Command::new(CLA_PROP, PURSE_WRITE_VALUE, 0, 0).data(vec![1; 3]),
    ] {
        for (p1, p2) in bad {
            b.sw(&with_p1p2(&c, p1, p2), 0x6A86);
        }
    }
    assert_eq!(b.snap(), before);
    // An INS the applet does not know takes no parameters either: 6A86 comes before 6D00.
    for c in [
        Command::new(CLA_PROP, 0x50, 0, 0),
        Command::new(CLA_PROP, GET_RESPONSE, 0, 0).le(4),
        cmds::xfer_info(),
        cmds::xfer_read_state(0x00),
    ] {
        b.sw(&c, 0x6D00);
        b.sw(&with_p1p2(&c, 0, 1), 0x6A86);
    }
    b.sw(&cmds::xfer_certificate(), 0x6A86);
    b.sw(&cmds::xfer_read_state(0x01), 0x6A86);
    // CLA comes before P1-P2.
    b.sw(&with_p1p2(&with_cla(&cmds::purse_read_all(), CLA_ISO), 1, 1), 0x6D00);

    // CPAY: SIGN and DEBIT; the refused ones neither replace nor consume the nonce.
    let (mut c, id) = cpay_card(&k, 105, Protocol::T1);
    verify_payment(&mut c, &k);
    let nonce = sign(&mut c, &k, &id, &[1; 16]);
    let before = c.snap();
    let s = debit_sig(&k, &id, 7, DATE, &nonce);
    for (p1, p2) in bad {
        c.sw(&with_p1p2(&cmds::cpay_sign(&[1; 16]), p1, p2), 0x6A86);
        c.sw(&with_p1p2(&cmds::cpay_debit(7, DATE, &s), p1, p2), 0x6A86);
    }
    // READ FIELD is CPAY's, READ TRANSFER STATE is not.
    c.sw(&cmds::xfer_read_state(0x01), 0x6A86);
    c.sw(&with_p1p2(&cmds::xfer_read_state(0x01), 0, 0), 0x6D00);
    assert_eq!(c.snap(), before);
    assert_eq!(c.ok(&cmds::cpay_debit(7, DATE, &s)), 993u32.to_be_bytes());

    // XFER: the value-transfer commands and CANCEL; sessions and pending credit survive.
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (sb, rb) = (s.snap(), r.snap());
    s.sw(&cmds::read_field(FIELD_ID, 8), 0x6A86);
    s.sw(&with_p1p2(&cmds::read_field(FIELD_ID, 8), 0, 0), 0x6D00);
    for (p1, p2) in bad {
        s.sw(&with_p1p2(&cmds::xfer_send_permission(10, DATE), p1, p2), 0x6A86);
        r.sw(&with_p1p2(&cmds::xfer_receive_permission(10, DATE, &[1; 16]), p1, p2), 0x6A86);
    }
    assert_eq!((s.snap(), r.snap()), (sb, rb));
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 10, DATE);
    let (sb, rb) = (s.snap(), r.snap());
    for (p1, p2) in bad {
        s.sw(&with_p1p2(&cmds::xfer_send(&chal_tx, &rnd_recv), p1, p2), 0x6A86);
        s.sw(&with_p1p2(&cmds::xfer_send_permission(10, DATE), p1, p2), 0x6A86);
        r.sw(&with_p1p2(&cmds::xfer_cancel_pending(&[0; 16]), p1, p2), 0x6A86);
        s.sw(&with_p1p2(&cmds::xfer_cancel_proof(&[0; 40]), p1, p2), 0x6A86);
    }
    assert_eq!((s.snap(), r.snap()), (sb, rb.clone()));
    let chal_rx = s.ok(&cmds::xfer_send(&chal_tx, &rnd_recv));
    for (p1, p2) in bad {
        r.sw(&with_p1p2(&cmds::xfer_receive(&chal_rx), p1, p2), 0x6A86);
    }
    assert_eq!(r.snap(), rb);
    assert_eq!(r.ok(&cmds::xfer_receive(&chal_rx)), 10u32.to_be_bytes());
    assert_eq!((balance(&mut s), balance(&mut r)), (490, 10));
}

#[test]
fn get_response_perso_lock_and_perso_status_need_p1_p2_00() {
    let k = keys();
    // GET RESPONSE: 6A86 and the data stays kept.
    let mut b = selected(&k, &plan(106), Protocol::T0, &AID_PURSE);
    let wv = cmds::purse_write_value(1, 1).to_bytes().unwrap();
    assert_eq!(b.raw(&wv), (vec![], 0x6104));
    for (p1, p2) in [(1u8, 0u8), (0, 1), (0xFF, 0xFF)] {
        assert_eq!(b.raw(&[0x00, 0xC0, p1, p2, 0x04]), (vec![], 0x6A86));
    }
    assert_eq!(b.raw(&[0x00, 0xC0, 0x00, 0x00, 0x04]), (999u32.to_be_bytes().to_vec(), OK));
    // PERSO STATUS and LOCK on a locked card: 6A86 before the lock check.
    for (p1, p2) in [(1u8, 0u8), (0, 1), (0xFF, 0xFF)] {
        b.sw(&Command::new(CLA_PROP, PERSO_STATUS, p1, p2).le(1), 0x6A86);
        b.sw(&Command::new(CLA_PROP, PERSO_LOCK, p1, p2), 0x6A86);
    }
    b.sw(&cmds::perso_lock(), 0x6986);
    // On a blank card: LOCK with P1-P2 does not lock.
    let mut b = blank_bench(Protocol::T1);
    for (p1, p2) in [(1u8, 0u8), (0, 1), (0xFF, 0xFF)] {
        b.sw(&Command::new(CLA_PROP, PERSO_LOCK, p1, p2), 0x6A86);
        b.sw(&Command::new(CLA_PROP, PERSO_STATUS, p1, p2).le(1), 0x6A86);
    }
    assert_eq!(perso_status(&mut b), vec![0]);
    assert!(!b.image().locked);
    b.ok(&cmds::perso_lock());
    assert_eq!(perso_status(&mut b), vec![1]);
}

#[test]
fn link_get_response_is_always_cla_00() {
    let k = keys();
    for proto in [Protocol::T0, Protocol::T1] {
        let p = plan(107);
        let mut b = selected(&k, &p, proto, &AID_PURSE);
        b.ok(&cmds::purse_write_signature(&[0x11; 64]));
        b.ok(&cmds::purse_write_certificate(&[0x22; 255]));
        b.exchanges();
        b.ok(&Command::new(CLA_PROP, PURSE_READ_ALL, 0, 0));
        b.ok(&Command::new(CLA_PROP, PURSE_READ_ALL, 0, 0).le(16));
        b.ok(&cmds::purse_write_value(1, DATE));
        b.ok(&Command::new(CLA_PROP, PERSO_STATUS, 0, 0));
        b.select(&AID_CPAY);
        verify_payment(&mut b, &k);
        b.ok(&cmds::cpay_sign(&[1; 16]));
        b.select(&AID_XFER);
        b.ok(&Command::new(CLA_PROP, XFER_GET_INFO, 1, 0));
        let rows = b.exchanges();
        let gr: Vec<&Exchange> = rows.iter().filter(|r| r.command[1] == 0xC0).collect();
        assert!(gr.len() >= 6, "{proto:?}: {} GET RESPONSE rows", gr.len());
        for r in &gr {
            assert_eq!(r.command[..4], [0x00, 0xC0, 0x00, 0x00], "{}", hexs(&r.command));
            assert_eq!(r.command.len(), 5, "GET RESPONSE is case 2");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cards personalized without some objects: 6985 / 6F00

/// A blank card given exactly these PERSO PUT objects, then locked.
fn custom_card(objects: &[(u8, Vec<u8>)]) -> Bench {
    let mut b = blank_bench(Protocol::T1);
    b.ok(&cmds::perso_put(PO_CARD_ID, &card_id(0xEE)));
    for (obj, data) in objects {
        b.ok(&cmds::perso_put(*obj, data));
    }
    b.ok(&cmds::perso_lock());
    b
}

fn idk(id: u32, key: &[u8; 16]) -> Vec<u8> {
    [&id.to_be_bytes()[..], key].concat()
}

/// Change the NVM image behind the card's back (a corrupted image, or one written by a
/// tool that skipped the checks): PERSO PUT no longer lets an invalid key in.
fn poke(b: &mut Bench, f: impl FnOnce(&mut CardImage)) {
    b.card_mut()
        .nvm_mut()
        .update(|img| {
            f(img);
            Ok(())
        })
        .expect("NVM update");
}

/// 65 bytes that look like an uncompressed point but are not on the curve.
fn off_curve_point() -> Vec<u8> {
    let mut p = vec![0x04];
    p.extend_from_slice(&[0x01; 64]);
    p
}

#[test]
fn cpay_without_keys_is_6985_and_bad_center_key_is_6f00() {
    let k = keys();
    let id = card_id(0xEE);
    // No center key at all.
    let mut b = custom_card(&[]);
    b.select(&AID_CPAY);
    b.sw(&cmds::cpay_verify_reader(k.payment.cert.encode()), 0x6985);
    b.sw(&cmds::read_field(FIELD_CERTIFICATE, 256), 0x6A88);
    // A center key that is not a point is refused at PUT and not stored...
    let bad_point = off_curve_point();
    let mut b = blank_bench(Protocol::T1);
    b.sw(&cmds::perso_put(PO_CPAY_CENTER_KEY, &bad_point), 0x6A80);
    assert_eq!(b.image().cpay.center_key, None);
    // ...so only an image changed behind the card's back has one: 6F00.
    let mut b = custom_card(&[]);
    poke(&mut b, |img| img.cpay.center_key = Some(bad_point.as_slice().try_into().unwrap()));
    b.select(&AID_CPAY);
    b.sw(&cmds::cpay_verify_reader(k.payment.cert.encode()), 0x6F00);
    b.sw(&cmds::cpay_sign(&[1; 16]), 0x6986);
    // Center key but no private key: SIGN → 6985.
    let center = sig::encode_point(&k.center_public()).to_vec();
    let mut b = custom_card(&[(PO_CPAY_CENTER_KEY, center.clone())]);
    b.select(&AID_CPAY);
    verify_payment(&mut b, &k);
    b.sw(&cmds::cpay_sign(&[1; 16]), 0x6985);
    // An unusable private key is refused at PUT (6A80, nothing stored); one in the image
    // anyway makes SIGN answer 6985.
    for bad in [[0u8; 32], [0xFF; 32]] {
        let mut b = blank_bench(Protocol::T1);
        b.ok(&cmds::perso_put(PO_CARD_ID, &id));
        b.ok(&cmds::perso_put(PO_CPAY_CENTER_KEY, &center));
        b.sw(&cmds::perso_put(PO_CPAY_KEY, &bad), 0x6A80);
        assert!(b.image().cpay.key.is_none());
        b.ok(&cmds::perso_lock());
        b.select(&AID_CPAY);
        verify_payment(&mut b, &k);
        b.sw(&cmds::cpay_sign(&[1; 16]), 0x6985);
        poke(&mut b, |img| img.cpay.key = Some(Scalar32::new(bad)));
        b.sw(&cmds::cpay_sign(&[1; 16]), 0x6985);
    }
    // With a good key it signs (the key is the one of card_id(0xEE)).
    let mut b =
        custom_card(&[(PO_CPAY_CENTER_KEY, center), (PO_CPAY_KEY, k.card_key(&id, "cpay").to_bytes().to_vec())]);
    b.select(&AID_CPAY);
    verify_payment(&mut b, &k);
    sign(&mut b, &k, &id, &[1; 16]);
}

#[test]
fn xfer_without_keys_is_6985_and_bad_ca_key_is_6f00() {
    let k = keys();
    let peer = plan(2);
    let peer_cert = k.card_cert(&peer.card_id, Role::XferCard, peer.cert_expiry).encode().to_vec();
    let own_key = k.card_key(&card_id(0xEE), "xfer").to_bytes().to_vec();
    let ca = sig::encode_point(&k.ca_public()).to_vec();
    // Nothing but an ID.
    let mut b = custom_card(&[
        (PO_XFER_VALIDITY, DATE.to_be_bytes().to_vec()),
        (PO_XFER_BALANCE, 100u32.to_be_bytes().to_vec()),
    ]);
    b.select(&AID_XFER);
    let before = b.snap();
    assert_eq!(xfer_info(&mut b)[32..], [0x00, 0x00], "no keys, no slots");
    b.sw(&cmds::xfer_update_permission(MODE_COMMON, &[]), 0x6985);
    b.sw(&cmds::xfer_update_permission(MODE_MULTI, &[]), 0x6985);
    b.sw(&cmds::xfer_update_permission(MODE_PUBLIC, &peer_cert), 0x6985);
    b.sw(&cmds::xfer_update_permission(MODE_PUBLIC_UK, &peer_cert), 0x6985);
    for mode in [MODE_COMMON, MODE_PUBLIC, MODE_MULTI, MODE_PUBLIC_UK] {
        let c = if is_public(mode) { peer_cert.clone() } else { vec![] };
        b.sw(&cmds::xfer_get_transfer_key(mode, &[1; 16], &c), 0x6985);
    }
    b.sw(&cmds::xfer_send_permission(10, DATE), 0x6985);
    b.sw(&cmds::xfer_receive_permission(10, DATE, &[1; 16]), 0x6985);
    b.sw(&cmds::xfer_receive(&[1; 16]), 0x6985);
    b.sw(&cmds::xfer_send(&[1; 16], &[1; 16]), 0x6986);
    b.sw(&cmds::xfer_certificate(), 0x6A88);
    assert_eq!(b.snap(), before);

    // Card key but no CA key.
    let mut b = custom_card(&[(PO_XFER_CARD_KEY, own_key.clone())]);
    b.select(&AID_XFER);
    b.sw(&cmds::xfer_update_permission(MODE_PUBLIC, &peer_cert), 0x6985);
    // An invalid CA key is refused at PUT (6A80, nothing stored); one in the image anyway
    // (changed behind the card's back) answers 6F00.
    let bad_point = off_curve_point();
    let mut b = blank_bench(Protocol::T1);
    b.sw(&cmds::perso_put(PO_XFER_CA_KEY, &bad_point), 0x6A80);
    assert_eq!(b.image().xfer.ca_key, None);
    let mut b = custom_card(&[(PO_XFER_CARD_KEY, own_key.clone())]);
    poke(&mut b, |img| img.xfer.ca_key = Some(bad_point.as_slice().try_into().unwrap()));
    b.select(&AID_XFER);
    b.sw(&cmds::xfer_update_permission(MODE_PUBLIC, &peer_cert), 0x6F00);
    b.sw(&cmds::xfer_update_permission(MODE_PUBLIC_UK, &peer_cert), 0x6F00);
    // (No transfer key on this card: GET TRANSFER KEY stops there, before the CA key.)
    b.sw(&cmds::xfer_get_transfer_key(MODE_PUBLIC, &[1; 16], &peer_cert), 0x6985);
    // Likewise an unusable card key: refused at PUT, and 6985 if it is in the image.
    for bad in [[0u8; 32], [0xFF; 32]] {
        let mut b = blank_bench(Protocol::T1);
        b.sw(&cmds::perso_put(PO_XFER_CARD_KEY, &bad), 0x6A80);
        assert!(b.image().xfer.card_key.is_none());
        b.ok(&cmds::perso_put(PO_XFER_CA_KEY, &ca));
        b.ok(&cmds::perso_lock());
        b.select(&AID_XFER);
        b.sw(&cmds::xfer_update_permission(MODE_PUBLIC, &peer_cert), 0x6985);
        poke(&mut b, |img| img.xfer.card_key = Some(Scalar32::new(bad)));
        b.sw(&cmds::xfer_update_permission(MODE_PUBLIC, &peer_cert), 0x6985);
        b.sw(&cmds::xfer_update_permission(MODE_PUBLIC_UK, &peer_cert), 0x6985);
    }

    // Transfer key, card key and CA key, but no update key: mode 02 exports, 04 does not.
    let mut b = custom_card(&[
        (PO_XFER_TRANSFER_KEY, idk(3, &tk(&k, 3))),
        (PO_XFER_CARD_KEY, own_key.clone()),
        (PO_XFER_CA_KEY, ca.clone()),
    ]);
    b.select(&AID_XFER);
    assert_eq!(b.ok(&cmds::xfer_get_transfer_key(MODE_PUBLIC, &[1; 16], &peer_cert)).len(), 181);
    b.sw(&cmds::xfer_get_transfer_key(MODE_PUBLIC_UK, &[1; 16], &peer_cert), 0x6985);
    b.sw(&cmds::xfer_get_transfer_key(MODE_COMMON, &[1; 16], &[]), 0x6985);
    b.sw(&cmds::xfer_get_transfer_key(MODE_MULTI, &[1; 16], &[]), 0x6985);
    // Transfer and update key, no card key: public export refused.
    let mut b = custom_card(&[
        (PO_XFER_TRANSFER_KEY, idk(3, &tk(&k, 3))),
        (PO_XFER_UPDATE_KEY, idk(1, &uk(&k, 1))),
        (PO_XFER_CA_KEY, ca.clone()),
    ]);
    b.select(&AID_XFER);
    b.sw(&cmds::xfer_get_transfer_key(MODE_PUBLIC, &[1; 16], &peer_cert), 0x6985);
    b.sw(&cmds::xfer_update_permission(MODE_PUBLIC, &peer_cert), 0x6985);
    assert_eq!(b.ok(&cmds::xfer_get_transfer_key(MODE_COMMON, &[1; 16], &[])).len(), 68);
}

// ---------------------------------------------------------------------------------------------
// Key-transport blobs made by hand (the test knows the keys): what the card checks inside

fn common_blob(key: &[u8; 16], mode: u8, pt: &[u8]) -> Vec<u8> {
    use cardbench::crypto::ae;
    ae::seal(&ae::AeKeys::from_key(key), &[0x5A; 16], &xfer::transport_aad(mode), pt)
}

fn public_blob(k: &Keyset, to: &[u8; 8], from: &[u8; 8], mode: u8, random: &[u8], pt: &[u8]) -> Vec<u8> {
    use cardbench::crypto::ecies;
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let to_pub = p256::PublicKey::from(k.card_key(to, "xfer").verifying_key());
    let ct = ecies::encrypt(&mut rng, &to_pub, pt);
    let s = sig::sign(&k.card_key(from, "xfer"), &xfer::transport_signed(mode, &ct, random));
    [ct, s.to_vec()].concat()
}

#[test]
fn xfer_crafted_common_blobs() {
    let k = keys();
    let pa = plan(81);
    let mut a = selected(&k, &pa, Protocol::T0, &AID_XFER);
    let before = a.snap();
    let uk1 = uk(&k, 1);
    let perm = |a: &mut Bench, mode: u8| a16(&a.ok(&cmds::xfer_update_permission(mode, &[])));
    type Blob = Box<dyn Fn(&[u8; 16]) -> Vec<u8>>;
    let cases: Vec<(&str, u8, Blob, u16)> = vec![
        (
            "plaintext 35 bytes",
            MODE_COMMON,
            Box::new(|r: &[u8; 16]| [&r[..], &idk(5, &[7; 16])[..19]].concat()),
            0x6A80,
        ),
        (
            "plaintext 37 bytes",
            MODE_COMMON,
            Box::new(|r: &[u8; 16]| [&r[..], &idk(5, &[7; 16]), &[0]].concat()),
            0x6A80,
        ),
        (
            "mode 03 plaintext of mode 01",
            MODE_MULTI,
            Box::new(|r: &[u8; 16]| [&r[..], &idk(5, &[7; 16])].concat()),
            0x6A80,
        ),
        (
            "wrong random",
            MODE_COMMON,
            Box::new(|r: &[u8; 16]| {
                let mut x = *r;
                x[0] ^= 1;
                [&x[..], &idk(5, &[7; 16])].concat()
            }),
            0x6982,
        ),
        ("ID 0", MODE_COMMON, Box::new(|r: &[u8; 16]| [&r[..], &idk(0, &[7; 16])].concat()), 0x6984),
        ("ID 9 > limit 8", MODE_COMMON, Box::new(|r: &[u8; 16]| [&r[..], &idk(9, &[7; 16])].concat()), 0x6984),
        ("ID u32::MAX", MODE_COMMON, Box::new(|r: &[u8; 16]| [&r[..], &idk(u32::MAX, &[7; 16])].concat()), 0x6984),
        ("empty", MODE_COMMON, Box::new(|_: &[u8; 16]| vec![]), 0x6A80),
    ];
    for (what, mode, pt, want) in &cases {
        let r = perm(&mut a, *mode);
        let blob = common_blob(&uk1, *mode, &pt(&r));
        assert_eq!(a.exec(&cmds::xfer_update_transfer_key(*mode, &blob)).sw, *want, "{what}");
        assert_eq!(a.snap(), before, "{what}");
    }
    // Sealed under another update key, or shorter than the AE overhead.
    let r = perm(&mut a, MODE_COMMON);
    let blob = common_blob(&uk(&k, 2), MODE_COMMON, &[&r[..], &idk(5, &[7; 16])].concat());
    a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob), 0x6982);
    perm(&mut a, MODE_COMMON);
    a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &[0; 31]), 0x6982);
    assert_eq!(a.snap(), before);
    // A well-formed blob: the card stores exactly the key it carries.
    let r = perm(&mut a, MODE_COMMON);
    let blob = common_blob(&uk1, MODE_COMMON, &[&r[..], &idk(8, &[0x77; 16])].concat());
    a.ok(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob));
    let img = a.image();
    assert_eq!((img.xfer.tkid, *img.xfer.tk.as_ref().unwrap().expose()), (8, [0x77; 16]));
}

#[test]
fn xfer_crafted_public_blobs() {
    let k = keys();
    let pa = plan(82);
    let pb = plan(83);
    let (ida, idb) = (pa.card_id, pb.card_id);
    let mut a = selected(&k, &pa, Protocol::T1, &AID_XFER);
    let cert_b = k.card_cert(&idb, Role::XferCard, pb.cert_expiry).encode().to_vec();
    let before = a.snap();
    let perm = |a: &mut Bench, mode: u8| a16(&a.ok(&cmds::xfer_update_permission(mode, &cert_b)));
    let tk_pt = |id: u32, key: u8| idk(id, &[key; 16]);
    let uk_pt = |tid: u32, uid: u32| [tk_pt(tid, 0x61), idk(uid, &[0x62; 16])].concat();
    let cases: Vec<(&str, u8, Vec<u8>, u16)> = vec![
        ("mode 02, 40-byte plaintext", MODE_PUBLIC, uk_pt(5, 3), 0x6A80),
        ("mode 02, 19-byte plaintext", MODE_PUBLIC, tk_pt(5, 1)[..19].to_vec(), 0x6A80),
        ("mode 04, 20-byte plaintext", MODE_PUBLIC_UK, tk_pt(5, 1), 0x6A80),
        ("mode 02, ID equal to current", MODE_PUBLIC, tk_pt(1, 1), 0x6984),
        ("mode 02, ID above limit", MODE_PUBLIC, tk_pt(9, 1), 0x6984),
        ("mode 04, UK ID above limit", MODE_PUBLIC_UK, uk_pt(5, 5), 0x6984),
        ("mode 04, UK ID equal", MODE_PUBLIC_UK, uk_pt(5, 1), 0x6984),
        ("mode 04, TK ID out of range", MODE_PUBLIC_UK, uk_pt(9, 3), 0x6984),
    ];
    for (what, mode, pt, want) in &cases {
        let r = perm(&mut a, *mode);
        let blob = public_blob(&k, &ida, &idb, *mode, &r, pt);
        assert_eq!(a.exec(&cmds::xfer_update_transfer_key(*mode, &blob)).sw, *want, "{what}");
        assert_eq!(a.snap(), before, "{what}");
    }
    // Signed by A itself (not the peer named in the permission), or over the other mode.
    let r = perm(&mut a, MODE_PUBLIC);
    let blob = public_blob(&k, &ida, &ida, MODE_PUBLIC, &r, &tk_pt(5, 1));
    a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &blob), 0x6982);
    let r = perm(&mut a, MODE_PUBLIC);
    let blob = public_blob(&k, &ida, &idb, MODE_PUBLIC_UK, &r, &tk_pt(5, 1));
    a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &blob), 0x6982);
    // Too short for ciphertext + signature.
    perm(&mut a, MODE_PUBLIC);
    a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &[0; 160]), 0x6700);
    assert_eq!(a.snap(), before);
    // Well-formed mode 04: both keys land exactly as sent.
    let r = perm(&mut a, MODE_PUBLIC_UK);
    let blob = public_blob(&k, &ida, &idb, MODE_PUBLIC_UK, &r, &uk_pt(8, 4));
    a.ok(&cmds::xfer_update_transfer_key(MODE_PUBLIC_UK, &blob));
    let img = a.image();
    assert_eq!((img.xfer.tkid, *img.xfer.tk.as_ref().unwrap().expose()), (8, [0x61; 16]));
    assert_eq!((img.xfer.ukid, *img.xfer.uk.as_ref().unwrap().expose()), (4, [0x62; 16]));
}

#[test]
fn t0_key_update_permission_resent_after_6c_hands_out_the_second_random() {
    let k = keys();
    let mut pb = plan(85);
    pb.transfer_key = 2;
    let (mut a, mut b) = xfer_pair(&k, &plan(84), &pb);
    a.exchanges();
    // Le 00 on T=0 for a 16-byte answer: 6C10, the link re-sends with Le 10.
    let r = a.ok(&Command::new(CLA_PROP, XFER_UPDATE_PERMISSION, MODE_COMMON, 0).le(256));
    let rows = a.exchanges();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].sw, rows[1].sw), (0x6C10, OK));
    assert_eq!(rows[1].command, vec![0x80, 0x20, 0x01, 0x00, 0x10]);
    assert_eq!(rows[1].response, r);
    // The random that reached the terminal is the live one.
    let blob = b.ok(&cmds::xfer_get_transfer_key(MODE_COMMON, &r, &[]));
    a.ok(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob));
    assert_eq!(a.image().xfer.tkid, 2);
}

#[test]
fn warm_reset_and_card_swap() {
    let k = keys();
    let p1 = plan(86);
    let p2 = plan(87);
    let mut b = selected(&k, &p1, Protocol::T0, &AID_PURSE);
    let atr = b.head.warm_reset().unwrap();
    assert_eq!(atr[..3], [0x3B, 0x89, 0x00]);
    b.sw(&cmds::read_field(FIELD_ID, 8), 0x6986);
    // Swap in another card: the old one comes back unpowered, the new one is unpowered too.
    let other = personalize_virtual(&p2, Protocol::T1, &k).unwrap();
    let old = b.head.insert(other).expect("previous card returned");
    assert_eq!(old.card_id(), p1.card_id);
    assert_eq!(b.try_exec(&cmds::select(&AID_PURSE)), Err(HeadError::Unpowered));
    assert_eq!(b.head.power_on().unwrap()[2], 0x01);
    b.select(&AID_PURSE);
    assert_eq!(b.ok(&cmds::read_field(FIELD_ID, 8)), p2.card_id);
}

#[test]
fn head_insert_over_a_card_returns_the_old_card_unpowered() {
    let k = keys();
    let (mut s, mut r) = transfer_pair(&k, 500, 0);
    let (_, chal_tx, rnd_recv) = permissions(&mut s, &mut r, 100, DATE);
    // Swap another card into the sender's head: the sender leaves the reader.
    let other = personalize_virtual(&plan(88), Protocol::T0, &k).unwrap();
    let mut old = s.head.insert(other).expect("previous card returned");
    assert!(!old.is_powered(), "a card taken out of the reader has no power");
    // Consequence: its RAM send session must be gone, not usable outside any reader.
    let send = cmds::xfer_send(&chal_tx, &rnd_recv).to_bytes().unwrap();
    assert_eq!(old.process(&send), None, "an unpowered card does not answer");
    assert_eq!(old.image().xfer.balance, 500);
}
