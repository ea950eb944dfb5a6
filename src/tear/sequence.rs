//! What a campaign faults: sequences of engine steps on named heads, either the built-in
//! set (one per protocol flow, on cards of the profile that fit it) or a plan's engine steps.

use super::TearError;
use crate::engine::key_update::UpdateMode;
use crate::engine::{self, EngineError, Outcome, Terminal};
use crate::head::virtual_head::CutPoint;
use crate::issuance::CardPlan;
use crate::keys::Keyset;
use crate::link::Link;
use crate::plan::template::Value;
use crate::plan::{Action, Amount, ChargeMode, Plan, StepKind};

/// The faulted part of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// One engine step: every exchange and commit of it is a fault point.
    Engine(Action),
    /// Recovery itself: `action` is interrupted at `command` on `head` (cut at `point`), then
    /// every exchange and commit of the settling run is a fault point, and the cards are
    /// settled once more.
    Recovery { action: Action, head: String, command: String, point: CutPoint },
}

/// Setup steps (run fault-free on fresh cards) and the faulted body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub name: String,
    /// Cards a plan puts in heads (`insert_card`), instead of the profile's templates.
    pub cards: Vec<PlanCard>,
    pub setup: Vec<Action>,
    pub body: Body,
}

/// A reference card a plan inserts into a head before the sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCard {
    pub head: String,
    pub card: CardPlan,
    pub protocol: crate::spec::Protocol,
}

impl Sequence {
    /// Heads the sequence uses, in first-use order.
    pub fn heads(&self) -> Vec<String> {
        let body = match &self.body {
            Body::Engine(a) | Body::Recovery { action: a, .. } => a,
        };
        let mut v: Vec<String> = Vec::new();
        for h in self.setup.iter().chain([body]).flat_map(|a| a.heads()) {
            if !v.iter().any(|x| x == h) {
                v.push(h.to_string());
            }
        }
        v
    }

    pub fn action(&self) -> &Action {
        match &self.body {
            Body::Engine(a) | Body::Recovery { action: a, .. } => a,
        }
    }

    /// Whether the sequence involves two cards that must still work as a pair afterwards
    /// (transfer and key update: "keys old-or-new, the pair can still transfer").
    pub fn pair(&self) -> Option<(String, String)> {
        match self.action() {
            Action::KeyUpdate { a, b, .. } => Some((a.clone(), b.clone())),
            Action::ValueTransfer { from, to, .. } | Action::Settle { from, to, .. } => {
                Some((from.clone(), to.clone()))
            }
            _ => None,
        }
    }
}

/// Names of the built-in sequences, in campaign order.
pub const BUILTIN: &[&str] = &[
    "charge",
    "pay",
    "card-signed-payment",
    "key-update-common",
    "key-update-public",
    "key-update-auto",
    "key-update-multi",
    "key-update-rollover",
    "transfer",
    "recovery",
];

/// A virtual head of the profile with the card template in it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub head: String,
    pub card: CardPlan,
}

const CHARGE: u32 = 500;
const PRICE: u32 = 300;
const CPAY_PRICE: u32 = 100;
const TRANSFER: u32 = 300;

/// The built-in sequences named in `names` (all of `BUILTIN` when empty), on the first
/// slots whose cards fit each flow.
pub fn builtin(slots: &[Slot], keys: &Keyset, names: &[String]) -> Result<Vec<Sequence>, TearError> {
    let want: Vec<&str> = if names.is_empty() { BUILTIN.to_vec() } else { names.iter().map(String::as_str).collect() };
    let mut out = Vec::new();
    for name in want {
        let missing = |what: &str| TearError::Unfit(format!("sequence {name}: the profile has no {what}"));
        let first =
            slots.first().ok_or_else(|| missing("head with a card (virtual, or a reader whose card answers)"))?;
        let seq = match name {
            "charge" => Sequence {
                name: name.into(),
                cards: vec![],
                setup: vec![],
                body: Body::Engine(Action::Charge {
                    head: first.head.clone(),
                    amount: Amount::Lit(CHARGE),
                    machine: None,
                    mode: ChargeMode::Add,
                }),
            },
            "pay" => Sequence {
                name: name.into(),
                cards: vec![],
                setup: vec![Action::Charge {
                    head: first.head.clone(),
                    amount: Amount::Lit(CHARGE),
                    mode: ChargeMode::Add,
                    machine: None,
                }],
                body: Body::Engine(Action::Pay { head: first.head.clone(), price: Amount::Lit(PRICE), machine: None }),
            },
            "card-signed-payment" => {
                let s = slots
                    .iter()
                    .find(|s| s.card.cpay_amount >= CPAY_PRICE)
                    .ok_or_else(|| missing(&format!("card with a CPAY value of at least {CPAY_PRICE}")))?;
                Sequence {
                    name: name.into(),
                    cards: vec![],
                    setup: vec![],
                    body: Body::Engine(Action::CardSignedPayment {
                        head: s.head.clone(),
                        price: Amount::Lit(CPAY_PRICE),
                        unchecked: false,
                        machine: None,
                    }),
                }
            }
            "transfer" | "recovery" => {
                let (setup, from, to) = transfer_pair(slots, keys).ok_or_else(|| {
                    missing(&format!("two cards that can share a transfer key, one with a balance of {TRANSFER}"))
                })?;
                let action = Action::ValueTransfer { from: from.clone(), to, amount: Amount::Lit(TRANSFER) };
                let body = if name == "transfer" {
                    Body::Engine(action)
                } else {
                    // The hardest interruption (card-spec 9.3): the sender committed its debit
                    // and the answer never came back.
                    Body::Recovery { action, head: from, command: "VALUE SEND".into(), point: CutPoint::AfterCommand }
                };
                Sequence { name: name.into(), cards: vec![], setup, body }
            }
            other => {
                let mode = other.strip_prefix("key-update-").and_then(UpdateMode::parse).ok_or_else(|| {
                    TearError::Unfit(format!("unknown sequence '{other}' (one of: {})", BUILTIN.join(", ")))
                })?;
                let (a, b) =
                    key_update_pair(slots, keys, mode).ok_or_else(|| missing("pair of cards for this mode"))?;
                Sequence {
                    name: name.into(),
                    cards: vec![],
                    setup: vec![],
                    body: Body::Engine(Action::KeyUpdate { a, b, mode }),
                }
            }
        };
        out.push(seq);
    }
    Ok(out)
}

