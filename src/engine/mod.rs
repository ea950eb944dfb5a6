//! Terminal protocol engines: each a plain function of (links, keys, parameters) that
//! returns a typed outcome. A card that refuses or misbehaves is an outcome (`Rejected`,
//! naming the seed step); only the bench itself failing (a head error) is an `Err`.

pub mod cpay;
pub mod journal;
pub mod key_update;
pub mod purse;
pub mod recover;
pub mod revocation;
pub mod settle;
pub mod transfer;

use crate::apdu::{Command, Response};
use crate::head::HeadError;
use crate::link::Link;
use crate::sw;
use std::fmt;
use thiserror::Error;

/// Declares `RejectKind` with the code of each kind beside it: `code()` and the list plans
/// are checked against (`RejectKind::NAMED_CODES`) come from this one table.
macro_rules! reject_kinds {
    ($($(#[$doc:meta])* $v:ident = $code:literal,)*) => {
        /// What a terminal check found wrong. `code()` is what plans write after `rejected:`.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum RejectKind {
            /// The card answered a status word other than 9000.
            CardRefused(u16),
            $($(#[$doc])* $v,)*
        }

        impl RejectKind {
            /// Every code but `card-refused-XXXX` (one per status word), in declaration order.
            pub const NAMED_CODES: &'static [&'static str] = &[$($code,)*];

            pub fn code(&self) -> String {
                match self {
                    RejectKind::CardRefused(sw) => format!("{CARD_REFUSED}{sw:04X}"),
                    $(RejectKind::$v => $code.into(),)*
                }
            }
        }
    };
}

/// Prefix of the code of a refusal: `card-refused-` and the status word, 4 upper-case hex digits.
pub const CARD_REFUSED: &str = "card-refused-";

reject_kinds! {
    /// The card's answer does not have the documented layout.
    MalformedResponse = "malformed-response",
    /// No value record on the card (blank purse).
    NoRecord = "no-record",
    /// A certificate is not signed by the expected authority or has the wrong role.
    CertificateInvalid = "certificate-invalid",
    CertificateExpired = "certificate-expired",
    CertificateRevoked = "certificate-revoked",
    /// A public key-update path met a card that holds no certificate.
    CertificateMissing = "certificate-missing",
    /// The value record's signature does not match ID, counter, date and amount: a tampered
    /// amount, a record cloned from another card, or a rollback to an earlier record.
    RecordSignatureInvalid = "record-signature-invalid",
    /// The card's own signature (card-signed payment) does not verify.
    CardSignatureInvalid = "card-signature-invalid",
    InsufficientValue = "insufficient-value",
    CardExpired = "card-expired",
    /// The card did not do what it acknowledged (counter, balance or key ID not as expected).
    StateMismatch = "state-mismatch",
    TransferKeysDiffer = "transfer-keys-differ",
    /// A card holds a pending credit (an interrupted transfer): run recovery first.
    CreditPending = "credit-pending",
    /// The purse holds a record that was written but not signed (an interrupted write).
    RecordUnsettled = "record-unsettled",
    /// An earlier state-changing command on this head got no answer: its outcome is
    /// unknown until recovery reads the card.
    RecoveryNeeded = "recovery-needed",
}

impl RejectKind {
    /// Is `code` one an engine can report (a named code, or `card-refused-` with a status
    /// word as `code()` writes it)?
    pub fn is_code(code: &str) -> bool {
        Self::NAMED_CODES.contains(&code)
            || code.strip_prefix(CARD_REFUSED).is_some_and(|sw| {
                sw.len() == 4
                    && sw.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase() && c.is_ascii_hexdigit())
            })
    }
}

/// The words an engine step's `expect` is compared with besides `rejected:<code>`: the
/// verdicts of `Outcome::verdict` (`success`, `skipped`), any rejection (`rejected`), and the
/// runner's `in-doubt` for a step a `tear` cut.
pub const VERDICT_WORDS: &[&str] = &[SUCCESS, SKIPPED, "rejected", IN_DOUBT];
pub const SUCCESS: &str = "success";
pub const SKIPPED: &str = "skipped";
/// The verdict of an engine step during which an armed power cut fired.
pub const IN_DOUBT: &str = "in-doubt";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Seed step at which the terminal stopped (e.g. "S12", "S2103A").
    pub step: String,
    pub kind: RejectKind,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success(String),
    Skipped(String),
    Rejected(Rejection),
}

impl Outcome {
    /// The word plans compare against: `success`, `skipped` or `rejected:<code>`.
    pub fn verdict(&self) -> String {
        match self {
            Outcome::Success(_) => SUCCESS.into(),
            Outcome::Skipped(_) => SKIPPED.into(),
            Outcome::Rejected(r) => format!("rejected:{}", r.kind.code()),
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Outcome::Success(s) | Outcome::Skipped(s) => s.clone(),
            Outcome::Rejected(r) => format!("at {}: {}", r.step, r.detail),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.verdict(), self.detail())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    #[error("head {head}: {source}")]
    Head { head: String, source: HeadError },
    /// The step names a machine the keyset does not hold (or of the other role): checked
    /// before a plan runs (`Plan::bind_machines`), so only a caller that skipped it sees this.
    #[error("{0}")]
    Machine(#[from] crate::keys::MachineError),
    /// The terminal's CRL is past its next update: a bench error, not a verdict on a card.
    #[error(
        "at {step}: the terminal CRL is stale (next update {next_update}, lab clock {now}): issue a new one \
         (cardbench keys crl) or let the profile accept it ([keyset] accept_stale_crl = true)"
    )]
    StaleCrl { step: String, next_update: String, now: String },
}

