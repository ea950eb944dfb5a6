//! `Pn532Head`: a PN532 on a serial port (HSU, 115200 8N1 by default) reading ISO/IEC
//! 14443-4 type A cards. The port is opened lazily and reopened after a failure, so a head
//! whose reader is unplugged or whose simulator is not started yet reports a head error and
//! the rest of the lab carries on.
//!
//! One command on the link: drain stale input, send the frame, wait for the ACK (resend
//! when none comes within `ack_timeout`, or when a syntax-error frame comes instead), wait
//! for the answer (NACK a whole frame with a bad data checksum so the PN532 sends it again;
//! skip line noise), and after a timeout send an ACK, which aborts the command in the PN532.

use super::commands::{self, param, status, Command, Firmware, TargetA};
use super::frame::{self, Decoder, Frame, FrameError, TFI_HOST, TFI_PN532};
use crate::head::{Head, HeadError, HeadInfo, Wire};
use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits, TTYPort};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// HSU wake-up (UM0701-02 §6.3.2.3 and libnfc): 0x55, then a long preamble of zeros while
/// the PN532 leaves power-down.
pub const WAKE_UP: [u8; 16] = [0x55, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Upper bound for link-control commands (SAMConfiguration, Diagnose, InListPassiveTarget…);
/// libnfc waits 1 s for SAMConfiguration and 300-350 ms for the others.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(1);

/// NACKs sent for one corrupt answer before giving up.
const MAX_NACKS: u32 = 3;

#[derive(Debug, Clone)]
pub struct Pn532Config {
    /// Serial device (e.g. /dev/ttyUSB0, or the pseudo-terminal of `cardbench sim pn532`).
    pub port: String,
    pub baud: u32,
    /// How long one exchange may take before `HeadError::Timeout` (the answer of
    /// InDataExchange includes the card's processing time).
    pub timeout: Duration,
    /// How long to wait for the ACK before sending the command frame again. The manual asks
    /// for 15 ms; the default is larger so that a loaded machine never makes the driver send
    /// a command twice (an APDU executed twice would corrupt a test).
    pub ack_timeout: Duration,
    /// Sends of one command frame (first send + resends) when no ACK comes.
    pub attempts: u32,
    /// MxRtyPassiveActivation of RFConfiguration item 0x05: how often the PN532 retries to
    /// activate a card (0xFF: until one comes).
    pub passive_retries: u8,
}

impl Pn532Config {
    pub fn new(port: &str) -> Self {
        Pn532Config {
            port: port.to_string(),
            baud: 115_200,
            timeout: Duration::from_millis(5000),
            ack_timeout: Duration::from_millis(100),
            attempts: 3,
            passive_retries: 0x02,
        }
    }
}

/// Counters of what the link went through (for tests, diagnostics and the docs' figures).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Times the port was opened and the PN532 initialised.
    pub connects: u64,
    pub frames_sent: u64,
    /// Command frames sent again after a missing ACK or a syntax-error frame.
    pub resends: u64,
    /// NACKs sent for corrupt answers.
    pub nacks: u64,
    /// Frames received with a broken length or data checksum.
    pub bad_frames: u64,
    /// Bytes skipped outside frames (garbage, preambles, postambles), link lifetimes summed.
    pub skipped_bytes: u64,
    pub timeouts: u64,
}

struct Link {
    port: TTYPort,
    rx: Decoder,
}

impl Drop for Link {
    fn drop(&mut self) {
        // TIOCEXCL stays on a tty after close while another descriptor keeps it open (the
        // simulator's pty): clear it so other programs (libnfc) can open the port after us.
        let _ = self.port.set_exclusive(false);
    }
}

struct Active {
    target: TargetA,
    atr: Vec<u8>,
}

pub struct Pn532Head {
    info: HeadInfo,
    cfg: Pn532Config,
    link: Option<Link>,
    active: Option<Active>,
    firmware: Option<Firmware>,
    stats: LinkStats,
}

impl Pn532Head {
    /// A head on `cfg.port`; nothing is opened until the first call that needs the reader.
    pub fn new(name: &str, cfg: Pn532Config) -> Self {
        Pn532Head {
            info: HeadInfo { name: name.to_string(), driver: "pn532", reader: cfg.port.clone() },
            cfg,
            link: None,
            active: None,
            firmware: None,
            stats: LinkStats::default(),
        }
    }