/// Whether a key update in `mode` between these two cards succeeds on reference cards.
fn key_update_fits(x: &CardPlan, y: &CardPlan, keys: &Keyset, mode: UpdateMode) -> bool {
    if x.transfer_key == y.transfer_key {
        return false;
    }
    let (old, new) = if x.transfer_key < y.transfer_key { (x, y) } else { (y, x) };
    let in_range = new.transfer_key <= old.transfer_key_limit;
    let revoked = |c: &CardPlan| keys.crl.is_revoked(crate::keys::card_serial(&c.card_id));
    // The terminal checks both cards against the CRL in every mode (engine::revocation).
    let certs = !revoked(old) && !revoked(new);
    let same_uk = old.update_key == new.update_key;
    in_range
        && certs
        && match mode {
            UpdateMode::Common => same_uk,
            UpdateMode::Public | UpdateMode::Auto => true,
            UpdateMode::Multi => same_uk && old.slots.contains(&new.transfer_key),
            // The 5th embodiment's own path: the update key moves too.
            UpdateMode::Rollover => old.update_key < new.update_key && new.update_key <= old.update_key_limit,
        }
}

fn key_update_pair(slots: &[Slot], keys: &Keyset, mode: UpdateMode) -> Option<(String, String)> {
    for (i, x) in slots.iter().enumerate() {
        for y in &slots[i + 1..] {
            if key_update_fits(&x.card, &y.card, keys, mode) {
                return Some((x.head.clone(), y.head.clone()));
            }
        }
    }
    None
}

/// Two cards for a transfer: sharing a transfer key already, or after a key update (setup).
fn transfer_pair(slots: &[Slot], keys: &Keyset) -> Option<(Vec<Action>, String, String)> {
    let can_send = |s: &Slot| s.card.balance >= TRANSFER;
    for (i, x) in slots.iter().enumerate() {
        for y in &slots[i + 1..] {
            let revoked = |c: &CardPlan| keys.crl.is_revoked(crate::keys::card_serial(&c.card_id));
            // The terminal refuses a transfer with a card on the CRL (engine::revocation).
            if revoked(&x.card) || revoked(&y.card) {
                continue;
            }
            let shared = x.card.transfer_key == y.card.transfer_key;
            let update = !shared
                && [UpdateMode::Common, UpdateMode::Auto].iter().any(|m| key_update_fits(&x.card, &y.card, keys, *m));
            if !(shared || update) {
                continue;
            }
            let (from, to) = if can_send(x) {
                (x, y)
            } else if can_send(y) {
                (y, x)
            } else {
                continue;
            };
            let setup = if shared {
                vec![]
            } else {
                vec![Action::KeyUpdate { a: x.head.clone(), b: y.head.clone(), mode: UpdateMode::Auto }]
            };
            return Some((setup, from.head.clone(), to.head.clone()));
        }
    }
    None
}

