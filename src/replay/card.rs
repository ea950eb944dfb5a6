//! A card played from a trace (docs/replay.md, "A card played from a trace"): the rows one
//! (head, card) stream of a capture holds, answered in order to whoever sends the same
//! commands again: the `replay` head driver, `cardbench sim replay` behind vpcd or a PN532.
//!
//! Matching is exact on the command bytes; the captured response is played back as it was
//! (masks say which response bytes may change when a *card* is replayed, which is not the
//! case here: the capture is the card). Procedure bytes replay by themselves: the captured
//! `61xx` or `6Cxx` answer is played, then the captured GET RESPONSE or re-send row is the
//! next expected command. A command that is not the next captured one gets `6F00` and is
//! recorded as a mismatch; from then on the card stays desynchronised (every command gets
//! `6F00`), because the captured answers after that point describe a session the terminal
//! is no longer having.

use crate::event::{Exchange, RowKind};
use crate::sim::card::SimCard;
use crate::trace::TraceError;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The status word a desynchronised card answers: "no precise diagnosis". The reference card
/// never sends it through APDUs (card-spec 5), so it cannot be mistaken for a captured answer.
pub const MISMATCH_SW: u16 = crate::sw::NO_DIAGNOSIS;

/// Mismatches kept in memory; later ones are only counted (and still written to the file).
const KEEP: usize = 1000;

#[derive(Debug, Error)]
pub enum ReplayCardError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("card '{0}' is not a card ID (16 hex digits)")]
    BadCardId(String),
    #[error("card {card} is not in the trace (cards: {known})")]
    UnknownCard { card: String, known: String },
    #[error("head '{head}' is not in the trace (heads: {known})")]
    UnknownHead { head: String, known: String },
    #[error("card {card} has no rows on head {head} in the trace (its heads: {known})")]
    NotOnHead { card: String, head: String, known: String },
    #[error("card {card} is on several heads of the trace ({known}): name one with `head`")]
    SeveralHeads { card: String, known: String },
    #[error("cannot write mismatches to {}: {source}", path.display())]
    MismatchFile { path: PathBuf, source: std::io::Error },
}

/// A command the capture did not expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `seq` of the captured row that was expected; `None` past the capture's last row.
    pub expected_seq: Option<u64>,
    /// The captured command of that row.
    pub expected: Option<Vec<u8>>,
    /// What the terminal sent.
    pub received: Vec<u8>,
    /// Whether the card was already desynchronised by an earlier mismatch.
    pub after_desync: bool,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.expected_seq, &self.expected) {
            (Some(seq), Some(cmd)) => write!(f, "row {seq} expected {}", hex::encode_upper(cmd))?,
            _ => write!(f, "past the last captured row")?,
        }
        write!(f, ", received {}", hex::encode_upper(&self.received))?;
        if self.after_desync {
            write!(f, " (already desynchronised)")?;
        }
        Ok(())
    }
}

/// Where mismatches go besides the card's own list: a JSON-lines file (one object per
/// mismatch, flushed at once so a killed simulator leaves them on disk) and stderr.
#[derive(Default)]
pub struct MismatchLog {
    file: Option<(PathBuf, std::fs::File)>,
    stderr: bool,
    /// Prefix of every stderr line and `source` of every file line (e.g. `replay head A`).
    who: String,
}