    pub fn config(&self) -> &Pn532Config {
        &self.cfg
    }

    /// Firmware reported at the last initialisation.
    pub fn firmware(&self) -> Option<Firmware> {
        self.firmware
    }

    /// The activated target (UID, ATQA, SAK, ATS) while a card is powered.
    pub fn target(&self) -> Option<&TargetA> {
        self.active.as_ref().map(|a| &a.target)
    }

    pub fn stats(&self) -> LinkStats {
        let mut s = self.stats;
        if let Some(l) = &self.link {
            s.skipped_bytes += l.rx.skipped();
        }
        s
    }

    /// Open the port if needed and initialise the PN532: wake-up, SAMConfiguration (normal
    /// mode), Diagnose communication-line test, GetFirmwareVersion, RFConfiguration
    /// (MaxRetries), SetParameters (automatic RATS).
    pub fn connect(&mut self) -> Result<(), HeadError> {
        if self.link.is_some() {
            return Ok(());
        }
        self.active = None;
        let port = serialport::new(&self.cfg.port, self.cfg.baud)
            .data_bits(DataBits::Eight)
            .parity(Parity::None)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None)
            .timeout(self.cfg.timeout)
            .open_native()
            .map_err(|e| HeadError::ReaderGone(format!("cannot open {}: {e}", self.cfg.port)))?;
        // Bytes sent before we opened the port belong to somebody else's dialogue.
        let _ = port.clear(ClearBuffer::All);
        self.link = Some(Link { port, rx: Decoder::new() });
        self.stats.connects += 1;
        let r = self.initialise();
        if r.is_err() {
            self.drop_link();
        }
        r
    }

    fn initialise(&mut self) -> Result<(), HeadError> {
        self.write_raw(&WAKE_UP)?;
        let t = CONTROL_TIMEOUT.min(self.cfg.timeout.max(Duration::from_millis(300)));
        self.exec(&Command::SamConfiguration { mode: commands::SAM_NORMAL, timeout: 0x14, irq: Some(0x01) }, t)?;
        let pattern = b"cardbench".to_vec();
        let echo = self.exec(&Command::DiagnoseEcho(pattern.clone()), t)?;
        if echo.first() != Some(&0x00) || echo[1..] != pattern[..] {
            return Err(HeadError::Protocol(format!(
                "PN532 communication line test failed: sent {}, got back {}",
                hex::encode_upper(&pattern),
                hex::encode_upper(&echo)
            )));
        }
        let fw = self.exec(&Command::GetFirmwareVersion, t)?;
        let fw = Firmware::parse(&fw)
            .ok_or_else(|| HeadError::Protocol(format!("GetFirmwareVersion answered {}", hex::encode_upper(&fw))))?;
        if fw.ic != 0x32 {
            return Err(HeadError::Protocol(format!("{} is not a PN532 (IC {:#04x})", self.cfg.port, fw.ic)));
        }
        self.firmware = Some(fw);
        self.exec(&Command::RfMaxRetries { atr: 0xFF, psl: 0x01, passive: self.cfg.passive_retries }, t)?;
        self.exec(&Command::SetParameters(param::AUTO_ATR_RES | param::AUTO_RATS), t)?;
        Ok(())
    }

    fn control_timeout(&self) -> Duration {
        CONTROL_TIMEOUT.min(self.cfg.timeout)
    }

    fn drop_link(&mut self) {
        if let Some(l) = self.link.take() {
            self.stats.skipped_bytes += l.rx.skipped();
        }
        self.active = None;
    }

    fn gone(&mut self, what: &str, e: std::io::Error) -> HeadError {
        self.drop_link();
        HeadError::ReaderGone(format!("{}: {what}: {e}", self.cfg.port))
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), HeadError> {
        let Some(link) = self.link.as_mut() else {
            return Err(HeadError::ReaderGone(format!("{}: not open", self.cfg.port)));
        };
        let r = link.port.write_all(bytes).and_then(|_| link.port.flush());
        r.map_err(|e| self.gone("write", e))
    }

    /// Discard whatever the PN532 sent that nobody asked for.
    fn drain(&mut self) -> Result<(), HeadError> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 512];
        loop {
            match link.port.bytes_to_read() {
                Ok(0) => break,
                Ok(n) => {
                    let n = (n as usize).min(buf.len());
                    if let Err(e) = link.port.read(&mut buf[..n]) {
                        return Err(self.gone("read", e));
                    }
                }
                Err(_) => break,
            }
        }
        link.rx.clear();
        Ok(())
    }

    /// Next frame (or framing error) before `deadline`; `None` on timeout.
    fn read_frame(&mut self, deadline: Instant) -> Result<Option<Result<Frame, FrameError>>, HeadError> {
        let mut buf = [0u8; 512];
        loop {
            let Some(link) = self.link.as_mut() else {
                return Err(HeadError::ReaderGone(format!("{}: not open", self.cfg.port)));
            };
            if let Some(f) = link.rx.next_frame() {
                if f.is_err() {
                    self.stats.bad_frames += 1;
                }
                return Ok(Some(f));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if link.port.set_timeout(deadline - now).is_err() {
                return Err(HeadError::Transport(format!("{}: cannot set the read timeout", self.cfg.port)));
            }
            match link.port.read(&mut buf) {
                Ok(0) => return Err(self.gone("read", std::io::Error::from(ErrorKind::UnexpectedEof))),
                Ok(n) => link.rx.push(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
                Err(e) => return Err(self.gone("read", e)),
            }
        }
    }

    /// Abort whatever the PN532 is doing (an ACK from the host aborts the current command).
    fn abort(&mut self) {
        let _ = self.write_raw(&frame::ACK);
    }

    /// Send one command on the open link and return the answer's parameters.
    fn exec(&mut self, cmd: &Command, timeout: Duration) -> Result<Vec<u8>, HeadError> {
        self.exchange_frame(&cmd.to_bytes(), timeout)
    }

    fn exchange_frame(&mut self, pd: &[u8], timeout: Duration) -> Result<Vec<u8>, HeadError> {
        let before = (self.stats.resends, self.stats.nacks);
        let r = self.exchange_frame_once(pd, timeout);
        if r.is_ok() && before != (self.stats.resends, self.stats.nacks) {
            // After a resend or a NACK a second copy of the answer may still be on its way:
            // let it arrive and drop it, so it cannot pass for the answer to the next command.
            self.settle();
        }
        r
    }

    fn settle(&mut self) {
        let until = Instant::now() + self.cfg.ack_timeout;
        while let Ok(Some(_)) = self.read_frame(until) {}
    }

    fn exchange_frame_once(&mut self, pd: &[u8], timeout: Duration) -> Result<Vec<u8>, HeadError> {
        let code = pd[0];
        let name = commands::name(code);
        let bytes = frame::encode(TFI_HOST, pd).map_err(|e| HeadError::Protocol(format!("{name}: {e}")))?;
        self.drain()?;
        let deadline = Instant::now() + timeout;
        let is_answer = |f: &Frame| matches!(f, Frame::Info { tfi, data } if *tfi == TFI_PN532 && data.first() == Some(&code.wrapping_add(1)));
        let mut sends = 0;
        'send: loop {
            sends += 1;
            self.write_raw(&bytes)?;
            self.stats.frames_sent += 1;
            // ACK phase.
            let ack_deadline = (Instant::now() + self.cfg.ack_timeout).min(deadline);
            let mut acked = false;
            let mut nacks = 0;
            while let Some(f) = self.read_frame(ack_deadline)? {
                match f {
                    Ok(Frame::Ack) => {
                        acked = true;
                        break;
                    }
                    Ok(f) if is_answer(&f) => return Ok(answer_params(f)),
                    Ok(Frame::Error) => {
                        // The frame reached the PN532 broken: send it again.
                        if sends < self.cfg.attempts {
                            self.stats.resends += 1;
                            continue 'send;
                        }
                        return Err(HeadError::Protocol(format!("PN532 answered {name} with a syntax-error frame")));
                    }
                    // A NACK or a stale answer to an earlier command: not ours.
                    Ok(_) => {}
                    // A whole frame with a bad checksum: our answer with its ACK lost.
                    Err(FrameError::DataChecksum { .. }) => {
                        acked = true;
                        nacks += 1;
                        self.stats.nacks += 1;
                        self.write_raw(&frame::NACK)?;
                        break;
                    }
                    // A false start code in line noise.
                    Err(_) => {}
                }
            }
            if !acked {
                if sends < self.cfg.attempts && Instant::now() < deadline {
                    self.stats.resends += 1;
                    continue 'send;
                }
                self.stats.timeouts += 1;
                self.abort();
                return Err(HeadError::Timeout(timeout));
            }
            // Answer phase.
            loop {
                match self.read_frame(deadline)? {
                    None => {
                        self.stats.timeouts += 1;
                        self.abort();
                        return Err(HeadError::Timeout(timeout));
                    }
                    Some(Ok(f)) if is_answer(&f) => return Ok(answer_params(f)),
                    Some(Ok(Frame::Error)) => {
                        return Err(HeadError::Protocol(format!("PN532 answered {name} with a syntax-error frame")))
                    }
                    Some(Ok(_)) => {}
                    // A whole frame with a bad checksum: ask for it again. (A bad header is line
                    // noise, or a frame nobody can delimit: waiting is all that can be done.)
                    Some(Err(e @ FrameError::DataChecksum { .. })) => {
                        if nacks >= MAX_NACKS {
                            return Err(HeadError::Protocol(format!(
                                "answer to {name} still corrupt after {nacks} NACKs: {e}"
                            )));
                        }
                        nacks += 1;
                        self.stats.nacks += 1;
                        self.write_raw(&frame::NACK)?;
                    }
                    Some(Err(_)) => {}
                }
            }
        }
    }

    /// Send one PN532 command (connecting first if needed) and return the answer's
    /// parameters, after TFI and the answer code. A link failure closes the port so that the
    /// next call reopens it.
    pub fn command(&mut self, cmd: &Command, timeout: Duration) -> Result<Vec<u8>, HeadError> {
        self.connect()?;
        self.exec(cmd, timeout)
    }

    /// InListPassiveTarget for one 106 kbps type A target.
    fn list_target(&mut self) -> Result<Option<TargetA>, HeadError> {
        let t = self.control_timeout();
        let a = self.command(&Command::InListPassiveTarget106A, t)?;
        TargetA::parse_list(&a).map_err(|e| HeadError::Protocol(format!("InListPassiveTarget: {e}")))
    }

    fn release(&mut self, tg: u8) -> Result<(), HeadError> {
        let t = self.control_timeout();
        let a = self.command(&Command::InRelease(tg), t)?;
        match a.first() {
            Some(&s) if s & commands::STATUS_ERROR_MASK == status::OK => Ok(()),
            // Nothing to release (the PN532 was reset, or the card left): fine.
            Some(&s) if s & commands::STATUS_ERROR_MASK == status::NOT_ACCEPTABLE => Ok(()),
            Some(&s) => Err(HeadError::Protocol(format!("InRelease: status {s:#04x} ({})", commands::status_name(s)))),
            None => Err(HeadError::Protocol("InRelease: empty answer".into())),
        }
    }

    /// After a timeout status: the card left the field, or it is there and went mute.
    fn lost_card(&mut self) -> HeadError {
        self.active = None;
        match self.list_target() {
            Ok(Some(t)) => {
                let _ = self.release(t.tg);
                HeadError::Mute
            }
            Ok(None) => HeadError::CardRemoved,
            Err(e) => e,
        }
    }

    /// One InDataExchange round: the answer's status byte and DataIn.
    fn data_exchange(&mut self, tg: u8, data: &[u8]) -> Result<(u8, Vec<u8>), HeadError> {
        let timeout = self.cfg.timeout;
        let a = self.exec(&Command::InDataExchange { tg, data: data.to_vec() }, timeout)?;
        let (&st, rest) = a.split_first().ok_or_else(|| HeadError::Protocol("InDataExchange: empty answer".into()))?;
        Ok((st, rest.to_vec()))
    }

    fn exchange_apdu(&mut self, tg: u8, apdu: &[u8]) -> Result<Vec<u8>, HeadError> {
        // Command chaining: every frame but the last carries MI in Tg.
        let mut chunks = apdu.chunks(commands::DATA_EXCHANGE_MAX).peekable();
        let mut answer = loop {
            let chunk = chunks.next().unwrap_or(&[]);
            let more = chunks.peek().is_some();
            let (st, data) = self.data_exchange(if more { tg | commands::TG_MI } else { tg }, chunk)?;
            self.check_status(st)?;
            if !more {
                break (st, data);
            }
            if st & commands::STATUS_MI != 0 || !data.is_empty() {
                return Err(HeadError::Protocol(format!(
                    "InDataExchange: answer with data ({} bytes) before the last chained command frame",
                    data.len()
                )));
            }
        };
        // Response chaining: MI in the status byte asks for another (empty) InDataExchange.
        let mut response = std::mem::take(&mut answer.1);
        let mut st = answer.0;
        let mut rounds = 0;
        while st & commands::STATUS_MI != 0 {
            rounds += 1;
            if rounds > 300 {
                return Err(HeadError::Protocol("InDataExchange: endless response chaining".into()));
            }
            let (s, data) = self.data_exchange(tg, &[])?;
            self.check_status(s)?;
            response.extend_from_slice(&data);
            st = s;
        }
        Ok(response)
    }

    fn check_status(&mut self, st: u8) -> Result<(), HeadError> {
        match st & commands::STATUS_ERROR_MASK {
            status::OK => Ok(()),
            status::TIMEOUT => Err(self.lost_card()),
            status::RELEASED | status::CARD_EXCHANGED | status::CARD_DISAPPEARED => {
                self.active = None;
                Err(HeadError::CardRemoved)
            }
            status::NOT_ACCEPTABLE => {
                self.active = None;
                Err(HeadError::Unpowered)
            }
            s => Err(HeadError::Protocol(format!("InDataExchange: status {s:#04x} ({})", commands::status_name(s)))),
        }
    }
}

