//! Conformance plans (`test-plans/*.toml`, docs/plan-language.md): parsed and validated
//! completely before anything is sent to a card.
//!
//! `parse` turns TOML into these types with file:line:col errors; `template` renders APDU
//! templates and evaluates expressions; the runner executes them.

pub mod expr_check;
pub mod parse;
pub mod template;
pub mod verifies;

use crate::engine::key_update::UpdateMode;
pub use crate::engine::purse::ChargeMode;
use std::ops::Range;
use std::path::PathBuf;
use template::{Expr, Template};

/// Where a `tear` step cuts power during the next engine step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TearAt {
    /// At the `n`-th wire exchange on the head (1-based), before the command or after it.
    Exchange { n: u64, point: crate::head::virtual_head::CutPoint },
    /// During the `k`-th NVM commit of the card (virtual heads only).
    Commit(u64),
    /// At the `n`-th command with INS `ins` on the head, before it or after it: GET RESPONSE
    /// and other commands do not count, so the cut is the same on T=0 and T=1.
    Command { ins: u8, n: u64, point: crate::head::virtual_head::CutPoint },
}

impl TearAt {
    /// The head-level cut of an exchange or command tear, with the INS it counts (`None`
    /// for a commit tear).
    pub fn power_cut(self) -> Option<(crate::head::virtual_head::PowerCut, Option<u8>)> {
        use crate::head::virtual_head::PowerCut;
        match self {
            TearAt::Exchange { n, point } => Some((PowerCut { at: n, point }, None)),
            TearAt::Command { ins, n, point } => Some((PowerCut { at: n, point }, Some(ins))),
            TearAt::Commit(_) => None,
        }
    }
}

/// A protocol-engine invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `mode`: add to the verified record (the default) or write `amount` as the new value;
    /// `machine`: which of the keyset's charge machines acts (`None`: C1).
    Charge {
        head: String,
        amount: Amount,
        mode: ChargeMode,
        machine: Option<String>,
    },
    /// `machine`: which of the keyset's payment machines acts (`None`: P1).
    Pay {
        head: String,
        price: Amount,
        machine: Option<String>,
    },
    /// `unchecked`: the terminal skips its own value check (S38) so the card's is tested.
    CardSignedPayment {
        head: String,
        price: Amount,
        unchecked: bool,
        machine: Option<String>,
    },
    KeyUpdate {
        a: String,
        b: String,
        mode: UpdateMode,
    },
    ValueTransfer {
        from: String,
        to: String,
        amount: Amount,
    },
    /// The settlement terminal: checks, key update of the older card in `mode` if the
    /// transfer-key IDs differ, then the transfer from `from` to `to` (`engine::settle`).
    Settle {
        from: String,
        to: String,
        amount: Amount,
        mode: UpdateMode,
    },
}

/// An amount: a literal or a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    Lit(u32),
    Var(String),
}

impl Action {
    pub fn engine(&self) -> &'static str {
        match self {
            Action::Charge { .. } => "charge",
            Action::Pay { .. } => "pay",
            Action::CardSignedPayment { .. } => "card_signed_payment",
            Action::KeyUpdate { .. } => "key_update",
            Action::ValueTransfer { .. } => "value_transfer",
            Action::Settle { .. } => "settle",
        }
    }

    /// The machine a step names (`machine = "P2"`), and the role it must have.
    pub fn machine(&self) -> Option<(&str, crate::crypto::cert::Role)> {
        use crate::crypto::cert::Role;
        match self {
            Action::Charge { machine: Some(m), .. } => Some((m, Role::ChargeMachine)),
            Action::Pay { machine: Some(m), .. } | Action::CardSignedPayment { machine: Some(m), .. } => {
                Some((m, Role::PaymentMachine))
            }
            _ => None,
        }
    }

    pub fn heads(&self) -> Vec<&str> {
        match self {
            Action::Charge { head, .. } | Action::Pay { head, .. } | Action::CardSignedPayment { head, .. } => {
                vec![head]
            }
            Action::KeyUpdate { a, b, .. } => vec![a, b],
            Action::ValueTransfer { from, to, .. } | Action::Settle { from, to, .. } => vec![from, to],
        }
    }
}

