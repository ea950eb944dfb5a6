//! The PN532 serial head against the PN532 simulator on real pseudo-terminals: framing,
//! initialisation, card activation, the smoke plan with the same APDUs as in-process, long
//! APDUs chained both ways, line garbage, NACKs, timeouts, card removal; and libnfc's
//! `nfc-list` listing the simulated card.

use cardbench::apdu::{Command, Response};
use cardbench::card::ins::{AID_PURSE, CLA_PROP, PURSE_READ_ALL};
use cardbench::card::{Protocol, VirtualCard};
use cardbench::cmds;
use cardbench::engine::purse::charge;
use cardbench::engine::{Outcome, Terminal};
use cardbench::event::{Event, Recorder, RowKind};
use cardbench::head::pn532::commands::{self as pc, Firmware, TargetA};
use cardbench::head::pn532::frame::{self, Decoder, Frame, FrameError, ACK, ERROR_FRAME, NACK, TFI_HOST, TFI_PN532};
use cardbench::head::pn532::{Pn532Config, Pn532Head};
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::{Head, HeadError};
use cardbench::issuance::CardPlan;
use cardbench::keys::Keyset;
use cardbench::lab::{personalize_virtual, Lab, LabHead};
use cardbench::link::Link;
use cardbench::sim::pn532::{Fault, FaultRule, Pn532Sim, PtySim};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers

fn keys() -> Keyset {
    Keyset::from_seed("pn532-tests", vec![])
}

fn plan(last: u8) -> CardPlan {
    CardPlan { balance: 5000, ..CardPlan::new([0xCB, 0, 0, 0, 0, 0, 0x53, last]) }
}

fn card(last: u8, protocol: Protocol) -> VirtualCard {
    personalize_virtual(&plan(last), protocol, &keys()).unwrap()
}

fn head_on(sim: &PtySim, timeout_ms: u64) -> Pn532Head {
    let mut cfg = Pn532Config::new(sim.path().to_str().unwrap());
    cfg.timeout = Duration::from_millis(timeout_ms);
    Pn532Head::new("P", cfg)
}

fn rig(last: u8, protocol: Protocol) -> (PtySim, Pn532Head) {
    let sim = PtySim::spawn(Pn532Sim::new(Some(card(last, protocol)))).unwrap();
    let head = head_on(&sim, 2000);
    (sim, head)
}

fn virtual_head(last: u8, protocol: Protocol) -> VirtualHead {
    let mut h = VirtualHead::new("V");
    h.insert(card(last, protocol));
    h
}

fn exec(h: &mut dyn Head, cmd: &Command) -> Result<Response, HeadError> {
    let rec = Recorder::disabled();
    Link::new(h, &rec).exec("t", cmd)
}

/// Raw bytes of one transmit (no procedure-byte handling).
fn raw(h: &mut dyn Head, apdu: &[u8]) -> Result<Vec<u8>, HeadError> {
    h.transmit(apdu).map(|w| w.response)
}

fn info(pd: &[u8]) -> Vec<u8> {
    frame::encode(TFI_HOST, pd).unwrap()
}

/// Feed a host frame to a woken simulator and decode everything it answers.
fn ask(sim: &mut Pn532Sim, bytes: &[u8]) -> Vec<Frame> {
    let out = sim.feed(bytes, Instant::now());
    let mut d = Decoder::new();
    d.push(&out);
    let mut frames = Vec::new();
    while let Some(f) = d.next_frame() {
        frames.push(f.expect("the simulator sends well-formed frames"));
    }
    frames
}

fn awake_sim(card: Option<VirtualCard>) -> Pn532Sim {
    let mut s = Pn532Sim::new(card);
    assert!(s.feed(&[0x55, 0x55, 0, 0, 0], Instant::now()).is_empty());
    assert!(s.is_awake());
    s
}

fn answer(frames: &[Frame]) -> Vec<u8> {
    assert_eq!(frames.first(), Some(&Frame::Ack), "{frames:?}");
    match frames.get(1) {
        Some(Frame::Info { tfi: TFI_PN532, data }) => data.clone(),
        other => panic!("expected an answer frame, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Frame codec

#[test]
fn normal_frames_round_trip_with_the_manuals_checksums() {
    // UM0701-02 §6.2.1.1 example: GetFirmwareVersion.
    assert_eq!(info(&[0x02]), [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00]);
    for n in [1usize, 2, 17, 200, 254] {
        let pd: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        let bytes = info(&pd);
        assert_eq!(bytes.len(), n + 8, "normal frame for LEN {}", n + 1);
        assert_eq!(bytes[3].wrapping_add(bytes[4]), 0);
        let mut d = Decoder::new();
        d.push(&bytes);
        assert_eq!(d.next_frame(), Some(Ok(Frame::Info { tfi: TFI_HOST, data: pd })));
        assert_eq!(d.next_frame(), None);
        assert_eq!(d.pending(), 0, "postamble consumed");
    }
}

#[test]
fn extended_frames_round_trip_and_start_above_255_bytes() {
    // 255 bytes with TFI: still normal. 256: extended.
    assert_eq!(info(&[0u8; 254])[3], 0xFF);
    assert_eq!(info(&[0u8; 254])[4], 0x01);
    let pd: Vec<u8> = (0..264u32).map(|i| (i % 251) as u8).collect();
    let bytes = info(&pd);
    assert_eq!(&bytes[..5], &[0x00, 0x00, 0xFF, 0xFF, 0xFF]);
    assert_eq!((bytes[5], bytes[6]), (0x01, 0x09), "LENm LENl = 265");
    assert_eq!(bytes[5].wrapping_add(bytes[6]).wrapping_add(bytes[7]), 0, "LCS");
    let mut d = Decoder::new();
    d.push(&bytes);
    assert_eq!(d.next_frame(), Some(Ok(Frame::Info { tfi: TFI_HOST, data: pd.clone() })));
    // Hosts may use the extended form for short frames too.
    let short = frame::encode_extended(TFI_PN532, &[0x03, 0x32, 0x01, 0x06, 0x07]).unwrap();
    d.push(&short);
    assert_eq!(d.next_frame(), Some(Ok(Frame::info(TFI_PN532, vec![0x03, 0x32, 0x01, 0x06, 0x07]))));
    // Beyond the firmware's 265 bytes: refused.
    assert_eq!(frame::encode(TFI_HOST, &[0u8; 265]), Err(FrameError::TooLong(266)));
}

#[test]
fn ack_nack_and_error_frames_decode() {
    let mut d = Decoder::new();
    d.push(&ACK);
    d.push(&NACK);
    d.push(&ERROR_FRAME);
    assert_eq!(d.next_frame(), Some(Ok(Frame::Ack)));
    assert_eq!(d.next_frame(), Some(Ok(Frame::Nack)));
    assert_eq!(d.next_frame(), Some(Ok(Frame::Error)));
    assert_eq!(d.next_frame(), None);
    assert_eq!(Frame::Error.to_bytes().unwrap(), ERROR_FRAME);
}

#[test]
fn checksum_errors_are_reported_and_the_decoder_resynchronises() {
    let good = info(&[0x4A, 0x01, 0x00]);
    // Broken DCS: the frame is dropped whole, the next one decodes.
    let mut bad = good.clone();
    let dcs = bad.len() - 2;
    bad[dcs] ^= 0x01;
    let mut d = Decoder::new();
    d.push(&bad);
    d.push(&good);
    assert!(matches!(d.next_frame(), Some(Err(FrameError::DataChecksum { .. }))));
    assert_eq!(d.next_frame(), Some(Ok(Frame::info(TFI_HOST, vec![0x4A, 0x01, 0x00]))));
    // Broken LCS: a false start; the search goes on right after it.
    let mut d = Decoder::new();
    d.push(&[0x00, 0xFF, 0x05, 0x05]);
    d.push(&good);
    assert!(matches!(d.next_frame(), Some(Err(FrameError::LengthChecksum { len: 5, lcs: 5 }))));
    assert_eq!(d.next_frame(), Some(Ok(Frame::info(TFI_HOST, vec![0x4A, 0x01, 0x00]))));
    // Extended LCS.
    let mut d = Decoder::new();
    d.push(&[0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00]);
    assert!(matches!(d.next_frame(), Some(Err(FrameError::LengthChecksum { len: 256, .. }))));
}

#[test]
fn garbage_and_split_delivery_do_not_confuse_the_decoder() {
    let pd = [0x41, 0x00, 0x90, 0x00];
    let mut wire = vec![0x55, 0x55, 0x13, 0xFF, 0x00, 0x37, 0xFF];
    wire.extend(frame::encode(TFI_PN532, &pd).unwrap());
    wire.extend([0xAA, 0x00]);
    wire.extend(ACK);
    let mut d = Decoder::new();
    let mut got = Vec::new();
    for b in &wire {
        d.push(&[*b]);
        while let Some(f) = d.next_frame() {
            got.push(f);
        }
    }
    assert_eq!(got, vec![Ok(Frame::info(TFI_PN532, pd.to_vec())), Ok(Frame::Ack)]);
    assert!(d.skipped() >= 7, "skipped {}", d.skipped());
}

#[test]
fn ats_and_pcsc_atr_follow_pcsc_part_3() {
    let t = TargetA {
        tg: 1,
        atqa: [0x00, 0x44],
        sak: 0x20,
        uid: vec![1, 2, 3, 4, 5, 6, 7],
        ats: Some(vec![0x0A, 0x78, 0x80, 0x70, 0x02, b'A', b'B', b'C', b'D', b'E']),
    };
    assert_eq!(t.historical_bytes(), Some(&b"ABCDE"[..]));
    let atr = t.pcsc_atr();
    assert_eq!(&atr[..4], &[0x3B, 0x85, 0x80, 0x01]);
    assert_eq!(&atr[4..9], b"ABCDE");
    assert_eq!(atr[1..].iter().fold(0, |a, b| a ^ b), 0, "TCK");
    let mut list = vec![0x01];
    list.extend(t.to_bytes());
    assert_eq!(TargetA::parse_list(&list), Ok(Some(t)));
    assert_eq!(TargetA::parse_list(&[0x00]), Ok(None));
    assert!(TargetA::parse_list(&[0x01, 0x01, 0x00]).is_err());
    assert_eq!(pc::atr_historical_bytes(&card(1, Protocol::T1).atr()), Some(&b"CARDBENCH"[..]));
    assert_eq!(pc::atr_historical_bytes(&card(1, Protocol::T0).atr()), Some(&b"CARDBENCH"[..]));
}

// ---------------------------------------------------------------------------------------------
// The simulator as the manual describes it (no pty)

#[test]
fn simulator_sleeps_until_the_wake_up_byte_and_after_power_down() {
    let mut s = Pn532Sim::new(None);
    assert!(s.feed(&info(&[0x02]), Instant::now()).is_empty(), "LowVbat: a frame without wake-up is lost");
    let mut wake = vec![0x55, 0x55, 0, 0, 0, 0];
    wake.extend(info(&[0x14, 0x01]));
    let f = ask(&mut s, &wake);
    assert_eq!(answer(&f), [0x15]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x02]))), [0x03, 0x32, 0x01, 0x06, 0x07]);
    // PowerDown answers, then sleeps.
    assert_eq!(answer(&ask(&mut s, &info(&[0x16, 0xF0]))), [0x17, 0x00]);
    assert!(!s.is_awake());
    assert!(ask(&mut s, &info(&[0x02])).is_empty());
    let mut wake = vec![0x55, 0, 0, 0];
    wake.extend(info(&[0x02]));
    assert_eq!(answer(&ask(&mut s, &wake)), [0x03, 0x32, 0x01, 0x06, 0x07]);
    assert_eq!(s.stats().power_downs, 1);
}

