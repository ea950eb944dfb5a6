//! The campaign driver: for each fault point, fresh cards from the profile's templates, the
//! sequence with the fault armed, a power cycle, settling, then the invariants.
//!
//! On real heads (any head of the sequence that is not virtual) the cards cannot be replaced:
//! the fault points run one after the other on the same cards, each judged against the state
//! read just before it (`drift`), and only exchange boundaries can be cut.

use super::drift::{self, Drain};
use super::fault::{CutHead, Fault, FaultPoint, Seen};
use super::invariants::{verdict, violations, States, Verdict};
use super::sequence::{run_action, Body, Sequence};
use super::settle::{Settle, Settled};
use super::state::{snapshot, CardState};
use super::TearError;
use crate::card::defects::Defects;
use crate::engine::key_update::UpdateMode;
use crate::engine::{EngineError, Outcome, Terminal};
use crate::event::Recorder;
use crate::head::virtual_head::{CutPoint, PowerCut, VirtualHead};
use crate::head::Head;
use crate::issuance::CardPlan;
use crate::keys::Keyset;
use crate::lab::{Lab, LabHead};
use crate::link::Link;
use crate::plan::Action;
use crate::profile::{ConfigError, Loaded};
use crate::spec::Protocol;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

/// The card a profile puts in a virtual head, as a recipe for fresh copies.
#[derive(Debug, Clone)]
pub struct Template {
    pub head: String,
    pub card: CardPlan,
    pub protocol: Protocol,
    pub defects: Defects,
}

/// Templates of every virtual head that holds a card in the profile.
pub fn templates(l: &Loaded) -> Result<Vec<Template>, ConfigError> {
    let mut out = Vec::new();
    for h in &l.profile.heads {
        let h = h.get_ref();
        let Some(card) = &h.card else { continue };
        if h.driver.get_ref() != "virtual" {
            continue;
        }
        let spec = l
            .profile
            .cards
            .iter()
            .find(|c| c.get_ref().name == *card.get_ref())
            .ok_or_else(|| l.err(card.span(), format!("no [[card]] named '{}'", card.get_ref())))?;
        out.push(Template {
            head: h.name.clone(),
            card: crate::lab::card_plan(l, spec)?,
            protocol: spec.get_ref().protocol,
            defects: crate::lab::card_defects(l, spec)?,
        });
    }
    Ok(out)
}

/// The cards in the profile's other heads (PC/SC, PN532), as read from them: a card whose ID
/// is a `[[card]]` of the profile takes its key slots and limits from there. Heads without a
/// card that answers are left out.
pub fn live_slots(l: &Loaded, lab: &mut Lab, now: u32) -> Vec<super::sequence::Slot> {
    let mut out = Vec::new();
    for h in lab.heads.iter_mut().filter(|h| h.head.info().driver != "virtual") {
        let Ok(s) = snapshot(h.head.as_mut(), &lab.keyset, now) else { continue };
        let spec =
            l.profile.cards.iter().find(|c| hex::decode(c.get_ref().id.get_ref()).ok() == Some(s.card_id.to_vec()));
        let mut card = spec.and_then(|c| crate::lab::card_plan(l, c).ok()).unwrap_or_else(|| CardPlan::new(s.card_id));
        card.purse_counter = s.purse.counter;
        card.cpay_amount = s.cpay_amount;
        card.balance = s.xfer.balance;
        card.update_key = s.xfer.ukid;
        card.transfer_key = s.xfer.tkid;
        out.push(super::sequence::Slot { head: h.name.clone(), card });
    }
    out
}

/// One fault point's result.
#[derive(Debug, Clone)]
pub struct PointResult {
    pub sequence: String,
    pub point: FaultPoint,
    pub verdict: Verdict,
    /// Whether the armed fault fired (a faulted run may take another path than the
    /// fault-free one and never reach it).
    pub fired: bool,
    /// What the faulted engine step returned, what settling did, and every broken invariant.
    pub detail: String,
}

