//! `cardbench time`: run a timing spec on one or more head groups (a DUT head and, for
//! two-card flows, its peer), each group in its own thread. Per op: `prepare` (untimed,
//! once), a state snapshot for virtual heads, then warm-up and measured iterations of
//! `setup` (untimed) → limit check (untimed) → op (timed) → baseline (timed). Durations are
//! those the head measured around its transport call (`Wire::duration`, the trace's
//! `duration_ns`), summed over the wire exchanges of one command; an engine op without
//! `time` is the wall time of the engine call.

use super::sample::Sample;
use super::spec::{Limit, Measure, Op, Spec, Step};
use crate::apdu::{Command, Response};
use crate::engine::{self, Outcome, Terminal};
use crate::event::Recorder;
use crate::head::tap::{Hook, Tapped};
use crate::head::{Head, HeadError, Wire};
use crate::keys::Keyset;
use crate::lab::{find_head, LabHead};
use crate::link::Link;
use crate::plan::template::{Value, Vars};
use crate::plan::{Action, Amount};
use crate::spec::codes as ins;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::time::{Duration, Instant};

/// How long and where to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Measured iterations per op (default: the spec's).
    pub iterations: Option<u32>,
    pub warmup: Option<u32>,
    /// Stop an op's measured iterations after this long, even before `iterations`.
    pub seconds: Option<f64>,
    /// Gets every measured sample as it is taken (the TUI's live view); a receiver gone is
    /// ignored: the run goes on and still writes its files.
    pub observer: Option<crossbeam_channel::Sender<Sample>>,
    /// Looked at between iterations: once set, every group ends its op and runs no more
    /// (the samples so far are kept and written).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Leave the CPUs' idle states alone (`--no-pm-qos`) instead of holding them shallow.
    pub no_pm_qos: bool,
}

impl Options {
    fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn observe(&self, s: &Sample) {
        if let Some(o) = &self.observer {
            let _ = o.send(s.clone());
        }
    }
}

/// Lab head indices of one group: the card being timed and its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub dut: usize,
    pub peer: Option<usize>,
}

/// Bind the spec's symbolic heads to lab heads: `--head` (DUT heads, one group each) and
/// `--peer` (one per `--head`, in order), else the spec's `[heads]` defaults.
pub fn bind(spec: &Spec, heads: &[LabHead], duts: &[String], peers: &[String]) -> anyhow::Result<Vec<Group>> {
    let find = |n: &str| find_head(heads, n);
    let uses_peer = spec.used_heads().contains(&"peer");
    let dut_names: Vec<String> = if duts.is_empty() {
        match spec.default_head("dut") {
            Some((n, at)) => {
                find(n).ok_or_else(|| at.err(format!("dut '{n}' is not a head name or role in the profile")))?;
                vec![n.to_string()]
            }
            None => anyhow::bail!("{}: no [heads] dut in the spec: give --head", spec.path.display()),
        }
    } else {
        duts.to_vec()
    };
    let peer_names: Vec<Option<String>> = if !uses_peer && peers.is_empty() {
        vec![None; dut_names.len()]
    } else if !peers.is_empty() {
        if peers.len() != dut_names.len() {
            anyhow::bail!("{} --peer for {} --head: give one peer per timed head", peers.len(), dut_names.len());
        }
        peers.iter().cloned().map(Some).collect()
    } else {
        match spec.default_head("peer") {
            Some((n, at)) if dut_names.len() == 1 => {
                find(n).ok_or_else(|| at.err(format!("peer '{n}' is not a head name or role in the profile")))?;
                vec![Some(n.to_string())]
            }
            Some(_) => anyhow::bail!("the spec's two-card ops need one --peer per --head ({} heads)", dut_names.len()),
            None => anyhow::bail!("{}: the spec's ops use a peer: give --peer or [heads] peer", spec.path.display()),
        }
    };
    let mut groups = Vec::new();
    let mut used: Vec<usize> = Vec::new();
    for (d, p) in dut_names.iter().zip(peer_names) {
        let dut = find(d).ok_or_else(|| anyhow::anyhow!("--head {d}: no head or role '{d}' in the profile"))?;
        let peer = match p {
            Some(p) => {
                Some(find(&p).ok_or_else(|| anyhow::anyhow!("--peer {p}: no head or role '{p}' in the profile"))?)
            }
            None => None,
        };
        for i in std::iter::once(dut).chain(peer) {
            if used.contains(&i) {
                anyhow::bail!(
                    "head {} is named twice: every timed head and peer must be a different head",
                    heads[i].name
                );
            }
            used.push(i);
        }
        groups.push(Group { dut, peer });
    }
    Ok(groups)
}

