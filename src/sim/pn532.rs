//! A simulated PN532 on its high-speed UART, with the reference virtual card in its field,
//! for the `pn532` head and for other PN532 software (libnfc's `pn532_uart` driver).
//!
//! `Pn532Sim` is the chip without I/O: bytes in, bytes out (`feed`), plus `tick` for time
//! (inter-byte timeout, answers held back). `PtySim` runs one on a pseudo-terminal pair and
//! hands out the device end. The behaviour follows the PN532 User Manual (UM0701-02) for
//! the commands libnfc uses; where the manual leaves a choice, docs/pn532.md says what the
//! simulator does.
//!
//! The card: ISO/IEC 14443-4 type A, ATQA 00 44 (7-byte UID, bit-frame anticollision),
//! SAK 20, UID = the last 7 bytes of the card ID, ATS `TL 78 80 70 02` + the historical bytes
//! of the card's contact ATR ("CARDBENCH").

use crate::card::VirtualCard;
use crate::head::pn532::commands::{
    self, atr_historical_bytes, code, param, rf, status, Firmware, TargetA, DATA_EXCHANGE_MAX, SAK_ISO14443_4,
    STATUS_MI, TG_MI,
};
use crate::head::pn532::frame::{self, Decoder, Frame, FrameError, TFI_HOST, TFI_PN532};
use crate::head::service::{wait_until, ServiceModel, SPIN};
use crate::sim::card::SimCard;
pub use crate::sim::pn532_faults::{Fault, FaultRule};
use crate::sim::pn532_faults::{Hit, GHOST_FRAME, NOISE};
use serialport::{SerialPort, TTYPort};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// SENS_RES of the simulated card (double-size UID, bit-frame anticollision), as the PN532
/// reports it.
pub const ATQA: [u8; 2] = [0x00, 0x44];
/// SEL_RES: ISO/IEC 14443-4 compliant.
pub const SAK: u8 = SAK_ISO14443_4;
/// ATS interface bytes after TL: T0 (TA, TB, TC present; FSCI 8 = 256 bytes), TA1 (106 kbps
/// only), TB1 (FWI 7, SFGI 0), TC1 (CID supported, NAD not).
pub const ATS_INTERFACE: [u8; 4] = [0x78, 0x80, 0x70, 0x02];

/// A half-received frame is dropped after this long without a byte.
pub const INTER_BYTE_TIMEOUT: Duration = Duration::from_millis(50);

/// 7-byte UID of a card: the last seven bytes of its card ID.
pub fn uid_of(card_id: [u8; 8]) -> Vec<u8> {
    card_id[1..].to_vec()
}

/// ATS of a card: TL, the interface bytes above, the historical bytes of its contact ATR.
pub fn ats_of(card: &impl SimCard) -> Vec<u8> {
    let atr = card.atr();
    let hist = atr_historical_bytes(&atr).unwrap_or(&[]);
    let mut ats = vec![0u8];
    ats.extend_from_slice(&ATS_INTERFACE);
    ats.extend_from_slice(hist);
    ats[0] = ats.len() as u8;
    ats
}

/// What the simulator served, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimStats {
    /// Information frames received with good checksums.
    pub frames: u64,
    pub acks_sent: u64,
    /// NACKs received (each answered by the last answer again).
    pub nacks: u64,
    /// ACKs received (each aborts a command in progress, if any).
    pub host_acks: u64,
    /// Syntax-error frames sent.
    pub error_frames: u64,
    /// Frames received with a broken data checksum.
    pub bad_frames: u64,
    /// Bytes ignored: line garbage, bytes received while asleep, broken frame starts.
    pub ignored_bytes: u64,
    /// APDUs given to the card.
    pub apdus: u64,
    /// Commands dropped by a host ACK before they were answered.
    pub aborted: u64,
    /// Times the chip went to power-down.
    pub power_downs: u64,
    /// InDataExchange frames received (what `--fault …@N` counts).
    pub exchanges: u64,
    /// InDataExchange frames hit by an injected fault.
    pub faulted: u64,
    /// Command frames lost on purpose (`drop-command`).
    pub dropped_commands: u64,
    /// Writes held back by a delay fault and sent since.
    pub delayed_sent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    None,
    Active,
    Deselected,
}

