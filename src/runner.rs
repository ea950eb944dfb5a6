//! Runs a validated plan on bound heads: setup, each case (skip conditions, steps with
//! expectations, captures, assertions), teardown. A failed expectation is a case result,
//! not an error; a head that cannot talk makes the case an `error`.

use crate::apdu::{Command, Response};
use crate::cmds;
use crate::engine::{self, EngineError, Outcome, Terminal};
use crate::event::{Event, Recorder, RowKind};
use crate::head::virtual_head::VirtualCard;
use crate::head::virtual_head::VirtualHead;
use crate::head::Head;
use crate::keys::Keyset;
use crate::lab::{find_head, LabHead};
use crate::link::Link;
use crate::plan::template::{mask_matches, Value, Vars};
use crate::plan::TearAt;
use crate::plan::{meets, Action, Amount, Case, DataExpect, Plan, StateKind, Step, StepKind};
use crate::report::{CaseResult, CaseStatus, Failure};
use crate::spec::layout::xfer::CardInfo;
use crate::spec::{codes as ins, Applet};
use crate::sw;
use crate::tear::fault::{Armed, ArmedHead, CutControl};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a step stopped its case.
enum StepFail {
    /// The card did not meet an expectation: the case failed.
    Failed(Failure),
    /// The bench could not run the step: the case is an error.
    Error(String),
    /// The head named can no longer be used: its card or reader went away (removed, mute,
    /// reader or service lost), or a command on it is in doubt (it may have run on the card,
    /// no answer came back). This case is an error, and nothing more is sent to that head in
    /// this run: an in-doubt card must be read and settled (`cardbench recover`) before any
    /// sequence starts on it again. Cases on other heads go on.
    Blocked { head: String, msg: String },
}

/// A head failure as a step failure: the head is blocked for the kinds that end the card's
/// session or leave a command's outcome unknown; a command that never left is a case error.
fn head_fail(head: &str, context: String, e: &crate::head::HeadError) -> StepFail {
    let msg = format!("{context}: {e}");
    if e.card_gone() || e.maybe_delivered() {
        StepFail::Blocked { head: head.to_string(), msg }
    } else {
        StepFail::Error(msg)
    }
}

/// Learn the ID of the card in a powered head through APDUs: PURSE card ID, else XFER card
/// info; empty when the card has neither applet. Rows go to `rec` as test step `identify`.
pub fn identify(h: &mut dyn Head, rec: &Recorder) -> Result<String, crate::head::HeadError> {
    let mut l = Link::new(h, rec);
    l.test_step = "identify".into();
    if l.exec("identify", &cmds::select(&ins::AID_PURSE))?.is_ok() {
        let r = l.exec("identify", &cmds::read_field(ins::FIELD_ID, 8))?;
        if r.is_ok() && r.data.len() == 8 {
            return Ok(hex::encode_upper(&r.data));
        }
    }
    if l.exec("identify", &cmds::select(&ins::AID_XFER))?.is_ok() {
        let r = l.exec("identify", &cmds::xfer_info())?;
        if let (true, Ok(info)) = (r.is_ok(), CardInfo::parse(&r.data)) {
            return Ok(hex::encode_upper(info.card_id));
        }
    }
    Ok(String::new())
}

fn engine_fail(e: EngineError) -> StepFail {
    match &e {
        EngineError::Head { head, source } => head_fail(head, format!("head {head}"), source),
        EngineError::Machine(m) => StepFail::Error(m.to_string()),
        // The bench's own configuration: the case errs, no card is blamed and no head blocked.
        EngineError::StaleCrl { .. } => StepFail::Error(e.to_string()),
    }
}

type StepResult = Result<(), StepFail>;

fn failed(step: &str, expected: impl Into<String>, actual: impl Into<String>) -> StepFail {
    StepFail::Failed(Failure { step: step.into(), expected: expected.into(), actual: actual.into() })
}

/// Built-in variables (docs/plan-language.md): the clock and public material of the keyset.
pub fn builtins(keys: &Keyset, now: u32) -> Vars {
    use crate::crypto::sig::encode_point;
    let rogue = Keyset::from_seed("cardbench rogue center", vec![]);
    let mut v = Vars::new();
    v.insert("now".into(), Value::Int(now as i64));
    v.insert("charge_cert".into(), Value::Hex(hex::encode_upper(keys.charge.cert.encode())));
    v.insert("payment_cert".into(), Value::Hex(hex::encode_upper(keys.payment.cert.encode())));
    v.insert("rogue_cert".into(), Value::Hex(hex::encode_upper(rogue.charge.cert.encode())));
    v.insert("center_key".into(), Value::Hex(hex::encode_upper(encode_point(&keys.center_public()))));
    v.insert("ca_key".into(), Value::Hex(hex::encode_upper(encode_point(&keys.ca_public()))));
    v
}

/// Everything a running plan holds: heads, the terminal, variables, removed cards.
pub struct Session<'a> {
    heads: &'a mut [LabHead],
    rec: &'a Recorder,
    t: Terminal<'a>,
    vars: Vars,
    /// Card ID last seen on each head, for trace rows.
    card_ids: HashMap<usize, String>,
    /// Cards taken out of virtual heads by `remove`, waiting for `insert`.
    pocket: HashMap<usize, VirtualCard>,
    /// What the last engine step reported, shown for a passing case.
    last_outcome: String,
    /// Heads (by index) that later cases must not use, and why.
    blocked: HashMap<usize, String>,
    /// Blocked heads whose cards the runner already tried to read and settle.
    recovery_tried: std::collections::HashSet<usize>,
    /// Set when the trace can no longer be written: nothing more is run.
    halted: Option<String>,
    /// Power cuts armed by `tear` steps for the next engine step.
    armed: Vec<(usize, TearAt)>,
    /// Real heads wrapped so a `tear` can cut them at an exchange boundary.
    cut_controls: HashMap<usize, Arc<Mutex<CutControl>>>,
    /// The plan step running (`#<n> <kind>[ <name>]`) and its repeat index, for trace rows.
    cur_step: (String, u32),
}