#[test]
fn simulator_answers_libnfcs_commands() {
    let mut s = awake_sim(Some(card(2, Protocol::T1)));
    // Diagnose communication line test: echo.
    assert_eq!(answer(&ask(&mut s, &info(b"\x00\x00libnfc"))), b"\x01\x00libnfc");
    // SetParameters, RFConfiguration (field, timings, retries), registers.
    assert_eq!(answer(&ask(&mut s, &info(&[0x12, 0x14]))), [0x13]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x32, 0x01, 0x00]))), [0x33]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x32, 0x02, 0x00, 0x0B, 0x0A]))), [0x33]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x32, 0x05, 0xFF, 0x01, 0x02]))), [0x33]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x06, 0x63, 0x02, 0x63, 0x03]))), [0x07, 0x80, 0x80]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x08, 0x63, 0x3D, 0x07, 0x63, 0x02, 0x00]))), [0x09]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x06, 0x63, 0x3D, 0x63, 0x02]))), [0x07, 0x07, 0x00]);
    // Other modulations find nothing.
    for brty in [0x01, 0x02, 0x03, 0x04] {
        assert_eq!(answer(&ask(&mut s, &info(&[0x4A, 0x01, brty, 0x00, 0xFF, 0xFF, 0x00, 0x00]))), [0x4B, 0x00]);
    }
    // Type A: the card, with ATS.
    let a = answer(&ask(&mut s, &info(&[0x4A, 0x01, 0x00])));
    assert_eq!(a[0], 0x4B);
    let t = TargetA::parse_list(&a[1..]).unwrap().unwrap();
    assert_eq!((t.tg, t.atqa, t.sak), (1, [0x00, 0x44], 0x20));
    assert_eq!(t.uid, [0, 0, 0, 0, 0, 0x53, 2]);
    assert!(t.is_iso14443_4());
    assert_eq!(t.historical_bytes(), Some(&b"CARDBENCH"[..]));
    // GetGeneralStatus shows the target; presence test passes; deselect, list again.
    assert_eq!(answer(&ask(&mut s, &info(&[0x04]))), [0x05, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x00, 0x06]))), [0x01, 0x00]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x44, 0x00]))), [0x45, 0x00]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x00, 0x06]))), [0x01, 0x01]);
    // Raw frames (B' / ST / ASK probes) time out.
    assert_eq!(answer(&ask(&mut s, &info(&[0x42, 0x06, 0x00]))), [0x43, 0x01]);
    assert_eq!(answer(&ask(&mut s, &info(&[0x52, 0x00]))), [0x53, 0x00]);
    // InDataExchange without a target: not acceptable.
    assert_eq!(answer(&ask(&mut s, &info(&[0x40, 0x01, 0x00, 0xA4, 0x04, 0x00]))), [0x41, 0x27]);
}

#[test]
fn simulator_nack_retransmits_and_broken_or_unknown_frames_get_the_error_frame() {
    let mut s = awake_sim(None);
    let first = s.feed(&info(&[0x02]), Instant::now());
    let again = s.feed(&NACK, Instant::now());
    assert_eq!(&first[..6], &ACK);
    assert_eq!(again, &first[6..], "NACK: the last answer again, without a new ACK");
    // Broken data checksum: the error frame instead of an ACK.
    let mut bad = info(&[0x02]);
    let n = bad.len();
    bad[n - 2] ^= 0xFF;
    assert_eq!(s.feed(&bad, Instant::now()), ERROR_FRAME);
    // Unknown command, wrong parameters, wrong TFI: ACK, then the error frame.
    for f in [info(&[0x7E]), info(&[0x14, 0x09]), info(&[0x32, 0x05, 0x01]), frame::encode(TFI_PN532, &[0x02]).unwrap()]
    {
        assert_eq!(ask(&mut s, &f), vec![Frame::Ack, Frame::Error]);
    }
    assert_eq!(s.stats().bad_frames, 1);
    assert_eq!(s.stats().nacks, 1);
    assert_eq!(s.stats().error_frames, 5);
}

