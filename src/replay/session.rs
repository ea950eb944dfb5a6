//! `cardbench replay --mode session` (docs/replay.md, "Session replay"): the plan steps of a
//! trace run again through the engines, on the mapped heads, with the parameters the trace's
//! `step` rows recorded (amounts, dates, key-update modes, heads); the exchanges they make
//! are compared with the captured ones row by row. A session whose commands depend on the
//! card's answers (a MAC over the card's random, a signature over its nonce) cannot be
//! replayed byte for byte on another card; re-running the protocol can, and then only the
//! dynamic bytes (`crate::mask`) may differ: in responses the card's randoms, MACs,
//! signatures and ciphertexts, in commands what the terminal computes from them.
//!
//! Rows are taken in trace order and cut into units:
//! - a plan step: its `step` row and the rows after it that carry its case, step and repeat
//!   (with the `identify` rows the runner made when the step first used a head); re-run
//!   with `runner::Session::replay_step` on a session kept across the steps;
//! - a card the bench made outside a step (a batch peer or DUT): its `insert` row with the
//!   card plan and the `power-on`, `perso` and `power-off` rows that follow; made again with
//!   `lab::insert_card` on the mapped (virtual) head;
//! - any other row outside a step (a recovery between cases): not re-run, listed.

use crate::event::{Event, Exchange, Recorder, RowKind};
use crate::head::virtual_head::CutPoint;
use crate::lab::Defects;
use crate::lab::{InsertedCard, Lab};
use crate::mask::{Mask, RowMasks};
use crate::plan::template::Template;
use crate::plan::{Action, Amount, Located, StateKind, Step, StepKind, SwExpect, TearAt};
use crate::replay::compare::{compare, hexdiff};
use crate::replay::{map_heads, ReplayArgs};
use crate::runner::Session;
use crate::sinks;
use rand_core::RngCore;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// How to replay (the CLI's flags).
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Replay only the units whose rows involve this card (upper-case hex ID). The other
    /// steps are not re-run, so the card's state must not depend on them.
    pub card: Option<String>,
    /// Go on after a divergence (with the next unit); otherwise stop at the first one.
    pub keep_going: bool,
    /// Seeded defects to give the cards the replay makes again (`insert` rows with a card
    /// plan, `insert_card` steps), by card ID in upper-case hex: the replay's lab chooses its
    /// cards, a captured card's own defects are not taken over.
    pub defects: HashMap<String, Defects>,
    /// Seed of the terminal's randoms; `None`: drawn from the OS (a replay is not meant to
    /// reproduce the capture's randoms, only its protocol).
    pub terminal_seed: Option<[u8; 32]>,
}

/// Why a session replay could not run (exit 2): a divergence is an outcome, not an error.
#[derive(Debug, Error)]
pub enum SessionError {
    /// A row the replay cannot act on, located in the source trace.
    #[error("{}:{line}: {what}", file.display())]
    Row { file: PathBuf, line: u64, what: String },
    /// Nothing in the trace to re-run: no `step` row (a trace from another tool or from
    /// before step rows), or none that involves the card asked for.
    #[error("{}: {what}", file.display())]
    Nothing { file: PathBuf, what: String },
    /// A step the lab could not run (a head the step needs is missing, a card cannot be made).
    #[error("{}:{line}: step {step}: {what}", file.display())]
    Bench { file: PathBuf, line: u64, step: String, what: String },
}

/// A captured row that the replay answered otherwise (or did not make, or made in excess).
#[derive(Debug, Clone, Serialize)]
pub struct SessionDivergence {
    /// Line of the captured row in the source trace (1 is the header); for a row the replay
    /// made in excess, the line of the step row.
    pub line: u64,
    pub seq: u64,
    pub trace_head: String,
    /// The lab head the row was replayed on.
    pub head: String,
    pub card_id: String,
    pub test_step: String,
    pub step: String,
    pub command_name: String,
    pub command: String,
    /// One line: what differs (`replay::compare::RowCheck::describe`, or a missing row).
    pub what: String,
    /// Expected and actual bytes, differing ones bracketed, masked ones `??`.
    pub diff: String,
    /// What the re-run step reported when it did not meet its expectation.
    pub step_verdict: String,
}

impl SessionDivergence {
    /// The console lines, as bytes mode prints them.
    pub fn render(&self, source: &Path) -> String {
        let step = if self.step.is_empty() { String::new() } else { format!(" {}", self.step) };
        let mut s = format!(
            "DIVERGED  {}:{} (seq {}, head {} on {}, card {}, {}{step})\n  {} {}\n  {}",
            source.display(),
            self.line,
            self.seq,
            self.trace_head,
            self.head,
            if self.card_id.is_empty() { "-" } else { &self.card_id },
            if self.test_step.is_empty() { "-" } else { &self.test_step },
            self.command_name,
            self.command,
            self.what
        );
        for l in self.diff.lines() {
            s.push_str("\n  ");
            s.push_str(l);
        }
        if !self.step_verdict.is_empty() {
            s.push_str(&format!("\n  re-run step: {}", self.step_verdict));
        }
        s
    }
}

