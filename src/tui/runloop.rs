//! The event loop, the way gitui and bottom do it: an input thread reads the terminal, the
//! batch runs on its own threads and sends its events over a channel, a ticker keeps rates
//! and ETA fresh; the loop selects over those channels, lets `App::event` change the state,
//! carries out the effects it asks for, and redraws at a bounded rate.

use super::app::{App, Effect, Msg};
use super::launch::{self, Running};
use super::{term, ui};
use crate::batch::BatchEvent;
use crossbeam_channel::{select, unbounded, Receiver, Sender};
use crossterm::event::{self as ct, Event as CtEvent};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Smallest time between two frames (at most ~16 frames a second).
pub const FRAME: Duration = Duration::from_millis(60);
/// Clock-driven refresh (rate, ETA, elapsed) while a batch runs.
pub const TICK: Duration = Duration::from_millis(250);
/// Batch events applied before the screen gets a chance to redraw.
const DRAIN: usize = 4096;

pub fn run(mut app: App) -> anyhow::Result<()> {
    let (guard, mut terminal) = term::Guard::enter()?;
    let stop_input = Arc::new(AtomicBool::new(false));
    let input = spawn_input(stop_input.clone());
    let (aux_tx, aux_rx) = unbounded::<Msg>();
    let ticker = crossbeam_channel::tick(TICK);
    let never = crossbeam_channel::never::<BatchEvent>();
    let mut batch: Option<Running> = None;
    let mut events: Option<Receiver<BatchEvent>> = None;
    let mut ended = false;
    for e in app.initial_effects() {
        perform(e, &mut app, &mut batch, &mut events, &aux_tx);
    }
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    // Test hook (tests/tui_tmux.rs): a panic of the UI thread must still restore the terminal.
    let panic_after_draw = std::env::var_os("CARDBENCH_TUI_TEST_PANIC").is_some();
    let result = loop {
        if dirty && last_draw.elapsed() >= FRAME {
            if let Err(e) = terminal.draw(|f| ui::draw(&app, f)) {
                break Err(e.into());
            }
            last_draw = Instant::now();
            dirty = false;
            if panic_after_draw {
                panic!("CARDBENCH_TUI_TEST_PANIC is set: panicking after the first frame");
            }
        }
        if app.quit {
            break Ok(());
        }
        let timeout = if dirty { FRAME.saturating_sub(last_draw.elapsed()) } else { Duration::from_secs(3600) };
        let brx = events.as_ref().unwrap_or(&never);
        let msgs: Vec<Msg> = select! {
            recv(input) -> m => match m {
                Ok(m) => vec![m],
                Err(_) => break Err(anyhow::anyhow!("the terminal input thread stopped")),
            },
            recv(brx) -> m => match m {
                Ok(e) => std::iter::once(e).chain(brx.try_iter().take(DRAIN)).map(Msg::Batch).collect(),
                Err(_) => {
                    events = None;
                    Vec::new()
                }
            },
            recv(aux_rx) -> m => match m {
                // Every event of the batch is applied before its end.
                Ok(m @ Msg::Ended(_)) => {
                    ended = true;
                    let mut v: Vec<Msg> = events.take().map(|rx| rx.try_iter().map(Msg::Batch).collect()).unwrap_or_default();
                    v.push(m);
                    v
                }
                Ok(m) => vec![m],
                Err(_) => Vec::new(),
            },
            recv(ticker) -> _ => vec![Msg::Tick],
            default(timeout) => Vec::new(),
        };
        for m in msgs {
            let tick = matches!(m, Msg::Tick);
            let effects = app.event(m);
            dirty |= !tick || app.ticking();
            for e in effects {
                perform(e, &mut app, &mut batch, &mut events, &aux_tx);
            }
        }
    };
    stop_input.store(true, Ordering::Relaxed);
    drop(guard);
    if let (Some(b), true) = (batch, ended) {
        let _ = b.thread.join();
    }
    result
}

fn perform(
    e: Effect,
    app: &mut App,
    batch: &mut Option<Running>,
    events: &mut Option<Receiver<BatchEvent>>,
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
        Effect::LoadTrace { index, path } => {
            launch::in_background(aux.clone(), move || Msg::CardTrace { index, result: super::trace::read_csv(&path) })
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