fn answer_params(f: Frame) -> Vec<u8> {
    match f {
        Frame::Info { mut data, .. } => {
            data.remove(0);
            data
        }
        _ => Vec::new(),
    }
}

impl Head for Pn532Head {
    fn info(&self) -> &HeadInfo {
        &self.info
    }

    /// With a powered card: Diagnose NumTst 0x06 (card presence). Without: a card is looked
    /// for with InListPassiveTarget and released again.
    fn card_present(&mut self) -> Result<bool, HeadError> {
        self.connect()?;
        let t = self.control_timeout();
        if self.active.is_some() {
            let a = self.exec(&Command::DiagnosePresence, t)?;
            return match a.first().map(|s| s & commands::STATUS_ERROR_MASK) {
                Some(status::OK) => Ok(true),
                Some(_) => {
                    self.active = None;
                    Ok(false)
                }
                None => Err(HeadError::Protocol("Diagnose presence test: empty answer".into())),
            };
        }
        match self.list_target()? {
            Some(t) => {
                self.release(t.tg)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn atr(&self) -> Option<Vec<u8>> {
        self.active.as_ref().map(|a| a.atr.clone())
    }

    /// Activate the card in the field (InListPassiveTarget, 106 kbps type A, RATS) after
    /// releasing a previous activation; the ATR is built from the ATS as PC/SC readers do.
    fn power_on(&mut self) -> Result<Vec<u8>, HeadError> {
        self.connect()?;
        if let Some(a) = self.active.take() {
            self.release(a.target.tg)?;
        }
        let target = self.list_target()?.ok_or(HeadError::NoCard)?;
        if !target.is_iso14443_4() {
            let _ = self.release(target.tg);
            return Err(HeadError::Protocol(format!(
                "card {} is not ISO/IEC 14443-4 (SAK {:02X}{})",
                hex::encode_upper(&target.uid),
                target.sak,
                if target.ats.is_none() { ", no ATS" } else { "" }
            )));
        }
        let atr = target.pcsc_atr();
        self.active = Some(Active { target, atr: atr.clone() });
        Ok(atr)
    }

    /// InRelease of the activated card.
    fn power_off(&mut self) -> Result<(), HeadError> {
        match self.active.take() {
            Some(a) if self.link.is_some() => self.release(a.target.tg),
            _ => Ok(()),
        }
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Wire, HeadError> {
        let tg = match (&self.link, &self.active) {
            (Some(_), Some(a)) => a.target.tg,
            _ => return Err(HeadError::Unpowered),
        };
        let start = Instant::now();
        let response = self.exchange_apdu(tg, apdu)?;
        let duration = start.elapsed();
        if response.len() < 2 {
            return Err(HeadError::Protocol(format!("card answered {} bytes, no status word", response.len())));
        }
        Ok(Wire { response, duration })
    }
}