enum Outcome {
    /// Answer parameters (after the answer code).
    Answer(Vec<u8>),
    /// Syntax error: answered with the error frame.
    Syntax,
    /// InListPassiveTarget with infinite retries and no card: answered when one comes.
    WaitCard,
}

/// The PN532 model, with a card `C` in its field (the reference card unless said otherwise).
pub struct Pn532Sim<C: SimCard = VirtualCard> {
    awake: bool,
    rx: Decoder,
    last_rx: Option<Instant>,
    /// Last frame sent (answer or error frame), sent again on NACK.
    last_answer: Option<Vec<u8>>,
    /// A command ACKed and not answered yet.
    pending: Option<Vec<u8>>,
    sleep_after_answer: bool,
    card: Option<C>,
    target: Target,
    field: bool,
    sam_mode: u8,
    params: u8,
    passive_retries: u8,
    registers: HashMap<u16, u8>,
    /// Command chaining (MI in Tg): data received so far.
    chain_in: Vec<u8>,
    /// Response chaining (MI in status): data not yet sent.
    chain_out: Vec<u8>,
    last_error: u8,
    // Test and lab controls.
    stall: bool,
    noise: Vec<u8>,
    corrupt_next: bool,
    remove_after: Option<u64>,
    faults: Vec<FaultRule>,
    /// The faults that hit the last answer, and whether its NACKed copies get them too.
    last_hit: Hit,
    damage_resent: bool,
    /// Bytes to send, each not before its time, in order (one serial line: nothing overtakes
    /// a write held back by a delay fault).
    outbox: VecDeque<(Instant, Vec<u8>, bool)>,
    stats: SimStats,
    /// The card's modelled service time per APDU (its whole time, from the frame's arrival).
    service: ServiceModel,
    /// The service time drawn for the APDU of the command being answered.
    service_due: Duration,
}

impl Pn532Sim<VirtualCard> {
    /// A PN532 after power-on (asleep in LowVbat mode until the 0x55 wake-up byte), with
    /// the reference card `card` in its field.
    pub fn new(card: Option<VirtualCard>) -> Self {
        Pn532Sim::with_card(card)
    }
}

impl<C: SimCard> Pn532Sim<C> {
    /// A PN532 after power-on (asleep in LowVbat mode until the 0x55 wake-up byte), with
    /// any simulated card in its field (a `replay::card::TraceCard`, say).
    pub fn with_card(card: Option<C>) -> Self {
        let mut card = card;
        if let Some(c) = card.as_mut() {
            c.power_off();
        }
        Pn532Sim {
            awake: false,
            rx: Decoder::new(),
            last_rx: None,
            last_answer: None,
            pending: None,
            sleep_after_answer: false,
            card,
            target: Target::None,
            field: false,
            sam_mode: commands::SAM_NORMAL,
            params: param::AUTO_ATR_RES | param::AUTO_RATS,
            passive_retries: 0xFF,
            registers: default_registers(),
            chain_in: Vec::new(),
            chain_out: Vec::new(),
            last_error: 0,
            stall: false,
            noise: Vec::new(),
            corrupt_next: false,
            remove_after: None,
            faults: Vec::new(),
            last_hit: Hit::default(),
            damage_resent: false,
            outbox: VecDeque::new(),
            stats: SimStats::default(),
            service: ServiceModel::default(),
            service_due: Duration::ZERO,
        }
    }

    pub fn stats(&self) -> SimStats {
        let mut s = self.stats;
        s.ignored_bytes += self.rx.skipped();
        s
    }

    pub fn card(&self) -> Option<&C> {
        self.card.as_ref()
    }

    pub fn card_mut(&mut self) -> Option<&mut C> {
        self.card.as_mut()
    }

    /// Take the card out of the field: an activated target stops answering (timeout status).
    pub fn remove_card(&mut self) -> Option<C> {
        self.card.take().map(|mut c| {
            c.power_off();
            c
        })
    }

    /// Put a card in the field (unpowered until a reader activates it).
    pub fn insert_card(&mut self, mut card: C) -> Option<C> {
        card.power_off();
        let old = self.remove_card();
        self.card = Some(card);
        old
    }