impl MismatchLog {
    /// Log as `who`; `file` is created (emptied) now. It is written in append mode, one
    /// write per line, so the heads of one lab may share a file (each line names its source).
    pub fn new(who: &str, file: Option<&Path>, stderr: bool) -> Result<MismatchLog, ReplayCardError> {
        let file = match file {
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .and_then(|f| f.set_len(0).map(|_| f))
                    .map_err(|source| ReplayCardError::MismatchFile { path: p.into(), source })?;
                Some((p.to_path_buf(), f))
            }
            None => None,
        };
        Ok(MismatchLog { file, stderr, who: who.into() })
    }

    fn record(&mut self, card: &str, trace_head: &str, m: &Mismatch) {
        // Stderr gets the mismatch that desynchronised the card; the file gets every one.
        if self.stderr && !m.after_desync {
            crate::print::err(format_args!("{}: card {card}: command off the capture: {m}", self.who));
        }
        if let Some((path, f)) = self.file.as_mut() {
            let line = serde_json::json!({
                "source": self.who,
                "card": card,
                "trace_head": trace_head,
                "expected_seq": m.expected_seq,
                "expected": m.expected.as_ref().map(hex::encode_upper),
                "received": hex::encode_upper(&m.received),
                "answered": format!("{MISMATCH_SW:04X}"),
                "after_desync": m.after_desync,
            });
            if let Err(e) = f.write_all(format!("{line}\n").as_bytes()) {
                // The in-memory list still has it; say once that the file stopped.
                crate::print::err(format_args!(
                    "{}: writing {}: {e}; mismatches no longer written",
                    self.who,
                    path.display()
                ));
                self.file = None;
            }
        }
    }
}

/// One row the card plays.
#[derive(Debug, Clone)]
enum Play {
    /// A power-on or warm reset: the ATR the card answered then (empty when the trace has no
    /// `atr` column).
    Power { atr: Vec<u8> },
    /// A command and its captured answer (`None`: the capture got none, an in-doubt row).
    Wire { seq: u64, command: Vec<u8>, answer: Option<Vec<u8>> },
}

pub struct TraceCard {
    card_id: [u8; 8],
    trace_head: String,
    plays: Vec<Play>,
    next: usize,
    powered: bool,
    atr: Vec<u8>,
    /// The mismatch that desynchronised the card.
    desync: Option<Mismatch>,
    mismatches: Vec<Mismatch>,
    refused: u64,
    answered: u64,
    log: MismatchLog,
}

impl fmt::Debug for TraceCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceCard")
            .field("card_id", &hex::encode_upper(self.card_id))
            .field("trace_head", &self.trace_head)
            .field("next", &self.next)
            .field("rows", &self.plays.len())
            .field("desync", &self.desync)
            .finish()
    }
}

impl TraceCard {
    /// The card `card` (16 hex digits) of the trace at `path`, on trace head `head` (needed
    /// only when the card is on several heads).
    pub fn open(path: &Path, card: &str, head: Option<&str>) -> Result<TraceCard, ReplayCardError> {
        let trace = crate::trace::read_trace(path)?;
        TraceCard::from_rows(&trace.rows, card, head)
    }

