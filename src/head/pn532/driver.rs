//! `Pn532Head`: a PN532 on a serial port (HSU, 115200 8N1 by default) reading ISO/IEC
//! 14443-4 type A cards. The port is opened lazily and reopened after a failure, so a head
//! whose reader is unplugged or whose simulator is not started yet reports a head error and
//! the rest of the lab carries on.
//!
//! One command on the link (docs/pn532.md, "Transport safety"): the frame is written once and
//! never again. The driver waits for the ACK and the answer up to the exchange timeout,
//! skipping line noise; an answer with a broken header or checksum, or one cut short, is
//! NACKed at once (the PN532 sends the same answer again; the command does not run again).
//! Any failure after the frame was written leaves the command in doubt: the driver aborts
//! the PN532 (ACK) and proves the line clean again (a Diagnose echo with a fresh nonce)
//! before its next command, so a late answer is never taken for a later command's.

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

/// NACKs sent for one broken answer before the exchange fails.
const MAX_NACKS: u32 = 3;

/// A frame that stops arriving for this long is cut short (at 115200 baud a byte takes
/// 87 µs; USB serial adapters deliver in chunks up to 16 ms apart).
const INTER_BYTE_MIN: Duration = Duration::from_millis(50);

/// Baud rates of the PN532 HSU (SetSerialBaudRate BR 00-08, UM0701-02 §7.2.5).
pub const BAUD_RATES: [u32; 9] = [9600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600, 1_288_000];

#[derive(Debug, Clone)]
pub struct Pn532Config {
    /// Serial device (e.g. /dev/ttyUSB0, or the pseudo-terminal of `cardbench sim pn532`).
    pub port: String,
    pub baud: u32,
    /// How long one exchange may take, ACK and answer together, before it fails as in doubt
    /// (the answer of InDataExchange includes the card's processing time).
    pub timeout: Duration,
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
            passive_retries: 0x02,
        }
    }

    /// Silence inside a frame after which the frame counts as cut short: 50 ms, or 64 byte
    /// times at slow rates.
    pub fn inter_byte_timeout(&self) -> Duration {
        let byte_times = Duration::from_micros(64 * 10 * 1_000_000 / u64::from(self.baud.max(1)));
        INTER_BYTE_MIN.max(byte_times)
    }
}

/// Counters of what the link went through (for tests, diagnostics and the docs' figures).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Times the port was opened and the PN532 initialised.
    pub connects: u64,
    /// Command frames written (each exactly once).
    pub frames_sent: u64,
    /// NACKs sent for broken or cut-short answers.
    pub nacks: u64,
    /// Frames received with a broken length or data checksum.
    pub bad_frames: u64,
    /// Frames that stopped arriving half-way (inter-byte timeout).
    pub truncated: u64,
    /// Whole frames skipped as not belonging to the exchange (late ACKs and answers of
    /// aborted commands, duplicates).
    pub stale_frames: u64,
    /// Bytes skipped outside frames (garbage, preambles, postambles), link lifetimes summed.
    pub skipped_bytes: u64,
    /// Exchanges that ended without an answer at their timeout.
    pub timeouts: u64,
    /// Exchanges that failed after their frame was written (the command is in doubt).
    pub in_doubt: u64,
    /// Diagnose echoes sent to prove the line clean after an exchange in doubt.
    pub resyncs: u64,
}

/// What the driver knows about bytes still to come from the PN532.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// Every command sent so far got exactly one answer: the next matching answer is ours,
    /// with or without its ACK (an ACK hidden by noise is no reason to give up an answer).
    Clean,
    /// A NACK may have made the PN532 send an answer twice. The duplicate comes before the
    /// ACK of the next command, so the next answer counts only after its own ACK.
    Duplicate,
    /// An exchange failed: a late ACK and answer may still come, and an ACK does not say
    /// which command it belongs to. The line is proved clean (`resync`) before the next
    /// command.
    InDoubt,
}

/// How one exchange ended on the line.
enum Failure {
    /// Nothing complete came before the deadline.
    Timeout,
    /// The PN532 sent the syntax-error frame.
    Refused { acked: bool },
    /// The answer stayed broken after `MAX_NACKS` NACKs.
    Broken(String),
}

