//! Every seeded card defect is real and terminal-observable.
//!
//! For each `Defect` one test personalizes a correct card and a defective card from the same
//! plan (same card ID, so the same random stream), drives both through `VirtualHead` + `Link`
//! with the same commands, and asserts the difference a terminal sees: status words,
//! response bytes, or state read back with commands. The test of defect `foo-bar` is the
//! function `foo_bar` (checked by `every_defect_has_a_test_and_a_doc_row`).

use cardbench::apdu::{Command, Response};
use cardbench::card::defects::{Defect, Defects};
use cardbench::card::ins::*;
use cardbench::card::{cpay, xfer, Protocol, VirtualCard};
use cardbench::cmds;
use cardbench::crypto::cert::{CertBody, Certificate, Role};
use cardbench::crypto::{ae, ecies, sig};
use cardbench::event::Recorder;
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::Head;
use cardbench::issuance::CardPlan;
use cardbench::keys::{Keyset, CA_REF, CENTER_REF};
use cardbench::lab::{personalize_virtual, Lab};
use cardbench::link::Link;
use cardbench::sw;
use p256::ecdsa::SigningKey;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

// ---------------------------------------------------------------------------------------------
// Helpers

const OK: u16 = sw::OK;
/// A transaction date well inside the default validity (2030-12-31).
const DATE: u32 = 1_800_000_000;

fn keys() -> Keyset {
    Keyset::from_seed("defect-tests", vec![])
}

fn card_id(n: u8) -> [u8; 8] {
    [0xDE, 0xFE, 0xC7, 0x00, 0x00, 0x00, 0x01, n]
}

/// Profile defaults plus some value on CPAY and XFER.
fn plan(n: u8) -> CardPlan {
    let mut p = CardPlan::new(card_id(n));
    p.cpay_amount = 1000;
    p.balance = 500;
    p
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

fn a16(b: &[u8]) -> [u8; 16] {
    b.try_into().unwrap_or_else(|_| panic!("expected 16 bytes, got {}", b.len()))
}

/// One head with one card, powered; every command goes through `Link`.
struct Bench {
    head: VirtualHead,
    rec: Recorder,
}

impl Bench {
    fn new(k: &Keyset, plan: &CardPlan, defects: Defects) -> Bench {
        let mut card: VirtualCard = personalize_virtual(plan, Protocol::T0, k).expect("personalization");
        card.set_defects(defects);
        assert_eq!(*card.defects(), defects);
        let mut head = VirtualHead::new("A");
        assert!(head.insert(card).is_none());
        head.power_on().expect("power on");
        Bench { head, rec: Recorder::disabled() }
    }

    fn exec(&mut self, cmd: &Command) -> Response {
        Link::new(&mut self.head, &self.rec)
            .exec("defect-test", cmd)
            .unwrap_or_else(|e| panic!("{} ({cmd:?}): {e}", cmds::name(cmd.cla, cmd.ins)))
    }

    fn sw(&mut self, cmd: &Command) -> u16 {
        self.exec(cmd).sw
    }

    /// Execute, assert 9000, return the data.
    fn ok(&mut self, cmd: &Command) -> Vec<u8> {
        let r = self.exec(cmd);
        assert_eq!(r.sw, OK, "{} {:02X} {:02X}: SW {:04X}", cmds::name(cmd.cla, cmd.ins), cmd.p1, cmd.p2, r.sw);
        r.data
    }

    fn select(&mut self, aid: &[u8]) {
        self.ok(&cmds::select(aid));
    }

    fn power_cycle(&mut self) {
        self.head.power_off().unwrap();
        self.head.power_on().unwrap();
    }

    fn counter(&mut self) -> u32 {
        be32(&self.ok(&cmds::read_field(FIELD_COUNTER, 4)), 0)
    }

    /// XFER card information (GET CARD INFO P1 = 00).
    fn info(&mut self) -> Info {
        let d = self.ok(&cmds::xfer_info());
        Info { balance: be32(&d, 12), ukid: be32(&d, 16), tkid: be32(&d, 20), pending: d[32] & 0x04 != 0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Info {
    balance: u32,
    ukid: u32,
    tkid: u32,
    pending: bool,
}

/// A correct card and a card with `defect`, same plan, `aid` selected on both.
fn pair(k: &Keyset, plan: &CardPlan, aid: &[u8], defect: Defect) -> (Bench, Bench) {
    let mut good = Bench::new(k, plan, Defects::NONE);
    let mut bad = Bench::new(k, plan, defect.into());
    good.select(aid);
    bad.select(aid);
    (good, bad)
}

/// Run the same terminal scenario on a correct and on a defective card under test, each
/// time with a fresh correct peer card (same plans, so the same randoms both times).
fn with_peer<T>(
    k: &Keyset,
    dut: &CardPlan,
    peer: &CardPlan,
    defect: Defect,
    scenario: impl Fn(&mut Bench, &mut Bench) -> T,
) -> (T, T) {
    let run = |d: Defects| {
        let mut a = Bench::new(k, dut, d);
        let mut b = Bench::new(k, peer, Defects::NONE);
        a.select(&AID_XFER);
        b.select(&AID_XFER);
        scenario(&mut a, &mut b)
    };
    (run(Defects::NONE), run(defect.into()))
}

fn foreign_key(label: &str) -> SigningKey {
    sig::key_from_seed(b"not the keyset", label)
}

/// A well-formed certificate for `holder`, signed by whatever `issuer` is.
fn cert_by(subject: [u8; 8], role: Role, holder: &SigningKey, issuer: &SigningKey) -> Vec<u8> {
    Certificate::issue(
        CertBody {
            issuer: if role == Role::XferCard { CA_REF } else { CENTER_REF },
            subject,
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

/// The payment machine's DEBIT authorization over `nonce`.
fn debit(k: &Keyset, id: &[u8; 8], price: u32, nonce: &[u8]) -> Command {
    let s = sig::sign(&k.payment.key, &cpay::debit_message(id, price, DATE, nonce));
    cmds::cpay_debit(price, DATE, &s)
}

/// CPAY: verify the real payment machine, SIGN PAYMENT, return the card nonce.
fn cpay_nonce(b: &mut Bench, k: &Keyset) -> Vec<u8> {
    b.ok(&cmds::cpay_verify_reader(k.payment.cert.encode()));
    b.ok(&cmds::cpay_sign(&[7; 16]))[16..32].to_vec()
}

/// Key update of `a` from `b` in `mode`; returns A's SW to UPDATE TRANSFER KEY.
fn key_update(a: &mut Bench, b: &mut Bench, mode: u8) -> u16 {
    let public = mode == MODE_PUBLIC || mode == MODE_PUBLIC_UK;
    let (ca, cb) = if public {
        (a.ok(&cmds::xfer_certificate()), b.ok(&cmds::xfer_certificate()))
    } else {
        (Vec::new(), Vec::new())
    };
    let random = a.ok(&cmds::xfer_update_permission(mode, &cb));
    let blob = b.ok(&cmds::xfer_get_transfer_key(mode, &random, &ca));
    a.sw(&cmds::xfer_update_transfer_key(mode, &blob))
}

/// SW of each step of a value transfer from `s` to `r`, stopping at the first refusal; the
/// receiver's answer to VALUE RECEIVE last (its data: the new balance).
fn transfer(s: &mut Bench, r: &mut Bench, paid: u32, date: u32) -> Vec<u16> {
    let mut sws = Vec::new();
    let p = s.exec(&cmds::xfer_send_permission(paid, date));
    sws.push(p.sw);
    if p.sw != OK {
        return sws;
    }
    let q = r.exec(&cmds::xfer_receive_permission(paid, date, &p.data));
    sws.push(q.sw);
    if q.sw != OK {
        return sws;
    }
    let t = s.exec(&cmds::xfer_send(&q.data[..16], &q.data[16..]));
    sws.push(t.sw);
    if t.sw != OK {
        return sws;
    }
    sws.push(r.sw(&cmds::xfer_receive(&t.data)));
    sws
}

// ---------------------------------------------------------------------------------------------
// The defect list itself

#[test]
fn all_names_round_trip_and_are_unique() {
    let mut names = std::collections::BTreeSet::new();
    for d in Defect::ALL {
        assert!(names.insert(d.name()), "duplicate name {}", d.name());
        assert_eq!(d.name().parse::<Defect>(), Ok(*d));
        assert_eq!(d.to_string(), d.name());
        assert!(
            d.name().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{} is not kebab-case",
            d.name()
        );
        assert!(!d.description().is_empty());
        assert!(["GEN", "PURSE", "CPAY", "XFER"].contains(&d.applet()));
    }
    assert!(Defect::ALL.len() >= 14);
    let e = "no-such-defect".parse::<Defect>().unwrap_err().to_string();
    assert!(e.contains("unknown defect 'no-such-defect'"), "{e}");
    for d in Defect::ALL {
        assert!(e.contains(d.name()), "{e} lacks {}", d.name());
    }
}

#[test]
fn every_defect_has_a_test_and_a_doc_row() {
    let tests = include_str!("defects.rs");
    let doc = include_str!("../docs/defects.md");
    for d in Defect::ALL {
        let f = format!("fn {}()", d.name().replace('-', "_"));
        assert!(tests.contains(&f), "no test `{f}` for {}", d.name());
        let row = format!("| `{}` |", d.name());
        assert!(doc.contains(&row), "docs/defects.md has no row {row}");
    }
}

#[test]
fn default_card_has_no_defects() {
    let k = keys();
    let c = personalize_virtual(&plan(1), Protocol::T1, &k).unwrap();
    assert!(c.defects().is_empty());
    assert_eq!(c.defects().to_string(), "none");
}

/// A card with every defect at once never panics, whatever it is sent.
#[test]
fn all_defects_at_once_never_panic() {
    let k = keys();
    // All but select-inside-applet, which refuses every SELECT once an applet is selected
    // (with reset-keeps-selection, from power-on on): the walk would meet nothing but 6D00.
    let all: Defects = Defect::ALL.iter().copied().filter(|d| *d != Defect::SelectInsideApplet).collect();
    let mut rng = ChaCha20Rng::seed_from_u64(0xDEFEC7);
    let inss: &[u8] = &[
        0xB0, 0xB2, 0xD0, 0xD2, 0xD4, 0x2A, 0x88, 0xD6, 0x10, 0x20, 0x22, 0x24, 0x30, 0x32, 0x34, 0x36, 0x38, 0x3A,
        0xE0, 0xEE, 0xEC,
    ];
    for aid in [AID_PURSE, AID_CPAY, AID_XFER] {
        let mut p = plan(9);
        p.purse_counter = 2;
        p.slots = vec![3];
        let mut b = Bench::new(&k, &p, all);
        b.select(&aid);
        for i in 0..1500 {
            let ins = inss[(rng.next_u32() as usize) % inss.len()];
            let cla = if ins == 0x2A { CLA_ISO } else { CLA_PROP };
            let p1 = [0u8, 1, 2, 3, 4, 5, 0x10][(rng.next_u32() % 7) as usize];
            let p2 = if ins == 0x2A { 0xBE } else { 0 };
            let len = [0usize, 7, 8, 16, 20, 24, 32, 72, 186][(rng.next_u32() % 9) as usize];
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            if rng.next_u32() % 3 == 0 {
                data.iter_mut().for_each(|x| *x = 0xFF);
            }
            let mut cmd = Command::new(cla, ins, p1, p2).le(256);
            if !data.is_empty() {
                cmd = cmd.data(data);
            }
            let r = b.exec(&cmd);
            assert!(r.sw == OK || r.sw >> 12 == 6, "{i}: SW {:04X}", r.sw);
            if i % 200 == 199 {
                b.power_cycle();
                b.select(&aid);
            }
        }
    }
}

#[test]
fn profile_defects_are_applied_and_unknown_names_located() {
    let dir = tempfile::tempdir().unwrap();
    let profile = |defects: &str| {
        format!(
            "name = \"t\"\n[keyset]\nseed = \"defect-tests\"\n\n[[head]]\nname = \"A\"\n\
             driver = \"virtual\"\ncard = \"c\"\n\n[[card]]\nname = \"c\"\n\
             id = \"DEFEC70000000101\"\n{defects}\n"
        )
    };
    let path = dir.path().join("p.toml");

    std::fs::write(&path, profile("")).unwrap();
    let mut lab = Lab::from_profile(&cardbench::profile::load(&path).unwrap()).unwrap();
    let v = lab.heads[0].head.as_virtual().unwrap();
    assert!(v.card().unwrap().defects().is_empty());

    std::fs::write(&path, profile("defects = [\"counter-wraps\", \"receive-replay\"]")).unwrap();
    let mut lab = Lab::from_profile(&cardbench::profile::load(&path).unwrap()).unwrap();
    let v = lab.heads[0].head.as_virtual().unwrap();
    assert_eq!(*v.card().unwrap().defects(), Defects::from(Defect::CounterWraps).with(Defect::ReceiveReplay));

    std::fs::write(&path, profile("defects = [\"counter-wraps\", \"counter-went-missing\"]")).unwrap();
    let e =
        Lab::from_profile(&cardbench::profile::load(&path).unwrap()).err().expect("unknown defect refused").to_string();
    // Line 13 is the defects line; column 29 is the opening quote of the unknown name.
    let want = format!("{}:13:29: unknown defect 'counter-went-missing' (one of: ", path.display());
    assert!(e.starts_with(&want), "{e}\nwant prefix {want}");
    for d in Defect::ALL {
        assert!(e.contains(d.name()), "{e} lacks {}", d.name());
    }
}

// ---------------------------------------------------------------------------------------------
// PURSE

#[test]
fn counter_not_decremented() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::CounterNotDecremented);
    assert_eq!(good.ok(&cmds::purse_write_value(5, DATE)), 999u32.to_be_bytes());
    assert_eq!(bad.ok(&cmds::purse_write_value(5, DATE)), 1000u32.to_be_bytes());
    assert_eq!((good.counter(), bad.counter()), (999, 1000));
    // The value itself was written on both.
    let value = [5u32.to_be_bytes(), DATE.to_be_bytes()].concat();
    assert_eq!(good.ok(&cmds::read_field(FIELD_VALUE, 8)), value);
    assert_eq!(bad.ok(&cmds::read_field(FIELD_VALUE, 8)), value);
}

#[test]
fn counter_decremented_twice() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::CounterDecrementedTwice);
    assert_eq!(good.ok(&cmds::purse_write_value(5, DATE)), 999u32.to_be_bytes());
    assert_eq!(bad.ok(&cmds::purse_write_value(5, DATE)), 998u32.to_be_bytes());
    assert_eq!((good.counter(), bad.counter()), (999, 998));
}

#[test]
fn counter_wraps() {
    let k = keys();
    let mut p = plan(1);
    p.purse_counter = 1;
    let (mut good, mut bad) = pair(&k, &p, &AID_PURSE, Defect::CounterWraps);
    for b in [&mut good, &mut bad] {
        assert_eq!(b.ok(&cmds::purse_write_value(5, DATE)), [0, 0, 0, 0]);
    }
    assert_eq!(good.sw(&cmds::purse_write_value(6, DATE)), sw::NOT_ENOUGH_MEMORY);
    assert_eq!(good.counter(), 0);
    assert_eq!(bad.ok(&cmds::purse_write_value(6, DATE)), [0xFF; 4]);
    assert_eq!(bad.counter(), u32::MAX);
}

#[test]
fn counter_settable_after_lock() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::CounterSettableAfterLock);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::purse_write_value(5, DATE));
        assert_eq!(b.ok(&cmds::perso_status()), [1], "card is locked");
    }
    let reset = cmds::perso_put(PO_PURSE_COUNTER, &1000u32.to_be_bytes());
    assert_eq!(good.sw(&reset), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(bad.sw(&reset), OK);
    assert_eq!((good.counter(), bad.counter()), (999, 1000));
    // Only the counter object leaks: the other objects stay locked.
    assert_eq!(bad.sw(&cmds::perso_put(PO_XFER_BALANCE, &[0, 0, 0, 1])), sw::COMMAND_NOT_ALLOWED);
}

