//! Batch certification: one worker per DUT head, in parallel; a feeder hands each worker the
//! next card of the batch; every card gets the whole plan, its own trace and a verdict; the
//! journal makes a killed batch resumable with no card lost and none certified twice.

pub mod forward;
pub mod header;
pub mod interrupt;
pub mod journal;
pub mod lock;
pub mod operator;
pub mod registry;
pub mod reports;

use crate::card::defects::Defects;
use crate::event::{Event, Recorder, RowKind};
use crate::head::virtual_head::VirtualHead;
use crate::issuance::CardPlan;
use crate::lab::{card_defects, card_plan, Lab, LabHead};
use crate::link::Link;
use crate::plan::Plan;
use crate::profile::{ConfigError, Loaded};
use crate::report::{BatchResult, CardResult, CaseStatus, Verdict};
use crate::sinks::{self, Sink};
use crate::store::feed::Feed;
use crate::trace::TraceCsv;
use anyhow::{bail, Context, Result};
use journal::BatchMeta;
use lock::BatchLock;
use operator::HeadState;
use registry::{Claim, Registry};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// How long a worker on a real reader waits for the operator to insert or take out a card,
/// unless the profile's `[batch] presence_timeout_s` says otherwise.
const PRESENCE_TIMEOUT_S: u64 = 600;

/// Everything a worker needs to make the next virtual card.
struct Factory {
    dut: CardPlan,
    dut_protocol: crate::spec::Protocol,
    dut_defects: Defects,
    /// The DUT template's allowed-variant options (ATR, randoms), given to every DUT card.
    dut_variant: crate::lab::CardVariant,
    peer: CardPlan,
    peer_protocol: crate::spec::Protocol,
    prefix: [u8; 4],
    rules: Vec<(u64, u64, Defects)>,
}

impl Factory {
    fn from_profile(l: &Loaded) -> Result<Factory, ConfigError> {
        let p = &l.profile;
        let b = p.batch.as_ref().ok_or_else(|| ConfigError::whole_file(&l.path, "profile has no [batch] section"))?;
        let bs = b.get_ref();
        let find = |name: &toml::Spanned<String>| {
            p.cards
                .iter()
                .find(|c| c.get_ref().name == *name.get_ref())
                .ok_or_else(|| l.err(name.span(), format!("no [[card]] named '{}'", name.get_ref())))
        };
        let (dut_spec, peer_spec) = (find(&bs.dut_card)?, find(&bs.peer_card)?);
        let prefix: [u8; 4] = hex::decode(bs.id_prefix.get_ref())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| l.err(bs.id_prefix.span(), "id_prefix must be 8 hex digits"))?;
        let mut rules = Vec::new();
        for r in &bs.defects {
            let d = r.get_ref();
            if d.every == 0 || d.offset >= d.every {
                return Err(l.err(r.span(), "a defect rule needs every > 0 and offset < every"));
            }
            let set = crate::lab::defects_in(l, r.span(), &d.defects)?;
            rules.push((d.every, d.offset, set));
        }
        Ok(Factory {
            dut: card_plan(l, dut_spec)?,
            dut_protocol: dut_spec.get_ref().protocol,
            dut_defects: card_defects(l, dut_spec)?,
            dut_variant: crate::lab::card_variant(l, dut_spec)?,
            peer: card_plan(l, peer_spec)?,
            peer_protocol: peer_spec.get_ref().protocol,
            prefix,
            rules,
        })
    }

    fn card_id(&self, index: u64) -> [u8; 8] {
        let mut id = [0u8; 8];
        id[..4].copy_from_slice(&self.prefix);
        id[4..].copy_from_slice(&(index as u32).to_be_bytes());
        id
    }

    fn defects(&self, index: u64) -> Defects {
        let hit: Vec<&Defects> =
            self.rules.iter().filter(|(every, offset, _)| index % every == *offset).map(|(_, _, d)| d).collect();
        crate::card::defects::Defect::ALL
            .iter()
            .copied()
            .filter(|d| self.dut_defects.has(*d) || hit.iter().any(|s| s.has(*d)))
            .collect()
    }
}

pub struct BatchOptions {
    pub batch_id: String,
    pub count: Option<u64>,
    pub logs: PathBuf,
    pub quiet: bool,
    /// Where a front end (the TUI) watches the batch; the batch never waits for it.
    pub observer: Option<crossbeam_channel::Sender<BatchEvent>>,
    /// Pause / resume / stop from a front end.
    pub control: std::sync::Arc<Control>,
    /// Resume even though the plan, profile or keyset changed since batch.json was written
    /// (the changes are recorded in batch.json and the reports).
    pub force_changed: bool,
    /// Certify again a card already certified in the batch (recorded); without it such a
    /// card is refused.
    pub recertify: bool,
    /// Ring the terminal bell with each operator prompt (headless).
    pub bell: bool,
    /// The results store the batch is also written to (docs/results-store.md), opened when
    /// the batch folder is made; a shared one (PostgreSQL) also hands out the cards among
    /// stations.
    pub store: crate::store::Pending,
}