impl<'a> Session<'a> {
    pub fn new(heads: &'a mut [LabHead], rec: &'a Recorder, keys: &'a Keyset, now: u32, seed: [u8; 32]) -> Self {
        let card_ids = HashMap::new();
        Session {
            heads,
            rec,
            t: Terminal::new(keys, now, ChaCha20Rng::from_seed(seed)),
            vars: builtins(keys, now),
            card_ids,
            pocket: HashMap::new(),
            last_outcome: String::new(),
            blocked: HashMap::new(),
            recovery_tried: Default::default(),
            halted: None,
            armed: Vec::new(),
            cut_controls: HashMap::new(),
            cur_step: (String::new(), 0),
        }
    }

    /// A link on head `i` labelled with the case and the running step.
    fn labelled<'s>(
        head: &'s mut dyn Head,
        rec: &Recorder,
        card_id: Option<&String>,
        test_step: &str,
        cur: &(String, u32),
    ) -> Link<'s> {
        let mut l = Link::new(head, rec);
        l.card_id = card_id.cloned().unwrap_or_default();
        l.test_step = test_step.to_string();
        (l.step, l.repeat) = cur.clone();
        l
    }

    fn idx(&self, name: &str) -> Result<usize, StepFail> {
        find_head(self.heads, name).ok_or_else(|| StepFail::Error(format!("no head or role '{name}'")))
    }

    /// A link to a powered, identified card on head `i`.
    fn link(&mut self, i: usize, test_step: &str) -> Result<Link<'_>, StepFail> {
        self.power(i, test_step)?;
        Ok(self.unpowered_link(i, test_step))
    }

    /// A link on head `i` as it is (for power and card events).
    fn unpowered_link(&mut self, i: usize, test_step: &str) -> Link<'_> {
        Session::labelled(self.heads[i].head.as_mut(), self.rec, self.card_ids.get(&i), test_step, &self.cur_step)
    }

    fn exec(&mut self, i: usize, case: &Case, label: &str, cmd: &Command) -> Result<Response, StepFail> {
        let proto = if case.reference.is_empty() { "apdu".to_string() } else { case.reference.clone() };
        let mut l = self.link(i, &case.id)?;
        let name = l.head_name();
        let r = l.exec(&proto, cmd).map_err(|e| head_fail(&name, format!("{label}: head {name}"), &e));
        let id = l.card_id.clone();
        drop(l);
        self.card_ids.insert(i, id);
        r
    }

    /// `exec` for a `verbatim` or `raw` apdu step: the bytes go on the wire as written; a raw
    /// step's procedure bytes (`61xx`, `6Cxx`) are its answer, not followed.
    fn exec_written(
        &mut self,
        i: usize,
        case: &Case,
        label: &str,
        bytes: &[u8],
        raw: bool,
    ) -> Result<Response, StepFail> {
        let proto = if case.reference.is_empty() { "apdu".to_string() } else { case.reference.clone() };
        let mut l = self.link(i, &case.id)?;
        let name = l.head_name();
        let r = if raw { l.exec_bytes(&proto, bytes) } else { l.exec_verbatim(&proto, bytes) };
        let r = r.map_err(|e| head_fail(&name, format!("{label}: head {name}"), &e));
        let id = l.card_id.clone();
        drop(l);
        self.card_ids.insert(i, id);
        r
    }

    fn amount(&self, a: &Amount) -> Result<u32, StepFail> {
        match a {
            Amount::Lit(v) => Ok(*v),
            Amount::Var(n) => match self.vars.get(n) {
                Some(Value::Int(i)) => {
                    u32::try_from(*i).map_err(|_| StepFail::Error(format!("'{n}' = {i} is not a u32")))
                }
                _ => Err(StepFail::Error(format!("'{n}' is not a number"))),
            },
        }
    }

    /// Power the card on head `i` if needed, and learn its ID the first time: through APDUs
    /// (PURSE card ID, else XFER card info), the same on every head kind, so traces from a
    /// virtual head and from a real reader have the same rows.
    fn power(&mut self, i: usize, test_step: &str) -> Result<(), StepFail> {
        let name = self.heads[i].head.info().name.clone();
        if self.heads[i].head.atr().is_none() {
            self.unpowered_link(i, test_step).power_on().map_err(|e| head_fail(&name, format!("head {name}"), &e))?;
        }
        let h = self.heads[i].head.as_mut();
        if self.card_ids.contains_key(&i) {
            return Ok(());
        }
        let id = identify(h, self.rec).map_err(|e| head_fail(&name, format!("head {name}"), &e))?;
        self.card_ids.insert(i, id);
        Ok(())
    }

    fn single<R, F>(&mut self, i: usize, case: &Case, f: F) -> Result<R, StepFail>
    where
        F: FnOnce(&mut Link, &mut Terminal) -> Result<R, EngineError>,
    {
        self.power(i, &case.id)?;
        let Session { heads, rec, t, card_ids, cur_step, .. } = self;
        let mut l = Session::labelled(heads[i].head.as_mut(), rec, card_ids.get(&i), &case.id, cur_step);
        let o = f(&mut l, t);
        card_ids.insert(i, l.card_id.clone());
        o.map_err(engine_fail)
    }

    fn pair<R, F>(&mut self, i: usize, j: usize, case: &Case, f: F) -> Result<R, StepFail>
    where
        F: for<'h> FnOnce(&mut Link<'h>, &mut Link<'h>, &mut Terminal) -> Result<R, EngineError>,
    {
        self.power(i, &case.id)?;
        self.power(j, &case.id)?;
        let Session { heads, rec, t, card_ids, cur_step, .. } = self;
        let (hx, hy) = two(heads, i, j);
        let mut lx = Session::labelled(hx, rec, card_ids.get(&i), &case.id, cur_step);
        let mut ly = Session::labelled(hy, rec, card_ids.get(&j), &case.id, cur_step);
        let o = f(&mut lx, &mut ly, t);
        card_ids.insert(i, lx.card_id.clone());
        card_ids.insert(j, ly.card_id.clone());
        o.map_err(engine_fail)
    }

    fn engine(&mut self, action: &Action, case: &Case) -> Result<Outcome, StepFail> {
        let h: Vec<usize> = action.heads().iter().map(|n| self.idx(n)).collect::<Result<_, _>>()?;
        match action {
            Action::Charge { amount, mode, machine, .. } => {
                let (a, m) = (self.amount(amount)?, *mode);
                self.single(h[0], case, |l, t| engine::purse::charge_machine(l, t, a, m, machine.as_deref()))
            }
            Action::Pay { price, machine, .. } => {
                let a = self.amount(price)?;
                self.single(h[0], case, |l, t| engine::purse::pay_by(l, t, a, machine.as_deref()))
            }
            Action::CardSignedPayment { price, unchecked, machine, .. } => {
                let (a, u) = (self.amount(price)?, *unchecked);
                self.single(h[0], case, |l, t| engine::cpay::card_signed_payment_by(l, t, a, u, machine.as_deref()))
            }
            Action::KeyUpdate { mode, .. } => {
                let m = *mode;
                self.pair(h[0], h[1], case, |x, y, t| engine::key_update::key_update(x, y, t, m))
            }
            Action::ValueTransfer { amount, .. } => {
                let a = self.amount(amount)?;
                self.pair(h[0], h[1], case, |x, y, t| engine::transfer::value_transfer(x, y, t, a))
            }
            Action::Settle { amount, mode, .. } => {
                let (a, m) = (self.amount(amount)?, *mode);
                self.pair(h[0], h[1], case, |x, y, t| engine::settle::settle(x, y, t, m, a))
            }
        }
    }

    /// Recovery on one or two heads with the intents this run's engines left in doubt.
    fn recover(&mut self, names: &[String], case: &Case) -> Result<engine::recover::Recovery, StepFail> {
        let h: Vec<usize> = names.iter().map(|n| self.idx(n)).collect::<Result<_, _>>()?;
        match h[..] {
            [i] => self.single(i, case, |l, t| engine::recover::recover(&mut [l], t)),
            [i, j] => self.pair(i, j, case, |x, y, t| engine::recover::recover(&mut [x, y], t)),
            _ => Err(StepFail::Error("recover takes one or two heads".into())),
        }
    }

    /// Before a blocked head is used again: power its card, read the state of every card an
    /// open intent on it involves, and settle it (`engine::recover`). The head is unblocked
    /// only when recovery says everything is settled; one attempt per block, so a card that
    /// stays mute costs one timeout, not one per case.
    fn settle_blocked(&mut self, i: usize) {
        if i == usize::MAX || !self.recovery_tried.insert(i) {
            return;
        }
        let name = self.heads[i].head.info().name.clone();
        let mut names = vec![name.clone()];
        for intent in self.t.journal.intents() {
            let hs = intent.heads();
            if hs.contains(&name.as_str()) {
                for h in hs {
                    if !names.iter().any(|n| n == h) {
                        names.push(h.to_string());
                    }
                }
            }
        }
        if names.len() > 2 {
            names.truncate(2);
        }
        let idx: Vec<usize> = names.iter().filter_map(|n| find_head(self.heads, n)).collect();
        // The other card of a pair may be blocked too, and is settled by the same recovery.
        let (settled, detail) = match self.recover(&names, &empty_case("recover")) {
            Ok(r) => (r.settled(), r.to_string()),
            Err(StepFail::Failed(f)) => (false, format!("{}: {}", f.step, f.actual)),
            Err(StepFail::Error(m) | StepFail::Blocked { msg: m, .. }) => (false, m),
        };
        self.rec.send_urgent(Event::Recovered { head: names.join("+"), detail: detail.clone(), settled });
        if settled {
            for j in idx {
                self.blocked.remove(&j);
                self.recovery_tried.remove(&j);
            }
        } else if let Some(why) = self.blocked.get_mut(&i) {
            why.push_str(&format!("; recovery: {detail}"));
        }
    }

    fn ok_data(&mut self, i: usize, case: &Case, label: &str, cmd: &Command) -> Result<Vec<u8>, StepFail> {
        let r = self.exec(i, case, label, cmd)?;
        if r.sw != sw::OK {
            return Err(failed(label, "SW 9000", format!("SW {:04X} ({})", r.sw, sw::describe(r.sw))));
        }
        Ok(r.data)
    }

    /// Card state read back through commands into `<prefix>.<field>` variables.
    fn read(&mut self, i: usize, case: &Case, label: &str, state: StateKind, prefix: &str) -> StepResult {
        use crate::state_read::{read, ReadError};
        let fields = match read(state, &mut |c: &Command| self.exec(i, case, label, c)) {
            Ok(f) => f,
            Err(ReadError::Exchange(e)) => return Err(e),
            Err(ReadError::Card(m)) => return Err(failed(label, m.expected, m.actual)),
        };
        for (k, v) in fields {
            self.vars.insert(format!("{prefix}.{k}"), v);
        }
        Ok(())
    }

    fn apdu(&mut self, case: &Case, step: &Step) -> StepResult {
        let StepKind::Apdu { head, command, sw: want_sw, data, capture, verbatim, raw } = &step.kind else {
            return Err(StepFail::Error("not an apdu step".into()));
        };
        let label = step.label.as_str();
        let i = self.idx(head)?;
        let bytes = command.render_bytes(&self.vars).map_err(|e| StepFail::Error(format!("{label}: {e}")))?;
        let r = if *verbatim || *raw {
            self.exec_written(i, case, label, &bytes, *raw)?
        } else {
            let cmd = Command::parse(&bytes).map_err(|e| StepFail::Error(format!("{label}: not an APDU: {e}")))?;
            self.exec(i, case, label, &cmd)?
        };
        if !want_sw.matches(r.sw) {
            return Err(failed(
                label,
                format!("SW {}", want_sw.describe()),
                format!("SW {:04X} ({})", r.sw, sw::describe(r.sw)),
            ));
        }
        for d in data {
            match d {
                DataExpect::Mask(t) => {
                    let mask = t.render(&self.vars).map_err(|e| StepFail::Error(format!("{label}: {e}")))?;
                    if !mask_matches(&mask, &r.data) {
                        return Err(failed(
                            label,
                            format!("data {mask}"),
                            format!("data {}", hex::encode_upper(&r.data)),
                        ));
                    }
                }
                DataExpect::Len(lo, hi) => {
                    if !(*lo..=*hi).contains(&r.data.len()) {
                        let want = if lo == hi { format!("{lo} bytes") } else { format!("{lo}..{hi} bytes") };
                        return Err(failed(label, want, format!("{} bytes", r.data.len())));
                    }
                }
            }
        }
        for (name, spec) in capture {
            let v = spec.take(&r.data, r.sw).ok_or_else(|| {
                failed(label, format!("response long enough to capture '{name}'"), format!("{} bytes", r.data.len()))
            })?;
            self.vars.insert(name.clone(), v);
        }
        Ok(())
    }

    fn step(&mut self, case: &Case, step: &Step) -> StepResult {
        let label = step.label.as_str();
        let err = |e: String| StepFail::Error(format!("{label}: {e}"));
        match &step.kind {
            StepKind::Apdu { .. } => self.apdu(case, step),
            StepKind::Select { head, applet } => {
                let i = self.idx(head)?;
                let aid = match applet {
                    Applet::Purse => ins::AID_PURSE,
                    Applet::Cpay => ins::AID_CPAY,
                    Applet::Xfer => ins::AID_XFER,
                };
                self.ok_data(i, case, label, &cmds::select(&aid)).map(|_| ())
            }
            StepKind::Engine { action, expect } if !self.armed.is_empty() => {
                self.torn_engine(action, expect, label, case)
            }
            StepKind::Tear { head, at } => {
                let i = self.idx(head)?;
                self.arm(i, *at).map_err(err)
            }
            StepKind::Engine { action, expect } => {
                let o = self.engine(action, case)?;
                self.last_outcome = o.to_string();
                if meets(expect, &o.verdict()) {
                    Ok(())
                } else {
                    Err(failed(label, expect.clone(), o.to_string()))
                }
            }
            StepKind::Recover { heads, expect } => {
                let r = self.recover(heads, case)?;
                self.last_outcome = r.to_string();
                let ok = if expect == crate::engine::recover::SETTLED { r.settled() } else { r.verdict() == expect };
                if ok {
                    Ok(())
                } else {
                    Err(failed(label, format!("recovery {expect}"), r.to_string()))
                }
            }
            StepKind::Read { head, state, prefix } => {
                let i = self.idx(head)?;
                self.read(i, case, label, *state, prefix)
            }
            StepKind::Assert { that, message } => match that.eval_bool(&self.vars) {
                Ok(true) => Ok(()),
                Ok(false) => {
                    let vals: Vec<String> = that
                        .variables()
                        .iter()
                        .map(|v| format!("{v}={}", self.vars.get(v).map_or("?".into(), |x| x.to_string())))
                        .collect();
                    let want = if message.is_empty() { that.src.clone() } else { format!("{message} ({})", that.src) };
                    Err(failed(label, want, vals.join(", ")))
                }
                Err(e) => Err(err(e)),
            },
            StepKind::Set { vars } => {
                for (n, e) in vars {
                    let v = e.eval(&self.vars).map_err(err)?;
                    self.vars.insert(n.clone(), v);
                }
                Ok(())
            }
            StepKind::PowerOff { head } => {
                let i = self.idx(head)?;
                self.unpowered_link(i, &case.id).power_off().map_err(|e| err(e.to_string()))
            }
            StepKind::PowerOn { head } => {
                let i = self.idx(head)?;
                self.unpowered_link(i, &case.id).power_on().map(|_| ()).map_err(|e| err(e.to_string()))
            }
            StepKind::WarmReset { head } => {
                let i = self.idx(head)?;
                self.unpowered_link(i, &case.id).warm_reset().map(|_| ()).map_err(|e| err(e.to_string()))
            }
            StepKind::Remove { head } => {
                let i = self.idx(head)?;
                let v = self.heads[i].head.as_virtual().ok_or_else(|| err("remove needs a virtual head".into()))?;
                let card = v.remove().ok_or_else(|| err("no card to remove".into()))?;
                self.pocket.insert(i, card);
                self.unpowered_link(i, &case.id).event(RowKind::Remove, "");
                Ok(())
            }
            StepKind::InsertCard { head, card, protocol } => {
                let i = self.idx(head)?;
                self.card_ids.insert(i, hex::encode_upper(card.card_id));
                let keys = self.t.keys;
                let mut l = self.unpowered_link(i, &case.id);
                crate::lab::insert_card(&mut l, card, *protocol, keys, None).map_err(err)
            }
            StepKind::Insert { head } => {
                let i = self.idx(head)?;
                let card = self.pocket.remove(&i).ok_or_else(|| err("no removed card to insert".into()))?;
                let v = self.heads[i].head.as_virtual().ok_or_else(|| err("insert needs a virtual head".into()))?;
                v.insert(card);
                self.unpowered_link(i, &case.id).event(RowKind::Insert, "");
                Ok(())
            }
        }
    }

    /// `tear`: arm a power cut on head `i` for the next engine step. Virtual heads cut it
    /// themselves (also inside an NVM commit); other heads are wrapped once and powered off
    /// at the exchange boundary.
    fn arm(&mut self, i: usize, at: TearAt) -> Result<(), String> {
        let h = &mut self.heads[i];
        match (h.head.as_virtual(), at) {
            (Some(v), TearAt::Exchange { .. } | TearAt::Command { .. }) => {
                let (cut, ins) = at.power_cut().unzip();
                v.cut_power_at(cut, ins.flatten())
            }
            (Some(v), TearAt::Commit(k)) => {
                v.card_mut().ok_or("no card in the head")?.nvm_mut().tear_after(Some(k));
            }
            (None, TearAt::Commit(_)) => {
                return Err(format!("head {}: a tear at an NVM commit is not supported by this head", h.name))
            }
            (None, TearAt::Exchange { .. } | TearAt::Command { .. }) => {
                let ctl = self.cut_controls.entry(i).or_insert_with(|| {
                    let ctl = Arc::new(Mutex::new(CutControl::default()));
                    let inner = std::mem::replace(&mut h.head, Box::new(VirtualHead::new(&h.name)));
                    h.head = Box::new(ArmedHead::owned(inner, Armed(ctl.clone())));
                    ctl
                });
                *ctl.lock().unwrap_or_else(|p| p.into_inner()) = {
                    let (cut, ins) = at.power_cut().unzip();
                    CutControl { cut, fired: false, ins: ins.flatten() }
                };
            }
        }
        self.armed.push((i, at));
        Ok(())
    }

    /// Disarm every armed cut; the names of the heads whose cut did not fire.
    fn disarm(&mut self) -> Vec<String> {
        let mut missed = Vec::new();
        for (i, at) in std::mem::take(&mut self.armed) {
            let name = self.heads[i].name.clone();
            let fired = match (self.heads[i].head.as_virtual(), self.cut_controls.get(&i)) {
                (Some(v), _) => {
                    let pending = match at {
                        TearAt::Exchange { .. } | TearAt::Command { .. } => v.cut_pending(),
                        TearAt::Commit(_) => v.card().is_some_and(|c| c.nvm().tear_pending()),
                    };
                    v.cut_power(None);
                    if let Some(c) = v.card_mut() {
                        c.nvm_mut().tear_after(None);
                    }
                    !pending
                }
                (None, Some(ctl)) => {
                    let mut c = ctl.lock().unwrap_or_else(|p| p.into_inner());
                    c.cut = None;
                    c.fired
                }
                (None, None) => false,
            };
            if !fired {
                missed.push(name);
            }
        }
        missed
    }

    /// An engine step after a `tear`: the cut must fire during it, and the head error it
    /// causes is the verdict `in-doubt` (the command's outcome is unknown), not a lost card.
    fn torn_engine(&mut self, action: &Action, expect: &str, label: &str, case: &Case) -> StepResult {
        let o = self.engine(action, case);
        let torn: Vec<String> = self.armed.iter().map(|(i, _)| self.heads[*i].name.clone()).collect();
        let missed = self.disarm();
        if !missed.is_empty() {
            return Err(failed(
                label,
                format!("the power cut armed on {} to fire", missed.join(", ")),
                "the engine step ended before it (fewer exchanges or commits on that head)",
            ));
        }
        let (verdict, detail) = match o {
            Ok(o) => (o.verdict(), o.to_string()),
            // The head error the cut caused: the command's outcome is unknown, which is what the
            // case set out to produce; it reads the cards back and recovers next.
            Err(StepFail::Blocked { head, msg }) if torn.contains(&head) => {
                (crate::engine::IN_DOUBT.to_string(), format!("{} ({msg})", crate::engine::IN_DOUBT))
            }
            Err(f) => return Err(f),
        };
        self.last_outcome = detail.clone();
        if meets(expect, &verdict) {
            Ok(())
        } else {
            Err(failed(label, expect, detail))
        }
    }

    fn steps(&mut self, case: &Case, steps: &[Step]) -> StepResult {
        let r = self.steps_labelled(case, steps);
        self.cur_step = (String::new(), 0);
        r
    }

    fn steps_labelled(&mut self, case: &Case, steps: &[Step]) -> StepResult {
        for s in steps {
            let name = s.label.strip_prefix(case.id.as_str()).unwrap_or(&s.label).trim_start();
            for n in 1..=s.repeat {
                self.cur_step = (name.to_string(), n);
                self.step_row(case, s);
                self.step(case, s)?;
            }
        }
        Ok(())
    }

    /// The trace row that opens a step: its parameters resolved (amounts, bound heads, the
    /// command of an `apdu` step), so a trace says what the terminal was asked to do and a
    /// session replay can ask it again.
    fn step_row(&self, case: &Case, s: &Step) {
        if !self.rec.enabled() {
            return;
        }
        let heads = s.kind.heads();
        let first = heads.first().and_then(|h| find_head(self.heads, h));
        let row = crate::event::Exchange {
            seq: self.rec.next_seq(),
            wall: chrono::Utc::now(),
            mono_ns: self.rec.mono_ns(Instant::now()),
            head: first.map(|i| self.heads[i].head.info().name.clone()).unwrap_or_default(),
            card_id: first.and_then(|i| self.card_ids.get(&i).cloned()).unwrap_or_default(),
            test_step: case.id.clone(),
            note: self.step_params(&s.kind),
            kind: RowKind::Step,
            step: self.cur_step.0.clone(),
            repeat: self.cur_step.1,
            ..Default::default()
        };
        self.rec.send(Event::Exchange(Box::new(row)));
    }

    fn step_params(&self, k: &StepKind) -> String {
        let h = |role: &str| {
            find_head(self.heads, role).map_or(role.to_string(), |i| self.heads[i].head.info().name.clone())
        };
        let amt = |a: &Amount| match self.amount(a) {
            Ok(v) => v.to_string(),
            Err(_) => match a {
                Amount::Lit(v) => v.to_string(),
                Amount::Var(n) => format!("${{{n}}}"),
            },
        };
        let mut p = vec![format!("do={}", k.name())];
        match k {
            StepKind::Engine { action, expect } => {
                p.push(format!("engine={}", action.engine()));
                match action {
                    Action::Charge { head, amount, mode, .. } => {
                        p.extend([format!("head={}", h(head)), format!("amount={}", amt(amount))]);
                        // Only a non-default mode, so that traces of plain charges keep their rows.
                        if *mode != engine::purse::ChargeMode::Add {
                            p.push(format!("mode={}", mode.as_str()));
                        }
                    }
                    Action::Pay { head, price, .. } => {
                        p.extend([format!("head={}", h(head)), format!("price={}", amt(price))])
                    }
                    Action::CardSignedPayment { head, price, unchecked, .. } => p.extend([
                        format!("head={}", h(head)),
                        format!("price={}", amt(price)),
                        format!("unchecked={unchecked}"),
                    ]),
                    Action::KeyUpdate { a, b, mode } => {
                        p.extend([format!("a={}", h(a)), format!("b={}", h(b)), format!("mode={}", mode.as_str())])
                    }
                    Action::ValueTransfer { from, to, amount } => p.extend([
                        format!("from={}", h(from)),
                        format!("to={}", h(to)),
                        format!("amount={}", amt(amount)),
                    ]),
                    Action::Settle { from, to, amount, mode } => p.extend([
                        format!("from={}", h(from)),
                        format!("to={}", h(to)),
                        format!("amount={}", amt(amount)),
                        format!("mode={}", mode.as_str()),
                    ]),
                }
                if let Some((m, _)) = action.machine() {
                    p.push(format!("machine={m}"));
                }
                p.push(format!("expect={expect}"));
                p.push(format!("now={}", self.t.now));
            }
            StepKind::Apdu { head, command, verbatim, raw, .. } => {
                p.push(format!("head={}", h(head)));
                match command.render_bytes(&self.vars) {
                    Ok(b) => p.push(format!("apdu={}", hex::encode_upper(b))),
                    Err(_) => p.push("apdu=unresolved".into()),
                }
                if *verbatim {
                    p.push("verbatim=true".into());
                }
                if *raw {
                    p.push("raw=true".into());
                }
            }
            StepKind::Select { head, applet } => {
                p.extend([format!("head={}", h(head)), format!("applet={}", format!("{applet:?}").to_lowercase())])
            }
            StepKind::Read { head, state, prefix } => p.extend([
                format!("head={}", h(head)),
                format!("state={}", format!("{state:?}").to_lowercase()),
                format!("as={prefix}"),
            ]),
            StepKind::Recover { heads, expect } => {
                p.push(format!("heads={}", heads.iter().map(|x| h(x)).collect::<Vec<_>>().join(",")));
                p.push(format!("expect={expect}"));
            }
            StepKind::InsertCard { head, card, .. } => {
                p.extend([format!("head={}", h(head)), format!("card={}", hex::encode_upper(card.card_id))])
            }
            StepKind::Tear { head, at } => {
                p.extend([format!("head={}", h(head)), format!("at={at:?}").replace(' ', "")])
            }
            StepKind::PowerOff { head }
            | StepKind::PowerOn { head }
            | StepKind::WarmReset { head }
            | StepKind::Remove { head }
            | StepKind::Insert { head } => p.push(format!("head={}", h(head))),
            StepKind::Assert { .. } | StepKind::Set { .. } => {}
        }
        p.join(" ")
    }

    fn run_case(&mut self, case: &Case) -> CaseResult {
        let start = Instant::now();
        let base = self.vars.clone();
        self.last_outcome.clear();
        for (k, v) in &case.bindings {
            self.vars.insert(k.clone(), v.clone());
        }
        let mut r = CaseResult {
            id: case.id.clone(),
            title: case.title.clone(),
            reference: case.reference.clone(),
            status: CaseStatus::Passed,
            message: String::new(),
            failure: None,
            duration_ms: 0.0,
            verifies: case.verifies.clone(),
        };
        let skip = match &case.skip_if {
            Some(e) => e.eval_bool(&self.vars).map_err(|e| format!("skip_if: {e}")),
            None => Ok(false),
        };
        match skip {
            Ok(true) => {
                r.status = CaseStatus::Skipped;
                r.message = format!("skip_if {}", case.skip_if.as_ref().map_or("", |e| e.src.as_str()));
            }
            Err(e) => {
                r.status = CaseStatus::Error;
                r.message = e;
            }
            Ok(false) => match self.steps(case, &case.steps) {
                Ok(()) => r.message = std::mem::take(&mut self.last_outcome),
                Err(StepFail::Failed(f)) => {
                    r.status = CaseStatus::Failed;
                    r.message = format!("{}: expected {}, got {}", f.step, f.expected, f.actual);
                    r.failure = Some(f);
                }
                Err(StepFail::Error(e)) => {
                    r.status = CaseStatus::Error;
                    r.message = e;
                }
                Err(StepFail::Blocked { head, msg }) => {
                    r.status = CaseStatus::Error;
                    r.message = msg.clone();
                    let i = find_head(self.heads, &head);
                    self.blocked.insert(i.unwrap_or(usize::MAX), msg);
                }
            },
        }
        // A cut armed by a case that stopped before its engine step must not hit the next case.
        self.disarm();
        // Case-local variables do not leak into the next case.
        self.vars = base;
        r.duration_ms = start.elapsed().as_secs_f64() * 1e3;
        r
    }
}

