//! The UI's whole state and the one place it changes: `App::event`. Drawing (`ui::draw`) only
//! reads it; threads, files and the batch are the event loop's business (`Effect`s).

use super::replay::{find_traces, ReplayEnd, ReplayRequest, ReplayView, Slot, TraceFile};
use super::stats::{SortBy, Summary, Timing};
use super::theme::Theme;
use super::timing::{TimingEnd, TimingRequest, TimingView};
use super::trace::{TraceFilter, TraceLog, TraceRow};
use crate::batch::{BatchEvent, Control};
use crate::event::Exchange;
use crate::report::CardResult;
use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a note stays on the status line while the ticker runs (a batch or timing run).
pub const NOTE_SHOWN: Duration = Duration::from_secs(5);

/// Events shown in the Events panel.
pub const EVENTS_KEPT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Heads,
    Batch,
    Trace,
    Results,
    Timing,
    Events,
    Replay,
}

impl Panel {
    pub const ALL: [Panel; 7] =
        [Panel::Heads, Panel::Batch, Panel::Trace, Panel::Results, Panel::Timing, Panel::Events, Panel::Replay];

    pub fn title(self) -> &'static str {
        match self {
            Panel::Heads => "Heads",
            Panel::Batch => "Batch",
            Panel::Trace => "Trace",
            Panel::Results => "Results",
            Panel::Timing => "Timing",
            Panel::Events => "Events",
            Panel::Replay => "Replay",
        }
    }

    pub fn index(self) -> usize {
        Panel::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    pub fn next(self) -> Panel {
        Panel::ALL[(self.index() + 1) % Panel::ALL.len()]
    }

    pub fn prev(self) -> Panel {
        Panel::ALL[(self.index() + Panel::ALL.len() - 1) % Panel::ALL.len()]
    }
}

/// The clock as an event sees it; tests pass fixed ones.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: DateTime<Utc>,
}

impl Now {
    pub fn current() -> Now {
        Now { mono: Instant::now(), wall: Utc::now() }
    }

    pub fn after(&self, d: Duration) -> Now {
        Now { mono: self.mono + d, wall: self.wall + chrono::Duration::from_std(d).unwrap_or_default() }
    }
}

/// Everything that can happen to the UI.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Batch(BatchEvent),
    /// The batch thread is up: where it writes, and its pause / stop flags.
    Launched {
        dir: PathBuf,
        control: Arc<Control>,
    },
    /// `run_batch` returned (or the batch could not start).
    Ended(Result<BatchEnd, String>),
    /// A profile was read and its heads looked at.
    Probed {
        profile: PathBuf,
        result: Result<Probe, String>,
    },
    /// A card's trace CSV was read back.
    CardTrace {
        index: u64,
        result: Result<Vec<Exchange>, String>,
    },
    /// A trace file opened in the Replay panel was read.
    TraceFile {
        slot: Slot,
        path: PathBuf,
        result: Result<TraceFile, String>,
    },
    /// The trace files the picker offers, looked up again.
    TraceList(Vec<PathBuf>),
    /// The replay thread is up: its stop flag.
    ReplayLaunched {
        stop: Arc<AtomicBool>,
    },
    /// An event of the replayer's recorder: its `Exchange` rows and `ReplayChecked` results.
    Replay(crate::event::Event),
    /// The replay ended (or could not start).
    ReplayEnded(Result<ReplayEnd, String>),
    /// The timing run's thread is up: where it writes, and its stop flag.
    TimingLaunched {
        dir: PathBuf,
        stop: Arc<AtomicBool>,
    },
    /// A sample the timing run measured.
    TimingSample(crate::timing::sample::Sample),
    /// The timing run ended (or could not start).
    TimingEnded(Result<TimingEnd, String>),
    /// The timing result folders the compare pickers offer, looked up again.
    TimingResults(Vec<PathBuf>),
    /// The two sides of a comparison were read.
    CompareLoaded(Result<(crate::timing::compare::Side, crate::timing::compare::Side), String>),
    /// A PC/SC reader's slot as pcscd reports it now: card present (with its ATR) or not.
    Presence {
        reader: String,
        present: bool,
        atr: Vec<u8>,
    },
    /// The PC/SC presence watch lost pcscd (or could not reach it): why.
    PresenceLost(String),
    /// A trace filter's reading of finished cards' traces (`scan`).
    Scanned(super::scan::Scanned),
    /// The PN532 heads looked at while no batch, replay or timing run uses them.
    Polled {
        profile: PathBuf,
        result: Result<super::presence::Polled, String>,
    },
    /// A file the UI exported (the Timing table's CSV) was written, or why not.
    Exported(Result<PathBuf, String>),
    Tick,
    Resize,
}