#[test]
fn counter_decremented_on_refused_write() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::CounterDecrementedOnRefusedWrite);
    let short = Command::new(CLA_PROP, PURSE_WRITE_VALUE, 0, 0).data(vec![0, 0, 0, 5, 0, 0, 0]).le(4);
    assert_eq!(good.sw(&short), sw::WRONG_LENGTH);
    assert_eq!(bad.sw(&short), sw::WRONG_LENGTH);
    assert_eq!((good.counter(), bad.counter()), (1000, 999));
    // The value area did not move on either card.
    assert_eq!(good.ok(&cmds::read_field(FIELD_VALUE, 8)), [0; 8]);
    assert_eq!(bad.ok(&cmds::read_field(FIELD_VALUE, 8)), [0; 8]);
}

/// A READ ALL on both cards, one command through the link.
fn read_all(b: &mut Bench) -> Vec<u8> {
    b.ok(&cmds::purse_read_all())
}

/// PURSE record signed and certified (64-byte signature, `cert_len`-byte certificate).
fn signed_record(b: &mut Bench, cert_len: usize) {
    b.ok(&cmds::purse_write_value(3000, DATE));
    b.ok(&cmds::purse_write_signature(&[0x5A; 64]));
    b.ok(&cmds::purse_write_certificate(&vec![0xC3; cert_len]));
}

#[test]
fn read_all_rejects_data() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::ReadAllRejectsData);
    let with_data = cmds::purse_read_all().data(vec![0, 0]);
    assert_eq!(good.ok(&with_data), read_all(&mut good));
    assert_eq!(bad.sw(&with_data), sw::WRONG_LENGTH);
    assert_eq!(read_all(&mut bad), read_all(&mut good), "without data both answer the record");
}

#[test]
fn read_all_date_before_amount() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::ReadAllDateBeforeAmount);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::purse_write_value(5, DATE));
    }
    assert_eq!((be32(&read_all(&mut good), 12), be32(&read_all(&mut good), 16)), (5, DATE));
    assert_eq!((be32(&read_all(&mut bad), 12), be32(&read_all(&mut bad), 16)), (DATE, 5));
    assert_eq!(bad.ok(&cmds::read_field(FIELD_VALUE, 8)), good.ok(&cmds::read_field(FIELD_VALUE, 8)));
}

#[test]
fn read_all_pads_empty_signature() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::ReadAllPadsEmptySignature);
    let (g, b) = (read_all(&mut good), read_all(&mut bad));
    assert_eq!((g.len(), g[20], g[21]), (22, 0, 0));
    assert_eq!((b.len(), b[20]), (22 + 64, 0x40));
    assert_eq!(&b[21..85], &[0; 64][..]);
    // Once signed, both agree.
    for c in [&mut good, &mut bad] {
        c.ok(&cmds::purse_write_signature(&[0x5A; 64]));
    }
    assert_eq!(read_all(&mut good), read_all(&mut bad));
}

#[test]
fn read_all_truncated_at_256() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::ReadAllTruncatedAt256);
    for b in [&mut good, &mut bad] {
        signed_record(b, 186);
    }
    let (g, b) = (read_all(&mut good), read_all(&mut bad));
    assert_eq!((g.len(), b.len()), (272, 256));
    assert_eq!(&g[..256], &b[..]);
}

#[test]
fn read_field_date_before_amount() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::ReadFieldDateBeforeAmount);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::purse_write_value(5, DATE));
    }
    let value = |a: u32, d: u32| [a.to_be_bytes(), d.to_be_bytes()].concat();
    assert_eq!(good.ok(&cmds::read_field(FIELD_VALUE, 8)), value(5, DATE));
    assert_eq!(bad.ok(&cmds::read_field(FIELD_VALUE, 8)), value(DATE, 5));
    assert_eq!(read_all(&mut bad), read_all(&mut good), "READ ALL is right");
}

#[test]
fn read_field_p2_ignored() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::ReadFieldP2Ignored);
    let p2 = Command::new(CLA_PROP, READ_FIELD, FIELD_ID, 0x01).le(8);
    assert_eq!(good.sw(&p2), sw::WRONG_P1P2);
    assert_eq!(bad.ok(&p2), card_id(1));
}

#[test]
fn read_field_empty_area_zeros() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::ReadFieldEmptyAreaZeros);
    assert_eq!(good.sw(&cmds::read_field(FIELD_SIGNATURE, 64)), sw::REF_DATA_NOT_FOUND);
    assert_eq!(bad.ok(&cmds::read_field(FIELD_SIGNATURE, 64)), [0; 64]);
    assert_eq!(bad.sw(&cmds::read_field(FIELD_CERTIFICATE, 256)), sw::REF_DATA_NOT_FOUND);
}

#[test]
fn write_value_exhaustion_checked_first() {
    let k = keys();
    let mut p = plan(1);
    p.purse_counter = 0;
    let (mut good, mut bad) = pair(&k, &p, &AID_PURSE, Defect::WriteValueExhaustionFirst);
    let short = Command::new(CLA_PROP, PURSE_WRITE_VALUE, 0, 0).data(vec![0, 0, 0, 5]).le(4);
    assert_eq!(good.sw(&short), sw::WRONG_LENGTH);
    assert_eq!(bad.sw(&short), sw::NOT_ENOUGH_MEMORY);
    for b in [&mut good, &mut bad] {
        assert_eq!(b.sw(&cmds::purse_write_value(5, DATE)), sw::NOT_ENOUGH_MEMORY);
    }
}

#[test]
fn write_value_answers_old_counter() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::WriteValueAnswersOldCounter);
    assert_eq!(good.ok(&cmds::purse_write_value(5, DATE)), 999u32.to_be_bytes());
    assert_eq!(bad.ok(&cmds::purse_write_value(5, DATE)), 1000u32.to_be_bytes());
    assert_eq!((good.counter(), bad.counter()), (999, 999), "the counter itself moved by one");
}

#[test]
fn write_value_clears_signature() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::WriteValueClearsSignature);
    for b in [&mut good, &mut bad] {
        signed_record(b, 186);
        b.ok(&cmds::purse_write_value(9000, DATE));
    }
    assert_eq!(good.ok(&cmds::read_field(FIELD_SIGNATURE, 64)), [0x5A; 64]);
    assert_eq!(bad.sw(&cmds::read_field(FIELD_SIGNATURE, 64)), sw::REF_DATA_NOT_FOUND);
}

#[test]
fn write_signature_any_length() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::WriteSignatureAnyLength);
    let short = cmds::purse_write_signature(&[0x5A; 63]);
    assert_eq!(good.sw(&short), sw::WRONG_LENGTH);
    assert_eq!(bad.sw(&short), OK);
    assert_eq!(good.sw(&cmds::read_field(FIELD_SIGNATURE, 64)), sw::REF_DATA_NOT_FOUND);
    assert_eq!(bad.ok(&cmds::read_field(FIELD_SIGNATURE, 256)), [0x5A; 63]);
    // More than 64 is still refused.
    assert_eq!(bad.sw(&cmds::purse_write_signature(&[0x5A; 65])), sw::WRONG_LENGTH);
}