/// Status-word expectation: any of the patterns, each 4 hex digits with `X` wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwExpect(pub Vec<String>);

impl SwExpect {
    pub fn matches(&self, sw: u16) -> bool {
        let actual = format!("{sw:04X}");
        self.0.iter().any(|p| p.chars().zip(actual.chars()).all(|(e, a)| e == 'X' || e == a))
    }

    pub fn describe(&self) -> String {
        self.0.join(" or ")
    }
}

/// Response-data expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataExpect {
    /// Hex template with `X` nibble wildcards; `${var}` substituted at run time.
    Mask(Template),
    /// Inclusive length range.
    Len(usize, usize),
}

/// Where a capture takes its value from the response data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSpec {
    /// Big-endian unsigned integer of 1, 2 or 4 bytes at an offset.
    Uint { bytes: usize, at: usize },
    /// Bytes `from..to` as hex.
    Bytes { from: usize, to: usize },
    /// The whole response data as hex.
    All,
    /// The final status word, as an integer (`0x9000` = 36864).
    Sw,
}

impl CaptureSpec {
    /// How many bytes of response data the capture needs.
    pub fn end(&self) -> usize {
        match self {
            CaptureSpec::All | CaptureSpec::Sw => 0,
            CaptureSpec::Bytes { to, .. } => *to,
            CaptureSpec::Uint { bytes, at } => at + bytes,
        }
    }

    /// The value this capture takes from a response; `None` when the data is too short.
    pub fn take(&self, data: &[u8], sw: u16) -> Option<template::Value> {
        use template::Value;
        match self {
            CaptureSpec::Sw => Some(Value::Int(i64::from(sw))),
            CaptureSpec::All => Some(Value::Hex(hex::encode_upper(data))),
            CaptureSpec::Bytes { from, to } => data.get(*from..*to).map(|b| Value::Hex(hex::encode_upper(b))),
            CaptureSpec::Uint { bytes, at } => {
                data.get(*at..*at + *bytes).map(|b| Value::Int(b.iter().fold(0i64, |a, x| (a << 8) | i64::from(*x))))
            }
        }
    }
}