/// Two distinct heads of the lab, mutably.
fn two(heads: &mut [LabHead], i: usize, j: usize) -> (&mut dyn Head, &mut dyn Head) {
    assert_ne!(i, j, "plan parsing rejects a step naming one head twice");
    if i < j {
        let (l, r) = heads.split_at_mut(j);
        (l[i].head.as_mut(), r[0].head.as_mut())
    } else {
        let (l, r) = heads.split_at_mut(i);
        (r[0].head.as_mut(), l[j].head.as_mut())
    }
}

fn empty_case(id: &str) -> Case {
    Case {
        id: id.into(),
        title: String::new(),
        reference: String::new(),
        tags: vec![],
        skip_if: None,
        needs: vec![],
        bindings: vec![],
        steps: vec![],
        verifies: vec![],
    }
}

/// Run setup, every case, teardown. Events report each case as it ends.
pub fn run_plan(
    plan: &Plan,
    heads: &mut [LabHead],
    rec: &Recorder,
    keys: &Keyset,
    now: u32,
    seed: [u8; 32],
) -> Vec<CaseResult> {
    let mut s = Session::new(heads, rec, keys, now, seed);
    for (k, v) in &plan.vars {
        s.vars.insert(k.clone(), v.clone());
    }
    let setup = s.steps(&empty_case("setup"), &plan.setup);
    if let Err(StepFail::Blocked { head, msg }) = &setup {
        s.blocked.insert(find_head(s.heads, head).unwrap_or(usize::MAX), msg.clone());
    }
    let mut results = Vec::new();
    let mut roots = Roots::default();
    for case in &plan.cases {
        let mut names: Vec<String> = Vec::new();
        for h in case.steps.iter().flat_map(|st| st.kind.heads()) {
            if !names.iter().any(|x| x == h) {
                names.push(h.to_string());
            }
        }
        let head = names.join("+");
        rec.send(Event::StepStarted { head: head.clone(), test_step: case.id.clone(), engine: "case".into() });
        if s.halted.is_none() {
            s.halted = rec.failure().map(|why| format!("the trace cannot be written ({why})"));
        }
        // A blocked head ends only the cases that use it (usize::MAX: a head the lab could
        // not name, which blocks everything); before that, its cards are read and settled.
        let used: Vec<usize> = names.iter().filter_map(|n| find_head(s.heads, n)).collect();
        if s.halted.is_none() {
            for i in used {
                if s.blocked.contains_key(&i) {
                    s.settle_blocked(i);
                }
            }
        }
        let blocked = names
            .iter()
            .filter_map(|n| find_head(s.heads, n))
            .chain([usize::MAX])
            .find_map(|i| s.blocked.get(&i).cloned());
        let not_run = |status: CaseStatus, message: String, failure: Option<Failure>| CaseResult {
            id: case.id.clone(),
            title: case.title.clone(),
            reference: case.reference.clone(),
            status,
            message,
            failure,
            duration_ms: 0.0,
            verifies: case.verifies.clone(),
        };
        let mut r = match (&setup, &s.halted, blocked) {
            (_, Some(why), _) => not_run(CaseStatus::NotRun, format!("not run: {why}"), None),
            (_, None, Some(why)) => not_run(CaseStatus::NotRun, format!("not run: {why}"), None),
            (Ok(()), None, None) => s.run_case(case),
            // The card answered the set-up otherwise than the plan expects: one root cause,
            // every case blocked by it.
            (Err(StepFail::Failed(f)), None, None) => {
                not_run(CaseStatus::Blocked, format!("{}{SETUP}", crate::report::BLOCKED_BY), Some(f.clone()))
            }
            (Err(StepFail::Error(m) | StepFail::Blocked { msg: m, .. }), None, None) => {
                not_run(CaseStatus::NotRun, format!("not run: setup failed: {m}"), None)
            }
        };
        roots.settle(case, &mut r);
        // A case's verdict never goes out before its evidence: its rows are on disk first.
        rec.sync();
        rec.send(Event::StepEnded {
            head,
            test_step: case.id.clone(),
            engine: "case".into(),
            verdict: status_word(&r.status).into(),
            passed: matches!(r.status, CaseStatus::Passed | CaseStatus::Skipped),
            detail: r.message.clone(),
        });
        results.push(r);
    }
    if s.blocked.is_empty() && s.halted.is_none() && rec.failure().is_none() {
        let _ = s.steps(&empty_case("teardown"), &plan.teardown);
    }
    let passed = results.iter().filter(|r| matches!(r.status, CaseStatus::Passed | CaseStatus::Skipped)).count();
    rec.send(Event::RunEnded { passed, failed: results.len() - passed });
    results
}