#[test]
fn write_signature_into_certificate_area() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::WriteSignatureIntoCertificate);
    for b in [&mut good, &mut bad] {
        assert_eq!(b.sw(&cmds::purse_write_signature(&[0x5A; 64])), OK);
    }
    assert_eq!(good.ok(&cmds::read_field(FIELD_SIGNATURE, 64)), [0x5A; 64]);
    assert_eq!(good.sw(&cmds::read_field(FIELD_CERTIFICATE, 256)), sw::REF_DATA_NOT_FOUND);
    assert_eq!(bad.sw(&cmds::read_field(FIELD_SIGNATURE, 64)), sw::REF_DATA_NOT_FOUND);
    assert_eq!(bad.ok(&cmds::read_field(FIELD_CERTIFICATE, 256)), [0x5A; 64]);
}

#[test]
fn write_certificate_accepts_empty() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::WriteCertificateAcceptsEmpty);
    let empty = Command::new(CLA_PROP, PURSE_WRITE_CERTIFICATE, 0, 0);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::purse_write_certificate(&[0xC3; 186]));
    }
    assert_eq!(good.sw(&empty), sw::WRONG_LENGTH);
    assert_eq!(bad.sw(&empty), OK);
    assert_eq!(good.ok(&cmds::read_field(FIELD_CERTIFICATE, 256)), [0xC3; 186]);
    assert_eq!(bad.sw(&cmds::read_field(FIELD_CERTIFICATE, 256)), sw::REF_DATA_NOT_FOUND);
}

#[test]
fn write_certificate_parsed() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_PURSE, Defect::WriteCertificateParsed);
    let one = cmds::purse_write_certificate(&[0x5A]);
    assert_eq!(good.sw(&one), OK);
    assert_eq!(bad.sw(&one), sw::WRONG_DATA);
    assert_eq!(good.ok(&cmds::read_field(FIELD_CERTIFICATE, 256)), [0x5A]);
    // A real certificate is stored by both.
    assert_eq!(bad.sw(&cmds::purse_write_certificate(k.payment.cert.encode())), OK);
}

// ---------------------------------------------------------------------------------------------
// CPAY

#[test]
fn cpay_reader_signature_unchecked() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpayReaderSignatureUnchecked);
    let thief = foreign_key("thief");
    let forged = cert_by(*b"THIEF001", Role::PaymentMachine, &thief, &thief);
    assert_eq!(good.sw(&cmds::cpay_verify_reader(&forged)), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(bad.sw(&cmds::cpay_verify_reader(&forged)), OK);
    assert_eq!(good.sw(&cmds::cpay_sign(&[1; 16])), sw::COMMAND_NOT_ALLOWED);
    // The forged reader takes value from the defective card.
    let nonce = bad.ok(&cmds::cpay_sign(&[1; 16]))[16..32].to_vec();
    let s = sig::sign(&thief, &cpay::debit_message(&p.card_id, 999, DATE, &nonce));
    assert_eq!(bad.ok(&cmds::cpay_debit(999, DATE, &s)), 1u32.to_be_bytes());
}

#[test]
fn cpay_reader_role_unchecked() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpayReaderRoleUnchecked);
    // Center-signed, but a charge machine, not a payment machine.
    let charge = cmds::cpay_verify_reader(k.charge.cert.encode());
    assert_eq!(good.sw(&charge), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(bad.sw(&charge), OK);
    assert_eq!(good.sw(&cmds::cpay_sign(&[1; 16])), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(bad.ok(&cmds::cpay_sign(&[1; 16])).len(), 96);
}

#[test]
fn cpay_signs_zero_random() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpaySignsZeroRandom);
    let card_key = *k.card_key(&p.card_id, "cpay").verifying_key();
    let random = [0x5A; 16];
    let msg = |r: &[u8]| cpay::sign_message(&p.card_id, 0, 1000, r);
    let mut sigs = Vec::new();
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::cpay_verify_reader(k.payment.cert.encode()));
        let r = b.ok(&cmds::cpay_sign(&random));
        assert_eq!(&r[..16], &msg(&[])[8..24], "id, date, amount");
        sigs.push(r[32..].to_vec());
    }
    assert!(sig::verify(&card_key, &msg(&random), &sigs[0]).is_ok());
    assert!(sig::verify(&card_key, &msg(&random), &sigs[1]).is_err());
    assert!(sig::verify(&card_key, &msg(&[0; 16]), &sigs[1]).is_ok());
}

#[test]
fn cpay_nonce_reusable() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpayNonceReusable);
    for (b, second) in [(&mut good, None), (&mut bad, Some(800u32))] {
        let nonce = cpay_nonce(b, &k);
        let d = debit(&k, &p.card_id, 100, &nonce);
        assert_eq!(b.ok(&d), 900u32.to_be_bytes());
        // The same authorization, replayed.
        match second {
            None => assert_eq!(b.sw(&d), sw::COMMAND_NOT_ALLOWED),
            Some(left) => assert_eq!(b.ok(&d), left.to_be_bytes()),
        }
    }
    assert_eq!(good.ok(&cmds::read_field(FIELD_VALUE, 8))[..4], 900u32.to_be_bytes());
    assert_eq!(bad.ok(&cmds::read_field(FIELD_VALUE, 8))[..4], 800u32.to_be_bytes());
}

#[test]
fn cpay_debit_signature_unchecked() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpayDebitSignatureUnchecked);
    let junk = cmds::cpay_debit(100, DATE, &[0x11; 64]);
    cpay_nonce(&mut good, &k);
    cpay_nonce(&mut bad, &k);
    assert_eq!(good.sw(&junk), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(bad.ok(&junk), 900u32.to_be_bytes());
}

#[test]
fn cpay_overdraft() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpayOverdraft);
    let n = cpay_nonce(&mut good, &k);
    assert_eq!(good.sw(&debit(&k, &p.card_id, 1500, &n)), sw::NOT_ENOUGH_MEMORY);
    let n = cpay_nonce(&mut bad, &k);
    let left = 1000u32.wrapping_sub(1500);
    assert_eq!(bad.ok(&debit(&k, &p.card_id, 1500, &n)), left.to_be_bytes());
    assert_eq!(good.ok(&cmds::read_field(FIELD_VALUE, 8))[..4], 1000u32.to_be_bytes());
}

#[test]
fn cpay_read_field_purse_value() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpayReadFieldPurseValue);
    let cpay_value = [1000u32.to_be_bytes(), 0u32.to_be_bytes()].concat();
    assert_eq!(good.ok(&cmds::read_field(FIELD_VALUE, 8)), cpay_value);
    assert_eq!(bad.ok(&cmds::read_field(FIELD_VALUE, 8)), [0; 8], "the blank PURSE value area");
}

#[test]
fn cpay_read_field_counter() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpayReadFieldCounter);
    assert_eq!(good.sw(&cmds::read_field(FIELD_COUNTER, 4)), sw::WRONG_P1P2);
    assert_eq!(bad.ok(&cmds::read_field(FIELD_COUNTER, 4)), 1000u32.to_be_bytes());
    assert_eq!(bad.sw(&cmds::read_field(FIELD_SIGNATURE, 64)), sw::WRONG_P1P2);
}

/// The answer to a DEBIT with a wrong signature tells whether a nonce and reader are there:
/// `6982` (both there, the signature was checked) or `6986` (no nonce or no reader).
fn probe_debit(b: &mut Bench) -> u16 {
    b.sw(&cmds::cpay_debit(10, DATE, &[0x11; 64]))
}

#[test]
fn cpay_pso_clears_before_p1p2() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpayPsoClearsBeforeP1P2);
    let wrong_p2 = Command::new(CLA_ISO, CPAY_VERIFY_READER, 0x00, 0x00).data(k.payment.cert.encode().to_vec());
    for b in [&mut good, &mut bad] {
        cpay_nonce(b, &k);
        assert_eq!(b.sw(&wrong_p2), sw::WRONG_P1P2);
    }
    assert_eq!(probe_debit(&mut good), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(probe_debit(&mut bad), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(good.ok(&cmds::cpay_sign(&[1; 16])).len(), 96);
    assert_eq!(bad.sw(&cmds::cpay_sign(&[1; 16])), sw::COMMAND_NOT_ALLOWED);
}

#[test]
fn cpay_refused_pso_keeps_reader() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpayRefusedPsoKeepsReader);
    let charge = cmds::cpay_verify_reader(k.charge.cert.encode());
    for b in [&mut good, &mut bad] {
        cpay_nonce(b, &k);
        assert_eq!(b.sw(&charge), sw::SECURITY_NOT_SATISFIED);
    }
    assert_eq!(probe_debit(&mut good), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(probe_debit(&mut bad), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(good.sw(&cmds::cpay_sign(&[1; 16])), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(bad.ok(&cmds::cpay_sign(&[1; 16])).len(), 96);
}

#[test]
fn cpay_pso_unparsable_6982() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpayPsoUnparsable6982);
    let junk = cmds::cpay_verify_reader(&[0x42; 16]);
    assert_eq!(good.sw(&junk), sw::WRONG_DATA);
    assert_eq!(bad.sw(&junk), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(bad.sw(&cmds::cpay_verify_reader(k.payment.cert.encode())), OK);
}

#[test]
fn cpay_reader_single_use() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpayReaderSingleUse);
    for b in [&mut good, &mut bad] {
        let n = cpay_nonce(b, &k);
        assert_eq!(b.ok(&debit(&k, &p.card_id, 100, &n)), 900u32.to_be_bytes());
    }
    assert_eq!(good.ok(&cmds::cpay_sign(&[2; 16])).len(), 96);
    assert_eq!(bad.sw(&cmds::cpay_sign(&[2; 16])), sw::COMMAND_NOT_ALLOWED);
}

#[test]
fn cpay_reader_expiry_checked() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpayReaderExpiryChecked);
    let expired = k.machine("P-EXPIRED").expect("P-EXPIRED in every keyset").cert.encode().to_vec();
    // A first debit dates the CPAY value (DATE, 2027) after the expiry (2025-01-01).
    for b in [&mut good, &mut bad] {
        let n = cpay_nonce(b, &k);
        b.ok(&debit(&k, &p.card_id, 100, &n));
    }
    assert_eq!(good.sw(&cmds::cpay_verify_reader(&expired)), OK);
    assert_eq!(bad.sw(&cmds::cpay_verify_reader(&expired)), sw::SECURITY_NOT_SATISFIED);
}

#[test]
fn cpay_sign_reader_checked_first() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpaySignReaderCheckedFirst);
    let short = Command::new(CLA_PROP, CPAY_SIGN, 0, 0).data(vec![1; 8]).le(256);
    assert_eq!(good.sw(&short), sw::WRONG_LENGTH);
    assert_eq!(bad.sw(&short), sw::COMMAND_NOT_ALLOWED);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::cpay_verify_reader(k.payment.cert.encode()));
        assert_eq!(b.sw(&short), sw::WRONG_LENGTH);
    }
}

#[test]
fn cpay_sign_without_reader() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpaySignWithoutReader);
    assert_eq!(good.sw(&cmds::cpay_sign(&[1; 16])), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(bad.ok(&cmds::cpay_sign(&[1; 16])).len(), 96);
    // Without a reader no DEBIT can follow on either card.
    assert_eq!(probe_debit(&mut bad), sw::COMMAND_NOT_ALLOWED);
}

#[test]
fn cpay_sign_amount_before_date() {
    let k = keys();
    let mut p = plan(1);
    p.cpay_amount = 1000;
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpaySignAmountBeforeDate);
    // Date the value first, so that date and amount differ.
    for b in [&mut good, &mut bad] {
        let n = cpay_nonce(b, &k);
        b.ok(&debit(&k, &p.card_id, 100, &n));
        b.ok(&cmds::cpay_verify_reader(k.payment.cert.encode()));
    }
    let (g, b) = (good.ok(&cmds::cpay_sign(&[3; 16])), bad.ok(&cmds::cpay_sign(&[3; 16])));
    assert_eq!((be32(&g, 8), be32(&g, 12)), (DATE, 900));
    assert_eq!((be32(&b, 8), be32(&b, 12)), (900, DATE));
    // The signature is still over M_pay with date first.
    let card_key = *k.card_key(&p.card_id, "cpay").verifying_key();
    assert!(sig::verify(&card_key, &cpay::sign_message(&p.card_id, DATE, 900, &[3; 16]), &b[32..]).is_ok());
}

