//! The event loop, the way gitui and bottom do it: an input thread reads the terminal, the
//! batch runs on its own threads and sends its events over a channel, a ticker keeps rates
//! and ETA fresh; the loop selects over those channels, lets `App::event` change the state,
//! carries out the effects it asks for, and redraws at a bounded rate.

use super::app::{App, Effect, Msg, Now};
use super::launch::{self, Running};
use super::{term, ui};
use crate::batch::BatchEvent;
use crate::event::Event;
use crate::timing::sample::Sample;
use crossbeam_channel::{select, unbounded, Receiver, Sender};
use crossterm::event::{self as ct, Event as CtEvent};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Smallest time between two frames for what the batch reports (at most 10 frames a second).
pub const FRAME: Duration = Duration::from_millis(100);
/// Smallest time between two frames after a key or a resize, so typing feels immediate.
pub const KEY_FRAME: Duration = Duration::from_millis(16);
/// Clock-driven refresh (rate, ETA, elapsed) while a batch runs.
pub const TICK: Duration = Duration::from_millis(250);
/// How often the batch's events are collected. The loop never blocks on the batch channel:
/// a blocked receiver would make every send of the engine lock and wake it (tens of thousands
/// of wake-ups a second); collected in bulk, a send is a lock-free push.
pub const COLLECT: Duration = Duration::from_millis(40);

pub fn run(mut app: App) -> anyhow::Result<()> {
    let (guard, mut terminal) = term::Guard::enter()?;
    let stop_input = Arc::new(AtomicBool::new(false));
    let input = spawn_input(stop_input.clone());
    let (aux_tx, aux_rx) = unbounded::<Msg>();
    let ticker = crossbeam_channel::tick(TICK);
    let collector = crossbeam_channel::tick(COLLECT);
    let never = crossbeam_channel::never::<Instant>();
    let mut batch: Option<Running> = None;
    let mut events: Option<Receiver<BatchEvent>> = None;
    let mut replay: Option<Receiver<Event>> = None;
    let mut timing: Option<Receiver<Sample>> = None;
    for e in app.initial_effects() {
        perform(e, &mut app, &mut batch, &mut events, &mut replay, &mut timing, &aux_tx);
    }
    // The PC/SC presence watch, started once the profile shows a PC/SC head.
    let stop_presence = Arc::new(AtomicBool::new(false));
    let mut watching = false;
    let mut dirty = true;
    let mut urgent = false;
    let mut last_draw = Instant::now() - FRAME;
    // Test hook (tests/tui_tmux.rs): a panic of the UI thread must still restore the terminal.
    let panic_after_draw = std::env::var_os("CARDBENCH_TUI_TEST_PANIC").is_some();
    let result = loop {
        let gap = if urgent { KEY_FRAME } else { FRAME };
        if dirty && last_draw.elapsed() >= gap {
            if let Err(e) = terminal.draw(|f| ui::draw(&app, f)) {
                break Err(e.into());
            }
            if std::mem::take(&mut app.ring) {
                // BEL between frames: the terminal beeps or flashes, the screen is untouched.
                use std::io::Write;
                let _ = std::io::stdout().write_all(b"\x07").and_then(|_| std::io::stdout().flush());
            }
            last_draw = Instant::now();
            dirty = false;
            urgent = false;
            if panic_after_draw {
                panic!("CARDBENCH_TUI_TEST_PANIC is set: panicking after the first frame");
            }
        }
        if app.quit {
            break Ok(());
        }
        let timeout = if dirty { gap.saturating_sub(last_draw.elapsed()) } else { Duration::from_secs(3600) };
        let collect = if events.is_some() || replay.is_some() || timing.is_some() { &collector } else { &never };
        let msgs: Vec<Msg> = select! {
            recv(input) -> m => match m {
                Ok(m) => vec![m],
                Err(_) => break Err(anyhow::anyhow!("the terminal input thread stopped")),
            },
            recv(collect) -> _ => {
                let mut v: Vec<Msg> = events.iter().flat_map(|rx| rx.try_iter().map(Msg::Batch)).collect();
                v.extend(replay.iter().flat_map(|rx| rx.try_iter().map(Msg::Replay)));
                v.extend(timing.iter().flat_map(|rx| rx.try_iter().map(Msg::TimingSample)));
                v
            },
            recv(aux_rx) -> m => match m {
                // Every event of the batch is applied before its end.
                Ok(m @ Msg::Ended(_)) => {
                    let mut v: Vec<Msg> = events.take().map(|rx| rx.try_iter().map(Msg::Batch).collect()).unwrap_or_default();
                    v.push(m);
                    v
                }
                // Every row the replayer checked is applied before its end.
                Ok(m @ Msg::ReplayEnded(_)) => {
                    let mut v: Vec<Msg> = replay.take().map(|rx| rx.try_iter().map(Msg::Replay).collect()).unwrap_or_default();
                    v.push(m);
                    v
                }
                // Every sample measured is applied before its end.
                Ok(m @ Msg::TimingEnded(_)) => {
                    let mut v: Vec<Msg> = timing.take().map(|rx| rx.try_iter().map(Msg::TimingSample).collect()).unwrap_or_default();
                    v.push(m);
                    v
                }
                Ok(m) => vec![m],
                Err(_) => Vec::new(),
            },
            recv(ticker) -> _ => vec![Msg::Tick],
            default(timeout) => Vec::new(),
        };
        // One clock reading for everything collected at once.
        let now = Now::current();
        for m in msgs {
            let tick = matches!(m, Msg::Tick);
            urgent |= matches!(m, Msg::Key(_) | Msg::Resize);
            let effects = app.event_at(m, now);
            dirty |= !tick || app.ticking();
            for e in effects {
                perform(e, &mut app, &mut batch, &mut events, &mut replay, &mut timing, &aux_tx);
            }
        }
        if !watching && app.heads.iter().any(|h| h.driver == "pcsc") {
            super::presence::watch_pcsc(aux_tx.clone(), stop_presence.clone());
            watching = true;
        }
    };
    stop_presence.store(true, Ordering::Relaxed);
    stop_input.store(true, Ordering::Relaxed);
    drop(guard);
    // A batch left running (quit twice while stopping) ends with the process; its journal
    // holds every card it finished.
    if let Some(b) = batch.filter(|b| b.thread.is_finished()) {
        let _ = b.thread.join();
    }
    result
}