pub struct Campaign<'a> {
    heads: &'a mut [LabHead],
    templates: Vec<Template>,
    keys: &'a Keyset,
    now: u32,
    settle: &'a dyn Settle,
    notes: Vec<String>,
}

/// Which head gets which fault, for one run of a sequence's faulted part.
#[derive(Debug, Clone, Default)]
struct Arm {
    cut: Option<(String, PowerCut)>,
    tear: Option<(String, u64)>,
}

impl Arm {
    fn of(f: &Fault) -> Arm {
        match f {
            Fault::Exchange { head, n, point } => {
                Arm { cut: Some((head.clone(), PowerCut { at: *n, point: *point })), tear: None }
            }
            Fault::Commit { head, k } => Arm { cut: None, tear: Some((head.clone(), *k)) },
        }
    }
}

/// What the fault-free runs of a sequence established.
struct Baseline {
    before: Vec<CardState>,
    complete: Vec<CardState>,
    /// A settlement's cards after its key update alone (`None` for other sequences).
    midway: Option<Vec<CardState>>,
    points: Vec<FaultPoint>,
    /// The cut that interrupts a recovery sequence's engine step.
    prep: Option<Arm>,
    /// Whether the pair can be updated and transfer after the fault-free run.
    pair_works: bool,
    /// Real heads: what one point (setup and body) takes from each card.
    drain: Vec<Drain>,
}

/// What one part of a run saw: per head, the exchanges; whether the armed fault fired.
struct Part<R> {
    result: R,
    seen: Vec<Vec<Seen>>,
    fired: bool,
}

impl<'a> Campaign<'a> {
    pub fn new(lab: &'a mut Lab, templates: Vec<Template>, now: u32, settle: &'a dyn Settle) -> Self {
        Campaign { heads: &mut lab.heads, templates, keys: &lab.keyset, now, settle, notes: Vec::new() }
    }

    /// What the report must say besides the rows: on real heads, the fault points that are not
    /// supported and the sequences stopped because the cards ran dry.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Whether the sequence runs on the same cards point after point (a head that is not
    /// virtual: its card cannot be replaced by a fresh one).
    fn real(&mut self, names: &[String]) -> bool {
        names
            .iter()
            .any(|n| self.heads.iter_mut().find(|h| h.name == *n).is_some_and(|h| h.head.as_virtual().is_none()))
    }