#[test]
fn cpay_nonce_not_replaced() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpayNonceNotReplaced);
    let nonces = |b: &mut Bench| {
        let first = cpay_nonce(b, &k);
        let second = b.ok(&cmds::cpay_sign(&[7; 16]))[16..32].to_vec();
        (first, second)
    };
    let (g1, g2) = nonces(&mut good);
    let (b1, b2) = nonces(&mut bad);
    assert_eq!(g1, b1, "same random stream");
    assert_ne!(g1, g2);
    assert_eq!(b1, b2);
}

#[test]
fn cpay_debit_nonce_consumed_by_bad_length() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_CPAY, Defect::CpayDebitNonceConsumedByBadLength);
    let short = Command::new(CLA_PROP, CPAY_DEBIT, 0, 0).data(vec![0x11; 71]).le(4);
    for b in [&mut good, &mut bad] {
        cpay_nonce(b, &k);
        assert_eq!(b.sw(&short), sw::WRONG_LENGTH);
    }
    assert_eq!(probe_debit(&mut good), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(probe_debit(&mut bad), sw::COMMAND_NOT_ALLOWED);
}

#[test]
fn cpay_debit_zero_price() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpayDebitZeroPrice);
    let n = cpay_nonce(&mut good, &k);
    assert_eq!(good.sw(&debit(&k, &p.card_id, 0, &n)), sw::WRONG_DATA);
    let n = cpay_nonce(&mut bad, &k);
    assert_eq!(bad.ok(&debit(&k, &p.card_id, 0, &n)), 1000u32.to_be_bytes());
    let value = |a: u32, d: u32| [a.to_be_bytes(), d.to_be_bytes()].concat();
    assert_eq!(good.ok(&cmds::read_field(FIELD_VALUE, 8)), value(1000, 0));
    assert_eq!(bad.ok(&cmds::read_field(FIELD_VALUE, 8)), value(1000, DATE), "the date moved");
}

#[test]
fn cpay_nonce_kept_on_value_refusal() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpayNonceKeptOnValueRefusal);
    for (b, after) in [(&mut good, sw::COMMAND_NOT_ALLOWED), (&mut bad, OK)] {
        // Insufficient value: the authorized DEBIT answers 6A84 on both cards...
        let n = cpay_nonce(b, &k);
        assert_eq!(b.sw(&debit(&k, &p.card_id, 1500, &n)), sw::NOT_ENOUGH_MEMORY);
        assert_eq!(probe_debit(b), if after == OK { sw::SECURITY_NOT_SATISFIED } else { after });
        // ...and price 0 answers 6A80; the defective card then accepts a retry over the same nonce.
        let n = cpay_nonce(b, &k);
        assert_eq!(b.sw(&debit(&k, &p.card_id, 0, &n)), sw::WRONG_DATA);
        assert_eq!(b.sw(&debit(&k, &p.card_id, 100, &n)), after);
    }
}

#[test]
fn cpay_debit_keeps_date() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_CPAY, Defect::CpayDebitKeepsDate);
    for b in [&mut good, &mut bad] {
        let n = cpay_nonce(b, &k);
        assert_eq!(b.ok(&debit(&k, &p.card_id, 100, &n)), 900u32.to_be_bytes());
    }
    let value = |a: u32, d: u32| [a.to_be_bytes(), d.to_be_bytes()].concat();
    assert_eq!(good.ok(&cmds::read_field(FIELD_VALUE, 8)), value(900, DATE));
    assert_eq!(bad.ok(&cmds::read_field(FIELD_VALUE, 8)), value(900, 0));
}

// ---------------------------------------------------------------------------------------------
// XFER key update

/// Card A (being updated) on transfer key `tka`, card B on `tkb`; update key 1 on both.
fn key_plans(tka: u32, tkb: u32) -> (CardPlan, CardPlan) {
    let mut a = plan(0xA1);
    a.transfer_key = tka;
    let mut b = plan(0xB2);
    b.transfer_key = tkb;
    (a, b)
}

#[test]
fn update_permission_reusable() {
    let k = keys();
    let (pa, pb) = key_plans(1, 2);
    let (good, bad) = with_peer(&k, &pa, &pb, Defect::UpdatePermissionReusable, |a, b| {
        let random = a.ok(&cmds::xfer_update_permission(MODE_COMMON, &[]));
        let blob = b.ok(&cmds::xfer_get_transfer_key(MODE_COMMON, &random, &[]));
        let mut broken = blob.clone();
        *broken.last_mut().unwrap() ^= 1;
        let first = a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &broken));
        let second = a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob));
        (first, second, a.info().tkid)
    });
    assert_eq!(good, (sw::SECURITY_NOT_SATISFIED, sw::COMMAND_NOT_ALLOWED, 1));
    assert_eq!(bad, (sw::SECURITY_NOT_SATISFIED, OK, 2));
}

#[test]
fn update_random_unchecked() {
    let k = keys();
    let (pa, pb) = key_plans(1, 2);
    let (good, bad) = with_peer(&k, &pa, &pb, Defect::UpdateRandomUnchecked, |a, b| {
        let old = a.ok(&cmds::xfer_update_permission(MODE_COMMON, &[]));
        let old_blob = b.ok(&cmds::xfer_get_transfer_key(MODE_COMMON, &old, &[]));
        // A new permission: the old blob (recorded earlier) is replayed against it.
        let new = a.ok(&cmds::xfer_update_permission(MODE_COMMON, &[]));
        assert_ne!(old, new);
        let sw = a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &old_blob));
        (sw, a.info().tkid)
    });
    assert_eq!(good, (sw::SECURITY_NOT_SATISFIED, 1));
    assert_eq!(bad, (OK, 2));
}

#[test]
fn tkid_range_unchecked() {
    let k = keys();
    // A holds the newer key 3; B offers the older key 2.
    let (pa, pb) = key_plans(3, 2);
    let (good, bad) =
        with_peer(&k, &pa, &pb, Defect::TkidRangeUnchecked, |a, b| (key_update(a, b, MODE_COMMON), a.info().tkid));
    assert_eq!(good, (sw::REF_DATA_NOT_USABLE, 3));
    assert_eq!(bad, (OK, 2), "rolled back to an older transfer key");
}

#[test]
fn tkid_accepts_current() {
    let k = keys();
    let (pa, pb) = key_plans(2, 2);
    let (good, bad) =
        with_peer(&k, &pa, &pb, Defect::TkidAcceptsCurrent, |a, b| (key_update(a, b, MODE_COMMON), a.info().tkid));
    assert_eq!(good, (sw::REF_DATA_NOT_USABLE, 2));
    assert_eq!(bad, (OK, 2));
}

#[test]
fn tkid_limit_off_by_one() {
    let k = keys();
    let (mut pa, pb) = key_plans(1, 3);
    pa.transfer_key_limit = 2;
    let (good, bad) =
        with_peer(&k, &pa, &pb, Defect::TkidLimitOffByOne, |a, b| (key_update(a, b, MODE_COMMON), a.info().tkid));
    assert_eq!(good, (sw::REF_DATA_NOT_USABLE, 1));
    assert_eq!(bad, (OK, 3), "beyond the upper limit 2");
}

#[test]
fn ukid_limit_unchecked() {
    let k = keys();
    let (mut pa, mut pb) = key_plans(1, 2);
    pa.update_key_limit = 1;
    pb.update_key = 2;
    let (good, bad) = with_peer(&k, &pa, &pb, Defect::UkidLimitUnchecked, |a, b| {
        let sw = key_update(a, b, MODE_PUBLIC_UK);
        let i = a.info();
        (sw, i.ukid, i.tkid)
    });
    assert_eq!(good, (sw::REF_DATA_NOT_USABLE, 1, 1));
    assert_eq!(bad, (OK, 2, 2), "update key moved beyond its limit 1");
}

#[test]
fn peer_cert_unchecked() {
    let k = keys();
    let p = plan(1);
    let (mut good, mut bad) = pair(&k, &p, &AID_XFER, Defect::PeerCertUnchecked);
    let thief = foreign_key("thief");
    let forged = cert_by(*b"THIEF002", Role::XferCard, &thief, &thief);
    // As the card being updated: a forged peer gets an update permission.
    let perm = cmds::xfer_update_permission(MODE_PUBLIC, &forged);
    assert_eq!(good.sw(&perm), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(bad.ok(&perm).len(), 16);
    // As the key holder: the transfer key is encrypted to the forger's key.
    let get = cmds::xfer_get_transfer_key(MODE_PUBLIC, &[3; 16], &forged);
    assert_eq!(good.sw(&get), sw::SECURITY_NOT_SATISFIED);
    let blob = bad.ok(&get);
    let ct = &blob[..blob.len() - 64];
    let pt = ecies::decrypt(&p256::SecretKey::from(thief), ct).expect("forger decrypts");
    assert_eq!(be32(&pt, 0), p.transfer_key);
    assert_eq!(&pt[4..20], k.transfer_key(p.transfer_key).unwrap().expose(), "the transfer key leaked");
}

#[test]
fn multi_key_unauthenticated() {
    let k = keys();
    let mut p = plan(1);
    p.slots = vec![3];
    let (mut good, mut bad) = pair(&k, &p, &AID_XFER, Defect::MultiKeyUnauthenticated);
    for (b, want) in [(&mut good, sw::SECURITY_NOT_SATISFIED), (&mut bad, OK)] {
        let random = b.ok(&cmds::xfer_update_permission(MODE_MULTI, &[]));
        // No update key involved: random ‖ new ID in clear.
        let plain = [&random[..], &3u32.to_be_bytes()].concat();
        assert_eq!(b.sw(&cmds::xfer_update_transfer_key(MODE_MULTI, &plain)), want);
    }
    assert_eq!((good.info().tkid, bad.info().tkid), (1, 3));
    // The sealed form is still accepted by the correct card.
    let uk = *k.update_key(1).unwrap().expose();
    let random = good.ok(&cmds::xfer_update_permission(MODE_MULTI, &[]));
    let pt = [&random[..], &3u32.to_be_bytes()].concat();
    let sealed = ae::seal(&ae::AeKeys::from_key(&uk), &[9; 16], &xfer::transport_aad(MODE_MULTI), &pt);
    assert_eq!(good.sw(&cmds::xfer_update_transfer_key(MODE_MULTI, &sealed)), OK);
}

// ---------------------------------------------------------------------------------------------
// XFER value transfer

#[test]
fn send_challenge_unchecked() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_XFER, Defect::SendChallengeUnchecked);
    for (b, want) in [(&mut good, sw::SECURITY_NOT_SATISFIED), (&mut bad, OK)] {
        b.ok(&cmds::xfer_send_permission(100, DATE));
        assert_eq!(b.sw(&cmds::xfer_send(&[0; 16], &[9; 16])), want);
    }
    assert_eq!((good.info().balance, bad.info().balance), (500, 400));
}

#[test]
fn debit_at_send_permission() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_XFER, Defect::DebitAtSendPermission);
    for b in [&mut good, &mut bad] {
        assert_eq!(b.ok(&cmds::xfer_send_permission(100, DATE)).len(), 16);
    }
    assert_eq!((good.info().balance, bad.info().balance), (500, 400));
    // The transfer is abandoned: the reset loses the session, and on the defective card
    // the value with it.
    for b in [&mut good, &mut bad] {
        b.power_cycle();
        b.select(&AID_XFER);
    }
    assert_eq!((good.info().balance, bad.info().balance), (500, 400));
}