/// Rows of the source that were not re-run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotRerun {
    pub line: u64,
    pub rows: u64,
    pub what: String,
}

/// Something the replay saw and reports without judging it.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub line: u64,
    pub what: String,
}

/// What a session replay found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionOutcome {
    /// Plan steps re-run (and cards made again outside steps).
    pub units: u64,
    /// Captured rows compared with a replayed row.
    pub rows_compared: u64,
    pub rows_matched: u64,
    pub divergences: Vec<SessionDivergence>,
    pub not_rerun: Vec<NotRerun>,
    /// ATRs that differ from the capture's (another card type or protocol): reported, not
    /// divergences, since the session is what is compared.
    pub notes: Vec<Note>,
    /// Where a replay without `keep_going` stopped (the diverging row's line).
    pub stopped_at_line: Option<u64>,
}

impl SessionOutcome {
    pub fn matched_all(&self) -> bool {
        self.divergences.is_empty()
    }

    /// 0 the whole session matched, 1 a divergence (2, could not run, is `SessionError`).
    pub fn exit_code(&self) -> i32 {
        if self.matched_all() {
            0
        } else {
            1
        }
    }
}

/// Rows read with `trace::read_trace` numbered with their line in the file (the header is
/// line 1; every row of a cardbench trace is one line).
pub fn numbered(rows: Vec<Exchange>) -> Vec<(u64, Exchange)> {
    rows.into_iter().enumerate().map(|(i, r)| (i as u64 + 2, r)).collect()
}

/// Replay the session of `rows` (every row of the source trace `source`, in file order, with
/// its line) on `lab`. `map` sends each trace head to a lab head (by index); a unit on a head
/// that is not mapped is not re-run (the CLI maps every head the card filter keeps). Every
/// exchange the replay makes also goes to `rec` (the replay's own trace).
pub fn run(
    source: &Path,
    rows: &[(u64, Exchange)],
    lab: &mut Lab,
    map: &HashMap<String, usize>,
    opts: &SessionOptions,
    rec: &Recorder,
) -> Result<SessionOutcome, SessionError> {
    let units = units(rows);
    let seed = opts.terminal_seed.unwrap_or_else(|| {
        let mut s = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut s);
        s
    });
    let names: HashMap<String, String> = map.iter().map(|(t, i)| (t.clone(), lab.heads[*i].name.clone())).collect();
    let mut now = lab.clock.unwrap_or_else(|| chrono::Utc::now().timestamp() as u32);
    let (mine, rx) = Recorder::new(&rec.plan);
    let Lab { heads, keyset, .. } = lab;
    let mut session = Session::new(heads, &mine, keyset, now, seed);
    let mut masks: HashMap<String, RowMasks> = HashMap::new();
    let mut out = SessionOutcome::default();
    let bad = |line: u64, what: String| SessionError::Row { file: source.to_path_buf(), line, what };
    for unit in &units {
        let (first_line, first) = unit.rows[0];
        let involves = |c: &str| unit.rows.iter().any(|(_, r)| r.card_id.eq_ignore_ascii_case(c));
        if opts.card.as_deref().is_some_and(|c| !involves(c)) {
            continue;
        }
        let unmapped: Vec<String> = unit.heads().into_iter().filter(|h| !names.contains_key(h)).collect();
        if !unmapped.is_empty() {
            out.not_rerun.push(NotRerun {
                line: *first_line,
                rows: unit.rows.len() as u64,
                what: format!("head {} not replayed (not mapped, or outside the card filter)", unmapped.join(", ")),
            });
            continue;
        }
        let verdict = match unit.what {
            What::Step => {
                let p = Params::parse(&first.note);
                if let Some(n) = p.get("now") {
                    now = n.parse().map_err(|_| bad(*first_line, format!("step parameter now={n} is not a date")))?;
                }
                let Some(step) = step_of(unit, &p, &names).map_err(|w| bad(*first_line, w))? else {
                    if !unit.rows[1..].iter().any(|(_, r)| r.kind.is_wire()) {
                        continue;
                    }
                    out.not_rerun.push(NotRerun {
                        line: *first_line,
                        rows: unit.rows.len() as u64,
                        what: format!("step `{}` is not re-run in session mode", p.get("do").unwrap_or("?")),
                    });
                    continue;
                };
                // The replay's own trace gets the step row too, on the lab's heads, so it can
                // itself be replayed.
                rec.send(Event::Exchange(Box::new(Exchange {
                    seq: mine.next_seq(),
                    wall: chrono::Utc::now(),
                    mono_ns: mine.mono_ns(std::time::Instant::now()),
                    head: names.get(&first.head).cloned().unwrap_or_default(),
                    note: p.renamed(&names),
                    ..first.clone()
                })));
                let reference = unit.rows[1..]
                    .iter()
                    .find(|(_, r)| r.kind == RowKind::Command && r.test_step != "identify")
                    .map_or("", |(_, r)| r.protocol_step.as_str());
                let v = session.replay_step(&first.test_step, reference, &step, first.repeat.max(1), now).map_err(
                    |what| SessionError::Bench {
                        file: source.to_path_buf(),
                        line: *first_line,
                        step: step.label.clone(),
                        what,
                    },
                )?;
                if let StepKind::InsertCard { head, card, .. } = &step.kind {
                    if let (Some(d), Some(c)) =
                        (opts.defects.get(&hex::encode_upper(card.card_id)), session.virtual_card(head))
                    {
                        c.set_defects(*d);
                    }
                }
                v
            }
            What::MadeCard(ref made) => {
                let head = names.get(&first.head).map_or("", String::as_str);
                let defects = opts.defects.get(&hex::encode_upper(made.card_plan.card_id)).copied();
                session.make_card(head, &first.test_step, made, defects).map_err(|what| SessionError::Bench {
                    file: source.to_path_buf(),
                    line: *first_line,
                    step: format!("insert card {}", hex::encode_upper(made.card_plan.card_id)),
                    what,
                })?;
                None
            }
            What::Outside => {
                let what = if first.test_step.is_empty() { first.kind.as_str() } else { first.test_step.as_str() };
                out.not_rerun.push(NotRerun {
                    line: *first_line,
                    rows: unit.rows.len() as u64,
                    what: format!("rows outside plan steps ({what}) are not re-run"),
                });
                continue;
            }
        };
        out.units += 1;
        let replayed: Vec<Exchange> = rx
            .try_iter()
            .filter_map(|e| {
                let row = match &e {
                    Event::Exchange(x) => Some((**x).clone()),
                    _ => None,
                };
                rec.send(e);
                row
            })
            .filter(|r| r.kind != RowKind::Step)
            .collect();
        let captured: Vec<&(u64, Exchange)> =
            unit.rows.iter().filter(|(_, r)| r.kind != RowKind::Step).copied().collect();
        let found = judge(&captured, &replayed, &names, &mut masks, verdict.unwrap_or_default(), first, *first_line);
        out.notes.extend(found.notes);
        out.rows_compared += found.compared;
        out.rows_matched += found.matched;
        if let Some(d) = found.divergence {
            let line = d.line;
            out.divergences.push(d);
            if !opts.keep_going {
                out.stopped_at_line = Some(line);
                break;
            }
        }
    }
    if out.units == 0 {
        let what = match &opts.card {
            Some(c) => format!("no plan step of the trace involves card {c}: nothing to replay in session mode"),
            None => "the trace has no step rows to re-run (session mode needs a cardbench trace with step rows; \
                     use --mode bytes)"
                .to_string(),
        };
        return Err(SessionError::Nothing { file: source.to_path_buf(), what });
    }
    Ok(out)
}

