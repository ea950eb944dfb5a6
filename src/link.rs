//! The one place where APDUs go on the wire: T=0 procedure handling (61xx → GET RESPONSE,
//! 6Cxx → re-send with the right Le) above every head, and one trace row per wire exchange.
//!
//! A command that may have reached the card but got no complete answer is *in doubt*: the
//! link writes its row (kind `in-doubt`, with the error) and waits until that row is on disk
//! before it returns the error, and it never re-sends it. What the card did is for the
//! caller to find out by reading the card's state (`engine::recover`), never by retrying.

use crate::apdu::{Command, Response};
use crate::event::{Event, Exchange, Recorder, RowKind};
use crate::head::{Head, HeadError};
use std::time::Instant;

/// Upper bound on GET RESPONSE rounds: a card that keeps answering 61xx is broken, and the
/// bench must not loop forever on it.
const MAX_CHAIN: usize = 300;

pub struct Link<'a> {
    pub head: &'a mut dyn Head,
    rec: Recorder,
    pub card_id: String,
    pub test_step: String,
    /// Plan step inside the case and its repeat index, for the trace's `step`/`repeat`.
    pub step: String,
    pub repeat: u32,
}

impl<'a> Link<'a> {
    pub fn new(head: &'a mut dyn Head, rec: &Recorder) -> Self {
        Link {
            head,
            rec: rec.clone(),
            card_id: String::new(),
            test_step: String::new(),
            step: String::new(),
            repeat: 0,
        }
    }

    pub fn head_name(&self) -> String {
        self.head.info().name.clone()
    }

    pub fn recorder(&self) -> &Recorder {
        &self.rec
    }

    /// Record a seed step the terminal performs without talking to the card.
    pub fn note_step(&self, protocol_step: &str, what: &str) {
        if self.rec.enabled() {
            self.rec.send(Event::ProtocolStep {
                head: self.head_name(),
                test_step: self.test_step.clone(),
                protocol_step: protocol_step.into(),
                what: what.into(),
            });
        }
    }

    /// Execute a command, following procedure bytes until a final status word.
    pub fn exec(&mut self, step: &str, cmd: &Command) -> Result<Response, HeadError> {
        self.exec_inner(step, cmd, false)
    }

    /// Same as `exec` for commands carrying secret keys: the trace keeps the header and
    /// the length but zeroes the data field.
    pub fn exec_secret(&mut self, step: &str, cmd: &Command) -> Result<Response, HeadError> {
        self.exec_inner(step, cmd, true)
    }

    /// One wire exchange whose `61xx`/`6Cxx` answer is returned as it is, not followed: how a
    /// replay sends a captured command whose terminal stopped at procedure bytes (scriptor
    /// does), so that the card is asked exactly what it was asked then.
    pub fn exec_raw(&mut self, step: &str, cmd: &Command) -> Result<Response, HeadError> {
        let origin = cmd.to_bytes().map_err(|e| HeadError::NotSent(e.to_string()))?;
        self.wire(step, cmd, false, RowKind::Command, "", (&origin, &[]))
    }

    /// Cold reset through the head, recorded as a `power-on` row with the ATR (or the error).
    pub fn power_on(&mut self) -> Result<Vec<u8>, HeadError> {
        let at = Instant::now();
        let r = self.head.power_on();
        self.power_row(RowKind::PowerOn, at, r.as_ref().map(Vec::as_slice).map_err(|e| e.clone()));
        r
    }

    pub fn power_off(&mut self) -> Result<(), HeadError> {
        let at = Instant::now();
        let r = self.head.power_off();
        self.power_row(RowKind::PowerOff, at, r.as_ref().map(|_| &[][..]).map_err(|e| e.clone()));
        r
    }

    pub fn warm_reset(&mut self) -> Result<Vec<u8>, HeadError> {
        let at = Instant::now();
        let r = self.head.warm_reset();
        self.power_row(RowKind::WarmReset, at, r.as_ref().map(Vec::as_slice).map_err(|e| e.clone()));
        r
    }

    fn power_row(&self, kind: RowKind, at: Instant, r: Result<&[u8], HeadError>) {
        let (atr, error) = match r {
            Ok(atr) => (atr.to_vec(), String::new()),
            Err(e) => (Vec::new(), e.to_string()),
        };
        self.event_row(kind, at, atr, String::new(), error);
    }