/// What one group's run produced.
#[derive(Debug, Default)]
pub struct GroupResult {
    pub head: String,
    pub card_id: String,
    pub atr: String,
    pub reader: String,
    pub driver: String,
    pub protocol: String,
    /// Whether the head held the reader for this process alone (PC/SC transaction).
    pub exclusive: bool,
    pub samples: Vec<Sample>,
    /// Ops that stopped before their iterations were done for a reason the spec foresaw (a
    /// limit): said, not a failure.
    pub notes: Vec<String>,
    /// Ops that could not run or stopped on an unexpected answer.
    pub failures: Vec<String>,
}

/// Why an op stopped early.
enum Stop {
    /// The spec's limit: the card can give no more iterations.
    Limit(String),
    /// The card answered what the spec did not expect, or an engine did not succeed.
    Fail(String),
    /// The head cannot be used any more (card gone, in doubt): the group ends.
    Head(String),
}

/// Wire durations of every exchange through a head, in order: (CLA, INS, nanoseconds).
#[derive(Default)]
struct Stopwatch {
    log: Vec<(u8, u8, u64)>,
}

impl Hook for Stopwatch {
    fn transmit(&mut self, inner: &mut dyn Head, apdu: &[u8]) -> Result<Wire, HeadError> {
        let r = inner.transmit(apdu);
        if let (Ok(w), [cla, ins, ..]) = (&r, apdu) {
            self.log.push((*cla, *ins, w.duration.as_nanos() as u64));
        }
        r
    }
}

struct Bench<'a, 'k> {
    /// `[dut, peer]` seen through stopwatches.
    heads: Vec<Tapped<'a, Stopwatch>>,
    card_ids: Vec<String>,
    rec: &'a Recorder,
    t: Terminal<'k>,
}

/// A link labelled for the trace: test step = op, step = phase, repeat = iteration.
fn labelled<'h>(h: &'h mut dyn Head, rec: &Recorder, card_id: &str, op: &str, phase: &str, k: u32) -> Link<'h> {
    let mut l = Link::new(h, rec);
    l.card_id = card_id.to_string();
    l.test_step = op.to_string();
    l.step = phase.to_string();
    l.repeat = k;
    l
}

fn sym(h: &str) -> usize {
    usize::from(h == "peer")
}