/// `cardbench replay --mode session`: read the whole trace, map its heads, re-run its plan steps
/// on the profile's lab, with the replay's own trace, run.json and replay.json in
/// `<logs>/<run_id>/`. The trace is read into memory (a session is short; bytes mode streams).
pub fn run_cli(a: &ReplayArgs) -> Result<(PathBuf, SessionOutcome), anyhow::Error> {
    let read = crate::trace::read_trace(&a.source)?;
    let rows = numbered(read.rows);
    let loaded = crate::profile::load(&a.profile)?;
    let mut lab = Lab::from_profile(&loaded)?;
    let mut heads: Vec<String> = Vec::new();
    for (_, r) in &rows {
        if !r.head.is_empty() && !heads.contains(&r.head) {
            heads.push(r.head.clone());
        }
    }
    // Every head: a step that involves the card asked for also talks to its peer's head.
    let map = map_heads(&lab, &heads, &a.map, |_| true)?;
    let defects = crate::replay::profile_defects(&loaded)?;
    // The mapped heads must be usable before the replay's folder is made.
    crate::head::usable::open(&mut lab.heads, map.values().copied())?;
    let crate::replay::Output { dir, trace_path, plan, sink } =
        crate::replay::open_output(a, &lab, "session", Some("os"))?;
    let (rec, rx) = Recorder::new(&plan);
    let sinks = sinks::spawn(rx, vec![Box::new(sink)]);
    let opts = SessionOptions {
        card: a.card.as_ref().map(|c| c.to_uppercase()),
        keep_going: a.keep_going,
        defects,
        terminal_seed: None,
    };
    let result = run(&a.source, &rows, &mut lab, &map, &opts, &rec);
    drop(rec);
    let outcome = result?;
    crate::replay::finish(a, &dir, &trace_path, sinks, "session", outcome.matched_all(), &outcome)?;
    Ok((dir, outcome))
}