#[test]
fn credit_at_receive_permission() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_XFER, Defect::CreditAtReceivePermission);
    for b in [&mut good, &mut bad] {
        assert_eq!(b.ok(&cmds::xfer_receive_permission(100, DATE, &[4; 16])).len(), 32);
        assert!(b.info().pending);
    }
    assert_eq!((good.info().balance, bad.info().balance), (500, 600));
    // No debit ever happened; cancelling (with the proof a sending card would give for
    // this credit) keeps the credit on the defective card.
    let tk = *k.transfer_key(plan(1).transfer_key).unwrap().expose();
    for b in [&mut good, &mut bad] {
        let p = b.ok(&cmds::xfer_read_state(0x01));
        let proof = xfer::cancel_proof(&tk, 100, DATE, &a16(&p[8..24]), &a16(&p[24..40]));
        b.ok(&cmds::xfer_cancel_pending(&proof));
    }
    assert_eq!((good.info().balance, bad.info().balance), (500, 600));
}

#[test]
fn challenge_omits_date() {
    let k = keys();
    let p = plan(1);
    let tk = *k.transfer_key(p.transfer_key).unwrap().expose();
    let (mut good, mut bad) = pair(&k, &p, &AID_XFER, Defect::ChallengeOmitsDate);
    let rnd_send = [6; 16];
    let want = xfer::challenge(&tk, TAG_TRANSMISSION, 100, DATE, &rnd_send);
    let g = good.ok(&cmds::xfer_receive_permission(100, DATE, &rnd_send));
    let b = bad.ok(&cmds::xfer_receive_permission(100, DATE, &rnd_send));
    assert_eq!(a16(&g[..16]), want);
    assert_ne!(a16(&b[..16]), want);
    // Against a correct sending card, the defective receiver's challenge is refused.
    let (pa, pb) = (plan(2), plan(3));
    let (good, bad) = with_peer(&k, &pb, &pa, Defect::ChallengeOmitsDate, |r, s| transfer(s, r, 100, DATE));
    assert_eq!(good, [OK, OK, OK, OK]);
    assert_eq!(bad, [OK, OK, sw::SECURITY_NOT_SATISFIED]);
}

#[test]
fn overdraft_allowed() {
    let k = keys();
    let (pa, pb) = (plan(1), plan(2));
    let (good, bad) = with_peer(&k, &pa, &pb, Defect::OverdraftAllowed, |s, r| {
        let sws = transfer(s, r, 600, DATE);
        (sws, s.info().balance, r.info().balance)
    });
    assert_eq!(good, (vec![sw::NOT_ENOUGH_MEMORY], 500, 500));
    assert_eq!(bad, (vec![OK, OK, OK, OK], 500u32.wrapping_sub(600), 1100));
}

#[test]
fn balance_cap_unchecked() {
    let k = keys();
    let (pa, mut pb) = (plan(1), plan(2));
    pb.max_balance = 550;
    let (good, bad) = with_peer(&k, &pb, &pa, Defect::BalanceCapUnchecked, |r, s| {
        let sws = transfer(s, r, 100, DATE);
        (sws, r.info().balance)
    });
    assert_eq!(good, (vec![OK, sw::NOT_ENOUGH_MEMORY], 500));
    assert_eq!(bad, (vec![OK, OK, OK, OK], 600), "above the cap 550");
}

#[test]
fn validity_ignored() {
    let k = keys();
    let p = plan(1);
    let late = p.validity + 1;
    let (mut good, mut bad) = pair(&k, &p, &AID_XFER, Defect::ValidityIgnored);
    let send = cmds::xfer_send_permission(100, late);
    let recv = cmds::xfer_receive_permission(100, late, &[1; 16]);
    assert_eq!(good.sw(&send), sw::CONDITIONS_NOT_SATISFIED);
    assert_eq!(good.sw(&recv), sw::CONDITIONS_NOT_SATISFIED);
    assert_eq!(bad.sw(&send), OK);
    assert_eq!(bad.sw(&recv), OK);
    assert!(!good.info().pending);
    assert!(bad.info().pending);
}

#[test]
fn pending_credit_overwritten() {
    let k = keys();
    let (mut good, mut bad) = pair(&k, &plan(1), &AID_XFER, Defect::PendingCreditOverwritten);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::xfer_receive_permission(100, DATE, &[1; 16]));
    }
    let second = cmds::xfer_receive_permission(200, DATE, &[2; 16]);
    assert_eq!(good.sw(&second), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(bad.sw(&second), OK);
    let state = |b: &mut Bench| be32(&b.ok(&cmds::xfer_read_state(1)), 0);
    assert_eq!((state(&mut good), state(&mut bad)), (100, 200));
}

#[test]
fn receive_replay() {
    let k = keys();
    let (pa, pb) = (plan(1), plan(2));
    let (good, bad) = with_peer(&k, &pb, &pa, Defect::ReceiveReplay, |r, s| {
        let sws = transfer(s, r, 100, DATE);
        assert_eq!(sws, [OK, OK, OK, OK]);
        // A's last debit record holds the reception challenge; send it again.
        let last = s.ok(&cmds::xfer_read_state(2));
        let again = r.sw(&cmds::xfer_receive(&last[40..56]));
        (again, s.info().balance, r.info().balance)
    });
    assert_eq!(good, (sw::COMMAND_NOT_ALLOWED, 400, 600));
    assert_eq!(bad, (OK, 400, 700), "one debit, two credits");
}

#[test]
fn cancel_proof_unchecked() {
    let k = keys();
    let (pa, pb) = (plan(1), plan(2));
    let (good, bad) = with_peer(&k, &pb, &pa, Defect::CancelProofUnchecked, |r, s| {
        // A debits for the credit (VALUE SEND), the answer to B never comes.
        let rnd_send = s.ok(&cmds::xfer_send_permission(100, DATE));
        let rb = r.ok(&cmds::xfer_receive_permission(100, DATE, &rnd_send));
        s.ok(&cmds::xfer_send(&rb[..16], &rb[16..]));
        // A refuses a proof for a session that debited; a terminal cancels anyway.
        let pending = r.ok(&cmds::xfer_read_state(0x01));
        assert_eq!(s.sw(&cmds::xfer_cancel_proof(&pending)), sw::COMMAND_NOT_ALLOWED);
        let cancel = r.sw(&cmds::xfer_cancel_pending(&[0; 16]));
        (cancel, s.info().balance, r.info().balance, r.info().pending)
    });
    assert_eq!(good, (sw::SECURITY_NOT_SATISFIED, 400, 500, true), "credit kept, still completable");
    assert_eq!(bad, (OK, 400, 500, false), "value destroyed: A debited, B's credit gone");
}

// ---------------------------------------------------------------------------------------------
// GEN defects (card-spec 1-5): a correct and a defective card side by side, fed the same raw
// bytes (the card's own 61xx / 6Cxx answers, nothing followed); answers as upper-case hex.

const SEL_PURSE: &str = "00A4040007A0000007770001";
const SEL_CPAY: &str = "00A4040007A0000007770002";
const SEL_XFER: &str = "00A4040007A0000007770003";
const SIGN: &str = "8088000010000102030405060708090A0B0C0D0E0F00";
/// PERSO STATUS, GET CARD INFO and READ FIELD card ID answers of the pair's card.
const ID: &str = "DEFEC70000000160";

struct Pair {
    good: VirtualCard,
    bad: VirtualCard,
}

impl Pair {
    fn new(d: Defect) -> Pair {
        Pair::on(d, Protocol::T0)
    }

    fn on(d: Defect, proto: Protocol) -> Pair {
        let k = keys();
        let mk = |defects: Defects| {
            let mut c = personalize_virtual(&plan(0x60), proto, &k).expect("personalization");
            c.set_defects(defects);
            c.power_on();
            c
        };
        Pair { good: mk(Defects::NONE), bad: mk(Defects::from(d)) }
    }

    /// (the correct card's answer, the defective card's answer).
    fn send(&mut self, apdu: &str) -> (String, String) {
        let b = hex::decode(apdu.replace(' ', "")).expect("hex APDU");
        let answer = |c: &mut VirtualCard| c.process(&b).map(hex::encode_upper).unwrap_or_else(|| "mute".into());
        (answer(&mut self.good), answer(&mut self.bad))
    }

    /// A step before the defect shows: both cards answer the same.
    fn same(&mut self, apdu: &str) -> String {
        let (g, b) = self.send(apdu);
        assert_eq!(g, b, "{apdu}: the cards differ before the defect shows");
        g
    }

    fn reset(&mut self) {
        for c in [&mut self.good, &mut self.bad] {
            c.power_off();
            c.power_on();
        }
    }
}

fn answers(g: &str, b: &str) -> (String, String) {
    (g.to_string(), b.to_string())
}

fn pso() -> String {
    format!("002A00BEBA{}", hex::encode_upper(keys().payment.cert.encode()))
}

#[test]
fn cpay_xfer_aids_swapped() {
    let mut p = Pair::new(Defect::CpayXferAidsSwapped);
    p.same(SEL_CPAY);
    assert_eq!(p.send("80 10 00 00 00"), answers("6D00", "6C22"), "GET CARD INFO answered in 'CPAY'");
}

#[test]
fn read_all_in_every_applet() {
    let mut p = Pair::new(Defect::ReadAllInEveryApplet);
    p.same(SEL_CPAY);
    assert_eq!(p.send("80 B0 00 00 00"), answers("6D00", "6C16"));
}

#[test]
fn select_keeps_ram() {
    let mut p = Pair::new(Defect::SelectKeepsRam);
    p.same(SEL_CPAY);
    assert_eq!(p.same(&pso()), "9000");
    assert_eq!(p.same(SEL_CPAY), "9000");
    assert_eq!(p.send(SIGN), answers("6986", "6160"), "the reader verified before the SELECT");
}

#[test]
fn select_unknown_aid_deselects() {
    let mut p = Pair::new(Defect::SelectUnknownAidDeselects);
    p.same(SEL_PURSE);
    assert_eq!(p.same("00A4040007A0000007770009"), "6A82");
    assert_eq!(p.send("80 B2 01 00 08"), (format!("{ID}9000"), "6986".into()));
}

#[test]
fn select_p2_unchecked() {
    let mut p = Pair::new(Defect::SelectP2Unchecked);
    assert_eq!(p.send("00A4040107A0000007770001"), answers("6A86", "9000"));
}

#[test]
fn select_partial_aid() {
    let mut p = Pair::new(Defect::SelectPartialAid);
    assert_eq!(p.send("00A4040006A00000077700"), answers("6A82", "9000"));
}

#[test]
fn select_returns_fci() {
    let mut p = Pair::new(Defect::SelectReturnsFci);
    assert_eq!(p.send(SEL_PURSE), answers("9000", "6107"));
}

#[test]
fn select_inside_applet() {
    let mut p = Pair::new(Defect::SelectInsideApplet);
    assert_eq!(p.same(SEL_PURSE), "9000", "with none selected SELECT works");
    assert_eq!(p.send(SEL_XFER), answers("9000", "6D00"));
}

#[test]
fn reset_keeps_selection() {
    let mut p = Pair::new(Defect::ResetKeepsSelection);
    p.same(SEL_PURSE);
    p.reset();
    assert_eq!(p.send("80 B2 01 00 08"), ("6986".into(), format!("{ID}9000")));
}

#[test]
fn reset_keeps_get_response() {
    let mut p = Pair::new(Defect::ResetKeepsGetResponse);
    p.same(SEL_PURSE);
    assert_eq!(p.same("80 B2 01 00"), "6108");
    p.reset();
    assert_eq!(p.send("00 C0 00 00 08"), ("6986".into(), format!("{ID}9000")));
}

#[test]
fn unknown_cla_6d00() {
    let mut p = Pair::new(Defect::UnknownCla6D00);
    p.same(SEL_PURSE);
    assert_eq!(p.send("84 B0 00 00 00"), answers("6E00", "6D00"));
}