/// What the event loop must do for the app (threads, files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Start(BatchRequest),
    Probe(PathBuf),
    LoadTrace {
        index: u64,
        path: PathBuf,
    },
    /// Read a trace file for the Replay panel.
    OpenTrace {
        slot: Slot,
        path: PathBuf,
    },
    /// Look up the trace files the picker offers.
    ListTraces,
    Replay(ReplayRequest),
    /// Run a timing spec.
    Time(TimingRequest),
    /// Look up the timing result folders under `logs/`.
    ListTimingResults,
    /// Write a file the UI exports (the Timing table as CSV).
    Export {
        path: PathBuf,
        text: String,
    },
    /// Read two timing results to compare them.
    LoadCompare {
        a: PathBuf,
        b: PathBuf,
    },
    /// Look at the profile's PN532 heads (card present, ATR).
    PollPn532(PathBuf),
    /// Read finished cards' traces for the trace filter.
    Scan(super::scan::ScanJob),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    pub plan: PathBuf,
    pub profile: PathBuf,
    pub batch_id: String,
    pub count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEnd {
    pub dir: PathBuf,
    pub cards: usize,
    pub certified_now: usize,
    pub pass: usize,
    pub fail: usize,
    pub aborted: usize,
    pub stopped: bool,
}

/// A profile as the UI shows it before a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Probe {
    pub heads: Vec<HeadRow>,
    /// The profile's default card count, when it has a `[batch]`.
    pub count: Option<u64>,
    /// Why this profile cannot run a batch, if it cannot.
    pub not_batch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeadRow {
    pub name: String,
    pub driver: String,
    pub reader: String,
    pub role: String,
    /// None: unknown (not looked at, or the reader answered an error).
    pub present: Option<bool>,
    pub atr: Option<Vec<u8>>,
    pub card_id: String,
    pub case: String,
    pub step: String,
    pub pass: u64,
    pub fail: u64,
    pub aborted: u64,
    /// The last error of the head, if it is in fault.
    pub fault: String,
    /// What the head is doing in the batch and what the operator must do for it.
    pub state: Option<crate::batch::operator::HeadState>,
    /// Cards inserted in this head whose verdict has not come yet, by index: the engine
    /// journals a card (and reports it done) after its worker has inserted the next one.
    pub in_flight: Vec<u64>,
}

impl HeadRow {
    /// Whether an operator inserts and takes out this head's cards.
    pub fn real(&self) -> bool {
        !crate::lab::simulated(&self.driver)
    }

    /// What the operator must do for this head now, if anything.
    pub fn prompt(&self) -> Option<String> {
        self.state.as_ref().filter(|_| self.real()).and_then(|s| s.prompt(&self.name, &self.reader))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Starting,
    Running,
    Paused,
    Stopping,
    Finished,
    Stopped,
    Failed(String),
}

impl Phase {
    pub fn word(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Stopping => "stopping",
            Phase::Finished => "finished",
            Phase::Stopped => "stopped",
            Phase::Failed(_) => "failed",
        }
    }

    /// A batch thread exists.
    pub fn active(&self) -> bool {
        matches!(self, Phase::Starting | Phase::Running | Phase::Paused | Phase::Stopping)
    }
}

#[derive(Debug, Clone)]
pub struct BatchState {
    pub phase: Phase,
    pub id: String,
    pub dir: Option<PathBuf>,
    pub total: u64,
    /// Cards the journal had before this run (a resumed batch).
    pub done_before: u64,
    pub certified: u64,
    pub pass: u64,
    pub fail: u64,
    pub aborted: u64,
    pub started: Option<Instant>,
    pub paused_at: Option<Instant>,
    pub paused_for: Duration,
    pub ended_at: Option<Instant>,
    /// The workers are done (reports may still be being written).
    pub workers_done: bool,
    pub control: Option<Arc<Control>>,
    pub quit_when_done: bool,
    pub summary: Option<PathBuf>,
}