    /// Remove the card after this many more APDUs.
    pub fn remove_after(&mut self, apdus: Option<u64>) {
        self.remove_after = apdus.map(|n| self.stats.apdus + n);
    }

    /// While stalled, commands are ACKed but not answered (a busy chip); a host ACK aborts
    /// the held command, clearing the stall answers it.
    pub fn set_stall(&mut self, stall: bool) {
        self.stall = stall;
    }

    /// Bytes sent on the line before the next ACK.
    pub fn inject_noise(&mut self, bytes: &[u8]) {
        self.noise.extend_from_slice(bytes);
    }

    /// Send the next answer with a broken data checksum (a NACK gets the good one).
    pub fn corrupt_next_answer(&mut self) {
        self.corrupt_next = true;
    }

    /// Inject these link faults into InDataExchange frames from now on (replacing earlier
    /// ones); see `pn532_faults`.
    pub fn set_faults(&mut self, faults: Vec<FaultRule>) {
        self.faults = faults;
    }

    /// Also break the copies of a faulted answer sent again on NACK (an answer that never
    /// gets through).
    pub fn damage_resent_answers(&mut self, on: bool) {
        self.damage_resent = on;
    }

    /// Model the card's service time per APDU: an InDataExchange answer leaves no sooner
    /// than the drawn time after its frame arrived (the card's processing included).
    pub fn set_service(&mut self, model: ServiceModel) {
        self.service = model;
    }

    pub fn faults(&self) -> &[FaultRule] {
        &self.faults
    }

    /// Send everything a delay fault holds back at once (a test's way to make a late answer
    /// arrive when it wants, instead of after a wall-clock delay).
    pub fn release_delayed(&mut self) {
        let now = Instant::now();
        for (due, _, _) in self.outbox.iter_mut() {
            *due = (*due).min(now);
        }
    }

    /// Send the first write a delay fault holds back now, keep the others.
    pub fn release_next_delayed(&mut self) {
        let now = Instant::now();
        if let Some((due, _, _)) = self.outbox.front_mut() {
            *due = (*due).min(now);
        }
    }

    /// Writes still held back by a delay fault.
    pub fn delayed_pending(&self) -> usize {
        self.outbox.len()
    }

