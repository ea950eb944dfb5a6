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
use cardbench::event::{Event, Recorder};
use cardbench::head::pn532::commands::{self as pc, Firmware, TargetA};
use cardbench::head::pn532::frame::{self, Decoder, Frame, FrameError, ACK, ERROR_FRAME, NACK, TFI_HOST, TFI_PN532};
use cardbench::head::pn532::{Pn532Config, Pn532Head};
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::{Head, HeadError};
use cardbench::issuance::CardPlan;
use cardbench::keys::Keyset;
use cardbench::lab::{personalize_virtual, Lab, LabHead};
use cardbench::link::Link;
use cardbench::sim::pn532::{Pn532Sim, PtySim};
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
    assert_eq!((st.connects, st.resends, st.nacks, st.timeouts), (1, 0, 0, 0));
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
        let results = cardbench::runner::run_plan(&plan, heads, &rec, &lab.keyset, lab.clock.unwrap(), [7; 32]);
        drop(rec);
        let rows: Vec<_> = rx
            .iter()
            .filter_map(|e| match e {
                Event::Exchange(x) => {
                    Some((x.head, x.card_id, x.test_step, x.protocol_step, x.command, x.response, x.sw, x.note))
                }
                _ => None,
            })
            .collect();
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

    // Host → PN532: garbage ending in a false frame header swallows the next command frame;
    // the PN532 answers the broken frame with the error frame, the driver sends again.
    let mut line = std::fs::OpenOptions::new().write(true).open(sim.path()).unwrap();
    line.write_all(&[0xDE, 0xAD, 0x00, 0xFF, 0x20, 0xE0, 0x01, 0x02]).unwrap();
    drop(line);
    assert_eq!(raw(&mut h, &counter).unwrap(), expected);
    let s = sim.sim().stats();
    assert!(s.bad_frames + s.ignored_bytes > 0, "{s:?}");

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
    let t = Instant::now();
    assert_eq!(raw(&mut h, &select), Err(HeadError::Timeout(Duration::from_millis(300))));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1500), "{took:?}");
    // The driver's ACK aborted the held command.
    let deadline = Instant::now() + Duration::from_secs(2);
    while sim.sim().stats().aborted == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sim.sim().stats().aborted, 1);
    sim.sim().set_stall(false);
    assert_eq!(raw(&mut h, &select).unwrap(), [0x90, 0x00]);
    assert_eq!(h.stats().timeouts, 1);

    // No PN532 at all on the port: nothing ACKs, the command is sent three times, timeout.
    let (_master, slave) = serialport::TTYPort::pair().unwrap();
    let path = serialport::SerialPort::name(&slave).unwrap();
    let mut cfg = Pn532Config::new(&path);
    cfg.timeout = Duration::from_millis(300);
    let mut dead = Pn532Head::new("X", cfg);
    assert!(matches!(dead.power_on(), Err(HeadError::Timeout(_))));
    assert_eq!(dead.stats().resends, 2);

    // No port at all.
    let mut gone = Pn532Head::new("Y", Pn532Config::new("/nonexistent/ttyPN532"));
    match gone.card_present() {
        Err(HeadError::ReaderGone(m)) => assert!(m.contains("/nonexistent/ttyPN532"), "{m}"),
        other => panic!("{other:?}"),
    }
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