/// What a batch reports to an observer.
#[derive(Debug, Clone)]
pub enum BatchEvent {
    Started {
        total: u64,
        done: u64,
        heads: Vec<String>,
        /// The cards a resumed batch had already certified, from its journal.
        earlier: Vec<CardResult>,
    },
    CardInserted {
        head: String,
        index: u64,
        card_id: String,
        /// ATR of the card as the head reports it after power-on (empty if unknown).
        atr: Vec<u8>,
    },
    /// An event of the run on one head: exchanges, cases started and ended, head errors.
    Run {
        head: String,
        card_id: String,
        event: Event,
    },
    /// Exchanges of the run on one head that were not handed over one by one (`forward`).
    Skipped {
        head: String,
        card_id: String,
        skipped: forward::Skipped,
    },
    CardDone(Box<CardResult>),
    /// What a DUT head is doing and what the operator must do for it (`operator`).
    Head {
        head: String,
        /// The reader's full name (real heads), the head's name for virtual ones.
        reader: String,
        /// Whether an operator inserts and takes out the cards (PC/SC, PN532).
        real: bool,
        state: HeadState,
    },
    /// Something the operator should know that does not stop the batch: a journal line cut
    /// by a kill and dropped, a repeated journal line counted once, a head whose worker
    /// stopped waiting for a card.
    Notice(String),
    Finished {
        stopped: bool,
    },
}

/// Flags a front end sets; workers look at them between cards, so a stop always leaves
/// every finished card journaled and the batch resumable.
#[derive(Debug, Default)]
pub struct Control {
    pub paused: std::sync::atomic::AtomicBool,
    pub stop: std::sync::atomic::AtomicBool,
    /// Held while a card's line is appended to the journal and fsynced: an abort (a second
    /// SIGINT) takes it before the process exits, so it never cuts a line.
    pub journal_gate: Mutex<()>,
}