    /// Every fault point of every sequence, in order; `progress` sees each result.
    pub fn run(
        &mut self,
        seqs: &[Sequence],
        mut progress: impl FnMut(&PointResult),
    ) -> Result<Vec<PointResult>, TearError> {
        let mut out = Vec::new();
        for s in seqs {
            for r in self.sequence(s)? {
                progress(&r);
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Every fault point of one sequence.
    pub fn sequence(&mut self, seq: &Sequence) -> Result<Vec<PointResult>, TearError> {
        self.sequence_where(seq, |_, _| true)
    }

    /// The fault points of one sequence for which `pick(index, count)` is true (a property
    /// test picks one at random).
    pub fn sequence_where(
        &mut self,
        seq: &Sequence,
        mut pick: impl FnMut(usize, usize) -> bool,
    ) -> Result<Vec<PointResult>, TearError> {
        let names = seq.heads();
        let real = self.real(&names);
        if real {
            if let Some(c) = seq.cards.first() {
                return Err(TearError::Unfit(format!(
                    "{}: inserts a card into head {}, which is not virtual",
                    seq.name, c.head
                )));
            }
            self.notes.push(format!(
                "{}: NVM commit fault points not supported on real heads (a host can only cut between exchanges)",
                seq.name
            ));
            // An earlier sequence (or run) may have left a state nothing settled.
            let now = self.snapshots(&names).map_err(|e| TearError::Unfit(format!("{}: {e}", seq.name)))?;
            if let Some(why) = drift::unsettled(&now) {
                self.notes.push(format!("{}: {why}: not run (settle it first: cardbench recover)", seq.name));
                return Ok(Vec::new());
            }
        } else {
            for n in names.iter().filter(|n| !seq.cards.iter().any(|c| c.head == **n)) {
                self.template(n)?;
            }
        }
        let Baseline { before: before0, complete: complete0, midway, points, prep, pair_works, drain } =
            self.baseline(seq, &names, real)?;
        // A key moves forward once: on the same cards a key update is done after its first run.
        if real && before0.iter().zip(&complete0).all(|(b, c)| b.view() == c.view()) {
            self.notes.push(format!(
                "{}: the fault-free run changes nothing on these cards (done already?): its {} points not run",
                seq.name,
                points.len()
            ));
            return Ok(Vec::new());
        }
        let settle = self.settle;
        let mut out = Vec::new();
        let count = points.len();
        for (index, point) in points.into_iter().enumerate() {
            if !pick(index, count) {
                continue;
            }
            let mut t = self.terminal(seq, real.then_some(index));
            let (before, complete) = if real {
                match self.live_before(seq, &names, &drain, &mut t) {
                    Ok(before) => {
                        let complete = drift::expected(&before, &before0, &complete0);
                        (before, complete)
                    }
                    Err(why) => {
                        self.notes.push(format!(
                            "{}: {why} after {} points; {} points not run",
                            seq.name,
                            out.len(),
                            count - index
                        ));
                        break;
                    }
                }
            } else {
                self.fresh(seq, &names)?;
                self.setup(seq, &names, &mut t)?;
                self.snapshots(&names).map_err(|e| TearError::Baseline { seq: seq.name.clone(), detail: e })?;
                (before0.clone(), complete0.clone())
            };
            let states = States { before: &before, complete: &complete, midway: midway.as_deref() };
            let arm = Arm::of(&point.fault);
            let mut notes = Vec::new();
            let (fired, first) = match &seq.body {
                Body::Engine(action) => {
                    let p = self.part(&names, &arm, &mut t, |links, t| run_action(action, links, t));
                    notes.push(engine_note(&p.result));
                    notes.extend(shifted(&names, &p.seen, &point));
                    (p.fired, Settled::Nothing)
                }
                Body::Recovery { action, .. } => {
                    let p =
                        self.part(&names, prep.as_ref().expect("recovery has a prepared cut"), &mut t, |links, t| {
                            run_action(action, links, t)
                        });
                    notes.push(format!("interrupted: {}", engine_note(&p.result)));
                    self.power_cycle(&names);
                    let p = self.part(&names, &arm, &mut t, |links, t| settle.settle(seq, links, t));
                    notes.push(format!("faulted {}: {}", settle.name(), settle_note(&p.result)));
                    notes.extend(shifted(&names, &p.seen, &point));
                    // The cards start from an interrupted sequence here, so whatever changed
                    // them before the final settling was this interrupted settling run.
                    let first = match p.result {
                        Ok(Settled::Nothing) | Err(_) => {
                            Settled::Completed(format!("by the interrupted {} run", settle.name()))
                        }
                        Ok(s) => s,
                    };
                    (p.fired, first)
                }
            };
            self.power_cycle(&names);
            let p = self.part(&names, &Arm::default(), &mut t, |links, t| settle.settle(seq, links, t));
            let settled = match p.result {
                Ok(Settled::Nothing) => Ok(first),
                other => other,
            };
            let mut broken = Vec::new();
            let settled = match settled {
                Ok(s) => {
                    notes.push(format!("{}: {}", settle.name(), settled_word(&s)));
                    s
                }
                Err(e) => {
                    broken.push(format!("settling failed: {e}"));
                    Settled::Nothing
                }
            };
            let verdict = match self.snapshots(&names) {
                Ok(after) => {
                    broken.extend(violations(&states, &after, &settled));
                    if broken.is_empty() {
                        if let Some(e) = self.pair_check(seq, &after, &mut t).filter(|_| pair_works) {
                            broken.push(e);
                        }
                    }
                    verdict(&states, &after, &settled, &mut broken)
                }
                Err(e) => {
                    broken.push(format!("card does not answer after power-up: {e}"));
                    Verdict::Violation
                }
            };
            if !fired {
                notes.push("fault not reached".into());
            }
            notes.extend(broken);
            out.push(PointResult {
                sequence: seq.name.clone(),
                point,
                verdict,
                fired,
                detail: notes.into_iter().filter(|n| !n.is_empty()).collect::<Vec<_>>().join("; "),
            });
        }
        Ok(out)
    }

    /// Fault-free runs: the state before and after the sequence, and its fault points (for a
    /// recovery sequence also the cut that interrupts the engine step).
    /// On real heads the cards are the ones in the heads (no fresh cards), the points are the
    /// exchanges only, and the drain of one point is measured.
    fn baseline(&mut self, seq: &Sequence, names: &[String], real: bool) -> Result<Baseline, TearError> {
        let failed = |detail: String| TearError::Baseline { seq: seq.name.clone(), detail };
        let mut t = self.terminal(seq, None);
        let start = if real {
            // The exchanges depend on the cards' state (a first charge reads a blank record,
            // shorter than a signed one): one warm-up run brings the cards to the state every
            // point starts from, so the points counted next are the ones the points meet.
            self.setup(seq, names, &mut t)?;
            let action = seq.action().clone();
            if let Err(e) = self.part(names, &Arm::default(), &mut t, |links, t| run_action(&action, links, t)).result {
                return Err(failed(format!("{} without a fault: {e}", action.engine())));
            }
            self.power_cycle(names);
            self.snapshots(names).map_err(failed)?
        } else {
            self.fresh(seq, names)?;
            Vec::new()
        };
        self.setup(seq, names, &mut t)?;
        let before = self.snapshots(names).map_err(failed)?;
        let commits0 = self.commits(names);
        let action = seq.action().clone();
        let p = self.part(names, &Arm::default(), &mut t, |links, t| run_action(&action, links, t));
        if let Err(e) = &p.result {
            return Err(failed(format!("{} without a fault: {e}", action.engine())));
        }
        self.power_cycle(names);
        let complete = self.snapshots(names).map_err(failed)?;
        // Negative cases (an expired or revoked card, a key at its limit) leave a pair that
        // cannot be updated even without a fault: that is not the fault's doing.
        let pair_works = self.pair_check(seq, &complete, &mut t).is_none();
        let drain = if real { drift::drain(&start, &complete) } else { Vec::new() };
        let Body::Recovery { head, command, point, .. } = &seq.body else {
            let points = fault_points(names, &p.seen, &commits0, real);
            let midway = if real { None } else { self.midway(seq, names).map_err(failed)? };
            return Ok(Baseline { before, complete, midway, points, prep: None, pair_works, drain });
        };
        // Recovery: interrupt the engine step where asked, then fault the settling run.
        let hi = names.iter().position(|n| n == head).expect("the recovery head is in the sequence");
        let n = p.seen[hi]
            .iter()
            .position(|s| s.command == *command)
            .ok_or_else(|| failed(format!("{} sends no {command} to head {head}", action.engine())))?
            as u64
            + 1;
        let prep = Arm { cut: Some((head.clone(), PowerCut { at: n, point: *point })), tear: None };
        let mut t = self.terminal(seq, None);
        if !real {
            self.fresh(seq, names)?;
        }
        self.setup(seq, names, &mut t)?;
        self.snapshots(names).map_err(failed)?;
        self.part(names, &prep, &mut t, |links, t| run_action(&action, links, t));
        self.power_cycle(names);
        let commits0 = self.commits(names);
        let settle = self.settle;
        let s = self.part(names, &Arm::default(), &mut t, |links, t| settle.settle(seq, links, t));
        if let Err(e) = &s.result {
            return Err(failed(format!("{} without a fault: {e}", settle.name())));
        }
        let points = fault_points(names, &s.seen, &commits0, real);
        Ok(Baseline { before, complete, midway: None, points, prep: Some(prep), pair_works, drain })
    }

    /// Real heads, before a point: the cards can still run the sequence, then the setup, then
    /// the state this point is judged against. `Err` says why the sequence stops here.
    fn live_before(
        &mut self,
        seq: &Sequence,
        names: &[String],
        drain: &[Drain],
        t: &mut Terminal,
    ) -> Result<Vec<CardState>, String> {
        let now = self.snapshots(names)?;
        if let Some(why) = drift::unsettled(&now).or_else(|| drift::exhausted(&now, drain)) {
            return Err(why);
        }
        self.setup(seq, names, t).map_err(|e| e.to_string())?;
        self.snapshots(names)
    }

    fn template(&self, head: &str) -> Result<&Template, TearError> {
        self.templates.iter().find(|t| t.head == head).ok_or_else(|| {
            let driver = self.heads.iter().find(|h| h.name == head).map_or("unknown", |h| h.head.info().driver);
            TearError::NotVirtual { head: head.to_string(), driver }
        })
    }

    /// A settlement's first committed part: fresh cards, the setup, the key update alone in
    /// the settlement's mode. `None` for other sequences and when the IDs are equal already.
    fn midway(&mut self, seq: &Sequence, names: &[String]) -> Result<Option<Vec<CardState>>, String> {
        let Action::Settle { from, to, mode, .. } = seq.action() else { return Ok(None) };
        let update = Action::KeyUpdate { a: from.clone(), b: to.clone(), mode: *mode };
        let mut t = self.terminal(seq, None);
        self.fresh(seq, names).map_err(|e| e.to_string())?;
        self.setup(seq, names, &mut t).map_err(|e| e.to_string())?;
        let p = self.part(names, &Arm::default(), &mut t, |links, t| run_action(&update, links, t));
        self.power_cycle(names);
        match p.result {
            Ok(Outcome::Success(_)) => Ok(Some(self.snapshots(names)?)),
            Ok(_) => Ok(None),
            Err(e) => Err(format!("key update without a fault: {e}")),
        }
    }

    /// A seeded terminal; on real heads each point (`salt`) gets its own randoms, as the same
    /// cards see every point.
    fn terminal(&self, seq: &Sequence, salt: Option<usize>) -> Terminal<'a> {
        let mut h = Sha256::new().chain_update(b"cardbench tear").chain_update(seq.name.as_bytes());
        if let Some(i) = salt {
            h.update((i as u64).to_be_bytes());
        }
        let seed: [u8; 32] = h.finalize().into();
        Terminal::new(self.keys, self.now, ChaCha20Rng::from_seed(seed))
    }

    fn virtual_head(&mut self, name: &str) -> Option<&mut VirtualHead> {
        self.heads.iter_mut().find(|h| h.name == name).and_then(|h| h.head.as_virtual())
    }

    /// Fresh personalized cards from the templates into the sequence's heads.
    fn fresh(&mut self, seq: &Sequence, names: &[String]) -> Result<(), TearError> {
        for n in names {
            let tpl = match seq.cards.iter().find(|c| c.head == *n) {
                Some(c) => {
                    Template { head: n.clone(), card: c.card.clone(), protocol: c.protocol, defects: Defects::NONE }
                }
                None => self.template(n)?.clone(),
            };
            let mut card = crate::lab::personalize_virtual(&tpl.card, tpl.protocol, self.keys)
                .map_err(|e| TearError::Unfit(format!("head {n}: card template: {e}")))?;
            card.set_defects(tpl.defects);
            let v = self.virtual_head(n).ok_or_else(|| TearError::NotVirtual { head: n.clone(), driver: "?" })?;
            v.cut_power(None);
            v.insert(card);
        }
        Ok(())
    }

    fn setup(&mut self, seq: &Sequence, names: &[String], t: &mut Terminal) -> Result<(), TearError> {
        for a in &seq.setup {
            let p = self.part(names, &Arm::default(), t, |links, t| run_action(a, links, t));
            match p.result {
                Ok(Outcome::Success(_) | Outcome::Skipped(_)) => {}
                Ok(o) => {
                    return Err(TearError::Setup { seq: seq.name.clone(), detail: format!("{}: {o}", a.engine()) })
                }
                Err(e) => {
                    return Err(TearError::Setup { seq: seq.name.clone(), detail: format!("{}: {e}", a.engine()) })
                }
            }
        }
        Ok(())
    }

    fn commits(&mut self, names: &[String]) -> Vec<u64> {
        names.iter().map(|n| self.virtual_head(n).and_then(|v| v.card()).map_or(0, |c| c.nvm().commits())).collect()
    }

    fn snapshots(&mut self, names: &[String]) -> Result<Vec<CardState>, String> {
        let (keys, now) = (self.keys, self.now);
        let mut out = Vec::new();
        for n in names {
            let h = self.heads.iter_mut().find(|h| h.name == *n).expect("sequence heads are lab heads");
            out.push(snapshot(h.head.as_mut(), keys, now)?);
        }
        Ok(out)
    }

    /// Power off and on again, as a terminal does after losing a card.
    fn power_cycle(&mut self, names: &[String]) {
        for n in names {
            if let Some(h) = self.heads.iter_mut().find(|h| h.name == *n) {
                let _ = h.head.power_off();
                let _ = h.head.power_on();
            }
        }
    }

    /// Run `f` on links to the sequence's heads with `arm`'s faults armed; disarm after.
    fn part<R>(
        &mut self,
        names: &[String],
        arm: &Arm,
        t: &mut Terminal,
        f: impl FnOnce(&mut [Link], &mut Terminal) -> R,
    ) -> Part<R> {
        for n in names {
            let cut = arm.cut.as_ref().filter(|(h, _)| h == n).map(|(_, c)| *c);
            let tear = arm.tear.as_ref().filter(|(h, _)| h == n).map(|(_, k)| *k);
            if let Some(v) = self.virtual_head(n) {
                if v.atr().is_none() {
                    let _ = v.power_on();
                }
                v.cut_power(cut);
                if let Some(c) = v.card_mut() {
                    c.nvm_mut().tear_after(tear);
                }
            }
        }
        let rec = Recorder::disabled();
        let mut slots: Vec<Option<&mut LabHead>> = self.heads.iter_mut().map(Some).collect();
        let picked: Vec<&mut dyn Head> = names
            .iter()
            .map(|n| {
                let i = slots.iter().position(|s| s.as_ref().is_some_and(|h| h.name == *n)).expect("lab head");
                slots[i].take().expect("distinct heads").head.as_mut()
            })
            .collect();
        // A virtual head cuts power itself (armed above); any other head is cut by the wrapper.
        let mut cuts: Vec<CutHead> = picked
            .into_iter()
            .zip(names)
            .map(|(h, n)| {
                let cut = arm.cut.as_ref().filter(|(a, _)| a == n && h.as_virtual().is_none()).map(|(_, c)| *c);
                CutHead::new(h, cut)
            })
            .collect();
        let result = {
            let mut links: Vec<Link> = cuts.iter_mut().map(|c| Link::new(c as &mut dyn Head, &rec)).collect();
            f(&mut links, t)
        };
        let seen: Vec<Vec<Seen>> = cuts.iter().map(|c| c.seen().to_vec()).collect();
        let mut fired = (arm.cut.is_none() && arm.tear.is_none()) || cuts.iter().any(|c| c.fired());
        drop(cuts);
        for n in names {
            if let Some(v) = self.virtual_head(n) {
                let armed_here = arm.cut.as_ref().is_some_and(|(h, _)| h == n);
                if armed_here && !v.cut_pending() {
                    fired = true;
                }
                v.cut_power(None);
                if let Some(c) = v.card_mut() {
                    if arm.tear.as_ref().is_some_and(|(h, _)| h == n) && !c.nvm().tear_pending() {
                        fired = true;
                    }
                    c.nvm_mut().tear_after(None);
                }
            }
        }
        Part { result, seen, fired }
    }

    /// "The pair can still transfer or be updated again": a key update in auto mode, then a
    /// transfer of 1 from a card that holds value.
    fn pair_check(&mut self, seq: &Sequence, after: &[CardState], t: &mut Terminal) -> Option<String> {
        let (a, b) = seq.pair()?;
        let names = seq.heads();
        let bal = |h: &str| after.iter().find(|s| s.head == h).map_or(0, |s| s.xfer.balance);
        let (from, to) = if bal(&a) >= 1 { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
        let p = self.part(&names, &Arm::default(), t, |links, t| {
            let ku = run_action(&Action::KeyUpdate { a: a.clone(), b: b.clone(), mode: UpdateMode::Auto }, links, t);
            let tr = run_action(
                &Action::ValueTransfer { from: from.clone(), to: to.clone(), amount: crate::plan::Amount::Lit(1) },
                links,
                t,
            );
            (ku, tr)
        });
        match p.result {
            (Ok(Outcome::Success(_) | Outcome::Skipped(_)), Ok(Outcome::Success(_))) => None,
            (Ok(Outcome::Success(_) | Outcome::Skipped(_)), tr) => {
                Some(format!("the pair cannot transfer any more: {}", result_text(&tr)))
            }
            (ku, _) => Some(format!("the pair cannot be updated again: {}", result_text(&ku))),
        }
    }
}

fn result_text(r: &Result<Outcome, EngineError>) -> String {
    match r {
        Ok(o) => o.to_string(),
        Err(e) => e.to_string(),
    }
}

fn engine_note(r: &Result<Outcome, EngineError>) -> String {
    match r {
        Ok(Outcome::Success(_)) => "engine: success".into(),
        Ok(o) => format!("engine: {}", o.verdict()),
        Err(e) => format!("engine: {e}"),
    }
}

fn settle_note(r: &Result<Settled, EngineError>) -> String {
    match r {
        Ok(s) => settled_word(s),
        Err(e) => e.to_string(),
    }
}

fn settled_word(s: &Settled) -> String {
    match s {
        Settled::Nothing => "nothing to do".into(),
        Settled::Completed(m) => format!("completed ({m})"),
        Settled::Cancelled(m) => format!("cancelled ({m})"),
        Settled::Reported(m) => format!("reported ({m})"),
    }
}

/// The faulted run met another command at the cut than the fault-free run did (the cards'
/// state changed the exchanges): said in the row, so the point is read for what it cut.
fn shifted(names: &[String], seen: &[Vec<Seen>], point: &FaultPoint) -> Option<String> {
    let Fault::Exchange { head, n, .. } = &point.fault else { return None };
    let log = &seen[names.iter().position(|x| x == head)?];
    let met = log.get(*n as usize - 1).map_or("no exchange", |s| s.command.as_str());
    (met != point.command).then(|| format!("exchange {n} was {met} in this run"))
}

/// Before and after every exchange of every head, then every commit of every card (not on
/// real heads: `real`).
fn fault_points(names: &[String], seen: &[Vec<Seen>], commits0: &[u64], real: bool) -> Vec<FaultPoint> {
    let mut out = Vec::new();
    for (head, log) in names.iter().zip(seen) {
        for (i, s) in log.iter().enumerate() {
            for point in [CutPoint::BeforeCommand, CutPoint::AfterCommand] {
                out.push(FaultPoint {
                    fault: Fault::Exchange { head: head.clone(), n: i as u64 + 1, point },
                    command: s.command.clone(),
                });
            }
        }
    }
    if real {
        return out;
    }
    for ((head, log), c0) in names.iter().zip(seen).zip(commits0) {
        let last = log.iter().filter_map(|s| s.commits_after).max().unwrap_or(*c0);
        for k in 1..=last.saturating_sub(*c0) {
            let command = log
                .iter()
                .find(|s| s.commits_after.is_some_and(|c| c >= c0 + k))
                .map_or_else(|| "?".to_string(), |s| s.command.clone());
            out.push(FaultPoint { fault: Fault::Commit { head: head.clone(), k }, command });
        }
    }
    out
}