/// One sequence per engine step of the plan: the case's earlier engine steps are its setup,
/// its `insert_card` steps give the cards of those heads. `resolve` maps a plan's head or
/// role name to the profile head name. Engine steps a campaign cannot run on their own (an
/// amount computed by earlier steps) are listed as skipped, with the reason.
pub fn from_plan(
    plan: &Plan,
    resolve: impl Fn(&str) -> Option<String>,
) -> Result<(Vec<Sequence>, Vec<String>), TearError> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for case in &plan.cases {
        let mut setup: Vec<Action> = Vec::new();
        let mut cards: Vec<PlanCard> = Vec::new();
        for step in &case.steps {
            if let StepKind::InsertCard { head, card, protocol } = &step.kind {
                let head =
                    resolve(head).ok_or_else(|| TearError::Unfit(format!("{}: no head '{head}'", step.label)))?;
                cards.retain(|c| c.head != head);
                cards.push(PlanCard { head, card: (**card).clone(), protocol: *protocol });
                continue;
            }
            let StepKind::Engine { action, .. } = &step.kind else { continue };
            let vars =
                |n: &str| case.bindings.iter().chain(plan.vars.iter()).find(|(k, _)| k == n).map(|(_, v)| v.clone());
            let action = match concrete(action, &resolve, &vars) {
                Ok(a) => a,
                Err(e) => {
                    skipped.push(format!("{}: {e}", step.label));
                    break;
                }
            };
            out.push(Sequence {
                name: step.label.clone(),
                cards: cards.clone(),
                setup: setup.clone(),
                body: Body::Engine(action.clone()),
            });
            setup.push(action);
        }
    }
    if out.is_empty() {
        return Err(TearError::Unfit(format!("{}: the plan has no engine steps to fault", plan.path.display())));
    }
    Ok((out, skipped))
}

/// An action with profile head names and literal amounts.
fn concrete(
    a: &Action,
    resolve: &impl Fn(&str) -> Option<String>,
    vars: &impl Fn(&str) -> Option<Value>,
) -> Result<Action, String> {
    let h = |n: &str| resolve(n).ok_or_else(|| format!("no head or role '{n}' in the profile"));
    let amt = |x: &Amount| -> Result<Amount, String> {
        match x {
            Amount::Lit(v) => Ok(Amount::Lit(*v)),
            Amount::Var(n) => match vars(n) {
                Some(Value::Int(i)) => {
                    u32::try_from(i).map(Amount::Lit).map_err(|_| format!("'{n}' = {i} is not a u32"))
                }
                _ => Err(format!(
                    "amount '{n}' is not a plan variable or for_each value (tear campaigns run no other steps)"
                )),
            },
        }
    };
    Ok(match a {
        Action::Charge { head, amount, mode, machine } => {
            Action::Charge { head: h(head)?, amount: amt(amount)?, mode: *mode, machine: machine.clone() }
        }
        Action::Pay { head, price, machine } => {
            Action::Pay { head: h(head)?, price: amt(price)?, machine: machine.clone() }
        }
        Action::CardSignedPayment { head, price, unchecked, machine } => Action::CardSignedPayment {
            head: h(head)?,
            price: amt(price)?,
            unchecked: *unchecked,
            machine: machine.clone(),
        },
        Action::KeyUpdate { a, b, mode } => Action::KeyUpdate { a: h(a)?, b: h(b)?, mode: *mode },
        Action::ValueTransfer { from, to, amount } => {
            Action::ValueTransfer { from: h(from)?, to: h(to)?, amount: amt(amount)? }
        }
        Action::Settle { from, to, amount, mode } => {
            Action::Settle { from: h(from)?, to: h(to)?, amount: amt(amount)?, mode: *mode }
        }
    })
}

fn lit(a: &Amount) -> u32 {
    match a {
        Amount::Lit(v) => *v,
        // Sequences hold literal amounts only (`concrete`, `builtin`).
        Amount::Var(_) => 0,
    }
}

fn pos(links: &[Link], head: &str) -> usize {
    links.iter().position(|l| l.head_name() == head).expect("the campaign links every head of the sequence")
}

/// Run one engine step on the links of the sequence's heads.
pub fn run_action(a: &Action, links: &mut [Link], t: &mut Terminal) -> Result<Outcome, EngineError> {
    match a {
        Action::Charge { head, amount, mode, machine } => {
            engine::purse::charge_machine(&mut links[pos(links, head)], t, lit(amount), *mode, machine.as_deref())
        }
        Action::Pay { head, price, machine } => {
            engine::purse::pay_by(&mut links[pos(links, head)], t, lit(price), machine.as_deref())
        }
        Action::CardSignedPayment { head, price, unchecked, machine } => engine::cpay::card_signed_payment_by(
            &mut links[pos(links, head)],
            t,
            lit(price),
            *unchecked,
            machine.as_deref(),
        ),
        Action::KeyUpdate { a, b, mode } => {
            let (x, y) = two(links, pos(links, a), pos(links, b));
            engine::key_update::key_update(x, y, t, *mode)
        }
        Action::ValueTransfer { from, to, amount } => {
            let (x, y) = two(links, pos(links, from), pos(links, to));
            engine::transfer::value_transfer(x, y, t, lit(amount))
        }
        Action::Settle { from, to, amount, mode } => {
            let (x, y) = two(links, pos(links, from), pos(links, to));
            engine::settle::settle(x, y, t, *mode, lit(amount))
        }
    }
}

/// Two distinct elements of a slice, mutably, in the order asked.
pub fn two<'s, 'l>(links: &'s mut [Link<'l>], i: usize, j: usize) -> (&'s mut Link<'l>, &'s mut Link<'l>) {
    assert_ne!(i, j, "a pair step names two different heads");
    if i < j {
        let (l, r) = links.split_at_mut(j);
        (&mut l[i], &mut r[0])
    } else {
        let (l, r) = links.split_at_mut(i);
        (&mut r[0], &mut l[j])
    }
}