    /// A row without a command: a card or power event, or the start of a plan step
    /// (`RowKind::Step`, its parameters in `note`).
    pub fn event(&self, kind: RowKind, note: &str) {
        self.event_row(kind, Instant::now(), Vec::new(), note.to_string(), String::new());
    }

    fn event_row(&self, kind: RowKind, at: Instant, atr: Vec<u8>, note: String, error: String) {
        if !self.rec.enabled() {
            return;
        }
        self.rec.send(Event::Exchange(Box::new(Exchange {
            seq: self.rec.next_seq(),
            wall: chrono::Utc::now(),
            mono_ns: self.rec.mono_ns(at),
            head: self.head_name(),
            card_id: self.card_id.clone(),
            test_step: self.test_step.clone(),
            duration_ns: at.elapsed().as_nanos() as u64,
            note,
            kind,
            error,
            atr,
            step: self.step.clone(),
            repeat: self.repeat,
            ..Exchange::default()
        })));
    }

    /// Send `bytes` exactly as given, then follow procedure bytes as `exec` does: how a plan
    /// puts on the wire what `Command` would never encode (an Lc that disagrees with the data,
    /// trailing bytes, a truncated length, the extended form of a command that fits the short
    /// one), to see the card answer it (card-spec 1.6). A `6Cxx` is answered by re-sending the
    /// parsed command with Le = xx (in the form `Command` gives it); bytes that do not parse
    /// have nothing to re-send, and their `6Cxx` is returned as it came.
    pub fn exec_verbatim(&mut self, step: &str, bytes: &[u8]) -> Result<Response, HeadError> {
        let first = self.wire_bytes(step, bytes.to_vec(), None, RowKind::Command, "", (bytes, &[]))?;
        match Command::parse(bytes) {
            Ok(cmd) => self.follow(step, &cmd, false, bytes, first),
            Err(_) if first.sw1() == 0x61 => {
                // A card that kept data for an APDU it could not parse: fetch it all the same.
                self.follow(step, &Command::new(0x00, 0xC0, 0, 0), false, bytes, first)
            }
            Err(_) => Ok(first),
        }
    }

    /// Bytes sent exactly as given, in one wire exchange: not parsed, not re-encoded, and the
    /// card's `61xx`/`6Cxx` returned as they are (no GET RESPONSE, no re-send). How a plan asks
    /// a card about its delivery and GET RESPONSE rules themselves (plan `raw = true`).
    pub fn exec_bytes(&mut self, step: &str, bytes: &[u8]) -> Result<Response, HeadError> {
        self.wire_bytes(step, bytes.to_vec(), None, RowKind::Command, "", (bytes, &[]))
    }

    fn exec_inner(&mut self, step: &str, cmd: &Command, secret: bool) -> Result<Response, HeadError> {
        // The dynamic bytes of every row of the exchange are those of the command asked for.
        let origin = cmd.to_bytes().map_err(|e| HeadError::NotSent(e.to_string()))?;
        let resp = self.wire(step, cmd, secret, RowKind::Command, "", (&origin, &[]))?;
        self.follow(step, cmd, secret, &origin, resp)
    }

    /// Follow the procedure bytes of `resp`, the card's answer to `cmd` (sent as `origin`),
    /// until a final status word; the data of every part, concatenated.
    fn follow(
        &mut self,
        step: &str,
        cmd: &Command,
        secret: bool,
        origin: &[u8],
        mut resp: Response,
    ) -> Result<Response, HeadError> {
        let origin = origin.to_vec();
        let mut last = cmd.clone();
        let mut data = Vec::new();
        let mut resent = false;
        for _ in 0..MAX_CHAIN {
            match resp.sw1() {
                0x6C if !resent => {
                    let le = if resp.sw2() == 0 { 256 } else { resp.sw2() as usize };
                    last = last.clone().le(le);
                    resent = true;
                    let note = format!("re-sent with Le={le} after 6C{:02X}", resp.sw2());
                    let secret = secret && last.ins == cmd.ins;
                    resp = self.wire(step, &last, secret, RowKind::Resend6C, &note, (&origin, &data))?;
                }
                0x61 => {
                    data.extend_from_slice(&resp.data);
                    let le = if resp.sw2() == 0 { 256 } else { resp.sw2() as usize };
                    last = Command::new(0x00, 0xC0, 0, 0).le(le);
                    resent = false;
                    resp = self.wire(step, &last, false, RowKind::GetResponse, "GET RESPONSE", (&origin, &data))?;
                }
                _ => {
                    data.extend_from_slice(&resp.data);
                    return Ok(Response { data, sw: resp.sw });
                }
            }
        }
        Err(HeadError::Protocol(format!("card still answering procedure bytes after {MAX_CHAIN} rounds")))
    }

