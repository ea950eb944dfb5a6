//! The app's effects carried out off the UI thread: the batch on its own thread (the engine
//! spawns one worker per DUT head under it), a profile's heads looked at, a card's trace read,
//! a replay and a timing run on their threads.

use super::app::{BatchEnd, BatchRequest, HeadRow, Msg, Probe};
use super::replay::{ReplayEnd, ReplayRequest};
use super::timing::{TimingEnd, TimingRequest};
use crate::batch::{BatchEvent, BatchOptions, Control};
use crate::lab::Lab;
use crossbeam_channel::{Receiver, Sender};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A batch on its thread.
pub struct Running {
    pub events: Receiver<BatchEvent>,
    pub dir: PathBuf,
    pub control: Arc<Control>,
    pub thread: JoinHandle<()>,
}

/// Validate the request (profile, lab, plan) and start the batch thread; it sends
/// `Msg::Ended` on `done` when `run_batch` returns, panics included.
pub fn start(req: &BatchRequest, done: Sender<Msg>) -> Result<Running, String> {
    let loaded = crate::profile::load(&req.profile).map_err(|e| e.to_string())?;
    let lab = Lab::from_profile(&loaded).map_err(|e| e.to_string())?;
    let plan = crate::plan::load(&req.plan).map_err(|e| format!("{e:#}"))?;
    crate::batch::validate(&loaded, &lab, Some(&plan)).map_err(|e| e.to_string())?;
    let logs = lab.logs.clone();
    let dir = logs.join(&req.batch_id);
    let control = Arc::new(Control::default());
    let (tx, events) = crossbeam_channel::unbounded();
    if let Some(w) = lab.seeded_keys_on_real_heads() {
        let _ = tx.send(BatchEvent::Notice(format!("warning: {w}")));
    }
    // The TUI's batches go to the default store too, made with the batch folder.
    let store = crate::store::Pending::new(None, &logs).unwrap_or_default();
    let opts = BatchOptions {
        store,
        batch_id: req.batch_id.clone(),
        count: req.count,
        logs,
        // The engine's own progress output would draw over the UI.
        quiet: true,
        observer: Some(tx),
        control: control.clone(),
        // The TUI resumes only an unchanged batch and never certifies a card twice.
        force_changed: false,
        recertify: false,
        // The UI rings the bell itself (`tui --bell`).
        bell: false,
    };
    let thread = std::thread::Builder::new()
        .name("cardbench-batch".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // The heads are the batch's until it ends (a PN532 poll in progress ends first).
                let _heads = super::presence::HEADS.lock().unwrap_or_else(|p| p.into_inner());
                crate::batch::run_batch(&loaded, lab, &plan, &opts)
            }));
            let stopped = opts.control.stop.load(std::sync::atomic::Ordering::Relaxed);
            let msg = match r {
                Ok(Ok(out)) => Ok(BatchEnd {
                    cards: out.result.cards.len(),
                    certified_now: out.certified_now,
                    pass: out.result.count("pass"),
                    fail: out.result.count("fail"),
                    aborted: out.result.count("aborted"),
                    dir: out.dir,
                    // Workers that gave up waiting for cards leave the batch resumable, as a stop does.
                    stopped: stopped || !out.missing.is_empty(),
                }),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err(super::term::take_panic().unwrap_or_else(|| "the batch thread panicked".into())),
            };
            let _ = done.send(Msg::Ended(msg));
        })
        .map_err(|e| format!("cannot start the batch thread: {e}"))?;
    Ok(Running { events, dir, control, thread })
}