#[test]
fn cla_not_bound() {
    let mut p = Pair::new(Defect::ClaNotBound);
    p.same(SEL_PURSE);
    assert_eq!(p.send("00 B2 01 00 08"), ("6D00".into(), format!("{ID}9000")));
}

#[test]
fn perso_any_cla() {
    let mut p = Pair::new(Defect::PersoAnyCla);
    assert_eq!(p.send("00 EC 00 00 01"), answers("6986", "019000"), "no applet selected");
}

#[test]
fn perso_needs_applet() {
    let mut p = Pair::new(Defect::PersoNeedsApplet);
    assert_eq!(p.send("80 EC 00 00 01"), answers("019000", "6986"));
}

#[test]
fn no_applet_6d00() {
    let mut p = Pair::new(Defect::NoApplet6D00);
    assert_eq!(p.send("80 B0 00 00 00"), answers("6986", "6D00"));
}

#[test]
fn unknown_ins_before_p1p2() {
    let mut p = Pair::new(Defect::UnknownInsBeforeP1p2);
    p.same(SEL_PURSE);
    assert_eq!(p.send("80 FF 01 00"), answers("6A86", "6D00"));
}

#[test]
fn unknown_ins_6a81() {
    let mut p = Pair::new(Defect::UnknownIns6A81);
    p.same(SEL_PURSE);
    assert_eq!(p.send("80 FF 00 00"), answers("6D00", "6A81"));
}

#[test]
fn refusal_with_data() {
    let mut p = Pair::new(Defect::RefusalWithData);
    p.same(SEL_PURSE);
    assert_eq!(p.send("80 FF 00 00"), answers("6D00", "FF6D00"));
}

#[test]
fn get_response_needs_applet() {
    let mut p = Pair::new(Defect::GetResponseNeedsApplet);
    assert_eq!(p.same("80 EC 00 00"), "6101");
    assert_eq!(p.send("00 C0 00 00 01"), answers("019000", "6986"));
}

#[test]
fn unparsable_clears_get_response() {
    let mut p = Pair::new(Defect::UnparsableClearsGetResponse);
    p.same(SEL_PURSE);
    assert_eq!(p.same("80 B2 01 00"), "6108");
    assert_eq!(p.same("80 B2 01 00 05 01"), "6700");
    assert_eq!(p.send("00 C0 00 00 08"), (format!("{ID}9000"), "6986".into()));
}

#[test]
fn lenient_apdu_parse() {
    let mut p = Pair::new(Defect::LenientApduParse);
    assert_eq!(p.send("80 EC 00 00 01 00 01 FF"), answers("6700", "6101"));
}

#[test]
fn get_response_not_cleared() {
    let mut p = Pair::new(Defect::GetResponseNotCleared);
    p.same(SEL_PURSE);
    assert_eq!(p.same("80 B2 01 00"), "6108");
    assert_eq!(p.same("80 B2 01 01"), "6A86");
    assert_eq!(p.send("00 C0 00 00 08"), ("6986".into(), format!("{ID}9000")));
}

#[test]
fn extended_apdu_6700() {
    let mut p = Pair::new(Defect::ExtendedApdu6700);
    p.same(SEL_PURSE);
    assert_eq!(p.send("80 B2 01 00 00 00 08"), (format!("{ID}9000"), "6700".into()));
}

#[test]
fn get_response_empty_9000() {
    let mut p = Pair::new(Defect::GetResponseEmpty9000);
    assert_eq!(p.send("00 C0 00 00 00"), answers("6986", "9000"));
}

#[test]
fn get_response_short_9000() {
    let mut p = Pair::new(Defect::GetResponseShort9000);
    p.same(SEL_PURSE);
    assert_eq!(p.same("80 B2 01 00"), "6108");
    assert_eq!(p.send("00 C0 00 00 00"), ("6C08".into(), format!("{ID}9000")));
}

#[test]
fn get_response_p1p2_unchecked() {
    let mut p = Pair::new(Defect::GetResponseP1p2Unchecked);
    p.same(SEL_PURSE);
    assert_eq!(p.same("80 B2 01 00"), "6108");
    assert_eq!(p.send("00 C0 01 00 08"), ("6A86".into(), format!("{ID}9000")));
}

#[test]
fn get_response_drops_rest() {
    let mut p = Pair::new(Defect::GetResponseDropsRest);
    p.same(SEL_PURSE);
    assert_eq!(p.same("80 B2 01 00"), "6108");
    assert_eq!(p.send("00 C0 00 00 03"), (format!("{}6105", &ID[..6]), format!("{}9000", &ID[..6])));
    assert_eq!(p.send("00 C0 00 00 05"), (format!("{}9000", &ID[6..]), "6986".into()));
}

#[test]
fn get_response_data_6700() {
    let mut p = Pair::new(Defect::GetResponseData6700);
    p.same(SEL_PURSE);
    assert_eq!(p.same("80 B2 01 00"), "6108");
    assert_eq!(p.send("00 C0 00 00 02 FFFF"), answers("6C08", "6700"));
}

#[test]
fn case1_data_no_61xx() {
    let mut p = Pair::new(Defect::Case1DataNo61);
    p.same(SEL_PURSE);
    assert_eq!(p.send("80 B2 01 00"), ("6108".into(), format!("{ID}9000")));
}

#[test]
fn t0_case4_empty_6100() {
    let mut p = Pair::new(Defect::T0Case4Empty6100);
    assert_eq!(p.send("00A4040007A000000777000100"), answers("9000", "6100"));
}

#[test]
fn t0_wrong_le_no_6c() {
    let mut p = Pair::new(Defect::T0WrongLeNo6C);
    p.same(SEL_PURSE);
    assert_eq!(p.send("80 B2 01 00 00"), ("6C08".into(), format!("{ID}9000")));
}

#[test]
fn t0_exact_le_61xx() {
    let mut p = Pair::new(Defect::T0ExactLe61);
    p.same(SEL_PURSE);
    assert_eq!(p.send("80 B2 01 00 08"), (format!("{ID}9000"), "6108".into()));
}

#[test]
fn long_response_truncated() {
    // Rule 4 (Na > Ne): T=1 with a short Le (on T=0 only responses over 256 bytes reach it).
    let mut p = Pair::on(Defect::LongResponseTruncated, Protocol::T1);
    p.same(SEL_PURSE);
    assert_eq!(p.send("80 B2 01 00 03"), (format!("{}6105", &ID[..6]), format!("{}9000", &ID[..6])));
    assert_eq!(p.send("00 C0 00 00 05"), (format!("{}9000", &ID[6..]), "6986".into()));
}

#[test]
fn pso_keeps_nonce() {
    let mut p = Pair::new(Defect::PsoKeepsNonce);
    p.same(SEL_CPAY);
    assert_eq!(p.same(&pso()), "9000");
    assert_eq!(p.same(SIGN), "6160");
    assert_eq!(p.same(&pso()), "9000");
    let debit = format!("80D6000048 00000001 {DATE:08X} {} 04", "11".repeat(64));
    assert_eq!(p.send(&debit), answers("6986", "6982"), "the nonce issued before the second PSO");
}

#[test]
fn refused_command_clears_ram() {
    let mut p = Pair::new(Defect::RefusedCommandClearsRam);
    p.same(SEL_CPAY);
    assert_eq!(p.same(&pso()), "9000");
    assert_eq!(p.same("80 FF 01 00"), "6A86");
    assert_eq!(p.send(SIGN), answers("6160", "6986"));
}

#[test]
fn send_log_in_ram() {
    let mut p = Pair::new(Defect::SendLogInRam);
    p.same(SEL_XFER);
    assert_eq!(p.same(&format!("8030000008 00000001 {DATE:08X} 10")), "6110");
    let rnd_send = p.same("00 C0 00 00 10");
    p.reset();
    p.same(SEL_XFER);
    let proof = format!("803C000028 00000001 {DATE:08X} {} {} 10", &rnd_send[..32], "00".repeat(16));
    assert_eq!(p.send(&proof), answers("6110", "6A88"), "the logged session after a power cycle");
}

#[test]
fn receive_permission_refusal_stores() {
    let mut p = Pair::new(Defect::ReceivePermissionRefusalStores);
    p.same(SEL_XFER);
    assert_eq!(p.same(&format!("8032000018 FFFFFFFF {DATE:08X} {} 20", "00".repeat(16))), "6A84");
    let (g, b) = p.send("80 38 01 00 00");
    assert_eq!(g, "6A88", "nothing pending on the correct card");
    assert_ne!(b, "6A88", "the refused credit is pending on the defective card");
}

#[test]
fn lock_checks_locked_first() {
    let mut p = Pair::new(Defect::LockChecksLockedFirst);
    assert_eq!(p.send("80 EE 01 00"), answers("6A86", "6986"));
}

#[test]
fn relock_accepted() {
    let mut p = Pair::new(Defect::RelockAccepted);
    assert_eq!(p.send("80 EE 00 00"), answers("6986", "9000"));
}

#[test]
fn perso_status_p1p2_unchecked() {
    let mut p = Pair::new(Defect::PersoStatusP1p2Unchecked);
    assert_eq!(p.send("80 EC 01 00 01"), answers("6A86", "019000"));
}

#[test]
fn perso_status_inverted() {
    let mut p = Pair::new(Defect::PersoStatusInverted);
    assert_eq!(p.send("80 EC 00 00 01"), answers("019000", "009000"));
}

#[test]
fn perso_put_object_checked_first() {
    let mut p = Pair::new(Defect::PersoPutObjectCheckedFirst);
    assert_eq!(p.send("80 E0 FF 00 01 00"), answers("6986", "6A86"));
}

// ---------------------------------------------------------------------------------------------
// XFER requirement matrix (card-spec §8-§9): one test per defect, a correct card and a
// defective one side by side.

/// A correct and a defective XFER card (the same plan), XFER selected.
fn xfer_pair(n: u8, defect: Defect) -> (Bench, Bench) {
    pair(&keys(), &plan(n), &AID_XFER, defect)
}

fn plan_tk(n: u8, tk: u32) -> CardPlan {
    let mut p = plan(n);
    p.transfer_key = tk;
    p
}

const WRONG16: [u8; 16] = [0xA5; 16];

/// `paid ‖ date ‖ rnd_send ‖ rnd_recv`, the data of CANCEL PROOF.
fn proof_request(paid: u32, date: u32, rnd_send: &[u8], rnd_recv: &[u8]) -> Vec<u8> {
    [&paid.to_be_bytes()[..], &date.to_be_bytes(), rnd_send, rnd_recv].concat()
}

/// SW of VALUE SEND with a wrong challenge: `6982` while a send session is open, `6986` if not.
fn probe_session(b: &mut Bench) -> u16 {
    b.sw(&cmds::xfer_send(&WRONG16, &WRONG16))
}

#[test]
fn info_slot_ids_padded() {
    let mut p = plan(60);
    p.slots = vec![3];
    let (mut good, mut bad) = pair(&keys(), &p, &AID_XFER, Defect::InfoSlotIdsPadded);
    assert_eq!(good.ok(&cmds::xfer_info()).len(), 38);
    assert_eq!(bad.ok(&cmds::xfer_info()).len(), 66);
}

#[test]
fn info_cert_is_cpay_cert() {
    let (mut good, mut bad) = xfer_pair(61, Defect::InfoCertIsCpayCert);
    // Offset 35 of a certificate is its role.
    assert_eq!(good.ok(&cmds::xfer_certificate())[35], Role::XferCard as u8);
    assert_eq!(bad.ok(&cmds::xfer_certificate())[35], Role::SigningCard as u8);
}

