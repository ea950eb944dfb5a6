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
}

impl<'a> Link<'a> {
    pub fn new(head: &'a mut dyn Head, rec: &Recorder) -> Self {
        Link { head, rec: rec.clone(), card_id: String::new(), test_step: String::new() }
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

    fn exec_inner(&mut self, step: &str, cmd: &Command, secret: bool) -> Result<Response, HeadError> {
        let mut last = cmd.clone();
        let mut resp = self.wire(step, &last, secret, RowKind::Command, "")?;
        let mut data = Vec::new();
        let mut resent = false;
        for _ in 0..MAX_CHAIN {
            match resp.sw1() {
                0x6C if !resent => {
                    let le = if resp.sw2() == 0 { 256 } else { resp.sw2() as usize };
                    last = last.clone().le(le);
                    resent = true;
                    let note = format!("re-sent with Le={le} after 6C{:02X}", resp.sw2());
                    resp = self.wire(step, &last, secret && last.ins == cmd.ins, RowKind::Resend6C, &note)?;
                }
                0x61 => {
                    data.extend_from_slice(&resp.data);
                    let le = if resp.sw2() == 0 { 256 } else { resp.sw2() as usize };
                    last = Command::new(0x00, 0xC0, 0, 0).le(le);
                    resent = false;
                    resp = self.wire(step, &last, false, RowKind::GetResponse, "GET RESPONSE")?;
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
    ) -> Result<Response, HeadError> {
        let bytes = cmd.to_bytes().map_err(|e| HeadError::NotSent(e.to_string()))?;
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
            if secret {
                let start = command.len() - cmd.data.len() - trailer_len(cmd);
                command[start..start + cmd.data.len()].iter_mut().for_each(|b| *b = 0);
                note = if note.is_empty() { "data redacted".into() } else { format!("{note}; data redacted") };
            }
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