/// What a unit of the source is.
#[derive(Debug, Clone)]
enum What {
    /// A plan step: its `step` row first.
    Step,
    /// A card the bench made outside a step: its `insert` row first.
    MadeCard(Box<InsertedCard>),
    /// Rows outside any step, not re-run.
    Outside,
}

#[derive(Debug, Clone)]
struct Unit<'r> {
    what: What,
    rows: Vec<&'r (u64, Exchange)>,
}

impl Unit<'_> {
    /// Trace heads the unit involves: its rows' heads and, for a step, every head its
    /// parameters name (a step row carries its first head only).
    fn heads(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rows.iter().map(|(_, r)| r.head.clone()).collect();
        if let (What::Step, Some((_, s))) = (&self.what, self.rows.first()) {
            for (k, val) in Params::parse(&s.note).0 {
                match k.as_str() {
                    "head" | "from" | "to" | "a" | "b" => v.push(val),
                    "heads" => v.extend(val.split(',').map(str::to_string)),
                    _ => {}
                }
            }
        }
        v.retain(|h| !h.is_empty());
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Cut the source into units (module doc).
fn units(rows: &[(u64, Exchange)]) -> Vec<Unit<'_>> {
    let mut out: Vec<Unit> = Vec::new();
    for r in rows {
        let x = &r.1;
        if x.kind == RowKind::Step {
            out.push(Unit { what: What::Step, rows: vec![r] });
            continue;
        }
        if x.kind == RowKind::Insert {
            if let Ok(made) = serde_json::from_str::<InsertedCard>(&x.note) {
                if x.step.is_empty() {
                    out.push(Unit { what: What::MadeCard(Box::new(made)), rows: vec![r] });
                    continue;
                }
            }
        }
        let belongs = match out.last() {
            Some(Unit { what: What::Step, rows }) => {
                let s = &rows[0].1;
                x.test_step == "identify" || (x.test_step == s.test_step && x.step == s.step && x.repeat == s.repeat)
            }
            // The card's making: its power-on, perso rows and power-off on the same head.
            Some(Unit { what: What::MadeCard(_), rows }) => {
                let s = &rows[0].1;
                x.head == s.head
                    && x.step.is_empty()
                    && (x.protocol_step == "perso" || matches!(x.kind, RowKind::PowerOn | RowKind::PowerOff))
                    && !rows.iter().any(|(_, y)| y.kind == RowKind::PowerOff)
            }
            Some(Unit { what: What::Outside, .. }) => true,
            None => false,
        };
        match out.last_mut() {
            Some(u) if belongs => u.rows.push(r),
            _ => out.push(Unit { what: What::Outside, rows: vec![r] }),
        }
    }
    out
}

/// A step row's `key=value` parameters.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(note: &str) -> Params {
        Params(
            note.split_ascii_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    /// The parameters again, with the trace's head names replaced by the lab's.
    fn renamed(&self, names: &HashMap<String, String>) -> String {
        let head = |h: &str| names.get(h).cloned().unwrap_or_else(|| h.to_string());
        let kv = |(k, v): &(String, String)| match k.as_str() {
            "head" | "from" | "to" | "a" | "b" => format!("{k}={}", head(v)),
            "heads" => format!("{k}={}", v.split(',').map(head).collect::<Vec<_>>().join(",")),
            _ => format!("{k}={v}"),
        };
        self.0.iter().map(kv).collect::<Vec<_>>().join(" ")
    }

    fn need(&self, k: &str) -> Result<&str, String> {
        self.get(k).ok_or_else(|| format!("step row without parameter `{k}`"))
    }

    fn number(&self, k: &str) -> Result<u32, String> {
        let v = self.need(k)?;
        v.parse().map_err(|_| format!("step parameter {k}={v} is not a whole number"))
    }
}