#[test]
fn simulator_holds_an_apdus_answer_for_the_cards_modelled_service_time() {
    use cardbench::head::service::{Dist, ServiceModel};
    let mut s = awake_sim(Some(card(9, Protocol::T1)));
    s.set_service(ServiceModel::new(None, vec![(0xB2, Dist::Fixed(Duration::from_millis(40)))], 0));
    assert_eq!(answer(&ask(&mut s, &info(&[0x4A, 0x01, 0x00])))[..2], [0x4B, 0x01]);
    // An unmodelled INS (SELECT) is answered at once.
    let select = [0x40, 0x01, 0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0, 0, 0x07, 0x77, 0, 0x01];
    assert_eq!(answer(&ask(&mut s, &info(&select))), [0x41, 0x00, 0x90, 0x00]);
    // READ FIELD: ACKed at once, answered 40 ms after the frame arrived, not a tick sooner.
    let t0 = Instant::now();
    let out = s.feed(&info(&[0x40, 0x01, 0x80, 0xB2, 0x01, 0x00, 0x08]), t0);
    assert_eq!(out, ACK);
    assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(40)));
    assert!(s.tick(t0 + Duration::from_micros(39_999)).is_empty());
    let mut d = Decoder::new();
    d.push(&s.tick(t0 + Duration::from_millis(40)));
    match d.next_frame() {
        Some(Ok(Frame::Info { tfi: TFI_PN532, data })) => assert_eq!((data[0], data[1], data.len()), (0x41, 0x00, 12)),
        other => panic!("expected the answer, got {other:?}"),
    }
    assert_eq!(s.stats().delayed_sent, 0, "the card's time is no link fault");
}

#[test]
fn simulator_waits_for_a_card_with_infinite_retries_until_the_host_aborts() {
    let mut s = awake_sim(None);
    // Default MxRtyPassiveActivation 0xFF: no answer while no card comes.
    assert_eq!(ask(&mut s, &info(&[0x4A, 0x01, 0x00])), vec![Frame::Ack]);
    assert!(s.tick(Instant::now()).is_empty());
    s.insert_card(card(3, Protocol::T0));
    let out = s.tick(Instant::now());
    let mut d = Decoder::new();
    d.push(&out);
    match d.next_frame() {
        Some(Ok(Frame::Info { data, .. })) => assert_eq!(&data[..2], &[0x4B, 0x01]),
        other => panic!("{other:?}"),
    }
    // Host ACK aborts a waiting command.
    s.remove_card();
    assert_eq!(ask(&mut s, &info(&[0x4A, 0x01, 0x00])), vec![Frame::Ack]);
    assert!(s.feed(&ACK, Instant::now()).is_empty());
    s.insert_card(card(3, Protocol::T0));
    assert!(s.tick(Instant::now()).is_empty());
    assert_eq!(s.stats().aborted, 1);
}

#[test]
fn simulator_and_decoder_survive_random_input() {
    let mut rng = ChaCha20Rng::seed_from_u64(532);
    let mut s = awake_sim(Some(card(12, Protocol::T1)));
    let (mut d, mut od) = (Decoder::new(), Decoder::new());
    let t0 = Instant::now();
    for i in 0..3000u32 {
        let mut chunk = Vec::new();
        match rng.next_u32() % 4 {
            // Well-formed frames with random command codes and parameters.
            0 | 1 => {
                let n = (rng.next_u32() % 300) as usize;
                let mut pd = vec![0u8; n.max(1)];
                rng.fill_bytes(&mut pd);
                if rng.next_u32() % 2 == 0 {
                    pd[0] = [0x00, 0x04, 0x06, 0x08, 0x12, 0x14, 0x16, 0x32, 0x40, 0x42, 0x44, 0x4A, 0x52, 0x54, 0x60]
                        [(rng.next_u32() % 15) as usize];
                }
                if let Ok(f) = frame::encode(TFI_HOST, &pd) {
                    chunk.extend(f);
                }
            }
            2 => chunk.extend([ACK, NACK][(rng.next_u32() % 2) as usize]),
            _ => {
                let mut g = vec![0u8; (rng.next_u32() % 40) as usize];
                rng.fill_bytes(&mut g);
                chunk.extend(g);
            }
        }
        let now = t0 + Duration::from_millis(u64::from(i) * 7);
        let mut out = s.feed(&chunk, now);
        out.extend(s.tick(now));
        od.push(&out);
        while let Some(f) = od.next_frame() {
            assert!(f.is_ok(), "the simulator sent a broken frame: {f:?}");
        }
        d.push(&chunk);
        while d.next_frame().is_some() {}
        if !s.is_awake() {
            s.feed(&[0x55], now);
        }
    }
    assert!(s.stats().frames > 1000, "{:?}", s.stats());
}

// ---------------------------------------------------------------------------------------------
// Driver against the simulator on a pty pair

#[test]
fn driver_wakes_the_pn532_checks_the_link_and_reads_the_firmware() {
    let (sim, mut h) = rig(4, Protocol::T1);
    assert!(!sim.sim().is_awake());
    h.connect().unwrap();
    assert_eq!(h.firmware(), Some(Firmware::PN532_V1_6));
    assert_eq!(h.firmware().unwrap().to_string(), "PN532 v1.6");
    assert!(sim.sim().is_awake());
    let st = h.stats();
    assert_eq!((st.connects, st.nacks, st.timeouts, st.in_doubt, st.resyncs), (1, 0, 0, 0, 0));
    assert_eq!(st.frames_sent, 5, "SAMConfiguration, Diagnose, GetFirmwareVersion, RFConfiguration, SetParameters");
    // Raw commands for diagnostics: GetGeneralStatus (no error, no field, no target, SAM ok).
    assert_eq!(h.command(&pc::Command::GetGeneralStatus, Duration::from_secs(1)).unwrap(), [0, 0, 0, 0]);
    assert_eq!(h.info().driver, "pn532");
    assert_eq!(h.info().reader, sim.path().display().to_string());
}

#[test]
fn driver_lists_the_card_with_its_uid_and_reports_the_pcsc_style_atr() {
    let (sim, mut h) = rig(5, Protocol::T0);
    assert_eq!(h.atr(), None);
    assert!(h.card_present().unwrap());
    assert_eq!(h.atr(), None, "presence check leaves the card unpowered");
    let atr = h.power_on().unwrap();
    let mut want = vec![0x3B, 0x89, 0x80, 0x01];
    want.extend_from_slice(b"CARDBENCH");
    want.push(want[1..].iter().fold(0, |a, b| a ^ b));
    assert_eq!(atr, want);
    assert_eq!(h.atr(), Some(want));
    let t = h.target().unwrap().clone();
    assert_eq!(t.uid, [0, 0, 0, 0, 0, 0x53, 5]);
    assert_eq!(t.uid, sim.sim().card().unwrap().card_id()[1..]);
    assert_eq!((t.atqa, t.sak), ([0x00, 0x44], 0x20));
    assert!(h.card_present().unwrap(), "Diagnose presence test with a powered card");
    h.power_off().unwrap();
    assert_eq!(h.atr(), None);
    assert!(!sim.sim().card().unwrap().is_powered(), "InRelease unpowers the card");
    assert_eq!(raw(&mut h, &[0x00, 0xA4, 0x04, 0x00]), Err(HeadError::Unpowered));
}

/// Every exchange of the smoke plan through four PN532 heads equals the in-process run.
#[test]
fn smoke_plan_through_pn532_heads_gives_the_same_apdus_as_virtual_heads() {
    let n = same_exchanges_through_pn532("profiles/virtual-lab.toml", "test-plans/smoke.toml", |_| true);
    assert!(n > 100, "{n} exchanges");
}