impl Bench<'_, '_> {
    fn link(&mut self, i: usize, op: &str, phase: &str, k: u32) -> Link<'_> {
        labelled(&mut self.heads[i], self.rec, &self.card_ids[i], op, phase, k)
    }

    /// One command, with the sum of its wire exchanges' durations.
    fn apdu(&mut self, i: usize, cmd: &Command, op: &str, phase: &str, k: u32) -> Result<(Response, u64), Stop> {
        self.heads[i].hook.log.clear();
        let name = self.heads[i].info().name.clone();
        let r = self.link(i, op, phase, k).exec(phase, cmd).map_err(|e| head_stop(&name, e))?;
        let ns = self.heads[i].hook.log.iter().map(|(_, _, d)| d).sum();
        Ok((r, ns))
    }

    fn engine(&mut self, a: &Action, op: &str, phase: &str, k: u32) -> Result<(Outcome, Duration), Stop> {
        for h in &mut self.heads {
            h.hook.log.clear();
        }
        let amount = |a: &Amount| match a {
            Amount::Lit(v) => *v,
            Amount::Var(_) => unreachable!("timing specs take literal amounts"),
        };
        let (ids, rec) = (&self.card_ids, self.rec);
        let t = &mut self.t;
        let start = Instant::now();
        let r = match a {
            Action::Charge { head, amount: x, mode, .. } => engine::purse::charge_with(
                &mut labelled(&mut self.heads[sym(head)], rec, &ids[sym(head)], op, phase, k),
                t,
                amount(x),
                *mode,
            ),
            Action::Pay { head, price, .. } => engine::purse::pay(
                &mut labelled(&mut self.heads[sym(head)], rec, &ids[sym(head)], op, phase, k),
                t,
                amount(price),
            ),
            Action::CardSignedPayment { head, price, unchecked, .. } => engine::cpay::card_signed_payment_with(
                &mut labelled(&mut self.heads[sym(head)], rec, &ids[sym(head)], op, phase, k),
                t,
                amount(price),
                *unchecked,
            ),
            Action::KeyUpdate { a: x, b: y, mode } => {
                let (hx, hy) = pair(&mut self.heads, sym(x), sym(y));
                engine::key_update::key_update(
                    &mut labelled(hx, rec, &ids[sym(x)], op, phase, k),
                    &mut labelled(hy, rec, &ids[sym(y)], op, phase, k),
                    t,
                    *mode,
                )
            }
            Action::ValueTransfer { from, to, amount: x } => {
                let (hx, hy) = pair(&mut self.heads, sym(from), sym(to));
                engine::transfer::value_transfer(
                    &mut labelled(hx, rec, &ids[sym(from)], op, phase, k),
                    &mut labelled(hy, rec, &ids[sym(to)], op, phase, k),
                    t,
                    amount(x),
                )
            }
            Action::Settle { from, to, amount: x, mode } => {
                let (hx, hy) = pair(&mut self.heads, sym(from), sym(to));
                engine::settle::settle(
                    &mut labelled(hx, rec, &ids[sym(from)], op, phase, k),
                    &mut labelled(hy, rec, &ids[sym(to)], op, phase, k),
                    t,
                    *mode,
                    amount(x),
                )
            }
        };
        let wall = start.elapsed();
        match r {
            Ok(o) => Ok((o, wall)),
            Err(engine::EngineError::Head { head, source }) => Err(head_stop(&head, source)),
            // Timing specs name no machine: the keyset's defaults always exist.
            Err(e @ engine::EngineError::Machine(_)) => Err(Stop::Fail(format!("op {op}: {e}"))),
            // A stale CRL stops every later op the same way: end the run like a head failure.
            Err(e @ engine::EngineError::StaleCrl { .. }) => Err(Stop::Head(e.to_string())),
        }
    }

    /// An untimed step; captures go into `vars`.
    fn step(&mut self, s: &Step, vars: &mut Vars, op: &str, phase: &str, k: u32) -> Result<(), Stop> {
        match s {
            Step::Apdu { head, command, sw, capture } => {
                let cmd = render(command, vars, op)?;
                let (r, _) = self.apdu(sym(head), &cmd, op, phase, k)?;
                if !sw.matches(r.sw) {
                    return Err(Stop::Fail(format!(
                        "{phase}: {} answered SW {:04X} ({}), expected {}",
                        crate::cmds::name(cmd.cla, cmd.ins),
                        r.sw,
                        crate::sw::describe(r.sw),
                        sw.describe()
                    )));
                }
                for (name, c) in capture {
                    let v = c
                        .take(&r.data, r.sw)
                        .ok_or_else(|| Stop::Fail(format!("{phase}: capture '{name}': answer too short")))?;
                    vars.insert(name.clone(), v);
                }
                Ok(())
            }
            Step::Select { head, applet } => {
                let aid = match applet {
                    crate::spec::Applet::Purse => ins::AID_PURSE,
                    crate::spec::Applet::Cpay => ins::AID_CPAY,
                    crate::spec::Applet::Xfer => ins::AID_XFER,
                };
                let (r, _) = self.apdu(sym(head), &crate::cmds::select(&aid), op, phase, k)?;
                if !r.is_ok() {
                    return Err(Stop::Fail(format!("{phase}: SELECT answered SW {:04X}", r.sw)));
                }
                Ok(())
            }
            Step::Engine(a) => {
                let (o, _) = self.engine(a, op, phase, k)?;
                // Untimed steps bring the cards to a state: a flow with nothing to do
                // (`skipped`, e.g. keys already equal) has done its job.
                match o {
                    Outcome::Success(_) | Outcome::Skipped(_) => Ok(()),
                    o => {
                        Err(Stop::Fail(format!("{phase}: engine {} ended {}: {}", a.engine(), o.verdict(), o.detail())))
                    }
                }
            }
        }
    }

    /// The limit's count of iterations left.
    fn left(&mut self, l: &Limit, vars: &Vars, op: &str, k: u32) -> Result<u64, Stop> {
        let cmd = render(&l.command, vars, op)?;
        let (r, _) = self.apdu(sym(&l.head), &cmd, op, "limit", k)?;
        if !r.is_ok() {
            return Err(Stop::Fail(format!("limit: reading the {} answered SW {:04X}", l.what, r.sw)));
        }
        match l.left.take(&r.data, r.sw) {
            Some(Value::Int(v)) => Ok(v as u64),
            _ => Err(Stop::Fail(format!("limit: the {} answer is too short: {}", l.what, hex::encode_upper(&r.data)))),
        }
    }

    /// The timed part of one iteration.
    fn measure(&mut self, m: &Measure, vars: &Vars, op: &str, k: u32) -> Result<u64, Stop> {
        match m {
            Measure::Apdu { head, command, sw } => {
                let cmd = render(command, vars, op)?;
                let (r, ns) = self.apdu(sym(head), &cmd, op, "op", k)?;
                if !sw.matches(r.sw) {
                    return Err(Stop::Fail(format!(
                        "{} answered SW {:04X} ({}), expected {}",
                        crate::cmds::name(cmd.cla, cmd.ins),
                        r.sw,
                        crate::sw::describe(r.sw),
                        sw.describe()
                    )));
                }
                Ok(ns)
            }
            Measure::Engine { action, time } => {
                let (o, wall) = self.engine(action, op, "op", k)?;
                if !matches!(o, Outcome::Success(_)) {
                    return Err(Stop::Fail(format!(
                        "engine {} ended {}: {}",
                        action.engine(),
                        o.verdict(),
                        o.detail()
                    )));
                }
                match time {
                    None => Ok(wall.as_nanos() as u64),
                    Some((head, name)) => {
                        let ns = command_time(&self.heads[sym(head)].hook.log, name);
                        ns.ok_or_else(|| {
                            Stop::Fail(format!("engine {} sent no {name} to the {head} card", action.engine()))
                        })
                    }
                }
            }
        }
    }
}