    fn wire(
        &mut self,
        step: &str,
        cmd: &Command,
        secret: bool,
        kind: RowKind,
        note: &str,
        (origin, before): (&[u8], &[u8]),
    ) -> Result<Response, HeadError> {
        let bytes = cmd.to_bytes().map_err(|e| HeadError::NotSent(e.to_string()))?;
        // Secret commands: the trace keeps the header and the length, the data is zeroed.
        let redact = secret.then(|| (bytes.len() - cmd.data.len() - trailer_len(cmd), cmd.data.len()));
        self.wire_bytes(step, bytes, redact, kind, note, (origin, before))
    }

    /// One wire exchange of `bytes` as they are, and its trace row; `redact`: the range of
    /// the command (start, length) the row zeroes.
    fn wire_bytes(
        &mut self,
        step: &str,
        bytes: Vec<u8>,
        redact: Option<(usize, usize)>,
        kind: RowKind,
        note: &str,
        (origin, before): (&[u8], &[u8]),
    ) -> Result<Response, HeadError> {
        if let Some(why) = self.rec.failure() {
            return Err(HeadError::NotSent(format!("the trace cannot be written ({why})")));
        }
        let wall = chrono::Utc::now();
        let at = Instant::now();
        let answer = self.head.transmit(&bytes).and_then(|w| match Response::parse(&w.response) {
            Ok(r) => Ok((r, w.duration)),
            Err(e) => Err(HeadError::Protocol(format!("malformed answer {}: {e}", hex::encode_upper(&w.response)))),
        });
        let (resp, duration, error) = match answer {
            Ok((r, d)) => (r, d, None),
            Err(e) => {
                if !e.maybe_delivered() {
                    self.rec.send_urgent(Event::HeadError { head: self.head_name(), error: e.to_string() });
                    return Err(e);
                }
                (Response { data: Vec::new(), sw: 0 }, at.elapsed(), Some(e))
            }
        };
        if self.rec.enabled() {
            let mut command = bytes;
            let mut note = note.to_string();
            if let Some((start, n)) = redact {
                command[start..start + n].iter_mut().for_each(|b| *b = 0);
                note = if note.is_empty() { "data redacted".into() } else { format!("{note}; data redacted") };
            }
            let mask = if before.is_empty() {
                crate::mask::dynamic(origin, &resp.data)
            } else {
                let whole = [before, &resp.data].concat();
                crate::mask::dynamic(origin, &whole).window(before.len(), resp.data.len())
            };
            let row = Exchange {
                seq: self.rec.next_seq(),
                wall,
                mono_ns: self.rec.mono_ns(at),
                head: self.head_name(),
                card_id: self.card_id.clone(),
                test_step: self.test_step.clone(),
                protocol_step: step.to_string(),
                command,
                response: resp.data.clone(),
                sw: resp.sw,
                duration_ns: duration.as_nanos() as u64,
                note,
                kind: if error.is_some() { RowKind::InDoubt } else { kind },
                error: error.as_ref().map(ToString::to_string).unwrap_or_default(),
                atr: Vec::new(),
                step: self.step.clone(),
                repeat: self.repeat,
                mask,
            };
            if error.is_some() {
                // The in-doubt row is the record that this command may have run: it must be on
                // disk before the caller can do anything else.
                self.rec.send_durable(Event::Exchange(Box::new(row)));
            } else {
                self.rec.send(Event::Exchange(Box::new(row)));
            }
        }
        match error {
            Some(e) => {
                self.rec.send_urgent(Event::HeadError { head: self.head_name(), error: e.to_string() });
                Err(e)
            }
            None => Ok(resp),
        }
    }
}

/// Bytes after the data field: the Le field.
fn trailer_len(cmd: &Command) -> usize {
    match cmd.le {
        None => 0,
        Some(_) if cmd.is_extended() => 2,
        Some(_) => 1,
    }
}