/// Card state read back through commands into `<as>.<field>` variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    Purse,
    Cpay,
    Xfer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    Apdu {
        head: String,
        command: Template,
        sw: SwExpect,
        data: Vec<DataExpect>,
        capture: Vec<(String, CaptureSpec)>,
        /// Send the command's bytes exactly as written (`verbatim = true`), not re-encoded
        /// from the parsed APDU: malformed lengths and extended forms reach the card.
        verbatim: bool,
        /// Sent as rendered, in one wire exchange: no APDU parsing, no `61xx`/`6Cxx` following.
        raw: bool,
    },
    Select {
        head: String,
        applet: crate::spec::Applet,
    },
    Engine {
        action: Action,
        expect: String,
    },
    Read {
        head: String,
        state: StateKind,
        prefix: String,
    },
    Assert {
        that: Expr,
        message: String,
    },
    Set {
        vars: Vec<(String, Expr)>,
    },
    PowerOff {
        head: String,
    },
    PowerOn {
        head: String,
    },
    WarmReset {
        head: String,
    },
    Remove {
        head: String,
    },
    Insert {
        head: String,
    },
    /// Arm a power cut on a head for the next engine step of the case (docs/tear.md).
    Tear {
        head: String,
        at: TearAt,
    },
    /// Terminal recovery (`engine::recover`) on one or two heads, with the intents the run
    /// keeps in memory; `expect` is a recovery verdict word or `settled`.
    Recover {
        heads: Vec<String>,
        expect: String,
    },
    /// Put a freshly personalized reference card into a virtual head (the previous card is
    /// discarded): how a plan gets a peer in the state a case needs.
    InsertCard {
        head: String,
        card: Box<crate::issuance::CardPlan>,
        protocol: crate::spec::Protocol,
    },
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Apdu { .. } => "apdu",
            StepKind::Select { .. } => "select",
            StepKind::Engine { .. } => "engine",
            StepKind::Read { .. } => "read",
            StepKind::Assert { .. } => "assert",
            StepKind::Set { .. } => "set",
            StepKind::PowerOff { .. } => "power_off",
            StepKind::PowerOn { .. } => "power_on",
            StepKind::WarmReset { .. } => "warm_reset",
            StepKind::Remove { .. } => "remove",
            StepKind::Insert { .. } => "insert",
            StepKind::InsertCard { .. } => "insert_card",
            StepKind::Tear { .. } => "tear",
            StepKind::Recover { .. } => "recover",
        }
    }

    /// Head or role names the step talks to.
    pub fn heads(&self) -> Vec<&str> {
        match self {
            StepKind::Apdu { head, .. }
            | StepKind::Select { head, .. }
            | StepKind::Read { head, .. }
            | StepKind::PowerOff { head }
            | StepKind::PowerOn { head }
            | StepKind::WarmReset { head }
            | StepKind::Remove { head }
            | StepKind::Insert { head }
            | StepKind::InsertCard { head, .. }
            | StepKind::Tear { head, .. } => vec![head],
            StepKind::Engine { action, .. } => action.heads(),
            StepKind::Recover { heads, .. } => heads.iter().map(String::as_str).collect(),
            StepKind::Assert { .. } | StepKind::Set { .. } => vec![],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    /// Position label for reports: `<case id> #<n> <kind>` with an optional name.
    pub label: String,
    pub kind: StepKind,
    /// How many times to run the step in a row.
    pub repeat: u32,
    /// Where the step's head names are, for binding errors.
    pub(crate) head_span: Located,
    /// Where its `machine` is, for errors of `bind_machines`.
    pub(crate) machine_span: Option<Located>,
}

/// A source position, for errors found after parsing (binding to a lab).
#[derive(Debug, Clone, Default)]
pub struct Located {
    pub file: PathBuf,
    pub span: Range<usize>,
}

impl Located {
    /// An error at this position (the file is read again for its line and column).
    pub fn error(&self, msg: impl Into<String>) -> crate::profile::ConfigError {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        crate::profile::ConfigError::at(&self.file, &text, self.span.start, msg)
    }
}

#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub title: String,
    pub reference: String,
    pub tags: Vec<String>,
    pub skip_if: Option<Expr>,
    /// Earlier cases whose outcome this case relies on (the state they leave on the card):
    /// when one of them did not pass, a failure of this case is reported `blocked by` the
    /// root cause, not as a failure of its own. A name covers every `for_each` instance.
    pub needs: Vec<String>,
    /// Variables fixed for this instance by `for_each`.
    pub bindings: Vec<(String, template::Value)>,
    pub steps: Vec<Step>,
    /// Requirement IDs of docs/card-spec.md the case checks (`crate::spec::requirements`).
    pub verifies: Vec<String>,
}

/// Whether the case `id` is the case named `name` (in `needs`): the same id, or one of the
/// `for_each` instances of `name` (`name[k=v,…]`).
pub fn case_is(id: &str, name: &str) -> bool {
    id.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub id: String,
    pub version: String,
    pub title: String,
    pub roles: Vec<(String, Located)>,
    pub vars: Vec<(String, template::Value)>,
    pub setup: Vec<Step>,
    pub cases: Vec<Case>,
    pub teardown: Vec<Step>,
    /// Requirements the plan (or a plan it includes) declares out of scope, with the reason.
    pub out_of_scope: Vec<verifies::OutOfScope>,
}

pub use parse::{load, parse_str};

/// What a `recover` step may expect: `settled` (anything but `unrecoverable`) or a verdict
/// word of `engine::recover::Finding::word`.
pub fn recover_expect_words() -> Vec<&'static str> {
    std::iter::once(crate::engine::recover::SETTLED).chain(crate::engine::recover::WORDS.iter().copied()).collect()
}

/// Does an engine outcome's verdict meet an expectation?
pub fn meets(expect: &str, verdict: &str) -> bool {
    expect == verdict || (expect == "rejected" && verdict.starts_with("rejected:"))
}