    /// The card from rows already read.
    pub fn from_rows(rows: &[Exchange], card: &str, head: Option<&str>) -> Result<TraceCard, ReplayCardError> {
        let card_id: [u8; 8] = hex::decode(card)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ReplayCardError::BadCardId(card.into()))?;
        let card = hex::encode_upper(card_id);
        let owners = owners(rows);
        let heads_of_card: Vec<&str> =
            unique(rows.iter().zip(&owners).filter(|(_, o)| **o == card).map(|(r, _)| r.head.as_str()));
        if heads_of_card.is_empty() {
            let known = unique(owners.iter().map(String::as_str).filter(|c| !c.is_empty())).join(", ");
            return Err(ReplayCardError::UnknownCard { card, known });
        }
        let head = match head {
            Some(h) if !rows.iter().any(|r| r.head == h) => {
                let known = unique(rows.iter().map(|r| r.head.as_str())).join(", ");
                return Err(ReplayCardError::UnknownHead { head: h.into(), known });
            }
            Some(h) if !heads_of_card.contains(&h) => {
                return Err(ReplayCardError::NotOnHead { card, head: h.into(), known: heads_of_card.join(", ") })
            }
            Some(h) => h.to_string(),
            None if heads_of_card.len() > 1 => {
                return Err(ReplayCardError::SeveralHeads { card, known: heads_of_card.join(", ") })
            }
            None => heads_of_card[0].to_string(),
        };
        let mut plays = Vec::new();
        for (r, _) in rows.iter().zip(&owners).filter(|(r, o)| r.head == head && **o == card) {
            match r.kind {
                RowKind::PowerOn | RowKind::WarmReset => plays.push(Play::Power { atr: r.atr.clone() }),
                // Personalization the batch sent through the link: a replayer rebuilds such a
                // card from its card plan; the rows themselves are redacted and never re-sent.
                _ if r.protocol_step == "perso" => {}
                RowKind::Command | RowKind::GetResponse | RowKind::Resend6C => {
                    let mut answer = r.response.clone();
                    answer.extend_from_slice(&r.sw.to_be_bytes());
                    plays.push(Play::Wire { seq: r.seq, command: r.command.clone(), answer: Some(answer) });
                }
                RowKind::InDoubt => plays.push(Play::Wire { seq: r.seq, command: r.command.clone(), answer: None }),
                RowKind::PowerOff | RowKind::Insert | RowKind::Remove | RowKind::Step => {}
            }
        }
        let atr = plays
            .iter()
            .find_map(|p| match p {
                Play::Power { atr } if !atr.is_empty() => Some(atr.clone()),
                _ => None,
            })
            .unwrap_or_else(|| reference_atr(&plays));
        Ok(TraceCard {
            card_id,
            trace_head: head,
            plays,
            next: 0,
            powered: false,
            atr,
            desync: None,
            mismatches: Vec::new(),
            refused: 0,
            answered: 0,
            log: MismatchLog::default(),
        })
    }

    /// Where mismatches are logged besides `mismatches()`.
    pub fn with_log(mut self, log: MismatchLog) -> Self {
        self.log = log;
        self
    }

    /// The trace head the card's rows come from.
    pub fn trace_head(&self) -> &str {
        &self.trace_head
    }

    /// Commands the capture holds for this card (GET RESPONSE and re-sends included).
    pub fn commands(&self) -> usize {
        self.plays.iter().filter(|p| matches!(p, Play::Wire { .. })).count()
    }

    /// Captured commands played back so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Captured commands not played yet (0 once the terminal went through the whole capture).
    pub fn remaining(&self) -> usize {
        self.plays[self.next.min(self.plays.len())..].iter().filter(|p| matches!(p, Play::Wire { .. })).count()
    }

    /// The first `KEEP` mismatches, in order.
    pub fn mismatches(&self) -> &[Mismatch] {
        &self.mismatches
    }

    /// Commands answered `MISMATCH_SW` (all mismatches, the ones not kept included).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Whether a mismatch desynchronised the card.
    pub fn desynchronised(&self) -> bool {
        self.desync.is_some()
    }

    fn refuse(&mut self, received: &[u8]) -> Vec<u8> {
        let m = match &self.desync {
            Some(first) => Mismatch { received: received.to_vec(), after_desync: true, ..first.clone() },
            None => {
                let (expected_seq, expected) = match self.plays[self.next..].iter().find_map(|p| match p {
                    Play::Wire { seq, command, .. } => Some((*seq, command.clone())),
                    Play::Power { .. } => None,
                }) {
                    Some((s, c)) => (Some(s), Some(c)),
                    None => (None, None),
                };
                let m = Mismatch { expected_seq, expected, received: received.to_vec(), after_desync: false };
                self.desync = Some(m.clone());
                m
            }
        };
        self.log.record(&hex::encode_upper(self.card_id), &self.trace_head, &m);
        if self.mismatches.len() < KEEP {
            self.mismatches.push(m);
        }
        self.refused += 1;
        MISMATCH_SW.to_be_bytes().to_vec()
    }
}