pub fn status_word(s: &CaseStatus) -> &'static str {
    match s {
        CaseStatus::Passed => "passed",
        CaseStatus::Failed => "failed",
        CaseStatus::Skipped => "skipped",
        CaseStatus::Error => "error",
        CaseStatus::Blocked => "blocked",
        CaseStatus::NotRun => "not-run",
    }
}

/// The root cause named by cases blocked by a failed plan set-up.
pub const SETUP: &str = "setup";

/// What each case run so far left for the cases that need it: nothing when it passed (or
/// was skipped by its condition), else the root cause (itself, or what blocked it).
#[derive(Default)]
struct Roots {
    done: Vec<(String, Option<String>)>,
}

impl Roots {
    /// The root cause behind the first of `case`'s needs that did not pass.
    fn unmet(&self, case: &Case) -> Option<&str> {
        case.needs.iter().find_map(|n| {
            self.done.iter().filter(|(id, _)| crate::plan::case_is(id, n)).find_map(|(_, root)| root.as_deref())
        })
    }

    /// A failure of a case whose needs were not met is that root cause's doing: the case
    /// is `blocked by` it (what it saw stays in `failure`). Then remember the case's root.
    fn settle(&mut self, case: &Case, r: &mut CaseResult) {
        if r.status == CaseStatus::Failed {
            if let Some(root) = self.unmet(case) {
                r.status = CaseStatus::Blocked;
                r.message = format!("{}{root}", crate::report::BLOCKED_BY);
            }
        }
        let root = match r.status {
            CaseStatus::Passed | CaseStatus::Skipped => None,
            CaseStatus::Blocked => r.blocked_by().map(str::to_string),
            CaseStatus::Failed | CaseStatus::Error | CaseStatus::NotRun => Some(r.id.clone()),
        };
        self.done.push((r.id.clone(), root));
    }
}