/// The wire time of the exchanges of command `name` in a log: the command and the GET
/// RESPONSE rounds that follow it (they deliver its answer).
fn command_time(log: &[(u8, u8, u64)], name: &str) -> Option<u64> {
    let mut total = None;
    let mut inside = false;
    for (cla, ins, ns) in log {
        let get_response = *cla == 0x00 && *ins == 0xC0;
        if get_response && inside {
            total = Some(total.unwrap_or(0) + ns);
        } else {
            inside = crate::cmds::name(*cla, *ins) == name;
            if inside {
                total = Some(total.unwrap_or(0) + ns);
            }
        }
    }
    total
}

fn pair<'s, 'a>(
    v: &'s mut [Tapped<'a, Stopwatch>],
    i: usize,
    j: usize,
) -> (&'s mut Tapped<'a, Stopwatch>, &'s mut Tapped<'a, Stopwatch>) {
    let (lo, hi) = v.split_at_mut(1);
    if i == 0 && j == 1 {
        (&mut lo[0], &mut hi[0])
    } else {
        (&mut hi[0], &mut lo[0])
    }
}

fn head_stop(head: &str, e: HeadError) -> Stop {
    Stop::Head(format!("head {head}: {e}"))
}

fn render(t: &crate::plan::template::Template, vars: &Vars, op: &str) -> Result<Command, Stop> {
    let bytes = t.render_bytes(vars).map_err(|e| Stop::Fail(format!("op {op}: {e}")))?;
    Command::parse(&bytes).map_err(|e| Stop::Fail(format!("op {op}: not an APDU: {e}")))
}