/// The machine identity an engine acts as: `name` from the keyset (role checked), or the
/// keyset's default machine of `role` (C1, P1) when the step names none.
pub(crate) fn acting<'k>(
    t: &Terminal<'k>,
    role: crate::crypto::cert::Role,
    name: Option<&str>,
    step: &'static str,
) -> Result<&'k crate::keys::Party, EngineError> {
    let keys: &'k crate::keys::Keyset = t.keys;
    Ok(keys.machine_for(role, name, step)?)
}

/// Internal control flow: stop with a rejection, or with a bench failure.
pub(crate) enum Stop {
    Reject(Rejection),
    Head {
        head: String,
        source: HeadError,
    },
    /// The bench itself cannot go on (EngineError other than a head's).
    Bench(EngineError),
}

pub(crate) type Flow<T> = Result<T, Stop>;

pub(crate) fn reject<T>(step: &str, kind: RejectKind, detail: impl Into<String>) -> Flow<T> {
    Err(Stop::Reject(Rejection { step: step.into(), kind, detail: detail.into() }))
}

/// Turn an engine body's result into the public outcome.
pub(crate) fn finish(r: Flow<Outcome>) -> Result<Outcome, EngineError> {
    match r {
        Ok(o) => Ok(o),
        Err(Stop::Reject(r)) => Ok(Outcome::Rejected(r)),
        Err(Stop::Head { head, source }) => Err(EngineError::Head { head, source }),
        Err(Stop::Bench(e)) => Err(e),
    }
}

/// Send a command; a head failure stops the engine naming the head.
pub(crate) fn exec(link: &mut Link, step: &str, cmd: &Command) -> Flow<Response> {
    link.exec(step, cmd).map_err(|source| Stop::Head { head: link.head_name(), source })
}

/// Send a command and require 9000; any other status word is the card refusing at `step`.
pub(crate) fn ok_data(link: &mut Link, step: &str, cmd: &Command) -> Flow<Vec<u8>> {
    let r = exec(link, step, cmd)?;
    if r.sw != sw::OK {
        return reject(
            step,
            RejectKind::CardRefused(r.sw),
            format!("card answered {:04X}: {}", r.sw, sw::describe(r.sw)),
        );
    }
    Ok(r.data)
}

/// Send a command that answers no data (case 1 or 3: SELECT, WRITE SIGNATURE, PSO VERIFY
/// CERTIFICATE, …) and require 9000 with nothing else.
pub(crate) fn ok_empty(link: &mut Link, step: &str, cmd: &Command, what: &str) -> Flow<()> {
    let data = ok_data(link, step, cmd)?;
    no_data(step, &data, what)
}

/// A `9000` that must carry no data.
pub(crate) fn no_data(step: &str, data: &[u8], what: &str) -> Flow<()> {
    if !data.is_empty() {
        return reject(
            step,
            RejectKind::MalformedResponse,
            format!("{what}: {} bytes of response data, expected none", data.len()),
        );
    }
    Ok(())
}

/// SELECT an applet (card-spec 1.7: no response data).
pub(crate) fn select(link: &mut Link, step: &str, aid: &[u8]) -> Flow<()> {
    ok_empty(link, step, &crate::cmds::select(aid), "SELECT")
}

/// A response parsed with its spec layout; off the layout, the card is rejected at `step`
/// naming the field.
pub(crate) fn parsed<T>(step: &str, r: crate::spec::layout::Parsed<T>) -> Flow<T> {
    r.or_else(|e| reject(step, RejectKind::MalformedResponse, e.to_string()))
}

pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Refuse to start on a head whose earlier operation has an unknown outcome.
pub(crate) fn no_open_intent(t: &Terminal, link: &Link, step: &str) -> Flow<()> {
    let head = link.head_name();
    match t.journal.open_on(&head) {
        None => Ok(()),
        Some(i) => reject(
            step,
            RejectKind::RecoveryNeeded,
            format!("head {head}: outcome of the {} unknown (no answer): run recovery first", i.describe()),
        ),
    }
}

/// Run an engine body with journal bookkeeping: intents it recorded are dropped when it ends
/// with an outcome (every card answered), and kept when a head error leaves them in doubt.
pub(crate) fn journaled(
    t: &mut Terminal,
    body: impl FnOnce(&mut Terminal) -> Flow<Outcome>,
) -> Result<Outcome, EngineError> {
    let mark = t.journal.mark();
    let r = finish(body(t));
    if r.is_ok() {
        t.journal.truncate(mark);
    }
    r
}

/// Terminal-side context shared by every engine: keys, clock, randomness and the journal of
/// operations whose outcome is not known yet.
pub struct Terminal<'k> {
    pub keys: &'k crate::keys::Keyset,
    /// Transaction date written to cards and checked against validity (seconds, UTC).
    pub now: u32,
    pub rng: rand_chacha::ChaCha20Rng,
    /// Intents of state-changing commands still in doubt (`journal`, `recover`).
    pub journal: journal::Journal,
}

impl<'k> Terminal<'k> {
    pub fn new(keys: &'k crate::keys::Keyset, now: u32, rng: rand_chacha::ChaCha20Rng) -> Self {
        Terminal { keys, now, rng, journal: journal::Journal::new() }
    }

    pub fn random16(&mut self) -> [u8; 16] {
        use rand_core::RngCore;
        let mut r = [0u8; 16];
        self.rng.fill_bytes(&mut r);
        r
    }
}