/// Read a profile and look at its heads: driver, reader, role, card presence, ATR.
pub fn probe(path: &Path) -> Result<Probe, String> {
    let loaded = crate::profile::load(path).map_err(|e| e.to_string())?;
    let mut lab = Lab::from_profile(&loaded).map_err(|e| e.to_string())?;
    let mut heads = Vec::new();
    for h in lab.heads.iter_mut() {
        let info = h.head.info().clone();
        let mut row = HeadRow {
            name: info.name,
            driver: info.driver.to_string(),
            reader: info.reader,
            role: h.role.clone(),
            ..HeadRow::default()
        };
        match h.head.card_present() {
            Ok(true) => {
                row.present = Some(true);
                match h.head.power_on() {
                    Ok(atr) => {
                        row.atr = Some(atr);
                        let _ = h.head.power_off();
                    }
                    Err(e) => row.fault = e.to_string(),
                }
                if let Some(c) = h.head.as_virtual().and_then(|v| v.card()) {
                    row.card_id = hex::encode_upper(c.card_id());
                }
            }
            Ok(false) => row.present = Some(false),
            Err(e) => row.fault = e.to_string(),
        }
        heads.push(row);
    }
    let not_batch = why_not_batch(&loaded.profile);
    Ok(Probe { heads, count: loaded.profile.batch.as_ref().map(|b| b.get_ref().count), not_batch })
}

/// Why a profile cannot run a batch, if it cannot (what the Batch panel says under it).
fn why_not_batch(p: &crate::profile::Profile) -> Option<String> {
    if p.batch.is_none() {
        Some("this profile has no [batch] section: it cannot run a batch".to_string())
    } else if !p.heads.iter().any(|h| h.get_ref().role == "dut") {
        Some("this profile has no head with role \"dut\"".to_string())
    } else {
        None
    }
}

/// The first of `profiles` that can run a batch (read, with a `[batch]` section and a `dut`
/// head; its heads are not opened), and why each one before it cannot. Started without
/// `--profile`, the UI opens that one rather than the first file of `profiles/`.
pub fn first_batch_profile(profiles: &[PathBuf]) -> (Option<PathBuf>, Vec<(PathBuf, String)>) {
    let mut unusable = Vec::new();
    for p in profiles {
        let why = match crate::profile::load(p) {
            Ok(loaded) => why_not_batch(&loaded.profile),
            Err(e) => Some(e.to_string()),
        };
        match why {
            None => return (Some(p.clone()), unusable),
            Some(why) => unusable.push((p.clone(), why)),
        }
    }
    (None, unusable)
}

/// Run `f` on a short-lived thread and send what it returns.
pub fn in_background(tx: Sender<Msg>, f: impl FnOnce() -> Msg + Send + 'static) {
    let _ = std::thread::Builder::new().name("cardbench-io".into()).spawn(move || {
        let _ = tx.send(f());
    });
}

/// A replay on its thread: the events of its recorder and its stop flag.
pub struct ReplayRunning {
    pub events: Receiver<crate::event::Event>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Start `req` on its own thread; it sends `Msg::ReplayEnded` on `done` when the replay
/// returns, panics included. The replayer's recorder must reach `events` through a
/// `sinks::Forward` sink: its `Exchange` rows and a `ReplayChecked` per unit it judged.
pub fn start_replay(req: &ReplayRequest, done: Sender<Msg>) -> Result<ReplayRunning, String> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, events) = crossbeam_channel::unbounded();
    let (req, flag) = (req.clone(), stop.clone());
    std::thread::Builder::new()
        .name("cardbench-replay".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _heads = super::presence::HEADS.lock().unwrap_or_else(|p| p.into_inner());
                replay_engine(&req, tx, flag)
            }));
            let msg = match r {
                Ok(r) => r,
                Err(_) => Err(super::term::take_panic().unwrap_or_else(|| "the replay thread panicked".into())),
            };
            let _ = done.send(Msg::ReplayEnded(msg));
        })
        .map_err(|e| format!("cannot start the replay thread: {e}"))?;
    Ok(ReplayRunning { events, stop })
}