/// What one read from the line gave.
enum Rx {
    Frame(Frame),
    /// A frame with a broken checksum or header.
    Bad(FrameError),
    /// A frame that started and then stopped arriving.
    Cut,
    /// The deadline passed.
    Deadline,
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
    line: LineState,
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
            line: LineState::Clean,
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
        // Input was flushed and the initialisation's answers all have other codes than
        // InDataExchange: whatever an earlier session left in the PN532 cannot pass for one.
        self.line = LineState::Clean;
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
            return Err(not_sent(format!("{}: not open", self.cfg.port)));
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

    /// The next frame, broken frame or cut-short frame before `deadline`. A frame counts as
    /// cut short only after a read that really waited the inter-byte timeout without a byte,
    /// so a loaded machine that reads late never mistakes buffered bytes for a gap.
    fn receive(&mut self, deadline: Instant) -> Result<Rx, HeadError> {
        let gap = self.cfg.inter_byte_timeout();
        let mut buf = [0u8; 512];
        let mut silent_since: Option<Instant> = None;
        loop {
            let Some(link) = self.link.as_mut() else {
                return Err(HeadError::ReaderGone(format!("{}: not open", self.cfg.port)));
            };
            match link.rx.next_frame() {
                Some(Ok(f)) => return Ok(Rx::Frame(f)),
                Some(Err(e)) => {
                    self.stats.bad_frames += 1;
                    return Ok(Rx::Bad(e));
                }
                None => {}
            }
            let now = Instant::now();
            let open = link.rx.in_frame();
            if open && silent_since.is_some_and(|t| now.duration_since(t) >= gap) {
                link.rx.clear();
                self.stats.truncated += 1;
                return Ok(Rx::Cut);
            }
            if now >= deadline {
                return Ok(Rx::Deadline);
            }
            let wait = if open { (deadline - now).min(gap) } else { deadline - now };
            if link.port.set_timeout(wait).is_err() {
                return Err(HeadError::Transport(format!("{}: cannot set the read timeout", self.cfg.port)));
            }
            let before = Instant::now();
            match link.port.read(&mut buf) {
                Ok(0) => return Err(self.gone("read", std::io::Error::from(ErrorKind::UnexpectedEof))),
                Ok(n) => {
                    link.rx.push(&buf[..n]);
                    silent_since = None;
                }
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                    silent_since.get_or_insert(before);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
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
        self.resync_if_needed()?;
        self.exchange(&cmd.to_bytes(), timeout, None)
    }

    /// After an exchange in doubt: abort the PN532 and send a Diagnose echo with a nonce
    /// nobody sent before. The PN532 answers in order, so once the echo comes back every late
    /// ACK and answer of the failed command has gone by (and been skipped). Until then no
    /// command is sent: a failure here means the next command never left the host.
    fn resync_if_needed(&mut self) -> Result<(), HeadError> {
        if self.line != LineState::InDoubt {
            return Ok(());
        }
        self.stats.resyncs += 1;
        let mut probe = b"resync".to_vec();
        probe.extend_from_slice(&self.stats.resyncs.to_be_bytes());
        probe.extend_from_slice(&self.stats.frames_sent.to_be_bytes());
        let pd = Command::DiagnoseEcho(probe.clone()).to_bytes();
        let mut echo = vec![0x00];
        echo.extend_from_slice(&probe);
        // A late answer may still be on its way: give it the longer of the two timeouts.
        let timeout = CONTROL_TIMEOUT.max(self.cfg.timeout);
        self.abort();
        match self.exchange(&pd, timeout, Some(&echo)) {
            Ok(_) => Ok(()),
            Err(e) => Err(not_sent(format!(
                "{}: the PN532 link could not be proved clean after an exchange in doubt: {e}",
                self.cfg.port
            ))),
        }
    }

    /// One command frame out (exactly once) and its answer back. `exact`: the answer's
    /// parameters must be these (the resync echo); otherwise any answer to this command code
    /// is taken, after the ACK when a duplicate may be on the line.
    fn exchange(&mut self, pd: &[u8], timeout: Duration, exact: Option<&[u8]>) -> Result<Vec<u8>, HeadError> {
        let code = pd[0];
        let name = commands::name(code);
        let bytes = frame::encode(TFI_HOST, pd).map_err(|e| not_sent(format!("{name}: {e}")))?;
        self.drain().map_err(|e| not_sent(e.to_string()))?;
        // The resync echo identifies itself; other answers need their ACK while a duplicate or a
        // late answer may be on the line.
        let need_ack = exact.is_none() && self.line != LineState::Clean;
        let sent = Instant::now();
        let deadline = sent + timeout;
        // A write that fails may have put part of the frame, or all of it, on the line.
        self.write_raw(&bytes)?;
        self.stats.frames_sent += 1;
        let mut acked = false;
        let mut nacks = 0;
        let failure = loop {
            let rx = self.receive(deadline)?;
            match rx {
                Rx::Frame(Frame::Ack) => acked = true,
                Rx::Frame(Frame::Info { tfi: TFI_PN532, data })
                    if data.first() == Some(&code.wrapping_add(1))
                        && (acked || !need_ack)
                        && exact.is_none_or(|x| data[1..] == *x) =>
                {
                    self.line = if nacks > 0 { LineState::Duplicate } else { LineState::Clean };
                    let mut data = data;
                    data.remove(0);
                    return Ok(data);
                }
                // While proving the line clean, an error frame before the echo's ACK is the
                // failed command's (or garbage's): skipped like its late answer would be.
                Rx::Frame(Frame::Error) if exact.is_some() && !acked => self.stats.stale_frames += 1,
                // The syntax-error frame. Before our ACK it may be the PN532 refusing line
                // garbage that came before our frame, with our ACK and answer still to come:
                // the command is in doubt either way and is not sent again.
                Rx::Frame(Frame::Error) => break Failure::Refused { acked },
                // Another command's answer, an ACK or answer before our ACK while a duplicate
                // may be on the line, a NACK (only hosts send those): not ours.
                Rx::Frame(_) => self.stats.stale_frames += 1,
                // Before our ACK, broken frames are line noise (a false start code). After it,
                // the next frame is our answer: ask for it again.
                Rx::Bad(_) | Rx::Cut if !acked => {}
                Rx::Bad(e) => {
                    if nacks == MAX_NACKS {
                        break Failure::Broken(format!("answer to {name} still broken after {nacks} NACKs: {e}"));
                    }
                    nacks += 1;
                    self.nack()?;
                }
                Rx::Cut => {
                    if nacks == MAX_NACKS {
                        break Failure::Broken(format!("answer to {name} still cut short after {nacks} NACKs"));
                    }
                    nacks += 1;
                    self.nack()?;
                }
                Rx::Deadline => break Failure::Timeout,
            }
        };
        // In doubt: stop the PN532 and keep the next command off the line until it is clean.
        let waited = sent.elapsed();
        self.abort();
        self.line = LineState::InDoubt;
        self.stats.in_doubt += 1;
        Err(match failure {
            Failure::Timeout => {
                self.stats.timeouts += 1;
                // The time actually waited, to the millisecond (never less than the timeout).
                HeadError::Timeout(Duration::from_millis(waited.as_millis() as u64))
            }
            Failure::Refused { acked } => HeadError::Protocol(format!(
                "PN532 answered {name} with a syntax-error frame{}",
                if acked { "" } else { " before its ACK (not sent again: it may have been taken)" }
            )),
            Failure::Broken(m) => HeadError::Protocol(m),
        })
    }

    /// Ask the PN532 to send its last answer again (it does not run the command again).
    fn nack(&mut self) -> Result<(), HeadError> {
        self.stats.nacks += 1;
        // The rest of the broken frame is worthless; the answer comes again in full.
        if let Some(l) = self.link.as_mut() {
            l.rx.clear();
        }
        self.write_raw(&frame::NACK)
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

/// An error for a command the driver did not write: the card cannot have seen it.
fn not_sent(msg: String) -> HeadError {
    HeadError::NotSent(msg)
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

    /// The port opens and the PN532 passes its initialisation (line test, firmware).
    fn open(&mut self) -> Result<(), HeadError> {
        self.connect()
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
        // Proving the line clean after an earlier failure is not part of this exchange.
        self.resync_if_needed()?;
        let start = Instant::now();
        let response = self.exchange_apdu(tg, apdu)?;
        let duration = start.elapsed();
        if response.len() < 2 {
            return Err(HeadError::Protocol(format!("card answered {} bytes, no status word", response.len())));
        }
        Ok(Wire { response, duration })
    }
}