/// Fresh per-iteration variables: the index and terminal randoms.
fn iteration_vars(vars: &mut Vars, k: u32, rng: &mut ChaCha20Rng) {
    vars.insert("i".into(), Value::Int(i64::from(k)));
    for n in [8usize, 16, 32] {
        let mut b = vec![0u8; n];
        rng.fill_bytes(&mut b);
        vars.insert(format!("rnd{n}"), Value::Hex(hex::encode_upper(b)));
    }
}

/// Everything one group's thread needs.
pub struct GroupRun<'a> {
    pub spec: &'a Spec,
    pub opts: &'a Options,
    pub rec: &'a Recorder,
    pub keys: &'a Keyset,
    pub now: u32,
    /// Seed of this group's terminal randoms (engine randoms and `${rndN}`).
    pub seed: [u8; 32],
}

impl GroupRun<'_> {
    /// Run every op on `dut` (and `peer`). Never panics on a card's answer: what goes wrong
    /// ends the op (or, for a head that is gone, the group) with a message.
    pub fn run(&self, dut: &mut LabHead, peer: Option<&mut LabHead>) -> GroupResult {
        let mut res = GroupResult { head: dut.name.clone(), ..GroupResult::default() };
        let info = dut.head.info().clone();
        res.reader = info.reader.clone();
        res.driver = info.driver.to_string();
        res.protocol = dut
            .head
            .as_virtual()
            .and_then(|v| v.card().map(|c| c.protocol().name().to_string()))
            .unwrap_or_else(|| "as negotiated by the reader".into());
        let mut heads = vec![Tapped::borrowed(dut.head.as_mut(), Stopwatch::default())];
        if let Some(p) = peer {
            heads.push(Tapped::borrowed(p.head.as_mut(), Stopwatch::default()));
        }
        let mut rng = ChaCha20Rng::from_seed(self.seed);
        let mut t_seed = [0u8; 32];
        rng.fill_bytes(&mut t_seed);
        let mut b = Bench {
            card_ids: vec![String::new(); heads.len()],
            heads,
            rec: self.rec,
            t: Terminal::new(self.keys, self.now, ChaCha20Rng::from_seed(t_seed)),
        };
        // Power, identify, and hold each reader for this process alone.
        for i in 0..b.heads.len() {
            let name = b.heads[i].info().name.clone();
            let ready = (|| -> Result<(), HeadError> {
                if b.heads[i].atr().is_none() {
                    b.link(i, "timing", "power", 0).power_on()?;
                }
                b.card_ids[i] = crate::runner::identify(&mut b.heads[i], self.rec)?;
                let held = b.heads[i].exclusive(true)?;
                if i == 0 {
                    res.exclusive = held;
                }
                Ok(())
            })();
            if let Err(e) = ready {
                res.failures.push(format!("head {name}: cannot start: {e}"));
                return res;
            }
        }
        res.card_id = b.card_ids[0].clone();
        res.atr = b.heads[0].atr().map(hex::encode_upper).unwrap_or_default();
        let mut vars = crate::runner::builtins(self.keys, self.now);
        vars.extend(self.spec.vars.iter().cloned());
        for op in &self.spec.ops {
            if self.opts.stopped() {
                res.notes.push(format!("stopped by the operator before op {} on head {}", op.name, res.head));
                break;
            }
            match self.op(&mut b, op, vars.clone(), &mut rng, &mut res) {
                Ok(()) => {}
                Err(Stop::Limit(m)) => res.notes.push(format!("op {} on head {}: {m}", op.name, res.head)),
                Err(Stop::Fail(m)) => res.failures.push(format!("op {} on head {}: {m}", op.name, res.head)),
                Err(Stop::Head(m)) => {
                    res.failures
                        .push(format!("op {} on head {}: {m}; the remaining ops were not run", op.name, res.head));
                    break;
                }
            }
        }
        for h in &mut b.heads {
            // Ending the lock is best effort: the run is over either way, and dropping the
            // connection (the process ending) ends it too.
            let _ = h.exclusive(false);
        }
        res
    }

    fn op(
        &self,
        b: &mut Bench,
        op: &Op,
        mut vars: Vars,
        rng: &mut ChaCha20Rng,
        res: &mut GroupResult,
    ) -> Result<(), Stop> {
        let name = op.name.as_str();
        if op.heads().contains("peer") && b.heads.len() < 2 {
            return Err(Stop::Fail("needs a peer head (--peer or [heads] peer)".into()));
        }
        let used: Vec<usize> = op.heads().iter().map(|h| sym(h)).collect();
        let all_virtual = used.iter().all(|&i| b.heads[i].as_virtual().is_some());
        let restore = op.restore && all_virtual;
        if op.restore && !all_virtual && op.limit.is_none() {
            return Err(Stop::Fail(
                "needs a virtual-card state restore between iterations (restore = true, no limit), and a head of this \
                 op is not virtual; a real card cannot be put back"
                    .into(),
            ));
        }
        let (n, warmup) =
            (self.opts.iterations.unwrap_or(self.spec.iterations), self.opts.warmup.unwrap_or(self.spec.warmup));
        iteration_vars(&mut vars, 0, rng);
        for s in &op.prepare {
            b.step(s, &mut vars, name, "prepare", 0)?;
        }
        // The virtual cards' NVM, put back after each iteration (the head's card, opaque here).
        let snapshot: Vec<(usize, _)> = if restore {
            used.iter()
                .filter_map(|&i| b.heads[i].as_virtual().and_then(|v| v.card()).map(|c| (i, c.nvm().clone())))
                .collect()
        } else {
            Vec::new()
        };
        let put_back = |b: &mut Bench| {
            for (i, nvm) in &snapshot {
                if let Some(c) = b.heads[*i].as_virtual().and_then(|v| v.card_mut()) {
                    *c.nvm_mut() = nvm.clone();
                }
            }
        };
        let timed_head = sym(op.timed_head());
        let (head, card_id) = (b.heads[timed_head].info().name.clone(), b.card_ids[timed_head].clone());
        let atr = b.heads[timed_head].atr().map(hex::encode_upper).unwrap_or_default();
        let deadline = self.opts.seconds.map(Duration::from_secs_f64);
        let mut started: Option<Instant> = None;
        let mut measured = 0u32;
        let total = warmup + n;
        let mut announced = false;
        let result = (|| -> Result<(), Stop> {
            for k in 0..total {
                if k == warmup {
                    started = Some(Instant::now());
                }
                if let (Some(s), Some(d)) = (started, deadline) {
                    if s.elapsed() >= d {
                        break;
                    }
                }
                if self.opts.stopped() {
                    res.notes
                        .push(format!("op {name} on head {head}: stopped by the operator after {measured} of {n}"));
                    break;
                }
                if restore {
                    put_back(b);
                }
                iteration_vars(&mut vars, k, rng);
                for s in &op.setup {
                    b.step(s, &mut vars, name, "setup", k)?;
                }
                if let (Some(l), false) = (&op.limit, restore) {
                    let left = b.left(l, &vars, name, k)?;
                    if !announced && left < u64::from(total - k) {
                        // Said once, up front: how many the card can give.
                        res.notes.push(format!(
                            "op {name} on head {head}: card {card_id} can give {left} more iterations ({} = {left}), \
                             {} asked",
                            l.what,
                            total - k
                        ));
                    }
                    announced = true;
                    if left == 0 {
                        return Err(Stop::Limit(format!(
                            "stopped after {measured} of {n} measured iterations: the {} is at its limit (0), the card \
                             cannot give more and its state cannot be restored; the samples so far are kept",
                            l.what
                        )));
                    }
                }
                let op_ns = b.measure(&op.measure, &vars, name, k)?;
                let base_ns = match &op.baseline {
                    None => None,
                    Some((t, sw)) => {
                        let cmd = render(t, &vars, name)?;
                        let (r, ns) = b.apdu(timed_head, &cmd, name, "baseline", k)?;
                        if !sw.matches(r.sw) {
                            return Err(Stop::Fail(format!(
                                "baseline answered SW {:04X} ({}), expected {}",
                                r.sw,
                                crate::sw::describe(r.sw),
                                sw.describe()
                            )));
                        }
                        Some(ns)
                    }
                };
                if k >= warmup {
                    let it = k - warmup;
                    let sample = |duration_ns, baseline| Sample {
                        op: name.to_string(),
                        iteration: it,
                        head: head.clone(),
                        card_id: card_id.clone(),
                        atr: atr.clone(),
                        duration_ns,
                        baseline,
                    };
                    res.samples.push(sample(op_ns, false));
                    self.opts.observe(&sample(op_ns, false));
                    if let Some(ns) = base_ns {
                        res.samples.push(sample(ns, true));
                        self.opts.observe(&sample(ns, true));
                    }
                    measured += 1;
                }
            }
            Ok(())
        })();
        if restore {
            put_back(b);
        }
        result
    }
}