    /// When the next held-back write is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.outbox.front().map(|(t, _, _)| *t)
    }

    pub fn is_awake(&self) -> bool {
        self.awake
    }

    /// Bytes from the host; returns the bytes to send back.
    pub fn feed(&mut self, bytes: &[u8], now: Instant) -> Vec<u8> {
        self.expire(now);
        // Held-back writes that are due go out before anything this input causes.
        let mut out = self.flush(now);
        let mut bytes = bytes;
        if !self.awake {
            // Power-down / LowVbat: the HSU wakes on the 0x55 byte; what came before is lost.
            match bytes.iter().position(|&b| b == 0x55) {
                None => {
                    self.stats.ignored_bytes += bytes.len() as u64;
                    return out;
                }
                Some(i) => {
                    self.stats.ignored_bytes += i as u64 + 1;
                    self.awake = true;
                    bytes = &bytes[i + 1..];
                }
            }
        }
        self.rx.push(bytes);
        self.last_rx = Some(now);
        while self.awake {
            let Some(f) = self.rx.next_frame() else { break };
            match f {
                Ok(Frame::Ack) => {
                    self.stats.host_acks += 1;
                    if self.pending.take().is_some() {
                        self.stats.aborted += 1;
                    }
                }
                Ok(Frame::Nack) => {
                    self.stats.nacks += 1;
                    if let Some(a) = self.last_answer.clone() {
                        let a = if self.damage_resent { self.last_hit.damage(&a) } else { a };
                        self.emit(a, now, false);
                    }
                }
                // Only the PN532 sends error frames.
                Ok(Frame::Error) => self.stats.ignored_bytes += frame::ERROR_FRAME.len() as u64,
                Ok(Frame::Info { tfi, data }) => self.command(tfi, data, now),
                Err(FrameError::DataChecksum { .. }) => {
                    // A frame that arrived broken gets the syntax-error frame instead of an ACK.
                    self.stats.bad_frames += 1;
                    let mut e = std::mem::take(&mut self.noise);
                    e.extend_from_slice(&self.error_frame());
                    self.emit(e, now, false);
                }
                // A false start code in line noise (or an oversized frame): resynchronise.
                Err(_) => {}
            }
        }
        if !self.awake {
            self.rx.clear();
        }
        out.extend(self.flush(now));
        out
    }

    /// A well-formed command frame: ACK, run, answer, with the faults that hit it.
    fn command(&mut self, tfi: u8, data: Vec<u8>, now: Instant) {
        self.stats.frames += 1;
        let hit = if tfi == TFI_HOST && data.first() == Some(&code::IN_DATA_EXCHANGE) {
            self.stats.exchanges += 1;
            Hit::of(&self.faults, self.stats.exchanges)
        } else {
            Hit::default()
        };
        if hit.any() {
            self.stats.faulted += 1;
        }
        self.last_hit = hit;
        if hit.drop_command {
            self.stats.dropped_commands += 1;
            return;
        }
        let mut head = std::mem::take(&mut self.noise);
        if hit.noise {
            head.extend_from_slice(&NOISE);
        }
        if !hit.no_ack {
            head.extend_from_slice(&frame::ACK);
            self.stats.acks_sent += 1;
        }
        if hit.ghost {
            head.extend_from_slice(&GHOST_FRAME);
        }
        let ack_at = later(now, hit.ack_delay);
        self.emit(head, ack_at, !hit.ack_delay.is_zero());
        // A new command replaces one still in progress; a NACK from now on asks for the
        // answer to this one.
        self.pending = None;
        self.last_answer = None;
        let answer = if tfi != TFI_HOST || data.is_empty() {
            self.error_frame()
        } else if self.stall {
            self.pending = Some(data);
            return;
        } else {
            self.run(data)
        };
        if !answer.is_empty() {
            let delayed = !(hit.ack_delay + hit.answer_delay).is_zero();
            let card_done = later(now, std::mem::take(&mut self.service_due));
            self.emit(hit.damage(&answer), later(ack_at, hit.answer_delay).max(card_done), delayed);
        }
    }

    /// Queue bytes for the line, not before `at` and never before bytes queued earlier.
    fn emit(&mut self, bytes: Vec<u8>, at: Instant, delayed: bool) {
        if bytes.is_empty() {
            return;
        }
        let at = self.outbox.back().map_or(at, |(t, _, _)| at.max(*t));
        self.outbox.push_back((at, bytes, delayed));
    }

    /// The queued bytes that are due.
    fn flush(&mut self, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        while self.outbox.front().is_some_and(|(t, _, _)| *t <= now) {
            if let Some((_, b, delayed)) = self.outbox.pop_front() {
                if delayed {
                    self.stats.delayed_sent += 1;
                }
                out.extend_from_slice(&b);
            }
        }
        out
    }

    /// Time passing without bytes: drop a half-received frame after the inter-byte timeout,
    /// answer a held command once nothing holds it any more.
    pub fn tick(&mut self, now: Instant) -> Vec<u8> {
        self.expire(now);
        if !self.stall {
            if let Some(p) = self.pending.take() {
                let a = self.run(p);
                let card_done = later(now, std::mem::take(&mut self.service_due));
                self.emit(a, card_done, false);
            }
        }
        self.flush(now)
    }

    fn expire(&mut self, now: Instant) {
        if let Some(t) = self.last_rx {
            if self.rx.pending() > 0 && now.saturating_duration_since(t) > INTER_BYTE_TIMEOUT {
                self.rx.clear();
            }
        }
    }

    /// Execute a command; the bytes of its answer (empty while it waits for a card).
    fn run(&mut self, data: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        match self.execute(&data) {
            Outcome::Answer(params) => {
                let mut pd = Vec::with_capacity(params.len() + 1);
                pd.push(data[0].wrapping_add(1));
                pd.extend_from_slice(&params);
                match frame::encode(TFI_PN532, &pd) {
                    Ok(bytes) => {
                        let mut sent = bytes.clone();
                        if std::mem::take(&mut self.corrupt_next) {
                            let dcs = sent.len() - 2;
                            sent[dcs] ^= 0x5A;
                        }
                        out.extend_from_slice(&sent);
                        self.last_answer = Some(bytes);
                    }
                    Err(_) => out = self.error_frame(),
                }
                if std::mem::take(&mut self.sleep_after_answer) {
                    self.awake = false;
                    self.stats.power_downs += 1;
                }
            }
            Outcome::Syntax => out = self.error_frame(),
            Outcome::WaitCard => self.pending = Some(data),
        }
        out
    }

    /// The syntax-error frame, remembered as the last answer.
    fn error_frame(&mut self) -> Vec<u8> {
        self.last_answer = Some(frame::ERROR_FRAME.to_vec());
        self.stats.error_frames += 1;
        frame::ERROR_FRAME.to_vec()
    }

    fn execute(&mut self, d: &[u8]) -> Outcome {
        use Outcome::{Answer, Syntax};
        let (c, p) = (d[0], &d[1..]);
        match c {
            code::DIAGNOSE => self.diagnose(p),
            code::GET_FIRMWARE_VERSION if p.is_empty() => Answer(Firmware::PN532_V1_6.to_bytes().to_vec()),
            code::GET_GENERAL_STATUS if p.is_empty() => {
                let mut a = vec![self.last_error, 0x00];
                if self.target == Target::Active {
                    // One target: Tg 1, 106 kbps both ways, type 0x00 (106 kbps type A).
                    a.extend_from_slice(&[0x01, 0x01, 0x00, 0x00, 0x00]);
                } else {
                    a.push(0x00);
                }
                a.push(0x00); // SAM status
                Answer(a)
            }
            code::READ_REGISTER if !p.is_empty() && p.len() % 2 == 0 => Answer(
                p.chunks(2).map(|r| *self.registers.get(&u16::from_be_bytes([r[0], r[1]])).unwrap_or(&0x00)).collect(),
            ),
            code::WRITE_REGISTER if !p.is_empty() && p.len() % 3 == 0 => {
                for r in p.chunks(3) {
                    self.registers.insert(u16::from_be_bytes([r[0], r[1]]), r[2]);
                }
                Answer(vec![])
            }
            // P3, P7, I0I1 of a board with nothing on its GPIOs.
            code::READ_GPIO if p.is_empty() => Answer(vec![0x3F, 0x06, 0x00]),
            code::WRITE_GPIO if p.len() == 2 => Answer(vec![]),
            code::SET_SERIAL_BAUD_RATE if p.len() == 1 && p[0] <= 0x08 => Answer(vec![]),
            code::SET_PARAMETERS if p.len() == 1 => {
                self.params = p[0];
                Answer(vec![])
            }
            code::SAM_CONFIGURATION if (1..=3).contains(&p.len()) && (1..=4).contains(&p[0]) => {
                self.sam_mode = p[0];
                Answer(vec![])
            }
            code::POWER_DOWN if (1..=2).contains(&p.len()) => {
                self.release_target();
                self.sleep_after_answer = true;
                Answer(vec![status::OK])
            }
            code::RF_CONFIGURATION if !p.is_empty() && rf::data_len(p[0]) == Some(p.len() - 1) => {
                match p[0] {
                    rf::FIELD => {
                        self.field = p[1] & 0x01 != 0;
                        if !self.field {
                            self.release_target();
                        }
                    }
                    rf::MAX_RETRIES => self.passive_retries = p[3],
                    _ => {}
                }
                Answer(vec![])
            }
            code::IN_LIST_PASSIVE_TARGET if p.len() >= 2 && (1..=2).contains(&p[0]) && p[1] <= 0x04 => {
                self.list(p[1], &p[2..])
            }
            code::IN_AUTO_POLL if p.len() >= 3 => self.auto_poll(&p[2..]),
            code::IN_DATA_EXCHANGE if !p.is_empty() && p.len() - 1 <= DATA_EXCHANGE_MAX => {
                Answer(self.data_exchange(p[0], &p[1..]))
            }
            code::IN_COMMUNICATE_THRU => Answer(self.communicate_thru(p)),
            code::IN_DESELECT if p.len() == 1 => Answer(vec![self.deselect(p[0])]),
            code::IN_RELEASE if p.len() == 1 => {
                let s = if p[0] == 0 || (p[0] == 1 && self.target != Target::None) {
                    self.release_target();
                    status::OK
                } else {
                    status::NOT_ACCEPTABLE
                };
                self.last_error = s;
                Answer(vec![s])
            }
            code::IN_SELECT if p.len() == 1 => {
                let s = if p[0] == 1 && self.target == Target::Deselected && self.card.is_some() {
                    if let Some(c) = self.card.as_mut() {
                        c.power_on();
                    }
                    self.target = Target::Active;
                    status::OK
                } else if p[0] == 1 && self.target == Target::Deselected {
                    self.target = Target::None;
                    status::TIMEOUT
                } else {
                    status::NOT_ACCEPTABLE
                };
                self.last_error = s;
                Answer(vec![s])
            }
            _ => Syntax,
        }
    }

    fn diagnose(&mut self, p: &[u8]) -> Outcome {
        match p.first() {
            // Communication line test: the answer echoes NumTst and the data.
            Some(0x00) => Outcome::Answer(p.to_vec()),
            // ROM, RAM and antenna self-tests pass; polling test: no failures.
            Some(0x01 | 0x02 | 0x07) => Outcome::Answer(vec![0x00]),
            Some(0x04) if p.len() == 2 => Outcome::Answer(vec![0x00]),
            // Attention request / ISO 14443-4 card presence.
            Some(0x06) => {
                let here = self.target == Target::Active && self.card.as_ref().is_some_and(|c| c.is_powered());
                if !here && self.target == Target::Active {
                    self.target = Target::None;
                }
                let s = if here { status::OK } else { status::TIMEOUT };
                self.last_error = s;
                Outcome::Answer(vec![s])
            }
            _ => Outcome::Syntax,
        }
    }

    fn target_data(&self) -> Option<TargetA> {
        let card = self.card.as_ref()?;
        let ats = (self.params & param::AUTO_RATS != 0).then(|| ats_of(card));
        Some(TargetA { tg: 1, atqa: ATQA, sak: SAK, uid: uid_of(card.card_id()), ats })
    }

    fn release_target(&mut self) {
        self.target = Target::None;
        self.chain_in.clear();
        self.chain_out.clear();
        if let Some(c) = self.card.as_mut() {
            c.power_off();
        }
    }

    /// InListPassiveTarget. Only 106 kbps type A finds anything; a previous target is
    /// released first. The card is activated fresh (REQA/WUPA, anticollision, RATS).
    fn list(&mut self, brty: u8, initiator: &[u8]) -> Outcome {
        self.release_target();
        self.field = true;
        if brty != commands::BRTY_106A {
            return Outcome::Answer(vec![0x00]);
        }
        let Some(t) = self.target_data() else {
            return if self.passive_retries == 0xFF { Outcome::WaitCard } else { Outcome::Answer(vec![0x00]) };
        };
        // InitiatorData selects a UID: the UID itself, or with the cascade tag 0x88.
        let wanted = initiator.strip_prefix(&[0x88]).unwrap_or(initiator);
        if !initiator.is_empty() && wanted != t.uid.as_slice() && !t.uid.starts_with(initiator) {
            return Outcome::Answer(vec![0x00]);
        }
        if let Some(c) = self.card.as_mut() {
            c.power_on();
        }
        self.target = Target::Active;
        self.last_error = status::OK;
        let mut a = vec![0x01];
        a.extend_from_slice(&t.to_bytes());
        Outcome::Answer(a)
    }

    /// InAutoPoll: answers at once with the card when one of the types asked for is 106 kbps
    /// type A (0x00 generic, 0x10 MIFARE, 0x20 ISO 14443-4 A).
    fn auto_poll(&mut self, types: &[u8]) -> Outcome {
        self.release_target();
        self.field = true;
        let want = types.iter().find(|t| matches!(t, 0x00 | 0x10 | 0x20));
        match (want, self.target_data()) {
            (Some(&ty), Some(t)) => {
                if let Some(c) = self.card.as_mut() {
                    c.power_on();
                }
                self.target = Target::Active;
                let td = t.to_bytes();
                let mut a = vec![0x01, ty, td.len() as u8];
                a.extend_from_slice(&td);
                Outcome::Answer(a)
            }
            _ => Outcome::Answer(vec![0x00]),
        }
    }

    fn data_exchange(&mut self, tg: u8, data: &[u8]) -> Vec<u8> {
        let s = self.exchange_status(tg, data);
        if let Some(&st) = s.first() {
            self.last_error = st & commands::STATUS_ERROR_MASK;
        }
        s
    }

    fn exchange_status(&mut self, tg: u8, data: &[u8]) -> Vec<u8> {
        if tg & 0x3F != 1 || self.target != Target::Active {
            return vec![status::NOT_ACCEPTABLE];
        }
        if self.card.is_none() {
            self.release_target();
            return vec![status::TIMEOUT];
        }
        if tg & TG_MI != 0 {
            self.chain_in.extend_from_slice(data);
            self.chain_out.clear();
            return vec![status::OK];
        }
        if data.is_empty() && self.chain_in.is_empty() && !self.chain_out.is_empty() {
            let rest = std::mem::take(&mut self.chain_out);
            return self.deliver(rest);
        }
        self.chain_out.clear();
        let mut apdu = std::mem::take(&mut self.chain_in);
        apdu.extend_from_slice(data);
        let answer = self.card.as_mut().and_then(|c| c.process(&apdu));
        self.service_due = self.service.draw(&apdu);
        self.stats.apdus += 1;
        if self.remove_after.is_some_and(|n| self.stats.apdus >= n) {
            self.remove_after = None;
            self.remove_card();
        }
        match answer {
            Some(r) => self.deliver(r),
            // A mute card: the PN532 gives up after its retries.
            None => {
                self.release_target();
                vec![status::TIMEOUT]
            }
        }
    }

    /// Status and DataIn, at most 262 bytes per frame; MI tells that more follows.
    fn deliver(&mut self, mut r: Vec<u8>) -> Vec<u8> {
        if r.len() > DATA_EXCHANGE_MAX {
            self.chain_out = r.split_off(DATA_EXCHANGE_MAX);
            let mut a = vec![STATUS_MI];
            a.append(&mut r);
            a
        } else {
            let mut a = vec![status::OK];
            a.append(&mut r);
            a
        }
    }

    /// InCommunicateThru: raw frames. The ISO 14443-4 card answers an R(NAK) presence check
    /// with an R(ACK); nothing else in the field answers raw frames (timeout status).
    fn communicate_thru(&mut self, data: &[u8]) -> Vec<u8> {
        let here = self.target == Target::Active && self.card.as_ref().is_some_and(|c| c.is_powered());
        let s = match data {
            [pcb] if here && *pcb & 0xF6 == 0xB2 => return vec![status::OK, 0xA2 | (*pcb & 0x01)],
            _ => status::TIMEOUT,
        };
        self.last_error = s;
        vec![s]
    }

    fn deselect(&mut self, tg: u8) -> u8 {
        let s = match (tg, self.target) {
            (0 | 1, Target::Active) => {
                self.chain_in.clear();
                self.chain_out.clear();
                if let Some(c) = self.card.as_mut() {
                    c.power_off();
                }
                self.target = Target::Deselected;
                status::OK
            }
            (0, _) => status::OK,
            _ => status::NOT_ACCEPTABLE,
        };
        self.last_error = s;
        s
    }
}