impl Default for BatchState {
    fn default() -> Self {
        BatchState {
            phase: Phase::Idle,
            id: String::new(),
            dir: None,
            total: 0,
            done_before: 0,
            certified: 0,
            pass: 0,
            fail: 0,
            aborted: 0,
            started: None,
            paused_at: None,
            paused_for: Duration::ZERO,
            ended_at: None,
            workers_done: false,
            control: None,
            quit_when_done: false,
            summary: None,
        }
    }
}

impl BatchState {
    pub fn done(&self) -> u64 {
        self.done_before + self.certified
    }

    /// Running time, pauses excluded.
    pub fn elapsed(&self, now: Instant) -> Duration {
        let Some(t0) = self.started else { return Duration::ZERO };
        let end = self.ended_at.or(self.paused_at).unwrap_or(now);
        end.saturating_duration_since(t0).saturating_sub(self.paused_for)
    }

    pub fn per_hour(&self, now: Instant) -> Option<f64> {
        let s = self.elapsed(now).as_secs_f64();
        (self.certified > 0 && s > 0.0).then(|| self.certified as f64 / s * 3600.0)
    }

    pub fn eta(&self, now: Instant) -> Option<Duration> {
        if !self.phase.active() {
            return None;
        }
        let rate = self.per_hour(now)? / 3600.0;
        let left = self.total.saturating_sub(self.done()) as f64;
        Some(Duration::from_secs_f64(left / rate))
    }

    fn set_flags(&self) {
        if let Some(c) = &self.control {
            use std::sync::atomic::Ordering::Relaxed;
            c.stop.store(self.phase == Phase::Stopping, Relaxed);
            c.paused.store(self.phase == Phase::Paused, Relaxed);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Plan,
    Profile,
    BatchId,
    Count,
    /// The trace of the Replay panel (picked or typed).
    Trace,
    /// The trace shown beside it.
    OtherTrace,
    /// The head a replay runs on.
    ReplayHead,
    /// The timing spec to run (picked or typed).
    TimingSpec,
    /// The heads a timing spec runs on.
    TimingHeads,
    /// The two timing results compared.
    CompareA,
    CompareB,
    /// The comparison's threshold (typed).
    Threshold,
    /// The Trace panel's `/` search (typed, applied as it is typed).
    Search,
}

impl Field {
    pub const ALL: [Field; 4] = [Field::Plan, Field::Profile, Field::BatchId, Field::Count];

    pub fn label(self) -> &'static str {
        match self {
            Field::Plan => "Plan",
            Field::Profile => "Profile",
            Field::BatchId => "Batch ID",
            Field::Count => "Card count",
            Field::Trace => "Trace",
            Field::OtherTrace => "Compare with",
            Field::ReplayHead => "Replay on head",
            Field::TimingSpec => "Timing spec",
            Field::TimingHeads => "Time on heads",
            Field::CompareA => "Compare A",
            Field::CompareB => "with B",
            Field::Threshold => "Threshold",
            Field::Search => "Search",
        }
    }
}

/// What the next batch will be.
#[derive(Debug, Clone)]
pub struct Form {
    pub plans: Vec<PathBuf>,
    pub profiles: Vec<PathBuf>,
    pub plan: Option<usize>,
    pub profile: Option<usize>,
    pub batch_id: String,
    pub count: String,
    pub count_edited: bool,
    pub field: Field,
    /// Why the chosen profile cannot run a batch.
    pub profile_note: Option<String>,
}

impl Form {
    pub fn plan_path(&self) -> Option<&Path> {
        self.plan.and_then(|i| self.plans.get(i)).map(PathBuf::as_path)
    }