impl Control {
    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `Head::wait_for_card` that gives up when the operator stops the batch or `give_up`
    /// says the wait is pointless (`Ok(None)`), so neither waits out a presence timeout.
    fn wait_for_card(
        &self,
        head: &mut dyn crate::head::Head,
        present: bool,
        timeout: std::time::Duration,
        give_up: &dyn Fn() -> bool,
    ) -> Result<Option<bool>, crate::head::HeadError> {
        const SLICE: std::time::Duration = std::time::Duration::from_millis(200);
        let deadline = Instant::now() + timeout;
        loop {
            if self.stopped() || give_up() {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if head.wait_for_card(present, left.min(SLICE))? {
                return Ok(Some(true));
            }
            if left <= SLICE {
                return Ok(Some(false));
            }
        }
    }

    fn wait_while_paused(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        while self.paused.load(Relaxed) && !self.stop.load(Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        !self.stop.load(Relaxed)
    }
}

/// What a run of `cardbench batch` did: the whole batch (earlier runs included) and where.
pub struct BatchOutcome {
    pub result: BatchResult,
    pub dir: PathBuf,
    pub certified_now: usize,
    /// Card indices of the batch that have no verdict yet (an operator stop, or every worker
    /// gave up waiting for a card): the batch is incomplete, and resumable.
    pub missing: Vec<u64>,
    /// Why workers stopped before the queue was empty, one line per head.
    pub stalled: Vec<String>,
    /// `head E: 3 pass, 1 fail, 0 aborted` for each head that certified a card in this run.
    pub per_head: Vec<String>,
}

/// What certifying the card in a head gave.
enum Certified {
    Card {
        result: CardResult,
        /// 1 for a card's first certification in the batch, more with `--recertify`.
        certification: u32,
        /// The verdict a re-certification replaces.
        previous: Option<&'static str>,
        atr: Vec<u8>,
    },
    /// The card is already certified in the batch (or on another head): not certified.
    Refused { card_id: String, why: String },
}

/// What a worker tells the collector.
enum WorkerMsg {
    Card(Result<Certified>),
    /// The worker's head waited the whole presence timeout; the worker stops, the batch
    /// goes on with the other heads.
    Stalled(String),
}

/// A head error that stopped a worker: with the reader and what to try when the reader or
/// its service is out of use.
fn head_error(h: &LabHead, e: crate::head::HeadError) -> anyhow::Error {
    if crate::head::usable::infrastructure(&e) {
        crate::head::usable::Unusable::of(h.head.as_ref(), e).into()
    } else {
        anyhow::anyhow!("head {}: {e}", h.name)
    }
}

/// The indices of 1..=count with no result: sorted, for messages and reports.
fn missing_cards(count: u64, cards: &[CardResult]) -> Vec<u64> {
    let have: std::collections::HashSet<u64> = cards.iter().map(|c| c.index).collect();
    (1..=count).filter(|i| !have.contains(i)).collect()
}

/// `#3, #4, #9` or, for long lists, the first ones and how many more.
pub fn list_indices(v: &[u64]) -> String {
    const SHOWN: usize = 20;
    let mut s: Vec<String> = v.iter().take(SHOWN).map(|i| format!("#{i}")).collect();
    if v.len() > SHOWN {
        s.push(format!("and {} more", v.len() - SHOWN));
    }
    s.join(", ")
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A card's verdict from its cases: aborted when the bench could not run a case (the first
/// error, or why cases were not run); else fail naming the real failures in plan order (a
/// blocked case is not one, but a root cause that is no case, the set-up, is); else pass.
fn verdict(cases: &[crate::report::CaseResult]) -> Verdict {
    if let Some(e) = cases.iter().find(|c| c.status == CaseStatus::Error) {
        return Verdict::Aborted { reason: format!("{}: {}", e.id, e.message) };
    }
    if let Some(n) = cases.iter().find(|c| c.status == CaseStatus::NotRun) {
        return Verdict::Aborted { reason: n.message.clone() };
    }
    let mut failing: Vec<String> = Vec::new();
    for c in cases {
        let id = match c.status {
            CaseStatus::Failed => c.id.as_str(),
            CaseStatus::Blocked => match c.blocked_by() {
                Some(root) if !cases.iter().any(|k| k.id == root) => root,
                _ => continue,
            },
            _ => continue,
        };
        if !failing.iter().any(|f| f == id) {
            failing.push(id.to_string());
        }
    }
    if failing.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail { failing }
    }
}

/// What every card of a worker shares.
struct Shared<'a> {
    f: &'a Factory,
    plan: &'a Plan,
    keys: &'a crate::keys::Keyset,
    now: u32,
    batch_id: &'a str,
    dir: &'a Path,
    observer: Option<&'a crossbeam_channel::Sender<BatchEvent>>,
    registry: &'a Registry,
    recertify: bool,
    announce: &'a dyn Fn(&LabHead, HeadState),
    /// Where the cards come from; a shared store also refuses a card another station has.
    feed: &'a Feed<'a>,
}

/// Certify the card in a worker's heads (`heads[0]` DUT, `heads[1]` its peer) as card
/// `index` of the batch, unless the batch has it already (see `registry`). `detected`: when
/// a real reader saw the card arrive; `board`: the operator's console line for this head.
fn certify(
    heads: &mut [LabHead],
    sh: &Shared,
    index: u64,
    detected: Option<(Instant, String)>,
    board: Option<Box<dyn Sink>>,
) -> Result<Certified> {
    // A card's time starts when it is detected: on a real reader when the presence wait saw
    // it (`detected`), on a virtual head once the feeder has inserted it (certify_card);
    // never while the head waited for the operator.
    let (t0, started) = detected.unwrap_or_else(|| (Instant::now(), now_rfc3339()));
    let virtual_dut = heads[0].head.as_virtual().is_some();
    let card_hex = if virtual_dut {
        hex::encode_upper(sh.f.card_id(index))
    } else {
        // A real reader: the worker saw the operator insert the card.
        match identify_inserted(heads[0].head.as_mut()) {
            Ok(id) => id,
            Err(e) if silent(&e) => return Ok(mute_card(&mut heads[0], &e)),
            Err(e) => return Err(e.into()),
        }
    };
    let claim = sh.registry.claim(&card_hex, index, sh.recertify);
    let (index, certification, previous) = match claim {
        Claim::New => (index, 1, None),
        Claim::Recertify { index, certification, previous } => (index, certification, Some(previous)),
        Claim::Duplicate { index: earlier, verdict } => {
            // The virtual feeder makes one card ID per index: a repeat is a bench bug.
            if virtual_dut {
                bail!("virtual card {card_hex} (#{index}) repeats card #{earlier} of the batch");
            }
            let _ = heads[0].head.power_off();
            let why = duplicate_message(&card_hex, &heads[0], earlier, verdict);
            return Ok(Certified::Refused { card_id: card_hex, why });
        }
    };
    // Before anything is written for it: a card another station has is not this one's.
    match sh.feed.card_identified(index, &card_hex) {
        Ok(()) => {}
        Err(e @ crate::store::StoreError::Refused { .. }) => {
            sh.registry.released(&card_hex, &claim);
            let _ = heads[0].head.power_off();
            let why = format!("head {} ({}): {e}", heads[0].name, heads[0].head.info().reader);
            return Ok(Certified::Refused { card_id: card_hex, why });
        }
        Err(e) => {
            sh.registry.released(&card_hex, &claim);
            return Err(e.into());
        }
    }
    let r = certify_card(heads, sh, index, certification, &card_hex, (t0, started), board);
    match r {
        Ok((result, atr)) => Ok(Certified::Card { result, certification, previous, atr }),
        Err(e) => {
            sh.registry.released(&card_hex, &claim);
            Err(e)
        }
    }
}

/// Power the card a real reader saw arrive and read its ID through APDUs.
fn identify_inserted(h: &mut dyn crate::head::Head) -> Result<String, crate::head::HeadError> {
    h.power_on()?;
    crate::runner::identify(h, &Recorder::disabled())
}

/// A card that does not answer (no ATR, a command cut at the head's deadline, garbage): the
/// card's fault, not the bench's, so it must not stop the batch.
fn silent(e: &crate::head::HeadError) -> bool {
    use crate::head::HeadError as H;
    matches!(e, H::Mute | H::Timeout(_) | H::Protocol(_))
}

/// A card that went silent before it could be identified has no ID to give a verdict to: it
/// is refused like a duplicate (the operator takes it out, its index goes to the next card)
/// and the other heads and cards go on.
fn mute_card(head: &mut LabHead, e: &crate::head::HeadError) -> Certified {
    let _ = head.head.power_off();
    let why = format!(
        "the card in head {} ({}) does not answer ({e}): not certified; take it out and insert the next card",
        head.name,
        head.head.info().reader
    );
    Certified::Refused { card_id: "unidentified".into(), why }
}

/// How a real reader's wait for its next card ended.
enum Arrival {
    /// A card was detected (when) and got card index .0 of the batch.
    Card(u64, (Instant, String)),
    /// No card left for this head (another head took the last one), or the batch stopped.
    NoMore,
    /// No card came within the presence timeout: why, for the batch and the head.
    Stalled(String, HeadState),
    /// The reader or the store failed.
    Failed(anyhow::Error, HeadState),
}

/// Wait for the operator to insert a card in a real reader, then give it the next card
/// index. The index is taken only once the card is there: a head that took it while still
/// waiting would hold the batch's last card hostage while the card sits in another head
/// (one card, two heads, `--count 1`). The wait ends early once no index is left to take.
fn next_detected(
    head: &mut LabHead,
    queue: &Feed,
    control: &Control,
    presence_timeout: std::time::Duration,
    announce: &dyn Fn(&LabHead, HeadState),
) -> Arrival {
    if !queue.may_come() {
        return Arrival::NoMore;
    }
    let next = queue.peek();
    announce(head, HeadState::Waiting { next });
    loop {
        match control.wait_for_card(head.head.as_mut(), true, presence_timeout, &|| !queue.may_come()) {
            Ok(Some(true)) => break,
            Ok(None) => return Arrival::NoMore,
            // Nothing queued, only a card under test elsewhere that may be given back: the
            // operator is not late, so no stall; keep waiting until it settles.
            Ok(Some(false)) if queue.peek().is_none() => continue,
            Ok(Some(false)) => {
                let secs = presence_timeout.as_secs();
                let was = next.map(|n| format!(" (card #{n} was next)")).unwrap_or_default();
                let why = format!("head {}: no card inserted within {secs} s{was}", head.name);
                return Arrival::Stalled(why, HeadState::Fault(format!("no card inserted within {secs} s")));
            }
            Err(e) => {
                let state = HeadState::Fault(e.to_string());
                return Arrival::Failed(head_error(head, e), state);
            }
        }
    }
    let at = (Instant::now(), now_rfc3339());
    match queue.next() {
        Ok(Some(i)) => Arrival::Card(i, at),
        // Another head detected its card first and took the last index.
        Ok(None) => Arrival::NoMore,
        Err(e) => {
            let state = HeadState::Fault(e.to_string());
            Arrival::Failed(e.into(), state)
        }
    }
}

/// What the operator reads when a card comes back: which card, where it was certified, what
/// to do.
fn duplicate_message(card: &str, head: &LabHead, earlier: u64, verdict: Option<&str>) -> String {
    let reader = &head.head.info().reader;
    match verdict {
        Some(v) => format!(
            "card {card} in head {} ({reader}) is already certified in this batch (#{earlier}, {v}); not certified \
             again: take it out and insert the next card (--recertify certifies it again)",
            head.name
        ),
        None => format!(
            "card {card} in head {} ({reader}) is being certified on another head (#{earlier}); take it out and \
             insert the next card",
            head.name
        ),
    }
}

/// Run the plan on the identified card: its folder, trace, run header and result, and the ATR
/// it answered with.
fn certify_card(
    heads: &mut [LabHead],
    sh: &Shared,
    index: u64,
    certification: u32,
    card_hex: &str,
    (mut t0, mut started): (Instant, String),
    board: Option<Box<dyn Sink>>,
) -> Result<(CardResult, Vec<u8>)> {
    let Shared { f, plan, keys, now, batch_id, dir, observer, announce, .. } = *sh;
    let virtual_dut = heads[0].head.as_virtual().is_some();
    let card_hex = card_hex.to_string();
    // A re-certification keeps the earlier card folder as evidence.
    let rel = match certification {
        1 => format!("cards/{index:05}-{card_hex}"),
        n => format!("cards/{index:05}-{card_hex}-r{n}"),
    };
    let card_dir = dir.join(&rel);
    // A folder left by a killed run belongs to a card that never reached the journal.
    if card_dir.exists() {
        std::fs::remove_dir_all(&card_dir).with_context(|| format!("clearing {}", card_dir.display()))?;
    }
    std::fs::create_dir_all(&card_dir).with_context(|| format!("creating {}", card_dir.display()))?;
    let trace_rel = format!("{rel}/trace.csv");
    let trace = TraceCsv::create(&dir.join(&trace_rel), batch_id, &plan.id)?;
    let (rec, rx) = Recorder::new(&plan.id);
    let mut sink_list = vec![Box::new(trace) as Box<dyn Sink>];
    sink_list.extend(board);
    if let Some(tx) = observer {
        sink_list.push(Box::new(forward::Forward::new(tx.clone(), &heads[0].name, &card_hex)));
    }
    let sinks = sinks::spawn(rx, sink_list);
    // The cards' making goes into the card's trace, so that a replay can make them again.
    let made = (|| -> Result<()> {
        if virtual_dut {
            // The feeder makes the next card of the virtual batch and inserts it; the worker
            // sees it arrive below, like a presence event.
            let mut dut = f.dut.clone();
            dut.card_id = f.card_id(index);
            let mut l = Link::new(heads[0].head.as_mut(), &rec);
            l.test_step = "insert".into();
            crate::lab::insert_card(&mut l, &dut, f.dut_protocol, keys, Some(f.defects(index)))
                .map_err(anyhow::Error::msg)?;
            if let Some(card) = heads[0].head.as_virtual().and_then(|v| v.card_mut()) {
                f.dut_variant.apply(card);
            }
        } else {
            let mut l = Link::new(heads[0].head.as_mut(), &rec);
            (l.card_id, l.test_step) = (card_hex.clone(), "insert".into());
            l.event(RowKind::Insert, "");
        }
        let mut l = Link::new(heads[1].head.as_mut(), &rec);
        l.test_step = "insert".into();
        crate::lab::insert_card(&mut l, &f.peer, f.peer_protocol, keys, None).map_err(anyhow::Error::msg)
    })();
    if let Err(e) = made {
        drop(rec);
        let _ = sinks.join();
        return Err(e);
    }
    if !heads[0].head.card_present()? {
        bail!("card {card_hex} not detected in head {}", heads[0].name);
    }
    let mut atr = Vec::new();
    if virtual_dut {
        (t0, started) = (Instant::now(), now_rfc3339());
    }
    announce(&heads[0], HeadState::Testing { index, card_id: card_hex.clone() });
    if let Some(tx) = observer {
        let head = heads[0].name.clone();
        atr = match heads[0].head.atr() {
            Some(a) => a,
            None => heads[0].head.power_on().unwrap_or_default(),
        };
        let _ = tx.send(BatchEvent::CardInserted { head, index, card_id: card_hex.clone(), atr: atr.clone() });
    }
    let rng = crate::lab::terminal_rng(heads, || {
        Sha256::new()
            .chain_update(b"cardbench batch")
            .chain_update(batch_id)
            .chain_update(index.to_be_bytes())
            .finalize()
            .into()
    });
    crate::trace::write_run_header(&card_dir, batch_id, plan, &format!("batch {batch_id} card {index}"), &rng)
        .with_context(|| format!("writing {}", card_dir.join("run.json").display()))?;
    let cases = crate::runner::run_plan(plan, heads, &rec, keys, now, rng.seed());
    // The plan powered the card: its ATR is known now, without an extra power-on.
    if let Some(a) = heads[0].head.atr().filter(|a| !a.is_empty()) {
        atr = a;
    }
    drop(rec);
    let errors = sinks.join().unwrap_or_else(|_| vec!["trace thread panicked".into()]);
    if let Some(e) = errors.first() {
        bail!("trace of card {card_hex}: {e}");
    }
    // Swap: the card leaves the head before the next one comes.
    match heads[0].head.as_virtual() {
        Some(v) => {
            v.remove();
        }
        None => {
            let _ = heads[0].head.power_off();
        }
    }
    let result = CardResult {
        index,
        card_id: card_hex,
        head: heads[0].name.clone(),
        verdict: verdict(&cases),
        cases,
        trace: trace_rel,
        started,
        duration_ms: t0.elapsed().as_secs_f64() * 1e3,
    };
    Ok((result, atr))
}

/// Everything `cardbench batch` can refuse before a folder is made or a card is touched, for
/// `batch`, the TUI and `check --batch`: the profile's `[batch]` (its cards, ID prefix, defect
/// rules, presence timeout, at least one `dut` head) and, with a plan, the plan's heads (only
/// `dut` and `peer`, virtual-only steps on the peer when the DUT heads are real readers).
pub fn validate(l: &Loaded, lab: &Lab, plan: Option<&Plan>) -> Result<(), ConfigError> {
    Factory::from_profile(l)?;
    presence_timeout(l)?;
    let duts: Vec<&LabHead> = lab.heads.iter().filter(|h| h.role == "dut").collect();
    if duts.is_empty() {
        return Err(ConfigError::whole_file(&l.path, "no head with role \"dut\" for the batch"));
    }
    match plan {
        Some(p) => {
            p.bind_batch(duts.iter().all(|h| h.head.info().driver == "virtual"))?;
            p.bind_machines(&lab.keyset)
        }
        None => Ok(()),
    }
}

/// The profile's `[batch] presence_timeout_s`, or the default.
fn presence_timeout(l: &Loaded) -> Result<std::time::Duration, ConfigError> {
    match l.profile.batch.as_ref().and_then(|b| b.get_ref().presence_timeout_s.as_ref()) {
        Some(t) if *t.get_ref() == 0 => Err(l.err(t.span(), "presence_timeout_s must be at least 1")),
        Some(t) => Ok(std::time::Duration::from_secs(*t.get_ref())),
        None => Ok(std::time::Duration::from_secs(PRESENCE_TIMEOUT_S)),
    }
}

pub fn run_batch(l: &Loaded, lab: Lab, plan: &Plan, opts: &BatchOptions) -> Result<BatchOutcome> {
    let factory = Factory::from_profile(l)?;
    if let Some(c) = opts.count {
        if c == 0 || c > u32::MAX as u64 {
            bail!("--count must be between 1 and {}", u32::MAX);
        }
    }
    let Lab { keyset, heads, clock, .. } = lab;
    let now = clock.unwrap_or_else(|| chrono::Utc::now().timestamp() as u32);
    let (mut duts, _others): (Vec<LabHead>, Vec<LabHead>) = heads.into_iter().partition(|h| h.role == "dut");
    if duts.is_empty() {
        bail!("{}: no head with role \"dut\"", l.path.display());
    }
    if opts.batch_id.is_empty() || opts.batch_id.contains(['/', '\\']) || opts.batch_id.starts_with('.') {
        bail!("batch id '{}' must be a plain folder name", opts.batch_id);
    }
    let presence_timeout = presence_timeout(l)?;
    // Every DUT head must be usable before the batch folder is made (exit 2 otherwise, with
    // the head, its reader and what to try).
    let n = duts.len();
    crate::head::usable::open(&mut duts, 0..n)?;
    let dir = opts.logs.join(&opts.batch_id);
    let store = opts.store.open()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Before anything in the folder is read or written: one process per batch.
    let _lock = BatchLock::acquire(&dir)?;
    let mut books = open_folder(l, plan, &keyset, opts, &dir, (now, clock.is_some()), &duts)?;
    // A resume takes its card count from batch.json.
    let count = books.meta.count;
    let notice = |msg: String| match &opts.observer {
        Some(o) => {
            let _ = o.send(BatchEvent::Notice(msg));
        }
        None => crate::print::err(format_args!("cardbench: {msg}")),
    };
    for n in std::mem::take(&mut books.notes) {
        notice(n);
    }
    let done = std::mem::take(&mut books.done);
    let registry = Registry::new(&done, &books.recertified);
    let done_idx: std::collections::BTreeSet<u64> = done.iter().map(|r| r.index).collect();
    let station = crate::store::station_name(&dir);
    let store = store.as_deref();
    if let Some(s) = store {
        for n in store_begin(s, &books.meta, &station, &done)? {
            notice(n);
        }
    }
    let queue = match store.filter(|s| s.shared()) {
        Some(s) => Feed::shared(s, &opts.batch_id, &station),
        None => Feed::local((1..=count).filter(|i| !done_idx.contains(i))),
    };
    let real_heads = duts.iter().any(|h| !crate::lab::simulated(h.head.info().driver));
    let progress = Progress::new(count, &done, opts.quiet, real_heads);
    let console = operator::Console::new(opts.bell);
    // A head's state goes to the observer (TUI), and for a real reader also to the console.
    let announce = |head: &LabHead, state: HeadState| {
        let info = head.head.info();
        let real = !crate::lab::simulated(info.driver);
        if real && opts.observer.is_none() {
            if let Some(b) = &progress.board {
                b.state(&head.name, &state);
            }
            if let Some(line) = console.line(&head.name, &info.reader, &state) {
                progress.say(&line);
            }
        }
        if let Some(o) = &opts.observer {
            let _ = o.send(BatchEvent::Head { head: head.name.clone(), reader: info.reader.clone(), real, state });
        }
    };
    let (tx, rx) = crossbeam_channel::unbounded::<WorkerMsg>();
    if let Some(o) = &opts.observer {
        let _ = o.send(BatchEvent::Started {
            total: count,
            done: done_idx.len() as u64,
            heads: duts.iter().map(|h| h.name.clone()).collect(),
            earlier: done.clone(),
        });
    }
    let mut fresh = Vec::new();
    let mut stalled = Vec::new();
    let mut first_error = None;
    std::thread::scope(|scope| {
        for dut in duts.drain(..) {
            let tx = tx.clone();
            let (queue, factory, keyset, dir, registry, announce, console, board) =
                (&queue, &factory, &keyset, &dir, &registry, &announce, &console, &progress.board);
            let peer_name = format!("{}.peer", dut.name);
            scope.spawn(move || {
                let mut heads = vec![
                    dut,
                    LabHead {
                        name: peer_name.clone(),
                        role: "peer".into(),
                        head: Box::new(VirtualHead::new(&peer_name)),
                    },
                ];
                let real = heads[0].head.as_virtual().is_none();
                // How the worker ended, for the operator.
                let mut last = HeadState::Done;
                loop {
                    if !opts.control.wait_while_paused() {
                        break;
                    }
                    // A virtual head: the feeder makes card `index` for it. A real reader: the
                    // card gets its index when the head detects it (`next_detected`).
                    let (index, detected) = if real {
                        match next_detected(&mut heads[0], queue, &opts.control, presence_timeout, announce) {
                            Arrival::Card(i, at) => (i, Some(at)),
                            Arrival::NoMore => break,
                            Arrival::Stalled(why, state) => {
                                last = state;
                                let _ = tx.send(WorkerMsg::Stalled(why));
                                break;
                            }
                            Arrival::Failed(e, state) => {
                                last = state;
                                let _ = tx.send(WorkerMsg::Card(Err(e)));
                                break;
                            }
                        }
                    } else {
                        match queue.next() {
                            Ok(Some(i)) => (i, None),
                            Ok(None) => break,
                            Err(e) => {
                                let _ = tx.send(WorkerMsg::Card(Err(e.into())));
                                break;
                            }
                        }
                    };
                    let board_sink = board.as_ref().filter(|_| real).map(|b| b.sink(&heads[0].name));
                    let shared = Shared {
                        f: factory,
                        plan,
                        keys: keyset,
                        now,
                        batch_id: &opts.batch_id,
                        dir,
                        observer: opts.observer.as_ref(),
                        registry,
                        recertify: opts.recertify,
                        announce,
                        feed: queue,
                    };
                    let r = certify(&mut heads, &shared, index, detected, board_sink);
                    // A card certified in its earlier place, or refused, leaves this index
                    // to the next card.
                    match &r {
                        Ok(Certified::Card { result, .. }) if result.index == index => {}
                        Ok(_) => {
                            let _ = queue.give_back(index);
                        }
                        Err(_) => {}
                    }
                    queue.settled();
                    let card = match &r {
                        Ok(Certified::Card { result: c, .. }) => {
                            // Counted here so the head's `done` line below includes it.
                            console.card(c);
                            Some((c.card_id.clone(), c.verdict.word().to_string()))
                        }
                        // Refused: the operator takes the card out like a certified one.
                        Ok(Certified::Refused { card_id, .. }) => Some((card_id.clone(), "refused".to_string())),
                        Err(e) => {
                            last = HeadState::Fault(format!("{e:#}"));
                            None
                        }
                    };
                    if tx.send(WorkerMsg::Card(r)).is_err() {
                        break;
                    }
                    let Some((card_id, verdict)) = card else { break };
                    // A real reader: wait for the operator to take the card out before the
                    // next one, unless the batch is complete.
                    let more = queue.has_more();
                    if more && real {
                        announce(&heads[0], HeadState::Remove { index, card_id, verdict });
                        match opts.control.wait_for_card(heads[0].head.as_mut(), false, presence_timeout, &|| false) {
                            Ok(Some(true)) => {}
                            Ok(None) => break,
                            Ok(Some(false)) => {
                                let why = format!(
                                    "head {}: card not taken out within {} s",
                                    heads[0].name,
                                    presence_timeout.as_secs()
                                );
                                last = HeadState::Fault(format!(
                                    "card not taken out within {} s",
                                    presence_timeout.as_secs()
                                ));
                                let _ = tx.send(WorkerMsg::Stalled(why));
                                break;
                            }
                            Err(e) => {
                                last = HeadState::Fault(e.to_string());
                                let _ = tx.send(WorkerMsg::Card(Err(head_error(&heads[0], e))));
                                break;
                            }
                        }
                    }
                }
                announce(&heads[0], last);
            });
        }
        drop(tx);
        for m in rx {
            match m {
                WorkerMsg::Card(Ok(Certified::Refused { why, .. })) => notice(why),
                WorkerMsg::Card(Ok(Certified::Card { result: card, certification, previous, atr })) => {
                    let recorded = {
                        let _gate = opts.control.journal_gate.lock().unwrap_or_else(|p| p.into_inner());
                        books.record(&card, certification, &atr)
                    };
                    if let Err(e) = recorded {
                        first_error.get_or_insert(e);
                        queue.close();
                        continue;
                    }
                    // The store is written from the same result, after the journal (a kill
                    // between the two is mended by the next run's store_begin).
                    if let Some(Err(e)) = store.map(|s| s.record_card(&opts.batch_id, &station, &card)) {
                        first_error.get_or_insert(e.into());
                        queue.close();
                    }
                    registry.finished(&card.card_id, card.verdict.word());
                    // A re-certification in this run replaces the card's earlier result.
                    fresh.retain(|c: &CardResult| c.index != card.index);
                    progress.card(&card, previous);
                    if let Some(o) = &opts.observer {
                        let _ = o.send(BatchEvent::CardDone(Box::new(card.clone())));
                    }
                    fresh.push(card);
                }
                WorkerMsg::Card(Err(e)) => {
                    // A bench failure stops the batch; what is journaled stays valid.
                    queue.close();
                    first_error.get_or_insert(e);
                }
                WorkerMsg::Stalled(why) => {
                    notice(format!("{why}; its worker stopped"));
                    stalled.push(why);
                }
            }
        }
    });
    progress.finish();
    let stopped = opts.control.stop.load(std::sync::atomic::Ordering::Relaxed);
    if let Some(o) = &opts.observer {
        let _ = o.send(BatchEvent::Finished { stopped });
    }
    let certified_now = fresh.len();
    let mut cards = done;
    cards.extend(fresh);
    // From batch.json and the journaled cards only: `cardbench report` rebuilds these bytes.
    let result = reports::result_of(&books.meta, cards, books.recertified.clone());
    let mut missing = missing_cards(count, &result.cards);
    if let Some(s) = store {
        // Shared: this station's files cover its own cards; what the batch lacks is in the store.
        match store_finish(s, &books, &result, &station) {
            Ok(m) => missing = m.unwrap_or(missing),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let written = crate::report::files::write_reports(&dir, &result);
    if let Some(e) = first_error {
        // A bench failure ends the batch, but what is journaled is evidence all the same.
        if written.is_ok() {
            notice(format!(
                "the reports of the {} journaled cards are in {}; the same command resumes",
                result.cards.len(),
                dir.display()
            ));
        }
        return Err(e);
    }
    written?;
    Ok(BatchOutcome { result, dir, certified_now, missing, stalled, per_head: console.summary() })
}

/// Open the batch folder for this run: the resume checks, batch.json with this run's entry,
/// the journal (`journal::open_batch`).
fn open_folder(
    l: &Loaded,
    plan: &Plan,
    keyset: &crate::keys::Keyset,
    opts: &BatchOptions,
    dir: &Path,
    (now, clock_fixed): (u32, bool),
    duts: &[LabHead],
) -> Result<journal::OpenBatch> {
    let identity = header::Identity::of(l, plan, keyset).context("recording the plan's hash")?;
    let run = header::Run::start(now_rfc3339(), now, clock_fixed, duts, opts.recertify);
    let default_count = l.profile.batch.as_ref().map_or(0, |b| b.get_ref().count);
    let new = BatchMeta::new(&opts.batch_id, plan, &l.path, opts.count.unwrap_or(default_count));
    journal::open_batch(dir, new, identity, run, opts.count, opts.force_changed)
}

/// The store's side of a batch run's start (see `Store::begin_batch`).
fn store_begin(s: &crate::store::Store, meta: &BatchMeta, station: &str, done: &[CardResult]) -> Result<Vec<String>> {
    let row = crate::store::batches::BatchRow {
        batch_id: meta.batch_id.clone(),
        plan_id: meta.plan_id.clone(),
        plan_version: meta.plan_version.clone(),
        profile: meta.profile.clone(),
        count: meta.count,
        started: meta.started.clone(),
        meta_json: serde_json::to_string(meta)?,
    };
    Ok(s.begin_batch(&row, station, done)?)
}

/// The store's side of a batch run's end: batch.json as it now stands (its runs, the heads'
/// ATRs), the re-certified cards and the finish time, and, in a shared store, the cards of
/// the batch that no station has (`None`: one station, the journal says).
fn store_finish(
    s: &crate::store::Store,
    books: &journal::OpenBatch,
    r: &BatchResult,
    station: &str,
) -> Result<Option<Vec<u64>>> {
    let meta = serde_json::to_string(&books.meta)?;
    let recertified = serde_json::to_string(&books.recertified)?;
    s.finish_batch(&r.batch_id, &r.finished, &meta, &recertified)?;
    Ok(if s.shared() { Some(s.missing(&r.batch_id, station)?) } else { None })
}

/// Headless progress: a bar on a terminal, one line per card otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// On a terminal with real heads: their states under the bar.
    board: Option<operator::Board>,
    quiet: bool,
    started: Instant,
    counts: Mutex<(u64, u64, u64, u64)>,
    total: u64,
}

impl Progress {
    fn new(total: u64, done: &[CardResult], quiet: bool, real_heads: bool) -> Progress {
        let mut c = (0, 0, 0, 0);
        for r in done {
            bump(&mut c, r);
        }
        let bar = (!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let b = indicatif::ProgressBar::new(total);
            // Real heads: a second line with each head's state (`operator::Board`).
            let template = if real_heads {
                "{bar:30} {pos}/{len} cards  {msg}  ETA {eta}\n{prefix}"
            } else {
                "{bar:30} {pos}/{len} cards  {msg}  ETA {eta}"
            };
            b.set_style(indicatif::ProgressStyle::with_template(template).expect("static template"));
            if real_heads {
                // The board changes between cards (cases, prompts): redraw it on its own.
                b.enable_steady_tick(std::time::Duration::from_millis(250));
            }
            b.set_position(done.len() as u64);
            b
        });
        let board = bar.clone().filter(|_| real_heads).map(operator::Board::new);
        Progress { bar, board, quiet, started: Instant::now(), counts: Mutex::new(c), total }
    }

    /// A card done; `previous` is the verdict of its earlier certification when this one
    /// replaces it (`--recertify`).
    fn card(&self, r: &CardResult, previous: Option<&str>) {
        let mut c = self.counts.lock().expect("progress lock");
        match previous {
            Some("pass") => c.0 -= 1,
            Some("fail") => c.1 -= 1,
            Some(_) => c.2 -= 1,
            None => {}
        }
        bump(&mut c, r);
        c.3 += 1;
        let per_hour = c.3 as f64 / self.started.elapsed().as_secs_f64().max(1e-9) * 3600.0;
        let msg = format!("pass {} fail {} aborted {}  {:.0} cards/h", c.0, c.1, c.2, per_hour);
        match &self.bar {
            Some(b) => {
                // A card that did not pass gets its line above the bar: the root cause is
                // what the operator at the bench needs to see.
                if !matches!(r.verdict, Verdict::Pass) {
                    b.println(format!("card {} on {}: {} {}", r.card_id, r.head, r.verdict.word(), card_detail(r)));
                }
                b.set_message(msg);
                b.inc(1);
            }
            None if !self.quiet => {
                let mut detail = card_detail(r);
                if let Some(p) = previous {
                    detail = format!("{detail} (re-certified #{}; was {p})", r.index).trim_start().to_string();
                }
                let n = c.0 + c.1 + c.2;
                crate::print::out(format_args!(
                    "[{n}/{}] card {} on {}: {} {detail}  ({msg})",
                    self.total,
                    r.card_id,
                    r.head,
                    r.verdict.word()
                ));
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }

    /// An operator line on stderr, above the progress bar when there is one.
    fn say(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => crate::print::err(format_args!("{line}")),
        }
    }
}

/// What the console line says after a card's verdict: its first real failure with what was
/// expected and what the card did, the other real failures, and the cases counted apart.
fn card_detail(r: &CardResult) -> String {
    let n = crate::report::summary::CaseCounts::of(&r.cases);
    let mut s = match &r.verdict {
        Verdict::Pass => return String::new(),
        Verdict::Fail { failing } => {
            let first = r.first_failure().map_or_else(|| failing.join(" "), |f| f.line());
            match failing.len() {
                0 | 1 => first,
                k => format!("{first}; {} more failing: {}", k - 1, failing[1..].join(" ")),
            }
        }
        Verdict::Aborted { reason } => reason.clone(),
    };
    if n.blocked > 0 {
        s += &format!("; {} blocked", n.blocked);
    }
    if n.not_run > 0 {
        s += &format!("; {} not run", n.not_run);
    }
    s
}

/// (pass, fail, aborted, certified in this run)
fn bump(c: &mut (u64, u64, u64, u64), r: &CardResult) {
    match r.verdict {
        Verdict::Pass => c.0 += 1,
        Verdict::Fail { .. } => c.1 += 1,
        Verdict::Aborted { .. } => c.2 += 1,
    }
}
