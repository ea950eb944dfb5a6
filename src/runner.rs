//! Runs a validated plan on a lab: binds heads, powers cards, calls the engines, and reports
//! each step as events. A failed expectation is a result, not an error.

use crate::engine::{self, EngineError, Outcome, Terminal};
use crate::event::{Event, Recorder};
use crate::head::{Head, HeadError};
use crate::lab::{find_head, Lab, LabHead};
use crate::link::Link;
use crate::plan::{meets, Action, Plan};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub id: String,
    pub engine: &'static str,
    pub heads: Vec<String>,
    pub expect: String,
    pub verdict: String,
    pub detail: String,
    pub passed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub steps: Vec<StepResult>,
}

impl RunReport {
    pub fn passed(&self) -> usize {
        self.steps.iter().filter(|s| s.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.steps.len() - self.passed()
    }
}

/// Two distinct heads of the lab, mutably.
fn two(heads: &mut [LabHead], i: usize, j: usize) -> (&mut dyn Head, &mut dyn Head) {
    assert_ne!(i, j, "plan binding rejects a step naming one head twice");
    if i < j {
        let (l, r) = heads.split_at_mut(j);
        (l[i].head.as_mut(), r[0].head.as_mut())
    } else {
        let (l, r) = heads.split_at_mut(i);
        (r[0].head.as_mut(), l[j].head.as_mut())
    }
}

fn link<'a>(head: &'a mut dyn Head, rec: &Recorder, step: &str) -> Result<Link<'a>, HeadError> {
    if head.atr().is_none() {
        head.power_on()?;
    }
    let card_id = head
        .as_virtual()
        .and_then(|v| v.card())
        .map(|c| hex::encode_upper(c.card_id()))
        .unwrap_or_default();
    let mut l = Link::new(head, rec);
    l.card_id = card_id;
    l.test_step = step.to_string();
    Ok(l)
}

fn run_action(
    heads: &mut [LabHead],
    action: &Action,
    t: &mut Terminal,
    rec: &Recorder,
    step: &str,
) -> Result<Outcome, EngineError> {
    let idx = |name: &str| find_head(heads, name).expect("plan was bound to this lab");
    macro_rules! one {
        ($name:expr, $f:expr) => {{
            let h = heads[idx($name)].head.as_mut();
            let name = h.info().name.clone();
            let mut l = link(h, rec, step).map_err(|e| EngineError::Head {
                head: name,
                source: e,
            })?;
            $f(&mut l)
        }};
    }
    macro_rules! pair {
        ($x:expr, $y:expr, $f:expr) => {{
            let (i, j) = (idx($x), idx($y));
            let (hx, hy) = two(heads, i, j);
            let nx = hx.info().name.clone();
            let ny = hy.info().name.clone();
            let mut lx = link(hx, rec, step).map_err(|e| EngineError::Head {
                head: nx,
                source: e,
            })?;
            let mut ly = link(hy, rec, step).map_err(|e| EngineError::Head {
                head: ny,
                source: e,
            })?;
            $f(&mut lx, &mut ly)
        }};
    }
    match action {
        Action::Charge { head, amount } => {
            one!(head, |l: &mut Link| engine::purse::charge(l, t, *amount))
        }
        Action::Pay { head, price } => one!(head, |l: &mut Link| engine::purse::pay(l, t, *price)),
        Action::CardSignedPayment { head, price } => {
            one!(head, |l: &mut Link| engine::cpay::card_signed_payment(
                l, t, *price
            ))
        }
        Action::KeyUpdate { a, b, mode } => {
            pair!(a, b, |x: &mut Link, y: &mut Link| {
                engine::key_update::key_update(x, y, t, *mode)
            })
        }
        Action::ValueTransfer { from, to, amount } => {
            pair!(from, to, |x: &mut Link, y: &mut Link| {
                engine::transfer::value_transfer(x, y, t, *amount)
            })
        }
    }
}

/// Run every step in order. `now` is the transaction date; `seed` makes terminal randoms
/// reproducible.
pub fn run_plan(plan: &Plan, lab: &mut Lab, rec: &Recorder, now: u32, seed: [u8; 32]) -> RunReport {
    let Lab { keyset, heads, .. } = lab;
    let mut t = Terminal {
        keys: keyset,
        now,
        rng: ChaCha20Rng::from_seed(seed),
    };
    let mut report = RunReport::default();
    for step in &plan.steps {
        let names: Vec<String> = step.action.heads().iter().map(|h| h.to_string()).collect();
        let head_label = names.join("+");
        rec.send(Event::StepStarted {
            head: head_label.clone(),
            test_step: step.id.clone(),
            engine: step.action.engine().into(),
        });
        let (verdict, detail) = match run_action(heads, &step.action, &mut t, rec, &step.id) {
            Ok(o) => (o.verdict(), o.detail()),
            Err(e) => ("error".to_string(), e.to_string()),
        };
        let passed = meets(&step.expect, &verdict);
        rec.send(Event::StepEnded {
            head: head_label,
            test_step: step.id.clone(),
            engine: step.action.engine().into(),
            verdict: verdict.clone(),
            passed,
            detail: detail.clone(),
        });
        report.steps.push(StepResult {
            id: step.id.clone(),
            engine: step.action.engine(),
            heads: names,
            expect: step.expect.clone(),
            verdict,
            detail,
            passed,
        });
    }
    rec.send(Event::RunEnded {
        passed: report.passed(),
        failed: report.failed(),
    });
    report
}