/// The step a `step` row describes, on the lab's heads; `None` for steps that make no
/// exchange (`assert`, `set`).
fn step_of(unit: &Unit, p: &Params, names: &HashMap<String, String>) -> Result<Option<Step>, String> {
    let row = &unit.rows[0].1;
    let head = |k: &str| -> Result<String, String> {
        let t = p.need(k)?;
        names.get(t).cloned().ok_or_else(|| format!("step head {k}={t} is not mapped to a lab head"))
    };
    let kind = match p.need("do")? {
        "engine" => {
            let action = match p.need("engine")? {
                "charge" => Action::Charge {
                    head: head("head")?,
                    amount: Amount::Lit(p.number("amount")?),
                    machine: p.get("machine").map(str::to_string),
                    mode: match p.get("mode") {
                        None => crate::plan::ChargeMode::Add,
                        Some(m) => crate::plan::ChargeMode::parse(m)
                            .ok_or_else(|| format!("step parameter mode={m} is not a charge mode"))?,
                    },
                },
                "pay" => Action::Pay {
                    head: head("head")?,
                    price: Amount::Lit(p.number("price")?),
                    machine: p.get("machine").map(str::to_string),
                },
                "card_signed_payment" => Action::CardSignedPayment {
                    head: head("head")?,
                    price: Amount::Lit(p.number("price")?),
                    unchecked: p.get("unchecked") == Some("true"),
                    machine: p.get("machine").map(str::to_string),
                },
                "key_update" => {
                    let m = p.need("mode")?;
                    let mode = crate::engine::key_update::UpdateMode::parse(m)
                        .ok_or_else(|| format!("step parameter mode={m} is not a key-update mode"))?;
                    Action::KeyUpdate { a: head("a")?, b: head("b")?, mode }
                }
                "value_transfer" => Action::ValueTransfer {
                    from: head("from")?,
                    to: head("to")?,
                    amount: Amount::Lit(p.number("amount")?),
                },
                "settle" => {
                    let m = p.need("mode")?;
                    let mode = crate::engine::key_update::UpdateMode::parse(m)
                        .ok_or_else(|| format!("step parameter mode={m} is not a key-update mode"))?;
                    Action::Settle {
                        from: head("from")?,
                        to: head("to")?,
                        amount: Amount::Lit(p.number("amount")?),
                        mode,
                    }
                }
                other => return Err(format!("unknown engine `{other}` in a step row")),
            };
            StepKind::Engine { action, expect: p.get("expect").unwrap_or("success").to_string() }
        }
        "apdu" => {
            let hexcmd = p.need("apdu")?;
            let command = Template::parse(hexcmd, false)
                .ok()
                .filter(|_| hex::decode(hexcmd).is_ok())
                .ok_or_else(|| format!("step parameter apdu={hexcmd} is not a command in hex"))?;
            StepKind::Apdu {
                head: head("head")?,
                command,
                sw: SwExpect(vec!["XXXX".into()]),
                data: Vec::new(),
                capture: Vec::new(),
                verbatim: p.get("verbatim") == Some("true"),
                raw: p.get("raw") == Some("true"),
            }
        }
        "select" => {
            let applet = match p.need("applet")? {
                "purse" => crate::spec::Applet::Purse,
                "cpay" => crate::spec::Applet::Cpay,
                "xfer" => crate::spec::Applet::Xfer,
                other => return Err(format!("step parameter applet={other} is not purse, cpay or xfer")),
            };
            StepKind::Select { head: head("head")?, applet }
        }
        "read" => {
            let state = match p.need("state")? {
                "purse" => StateKind::Purse,
                "cpay" => StateKind::Cpay,
                "xfer" => StateKind::Xfer,
                other => return Err(format!("step parameter state={other} is not purse, cpay or xfer")),
            };
            StepKind::Read { head: head("head")?, state, prefix: p.get("as").unwrap_or("replay").to_string() }
        }
        "power_off" => StepKind::PowerOff { head: head("head")? },
        "power_on" => StepKind::PowerOn { head: head("head")? },
        "warm_reset" => StepKind::WarmReset { head: head("head")? },
        "remove" => StepKind::Remove { head: head("head")? },
        "insert" => StepKind::Insert { head: head("head")? },
        "insert_card" => {
            let made = unit
                .rows
                .iter()
                .find_map(|(_, r)| (r.kind == RowKind::Insert).then(|| serde_json::from_str::<InsertedCard>(&r.note)))
                .ok_or("insert_card step without its `insert` row")?
                .map_err(|e| format!("insert row: the card plan does not parse: {e}"))?;
            StepKind::InsertCard { head: head("head")?, card: Box::new(made.card_plan), protocol: made.protocol }
        }
        "recover" => {
            let heads = p
                .need("heads")?
                .split(',')
                .map(|t| names.get(t).cloned().ok_or_else(|| format!("step head {t} is not mapped to a lab head")))
                .collect::<Result<Vec<_>, _>>()?;
            StepKind::Recover { heads, expect: p.get("expect").unwrap_or("settled").to_string() }
        }
        // The same cut at the same exchange or commit of the next engine step: the engine
        // makes the same exchanges in the same order, whatever the randoms.
        "tear" => StepKind::Tear { head: head("head")?, at: tear_at(p.need("at")?)? },
        "assert" | "set" => return Ok(None),
        other => return Err(format!("unknown step kind `{other}` in a step row")),
    };
    Ok(Some(Step {
        label: format!("{} {}", row.test_step, row.step).trim().to_string(),
        kind,
        repeat: 1,
        head_span: Located::default(),
        machine_span: None,
    }))
}