fn perform(
    e: Effect,
    app: &mut App,
    batch: &mut Option<Running>,
    events: &mut Option<Receiver<BatchEvent>>,
    replay: &mut Option<Receiver<Event>>,
    timing: &mut Option<Receiver<Sample>>,
    aux: &Sender<Msg>,
) {
    match e {
        Effect::Start(req) => match launch::start(&req, aux.clone()) {
            Ok(r) => {
                app.event(Msg::Launched { dir: r.dir.clone(), control: r.control.clone() });
                *events = Some(r.events.clone());
                *batch = Some(r);
            }
            Err(e) => {
                app.event(Msg::Ended(Err(e)));
            }
        },
        Effect::Probe(path) => launch::in_background(aux.clone(), move || {
            let result = launch::probe(&path);
            Msg::Probed { profile: path, result }
        }),
        Effect::LoadTrace { index, path } => launch::in_background(aux.clone(), move || Msg::CardTrace {
            index,
            result: crate::trace::read(&path).map_err(|e| e.to_string()),
        }),
        Effect::OpenTrace { slot, path } => launch::in_background(aux.clone(), move || {
            let result = super::replay::load(&path);
            Msg::TraceFile { slot, path, result }
        }),
        Effect::ListTraces => launch::in_background(aux.clone(), || {
            Msg::TraceList(super::replay::find_traces(&[std::path::Path::new("logs"), std::path::Path::new("traces")]))
        }),
        Effect::Replay(req) => match launch::start_replay(&req, aux.clone()) {
            Ok(r) => {
                app.event(Msg::ReplayLaunched { stop: r.stop });
                *replay = Some(r.events);
            }
            Err(e) => {
                app.event(Msg::ReplayEnded(Err(e)));
            }
        },
        Effect::Time(req) => match launch::start_timing(&req, aux.clone()) {
            Ok(r) => {
                app.event(Msg::TimingLaunched { dir: r.dir, stop: r.stop });
                *timing = Some(r.samples);
            }
            Err(e) => {
                app.event(Msg::TimingEnded(Err(e)));
            }
        },
        Effect::ListTimingResults => launch::in_background(aux.clone(), || {
            Msg::TimingResults(super::timing::find_results(&[std::path::Path::new("logs")]))
        }),
        Effect::Export { path, text } => launch::in_background(aux.clone(), move || {
            let result =
                std::fs::write(&path, text).map(|()| path.clone()).map_err(|e| format!("{}: {e}", path.display()));
            Msg::Exported(result)
        }),
        Effect::PollPn532(profile) => launch::in_background(aux.clone(), move || {
            let result = super::presence::poll_pn532(&profile);
            Msg::Polled { profile, result }
        }),
        Effect::Scan(job) => launch::in_background(aux.clone(), move || Msg::Scanned(super::scan::run(job))),
        Effect::LoadCompare { a, b } => {
            launch::in_background(aux.clone(), move || Msg::CompareLoaded(super::timing::load_sides(&a, &b)))
        }
    }
}

/// Keys and resizes from the terminal, until `stop` is set or the loop goes away.
fn spawn_input(stop: Arc<AtomicBool>) -> Receiver<Msg> {
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("cardbench-input".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match ct::poll(Duration::from_millis(100)) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(_) => break,
                }
                let msg = match ct::read() {
                    Ok(CtEvent::Key(k)) => Msg::Key(k),
                    Ok(CtEvent::Resize(..)) => Msg::Resize,
                    Ok(_) => continue,
                    Err(_) => break,
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        })
        .expect("spawn the input thread");
    rx
}