#[test]
fn info_card_id_serial_only() {
    let (mut good, mut bad) = xfer_pair(62, Defect::InfoCardIdSerialOnly);
    assert_eq!(good.ok(&cmds::xfer_info())[..8], card_id(62));
    assert_eq!(bad.ok(&cmds::xfer_info())[..8], [&[0u8; 4][..], &card_id(62)[4..]].concat()[..]);
}

#[test]
fn info_limits_swapped() {
    let (mut good, mut bad) = xfer_pair(63, Defect::InfoLimitsSwapped);
    let limits = |b: &mut Bench| {
        let d = b.ok(&cmds::xfer_info());
        (be32(&d, 24), be32(&d, 28))
    };
    assert_eq!(limits(&mut good), (4, 8));
    assert_eq!(limits(&mut bad), (8, 4));
}

#[test]
fn info_flags_shifted() {
    let (mut good, mut bad) = xfer_pair(64, Defect::InfoFlagsShifted);
    assert_eq!(good.ok(&cmds::xfer_info())[32], 0x03);
    assert_eq!(bad.ok(&cmds::xfer_info())[32], 0x06);
}

#[test]
fn p2_ignored_by_info_and_read_state() {
    let (mut good, mut bad) = xfer_pair(65, Defect::P2IgnoredByInfoAndReadState);
    let info = Command::new(CLA_PROP, XFER_GET_INFO, 0, 1).le(256);
    let state = Command::new(CLA_PROP, XFER_READ_STATE, 1, 1).le(256);
    assert_eq!((good.sw(&info), good.sw(&state)), (sw::WRONG_P1P2, sw::WRONG_P1P2));
    assert_eq!((bad.sw(&info), bad.sw(&state)), (OK, sw::REF_DATA_NOT_FOUND));
}

#[test]
fn reads_end_send_session() {
    let (mut good, mut bad) = xfer_pair(66, Defect::ReadsEndSendSession);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::xfer_send_permission(100, DATE));
        b.ok(&cmds::xfer_info());
    }
    assert_eq!(probe_session(&mut good), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(probe_session(&mut bad), sw::COMMAND_NOT_ALLOWED);
}

#[test]
fn transport_aad_without_mode() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan_tk(67, 1), &plan_tk(68, 2), Defect::TransportAadWithoutMode, |a, b| {
        key_update(a, b, MODE_COMMON)
    });
    assert_eq!((good, bad), (OK, sw::SECURITY_NOT_SATISFIED), "the defective card A cannot open B's blob");
}

#[test]
fn xfer_randoms_constant() {
    let (mut good, mut bad) = xfer_pair(69, Defect::XferRandomsConstant);
    let two = |b: &mut Bench| {
        let r1 = b.ok(&cmds::xfer_send_permission(100, DATE));
        let r2 = b.ok(&cmds::xfer_send_permission(100, DATE));
        r1 == r2
    };
    assert!(!two(&mut good));
    assert!(two(&mut bad));
}

#[test]
fn transport_signature_without_random() {
    let k = keys();
    let (good, bad) =
        with_peer(&k, &plan_tk(70, 2), &plan_tk(71, 1), Defect::TransportSignatureWithoutRandom, |dut, peer| {
            key_update(peer, dut, MODE_PUBLIC)
        });
    assert_eq!((good, bad), (OK, sw::SECURITY_NOT_SATISFIED), "card A refuses the defective B's signature");
}

/// KEY UPDATE PERMISSION (common) on `a`, then `between`, then B's blob for that random: A's SW.
fn update_after(a: &mut Bench, b: &mut Bench, between: impl Fn(&mut Bench)) -> u16 {
    let random = a.ok(&cmds::xfer_update_permission(MODE_COMMON, &[]));
    between(a);
    let blob = b.ok(&cmds::xfer_get_transfer_key(MODE_COMMON, &random, &[]));
    a.sw(&cmds::xfer_update_transfer_key(MODE_COMMON, &blob))
}

#[test]
fn permission_dropped_before_mode_check() {
    let k = keys();
    let (good, bad) =
        with_peer(&k, &plan_tk(72, 1), &plan_tk(73, 2), Defect::PermissionDroppedBeforeModeCheck, |a, b| {
            update_after(a, b, |a| assert_eq!(a.sw(&cmds::xfer_update_permission(5, &[])), sw::WRONG_P1P2))
        });
    assert_eq!((good, bad), (OK, sw::COMMAND_NOT_ALLOWED));
}

#[test]
fn permission_kept_on_refusal() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan_tk(74, 1), &plan_tk(75, 2), Defect::PermissionKeptOnRefusal, |a, b| {
        update_after(a, b, |a| {
            let with_data = Command::new(CLA_PROP, XFER_UPDATE_PERMISSION, MODE_COMMON, 0).data(vec![0]).le(16);
            assert_eq!(a.sw(&with_data), sw::WRONG_LENGTH);
        })
    });
    assert_eq!((good, bad), (sw::COMMAND_NOT_ALLOWED, OK));
}

#[test]
fn cert_parse_error_6982() {
    let (mut good, mut bad) = xfer_pair(76, Defect::CertParseError6982);
    let cmd = cmds::xfer_update_permission(MODE_PUBLIC, &[1, 2, 3]);
    assert_eq!(good.sw(&cmd), sw::WRONG_DATA);
    assert_eq!(bad.sw(&cmd), sw::SECURITY_NOT_SATISFIED);
}

#[test]
fn key_update_lengths_lenient() {
    let (mut good, mut bad) = xfer_pair(77, Defect::KeyUpdateLengthsLenient);
    let cmd = cmds::xfer_get_transfer_key(MODE_COMMON, &[0; 17], &[]);
    assert_eq!(good.sw(&cmd), sw::WRONG_LENGTH);
    assert_eq!(bad.sw(&cmd), OK);
}

#[test]
fn permission_mode_not_bound() {
    let (mut good, mut bad) = xfer_pair(78, Defect::PermissionModeNotBound);
    let update = cmds::xfer_update_transfer_key(MODE_MULTI, &[0; 68]);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::xfer_update_permission(MODE_COMMON, &[]));
    }
    assert_eq!(good.sw(&update), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(bad.sw(&update), sw::SECURITY_NOT_SATISFIED);
}

#[test]
fn multi_blob_carries_key() {
    let (mut good, mut bad) = xfer_pair(79, Defect::MultiBlobCarriesKey);
    let cmd = cmds::xfer_get_transfer_key(MODE_MULTI, &[0; 16], &[]);
    assert_eq!(good.ok(&cmd).len(), 52);
    assert_eq!(bad.ok(&cmd).len(), 68);
}

#[test]
fn transfer_key_mode_unchecked() {
    let (mut good, mut bad) = xfer_pair(80, Defect::TransferKeyModeUnchecked);
    let cmd = cmds::xfer_get_transfer_key(5, &[0; 16], &[]);
    assert_eq!(good.sw(&cmd), sw::WRONG_P1P2);
    assert_eq!(bad.sw(&cmd), OK);
}

#[test]
fn transfer_key_clears_permission() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan_tk(81, 1), &plan_tk(82, 2), Defect::TransferKeyClearsPermission, |a, b| {
        update_after(a, b, |a| {
            a.ok(&cmds::xfer_get_transfer_key(MODE_COMMON, &[0; 16], &[]));
        })
    });
    assert_eq!((good, bad), (OK, sw::COMMAND_NOT_ALLOWED));
}

/// Public-mode permission on A for B's certificate; returns (A's certificate, the random).
fn public_permission(a: &mut Bench, b: &mut Bench) -> (Vec<u8>, Vec<u8>) {
    let ca = a.ok(&cmds::xfer_certificate());
    let cb = b.ok(&cmds::xfer_certificate());
    (ca, a.ok(&cmds::xfer_update_permission(MODE_PUBLIC, &cb)))
}

#[test]
fn update_public_min_length_64() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan_tk(83, 1), &plan_tk(84, 2), Defect::UpdatePublicMinLength64, |a, b| {
        public_permission(a, b);
        a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &[0; 160]))
    });
    assert_eq!((good, bad), (sw::WRONG_LENGTH, sw::SECURITY_NOT_SATISFIED));
}

#[test]
fn update_signature_unchecked() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan_tk(85, 1), &plan_tk(86, 2), Defect::UpdateSignatureUnchecked, |a, b| {
        let (ca, random) = public_permission(a, b);
        let genuine = b.ok(&cmds::xfer_get_transfer_key(MODE_PUBLIC, &random, &ca));
        let other = b.ok(&cmds::xfer_get_transfer_key(MODE_PUBLIC, &[0; 16], &ca));
        // The ciphertext for A with the signature made over another ciphertext and random.
        let mixed = [&genuine[..117], &other[117..]].concat();
        (a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &mixed)), a.info().tkid)
    });
    assert_eq!(good, (sw::SECURITY_NOT_SATISFIED, 1));
    assert_eq!(bad, (OK, 2));
}

#[test]
fn update_decrypt_error_6a80() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan_tk(87, 1), &plan_tk(88, 2), Defect::UpdateDecryptError6A80, |a, b| {
        let (_, random) = public_permission(a, b);
        // B signs a ciphertext encrypted to its own key, not to A's.
        let cb = b.ok(&cmds::xfer_certificate());
        let msg = b.ok(&cmds::xfer_get_transfer_key(MODE_PUBLIC, &random, &cb));
        a.sw(&cmds::xfer_update_transfer_key(MODE_PUBLIC, &msg))
    });
    assert_eq!((good, bad), (sw::SECURITY_NOT_SATISFIED, sw::WRONG_DATA));
}

#[test]
fn multi_moves_id_only() {
    let k = keys();
    // A has no preloaded key 2: mode 03 must refuse (6984).
    let (good, bad) = with_peer(&k, &plan_tk(89, 1), &plan_tk(90, 2), Defect::MultiMovesIdOnly, |a, b| {
        (key_update(a, b, MODE_MULTI), a.info().tkid)
    });
    assert_eq!(good, (sw::REF_DATA_NOT_USABLE, 1));
    assert_eq!(bad, (OK, 2), "the ID moved, the key did not");
}

#[test]
fn send_session_kept_on_refusal() {
    let (mut good, mut bad) = xfer_pair(91, Defect::SendSessionKeptOnRefusal);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::xfer_send_permission(100, DATE));
        assert_eq!(b.sw(&cmds::xfer_send_permission(0, DATE)), sw::WRONG_DATA);
    }
    assert_eq!(probe_session(&mut good), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(probe_session(&mut bad), sw::SECURITY_NOT_SATISFIED);
}

#[test]
fn transfer_lengths_lenient() {
    let (mut good, mut bad) = xfer_pair(92, Defect::TransferLengthsLenient);
    let nine = Command::new(CLA_PROP, XFER_SEND_PERMISSION, 0, 0)
        .data([&100u32.to_be_bytes()[..], &DATE.to_be_bytes(), &[0]].concat())
        .le(16);
    assert_eq!(good.sw(&nine), sw::WRONG_LENGTH);
    assert_eq!(bad.sw(&nine), OK);
}

#[test]
fn zero_transfer_allowed() {
    let (mut good, mut bad) = xfer_pair(93, Defect::ZeroTransferAllowed);
    assert_eq!(good.sw(&cmds::xfer_send_permission(0, DATE)), sw::WRONG_DATA);
    assert_eq!(bad.sw(&cmds::xfer_send_permission(0, DATE)), OK);
}

#[test]
fn send_log_drops_newest() {
    let (mut good, mut bad) = xfer_pair(94, Defect::SendLogDropsNewest);
    let oldest_after_five = |b: &mut Bench| {
        let first = b.ok(&cmds::xfer_send_permission(100, DATE));
        for _ in 0..4 {
            b.ok(&cmds::xfer_send_permission(100, DATE));
        }
        b.sw(&cmds::xfer_cancel_proof(&proof_request(100, DATE, &first, &WRONG16)))
    };
    assert_eq!(oldest_after_five(&mut good), sw::REF_DATA_NOT_FOUND, "the oldest of five left the log");
    assert_eq!(oldest_after_five(&mut bad), OK);
}