    pub fn profile_path(&self) -> Option<&Path> {
        self.profile.and_then(|i| self.profiles.get(i)).map(PathBuf::as_path)
    }
}

/// Windows drawn over the panels; they take every key while open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    None,
    Help { scroll: u16 },
    ConfirmQuit,
    Picker { field: Field, sel: usize },
    Edit { field: Field, buf: String },
}

#[derive(Debug, Clone)]
pub struct CardDetail {
    pub index: u64,
    pub scroll: usize,
    /// Showing the card's trace (read from its CSV) instead of its cases.
    pub show_trace: bool,
    pub trace: Option<Result<Vec<Exchange>, String>>,
    pub trace_sel: usize,
    /// An exchange of the card's trace opened.
    pub exchange: Option<Box<Exchange>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Batch,
    Inserted,
    Removed,
    Error,
    Info,
}

impl LogKind {
    pub fn word(self) -> &'static str {
        match self {
            LogKind::Batch => "batch",
            LogKind::Inserted => "insert",
            LogKind::Removed => "remove",
            LogKind::Error => "error",
            LogKind::Info => "info",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogRow {
    pub wall: DateTime<Utc>,
    pub kind: LogKind,
    pub text: String,
}

/// How the app starts: what the pickers list and what is chosen.
#[derive(Debug, Clone)]
pub struct Config {
    pub plans: Vec<PathBuf>,
    pub profiles: Vec<PathBuf>,
    pub plan: Option<PathBuf>,
    pub profile: Option<PathBuf>,
    pub theme: Theme,
    pub trace_window: usize,
    /// Trace files the Replay panel's picker offers.
    pub traces: Vec<PathBuf>,
    /// Timing specs the Timing panel's picker offers.
    pub specs: Vec<PathBuf>,
}

impl Config {
    /// Plans from `test-plans/`, profiles from `profiles/` (in the working directory), with
    /// the ones given on the command line chosen (and listed first if they live elsewhere).
    pub fn discover(plan: Option<PathBuf>, profile: Option<PathBuf>) -> Config {
        Config {
            plans: list_toml(Path::new("test-plans")),
            profiles: list_toml(Path::new("profiles")),
            plan,
            profile,
            theme: Theme::from_env(),
            trace_window: super::trace::DEFAULT_WINDOW,
            traces: find_traces(&[Path::new("logs"), Path::new("traces")]),
            specs: list_toml(Path::new("test-plans/timing")),
        }
    }
}

fn list_toml(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Choose `want` in `list`, adding it first when it is not there.
fn choose(list: &mut Vec<PathBuf>, want: Option<PathBuf>) -> Option<usize> {
    match want {
        Some(p) => Some(match list.iter().position(|x| same_file(x, &p)) {
            Some(i) => i,
            None => {
                list.insert(0, p);
                0
            }
        }),
        None if list.is_empty() => None,
        None => Some(0),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

pub fn default_batch_id(wall: DateTime<Utc>) -> String {
    format!("tui-{}", wall.format("%Y%m%dT%H%M%SZ"))
}

pub struct App {
    pub theme: Theme,
    pub panel: Panel,
    pub modal: Modal,
    pub quit: bool,
    pub now: Now,
    pub form: Form,
    pub batch: BatchState,
    pub heads: Vec<HeadRow>,
    pub heads_sel: usize,
    pub trace: TraceLog,
    pub filter: TraceFilter,
    /// Selected trace row by id; None: follow the newest row.
    pub trace_sel: Option<u64>,
    pub trace_detail: Option<Box<TraceRow>>,
    /// The trace filter's matches in the finished cards' traces on disk.
    pub scan: super::scan::BatchScan,
    /// Scroll of an open exchange detail (live trace or a card's trace).
    pub detail_scroll: u16,
    /// This run's cards, by index.
    pub results: Vec<CardResult>,
    pub results_sel: usize,
    pub card_detail: Option<CardDetail>,
    pub timing: Timing,
    pub timing_sel: usize,
    /// The batch's timing pooled over the DUT heads per command (else per head and command).
    pub timing_pooled: bool,
    pub timing_sort: SortBy,
    pub timing_desc: bool,
    pub events: VecDeque<LogRow>,
    /// Selected event; None: follow the newest.
    pub events_sel: Option<usize>,
    pub replay: ReplayView,
    /// The Timing panel's spec runs and comparisons.
    pub timing_view: TimingView,
    /// Ring the terminal bell with each operator prompt (`tui --bell`).
    pub bell: bool,
    /// A prompt came that should ring the bell; the loop rings it and clears this.
    pub ring: bool,
    /// Why the PC/SC presence watch last lost pcscd (shown as the PC/SC heads' fault).
    pub pcsc_lost: Option<String>,
    /// A PN532 poll is under way; when the last one started.
    pub polling: bool,
    pub last_poll: Option<Instant>,
    /// Why the last key did nothing (or what it did not do), shown on the status line until
    /// the next key.
    pub note: Option<String>,
    /// When the note was set: while a batch runs it gives the line back to the counts after
    /// `NOTE_SHOWN`.
    pub note_at: Option<Instant>,
    /// Insert lines held back until the verdict of the head's previous card is logged, so the
    /// Events panel lists a head's cards in the order they went in and out.
    pub held_inserts: Vec<(String, String)>,
    /// Error lines logged so far: a key that logs one was refused, and says why on the
    /// status line too.
    pub errors_logged: u64,
    /// Quit once the replay has ended (asked while it ran).
    pub quit_after_replay: bool,
    /// Started without a profile and none of `profiles/` can run a batch: each one and why.
    pub unusable_profiles: Vec<(PathBuf, String)>,
}

impl App {
    pub fn new(cfg: Config, now: Now) -> App {
        let Config { mut plans, mut profiles, plan, profile, theme, trace_window, traces, specs } = cfg;
        let plan = choose(&mut plans, plan);
        let profile = choose(&mut profiles, profile);
        let mut app = App {
            theme,
            panel: Panel::Batch,
            modal: Modal::None,
            quit: false,
            now,
            form: Form {
                plans,
                profiles,
                plan,
                profile,
                batch_id: default_batch_id(now.wall),
                count: String::new(),
                count_edited: false,
                field: Field::Plan,
                profile_note: None,
            },
            batch: BatchState::default(),
            heads: Vec::new(),
            heads_sel: 0,
            trace: TraceLog::with_window(trace_window),
            filter: TraceFilter::default(),
            trace_sel: None,
            trace_detail: None,
            scan: Default::default(),
            detail_scroll: 0,
            results: Vec::new(),
            results_sel: 0,
            card_detail: None,
            timing: Timing::default(),
            timing_sel: 0,
            timing_pooled: true,
            timing_sort: SortBy::Name,
            timing_desc: false,
            events: VecDeque::new(),
            events_sel: None,
            replay: ReplayView { traces, ..ReplayView::default() },
            timing_view: TimingView { specs, ..TimingView::default() },
            bell: false,
            ring: false,
            pcsc_lost: None,
            polling: false,
            last_poll: None,
            note: None,
            note_at: None,
            held_inserts: Vec::new(),
            quit_after_replay: false,
            errors_logged: 0,
            unusable_profiles: Vec::new(),
        };
        app.log(LogKind::Info, "cardbench TUI ready: choose plan and profile in Batch, press s to start, ? for keys");
        app
    }

    /// What the loop must do before the first event: look at the chosen profile.
    pub fn initial_effects(&self) -> Vec<Effect> {
        self.form.profile_path().map(|p| vec![Effect::Probe(p.to_path_buf())]).unwrap_or_default()
    }

    pub fn event(&mut self, msg: Msg) -> Vec<Effect> {
        self.event_at(msg, Now::current())
    }

    /// Apply one event at a given time. Returns what the loop must do.
    pub fn event_at(&mut self, msg: Msg, now: Now) -> Vec<Effect> {
        self.now = now;
        match msg {
            Msg::Key(k) => return self.key(k),
            Msg::Batch(e) => {
                let done = match &e {
                    BatchEvent::CardDone(c) => Some(c.index),
                    _ => None,
                };
                self.batch_event(e);
                // A filter covers the whole batch: a finished card's trace is read too.
                if let Some(index) = done {
                    return self.scan_finished(index);
                }
            }
            Msg::Scanned(r) => self.scanned(r),
            Msg::Launched { dir, control } => {
                self.batch.dir = Some(dir);
                self.batch.control = Some(control);
                // A pause or stop pressed before the thread was up applies now.
                self.batch.set_flags();
            }
            Msg::Ended(r) => self.batch_ended(r),
            Msg::Probed { profile, result } => self.probed(&profile, result),
            Msg::CardTrace { index, result } => {
                if let Some(d) = self.card_detail.as_mut().filter(|d| d.index == index) {
                    d.trace = Some(result);
                    d.trace_sel = 0;
                }
            }
            Msg::TraceFile { slot, path, result } => self.trace_file_read(slot, path, result),
            Msg::TraceList(list) => {
                // Files opened by a typed path stay offered.
                let typed: Vec<PathBuf> = self.replay.traces.drain(..).filter(|p| !list.contains(p)).collect();
                self.replay.traces = list;
                for p in typed.into_iter().rev() {
                    self.replay.traces.insert(0, p);
                }
            }
            Msg::ReplayLaunched { stop } => self.replay_launched(stop),
            Msg::Replay(e) => self.replay_event(e),
            Msg::ReplayEnded(r) => {
                self.replay_ended(r);
                if self.quit_after_replay {
                    self.quit = true;
                }
            }
            Msg::TimingLaunched { dir, stop } => self.timing_launched(dir, stop),
            Msg::TimingSample(s) => self.timing_sample(s),
            Msg::TimingEnded(r) => self.timing_ended(r),
            Msg::TimingResults(list) => self.timing_results_listed(list),
            Msg::CompareLoaded(r) => self.compare_loaded(r),
            Msg::Presence { reader, present, atr } => self.presence(&reader, present, atr),
            Msg::PresenceLost(why) => self.presence_lost(why),
            Msg::Polled { profile, result } => self.polled(&profile, result),
            Msg::Exported(Ok(path)) => {
                let msg = format!("timing table written to {}", path.display());
                self.say(msg.clone());
                self.log(LogKind::Info, msg);
            }
            Msg::Exported(Err(e)) => self.refuse(LogKind::Error, format!("timing export failed: {e}")),
            Msg::Tick => {
                if self.note_at.is_some_and(|t| now.mono.saturating_duration_since(t) >= NOTE_SHOWN) {
                    self.note = None;
                }
                self.timing_tick();
                return self.poll_due().map(Effect::PollPn532).into_iter().collect();
            }
            Msg::Resize => {}
        }
        Vec::new()
    }

    /// The screen changes with the clock alone (rate, ETA, elapsed) only while a batch or a
    /// timing run runs (the timing figures are brought up to date on the ticker).
    pub fn ticking(&self) -> bool {
        self.batch.phase.active() || self.timing_view.running()
    }

    pub fn log(&mut self, kind: LogKind, text: impl Into<String>) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
            if let Some(s) = self.events_sel.as_mut() {
                *s = s.saturating_sub(1);
            }
        }
        self.errors_logged += u64::from(kind == LogKind::Error);
        self.events.push_back(LogRow { wall: self.now.wall, kind, text: text.into() });
    }

    /// Say on the status line why a key did nothing (until the next key).
    pub fn say(&mut self, why: impl Into<String>) {
        self.note = Some(why.into());
        self.note_at = Some(self.now.mono);
    }

    /// A refusal worth keeping: on the status line and in the Events panel.
    pub fn refuse(&mut self, kind: LogKind, why: impl Into<String>) {
        let why = why.into();
        self.say(why.clone());
        self.log(kind, why);
    }

    /// The batch Timing view's rows, as shown: pooled over the DUT heads or per head, sorted.
    pub fn timing_rows(&self) -> Vec<Summary> {
        // DUT heads by the profile's roles; before a profile is read, the peer cards' heads
        // (`D1.peer`) are the ones with a dot.
        let known = self.heads.iter().any(|h| h.role == "dut");
        let is_dut = |h: &str| {
            if known {
                self.heads.iter().any(|x| x.name == h && x.role == "dut")
            } else {
                !h.contains('.')
            }
        };
        let pooled: Option<&dyn Fn(&str) -> bool> = if self.timing_pooled { Some(&is_dut) } else { None };
        self.timing.summaries(pooled, self.timing_sort, self.timing_desc)
    }

    /// Where `E` writes the Timing table: the batch's folder, else the working directory.
    pub fn timing_export_path(&self) -> PathBuf {
        let name = format!(
            "timing-{}-{}.csv",
            if self.timing_pooled { "all-duts" } else { "per-head" },
            self.now.wall.format("%Y%m%dT%H%M%SZ")
        );
        match &self.batch.dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    /// A replay is running (or stopping) on the profile's heads.
    pub fn replaying(&self) -> bool {
        self.replay.live.as_ref().is_some_and(|l| l.phase.active())
    }

    /// `s` would resume the batch last run (stopped, same batch ID) rather than start one.
    pub fn start_resumes(&self) -> bool {
        matches!(self.batch.phase, Phase::Stopped | Phase::Failed(_))
            && !self.batch.id.is_empty()
            && self.form.batch_id.trim() == self.batch.id
    }

    pub fn head_mut(&mut self, name: &str) -> Option<&mut HeadRow> {
        self.heads.iter_mut().find(|h| h.name == name)
    }

    pub fn card(&self, index: u64) -> Option<&CardResult> {
        self.results.binary_search_by_key(&index, |c| c.index).ok().map(|i| &self.results[i])
    }

    /// Where a card's trace CSV is.
    pub fn trace_path(&self, c: &CardResult) -> PathBuf {
        match &self.batch.dir {
            Some(d) => d.join(&c.trace),
            None => PathBuf::from(&c.trace),
        }
    }

    fn probed(&mut self, profile: &Path, result: Result<Probe, String>) {
        if self.form.profile_path() != Some(profile) {
            return;
        }
        match result {
            Ok(p) => {
                if !self.batch.phase.active() {
                    self.heads = p.heads;
                }
                if let (Some(n), false) = (p.count, self.form.count_edited) {
                    self.form.count = n.to_string();
                }
                if let Some(why) = &p.not_batch {
                    self.log(LogKind::Info, format!("{}: {why}", profile.display()));
                }
                self.form.profile_note = p.not_batch;
            }
            Err(e) => {
                if !self.batch.phase.active() {
                    self.heads.clear();
                }
                self.form.profile_note = Some(e.clone());
                self.log(LogKind::Error, e);
            }
        }
    }

    pub(super) fn start(&mut self) -> Vec<Effect> {
        if self.batch.phase.active() {
            let why = match self.batch.phase {
                Phase::Paused => "s: the batch is paused, not stopped (p resumes it)",
                Phase::Stopping => "s: the batch is stopping; s resumes it once it has stopped",
                _ => "s: a batch is already running (x stops it)",
            };
            self.say(why);
            return Vec::new();
        }
        if self.replaying() {
            self.refuse(LogKind::Error, "a replay is running on the profile's heads: stop it (x in 7 Replay) first");
            return Vec::new();
        }
        if self.timing_view.running() {
            self.refuse(LogKind::Error, "a timing run is using the profile's heads: stop it (x in 5 Timing) first");
            return Vec::new();
        }
        let (Some(plan), Some(profile)) = (self.form.plan_path(), self.form.profile_path()) else {
            let missing = if self.form.plan_path().is_none() { "plan" } else { "profile" };
            self.refuse(LogKind::Error, format!("s: no {missing} chosen: pick one in 2 Batch (Enter; / types a path)"));
            return Vec::new();
        };
        if let Some(why) = &self.form.profile_note {
            let why = format!("s: {} cannot run a batch: {why}", profile.display());
            self.refuse(LogKind::Error, why);
            return Vec::new();
        }
        let count = match self.form.count.trim() {
            "" => None,
            s => match s.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.refuse(LogKind::Error, format!("s: card count '{s}' is not a positive number"));
                    return Vec::new();
                }
            },
        };
        let batch_id = self.form.batch_id.trim().to_string();
        if batch_id.is_empty() {
            self.refuse(LogKind::Error, "s: the batch needs an ID (2 Batch, Batch ID)");
            return Vec::new();
        }
        let req = BatchRequest { plan: plan.to_path_buf(), profile: profile.to_path_buf(), batch_id, count };
        // A new run: this run's cards, trace and timing start empty; the event log goes on.
        self.batch = BatchState { phase: Phase::Starting, id: req.batch_id.clone(), ..BatchState::default() };
        self.results.clear();
        self.results_sel = 0;
        self.card_detail = None;
        self.trace = TraceLog::with_window(self.trace.window());
        self.trace_sel = None;
        self.trace_detail = None;
        let _ = self.rescan();
        self.timing = Timing::default();
        self.timing_sel = 0;
        // The counts per head start again; a resumed batch's earlier cards are added back
        // when the engine lists them (`Started { earlier }`).
        for h in &mut self.heads {
            h.pass = 0;
            h.fail = 0;
            h.aborted = 0;
            h.fault.clear();
            h.state = None;
            h.in_flight.clear();
        }
        self.held_inserts.clear();
        self.log(
            LogKind::Batch,
            format!(
                "starting batch {} : plan {}, profile {}, {} cards",
                req.batch_id,
                req.plan.display(),
                req.profile.display(),
                count.map_or("profile's count of".to_string(), |n| n.to_string())
            ),
        );
        vec![Effect::Start(req)]
    }

    pub(super) fn pause_resume(&mut self) {
        let now = self.now.mono;
        match self.batch.phase {
            Phase::Running => {
                self.batch.phase = Phase::Paused;
                self.batch.paused_at = Some(now);
                self.log(LogKind::Batch, "paused: workers finish the card they hold, then wait");
            }
            Phase::Paused => {
                self.batch.phase = Phase::Running;
                if let Some(t) = self.batch.paused_at.take() {
                    self.batch.paused_for += now.saturating_duration_since(t);
                }
                self.log(LogKind::Batch, "resumed");
            }
            Phase::Stopping => return self.say("p: the batch is stopping; nothing to pause"),
            _ => return self.say("p: no batch is running to pause (s starts one)"),
        }
        self.batch.set_flags();
    }

    pub(super) fn stop(&mut self) {
        if !matches!(self.batch.phase, Phase::Starting | Phase::Running | Phase::Paused) {
            let why = if self.batch.phase == Phase::Stopping {
                "x: the batch is already stopping (the cards in the heads finish first)"
            } else {
                "x: no batch is running to stop"
            };
            return self.say(why);
        }
        if let Some(t) = self.batch.paused_at.take() {
            self.batch.paused_for += self.now.mono.saturating_duration_since(t);
        }
        self.batch.phase = Phase::Stopping;
        self.batch.set_flags();
        self.log(LogKind::Batch, "stopping: in-flight cards finish and are journaled; the batch stays resumable");
    }

    fn batch_ended(&mut self, r: Result<BatchEnd, String>) {
        let now = self.now.mono;
        if let Some(t) = self.batch.paused_at.take() {
            self.batch.paused_for += now.saturating_duration_since(t);
        }
        self.batch.ended_at = Some(now);
        self.batch.control = None;
        for h in &mut self.heads {
            h.case.clear();
            h.step.clear();
        }
        match r {
            Ok(end) => {
                self.batch.phase = if end.stopped { Phase::Stopped } else { Phase::Finished };
                let summary = end.dir.join("summary.csv");
                self.log(
                    LogKind::Batch,
                    format!(
                        "batch {} {}: {} cards ({} certified now), {} pass, {} fail, {} aborted; {}",
                        self.batch.id,
                        self.batch.phase.word(),
                        end.cards,
                        end.certified_now,
                        end.pass,
                        end.fail,
                        end.aborted,
                        summary.display()
                    ),
                );
                if end.stopped {
                    self.log(LogKind::Batch, "press s to resume the same batch ID");
                } else {
                    self.form.batch_id = default_batch_id(self.now.wall);
                }
                self.batch.dir = Some(end.dir);
                self.batch.summary = Some(summary);
            }
            Err(e) => {
                self.log(LogKind::Error, format!("batch {}: {e}", self.batch.id));
                self.batch.phase = Phase::Failed(e);
            }
        }
        if self.batch.quit_when_done {
            self.quit = true;
        }
    }
}