/// A whole `cardbench time` run's results.
pub struct RunReport {
    pub groups: Vec<GroupResult>,
    pub samples: Vec<Sample>,
    pub jitter_before: super::jitter::TimerJitter,
    pub jitter_after: super::jitter::TimerJitter,
    /// CPU idle states during the run: held shallow by PM QoS, or why not.
    pub pm_qos: String,
    /// Errors of the trace writer (the run's trace is incomplete).
    pub sink_errors: Vec<String>,
}

/// Host timer reads before and after the run (a few milliseconds each).
const JITTER_READS: u32 = 200_000;

/// Run `spec` on `groups` of `lab`, each group in its own thread, tracing to
/// `<dir>/trace.csv`; write `samples.csv` and `run.json`.
#[allow(clippy::too_many_arguments)]
pub fn execute(
    spec: &Spec,
    lab: &mut crate::lab::Lab,
    groups: &[Group],
    opts: &Options,
    dir: &std::path::Path,
    run_id: &str,
    profile: &std::path::Path,
) -> anyhow::Result<RunReport> {
    use anyhow::Context;
    let trace_path = dir.join("trace.csv");
    let trace = crate::trace::TraceCsv::create(&trace_path, run_id, &spec.id)
        .with_context(|| format!("cannot create {}", trace_path.display()))?;
    let (rec, rx) = Recorder::new(&spec.id);
    let sinks = crate::sinks::spawn(rx, vec![Box::new(trace)]);
    let now = lab.clock.unwrap_or_else(|| chrono::Utc::now().timestamp() as u32);
    let rng = crate::lab::terminal_rng(&lab.heads, || {
        use sha2::{Digest, Sha256};
        Sha256::new().chain_update(b"cardbench timing").chain_update(&spec.id).finalize().into()
    });
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let idle = if opts.no_pm_qos { super::qos::IdleLatency::off() } else { super::qos::IdleLatency::hold() };
    let jitter_before = super::jitter::measure(JITTER_READS);
    // Split the lab's heads into the groups' disjoint (dut, peer) borrows.
    let mut slots: Vec<Option<&mut LabHead>> = lab.heads.iter_mut().map(Some).collect();
    let mut work = Vec::new();
    for (n, g) in groups.iter().enumerate() {
        let dut = slots[g.dut].take().context("a head is in two groups")?;
        let peer = match g.peer {
            Some(p) => Some(slots[p].take().context("a head is in two groups")?),
            None => None,
        };
        let mut seed = rng.seed();
        seed[0] ^= n as u8;
        seed[1] ^= (n >> 8) as u8;
        work.push((dut, peer, seed));
    }
    let keys = &lab.keyset;
    let results: Vec<GroupResult> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|(dut, peer, seed)| {
                let g = GroupRun { spec, opts, rec: &rec, keys, now, seed };
                s.spawn(move || g.run(dut, peer))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| GroupResult {
                    failures: vec!["a timing thread panicked".into()],
                    ..GroupResult::default()
                })
            })
            .collect()
    });
    let jitter_after = super::jitter::measure(JITTER_READS);
    let pm_qos = idle.state.clone();
    drop(idle);
    drop(rec);
    let sink_errors = sinks.join().unwrap_or_else(|_| vec!["sink thread panicked".into()]);
    let samples: Vec<Sample> = results.iter().flat_map(|g| g.samples.iter().cloned()).collect();
    let samples_path = dir.join("samples.csv");
    super::sample::write_csv(&samples_path, &samples)
        .with_context(|| format!("cannot write {}", samples_path.display()))?;
    let report = RunReport { groups: results, samples, jitter_before, jitter_after, pm_qos, sink_errors };
    write_header(dir, run_id, &started, spec, profile, &rng, &report)
        .with_context(|| format!("cannot write {}", dir.join("run.json").display()))?;
    Ok(report)
}