/// Session replay (`replay::session`): steps re-run one at a time, outside a plan, on a
/// session that keeps its heads' card IDs, journal and pocket from one step to the next.
impl<'a> Session<'a> {
    /// Run `step` (its `repeat`-th time) as part of case `case_id`, whose `reference` labels
    /// raw APDU rows, at the trace's clock `now`. `Ok(None)`: the step met its expectation; `Ok(Some(why))`: it
    /// did not (the card answered otherwise); `Err`: the bench could not run it.
    pub fn replay_step(
        &mut self,
        case_id: &str,
        reference: &str,
        step: &Step,
        repeat: u32,
        now: u32,
    ) -> Result<Option<String>, String> {
        self.t.now = now;
        self.vars.insert("now".into(), Value::Int(now.into()));
        let name = step.label.strip_prefix(case_id).unwrap_or(&step.label).trim_start().to_string();
        self.cur_step = (name, repeat);
        let mut case = empty_case(case_id);
        case.reference = reference.to_string();
        match self.step(&case, step) {
            Ok(()) => Ok(None),
            Err(StepFail::Failed(f)) => Ok(Some(format!("{}: expected {}, got {}", f.step, f.expected, f.actual))),
            // The card went mute or away, or a command is in doubt: the card's doing, and its
            // rows (an in-doubt one) show it.
            Err(StepFail::Blocked { msg, .. }) => Ok(Some(msg)),
            Err(StepFail::Error(m)) => Err(m),
        }
    }

    /// Make again, on head `head`, a card the bench made outside a step (a batch's peer or
    /// DUT), from the card plan of its `insert` row: the same rows as the first time.
    pub fn make_card(
        &mut self,
        head: &str,
        test_step: &str,
        made: &crate::lab::InsertedCard,
        defects: Option<crate::lab::Defects>,
    ) -> Result<(), String> {
        let i = find_head(self.heads, head).ok_or_else(|| format!("no head '{head}'"))?;
        self.cur_step = (String::new(), 0);
        self.card_ids.insert(i, hex::encode_upper(made.card_plan.card_id));
        let keys = self.t.keys;
        let mut l = self.unpowered_link(i, test_step);
        crate::lab::insert_card(&mut l, &made.card_plan, made.protocol, keys, defects)
    }

    /// The card in virtual head `head`, to give a card made again its seeded defects.
    pub fn virtual_card(&mut self, head: &str) -> Option<&mut VirtualCard> {
        let i = find_head(self.heads, head)?;
        self.heads[i].head.as_virtual()?.card_mut()
    }

    /// What the last engine step reported.
    pub fn last_outcome(&self) -> &str {
        &self.last_outcome
    }
}