impl SimCard for TraceCard {
    fn card_id(&self) -> [u8; 8] {
        self.card_id
    }

    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }

    fn is_powered(&self) -> bool {
        self.powered
    }

    /// Takes the ATR of the captured power-on or warm reset when that is what comes next;
    /// otherwise keeps the last one. Power events never count as mismatches: readers power
    /// cards on their own (pcscd at insertion and after idle power-down, a PN532 at each
    /// activation), so they cannot be expected to follow the capture.
    ///
    /// An in-doubt row still expected when the card is powered again is passed over: the
    /// captured command may never have reached the card (a power cut before it), and a
    /// terminal that lost its card the same way does not send it either.
    fn power_on(&mut self) -> Vec<u8> {
        self.powered = true;
        while let Some(p) = self.plays.get(self.next) {
            match p {
                Play::Power { atr } if !atr.is_empty() => self.atr = atr.clone(),
                Play::Power { .. } | Play::Wire { answer: None, .. } => {}
                Play::Wire { .. } => break,
            }
            self.next += 1;
        }
        self.atr.clone()
    }

    fn power_off(&mut self) {
        self.powered = false;
    }

    fn process(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        if !self.powered {
            return None;
        }
        if self.desync.is_some() {
            return Some(self.refuse(apdu));
        }
        // A power row the reader did not reproduce is passed over (see `power_on`).
        while let Some(Play::Power { .. }) = self.plays.get(self.next) {
            self.next += 1;
        }
        match self.plays.get(self.next) {
            Some(Play::Wire { command, answer, .. }) if command.as_slice() == apdu => {
                let answer = answer.clone();
                self.next += 1;
                self.answered += 1;
                // An in-doubt row: the captured card gave no answer, and neither does this one.
                answer
            }
            _ => Some(self.refuse(apdu)),
        }
    }
}

/// Which card each row belongs to: its `card_id`, or for rows before the runner learnt the
/// ID (power-on, identify), the next card ID on the same head (the last one when none
/// follows).
fn owners(rows: &[Exchange]) -> Vec<String> {
    let mut out = vec![String::new(); rows.len()];
    let mut next_on_head: std::collections::HashMap<&str, String> = Default::default();
    for (i, r) in rows.iter().enumerate().rev() {
        if !r.card_id.is_empty() {
            next_on_head.insert(r.head.as_str(), r.card_id.to_ascii_uppercase());
        }
        out[i] = next_on_head.get(r.head.as_str()).cloned().unwrap_or_default();
    }
    let mut last_on_head: std::collections::HashMap<&str, String> = Default::default();
    for (i, r) in rows.iter().enumerate() {
        if !r.card_id.is_empty() {
            last_on_head.insert(r.head.as_str(), r.card_id.to_ascii_uppercase());
        } else if out[i].is_empty() {
            out[i] = last_on_head.get(r.head.as_str()).cloned().unwrap_or_default();
        }
    }
    out
}

fn unique<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = Vec::new();
    for s in it {
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

/// For traces without an `atr` column: the reference card's ATR, T=0 when the capture has
/// procedure bytes (`61xx`/`6Cxx` are T=0 only), T=1 otherwise.
fn reference_atr(plays: &[Play]) -> Vec<u8> {
    let t0 = plays.iter().any(|p| match p {
        Play::Wire { answer: Some(a), .. } => matches!(a[a.len() - 2], 0x61 | 0x6C),
        _ => false,
    });
    let protocol = if t0 { crate::spec::Protocol::T0 } else { crate::spec::Protocol::T1 };
    crate::lab::reference_atr(protocol)
}

/// The terminal's random seed of the run that wrote `trace` (its `run.json` says
/// `terminal_rng = "seeded:<64 hex>"`), so a terminal talking to the played card sends the
/// same randoms, and with them the same commands. `None` for runs on real readers (`os`) or
/// a trace without its `run.json`.
pub fn recorded_terminal_seed(trace: &Path) -> Option<[u8; 32]> {
    let text = std::fs::read_to_string(trace.parent()?.join("run.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let hex = v.get("terminal_rng")?.as_str()?.strip_prefix("seeded:")?;
    hex::decode(hex).ok()?.try_into().ok()
}