/// Plausible values of the CIU registers libnfc reads before its masked writes (PN532 with
/// its firmware's initiator set-up: CRC on in both directions). Others read as 00.
fn default_registers() -> HashMap<u16, u8> {
    [
        (0x6301, 0x3F), // CIU_Mode
        (0x6302, 0x80), // CIU_TxMode: TxCRCEn
        (0x6303, 0x80), // CIU_RxMode: RxCRCEn
        (0x6304, 0x80), // CIU_TxControl
        (0x6305, 0x00), // CIU_TxAuto
        (0x630D, 0x00), // CIU_ManualRCV
        (0x6316, 0x48), // CIU_RFCfg
        (0x6338, 0x00), // CIU_Status2
        (0x633C, 0x10), // CIU_Control: initiator
        (0x633D, 0x00), // CIU_BitFraming
    ]
    .into_iter()
    .collect()
}

/// A `Pn532Sim` served on a pseudo-terminal by a background thread.
pub struct PtySim<C: SimCard + 'static = VirtualCard> {
    path: PathBuf,
    link: Option<PathBuf>,
    sim: Arc<Mutex<Pn532Sim<C>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl<C: SimCard + 'static> PtySim<C> {
    /// Create a pty pair and serve `sim` on its controlling end; `path()` is the device end
    /// a PN532 driver opens.
    pub fn spawn(sim: Pn532Sim<C>) -> io::Result<PtySim<C>> {
        let (master, slave) = TTYPort::pair().map_err(io::Error::other)?;
        let path =
            PathBuf::from(slave.name().ok_or_else(|| io::Error::other("the pseudo-terminal has no device name"))?);
        let sim = Arc::new(Mutex::new(sim));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (sim.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("pn532-sim".into()).spawn(move || {
            // Keep the device end open for the simulator's lifetime: without it the
            // controlling end reports hang-up whenever no client has the port open.
            let _keep = slave;
            let mut master = master;
            serve(&mut master, &s, &st)
        })?;
        Ok(PtySim { path, link: None, sim, stop, thread: Some(thread) })
    }

    /// The device end (e.g. /dev/pts/3).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make `link` a symbolic link to the device end (replacing a stale link there); it is
    /// removed when the simulator stops.
    pub fn symlink(&mut self, link: &Path) -> io::Result<()> {
        if let Ok(m) = std::fs::symlink_metadata(link) {
            if m.file_type().is_symlink() {
                std::fs::remove_file(link)?;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a symbolic link", link.display()),
                ));
            }
        }
        std::os::unix::fs::symlink(&self.path, link)?;
        self.link = Some(link.to_path_buf());
        Ok(())
    }

    /// The simulated chip, for controls (remove the card, stall, inject noise) and stats.
    pub fn sim(&self) -> MutexGuard<'_, Pn532Sim<C>> {
        self.sim.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while the serving thread runs.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop serving; the error that ended the thread early, if any.
    pub fn stop(mut self) -> io::Result<SimStats> {
        self.shutdown()?;
        Ok(self.sim().stats())
    }

    /// Serve until the thread ends (for `cardbench sim pn532`, which runs until killed).
    pub fn wait(mut self) -> io::Result<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("simulator thread panicked")),
            None => Ok(()),
        }
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(l) = self.link.take() {
            let _ = std::fs::remove_file(l);
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("simulator thread panicked")),
            None => Ok(()),
        }
    }
}