/// The replay engine (`cardbench replay --mode bytes`) run for the UI: `observer` gets the
/// recorder's events (through a `sinks::Forward` sink), `stop` is looked at between units,
/// nothing may print to the terminal.
fn replay_engine(
    req: &ReplayRequest,
    observer: Sender<crate::event::Event>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<ReplayEnd, String> {
    let args = crate::replay::ReplayArgs {
        source: req.trace.clone(),
        profile: req.profile.clone(),
        map: vec![format!("{}={}", req.trace_head, req.head)],
        card: req.card.clone(),
        keep_going: req.keep_going,
        timing_threshold: 20.0,
        run_id: format!("tui-replay-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")),
        logs: None,
        quiet: true,
        observer: Some(observer),
        stop: Some(stop.clone()),
    };
    let w = crate::replay::run_bytes(&args).map_err(|e| format!("{e:#}"))?;
    let o = &w.outcome;
    Ok(ReplayEnd {
        checked: o.matched + o.divergences,
        diverged: o.divergences,
        stopped: stop.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// A timing run on its thread: the samples as they are measured, and its stop flag.
pub struct TimingRunning {
    pub samples: Receiver<crate::timing::sample::Sample>,
    pub dir: PathBuf,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Check `req` as `cardbench time` does (profile, lab, spec, heads bound) and start it on its
/// own thread, writing to `<profile logs>/<run id>/` what `cardbench time` writes; it sends
/// `Msg::TimingEnded` on `done` when the run and its reports are done, panics included.
pub fn start_timing(req: &TimingRequest, done: Sender<Msg>) -> Result<TimingRunning, String> {
    use crate::timing::run;
    let loaded = crate::profile::load(&req.profile).map_err(|e| e.to_string())?;
    let mut lab = Lab::from_profile(&loaded).map_err(|e| e.to_string())?;
    let spec = crate::timing::spec::load(&req.spec).map_err(|e| format!("{e:#}"))?;
    let groups = run::bind(&spec, &lab.heads, &req.heads, &[]).map_err(|e| format!("{e:#}"))?;
    crate::head::usable::open(&mut lab.heads, groups.iter().flat_map(|g| std::iter::once(g.dut).chain(g.peer)))
        .map_err(|e| e.to_string())?;
    let dir = lab.logs.join(&req.run_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, samples) = crossbeam_channel::unbounded();
    let opts = run::Options { observer: Some(tx), stop: Some(stop.clone()), ..run::Options::default() };
    let (req, out) = (req.clone(), dir.clone());
    let logs = lab.logs.clone();
    let started = crate::store::now();
    std::thread::Builder::new()
        .name("cardbench-timing".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<TimingEnd, String> {
                let _heads = super::presence::HEADS.lock().unwrap_or_else(|p| p.into_inner());
                let r = run::execute(&spec, &mut lab, &groups, &opts, &out, &req.run_id, &req.profile)
                    .map_err(|e| format!("{e:#}"))?;
                // The console table would draw over the UI: the panel shows the same figures.
                run::outputs(&out, &req.run_id, &r, &mut |_| {}).map_err(|e| e.to_string())?;
                let mut failures: Vec<String> = r.groups.iter().flat_map(|g| g.failures.clone()).collect();
                failures
                    .extend(r.sink_errors.iter().map(|e| format!("writing {}: {e}", out.join("trace.csv").display())));
                // Like `cardbench time`: the run also goes to the default results store.
                let stored = crate::store::Store::open(None, &logs).and_then(|s| match s {
                    Some(s) => crate::store::runs::record_timing(
                        &s,
                        &spec,
                        &req.profile,
                        &out,
                        &req.run_id,
                        &started,
                        &r.samples,
                    ),
                    None => Ok(()),
                });
                if let Err(e) = stored {
                    failures.push(e.to_string());
                }
                Ok(TimingEnd {
                    dir: out.clone(),
                    samples: r.samples.len(),
                    notes: r.groups.iter().flat_map(|g| g.notes.clone()).collect(),
                    failures,
                    stopped: opts.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)),
                })
            }));
            let msg = match r {
                Ok(r) => r,
                Err(_) => Err(super::term::take_panic().unwrap_or_else(|| "the timing thread panicked".into())),
            };
            let _ = done.send(Msg::TimingEnded(msg));
        })
        .map_err(|e| format!("cannot start the timing thread: {e}"))?;
    Ok(TimingRunning { samples, dir, stop })
}