/// A `tear` step's `at` parameter as the runner writes it: `Exchange{n:6,point:AfterCommand}`,
/// `Command{ins:214,n:1,point:AfterCommand}` or `Commit(1)`.
pub(crate) fn tear_at(v: &str) -> Result<TearAt, String> {
    let bad = || format!("step parameter at={v} is not Exchange{{n:N,point:BeforeCommand|AfterCommand}} or Commit(N)");
    if let Some(k) = v.strip_prefix("Commit(").and_then(|r| r.strip_suffix(')')) {
        return k.parse().map(TearAt::Commit).map_err(|_| bad());
    }
    let (inner, command) = match v.strip_prefix("Command{") {
        Some(r) => (r.strip_suffix('}').ok_or_else(bad)?, true),
        None => (v.strip_prefix("Exchange{").and_then(|r| r.strip_suffix('}')).ok_or_else(bad)?, false),
    };
    let (mut n, mut point, mut ins) = (None, None, None);
    for kv in inner.split(',') {
        match kv.split_once(':') {
            Some(("n", x)) => n = x.parse::<u64>().ok(),
            Some(("ins", x)) if command => ins = x.parse::<u8>().ok(),
            Some(("point", "BeforeCommand")) => point = Some(CutPoint::BeforeCommand),
            Some(("point", "AfterCommand")) => point = Some(CutPoint::AfterCommand),
            _ => return Err(bad()),
        }
    }
    match (n, point, ins) {
        (Some(n), Some(point), None) if !command => Ok(TearAt::Exchange { n, point }),
        (Some(n), Some(point), Some(ins)) => Ok(TearAt::Command { ins, n, point }),
        _ => Err(bad()),
    }
}

/// What comparing one unit found.
struct Judged {
    compared: u64,
    matched: u64,
    divergence: Option<SessionDivergence>,
    notes: Vec<Note>,
}

/// Rows made when a head is first used (power-on, `identify`): they follow the replay's own
/// history, so they are compared only when both sides have them.
fn first_use(r: &Exchange) -> bool {
    r.kind == RowKind::PowerOn || r.test_step == "identify"
}

/// Compare a unit's captured rows with the rows its re-run made, in order; the first
/// difference is the unit's divergence.
fn judge(
    captured: &[&(u64, Exchange)],
    replayed: &[Exchange],
    names: &HashMap<String, String>,
    masks: &mut HashMap<String, RowMasks>,
    verdict: String,
    step_row: &Exchange,
    step_line: u64,
) -> Judged {
    let mut j = Judged { compared: 0, matched: 0, divergence: None, notes: Vec::new() };
    // Expected masks over every captured wire row, in order, whatever is compared below.
    let mut expected: Vec<(u64, Exchange, Mask)> = Vec::new();
    for (line, r) in captured {
        let mut e = r.clone();
        let mut cmask = Mask::none();
        if r.kind.is_wire() {
            let (cm, rm) = masks.entry(r.head.clone()).or_default().row(r.kind, &r.command, &r.response);
            e.mask = Mask::ranges(&r.mask.iter().chain(rm.iter()).collect::<Vec<_>>());
            cmask = cm;
        }
        expected.push((*line, e, cmask));
    }
    let lab_head = |t: &str| names.get(t).cloned().unwrap_or_else(|| t.to_string());
    let both_first_use =
        |pred: &dyn Fn(&Exchange) -> bool| expected.iter().any(|(_, e, _)| pred(e)) && replayed.iter().any(pred);
    let keep_identify = both_first_use(&|r: &Exchange| r.test_step == "identify");
    let keep_power_on = both_first_use(&|r: &Exchange| r.kind == RowKind::PowerOn);
    let kept = |r: &Exchange| {
        !first_use(r) || (r.test_step == "identify" && keep_identify) || (r.kind == RowKind::PowerOn && keep_power_on)
    };
    let exp: Vec<&(u64, Exchange, Mask)> = expected.iter().filter(|(_, e, _)| kept(e)).collect();
    let act: Vec<&Exchange> = replayed.iter().filter(|r| kept(r)).collect();
    let diverge = |line: u64, e: &Exchange, head: String, what: String, diff: String| SessionDivergence {
        line,
        seq: e.seq,
        trace_head: e.head.clone(),
        head,
        card_id: e.card_id.clone(),
        test_step: e.test_step.clone(),
        step: e.step.clone(),
        command_name: match e.command.as_slice() {
            [cla, ins, ..] => crate::cmds::name(*cla, *ins).to_string(),
            _ => e.kind.as_str().to_string(),
        },
        command: hex::encode_upper(&e.command),
        what,
        diff,
        step_verdict: verdict.clone(),
    };
    let (ge, ga) = (groups(&exp, |x| &x.1), groups(&act, |x| x));
    for (n, g) in ge.iter().enumerate() {
        let (line, e, _) = exp[g.start];
        let Some(h) = ga.get(n) else {
            j.divergence = Some(diverge(
                *line,
                e,
                lab_head(&e.head),
                format!("{} row expected, the replay made none (its step had ended)", e.kind.as_str()),
                String::new(),
            ));
            return j;
        };
        let (erows, arows) = (&exp[g.clone()], &act[h.clone()]);
        let same_shape = erows.len() == arows.len() && erows.iter().zip(arows).all(|(x, y)| x.1.kind == y.kind);
        if !same_shape && e.kind.is_wire() && act[h.start].kind.is_wire() {
            // The same command delivered in other rows (T=0 procedure bytes against T=1, or
            // another Le): the command, its final status word and its whole answer compare.
            let (fe, fa) = (fold(erows.iter().map(|x| &x.1)), fold(arows.iter().copied()));
            j.compared += erows.len() as u64;
            match differences(&fe, &fa, &erows[0].2, &lab_head(&e.head)) {
                None => j.matched += erows.len() as u64,
                Some((what, diff)) => {
                    let what =
                        format!("{what} (answer delivered in {} rows captured, {} replayed)", erows.len(), arows.len());
                    j.divergence = Some(diverge(*line, e, fa.head.clone(), what, diff));
                    return j;
                }
            }
            continue;
        }
        for (k, (line, e, cmask)) in erows.iter().enumerate() {
            let Some(a) = arows.get(k) else {
                let what = format!("{} row expected, the replay made none here", e.kind.as_str());
                j.divergence = Some(diverge(*line, e, lab_head(&e.head), what, String::new()));
                return j;
            };
            j.compared += 1;
            if !e.atr.is_empty() && e.atr != a.atr {
                j.notes.push(Note {
                    line: *line,
                    what: format!(
                        "{} on head {}: ATR {} captured, {} replayed",
                        e.kind.as_str(),
                        a.head,
                        hex::encode_upper(&e.atr),
                        hex::encode_upper(&a.atr)
                    ),
                });
            }
            match differences(e, a, cmask, &lab_head(&e.head)) {
                None => j.matched += 1,
                Some((what, diff)) => {
                    j.divergence = Some(diverge(*line, e, a.head.clone(), what, diff));
                    return j;
                }
            }
        }
        if let Some(a) = arows.get(erows.len()) {
            let line = erows.last().map_or(step_line, |(l, _, _)| *l);
            j.divergence = Some(diverge(line, e, a.head.clone(), extra(a), String::new()));
            return j;
        }
    }
    if let Some(h) = ga.get(ge.len()) {
        let line = exp.last().map_or(step_line, |(l, _, _)| *l);
        j.divergence = Some(diverge(line, step_row, act[h.start].head.clone(), extra(act[h.start]), String::new()));
    }
    j
}