/// Run `plan` on `profile`, twice: all heads in-process, then with the heads `to_pn532` picks
/// served by PN532 simulators on ptys; both runs green with the same exchanges.
fn same_exchanges_through_pn532(profile: &str, plan: &str, to_pn532: impl Fn(&LabHead) -> bool) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan = cardbench::plan::load(&root.join(plan)).unwrap();
    let loaded = cardbench::profile::load(&root.join(profile)).unwrap();
    let run = |heads: &mut Vec<LabHead>, lab: &Lab| {
        plan.bind(|n| cardbench::lab::find_head(heads, n).is_some()).unwrap();
        let (rec, rx) = Recorder::new(&plan.id);
        // Drained while the plan runs: the event queue is bounded, and a whole suite's
        // events outgrow it.
        let drain = std::thread::spawn(move || {
            rx.iter()
                .filter_map(|e| match e {
                    Event::Exchange(x) => {
                        Some((x.head, x.card_id, x.test_step, x.protocol_step, x.command, x.response, x.sw, x.note))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
        });
        let results = cardbench::runner::run_plan(&plan, heads, &rec, &lab.keyset, lab.clock.unwrap(), [7; 32]);
        drop(rec);
        let rows = drain.join().unwrap();
        (results, rows)
    };
    let mut vlab = Lab::from_profile(&loaded).unwrap();
    let mut vheads = std::mem::take(&mut vlab.heads);
    let (vres, vrows) = run(&mut vheads, &vlab);

    let mut plab = Lab::from_profile(&loaded).unwrap();
    let mut sims = Vec::new();
    let mut pheads = Vec::new();
    for mut h in std::mem::take(&mut plab.heads) {
        let card = if to_pn532(&h) { h.head.as_virtual().unwrap().remove() } else { None };
        let Some(card) = card else {
            pheads.push(h);
            continue;
        };
        let sim = PtySim::spawn(Pn532Sim::new(Some(card))).unwrap();
        let head = Pn532Head::new(&h.name, head_on(&sim, 5000).config().clone());
        pheads.push(LabHead { name: h.name, role: h.role, head: Box::new(head) });
        sims.push(sim);
    }
    assert!(!sims.is_empty());
    let start = Instant::now();
    let (pres, prows) = run(&mut pheads, &plab);
    let elapsed = start.elapsed();

    for r in vres.iter().chain(&pres) {
        assert_eq!(cardbench::runner::status_word(&r.status), "passed", "{}: {}", r.id, r.message);
    }
    assert_eq!(vres.len(), pres.len());
    assert_eq!(vrows.len(), prows.len());
    for (i, (v, p)) in vrows.iter().zip(&prows).enumerate() {
        assert_eq!(v, p, "exchange {i} differs");
    }
    let apdus: u64 = sims.iter().map(|s| s.sim().stats().apdus).sum();
    eprintln!(
        "{} on {profile}: {} cases, {} exchanges ({apdus} through {} PN532 ptys) in {elapsed:?}",
        plan.id,
        pres.len(),
        prows.len(),
        sims.len()
    );
    prows.len()
}

/// The standard suite with the DUT behind a PN532 (the peer head stays in-process: the suite
/// inserts fresh reference cards into it).
#[test]
fn certification_suite_through_a_pn532_dut_gives_the_same_apdus_as_in_process() {
    let n =
        same_exchanges_through_pn532("profiles/cert-lab.toml", "test-plans/certification.toml", |h| h.role == "dut");
    assert!(n > 500, "{n} exchanges");
}

#[test]
fn long_responses_and_long_commands_are_chained_both_ways() {
    let (sim, mut h) = rig(6, Protocol::T1);
    let mut v = virtual_head(6, Protocol::T1);
    h.power_on().unwrap();
    v.power_on().unwrap();
    // A charge leaves a signature and a certificate in the record.
    let ks = keys();
    for hd in [&mut h as &mut dyn Head, &mut v] {
        let mut t = Terminal::new(&ks, 1_780_315_200, ChaCha20Rng::seed_from_u64(9));
        let rec = Recorder::disabled();
        let o = charge(&mut Link::new(hd, &rec), &mut t, 700).unwrap();
        assert!(matches!(o, Outcome::Success(_)), "{o}");
    }
    // READ ALL with an extended Le: the whole record with its certificate in one response.
    let read_all = Command::new(CLA_PROP, PURSE_READ_ALL, 0, 0).le(65536).to_bytes().unwrap();
    for hd in [&mut h as &mut dyn Head, &mut v] {
        assert_eq!(exec(hd, &cmds::select(&AID_PURSE)).unwrap().sw, 0x9000);
    }
    let before = h.stats().frames_sent;
    let long = raw(&mut h, &read_all).unwrap();
    let frames = h.stats().frames_sent - before;
    assert_eq!(long, raw(&mut v, &read_all).unwrap());
    assert!(long.len() > 262, "READ ALL answered {} bytes", long.len());
    assert_eq!(frames as usize, long.len().div_ceil(262), "one InDataExchange per 262 bytes of answer");
    assert_eq!(&long[long.len() - 2..], &[0x90, 0x00]);
    // A command of 600 data bytes (extended Lc): three frames with MI, then the answer.
    for n in [262usize, 263, 600] {
        let cmd = Command::new(0x00, 0xA4, 0x04, 0x00).data(vec![0xA5; n]).to_bytes().unwrap();
        let before = h.stats().frames_sent;
        let r = raw(&mut h, &cmd).unwrap();
        assert_eq!(r, raw(&mut v, &cmd).unwrap(), "SELECT with {n} bytes of AID");
        assert_eq!((h.stats().frames_sent - before) as usize, cmd.len().div_ceil(262));
    }
    // Still in step: the purse answers as before.
    assert_eq!(exec(&mut h, &cmds::select(&AID_PURSE)).unwrap().sw, 0x9000);
    assert_eq!(raw(&mut h, &read_all).unwrap(), long);
    drop(sim);
}

#[test]
fn garbage_on_the_line_and_corrupt_answers_are_recovered() {
    let (sim, mut h) = rig(7, Protocol::T1);
    let mut v = virtual_head(7, Protocol::T1);
    h.power_on().unwrap();
    v.power_on().unwrap();
    let select = cmds::select(&AID_PURSE).to_bytes().unwrap();
    let counter = cmds::read_field(cardbench::card::ins::FIELD_COUNTER, 4).to_bytes().unwrap();
    assert_eq!(raw(&mut h, &select).unwrap(), raw(&mut v, &select).unwrap());
    let expected = raw(&mut v, &counter).unwrap();

    // PN532 → host: noise (with a false start code) before the ACK.
    sim.sim().inject_noise(&[0x13, 0x00, 0xFF, 0x07, 0x07, 0x55, 0xAA, 0x00, 0xFF]);
    assert_eq!(raw(&mut h, &counter).unwrap(), expected);
    assert!(h.stats().bad_frames >= 1 || h.stats().skipped_bytes >= 5, "{:?}", h.stats());

    // PN532 → host: a corrupt answer is NACKed and comes again.
    sim.sim().corrupt_next_answer();
    assert_eq!(raw(&mut h, &counter).unwrap(), expected);
    assert_eq!(h.stats().nacks, 1);
    assert_eq!(sim.sim().stats().nacks, 1);

    // Host → PN532: garbage ending in a false frame header swallows the next command frame.
    // The driver cannot tell a lost frame from a late answer, so it never sends again: the
    // exchange fails in doubt, and the next one proves the line clean first.
    let apdus = sim.sim().stats().apdus;
    let garble = |bytes: &[u8]| {
        let mut line = std::fs::OpenOptions::new().write(true).open(sim.path()).unwrap();
        line.write_all(bytes).unwrap();
    };
    // A long false frame: the PN532 waits for bytes that never come and drops it (silence).
    garble(&[0xDE, 0xAD, 0x00, 0xFF, 0x20, 0xE0, 0x01, 0x02]);
    match raw(&mut h, &counter) {
        Err(e @ HeadError::Timeout(_)) => assert!(e.maybe_delivered()),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.sim().stats().apdus, apdus, "the swallowed command never reached the card");
    assert_eq!(raw(&mut h, &counter).unwrap(), expected);
    // A short false frame ends inside ours with a broken checksum: the PN532 answers with the
    // syntax-error frame and no ACK. That could also be the refusal of garbage before an
    // intact frame, whose ACK and answer are still to come: in doubt, not sent again.
    let apdus = sim.sim().stats().apdus;
    garble(&[0xDE, 0xAD, 0x00, 0xFF, 0x05, 0xFB, 0x01, 0x02]);
    match raw(&mut h, &counter) {
        Err(e @ HeadError::Protocol(_)) => {
            assert!(e.maybe_delivered());
            assert!(e.to_string().contains("syntax-error frame before its ACK"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.sim().stats().apdus, apdus, "the swallowed command never reached the card");
    assert_eq!(sim.sim().stats().bad_frames, 1);
    assert_eq!(raw(&mut h, &counter).unwrap(), expected);
    assert_eq!(h.stats().resyncs, 2);

    // Plain garbage between exchanges.
    let mut line = std::fs::OpenOptions::new().write(true).open(sim.path()).unwrap();
    line.write_all(b"\x00\x00\x00garbage\xFF\xFF").unwrap();
    drop(line);
    assert_eq!(raw(&mut h, &counter).unwrap(), expected);
    assert_eq!(h.stats().connects, 1, "recovered without reconnecting");
    eprintln!("driver {:?}\nsimulator {:?}", h.stats(), sim.sim().stats());
}

#[test]
fn a_silent_pn532_gives_timeouts_and_the_head_recovers_afterwards() {
    let sim = PtySim::spawn(Pn532Sim::new(Some(card(8, Protocol::T1)))).unwrap();
    let mut h = head_on(&sim, 300);
    h.power_on().unwrap();
    let select = cmds::select(&AID_PURSE).to_bytes().unwrap();
    sim.sim().set_stall(true);
    match raw(&mut h, &select) {
        // The time actually waited, never less than the timeout.
        Err(HeadError::Timeout(d)) => assert!(d >= Duration::from_millis(300), "{d:?}"),
        other => panic!("{other:?}"),
    }
    // The driver's ACK aborted the held command.
    let deadline = Instant::now() + Duration::from_secs(2);
    while sim.sim().stats().aborted == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sim.sim().stats().aborted, 1);
    sim.sim().set_stall(false);
    assert_eq!(raw(&mut h, &select).unwrap(), [0x90, 0x00]);
    assert_eq!((h.stats().timeouts, h.stats().in_doubt, h.stats().resyncs), (1, 1, 1));

    // No PN532 at all on the port: nothing ACKs; the first command is sent once, and the
    // error says how long the driver really waited.
    let (_master, slave) = serialport::TTYPort::pair().unwrap();
    let path = serialport::SerialPort::name(&slave).unwrap();
    let mut cfg = Pn532Config::new(&path);
    cfg.timeout = Duration::from_millis(300);
    let mut dead = Pn532Head::new("X", cfg);
    match dead.power_on() {
        Err(HeadError::Timeout(d)) => assert!(d >= Duration::from_millis(300), "{d:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(dead.stats().frames_sent, 1);

    // No port at all.
    let mut gone = Pn532Head::new("Y", Pn532Config::new("/nonexistent/ttyPN532"));
    match gone.card_present() {
        Err(HeadError::ReaderGone(m)) => assert!(m.contains("/nonexistent/ttyPN532"), "{m}"),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Transport safety: a command frame goes out once; late, noisy, broken and missing answers

/// SELECT the purse and read its counter (the card's own count of value writes).
fn purse_counter(h: &mut dyn Head) -> u32 {
    assert_eq!(exec(h, &cmds::select(&AID_PURSE)).unwrap().sw, 0x9000);
    let r = exec(h, &cmds::read_field(cardbench::card::ins::FIELD_COUNTER, 4)).unwrap();
    assert_eq!(r.sw, 0x9000);
    u32::from_be_bytes(r.data[..4].try_into().unwrap())
}

/// A rig whose simulator injects `faults` into InDataExchange frames, with a powered card and
/// the purse's counter read before the faults start.
fn faulty_rig(last: u8, timeout_ms: u64, faults: Vec<FaultRule>) -> (PtySim, Pn532Head, u32) {
    let sim = PtySim::spawn(Pn532Sim::new(Some(card(last, Protocol::T1)))).unwrap();
    let mut h = head_on(&sim, timeout_ms);
    h.power_on().unwrap();
    let c = purse_counter(&mut h);
    sim.sim().set_faults(faults);
    (sim, h, c)
}

/// Three WRITE VALUEs and a charge (WRITE VALUE, signature, certificate) through a link that
/// delays or garbles every ACK: every command runs exactly once on the card.
fn writes_run_exactly_once_through(last: u8, fault: Fault) {
    let (sim, mut h, before) = faulty_rig(last, 5000, vec![FaultRule::every(fault)]);
    let (frames, exchanges) = (h.stats().frames_sent, sim.sim().stats().exchanges);
    // The charge first (the engine checks the record it finds), then raw writes.
    let ks = keys();
    let mut t = Terminal::new(&ks, 1_780_315_200, ChaCha20Rng::seed_from_u64(u64::from(last)));
    let rec = Recorder::disabled();
    let o = charge(&mut Link::new(&mut h, &rec), &mut t, 300).unwrap();
    assert!(matches!(o, Outcome::Success(_)), "{o}");
    for i in 0..3u32 {
        let r = exec(&mut h, &cmds::purse_write_value(10 + i, 20_260_601)).unwrap();
        assert_eq!(r.sw, 0x9000, "WRITE VALUE {i}");
        assert_eq!(r.data, (before - 2 - i).to_be_bytes(), "the card's counter after write {i}");
    }
    let st = h.stats();
    let ss = sim.sim().stats();
    sim.sim().set_faults(vec![]);
    assert_eq!(purse_counter(&mut h), before - 4, "one counter step per write, none twice ({fault:?})");
    // The simulator received exactly the frames the driver wrote, each hit by the fault.
    assert_eq!(ss.exchanges - exchanges, st.frames_sent - frames, "{fault:?}");
    assert_eq!(ss.faulted, ss.exchanges - exchanges, "{fault:?}: {ss:?}");
    assert_eq!((st.timeouts, st.in_doubt, st.resyncs, st.nacks), (0, 0, 0, 0), "{fault:?}: {st:?}");
}

#[test]
fn an_ack_150_ms_late_is_waited_for_and_nothing_runs_twice() {
    writes_run_exactly_once_through(20, Fault::AckDelay(Duration::from_millis(150)));
}

#[test]
fn an_ack_1_s_late_is_waited_for_and_nothing_runs_twice() {
    writes_run_exactly_once_through(21, Fault::AckDelay(Duration::from_secs(1)));
}

#[test]
fn noise_before_the_ack_is_skipped_and_nothing_runs_twice() {
    writes_run_exactly_once_through(22, Fault::Noise);
}

#[test]
fn a_lost_ack_does_not_cost_the_answer() {
    writes_run_exactly_once_through(23, Fault::NoAck);
}

/// Far beyond any exchange timeout: the test releases the held bytes when it wants them.
const HELD: Duration = Duration::from_secs(3600);

/// The next InDataExchange frame the simulator receives (faults count from 1).
fn next_exchange(sim: &PtySim) -> u64 {
    sim.sim().stats().exchanges + 1
}

/// Wait (for a state, not a time) until the simulator has sent what it held back.
fn wait_until_late_bytes_sent(sim: &PtySim) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.sim().delayed_pending() > 0 {
        assert!(Instant::now() < deadline, "the simulator did not send its held-back bytes");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An exchange whose ACK or answer comes after the timeout fails in doubt; the command ran
/// once (or not at all), is not sent again, and the next command gets its own answer even
/// when the late one arrives first. The trace has the in-doubt row.
fn late_answer_is_in_doubt_and_never_taken_for_the_next(last: u8, fault: Fault, ran: u32, wait_for_late: bool) {
    let dir = tempfile::tempdir().unwrap();
    let trace_path = dir.path().join("trace.csv");
    let trace = cardbench::trace::TraceCsv::create(&trace_path, "R1", "pn532-in-doubt").unwrap();
    let (rec, rx) = Recorder::new("pn532-in-doubt");
    let sinks = cardbench::sinks::spawn(rx, vec![Box::new(trace)]);

    // The timeout only bounds the wait: the late bytes are held until the test releases them.
    let (sim, mut h, before) = faulty_rig(last, 1000, vec![]);
    let n = next_exchange(&sim);
    sim.sim().set_faults(vec![FaultRule::at(fault, n)]);
    let frames = h.stats().frames_sent;
    let write = cmds::purse_write_value(50, 20_260_601);
    let err = Link::new(&mut h, &rec).exec("write", &write).unwrap_err();
    match &err {
        HeadError::Timeout(d) => assert!(*d >= Duration::from_millis(1000), "{d:?}"),
        other => panic!("{fault:?}: {other:?}"),
    }
    assert!(err.maybe_delivered(), "a timeout after the frame went out is in doubt");
    assert_eq!(h.stats().frames_sent, frames + 1, "the WRITE VALUE frame went out once");
    assert_eq!(h.stats().in_doubt, 1);

    // The late ACK and answer of the WRITE VALUE reach the host either before the next
    // command, or only once the host's next frame is in the PN532 (so they come first on
    // the line, right where that frame's ACK and answer are expected).
    let frames_in = sim.sim().stats().frames;
    if wait_for_late {
        sim.sim().release_delayed();
        wait_until_late_bytes_sent(&sim);
    }
    // SELECT answers 90 00 alone; the late WRITE VALUE answer carries the counter: taking one
    // for the other would show.
    let r = std::thread::scope(|s| {
        if !wait_for_late {
            s.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                while sim.sim().stats().frames == frames_in {
                    assert!(Instant::now() < deadline, "the host sent nothing after the failure");
                    std::thread::sleep(Duration::from_millis(2));
                }
                sim.sim().release_delayed();
            });
        }
        Link::new(&mut h, &rec).exec("select", &cmds::select(&AID_PURSE)).unwrap()
    });
    assert_eq!((r.sw, r.data.len()), (0x9000, 0), "{fault:?}: SELECT's own answer, not the late one");
    assert_eq!(sim.sim().stats().exchanges, n + 1, "{fault:?}: the WRITE VALUE was not sent again");
    assert_eq!(h.stats().resyncs, 1);
    assert_eq!(purse_counter(&mut h), before - ran, "{fault:?}: the WRITE VALUE ran {ran} time(s)");
    drop(rec);
    assert!(sinks.join().unwrap().is_empty());

    let rows = cardbench::trace::read(&trace_path).unwrap();
    let kinds: Vec<_> = rows.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RowKind::InDoubt, RowKind::Command], "{rows:?}");
    let doubt = &rows[0];
    assert_eq!(doubt.command, write.to_bytes().unwrap());
    assert!(doubt.response.is_empty());
    assert!(doubt.error.contains("timeout after"), "{}", doubt.error);
    assert_eq!((rows[1].response.len(), rows[1].sw), (0, 0x9000));
}

#[test]
fn an_answer_after_the_timeout_is_in_doubt_and_the_next_command_gets_its_own() {
    late_answer_is_in_doubt_and_never_taken_for_the_next(24, Fault::AnswerDelay(HELD), 1, false);
    late_answer_is_in_doubt_and_never_taken_for_the_next(25, Fault::AnswerDelay(HELD), 1, true);
}

#[test]
fn an_ack_after_the_timeout_is_in_doubt_and_the_next_command_gets_its_own() {
    late_answer_is_in_doubt_and_never_taken_for_the_next(26, Fault::AckDelay(HELD), 1, false);
    late_answer_is_in_doubt_and_never_taken_for_the_next(27, Fault::AckDelay(HELD), 1, true);
}

#[test]
fn a_command_lost_on_the_line_is_in_doubt_and_ran_at_most_once() {
    // Nothing comes back at all: the driver cannot know the frame was lost, so it is in doubt
    // all the same; the card shows it never ran.
    late_answer_is_in_doubt_and_never_taken_for_the_next(28, Fault::DropCommand, 0, true);
}

/// A broken or cut answer is NACKed as soon as it is seen: the PN532 sends the same answer
/// again and the card does not run the command again.
#[test]
fn broken_and_cut_answers_are_nacked_at_once_and_the_command_runs_once() {
    for (i, fault) in [Fault::BadLcs, Fault::BadDcs, Fault::Truncate].into_iter().enumerate() {
        let last = 30 + i as u8;
        // A long timeout: only an immediate NACK lets the exchange succeed without a timeout.
        let (sim, mut h, before) = faulty_rig(last, 60_000, vec![]);
        let n = next_exchange(&sim);
        sim.sim().set_faults(vec![FaultRule::at(fault, n)]);
        let r = exec(&mut h, &cmds::purse_write_value(7, 20_260_601)).unwrap();
        assert_eq!((r.sw, r.data.clone()), (0x9000, (before - 1).to_be_bytes().to_vec()), "{fault:?}");
        let st = h.stats();
        assert_eq!((st.nacks, st.timeouts, st.in_doubt), (1, 0, 0), "{fault:?}: {st:?}");
        assert_eq!(sim.sim().stats().nacks, 1);
        if fault == Fault::Truncate {
            assert_eq!(st.truncated, 1);
        } else {
            assert_eq!(st.bad_frames, 1);
        }
        assert_eq!(purse_counter(&mut h), before - 1, "{fault:?}");
        assert_eq!(sim.sim().stats().exchanges, n + 2, "WRITE VALUE once, then READ FIELD");
    }
}

/// Garbage after the ACK that looks like a broken answer gets a NACK, so the PN532 sends its
/// real answer twice: the first copy is the answer, the second is never taken for the next
/// command's, even when it arrives after that command went out.
#[test]
fn a_nack_for_a_ghost_frame_never_lets_the_second_copy_pass_for_the_next_answer() {
    let (sim, mut h, before) = faulty_rig(34, 5000, vec![]);
    let n = next_exchange(&sim);
    // The real answer, and after it the copy the NACK asks for, wait for the test's release.
    sim.sim().set_faults(vec![FaultRule::at(Fault::GhostAfterAck, n), FaultRule::at(Fault::AnswerDelay(HELD), n)]);
    // Each release waits for a state of the simulator, never for a time.
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "simulator never reached: {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let (r, select) = std::thread::scope(|s| {
        s.spawn(|| {
            // Once the driver has NACKed the ghost: the first copy only.
            wait_for("the NACK", &|| sim.sim().stats().nacks == 1);
            sim.sim().release_next_delayed();
            // Once the SELECT frame is in: the second copy, ahead of SELECT's ACK and answer.
            wait_for("the SELECT frame", &|| sim.sim().stats().exchanges == n + 1);
            sim.sim().release_delayed();
        });
        let r = exec(&mut h, &cmds::purse_write_value(9, 20_260_601)).unwrap();
        (r, raw(&mut h, &cmds::select(&AID_PURSE).to_bytes().unwrap()).unwrap())
    });
    assert_eq!((r.sw, r.data.clone()), (0x9000, (before - 1).to_be_bytes().to_vec()));
    assert_eq!(select, [0x90, 0x00], "SELECT's own answer, not the second copy of WRITE VALUE's");
    let st = h.stats();
    assert_eq!((st.nacks, st.in_doubt, st.stale_frames), (1, 0, 1), "{st:?}");
    assert_eq!(sim.sim().stats().nacks, 1);
    assert_eq!(purse_counter(&mut h), before - 1);
    assert_eq!(sim.sim().stats().exchanges, n + 3, "WRITE VALUE once, SELECT, SELECT, READ FIELD");
}

/// An answer that stays broken ends the exchange in doubt after a bounded number of NACKs
/// (the command ran: its answer was lost).
#[test]
fn an_answer_that_stays_broken_fails_in_doubt_after_three_nacks() {
    let (sim, mut h, before) = faulty_rig(33, 60_000, vec![]);
    let n = next_exchange(&sim);
    // Every transmission of that answer broken: the NACKed copies too.
    sim.sim().set_faults(vec![FaultRule::at(Fault::BadDcs, n)]);
    sim.sim().damage_resent_answers(true);
    match raw(&mut h, &cmds::purse_write_value(7, 20_260_601).to_bytes().unwrap()) {
        Err(e @ HeadError::Protocol(_)) => {
            assert!(e.maybe_delivered());
            assert!(e.to_string().contains("after 3 NACKs"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    sim.sim().damage_resent_answers(false);
    assert_eq!(h.stats().nacks, 3);
    assert_eq!(purse_counter(&mut h), before - 1, "ran once, answer lost");
}

#[test]
fn simulator_faults_from_the_command_line_reach_the_driver() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("pn532");
    let mut c = bin();
    c.args(["sim", "pn532", "--profile", "profiles/pn532-sim.toml", "--card", "card-a", "--link"]).arg(&link).args([
        "--fault",
        "noise",
        "--fault",
        "bad-lcs@2",
        "--fault",
        "truncate@3",
    ]);
    let s = SimProc::spawn(c);
    let mut cfg = Pn532Config::new(link.to_str().unwrap());
    cfg.timeout = Duration::from_secs(5);
    let mut h = Pn532Head::new("F", cfg);
    h.power_on().unwrap();
    let c1 = purse_counter(&mut h); // exchanges 1 (SELECT, noise) and 2 (READ FIELD, bad LCS)
    assert_eq!(purse_counter(&mut h), c1); // 3 (SELECT, cut short), 4
    let st = h.stats();
    assert_eq!((st.nacks, st.truncated, st.timeouts, st.in_doubt), (2, 1, 0, 0), "{st:?}");
    assert!(st.bad_frames >= 2, "noise and the broken LCS: {st:?}");
    drop(s);

    let out = bin()
        .args(["sim", "pn532", "--profile", "profiles/pn532-sim.toml", "--card", "card-a", "--fault", "sparks@2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fault 'sparks@2': unknown kind") && err.contains("ack-delay=MS"), "{err}");
}

#[test]
fn card_removed_mute_card_and_no_card_are_head_errors() {
    let (sim, mut h) = rig(9, Protocol::T1);
    let select = cmds::select(&AID_PURSE).to_bytes().unwrap();
    h.power_on().unwrap();
    assert_eq!(raw(&mut h, &select).unwrap(), [0x90, 0x00]);
    // Torn NVM write: the card goes mute (status timeout), and stays unpowered.
    sim.sim().card_mut().unwrap().nvm_mut().tear_after(Some(1));
    assert_eq!(exec(&mut h, &cmds::purse_write_value(5, 5)), Err(HeadError::Mute));
    assert_eq!(raw(&mut h, &select), Err(HeadError::Unpowered));
    sim.sim().card_mut().unwrap().nvm_mut().tear_after(None);
    h.power_on().unwrap();
    assert_eq!(raw(&mut h, &select).unwrap(), [0x90, 0x00]);
    // The card leaves the field.
    let c = sim.sim().remove_card().unwrap();
    assert_eq!(raw(&mut h, &select), Err(HeadError::CardRemoved));
    assert!(!h.card_present().unwrap());
    assert_eq!(h.power_on(), Err(HeadError::NoCard));
    // And comes back.
    sim.sim().insert_card(c);
    assert!(h.card_present().unwrap());
    h.power_on().unwrap();
    assert_eq!(raw(&mut h, &select).unwrap(), [0x90, 0x00]);
    // `--remove-after 1`: one more APDU, then the card is gone.
    sim.sim().remove_after(Some(1));
    assert_eq!(raw(&mut h, &select).unwrap(), [0x90, 0x00]);
    assert_eq!(raw(&mut h, &select), Err(HeadError::CardRemoved));
    let c = sim.sim().remove_card();
    assert!(c.is_none());
    sim.sim().insert_card(card(9, Protocol::T1));
    h.power_on().unwrap();
    // Presence while powered, then removal seen by the presence test.
    assert!(h.card_present().unwrap());
    sim.sim().remove_card();
    assert!(!h.card_present().unwrap());
    assert_eq!(h.atr(), None);
}

#[test]
fn a_killed_simulator_is_a_reader_gone_error_and_a_new_one_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("pn532");
    let mut sim = PtySim::spawn(Pn532Sim::new(Some(card(10, Protocol::T1)))).unwrap();
    sim.symlink(&link).unwrap();
    let mut cfg = Pn532Config::new(link.to_str().unwrap());
    cfg.timeout = Duration::from_millis(500);
    let mut h = Pn532Head::new("L", cfg);
    h.power_on().unwrap();
    sim.stop().unwrap();
    assert!(!link.exists(), "the link goes with the simulator");
    let select = cmds::select(&AID_PURSE).to_bytes().unwrap();
    match raw(&mut h, &select) {
        Err(HeadError::ReaderGone(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(h.card_present(), Err(HeadError::ReaderGone(_))));
    let mut sim = PtySim::spawn(Pn532Sim::new(Some(card(10, Protocol::T1)))).unwrap();
    sim.symlink(&link).unwrap();
    h.power_on().unwrap();
    assert_eq!(raw(&mut h, &select).unwrap(), [0x90, 0x00]);
    assert_eq!(h.stats().connects, 2);
}

/// Round-trip time of one short APDU through the driver, the pty and the simulator, printed
/// for docs/pn532.md (not a timed assertion).
#[test]
fn apdu_round_trip_over_the_pty() {
    let (_sim, mut h) = rig(11, Protocol::T1);
    h.power_on().unwrap();
    let select = cmds::select(&AID_PURSE).to_bytes().unwrap();
    let counter = cmds::read_field(cardbench::card::ins::FIELD_COUNTER, 4).to_bytes().unwrap();
    raw(&mut h, &select).unwrap();
    let mut d: Vec<Duration> = (0..500).map(|_| h.transmit(&counter).unwrap().duration).collect();
    d.sort();
    eprintln!(
        "READ FIELD over PN532 pty: median {:?}, p99 {:?}, max {:?} (n = {})",
        d[d.len() / 2],
        d[d.len() * 99 / 100],
        d[d.len() - 1],
        d.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Profile and command line

#[test]
fn profile_heads_with_driver_pn532_need_a_port() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/pn532-sim.toml")).unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, &base).unwrap();
    let lab = Lab::from_profile(&cardbench::profile::load(&p).unwrap()).unwrap();
    assert_eq!(lab.heads.len(), 4);
    assert!(lab.heads.iter().all(|h| h.head.info().driver == "pn532"));
    assert_eq!(lab.heads[0].head.info().reader, "/tmp/cardbench-pn532-a");

    let bad = base.replacen("port = \"/tmp/cardbench-pn532-b\"\n", "", 1);
    std::fs::write(&p, &bad).unwrap();
    let e = Lab::from_profile(&cardbench::profile::load(&p).unwrap()).err().unwrap().to_string();
    let line = bad.lines().position(|l| l.contains("name = \"B\"")).unwrap();
    assert!(e.contains("needs `port`"), "{e}");
    assert!(e.contains(&format!("p.toml:{}:", line)), "located at the head entry: {e}");
}

#[test]
fn profile_pn532_baud_and_timeout_are_checked_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/pn532-sim.toml")).unwrap();
    let p = dir.path().join("p.toml");
    let cases = [
        ("baud = 115200", "baud = 115201", "baud 115201 is not a PN532 serial rate (one of 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000)"),
        ("baud = 115200", "baud = 0", "baud 0 is not a PN532 serial rate"),
        ("timeout_ms = 5000", "timeout_ms = 0", "timeout_ms 0 is out of range (50 to 600000 milliseconds)"),
        ("timeout_ms = 5000", "timeout_ms = 86400000", "timeout_ms 86400000 is out of range (50 to 600000 milliseconds)"),
    ];
    for (good, bad, msg) in cases {
        // The third head's entry: the error must name that line, not the first head's.
        let at = base.match_indices(good).nth(2).unwrap().0;
        let text = format!("{}{bad}{}", &base[..at], &base[at + good.len()..]);
        std::fs::write(&p, &text).unwrap();
        let line = text[..at].matches('\n').count() + 1;
        let e = Lab::from_profile(&cardbench::profile::load(&p).unwrap()).err().unwrap().to_string();
        assert!(e.contains(&format!("p.toml:{line}:")), "{bad}: {e}");
        assert!(e.contains(msg), "{bad}: {e}");
        let out = bin().args(["heads", "--profile"]).arg(&p).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("p.toml:{line}:")) && err.contains(msg), "{err}");
    }
    // Every allowed rate and both ends of the range load.
    for (good, ok) in [
        ("baud = 115200", "baud = 9600"),
        ("baud = 115200", "baud = 1288000"),
        ("timeout_ms = 5000", "timeout_ms = 50"),
        ("timeout_ms = 5000", "timeout_ms = 600000"),
    ] {
        std::fs::write(&p, base.replace(good, ok)).unwrap();
        assert!(Lab::from_profile(&cardbench::profile::load(&p).unwrap()).is_ok(), "{ok}");
    }
}

fn bin() -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// `cardbench sim pn532`, killed when dropped.
struct SimProc(std::process::Child, String);

impl SimProc {
    fn start(card: &str, link: Option<&Path>) -> SimProc {
        let mut c = bin();
        c.args(["sim", "pn532", "--profile", "profiles/pn532-sim.toml", "--card", card]);
        if let Some(l) = link {
            c.arg("--link").arg(l);
        }
        SimProc::spawn(c)
    }

    /// Start a prepared `cardbench sim pn532` command; returns once it printed its device.
    fn spawn(mut c: Proc) -> SimProc {
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let path = line.trim().to_string();
        assert!(path.starts_with("/dev/"), "printed device path: {line:?}");
        SimProc(child, path)
    }
}

impl Drop for SimProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn smoke_plan_runs_green_through_four_simulator_processes() {
    let dir = tempfile::tempdir().unwrap();
    let mut profile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/pn532-sim.toml")).unwrap();
    let mut sims = Vec::new();
    for c in ["a", "b", "c", "d"] {
        let link = dir.path().join(format!("pn532-{c}"));
        profile = profile.replace(&format!("/tmp/cardbench-pn532-{c}"), link.to_str().unwrap());
        let s = SimProc::start(&format!("card-{c}"), Some(&link));
        assert_eq!(std::fs::read_link(&link).unwrap().display().to_string(), s.1);
        sims.push(s);
    }
    let p = dir.path().join("lab.toml");
    std::fs::write(&p, profile).unwrap();
    let out = bin()
        .args(["run", "test-plans/smoke.toml", "--run-id", "P1", "--quiet", "--profile"])
        .arg(&p)
        .arg("--logs")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("13 cases, 13 passed, 0 failed"), "{stdout}");
    let heads = bin().args(["heads", "--profile"]).arg(&p).output().unwrap();
    let heads = String::from_utf8_lossy(&heads.stdout);
    assert_eq!(heads.matches(" pn532 ").count(), 4, "{heads}");
    assert_eq!(heads.matches("3B8980014341524442454E4348").count(), 4, "{heads}");
}

/// The whole stack through processes: `cardbench run` on four simulated PN532s, one of which
/// holds an answer back beyond its head's timeout. The trace marks that command in doubt and
/// the other heads go on.
#[test]
fn a_run_whose_pn532_answer_is_late_records_the_command_in_doubt() {
    let dir = tempfile::tempdir().unwrap();
    let mut profile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/pn532-sim.toml")).unwrap();
    // Head B (the second entry) waits 1 s per exchange.
    let at = profile.match_indices("timeout_ms = 5000").nth(1).unwrap().0;
    profile.replace_range(at..at + "timeout_ms = 5000".len(), "timeout_ms = 1000");
    let mut sims = Vec::new();
    for c in ["a", "b", "c", "d"] {
        let link = dir.path().join(format!("pn532-{c}"));
        profile = profile.replace(&format!("/tmp/cardbench-pn532-{c}"), link.to_str().unwrap());
        let mut cmd = bin();
        cmd.args(["sim", "pn532", "--profile", "profiles/pn532-sim.toml", "--card", &format!("card-{c}"), "--link"])
            .arg(&link);
        if c == "b" {
            // B's 6th InDataExchange: inside the card-signed payment, B's first case.
            cmd.args(["--fault", "answer-delay=3600000@6"]);
        }
        sims.push(SimProc::spawn(cmd));
    }
    let p = dir.path().join("lab.toml");
    std::fs::write(&p, profile).unwrap();
    let out = bin()
        .args(["run", "test-plans/smoke.toml", "--run-id", "D1", "--quiet", "--profile"])
        .arg(&p)
        .arg("--logs")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows = cardbench::trace::read(&dir.path().join("D1/trace.csv")).unwrap();
    let doubt: Vec<_> = rows.iter().enumerate().filter(|(_, r)| r.kind == RowKind::InDoubt).collect();
    assert_eq!(doubt.len(), 1, "{doubt:?}");
    let (i, row) = doubt[0];
    assert_eq!(row.head, "B");
    assert!(row.response.is_empty() && row.sw == 0, "{row:?}");
    assert!(row.error.starts_with("timeout after"), "{}", row.error);
    // The B row before it is B's 5th exchange: the in-doubt command is the 6th.
    assert_eq!(rows[..i].iter().filter(|r| r.head == "B" && r.kind.is_wire()).count(), 5);
    assert!(rows[i + 1..].iter().any(|r| r.head != "B" && r.kind == RowKind::Command), "the other heads went on");
}

#[test]
fn nfc_list_from_libnfc_lists_the_simulated_card() {
    if Proc::new("nfc-list").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        eprintln!("NOTICE: nfc-list (Debian package libnfc-bin) is not installed; libnfc interop not tested");
        return;
    }
    let sim = SimProc::start("card-c", None);
    let run = || {
        let mut child = Proc::new("nfc-list")
            .env("LIBNFC_DEVICE", format!("pn532_uart:{}", sim.1))
            .env("LIBNFC_LOG_LEVEL", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("nfc-list did not finish");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (child.wait().unwrap(), out, err)
    };
    // Twice: the second run wakes the PN532 from the power-down the first one left it in.
    for _ in 0..2 {
        let (status, out, err) = run();
        assert!(status.success(), "{out}\n{err}");
        assert!(out.contains("1 ISO14443A passive target(s) found"), "{out}\n{err}");
        assert!(out.contains("UID (NFCID1): 00  00  00  00  00  0c  03"), "{out}");
        assert!(out.contains("SAK (SEL_RES): 20"), "{out}");
        assert!(out.contains("ATS: 78  80  70  02  43  41  52  44  42  45  4e  43  48"), "{out}");
    }
}