impl<C: SimCard + 'static> Drop for PtySim<C> {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Serve `sim` on the controlling end of a pty until `stop` is set.
pub fn serve<C: SimCard>(master: &mut TTYPort, sim: &Mutex<Pn532Sim<C>>, stop: &AtomicBool) -> io::Result<()> {
    // A short poll so the loop notices `stop` and runs the chip's timers.
    const POLL: Duration = Duration::from_millis(20);
    let mut buf = [0u8; 1024];
    let mut hangups = 0u32;
    while !stop.load(Ordering::Relaxed) {
        // A held answer (the card's service time, a delay fault) leaves at its time: the read
        // sleeps until shortly before it, the last stretch is spun.
        let mut poll = POLL;
        // (The guard must not outlive this statement: `tick` below locks again.)
        let next = lock(sim).next_due();
        if let Some(due) = next {
            let left = due.saturating_duration_since(Instant::now());
            if left <= SPIN {
                wait_until(due);
                let out = lock(sim).tick(Instant::now());
                master.write_all(&out)?;
                continue;
            }
            poll = poll.min(left - SPIN);
        }
        master.set_timeout(poll).map_err(io::Error::other)?;
        let out = match master.read(&mut buf) {
            Ok(0) => Vec::new(),
            Ok(n) => {
                hangups = 0;
                lock(sim).feed(&buf[..n], Instant::now())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                lock(sim).tick(Instant::now())
            }
            // Hang-up: nobody has the device end open right now (cannot last while we hold
            // it ourselves, but be patient rather than spin).
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe && hangups < 500 => {
                hangups += 1;
                std::thread::sleep(Duration::from_millis(10));
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        if !out.is_empty() {
            master.write_all(&out)?;
        }
    }
    Ok(())
}

/// `at + d`, or far in the future when that overflows (a delay meant as "until released").
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d).unwrap_or_else(|| at + Duration::from_secs(86_400 * 365))
}

fn lock<C: SimCard>(sim: &Mutex<Pn532Sim<C>>) -> MutexGuard<'_, Pn532Sim<C>> {
    sim.lock().unwrap_or_else(|e| e.into_inner())
}