/// A row the replay made that the capture does not have.
fn extra(a: &Exchange) -> String {
    format!(
        "the replay made a {} row{} that the trace does not have here",
        a.kind.as_str(),
        match a.command.as_slice() {
            [cla, ins, ..] => format!(" ({} {})", crate::cmds::name(*cla, *ins), hex::encode_upper(&a.command)),
            _ => String::new(),
        }
    )
}

/// Consecutive rows that make one exchange: a row and the GET RESPONSE and re-send rows that
/// follow it on its head (card and power events are exchanges of their own).
fn groups<T>(rows: &[T], ex: impl Fn(&T) -> &Exchange) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let r = ex(r);
        let follows = matches!(r.kind, RowKind::GetResponse | RowKind::Resend6C)
            && i > 0
            && ex(&rows[i - 1]).head == r.head
            && ex(&rows[i - 1]).kind.is_wire();
        match out.last_mut() {
            Some(g) if follows => g.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// The rows of one exchange as one: the command first sent, the whole answer, the final
/// status word; the masks of the rows at the offsets their bytes take in the whole answer.
fn fold<'a>(rows: impl Iterator<Item = &'a Exchange>) -> Exchange {
    let mut out = Exchange::default();
    let mut ranges = Vec::new();
    for (n, r) in rows.enumerate() {
        if n == 0 {
            out = Exchange { response: Vec::new(), mask: Mask::none(), ..r.clone() };
        }
        let at = out.response.len();
        ranges.extend(r.mask.iter().map(|(a, b)| (a + at, b.saturating_add(at))));
        out.response.extend_from_slice(&r.response);
        out.sw = r.sw;
        if r.kind == RowKind::InDoubt {
            out.kind = RowKind::InDoubt;
        }
    }
    out.mask = Mask::ranges(&ranges);
    out
}