#[test]
fn send_length_checked_after_session() {
    let (mut good, mut bad) = xfer_pair(95, Defect::SendLengthCheckedAfterSession);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::xfer_send_permission(100, DATE));
        assert_eq!(b.sw(&cmds::xfer_send(&[0; 16], &[0; 15])), sw::WRONG_LENGTH);
    }
    assert_eq!(probe_session(&mut good), sw::SECURITY_NOT_SATISFIED);
    assert_eq!(probe_session(&mut bad), sw::COMMAND_NOT_ALLOWED);
}

#[test]
fn send_session_kept_on_bad_challenge() {
    let (mut good, mut bad) = xfer_pair(96, Defect::SendSessionKeptOnBadChallenge);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::xfer_send_permission(100, DATE));
        assert_eq!(probe_session(b), sw::SECURITY_NOT_SATISFIED);
    }
    assert_eq!(probe_session(&mut good), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(probe_session(&mut bad), sw::SECURITY_NOT_SATISFIED);
}

#[test]
fn last_debit_not_recorded() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan(97), &plan(98), Defect::LastDebitNotRecorded, |a, b| {
        assert_eq!(transfer(a, b, 100, DATE), [OK, OK, OK, OK]);
        (a.sw(&cmds::xfer_read_state(2)), a.info().balance)
    });
    assert_eq!(good, (OK, 400));
    assert_eq!(bad, (sw::REF_DATA_NOT_FOUND, 400));
}

#[test]
fn receive_answers_old_balance() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan(99), &plan(100), Defect::ReceiveAnswersOldBalance, |r, s| {
        let rnd_send = s.ok(&cmds::xfer_send_permission(100, DATE));
        let rb = r.ok(&cmds::xfer_receive_permission(100, DATE, &rnd_send));
        let rc = s.ok(&cmds::xfer_send(&rb[..16], &rb[16..]));
        (be32(&r.ok(&cmds::xfer_receive(&rc)), 0), r.info().balance)
    });
    assert_eq!(good, (600, 600));
    assert_eq!(bad, (500, 600));
}

#[test]
fn no_credit_status_swapped() {
    let (mut good, mut bad) = xfer_pair(101, Defect::NoCreditStatusSwapped);
    let sws = |b: &mut Bench| (b.sw(&cmds::xfer_receive(&WRONG16)), b.sw(&cmds::xfer_cancel_pending(&WRONG16)));
    assert_eq!(sws(&mut good), (sw::COMMAND_NOT_ALLOWED, sw::REF_DATA_NOT_FOUND));
    assert_eq!(sws(&mut bad), (sw::REF_DATA_NOT_FOUND, sw::COMMAND_NOT_ALLOWED));
}

#[test]
fn bad_challenge_clears_credit() {
    let (mut good, mut bad) = xfer_pair(102, Defect::BadChallengeClearsCredit);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::xfer_receive_permission(100, DATE, &[1; 16]));
        assert_eq!(b.sw(&cmds::xfer_receive(&WRONG16)), sw::SECURITY_NOT_SATISFIED);
    }
    assert!(good.info().pending);
    assert!(!bad.info().pending);
}

#[test]
fn pending_state_randoms_swapped() {
    let (mut good, mut bad) = xfer_pair(103, Defect::PendingStateRandomsSwapped);
    let rnd_send_echoed = |b: &mut Bench| {
        b.ok(&cmds::xfer_receive_permission(100, DATE, &[1; 16]));
        b.ok(&cmds::xfer_read_state(1))[8..24] == [1; 16]
    };
    assert!(rnd_send_echoed(&mut good));
    assert!(!rnd_send_echoed(&mut bad));
}

#[test]
fn last_debit_state_without_challenge() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan(104), &plan(105), Defect::LastDebitStateWithoutChallenge, |a, b| {
        assert_eq!(transfer(a, b, 100, DATE), [OK, OK, OK, OK]);
        a.ok(&cmds::xfer_read_state(2)).len()
    });
    assert_eq!((good, bad), (56, 40));
}

#[test]
fn read_state_empty_zeros() {
    let (mut good, mut bad) = xfer_pair(106, Defect::ReadStateEmptyZeros);
    assert_eq!(good.sw(&cmds::xfer_read_state(1)), sw::REF_DATA_NOT_FOUND);
    assert_eq!(bad.ok(&cmds::xfer_read_state(1)), vec![0; 40]);
}

#[test]
fn cancel_does_not_clear_credit() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan(107), &plan(108), Defect::CancelDoesNotClearCredit, |r, s| {
        let rnd_send = s.ok(&cmds::xfer_send_permission(100, DATE));
        r.ok(&cmds::xfer_receive_permission(100, DATE, &rnd_send));
        let proof = s.ok(&cmds::xfer_cancel_proof(&r.ok(&cmds::xfer_read_state(1))));
        (r.sw(&cmds::xfer_cancel_pending(&proof)), r.info().pending)
    });
    assert_eq!(good, (OK, false));
    assert_eq!(bad, (OK, true));
}

#[test]
fn cancel_proof_without_tag() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan(109), &plan(110), Defect::CancelProofWithoutTag, |s, r| {
        let rnd_send = s.ok(&cmds::xfer_send_permission(100, DATE));
        r.ok(&cmds::xfer_receive_permission(100, DATE, &rnd_send));
        let proof = s.ok(&cmds::xfer_cancel_proof(&r.ok(&cmds::xfer_read_state(1))));
        r.sw(&cmds::xfer_cancel_pending(&proof))
    });
    assert_eq!((good, bad), (OK, sw::SECURITY_NOT_SATISFIED), "the receiver refuses the untagged proof");
}

#[test]
fn cancel_proof_unknown_session() {
    let (mut good, mut bad) = xfer_pair(111, Defect::CancelProofUnknownSession);
    let cmd = cmds::xfer_cancel_proof(&proof_request(100, DATE, &[9; 16], &[8; 16]));
    assert_eq!(good.sw(&cmd), sw::REF_DATA_NOT_FOUND);
    assert_eq!(bad.sw(&cmd), OK);
}

#[test]
fn cancel_proof_ignores_amount() {
    let (mut good, mut bad) = xfer_pair(112, Defect::CancelProofIgnoresAmount);
    let other_amount = |b: &mut Bench| {
        let rnd_send = b.ok(&cmds::xfer_send_permission(100, DATE));
        b.sw(&cmds::xfer_cancel_proof(&proof_request(101, DATE, &rnd_send, &WRONG16)))
    };
    assert_eq!(other_amount(&mut good), sw::WRONG_DATA);
    assert_eq!(other_amount(&mut bad), OK);
}

#[test]
fn cancel_proof_for_debited() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan(113), &plan(114), Defect::CancelProofForDebited, |s, r| {
        assert_eq!(transfer(s, r, 100, DATE), [OK, OK, OK, OK]);
        let debit = s.ok(&cmds::xfer_read_state(2));
        s.sw(&cmds::xfer_cancel_proof(&debit[..40]))
    });
    assert_eq!((good, bad), (sw::COMMAND_NOT_ALLOWED, OK));
}

#[test]
fn cancel_proof_keeps_session() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan(115), &plan(116), Defect::CancelProofKeepsSession, |s, r| {
        let rnd_send = s.ok(&cmds::xfer_send_permission(100, DATE));
        let rb = r.ok(&cmds::xfer_receive_permission(100, DATE, &rnd_send));
        s.ok(&cmds::xfer_cancel_proof(&r.ok(&cmds::xfer_read_state(1))));
        (s.sw(&cmds::xfer_send(&rb[..16], &rb[16..])), s.info().balance)
    });
    assert_eq!(good, (sw::COMMAND_NOT_ALLOWED, 500));
    assert_eq!(bad, (OK, 400), "debited after proving it never would");
}

#[test]
fn cancel_proof_once() {
    let (mut good, mut bad) = xfer_pair(117, Defect::CancelProofOnce);
    let twice = |b: &mut Bench| {
        let rnd_send = b.ok(&cmds::xfer_send_permission(100, DATE));
        let cmd = cmds::xfer_cancel_proof(&proof_request(100, DATE, &rnd_send, &WRONG16));
        b.ok(&cmd);
        b.sw(&cmd)
    };
    assert_eq!(twice(&mut good), OK);
    assert_eq!(twice(&mut bad), sw::COMMAND_NOT_ALLOWED);
}

#[test]
fn send_session_kept_after_debit() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan(118), &plan(119), Defect::SendSessionKeptAfterDebit, |s, r| {
        let rnd_send = s.ok(&cmds::xfer_send_permission(100, DATE));
        let rb = r.ok(&cmds::xfer_receive_permission(100, DATE, &rnd_send));
        s.ok(&cmds::xfer_send(&rb[..16], &rb[16..]));
        (s.sw(&cmds::xfer_send(&rb[..16], &rb[16..])), s.info().balance)
    });
    assert_eq!(good, (sw::COMMAND_NOT_ALLOWED, 400));
    assert_eq!(bad, (OK, 300), "debited twice for one credit");
}

#[test]
fn send_permission_keeps_first_session() {
    let k = keys();
    let (good, bad) = with_peer(&k, &plan(120), &plan(121), Defect::SendPermissionKeepsFirstSession, |s, r| {
        let first = s.ok(&cmds::xfer_send_permission(100, DATE));
        s.ok(&cmds::xfer_send_permission(100, DATE));
        let rb = r.ok(&cmds::xfer_receive_permission(100, DATE, &first));
        s.sw(&cmds::xfer_send(&rb[..16], &rb[16..]))
    });
    assert_eq!((good, bad), (sw::SECURITY_NOT_SATISFIED, OK), "the replaced session still debits");
}

#[test]
fn pending_credit_in_ram() {
    let (mut good, mut bad) = xfer_pair(122, Defect::PendingCreditInRam);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::xfer_receive_permission(100, DATE, &[1; 16]));
        assert!(b.info().pending);
        b.power_cycle();
        b.select(&AID_XFER);
    }
    assert!(good.info().pending);
    assert!(!bad.info().pending, "the credit did not survive the power cycle");
}

#[test]
fn multi_key_not_loaded() {
    let k = keys();
    let mut pa = plan_tk(123, 1);
    pa.slots = vec![2];
    let (good, bad) = with_peer(&k, &pa, &plan_tk(124, 2), Defect::MultiKeyNotLoaded, |a, b| {
        assert_eq!(key_update(a, b, MODE_MULTI), OK);
        // B proves A's key: B's cancel proof over A's pending credit verifies only under the same key.
        let rnd_send = b.ok(&cmds::xfer_send_permission(100, DATE));
        a.ok(&cmds::xfer_receive_permission(100, DATE, &rnd_send));
        let proof = b.ok(&cmds::xfer_cancel_proof(&a.ok(&cmds::xfer_read_state(1))));
        (a.info().tkid, a.sw(&cmds::xfer_cancel_pending(&proof)))
    });
    assert_eq!(good, (2, OK));
    assert_eq!(bad, (2, sw::SECURITY_NOT_SATISFIED), "the ID moved, the key did not");
}

#[test]
fn send_session_survives_select() {
    let (mut good, mut bad) = xfer_pair(125, Defect::SendSessionSurvivesSelect);
    for b in [&mut good, &mut bad] {
        b.ok(&cmds::xfer_send_permission(100, DATE));
        b.select(&AID_CPAY);
        b.select(&AID_XFER);
    }
    assert_eq!(probe_session(&mut good), sw::COMMAND_NOT_ALLOWED);
    assert_eq!(probe_session(&mut bad), sw::SECURITY_NOT_SATISFIED);
}