fn sha256_file(p: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    std::fs::read(p).map(|b| hex::encode(Sha256::digest(b))).unwrap_or_else(|e| format!("unreadable: {e}"))
}

fn host() -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    serde_json::json!({
        "name": read("/proc/sys/kernel/hostname"),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpu": cpu,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })
}

fn write_header(
    dir: &std::path::Path,
    run_id: &str,
    started: &str,
    spec: &Spec,
    profile: &std::path::Path,
    rng: &crate::lab::TerminalRng,
    r: &RunReport,
) -> std::io::Result<()> {
    let heads: Vec<serde_json::Value> = r
        .groups
        .iter()
        .map(|g| {
            serde_json::json!({
                "head": g.head, "driver": g.driver, "reader": g.reader, "card_id": g.card_id, "atr": g.atr,
                "protocol": g.protocol, "exclusive": g.exclusive, "notes": g.notes, "failures": g.failures,
            })
        })
        .collect();
    let header = serde_json::json!({
        "run_id": run_id,
        "kind": "timing",
        "tool": concat!("cardbench ", env!("CARGO_PKG_VERSION")),
        "git_describe": crate::batch::header::GIT_DESCRIBE,
        "started": started,
        "host": host(),
        "spec": spec.id,
        "spec_version": spec.version,
        "spec_path": spec.path.display().to_string(),
        "spec_sha256": sha256_file(&spec.path),
        "profile": profile.display().to_string(),
        "profile_sha256": sha256_file(profile),
        "terminal_rng": rng.describe(),
        "heads": heads,
        "timer_jitter": { "before": r.jitter_before, "after": r.jitter_after },
        "pm_qos": r.pm_qos,
    });
    std::fs::write(dir.join("run.json"), serde_json::to_string_pretty(&header)? + "\n")
}

/// Statistics and reports from the samples (`timing::report::finish_run`: timing.json,
/// timing.csv, timing.svg and the console table with text histograms), with the host timer
/// jitter measured beside the run in timing.json.
pub fn outputs(
    dir: &std::path::Path,
    run_id: &str,
    r: &RunReport,
    print: &mut dyn FnMut(&str),
) -> Result<super::report::Outputs, super::report::ReportError> {
    let mut extra = serde_json::Map::new();
    extra.insert("timer_jitter".into(), serde_json::json!({ "before": r.jitter_before, "after": r.jitter_after }));
    extra.insert("pm_qos".into(), serde_json::json!(r.pm_qos));
    let (out, _stats, text) = super::report::finish_run(dir, run_id, &r.samples, extra)?;
    for line in text.lines() {
        print(line);
    }
    Ok(out)
}