/// What differs between a captured row `e` (masked by its `mask` and `cmask`) and the row the
/// replay made, expected on lab head `head`: one line, and the hex diff.
fn differences(e: &Exchange, a: &Exchange, cmask: &Mask, head: &str) -> Option<(String, String)> {
    let mut problems = Vec::new();
    if a.head != head {
        problems.push(format!("row on head {head} expected, made on head {}", a.head));
    }
    // Command bytes compared outside the command mask: the replay's randoms may differ.
    let mut a2 = a.clone();
    if a.command.len() == e.command.len() {
        for (i, b) in a2.command.iter_mut().enumerate() {
            if cmask.covers(i) {
                *b = e.command[i];
            }
        }
    }
    let check = compare(e, &a2);
    if !check.is_match() {
        problems.push(check.describe());
    }
    if problems.is_empty() {
        return None;
    }
    let mut diff = String::new();
    if !check.command_equal {
        diff += "command\n";
        diff += &hexdiff(&e.command, &a.command, cmask);
    }
    if !e.response.is_empty() || !a.response.is_empty() {
        diff += "response\n";
        diff += &hexdiff(&e.response, &a.response, &e.mask);
    }
    Some((problems.join("; "), diff.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: RowKind, test_step: &str, step: &str, note: &str) -> Exchange {
        Exchange {
            kind,
            head: "A".into(),
            test_step: test_step.into(),
            step: step.into(),
            repeat: u32::from(!step.is_empty()),
            note: note.into(),
            ..Exchange::default()
        }
    }

    #[test]
    fn rows_are_cut_into_steps_made_cards_and_rows_outside() {
        let made = r#"{"card_plan":{"card_id":[203,0,0,0,0,0,14,1],"purse_counter":1000,"cpay_amount":0,"balance":5000,"max_balance":0,"validity":1924991999,"update_key":1,"transfer_key":1,"transfer_key_limit":8,"update_key_limit":4,"slots":[],"cert_expiry":2082758399},"protocol":"T=1"}"#;
        let made = serde_json::from_str::<InsertedCard>(made).map(|m| serde_json::to_string(&m).unwrap());
        let made = made.unwrap_or_else(|e| panic!("InsertedCard JSON: {e}"));
        let rows = numbered(vec![
            row(RowKind::Insert, "batch", "", &made),
            row(RowKind::PowerOn, "batch", "", ""),
            Exchange { protocol_step: "perso".into(), ..row(RowKind::Command, "batch", "", "") },
            row(RowKind::PowerOff, "batch", "", ""),
            row(RowKind::Step, "c1", "#1 engine", "do=engine engine=charge head=A amount=5 now=7"),
            row(RowKind::PowerOn, "c1", "#1 engine", ""),
            row(RowKind::Command, "identify", "", ""),
            row(RowKind::Command, "c1", "#1 engine", ""),
            row(RowKind::Command, "recover", "", ""),
            row(RowKind::Command, "recover", "", ""),
            row(RowKind::Step, "c2", "#1 power_off", "do=power_off head=A"),
        ]);
        let u = units(&rows);
        let shape: Vec<(&str, Vec<u64>)> = u
            .iter()
            .map(|u| {
                let w = match u.what {
                    What::Step => "step",
                    What::MadeCard(_) => "made",
                    What::Outside => "outside",
                };
                (w, u.rows.iter().map(|(l, _)| *l).collect())
            })
            .collect();
        assert_eq!(
            shape,
            vec![("made", vec![2, 3, 4, 5]), ("step", vec![6, 7, 8, 9]), ("outside", vec![10, 11]), ("step", vec![12]),]
        );
    }

    #[test]
    fn step_rows_become_steps_on_the_mapped_heads() {
        let names: HashMap<String, String> = [("A".to_string(), "X".to_string())].into();
        let rows = numbered(vec![row(
            RowKind::Step,
            "c1",
            "#2 engine",
            "do=engine engine=key_update a=A b=A mode=public expect=success now=7",
        )]);
        let u = units(&rows);
        let s = step_of(&u[0], &Params::parse(&rows[0].1.note), &names).unwrap().unwrap();
        assert_eq!(s.label, "c1 #2 engine");
        assert!(matches!(&s.kind, StepKind::Engine { action: Action::KeyUpdate { a, .. }, expect }
            if a == "X" && expect == "success"));
        let fails = |note: &str| {
            let rows = numbered(vec![row(RowKind::Step, "c", "#1 x", note)]);
            step_of(&units(&rows)[0], &Params::parse(note), &names).unwrap_err()
        };
        assert!(fails("do=tear head=A at=Commit(x)").contains("is not Exchange{n:N"));
        assert!(fails("do=tear head=A at=Exchange{n:3,point:Sideways}").contains("is not Exchange{n:N"));
        assert_eq!(tear_at("Commit(2)"), Ok(TearAt::Commit(2)));
        assert_eq!(
            tear_at("Command{ins:214,n:1,point:BeforeCommand}"),
            Ok(TearAt::Command { ins: 0xD6, n: 1, point: CutPoint::BeforeCommand })
        );
        assert!(tear_at("Command{n:1,point:BeforeCommand}").is_err());
        assert_eq!(
            tear_at("Exchange{n:6,point:AfterCommand}"),
            Ok(TearAt::Exchange { n: 6, point: CutPoint::AfterCommand })
        );
        assert_eq!(fails("do=engine engine=charge head=B amount=5"), "step head head=B is not mapped to a lab head");
        assert_eq!(fails("do=engine engine=charge head=A amount=x"), "step parameter amount=x is not a whole number");
        assert_eq!(fails("do=apdu head=A apdu=unresolved"), "step parameter apdu=unresolved is not a command in hex");
        assert_eq!(fails("do=engine engine=pay head=A"), "step row without parameter `price`");
        let rows = numbered(vec![row(RowKind::Step, "c", "#1 assert", "do=assert")]);
        assert!(step_of(&units(&rows)[0], &Params::parse("do=assert"), &names).unwrap().is_none());
    }
}
